//! Normalised device events as plain Rust types: what adapters produce, what
//! the server stores (as JSON) and exports. They mirror the `types` interface of
//! every served `velferd:device` version; each kind carries its VKP code where one exists.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// The VKP code system of alert codes (DetectedIssue).
pub const VKP_ALERT_SYSTEM: &str = "http://ehelse.no/fhir/CodeSystem/vkp-alert-code-v090";
/// The VKP code system of medication-dispense events (MedicationDispense).
pub const VKP_DISPENSE_SYSTEM: &str = "http://ehelse.no/fhir/CodeSystem/vkp-medicationdispense-events-v090";
/// The VKP code system of severity levels.
pub const VKP_SEVERITY_SYSTEM: &str = "http://ehelse.no/fhir/CodeSystem/vkp-severity-level-v090";

/// A code in one of VKP's code systems.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
pub struct VkpCode {
    /// The code system's canonical URL.
    pub system: &'static str,
    /// The code, e.g. `1.21`.
    pub code: &'static str,
}

const fn alert(code: &'static str) -> VkpCode {
    VkpCode { system: VKP_ALERT_SYSTEM, code }
}

const fn dispense(code: &'static str) -> VkpCode {
    VkpCode { system: VKP_DISPENSE_SYSTEM, code }
}

/// One normalised device event.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Event {
    /// The supplier's id of the event; with `device_serial` the idempotency key.
    pub supplier_event_id: String,
    /// The serial number of the device that saw the event.
    pub device_serial: String,
    /// The hub, gateway or alarm base station that relayed it, where the
    /// adapter says (interface version 2 and later).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gateway_serial: Option<String>,
    /// When it happened at the device.
    pub occurred_at: DateTime<Utc>,
    /// What happened, with its fields.
    pub kind: EventKind,
    /// The VKP code the kind maps to, where one exists.
    pub vkp: Option<VkpCode>,
    /// How serious it is.
    pub severity: Severity,
    /// Free text without personal data.
    pub detail: Option<String>,
}

impl Event {
    /// An event from an adapter's fields, checked against the contract's size
    /// limits; the VKP code follows from the kind. The error says which field
    /// is out of bounds.
    pub fn new(
        supplier_event_id: String,
        device_serial: String,
        gateway_serial: Option<String>,
        occurred_at: DateTime<Utc>,
        kind: EventKind,
        severity: Severity,
        detail: Option<String>,
    ) -> Result<Event, String> {
        if supplier_event_id.is_empty() || supplier_event_id.len() > 128 {
            return Err("supplier-event-id must be 1 to 128 bytes".into());
        }
        if device_serial.is_empty() || device_serial.len() > 64 {
            return Err("device-serial must be 1 to 64 bytes".into());
        }
        if gateway_serial.as_ref().is_some_and(|g| g.is_empty() || g.len() > 64) {
            return Err("gateway-serial must be 1 to 64 bytes when present".into());
        }
        if detail.as_ref().is_some_and(|d| d.len() > 1024) {
            return Err("detail must be at most 1 024 bytes".into());
        }
        Ok(Event {
            supplier_event_id,
            device_serial,
            gateway_serial,
            occurred_at,
            vkp: kind.vkp_code(),
            kind,
            severity,
            detail,
        })
    }
}

/// Severity on the VKP scale.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[cfg_attr(feature = "graphql", derive(async_graphql::Enum))]
#[serde(rename_all = "kebab-case")]
pub enum Severity {
    /// Not reported by the device (VKP 0).
    NotReported,
    /// VKP 10.
    Normal,
    /// VKP 20.
    Moderate,
    /// VKP 30.
    Serious,
    /// VKP 40.
    Critical,
}

impl Severity {
    /// The code in `vkp-severity-level-v090`.
    pub fn vkp_code(self) -> VkpCode {
        let code = match self {
            Severity::NotReported => "0",
            Severity::Normal => "10",
            Severity::Moderate => "20",
            Severity::Serious => "30",
            Severity::Critical => "40",
        };
        VkpCode { system: VKP_SEVERITY_SYSTEM, code }
    }

