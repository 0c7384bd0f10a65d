//! The storage contract on PostgreSQL: every case on a fresh database of its own.

#![allow(clippy::unwrap_used)]

use larder_store::Store as _;
use larder_store_postgres::{PgSettings, PgStore};

async fn fresh_store() -> Box<PgStore> {
    let url = larder_testkit::fresh_postgres_url().await;
    let settings = PgSettings {
        max_connections: 4,
        ..PgSettings::default()
    };
    let store = PgStore::connect(&url, &settings).await.unwrap();
    store.migrate().await.unwrap();
    Box::new(store)
}

larder_store::contract_cases!(fresh_store);

/// A database an older release wrote (no lifecycle times on its items, migrated only so
/// far) keeps every item's state through the upgrade.
#[tokio::test]
async fn items_left_by_an_older_release_keep_their_state() {
    let url = larder_testkit::fresh_postgres_url().await;
    let store = PgStore::connect(&url, &PgSettings::default())
        .await
        .unwrap();
    store.migrate().await.unwrap();
    let older = larder_store::upgrade::older_release_items(&store).await;
    let pool = sqlx::PgPool::connect(&url).await.unwrap();
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
