//! Larder's ThriveCart webhook gateway.
//!
//! ThriveCart checks a webhook URL with a `HEAD` (or `GET`) before it saves it: the URL of
//! an enabled integration answers 200, any other 404. Deliveries (`POST`) are issue #3.
//! Tokens are resolved through [`Tenancy`], so a burst of requests, or a scan of random
//! URLs, is answered from the cache.

pub mod decode;

use larder_tenancy::Tenancy;
use poem::http::StatusCode;
use poem::web::{Data, Json, Path};
use poem::{IntoResponse, Response, RouteMethod, get, handler};

/// The operation name webhook verification is counted under.
pub const VERIFY_OPERATION: &str = "verifyThriveCartWebhook";

/// Where the webhook endpoint is mounted.
pub const WEBHOOK_PATH: &str = "/webhooks/thrivecart/:token";

/// The endpoint at [`WEBHOOK_PATH`]; it needs a [`Tenancy`] in the request data.
pub fn webhook_endpoint() -> RouteMethod {
    get(verify_webhook_url).head(verify_webhook_url)
}

/// 200 while the token's integration is enabled, 404 otherwise.
#[handler]
async fn verify_webhook_url(Path(token): Path<String>, tenancy: Data<&Tenancy>) -> Response {
    match tenancy.resolve_webhook_token(&token).await {
        Ok(Some(live)) => {
            tracing::debug!(app_id = %live.app_id, "webhook URL verified");
            Json(serde_json::json!({"status": "enabled"})).into_response()
        }
        Ok(None) => error(
            StatusCode::NOT_FOUND,
            "not_found",
            "No enabled ThriveCart integration has this webhook URL.",
        ),
        Err(err) => {
            tracing::error!(error = %err, "webhook token lookup failed");
            error(
                StatusCode::SERVICE_UNAVAILABLE,
                "unavailable",
                "The service cannot reach its database right now; retry later.",
            )
        }
    }
}

fn error(status: StatusCode, code: &str, message: &str) -> Response {
    Json(serde_json::json!({"code": code, "message": message}))
        .with_status(status)
        .into_response()
}
