//! The adapter host: validates components, caches them compiled by sha-256,
//! and runs every call in a fresh, limited sandbox.

use std::collections::HashMap;
use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use serde::Serialize;
use sha2::{Digest, Sha256};
use wasmtime::component::{Component, Linker};
use wasmtime::{Config, Engine, InstanceAllocationStrategy, PoolingAllocationConfig, Store, Trap};

use crate::cache::{self, CompileCache, Lookup};
use crate::contract::{SUPPORTED_INTERFACE_MAJORS, v1, v2};
use crate::event::{DeviceClass, Event};
use crate::limits::{CallLimits, Limits};
use crate::sandbox::{self, GRANTED_WASI, LogLine, LogSource, Sandbox};

/// The interface package adapters export.
const PACKAGE: &str = "velferd:device";

/// Why a component was rejected on upload.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, Serialize)]
#[serde(tag = "error", rename_all = "kebab-case")]
pub enum ValidationError {
    #[error("the component is {size} bytes; the limit is {limit}")]
    TooLarge { size: usize, limit: usize },
    #[error("not a valid WebAssembly component: {message}")]
    NotAComponent { message: String },
    /// Said in plain words here, before an instance is tried: the pooling allocator's own
    /// message names memory indexes and byte counts.
    #[error("the component starts with {} of memory; the limit is {}", size_text(*size), size_text(*limit))]
    InitialMemoryTooLarge { size: u64, limit: usize },
    #[error("the component defines {count} memories; the sandbox gives an instance at most {limit}")]
    TooManyMemories { count: u32, limit: u32 },
    #[error("the component does not export {PACKAGE}/adapter; it exports [{}]", exports.join(", "))]
    WrongWorld { exports: Vec<String> },
    #[error("the component was built against {PACKAGE}@{found}; this host serves major version(s) {supported}")]
    UnsupportedInterfaceVersion { found: String, supported: String },
    #[error("the component imports {import}, which the sandbox does not grant: {reason}")]
    ForbiddenImport { import: String, reason: String },
    #[error("the component does not match the {PACKAGE}@{version} contract: {message}")]
    Incompatible { version: String, message: String },
    #[error("describe failed: {0}")]
    DescribeFailed(DecodeError),
    #[error("describe answered something unusable: {0}")]
    InvalidDescription(String),
}

/// Why one call failed. The message it was decoding fails; the host, other
/// adapters and other messages are unaffected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, Serialize)]
#[serde(tag = "error", rename_all = "kebab-case")]
pub enum DecodeError {
    /// The adapter says the message is broken.
    #[error("malformed message: {0}")]
    Malformed(String),
    /// The adapter does not handle this content type or message.
    #[error("unsupported message: {0}")]
    Unsupported(String),
    /// The adapter rejected a command's arguments.
    #[error("invalid command: {0}")]
    InvalidCommand(String),
    #[error("the message is {size} bytes; the limit is {limit}")]
    InputTooLarge { size: usize, limit: usize },
    #[error("the call ran past its {limit_ms} ms deadline")]
    DeadlineExceeded { limit_ms: u64 },
    #[error("the call used up its budget of {limit} instructions")]
    FuelExhausted { limit: u64 },
    #[error("the adapter needed more than {limit} bytes of memory")]
    MemoryExceeded { limit: usize },
    #[error("the adapter overflowed its call stack")]
    StackOverflow,
    #[error("the output is {size} bytes; the limit is {limit}")]
    OutputTooLarge { size: usize, limit: usize },
    #[error("the adapter returned an invalid event: {0}")]
    InvalidOutput(String),
    #[error("{0}")]
    CapabilityDenied(String),
    #[error("the adapter trapped: {0}")]
    Trap(String),
    /// Every instance slot is in use; retry later. Not the adapter's fault.
    #[error("the host is at its concurrent-instance limit: {0}")]
    HostBusy(String),
    #[error("internal host error: {0}")]
    Internal(String),
}

impl DecodeError {
    /// A stable short code, e.g. for a dead letter's reason column.
    pub fn code(&self) -> &'static str {
        match self {
            DecodeError::Malformed(_) => "malformed",
            DecodeError::Unsupported(_) => "unsupported",
            DecodeError::InvalidCommand(_) => "invalid-command",
            DecodeError::InputTooLarge { .. } => "input-too-large",
            DecodeError::DeadlineExceeded { .. } => "deadline-exceeded",
            DecodeError::FuelExhausted { .. } => "fuel-exhausted",
            DecodeError::MemoryExceeded { .. } => "memory-exceeded",
            DecodeError::StackOverflow => "stack-overflow",
            DecodeError::OutputTooLarge { .. } => "output-too-large",
            DecodeError::InvalidOutput(_) => "invalid-output",
            DecodeError::CapabilityDenied(_) => "capability-denied",
            DecodeError::Trap(_) => "trap",
            DecodeError::HostBusy(_) => "host-busy",
            DecodeError::Internal(_) => "internal",
        }
    }

    /// Whether the same call may succeed later without a new adapter.
    pub fn is_retryable(&self) -> bool {
        matches!(self, DecodeError::HostBusy(_) | DecodeError::Internal(_))
    }
}

/// What an adapter says about itself.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AdapterInfo {
    pub supplier: String,
    pub product: String,
    pub adapter_version: String,
    pub device_classes: Vec<DeviceClass>,
    pub content_types: Vec<String>,
}

/// A command to encode for a device.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(tag = "type", rename_all = "kebab-case")]
pub enum Command {
    TestAlarm,
    /// Times of day as (hour, minute), local to the device.
    SetDispensingSchedule {
        times: Vec<(u8, u8)>,
    },
}

/// A command in the supplier's wire format.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct EncodedCommand {
    pub content_type: String,
    pub body: Vec<u8>,
}

