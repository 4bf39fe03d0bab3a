//! `velferd adapter check`: examine a component the way the server will on upload, reporting
//! every problem at once (size, memory, exports, interface version, each refused import,
//! `describe`), decode a sample message if given, and show what it cost against the limits.

use std::fmt;
use std::path::{Path, PathBuf};

use chrono::Utc;
use sha2::Digest;

use crate::cache::CompileCache;
use crate::host::{AdapterHost, AdapterInfo, CallCost, Compilation, DecodeError, ValidationError};
use crate::{Event, Limits, LogLine};

/// Every code a sample's decode can fail with ([`DecodeError::code`]): what `--expect-error`
/// accepts.
pub const SAMPLE_ERROR_CODES: &[&str] = &[
    "malformed",
    "unsupported",
    "invalid-command",
    "input-too-large",
    "deadline-exceeded",
    "fuel-exhausted",
    "memory-exceeded",
    "stack-overflow",
    "output-too-large",
    "invalid-output",
    "capability-denied",
    "trap",
    "host-busy",
    "internal",
];

/// What the check judged with; printed so a supplier knows whose limits said yes or no.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LimitsSource {
    /// The platform's defaults: what every product starts with.
    Defaults,
    /// A product's approved limits from a `--limits` file (see [`crate::ApprovedLimits`]).
    Approved(PathBuf),
    /// An operator's server settings: a `--config` file and/or `VELFERD_ADAPTER_*` variables.
    Settings(String),
}

impl fmt::Display for LimitsSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LimitsSource::Defaults => write!(f, "the defaults every product starts with"),
            LimitsSource::Approved(file) => write!(f, "the approved limits in {}", file.display()),
            LimitsSource::Settings(what) => write!(f, "the server's settings ({what})"),
        }
    }
}

/// A message to decode as part of the check.
#[derive(Debug, Clone, Copy)]
pub struct Sample<'a> {
    pub file: &'a Path,
    pub content_type: &'a str,
    /// The code the decode should fail with (one of [`SAMPLE_ERROR_CODES`]), for a sample that
    /// is broken on purpose; `None` when it should decode.
    pub expect_error: Option<&'a str>,
}

/// How to check, besides the limits.
#[derive(Debug, Clone, Default)]
pub struct CheckOptions<'a> {
    pub sample: Option<Sample<'a>>,
    /// Where compiled components are kept between checks (and the server's restarts).
    pub cache: Option<CompileCache>,
}

/// What `check` found. `Display` is the human report; [`CheckReport::passed`]
/// decides the exit code (0 when passed, 1 otherwise).
#[derive(Debug, Clone)]
pub struct CheckReport {
    pub file: PathBuf,
    pub limits: Limits,
    /// Size and sha-256 of the file, when it could be read.
    pub size_bytes: Option<usize>,
    pub sha256: Option<String>,
    /// How the compiled code was obtained, when the component compiled.
    pub compilation: Option<Compilation>,
    /// The compile cache used, if any.
    pub cache_dir: Option<PathBuf>,
    /// The `velferd:device` version the component exports, when it exports one.
    pub interface_version: Option<String>,
    /// What `describe` answered, when it could be called.
    pub info: Option<AdapterInfo>,
    /// The cost of one `describe` call on a fresh instance.
    pub describe_cost: Option<CallCost>,
    /// Every problem found; empty when the server would accept the component.
    pub problems: Vec<CheckError>,
    /// The sample's decode, when one was given.
    pub sample: Option<SampleReport>,
}

/// A problem that makes the check fail.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CheckError {
    #[error("cannot read {path}: {message}")]
    Unreadable { path: String, message: String },
    #[error("cannot start the adapter host: {0}")]
    Host(String),
    #[error(transparent)]
    Rejected(#[from] ValidationError),
}

