//! The ThriveCart integration of an app and its product mappings.

use chrono::{DateTime, Utc};
use larder_access::{AccessLevelId, CancellationPolicy, MappingId, ProductKey, TestModePolicy};
use larder_store::{EnableIntegration, Integration, IntegrationPatch, Mapping, NewMapping};
use larder_tenancy::secrets;
use poem_openapi::param::{Path, Query};
use poem_openapi::payload::Json;
use poem_openapi::types::MaybeUndefined;
use poem_openapi::{ApiResponse, Enum, Object, OpenApi};

use crate::apps::Deleted;
use crate::auth::{AdminAuth, parse_id};
use crate::{AdminState, Tag};
use larder_api_common::ApiError;
use larder_api_common::body::{JsonBody, OptionalJsonBody};
use larder_api_common::paging::{into_items, page_request};

#[derive(Debug)]
pub struct ThriveCartApi {
    pub(crate) state: AdminState,
}

/// What to do with test-mode purchases.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Enum)]
#[oai(rename_all = "snake_case")]
pub enum TestMode {
    /// Apply them, flagging members and grants as test.
    Process,
    /// Record them as `ignored`.
    Ignore,
}

/// When a cancelled subscription loses its access.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Enum)]
#[oai(rename_all = "snake_case")]
pub enum Cancellation {
    /// As soon as the cancellation arrives.
    Immediate,
    /// At the end of the period already paid for.
    PeriodEnd,
}

impl From<TestModePolicy> for TestMode {
    fn from(p: TestModePolicy) -> Self {
        match p {
            TestModePolicy::Process => TestMode::Process,
            TestModePolicy::Ignore => TestMode::Ignore,
        }
    }
}

impl From<TestMode> for TestModePolicy {
    fn from(m: TestMode) -> Self {
        match m {
            TestMode::Process => TestModePolicy::Process,
            TestMode::Ignore => TestModePolicy::Ignore,
        }
    }
}

impl From<CancellationPolicy> for Cancellation {
    fn from(p: CancellationPolicy) -> Self {
        match p {
            CancellationPolicy::Immediate => Cancellation::Immediate,
            CancellationPolicy::PeriodEnd => Cancellation::PeriodEnd,
        }
    }
}

impl From<Cancellation> for CancellationPolicy {
    fn from(c: Cancellation) -> Self {
        match c {
            Cancellation::Immediate => CancellationPolicy::Immediate,
            Cancellation::PeriodEnd => CancellationPolicy::PeriodEnd,
        }
    }
}

/// The integration as an admin sees it. The secret word itself is never shown.
#[derive(Debug, Object)]
#[oai(example)]
pub struct ThriveCartView {
    pub enabled: bool,
    /// The URL to paste into ThriveCart's webhook settings; null while disabled.
    #[oai(nullable)]
    pub webhook_url: Option<String>,
    pub secret_word_set: bool,
    pub test_mode: TestMode,
    pub cancellation: Cancellation,
}

#[derive(Debug, Default, Object)]
#[oai(example)]
pub struct EnableRequest {
    /// ThriveCart's secret word (Settings → API & webhooks), up to 200 characters, not
    /// blank. Omit (or send null) to keep the stored one.
    #[oai(nullable, validator(max_length = 200, pattern = "[^\\x00-\\x20]"))]
    pub secret_word: Option<String>,
}

#[derive(Debug, Object)]
#[oai(example)]
pub struct UpdateThriveCartRequest {
    /// A new secret word (up to 200 characters, not blank); `null` clears it; absent
    /// leaves it.
    #[oai(nullable, validator(max_length = 200, pattern = "[^\\x00-\\x20]"))]
    pub secret_word: MaybeUndefined<String>,
    #[oai(nullable)]
    pub test_mode: Option<TestMode>,
    #[oai(nullable)]
    pub cancellation: Option<Cancellation>,
}

#[derive(Debug, Object)]
#[oai(example)]
pub struct CreateMappingRequest {
    /// A ThriveCart product ID (`"7"`, stored as `product-7`) or a typed key:
    /// `product-7`, `bump-7`, `upsell-3`, `downsell-2`.
    #[oai(validator(
        max_length = 60,
        pattern = "^((product|bump|upsell|downsell)-)?0{0,24}[1-9][0-9]{0,23}$"
    ))]
    pub product: String,
    /// One of the app's access levels.
    pub access_level_id: String,
}

#[derive(Debug, Object)]
pub struct MappingView {
    pub id: String,
    /// The typed product key.
    pub product: String,
    pub access_level_id: String,
    pub created_at: DateTime<Utc>,
}

