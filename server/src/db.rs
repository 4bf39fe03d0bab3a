//! Database connections. SQLite (embedded, the default) and PostgreSQL run the same migrations
//! and the same queries; what differs is how connections are pooled.
//!
//! SQLite allows one writer at a time. Rather than let concurrent requests race for the write
//! lock (and fail with "database is locked" when a read transaction tries to upgrade), writes go
//! through a pool of exactly one connection, so they queue in-process; reads use a larger pool,
//! which WAL mode lets run beside the writer. The busy timeout covers other processes (e.g.
//! `velferd migrate` beside a running server).

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

use sea_orm::sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqliteSynchronous};
use sea_orm::{ConnectOptions, ConnectionTrait, DatabaseConnection, DbErr};
use velferd_migration::{Migrator, MigratorTrait};

tokio::task_local! {
    /// Set around background work that writes on its own schedule (the webhook fan-out and
    /// delivery worker): its statements are nobody's request and stay out of
    /// [`Database::statement_count`].
    static UNMETERED: ();
}

/// Runs `work` with its statements left out of [`Database::statement_count`]. The metric
/// callback runs in the task that awaits the statement, so the task-local marks exactly them.
pub async fn unmetered<F: Future>(work: F) -> F::Output {
    UNMETERED.scope((), work).await
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

impl Backend {
    /// Tells the back end from a database URL, refusing what we do not support.
    pub fn of_url(url: &str) -> Result<Backend, String> {
        if let Some(rest) = url.strip_prefix("sqlite:") {
            if rest.is_empty() || rest.starts_with(":memory:") || rest.contains("mode=memory") {
                // Each pooled connection would get its own empty in-memory database.
                return Err("in-memory SQLite is not supported; name a file, e.g. sqlite://velferd.db?mode=rwc".into());
            }
            Ok(Backend::Sqlite)
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            let after_scheme = url.split_once("://").map(|(_, r)| r).unwrap_or("");
            if after_scheme.is_empty() || after_scheme.starts_with('/') && after_scheme.len() == 1 {
                return Err(format!("{url:?} names no PostgreSQL host"));
            }
            Ok(Backend::Postgres)
        } else {
            Err(format!(
                "{:?} is not a database URL Velferd understands; use sqlite://FILE?mode=rwc or postgres://USER@HOST:PORT/DB",
                redact(url)
            ))
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum DbStartError {
    #[error("VELFERD_DATABASE_URL: cannot connect to {backend:?} database at {url}: {reason}")]
    Connect { backend: Backend, url: String, reason: String },
    #[error("applying migrations failed: {0}")]
    Migrate(DbErr),
}

/// The service's database handles.
#[derive(Clone, Debug)]
pub struct Database {
    backend: Backend,
    reader: DatabaseConnection,
    writer: DatabaseConnection,
    /// One connection for reads that background tasks repeat on a timer (the revocation
    /// refresh), outside the statement count: they would otherwise land in the middle of a
    /// request's count at random.
    background: DatabaseConnection,
    /// SQL statements run so far for requests, for tests that prove a query's statement count
    /// is constant.
    statements: Arc<AtomicU64>,
    /// Whether the database answered the watchdog's last probe (always true on SQLite, a file).
    reachable: Arc<AtomicBool>,
}

/// How often the watchdog asks PostgreSQL `SELECT 1`, and how long it waits for the answer:
/// together they bound how long requests still queue for a database that has gone (the issue
/// asks for `/readyz` to say 503 within a second).
const PROBE_EVERY: Duration = Duration::from_millis(250);
const PROBE_TIMEOUT: Duration = Duration::from_millis(500);
/// A pooled PostgreSQL connection idle this long is pinged before it is handed out; one in
/// use more recently just proved it works. sqlx's default pings on every checkout: one more
/// round trip to the server for every statement outside a transaction. Under load the pool
/// hands its connections out in turn within milliseconds, so none is pinged; after an outage
/// (requests turned away by the watchdog meanwhile) they have been idle longer than this.
const PING_IF_IDLE_FOR: Duration = Duration::from_secs(1);

/// When a SQLite commit is on the disk. `Normal` (WAL with `synchronous=NORMAL`) survives the
/// process's death — the crash test kills it — but a power loss may take the last commits;
/// `Full` syncs the WAL on every commit and survives both.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SqliteDurability {
    Normal,
    Full,
}

/// How SQLite connections are tuned (PostgreSQL ignores it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SqliteSettings {
    pub durability: SqliteDurability,
    /// Each connection's page cache, in MiB. The write connection keeps its cache from one
    /// commit to the next; a reader's is emptied whenever another connection has committed.
    pub cache_mib: u32,
    /// How much of the database file is read through a memory map, in MiB (0: none). Reading
    /// mapped pages costs no system call and no copy, and the pages are the kernel's page cache,
    /// shared by every connection — what keeps reads cheap when the database is far larger than
    /// any connection's cache and readers' caches are emptied at every commit.
    pub mmap_mib: u32,
}

impl Default for SqliteSettings {
    fn default() -> SqliteSettings {
        SqliteSettings {
            durability: SqliteDurability::Normal,
            cache_mib: DEFAULT_SQLITE_CACHE_MIB,
            mmap_mib: DEFAULT_SQLITE_MMAP_MIB,
        }
    }
}

/// SQLite's own default is 2 MiB a connection.
pub const DEFAULT_SQLITE_CACHE_MIB: u32 = 32;
/// Off: measured with a million stored events it bought nothing (docs/performance.md) and
/// made every mapped page count in the process's RSS. At most 2047 (`SQLITE_MAX_MMAP_SIZE` as
/// SQLite is built here, just under 2 GiB); the part of a larger file is read as without it.
pub const DEFAULT_SQLITE_MMAP_MIB: u32 = 0;

impl Database {
    /// [`Database::connect_with`] with the default [`SqliteSettings`].
    pub async fn connect(url: &str, max_connections: u32, timeout: Duration) -> Result<Database, DbStartError> {
        Database::connect_with(url, max_connections, timeout, SqliteSettings::default()).await
    }

    pub async fn connect_with(
        url: &str,
        max_connections: u32,
        timeout: Duration,
        sqlite: SqliteSettings,
    ) -> Result<Database, DbStartError> {
        let backend = Backend::of_url(url).expect("URL checked when settings were parsed");
        let unreachable = |reason: String| DbStartError::Connect { backend, url: redact(url), reason };
        if backend == Backend::Postgres {
            // One direct attempt first: the pool would retry a refused connection until its
            // acquire timeout, and an operator with a wrong URL should hear so in seconds.
            use sea_orm::sqlx::Connection;
            match tokio::time::timeout(timeout, sea_orm::sqlx::PgConnection::connect(url)).await {
                Ok(Ok(probe)) => drop(probe.close().await),
                Ok(Err(e)) => return Err(unreachable(e.to_string())),
                Err(_) => return Err(unreachable(format!("no answer within {timeout:?}"))),
            }
        }
        let connect = |pool_size: u32| {
            let mut options = ConnectOptions::new(url.to_string());
            options
                .max_connections(pool_size)
                .min_connections(0)
                .connect_timeout(timeout)
                // PostgreSQL: a request waits at most the connect timeout for a connection (the
                // pool retries a refused connect until then); the watchdog turns new requests
                // away at once while the database is gone. SQLite: writes queue on one
                // connection, so a burst may wait longer without anything being wrong.
                .acquire_timeout(if backend == Backend::Postgres { timeout } else { timeout * 6 })
                .sqlx_logging(false)
                .map_sqlx_sqlite_opts(move |options| tune_sqlite(options, sqlite))
                .map_sqlx_sqlite_pool_opts(|pool| {
                    pool.after_connect(|connection, _| Box::pin(plan_without_bound_values(connection)))
                });
            match backend {
                Backend::Postgres => options.test_before_acquire_if_idle_for(PING_IF_IDLE_FOR),
                // A SQLite connection is a file in this process: nothing can drop it while idle,
                // and sqlx's ping is a round trip to the connection's worker thread.
                Backend::Sqlite => options.test_before_acquire(false),
            };
            async move {
                sea_orm::Database::connect(options).await.map_err(|e| DbStartError::Connect {
                    backend,
                    url: redact(url),
                    reason: e.to_string(),
                })
            }
        };
        let (mut reader, mut writer) = match backend {
            Backend::Sqlite => {
                let writer = connect(1).await?;
                let reader = connect(max_connections).await?;
                (reader, writer)
            }
            Backend::Postgres => {
                let pool = connect(max_connections).await?;
                (pool.clone(), pool)
            }
        };
        let background = connect(1).await?;
        let statements = Arc::new(AtomicU64::new(0));
        for connection in [&mut reader, &mut writer] {
            let counter = statements.clone();
            connection.set_metric_callback(move |_| {
                if UNMETERED.try_with(|_| ()).is_err() {
                    counter.fetch_add(1, Ordering::Relaxed);
                }
            });
        }
        let reachable = Arc::new(AtomicBool::new(true));
        if backend == Backend::Postgres {
            tokio::spawn(watch(url.to_string(), Arc::downgrade(&reachable)));
        }
        Ok(Database { backend, reader, writer, background, statements, reachable })
    }

    /// False while PostgreSQL does not answer the watchdog: requests are then refused at once
    /// (503 with `Retry-After`) instead of waiting for a connection that will not come.
    pub fn reachable(&self) -> bool {
        self.reachable.load(Ordering::Relaxed)
    }

    /// How many SQL statements this process has run (cheap: one atomic add per statement).
    pub fn statement_count(&self) -> u64 {
        self.statements.load(Ordering::Relaxed)
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// The connection for queries that only read.
    pub fn read(&self) -> &DatabaseConnection {
        &self.reader
    }

    /// The connection for reads a background task repeats on a timer: not counted in
    /// [`Database::statement_count`].
    pub fn background(&self) -> &DatabaseConnection {
        &self.background
    }

    /// The connection for anything that writes, including read-then-write transactions.
    pub fn write(&self) -> &DatabaseConnection {
        &self.writer
    }

    pub async fn migrate(&self) -> Result<(), DbStartError> {
        Migrator::up(&self.writer, None).await.map_err(DbStartError::Migrate)
    }

    /// Readiness: the database answers and no migration is pending.
    pub async fn readiness(&self) -> Result<(), String> {
        if !self.reachable() {
            return Err("database unreachable".into());
        }
        // Bounded: a load balancer asking while the database goes away must hear so in a
        // second, not after the pool's acquire timeout.
        match tokio::time::timeout(PROBE_TIMEOUT, self.reader.execute_unprepared("SELECT 1")).await {
            Ok(Ok(_)) => {}
            Ok(Err(e)) => {
                // As for the watchdog, a refused or broken connection is an outage at once: a
                // pooled connection in steady use is not pinged before it is handed out, so
                // this can fail before the watchdog's next probe has; requests are turned away
                // from now until that probe answers (it sets the flag back).
                if self.backend == Backend::Postgres && self.reachable.swap(false, Ordering::Relaxed) {
                    tracing::error!(reason = %e, "the database does not answer; refusing requests until it does");
                }
                return Err(format!("database unreachable: {e}"));
            }
            Err(_) => return Err(format!("database unreachable: no answer within {:?}", PROBE_TIMEOUT)),
        }
        let pending = Migrator::get_pending_migrations_read_only(&self.reader)
            .await
            .map_err(|e| format!("cannot read migration state: {e}"))?;
        if pending.is_empty() { Ok(()) } else { Err(format!("{} migration(s) pending", pending.len())) }
    }
}

/// Asks PostgreSQL `SELECT 1` every [`PROBE_EVERY`] on a connection of its own (outside the
/// pools and the statement count) and records whether it answered within [`PROBE_TIMEOUT`].
/// Ends when the last handle of the database is dropped.
async fn watch(url: String, reachable: Weak<AtomicBool>) {
    use sea_orm::sqlx::{Connection, PgConnection};
    let mut connection: Option<PgConnection> = None;
    // Probes in a row that ran out of time (see below).
    let mut timeouts = 0;
    loop {
        tokio::time::sleep(PROBE_EVERY).await;
        let Some(flag) = reachable.upgrade() else { return };
        let answered = tokio::time::timeout(PROBE_TIMEOUT, async {
            let probe = match connection.as_mut() {
                Some(probe) => probe,
                None => connection.insert(PgConnection::connect(&url).await?),
            };
            probe.ping().await
        })
        .await;
        if !matches!(answered, Ok(Ok(()))) {
            // A timed-out or failed connection is not reused: the next probe connects afresh.
            connection = None;
        }
        // A refused or broken connection is an outage at once. A probe that only ran out of
        // time may be a busy machine rather than a dead database: refusing every request on one
        // slow answer turned load into outages, so it takes three in a row (about 2 s).
        let up = match &answered {
            Ok(Ok(())) => true,
            Ok(Err(_)) => false,
            Err(_) => {
                timeouts += 1;
                if timeouts < 3 {
                    continue;
                }
                false
            }
        };
        if answered.is_ok() {
            timeouts = 0;
        }
        if flag.swap(up, Ordering::Relaxed) != up {
            if up {
                tracing::warn!("the database answers again");
            } else {
                tracing::error!(reason = %probe_failure(&answered), "the database does not answer; refusing requests until it does");
            }
        }
    }
}

fn probe_failure(answered: &Result<Result<(), sea_orm::sqlx::Error>, tokio::time::error::Elapsed>) -> String {
    match answered {
        Ok(Ok(())) => "answered".into(),
        Ok(Err(e)) => e.to_string(),
        Err(_) => format!("no answer within {PROBE_TIMEOUT:?}"),
    }
}

fn tune_sqlite(options: SqliteConnectOptions, sqlite: SqliteSettings) -> SqliteConnectOptions {
    options
        .journal_mode(SqliteJournalMode::Wal)
        .synchronous(match sqlite.durability {
            SqliteDurability::Normal => SqliteSynchronous::Normal,
            SqliteDurability::Full => SqliteSynchronous::Full,
        })
        // Negative: KiB rather than pages.
        .pragma("cache_size", format!("-{}", u64::from(sqlite.cache_mib) * 1024))
        .pragma("mmap_size", (u64::from(sqlite.mmap_mib) << 20).to_string())
        .busy_timeout(Duration::from_secs(10))
        .foreign_keys(true)
        .create_if_missing(true)
}

/// Turns on SQLite's query planner stability guarantee (`SQLITE_DBCONFIG_ENABLE_QPSG`) for
/// `connection`: each statement is planned once, without looking at the values bound to it.
///
/// Why: SQLite (3.47 and later) treats a statement whose plan could depend on a bound value as
/// expired whenever that parameter is bound again, and parses and plans it anew at its next
/// step. sea-query binds every `LIMIT` (so every `.one()` is `LIMIT ?`), which made every such
/// statement be parsed and planned again at every run however long the statement cache kept
/// it: 7 % of a single message's CPU in a profile of ingest (docs/performance.md). Our plans
/// never depend on bound values (`tests/e2e/ingest_plans.rs` checks the hot ones), and there are
/// no statistics (`ANALYZE`) whose use this would give up.
async fn plan_without_bound_values(
    connection: &mut sea_orm::sqlx::SqliteConnection,
) -> Result<(), sea_orm::sqlx::Error> {
    let (rc, on) = stable_plans(connection, 1).await?;
    if rc != libsqlite3_sys::SQLITE_OK || !on {
        return Err(sea_orm::sqlx::Error::Configuration(
            format!("SQLite refused the query planner stability guarantee (code {rc})").into(),
        ));
    }
    Ok(())
}

/// Sets SQLite's query planner stability guarantee on `connection` (`set` 1: on, 0: off, -1:
/// leave it) and answers SQLite's result code and whether it is on afterwards.
async fn stable_plans(
    connection: &mut sea_orm::sqlx::SqliteConnection,
    set: std::ffi::c_int,
) -> Result<(std::ffi::c_int, bool), sea_orm::sqlx::Error> {
    let mut handle = connection.lock_handle().await?;
    let db = handle.as_raw_handle().as_ptr();
    let mut on: std::ffi::c_int = -1;
    // SAFETY: `db` is this connection's open handle, locked for the call (no other thread uses
    // it meanwhile); the option takes an int and a pointer to an int for the resulting setting,
    // which lives across the call.
    #[allow(unsafe_code)]
    let rc =
        unsafe { libsqlite3_sys::sqlite3_db_config(db, libsqlite3_sys::SQLITE_DBCONFIG_ENABLE_QPSG, set, &mut on) };
    Ok((rc, on == 1))
}

/// A database URL with any password replaced, for messages and logs.
pub fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme_end), Some(at)) if at > scheme_end => {
            let userinfo = &url[scheme_end + 3..at];
            match userinfo.split_once(':') {
                Some((user, _)) => format!("{}{user}:***{}", &url[..scheme_end + 3], &url[at..]),
                None => url.to_string(),
            }
        }
        _ => url.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_classified_or_refused() {
        assert_eq!(Backend::of_url("sqlite://x.db?mode=rwc"), Ok(Backend::Sqlite));
        assert_eq!(Backend::of_url("postgres://u@localhost/db"), Ok(Backend::Postgres));
        assert!(Backend::of_url("sqlite::memory:").is_err());
        assert!(Backend::of_url("mysql://localhost/db").is_err());
        assert!(Backend::of_url("not a url").is_err());
    }

    /// What `VELFERD_SQLITE_SYNCHRONOUS`, `_CACHE_MIB` and `_MMAP_MIB` promise is what every
    /// connection of both pools runs, and each plans its statements once
    /// (`plan_without_bound_values`).
    #[tokio::test]
    async fn sqlite_connections_run_as_configured() {
        let dir = tempfile::tempdir().unwrap();
        let settings = [
            (SqliteSettings { durability: SqliteDurability::Normal, cache_mib: 32, mmap_mib: 2047 }, 1),
            (SqliteSettings { durability: SqliteDurability::Full, cache_mib: 2, mmap_mib: 0 }, 2),
        ];
        for (sqlite, synchronous) in settings {
            let url = format!("sqlite://{}?mode=rwc", dir.path().join(format!("{synchronous}.db")).display());
            let db = Database::connect_with(&url, 2, Duration::from_secs(5), sqlite).await.unwrap();
            for pool in [db.read(), db.write()] {
                let pragma = async |name: &str| {
                    let sql = format!("PRAGMA {name}");
                    let row = pool.query_one_raw(sea_orm::Statement::from_string(sea_orm::DbBackend::Sqlite, sql));
                    row.await.unwrap().unwrap().try_get_by_index::<i64>(0).unwrap()
                };
                assert_eq!(pragma("synchronous").await, synchronous, "{sqlite:?}");
                assert_eq!(pragma("cache_size").await, -(i64::from(sqlite.cache_mib) * 1024), "{sqlite:?}");
                assert_eq!(pragma("mmap_size").await, i64::from(sqlite.mmap_mib) << 20, "{sqlite:?}");
                let mut connection = pool.get_sqlite_connection_pool().acquire().await.unwrap();
                assert_eq!(stable_plans(&mut connection, -1).await.unwrap(), (0, true), "{sqlite:?}");
            }
        }
    }

    #[test]
    fn passwords_never_reach_messages() {
        assert_eq!(redact("postgres://me:secret@h:5432/db"), "postgres://me:***@h:5432/db");
        assert_eq!(redact("postgres://me@h/db"), "postgres://me@h/db");
    }
}
