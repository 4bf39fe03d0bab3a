//! The event types an endpoint can ask for, and the thin payload each outbox row becomes:
//! ids (global ids, as the GraphQL API spells them), the kind, the time and a link — never a
//! recipient's reference or anything else about the person (Standard Webhooks, "Thin vs full
//! payloads": what leaves stays auditable, and the receiver asks the API for more, which is
//! authorised and audited like any other read).

use chrono::{DateTime, SecondsFormat, Utc};
use sea_orm::ActiveEnum;
use serde_json::{Value, json};

use crate::ids::{NodeType, global_id};
use crate::live::{Item, Topic};

/// What an endpoint can subscribe to. Named `area.change`, as the spec recommends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, async_graphql::Enum)]
#[graphql(name = "WebhookEventType")]
pub enum EventType {
    /// `alert.raised`: an alert was raised.
    AlertRaised,
    /// `alert.changed`: an alert was joined, moved along, escalated or closed.
    AlertChanged,
    /// `device.event`: a device event was stored.
    DeviceEvent,
    /// `device.status`: a device was registered or its lifecycle status changed.
    DeviceStatus,
    /// `call_off.changed`: a call-off was placed or changed status.
    CallOffChanged,
    /// `webhook.test`: sent by `webhookEndpointTest` only.
    WebhookTest,
}

impl EventType {
    pub const ALL: [EventType; 6] = [
        EventType::AlertRaised,
        EventType::AlertChanged,
        EventType::DeviceEvent,
        EventType::DeviceStatus,
        EventType::CallOffChanged,
        EventType::WebhookTest,
    ];

    pub fn name(self) -> &'static str {
        match self {
            EventType::AlertRaised => "alert.raised",
            EventType::AlertChanged => "alert.changed",
            EventType::DeviceEvent => "device.event",
            EventType::DeviceStatus => "device.status",
            EventType::CallOffChanged => "call_off.changed",
            EventType::WebhookTest => "webhook.test",
        }
    }

    pub fn of_name(name: &str) -> Option<EventType> {
        EventType::ALL.into_iter().find(|t| t.name() == name)
    }
}

/// One event to fan out: its type, its owners (the organisations whose endpoints may get it)
/// and its body.
#[derive(Debug, Clone)]
pub struct Event {
    pub event_type: EventType,
    /// The row's scope: its municipality and the other organisation it concerns.
    pub owners: [Option<i64>; 2],
    /// When the change was announced: endpoints registered later do not get it.
    pub at: DateTime<Utc>,
    /// The JSON body, byte for byte what is signed and sent to every endpoint.
    pub body: String,
}

fn time(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// The body of an event: `{"type", "timestamp", "data"}` (the spec's payload structure), with
/// a link to the API that answers for the object.
pub fn body(event_type: EventType, at: DateTime<Utc>, mut data: Value, base_url: &str) -> String {
    data["link"] = json!(format!("{}/graphql", base_url.trim_end_matches('/')));
    json!({ "type": event_type.name(), "timestamp": time(at), "data": data }).to_string()
}

/// What an outbox row announces to webhooks, if anything; `at` is when it was written.
pub fn of_item(item: &Item, at: DateTime<Utc>, base_url: &str) -> Option<Event> {
    let (event_type, data) = match item.topic {
        Topic::Alert => {
            let notice: crate::alerts::live::AlertNotice = item.payload().ok()?;
            let a = &notice.alert;
            let event_type = match notice.kind {
                crate::alerts::live::NoticeKind::Raised => EventType::AlertRaised,
                crate::alerts::live::NoticeKind::Changed => EventType::AlertChanged,
            };
            let data = json!({
                "alertId": global_id(NodeType::Alert, a.id),
                "kind": a.kind,
                "severity": a.severity.to_ascii_uppercase(),
                "status": a.status.to_value().to_ascii_uppercase(),
                "municipalityId": global_id(NodeType::Organization, a.municipality_id),
                "deviceId": global_id(NodeType::Device, a.device_id),
                "raisedAt": time(a.raised_at.to_utc()),
            });
            (event_type, data)
        }
        Topic::DeviceEvent => {
            let stored: crate::devices::ingest::LiveDeviceEvent = item.payload().ok()?;
            let e = &stored.event;
            let data = json!({
                "eventId": global_id(NodeType::DeviceEvent, e.id),
                "deviceId": global_id(NodeType::Device, e.device_id),
                "kind": e.kind,
                "severity": e.severity.to_ascii_uppercase(),
                "vkpCode": e.vkp_code,
                "occurredAt": time(e.occurred_at.to_utc()),
            });
            (EventType::DeviceEvent, data)
        }
        Topic::DeviceStatus => {
            let notice: crate::devices::live::StatusNotice = item.payload().ok()?;
            let data = json!({
                "deviceId": global_id(NodeType::Device, notice.device_id),
                "municipalityId": global_id(NodeType::Organization, notice.municipality_id),
                "status": notice.status.to_ascii_uppercase(),
                "changedAt": time(notice.at),
            });
            (EventType::DeviceStatus, data)
        }
        Topic::CallOff => {
            let notice: crate::agreements::live::CallOffNotice = item.payload().ok()?;
            let data = json!({
                "callOffId": global_id(NodeType::CallOff, notice.call_off_id),
                "agreementId": global_id(NodeType::FrameworkAgreement, notice.agreement_id),
                "municipalityId": global_id(NodeType::Organization, notice.municipality_id),
                "status": notice.status.to_ascii_uppercase(),
                "changedAt": time(notice.at),
            });
            (EventType::CallOffChanged, data)
        }
    };
    Some(Event {
        event_type,
        owners: [item.scope.municipality_id, item.scope.organization_id],
        at,
        body: body(event_type, at, data, base_url),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_types_round_trip_by_name() {
        for t in EventType::ALL {
            assert_eq!(EventType::of_name(t.name()), Some(t));
        }
        assert_eq!(EventType::of_name("alert"), None);
    }

    #[test]
    fn a_body_is_the_specs_shape_with_a_link() {
        let at = DateTime::parse_from_rfc3339("2026-12-08T10:00:00Z").unwrap().to_utc();
        let body = body(EventType::WebhookTest, at, json!({ "endpointId": "x" }), "https://velferd.example.no/");
        let parsed: Value = serde_json::from_str(&body).unwrap();
        assert_eq!(parsed["type"], "webhook.test");
        assert_eq!(parsed["timestamp"], "2026-12-08T10:00:00.000Z");
        assert_eq!(parsed["data"]["link"], "https://velferd.example.no/graphql");
        assert!(!body.contains(' '), "minified: {body}");
    }
}
