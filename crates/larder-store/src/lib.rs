//! The storage interface of Larder.
//!
//! [`Store`] is implemented once per backend (PostgreSQL for production, SQLite as the embedded
//! default). It is split by area ([`AppStore`], [`IntegrationStore`], [`DeliveryStore`],
//! [`MemberStore`], [`SignInStore`]) and requires them all, so `Arc<dyn Store>` offers every
//! method. Every method is one use case and is atomic inside the implementation: callers
//! never hold a transaction. Every app-scoped method takes the tenant's [`AppId`] and filters
//! by it, so another app's object and a missing one are the same [`StoreError::NotFound`].
//!
//! The `testing` feature exposes the contract suite both backends run ([`contract_cases!`]),
//! so the two implementations cannot drift apart.

mod error;
mod outbox;
pub mod personal_data;
mod records;

#[cfg(feature = "testing")]
pub mod contract;
#[cfg(feature = "testing")]
pub mod upgrade;

pub use error::{BoxError, StoreError, causes};
pub use outbox::*;
pub use records::*;

use chrono::{DateTime, Utc};
use larder_access::{
    AccessLevelId, ApiKeyId, AppId, DeliveryId, GrantId, MappingId, MemberId, Name,
};

pub type StoreResult<T> = Result<T, StoreError>;

/// Larder's persistent state. Implementations are cheap to share (`Arc<dyn Store>`).
#[async_trait::async_trait]
pub trait Store:
    AppStore
    + IntegrationStore
    + DeliveryStore
    + MemberStore
    + SignInStore
    + OutboxStore
    + std::fmt::Debug
    + 'static
{
    /// Which backend this is, for logs and `/readyz`.
    fn backend(&self) -> Backend;

    /// This process's connections to the database, as they are now.
    fn connections(&self) -> Connections;

    /// Answers when the database does.
    async fn ping(&self) -> StoreResult<()>;

    /// Applies every embedded migration not applied yet. Safe to run from several processes
    /// at once.
    async fn migrate(&self) -> StoreResult<()>;

    /// Whether every embedded migration is applied: a process that does not migrate on
    /// start checks this, so it never serves on an old schema.
    async fn schema_is_current(&self) -> StoreResult<bool>;
}

/// The operator token, apps, their API keys and their access levels.
#[async_trait::async_trait]
pub trait AppStore: Send + Sync {
    /// The stored hash of the generated operator token, if one was generated.
    async fn operator_token_hash(&self) -> StoreResult<Option<String>>;

    /// Stores the hash of a freshly generated operator token unless one is stored already.
    /// Returns whether this call stored it (exactly one of several racing processes wins).
    async fn init_operator_token_hash(&self, hash: &str) -> StoreResult<bool>;

    async fn create_app(&self, app: NewApp) -> StoreResult<App>;
    async fn get_app(&self, app: AppId) -> StoreResult<App>;
    async fn list_apps(&self, page: PageRequest) -> StoreResult<Page<App>>;
    async fn rename_app(&self, app: AppId, name: Name) -> StoreResult<App>;
    /// Deletes the app and everything it owns (keys, levels, the integration, mappings,
    /// members, grants, sessions, the activity log), atomically. Returns what caches may
    /// still hold of it.
    async fn delete_app(&self, app: AppId) -> StoreResult<DeletedApp>;

    /// Fails with `NotFound` when the app does not exist.
    async fn create_api_key(&self, key: NewApiKey) -> StoreResult<ApiKey>;
    async fn list_api_keys(&self, app: AppId, page: PageRequest) -> StoreResult<Page<ApiKey>>;
    /// Deletes the key and returns its hash, so caches holding it can be told.
    async fn delete_api_key(&self, app: AppId, key: ApiKeyId) -> StoreResult<String>;
    async fn find_api_key_by_hash(&self, key_hash: &str) -> StoreResult<Option<ApiKeyOwner>>;

