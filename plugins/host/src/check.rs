//! `velferd adapter check`: validate a component the way the server will on
//! upload, optionally decode a sample message, and show what it cost against
//! the limits.

use std::fmt;
use std::path::{Path, PathBuf};

use chrono::Utc;
use sha2::Digest;

use crate::host::{AdapterHost, AdapterInfo, CallCost, DecodeError, ValidationError};
use crate::{Event, Limits, LogLine};

/// What `check` found. `Display` is the human report; [`CheckReport::passed`]
/// decides the exit code (0 when passed, 1 otherwise).
#[derive(Debug, Clone)]
pub struct CheckReport {
    pub file: PathBuf,
    pub limits: Limits,
    /// Size and sha-256 of the file, when it could be read.
    pub size_bytes: Option<usize>,
    pub sha256: Option<String>,
    /// Interface version and `describe`, or why the component was rejected.
    pub validation: Result<(String, AdapterInfo), CheckError>,
    /// The cost of one `describe` call on a fresh instance.
    pub describe_cost: Option<CallCost>,
    /// The sample's decode, when one was given and validation passed.
    pub sample: Option<SampleReport>,
}

/// Why a check failed before any sample was decoded.
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
    pub result: Result<Vec<Event>, DecodeError>,
    pub cost: CallCost,
    pub logs: Vec<LogLine>,
}

impl CheckReport {
    /// Whether the component was accepted and, with a sample, the sample
    /// decoded without error.
    pub fn passed(&self) -> bool {
        self.validation.is_ok() && self.sample.as_ref().is_none_or(|s| s.result.is_ok())
    }
}

/// Check the component at `path` under `limits`; with `sample` =
/// `(message file, content type)` also decode that message.
pub fn check(path: &Path, sample: Option<(&Path, &str)>, limits: &Limits) -> CheckReport {
    let mut report = CheckReport {
        file: path.to_owned(),
        limits: limits.clone(),
        size_bytes: None,
        sha256: None,
        validation: Err(CheckError::Host("not run".into())),
        describe_cost: None,
        sample: None,
    };
    let bytes = match std::fs::read(path) {
        Ok(bytes) => bytes,
        Err(e) => {
            report.validation =
                Err(CheckError::Unreadable { path: path.display().to_string(), message: e.to_string() });
            return report;
        }
    };
    report.size_bytes = Some(bytes.len());
    report.sha256 = Some(sha2::Sha256::digest(&bytes).iter().map(|b| format!("{b:02x}")).collect());
    let host = match AdapterHost::new(limits.clone()) {
        Ok(host) => host,
        Err(e) => {
            report.validation = Err(CheckError::Host(format!("{e:#}")));
            return report;
        }
    };
    let adapter = match host.validate(&bytes) {
        Ok(adapter) => adapter,
        Err(e) => {
            report.validation = Err(e.into());
            return report;
        }
    };
    report.validation = Ok((adapter.interface_version.clone(), adapter.info.clone()));
    report.describe_cost = Some(host.describe(&adapter).cost);
    if let Some((file, content_type)) = sample {
        let (result, cost, logs) = match std::fs::read(file) {
            Ok(payload) => {
                let r = host.decode_with_report(&adapter, "check", content_type, &payload, Utc::now());
                (r.result, r.cost, r.logs)
            }
            Err(e) => (
                Err(DecodeError::Internal(format!("cannot read sample {}: {e}", file.display()))),
                CallCost::default(),
                vec![],
            ),
        };
        report.sample =
            Some(SampleReport { file: file.to_owned(), content_type: content_type.to_owned(), result, cost, logs });
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
        match &self.validation {
            Err(e) => writeln!(f, "\nREJECTED  {e}")?,
            Ok((version, info)) => {
                let newest = crate::NEWEST_INTERFACE_VERSION;
                if version.split('.').next() == newest.split('.').next() {
                    writeln!(f, "interface velferd:device@{version}")?;
                } else {
                    // Served, but a supplier starting work should know.
                    writeln!(
                        f,
                        "interface velferd:device@{version} (served; the newest is {newest}, see docs/adapters.md)"
                    )?;
                }
                writeln!(f, "\ndescribe")?;
                writeln!(f, "  supplier        {}", info.supplier)?;
                writeln!(f, "  product         {}", info.product)?;
                writeln!(f, "  version         {}", info.adapter_version)?;
                let classes: Vec<String> = info
                    .device_classes
                    .iter()
                    .map(|c| {
                        serde_json::to_value(c).ok().and_then(|v| v.as_str().map(str::to_owned)).unwrap_or_default()
                    })
                    .collect();
                writeln!(f, "  device classes  {}", classes.join(", "))?;
                writeln!(f, "  content types   {}", info.content_types.join(", "))?;
                if let Some(cost) = &self.describe_cost {
                    writeln!(f, "  cost of describe on a fresh instance:")?;
                    cost_lines(f, cost, &self.limits)?;
                }
            }
        }
        if let Some(sample) = &self.sample {
            writeln!(f, "\nsample    {} ({})", sample.file.display(), sample.content_type)?;
            match &sample.result {
                Ok(events) => {
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
                Err(e) => writeln!(f, "  FAILED [{}] {e}", e.code())?,
            }
            writeln!(f, "  cost of decode on a fresh instance:")?;
            cost_lines(f, &sample.cost, &self.limits)?;
            if !sample.logs.is_empty() {
                writeln!(f, "  log")?;
                for line in &sample.logs {
                    writeln!(f, "    {:?}: {}", line.source, shorten(&line.text, 200))?;
                }
            }
        }
        let verdict = if self.passed() {
            "OK: the adapter is ready to upload"
        } else if self.validation.is_err() {
            "REJECTED: the server would refuse this component"
        } else {
            "FAILED: the component is valid but the sample did not decode"
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
