//! Tenant resolution: who is calling, and which app a webhook URL belongs to.
//!
//! [`Tenancy`] turns a bearer token into a [`Principal`] (the operator or one app's API key)
//! and a webhook token into the app's [`LiveIntegration`]. Lookups go through the cache
//! (a near in-process cache in front of Redis for webhook tokens, Redis shared by every
//! process, the database last) so bursts of deliveries do not hit the database. Unknown
//! tokens are cached negatively for a short time, so a scan of random URLs cannot hammer it.
//!
//! Changes are written through: whoever disables, rotates or revokes calls
//! [`Tenancy::integration_changed`] / [`Tenancy::api_key_revoked`], which overwrite the
//! shared entry at once. Lookups populate the cache only if it is empty (`SET NX`), so a
//! lookup that read the database just before a change cannot put the old answer back. The
//! near cache lives [`NEAR_TTL`], which bounds how long another process can answer from an
//! older state (a disable takes effect everywhere within that).

pub mod secrets;

use std::sync::Arc;
use std::time::Duration;

use std::collections::HashMap;

use larder_access::{
    AccessLevelId, ApiKeyId, AppId, CancellationPolicy, ProductKey, TestModePolicy,
};
use larder_cache::{Cache, CacheKind, MemoryCache};
use larder_metrics::{Lookup, Metrics};
use larder_store::{ApiKeyOwner, DeletedApp, Integration, Store, StoreError, call_span};
use serde::{Deserialize, Serialize};
use tracing::Instrument;

/// How long a known token or key stays cached. Changes overwrite entries, so this only
/// bounds memory and the damage of a lost write.
pub const POSITIVE_TTL: Duration = Duration::from_secs(300);
/// How long an unknown token is remembered as unknown.
pub const NEGATIVE_TTL: Duration = Duration::from_secs(10);
/// How long a process trusts its own copy of a webhook lookup before asking Redis again.
pub const NEAR_TTL: Duration = Duration::from_millis(500);
/// When a change is published a second time, from the database, to undo racing writes.
pub const SETTLE_AFTER: Duration = Duration::from_secs(1);

#[derive(Debug, thiserror::Error)]
pub enum TenancyError {
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Who a request acts as.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Principal {
    /// The operator: may do everything.
    Operator,
    /// An app's API key: may act on that app only.
    App { app_id: AppId, key_id: ApiKeyId },
}

impl Principal {
    /// Whether this principal may act on `app`.
    pub fn may_act_on(&self, app: AppId) -> bool {
        match self {
            Principal::Operator => true,
            Principal::App { app_id, .. } => *app_id == app,
        }
    }
}

/// What the webhook path needs to know about an app whose integration is enabled.
#[derive(Clone, PartialEq, Eq)]
pub struct LiveIntegration {
    pub app_id: AppId,
    pub secret_word_hash: Option<String>,
    pub test_mode: TestModePolicy,
    pub cancellation: CancellationPolicy,
}

impl std::fmt::Debug for LiveIntegration {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LiveIntegration")
            .field("app_id", &self.app_id)
            .field("secret_word_set", &self.secret_word_hash.is_some())
            .field("test_mode", &self.test_mode)
            .field("cancellation", &self.cancellation)
            .finish()
    }
}

/// The cached form of a webhook lookup; `None` means "no enabled integration".
#[derive(Serialize, Deserialize)]
struct CachedIntegration {
    app_id: AppId,
    secret_word_hash: Option<String>,
    test_mode: String,
    cancellation: String,
}

const NONE: &str = "none";

fn encode_integration(live: Option<&LiveIntegration>) -> String {
    match live {
        None => NONE.to_owned(),
        Some(live) => serde_json::to_string(&CachedIntegration {
            app_id: live.app_id,
            secret_word_hash: live.secret_word_hash.clone(),
            test_mode: live.test_mode.as_str().to_owned(),
            cancellation: live.cancellation.as_str().to_owned(),
        })
        .unwrap_or_else(|_| NONE.to_owned()),
    }
}

/// `None` when the entry is unreadable (written by another version): treated as a miss.
fn decode_integration(text: &str) -> Option<Option<LiveIntegration>> {
    if text == NONE {
        return Some(None);
    }
    let cached: CachedIntegration = serde_json::from_str(text).ok()?;
    Some(Some(LiveIntegration {
        app_id: cached.app_id,
        secret_word_hash: cached.secret_word_hash,
        test_mode: cached.test_mode.parse().ok()?,
        cancellation: cached.cancellation.parse().ok()?,
    }))
}

