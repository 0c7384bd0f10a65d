//! The storage interface of Larder.
//!
//! [`Store`] is implemented once per backend (PostgreSQL for production, SQLite as the embedded
//! default). Every method is one use case and is atomic inside the implementation: callers
//! never hold a transaction. Every app-scoped method takes the tenant's [`AppId`] and filters
//! by it, so another app's object and a missing one are the same [`StoreError::NotFound`].
//!
//! The `testing` feature exposes the contract suite both backends run ([`contract_cases!`]),
//! so the two implementations cannot drift apart.

mod error;
mod records;

#[cfg(feature = "testing")]
pub mod contract;

pub use error::{BoxError, StoreError};
pub use records::*;

use chrono::{DateTime, Utc};
use larder_access::{AccessLevelId, ApiKeyId, AppId, MappingId, Name};

pub type StoreResult<T> = Result<T, StoreError>;

/// Larder's persistent state. Implementations are cheap to share (`Arc<dyn Store>`).
#[async_trait::async_trait]
pub trait Store: Send + Sync + std::fmt::Debug + 'static {
    /// Which backend this is, for logs and `/readyz`.
    fn backend(&self) -> Backend;

    /// Answers when the database does.
    async fn ping(&self) -> StoreResult<()>;

    // --- the operator -------------------------------------------------------------------

    /// The stored hash of the generated operator token, if one was generated.
    async fn operator_token_hash(&self) -> StoreResult<Option<String>>;

    /// Stores the hash of a freshly generated operator token unless one is stored already.
    /// Returns whether this call stored it (exactly one of several racing processes wins).
    async fn init_operator_token_hash(&self, hash: &str) -> StoreResult<bool>;

    // --- apps and their API keys --------------------------------------------------------

    async fn create_app(&self, app: NewApp) -> StoreResult<App>;
    async fn get_app(&self, app: AppId) -> StoreResult<App>;
    async fn list_apps(&self, page: PageRequest) -> StoreResult<Page<App>>;

    /// Fails with `NotFound` when the app does not exist.
    async fn create_api_key(&self, key: NewApiKey) -> StoreResult<ApiKey>;
    async fn list_api_keys(&self, app: AppId, page: PageRequest) -> StoreResult<Page<ApiKey>>;
    /// Deletes the key and returns its hash, so caches holding it can be told.
    async fn delete_api_key(&self, app: AppId, key: ApiKeyId) -> StoreResult<String>;
    async fn find_api_key_by_hash(&self, key_hash: &str) -> StoreResult<Option<ApiKeyOwner>>;

    // --- access levels ------------------------------------------------------------------

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

    // --- the ThriveCart integration -----------------------------------------------------

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
    /// Replaces the webhook token; returns the old one (if any) with the new state.
    async fn rotate_webhook_token(
        &self,
        app: AppId,
        new_token: &str,
    ) -> StoreResult<(Option<String>, Integration)>;
    /// The integration owning this webhook token, enabled or not.
    async fn find_integration_by_token(&self, token: &str) -> StoreResult<Option<Integration>>;

    // --- product mappings ---------------------------------------------------------------

    /// `UnknownAccessLevel` when the level is not one of the app's; `Conflict` for a pair
    /// that exists already.
    async fn create_mapping(&self, mapping: NewMapping) -> StoreResult<Mapping>;
    async fn list_mappings(&self, app: AppId, page: PageRequest) -> StoreResult<Page<Mapping>>;
    async fn delete_mapping(&self, app: AppId, id: MappingId) -> StoreResult<()>;
    /// Every mapping of the app (the webhook path caches this).
    async fn all_mappings(&self, app: AppId) -> StoreResult<Vec<Mapping>>;

    // --- deliveries -----------------------------------------------------------------------

    /// Records a delivery that changes nothing (ping, rejected, invalid, duplicate, failed).
    async fn record_delivery(
        &self,
        delivery: NewDelivery,
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

    /// The app's activity log, newest first; `page.after` continues after an older entry.
    async fn list_activity(
        &self,
        app: AppId,
        filter: ActivityFilter,
        page: PageRequest,
    ) -> StoreResult<Page<DeliveryRecord>>;
    /// One entry with its payload and effects.
    async fn get_activity(
        &self,
        app: AppId,
        id: larder_access::DeliveryId,
    ) -> StoreResult<DeliveryRecord>;
    /// Product keys seen in the app's deliveries that no mapping covers now.
    async fn unmapped_products(&self, app: AppId) -> StoreResult<Vec<UnmappedProduct>>;

    // --- members --------------------------------------------------------------------------

    async fn list_members(
        &self,
        app: AppId,
        filter: MemberFilter,
        page: PageRequest,
    ) -> StoreResult<Page<Member>>;
    async fn get_member(
        &self,
        app: AppId,
        id: larder_access::MemberId,
    ) -> StoreResult<(Member, Vec<Grant>)>;

    /// Grants a level by hand. `NotFound` for another app's member, `UnknownAccessLevel` for
    /// a level that is not the app's.
    async fn grant_manually(
        &self,
        app: AppId,
        member: larder_access::MemberId,
        level: AccessLevelId,
    ) -> StoreResult<Grant>;
    /// Revokes a manual grant (it stays listed, `revoked`). `GrantManagedByThrivecart` for
    /// a purchase's grant.
    async fn revoke_manual_grant(
        &self,
        app: AppId,
        member: larder_access::MemberId,
        grant: larder_access::GrantId,
    ) -> StoreResult<()>;

    // --- member sign-in -------------------------------------------------------------------

    /// Stores an invitation (by its token's hash) to set the member's password.
    async fn create_invitation(
        &self,
        app: AppId,
        member: larder_access::MemberId,
        token_hash: &str,
        expires_at: DateTime<Utc>,
    ) -> StoreResult<()>;
    /// The member an unused, unexpired invitation is for.
    async fn find_invitation(
        &self,
        app: AppId,
        token_hash: &str,
        now: DateTime<Utc>,
    ) -> StoreResult<Option<Member>>;
    /// Uses the invitation and sets the password, atomically. `false` when the invitation
    /// was used (maybe a moment ago, by a concurrent call), expired or never existed.
    async fn redeem_invitation(
        &self,
        app: AppId,
        token_hash: &str,
        password_hash: &str,
        now: DateTime<Utc>,
    ) -> StoreResult<bool>;
    /// A member's id and password hash (`None` before one is set), by email.
    async fn member_password(
        &self,
        app: AppId,
        email: &str,
    ) -> StoreResult<Option<(larder_access::MemberId, Option<String>)>>;
    async fn create_session(
        &self,
        app: AppId,
        member: larder_access::MemberId,
        token_hash: &str,
        expires_at: DateTime<Utc>,
    ) -> StoreResult<()>;
    /// The app and member of an unexpired session.
    async fn find_session(
        &self,
        token_hash: &str,
        now: DateTime<Utc>,
    ) -> StoreResult<Option<(AppId, larder_access::MemberId)>>;
    async fn delete_session(&self, token_hash: &str) -> StoreResult<()>;

    // --- background work ------------------------------------------------------------------

    /// Revokes items whose period-end cancellation is due (`revoke_at <= now`), in every app.
    /// Returns how many grants it revoked.
    async fn revoke_due_items(&self, now: i64) -> StoreResult<u64>;
    /// Deletes activity entries (and fingerprints) older than `before`.
    async fn prune_deliveries(&self, before: DateTime<Utc>) -> StoreResult<u64>;
    /// Deletes expired sessions and used or expired invitations. Returns how many.
    async fn prune_sign_ins(&self, now: DateTime<Utc>) -> StoreResult<u64>;
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