/// What one call cost.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
pub struct CallCost {
    /// Wasm instructions executed (fuel consumed), instantiation included;
    /// `None` when fuel metering is off.
    pub instructions: Option<u64>,
    /// Largest linear memory the instance had, in bytes.
    pub peak_memory_bytes: usize,
    /// Wall time from store creation to the result.
    pub wall_time: Duration,
    /// Size of the output as JSON (events) or bytes (commands).
    pub output_bytes: usize,
    /// Log bytes kept and dropped.
    pub log_bytes_dropped: usize,
}

/// The outcome of one call with its cost and the adapter's log lines.
#[derive(Debug, Clone)]
pub struct CallReport<T> {
    pub result: Result<T, DecodeError>,
    pub cost: CallCost,
    pub logs: Vec<LogLine>,
}

/// A component that passed validation: compiled, linked and ready to
/// instantiate. Cheap to clone.
#[derive(Clone)]
pub struct ValidatedAdapter {
    /// Lower-case hex sha-256 of the component's bytes.
    pub sha256: String,
    /// The `velferd:device` version it was built against, e.g. `1.0.0`.
    pub interface_version: String,
    /// What `describe` answered.
    pub info: AdapterInfo,
    /// Size of the component in bytes.
    pub size_bytes: usize,
    bindings: Arc<Bindings>,
    compilation: Compilation,
}

/// How the compiled code of a validated component was obtained.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Compilation {
    /// Time to compile it, or to find it in a cache.
    pub duration: Duration,
    /// Whether it came from a cache (this host's memory or its compile cache on disk) rather than
    /// from compiling the component's bytes.
    pub cache_hit: bool,
}

impl Compilation {
    pub fn millis(&self) -> f64 {
        self.duration.as_secs_f64() * 1e3
    }
}

impl ValidatedAdapter {
    /// How long obtaining the compiled code took on this validation, and whether a cache had it.
    pub fn compilation(&self) -> Compilation {
        self.compilation
    }
}

impl fmt::Debug for ValidatedAdapter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ValidatedAdapter")
            .field("sha256", &self.sha256)
            .field("interface_version", &self.interface_version)
            .field("info", &self.info)
            .field("size_bytes", &self.size_bytes)
            .field("compilation", &self.compilation)
            .finish()
    }
}

/// Pre-instantiated bindings, one variant per served interface major.
enum Bindings {
    V1(v1::DeviceAdapterPre<Sandbox>),
    V2(v2::DeviceAdapterPre<Sandbox>),
}

/// Runs supplier adapters in sandboxes. Create one per process and share it
/// (it is `Clone`, `Send` and `Sync`); it owns the engine, the compiled
/// components and an epoch-ticker thread (which sleeps while no call runs).
///
/// Calls are synchronous and return within the deadline (plus one epoch
/// tick). From async code call them inside `tokio::task::spawn_blocking`:
/// WASI's stdio glue blocks on the current Tokio runtime, which panics on a
/// runtime worker thread.
///
/// Isolation: every call runs in a fresh instance in a fresh store, so no
/// state survives a message, let alone crosses municipalities. With the
/// pooling allocator and copy-on-write images that costs tens of
/// microseconds per message (see docs/adapter-benchmarks.md).
#[derive(Clone)]
pub struct AdapterHost {
    inner: Arc<Inner>,
}

struct Inner {
    engine: Engine,
    /// One linker for every served interface version.
    linker: Linker<Sandbox>,
    limits: Limits,
    cache: Mutex<HashMap<[u8; 32], ValidatedAdapter>>,
    /// Compiled code on disk, if configured, and the hash of the engine configuration it is keyed by.
    disk: Option<CompileCache>,
    engine_hash: [u8; 32],
    /// Components compiled from their bytes (not found in a cache) by this host.
    compiled: AtomicU64,
    ticker: EpochTicker,
}

/// Most memories one instance may have (the pooling allocator's `max_memories_per_component`).
const MAX_MEMORIES: u32 = 4;
/// Wasm's page size; custom page sizes are not enabled.
const WASM_PAGE: u64 = 64 << 10;

/// What [`AdapterHost::examine`] found.
pub(crate) struct Examination {
    /// Every problem found, in the order `validate` reports them.
    pub problems: Vec<ValidationError>,
    pub interface_version: Option<String>,
    pub compilation: Option<Compilation>,
    /// The component, ready to call, when it could be instantiated (its `info` is empty when
    /// `describe` failed).
    pub adapter: Option<ValidatedAdapter>,
    pub info: Option<AdapterInfo>,
}

impl AdapterHost {
    /// A host whose calls run under `limits`, keeping compiled components in memory only.
    pub fn new(limits: Limits) -> Result<AdapterHost, wasmtime::Error> {
        AdapterHost::with_compile_cache(limits, None)
    }