fn live(integration: &Integration) -> Option<LiveIntegration> {
    integration.live_token().map(|_| LiveIntegration {
        app_id: integration.app_id,
        secret_word_hash: integration.secret_word_hash.clone(),
        test_mode: integration.test_mode,
        cancellation: integration.cancellation,
    })
}

#[derive(Serialize, Deserialize)]
struct CachedKey {
    key_id: ApiKeyId,
    app_id: AppId,
}

fn encode_key(owner: Option<&ApiKeyOwner>) -> String {
    match owner {
        None => NONE.to_owned(),
        Some(o) => serde_json::to_string(&CachedKey {
            key_id: o.key_id,
            app_id: o.app_id,
        })
        .unwrap_or_else(|_| NONE.to_owned()),
    }
}

fn decode_key(text: &str) -> Option<Option<ApiKeyOwner>> {
    if text == NONE {
        return Some(None);
    }
    let cached: CachedKey = serde_json::from_str(text).ok()?;
    Some(Some(ApiKeyOwner {
        key_id: cached.key_id,
        app_id: cached.app_id,
    }))
}

/// Cache keys hold digests, never the tokens themselves.
fn webhook_cache_key(token: &str) -> String {
    format!("wh:{}", secrets::hash_token(token))
}

fn api_key_cache_key(key_hash: &str) -> String {
    format!("ak:{key_hash}")
}

fn mappings_cache_key(app: AppId) -> String {
    format!("maps:{app}")
}

fn cors_cache_key(app: AppId) -> String {
    format!("cors:{app}")
}

/// Origins are a browser's free text: keys hold their digest.
fn origin_cache_key(origin: &str) -> String {
    format!("origin:{}", secrets::hash_token(origin))
}

/// How long "does any app allow this origin" is remembered. Changes drop the entries of
/// the origins they touch, so this only bounds what a lost write costs.
const ORIGIN_TTL: Duration = Duration::from_secs(60);

fn decode_origins(text: &str) -> Option<Vec<String>> {
    serde_json::from_str(text).ok()
}

fn decode_flag(text: &str) -> Option<bool> {
    match text {
        "1" => Some(true),
        "0" => Some(false),
        _ => None,
    }
}

/// An app's mappings: typed product key → the levels it grants.
pub type MappingTable = HashMap<ProductKey, Vec<AccessLevelId>>;

fn encode_mappings(table: &MappingTable) -> String {
    let pairs: Vec<(String, Vec<AccessLevelId>)> = table
        .iter()
        .map(|(k, v)| (k.to_string(), v.clone()))
        .collect();
    serde_json::to_string(&pairs).unwrap_or_default()
}

fn decode_mappings(text: &str) -> Option<MappingTable> {
    let pairs: Vec<(String, Vec<AccessLevelId>)> = serde_json::from_str(text).ok()?;
    pairs
        .into_iter()
        .map(|(k, v)| ProductKey::parse(&k).ok().map(|k| (k, v)))
        .collect()
}

/// Resolves tokens to tenants. Cheap to clone; hang one off each server's state.
#[derive(Debug, Clone)]
pub struct Tenancy {
    store: Arc<dyn Store>,
    shared: Arc<dyn Cache>,
    /// In front of a shared (Redis) cache only; with an in-memory cache it would be a copy.
    near: Option<MemoryCache>,
    operator_token_hash: Arc<str>,
    metrics: Metrics,
}

impl Tenancy {
    /// `operator_token_hash` is [`secrets::hash_token`] of the operator's token.
    pub fn new(store: Arc<dyn Store>, shared: Arc<dyn Cache>, operator_token_hash: String) -> Self {
        let near = (shared.kind() == CacheKind::Redis).then(|| MemoryCache::new(50_000));
        Self {
            store,
            shared,
            near,
            operator_token_hash: operator_token_hash.into(),
            metrics: Metrics::new(),
        }
    }

    /// Counts into `metrics` (the service's), not a registry of its own.
    pub fn with_metrics(mut self, metrics: Metrics) -> Self {
        self.metrics = metrics;
        self
    }

    /// The service's metrics.
    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    pub fn cache(&self) -> &Arc<dyn Cache> {
        &self.shared
    }

    /// Who `bearer` is, or `None` for a wrong or revoked token.
    pub async fn authenticate(&self, bearer: &str) -> Result<Option<Principal>, TenancyError> {
        if secrets::constant_time_eq(&secrets::hash_token(bearer), &self.operator_token_hash) {
            return Ok(Some(Principal::Operator));
        }
        Ok(self
            .resolve_api_key(bearer)
            .await?
            .map(|owner| Principal::App {
                app_id: owner.app_id,
                key_id: owner.key_id,
            }))
    }