    /// The name it is stored and serialised by (`not-reported`, `critical` …).
    pub fn name(self) -> &'static str {
        match self {
            Severity::NotReported => "not-reported",
            Severity::Normal => "normal",
            Severity::Moderate => "moderate",
            Severity::Serious => "serious",
            Severity::Critical => "critical",
        }
    }

    /// Every severity, for exhaustive checks.
    pub const ALL: [Severity; 5] =
        [Severity::NotReported, Severity::Normal, Severity::Moderate, Severity::Serious, Severity::Critical];
}

/// Device classes an adapter handles.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum DeviceClass {
    MedicationDispenser,
    SafetyAlarm,
    HomeSensor,
}

/// Who took a dose.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Assistance {
    #[default]
    Unknown,
    Unassisted,
    Assisted,
}

/// One scheduled dose.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct Dose {
    pub dose_id: Option<String>,
    pub scheduled_for: Option<DateTime<Utc>>,
    pub assistance: Assistance,
}

/// Medication stock.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct Supply {
    pub doses_remaining: Option<u32>,
}

/// A supplier's fault code.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct Fault {
    pub code: String,
}

/// Battery state.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct Battery {
    pub level_percent: Option<u8>,
}

/// A coarse zone or location code in the home.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct Place {
    pub location: Option<String>,
}

/// What happened. Serialised with a `type` tag in kebab case, the same name
/// as the WIT case; fields in snake case (e.g. `{"type": "dose-missed", "dose_id": …}`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "kebab-case")]
pub enum EventKind {
    DoseAvailable(Dose),
    DoseDispensed(Dose),
    AsNeededDoseDispensed(Dose),
    TravelDosesDispensed(Dose),
    MessageAcknowledged,
    DoseMissed(Dose),
    DispensingBlockedEmpty(Dose),
    DoseNotConfirmed(Dose),
    MessageNotRead,
    TechnicalFault(Fault),
    PouchNotRead,
    RollError,
    RollJammed,
    RejectDrawerFull,
    MedicationWaiting(Dose),
    SupplyInsufficientForTrip(Supply),
    SupplyLow(Supply),
    SupplyEmpty,
    NoSchedule,
    Refilled(Supply),
    LidOpened,
    LidClosed,
    BreakInAttempt,
    TrayMisplaced,
    AlarmButton(Place),
    PullCord(Place),
    Fall(Place),
    Fire(Place),
    WaterLeak(Place),
    DoorOpened(Place),
    DoorClosed(Place),
    LeftHome(Place),
    LeftBed(Place),
    Inactivity(Place),
    NoMovement(Place),
    LongBathroomStay(Place),
    SafetyAlarm(Place),
    AlarmCancelled(Place),
    TestTransmission,
    Heartbeat,
    Offline,
    Online,
    BatteryLow(Battery),
    BatteryEmpty(Battery),
    MainsPowerLost,
    MainsPowerRestored,
}

/// One row of the vocabulary: a kind's name (as in the WIT) and every VKP
/// code it can map to.
#[derive(Debug, Clone, Copy)]
pub struct KindInfo {
    pub name: &'static str,
    pub vkp_codes: &'static [VkpCode],
}

