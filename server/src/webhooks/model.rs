//! The webhook tables (migration `m20261208_000015_webhooks`).

use sea_orm::entity::prelude::*;

pub mod webhook_endpoint {
    use super::*;

    crate::entity! {
        /// An organisation's HTTPS endpoint and the keys that sign what it is sent. The secrets
        /// never leave through the API after the answer that made them.
        #[sea_orm(table_name = "webhook_endpoint")]
        pub struct Model {
            #[sea_orm(primary_key)]
            pub id: i64,
            pub organization_id: i64,
            /// As `crate::outbound::Outbound::check_url` accepted it; checked again before each
            /// attempt.
            pub url: String,
            pub description: Option<String>,
            /// Space-separated event types.
            pub event_types: String,
            pub enabled: bool,
            pub disabled_reason: Option<String>,
            pub disabled_by: Option<String>,
            pub disabled_at: Option<DateTimeWithTimeZone>,
            pub next_sequence: i64,
            pub secret: String,
            pub previous_secret: Option<String>,
            pub previous_secret_expires_at: Option<DateTimeWithTimeZone>,
            pub signing_key: String,
            pub created_by: String,
            pub created_at: DateTimeWithTimeZone,
            pub updated_at: DateTimeWithTimeZone,
        }
    }

    impl Model {
        /// Whether it asked for events of `event_type`.
        pub fn wants(&self, event_type: &str) -> bool {
            self.event_types.split(' ').any(|t| t == event_type)
        }
    }
}

pub mod webhook_delivery {
    use super::*;

    crate::entity! {
        /// One event for one endpoint, retried until it succeeds or the schedule runs out.
        #[sea_orm(table_name = "webhook_delivery")]
        pub struct Model {
            #[sea_orm(primary_key)]
            pub id: i64,
            pub endpoint_id: i64,
            /// The `webhook-id`: one per event, the same on every retry and for every endpoint.
            pub message_id: String,
            /// The endpoint's sequence number (`webhook-sequence`).
            pub sequence: i64,
            pub event_type: String,
            /// The body, byte for byte as sent and signed.
            pub payload: String,
            pub status: DeliveryStatus,
            pub attempts: i32,
            pub queued_after_attempts: i32,
            pub next_attempt_at_ms: Option<i64>,
            pub lease_until_ms: Option<i64>,
            pub lease_owner: Option<String>,
            pub created_at: DateTimeWithTimeZone,
            pub finished_at: Option<DateTimeWithTimeZone>,
        }
    }
}

pub mod webhook_attempt {
    use super::*;

    crate::entity! {
        /// One attempt to deliver: the answer's status, or the failure's code.
        #[sea_orm(table_name = "webhook_attempt")]
        pub struct Model {
            #[sea_orm(primary_key)]
            pub id: i64,
            pub delivery_id: i64,
            pub n: i32,
            pub at: DateTimeWithTimeZone,
            pub status_code: Option<i32>,
            pub failure: Option<String>,
            pub latency_ms: i64,
            pub excerpt: Option<String>,
            pub remote: Option<String>,
        }
    }
}

crate::stored_enum! {
    /// Where a delivery stands.
    #[derive(async_graphql::Enum, serde::Serialize)]
    #[sea_orm(rs_type = "String", db_type = "String(StringLen::N(20))")]
    #[graphql(name = "WebhookDeliveryStatus")]
    pub enum DeliveryStatus {
        /// Waiting for its next attempt (or for its endpoint to be enabled again).
        #[sea_orm(string_value = "pending")]
        Pending,
        /// An attempt got a 2xx answer.
        #[sea_orm(string_value = "succeeded")]
        Succeeded,
        /// The retry schedule ran out, or the endpoint answered 410 Gone.
        #[sea_orm(string_value = "failed")]
        Failed,
    }
}
