//! What a guest can reach: the store's state, the capped log sink, the memory
//! limiter and the linker that grants (almost) nothing.

use std::sync::{Arc, Mutex};

use serde::Serialize;
use wasmtime::component::{HasData, Linker, ResourceTable};
use wasmtime::{ResourceLimiter, Result};
use wasmtime_wasi::cli::{IsTerminal, StdoutStream, WasiCli, WasiCliView};
use wasmtime_wasi::clocks::{WasiClocks, WasiClocksView};
use wasmtime_wasi::p2::{OutputStream, Pollable, StreamError};
use wasmtime_wasi::random::WasiRandom;
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

/// WASI interfaces (0.2.x) a component may import. Rust's `wasm32-wasip2`
/// standard library imports the `cli` and `io` ones even when unused;
/// clocks and randomness reveal nothing and std's `HashMap` and `Instant`
/// need them. `environment` is linked but answers nothing, and a call that
/// asked fails (see `linker`).
/// Files and sockets are not linked at all: components that import them are
/// rejected on upload.
pub(crate) const GRANTED_WASI: &[&str] = &[
    "wasi:io/error",
    "wasi:io/poll",
    "wasi:io/streams",
    "wasi:cli/environment",
    "wasi:cli/exit",
    "wasi:cli/stdin",
    "wasi:cli/stdout",
    "wasi:cli/stderr",
    "wasi:cli/terminal-input",
    "wasi:cli/terminal-output",
    "wasi:cli/terminal-stdin",
    "wasi:cli/terminal-stdout",
    "wasi:cli/terminal-stderr",
    "wasi:clocks/wall-clock",
    "wasi:clocks/monotonic-clock",
    "wasi:random/random",
    "wasi:random/insecure",
    "wasi:random/insecure-seed",
];

/// The message of a call that reached for a capability the sandbox does not
/// grant.
pub(crate) fn capability_denied(what: &[&'static str]) -> String {
    format!("the adapter tried to read {}; the sandbox grants none", what.join(" and "))
}

/// Where a log line came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum LogSource {
    Debug,
    Info,
    Warn,
    Error,
    Stdout,
    Stderr,
}

/// One line an adapter logged.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LogLine {
    pub source: LogSource,
    pub text: String,
}

/// The per-call log buffer, shared by the `log` import, stdout and stderr.
#[derive(Debug, Default)]
pub(crate) struct LogBuffer {
    cap: usize,
    used: usize,
    pub(crate) dropped: usize,
    pub(crate) lines: Vec<LogLine>,
    stdout: Vec<u8>,
    stderr: Vec<u8>,
}

impl LogBuffer {
    fn new(cap: usize) -> Self {
        LogBuffer { cap, ..Default::default() }
    }

    /// Takes at most the remaining budget of `bytes`, counting the rest as
    /// dropped.
    fn admit(&mut self, len: usize) -> usize {
        let take = len.min(self.cap - self.used);
        self.used += take;
        self.dropped += len - take;
        take
    }

    fn log(&mut self, source: LogSource, text: &str) {
        let mut take = self.admit(text.len());
        while !text.is_char_boundary(take) {
            take -= 1;
        }
        if take > 0 {
            self.lines.push(LogLine { source, text: text[..take].to_owned() });
        }
    }

    fn write(&mut self, source: LogSource, bytes: &[u8]) {
        let take = self.admit(bytes.len());
        let buf = if source == LogSource::Stdout { &mut self.stdout } else { &mut self.stderr };
        buf.extend_from_slice(&bytes[..take]);
    }

    /// Split stdout and stderr into lines and append them.
    pub(crate) fn finish(&mut self) {
        for (source, bytes) in [
            (LogSource::Stdout, std::mem::take(&mut self.stdout)),
            (LogSource::Stderr, std::mem::take(&mut self.stderr)),
        ] {
            for line in String::from_utf8_lossy(&bytes).lines().filter(|l| !l.trim().is_empty()) {
                self.lines.push(LogLine { source, text: line.to_owned() });
            }
        }
    }
}

