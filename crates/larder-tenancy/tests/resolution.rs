//! Tenant resolution against real stores and caches: SQLite with the in-process cache, and
//! PostgreSQL with Redis shared by two resolvers standing in for two processes.

#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::time::Duration;

use larder_access::{ApiKeyId, AppId, Name};
use larder_cache::{Cache, MemoryCache, RedisCache};
use larder_store::{EnableIntegration, NewApiKey, NewApp, Store};
use larder_store_postgres::{PgSettings, PgStore};
use larder_store_sqlite::SqliteStore;
use larder_tenancy::{NEAR_TTL, Principal, Tenancy, secrets};

const OPERATOR: &str = "operator-token-for-tests";

async fn sqlite() -> Arc<dyn Store> {
    let store = SqliteStore::open(&larder_testkit::fresh_sqlite_path())
        .await
        .unwrap();
    store.migrate().await.unwrap();
    Arc::new(store)
}

async fn postgres() -> Arc<dyn Store> {
    let url = larder_testkit::fresh_postgres_url().await;
    let store = PgStore::connect(&url, &PgSettings::default())
        .await
        .unwrap();
    store.migrate().await.unwrap();
    Arc::new(store)
}

async fn redis(prefix: &str) -> Arc<RedisCache> {
    larder_testkit::require_redis().await;
    Arc::new(
        RedisCache::connect(&larder_testkit::redis_url(), prefix)
            .await
            .unwrap(),
    )
}

fn tenancy(store: &Arc<dyn Store>, cache: Arc<dyn Cache>) -> Tenancy {
    Tenancy::new(store.clone(), cache, secrets::hash_token(OPERATOR))
}

async fn app(store: &Arc<dyn Store>) -> AppId {
    let id = AppId::new();
    store
        .create_app(NewApp {
            id,
            name: Name::parse("Shop").unwrap(),
        })
        .await
        .unwrap();
    id
}

/// Enables the app's integration through the store and publishes it, as the admin API does.
async fn enable(t: &Tenancy, app: AppId) -> String {
    let tc = t
        .store()
        .enable_integration(
            app,
            EnableIntegration {
                token_if_new: secrets::generate_webhook_token(),
                secret_word_hash: None,
            },
        )
        .await
        .unwrap();
    t.integration_changed(None, &tc).await;
    tc.webhook_token.unwrap()
}

async fn webhook_lifecycle(t: &Tenancy) {
    let store = t.store().clone();
    let app = app(&store).await;
    let token = enable(t, app).await;
    assert_eq!(
        t.resolve_webhook_token(&token)
            .await
            .unwrap()
            .unwrap()
            .app_id,
        app
    );

    let new_token = secrets::generate_webhook_token();
    let rotated = store.rotate_webhook_token(app, &new_token).await.unwrap();
    t.integration_changed(rotated.old_token.as_deref(), &rotated.integration)
        .await;
    assert!(t.resolve_webhook_token(&token).await.unwrap().is_none());
    assert!(t.resolve_webhook_token(&new_token).await.unwrap().is_some());

    let tc = store.disable_integration(app).await.unwrap();
    t.integration_changed(None, &tc).await;
    assert!(t.resolve_webhook_token(&new_token).await.unwrap().is_none());
}

#[tokio::test]
async fn webhook_tokens_follow_enable_rotate_disable_in_memory() {
    let store = sqlite().await;
    webhook_lifecycle(&tenancy(&store, Arc::new(MemoryCache::default()))).await;
}

#[tokio::test]
async fn webhook_tokens_follow_enable_rotate_disable_with_redis() {
    let store = postgres().await;
    let cache = redis(&larder_testkit::redis_prefix()).await;
    webhook_lifecycle(&tenancy(&store, cache.clone())).await;
    cache.clear_prefix().await.unwrap();
}

