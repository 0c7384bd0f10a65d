//! Apps and their API keys.

use chrono::{DateTime, Utc};
use larder_access::{ApiKeyId, AppId};
use larder_store::{ApiKey, App, NewApiKey, NewApp};
use larder_tenancy::secrets;
use poem_openapi::param::{Path, Query};
use poem_openapi::payload::Json;
use poem_openapi::{ApiResponse, Object, OpenApi};

use crate::auth::{AdminAuth, parse_id};
use crate::{AdminState, Tag, parse_name};
use larder_api_common::ApiError;
use larder_api_common::body::JsonBody;
use larder_api_common::paging::{into_items, page_request};

#[derive(Debug)]
pub struct AppsApi {
    pub(crate) state: AdminState,
}

#[derive(Debug, Object)]
#[oai(example)]
pub struct CreateAppRequest {
    /// A name for people: up to 200 characters, no control characters, not blank.
    #[oai(validator(
        max_length = 200,
        pattern = "^[^\\x00-\\x1f\\x7f-\\x9f]*[^\\x00-\\x20\\x7f-\\x9f][^\\x00-\\x1f\\x7f-\\x9f]*$"
    ))]
    pub name: String,
}

#[derive(Debug, Object)]
#[oai(example)]
pub struct AppView {
    pub id: String,
    pub name: String,
    pub created_at: DateTime<Utc>,
}

impl From<App> for AppView {
    fn from(app: App) -> Self {
        Self {
            id: app.id.to_string(),
            name: app.name,
            created_at: app.created_at,
        }
    }
}

#[derive(Debug, Object)]
pub struct AppList {
    pub items: Vec<AppView>,
    /// Pass as `cursor` to read the next page; null on the last one.
    #[oai(nullable)]
    pub next_cursor: Option<String>,
}

#[derive(Debug, Object)]
#[oai(example)]
pub struct CreateApiKeyRequest {
    /// A label to recognise the key by: up to 200 characters, no control characters, not
    /// blank.
    #[oai(validator(
        max_length = 200,
        pattern = "^[^\\x00-\\x1f\\x7f-\\x9f]*[^\\x00-\\x20\\x7f-\\x9f][^\\x00-\\x1f\\x7f-\\x9f]*$"
    ))]
    pub name: String,
}

/// A new key. `key` is shown only here; Larder keeps only its hash.
#[derive(Debug, Object)]
#[oai(example)]
pub struct CreatedApiKey {
    pub id: String,
    pub name: String,
    pub key: String,
    pub created_at: DateTime<Utc>,
}

#[derive(Debug, Object)]
pub struct ApiKeyView {
    pub id: String,
    pub name: String,
    pub created_at: DateTime<Utc>,
}

impl From<ApiKey> for ApiKeyView {
    fn from(key: ApiKey) -> Self {
        Self {
            id: key.id.to_string(),
            name: key.name,
            created_at: key.created_at,
        }
    }
}

#[derive(Debug, Object)]
pub struct ApiKeyList {
    pub items: Vec<ApiKeyView>,
    /// Pass as `cursor` to read the next page; null on the last one.
    #[oai(nullable)]
    pub next_cursor: Option<String>,
}

#[derive(Debug, ApiResponse)]
pub enum CreatedApp {
    /// The app was created.
    #[oai(status = 201)]
    Created(Json<AppView>),
}

#[derive(Debug, ApiResponse)]
pub enum CreatedKey {
    /// The key was created; this is the only time it is shown.
    #[oai(status = 201)]
    Created(Json<CreatedApiKey>),
}

#[derive(Debug, ApiResponse)]
pub enum Deleted {
    /// Done.
    #[oai(status = 204)]
    NoContent,
}

#[OpenApi(prefix_path = "/admin/v1", tag = "Tag::Apps")]
impl AppsApi {
    /// Create an app
    ///
    /// Creates a tenant. Operator only: an app key gets 403.
    #[oai(path = "/apps", method = "post", operation_id = "createApp")]
    async fn create_app(
        &self,
        auth: AdminAuth,
        body: JsonBody<CreateAppRequest>,
    ) -> Result<CreatedApp, ApiError> {
        auth.require_operator()?;
        let name = parse_name(&body.name)?;
        let app = self
            .state
            .tenancy
            .store()
            .create_app(NewApp {
                id: AppId::new(),
                name,
            })
            .await
            .map_err(|e| ApiError::from_store(e, "app"))?;
        Ok(CreatedApp::Created(Json(app.into())))
    }

    /// List apps
    ///
    /// Every app, oldest first. Operator only.
    #[oai(path = "/apps", method = "get", operation_id = "listApps")]
    async fn list_apps(
        &self,
        auth: AdminAuth,
        /// Page size, 1–200 (default 50).
        #[oai(validator(minimum(value = "1"), maximum(value = "200")))]
        limit: Query<Option<u32>>,
        /// `next_cursor` of the previous page.
        #[oai(validator(pattern = "^[A-Za-z0-9_-]{22}$"))]
        cursor: Query<Option<String>>,
    ) -> Result<Json<AppList>, ApiError> {
        auth.require_operator()?;
        let page = page_request(limit.0, cursor.0.as_deref())?;
        let page = self
            .state
            .tenancy
            .store()
            .list_apps(page)
            .await
            .map_err(|e| ApiError::from_store(e, "app"))?;
        let (items, next_cursor) = into_items(page, AppView::from);
        Ok(Json(AppList { items, next_cursor }))
    }

