//! The adapter runtime of one server: the wasmtime host, the compiled adapters by id, and a
//! bound on how many adapter calls run at once.
//!
//! Adapter calls are CPU-bound and blocking, so they run on Tokio's blocking pool; the
//! semaphore keeps them from taking every core, so that a flood of messages for a hostile
//! adapter (each running to its deadline) cannot starve the GraphQL API of CPU.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use tokio::sync::Semaphore;
use velferd_plugins::{AdapterHost, CallReport, DecodeError, Event, Limits, ValidatedAdapter, ValidationError};

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

#[derive(Clone)]
pub struct AdapterRuntime {
    host: AdapterHost,
    compiled: Arc<Mutex<HashMap<i64, ValidatedAdapter>>>,
    calls: Arc<Semaphore>,
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
    /// A runtime with `limits`, running at most `concurrent_calls` adapter calls at once.
    pub fn new(limits: Limits, concurrent_calls: usize) -> Result<AdapterRuntime, String> {
        let concurrent_calls = concurrent_calls.clamp(1, limits.concurrent_instances as usize);
        let host = AdapterHost::new(limits).map_err(|e| format!("the adapter host could not start: {e:#}"))?;
        Ok(AdapterRuntime {
            host,
            compiled: Arc::new(Mutex::new(HashMap::new())),
            calls: Arc::new(Semaphore::new(concurrent_calls)),
            reviews: Arc::new(Semaphore::new(REVIEW_CALLS)),
            breakers: Arc::new(Mutex::new(HashMap::new())),
            metrics: None,
        })
    }

    /// The runtime, counting its calls' time and instructions in `metrics`.
    pub fn with_metrics(self, metrics: Arc<crate::telemetry::Metrics>) -> AdapterRuntime {
        AdapterRuntime { metrics: Some(metrics), ..self }
    }

    pub fn limits(&self) -> &Limits {
        self.host.limits()
    }

    /// Validates (and compiles) an uploaded component.
    pub async fn validate(&self, bytes: Vec<u8>) -> Result<ValidatedAdapter, ValidationError> {
        let host = self.host.clone();
        let _permit = self.calls.acquire().await.expect("the semaphore is never closed");
        tokio::task::spawn_blocking(move || host.validate(&bytes))
            .await
            .unwrap_or_else(|e| Err(ValidationError::InvalidDescription(format!("validation panicked: {e}"))))
    }

    /// Compiles the stored adapter with row id `id` and keeps it for [`AdapterRuntime::cached`].
    pub async fn compile(&self, id: i64, component: Vec<u8>) -> Result<ValidatedAdapter, ValidationError> {
        let adapter = self.validate(component).await?;
        self.compiled.lock().expect("cache lock").insert(id, adapter.clone());
        Ok(adapter)
    }

    /// The compiled adapter with row id `id`, if it was compiled before.
    pub fn cached(&self, id: i64) -> Option<ValidatedAdapter> {
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

    /// Decodes one message in a fresh sandbox, on `lane`'s budget. `key` names the caller in the
    /// adapter's logs.
    pub async fn decode(
        &self,
        lane: Lane,
        adapter: &ValidatedAdapter,
        key: &str,
        content_type: &str,
        payload: Arc<[u8]>,
        received_at: DateTime<Utc>,
    ) -> Result<Vec<Event>, DecodeError> {
        let (host, adapter, owned_key, content_type) =
            (self.host.clone(), adapter.clone(), key.to_string(), content_type.to_string());
        let slots = match lane {
            Lane::Ingest => &self.calls,
            Lane::Review => &self.reviews,
        };
        let _permit = slots.acquire().await.expect("the semaphore is never closed");
        let report: CallReport<Vec<Event>> = tokio::task::spawn_blocking(move || {
            host.decode_with_report(&adapter, &owned_key, &content_type, &payload, received_at)
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