/// stdout or stderr of a guest: writes go to the call's capped log buffer and
/// never block or fail (a chatty guest loses log lines, not its call).
#[derive(Clone)]
pub(crate) struct CappedStream {
    source: LogSource,
    buffer: Arc<Mutex<LogBuffer>>,
}

impl IsTerminal for CappedStream {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdoutStream for CappedStream {
    fn p2_stream(&self) -> Box<dyn OutputStream> {
        Box::new(self.clone())
    }

    fn async_stream(&self) -> Box<dyn tokio::io::AsyncWrite + Send + Sync> {
        Box::new(self.clone())
    }
}

#[wasmtime_wasi::async_trait]
impl OutputStream for CappedStream {
    fn write(&mut self, bytes: bytes::Bytes) -> Result<(), StreamError> {
        self.buffer.lock().unwrap_or_else(|p| p.into_inner()).write(self.source, &bytes);
        Ok(())
    }

    fn flush(&mut self) -> Result<(), StreamError> {
        Ok(())
    }

    fn check_write(&mut self) -> Result<usize, StreamError> {
        Ok(64 * 1024)
    }
}

#[wasmtime_wasi::async_trait]
impl Pollable for CappedStream {
    async fn ready(&mut self) {}
}

impl tokio::io::AsyncWrite for CappedStream {
    fn poll_write(
        self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        self.buffer.lock().unwrap_or_else(|p| p.into_inner()).write(self.source, buf);
        std::task::Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(
        self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::task::Poll::Ready(Ok(()))
    }

    fn poll_shutdown(
        self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::task::Poll::Ready(Ok(()))
    }
}

/// Caps linear memory and remembers the peak and whether growth was denied,
/// so that an allocation failure is reported as `MemoryExceeded`.
#[derive(Debug, Default)]
pub(crate) struct MemoryLimiter {
    pub(crate) cap: usize,
    pub(crate) peak: usize,
    pub(crate) denied: bool,
}

impl ResourceLimiter for MemoryLimiter {
    fn memory_growing(&mut self, _current: usize, desired: usize, _maximum: Option<usize>) -> Result<bool> {
        if desired > self.cap {
            self.denied = true;
            return Ok(false);
        }
        self.peak = self.peak.max(desired);
        Ok(true)
    }

    fn table_growing(&mut self, _current: usize, desired: usize, _maximum: Option<usize>) -> Result<bool> {
        // Tables hold function references; 10 000 is far beyond any adapter.
        Ok(desired <= 10_000)
    }
}

/// The state of one store: one call's sandbox.
pub(crate) struct Sandbox {
    wasi: WasiCtx,
    table: ResourceTable,
    pub(crate) limiter: MemoryLimiter,
    pub(crate) logs: Arc<Mutex<LogBuffer>>,
    /// Capabilities the guest asked for and did not get.
    pub(crate) denied: Vec<&'static str>,
    /// No call has run in this store yet.
    pub(crate) fresh: bool,
}

impl Sandbox {
    pub(crate) fn new(memory_cap: usize, log_cap: usize) -> Self {
        let logs = Arc::new(Mutex::new(LogBuffer::new(log_cap)));
        // No preopens, no environment, no arguments, no network: the
        // builder's defaults plus captured stdio.
        let wasi = WasiCtx::builder()
            .stdout(CappedStream { source: LogSource::Stdout, buffer: logs.clone() })
            .stderr(CappedStream { source: LogSource::Stderr, buffer: logs.clone() })
            .allow_tcp(false)
            .allow_udp(false)
            .allow_ip_name_lookup(false)
            .build();
        Sandbox {
            wasi,
            table: ResourceTable::new(),
            limiter: MemoryLimiter { cap: memory_cap, ..Default::default() },
            logs,
            denied: Vec::new(),
            fresh: true,
        }
    }
}

impl Sandbox {
    /// Keep one line the adapter logged through the `log` import, within the
    /// call's cap.
    pub(crate) fn record_log(&mut self, source: LogSource, text: &str) {
        self.logs.lock().unwrap_or_else(|p| p.into_inner()).log(source, text);
    }

