//! Rows as SQLite returns them, read through `FromRow`, and their store records. Ids are
//! TEXT (canonical UUIDs), times RFC 3339 TEXT, JSON TEXT.

use chrono::{DateTime, Utc};
use larder_access::engine::{Effect, ItemState, ItemStatus};
use larder_access::thrivecart::Mode;
use larder_access::{
    AccessLevelId, ApiKeyId, AppId, CancellationPolicy, DeliveryId, Email, GrantId, GrantSource,
    MappingId, MemberId, OverrideStatus, ProductKey, TestModePolicy,
};
use larder_store::*;
use sqlx::types::Json;

#[derive(sqlx::FromRow)]
pub(crate) struct AppRow {
    #[sqlx(try_from = "String")]
    id: AppId,
    name: String,
    created_at: DateTime<Utc>,
}

impl From<AppRow> for App {
    fn from(r: AppRow) -> Self {
        Self {
            id: r.id,
            name: r.name,
            created_at: r.created_at,
        }
    }
}

#[derive(sqlx::FromRow)]
pub(crate) struct ApiKeyRow {
    #[sqlx(try_from = "String")]
    id: ApiKeyId,
    #[sqlx(try_from = "String")]
    app_id: AppId,
    name: String,
    created_at: DateTime<Utc>,
}

impl From<ApiKeyRow> for ApiKey {
    fn from(r: ApiKeyRow) -> Self {
        Self {
            id: r.id,
            app_id: r.app_id,
            name: r.name,
            created_at: r.created_at,
        }
    }
}

#[derive(sqlx::FromRow)]
pub(crate) struct ApiKeyOwnerRow {
    #[sqlx(try_from = "String")]
    id: ApiKeyId,
    #[sqlx(try_from = "String")]
    app_id: AppId,
}

impl From<ApiKeyOwnerRow> for ApiKeyOwner {
    fn from(r: ApiKeyOwnerRow) -> Self {
        Self {
            key_id: r.id,
            app_id: r.app_id,
        }
    }
}

#[derive(sqlx::FromRow)]
pub(crate) struct LevelRow {
    #[sqlx(try_from = "String")]
    id: AccessLevelId,
    #[sqlx(try_from = "String")]
    app_id: AppId,
    name: String,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

impl From<LevelRow> for AccessLevel {
    fn from(r: LevelRow) -> Self {
        Self {
            id: r.id,
            app_id: r.app_id,
            name: r.name,
            created_at: r.created_at,
            updated_at: r.updated_at,
        }
    }
}

/// The columns [`IntegrationRow`] reads.
pub(crate) const INTEGRATION_COLUMNS: &str =
    "app_id, enabled, webhook_token, secret_word_hash, test_mode, cancellation";

#[derive(sqlx::FromRow)]
pub(crate) struct IntegrationRow {
    #[sqlx(try_from = "String")]
    app_id: AppId,
    enabled: bool,
    webhook_token: Option<String>,
    secret_word_hash: Option<String>,
    #[sqlx(try_from = "String")]
    test_mode: TestModePolicy,
    #[sqlx(try_from = "String")]
    cancellation: CancellationPolicy,
}

impl From<IntegrationRow> for Integration {
    fn from(r: IntegrationRow) -> Self {
        Self {
            app_id: r.app_id,
            enabled: r.enabled,
            webhook_token: r.webhook_token,
            secret_word_hash: r.secret_word_hash,
            test_mode: r.test_mode,
            cancellation: r.cancellation,
        }
    }
}

#[derive(sqlx::FromRow)]
pub(crate) struct MappingRow {
    #[sqlx(try_from = "String")]
    id: MappingId,
    #[sqlx(try_from = "String")]
    app_id: AppId,
    #[sqlx(try_from = "String")]
    product: ProductKey,
    #[sqlx(try_from = "String")]
    access_level_id: AccessLevelId,
    created_at: DateTime<Utc>,
}

impl From<MappingRow> for Mapping {
    fn from(r: MappingRow) -> Self {
        Self {
            id: r.id,
            app_id: r.app_id,
            product: r.product,
            access_level_id: r.access_level_id,
            created_at: r.created_at,
        }
    }
}

/// The columns [`DeliveryRow`] reads; add `payload` to read it too.
pub(crate) const DELIVERY_COLUMNS: &str = "id, app_id, received_at, event, mode, status, \
     order_id, customer_email, products, message, verified, effects, replay_of";

#[derive(sqlx::FromRow)]
pub(crate) struct DeliveryRow {
    #[sqlx(try_from = "String")]
    id: DeliveryId,
    #[sqlx(try_from = "String")]
    app_id: AppId,
    received_at: DateTime<Utc>,
    event: Option<String>,
    mode: Option<String>,
    #[sqlx(try_from = "String")]
    status: DeliveryStatus,
    order_id: Option<String>,
    customer_email: Option<String>,
    products: Json<Vec<ProductKey>>,
    message: String,
    verified: bool,
    #[sqlx(default)]
    payload: Option<Json<serde_json::Value>>,
    effects: Json<Vec<Effect>>,
    replay_of: Option<String>,
}

impl From<DeliveryRow> for DeliveryRecord {
    fn from(r: DeliveryRow) -> Self {
        Self {
            id: r.id,
            app_id: r.app_id,
            received_at: r.received_at,
            event: r.event,
            // Entries written before modes were typed may hold other spellings.
            mode: r.mode.and_then(|m| m.parse::<Mode>().ok()),
            status: r.status,
            order_id: r.order_id,
            customer_email: r.customer_email.and_then(|e| Email::parse(&e).ok()),
            products: r.products.0,
            message: r.message,
            verified: r.verified,
            payload: r.payload.map(|p| p.0),
            effects: r.effects.0,
            replay_of: r.replay_of.and_then(|id| id.parse().ok()),
        }
    }
}

/// The columns [`MemberRow`] reads.
pub(crate) const MEMBER_COLUMNS: &str = "id, app_id, email, name, test, created_at";

#[derive(sqlx::FromRow)]
pub(crate) struct MemberRow {
    #[sqlx(try_from = "String")]
    id: MemberId,
    #[sqlx(try_from = "String")]
    app_id: AppId,
    #[sqlx(try_from = "String")]
    email: Email,
    name: Option<String>,
    test: bool,
    created_at: DateTime<Utc>,
}

impl From<MemberRow> for Member {
    fn from(r: MemberRow) -> Self {
        Self {
            id: r.id,
            app_id: r.app_id,
            email: r.email,
            name: r.name,
            test: r.test,
            created_at: r.created_at,
            access_levels: Vec::new(),
        }
    }
}

/// A member's level, for their `access_levels`.
#[derive(sqlx::FromRow)]
pub(crate) struct MemberLevelRow {
    pub(crate) member_id: String,
    #[sqlx(try_from = "String")]
    pub(crate) id: AccessLevelId,
    pub(crate) name: String,
}

/// The columns [`GrantRow`] reads.
pub(crate) const GRANT_COLUMNS: &str = "id, access_level_id, source, product, order_id, status, \
     past_due, test, created_at, updated_at";

#[derive(sqlx::FromRow)]
pub(crate) struct GrantRow {
    #[sqlx(try_from = "String")]
    id: GrantId,
    #[sqlx(try_from = "String")]
    access_level_id: AccessLevelId,
    #[sqlx(try_from = "String")]
    source: GrantSource,
    product: Option<String>,
    order_id: Option<String>,
    #[sqlx(try_from = "String")]
    status: ItemStatus,
    past_due: bool,
    test: bool,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

impl TryFrom<GrantRow> for Grant {
    type Error = StoreError;

