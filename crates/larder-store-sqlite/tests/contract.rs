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
