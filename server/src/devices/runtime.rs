//! The adapter runtime of one server: the wasmtime host, the compiled adapters by id, and a
//! bound on how many adapter calls run at once.
//!
//! Adapter calls are CPU-bound and blocking, so they run on Tokio's blocking pool; the
//! semaphore keeps them from taking every core, so that a flood of messages for a hostile
//! adapter (each running to its deadline) cannot starve the GraphQL API of CPU.
//!
//! Products share those slots fairly: a product's calls queue for a slot behind a gate of its
//! own that lets at most [`AdapterRuntime::product_share`] of them wait or run at once. The
//! slots' queue is first come, first served, so it holds at most that many calls of each
//! product, and a product whose decodes are slow (or whose senders flood it) waits for its own
//! earlier calls, not other products for all of them.
//!
//! Each version runs under its own limits (see `super::adapter_limits`). Versions with more
//! memory or a larger component than the defaults run in a second host, whose instance pool is
//! sized to the ceilings, so that they take none of the default pool's slots.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use tokio::sync::Semaphore;
use velferd_plugins::{
    AdapterHost, CallLimits, CallReport, DecodeError, Event, Limits, ValidatedAdapter, ValidationError,
};

use super::adapter_limits::EffectiveLimits;
use crate::config::{AdapterCeilings, DeviceSettings};

/// Whose budget an adapter call runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lane {
    /// Live traffic and dead-letter replays: `VELFERD_ADAPTER_CONCURRENCY` calls at once.
    Ingest,
    /// Replay reviews of candidate versions: [`REVIEW_CALLS`] at once, apart from ingest.
    Review,
}

/// Adapter calls replay reviews run at once, server-wide.
pub const REVIEW_CALLS: usize = 1;

/// An adapter version compiled in the host its limits need, with the limits its calls run
/// under. Cheap to clone.
#[derive(Clone, Debug)]
pub struct Compiled {
    pub adapter: ValidatedAdapter,
    pub limits: EffectiveLimits,
    call: CallLimits,
    /// Compiled in (and so runs in) the large-memory host.
    large: bool,
}

#[derive(Clone)]
pub struct AdapterRuntime {
    host: AdapterHost,
    /// Versions with more memory or a larger component than the defaults: a pool of their own.
    large: AdapterHost,
    compiled: Arc<Mutex<HashMap<i64, Compiled>>>,
    calls: Arc<Semaphore>,
    /// Each product's gate in front of `calls` (see the module's notes).
    products: Arc<Mutex<HashMap<i64, Arc<Semaphore>>>>,
    product_share: usize,
    /// Replay reviews' own slot: a review never waits for, nor takes, ingest's slots.
    reviews: Arc<Semaphore>,
    breakers: Arc<Mutex<HashMap<i64, Breaker>>>,
    metrics: Option<Arc<crate::telemetry::Metrics>>,
}

/// Consecutive calls of one adapter that ran into a resource limit before it is quarantined.
pub const QUARANTINE_AFTER: u32 = 20;
/// How long a quarantine lasts; the next call after it is a trial.
pub const QUARANTINE_FOR: Duration = Duration::from_secs(30);

/// A circuit breaker per adapter version: a version whose calls keep running into the
/// deadline, the fuel budget or the memory cap is not called for a while. Its messages become
/// dead letters at once (replayable) instead of each burning an adapter slot — the slots other
/// products' messages need.
#[derive(Debug, Default)]
struct Breaker {
    consecutive: u32,
    open_until: Option<Instant>,
    /// Quarantined before: after the pause, one more failure pauses it again at once.
    tripped: bool,
}

fn exhausts_resources(e: &DecodeError) -> bool {
    matches!(
        e,
        DecodeError::DeadlineExceeded { .. }
            | DecodeError::FuelExhausted { .. }
            | DecodeError::MemoryExceeded { .. }
            | DecodeError::StackOverflow
            | DecodeError::OutputTooLarge { .. }
    )
}

