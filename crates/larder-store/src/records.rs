//! Records going into and coming out of a [`crate::Store`].

use chrono::{DateTime, Utc};
use larder_access::{
    AccessLevelId, ApiKeyId, AppId, CancellationPolicy, MappingId, Name, ProductKey, TestModePolicy,
};

/// Largest page a list call may ask for.
pub const MAX_PAGE_SIZE: u32 = 200;
/// Page size when none is asked for.
pub const DEFAULT_PAGE_SIZE: u32 = 50;

/// Keyset pagination: up to `limit` rows after the row with id `after`, in id order.
/// Ids are UUIDv7, so new rows land at the end and a reader following cursors sees every row
/// exactly once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PageRequest {
    pub limit: u32,
    pub after: Option<uuid::Uuid>,
}

impl PageRequest {
    /// The first page, `limit` clamped to 1..=[`MAX_PAGE_SIZE`].
    pub fn first(limit: u32) -> Self {
        Self {
            limit: limit.clamp(1, MAX_PAGE_SIZE),
            after: None,
        }
    }

    pub fn after(self, after: uuid::Uuid) -> Self {
        Self {
            after: Some(after),
            ..self
        }
    }

    /// How many rows to fetch: one more than the page, to learn whether another page exists.
    pub fn fetch_limit(&self) -> i64 {
        i64::from(self.limit.clamp(1, MAX_PAGE_SIZE)) + 1
    }

    /// Cuts a `fetch_limit()`-long result into a page and its continuation.
    pub fn paginate<T>(&self, mut rows: Vec<T>, id: impl Fn(&T) -> uuid::Uuid) -> Page<T> {
        let limit = self.limit.clamp(1, MAX_PAGE_SIZE) as usize;
        let next = if rows.len() > limit {
            rows.truncate(limit);
            rows.last().map(id)
        } else {
            None
        };
        Page { items: rows, next }
    }
}

impl Default for PageRequest {
    fn default() -> Self {
        Self::first(DEFAULT_PAGE_SIZE)
    }
}

/// One page of a list and the id to continue after, if there is more.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub next: Option<uuid::Uuid>,
}

#[derive(Debug, Clone)]
pub struct NewApp {
    pub id: AppId,
    pub name: Name,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct App {
    pub id: AppId,
    pub name: String,
    pub created_at: DateTime<Utc>,
}

/// A new API key. Only the hash of the key is stored.
#[derive(Debug, Clone)]
pub struct NewApiKey {
    pub id: ApiKeyId,
    pub app_id: AppId,
    pub name: Name,
    pub key_hash: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiKey {
    pub id: ApiKeyId,
    pub app_id: AppId,
    pub name: String,
    pub created_at: DateTime<Utc>,
}

/// Who an API key belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ApiKeyOwner {
    pub key_id: ApiKeyId,
    pub app_id: AppId,
}

#[derive(Debug, Clone)]
pub struct NewAccessLevel {
    pub id: AccessLevelId,
    pub app_id: AppId,
    pub name: Name,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccessLevel {
    pub id: AccessLevelId,
    pub app_id: AppId,
    pub name: String,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// An app's ThriveCart integration.
#[derive(Clone, PartialEq, Eq)]
pub struct Integration {
    pub app_id: AppId,
    pub enabled: bool,
    /// The token in the webhook URL; kept while disabled so enabling again restores the URL.
    pub webhook_token: Option<String>,
    /// The salted hash of the secret word, never the word itself.
    pub secret_word_hash: Option<String>,
    pub test_mode: TestModePolicy,
    pub cancellation: CancellationPolicy,
}

impl Integration {
    /// The state of an app that never configured ThriveCart.
    pub fn unconfigured(app_id: AppId) -> Self {
        Self {
            app_id,
            enabled: false,
            webhook_token: None,
            secret_word_hash: None,
            test_mode: TestModePolicy::default(),
            cancellation: CancellationPolicy::default(),
        }
    }

    /// The webhook token while deliveries are accepted.
    pub fn live_token(&self) -> Option<&str> {
        self.webhook_token.as_deref().filter(|_| self.enabled)
    }
}

impl std::fmt::Debug for Integration {
    // The token and the hash stay out of logs.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Integration")
            .field("app_id", &self.app_id)
            .field("enabled", &self.enabled)
            .field("has_token", &self.webhook_token.is_some())
            .field("secret_word_set", &self.secret_word_hash.is_some())
            .field("test_mode", &self.test_mode)
            .field("cancellation", &self.cancellation)
            .finish()
    }
}

#[derive(Clone)]
pub struct EnableIntegration {
    /// Used only when the app has no webhook token yet.
    pub token_if_new: String,
    /// `Some` replaces the stored secret word hash; `None` keeps it.
    pub secret_word_hash: Option<String>,
}

impl std::fmt::Debug for EnableIntegration {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EnableIntegration")
            .field("sets_secret_word", &self.secret_word_hash.is_some())
            .finish_non_exhaustive()
    }
}

/// A partial update; `None` leaves a field as it is.
#[derive(Clone, Default)]
pub struct IntegrationPatch {
    /// `Some(None)` clears the secret word.
    pub secret_word_hash: Option<Option<String>>,
    pub test_mode: Option<TestModePolicy>,
    pub cancellation: Option<CancellationPolicy>,
}

impl std::fmt::Debug for IntegrationPatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IntegrationPatch")
            .field(
                "secret_word",
                &self
                    .secret_word_hash
                    .as_ref()
                    .map(|h| if h.is_some() { "set" } else { "clear" }),
            )
            .field("test_mode", &self.test_mode)
            .field("cancellation", &self.cancellation)
            .finish()
    }
}