impl From<Mapping> for MappingView {
    fn from(m: Mapping) -> Self {
        Self {
            id: m.id.to_string(),
            product: m.product.to_string(),
            access_level_id: m.access_level_id.to_string(),
            created_at: m.created_at,
        }
    }
}

#[derive(Debug, Object)]
pub struct MappingList {
    pub items: Vec<MappingView>,
    /// Pass as `cursor` to read the next page; null on the last one.
    #[oai(nullable)]
    pub next_cursor: Option<String>,
}

/// A product key seen in deliveries that no mapping covers now.
#[derive(Debug, Object)]
pub struct UnmappedProductView {
    pub product: String,
    /// How many deliveries named it.
    pub deliveries: i64,
    pub last_seen_at: DateTime<Utc>,
}

#[derive(Debug, Object)]
pub struct UnmappedProductList {
    pub items: Vec<UnmappedProductView>,
    /// Always null: the list is short and comes whole.
    #[oai(nullable)]
    pub next_cursor: Option<String>,
}

#[derive(Debug, ApiResponse)]
pub enum CreatedMapping {
    /// The mapping was created.
    #[oai(status = 201)]
    Created(Json<MappingView>),
}

const WHAT: &str = "ThriveCart integration";
const MAX_SECRET_WORD_CHARS: usize = 200;

fn secret_word_hash(word: &str) -> Result<String, ApiError> {
    if !word.chars().any(|c| c > ' ') {
        return Err(ApiError::validation(
            "validation_failed",
            "secret_word",
            "`secret_word` must not be blank; use null to clear it.",
        ));
    }
    if word.chars().count() > MAX_SECRET_WORD_CHARS {
        return Err(ApiError::validation(
            "validation_failed",
            "secret_word",
            format!("`secret_word` must be at most {MAX_SECRET_WORD_CHARS} characters."),
        ));
    }
    // Deliveries' fields are read trimmed, so the word is stored trimmed too.
    Ok(secrets::hash_secret_word(word.trim()))
}

impl ThriveCartApi {
    fn view(&self, tc: &Integration) -> ThriveCartView {
        ThriveCartView {
            enabled: tc.enabled,
            webhook_url: tc.live_token().map(|t| self.state.webhook_url(t)),
            secret_word_set: tc.secret_word_hash.is_some(),
            test_mode: tc.test_mode.into(),
            cancellation: tc.cancellation.into(),
        }
    }

    /// Publishes a changed integration to every process's token cache, then shows it.
    async fn changed(&self, old_token: Option<&str>, tc: Integration) -> Json<ThriveCartView> {
        self.state.tenancy.integration_changed(old_token, &tc).await;
        Json(self.view(&tc))
    }
}

