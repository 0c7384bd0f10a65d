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