    /// A host whose calls run under `limits` and that keeps compiled components in `cache`
    /// (`None`: only in memory).
    pub fn with_compile_cache(limits: Limits, cache: Option<CompileCache>) -> Result<AdapterHost, wasmtime::Error> {
        let n = limits.concurrent_instances.max(1);
        let mut pool = PoolingAllocationConfig::default();
        // A wit-bindgen component has one core module with one memory plus a
        // few small shim instances with tables; the totals leave headroom for
        // those. A JavaScript component (QuickJS via jco: 13 core instances,
        // 3 memories) or a Python one (componentize-py: 38 core instances) needs
        // more per component; it takes more of the same totals, which hold at
        // least one of each (docs/adapter-benchmarks.md).
        pool.total_component_instances(n)
            .max_core_instances_per_component(48)
            .total_core_instances((n * 16).max(48))
            .max_memories_per_component(MAX_MEMORIES)
            .total_memories((n * 2).max(4))
            .max_tables_per_component(8)
            .total_tables(n * 8)
            .max_memory_size(limits.memory_bytes)
            // Reset a returned slot by memset rather than madvise for the
            // first pages: a Rust guest dirties its 1 MiB stack region and a
            // little heap on every call, and re-faulting those pages in is
            // most of a fresh instance's cost (docs/adapter-benchmarks.md).
            .linear_memory_keep_resident(limits.memory_bytes.min(1280 << 10))
            .table_keep_resident(64 << 10)
            // Where the kernel has `PAGEMAP_SCAN` (Linux 6.7+), reset only the pages the call
            // made resident instead of `memset`-ing the whole kept region: most of a fresh
            // instance's drop was zeroing pages no call had touched. Elsewhere, as before.
            .pagemap_scan(wasmtime::Enabled::Auto)
            .total_stacks(0);
        let mut config = Config::new();
        config
            .wasm_component_model(true)
            .epoch_interruption(true)
            .consume_fuel(limits.fuel.is_some())
            .max_wasm_stack(limits.wasm_stack_bytes)
            .memory_init_cow(true)
            .allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
        let engine = Engine::new(&config)?;
        let linker = sandbox::linker(&engine)?;
        let ticker = EpochTicker::spawn(&engine, limits.epoch_tick);
        let engine_hash = cache::engine_hash(&engine);
        Ok(AdapterHost {
            inner: Arc::new(Inner {
                engine,
                linker,
                limits,
                cache: Mutex::new(HashMap::new()),
                disk: cache,
                engine_hash,
                compiled: AtomicU64::new(0),
                ticker,
            }),
        })
    }

    /// Components this host compiled from their bytes, i.e. not found in its memory or its compile
    /// cache. After a restart with a warm compile cache this stays 0.
    pub fn compiled_count(&self) -> u64 {
        self.inner.compiled.load(Ordering::Relaxed)
    }

    /// The compile cache on disk, if this host has one.
    pub fn compile_cache(&self) -> Option<&CompileCache> {
        self.inner.disk.as_ref()
    }

    /// Where this host keeps the compiled code of the component with sha-256 `digest`, if it has
    /// a compile cache.
    pub fn compile_cache_entry(&self, digest: &[u8; 32]) -> Option<std::path::PathBuf> {
        self.inner.disk.as_ref().map(|disk| disk.entry_path(digest, &self.inner.engine_hash))
    }

    /// The limits calls run under.
    pub fn limits(&self) -> &Limits {
        &self.inner.limits
    }

    /// Validate an uploaded component: size, that it compiles, that its memory fits, that it
    /// exports a served `velferd:device` version and imports nothing the sandbox does not grant,
    /// and that `describe` answers within the limits; the first problem found is the answer.
    /// The compiled result is kept by sha-256 (in memory, and in the compile cache on disk if
    /// the host has one), so validating the same bytes again (e.g. loading active adapters at
    /// start-up, or after a restart) compiles nothing.
    pub fn validate(&self, bytes: &[u8]) -> Result<ValidatedAdapter, ValidationError> {
        let mut examined = self.examine(bytes, false);
        if !examined.problems.is_empty() {
            return Err(examined.problems.swap_remove(0));
        }
        // Without a problem, `examine` always ends with the adapter.
        examined.adapter.ok_or_else(|| ValidationError::InvalidDescription("the component was not examined".into()))
    }

