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

/// Items an older release wrote (no lifecycle times), before the upgrade or beside the new
/// release, keep their state.
#[tokio::test]
async fn items_left_by_an_older_release_keep_their_state() {
    let path = larder_testkit::fresh_sqlite_path();
    let store = SqliteStore::open(&path).await.unwrap();
    store.migrate().await.unwrap();
    let older = larder_store::upgrade::older_release_items(&store).await;
    let pool = sqlx::SqlitePool::connect(&format!("sqlite://{}", path.display()))
        .await
        .unwrap();
    // Written before the upgrade: no times, and the migrations since not run.
    for app in older.before_upgrade() {
        sqlx::query("update order_items set paused_at = null, resumed_at = null where app_id = ?1")
            .bind(app.to_string())
            .execute(&pool)
            .await
            .unwrap();
    }
    sqlx::query("delete from _sqlx_migrations where version = 9")
        .execute(&pool)
        .await
        .unwrap();
    // Resumed beside the new release: status and grants, no time.
    for resume in [
        "update order_items set status = 'active' where app_id = ?1 and product = 'product-7'",
        "update grants set status = 'active' where app_id = ?1 and product = 'product-7'",
    ] {
        sqlx::query(resume)
            .bind(older.resumed_beside().to_string())
            .execute(&pool)
            .await
            .unwrap();
    }
    sqlx::query(
        "update order_items set status_at = ?2 where app_id = ?1 and product = 'product-7'",
    )
    .bind(older.resumed_beside().to_string())
    .bind(larder_store::upgrade::RESUMED_BESIDE_AT)
    .execute(&pool)
    .await
    .unwrap();
    pool.close().await;
    store.migrate().await.unwrap();
    larder_store::upgrade::older_release_items_keep_their_state(&store, older).await;
}
