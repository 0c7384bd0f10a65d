//! The activity log of ThriveCart deliveries, and replays.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use larder_access::engine::Effect;
use larder_access::{AppId, DeliveryId};
use larder_api_common::{
    About, ApiError, Cursor, ErrorCode, Found, ListItem, Listed, NullableEnum, OneOf, Page,
    PageLimit, PathId, ProductParam, TextParam, page_request,
};
use larder_gateway::ReplayError;
use larder_store::{ActivityFilter, DeliveryRecord, DeliveryStatus};
use poem_openapi::param::{Path, Query};
use poem_openapi::{Enum, Object, OpenApi};

use crate::auth::AdminAuth;
use crate::{AdminState, ReadConflictFails, ReadFails, Tag};

#[derive(Debug)]
pub struct ActivityApi {
    pub(crate) state: AdminState,
}

/// The outcome of a delivery.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Enum)]
#[oai(rename_all = "snake_case", remote = "larder_store::DeliveryStatus")]
pub enum ActivityStatus {
    Applied,
    Duplicate,
    Unmapped,
    Ignored,
    Rejected,
    Invalid,
    Failed,
    Ping,
}

/// Live or test mode, as the delivery says.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Enum)]
#[oai(rename_all = "snake_case", remote = "larder_access::thrivecart::Mode")]
pub enum DeliveryMode {
    Live,
    Test,
}

/// What a delivery did to a member.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Enum)]
#[oai(
    rename = "EffectKind",
    rename_all = "snake_case",
    remote = "larder_access::engine::EffectKind"
)]
pub enum EffectKindView {
    MemberCreated,
    Granted,
    Paused,
    Restored,
    Revoked,
    PastDue,
}

/// One thing a delivery did.
#[derive(Debug, Object)]
#[oai(rename = "Effect")]
pub struct EffectView {
    pub kind: EffectKindView,
    pub member_id: String,
    /// The level it concerns; absent for `member_created`.
    #[oai(skip_serializing_if_is_none)]
    pub access_level_id: Option<String>,
    /// The purchased item it concerns; absent for `member_created`.
    #[oai(skip_serializing_if_is_none)]
    pub product: Option<String>,
}

impl From<Effect> for EffectView {
    fn from(e: Effect) -> Self {
        Self {
            kind: e.kind.into(),
            member_id: e.member_id.to_string(),
            access_level_id: e.access_level_id.map(|l| l.to_string()),
            product: e.product.map(|p| p.to_string()),
        }
    }
}

/// One delivery as the activity log shows it.
#[derive(Debug, Object)]
pub struct ActivityEntry {
    pub id: String,
    pub received_at: DateTime<Utc>,
    #[oai(nullable)]
    pub event: Option<String>,
    /// `live` or `test`, as the delivery says; null when it says neither.
    #[oai(nullable)]
    pub mode: Option<NullableEnum<DeliveryMode>>,
    pub status: ActivityStatus,
    #[oai(nullable)]
    pub order_id: Option<String>,
    /// Trimmed and lowercased.
    #[oai(nullable)]
    pub customer_email: Option<String>,
    /// Typed product keys the delivery names (`product-7`, `bump-7`…).
    pub products: Vec<String>,
    pub message: String,
    /// Whether the secret word was checked (false while the app has none).
    pub verified: bool,
    /// The entry this attempt replays.
    #[oai(nullable)]
    pub replay_of: Option<String>,
}

impl ListItem for ActivityEntry {
    const LIST: &'static str = "ActivityList";
    const NEXT_CURSOR: &'static str =
        "Pass as `cursor` to read older entries; null on the last page.";
}

/// An entry with what it carried and what it did.
#[derive(Debug, Object)]
pub struct ActivityDetail {
    #[oai(flatten)]
    pub entry: ActivityEntry,
    /// The decoded delivery, `thrivecart_secret` replaced by `"[redacted]"`; for a body
    /// that could not be decoded, `{"raw": …}` with its start.
    #[oai(nullable)]
    pub payload: Option<BTreeMap<String, serde_json::Value>>,
    pub effects: Vec<EffectView>,
}

fn entry(d: &DeliveryRecord) -> ActivityEntry {
    let mut message = d.message.clone();
    let checked = !matches!(
        d.status,
        DeliveryStatus::Ping | DeliveryStatus::Rejected | DeliveryStatus::Invalid
    );
    if checked && !d.verified {
        message.push_str(" Unverified: the app has no secret word set.");
    }
    ActivityEntry {
        id: d.id.to_string(),
        received_at: d.received_at,
        event: d.event.clone(),
        mode: d.mode.map(|m| NullableEnum(m.into())),
        status: d.status.into(),
        order_id: d.order_id.clone(),
        customer_email: d.customer_email.as_ref().map(ToString::to_string),
        products: d.products.iter().map(ToString::to_string).collect(),
        message,
        verified: d.verified,
        replay_of: d.replay_of.map(|r| r.to_string()),
    }
}

