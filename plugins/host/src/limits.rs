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