#[tokio::test]
async fn unknown_tokens_are_remembered_as_unknown() {
    let store = sqlite().await;
    let t = tenancy(&store, Arc::new(MemoryCache::default()));
    let app = app(&store).await;
    let token = secrets::generate_webhook_token();
    assert!(t.resolve_webhook_token(&token).await.unwrap().is_none());

    // The token now exists in the database, but nobody told the cache: the negative entry
    // answers, so a scan of random tokens does not reach the database again.
    store.rotate_webhook_token(app, &token).await.unwrap();
    store
        .enable_integration(
            app,
            EnableIntegration {
                token_if_new: secrets::generate_webhook_token(),
                secret_word_hash: None,
            },
        )
        .await
        .unwrap();
    assert!(t.resolve_webhook_token(&token).await.unwrap().is_none());
}

#[tokio::test]
async fn malformed_tokens_never_resolve() {
    let store = sqlite().await;
    let t = tenancy(&store, Arc::new(MemoryCache::default()));
    for odd in ["", "x", "../../etc/passwd", &"a".repeat(500)] {
        assert!(t.resolve_webhook_token(odd).await.unwrap().is_none());
        assert!(t.authenticate(odd).await.unwrap().is_none());
    }
}

#[tokio::test]
async fn a_disable_in_one_process_reaches_the_other() {
    let store = postgres().await;
    let prefix = larder_testkit::redis_prefix();
    let one = tenancy(&store, redis(&prefix).await);
    let two = tenancy(&store, redis(&prefix).await);
    let app = app(&store).await;
    let token = enable(&one, app).await;
    // Both have it cached (near and shared).
    assert!(one.resolve_webhook_token(&token).await.unwrap().is_some());
    assert!(two.resolve_webhook_token(&token).await.unwrap().is_some());

    let tc = store.disable_integration(app).await.unwrap();
    one.integration_changed(None, &tc).await;
    assert!(one.resolve_webhook_token(&token).await.unwrap().is_none());
    // The other process's near copy lives at most NEAR_TTL.
    tokio::time::sleep(NEAR_TTL + Duration::from_millis(100)).await;
    assert!(two.resolve_webhook_token(&token).await.unwrap().is_none());
    redis(&prefix).await.clear_prefix().await.unwrap();
}

async fn api_key_lifecycle(one: &Tenancy, two: &Tenancy) {
    let store = one.store().clone();
    let app = app(&store).await;
    let key = secrets::generate_api_key();
    let key_id = ApiKeyId::new();
    store
        .create_api_key(NewApiKey {
            id: key_id,
            app_id: app,
            name: Name::parse("ci").unwrap(),
            key_hash: secrets::hash_token(&key),
        })
        .await
        .unwrap();
    let expected = Principal::App {
        app_id: app,
        key_id,
    };
    assert_eq!(one.authenticate(&key).await.unwrap(), Some(expected));
    assert_eq!(two.authenticate(&key).await.unwrap(), Some(expected));
    assert_eq!(
        one.authenticate(OPERATOR).await.unwrap(),
        Some(Principal::Operator)
    );

    let hash = store.delete_api_key(app, key_id).await.unwrap();
    one.api_key_revoked(&hash).await;
    // At once, in both.
    assert_eq!(one.authenticate(&key).await.unwrap(), None);
    assert_eq!(two.authenticate(&key).await.unwrap(), None);
}

#[tokio::test]
async fn revoked_api_keys_stop_at_once_in_memory() {
    let store = sqlite().await;
    let t = tenancy(&store, Arc::new(MemoryCache::default()));
    api_key_lifecycle(&t, &t).await;
}

#[tokio::test]
async fn revoked_api_keys_stop_at_once_in_every_process() {
    let store = postgres().await;
    let prefix = larder_testkit::redis_prefix();
    let one = tenancy(&store, redis(&prefix).await);
    let two = tenancy(&store, redis(&prefix).await);
    api_key_lifecycle(&one, &two).await;
    redis(&prefix).await.clear_prefix().await.unwrap();
}
