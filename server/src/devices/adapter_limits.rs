//! Limits per adapter version. Every version runs under the server's strict defaults
//! (`VELFERD_ADAPTER_*`) unless its supplier asked, at upload, for more — a larger component,
//! more memory, more instructions or a longer deadline per call — within the platform's
//! ceilings (`VELFERD_ADAPTER_MAX_*`). A request above the defaults waits for an admin: the
//! replay review runs the version under what it asked for, so the admin sees what it costs, and
//! `adapterActivate` with `approveLimits` approves it.

use std::time::Duration;

use async_graphql::{MaybeUndefined, SimpleObject};
use serde::Serialize;
use velferd_plugins::{CallLimits, Limits};

use super::model::{LimitsApproval, adapter};
use crate::config::AdapterCeilings;
use crate::errors::Invalid;

/// What a version asked for; `None` takes the default.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RequestedLimits {
    pub component_bytes: Option<u64>,
    pub memory_bytes: Option<u64>,
    /// `Some(None)`: no fuel metering at all.
    pub fuel: Option<Option<u64>>,
    pub deadline_ms: Option<u64>,
}

/// The limits one version runs under, as `Adapter.limits` shows them and as the file
/// `velferd adapter check --limits` reads (`Adapter.limitsFile`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, SimpleObject)]
#[serde(rename_all = "camelCase")]
#[graphql(name = "AdapterLimits")]
pub struct EffectiveLimits {
    /// Largest component, in bytes.
    pub component_bytes: u64,
    /// Linear memory of one instance, in bytes.
    pub memory_bytes: u64,
    /// Instruction budget of one call; null: not metered (the deadline alone stops it).
    pub fuel: Option<u64>,
    /// Wall-clock deadline of one call, in milliseconds.
    pub deadline_ms: u64,
}

fn positive(field: &'static str, value: i64) -> Result<u64, Invalid> {
    u64::try_from(value)
        .ok()
        .filter(|v| *v > 0)
        .ok_or_else(|| Invalid::new(field, "INVALID_LIMIT", format!("{field} must be a positive number; got {value}")))
}

fn over(field: &'static str, value: u64, setting: &str, ceiling: u64) -> Invalid {
    Invalid::new(
        field,
        "LIMIT_OVER_CEILING",
        format!("{field} {value} is over the platform's ceiling of {ceiling} ({setting})"),
    )
}

impl RequestedLimits {
    /// The request from `adapterUpload`'s input, checked against the ceilings.
    pub fn parse(
        component_bytes: Option<i64>,
        memory_bytes: Option<i64>,
        fuel: &MaybeUndefined<i64>,
        deadline_ms: Option<i64>,
        ceilings: &AdapterCeilings,
    ) -> Result<RequestedLimits, Invalid> {
        let component_bytes = component_bytes.map(|v| positive("requestedLimits.componentBytes", v)).transpose()?;
        let memory_bytes = memory_bytes.map(|v| positive("requestedLimits.memoryBytes", v)).transpose()?;
        let deadline_ms = deadline_ms.map(|v| positive("requestedLimits.deadlineMs", v)).transpose()?;
        let fuel = match fuel {
            MaybeUndefined::Undefined => None,
            MaybeUndefined::Null => Some(None),
            MaybeUndefined::Value(v) => Some(Some(positive("requestedLimits.fuel", *v)?)),
        };
        if let Some(v) = component_bytes.filter(|v| *v > ceilings.component_bytes as u64) {
            let ceiling = ceilings.component_bytes as u64;
            return Err(over("requestedLimits.componentBytes", v, "VELFERD_ADAPTER_MAX_COMPONENT_BYTES", ceiling));
        }
        if let Some(v) = memory_bytes.filter(|v| *v > ceilings.memory_bytes as u64) {
            let ceiling = ceilings.memory_bytes as u64;
            return Err(over("requestedLimits.memoryBytes", v, "VELFERD_ADAPTER_MAX_MEMORY_BYTES", ceiling));
        }
        if let Some(v) = deadline_ms.filter(|v| *v > ceilings.deadline.as_millis() as u64) {
            let ceiling = ceilings.deadline.as_millis() as u64;
            return Err(over("requestedLimits.deadlineMs", v, "VELFERD_ADAPTER_MAX_DEADLINE_MS", ceiling));
        }
        match (fuel, ceilings.fuel) {
            (Some(Some(v)), Some(ceiling)) if v > ceiling => {
                return Err(over("requestedLimits.fuel", v, "VELFERD_ADAPTER_MAX_FUEL", ceiling));
            }
            (Some(None), Some(ceiling)) => {
                return Err(Invalid::new(
                    "requestedLimits.fuel",
                    "LIMIT_OVER_CEILING",
                    format!(
                        "requestedLimits.fuel null (no metering) is over the platform's ceiling of {ceiling} \
                         instructions (VELFERD_ADAPTER_MAX_FUEL)"
                    ),
                ));
            }
            _ => {}
        }
        Ok(RequestedLimits { component_bytes, memory_bytes, fuel, deadline_ms })
    }

