//! The storage contract on SQLite: every case on a fresh database file of its own.

#![allow(clippy::unwrap_used)]

use larder_store::Store as _;
use larder_store_sqlite::SqliteStore;

async fn fresh_store() -> Box<SqliteStore> {
    let store = SqliteStore::open(&larder_testkit::fresh_sqlite_path())
        .await
        .unwrap();
    store.migrate().await.unwrap();
    Box::new(store)
}

larder_store::contract_cases!(fresh_store);

/// A 2xx means durable: every commit is synced, even in WAL mode, whichever way the
/// database is named.
#[tokio::test]
async fn commits_reach_the_disk_before_they_return() {
    let path = larder_testkit::fresh_sqlite_path();
    let by_path = SqliteStore::open(&path).await.unwrap();
    assert_eq!(by_path.synchronous().await.unwrap(), 2, "synchronous=FULL");
    let by_url = SqliteStore::open_url(&format!("sqlite://{}", path.display()))
        .await
        .unwrap();
    assert_eq!(by_url.synchronous().await.unwrap(), 2, "synchronous=FULL");
}