/// The decode of a sample message.
#[derive(Debug, Clone)]
pub struct SampleReport {
    pub file: PathBuf,
    pub content_type: String,
    pub expect_error: Option<String>,
    /// `None` when the component could not be instantiated, so nothing was decoded.
    pub result: Option<Result<Vec<Event>, DecodeError>>,
    pub cost: CallCost,
    pub logs: Vec<LogLine>,
}

impl SampleReport {
    /// Whether the sample did what it was expected to: decode, or fail with the expected code.
    pub fn as_expected(&self) -> bool {
        match (&self.result, &self.expect_error) {
            (Some(Ok(_)), None) => true,
            (Some(Err(e)), Some(code)) => e.code() == code,
            _ => false,
        }
    }
}

impl CheckReport {
    /// Whether the component would be accepted and, with a sample, the sample did what it was
    /// expected to.
    pub fn passed(&self) -> bool {
        self.problems.is_empty() && self.sample.as_ref().is_none_or(SampleReport::as_expected)
    }
}

/// Check the component at `path` under `limits`, reporting every problem found; with a sample,
/// also decode it whenever the component can be instantiated.
pub fn check(path: &Path, limits: &Limits, options: &CheckOptions) -> CheckReport {
    let mut report = CheckReport {
        file: path.to_owned(),
        limits: limits.clone(),
        size_bytes: None,
        sha256: None,
        compilation: None,
        cache_dir: options.cache.as_ref().map(|c| c.dir().to_owned()),
        interface_version: None,
        info: None,
        describe_cost: None,
        problems: vec![],
        sample: None,
    };
    let bytes = match std::fs::read(path) {
        Ok(bytes) => bytes,
        Err(e) => {
            report.problems.push(CheckError::Unreadable { path: path.display().to_string(), message: e.to_string() });
            return report;
        }
    };
    report.size_bytes = Some(bytes.len());
    report.sha256 = Some(sha2::Sha256::digest(&bytes).iter().map(|b| format!("{b:02x}")).collect());
    let host = match AdapterHost::with_compile_cache(limits.clone(), options.cache.clone()) {
        Ok(host) => host,
        Err(e) => {
            report.problems.push(CheckError::Host(format!("{e:#}")));
            return report;
        }
    };
    let examined = host.examine(&bytes, true);
    report.problems.extend(examined.problems.into_iter().map(CheckError::Rejected));
    report.compilation = examined.compilation;
    report.interface_version = examined.interface_version;
    report.info = examined.info;
    if let (Some(adapter), Some(_)) = (&examined.adapter, &report.info) {
        report.describe_cost = Some(host.describe(adapter).cost);
    }
    if let Some(sample) = &options.sample {
        let payload = match std::fs::read(sample.file) {
            Ok(payload) => payload,
            Err(e) => {
                let path = sample.file.display().to_string();
                report.problems.push(CheckError::Unreadable { path, message: e.to_string() });
                return report;
            }
        };
        let mut sample_report = SampleReport {
            file: sample.file.to_owned(),
            content_type: sample.content_type.to_owned(),
            expect_error: sample.expect_error.map(str::to_owned),
            result: None,
            cost: CallCost::default(),
            logs: vec![],
        };
        if let Some(adapter) = &examined.adapter {
            let r = host.decode_with_report(adapter, "check", sample.content_type, &payload, Utc::now());
            (sample_report.result, sample_report.cost, sample_report.logs) = (Some(r.result), r.cost, r.logs);
        }
        report.sample = Some(sample_report);
    }
    report
}

fn bytes(n: usize) -> String {
    if n >= 1 << 20 {
        format!("{:.1} MiB", n as f64 / (1 << 20) as f64)
    } else if n >= 1 << 10 {
        format!("{:.1} KiB", n as f64 / 1024.0)
    } else {
        format!("{n} B")
    }
}

