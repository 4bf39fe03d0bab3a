//! The adapter runtime of one server: the wasmtime host, the compiled adapters by id, and a
//! bound on how many adapter calls run at once.
//!
//! Adapter calls are CPU-bound and blocking, so they run on Tokio's blocking pool; the
//! semaphore keeps them from taking every core, so that a flood of messages for a hostile
//! adapter (each running to its deadline) cannot starve the GraphQL API of CPU.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use chrono::{DateTime, Utc};
use tokio::sync::Semaphore;
use velferd_plugins::{AdapterHost, CallReport, DecodeError, Event, Limits, ValidatedAdapter, ValidationError};

#[derive(Clone)]
pub struct AdapterRuntime {
    host: AdapterHost,
    compiled: Arc<Mutex<HashMap<i64, ValidatedAdapter>>>,
    calls: Arc<Semaphore>,
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
        })
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
    }

    /// Decodes one message in a fresh sandbox. `key` names the caller in the adapter's logs.
    pub async fn decode(
        &self,
        adapter: &ValidatedAdapter,
        key: &str,
        content_type: &str,
        payload: Arc<[u8]>,
        received_at: DateTime<Utc>,
    ) -> Result<Vec<Event>, DecodeError> {
        let (host, adapter, owned_key, content_type) =
            (self.host.clone(), adapter.clone(), key.to_string(), content_type.to_string());
        let _permit = self.calls.acquire().await.expect("the semaphore is never closed");
        let report: CallReport<Vec<Event>> = tokio::task::spawn_blocking(move || {
            host.decode_with_report(&adapter, &owned_key, &content_type, &payload, received_at)
        })
        .await
        .map_err(|e| DecodeError::Internal(format!("the decode task failed: {e}")))?;
        for line in &report.logs {
            tracing::debug!(adapter = %key, source = ?line.source, "{}", line.text);
        }
        report.result
    }
}