    /// Examine a component as [`AdapterHost::validate`] does. With `all`, go on after a problem
    /// as far as the component allows (compiling an oversized one, judging every import, calling
    /// `describe` despite the size) and list every problem; without, stop at the first. Only a
    /// component without problems is cached.
    pub(crate) fn examine(&self, bytes: &[u8], all: bool) -> Examination {
        let limits = &self.inner.limits;
        let mut out =
            Examination { problems: vec![], interface_version: None, compilation: None, adapter: None, info: None };
        if bytes.len() > limits.component_bytes {
            out.problems.push(ValidationError::TooLarge { size: bytes.len(), limit: limits.component_bytes });
            if !all {
                return out;
            }
        }
        let digest: [u8; 32] = Sha256::digest(bytes).into();
        let start = Instant::now();
        if let Some(hit) = self.cache().get(&digest).cloned() {
            let compilation = Compilation { duration: start.elapsed(), cache_hit: true };
            out.compilation = Some(compilation);
            out.interface_version = Some(hit.interface_version.clone());
            out.info = Some(hit.info.clone());
            out.adapter = Some(ValidatedAdapter { compilation, ..hit });
            return out;
        }
        let stop = |out: &Examination| !all && !out.problems.is_empty();
        // Memory before compiling, so the refusal is in plain words: the pooling allocator
        // refuses to compile a component whose memory starts over its cap, in its own words.
        let mut fits = true;
        if let Some(initial) = initial_memory(bytes)
            && initial > limits.memory_bytes as u64
        {
            out.problems.push(ValidationError::InitialMemoryTooLarge { size: initial, limit: limits.memory_bytes });
            fits = false;
        }
        if stop(&out) {
            return out;
        }
        let compiled = if fits {
            self.compile(bytes, &digest).map(|(component, compilation)| (component, Some(compilation)))
        } else {
            // Only to read its imports and exports: an engine without the pool's caps.
            Engine::new(Config::new().wasm_component_model(true))
                .and_then(|engine| Component::new(&engine, bytes))
                .map(|component| (component, None))
                .map_err(|e| ValidationError::NotAComponent { message: format!("{e:#}") })
        };
        let (component, compilation) = match compiled {
            Ok(compiled) => compiled,
            Err(problem) => {
                out.problems.push(problem);
                return out;
            }
        };
        out.compilation = compilation;
        if let Some(needs) = component.resources_required()
            && needs.num_memories > MAX_MEMORIES
        {
            out.problems.push(ValidationError::TooManyMemories { count: needs.num_memories, limit: MAX_MEMORIES });
            fits = false;
        }
        if stop(&out) {
            return out;
        }

        let ty = component.component_type();
        let engine = component.engine();
        let exports: Vec<String> = ty.exports(engine).map(|(name, _)| name.to_owned()).collect();
        let version = exports.iter().find_map(|name| {
            name.strip_prefix(PACKAGE).and_then(|rest| rest.strip_prefix("/adapter@")).map(str::to_owned)
        });
        out.interface_version = version.clone();
        let major = match &version {
            None => {
                out.problems.push(ValidationError::WrongWorld { exports });
                None
            }
            Some(version) => {
                let major = version.split('.').next().and_then(|m| m.parse::<u64>().ok());
                let served = major.filter(|m| SUPPORTED_INTERFACE_MAJORS.contains(m));
                if served.is_none() {
                    let supported =
                        SUPPORTED_INTERFACE_MAJORS.iter().map(|m| format!("{m}.x")).collect::<Vec<_>>().join(", ");
                    out.problems
                        .push(ValidationError::UnsupportedInterfaceVersion { found: version.clone(), supported });
                }
                served
            }
        };
        if stop(&out) {
            return out;
        }
        let mut imports_granted = true;
        for (import, _) in ty.imports(engine) {
            if let Err(problem) = check_import(import, version.as_deref()) {
                out.problems.push(problem);
                imports_granted = false;
                if !all {
                    return out;
                }
            }
        }
        // Linking needs a served version, granted imports (a refused import would only be
        // reported again as a missing definition) and this host's engine.
        let (Some(major), Some(version), true, true) = (major, version, imports_granted, fits) else {
            return out;
        };
        let Some(compilation) = compilation else { return out };
        let incompatible =
            |e: wasmtime::Error| ValidationError::Incompatible { version: version.clone(), message: format!("{e:#}") };
        let bindings = self.inner.linker.instantiate_pre(&component).map_err(incompatible).and_then(|pre| {
            Ok(match major {
                1 => Bindings::V1(v1::DeviceAdapterPre::new(pre).map_err(incompatible)?),
                2 => Bindings::V2(v2::DeviceAdapterPre::new(pre).map_err(incompatible)?),
                _ => unreachable!("SUPPORTED_INTERFACE_MAJORS lists only majors with bindings"),
            })
        });
        let bindings = match bindings {
            Ok(bindings) => bindings,
            Err(problem) => {
                out.problems.push(problem);
                return out;
            }
        };
        let mut adapter = ValidatedAdapter {
            sha256: hex(&digest),
            interface_version: version,
            info: AdapterInfo {
                supplier: String::new(),
                product: String::new(),
                adapter_version: String::new(),
                device_classes: vec![],
                content_types: vec![],
            },
            size_bytes: bytes.len(),
            bindings: Arc::new(bindings),
            compilation,
        };
        match self.describe(&adapter).result {
            Err(e) => out.problems.push(ValidationError::DescribeFailed(e)),
            Ok(info) => {
                if let Err(problem) = check_info(&info) {
                    out.problems.push(problem);
                }
                out.info = Some(info.clone());
                adapter.info = info;
            }
        }
        if out.problems.is_empty() {
            self.cache().insert(digest, adapter.clone());
            if !compilation.cache_hit {
                self.store_compiled(&component, &digest);
            }
        }
        out.adapter = Some(adapter);
        out
    }

    /// The compiled component: from the compile cache on disk if it holds a valid entry, else
    /// compiled from `bytes`.
    fn compile(&self, bytes: &[u8], digest: &[u8; 32]) -> Result<(Component, Compilation), ValidationError> {
        let start = Instant::now();
        if let Some(disk) = &self.inner.disk {
            match disk.load(&self.inner.engine, &self.inner.engine_hash, digest) {
                Lookup::Hit(component) => {
                    return Ok((component, Compilation { duration: start.elapsed(), cache_hit: true }));
                }
                Lookup::Miss | Lookup::Rejected => {}
            }
        }
        let component = Component::new(&self.inner.engine, bytes)
            .map_err(|e| ValidationError::NotAComponent { message: format!("{e:#}") })?;
        self.inner.compiled.fetch_add(1, Ordering::Relaxed);
        Ok((component, Compilation { duration: start.elapsed(), cache_hit: false }))
    }

    /// Keeps a validated component's compiled code on disk; failing only costs a compile later.
    fn store_compiled(&self, component: &Component, digest: &[u8; 32]) {
        let Some(disk) = &self.inner.disk else { return };
        let stored = component
            .serialize()
            .map_err(|e| std::io::Error::other(format!("{e:#}")))
            .and_then(|compiled| disk.store(&self.inner.engine_hash, digest, &compiled));
        if let Err(error) = stored {
            tracing::warn!(dir = %disk.dir().display(), %error, "could not write to the compile cache");
        }
    }

    /// Drop a component from the cache (e.g. when an adapter is retired).
    pub fn evict(&self, sha256: &str) {
        self.cache().retain(|digest, _| hex(digest) != sha256);
    }

    /// Call `describe` in a fresh sandbox.
    pub fn describe(&self, adapter: &ValidatedAdapter) -> CallReport<AdapterInfo> {
        let call = self.inner.limits.call_limits();
        self.call(adapter, &call, "-", "describe", |store, instance| {
            Ok(Ok(match instance {
                Instance::V1(b) => v1::describe(store, b)?,
                Instance::V2(b) => v2::describe(store, b)?,
            }))
        })
    }

