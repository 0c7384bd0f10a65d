//! Bearer authentication and tenant scoping for admin operations.

use larder_access::AppId;
use larder_tenancy::{Principal, Tenancy};
use poem::Request;
use poem_openapi::SecurityScheme;
use poem_openapi::auth::Bearer;

use larder_api_common::ApiError;

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

    /// The app an app-scoped operation acts on: 400 for a malformed id, 404 when the
    /// caller may not see it (another app's key) or it does not exist.
    pub async fn app(&self, tenancy: &Tenancy, app_id: &str) -> Result<AppId, ApiError> {
        let app: AppId = app_id
            .parse()
            .map_err(|_| ApiError::invalid_parameter("app_id", "`app_id` is not a valid id."))?;
        match self.0 {
            Principal::App { app_id, .. } if app_id == app => Ok(app),
            Principal::App { .. } => Err(ApiError::not_found("app")),
            Principal::Operator => {
                // The operator may name any app, so make sure it exists: a list of a
                // missing app's keys is a 404, not an empty list.
                tenancy
                    .store()
                    .get_app(app)
                    .await
                    .map_err(|e| ApiError::from_store(e, "app"))?;
                Ok(app)
            }
        }
    }
}

/// Parses an id from a path segment: 400 `invalid_parameter` when it is not one.
pub fn parse_id<T: std::str::FromStr>(raw: &str, field: &str) -> Result<T, ApiError> {
    raw.parse()
        .map_err(|_| ApiError::invalid_parameter(field, format!("`{field}` is not a valid id.")))
}
