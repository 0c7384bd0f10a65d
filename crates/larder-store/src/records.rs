//! Records going into and coming out of a [`crate::Store`].

use chrono::{DateTime, Utc};
use larder_access::engine::{Effect, ItemStatus};
use larder_access::thrivecart::Mode;
use larder_access::{
    AccessLevelId, ApiKeyId, AppId, CancellationPolicy, DeliveryId, Email, GrantId, GrantSource,
    MappingId, MemberId, MessageId, Name, OverrideStatus, ProductKey, TestModePolicy,
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

/// What a deleted app leaves in caches: its webhook token and the hashes of its API keys,
/// so every process can be told they are gone.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct DeletedApp {
    pub webhook_token: Option<String>,
    pub api_key_hashes: Vec<String>,
}

impl std::fmt::Debug for DeletedApp {
    // The token and the hashes stay out of logs.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DeletedApp")
            .field("had_webhook_token", &self.webhook_token.is_some())
            .field("api_keys", &self.api_key_hashes.len())
            .finish()
    }
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

/// The integration after its webhook token was replaced, and the token it replaced.
#[derive(Clone, PartialEq, Eq)]
pub struct RotatedToken {
    pub old_token: Option<String>,
    pub integration: Integration,
}

impl std::fmt::Debug for RotatedToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RotatedToken")
            .field("had_old_token", &self.old_token.is_some())
            .field("integration", &self.integration)
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

larder_access::string_enum! {
    /// The outcome of one delivery attempt, as the activity log shows it.
    pub enum DeliveryStatus("delivery status") {
        /// It changed access (or recorded a lifecycle fact for a purchase still to come).
        Applied => "applied",
        /// A repeat of a delivery already processed; nothing changed.
        Duplicate => "duplicate",
        /// None of its products is mapped to an access level; replay it after mapping one.
        Unmapped => "unmapped",
        /// Valid, but it changes nothing (its message says why).
        Ignored => "ignored",
        /// The secret word was wrong or missing.
        Rejected => "rejected",
        /// The body could not be decoded, or an event lacks what it needs.
        Invalid => "invalid",
        /// It could not be applied (the database failed); nothing of it was kept.
        Failed => "failed",
        /// A POST without an event: ThriveCart checking the URL.
        Ping => "ping",
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
    pub id: DeliveryId,
    pub app_id: AppId,
    pub received_at: DateTime<Utc>,
    pub event: Option<String>,
    pub mode: Option<Mode>,
    pub order_id: Option<String>,
    pub customer_email: Option<Email>,
    pub products: Vec<ProductKey>,
    /// Whether the secret word was checked (false when the app has none).
    pub verified: bool,
    /// The decoded delivery, secret word redacted; `None` when it could not be decoded.
    pub payload: Option<serde_json::Value>,
    /// The entry this one replays.
    pub replay_of: Option<DeliveryId>,
}

impl NewDelivery {
    /// A delivery received now for `app`, of which nothing is known yet.
    pub fn received(app_id: AppId) -> Self {
        Self {
            id: DeliveryId::new(),
            app_id,
            received_at: Utc::now(),
            event: None,
            mode: None,
            order_id: None,
            customer_email: None,
            products: Vec::new(),
            verified: false,
            payload: None,
            replay_of: None,
        }
    }
}

/// An entry that changes nothing (a ping, a rejected, invalid, duplicate or failed
/// delivery), for [`crate::DeliveryStore::record_deliveries`].
#[derive(Debug, Clone)]
pub struct RecordDelivery {
    pub delivery: NewDelivery,
    pub status: DeliveryStatus,
    pub message: String,
}

/// Everything [`crate::DeliveryStore::apply_delivery`] needs besides the record.
#[derive(Debug, Clone)]
pub struct ApplyDelivery {
    /// `None` for a replay, which never counts as a duplicate.
    pub fingerprint: Option<String>,
    pub delivery: larder_access::thrivecart::Delivery,
    pub mappings: std::collections::HashMap<ProductKey, Vec<AccessLevelId>>,
    pub test_mode: TestModePolicy,
    pub cancellation: CancellationPolicy,
    pub now: DateTime<Utc>,
}

/// The outcome of [`crate::DeliveryStore::apply_delivery`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppliedDelivery {
    /// The id of the activity entry written for this attempt.
    pub id: DeliveryId,
    pub status: DeliveryStatus,
    pub message: String,
}

