//! Deliveries: the supplier records each device it delivers under a municipality's call-off, and
//! a serial enters a municipality's service only when that municipality confirms receipt of a
//! delivery made to it (`deviceRegister`). Until now any municipality could register any
//! unregistered serial of any product and then read what the device had sent.

use sea_orm_migration::{prelude::*, schema::*};

use crate::ddl::{self, references};
use crate::m20261122_000001_organizations::Organization;
use crate::m20261122_000002_procurements::CallOff;
use crate::m20261122_000004_devices::DeviceProduct;

ddl::migration! {
    #[unique(uq_delivery_serial: ProductId, Serial)]
    #[index(idx_delivery_call_off: CallOffId)]
    #[index(idx_delivery_municipality: MunicipalityId)]
    DeviceDelivery {
        ProductId: references(DeviceProduct::Table),
        Serial: string_len(64),
        CallOffId: references(CallOff::Table),
        MunicipalityId: references(Organization::Table),
        DeliveredBy: string_len(200),
        DeliveredAt: timestamp_with_time_zone,
    }
}
