//! The adapter runtime of one server: the wasmtime host, the compiled adapters by id, and a
//! bound on how many adapter calls run at once.
//!
//! Adapter calls are CPU-bound and blocking, so they run on Tokio's blocking pool; the
//! semaphore keeps them from taking every core, so that a flood of messages for a hostile
//! adapter (each running to its deadline) cannot starve the GraphQL API of CPU.
//!
//! Products share those slots fairly. Each product's messages wait in a queue of its own, which
//! at most [`AdapterRuntime::product_share`] drainers serve, each holding one slot at a time.
//! A drainer takes a slot, decodes from the front of its queue on the blocking pool for one
//! [`TURN`] (each message still in a fresh instance), answers each request once all its
//! messages are decoded (a request cut by the end of a turn is continued first at the next),
//! gives the slot back and queues for the next. The slots' queue is first come, first served,
//! so a product whose decodes are slow (or whose senders flood it) waits for its own earlier
//! calls, and other products for at most a turn of its, not all of them. And concurrent
//! requests share trips to the blocking pool: under load, one turn decodes the messages of
//! dozens of requests, and a batch crosses threads once, not once a message.
//!
//! Each version runs under its own limits (see `super::adapter_limits`). Versions with more
//! memory or a larger component than the defaults run in a second host, whose instance pool is
//! sized to the ceilings, so that they take none of the default pool's slots.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, oneshot};
use velferd_plugins::{
    AdapterHost, CallLimits, CallReport, DecodeError, Event, Limits, ValidatedAdapter, ValidationError,
};

use super::adapter_limits::EffectiveLimits;
use crate::config::{AdapterCeilings, DeviceSettings};

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
    /// Each product's messages waiting for a drainer (see the module's notes).
    queues: Arc<Mutex<HashMap<i64, Arc<Mutex<Waiting>>>>>,
    product_share: usize,
    /// Replay reviews' own slot: a review never waits for, nor takes, ingest's slots.
    reviews: Arc<Semaphore>,
    breakers: Breakers,
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
            queues: Arc::new(Mutex::new(HashMap::new())),
            product_share: concurrent_calls.div_ceil(2),
            reviews: Arc::new(Semaphore::new(REVIEW_CALLS)),
            breakers: Breakers::default(),
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

    /// How many drainers of one product's queue may wait for or hold the shared slots at once.
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
        self.breakers.forget(id);
    }

    /// The queue of `product`'s messages.
    fn queue_of(&self, product: i64) -> Arc<Mutex<Waiting>> {
        let mut queues = self.queues.lock().expect("queue lock");
        queues.entry(product).or_default().clone()
    }

    fn host_for(&self, compiled: &Compiled) -> &AdapterHost {
        if compiled.large { &self.large } else { &self.host }
    }

    /// Decodes one message of `product` in a fresh sandbox under the version's limits, on the
    /// review budget (replay reviews of candidate versions). `key` names the caller in the
    /// adapter's logs.
    pub async fn review(
        &self,
        compiled: &Compiled,
        key: &str,
        content_type: &str,
        payload: Arc<[u8]>,
        received_at: DateTime<Utc>,
    ) -> Result<Vec<Event>, DecodeError> {
        let slot = self.reviews.clone().acquire_owned().await.expect("the semaphore is never closed");
        let (host, adapter, call) = (self.host_for(compiled).clone(), compiled.adapter.clone(), compiled.call);
        let (key, content_type, metrics) = (key.to_string(), content_type.to_string(), self.metrics.clone());
        tokio::task::spawn_blocking(move || {
            let report = host.decode_with_limits(&adapter, &call, &key, &content_type, &payload, received_at);
            drop(slot);
            observe(metrics.as_deref(), &key, &report);
            report.result
        })
        .await
        .map_err(|e| DecodeError::Internal(format!("the decode task failed: {e}")))?
    }

    /// Decodes `inputs`, messages of `product` for its active version `id`, each in a fresh
    /// sandbox, on the ingest budget; one [`Call`] per input, in order. Calls go through the
    /// version's circuit breaker: while it is open, they are not made.
    pub async fn decode_all(
        &self,
        product: i64,
        id: i64,
        compiled: &Compiled,
        key: &str,
        inputs: Vec<Input>,
        received_at: DateTime<Utc>,
    ) -> Vec<Call> {
        // A quarantined version's messages take no slot at all.
        if self.breakers.is_open(id) {
            return inputs.iter().map(|_| Call::Quarantined).collect();
        }
        let count = inputs.len();
        let queue = self.queue_of(product);
        let (answer, answered) = oneshot::channel();
        let job = Job {
            id,
            compiled: compiled.clone(),
            key: key.to_string(),
            received_at,
            inputs: inputs.into(),
            calls: Vec::with_capacity(count),
            answer,
        };
        let start_drainer = {
            let mut waiting = queue.lock().expect("queue lock");
            waiting.jobs.push_back(job);
            let start = waiting.drainers < self.product_share;
            waiting.drainers += usize::from(start);
            start
        };
        if start_drainer {
            tokio::spawn(self.clone().drain(queue));
        }
        // A drainer that panicked dropped the request it held: none of its messages is
        // acknowledged, so its sender retries them.
        answered.await.unwrap_or_else(|_| {
            (0..count).map(|_| Call::Ran(Err(DecodeError::Internal("the decode task failed".to_string())))).collect()
        })
    }

    /// Serves `queue` a turn at a time until it is empty.
    async fn drain(self, queue: Arc<Mutex<Waiting>>) {
        loop {
            let slot = self.calls.clone().acquire_owned().await.expect("the semaphore is never closed");
            let turn = Turn {
                host: self.host.clone(),
                large: self.large.clone(),
                breakers: self.breakers.clone(),
                metrics: self.metrics.clone(),
            };
            let queue = queue.clone();
            // A panic loses the message being decoded (its request answers RETRY); the
            // drainer goes on with the rest.
            if let Ok(Served::All) = tokio::task::spawn_blocking(move || turn.run(slot, &queue)).await {
                return;
            }
        }
    }
}