    /// `Conflict` when the app already has a level of that name (case-insensitive).
    async fn create_access_level(&self, level: NewAccessLevel) -> StoreResult<AccessLevel>;
    async fn get_access_level(&self, app: AppId, id: AccessLevelId) -> StoreResult<AccessLevel>;
    async fn list_access_levels(
        &self,
        app: AppId,
        page: PageRequest,
    ) -> StoreResult<Page<AccessLevel>>;
    async fn rename_access_level(
        &self,
        app: AppId,
        id: AccessLevelId,
        name: Name,
    ) -> StoreResult<AccessLevel>;
    /// `AccessLevelInUse` while a mapping or an active or paused grant refers to it.
    async fn delete_access_level(&self, app: AppId, id: AccessLevelId) -> StoreResult<()>;
}

/// An app's ThriveCart integration and its product mappings.
#[async_trait::async_trait]
pub trait IntegrationStore: Send + Sync {
    /// The app's integration; the defaults (disabled) when it was never configured.
    async fn get_integration(&self, app: AppId) -> StoreResult<Integration>;
    /// Enables the integration. A stored webhook token is kept; `token_if_new` is used only
    /// when there is none. The secret word changes only when `secret_word_hash` is given.
    async fn enable_integration(
        &self,
        app: AppId,
        enable: EnableIntegration,
    ) -> StoreResult<Integration>;
    async fn disable_integration(&self, app: AppId) -> StoreResult<Integration>;
    async fn update_integration(
        &self,
        app: AppId,
        patch: IntegrationPatch,
    ) -> StoreResult<Integration>;
    /// Replaces the webhook token.
    async fn rotate_webhook_token(&self, app: AppId, new_token: &str) -> StoreResult<RotatedToken>;
    /// The integration owning this webhook token, enabled or not.
    async fn find_integration_by_token(&self, token: &str) -> StoreResult<Option<Integration>>;

    /// `UnknownAccessLevel` when the level is not one of the app's; `Conflict` for a pair
    /// that exists already.
    async fn create_mapping(&self, mapping: NewMapping) -> StoreResult<Mapping>;
    async fn list_mappings(&self, app: AppId, page: PageRequest) -> StoreResult<Page<Mapping>>;
    async fn delete_mapping(&self, app: AppId, id: MappingId) -> StoreResult<()>;
    /// Every mapping of the app (the webhook path caches this).
    async fn all_mappings(&self, app: AppId) -> StoreResult<Vec<Mapping>>;
}

/// Deliveries: applying them, the activity log, and the background work on both.
#[async_trait::async_trait]
pub trait DeliveryStore: Send + Sync {
    /// Records a delivery that changes nothing (ping, rejected, invalid, duplicate, failed).
    async fn record_delivery(
        &self,
        delivery: &NewDelivery,
        status: DeliveryStatus,
        message: &str,
    ) -> StoreResult<()>;

    /// Applies a delivery: in one transaction, claims its fingerprint (a claimed one makes
    /// it a `duplicate`, recorded and otherwise changing nothing), reads the state of its
    /// order and member, plans with [`larder_access::engine::plan`], writes the member, the
    /// items, the grants and the activity entry. All or nothing: an error leaves no trace,
    /// not even the fingerprint, so a retry applies it.
    async fn apply_delivery(
        &self,
        delivery: &NewDelivery,
        apply: ApplyDelivery,
    ) -> StoreResult<AppliedDelivery>;

    /// Records entries that change nothing, all in one go. The backends write them in one
    /// statement, all or none; this default records them one by one and stops at the
    /// first error.
    async fn record_deliveries(&self, entries: &[RecordDelivery]) -> StoreResult<()> {
        for e in entries {
            self.record_delivery(&e.delivery, e.status, &e.message)
                .await?;
        }
        Ok(())
    }

    /// Applies deliveries that arrived together, each as [`Self::apply_delivery`] would,
    /// in the order given (each sees what the ones before it changed; two copies of one
    /// delivery make one `duplicate`). A backend writes them in as few transactions as it
    /// can, but one delivery's error never fails another: each gets its own result, in
    /// the order given.
    async fn apply_deliveries(
        &self,
        batch: Vec<(NewDelivery, ApplyDelivery)>,
    ) -> Vec<StoreResult<AppliedDelivery>> {
        let mut done = Vec::with_capacity(batch.len());
        for (delivery, apply) in batch {
            done.push(self.apply_delivery(&delivery, apply).await);
        }
        done
    }