    /// Decode one message for `municipality` (its key, e.g. the
    /// municipality number; recorded with the adapter's log lines), received
    /// now. See [`AdapterHost::decode_with_report`] for cost and logs.
    pub fn decode(
        &self,
        adapter: &ValidatedAdapter,
        municipality: &str,
        content_type: &str,
        payload: &[u8],
    ) -> Result<Vec<Event>, DecodeError> {
        self.decode_with_report(adapter, municipality, content_type, payload, Utc::now()).result
    }

    /// Decode one message in a fresh sandbox, returning the events or a
    /// typed error together with what the call cost and what it logged.
    pub fn decode_with_report(
        &self,
        adapter: &ValidatedAdapter,
        municipality: &str,
        content_type: &str,
        payload: &[u8],
        received_at: DateTime<Utc>,
    ) -> CallReport<Vec<Event>> {
        let call = self.inner.limits.call_limits();
        self.decode_with_limits(adapter, &call, municipality, content_type, payload, received_at)
    }

    /// [`AdapterHost::decode_with_report`] under `call`'s fuel, deadline and memory instead of
    /// the host's: the limits approved for this adapter version.
    pub fn decode_with_limits(
        &self,
        adapter: &ValidatedAdapter,
        call: &CallLimits,
        municipality: &str,
        content_type: &str,
        payload: &[u8],
        received_at: DateTime<Utc>,
    ) -> CallReport<Vec<Event>> {
        let limits = &self.inner.limits;
        if let Err(error) = check_input(limits, content_type, payload) {
            return CallReport { result: Err(error), cost: CallCost::default(), logs: vec![] };
        }
        let call = self.within_host(call);
        let report = self.call(adapter, &call, municipality, "decode", |store, instance| {
            decode_call(store, instance, content_type, payload, received_at)
        });
        cap_output(report, limits.output_bytes)
    }

    /// Encode a command for `device_serial` in a fresh sandbox.
    pub fn encode_command(
        &self,
        adapter: &ValidatedAdapter,
        municipality: &str,
        device_serial: &str,
        command: &Command,
    ) -> CallReport<EncodedCommand> {
        let limits = &self.inner.limits;
        let call = limits.call_limits();
        let mut report = self.call(adapter, &call, municipality, "encode-command", |store, instance| match instance {
            Instance::V1(b) => v1::encode_command(store, b, device_serial, command),
            Instance::V2(b) => v2::encode_command(store, b, device_serial, command),
        });
        if let Ok(encoded) = &report.result {
            report.cost.output_bytes = encoded.body.len();
            if encoded.body.len() > limits.output_bytes {
                let error = DecodeError::OutputTooLarge { size: encoded.body.len(), limit: limits.output_bytes };
                report.result = Err(error);
            }
        }
        report
    }

    fn cache(&self) -> std::sync::MutexGuard<'_, HashMap<[u8; 32], ValidatedAdapter>> {
        self.inner.cache.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// `call` as this host can enforce it: memory at most a pool slot, fuel only when the
    /// engine meters it.
    fn within_host(&self, call: &CallLimits) -> CallLimits {
        let limits = &self.inner.limits;
        CallLimits {
            deadline: call.deadline,
            fuel: if limits.fuel.is_some() { call.fuel } else { None },
            memory_bytes: call.memory_bytes.min(limits.memory_bytes),
        }
    }

    /// One call in a fresh store and instance under `call`.
    fn call<R>(
        &self,
        adapter: &ValidatedAdapter,
        call: &CallLimits,
        municipality: &str,
        operation: &str,
        f: impl FnOnce(&mut Store<Sandbox>, &Instance) -> wasmtime::Result<Result<R, DecodeError>>,
    ) -> CallReport<R> {
        let start = Instant::now();
        let _ticking = self.inner.ticker.start();
        let mut store = self.store(call);
        match adapter.bindings.instantiate(&mut store) {
            Ok(instance) => self.run(adapter, call, municipality, operation, &mut store, Ok(&instance), start, f),
            Err(error) => self.run(adapter, call, municipality, operation, &mut store, Err(error), start, f),
        }
    }

    /// A store for one sandbox, with the memory limiter installed.
    fn store(&self, call: &CallLimits) -> Store<Sandbox> {
        let limits = &self.inner.limits;
        let mut store = Store::new(&self.inner.engine, Sandbox::new(call.memory_bytes, limits.log_bytes));
        store.limiter(|s| &mut s.limiter);
        if let Err(error) = self.set_budget(&mut store, call) {
            // Only fails when fuel is not enabled, which `new` rules out.
            tracing::error!(%error, "setting an adapter call's budget failed");
        }
        store
    }

    /// Fuel and deadline for one call.
    fn set_budget(&self, store: &mut Store<Sandbox>, call: &CallLimits) -> wasmtime::Result<()> {
        let limits = &self.inner.limits;
        if limits.fuel.is_some() {
            // An engine that meters fuel needs a budget in every store: a version approved to
            // run unmetered gets one it cannot use up.
            store.set_fuel(call.fuel.unwrap_or(u64::MAX))?;
        }
        let tick = limits.epoch_tick.as_nanos().max(1);
        store.set_epoch_deadline((call.deadline.as_nanos().div_ceil(tick)) as u64);
        store.epoch_deadline_trap();
        Ok(())
    }