/// The whole event vocabulary of every served `velferd:device` version, with VKP codes. Tests
/// check it against the WIT and against VKP's published code systems.
pub const VOCABULARY: &[KindInfo] = &[
    KindInfo { name: "dose-available", vkp_codes: &[] },
    KindInfo { name: "dose-dispensed", vkp_codes: &[dispense("1"), dispense("1.1"), dispense("1.2")] },
    KindInfo { name: "as-needed-dose-dispensed", vkp_codes: &[dispense("1.3")] },
    KindInfo { name: "travel-doses-dispensed", vkp_codes: &[dispense("2"), dispense("2.1"), dispense("2.2")] },
    KindInfo { name: "message-acknowledged", vkp_codes: &[dispense("3")] },
    KindInfo { name: "dose-missed", vkp_codes: &[alert("1.1")] },
    KindInfo { name: "dispensing-blocked-empty", vkp_codes: &[alert("1.2")] },
    KindInfo { name: "dose-not-confirmed", vkp_codes: &[alert("1.3")] },
    KindInfo { name: "message-not-read", vkp_codes: &[alert("1.4")] },
    KindInfo { name: "technical-fault", vkp_codes: &[alert("1.5")] },
    KindInfo { name: "pouch-not-read", vkp_codes: &[alert("1.6")] },
    KindInfo { name: "roll-error", vkp_codes: &[alert("1.7")] },
    KindInfo { name: "roll-jammed", vkp_codes: &[alert("1.8")] },
    KindInfo { name: "reject-drawer-full", vkp_codes: &[alert("1.9")] },
    KindInfo { name: "medication-waiting", vkp_codes: &[alert("1.10")] },
    KindInfo { name: "supply-insufficient-for-trip", vkp_codes: &[alert("1.11")] },
    KindInfo { name: "supply-low", vkp_codes: &[alert("1.12")] },
    KindInfo { name: "supply-empty", vkp_codes: &[alert("1.13")] },
    KindInfo { name: "no-schedule", vkp_codes: &[alert("1.14")] },
    KindInfo { name: "refilled", vkp_codes: &[alert("1.16")] },
    KindInfo { name: "lid-opened", vkp_codes: &[alert("1.21")] },
    KindInfo { name: "lid-closed", vkp_codes: &[] },
    KindInfo { name: "break-in-attempt", vkp_codes: &[alert("1.22")] },
    KindInfo { name: "tray-misplaced", vkp_codes: &[alert("1.23")] },
    KindInfo { name: "alarm-button", vkp_codes: &[alert("4.13")] },
    KindInfo { name: "pull-cord", vkp_codes: &[alert("4.14")] },
    KindInfo { name: "fall", vkp_codes: &[alert("4.1")] },
    KindInfo { name: "fire", vkp_codes: &[alert("4.11")] },
    KindInfo { name: "water-leak", vkp_codes: &[alert("4.17")] },
    KindInfo { name: "door-opened", vkp_codes: &[alert("4.15")] },
    KindInfo { name: "door-closed", vkp_codes: &[alert("4.16")] },
    KindInfo { name: "left-home", vkp_codes: &[alert("4.21")] },
    KindInfo { name: "left-bed", vkp_codes: &[alert("4.2")] },
    KindInfo { name: "inactivity", vkp_codes: &[alert("4.9")] },
    KindInfo { name: "no-movement", vkp_codes: &[alert("4.19")] },
    KindInfo { name: "long-bathroom-stay", vkp_codes: &[alert("4.23")] },
    KindInfo { name: "safety-alarm", vkp_codes: &[alert("3")] },
    KindInfo { name: "alarm-cancelled", vkp_codes: &[] },
    KindInfo { name: "test-transmission", vkp_codes: &[] },
    KindInfo { name: "heartbeat", vkp_codes: &[] },
    KindInfo { name: "offline", vkp_codes: &[alert("1.20")] },
    KindInfo { name: "online", vkp_codes: &[alert("1.20")] },
    KindInfo { name: "battery-low", vkp_codes: &[alert("1.17")] },
    KindInfo { name: "battery-empty", vkp_codes: &[alert("1.18")] },
    KindInfo { name: "mains-power-lost", vkp_codes: &[alert("1.19")] },
    KindInfo { name: "mains-power-restored", vkp_codes: &[alert("1.19")] },
];