impl From<DeliveryRecord> for ActivityDetail {
    fn from(d: DeliveryRecord) -> Self {
        Self {
            entry: entry(&d),
            payload: match d.payload {
                Some(serde_json::Value::Object(fields)) => Some(fields.into_iter().collect()),
                _ => None,
            },
            effects: d.effects.into_iter().map(Into::into).collect(),
        }
    }
}

#[OpenApi(prefix_path = "/admin/v1/apps", tag = "Tag::Activity")]
impl ActivityApi {
    /// List the activity log
    ///
    /// Every delivery to the app's webhook URL, newest first, with what became of it.
    #[oai(
        path = "/:app_id/activity",
        method = "get",
        operation_id = "listActivity"
    )]
    #[allow(clippy::too_many_arguments)]
    async fn list(
        &self,
        auth: AdminAuth,
        app_id: Path<PathId<AppId>>,
        /// Only entries with this status.
        status: Query<Option<OneOf<ActivityStatus>>>,
        /// Only this event (`order.success`…).
        event: Query<Option<TextParam>>,
        /// Only deliveries naming this product (`7` or a typed key).
        product: Query<Option<ProductParam>>,
        /// Only this customer (exact, case-insensitive).
        email: Query<Option<TextParam>>,
        /// Page size, 1–200 (default 50).
        limit: Query<Option<PageLimit>>,
        /// `next_cursor` of the previous page.
        cursor: Query<Option<Cursor>>,
    ) -> Result<Listed<ActivityEntry>, ReadFails> {
        let app = self.state.scope(&auth, &app_id).await?;
        let page = page_request(limit.0, cursor.0);
        let email = match email.0.as_deref() {
            Some(raw) => match larder_access::Email::parse(raw) {
                Ok(email) => Some(email),
                // No delivery is recorded under something that is not an address.
                Err(_) => return Ok(Listed::of(Page::whole([]))),
            },
            None => None,
        };
        let filter = ActivityFilter {
            status: status.0.map(|s| s.0.into()),
            event: event.0.map(|e| e.0),
            product: product.0.map(|p| p.0),
            email,
        };
        let page = self
            .state
            .store
            .list_activity(app, filter, page)
            .await
            .about("app")?;
        Ok(Listed::of(Page::from_store(page, |d| entry(&d))))
    }

    /// Get an activity entry
    ///
    /// The entry with the decoded delivery and its effects.
    #[oai(
        path = "/:app_id/activity/:delivery_id",
        method = "get",
        operation_id = "getActivity"
    )]
    async fn get(
        &self,
        auth: AdminAuth,
        app_id: Path<PathId<AppId>>,
        delivery_id: Path<PathId<DeliveryId>>,
    ) -> Result<Found<ActivityDetail>, ReadFails> {
        let app = self.state.scope(&auth, &app_id).await?;
        let d = self
            .state
            .store
            .get_activity(app, **delivery_id)
            .await
            .about("activity entry")?;
        Ok(Found::of(d))
    }

    /// Replay a delivery
    ///
    /// Applies an `unmapped` or `failed` delivery again with today's mappings (say, after
    /// adding the missing one); an `applied` one too, for items that were unmapped then.
    /// Answers the entry of the new attempt; the original keeps its status. Replaying again
    /// is allowed and never applies an effect twice.
    #[oai(
        path = "/:app_id/activity/:delivery_id/replay",
        method = "post",
        operation_id = "replayActivity"
    )]
    async fn replay(
        &self,
        auth: AdminAuth,
        app_id: Path<PathId<AppId>>,
        delivery_id: Path<PathId<DeliveryId>>,
    ) -> Result<Found<ActivityDetail>, ReadConflictFails> {
        let app = self.state.scope(&auth, &app_id).await?;
        match self.state.gateway.replay(app, **delivery_id).await {
            Ok(d) => Ok(Found::of(d)),
            Err(ReplayError::NotReplayable) => Err(ApiError::conflict(
                ErrorCode::NotReplayable,
                "Only `applied`, `unmapped` or `failed` deliveries can be replayed.",
            )
            .into()),
            Err(ReplayError::Unreadable) => Err(ApiError::conflict(
                ErrorCode::NotReplayable,
                "The stored delivery cannot be read as a ThriveCart delivery.",
            )
            .into()),
            Err(ReplayError::Store(e)) => Err(ApiError::from_store(e, "activity entry").into()),
        }
    }
}