#[OpenApi(prefix_path = "/admin/v1/apps", tag = "Tag::Thrivecart")]
impl ThriveCartApi {
    /// Get the ThriveCart integration
    ///
    /// Apps that never configured ThriveCart show the defaults: disabled, `test_mode`
    /// `process`, `cancellation` `immediate`.
    #[oai(
        path = "/:app_id/thrivecart",
        method = "get",
        operation_id = "getThriveCart"
    )]
    async fn get(
        &self,
        auth: AdminAuth,
        #[oai(validator(
            pattern = "^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$"
        ))]
        app_id: Path<String>,
    ) -> Result<Json<ThriveCartView>, ApiError> {
        let app = auth.app(&self.state.tenancy, &app_id).await?;
        let tc = self
            .state
            .tenancy
            .store()
            .get_integration(app)
            .await
            .map_err(|e| ApiError::from_store(e, WHAT))?;
        Ok(Json(self.view(&tc)))
    }

    /// Enable the ThriveCart integration
    ///
    /// Answers with the webhook URL to paste into ThriveCart. Enabling again keeps the URL,
    /// and keeps the stored secret word unless a new one is given.
    #[oai(
        path = "/:app_id/thrivecart/enable",
        method = "post",
        operation_id = "enableThriveCart"
    )]
    async fn enable(
        &self,
        auth: AdminAuth,
        #[oai(validator(
            pattern = "^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$"
        ))]
        app_id: Path<String>,
        body: OptionalJsonBody<EnableRequest>,
    ) -> Result<Json<ThriveCartView>, ApiError> {
        let app = auth.app(&self.state.tenancy, &app_id).await?;
        let secret_word_hash = body
            .secret_word
            .as_deref()
            .map(secret_word_hash)
            .transpose()?;
        let tc = self
            .state
            .tenancy
            .store()
            .enable_integration(
                app,
                EnableIntegration {
                    token_if_new: secrets::generate_webhook_token(),
                    secret_word_hash,
                },
            )
            .await
            .map_err(|e| ApiError::from_store(e, WHAT))?;
        Ok(self.changed(None, tc).await)
    }

    /// Disable the ThriveCart integration
    ///
    /// The webhook URL answers 404 from now on, in every Larder process within a second.
    #[oai(
        path = "/:app_id/thrivecart/disable",
        method = "post",
        operation_id = "disableThriveCart"
    )]
    async fn disable(
        &self,
        auth: AdminAuth,
        #[oai(validator(
            pattern = "^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$"
        ))]
        app_id: Path<String>,
    ) -> Result<Json<ThriveCartView>, ApiError> {
        let app = auth.app(&self.state.tenancy, &app_id).await?;
        let tc = self
            .state
            .tenancy
            .store()
            .disable_integration(app)
            .await
            .map_err(|e| ApiError::from_store(e, WHAT))?;
        Ok(self.changed(None, tc).await)
    }

    /// Change the ThriveCart settings
    ///
    /// Only the fields present change; `"secret_word": null` clears the secret word.
    #[oai(
        path = "/:app_id/thrivecart",
        method = "patch",
        operation_id = "updateThriveCart"
    )]
    async fn update(
        &self,
        auth: AdminAuth,
        #[oai(validator(
            pattern = "^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$"
        ))]
        app_id: Path<String>,
        body: JsonBody<UpdateThriveCartRequest>,
    ) -> Result<Json<ThriveCartView>, ApiError> {
        let app = auth.app(&self.state.tenancy, &app_id).await?;
        let secret_word_hash = match &body.secret_word {
            MaybeUndefined::Undefined => None,
            MaybeUndefined::Null => Some(None),
            MaybeUndefined::Value(word) => Some(Some(secret_word_hash(word)?)),
        };
        let patch = IntegrationPatch {
            secret_word_hash,
            test_mode: body.test_mode.map(Into::into),
            cancellation: body.cancellation.map(Into::into),
        };
        let tc = self
            .state
            .tenancy
            .store()
            .update_integration(app, patch)
            .await
            .map_err(|e| ApiError::from_store(e, WHAT))?;
        Ok(self.changed(None, tc).await)
    }

    /// Rotate the webhook token
    ///
    /// Issues a new webhook URL; the old one answers 404 from now on. Update the URL in
    /// ThriveCart afterwards.
    #[oai(
        path = "/:app_id/thrivecart/rotate-webhook-token",
        method = "post",
        operation_id = "rotateThriveCartWebhookToken"
    )]
    async fn rotate(
        &self,
        auth: AdminAuth,
        #[oai(validator(
            pattern = "^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$"
        ))]
        app_id: Path<String>,
    ) -> Result<Json<ThriveCartView>, ApiError> {
        let app = auth.app(&self.state.tenancy, &app_id).await?;
        let (old, tc) = self
            .state
            .tenancy
            .store()
            .rotate_webhook_token(app, &secrets::generate_webhook_token())
            .await
            .map_err(|e| ApiError::from_store(e, WHAT))?;
        Ok(self.changed(old.as_deref(), tc).await)
    }

    /// Map a product to an access level
    ///
    /// 422 `invalid_product` for a product that is not a ThriveCart ID or typed key, 422
    /// `unknown_access_level` for a level that is not the app's, 409 for a pair that exists.
    #[oai(
        path = "/:app_id/thrivecart/mappings",
        method = "post",
        operation_id = "createMapping"
    )]
    async fn create_mapping(
        &self,
        auth: AdminAuth,
        #[oai(validator(
            pattern = "^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$"
        ))]
        app_id: Path<String>,
        body: JsonBody<CreateMappingRequest>,
    ) -> Result<CreatedMapping, ApiError> {
        let app = auth.app(&self.state.tenancy, &app_id).await?;
        let product = ProductKey::parse(&body.product)
            .map_err(|e| ApiError::validation("invalid_product", "product", e.to_string()))?;
        let level: AccessLevelId = body.access_level_id.parse().map_err(|_| {
            ApiError::validation(
                "unknown_access_level",
                "access_level_id",
                "No access level with that id in this app.",
            )
        })?;
        let mapping = self
            .state
            .tenancy
            .store()
            .create_mapping(NewMapping {
                id: MappingId::new(),
                app_id: app,
                product,
                access_level_id: level,
            })
            .await
            .map_err(|e| ApiError::from_store(e, "mapping"))?;
        self.state.tenancy.mappings_changed(app).await;
        Ok(CreatedMapping::Created(Json(mapping.into())))
    }

    /// List product mappings
    ///
    /// Which ThriveCart product keys grant which access levels, oldest first.
    #[oai(
        path = "/:app_id/thrivecart/mappings",
        method = "get",
        operation_id = "listMappings"
    )]
    async fn list_mappings(
        &self,
        auth: AdminAuth,
        #[oai(validator(
            pattern = "^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$"
        ))]
        app_id: Path<String>,
        /// Page size, 1–200 (default 50).
        #[oai(validator(minimum(value = "1"), maximum(value = "200")))]
        limit: Query<Option<u32>>,
        /// `next_cursor` of the previous page.
        #[oai(validator(pattern = "^[A-Za-z0-9_-]{22}$"))]
        cursor: Query<Option<String>>,
    ) -> Result<Json<MappingList>, ApiError> {
        let app = auth.app(&self.state.tenancy, &app_id).await?;
        let page = page_request(limit.0, cursor.0.as_deref())?;
        let page = self
            .state
            .tenancy
            .store()
            .list_mappings(app, page)
            .await
            .map_err(|e| ApiError::from_store(e, "mapping"))?;
        let (items, next_cursor) = into_items(page, MappingView::from);
        Ok(Json(MappingList { items, next_cursor }))
    }

    /// List unmapped products
    ///
    /// Product keys that deliveries named and no mapping covers now, most recent first:
    /// where an admin finds a product ID after the first purchase.
    #[oai(
        path = "/:app_id/thrivecart/unmapped-products",
        method = "get",
        operation_id = "listUnmappedProducts"
    )]
    async fn unmapped_products(
        &self,
        auth: AdminAuth,
        #[oai(validator(
            pattern = "^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$"
        ))]
        app_id: Path<String>,
    ) -> Result<Json<UnmappedProductList>, ApiError> {
        let app = auth.app(&self.state.tenancy, &app_id).await?;
        let items = self
            .state
            .tenancy
            .store()
            .unmapped_products(app)
            .await
            .map_err(|e| ApiError::from_store(e, "app"))?
            .into_iter()
            .map(|u| UnmappedProductView {
                product: u.product,
                deliveries: u.deliveries,
                last_seen_at: u.last_seen_at,
            })
            .collect();
        Ok(Json(UnmappedProductList {
            items,
            next_cursor: None,
        }))
    }

    /// Delete a product mapping
    ///
    /// Later purchases of the product grant nothing through it; grants already given stay.
    #[oai(
        path = "/:app_id/thrivecart/mappings/:mapping_id",
        method = "delete",
        operation_id = "deleteMapping"
    )]
    async fn delete_mapping(
        &self,
        auth: AdminAuth,
        #[oai(validator(
            pattern = "^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$"
        ))]
        app_id: Path<String>,
        #[oai(validator(
            pattern = "^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$"
        ))]
        mapping_id: Path<String>,
    ) -> Result<Deleted, ApiError> {
        let app = auth.app(&self.state.tenancy, &app_id).await?;
        let id: MappingId = parse_id(&mapping_id, "mapping_id")?;
        self.state
            .tenancy
            .store()
            .delete_mapping(app, id)
            .await
            .map_err(|e| ApiError::from_store(e, "mapping"))?;
        self.state.tenancy.mappings_changed(app).await;
        Ok(Deleted::NoContent)
    }
}

impl poem_openapi::types::Example for EnableRequest {
    fn example() -> Self {
        Self {
            secret_word: Some("K7QX2M9PLD4R".into()),
        }
    }
}

impl poem_openapi::types::Example for UpdateThriveCartRequest {
    fn example() -> Self {
        Self {
            secret_word: MaybeUndefined::Undefined,
            test_mode: Some(TestMode::Ignore),
            cancellation: Some(Cancellation::PeriodEnd),
        }
    }
}

impl poem_openapi::types::Example for ThriveCartView {
    fn example() -> Self {
        Self {
            enabled: true,
            webhook_url: Some(
                "https://larder.example.com/webhooks/thrivecart/KXtVxbsR-GD_wBvdpCkPctfQOa752p16tT-k4CsR2Rw"
                    .into(),
            ),
            secret_word_set: true,
            test_mode: TestMode::Process,
            cancellation: Cancellation::Immediate,
        }
    }
}

impl poem_openapi::types::Example for CreateMappingRequest {
    fn example() -> Self {
        Self {
            product: "7".into(),
            access_level_id: "01a21adf-1965-7166-8ba8-81632aa17ed4".into(),
        }
    }
}