    /// Run `f` on `instance` with a fresh budget: fuel, deadline, log cap.
    #[allow(clippy::too_many_arguments)]
    fn run<R>(
        &self,
        adapter: &ValidatedAdapter,
        call: &CallLimits,
        municipality: &str,
        operation: &str,
        store: &mut Store<Sandbox>,
        instance: wasmtime::Result<&Instance>,
        start: Instant,
        f: impl FnOnce(&mut Store<Sandbox>, &Instance) -> wasmtime::Result<Result<R, DecodeError>>,
    ) -> CallReport<R> {
        // A fresh store got its budget in `store()`, before instantiation, so
        // that instantiation counts too; a warm one gets a new one here.
        let outcome = instance.and_then(|instance| {
            if !store.data().fresh {
                self.set_budget(store, call)?;
                store.data_mut().reset_for_call();
            }
            store.data_mut().fresh = false;
            f(store, instance)
        });
        let mut denied = store.data().denied.clone();
        denied.dedup();
        let result = match outcome {
            // Reaching for a capability fails the call even when the adapter
            // coped with the empty answer: the supplier must hear about it.
            Ok(
                Ok(_) | Err(DecodeError::Malformed(_) | DecodeError::Unsupported(_) | DecodeError::InvalidCommand(_)),
            ) if !denied.is_empty() => Err(DecodeError::CapabilityDenied(sandbox::capability_denied(&denied))),
            Ok(result) => result,
            Err(error) => Err(self.classify(error, store.data(), call)),
        };
        let instructions = call.fuel.and_then(|fuel| store.get_fuel().ok().map(|left| fuel - left));
        let data = store.data();
        let (logs, dropped) = {
            let mut buffer = data.logs.lock().unwrap_or_else(|p| p.into_inner());
            buffer.finish();
            (std::mem::take(&mut buffer.lines), buffer.dropped)
        };
        let cost = CallCost {
            instructions,
            peak_memory_bytes: data.limiter.peak,
            wall_time: start.elapsed(),
            output_bytes: 0,
            log_bytes_dropped: dropped,
        };
        forward_logs(&adapter.sha256, municipality, operation, &logs, dropped);
        if let Err(error) = &result {
            tracing::debug!(target: "velferd::adapter", adapter = %adapter.sha256, municipality, operation, %error, "adapter call failed");
        }
        // With a panic, the guest's last stderr lines say why: keep them in
        // the error, not only in the logs.
        let result = match result {
            Err(DecodeError::Trap(trap)) => {
                let stderr: Vec<&str> =
                    logs.iter().filter(|l| l.source == LogSource::Stderr).map(|l| l.text.as_str()).collect();
                // std prints "thread … panicked at file:line:col:" and the
                // message on the next line.
                let panic = stderr
                    .iter()
                    .rposition(|l| l.contains("panicked at"))
                    .map(|i| stderr[i..].iter().take(2).copied().collect::<Vec<_>>().join(" "));
                Err(DecodeError::Trap(match panic {
                    Some(panic) => format!("{trap} ({panic})"),
                    None => trap,
                }))
            }
            other => other,
        };
        CallReport { result, cost, logs }
    }

    /// A warm instance of `adapter` for `municipality`, for callers that
    /// decode a batch of messages in one instance (see [`WarmInstance`]).
    pub fn instantiate(&self, adapter: &ValidatedAdapter, municipality: &str) -> Result<WarmInstance, DecodeError> {
        let start = Instant::now();
        let call = self.inner.limits.call_limits();
        let _ticking = self.inner.ticker.start();
        let mut store = self.store(&call);
        let store_ready = Instant::now();
        let instance = adapter.bindings.instantiate(&mut store).map_err(|e| self.classify(e, store.data(), &call))?;
        Ok(WarmInstance {
            host: self.clone(),
            adapter: adapter.clone(),
            municipality: municipality.to_owned(),
            store,
            instance,
            broken: false,
            calls: 0,
            setup_time: store_ready - start,
            instantiate_time: store_ready.elapsed(),
        })
    }

    fn classify(&self, error: wasmtime::Error, sandbox: &Sandbox, call: &CallLimits) -> DecodeError {
        if let Some(busy) = error.downcast_ref::<wasmtime::PoolConcurrencyLimitError>() {
            return DecodeError::HostBusy(busy.to_string());
        }
        match error.downcast_ref::<Trap>() {
            Some(Trap::OutOfFuel) => DecodeError::FuelExhausted { limit: call.fuel.unwrap_or(0) },
            Some(Trap::Interrupt) => DecodeError::DeadlineExceeded { limit_ms: call.deadline.as_millis() as u64 },
            Some(Trap::StackOverflow) => DecodeError::StackOverflow,
            // A denied memory.grow makes the guest's allocator fail and the
            // guest abort: the trap is the symptom, the cap the cause.
            Some(_) | None if sandbox.limiter.denied => DecodeError::MemoryExceeded { limit: call.memory_bytes },
            Some(trap) => DecodeError::Trap(trap.to_string()),
            None => DecodeError::Internal(format!("{error:#}")),
        }
    }
}

/// A live instance of one served interface version.
enum Instance {
    V1(v1::DeviceAdapter),
    V2(v2::DeviceAdapter),
}

impl Bindings {
    fn instantiate(&self, store: &mut Store<Sandbox>) -> wasmtime::Result<Instance> {
        Ok(match self {
            Bindings::V1(pre) => Instance::V1(pre.instantiate(store)?),
            Bindings::V2(pre) => Instance::V2(pre.instantiate(store)?),
        })
    }
}

/// One instance kept warm for several calls of one municipality: the
/// "per batch" isolation policy. Each call gets a fresh budget (fuel,
/// deadline, log cap) but the instance's memory persists between calls, so
/// use one only for messages of one municipality and adapter, and drop it
/// after the batch. After a trap or a limit hit it refuses further calls.
/// [`AdapterHost::decode`] (a fresh instance per message) is the default
/// policy; this exists for batches and for the benchmark that compares them.
pub struct WarmInstance {
    host: AdapterHost,
    adapter: ValidatedAdapter,
    municipality: String,
    store: Store<Sandbox>,
    instance: Instance,
    broken: bool,
    calls: u64,
    /// Time to create the store and its WASI context.
    pub setup_time: Duration,
    /// Time to instantiate the component in that store.
    pub instantiate_time: Duration,
}

