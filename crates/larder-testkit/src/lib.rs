//! Test harness shared by Larder's test suites: fresh PostgreSQL databases, SQLite files,
//! Redis namespaces, a throwaway Redis Cluster ([`cluster`]), the addresses of the services the tests run against, and the
//! ThriveCart fixtures ([`fixtures`]).
//!
//! Nothing here skips a test: when PostgreSQL or Redis cannot be reached, the helper panics
//! with a message naming the service and the variable that points at it.
//!
//! This crate depends on no Larder crate, so any crate can use it as a dev-dependency
//! without a cycle; each suite builds its store or server from what these helpers return.

#![allow(clippy::unwrap_used)]

use std::path::PathBuf;
use std::sync::OnceLock;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use sqlx::Connection;

pub mod cluster;
pub mod fixtures;
pub mod throwaway;

/// The server-level PostgreSQL URL tests create their databases on.
/// `LARDER_TEST_POSTGRES_URL` overrides the local default.
pub fn postgres_admin_url() -> String {
    std::env::var("LARDER_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned())
}

/// The Redis the tests use. `LARDER_TEST_REDIS_URL` overrides the local default.
pub fn redis_url() -> String {
    std::env::var("LARDER_TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".to_owned())
}

/// A key prefix no other test uses; a test cleans up only keys under its own prefix.
pub fn redis_prefix() -> String {
    format!("larder-test:{}:", uuid::Uuid::new_v4().simple())
}

/// Databases made by tests are named `larder_t_<unix seconds>_<random>`; ones older than
/// this are left over from earlier runs and dropped.
const STALE_AFTER: Duration = Duration::from_secs(2 * 60 * 60);
const PREFIX: &str = "larder_t_";

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or_default()
}

/// Creates an empty database for one test and returns its URL.
pub async fn fresh_postgres_url() -> String {
    let admin_url = postgres_admin_url();
    let mut conn = sqlx::PgConnection::connect(&admin_url)
        .await
        .unwrap_or_else(|e| {
            panic!(
                "PostgreSQL is not reachable at {admin_url} ({e}); start it (see .ci/run) or set \
             LARDER_TEST_POSTGRES_URL"
            )
        });
    drop_stale_databases_once(&mut conn).await;
    let name = format!("{PREFIX}{}_{}", unix_now(), uuid::Uuid::new_v4().simple());
    sqlx::query(sqlx::AssertSqlSafe(format!("create database {name}")))
        .execute(&mut conn)
        .await
        .unwrap_or_else(|e| panic!("could not create test database {name}: {e}"));
    conn.close().await.ok();
    with_database(&admin_url, &name)
}

/// `url` with its database name replaced.
fn with_database(url: &str, name: &str) -> String {
    let base = url.rsplit_once('/').map(|(base, _)| base).unwrap_or(url);
    format!("{base}/{name}")
}

async fn drop_stale_databases_once(conn: &mut sqlx::PgConnection) {
    static DONE: OnceLock<()> = OnceLock::new();
    if DONE.set(()).is_err() {
        return;
    }
    let names: Vec<String> =
        sqlx::query_scalar("select datname from pg_database where datname like 'larder\\_t\\_%'")
            .fetch_all(&mut *conn)
            .await
            .unwrap_or_default();
    let cutoff = unix_now().saturating_sub(STALE_AFTER.as_secs());
    for name in names {
        let created = name
            .strip_prefix(PREFIX)
            .and_then(|rest| rest.split('_').next())
            .and_then(|secs| secs.parse::<u64>().ok());
        if created.is_some_and(|secs| secs < cutoff) {
            // Best effort: another run may be dropping it too.
            let _ = sqlx::query(sqlx::AssertSqlSafe(format!(
                "drop database if exists {name} with (force)"
            )))
            .execute(&mut *conn)
            .await;
        }
    }
}

/// A path for a new SQLite database file in a directory of its own. The directory is
/// removed by the OS's temp cleaning, not by the test, so a failing test leaves its file
/// to look at.
pub fn fresh_sqlite_path() -> PathBuf {
    let dir = std::env::temp_dir()
        .join("larder-tests")
        .join(uuid::Uuid::new_v4().simple().to_string());
    std::fs::create_dir_all(&dir).unwrap();
    dir.join("larder.db")
}

/// The logs of the service under test, on demand. With `TEST_LOG` set to a filter (`debug`,
/// `larder_gateway=trace`; `1` means `info`), tests print the service's logs through the
/// test harness, which shows each failing test's own; without it they log nothing. Call it
/// first thing in a test (the test kit's spawners do); only the first call counts.
///
/// ```sh
/// TEST_LOG=debug cargo test -p larder-server --test api webhooks
/// ```
pub fn init_test_log() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let Ok(filter) = std::env::var("TEST_LOG") else {
            return;
        };
        let filter = match filter.as_str() {
            "" | "1" | "true" => "info".to_owned(),
            _ => filter,
        };
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::new(filter))
            .with_test_writer()
            .try_init();
    });
}

/// Panics with a clear message unless Redis answers `PING`.
pub async fn require_redis() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let url = redis_url();
    let addr = url
        .trim_start_matches("redis://")
        .split('/')
        .next()
        .unwrap_or("127.0.0.1:6379")
        .to_owned();
    let reply = async {
        let mut stream = tokio::net::TcpStream::connect(&addr).await?;
        stream.write_all(b"PING\r\n").await?;
        let mut buf = [0u8; 7];
        stream.read_exact(&mut buf).await?;
        Ok::<_, std::io::Error>(buf)
    };
    match tokio::time::timeout(Duration::from_secs(3), reply).await {
        Ok(Ok(buf)) if &buf == b"+PONG\r\n" => {}
        other => panic!(
            "Redis is not answering at {url} ({other:?}); start it (see .ci/run) or set \
             LARDER_TEST_REDIS_URL"
        ),
    }
}

/// Where `.ci/tools/install` puts the pinned tools: `$LARDER_TOOLS`, default
/// `~/.cache/larder-tools`.
pub fn tools_dir() -> PathBuf {
    std::env::var_os("LARDER_TOOLS").map_or_else(
        || {
            std::path::Path::new(&std::env::var_os("HOME").expect("HOME is set"))
                .join(".cache/larder-tools")
        },
        PathBuf::from,
    )
}

/// A tool from the pinned set (`node/node_modules/.bin/redocly`, `venv/bin/...`); panics with
/// how to install it when it is missing, so a test never skips for want of it.
pub fn pinned_tool(relative: &str) -> PathBuf {
    let path = tools_dir().join(relative);
    assert!(
        path.exists(),
        "{} is missing: run .ci/tools/install (it installs the pinned tools into \
         $LARDER_TOOLS, default ~/.cache/larder-tools)",
        path.display()
    );
    path
}