    /// The app's activity log, newest first; `page.after` continues after an older entry.
    async fn list_activity(
        &self,
        app: AppId,
        filter: ActivityFilter,
        page: PageRequest,
    ) -> StoreResult<Page<DeliveryRecord>>;
    /// One entry with its payload and effects.
    async fn get_activity(&self, app: AppId, id: DeliveryId) -> StoreResult<DeliveryRecord>;
    /// Product keys seen in the app's deliveries that no mapping covers now.
    async fn unmapped_products(&self, app: AppId) -> StoreResult<Vec<UnmappedProduct>>;

    /// Revokes items whose period-end cancellation is due, in every app. Returns how many
    /// grants it revoked.
    async fn revoke_due_items(&self, now: DateTime<Utc>) -> StoreResult<u64>;
    /// Deletes activity entries (and fingerprints) older than `before`.
    async fn prune_deliveries(&self, before: DateTime<Utc>) -> StoreResult<u64>;
}

/// Members, their grants and the overrides admins put on them.
#[async_trait::async_trait]
pub trait MemberStore: Send + Sync {
    async fn list_members(
        &self,
        app: AppId,
        filter: MemberFilter,
        page: PageRequest,
    ) -> StoreResult<Page<Member>>;
    /// The member with every grant and override.
    async fn get_member(&self, app: AppId, id: MemberId) -> StoreResult<MemberWithAccess>;

    /// Grants a level by hand. `NotFound` for another app's member, `UnknownAccessLevel` for
    /// a level that is not the app's.
    async fn grant_manually(
        &self,
        app: AppId,
        member: MemberId,
        level: AccessLevelId,
    ) -> StoreResult<Grant>;
    /// Revokes a manual grant (it stays listed, `revoked`). `GrantManagedByThrivecart` for
    /// a purchase's grant.
    async fn revoke_manual_grant(
        &self,
        app: AppId,
        member: MemberId,
        grant: GrantId,
    ) -> StoreResult<()>;

    /// Sets (creates or replaces) an override. `NotFound` for a member that is not the
    /// app's, `UnknownAccessLevel` for a level that is not. Returns the override and whether
    /// this call created it.
    async fn put_access_override(
        &self,
        app: AppId,
        set: NewAccessOverride,
    ) -> StoreResult<(AccessOverride, bool)>;
    /// The member's overrides, by level. `NotFound` for a member that is not the app's.
    async fn list_access_overrides(
        &self,
        app: AppId,
        member: MemberId,
    ) -> StoreResult<Vec<AccessOverride>>;
    /// Lifts an override. `NotFound` when there is none.
    async fn delete_access_override(
        &self,
        app: AppId,
        member: MemberId,
        level: AccessLevelId,
    ) -> StoreResult<()>;

    /// Erases a member, atomically: the member, their grants, overrides, order items,
    /// sessions and invitations go, and their personal data is removed from the app's
    /// activity entries, which stay ([`personal_data::erase_personal_data`]). A later
    /// delivery for the same email makes a new member. Returns how many entries it erased
    /// personal data from.
    async fn delete_member(&self, app: AppId, member: MemberId) -> StoreResult<u64>;
    /// The member's activity entries with their payloads, newest first: those for their
    /// email and those whose effects name them.
    async fn member_activity(
        &self,
        app: AppId,
        member: MemberId,
    ) -> StoreResult<Vec<DeliveryRecord>>;
}

