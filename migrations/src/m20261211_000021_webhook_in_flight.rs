//! An index for the webhook worker's question "which of these endpoints has a delivery in
//! flight?" (`webhooks::worker::in_flight`: pending, leased past now). Without it both back
//! ends answered through `idx_webhook_delivery_endpoint (endpoint_id, sequence)`, reading
//! every delivery the endpoint was ever given, sent or not, and the worker asks it at every
//! claim, inside the write transaction that holds SQLite's one writer: after a million events
//! (11,000 deliveries to the bench's endpoint) each claim took 3–3.5 ms and ingest lost a third
//! of its rate (docs/performance.md, "Eleventh round"). With the status first, the read touches
//! only the endpoints' pending deliveries.

use sea_orm_migration::prelude::*;

use crate::ddl;
use crate::m20261208_000015_webhooks::WebhookDelivery;

const IN_FLIGHT_INDEX: &str = "idx_webhook_delivery_in_flight";

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_index(ddl::index(
                IN_FLIGHT_INDEX,
                WebhookDelivery::Table,
                [WebhookDelivery::Status, WebhookDelivery::EndpointId, WebhookDelivery::LeaseUntilMs],
            ))
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager.drop_index(Index::drop().name(IN_FLIGHT_INDEX).table(WebhookDelivery::Table).to_owned()).await
    }
}