impl AdapterRuntime {
    /// A runtime with the settings' default limits and ceilings, running at most
    /// `adapter_concurrency` adapter calls at once.
    pub fn new(settings: &DeviceSettings) -> Result<AdapterRuntime, String> {
        let limits = settings.adapter_limits.clone();
        let concurrent_calls = settings.adapter_concurrency.clamp(1, limits.concurrent_instances as usize);
        // Both hosts keep compiled components in the configured cache; their engines differ
        // (pool sizes), and an entry is keyed by the engine's configuration, so each finds its own.
        let cache = settings.adapter_cache.as_ref().and_then(|cache| cache.open_or_warn());
        let large = AdapterHost::with_compile_cache(
            large_limits(&limits, &settings.adapter_ceilings, concurrent_calls),
            cache.clone(),
        )
        .map_err(|e| format!("the large-memory adapter host could not start: {e:#}"))?;
        let host = AdapterHost::with_compile_cache(limits, cache)
            .map_err(|e| format!("the adapter host could not start: {e:#}"))?;
        Ok(AdapterRuntime {
            host,
            large,
            compiled: Arc::new(Mutex::new(HashMap::new())),
            calls: Arc::new(Semaphore::new(concurrent_calls)),
            products: Arc::new(Mutex::new(HashMap::new())),
            product_share: concurrent_calls.div_ceil(2),
            reviews: Arc::new(Semaphore::new(REVIEW_CALLS)),
            breakers: Arc::new(Mutex::new(HashMap::new())),
            metrics: None,
        })
    }

    /// The runtime, counting its calls' time and instructions in `metrics`.
    pub fn with_metrics(self, metrics: Arc<crate::telemetry::Metrics>) -> AdapterRuntime {
        AdapterRuntime { metrics: Some(metrics), ..self }
    }

    /// The default limits: what a version that asked for nothing runs under.
    pub fn limits(&self) -> &Limits {
        self.host.limits()
    }

    /// How many calls of one product may wait for or hold the shared slots at once.
    pub fn product_share(&self) -> usize {
        self.product_share
    }

    /// Validates (and compiles) a component for a version that asked for nothing.
    pub async fn validate(&self, bytes: Vec<u8>) -> Result<ValidatedAdapter, ValidationError> {
        let limits = super::adapter_limits::RequestedLimits::default().effective(self.limits());
        Ok(self.validate_for(bytes, &limits).await?.adapter)
    }

    /// Validates (and compiles) an uploaded component for a version that runs under `limits`,
    /// in the host those limits need.
    pub async fn validate_for(&self, bytes: Vec<u8>, limits: &EffectiveLimits) -> Result<Compiled, ValidationError> {
        if bytes.len() as u64 > limits.component_bytes {
            // The default host checks its own (default) size; the large host's is the ceiling.
            return Err(ValidationError::TooLarge { size: bytes.len(), limit: limits.component_bytes as usize });
        }
        let large = limits.is_large(self.limits());
        let host = if large { self.large.clone() } else { self.host.clone() };
        let _permit = self.calls.acquire().await.expect("the semaphore is never closed");
        let adapter = tokio::task::spawn_blocking(move || host.validate(&bytes))
            .await
            .unwrap_or_else(|e| Err(ValidationError::InvalidDescription(format!("validation panicked: {e}"))))?;
        Ok(Compiled { adapter, limits: *limits, call: limits.call_limits(), large })
    }

    /// Compiles the stored adapter with row id `id` and keeps it for [`AdapterRuntime::cached`].
    pub async fn compile(
        &self,
        id: i64,
        component: Vec<u8>,
        limits: &EffectiveLimits,
    ) -> Result<Compiled, ValidationError> {
        let compiled = self.validate_for(component, limits).await?;
        self.compiled.lock().expect("cache lock").insert(id, compiled.clone());
        Ok(compiled)
    }

    /// The compiled adapter with row id `id`, if it was compiled before.
    pub fn cached(&self, id: i64) -> Option<Compiled> {
        self.compiled.lock().expect("cache lock").get(&id).cloned()
    }

    /// Forgets a compiled adapter (it was retired).
    pub fn forget(&self, id: i64) {
        self.compiled.lock().expect("cache lock").remove(&id);
        self.breakers.lock().expect("breaker lock").remove(&id);
    }