impl WarmInstance {
    /// Decode one message on this instance.
    pub fn decode(&mut self, content_type: &str, payload: &[u8], received_at: DateTime<Utc>) -> CallReport<Vec<Event>> {
        let limits = self.host.inner.limits.clone();
        if let Err(error) = check_input(&limits, content_type, payload) {
            return CallReport { result: Err(error), cost: CallCost::default(), logs: vec![] };
        }
        if self.broken {
            let error = DecodeError::Trap("this instance trapped earlier; make a new one".into());
            return CallReport { result: Err(error), cost: CallCost::default(), logs: vec![] };
        }
        self.calls += 1;
        let start = Instant::now();
        let call = limits.call_limits();
        let _ticking = self.host.inner.ticker.start();
        let report = self.host.run(
            &self.adapter,
            &call,
            &self.municipality,
            "decode",
            &mut self.store,
            Ok(&self.instance),
            start,
            |store, instance| decode_call(store, instance, content_type, payload, received_at),
        );
        if report.result.as_ref().is_err_and(|e| {
            !matches!(e, DecodeError::Malformed(_) | DecodeError::Unsupported(_) | DecodeError::OutputTooLarge { .. })
        }) {
            self.broken = true;
        }
        cap_output(report, limits.output_bytes)
    }

    /// Calls made on this instance so far.
    pub fn calls(&self) -> u64 {
        self.calls
    }
}

fn check_input(limits: &Limits, content_type: &str, payload: &[u8]) -> Result<(), DecodeError> {
    if payload.len() > limits.input_bytes {
        return Err(DecodeError::InputTooLarge { size: payload.len(), limit: limits.input_bytes });
    }
    if content_type.len() > 256 {
        return Err(DecodeError::Unsupported("content type longer than 256 bytes".into()));
    }
    Ok(())
}

fn cap_output(mut report: CallReport<Vec<Event>>, limit: usize) -> CallReport<Vec<Event>> {
    match &mut report.result {
        Ok(events) => {
            let size = serde_json::to_vec(events).map(|v| v.len()).unwrap_or(usize::MAX);
            report.cost.output_bytes = size;
            if size > limit {
                report.result = Err(DecodeError::OutputTooLarge { size, limit });
            }
        }
        Err(
            DecodeError::Malformed(message) | DecodeError::Unsupported(message) | DecodeError::InvalidCommand(message),
        ) => {
            cap_message(message);
        }
        Err(_) => {}
    }
    report
}

/// Most characters of an adapter's own error message that are kept: the host stores it with
/// the dead letter, so an adapter must not choose how much that takes.
pub const MAX_ERROR_MESSAGE_CHARS: usize = 1000;

/// Cuts an adapter's error message to [`MAX_ERROR_MESSAGE_CHARS`], saying so.
fn cap_message(message: &mut String) {
    if let Some((cut, _)) = message.char_indices().nth(MAX_ERROR_MESSAGE_CHARS) {
        message.truncate(cut);
        message.push_str(" … (cut)");
    }
}

fn decode_call(
    store: &mut Store<Sandbox>,
    instance: &Instance,
    content_type: &str,
    payload: &[u8],
    received_at: DateTime<Utc>,
) -> wasmtime::Result<Result<Vec<Event>, DecodeError>> {
    match instance {
        Instance::V1(b) => v1::decode(store, b, content_type, payload, received_at),
        Instance::V2(b) => v2::decode(store, b, content_type, payload, received_at),
    }
}

/// The thread that advances the engine's epoch, which is what ends a call past its deadline. It
/// ticks only while a call is in flight and parks otherwise: a tick a millisecond on an idle
/// server is a thousand wake-ups a second (two engines: two thousand) for nothing to interrupt.
struct EpochTicker {
    state: Arc<TickerState>,
    thread: std::thread::Thread,
}

struct TickerState {
    /// Calls that may run guest code now (store set up, instantiating or running).
    in_flight: AtomicUsize,
    /// The host is gone: the thread ends.
    stopped: AtomicBool,
}

/// Keeps the ticker ticking while it lives: hold one for as long as guest code may run.
#[must_use]
struct Ticking<'a>(&'a EpochTicker);

impl EpochTicker {
    fn spawn(engine: &Engine, tick: Duration) -> EpochTicker {
        let state = Arc::new(TickerState { in_flight: AtomicUsize::new(0), stopped: AtomicBool::new(false) });
        let weak = engine.weak();
        let shared = state.clone();
        let handle = std::thread::Builder::new()
            .name("velferd-adapter-epoch".into())
            .spawn(move || {
                loop {
                    if shared.stopped.load(Ordering::SeqCst) {
                        return;
                    }
                    if shared.in_flight.load(Ordering::SeqCst) == 0 {
                        // `start` unparks after raising the count, and an unpark that comes
                        // before this park makes it return at once: no call is missed.
                        std::thread::park();
                        continue;
                    }
                    // Sleep first: a call that woke the ticker gets a whole tick before its
                    // first, so a deadline of n ticks is never shorter than n ticks.
                    std::thread::sleep(tick);
                    // Ends by itself once the last AdapterHost (and so the engine) is gone.
                    match weak.upgrade() {
                        Some(engine) => engine.increment_epoch(),
                        None => return,
                    }
                }
            })
            .expect("spawn the epoch ticker thread");
        EpochTicker { state, thread: handle.thread().clone() }
    }

