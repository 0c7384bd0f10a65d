//! Bearer authentication and tenant scoping for admin operations.

use larder_access::AppId;
use larder_api_common::{About, ApiError};
use larder_store::Store;
use larder_tenancy::{Principal, Tenancy};
use poem::Request;
use poem_openapi::SecurityScheme;
use poem_openapi::auth::Bearer;

/// `Authorization: Bearer <token>`: the operator token, or an app's API key.
#[derive(Debug, SecurityScheme)]
#[oai(ty = "bearer", checker = "check_bearer")]
pub struct AdminAuth(pub Principal);

async fn check_bearer(req: &Request, bearer: Bearer) -> poem::Result<Principal> {
    let tenancy = req
        .data::<Tenancy>()
        .ok_or_else(|| poem::Error::from_status(poem::http::StatusCode::INTERNAL_SERVER_ERROR))?;
    match tenancy.authenticate(&bearer.token).await {
        Ok(Some(principal)) => Ok(principal),
        Ok(None) => Err(ApiError::unauthorized().into()),
        Err(err) => Err(ApiError::from(err).into()),
    }
}

impl AdminAuth {
    /// Only the operator may go on; an app key gets 403.
    pub fn require_operator(&self) -> Result<(), ApiError> {
        match self.0 {
            Principal::Operator => Ok(()),
            Principal::App { .. } => Err(ApiError::forbidden()),
        }
    }

    /// The app an app-scoped operation acts on: 404 when the caller may not see it (another
    /// app's key) or it does not exist.
    pub async fn app(&self, store: &dyn Store, app: AppId) -> Result<AppId, ApiError> {
        match self.0 {
            Principal::App { app_id, .. } if app_id == app => Ok(app),
            Principal::App { .. } => Err(ApiError::not_found("app")),
            Principal::Operator => {
                // The operator may name any app, so make sure it exists: a list of a
                // missing app's keys is a 404, not an empty list.
                store.get_app(app).await.about("app")?;
                Ok(app)
            }
        }
    }
}