impl EventKind {
    /// The kind's name, as in the WIT and in the JSON `type` tag.
    pub fn name(&self) -> &'static str {
        use EventKind::*;
        match self {
            DoseAvailable(_) => "dose-available",
            DoseDispensed(_) => "dose-dispensed",
            AsNeededDoseDispensed(_) => "as-needed-dose-dispensed",
            TravelDosesDispensed(_) => "travel-doses-dispensed",
            MessageAcknowledged => "message-acknowledged",
            DoseMissed(_) => "dose-missed",
            DispensingBlockedEmpty(_) => "dispensing-blocked-empty",
            DoseNotConfirmed(_) => "dose-not-confirmed",
            MessageNotRead => "message-not-read",
            TechnicalFault(_) => "technical-fault",
            PouchNotRead => "pouch-not-read",
            RollError => "roll-error",
            RollJammed => "roll-jammed",
            RejectDrawerFull => "reject-drawer-full",
            MedicationWaiting(_) => "medication-waiting",
            SupplyInsufficientForTrip(_) => "supply-insufficient-for-trip",
            SupplyLow(_) => "supply-low",
            SupplyEmpty => "supply-empty",
            NoSchedule => "no-schedule",
            Refilled(_) => "refilled",
            LidOpened => "lid-opened",
            LidClosed => "lid-closed",
            BreakInAttempt => "break-in-attempt",
            TrayMisplaced => "tray-misplaced",
            AlarmButton(_) => "alarm-button",
            PullCord(_) => "pull-cord",
            Fall(_) => "fall",
            Fire(_) => "fire",
            WaterLeak(_) => "water-leak",
            DoorOpened(_) => "door-opened",
            DoorClosed(_) => "door-closed",
            LeftHome(_) => "left-home",
            LeftBed(_) => "left-bed",
            Inactivity(_) => "inactivity",
            NoMovement(_) => "no-movement",
            LongBathroomStay(_) => "long-bathroom-stay",
            SafetyAlarm(_) => "safety-alarm",
            AlarmCancelled(_) => "alarm-cancelled",
            TestTransmission => "test-transmission",
            Heartbeat => "heartbeat",
            Offline => "offline",
            Online => "online",
            BatteryLow(_) => "battery-low",
            BatteryEmpty(_) => "battery-empty",
            MainsPowerLost => "mains-power-lost",
            MainsPowerRestored => "mains-power-restored",
        }
    }

    /// The VKP code this event is exported as, if VKP has one.
    pub fn vkp_code(&self) -> Option<VkpCode> {
        let by_assistance = |dose: &Dose, unknown, unassisted, assisted| match dose.assistance {
            Assistance::Unknown => unknown,
            Assistance::Unassisted => unassisted,
            Assistance::Assisted => assisted,
        };
        match self {
            EventKind::DoseDispensed(d) => Some(dispense(by_assistance(d, "1", "1.1", "1.2"))),
            EventKind::TravelDosesDispensed(d) => Some(dispense(by_assistance(d, "2", "2.1", "2.2"))),
            other => {
                let info = VOCABULARY.iter().find(|k| k.name == other.name())?;
                info.vkp_codes.first().copied()
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(id: &str, serial: &str, gateway: Option<&str>, detail: Option<String>) -> Result<Event, String> {
        let at = DateTime::from_timestamp(1_795_331_052, 0).unwrap();
        Event::new(
            id.into(),
            serial.into(),
            gateway.map(Into::into),
            at,
            EventKind::Heartbeat,
            Severity::Normal,
            detail,
        )
    }

    #[test]
    fn an_event_within_the_contracts_limits_gets_its_vkp_code() {
        let e = Event::new(
            "e-1".into(),
            "DS-0042".into(),
            Some("HUB-1".into()),
            DateTime::from_timestamp(0, 0).unwrap(),
            EventKind::DoorOpened(Place { location: None }),
            Severity::Normal,
            None,
        )
        .unwrap();
        assert_eq!(e.vkp, Some(alert("4.15")));
        assert_eq!(e.gateway_serial.as_deref(), Some("HUB-1"));
    }

    #[test]
    fn an_event_out_of_the_contracts_limits_names_the_field() {
        let long = "x".repeat(65);
        for (result, field) in [
            (event("", "S", None, None), "supplier-event-id"),
            (event(&"i".repeat(129), "S", None, None), "supplier-event-id"),
            (event("e", "", None, None), "device-serial"),
            (event("e", &long, None, None), "device-serial"),
            (event("e", "S", Some(""), None), "gateway-serial"),
            (event("e", "S", Some(&long), None), "gateway-serial"),
            (event("e", "S", None, Some("d".repeat(1025))), "detail"),
        ] {
            let error = result.unwrap_err();
            assert!(error.starts_with(field), "{error}");
        }
        assert!(event(&"i".repeat(128), &"s".repeat(64), Some(&"g".repeat(64)), Some("d".repeat(1024))).is_ok());
    }
}