/// One change to an integration; [`Integration::apply`] says what each does, so every
/// backend changes integrations the same way.
#[derive(Debug, Clone)]
pub enum IntegrationChange {
    Enable(EnableIntegration),
    Disable,
    Update(IntegrationPatch),
    /// Replaces the webhook token.
    RotateToken(String),
}

impl Integration {
    /// Applies `change` to this state.
    pub fn apply(&mut self, change: IntegrationChange) {
        match change {
            IntegrationChange::Enable(enable) => {
                self.enabled = true;
                // Enabling again keeps the URL ThriveCart already knows.
                if self.webhook_token.is_none() {
                    self.webhook_token = Some(enable.token_if_new);
                }
                if let Some(hash) = enable.secret_word_hash {
                    self.secret_word_hash = Some(hash);
                }
            }
            IntegrationChange::Disable => self.enabled = false,
            IntegrationChange::Update(patch) => {
                if let Some(hash) = patch.secret_word_hash {
                    self.secret_word_hash = hash;
                }
                if let Some(mode) = patch.test_mode {
                    self.test_mode = mode;
                }
                if let Some(c) = patch.cancellation {
                    self.cancellation = c;
                }
            }
            IntegrationChange::RotateToken(token) => self.webhook_token = Some(token),
        }
    }
}

#[derive(Debug, Clone)]
pub struct NewMapping {
    pub id: MappingId,
    pub app_id: AppId,
    pub product: ProductKey,
    pub access_level_id: AccessLevelId,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mapping {
    pub id: MappingId,
    pub app_id: AppId,
    pub product: ProductKey,
    pub access_level_id: AccessLevelId,
    pub created_at: DateTime<Utc>,
}

// --- deliveries (the activity log) ------------------------------------------------------

/// The outcome of one delivery attempt, as the activity log shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DeliveryStatus {
    Applied,
    Duplicate,
    Unmapped,
    Ignored,
    Rejected,
    Invalid,
    Failed,
    Ping,
}

impl DeliveryStatus {
    pub const ALL: [DeliveryStatus; 8] = [
        DeliveryStatus::Applied,
        DeliveryStatus::Duplicate,
        DeliveryStatus::Unmapped,
        DeliveryStatus::Ignored,
        DeliveryStatus::Rejected,
        DeliveryStatus::Invalid,
        DeliveryStatus::Failed,
        DeliveryStatus::Ping,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            DeliveryStatus::Applied => "applied",
            DeliveryStatus::Duplicate => "duplicate",
            DeliveryStatus::Unmapped => "unmapped",
            DeliveryStatus::Ignored => "ignored",
            DeliveryStatus::Rejected => "rejected",
            DeliveryStatus::Invalid => "invalid",
            DeliveryStatus::Failed => "failed",
            DeliveryStatus::Ping => "ping",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.as_str() == text)
    }
}

impl From<larder_access::engine::PlanStatus> for DeliveryStatus {
    fn from(s: larder_access::engine::PlanStatus) -> Self {
        use larder_access::engine::PlanStatus;
        match s {
            PlanStatus::Applied => DeliveryStatus::Applied,
            PlanStatus::Ignored => DeliveryStatus::Ignored,
            PlanStatus::Unmapped => DeliveryStatus::Unmapped,
        }
    }
}

