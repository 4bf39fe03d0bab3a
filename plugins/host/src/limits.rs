//! The limits every adapter call runs under.

use std::time::Duration;

/// Per-call and per-component limits. Defaults follow Shopify Functions, the
/// strictest well-known platform that runs third-party Wasm (11 M
/// instructions, ~10 MB memory, 128 kB input, 20 kB output, 1 kB logs,
/// 256 kB modules), adjusted where a device adapter differs; each default
/// says why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// Wall-clock deadline of one call, instantiation included, enforced by
    /// epoch interruption. 100 ms: a decode takes microseconds; this only
    /// stops a guest that hangs.
    pub deadline: Duration,
    /// How often the epoch ticker runs; the deadline is accurate to one tick.
    pub epoch_tick: Duration,
    /// Instruction budget of one call (wasmtime fuel, about one unit per Wasm
    /// instruction), or `None` to switch fuel metering off and rely on the
    /// deadline alone (fuel costs guest speed; see docs/adapter-benchmarks.md).
    /// 10 M, like Shopify's 11 M: a realistic decode needs well under 1 M.
    pub fuel: Option<u64>,
    /// Linear memory of one instance, in bytes. 4 MiB: a Rust guest starts at
    /// about 1.1 MiB (1 MiB of it is its stack), which leaves ~3 MiB of heap
    /// for a message of at most `input_bytes`.
    pub memory_bytes: usize,
    /// Largest message payload accepted, in bytes (128 KiB, as Shopify).
    pub input_bytes: usize,
    /// Largest output of one call, measured as the events' JSON as the server
    /// stores them (64 KiB: a few hundred events; Shopify allows 20 kB).
    pub output_bytes: usize,
    /// Log output (the `log` import, stdout and stderr together) kept per
    /// call; the rest is dropped and counted (1 KiB, as Shopify).
    pub log_bytes: usize,
    /// Largest component accepted on upload. 512 KiB: twice Shopify's 256 kB
    /// because a component carries its WASI glue; the reference adapters are
    /// 150–200 kB.
    pub component_bytes: usize,
    /// Wasm call-stack size of one call (wasmtime's `max_wasm_stack`).
    pub wasm_stack_bytes: usize,
    /// Instances alive at once (the pooling allocator's slots): the number of
    /// calls that can run concurrently. Calls beyond it fail with
    /// [`crate::DecodeError::HostBusy`]; size the caller's concurrency to it.
    pub concurrent_instances: u32,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            deadline: Duration::from_millis(100),
            epoch_tick: Duration::from_millis(1),
            fuel: Some(10_000_000),
            memory_bytes: 4 << 20,
            input_bytes: 128 << 10,
            output_bytes: 64 << 10,
            log_bytes: 1 << 10,
            component_bytes: 512 << 10,
            wasm_stack_bytes: 512 << 10,
            concurrent_instances: 64,
        }
    }
}

/// The limits of one adapter version's calls, which may differ from the
/// host's defaults when an operator approved more (or the supplier asked for
/// less). They apply per call: fuel and deadline through the store's budget,
/// memory through the store's resource limiter. A host enforces them within
/// its own [`Limits`]: memory above the host's pool slot is cut to it, and a
/// fuel budget means nothing on a host that does not meter fuel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CallLimits {
    /// Wall-clock deadline of one call, instantiation included.
    pub deadline: Duration,
    /// Instruction budget of one call; `None`: not metered.
    pub fuel: Option<u64>,
    /// Linear memory of one instance, in bytes.
    pub memory_bytes: usize,
}

impl Limits {
    /// The per-call part of these limits.
    pub fn call_limits(&self) -> CallLimits {
        CallLimits { deadline: self.deadline, fuel: self.fuel, memory_bytes: self.memory_bytes }
    }
}