/// Member sign-in: single-use links (to set a password, to sign in, to reset a password),
/// passwords and sessions. Tokens are stored only as hashes.
#[async_trait::async_trait]
pub trait SignInStore: Send + Sync {
    /// Stores a single-use link. `NotFound` for a member that is not the app's.
    async fn create_link(&self, link: NewLink<'_>) -> StoreResult<()>;
    /// The member an unused, unexpired link of `purpose` is for.
    async fn find_link(
        &self,
        app: AppId,
        purpose: LinkPurpose,
        token_hash: &str,
        now: DateTime<Utc>,
    ) -> StoreResult<Option<Member>>;
    /// Uses a link of `purpose` (one that sets a password) and sets the member's password;
    /// in the same transaction ends every session of the member and voids their other
    /// unused links, so whoever held an old password or link is out. `None` when the link
    /// was used (maybe a moment ago, by a concurrent call), expired, never existed or is
    /// for something else.
    async fn redeem_password_link(
        &self,
        app: AppId,
        purpose: LinkPurpose,
        token_hash: &str,
        password_hash: &str,
        now: DateTime<Utc>,
    ) -> StoreResult<Option<MemberId>>;
    /// Uses a magic link and starts `session` for its member, atomically. `None` as for
    /// [`SignInStore::redeem_password_link`].
    async fn redeem_magic_link(
        &self,
        app: AppId,
        token_hash: &str,
        session: NewSession<'_>,
        now: DateTime<Utc>,
    ) -> StoreResult<Option<MemberId>>;
    /// A member's id and password hash, by email.
    async fn member_credentials(
        &self,
        app: AppId,
        email: &larder_access::Email,
    ) -> StoreResult<Option<MemberCredentials>>;
    /// Starts a session for `member` if their password is still `password_hash` (the one
    /// just checked or set): when a reset or another link changed it meanwhile, the change
    /// wins and no session starts. `false` then, or when the member is gone.
    async fn create_session(
        &self,
        app: AppId,
        member: MemberId,
        password_hash: &str,
        session: NewSession<'_>,
    ) -> StoreResult<bool>;
    /// The owner of an unexpired session.
    async fn find_session(
        &self,
        token_hash: &str,
        now: DateTime<Utc>,
    ) -> StoreResult<Option<SessionOwner>>;
    async fn delete_session(&self, token_hash: &str) -> StoreResult<()>;
    /// Deletes expired sessions and used or expired links. Returns how many.
    async fn prune_sign_ins(&self, now: DateTime<Utc>) -> StoreResult<u64>;
}

/// The outbox of messages to members, and the settings of what members receive.
///
/// `apply_delivery` queues the automatic welcome itself, in its transaction; these are the
/// rest: queueing by hand, the sender's claims and attempts, and the admin's views.
#[async_trait::async_trait]
pub trait OutboxStore: Send + Sync {
    /// Queues a message to `member` (at their address now), due at once. `NotFound` for a
    /// member that is not the app's.
    async fn queue_message(
        &self,
        app: AppId,
        member: MemberId,
        kind: MessageKind,
        now: DateTime<Utc>,
    ) -> StoreResult<Message>;
    /// Claims up to `limit` due messages for `lease`: until it runs out, no other claim gets
    /// them (several processes never send one message twice). Oldest due first.
    async fn claim_messages(
        &self,
        now: DateTime<Utc>,
        lease: std::time::Duration,
        limit: u32,
    ) -> StoreResult<Vec<ClaimedMessage>>;
    /// Extends the claim on a message to `lease` from `now`, just before it is sent, so a
    /// batch sent one by one never outlives its lease. `false` when the claim is no longer
    /// this one (it ran out and another sender took the message): do not send it then.
    async fn renew_claim(
        &self,
        claimed: &ClaimedMessage,
        lease: std::time::Duration,
        now: DateTime<Utc>,
    ) -> StoreResult<bool>;
    /// Records how an attempt ended. `false` when the claim was no longer this one (it ran
    /// out and another sender took the message): nothing is changed then.
    async fn finish_message(
        &self,
        claimed: &ClaimedMessage,
        attempt: Attempt,
        now: DateTime<Utc>,
    ) -> StoreResult<bool>;
    /// Stores a link for `member` to set a password and queues the invitation email, in one
    /// transaction. `NotFound` for a member that is not the app's.
    async fn invite_member(
        &self,
        app: AppId,
        member: MemberId,
        token_hash: &str,
        expires_at: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> StoreResult<Message>;
    /// Queues a message of `kind` to the app's member with `email`, due at once; `None`
    /// (and nothing queued) when the app has no member with that address.
    async fn queue_message_by_email(
        &self,
        app: AppId,
        email: &larder_access::Email,
        kind: MessageKind,
        now: DateTime<Utc>,
    ) -> StoreResult<Option<Message>>;
    /// Whether any app lists `origin` among the origins that may call the member API.
    async fn origin_allowed_anywhere(&self, origin: &str) -> StoreResult<bool>;
    /// An app's messages, newest first.
    async fn list_messages(
        &self,
        app: AppId,
        filter: MessageFilter,
        page: PageRequest,
    ) -> StoreResult<Page<Message>>;
    /// When the oldest message still queued was queued, across every app.
    async fn oldest_queued_message(&self) -> StoreResult<Option<DateTime<Utc>>>;
    /// The app's settings (the defaults until changed). `NotFound` for an unknown app.
    async fn member_settings(&self, app: AppId) -> StoreResult<MemberSettings>;
    /// Changes the fields `patch` names, atomically (concurrent patches of different fields
    /// both stick). The settings before and after. `NotFound` for an unknown app.
    async fn update_member_settings(
        &self,
        app: AppId,
        patch: MemberSettingsPatch,
    ) -> StoreResult<(MemberSettings, MemberSettings)>;
    /// Replaces the app's settings.
    async fn put_member_settings(
        &self,
        app: AppId,
        settings: MemberSettings,
    ) -> StoreResult<MemberSettings>;
}

/// A store's connection pool at one moment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Connections {
    /// Connections running a query or held by a transaction.
    pub in_use: u32,
    /// Open connections waiting for work.
    pub idle: u32,
}

impl Connections {
    /// The state of a sqlx pool of `size` connections, `idle` of them idle.
    pub fn of_pool(size: u32, idle: usize) -> Self {
        let idle = u32::try_from(idle).unwrap_or(u32::MAX).min(size);
        Self {
            in_use: size - idle,
            idle,
        }
    }
}

/// The two storage backends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Postgres,
    Sqlite,
}