    /// Until when adapter `id` is quarantined, if it is.
    pub fn quarantined_until(&self, id: i64) -> Option<Instant> {
        let breakers = self.breakers.lock().expect("breaker lock");
        breakers.get(&id).and_then(|b| b.open_until).filter(|until| *until > Instant::now())
    }

    /// Runs `call`, a decode with adapter `id`, through that adapter's circuit breaker.
    pub async fn guarded<T>(
        &self,
        id: i64,
        call: impl Future<Output = Result<T, DecodeError>>,
    ) -> Result<T, DecodeError> {
        let result = call.await;
        let mut breakers = self.breakers.lock().expect("breaker lock");
        let breaker = breakers.entry(id).or_default();
        match &result {
            Err(e) if exhausts_resources(e) => {
                breaker.consecutive += 1;
                if breaker.consecutive >= QUARANTINE_AFTER || breaker.tripped {
                    breaker.open_until = Some(Instant::now() + QUARANTINE_FOR);
                    breaker.consecutive = 0;
                    breaker.tripped = true;
                    tracing::warn!(
                        adapter = id,
                        "adapter quarantined: {QUARANTINE_AFTER} calls in a row hit a resource limit"
                    );
                }
            }
            _ => *breaker = Breaker::default(),
        }
        result
    }

    /// The gate of `product`'s calls in front of the shared slots.
    fn product_gate(&self, product: i64) -> Arc<Semaphore> {
        let mut gates = self.products.lock().expect("gate lock");
        gates.entry(product).or_insert_with(|| Arc::new(Semaphore::new(self.product_share))).clone()
    }

    /// Decodes one message of `product` in a fresh sandbox under the version's limits, on
    /// `lane`'s budget. `key` names the caller in the adapter's logs.
    #[allow(clippy::too_many_arguments)]
    pub async fn decode(
        &self,
        lane: Lane,
        product: i64,
        compiled: &Compiled,
        key: &str,
        content_type: &str,
        payload: Arc<[u8]>,
        received_at: DateTime<Utc>,
    ) -> Result<Vec<Event>, DecodeError> {
        let host = if compiled.large { self.large.clone() } else { self.host.clone() };
        let (adapter, call, owned_key, content_type) =
            (compiled.adapter.clone(), compiled.call, key.to_string(), content_type.to_string());
        let (_gate, _permit) = match lane {
            Lane::Ingest => {
                let gate = self.product_gate(product).acquire_owned().await.expect("the semaphore is never closed");
                (Some(gate), self.calls.acquire().await.expect("the semaphore is never closed"))
            }
            Lane::Review => (None, self.reviews.acquire().await.expect("the semaphore is never closed")),
        };
        let report: CallReport<Vec<Event>> = tokio::task::spawn_blocking(move || {
            host.decode_with_limits(&adapter, &call, &owned_key, &content_type, &payload, received_at)
        })
        .await
        .map_err(|e| DecodeError::Internal(format!("the decode task failed: {e}")))?;
        if let Some(metrics) = &self.metrics {
            let result = report.result.as_ref().map_or_else(DecodeError::code, |_| "ok");
            metrics.adapter_call(result, report.cost.wall_time, report.cost.instructions);
        }
        for line in &report.logs {
            tracing::debug!(adapter = %key, source = ?line.source, "{}", line.text);
        }
        report.result
    }
}

/// The large-memory host's limits: the defaults with the ceilings' memory, component size,
/// fuel and deadline (each call then runs under its own version's), and as many instance slots
/// as calls may run at once.
fn large_limits(defaults: &Limits, ceilings: &AdapterCeilings, slots: usize) -> Limits {
    Limits {
        memory_bytes: ceilings.memory_bytes,
        component_bytes: ceilings.component_bytes,
        // The engine meters fuel whenever the defaults do; a version approved to run unmetered
        // gets a budget it cannot use up.
        fuel: defaults.fuel.map(|d| ceilings.fuel.unwrap_or(u64::MAX).max(d)),
        deadline: ceilings.deadline,
        concurrent_instances: u32::try_from(slots + REVIEW_CALLS).unwrap_or(u32::MAX),
        ..defaults.clone()
    }
}