    /// The owner of an API key, or `None` when the key is unknown or revoked.
    ///
    /// API keys skip the near cache: admin traffic is light, and a revoked key must stop
    /// working at once in every process.
    pub async fn resolve_api_key(&self, key: &str) -> Result<Option<ApiKeyOwner>, TenancyError> {
        if !secrets::is_api_key_shaped(key) {
            return Ok(None);
        }
        let key_hash = secrets::hash_token(key);
        let load = async {
            let owner = self
                .store
                .find_api_key_by_hash(&key_hash)
                .instrument(self.store_span("find_api_key_by_hash"))
                .await?;
            let ttl = if owner.is_some() {
                POSITIVE_TTL
            } else {
                NEGATIVE_TTL
            };
            Ok((encode_key(owner.as_ref()), ttl))
        };
        self.read_through(
            "api_key",
            &api_key_cache_key(&key_hash),
            false,
            decode_key,
            load,
        )
        .await
    }

    /// Makes a deleted key stop working everywhere: overwrites its cached entry.
    pub async fn api_key_revoked(&self, key_hash: &str) {
        self.shared_overwrite(&api_key_cache_key(key_hash), NONE, POSITIVE_TTL)
            .await;
    }

    /// Makes a deleted app's webhook URL and API keys stop working: in this process at once,
    /// in others within [`NEAR_TTL`] for the URL and at once for the keys.
    pub async fn app_deleted(&self, app: AppId, gone: &DeletedApp) {
        if let Some(token) = &gone.webhook_token {
            self.write_through(&webhook_cache_key(token), NONE).await;
        }
        for key_hash in &gone.api_key_hashes {
            self.api_key_revoked(key_hash).await;
        }
        for key in [mappings_cache_key(app), cors_cache_key(app)] {
            if let Err(err) = self.shared.delete(&key).await {
                tracing::warn!(error = %err, "could not drop a deleted app's cached entry");
            }
            if let Some(near) = &self.near {
                let _ = near.delete(&key).await;
            }
        }
    }

    /// The enabled integration a webhook token belongs to; `None` for an unknown token or a
    /// disabled integration.
    pub async fn resolve_webhook_token(
        &self,
        token: &str,
    ) -> Result<Option<LiveIntegration>, TenancyError> {
        if !secrets::is_webhook_token_shaped(token) {
            return Ok(None);
        }
        let load = async {
            let found = self
                .store
                .find_integration_by_token(token)
                .instrument(self.store_span("find_integration_by_token"))
                .await?;
            // Unknown tokens are remembered briefly; known ones (even disabled) are
            // overwritten on every change, so they can stay longer.
            let ttl = if found.is_some() {
                POSITIVE_TTL
            } else {
                NEGATIVE_TTL
            };
            Ok((
                encode_integration(found.as_ref().and_then(live).as_ref()),
                ttl,
            ))
        };
        self.read_through(
            "webhook_token",
            &webhook_cache_key(token),
            true,
            decode_integration,
            load,
        )
        .await
    }

    /// Publishes an integration's new state after it was changed in the store:
    /// `old_token` (if it differs from the current one) stops resolving, and the current
    /// token resolves to the new state, in this process at once and in others within
    /// [`NEAR_TTL`].
    ///
    /// Two changes racing each other may write their states in the opposite order of their
    /// commits; a second write [`SETTLE_AFTER`] later, of what the database holds then,
    /// puts the latest state in place whatever the order was.
    pub async fn integration_changed(&self, old_token: Option<&str>, now: &Integration) {
        if let Some(old) = old_token
            && Some(old) != now.webhook_token.as_deref()
        {
            // A rotated-away token never comes back, so this write cannot go stale.
            self.write_through(&webhook_cache_key(old), NONE).await;
        }
        self.publish_integration(now).await;
        let this = self.clone();
        let app = now.app_id;
        let token = now.webhook_token.clone();
        tokio::spawn(async move {
            tokio::time::sleep(SETTLE_AFTER).await;
            match this.store.get_integration(app).await {
                Ok(latest) => this.publish_integration(&latest).await,
                // The app went meanwhile: whatever was published of it is gone too.
                Err(StoreError::NotFound) => {
                    if let Some(token) = token {
                        this.write_through(&webhook_cache_key(&token), NONE).await;
                    }
                }
                Err(err) => tracing::warn!(error = %err, "could not settle an integration"),
            }
        });
    }

    async fn publish_integration(&self, state: &Integration) {
        if let Some(token) = &state.webhook_token {
            let text = encode_integration(live(state).as_ref());
            self.write_through(&webhook_cache_key(token), &text).await;
        }
    }

