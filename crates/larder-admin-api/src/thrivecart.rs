//! The ThriveCart integration of an app and its product mappings.

use chrono::{DateTime, Utc};
use larder_access::{AccessLevelId, AppId, MappingId, ProductKey};
use larder_api_common::body::{JsonBody, OptionalJsonBody};
use larder_api_common::fields::{ProductField, SecretWordField};
use larder_api_common::{
    About, ApiError, Changed, Created, Cursor, Done, ErrorCode, Found, ListItem, Listed, Page,
    PageLimit, PathId, page_request,
};
use larder_store::{EnableIntegration, Integration, IntegrationPatch, Mapping, NewMapping};
use larder_tenancy::secrets;
use poem_openapi::param::{Path, Query};
use poem_openapi::types::MaybeUndefined;
use poem_openapi::{Enum, Object, OpenApi};

use crate::auth::AdminAuth;
use crate::{AdminState, ReadFails, Tag, WriteConflictFails, WriteFails};

#[derive(Debug)]
pub struct ThriveCartApi {
    pub(crate) state: AdminState,
}

/// What to do with test-mode purchases.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Enum)]
#[oai(rename_all = "snake_case", remote = "larder_access::TestModePolicy")]
pub enum TestMode {
    /// Apply them, flagging members and grants as test.
    Process,
    /// Record them as `ignored`.
    Ignore,
}

/// When a cancelled subscription loses its access.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Enum)]
#[oai(
    rename_all = "snake_case",
    remote = "larder_access::CancellationPolicy"
)]
pub enum Cancellation {
    /// As soon as the cancellation arrives.
    Immediate,
    /// At the end of the period already paid for.
    PeriodEnd,
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
    #[oai(nullable)]
    pub secret_word: Option<SecretWordField>,
}

/// Only the fields present change.
#[derive(Debug, Object)]
#[oai(example)]
pub struct UpdateThriveCartRequest {
    /// A new secret word (up to 200 characters, not blank); `null` clears it; absent
    /// leaves it.
    #[oai(nullable)]
    pub secret_word: MaybeUndefined<SecretWordField>,
    pub test_mode: Option<TestMode>,
    pub cancellation: Option<Cancellation>,
}