/// An activity log entry.
#[derive(Debug, Clone, PartialEq)]
pub struct DeliveryRecord {
    pub id: DeliveryId,
    pub app_id: AppId,
    pub received_at: DateTime<Utc>,
    pub event: Option<String>,
    pub mode: Option<Mode>,
    pub status: DeliveryStatus,
    pub order_id: Option<String>,
    pub customer_email: Option<Email>,
    pub products: Vec<ProductKey>,
    pub message: String,
    pub verified: bool,
    /// Filled by [`crate::DeliveryStore::get_activity`] and member exports, not by lists.
    pub payload: Option<serde_json::Value>,
    pub effects: Vec<Effect>,
    pub replay_of: Option<DeliveryId>,
}

/// Filters of the activity log; `None` matches everything.
#[derive(Debug, Clone, Default)]
pub struct ActivityFilter {
    pub status: Option<DeliveryStatus>,
    pub event: Option<String>,
    pub product: Option<ProductKey>,
    pub email: Option<Email>,
}

/// A product key seen in deliveries that has no mapping now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnmappedProduct {
    pub product: ProductKey,
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
    pub id: MemberId,
    pub app_id: AppId,
    pub email: Email,
    pub name: Option<String>,
    /// Created by a test-mode purchase.
    pub test: bool,
    pub created_at: DateTime<Utc>,
    /// The levels the member has now: an active grant gives one, unless an override takes it
    /// away. By name.
    pub access_levels: Vec<LevelRef>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grant {
    pub id: GrantId,
    pub access_level_id: AccessLevelId,
    pub source: GrantSource,
    /// The purchased item; `None` on manual grants.
    pub product: Option<ProductKey>,
    /// `None` on manual grants.
    pub order_id: Option<String>,
    pub status: ItemStatus,
    /// A renewal payment failed and no later one succeeded yet.
    pub past_due: bool,
    pub test: bool,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// An admin's override of one level for one member (see [`OverrideStatus`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccessOverride {
    pub member_id: MemberId,
    pub access_level_id: AccessLevelId,
    pub status: OverrideStatus,
    pub reason: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// What [`crate::MemberStore::put_access_override`] sets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewAccessOverride {
    pub member_id: MemberId,
    pub access_level_id: AccessLevelId,
    pub status: OverrideStatus,
    pub reason: Option<String>,
}

/// A member with every grant (revoked ones included) and every override.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberWithAccess {
    pub member: Member,
    pub grants: Vec<Grant>,
    pub overrides: Vec<AccessOverride>,
}

#[derive(Debug, Clone, Default)]
pub struct MemberFilter {
    pub email: Option<Email>,
    /// Members who have this level now.
    pub access_level_id: Option<AccessLevelId>,
}

// --- sign-in ----------------------------------------------------------------------------

/// A member's id and password hash, for sign-in.
#[derive(Clone, PartialEq, Eq)]
pub struct MemberCredentials {
    pub member_id: MemberId,
    /// The argon2id PHC string; `None` before the member set a password.
    pub password_hash: Option<String>,
}

impl std::fmt::Debug for MemberCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemberCredentials")
            .field("member_id", &self.member_id)
            .field("has_password", &self.password_hash.is_some())
            .finish()
    }
}

larder_access::string_enum! {
    /// What a single-use link lets its holder do.
    pub enum LinkPurpose("link purpose") {
        /// Set the member's password (an invitation, a welcome).
        SetPassword => "set_password",
        /// Sign in without a password.
        MagicLink => "magic_link",
        /// Set a new password the member asked for.
        PasswordReset => "password_reset",
    }
}

/// A single-use link to store: only its token's hash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewLink<'a> {
    pub app_id: AppId,
    pub member_id: MemberId,
    pub purpose: LinkPurpose,
    pub token_hash: &'a str,
    pub expires_at: DateTime<Utc>,
    /// The message that carries the link, when one does.
    pub message_id: Option<MessageId>,
}

/// A session to start: only its token's hash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewSession<'a> {
    pub token_hash: &'a str,
    pub expires_at: DateTime<Utc>,
}

/// Whose session a token is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionOwner {
    pub app_id: AppId,
    pub member_id: MemberId,
}