impl Backend {
    pub fn as_str(self) -> &'static str {
        match self {
            Backend::Postgres => "postgres",
            Backend::Sqlite => "sqlite",
        }
    }

    /// The backend as OpenTelemetry names database systems (`db.system.name`).
    pub fn otel_name(self) -> &'static str {
        match self {
            Backend::Postgres => "postgresql",
            Backend::Sqlite => "sqlite",
        }
    }
}

/// The span of one store call, so a trace shows what the database cost: exported as
/// `store.<operation>`, a client span with the backend's `db.system.name`.
pub fn call_span(backend: Backend, operation: &'static str) -> tracing::Span {
    tracing::info_span!(
        "store",
        otel.name = %format_args!("store.{operation}"),
        otel.kind = "client",
        db.system.name = backend.otel_name(),
        db.operation.name = operation,
    )
}

#[cfg(test)]
mod tests {
    /// Every `pub async fn` of the contract module is a case, and `contract_cases!` runs it
    /// on both backends: a case written but left out of the list would never run.
    #[test]
    fn the_contract_case_list_runs_every_case() {
        let source = include_str!("contract.rs");
        let mut written: Vec<&str> = source
            .lines()
            .filter_map(|l| l.strip_prefix("pub async fn "))
            .filter_map(|l| l.split('(').next())
            .collect();
        let list = source
            .split("$crate::contract_cases!(@cases $factory;")
            .nth(1)
            .and_then(|rest| rest.split(");").next())
            .expect("contract_cases! lists its cases");
        let mut listed: Vec<&str> = list
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .collect();
        assert!(written.len() > 30, "{written:?}");
        written.sort_unstable();
        listed.sort_unstable();
        assert_eq!(
            written, listed,
            "contract cases written vs. listed in contract_cases!"
        );
    }
}