/// How long a drainer decodes with one slot before the calls queued behind it get theirs. A
/// turn ends after the call that crosses it, so a turn of one slow call is as long as a call
/// may be (its deadline), as when every call took a slot of its own.
pub const TURN: Duration = Duration::from_millis(2);

/// One message to decode: its content type and bytes.
#[derive(Debug, Clone)]
pub struct Input {
    pub content_type: String,
    pub payload: Arc<[u8]>,
}

/// What became of one message given to [`AdapterRuntime::decode_all`].
#[derive(Debug)]
pub enum Call {
    /// The adapter ran: its events, or why it produced none.
    Ran(Result<Vec<Event>, DecodeError>),
    /// Not called: the version kept running into its limits and is paused.
    Quarantined,
}

/// A product's messages waiting to be decoded, and how many drainers serve them.
#[derive(Default)]
struct Waiting {
    jobs: VecDeque<Job>,
    drainers: usize,
}

/// One request's messages in its product's queue, with what decoding them needs, what is
/// decoded so far, and where the answers go — all at once, so that a request is woken once.
struct Job {
    id: i64,
    compiled: Compiled,
    key: String,
    received_at: DateTime<Utc>,
    inputs: VecDeque<Input>,
    calls: Vec<Call>,
    answer: oneshot::Sender<Vec<Call>>,
}

/// How a turn ended.
enum Served {
    /// The queue is empty and its drainer has stopped.
    All,
    /// The turn's time is up; messages may be left.
    TurnOver,
}

/// What a drainer's turn on the blocking pool needs: everything owned, nothing borrowed.
struct Turn {
    host: AdapterHost,
    large: AdapterHost,
    breakers: Breakers,
    metrics: Option<Arc<crate::telemetry::Metrics>>,
}

impl Turn {
    /// Decodes from the front of `queue` until it is empty (then the drainer stops: counted off
    /// under the queue's lock, so a message queued after that starts a new one) or the turn's
    /// time is up, and gives `slot` back.
    fn run(self, slot: OwnedSemaphorePermit, queue: &Mutex<Waiting>) -> Served {
        let started = Instant::now();
        let served = 'turn: loop {
            let mut job = {
                let mut waiting = queue.lock().expect("queue lock");
                match waiting.jobs.pop_front() {
                    Some(job) => job,
                    None => {
                        waiting.drainers -= 1;
                        break Served::All;
                    }
                }
            };
            // Its request is gone (the sender hung up): nothing would be stored.
            if job.answer.is_closed() {
                continue;
            }
            while let Some(input) = job.inputs.pop_front() {
                let call = if self.breakers.is_open(job.id) {
                    Call::Quarantined
                } else {
                    let host = if job.compiled.large { &self.large } else { &self.host };
                    let report = host.decode_with_limits(
                        &job.compiled.adapter,
                        &job.compiled.call,
                        &job.key,
                        &input.content_type,
                        &input.payload,
                        job.received_at,
                    );
                    observe(self.metrics.as_deref(), &job.key, &report);
                    self.breakers.record(job.id, &report.result);
                    Call::Ran(report.result)
                };
                job.calls.push(call);
                if started.elapsed() >= TURN && !job.inputs.is_empty() {
                    // The rest of this request comes first at the product's next turn.
                    queue.lock().expect("queue lock").jobs.push_front(job);
                    break 'turn Served::TurnOver;
                }
            }
            let _ = job.answer.send(job.calls);
            if started.elapsed() >= TURN {
                break Served::TurnOver;
            }
        };
        drop(slot);
        served
    }
}

/// Counts an adapter call in the metrics and passes its log lines on.
fn observe(metrics: Option<&crate::telemetry::Metrics>, key: &str, report: &CallReport<Vec<Event>>) {
    if let Some(metrics) = metrics {
        let result = report.result.as_ref().map_or_else(DecodeError::code, |_| "ok");
        metrics.adapter_call(result, report.cost.wall_time, report.cost.instructions);
    }
    for line in &report.logs {
        tracing::debug!(adapter = %key, source = ?line.source, "{}", line.text);
    }
}

/// The circuit breakers of the adapter versions, by id.
#[derive(Clone, Default)]
struct Breakers(Arc<Mutex<HashMap<i64, Breaker>>>);

impl Breakers {
    /// Whether version `id` is quarantined now.
    fn is_open(&self, id: i64) -> bool {
        let breakers = self.0.lock().expect("breaker lock");
        breakers.get(&id).and_then(|b| b.open_until).is_some_and(|until| until > Instant::now())
    }

    /// Counts a call of version `id`: a run of calls into a resource limit opens its breaker,
    /// any other answer closes it.
    fn record<T>(&self, id: i64, result: &Result<T, DecodeError>) {
        let mut breakers = self.0.lock().expect("breaker lock");
        let breaker = breakers.entry(id).or_default();
        match result {
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
    }

    fn forget(&self, id: i64) {
        self.0.lock().expect("breaker lock").remove(&id);
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