    /// Get an app
    ///
    /// The operator may read any app; an app's key only its own (another app is 404).
    #[oai(path = "/apps/:app_id", method = "get", operation_id = "getApp")]
    async fn get_app(
        &self,
        auth: AdminAuth,
        #[oai(validator(
            pattern = "^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$"
        ))]
        app_id: Path<String>,
    ) -> Result<Json<AppView>, ApiError> {
        let app = auth.app(&self.state.tenancy, &app_id).await?;
        let app = self
            .state
            .tenancy
            .store()
            .get_app(app)
            .await
            .map_err(|e| ApiError::from_store(e, "app"))?;
        Ok(Json(app.into()))
    }

    /// Create an API key
    ///
    /// A key acts on this app only. The key is in this answer and nowhere else, ever.
    #[oai(
        path = "/apps/:app_id/api-keys",
        method = "post",
        operation_id = "createApiKey"
    )]
    async fn create_api_key(
        &self,
        auth: AdminAuth,
        #[oai(validator(
            pattern = "^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$"
        ))]
        app_id: Path<String>,
        body: JsonBody<CreateApiKeyRequest>,
    ) -> Result<CreatedKey, ApiError> {
        let app = auth.app(&self.state.tenancy, &app_id).await?;
        let name = parse_name(&body.name)?;
        let key = secrets::generate_api_key();
        let stored = self
            .state
            .tenancy
            .store()
            .create_api_key(NewApiKey {
                id: ApiKeyId::new(),
                app_id: app,
                name,
                key_hash: secrets::hash_token(&key),
            })
            .await
            .map_err(|e| ApiError::from_store(e, "app"))?;
        Ok(CreatedKey::Created(Json(CreatedApiKey {
            id: stored.id.to_string(),
            name: stored.name,
            key,
            created_at: stored.created_at,
        })))
    }

    /// List API keys
    ///
    /// The app's keys, without the keys themselves.
    #[oai(
        path = "/apps/:app_id/api-keys",
        method = "get",
        operation_id = "listApiKeys"
    )]
    async fn list_api_keys(
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
    ) -> Result<Json<ApiKeyList>, ApiError> {
        let app = auth.app(&self.state.tenancy, &app_id).await?;
        let page = page_request(limit.0, cursor.0.as_deref())?;
        let page = self
            .state
            .tenancy
            .store()
            .list_api_keys(app, page)
            .await
            .map_err(|e| ApiError::from_store(e, "app"))?;
        let (items, next_cursor) = into_items(page, ApiKeyView::from);
        Ok(Json(ApiKeyList { items, next_cursor }))
    }

    /// Revoke an API key
    ///
    /// The key stops working at once, in every Larder process.
    #[oai(
        path = "/apps/:app_id/api-keys/:key_id",
        method = "delete",
        operation_id = "deleteApiKey"
    )]
    async fn delete_api_key(
        &self,
        auth: AdminAuth,
        #[oai(validator(
            pattern = "^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$"
        ))]
        app_id: Path<String>,
        #[oai(validator(
            pattern = "^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$"
        ))]
        key_id: Path<String>,
    ) -> Result<Deleted, ApiError> {
        let app = auth.app(&self.state.tenancy, &app_id).await?;
        let key: ApiKeyId = parse_id(&key_id, "key_id")?;
        let hash = self
            .state
            .tenancy
            .store()
            .delete_api_key(app, key)
            .await
            .map_err(|e| ApiError::from_store(e, "api key"))?;
        self.state.tenancy.api_key_revoked(&hash).await;
        Ok(Deleted::NoContent)
    }
}

impl poem_openapi::types::Example for CreateAppRequest {
    fn example() -> Self {
        Self {
            name: "Acme Academy".into(),
        }
    }
}

impl poem_openapi::types::Example for CreateApiKeyRequest {
    fn example() -> Self {
        Self {
            name: "setup script".into(),
        }
    }
}

impl poem_openapi::types::Example for AppView {
    fn example() -> Self {
        Self {
            id: "01a21ade-4839-75cf-8b84-6a3918e0f586".into(),
            name: "Acme Academy".into(),
            created_at: chrono::DateTime::UNIX_EPOCH,
        }
    }
}

impl poem_openapi::types::Example for CreatedApiKey {
    fn example() -> Self {
        Self {
            id: "01a21ade-ce20-700a-955d-a701080d1ac1".into(),
            name: "setup script".into(),
            key: "lk_pxUspWTJFWHomRH6Gg29T6UsPRjbQIS--g-Hg2ai44E".into(),
            created_at: chrono::DateTime::UNIX_EPOCH,
        }
    }
}
