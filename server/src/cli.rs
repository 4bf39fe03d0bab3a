//! The `velferd` command line.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};

use crate::auth::{OrgRef, TokenSigner, parse_roles};
use crate::config::Settings;
use crate::db::Database;
use crate::devices::content_type::ContentType;

#[derive(Parser)]
#[command(name = "velferd", version, about = "Joint procurement and operation of welfare technology")]
struct Cli {
    /// TOML file with settings (lower-case names without the VELFERD_ prefix); environment
    /// variables override it.
    #[arg(long, global = true, env = "VELFERD_CONFIG")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serve GraphQL, GraphiQL, subscriptions and health checks.
    Serve {
        /// Load the demo data set into an empty database, build and activate the reference
        /// adapters, register the demo devices and start the demo feed of device messages.
        #[arg(long)]
        demo: bool,
        /// With --demo: no demo feed (the data, adapters and devices are still set up).
        #[arg(long, requires = "demo")]
        no_demo_feed: bool,
    },
    /// Apply the database migrations and exit.
    Migrate,
    /// Print a signed token for trying the API as an organisation and roles. Roles count only
    /// for the kind of organisation they are made for (docs/authorization.md).
    Token {
        /// Organisation number (9 digits) the token acts for (its `org` claim).
        #[arg(long, required_unless_present_any = ["oid", "org_name"], conflicts_with_all = ["oid", "org_name"])]
        org: Option<String>,
        /// The organisation's exact name, looked up in the configured database: the token names
        /// it by its number when it has one, by its Velferd id (`oid`) otherwise.
        #[arg(long, conflicts_with = "oid")]
        org_name: Option<String>,
        /// The organisation's Velferd id (`Organization.id`, its `oid` claim), for one without an
        /// organisation number: a programme, a foreign supplier, the platform operator.
        #[arg(long)]
        oid: Option<String>,
        /// Roles, comma-separated: admin (the platform operator), advisor (programmes),
        /// procurement_officer, case_worker, privacy_officer, municipality_admin
        /// (municipalities), operator (response centres), responder (municipalities and response
        /// centres), supplier (suppliers), integration (any).
        #[arg(long = "role")]
        roles: String,
        /// Lifetime, e.g. 30m, 8h, 7d.
        #[arg(long, default_value = "8h")]
        ttl: humantime::Duration,
        /// Subject (`sub`) of the token.
        #[arg(long, default_value = "dev-user")]
        subject: String,
    },
    /// Print the GraphQL schema (SDL).
    Schema,
    /// The demo data set.
    Demo {
        #[command(subcommand)]
        command: DemoCommand,
    },
    /// Tools for suppliers' device adapters.
    Adapter {
        #[command(subcommand)]
        command: AdapterCommand,
    },
    /// The audit log of health data (docs/audit.md).
    Audit {
        #[command(subcommand)]
        command: AuditCommand,
    },
    /// Copy the SQLite database to a new file, consistent as of one moment, while the server
    /// runs (`VACUUM INTO`); restore by starting the server on the copy. PostgreSQL is backed up
    /// with its own tools (base backup and WAL archiving, docs/operations.md). Exits 0 when the
    /// copy is complete and passes SQLite's integrity check, 2 otherwise.
    Backup {
        /// The file to write; it must not exist yet.
        #[arg(long)]
        to: PathBuf,
    },
}

#[derive(Subcommand)]
enum AuditCommand {
    /// Check every municipality's hash chain: each entry's hash, its link to the one before,
    /// that no sequence number is missing, and the anchor's HMAC under the audit key
    /// (`VELFERD_AUDIT_KEY` / `VELFERD_AUDIT_KEY_FILE`, and `VELFERD_AUDIT_RETIRED_KEY_FILES`).
    /// Reads only. Exits 0 when every chain is intact, 1 naming each broken entry
    /// (municipality, seq, id), 2 when the settings or the database are wrong.
    Verify {
        /// An earlier run's output, kept outside the database: every chain must still be at
        /// least as long and hold the head it had then (finds a chain removed together with
        /// its anchor, or rolled back).
        #[arg(long)]
        expect: Option<PathBuf>,
    },
}

#[derive(Subcommand)]
enum DemoCommand {
    /// Print a ready `velferd token` command for every role of every organisation in the
    /// configured database (run it after `velferd serve --demo` has loaded the demo).
    Tokens,
}

