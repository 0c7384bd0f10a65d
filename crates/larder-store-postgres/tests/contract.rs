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

/// Items an older release wrote (no lifecycle times), before the upgrade or beside the new
/// release, keep their state.
#[tokio::test]
async fn items_left_by_an_older_release_keep_their_state() {
    let url = larder_testkit::fresh_postgres_url().await;
    let store = PgStore::connect(&url, &PgSettings::default())
        .await
        .unwrap();
    store.migrate().await.unwrap();
    let older = larder_store::upgrade::older_release_items(&store).await;
    let pool = sqlx::PgPool::connect(&url).await.unwrap();
    // Written before the upgrade: no times, and the migrations since not run.
    for app in older.before_upgrade() {
        sqlx::query("update order_items set paused_at = null, resumed_at = null where app_id = $1")
            .bind(app.as_uuid())
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
        "update order_items set status = 'active' where app_id = $1 and product = 'product-7'",
        "update grants set status = 'active' where app_id = $1 and product = 'product-7'",
    ] {
        sqlx::query(resume)
            .bind(older.resumed_beside().as_uuid())
            .execute(&pool)
            .await
            .unwrap();
    }
    sqlx::query(
        "update order_items set status_at = $2 where app_id = $1 and product = 'product-7'",
    )
    .bind(older.resumed_beside().as_uuid())
    .bind(larder_store::upgrade::RESUMED_BESIDE_AT)
    .execute(&pool)
    .await
    .unwrap();
    pool.close().await;
    store.migrate().await.unwrap();
    larder_store::upgrade::older_release_items_keep_their_state(&store, older).await;
}
