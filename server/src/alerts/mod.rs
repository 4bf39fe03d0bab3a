//! Alerts and the response centre's workflow: alerts raised from device events by a rule table
//! (`rules`), handled step by step (raised → acknowledged → handed to a responder → accepted →
//! resolved, with notes, on the VKP follow-up event codes), escalated when a step is late and
//! derived when a device falls silent (`sweep`), seen by the response centres that serve the
//! municipality under a service agreement and by the municipality's own staff, live
//! (`live`). See `docs/alerts.md`.

pub mod graphql;
pub mod live;
pub mod loaders;
pub mod model;
pub mod rules;
pub mod sweep;
pub mod workflow;

/// Milliseconds since the Unix epoch: how deadlines are stored and compared.
pub(crate) fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}