    fn try_from(r: GrantRow) -> Result<Self, StoreError> {
        Ok(Self {
            id: r.id,
            access_level_id: r.access_level_id,
            source: r.source,
            product: r
                .product
                .map(|p| ProductKey::parse(&p))
                .transpose()
                .map_err(StoreError::internal)?,
            order_id: r.order_id,
            status: r.status,
            past_due: r.past_due,
            test: r.test,
            created_at: r.created_at,
            updated_at: r.updated_at,
        })
    }
}

/// The columns [`OverrideRow`] reads.
pub(crate) const OVERRIDE_COLUMNS: &str =
    "member_id, access_level_id, status, reason, created_at, updated_at";

#[derive(sqlx::FromRow)]
pub(crate) struct OverrideRow {
    #[sqlx(try_from = "String")]
    member_id: MemberId,
    #[sqlx(try_from = "String")]
    access_level_id: AccessLevelId,
    #[sqlx(try_from = "String")]
    status: OverrideStatus,
    reason: Option<String>,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

impl From<OverrideRow> for AccessOverride {
    fn from(r: OverrideRow) -> Self {
        Self {
            member_id: r.member_id,
            access_level_id: r.access_level_id,
            status: r.status,
            reason: r.reason,
            created_at: r.created_at,
            updated_at: r.updated_at,
        }
    }
}

/// One purchased item of an order, as the access engine reads it.
#[derive(sqlx::FromRow)]
pub(crate) struct ItemRow {
    #[sqlx(try_from = "String")]
    pub(crate) product: ProductKey,
    member_id: Option<String>,
    #[sqlx(try_from = "String")]
    status: ItemStatus,
    status_at: i64,
    past_due: bool,
    revoke_at: Option<i64>,
    subscription_id: Option<String>,
    payment_at: Option<i64>,
    paused_at: Option<i64>,
    resumed_at: Option<i64>,
}

impl TryFrom<ItemRow> for ItemState {
    type Error = StoreError;

    fn try_from(r: ItemRow) -> Result<Self, StoreError> {
        Ok(Self {
            status: r.status,
            status_at: r.status_at,
            past_due: r.past_due,
            member_id: r
                .member_id
                .map(|id| id.parse::<MemberId>())
                .transpose()
                .map_err(StoreError::internal)?,
            levels: Vec::new(),
            revoke_at: r.revoke_at,
            subscription_id: r.subscription_id,
            payment_at: r.payment_at,
            paused_at: r.paused_at,
            resumed_at: r.resumed_at,
        })
    }
}

/// Converts every row of a query.
pub(crate) fn records<R, T: From<R>>(rows: Vec<R>) -> Vec<T> {
    rows.into_iter().map(T::from).collect()
}