/// The limits a product's adapter versions are approved with, in the JSON form a supplier
/// downloads from the API and hands to `velferd adapter check --limits FILE`:
/// `{"componentBytes": n, "memoryBytes": n, "fuel": n|null, "deadlineMs": n}` — every key
/// required, no other key accepted, `fuel` null meaning metering off.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ApprovedLimits {
    pub component_bytes: usize,
    pub memory_bytes: usize,
    /// Required, but may be null: a plain `Option` would make a forgotten key mean "fuel off".
    #[serde(deserialize_with = "present_or_null")]
    pub fuel: Option<u64>,
    pub deadline_ms: u64,
}

fn present_or_null<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
    serde::Deserialize::deserialize(d)
}

impl ApprovedLimits {
    /// Parses and checks the JSON; the error says what to fix.
    pub fn parse(json: &str) -> Result<ApprovedLimits, String> {
        let limits: ApprovedLimits = serde_json::from_str(json).map_err(|e| e.to_string())?;
        let within = |name: &str, value: u64, min: u64, max: u64| {
            if (min..=max).contains(&value) {
                Ok(())
            } else {
                Err(format!("{name} is {value}; it must be {min} to {max}"))
            }
        };
        within("componentBytes", limits.component_bytes as u64, 1, 1 << 30)?;
        within("memoryBytes", limits.memory_bytes as u64, 64 << 10, 4 << 30)?;
        within("deadlineMs", limits.deadline_ms, 1, 60_000)?;
        if let Some(fuel) = limits.fuel {
            within("fuel", fuel, 1, 10_000_000_000).map_err(|e| format!("{e} (null switches metering off)"))?;
        }
        Ok(limits)
    }

    /// The approved part of `limits`.
    pub fn of(limits: &Limits) -> ApprovedLimits {
        ApprovedLimits {
            component_bytes: limits.component_bytes,
            memory_bytes: limits.memory_bytes,
            fuel: limits.fuel,
            deadline_ms: limits.deadline.as_millis() as u64,
        }
    }

    /// `base` with these four limits in place of its own.
    pub fn apply(&self, base: &Limits) -> Limits {
        Limits {
            component_bytes: self.component_bytes,
            memory_bytes: self.memory_bytes,
            fuel: self.fuel,
            deadline: Duration::from_millis(self.deadline_ms),
            ..base.clone()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn approved_limits_need_every_key_and_refuse_unknown_ones() {
        let ok = r#"{"componentBytes": 33554432, "memoryBytes": 67108864, "fuel": null, "deadlineMs": 250}"#;
        let limits = ApprovedLimits::parse(ok).unwrap();
        assert_eq!(limits.fuel, None);
        let applied = limits.apply(&Limits::default());
        assert_eq!((applied.memory_bytes, applied.deadline), (64 << 20, Duration::from_millis(250)));
        assert_eq!(applied.input_bytes, Limits::default().input_bytes);
        assert_eq!(ApprovedLimits::parse(&serde_json::to_string(&limits).unwrap()), Ok(limits));

        let unknown = r#"{"componentBytes": 1, "memoryBytes": 65536, "fuel": 1, "deadlineMs": 1, "inputBytes": 9}"#;
        assert!(ApprovedLimits::parse(unknown).unwrap_err().contains("unknown field `inputBytes`"));
        let no_fuel = r#"{"componentBytes": 1, "memoryBytes": 65536, "deadlineMs": 1}"#;
        assert!(ApprovedLimits::parse(no_fuel).unwrap_err().contains("missing field `fuel`"));
        let snake = r#"{"component_bytes": 1, "memoryBytes": 65536, "fuel": 1, "deadlineMs": 1}"#;
        assert!(ApprovedLimits::parse(snake).is_err());
        let zero_fuel = r#"{"componentBytes": 1, "memoryBytes": 65536, "fuel": 0, "deadlineMs": 1}"#;
        assert!(ApprovedLimits::parse(zero_fuel).unwrap_err().contains("null switches metering off"));
    }
}
