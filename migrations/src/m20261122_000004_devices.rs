//! Devices and their adapters in service: suppliers' signing keys, device products with their
//! uploaded adapter versions, devices registered to municipalities, ingest receipts (with the
//! raw bodies of the most recent messages kept for replay review), normalised device events
//! (unique per device and supplier event id, which makes ingest idempotent) and dead letters
//! (the original bytes of messages that could not be stored as events, unique per body).

use sea_orm_migration::{prelude::*, schema::*};

use crate::ddl::{self, references, references_null};
use crate::m20261122_000001_organizations::Organization;
use crate::m20261122_000002_procurements::CallOff;

ddl::migration! {
    #[unique(uq_signing_key: PublicKey)]
    #[index(idx_signing_key_supplier: SupplierId)]
    SigningKey {
        SupplierId: references(Organization::Table),
        PublicKey: string_len(64),
        Label: string_len_null(200),
        CreatedAt: timestamp_with_time_zone,
        RevokedAt: timestamp_with_time_zone_null,
    }
    #[unique(uq_product_slug: Slug)]
    #[index(idx_product_supplier: SupplierId)]
    DeviceProduct {
        SupplierId: references(Organization::Table),
        Slug: string_len(63),
        CreatedAt: timestamp_with_time_zone,
    }
    #[unique(uq_adapter_component: ProductId, Sha256)]
    #[index(idx_adapter_product: ProductId)]
    Adapter {
        ProductId: references(DeviceProduct::Table),
        Status: string_len(20),
        AdapterVersion: string_len(100),
        InterfaceVersion: string_len(40),
        Sha256: string_len(64),
        SizeBytes: big_integer,
        Component: blob,
        Description: text,
        SigningKeyId: references(SigningKey::Table),
        UploadedBy: string_len(200),
        UploadedAt: timestamp_with_time_zone,
        ActivatedAt: timestamp_with_time_zone_null,
        RetiredAt: timestamp_with_time_zone_null,
    }
    #[unique(uq_device_serial: ProductId, Serial)]
    #[index(idx_device_municipality: MunicipalityId)]
    Device {
        ProductId: references(DeviceProduct::Table),
        MunicipalityId: references(Organization::Table),
        Serial: string_len(64),
        CallOffId: references_null(CallOff::Table),
        RecipientRef: string_len_null(100),
        RegisteredAt: timestamp_with_time_zone,
    }
    #[unique(uq_dead_letter_body: ProductId, BodySha256)]
    DeadLetter {
        ProductId: references(DeviceProduct::Table),
        ContentType: string_len(200),
        Body: blob,
        BodySha256: string_len(64),
        ReasonCode: string_len(40),
        Reason: text,
        DeviceSerial: string_len_null(64),
        AdapterId: big_integer_null,
        Attempts: integer,
        FirstReceivedAt: timestamp_with_time_zone,
        LastReceivedAt: timestamp_with_time_zone,
        ResolvedAt: timestamp_with_time_zone_null,
    }
    #[index(idx_receipt_product: ProductId, Id)]
    IngestReceipt {
        ProductId: references(DeviceProduct::Table),
        AdapterId: big_integer_null,
        ReceivedAt: timestamp_with_time_zone,
        ContentType: string_len(200),
        BodySha256: string_len(64),
        Body: blob_null,
        Outcome: string_len(20),
        EventsStored: integer,
        EventsDuplicate: integer,
        DeadLetterId: big_integer_null,
    }
    // The idempotency key of ingest: one event per device and supplier event id.
    #[unique(uq_device_event: DeviceId, SupplierEventId)]
    DeviceEvent {
        DeviceId: references(Device::Table),
        ReceiptId: references(IngestReceipt::Table),
        AdapterId: big_integer,
        SupplierEventId: string_len(128),
        Kind: string_len(40),
        VkpCode: string_len_null(20),
        Severity: string_len(20),
        OccurredAt: timestamp_with_time_zone,
        ReceivedAt: timestamp_with_time_zone,
        Detail: text_null,
        Data: text,
    }
}