    /// What the stored version asked for.
    pub fn of(row: &adapter::Summary) -> RequestedLimits {
        let size = |v: Option<i64>| v.and_then(|v| u64::try_from(v).ok());
        RequestedLimits {
            component_bytes: size(row.limits_component_bytes),
            memory_bytes: size(row.limits_memory_bytes),
            fuel: row.limits_fuel.map(|f| u64::try_from(f).ok().filter(|f| *f > 0)),
            deadline_ms: size(row.limits_deadline_ms),
        }
    }

    /// The columns that store it (`limits_fuel` 0: unmetered).
    pub fn columns(&self) -> [Option<i64>; 4] {
        let i = |v: Option<u64>| v.map(|v| i64::try_from(v).unwrap_or(i64::MAX));
        [i(self.component_bytes), i(self.memory_bytes), i(self.fuel.map(|f| f.unwrap_or(0))), i(self.deadline_ms)]
    }

    /// What it asks for, in words: `memoryBytes 16777216, fuel unmetered`.
    pub fn describe(&self) -> String {
        let mut parts = Vec::new();
        if let Some(v) = self.component_bytes {
            parts.push(format!("componentBytes {v}"));
        }
        if let Some(v) = self.memory_bytes {
            parts.push(format!("memoryBytes {v}"));
        }
        match self.fuel {
            Some(Some(v)) => parts.push(format!("fuel {v}")),
            Some(None) => parts.push("fuel unmetered".to_string()),
            None => {}
        }
        if let Some(v) = self.deadline_ms {
            parts.push(format!("deadlineMs {v}"));
        }
        if parts.is_empty() { "nothing".to_string() } else { parts.join(", ") }
    }

    /// The limits the version runs under: the request where given, else the defaults.
    pub fn effective(&self, defaults: &Limits) -> EffectiveLimits {
        let fuel = match self.fuel {
            None => defaults.fuel,
            // A server that meters nobody meters no version either.
            Some(request) => defaults.fuel.and(request),
        };
        EffectiveLimits {
            component_bytes: self.component_bytes.unwrap_or(defaults.component_bytes as u64),
            memory_bytes: self.memory_bytes.unwrap_or(defaults.memory_bytes as u64),
            fuel,
            deadline_ms: self.deadline_ms.unwrap_or(defaults.deadline.as_millis() as u64),
        }
    }

    /// Whether it asks for more than the defaults in anything, so an admin must approve it.
    pub fn exceeds(&self, defaults: &Limits) -> bool {
        let effective = self.effective(defaults);
        let base = RequestedLimits::default().effective(defaults);
        effective.component_bytes > base.component_bytes
            || effective.memory_bytes > base.memory_bytes
            || effective.deadline_ms > base.deadline_ms
            || match (effective.fuel, base.fuel) {
                (None, Some(_)) => true,
                (Some(f), Some(b)) => f > b,
                _ => false,
            }
    }

