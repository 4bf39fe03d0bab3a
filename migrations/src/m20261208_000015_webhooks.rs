//! Webhooks (Standard Webhooks, docs/webhooks.md) and the outbox's durable consumers.
//!
//! * `outbox_consumer`: one row per consumer of the outbox that must not miss a row (the
//!   webhook fan-out), with the last sequence it handled. Pruning never deletes past the
//!   slowest consumer, so a crash or a long outage loses nothing. A consumer's row is made by
//!   the server when it first starts it, at the outbox's sequence then: changes announced
//!   before are not its business.
//! * `webhook_endpoint`: an organisation's HTTPS endpoint, the event types it wants, its
//!   signing secrets (the HMAC secret, the previous one during a rotation's grace, and the
//!   Ed25519 signing key) and the next sequence number it will be given.
//! * `webhook_delivery`: one event for one endpoint, with its `webhook-id` (the same on every
//!   retry and for every endpoint), its endpoint sequence, the body fixed at fan-out, and the
//!   worker's lease. Times the worker compares are milliseconds since the Unix epoch.
//! * `webhook_attempt`: every attempt, with its answer or failure.

use sea_orm_migration::{prelude::*, schema::*};

use crate::ddl::{self, references};
use crate::m20261122_000001_organizations::Organization;

ddl::migration! {
    #[unique(uq_outbox_consumer_name: Name)]
    OutboxConsumer {
        Name: string_len(40),
        // The last outbox sequence this consumer handled.
        Position: big_integer,
        UpdatedAt: timestamp_with_time_zone,
    }
    #[index(idx_webhook_endpoint_organization: OrganizationId)]
    WebhookEndpoint {
        OrganizationId: references(Organization::Table),
        Url: string_len(2048),
        Description: string_len_null(500),
        // Space-separated event types, e.g. `alert.raised device.status`.
        EventTypes: string_len(400),
        Enabled: boolean,
        // Why it is disabled (`MANUAL`, `GONE`), by whom and when.
        DisabledReason: string_len_null(40),
        DisabledBy: string_len_null(200),
        DisabledAt: timestamp_with_time_zone_null,
        // The sequence the next delivery to this endpoint gets.
        NextSequence: big_integer,
        // `whsec_…`: signs `v1`.
        Secret: string_len(100),
        // The secret before the last rotation, still signing until it expires.
        PreviousSecret: string_len_null(100),
        PreviousSecretExpiresAt: timestamp_with_time_zone_null,
        // `whsk_…`: the Ed25519 key that signs `v1a`.
        SigningKey: string_len(100),
        CreatedBy: string_len(200),
        CreatedAt: timestamp_with_time_zone,
        UpdatedAt: timestamp_with_time_zone,
    }
    // One delivery per event and endpoint: a fan-out that ran twice cannot send an event twice.
    #[unique(uq_webhook_delivery_message: EndpointId, MessageId)]
    #[index(idx_webhook_delivery_due: Status, NextAttemptAtMs)]
    #[index(idx_webhook_delivery_endpoint: EndpointId, Sequence)]
    WebhookDelivery {
        EndpointId: references(WebhookEndpoint::Table),
        // The `webhook-id`.
        MessageId: string_len(64),
        Sequence: big_integer,
        EventType: string_len(40),
        // The body, byte for byte as sent.
        Payload: text,
        // `pending`, `succeeded`, `failed`.
        Status: string_len(20),
        Attempts: integer,
        // Attempts made before the last (re)queue: the retry schedule starts again after a replay.
        QueuedAfterAttempts: integer,
        NextAttemptAtMs: big_integer_null,
        LeaseUntilMs: big_integer_null,
        LeaseOwner: string_len_null(64),
        CreatedAt: timestamp_with_time_zone,
        FinishedAt: timestamp_with_time_zone_null,
    }
    #[index(idx_webhook_attempt_delivery: DeliveryId)]
    WebhookAttempt {
        DeliveryId: references(WebhookDelivery::Table),
        N: integer,
        At: timestamp_with_time_zone,
        StatusCode: integer_null,
        // The failure's code when no answer came (`TIMEOUT`, `CONNECT`, …).
        Failure: string_len_null(40),
        LatencyMs: big_integer,
        // At most 1 KiB of the answer or the failure.
        Excerpt: text_null,
        // The address actually connected to.
        Remote: string_len_null(64),
    }
}
