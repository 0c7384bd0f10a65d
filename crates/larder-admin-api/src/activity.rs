//! The activity log of ThriveCart deliveries, and replays.

use chrono::{DateTime, Utc};
use larder_access::DeliveryId;
use larder_gateway::ReplayError;
use larder_store::{ActivityFilter, DeliveryRecord, DeliveryStatus};
use poem_openapi::param::{Path, Query};
use poem_openapi::payload::Json;
use poem_openapi::{Enum, Object, OpenApi};

use crate::auth::{AdminAuth, parse_id};
use crate::{AdminState, Tag};
use larder_api_common::ApiError;
use larder_api_common::paging::{into_items, page_request};

#[derive(Debug)]
pub struct ActivityApi {
    pub(crate) state: AdminState,
}

/// The outcome of a delivery.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Enum)]
#[oai(rename_all = "snake_case")]
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

impl From<DeliveryStatus> for ActivityStatus {
    fn from(s: DeliveryStatus) -> Self {
        match s {
            DeliveryStatus::Applied => ActivityStatus::Applied,
            DeliveryStatus::Duplicate => ActivityStatus::Duplicate,
            DeliveryStatus::Unmapped => ActivityStatus::Unmapped,
            DeliveryStatus::Ignored => ActivityStatus::Ignored,
            DeliveryStatus::Rejected => ActivityStatus::Rejected,
            DeliveryStatus::Invalid => ActivityStatus::Invalid,
            DeliveryStatus::Failed => ActivityStatus::Failed,
            DeliveryStatus::Ping => ActivityStatus::Ping,
        }
    }
}

impl From<ActivityStatus> for DeliveryStatus {
    fn from(s: ActivityStatus) -> Self {
        match s {
            ActivityStatus::Applied => DeliveryStatus::Applied,
            ActivityStatus::Duplicate => DeliveryStatus::Duplicate,
            ActivityStatus::Unmapped => DeliveryStatus::Unmapped,
            ActivityStatus::Ignored => DeliveryStatus::Ignored,
            ActivityStatus::Rejected => DeliveryStatus::Rejected,
            ActivityStatus::Invalid => DeliveryStatus::Invalid,
            ActivityStatus::Failed => DeliveryStatus::Failed,
            ActivityStatus::Ping => DeliveryStatus::Ping,
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
    /// `live` or `test`.
    #[oai(nullable)]
    pub mode: Option<String>,
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

/// An entry with what it carried and what it did.
#[derive(Debug, Object)]
pub struct ActivityDetail {
    #[oai(flatten)]
    pub entry: ActivityEntry,
    /// The decoded delivery, `thrivecart_secret` replaced by `"[redacted]"`.
    #[oai(nullable)]
    pub payload: Option<serde_json::Value>,
    /// `{kind, member_id, access_level_id?, product?}` per effect.
    pub effects: Vec<serde_json::Value>,
}

#[derive(Debug, Object)]
pub struct ActivityList {
    pub items: Vec<ActivityEntry>,
    /// Pass as `cursor` to read older entries; null on the last page.
    #[oai(nullable)]
    pub next_cursor: Option<String>,
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
        mode: d.mode.clone(),
        status: d.status.into(),
        order_id: d.order_id.clone(),
        customer_email: d.customer_email.clone(),
        products: d.products.clone(),
        message,
        verified: d.verified,
        replay_of: d.replay_of.map(|r| r.to_string()),
    }
}

fn detail(d: DeliveryRecord) -> ActivityDetail {
    ActivityDetail {
        entry: entry(&d),
        effects: d.effects.as_array().cloned().unwrap_or_default(),
        payload: d.payload,
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
        #[oai(validator(
            pattern = "^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$"
        ))]
        app_id: Path<String>,
        /// Only entries with this status.
        status: Query<Option<ActivityStatus>>,
        /// Only this event (`order.success`…).
        event: Query<Option<String>>,
        /// Only deliveries naming this product (`7` or a typed key).
        #[oai(validator(
            max_length = 60,
            pattern = "^((product|bump|upsell|downsell)-)?0{0,24}[1-9][0-9]{0,23}$"
        ))]
        product: Query<Option<String>>,
        /// Only this customer (exact, case-insensitive).
        email: Query<Option<String>>,
        /// Page size, 1–200 (default 50).
        #[oai(validator(minimum(value = "1"), maximum(value = "200")))]
        limit: Query<Option<u32>>,
        /// `next_cursor` of the previous page.
        #[oai(validator(pattern = "^[A-Za-z0-9_-]{22}$"))]
        cursor: Query<Option<String>>,
    ) -> Result<Json<ActivityList>, ApiError> {
        let app = auth.app(&self.state.tenancy, &app_id).await?;
        let page = page_request(limit.0, cursor.0.as_deref())?;
        let product = match product.0 {
            Some(raw) => Some(
                larder_access::ProductKey::parse(&raw)
                    .map_err(|e| ApiError::invalid_parameter("product", e.to_string()))?
                    .to_string(),
            ),
            None => None,
        };
        let filter = ActivityFilter {
            status: status.0.map(Into::into),
            event: event.0,
            product,
            email: email.0.map(|e| e.trim().to_lowercase()),
        };
        let page = self
            .state
            .tenancy
            .store()
            .list_activity(app, filter, page)
            .await
            .map_err(|e| ApiError::from_store(e, "app"))?;
        let (items, next_cursor) = into_items(page, |d| entry(&d));
        Ok(Json(ActivityList { items, next_cursor }))
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
        #[oai(validator(
            pattern = "^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$"
        ))]
        app_id: Path<String>,
        #[oai(validator(
            pattern = "^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$"
        ))]
        delivery_id: Path<String>,
    ) -> Result<Json<ActivityDetail>, ApiError> {
        let app = auth.app(&self.state.tenancy, &app_id).await?;
        let id: DeliveryId = parse_id(&delivery_id, "delivery_id")?;
        let d = self
            .state
            .tenancy
            .store()
            .get_activity(app, id)
            .await
            .map_err(|e| ApiError::from_store(e, "activity entry"))?;
        Ok(Json(detail(d)))
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
        #[oai(validator(
            pattern = "^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$"
        ))]
        app_id: Path<String>,
        #[oai(validator(
            pattern = "^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$"
        ))]
        delivery_id: Path<String>,
    ) -> Result<Json<ActivityDetail>, ApiError> {
        let app = auth.app(&self.state.tenancy, &app_id).await?;
        let id: DeliveryId = parse_id(&delivery_id, "delivery_id")?;
        match self.state.gateway.replay(app, id).await {
            Ok(d) => Ok(Json(detail(d))),
            Err(ReplayError::NotReplayable) => Err(ApiError::conflict(
                "not_replayable",
                "Only `applied`, `unmapped` or `failed` deliveries can be replayed.",
            )),
            Err(ReplayError::Unreadable) => Err(ApiError::conflict(
                "not_replayable",
                "The stored delivery cannot be read as a ThriveCart delivery.",
            )),
            Err(ReplayError::Store(e)) => Err(ApiError::from_store(e, "activity entry")),
        }
    }
}
