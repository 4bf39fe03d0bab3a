//! Storage model of devices and their adapters. Relations are loaded explicitly, so the
//! entities declare none.

use sea_orm::entity::prelude::*;

crate::stored_enum! {
    /// Where an uploaded adapter version stands. One version per product is `Active`.
    #[derive(async_graphql::Enum)]
    #[sea_orm(rs_type = "String", db_type = "String(StringLen::N(20))")]
    pub enum AdapterStatus {
        /// Uploaded and validated; waiting for an admin to review and activate it.
        #[sea_orm(string_value = "pending_review")]
        PendingReview,
        /// Decodes the product's messages.
        #[sea_orm(string_value = "active")]
        Active,
        /// Was active and was replaced; kept so that it can be rolled back to.
        #[sea_orm(string_value = "inactive")]
        Inactive,
        /// Withdrawn for good; never decodes again.
        #[sea_orm(string_value = "retired")]
        Retired,
    }
}

crate::stored_enum! {
    /// Whether an adapter version's limits needed and got an admin's approval.
    #[derive(async_graphql::Enum)]
    #[sea_orm(rs_type = "String", db_type = "String(StringLen::N(20))")]
    pub enum LimitsApproval {
        /// The version asked for nothing above the defaults.
        #[sea_orm(string_value = "not_needed")]
        NotNeeded,
        /// It asked for more; the admin approves it by activating it with `approveLimits`.
        #[sea_orm(string_value = "pending")]
        Pending,
        /// An admin approved what it asked for.
        #[sea_orm(string_value = "approved")]
        Approved,
    }
}

crate::stored_enum! {
    /// What became of one ingested message.
    #[derive(async_graphql::Enum)]
    #[sea_orm(rs_type = "String", db_type = "String(StringLen::N(20))")]
    pub enum IngestOutcome {
        /// Its events were stored (at least one of them new, or it carried none).
        #[sea_orm(string_value = "accepted")]
        Accepted,
        /// Every event in it was already stored.
        #[sea_orm(string_value = "duplicate")]
        Duplicate,
        /// It was kept as a dead letter.
        #[sea_orm(string_value = "rejected")]
        Rejected,
    }
}

crate::stored_enum! {
    /// Where a device stands in service: in stock → assigned (to a recipient, after a granted
    /// assessment) → active → faulty / returned / retired.
    #[derive(async_graphql::Enum)]
    #[sea_orm(rs_type = "String", db_type = "String(StringLen::N(20))")]
    pub enum DeviceStatus {
        /// Received by the municipality, not assigned to anyone.
        #[sea_orm(string_value = "in_stock")]
        InStock,
        /// Assigned to a recipient, not yet installed.
        #[sea_orm(string_value = "assigned")]
        Assigned,
        /// Installed and in use by its recipient.
        #[sea_orm(string_value = "active")]
        Active,
        /// Reported faulty.
        #[sea_orm(string_value = "faulty")]
        Faulty,
        /// Returned to the supplier.
        #[sea_orm(string_value = "returned")]
        Returned,
        /// Taken out of service for good.
        #[sea_orm(string_value = "retired")]
        Retired,
    }
}

pub mod signing_key {
    use super::*;

    crate::entity! {
        /// A supplier's Ed25519 public key; uploads must carry a signature by one of its keys.
        #[sea_orm(table_name = "signing_key")]
        pub struct Model {
            #[sea_orm(primary_key)]
            pub id: i64,
            pub supplier_id: i64,
            /// The 32-byte key, standard base64.
            pub public_key: String,
            pub label: Option<String>,
            pub created_at: DateTimeWithTimeZone,
            pub revoked_at: Option<DateTimeWithTimeZone>,
        }
    }
}

pub mod device_product {
    use super::*;