    /// The app's mappings, for the webhook path: near cache, shared cache, then the store.
    pub async fn mappings(&self, app: AppId) -> Result<MappingTable, TenancyError> {
        let load = async {
            Ok((
                encode_mappings(&self.load_mappings(app).await?),
                POSITIVE_TTL,
            ))
        };
        self.read_through(
            "mappings",
            &mappings_cache_key(app),
            true,
            decode_mappings,
            load,
        )
        .await
    }

    /// The origins the app lets call the member API from a browser (none for an unknown
    /// app): near cache, shared cache, then the store.
    pub async fn cors_origins(&self, app: AppId) -> Result<Vec<String>, TenancyError> {
        let load = async {
            let origins = match self.store.member_settings(app).await {
                Ok(settings) => settings.cors_origins,
                Err(StoreError::NotFound) => Vec::new(),
                Err(err) => return Err(err.into()),
            };
            Ok((
                serde_json::to_string(&origins).unwrap_or_default(),
                POSITIVE_TTL,
            ))
        };
        self.read_through(
            "cors_origins",
            &cors_cache_key(app),
            true,
            decode_origins,
            load,
        )
        .await
    }

    /// Whether any app lets `origin` call the member API: for the preflights of the
    /// member API's paths that name no app (a session's app is known only once the
    /// request itself, with its token, comes).
    pub async fn origin_allowed_anywhere(&self, origin: &str) -> Result<bool, TenancyError> {
        let load = async {
            let allowed = self
                .store
                .origin_allowed_anywhere(origin)
                .instrument(self.store_span("origin_allowed_anywhere"))
                .await?;
            Ok((if allowed { "1" } else { "0" }.to_owned(), ORIGIN_TTL))
        };
        self.read_through(
            "cors_origin",
            &origin_cache_key(origin),
            true,
            decode_flag,
            load,
        )
        .await
    }

    /// Publishes an app's new CORS origins (`before` were the old ones): its entry is
    /// overwritten and the "any app" answers of every origin in either list are dropped,
    /// in this process at once and in others within [`NEAR_TTL`]. Like
    /// [`Tenancy::mappings_changed`], publishes again from the database [`SETTLE_AFTER`]
    /// later, so racing changes end with the latest origins.
    pub async fn cors_changed(&self, app: AppId, before: &[String], now: &[String]) {
        let text = serde_json::to_string(now).unwrap_or_default();
        self.write_through(&cors_cache_key(app), &text).await;
        self.forget_origins(before.iter().chain(now)).await;
        let this = self.clone();
        let touched: Vec<String> = before.iter().chain(now).cloned().collect();
        tokio::spawn(async move {
            tokio::time::sleep(SETTLE_AFTER).await;
            match this.store.member_settings(app).await {
                Ok(settings) => {
                    let text = serde_json::to_string(&settings.cors_origins).unwrap_or_default();
                    this.write_through(&cors_cache_key(app), &text).await;
                    this.forget_origins(touched.iter().chain(&settings.cors_origins))
                        .await;
                }
                Err(err) => {
                    tracing::warn!(error = %err, "could not reload an app's origins; dropping the entry");
                    let _ = this.shared.delete(&cors_cache_key(app)).await;
                    if let Some(near) = &this.near {
                        let _ = near.delete(&cors_cache_key(app)).await;
                    }
                }
            }
        });
    }

    async fn forget_origins(&self, origins: impl Iterator<Item = &String>) {
        for origin in origins {
            let key = origin_cache_key(origin);
            if let Err(err) = self.shared.delete(&key).await {
                tracing::warn!(error = %err, "could not drop a cached origin; it expires on its own");
            }
            if let Some(near) = &self.near {
                let _ = near.delete(&key).await;
            }
        }
    }

    /// One cached lookup: the near cache (when `near` and there is one), the shared cache,
    /// then `load` (the database), whose answer populates the shared cache only if it is
    /// still empty. Entries that do not decode (another version's) count as misses.
    async fn read_through<T: Default>(
        &self,
        cache: &'static str,
        cache_key: &str,
        near: bool,
        decode: fn(&str) -> Option<T>,
        load: impl std::future::Future<Output = Result<(String, Duration), TenancyError>>,
    ) -> Result<T, TenancyError> {
        let span = tracing::info_span!(
            "cache.lookup",
            larder.cache = cache,
            larder.cache.result = tracing::field::Empty
        );
        let (value, result) = self
            .read_through_uncounted(cache_key, near, decode, load)
            .instrument(span.clone())
            .await?;
        span.record("larder.cache.result", result.label());
        self.metrics.cache_lookup(cache, result);
        Ok(value)
    }

