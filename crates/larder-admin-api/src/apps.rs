//! Apps and their API keys.

use chrono::{DateTime, Utc};
use larder_access::{ApiKeyId, AppId};
use larder_api_common::body::JsonBody;
use larder_api_common::fields::NameField;
use larder_api_common::{
    About, BAD_REQUEST, Changed, Created, Cursor, Done, FORBIDDEN, Fails, Found, JSON_BODY,
    ListItem, Listed, NOT_FOUND, Page, PageLimit, PathId, SERVER, UNAUTHORIZED, page_request,
};
use larder_store::{ApiKey, App, NewApiKey, NewApp};
use larder_tenancy::secrets;
use poem_openapi::param::{Path, Query};
use poem_openapi::{Object, OpenApi};

use crate::auth::AdminAuth;
use crate::{AdminState, ReadFails, Tag, WriteFails, parse_name};

#[derive(Debug)]
pub struct AppsApi {
    pub(crate) state: AdminState,
}

#[derive(Debug, Object)]
#[oai(example)]
pub struct CreateAppRequest {
    /// A name for people: up to 200 characters, no control characters, not blank.
    pub name: NameField,
}

#[derive(Debug, Object)]
#[oai(example)]
pub struct RenameAppRequest {
    /// The new name: up to 200 characters, no control characters, not blank.
    pub name: NameField,
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

impl ListItem for AppView {
    const LIST: &'static str = "AppList";
}

#[derive(Debug, Object)]
#[oai(example)]
pub struct CreateApiKeyRequest {
    /// A label to recognise the key by: up to 200 characters, no control characters, not
    /// blank.
    pub name: NameField,
}

/// A new key. `key` is shown only here; Larder keeps only its hash.
#[derive(Object)]
#[oai(example)]
pub struct CreatedApiKey {
    pub id: String,
    pub name: String,
    pub key: String,
    pub created_at: DateTime<Utc>,
}

// The key stays out of any `Debug` output.
impl std::fmt::Debug for CreatedApiKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CreatedApiKey")
            .field("id", &self.id)
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
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

impl ListItem for ApiKeyView {
    const LIST: &'static str = "ApiKeyList";
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
    ) -> Result<Created<AppView>, Fails<{ JSON_BODY | UNAUTHORIZED | FORBIDDEN | SERVER }>> {
        auth.require_operator()?;
        let new = NewApp {
            id: AppId::new(),
            name: parse_name(&body.name)?,
        };
        let app = self.state.store.create_app(new).await.about("app")?;
        Ok(Created::of(app))
    }

    /// List apps
    ///
    /// Every app, oldest first. Operator only.
    #[oai(path = "/apps", method = "get", operation_id = "listApps")]
    async fn list_apps(
        &self,
        auth: AdminAuth,
        /// Page size, 1–200 (default 50).
        limit: Query<Option<PageLimit>>,
        /// `next_cursor` of the previous page.
        cursor: Query<Option<Cursor>>,
    ) -> Result<Listed<AppView>, Fails<{ BAD_REQUEST | UNAUTHORIZED | FORBIDDEN | SERVER }>> {
        auth.require_operator()?;
        let page = page_request(limit.0, cursor.0);
        let page = self.state.store.list_apps(page).await.about("app")?;
        Ok(Listed::of(Page::from_store(page, AppView::from)))
    }

    /// Get an app
    ///
    /// The operator may read any app; an app's key only its own (another app is 404).
    #[oai(path = "/apps/:app_id", method = "get", operation_id = "getApp")]
    async fn get_app(
        &self,
        auth: AdminAuth,
        app_id: Path<PathId<AppId>>,
    ) -> Result<Found<AppView>, ReadFails> {
        let app = self.state.scope(&auth, &app_id).await?;
        Ok(Found::of(self.state.store.get_app(app).await.about("app")?))
    }

    /// Rename an app
    ///
    /// The operator, or the app's own key.
    #[oai(path = "/apps/:app_id", method = "patch", operation_id = "renameApp")]
    async fn rename_app(
        &self,
        auth: AdminAuth,
        app_id: Path<PathId<AppId>>,
        body: JsonBody<RenameAppRequest>,
    ) -> Result<Changed<AppView>, WriteFails> {
        let app = self.state.scope(&auth, &app_id).await?;
        let name = parse_name(&body.name)?;
        Ok(Changed::of(
            self.state.store.rename_app(app, name).await.about("app")?,
        ))
    }

    /// Delete an app
    ///
    /// Deletes the app and everything it owns: keys, access levels, the ThriveCart
    /// integration and mappings, members with their grants and sessions, the activity log.
    /// Its webhook URL answers 404 and its keys 401 from then on, in every Larder process.
    /// Operator only: an app key gets 403 (another app's, 404).
    #[oai(path = "/apps/:app_id", method = "delete", operation_id = "deleteApp")]
    async fn delete_app(
        &self,
        auth: AdminAuth,
        app_id: Path<PathId<AppId>>,
    ) -> Result<Done, Fails<{ BAD_REQUEST | UNAUTHORIZED | FORBIDDEN | NOT_FOUND | SERVER }>> {
        let app = self.state.scope(&auth, &app_id).await?;
        auth.require_operator()?;
        let gone = self.state.store.delete_app(app).await.about("app")?;
        self.state.tenancy.app_deleted(app, &gone).await;
        tracing::info!(app_id = %app, "app deleted");
        Ok(Done::NoContent)
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
        app_id: Path<PathId<AppId>>,
        body: JsonBody<CreateApiKeyRequest>,
    ) -> Result<Created<CreatedApiKey>, WriteFails> {
        let app = self.state.scope(&auth, &app_id).await?;
        let key = secrets::generate_api_key();
        let new = NewApiKey {
            id: ApiKeyId::new(),
            app_id: app,
            name: parse_name(&body.name)?,
            key_hash: secrets::hash_token(&key),
        };
        let stored = self.state.store.create_api_key(new).await.about("app")?;
        Ok(Created::of(CreatedApiKey {
            id: stored.id.to_string(),
            name: stored.name,
            key,
            created_at: stored.created_at,
        }))
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
        app_id: Path<PathId<AppId>>,
        /// Page size, 1–200 (default 50).
        limit: Query<Option<PageLimit>>,
        /// `next_cursor` of the previous page.
        cursor: Query<Option<Cursor>>,
    ) -> Result<Listed<ApiKeyView>, ReadFails> {
        let app = self.state.scope(&auth, &app_id).await?;
        let page = page_request(limit.0, cursor.0);
        let page = self
            .state
            .store
            .list_api_keys(app, page)
            .await
            .about("app")?;
        Ok(Listed::of(Page::from_store(page, ApiKeyView::from)))
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
        app_id: Path<PathId<AppId>>,
        key_id: Path<PathId<ApiKeyId>>,
    ) -> Result<Done, ReadFails> {
        let app = self.state.scope(&auth, &app_id).await?;
        let hash = self
            .state
            .store
            .delete_api_key(app, **key_id)
            .await
            .about("API key")?;
        self.state.tenancy.api_key_revoked(&hash).await;
        Ok(Done::NoContent)
    }
}

impl poem_openapi::types::Example for CreateAppRequest {
    fn example() -> Self {
        Self {
            name: NameField("Acme Academy".into()),
        }
    }
}

impl poem_openapi::types::Example for RenameAppRequest {
    fn example() -> Self {
        Self {
            name: NameField("Acme Academy (EU)".into()),
        }
    }
}

impl poem_openapi::types::Example for CreateApiKeyRequest {
    fn example() -> Self {
        Self {
            name: NameField("setup script".into()),
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