    /// Forget the previous call's logs and findings (warm instances).
    pub(crate) fn reset_for_call(&mut self) {
        let mut logs = self.logs.lock().unwrap_or_else(|p| p.into_inner());
        let cap = logs.cap;
        *logs = LogBuffer::new(cap);
        drop(logs);
        self.denied.clear();
        self.limiter.denied = false;
    }
}

impl WasiView for Sandbox {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView { ctx: &mut self.wasi, table: &mut self.table }
    }
}

struct HasIo;

impl HasData for HasIo {
    type Data<'a> = &'a mut ResourceTable;
}

/// The one linker of every served interface version: each version's `log`
/// import and the granted WASI subset, nothing else.
pub(crate) fn linker(engine: &wasmtime::Engine) -> Result<Linker<Sandbox>> {
    use wasmtime_wasi::p2::bindings::{cli, clocks, random, sync};
    let mut l = Linker::<Sandbox>::new(engine);
    crate::contract::add_to_linker(&mut l)?;

    wasmtime_wasi_io::bindings::wasi::io::error::add_to_linker::<Sandbox, HasIo>(&mut l, |t| &mut t.table)?;
    sync::io::poll::add_to_linker::<Sandbox, HasIo>(&mut l, |t| &mut t.table)?;
    sync::io::streams::add_to_linker::<Sandbox, HasIo>(&mut l, |t| &mut t.table)?;
    clocks::wall_clock::add_to_linker::<Sandbox, WasiClocks>(&mut l, |t| t.clocks())?;
    clocks::monotonic_clock::add_to_linker::<Sandbox, WasiClocks>(&mut l, |t| t.clocks())?;
    random::random::add_to_linker::<Sandbox, WasiRandom>(&mut l, |t| t.wasi.random())?;
    random::insecure::add_to_linker::<Sandbox, WasiRandom>(&mut l, |t| t.wasi.random())?;
    random::insecure_seed::add_to_linker::<Sandbox, WasiRandom>(&mut l, |t| t.wasi.random())?;
    cli::exit::add_to_linker::<Sandbox, WasiCli>(&mut l, |t| t.cli())?;
    cli::stdin::add_to_linker::<Sandbox, WasiCli>(&mut l, |t| t.cli())?;
    cli::stdout::add_to_linker::<Sandbox, WasiCli>(&mut l, |t| t.cli())?;
    cli::stderr::add_to_linker::<Sandbox, WasiCli>(&mut l, |t| t.cli())?;
    cli::terminal_input::add_to_linker::<Sandbox, WasiCli>(&mut l, |t| t.cli())?;
    cli::terminal_output::add_to_linker::<Sandbox, WasiCli>(&mut l, |t| t.cli())?;
    cli::terminal_stdin::add_to_linker::<Sandbox, WasiCli>(&mut l, |t| t.cli())?;
    cli::terminal_stdout::add_to_linker::<Sandbox, WasiCli>(&mut l, |t| t.cli())?;
    cli::terminal_stderr::add_to_linker::<Sandbox, WasiCli>(&mut l, |t| t.cli())?;

    // std imports `wasi:cli/environment` in every component, but there is
    // nothing in it for an adapter: reads get an empty answer and are
    // recorded, and the host fails a call that made one unless it failed
    // harder already. Trapping right away would hide panics, whose hook reads
    // RUST_BACKTRACE before printing the message.
    let mut env = l.instance("wasi:cli/environment@0.2.6")?;
    env.func_wrap("get-environment", |mut s, (): ()| -> Result<(Vec<(String, String)>,)> {
        s.data_mut().denied.push("environment variables");
        Ok((Vec::new(),))
    })?;
    env.func_wrap("get-arguments", |mut s, (): ()| -> Result<(Vec<String>,)> {
        s.data_mut().denied.push("command-line arguments");
        Ok((Vec::new(),))
    })?;
    env.func_wrap("initial-cwd", |_, (): ()| -> Result<(Option<String>,)> { Ok((None,)) })?;
    Ok(l)
}