#[derive(Subcommand)]
enum AdapterCommand {
    /// Validate a component against the adapter contract and the sandbox's limits, listing every
    /// problem found (size, memory, exports, interface version, each refused import), print what
    /// `describe` answers and, with a sample, the events it decodes and what the call cost.
    /// The limits are the server's: the defaults, then `--config` and the `VELFERD_ADAPTER_*`
    /// variables (nothing else is read), or a product's approved limits from `--limits`. Exits 0
    /// when the adapter would be accepted (and the sample did what it should), 1 when not, 2
    /// when the settings or arguments are wrong.
    Check {
        /// The component (.wasm) built for wasm32-wasip2.
        file: PathBuf,
        /// A device message to decode.
        #[arg(long, requires = "content_type")]
        sample: Option<PathBuf>,
        /// The sample's content type, e.g. application/json.
        #[arg(long, requires = "sample")]
        content_type: Option<String>,
        /// The sample is broken on purpose: the check passes only when its decode fails with
        /// this code (e.g. `malformed`, `unsupported`).
        #[arg(long, requires = "sample", value_name = "CODE")]
        expect_error: Option<String>,
        /// A product's approved limits, as the API gives them to its supplier:
        /// `{"componentBytes": n, "memoryBytes": n, "fuel": n|null, "deadlineMs": n}`. They
        /// replace those four limits; the rest are the server's.
        #[arg(long, value_name = "FILE")]
        limits: Option<PathBuf>,
    },
}

/// Runs the command line; errors are printed as one line naming what to fix, never a trace.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("velferd: {message}");
            ExitCode::from(2)
        }
    }
}