    crate::entity! {
        /// A supplier's device product, named by the slug its messages are posted to
        /// (`POST /ingest/{slug}`).
        #[sea_orm(table_name = "device_product")]
        pub struct Model {
            #[sea_orm(primary_key)]
            pub id: i64,
            pub supplier_id: i64,
            pub slug: String,
            pub created_at: DateTimeWithTimeZone,
            /// Bytes of the product's unresolved dead letters, kept by the transactions that store,
            /// reopen and resolve them: what its dead-letter quota counts.
            pub dead_letter_bytes: i64,
        }
    }
}

/// Writes the adapter's columns once: the entity has them all and the component's bytes last;
/// `Summary` has them without the bytes, and a row converts to its summary.
macro_rules! adapter_columns {
    ($($(#[doc = $doc:tt])* pub $field:ident: $ty:ident $(<$inner:ident>)?,)*) => {
        crate::entity! {
            /// One uploaded version of a product's adapter, with the component's bytes.
            #[sea_orm(table_name = "adapter")]
            pub struct Model {
                #[sea_orm(primary_key)]
                pub id: i64,
                $($(#[doc = $doc])* pub $field: $ty $(<$inner>)?,)*
                pub component: Vec<u8>,
            }
        }

        /// An adapter row without the component's bytes: what listings and GraphQL load.
        #[derive(Clone, Debug, PartialEq, Eq, DerivePartialModel)]
        #[sea_orm(entity = "Entity")]
        pub struct Summary {
            pub id: i64,
            $($(#[doc = $doc])* pub $field: $ty $(<$inner>)?,)*
        }

        impl From<Model> for Summary {
            fn from(m: Model) -> Summary {
                Summary { id: m.id, $($field: m.$field,)* }
            }
        }
    };
}

pub mod adapter {
    use super::*;

    adapter_columns! {
        pub product_id: i64,
        pub status: AdapterStatus,
        /// The version `describe` answered.
        pub adapter_version: String,
        /// The `velferd:device` version the component was built against.
        pub interface_version: String,
        pub sha256: String,
        pub size_bytes: i64,
        /// What `describe` answered, as JSON.
        pub description: String,
        pub signing_key_id: i64,
        pub uploaded_by: String,
        pub uploaded_at: DateTimeWithTimeZone,
        pub activated_at: Option<DateTimeWithTimeZone>,
        pub retired_at: Option<DateTimeWithTimeZone>,
        /// The limits asked for at upload, null where the default applies (see
        /// `crate::devices::limits::AdapterLimits`); `limits_fuel` 0: unmetered.
        pub limits_component_bytes: Option<i64>,
        pub limits_memory_bytes: Option<i64>,
        pub limits_fuel: Option<i64>,
        pub limits_deadline_ms: Option<i64>,
        pub limits_approval: LimitsApproval,
        pub limits_approved_by: Option<String>,
        pub limits_approved_at: Option<DateTimeWithTimeZone>,
    }
}

pub mod device_delivery {
    use super::*;

    crate::entity! {
        /// A device the product's supplier delivered under a municipality's call-off. Only that
        /// municipality may then register (take into service) a device with this serial.
        #[sea_orm(table_name = "device_delivery")]
        pub struct Model {
            #[sea_orm(primary_key)]
            pub id: i64,
            pub product_id: i64,
            pub serial: String,
            pub call_off_id: i64,
            pub municipality_id: i64,
            /// The subject of the supplier's token that recorded it.
            pub delivered_by: String,
            pub delivered_at: DateTimeWithTimeZone,
        }
    }
}

pub mod device {
    use super::*;

    crate::entity! {
        /// A device registered to a municipality.
        #[sea_orm(table_name = "device")]
        pub struct Model {
            #[sea_orm(primary_key)]
            pub id: i64,
            pub product_id: i64,
            pub municipality_id: i64,
            pub serial: String,
            /// The call-off the device was bought or leased under, when known.
            pub call_off_id: Option<i64>,
            pub registered_at: DateTimeWithTimeZone,
            /// Where the device stands in service.
            pub status: DeviceStatus,
            /// The service recipient it is assigned to (`care::model::service_recipient`).
            pub recipient_id: Option<i64>,
            /// When its newest event occurred.
            pub last_seen_at: Option<DateTimeWithTimeZone>,
        }
    }
}

pub mod device_status_change {
    use super::*;

    crate::entity! {
        /// One step of a device's lifecycle: from, to, the recipient it concerned, who and when.
        #[sea_orm(table_name = "device_status_change")]
        pub struct Model {
            #[sea_orm(primary_key)]
            pub id: i64,
            pub device_id: i64,
            /// None for the device's first status, when it was taken into service.
            pub from_status: Option<DeviceStatus>,
            pub to_status: DeviceStatus,
            /// The recipient the device was assigned to, or taken back from.
            pub recipient_id: Option<i64>,
            pub subject: String,
            pub organization_id: i64,
            pub role: String,
            pub at: DateTimeWithTimeZone,
        }
    }
}

pub mod ingest_receipt {
    use super::*;

    crate::entity! {
        /// One acknowledged message. The body is kept for the most recent messages only, for
        /// replay review.
        #[sea_orm(table_name = "ingest_receipt")]
        pub struct Model {
            #[sea_orm(primary_key)]
            pub id: i64,
            pub product_id: i64,
            /// The adapter that decoded it; none when no adapter was active.
            pub adapter_id: Option<i64>,
            pub received_at: DateTimeWithTimeZone,
            pub content_type: String,
            pub body_sha256: String,
            pub body: Option<Vec<u8>>,
            pub outcome: IngestOutcome,
            pub events_stored: i32,
            pub events_duplicate: i32,
            pub dead_letter_id: Option<i64>,
        }
    }
}

pub mod device_event {
    use super::*;

    crate::entity! {
        /// A normalised device event, stored once per device and supplier event id. Serialised as
        /// the live-update payload of its storing (`devices::ingest::LiveDeviceEvent`).
        #[derive(serde::Serialize, serde::Deserialize)]
        #[sea_orm(table_name = "device_event")]
        pub struct Model {
            #[sea_orm(primary_key)]
            pub id: i64,
            pub device_id: i64,
            pub receipt_id: i64,
            pub adapter_id: i64,
            pub supplier_event_id: String,
            /// The kind's name in the WIT, e.g. `dose-missed`.
            pub kind: String,
            pub vkp_code: Option<String>,
            pub severity: String,
            pub occurred_at: DateTimeWithTimeZone,
            pub received_at: DateTimeWithTimeZone,
            pub detail: Option<String>,
            /// The whole normalised event as JSON.
            pub data: String,
        }
    }
}

pub mod dead_letter {
    use super::*;

    crate::entity! {
        /// A message that could not be stored as events, with its original bytes and why.
        #[sea_orm(table_name = "dead_letter")]
        pub struct Model {
            #[sea_orm(primary_key)]
            pub id: i64,
            pub product_id: i64,
            pub content_type: String,
            pub body: Vec<u8>,
            pub body_sha256: String,
            /// The message's identity: product, normalised content type and bytes hashed together
            /// (`velferd_migration::message_key`); unique per product. The same bytes under another
            /// content type are another message.
            pub message_key: String,
            /// A stable code: an adapter error code (`malformed`, `deadline-exceeded` …),
            /// `unknown-device` or `no-active-adapter`.
            pub reason_code: String,
            pub reason: String,
            /// The first unregistered serial, for `unknown-device`.
            pub device_serial: Option<String>,
            /// The adapter whose attempt failed last.
            pub adapter_id: Option<i64>,
            pub attempts: i32,
            pub first_received_at: DateTimeWithTimeZone,
            pub last_received_at: DateTimeWithTimeZone,
            /// When a replay turned it into events.
            pub resolved_at: Option<DateTimeWithTimeZone>,
        }
    }
}