    /// The approval status a version with this request starts with.
    pub fn initial_approval(&self, defaults: &Limits) -> LimitsApproval {
        if self.exceeds(defaults) { LimitsApproval::Pending } else { LimitsApproval::NotNeeded }
    }
}

impl EffectiveLimits {
    /// Per-call limits for the adapter host.
    pub fn call_limits(&self) -> CallLimits {
        CallLimits {
            deadline: Duration::from_millis(self.deadline_ms),
            fuel: self.fuel,
            memory_bytes: usize::try_from(self.memory_bytes).unwrap_or(usize::MAX),
        }
    }

    /// Whether the version needs the large pool: more memory or a larger component than the
    /// defaults (the small pool's slots are sized to the defaults, and its validation refuses
    /// larger components).
    pub fn is_large(&self, defaults: &Limits) -> bool {
        self.memory_bytes > defaults.memory_bytes as u64 || self.component_bytes > defaults.component_bytes as u64
    }

    /// The JSON `velferd adapter check --limits FILE` reads.
    pub fn file(&self) -> String {
        serde_json::to_string(self).expect("limits serialise")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ceilings() -> AdapterCeilings {
        AdapterCeilings {
            component_bytes: 32 << 20,
            memory_bytes: 64 << 20,
            fuel: Some(1_000_000_000),
            deadline: Duration::from_secs(5),
        }
    }

    #[test]
    fn nothing_asked_is_the_defaults_and_needs_no_approval() {
        let defaults = Limits::default();
        let none = RequestedLimits::parse(None, None, &MaybeUndefined::Undefined, None, &ceilings()).unwrap();
        assert_eq!(
            none.effective(&defaults).file(),
            r#"{"componentBytes":524288,"memoryBytes":4194304,"fuel":10000000,"deadlineMs":100}"#
        );
        assert_eq!(none.initial_approval(&defaults), LimitsApproval::NotNeeded);
        let less = RequestedLimits::parse(None, None, &MaybeUndefined::Value(1000), Some(50), &ceilings()).unwrap();
        assert_eq!(less.initial_approval(&defaults), LimitsApproval::NotNeeded);
        assert_eq!(less.effective(&defaults).fuel, Some(1000));
    }

    #[test]
    fn a_request_over_a_ceiling_names_the_ceiling_and_more_than_the_defaults_waits_for_approval() {
        let defaults = Limits::default();
        let e =
            RequestedLimits::parse(None, Some(65 << 20), &MaybeUndefined::Undefined, None, &ceilings()).unwrap_err();
        assert_eq!((e.field, e.code), ("requestedLimits.memoryBytes", "LIMIT_OVER_CEILING"));
        assert!(
            e.message.contains("67108864") && e.message.contains("VELFERD_ADAPTER_MAX_MEMORY_BYTES"),
            "{}",
            e.message
        );
        let e = RequestedLimits::parse(None, None, &MaybeUndefined::Null, None, &ceilings()).unwrap_err();
        assert!(e.message.contains("VELFERD_ADAPTER_MAX_FUEL"), "{}", e.message);
        let e = RequestedLimits::parse(Some(0), None, &MaybeUndefined::Undefined, None, &ceilings()).unwrap_err();
        assert_eq!(e.code, "INVALID_LIMIT");
        let more = RequestedLimits::parse(None, Some(16 << 20), &MaybeUndefined::Undefined, None, &ceilings()).unwrap();
        assert_eq!(more.initial_approval(&defaults), LimitsApproval::Pending);
        assert!(more.effective(&defaults).is_large(&defaults));
        let unmetered = AdapterCeilings { fuel: None, ..ceilings() };
        let off = RequestedLimits::parse(None, None, &MaybeUndefined::Null, None, &unmetered).unwrap();
        assert_eq!(off.effective(&defaults).fuel, None);
        assert_eq!(off.initial_approval(&defaults), LimitsApproval::Pending);
        assert_eq!(off.columns()[2], Some(0), "stored as 0");
    }
}
