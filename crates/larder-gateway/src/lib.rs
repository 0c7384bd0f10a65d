//! Larder's ThriveCart webhook gateway.
//!
//! ThriveCart checks a webhook URL with a `HEAD` (or `GET`) before it saves it: the URL of
//! an enabled integration answers 200, any other 404. Deliveries are `POST`ed to the same
//! URL and handled by [`Gateway::receive`]. Tokens are resolved through [`Tenancy`], so a
//! burst of requests, or a scan of random URLs, is answered from the cache.

pub mod decode;
mod intake;

pub use intake::{Gateway, ReplayError, Reply};

use larder_tenancy::Tenancy;
use poem::http::StatusCode;
use poem::web::{Data, Json, Path};
use poem::{IntoResponse, Response, RouteMethod, get, handler};

/// The operation name webhook verification is counted under.
pub const VERIFY_OPERATION: &str = "verifyThriveCartWebhook";
/// The operation name deliveries are counted under.
pub const RECEIVE_OPERATION: &str = "receiveThriveCartWebhook";

/// The outcome of a delivery (`applied`, `duplicate`… or an error code), attached to the
/// response so the server can count deliveries by outcome.
#[derive(Debug, Clone)]
pub struct DeliveryOutcome(pub String);

/// Largest delivery body read (413 beyond).
pub const MAX_WEBHOOK_BODY_BYTES: usize = 1024 * 1024;

/// Where the webhook endpoint is mounted.
pub const WEBHOOK_PATH: &str = "/webhooks/thrivecart/:token";

/// The endpoint at [`WEBHOOK_PATH`]; it needs a [`Tenancy`] and a [`Gateway`] in the
/// request data.
pub fn webhook_endpoint() -> RouteMethod {
    get(verify_webhook_url)
        .head(verify_webhook_url)
        .post(receive_delivery)
}

#[handler]
async fn receive_delivery(
    Path(token): Path<String>,
    req: &poem::Request,
    body: poem::Body,
    gateway: Data<&Gateway>,
) -> Response {
    let bytes = match body.into_bytes_limit(MAX_WEBHOOK_BODY_BYTES).await {
        Ok(bytes) => bytes,
        Err(poem::error::ReadBodyError::PayloadTooLarge) => {
            return error(
                StatusCode::PAYLOAD_TOO_LARGE,
                "payload_too_large",
                "The delivery is larger than 1 MiB.",
            );
        }
        Err(_) => {
            return error(
                StatusCode::BAD_REQUEST,
                "invalid_payload",
                "The body could not be read.",
            );
        }
    };
    let reply = gateway.receive(&token, req.content_type(), &bytes).await;
    let outcome = reply.body["status"]
        .as_str()
        .or(reply.body["code"].as_str())
        .unwrap_or("unknown")
        .to_owned();
    let mut resp = Json(reply.body)
        .with_status(
            StatusCode::from_u16(reply.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
        )
        .into_response();
    resp.set_data(DeliveryOutcome(outcome));
    resp
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