fn cost_lines(f: &mut fmt::Formatter<'_>, cost: &CallCost, limits: &Limits) -> fmt::Result {
    match (cost.instructions, limits.fuel) {
        (Some(used), Some(limit)) => {
            writeln!(f, "    instructions  {used:>12} of {limit} ({:.2} %)", used as f64 * 100.0 / limit as f64)?
        }
        _ => writeln!(f, "    instructions  not metered (fuel off)")?,
    }
    writeln!(f, "    peak memory   {:>12} of {}", bytes(cost.peak_memory_bytes), bytes(limits.memory_bytes))?;
    writeln!(
        f,
        "    time          {:>9.3} ms of {} ms",
        cost.wall_time.as_secs_f64() * 1e3,
        limits.deadline.as_millis()
    )?;
    writeln!(f, "    output        {:>12} of {}", bytes(cost.output_bytes), bytes(limits.output_bytes))?;
    if cost.log_bytes_dropped > 0 {
        writeln!(
            f,
            "    log dropped   {:>12} over the {} cap",
            bytes(cost.log_bytes_dropped),
            bytes(limits.log_bytes)
        )?;
    }
    Ok(())
}

impl fmt::Display for CheckReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "adapter   {}", self.file.display())?;
        if let (Some(size), Some(sha)) = (self.size_bytes, &self.sha256) {
            writeln!(f, "size      {} of {} allowed", bytes(size), bytes(self.limits.component_bytes))?;
            writeln!(f, "sha-256   {sha}")?;
        }
        if let Some(compilation) = &self.compilation {
            let ms = compilation.millis();
            match (&self.cache_dir, compilation.cache_hit) {
                (Some(dir), true) => writeln!(f, "compiled  {ms:.1} ms, compile cache hit ({})", dir.display())?,
                (Some(dir), false) => writeln!(f, "compiled  {ms:.1} ms, compile cache miss ({})", dir.display())?,
                (None, _) => writeln!(f, "compiled  {ms:.1} ms (no compile cache)")?,
            }
        }
        if !self.problems.is_empty() {
            writeln!(f)?;
            for problem in &self.problems {
                writeln!(f, "REJECTED  {problem}")?;
            }
        }
        if let Some(version) = &self.interface_version {
            let newest = crate::NEWEST_INTERFACE_VERSION;
            let major = |v: &str| v.split('.').next().and_then(|m| m.parse::<u64>().ok());
            if major(version) == major(newest) {
                writeln!(f, "interface velferd:device@{version}")?;
            } else if major(version).is_some_and(|m| crate::SUPPORTED_INTERFACE_MAJORS.contains(&m)) {
                // Served, but a supplier starting work should know.
                writeln!(
                    f,
                    "interface velferd:device@{version} (served; the newest is {newest}, see docs/adapters.md)"
                )?;
            } else {
                writeln!(f, "interface velferd:device@{version} (not served; see above)")?;
            }
        }
        if let Some(info) = &self.info {
            writeln!(f, "\ndescribe")?;
            writeln!(f, "  supplier        {}", info.supplier)?;
            writeln!(f, "  product         {}", info.product)?;
            writeln!(f, "  version         {}", info.adapter_version)?;
            let classes: Vec<String> = info
                .device_classes
                .iter()
                .map(|c| serde_json::to_value(c).ok().and_then(|v| v.as_str().map(str::to_owned)).unwrap_or_default())
                .collect();
            writeln!(f, "  device classes  {}", classes.join(", "))?;
            writeln!(f, "  content types   {}", info.content_types.join(", "))?;
            if let Some(cost) = &self.describe_cost {
                writeln!(f, "  cost of describe on a fresh instance:")?;
                cost_lines(f, cost, &self.limits)?;
            }
        }
        if let Some(sample) = &self.sample {
            let expect =
                sample.expect_error.as_ref().map(|c| format!(", expected to fail with [{c}]")).unwrap_or_default();
            writeln!(f, "\nsample    {} ({}{expect})", sample.file.display(), sample.content_type)?;
            match &sample.result {
                None => writeln!(f, "  not decoded: the component cannot be instantiated (see above)")?,
                Some(Ok(events)) => {
                    writeln!(f, "  {} event(s)", events.len())?;
                    for e in events {
                        let vkp = e.vkp.map(|v| format!(" [VKP {}]", v.code)).unwrap_or_default();
                        let json = serde_json::to_string(&e.kind).unwrap_or_default();
                        let via = e.gateway_serial.as_ref().map(|g| format!(" via {g}")).unwrap_or_default();
                        writeln!(
                            f,
                            "  - {} {}{via} {} {:?}{vkp} id={} {}",
                            e.occurred_at.to_rfc3339(),
                            e.device_serial,
                            e.kind.name(),
                            e.severity,
                            e.supplier_event_id,
                            json
                        )?;
                        if let Some(detail) = &e.detail {
                            writeln!(f, "      detail: {}", crate::check::shorten(detail, 120))?;
                        }
                    }
                }
                Some(Err(e)) if sample.as_expected() => writeln!(f, "  failed as expected [{}] {e}", e.code())?,
                Some(Err(e)) => writeln!(f, "  FAILED [{}] {e}", e.code())?,
            }
            if sample.result.is_some() {
                writeln!(f, "  cost of decode on a fresh instance:")?;
                cost_lines(f, &sample.cost, &self.limits)?;
            }
            if !sample.logs.is_empty() {
                writeln!(f, "  log")?;
                for line in &sample.logs {
                    writeln!(f, "    {:?}: {}", line.source, shorten(&line.text, 200))?;
                }
            }
        }
        let rejected = self.problems.iter().filter(|p| matches!(p, CheckError::Rejected(_))).count();
        let verdict = match self.sample.as_ref().and_then(|s| Some((s.result.as_ref()?, s.expect_error.as_deref()))) {
            _ if rejected > 0 => {
                let count = if rejected == 1 { "1 problem".to_string() } else { format!("{rejected} problems") };
                format!("REJECTED: the server would refuse this component ({count} above)")
            }
            _ if !self.problems.is_empty() => "FAILED: the check could not run (see above)".to_string(),
            None | Some((Ok(_), None)) => "OK: the adapter is ready to upload".to_string(),
            Some((Err(e), Some(code))) if e.code() == code => {
                format!("OK: the adapter is ready to upload (the sample failed with [{code}], as expected)")
            }
            Some((Ok(_), Some(code))) => {
                format!("FAILED: the sample decoded, but it was expected to fail with [{code}]")
            }
            Some((Err(e), Some(code))) => {
                format!("FAILED: the sample failed with [{}], not the expected [{code}]", e.code())
            }
            Some((Err(_), None)) => "FAILED: the component is valid but the sample did not decode".to_string(),
        };
        writeln!(f, "\nverdict   {verdict}")
    }
}

fn shorten(text: &str, max: usize) -> String {
    if text.len() <= max {
        return text.to_owned();
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &text[..end])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_decode_error_code_can_be_expected() {
        let all = [
            DecodeError::Malformed(String::new()),
            DecodeError::Unsupported(String::new()),
            DecodeError::InvalidCommand(String::new()),
            DecodeError::InputTooLarge { size: 0, limit: 0 },
            DecodeError::DeadlineExceeded { limit_ms: 0 },
            DecodeError::FuelExhausted { limit: 0 },
            DecodeError::MemoryExceeded { limit: 0 },
            DecodeError::StackOverflow,
            DecodeError::OutputTooLarge { size: 0, limit: 0 },
            DecodeError::InvalidOutput(String::new()),
            DecodeError::CapabilityDenied(String::new()),
            DecodeError::Trap(String::new()),
            DecodeError::HostBusy(String::new()),
            DecodeError::Internal(String::new()),
        ];
        let codes: Vec<&str> = all.iter().map(DecodeError::code).collect();
        assert_eq!(codes, SAMPLE_ERROR_CODES);
    }
}