/// What is recorded of every delivery, whatever its outcome.
#[derive(Debug, Clone)]
pub struct NewDelivery {
    pub id: larder_access::DeliveryId,
    pub app_id: AppId,
    pub received_at: DateTime<Utc>,
    pub event: Option<String>,
    pub mode: Option<String>,
    pub order_id: Option<String>,
    /// Normalised (trimmed, lowercased).
    pub customer_email: Option<String>,
    pub products: Vec<String>,
    /// Whether the secret word was checked (false when the app has none).
    pub verified: bool,
    /// The decoded delivery, secret word redacted; `None` when it could not be decoded.
    pub payload: Option<serde_json::Value>,
    /// The entry this one replays.
    pub replay_of: Option<larder_access::DeliveryId>,
}

/// Everything [`crate::Store::apply_delivery`] needs besides the record.
#[derive(Debug, Clone)]
pub struct ApplyDelivery {
    /// `None` for a replay, which never counts as a duplicate.
    pub fingerprint: Option<String>,
    pub delivery: larder_access::thrivecart::Delivery,
    pub mappings: std::collections::HashMap<ProductKey, Vec<AccessLevelId>>,
    pub test_mode: TestModePolicy,
    pub cancellation: CancellationPolicy,
    /// Now, in unix seconds.
    pub now: i64,
}

/// The outcome of [`crate::Store::apply_delivery`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppliedDelivery {
    /// The id of the activity entry written for this attempt.
    pub id: larder_access::DeliveryId,
    pub status: DeliveryStatus,
    pub message: String,
}

/// An activity log entry.
#[derive(Debug, Clone, PartialEq)]
pub struct DeliveryRecord {
    pub id: larder_access::DeliveryId,
    pub app_id: AppId,
    pub received_at: DateTime<Utc>,
    pub event: Option<String>,
    pub mode: Option<String>,
    pub status: DeliveryStatus,
    pub order_id: Option<String>,
    pub customer_email: Option<String>,
    pub products: Vec<String>,
    pub message: String,
    pub verified: bool,
    /// Only filled by [`crate::Store::get_activity`].
    pub payload: Option<serde_json::Value>,
    /// A JSON array of `{kind, member_id, access_level_id?, product?}`.
    pub effects: serde_json::Value,
    pub replay_of: Option<larder_access::DeliveryId>,
}

/// Filters of the activity log; `None` matches everything.
#[derive(Debug, Clone, Default)]
pub struct ActivityFilter {
    pub status: Option<DeliveryStatus>,
    pub event: Option<String>,
    pub product: Option<String>,
    pub email: Option<String>,
}

/// A product key seen in deliveries that has no mapping now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnmappedProduct {
    pub product: String,
    pub deliveries: i64,
    pub last_seen_at: DateTime<Utc>,
}

// --- members and grants -----------------------------------------------------------------

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LevelRef {
    pub id: AccessLevelId,
    pub name: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    pub id: larder_access::MemberId,
    pub app_id: AppId,
    pub email: String,
    pub name: Option<String>,
    pub test: bool,
    pub created_at: DateTime<Utc>,
    /// Levels with at least one active grant, by name.
    pub access_levels: Vec<LevelRef>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grant {
    pub id: larder_access::GrantId,
    pub access_level_id: AccessLevelId,
    /// `thrivecart` or `manual`.
    pub source: String,
    pub product: Option<String>,
    pub order_id: Option<String>,
    /// `active`, `paused` or `revoked`.
    pub status: String,
    pub past_due: bool,
    pub test: bool,
    pub updated_at: DateTime<Utc>,
}

#[derive(Debug, Clone, Default)]
pub struct MemberFilter {
    /// Exact match on the normalised email.
    pub email: Option<String>,
    /// Members with an active grant of this level.
    pub access_level_id: Option<AccessLevelId>,
}

/// Effects as stored in the activity log.
pub fn effects_json(effects: &[larder_access::engine::Effect]) -> serde_json::Value {
    serde_json::Value::Array(
        effects
            .iter()
            .map(|e| {
                let mut o = serde_json::Map::new();
                o.insert("kind".into(), e.kind.as_str().into());
                o.insert("member_id".into(), e.member_id.to_string().into());
                if let Some(l) = e.access_level_id {
                    o.insert("access_level_id".into(), l.to_string().into());
                }
                if let Some(p) = &e.product {
                    o.insert("product".into(), p.to_string().into());
                }
                serde_json::Value::Object(o)
            })
            .collect(),
    )
}