#[derive(Debug, Object)]
#[oai(example)]
pub struct CreateMappingRequest {
    /// A ThriveCart product ID (`"7"`, stored as `product-7`) or a typed key:
    /// `product-7`, `bump-7`, `upsell-3`, `downsell-2`.
    pub product: ProductField,
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

impl ListItem for MappingView {
    const LIST: &'static str = "MappingList";
}

/// A product key seen in deliveries that no mapping covers now.
#[derive(Debug, Object)]
pub struct UnmappedProductView {
    pub product: String,
    /// How many deliveries named it.
    pub deliveries: i64,
    pub last_seen_at: DateTime<Utc>,
}

impl ListItem for UnmappedProductView {
    const LIST: &'static str = "UnmappedProductList";
    const NEXT_CURSOR: &'static str = "Always null: the list is short and comes whole.";
}

const WHAT: &str = "ThriveCart integration";

/// The stored form of a secret word. Deliveries' fields are read trimmed, so the word is
/// stored trimmed too.
fn secret_word_hash(word: &SecretWordField) -> String {
    secrets::hash_secret_word(word.trim())
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
    async fn changed(&self, old_token: Option<&str>, tc: Integration) -> Changed<ThriveCartView> {
        self.state.tenancy.integration_changed(old_token, &tc).await;
        Changed::of(self.view(&tc))
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
        app_id: Path<PathId<AppId>>,
    ) -> Result<Found<ThriveCartView>, ReadFails> {
        let app = self.state.scope(&auth, &app_id).await?;
        let tc = self.state.store.get_integration(app).await.about(WHAT)?;
        Ok(Found::of(self.view(&tc)))
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
        app_id: Path<PathId<AppId>>,
        body: OptionalJsonBody<EnableRequest>,
    ) -> Result<Changed<ThriveCartView>, WriteFails> {
        let app = self.state.scope(&auth, &app_id).await?;
        let enable = EnableIntegration {
            token_if_new: secrets::generate_webhook_token(),
            secret_word_hash: body.secret_word.as_ref().map(secret_word_hash),
        };
        let tc = self
            .state
            .store
            .enable_integration(app, enable)
            .await
            .about(WHAT)?;
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
        app_id: Path<PathId<AppId>>,
    ) -> Result<Changed<ThriveCartView>, ReadFails> {
        let app = self.state.scope(&auth, &app_id).await?;
        let tc = self
            .state
            .store
            .disable_integration(app)
            .await
            .about(WHAT)?;
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
        app_id: Path<PathId<AppId>>,
        body: JsonBody<UpdateThriveCartRequest>,
    ) -> Result<Changed<ThriveCartView>, WriteFails> {
        let app = self.state.scope(&auth, &app_id).await?;
        let patch = IntegrationPatch {
            secret_word_hash: match &body.secret_word {
                MaybeUndefined::Undefined => None,
                MaybeUndefined::Null => Some(None),
                MaybeUndefined::Value(word) => Some(Some(secret_word_hash(word))),
            },
            test_mode: body.test_mode.map(Into::into),
            cancellation: body.cancellation.map(Into::into),
        };
        let tc = self
            .state
            .store
            .update_integration(app, patch)
            .await
            .about(WHAT)?;
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
        app_id: Path<PathId<AppId>>,
    ) -> Result<Changed<ThriveCartView>, ReadFails> {
        let app = self.state.scope(&auth, &app_id).await?;
        let rotated = self
            .state
            .store
            .rotate_webhook_token(app, &secrets::generate_webhook_token())
            .await
            .about(WHAT)?;
        Ok(self
            .changed(rotated.old_token.as_deref(), rotated.integration)
            .await)
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
        app_id: Path<PathId<AppId>>,
        body: JsonBody<CreateMappingRequest>,
    ) -> Result<Created<MappingView>, WriteConflictFails> {
        let app = self.state.scope(&auth, &app_id).await?;
        let product = ProductKey::parse(&body.product).map_err(|e| {
            ApiError::validation(ErrorCode::InvalidProduct, "product", format!("{e}."))
        })?;
        let level: AccessLevelId = body
            .access_level_id
            .parse()
            .map_err(|_| ApiError::unknown_access_level())?;
        let new = NewMapping {
            id: MappingId::new(),
            app_id: app,
            product,
            access_level_id: level,
        };
        let mapping = self
            .state
            .store
            .create_mapping(new)
            .await
            .about("mapping")?;
        self.state.tenancy.mappings_changed(app).await;
        Ok(Created::of(mapping))
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
        app_id: Path<PathId<AppId>>,
        /// Page size, 1–200 (default 50).
        limit: Query<Option<PageLimit>>,
        /// `next_cursor` of the previous page.
        cursor: Query<Option<Cursor>>,
    ) -> Result<Listed<MappingView>, ReadFails> {
        let app = self.state.scope(&auth, &app_id).await?;
        let page = page_request(limit.0, cursor.0);
        let page = self
            .state
            .store
            .list_mappings(app, page)
            .await
            .about("mapping")?;
        Ok(Listed::of(Page::from_store(page, MappingView::from)))
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
        app_id: Path<PathId<AppId>>,
    ) -> Result<Listed<UnmappedProductView>, ReadFails> {
        let app = self.state.scope(&auth, &app_id).await?;
        let unmapped = self.state.store.unmapped_products(app).await.about("app")?;
        Ok(Listed::of(Page::whole(unmapped.into_iter().map(|u| {
            UnmappedProductView {
                product: u.product.to_string(),
                deliveries: u.deliveries,
                last_seen_at: u.last_seen_at,
            }
        }))))
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
        app_id: Path<PathId<AppId>>,
        mapping_id: Path<PathId<MappingId>>,
    ) -> Result<Done, ReadFails> {
        let app = self.state.scope(&auth, &app_id).await?;
        self.state
            .store
            .delete_mapping(app, **mapping_id)
            .await
            .about("mapping")?;
        self.state.tenancy.mappings_changed(app).await;
        Ok(Done::NoContent)
    }
}

impl poem_openapi::types::Example for EnableRequest {
    fn example() -> Self {
        Self {
            secret_word: Some(SecretWordField("K7QX2M9PLD4R".into())),
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
            product: ProductField("7".into()),
            access_level_id: "01a21adf-1965-7166-8ba8-81632aa17ed4".into(),
        }
    }
}