    /// Ticks until the returned guard is dropped.
    fn start(&self) -> Ticking<'_> {
        if self.state.in_flight.fetch_add(1, Ordering::SeqCst) == 0 {
            self.thread.unpark();
        }
        Ticking(self)
    }
}

impl Drop for Ticking<'_> {
    fn drop(&mut self) {
        // The ticker sees zero on its next round and parks.
        self.0.state.in_flight.fetch_sub(1, Ordering::SeqCst);
    }
}

impl Drop for EpochTicker {
    fn drop(&mut self) {
        self.state.stopped.store(true, Ordering::SeqCst);
        self.thread.unpark();
    }
}

/// Whether the sandbox grants `import` to an adapter exporting `velferd:device` `version` (with
/// none found: to an adapter of any served version).
fn check_import(import: &str, version: Option<&str>) -> Result<(), ValidationError> {
    let (base, import_version) = import.split_once('@').unwrap_or((import, ""));
    let major = |v: &str| v.split('.').next().map(str::to_owned);
    let granted = if base == "velferd:device/log" || base == "velferd:device/types" {
        match version {
            Some(version) => major(import_version) == major(version),
            None => major(import_version)
                .and_then(|m| m.parse::<u64>().ok())
                .is_some_and(|m| SUPPORTED_INTERFACE_MAJORS.contains(&m)),
        }
    } else {
        GRANTED_WASI.contains(&base) && import_version.starts_with("0.2.")
    };
    if granted {
        return Ok(());
    }
    let reason = if base.starts_with("wasi:filesystem/") {
        "the sandbox grants no file system"
    } else if base.starts_with("wasi:sockets/") || base.starts_with("wasi:http/") {
        "the sandbox grants no network"
    } else {
        "adapters may import only velferd:device/log and the WASI basics Rust's std needs"
    };
    Err(ValidationError::ForbiddenImport { import: import.to_owned(), reason: reason.to_owned() })
}

fn check_info(info: &AdapterInfo) -> Result<(), ValidationError> {
    let bad = |m: &str| Err(ValidationError::InvalidDescription(m.to_owned()));
    let short = |s: &str| !s.trim().is_empty() && s.len() <= 128;
    if !short(&info.supplier) || !short(&info.product) || !short(&info.adapter_version) {
        return bad("supplier, product and adapter-version must be 1 to 128 bytes");
    }
    if info.device_classes.is_empty() {
        return bad("an adapter handles at least one device class");
    }
    if info.content_types.is_empty() || info.content_types.len() > 16 || !info.content_types.iter().all(|c| short(c)) {
        return bad("an adapter accepts 1 to 16 content types of 1 to 128 bytes");
    }
    Ok(())
}

fn forward_logs(sha256: &str, municipality: &str, operation: &str, logs: &[LogLine], dropped: usize) {
    let adapter = &sha256[..12.min(sha256.len())];
    for line in logs {
        let text = &line.text;
        match line.source {
            LogSource::Debug => tracing::debug!(target: "velferd::adapter", adapter, municipality, operation, "{text}"),
            LogSource::Info | LogSource::Stdout => {
                tracing::info!(target: "velferd::adapter", adapter, municipality, operation, "{text}")
            }
            LogSource::Warn => tracing::warn!(target: "velferd::adapter", adapter, municipality, operation, "{text}"),
            LogSource::Error | LogSource::Stderr => {
                tracing::error!(target: "velferd::adapter", adapter, municipality, operation, "{text}")
            }
        }
    }
    if dropped > 0 {
        tracing::warn!(target: "velferd::adapter", adapter, municipality, operation, dropped, "adapter log output over the cap was dropped");
    }
}

fn hex(bytes: &[u8]) -> String {
    cache::hex(bytes)
}

/// The largest initial size of a memory the component's core modules define, in bytes; `None`
/// when the bytes do not parse (compiling them then says why).
fn initial_memory(bytes: &[u8]) -> Option<u64> {
    let mut largest = 0u64;
    for payload in wasmparser::Parser::new(0).parse_all(bytes) {
        if let wasmparser::Payload::MemorySection(memories) = payload.ok()? {
            for memory in memories {
                let memory = memory.ok()?;
                let page = memory.page_size_log2.map_or(WASM_PAGE, |log2| 1u64 << log2.min(16));
                largest = largest.max(memory.initial.saturating_mul(page));
            }
        }
    }
    Some(largest)
}

/// A size in bytes as people say it: "4 MiB", "12.4 MiB", "512 KiB".
pub(crate) fn size_text(bytes: impl TryInto<u64>) -> String {
    let n = bytes.try_into().unwrap_or(u64::MAX);
    let (unit, name) = if n >= 1 << 20 {
        (1u64 << 20, "MiB")
    } else if n >= 1 << 10 {
        (1 << 10, "KiB")
    } else {
        (1, "B")
    };
    if n.is_multiple_of(unit) {
        format!("{} {name}", n / unit)
    } else {
        format!("{:.1} {name}", n as f64 / unit as f64)
    }
}

#[cfg(test)]
mod message_tests {
    use super::*;

    #[test]
    fn an_adapters_error_message_is_cut_to_a_thousand_characters() {
        let mut long = "ø".repeat(5000);
        cap_message(&mut long);
        assert_eq!(long.chars().count(), MAX_ERROR_MESSAGE_CHARS + " … (cut)".chars().count());
        let mut short = "bad dose".to_string();
        cap_message(&mut short);
        assert_eq!(short, "bad dose");
        let report = CallReport {
            result: Err(DecodeError::Malformed("x".repeat(2000))),
            cost: CallCost::default(),
            logs: vec![],
        };
        match cap_output(report, 10).result {
            Err(DecodeError::Malformed(m)) => assert!(m.len() < 1100, "{}", m.len()),
            other => panic!("{other:?}"),
        }
    }
}
