//! The schema the migrations build, compared with checked-in snapshots on SQLite and on
//! PostgreSQL, so that refactoring a migration can be shown to change nothing in the database.
//!
//! Each dump is a stable, sorted text read back from the database's own catalogue (never from
//! the migration code): tables with their columns in order (type, nullability, default, key),
//! constraints and foreign keys with their delete action, indexes with their columns, triggers,
//! virtual tables and sequences. On SQLite it also keeps each table's `CREATE` text, so even a
//! change the pragmas cannot see (e.g. `AUTOINCREMENT`) shows. Of sea-orm's bookkeeping table
//! `seaql_migrations` only the names of the applied migrations count; its shape is sea-orm's.

use std::fmt::Write as _;
use std::path::PathBuf;

use sea_orm_migration::MigratorTrait;
use sea_orm_migration::sea_orm::{ConnectionTrait, Database, DatabaseConnection, DbBackend, QueryResult, Statement};
use velferd_migration::Migrator;

/// Set to write the dumps as the new snapshots. (The accept command names `--workspace` so that
/// it reuses the build `cargo test --workspace` made; `-p` alone resolves other features.)
const ACCEPT: &str = "VELFERD_ACCEPT_SCHEMA";

#[tokio::test]
async fn sqlite_schema_is_the_snapshot_and_down_then_up_rebuilds_it() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}?mode=rwc", dir.path().join("schema.db").display());
    let db = Database::connect(&url).await.expect("open SQLite");
    check_against_snapshot(&db, "sqlite").await;
    db.close().await.ok();
}

#[tokio::test]
async fn postgres_schema_is_the_snapshot_and_down_then_up_rebuilds_it() {
    let Some(pg) = PostgresDatabase::create().await else { return };
    let db = Database::connect(&pg.url).await.expect("connect to the test database");
    check_against_snapshot(&db, "postgres").await;
    db.close().await.ok();
}

/// Migrates `db` up, compares the dump with the snapshot `name`, then migrates all the way down
/// (which must leave nothing behind) and up again (which must build the same schema).
async fn check_against_snapshot(db: &DatabaseConnection, name: &str) {
    Migrator::up(db, None).await.expect("migrate up");
    let schema = dump(db).await;

    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/snapshots").join(format!("{name}.schema.txt"));
    if std::env::var_os(ACCEPT).is_some() {
        std::fs::write(&path, &schema).unwrap();
        eprintln!("wrote {}", path.display());
    } else {
        let snapshot = std::fs::read_to_string(&path).unwrap_or_default();
        assert!(
            snapshot == schema,
            "the {name} schema differs from {} (- snapshot, + migrations):\n{}\n\
             If the change is intended, accept it with:\n    \
             {ACCEPT}=1 cargo test --workspace --test schema{}",
            path.display(),
            diff(&snapshot, &schema),
            if name == "postgres" { "  (with VELFERD_TEST_POSTGRES_URL set)" } else { "" },
        );
    }

    Migrator::down(db, None).await.expect("migrate down");
    let after_down = dump(db).await;
    assert!(after_down.is_empty(), "migrating down left this behind on {name}:\n{after_down}");
    Migrator::up(db, None).await.expect("migrate up again");
    let again = dump(db).await;
    assert!(again == schema, "down then up built another {name} schema (- first, + again):\n{}", diff(&schema, &again));
}

async fn dump(db: &DatabaseConnection) -> String {
    // The names of the applied migrations belong to the schema: a database that has run a
    // migration under another name would run it again.
    let mut out = String::new();
    for migration in rows(db, "SELECT version FROM seaql_migrations ORDER BY version").await {
        writeln!(out, "migration {}", text(&migration, 0)).unwrap();
    }
    out + &match db.get_database_backend() {
        DbBackend::Sqlite => dump_sqlite(db).await,
        DbBackend::Postgres => dump_postgres(db).await,
        other => panic!("no schema dump for {other:?}"),
    }
}

async fn rows(db: &DatabaseConnection, sql: &str) -> Vec<QueryResult> {
    let statement = Statement::from_string(db.get_database_backend(), sql);
    db.query_all_raw(statement).await.unwrap_or_else(|e| panic!("{sql}: {e}"))
}

fn text(row: &QueryResult, index: usize) -> String {
    row.try_get_by_index::<Option<String>>(index).unwrap().unwrap_or_default()
}

fn number(row: &QueryResult, index: usize) -> i64 {
    row.try_get_by_index::<i64>(index).unwrap()
}

/// Whitespace folded to single spaces: SQLite keeps a statement's text as it was written.
fn folded(sql: &str) -> String {
    sql.split_whitespace().collect::<Vec<_>>().join(" ")
}