fn run(cli: Cli) -> Result<(), String> {
    if let Command::Schema = cli.command {
        print!("{}", crate::graphql::sdl());
        return Ok(());
    }
    if let Command::Adapter { command: AdapterCommand::Check { file, sample, content_type, expect_error, limits } } =
        &cli.command
    {
        return adapter_check(
            cli.config.as_deref(),
            file,
            sample.as_deref(),
            content_type.as_deref(),
            expect_error.as_deref(),
            limits.as_deref(),
        );
    }
    if let Command::Audit { command: AuditCommand::Verify { expect } } = &cli.command {
        // Needs the database and the audit keys only, not the token secrets.
        let (_, url, keys) = crate::config::load_audit_settings(cli.config.as_deref()).map_err(|e| e.to_string())?;
        let earlier = match expect {
            Some(path) => {
                let text = std::fs::read_to_string(path).map_err(|e| format!("--expect {}: {e}", path.display()))?;
                crate::audit::verify::parse_checkpoints(&text)
                    .map_err(|e| format!("--expect {}: {e}", path.display()))?
            }
            None => Vec::new(),
        };
        let report = runtime()?.block_on(async {
            let timeout = Duration::from_secs(5);
            let db = Database::connect(&url, 1, timeout).await.map_err(|e| e.to_string())?;
            db.readiness().await.map_err(|e| format!("{}: {e}", crate::db::redact(&url)))?;
            let read = |e: sea_orm::DbErr| format!("reading the audit log: {e}");
            let mut report = crate::audit::verify::verify(db.read(), &keys).await.map_err(read)?;
            crate::audit::verify::check_checkpoints(db.read(), &mut report, &earlier).await.map_err(read)?;
            Ok::<_, String>(report)
        })?;
        print!("{}", verify_summary(&report, &keys));
        if report.intact() {
            return Ok(());
        }
        // The lines above name each broken entry; the exit code tells scripts.
        std::process::exit(1);
    }
    if let Command::Backup { to } = &cli.command {
        // Needs the database URL only.
        let url = crate::config::load_database_url(cli.config.as_deref()).map_err(|e| e.to_string())?;
        let summary = runtime()?.block_on(backup(&url, to))?;
        println!("{summary}");
        return Ok(());
    }
    let settings = Settings::load(cli.config.as_deref()).map_err(|e| e.to_string())?;
    init_logging(&settings);
    match cli.command {
        Command::Schema | Command::Adapter { .. } | Command::Audit { .. } | Command::Backup { .. } => {
            unreachable!("handled above")
        }
        Command::Token { org, oid, org_name, roles, ttl, subject } => {
            let org: OrgRef = match (org, oid, org_name) {
                (Some(number), None, None) => OrgRef::Number(number.parse().map_err(|e| format!("--org: {e}"))?),
                (None, Some(oid), None) => OrgRef::Id(
                    crate::ids::row_id(oid.trim(), crate::ids::NodeType::Organization)
                        .ok_or("--oid: not an organisation id (`Organization.id`)")?,
                ),
                (None, None, Some(name)) => runtime()?.block_on(async {
                    let db = connect(&settings).await?;
                    crate::demo::tokens::resolve(db.read(), &name).await.map(|(_, r)| r).map_err(|e| format!("--org-name: {e}"))
                })?,
                _ => return Err("name the organisation by exactly one of --org, --oid and --org-name".into()),
            };
            let roles = parse_roles(&roles).map_err(|e| format!("--role: {e}"))?;
            let ttl: Duration = ttl.into();
            if ttl.is_zero() {
                return Err("--ttl: must be longer than zero".into());
            }
            let signer = TokenSigner::new(&settings.jwt).map_err(|e| e.0)?;
            println!("{}", signer.mint(&subject, org, roles, ttl));
            Ok(())
        }
        Command::Migrate => runtime()?.block_on(async {
            let db = Database::connect(&settings.database_url, 1, settings.connect_timeout())
                .await
                .map_err(|e| e.to_string())?;
            db.migrate().await.map_err(|e| e.to_string())?;
            println!("migrations applied");
            Ok(())
        }),
        Command::Demo { command: DemoCommand::Tokens } => runtime()?.block_on(async {
            let db = connect(&settings).await?;
            let commands = crate::demo::tokens::commands(db.read()).await.map_err(|e| e.to_string())?;
            if commands.is_empty() {
                return Err("the database has no organisations: start `velferd serve --demo` once first".into());
            }
            print!("{}", crate::demo::tokens::table(&commands));
            Ok(())
        }),
        Command::Serve { demo, no_demo_feed } => runtime()?.block_on(async {
            let workers = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(2);
            let mode = match (demo, no_demo_feed) {
                (false, _) => crate::DemoMode::Off,
                (true, true) => crate::DemoMode::Devices,
                (true, false) => crate::DemoMode::Feed,
            };
            if let Some(failpoint) = settings.failpoint {
                crate::failpoint::arm(failpoint);
            }
            let (server, feed) = crate::start_with_demo(&settings, mode, workers).await.map_err(|e| e.to_string())?;
            let addr = server.addr;
            // Written without println!, which would panic if stdout is a closed pipe.
            use std::io::Write;
            let mut out = std::io::stdout();
            let _ = writeln!(out, "listening on http://{addr}");
            if settings.profile == crate::config::Profile::Development {
                let _ = writeln!(out, "GraphiQL: http://{addr}/graphql");
            }
            if demo {
                let line = match (&feed, no_demo_feed) {
                    (Some(_), _) => {
                        "demo feed: on, posting device messages to /ingest every few seconds (--no-demo-feed turns it off)"
                    }
                    (None, true) => "demo feed: off",
                    (None, false) => "demo feed: off (the database had data of its own, so it has no demo devices)",
                };
                let _ = writeln!(out, "{line}");
            }
            if demo {
                let _ = writeln!(out, "tokens for every demo organisation and role: velferd demo tokens");
            }
            let _ = out.flush();
            stop_on_signal(server, feed).await
        }),
    }
}

/// What `audit verify` prints: one line per chain, then each finding, then the verdict.
fn verify_summary(report: &crate::audit::verify::Report, keys: &crate::audit::key::AuditKeys) -> String {
    use std::fmt::Write;
    let mut out = String::new();
    for chain in &report.chains {
        let _ = writeln!(out, "{}", crate::audit::verify::chain_line(chain));
    }
    for finding in &report.findings {
        let _ = writeln!(out, "BROKEN    {finding}");
    }
    let key = if keys.current.is_development() {
        "the published development key (VELFERD_AUDIT_KEY_FILE unset): anchors prove nothing".to_string()
    } else {
        format!("key {}", keys.current.id())
    };
    if report.intact() {
        let _ = writeln!(
            out,
            "audit log intact: {} chains, {} entries, anchors verified with {key}",
            report.chains.len(),
            report.entries()
        );
    } else {
        let _ =
            writeln!(out, "audit log BROKEN: {} finding(s) in {} chains", report.findings.len(), report.chains.len());
    }
    out
}

