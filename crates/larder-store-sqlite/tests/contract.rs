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

/// A database an older release wrote (no lifecycle times on its items, migrated only so
/// far) keeps every item's state through the upgrade.
#[tokio::test]
async fn items_left_by_an_older_release_keep_their_state() {
    let path = larder_testkit::fresh_sqlite_path();
    let store = SqliteStore::open(&path).await.unwrap();
    store.migrate().await.unwrap();
    let older = larder_store::upgrade::older_release_items(&store).await;
    let pool = sqlx::SqlitePool::connect(&format!("sqlite://{}", path.display()))
        .await
        .unwrap();
    for forget in [
        "update order_items set paused_at = null, resumed_at = null",
        "delete from _sqlx_migrations where version = 9",
    ] {
        sqlx::query(forget).execute(&pool).await.unwrap();
    }
    pool.close().await;
    store.migrate().await.unwrap();
    larder_store::upgrade::older_release_items_keep_their_state(&store, older).await;
}
