//! Devices in service: suppliers upload signed adapter versions per device product, admins
//! review them by replay and activate them, municipalities register their devices, and device
//! messages are ingested over HTTP into normalised events — with receipts, idempotency and dead
//! letters, so that nothing acknowledged is lost.

pub mod adapter_limits;
pub mod content_type;
pub mod graphql;
pub mod identifiers;
pub mod ingest;
pub mod limits;
pub mod live;
pub mod loaders;
pub mod model;
pub mod review;
pub mod rules;
pub mod runtime;