/// `velferd backup --to FILE`: `VACUUM INTO` a file beside the target, checked, then renamed
/// into place, so `FILE` only ever exists complete. `VACUUM INTO` reads the database in one
/// read transaction: under WAL the server goes on writing meanwhile, and the copy holds every
/// transaction committed before it began (so every acknowledged message), none after.
async fn backup(url: &str, to: &std::path::Path) -> Result<String, String> {
    use sea_orm::{ConnectionTrait, Statement};
    if crate::db::Backend::of_url(url)? == crate::db::Backend::Postgres {
        return Err("backup copies a SQLite database; back PostgreSQL up with pg_basebackup and WAL archiving \
                    (docs/operations.md, \"Backup and restore\")"
            .into());
    }
    if to.exists() {
        return Err(format!("--to {}: already exists; name a new file", to.display()));
    }
    let partial = std::path::PathBuf::from(format!("{}.partial", to.display()));
    let _ = std::fs::remove_file(&partial);
    let db = Database::connect(url, 1, Duration::from_secs(5)).await.map_err(|e| e.to_string())?;
    db.readiness().await.map_err(|e| format!("{}: {e}", crate::db::redact(url)))?;
    let conn = db.read();
    let backend = conn.get_database_backend();
    let path = partial.to_str().ok_or_else(|| format!("--to {}: not a UTF-8 path", to.display()))?;
    let started = std::time::Instant::now();
    conn.execute_raw(Statement::from_sql_and_values(backend, "VACUUM INTO ?", [path.into()]))
        .await
        .map_err(|e| format!("copying to {}: {e}", partial.display()))?;
    // The copy, opened read-only on its own: SQLite's integrity check, and a count to report.
    let copy = sea_orm::Database::connect(format!("sqlite://{path}?mode=ro"))
        .await
        .map_err(|e| format!("opening the copy {}: {e}", partial.display()))?;
    let one = |sql: &str| Statement::from_string(backend, sql.to_string());
    let check: String = match copy.query_one_raw(one("PRAGMA quick_check")).await {
        Ok(Some(row)) => row.try_get_by_index(0).map_err(|e| e.to_string())?,
        Ok(None) => "no answer".into(),
        Err(e) => e.to_string(),
    };
    let events: i64 = match copy.query_one_raw(one("SELECT COUNT(*) FROM device_event")).await {
        Ok(Some(row)) => row.try_get_by_index(0).map_err(|e| e.to_string())?,
        _ => 0,
    };
    copy.close().await.ok();
    if check != "ok" {
        let _ = std::fs::remove_file(&partial);
        return Err(format!("the copy failed SQLite's integrity check ({check}); nothing written to {}", to.display()));
    }
    // On disk before it takes its name, and the name on disk before we say so.
    std::fs::File::open(&partial).and_then(|f| f.sync_all()).map_err(|e| format!("{}: {e}", partial.display()))?;
    std::fs::rename(&partial, to).map_err(|e| format!("--to {}: {e}", to.display()))?;
    if let Some(dir) = to.parent().filter(|d| !d.as_os_str().is_empty()) {
        let _ = std::fs::File::open(dir).and_then(|d| d.sync_all());
    }
    let bytes = std::fs::metadata(to).map(|m| m.len()).unwrap_or(0);
    Ok(format!(
        "backed up {} to {}: {bytes} bytes, {events} device events, in {} ms (restore: start the server with \
         VELFERD_DATABASE_URL=sqlite://{}?mode=rwc)",
        crate::db::redact(url),
        to.display(),
        started.elapsed().as_millis(),
        to.display()
    ))
}

