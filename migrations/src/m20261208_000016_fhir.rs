//! The FHIR export for journal systems: each municipality's system URI for its recipients'
//! pseudonymous references (`fhir_setting`, one row per municipality that set one; none means
//! the documented default), and the index the export's windows on `device_event.received_at`
//! read by.

use sea_orm_migration::{prelude::*, schema::*};

use crate::ddl::{self, references};
use crate::m20261122_000001_organizations::Organization;
use crate::m20261122_000004_devices::DeviceEvent;

ddl::migration! {
    then: create_received_index;
    first: drop_received_index;
    #[unique(uq_fhir_setting_municipality: MunicipalityId)]
    FhirSetting {
        MunicipalityId: references(Organization::Table),
        // The identifier system of the recipients' references (an absolute URI).
        RecipientSystem: string_len(255),
        UpdatedBy: string_len(200),
        UpdatedAt: timestamp_with_time_zone,
    }
}

const RECEIVED_INDEX: &str = "idx_device_event_received";

async fn create_received_index(manager: &SchemaManager<'_>) -> Result<(), DbErr> {
    manager.create_index(ddl::index(RECEIVED_INDEX, DeviceEvent::Table, [DeviceEvent::ReceivedAt])).await
}

async fn drop_received_index(manager: &SchemaManager<'_>) -> Result<(), DbErr> {
    manager.drop_index(Index::drop().name(RECEIVED_INDEX).table(DeviceEvent::Table).to_owned()).await
}