async fn dump_sqlite(db: &DatabaseConnection) -> String {
    let mut out = String::new();
    let objects = rows(
        db,
        "SELECT name, type FROM pragma_table_list WHERE schema = 'main' \
         AND name NOT LIKE 'sqlite_%' AND name <> 'seaql_migrations' ORDER BY name",
    )
    .await;
    for object in &objects {
        let (name, kind) = (text(object, 0), text(object, 1));
        let sql = rows(db, &format!("SELECT sql FROM sqlite_master WHERE name = '{name}'")).await;
        let sql = sql.first().map(|row| folded(&text(row, 0))).unwrap_or_default();
        // `virtual` is a table of a module (FTS5), `shadow` one a module keeps its data in.
        let kind = if kind == "table" || kind == "view" { kind } else { format!("{kind} table") };
        if kind != "table" && kind != "shadow table" {
            writeln!(out, "{kind} {name}\n  sql: {sql}").unwrap();
            continue;
        }
        writeln!(out, "{kind} {name}").unwrap();
        for column in
            rows(db, &format!("SELECT name, type, \"notnull\", dflt_value, pk FROM pragma_table_info('{name}')")).await
        {
            let mut line = format!("  column {}", text(&column, 0));
            let declared = text(&column, 1);
            if !declared.is_empty() {
                write!(line, " {declared}").unwrap();
            }
            if number(&column, 2) != 0 {
                line.push_str(" not null");
            }
            let default = text(&column, 3);
            if !default.is_empty() {
                write!(line, " default {default}").unwrap();
            }
            if number(&column, 4) != 0 {
                write!(line, " primary key #{}", number(&column, 4)).unwrap();
            }
            writeln!(out, "{line}").unwrap();
        }
        let mut keys = Vec::new();
        for fk in rows(
            db,
            &format!(
                "SELECT group_concat(\"from\", ', '), \"table\", group_concat(\"to\", ', '), on_delete, on_update \
                 FROM (SELECT * FROM pragma_foreign_key_list('{name}') ORDER BY id, seq) GROUP BY id"
            ),
        )
        .await
        {
            keys.push(format!(
                "  foreign key ({}) references {}({}) on delete {} on update {}",
                text(&fk, 0),
                text(&fk, 1),
                text(&fk, 2),
                text(&fk, 3),
                text(&fk, 4)
            ));
        }
        for index in
            rows(db, &format!("SELECT name, \"unique\", origin, partial FROM pragma_index_list('{name}')")).await
        {
            let index_name = text(&index, 0);
            let mut columns = Vec::new();
            for column in rows(
                db,
                &format!(
                    "SELECT name, \"desc\", coll FROM pragma_index_xinfo('{index_name}') WHERE key = 1 ORDER BY seqno"
                ),
            )
            .await
            {
                let mut part = text(&column, 0);
                if part.is_empty() {
                    part.push_str("<expression>");
                }
                if number(&column, 1) != 0 {
                    part.push_str(" desc");
                }
                if text(&column, 2) != "BINARY" {
                    write!(part, " collate {}", text(&column, 2)).unwrap();
                }
                columns.push(part);
            }
            keys.push(format!(
                "  {}index {index_name} ({}) origin {}{}",
                if number(&index, 1) != 0 { "unique " } else { "" },
                columns.join(", "),
                text(&index, 2),
                if number(&index, 3) != 0 { " partial" } else { "" },
            ));
        }
        keys.sort();
        for key in keys {
            writeln!(out, "{key}").unwrap();
        }
        writeln!(out, "  sql: {sql}").unwrap();
    }
    for trigger in rows(db, "SELECT name, tbl_name, sql FROM sqlite_master WHERE type = 'trigger' ORDER BY name").await
    {
        writeln!(out, "trigger {} on {}\n  sql: {}", text(&trigger, 0), text(&trigger, 1), folded(&text(&trigger, 2)))
            .unwrap();
    }
    out
}