/// `velferd adapter check`: judged as the configured server (or a product's approved limits)
/// would judge it, without asking for the server's secrets or database.
fn adapter_check(
    config: Option<&std::path::Path>,
    file: &std::path::Path,
    sample: Option<&std::path::Path>,
    content_type: Option<&str>,
    expect_error: Option<&str>,
    limits_file: Option<&std::path::Path>,
) -> Result<(), String> {
    use velferd_plugins::{ApprovedLimits, CheckOptions, LimitsSource, SAMPLE_ERROR_CODES, Sample};
    let mut limits = crate::config::load_adapter_limits(config).map_err(|e| e.to_string())?;
    let source = match limits_file {
        Some(path) => {
            let text = std::fs::read_to_string(path).map_err(|e| format!("--limits {}: {e}", path.display()))?;
            let approved = ApprovedLimits::parse(&text).map_err(|e| format!("--limits {}: {e}", path.display()))?;
            limits = approved.apply(&limits);
            LimitsSource::Approved(path.to_owned())
        }
        None => {
            let mut set: Vec<String> = config.map(|c| format!("--config {}", c.display())).into_iter().collect();
            let variables = ["VELFERD_ADAPTER_DEADLINE_MS", "VELFERD_ADAPTER_FUEL"];
            set.extend(variables.iter().filter(|n| std::env::var_os(n).is_some()).map(|n| n.to_string()));
            if limits == velferd_plugins::Limits::default() {
                LimitsSource::Defaults
            } else {
                LimitsSource::Settings(set.join(", "))
            }
        }
    };
    if let Some(code) = expect_error
        && !SAMPLE_ERROR_CODES.contains(&code)
    {
        return Err(format!("--expect-error: unknown code {code:?}; one of {}", SAMPLE_ERROR_CODES.join(", ")));
    }
    // The adapter sees the content type as the server passes it on: normalised.
    let content_type = match content_type {
        Some(text) => Some(text.parse::<ContentType>().map_err(|e| format!("--content-type: {e}"))?),
        None => None,
    };
    let cache = crate::config::load_adapter_cache(config).map_err(|e| e.to_string())?;
    println!("{}", limits_line(&limits));
    println!("          judged with {source}");
    let cache = match cache {
        None => None,
        Some(settings) => match settings.open() {
            Ok(cache) => Some(cache),
            Err(e) => {
                println!("cache     off: cannot use {}: {e}", settings.dir.display());
                None
            }
        },
    };
    let sample = sample.zip(content_type.as_ref()).map(|(file, content_type)| Sample {
        file,
        content_type: content_type.as_str(),
        expect_error,
    });
    let report = velferd_plugins::check(file, &limits, &CheckOptions { sample, cache });
    print!("{report}");
    if report.passed() {
        return Ok(());
    }
    // The report above says why; the exit code tells scripts.
    std::process::exit(1);
}

/// The limits `adapter check` judges with, as one line.
fn limits_line(limits: &velferd_plugins::Limits) -> String {
    let fuel = limits.fuel.map_or("unmetered (fuel off)".to_string(), |fuel| format!("{fuel} per call"));
    let size = |bytes: usize| {
        if bytes.is_multiple_of(1 << 20) {
            format!("{} MiB", bytes >> 20)
        } else if bytes.is_multiple_of(1 << 10) {
            format!("{} KiB", bytes >> 10)
        } else {
            format!("{bytes} B")
        }
    };
    format!(
        "limits    instructions {fuel}, deadline {} ms, memory {}, component {}, input {}, output {}",
        limits.deadline.as_millis(),
        size(limits.memory_bytes),
        size(limits.component_bytes),
        size(limits.input_bytes),
        size(limits.output_bytes),
    )
}

async fn stop_on_signal(
    server: crate::http::RunningServer,
    feed: Option<crate::demo::feed::DemoFeed>,
) -> Result<(), String> {
    let mut terminate =
        tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).map_err(|e| e.to_string())?;
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = terminate.recv() => {}
    }
    tracing::info!("stopping");
    // The feed first: it posts to the server being stopped.
    drop(feed);
    server.stop().await;
    Ok(())
}

/// The configured database, for the commands that read it.
async fn connect(settings: &Settings) -> Result<Database, String> {
    Database::connect(&settings.database_url, 1, settings.connect_timeout()).await.map_err(|e| e.to_string())
}

fn runtime() -> Result<tokio::runtime::Runtime, String> {
    tokio::runtime::Builder::new_multi_thread().enable_all().build().map_err(|e| e.to_string())
}

fn init_logging(settings: &Settings) {
    crate::telemetry::init_logging(&settings.log, settings.log_format);
}