    async fn read_through_uncounted<T: Default>(
        &self,
        cache_key: &str,
        near: bool,
        decode: fn(&str) -> Option<T>,
        load: impl std::future::Future<Output = Result<(String, Duration), TenancyError>>,
    ) -> Result<(T, Lookup), TenancyError> {
        let near = self.near.as_ref().filter(|_| near);
        if let Some(near) = near
            && let Some(hit) = near
                .get(cache_key)
                .await
                .ok()
                .flatten()
                .and_then(|t| decode(&t))
        {
            return Ok((hit, Lookup::Hit));
        }
        let (shared, mut result) = match self.shared.get(cache_key).await {
            Ok(hit) => (hit, Lookup::Miss),
            Err(err) => {
                err.log("cache read failed; asking the database");
                (None, Lookup::Error)
            }
        };
        let shared = shared.and_then(|t| decode(&t).map(|v| (t, v)));
        let (text, value) = match shared {
            Some(hit) => {
                result = Lookup::Hit;
                hit
            }
            None => {
                let (text, ttl) = load.await?;
                let text = match self.shared.set_if_absent(cache_key, &text, ttl).await {
                    // Someone else (maybe a change) wrote first: theirs is at least as new.
                    Ok(false) => self
                        .shared_get(cache_key)
                        .await
                        .filter(|t| decode(t).is_some())
                        .unwrap_or(text),
                    Ok(true) => text,
                    Err(err) => {
                        err.log("cache write failed");
                        text
                    }
                };
                let value = decode(&text).unwrap_or_default();
                (text, value)
            }
        };
        if let Some(near) = near {
            let _ = near.set(cache_key, &text, NEAR_TTL).await;
        }
        Ok((value, result))
    }

    async fn load_mappings(&self, app: AppId) -> Result<MappingTable, TenancyError> {
        let mut table = MappingTable::new();
        for m in self
            .store
            .all_mappings(app)
            .instrument(self.store_span("all_mappings"))
            .await?
        {
            table.entry(m.product).or_default().push(m.access_level_id);
        }
        Ok(table)
    }

    /// Publishes an app's mappings after a change, in this process at once and in others
    /// within [`NEAR_TTL`].
    ///
    /// Like [`Tenancy::integration_changed`], writes again [`SETTLE_AFTER`] later, so racing
    /// changes end with the latest mappings. A failure is logged, not returned: the change
    /// itself is committed, and the entry expires on its own.
    pub async fn mappings_changed(&self, app: AppId) {
        self.publish_mappings(app).await;
        let this = self.clone();
        tokio::spawn(async move {
            tokio::time::sleep(SETTLE_AFTER).await;
            this.publish_mappings(app).await;
        });
    }

    async fn publish_mappings(&self, app: AppId) {
        let cache_key = mappings_cache_key(app);
        match self.load_mappings(app).await {
            Ok(table) => {
                self.write_through(&cache_key, &encode_mappings(&table))
                    .await
            }
            Err(err) => {
                tracing::warn!(error = %err, "could not reload mappings; dropping the entry");
                if let Err(err) = self.shared.delete(&cache_key).await {
                    tracing::warn!(error = %err, "could not drop the mappings entry");
                }
                if let Some(near) = &self.near {
                    let _ = near.delete(&cache_key).await;
                }
            }
        }
    }

    async fn write_through(&self, cache_key: &str, text: &str) {
        self.shared_overwrite(cache_key, text, POSITIVE_TTL).await;
        if let Some(near) = &self.near {
            let _ = near.delete(cache_key).await;
        }
    }

    fn store_span(&self, operation: &'static str) -> tracing::Span {
        call_span(self.store.backend(), operation)
    }

    async fn shared_get(&self, cache_key: &str) -> Option<String> {
        match self.shared.get(cache_key).await {
            Ok(hit) => hit,
            Err(err) => {
                err.log("cache read failed; asking the database");
                None
            }
        }
    }

    async fn shared_overwrite(&self, cache_key: &str, text: &str, ttl: Duration) {
        if let Err(err) = self.shared.set(cache_key, text, ttl).await {
            // Leaving the old entry would keep a revoked token alive until it expires;
            // try to drop it instead.
            tracing::error!(error = %err, "cache write-through failed; deleting the entry");
            if let Err(err) = self.shared.delete(cache_key).await {
                tracing::error!(error = %err, "cache delete failed; entry expires on its own");
            }
        }
    }
}