async fn dump_postgres(db: &DatabaseConnection) -> String {
    let mut out = String::new();
    let relations = rows(
        db,
        "SELECT c.oid::bigint, c.relname::text, c.relkind::text FROM pg_class c \
         JOIN pg_namespace n ON n.oid = c.relnamespace \
         WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p', 'v', 'm', 'f', 'S') \
         AND c.relname NOT LIKE 'seaql_migrations%' ORDER BY c.relname",
    )
    .await;
    for relation in &relations {
        let (oid, name, kind) = (number(relation, 0), text(relation, 1), text(relation, 2));
        match kind.as_str() {
            "S" => {
                let sequence = rows(
                    db,
                    &format!(
                        "SELECT format_type(seqtypid, NULL), seqstart, seqincrement, seqmin, seqmax, seqcycle::text \
                         FROM pg_sequence WHERE seqrelid = {oid}"
                    ),
                )
                .await;
                let s = &sequence[0];
                writeln!(
                    out,
                    "sequence {name} {} start {} increment {} min {} max {} cycle {}",
                    text(s, 0),
                    number(s, 1),
                    number(s, 2),
                    number(s, 3),
                    number(s, 4),
                    text(s, 5)
                )
                .unwrap();
                continue;
            }
            "v" | "m" => {
                let view = rows(db, &format!("SELECT pg_get_viewdef({oid})")).await;
                writeln!(out, "view {name}\n  sql: {}", folded(&text(&view[0], 0))).unwrap();
                continue;
            }
            _ => writeln!(out, "table {name}").unwrap(),
        }
        for column in rows(
            db,
            &format!(
                "SELECT a.attname::text, format_type(a.atttypid, a.atttypmod), a.attnotnull::text, \
                 pg_get_expr(d.adbin, d.adrelid), a.attidentity::text, a.attgenerated::text \
                 FROM pg_attribute a LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum \
                 WHERE a.attrelid = {oid} AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum"
            ),
        )
        .await
        {
            let mut line = format!("  column {} {}", text(&column, 0), text(&column, 1));
            if text(&column, 2) == "true" {
                line.push_str(" not null");
            }
            let default = text(&column, 3);
            if !default.is_empty() {
                write!(line, " default {default}").unwrap();
            }
            match text(&column, 4).as_str() {
                "a" => line.push_str(" generated always as identity"),
                "d" => line.push_str(" generated by default as identity"),
                _ => {}
            }
            if text(&column, 5) == "s" {
                line.push_str(" generated stored");
            }
            writeln!(out, "{line}").unwrap();
        }
        for constraint in rows(
            db,
            &format!("SELECT conname::text, pg_get_constraintdef(oid) FROM pg_constraint WHERE conrelid = {oid} ORDER BY conname"),
        )
        .await
        {
            writeln!(out, "  constraint {} {}", text(&constraint, 0), text(&constraint, 1)).unwrap();
        }
        for index in rows(
            db,
            &format!(
                "SELECT i.relname::text, pg_get_indexdef(i.oid) FROM pg_index x JOIN pg_class i ON i.oid = x.indexrelid \
                 WHERE x.indrelid = {oid} ORDER BY i.relname"
            ),
        )
        .await
        {
            writeln!(out, "  index {} {}", text(&index, 0), text(&index, 1)).unwrap();
        }
        for trigger in rows(
            db,
            &format!(
                "SELECT tgname::text, pg_get_triggerdef(oid) FROM pg_trigger \
                 WHERE tgrelid = {oid} AND NOT tgisinternal ORDER BY tgname"
            ),
        )
        .await
        {
            writeln!(out, "  trigger {} {}", text(&trigger, 0), text(&trigger, 1)).unwrap();
        }
    }
    out
}

/// The lines of `old` and `new` that differ, as `-`/`+` lines (a longest-common-subsequence
/// diff; the dumps are a few hundred lines).
fn diff(old: &str, new: &str) -> String {
    let (a, b): (Vec<&str>, Vec<&str>) = (old.lines().collect(), new.lines().collect());
    let mut common = vec![vec![0usize; b.len() + 1]; a.len() + 1];
    for i in (0..a.len()).rev() {
        for j in (0..b.len()).rev() {
            common[i][j] = if a[i] == b[j] { common[i + 1][j + 1] + 1 } else { common[i + 1][j].max(common[i][j + 1]) };
        }
    }
    let (mut i, mut j, mut out) = (0, 0, String::new());
    while i < a.len() || j < b.len() {
        if i < a.len() && j < b.len() && a[i] == b[j] {
            (i, j) = (i + 1, j + 1);
        } else if i < a.len() && (j == b.len() || common[i + 1][j] >= common[i][j + 1]) {
            writeln!(out, "- {}", a[i]).unwrap();
            i += 1;
        } else {
            writeln!(out, "+ {}", b[j]).unwrap();
            j += 1;
        }
    }
    out
}

/// A PostgreSQL database of the test's own, `velferd_schema_<random>`, dropped afterwards (also
/// when the test fails), as the e2e tests do.
struct PostgresDatabase {
    url: String,
    admin_url: String,
    name: String,
}

impl PostgresDatabase {
    async fn create() -> Option<PostgresDatabase> {
        let Ok(admin_url) = std::env::var("VELFERD_TEST_POSTGRES_URL") else {
            assert!(std::env::var("CI").is_err(), "CI must run the PostgreSQL pass: set VELFERD_TEST_POSTGRES_URL");
            eprintln!("skipped: VELFERD_TEST_POSTGRES_URL is not set");
            return None;
        };
        let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos();
        let name = format!("velferd_schema_{}_{}", std::process::id(), nanos % 1_000_000_000_000);
        // The URL names a database (usually `postgres`) to connect to; ours replaces it.
        let server = match admin_url.rsplit_once('/') {
            Some((server, _)) if server.len() >= "postgres://".len() => server,
            _ => admin_url.as_str(),
        };
        let database = PostgresDatabase { url: format!("{server}/{name}"), admin_url: admin_url.clone(), name };
        let admin = Database::connect(&admin_url).await.expect("connect to VELFERD_TEST_POSTGRES_URL");
        admin.execute_unprepared(&format!("CREATE DATABASE {}", database.name)).await.expect("create the database");
        admin.close().await.ok();
        Some(database)
    }
}

impl Drop for PostgresDatabase {
    fn drop(&mut self) {
        let (admin_url, name) = (self.admin_url.clone(), self.name.clone());
        // Drop may run inside the test's runtime, which must not block: use a thread of its own.
        let _ = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
            runtime.block_on(async {
                if let Ok(admin) = Database::connect(&admin_url).await {
                    let _ = admin.execute_unprepared(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)")).await;
                    admin.close().await.ok();
                }
            });
        })
        .join();
    }
}
