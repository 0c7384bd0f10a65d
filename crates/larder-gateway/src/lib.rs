//! Larder's ThriveCart webhook gateway.
//!
//! ThriveCart checks a webhook URL with a `HEAD` (or `GET`) before it saves it: the URL of
//! an enabled integration answers 200, any other 404. Deliveries are `POST`ed to the same
//! URL and handled by [`Gateway::receive_for`], a plain service; [`WebhookApi`] is the thin
//! poem-openapi edge in front of it, so the webhook is part of the OpenAPI document like
//! every other operation. Tokens are resolved through [`larder_tenancy::Tenancy`] before the
//! body is read, so a burst of requests, or a scan of random URLs, is answered from the
//! cache and costs no body read.

mod batcher;
pub mod decode;
mod intake;

pub use intake::{
    Gateway, Refusal, ReplayError, Reply, UNVERIFIED_RECORDS_PER_WINDOW, UNVERIFIED_WINDOW,
};

use larder_api_common::ErrorCode;
use larder_store::DeliveryStatus;
use poem::{IntoResponse, Request, RequestBody, Response};
use poem_openapi::param::Path;
use poem_openapi::payload::Json;
use poem_openapi::registry::{
    MetaMediaType, MetaRequest, MetaResponse, MetaResponses, MetaSchema, MetaSchemaRef, Registry,
};
use poem_openapi::types::Type;
use poem_openapi::{
    ApiExtractor, ApiExtractorType, ApiResponse, Enum, ExtractParamOptions, Object, OpenApi, Tags,
};

/// The `Retry-After` of a 503: when the database is back is not known; a few seconds is a
/// fair first guess, and ThriveCart keeps its own schedule anyway.
pub const UNAVAILABLE_RETRY_AFTER: u64 = 5;

/// Largest delivery body read (413 beyond).
pub const MAX_WEBHOOK_BODY_BYTES: usize = 1024 * 1024;

#[derive(Tags)]
enum Tag {
    /// ThriveCart posts every purchase event of an app to the app's webhook URL.
    Webhooks,
}

/// Whether a webhook URL is live.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Enum)]
#[oai(rename_all = "snake_case")]
pub enum WebhookState {
    Enabled,
}

/// The answer to a webhook URL check.
#[derive(Debug, Object)]
pub struct WebhookStatus {
    pub status: WebhookState,
}

/// What a recorded delivery became.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Enum)]
#[oai(rename_all = "snake_case")]
pub enum ReceiptStatus {
    /// It changed access.
    Applied,
    /// A repeat of a delivery already processed; nothing changed.
    Duplicate,
    /// None of its products is mapped; replay it after mapping one.
    Unmapped,
    /// Valid, but it changes nothing (the activity entry says why).
    Ignored,
    /// A POST without an event: ThriveCart checking the URL.
    Ping,
}

/// A delivery durably recorded.
#[derive(Debug, Object)]
#[oai(example)]
pub struct DeliveryReceipt {
    pub status: ReceiptStatus,
    /// The id of its activity entry.
    pub delivery_id: String,
}

impl poem_openapi::types::Example for DeliveryReceipt {
    fn example() -> Self {
        Self {
            status: ReceiptStatus::Applied,
            delivery_id: "01a21af4-c5d8-7242-a47f-2353fee99c4f".into(),
        }
    }
}

/// A delivery not accepted: the shared error body, plus the activity entry that recorded the
/// refusal when there is one.
#[derive(Debug, Object)]
pub struct WebhookError {
    pub code: ErrorCode,
    pub message: String,
    /// The activity entry recording this refusal (absent for 404, 413 and 503).
    #[oai(skip_serializing_if_is_none)]
    pub delivery_id: Option<String>,
}

/// The schema names of a delivery in each encoding.
const JSON_DELIVERY: &str = "ThriveCartDelivery";
const FORM_DELIVERY: &str = "ThriveCartDeliveryForm";

/// Registers the schema of a delivery in one encoding: documented rather than enforced,
/// since the fields vary by event and every other field is allowed.
/// Any other field is allowed; the JSON schema says so explicitly (`additionalProperties:
/// {}`), which generators need to keep the rest of a delivery. The form schema does not:
/// generators refuse form fields they cannot name.
fn register_delivery<T>(
    registry: &mut Registry,
    name: &'static str,
    encoding: &'static str,
    open: bool,
) {
    registry.create_schema::<T, _>(name.into(), |_| {
        let text = |description: &'static str| {
            MetaSchemaRef::Inline(Box::new(MetaSchema {
                description: Some(description),
                ..MetaSchema::new("string")
            }))
        };
        MetaSchema {
            title: Some(name.into()),
            description: Some(encoding),
            properties: vec![
                (
                    "event",
                    text("`order.success`, `order.refund`, `order.subscription_cancelled`…"),
                ),
                (
                    "thrivecart_secret",
                    text("The account's secret word; checked, never stored."),
                ),
                ("mode", text("`live` or `test`.")),
                ("order_id", text("ThriveCart's order id.")),
            ],
            additional_properties: open
                .then(|| Box::new(MetaSchemaRef::Inline(Box::new(MetaSchema::ANY)))),
            ..MetaSchema::new("object")
        }
    });
}

/// Marks the JSON schema of a delivery in the registry.
struct JsonDelivery;
/// Marks the form schema of a delivery in the registry.
struct FormDelivery;

/// The body of a delivery, not read yet: the token is resolved first, so an unknown URL
/// costs no read of what was sent to it.
#[derive(Debug)]
pub struct DeliveryBody {
    content_type: Option<String>,
    declared_len: Option<u64>,
    body: poem::Body,
}

impl DeliveryBody {
    /// Reads the body, up to [`MAX_WEBHOOK_BODY_BYTES`].
    async fn read(self) -> Result<(Option<String>, bytes::Bytes), Reply> {
        if self
            .declared_len
            .is_some_and(|len| len > MAX_WEBHOOK_BODY_BYTES as u64)
        {
            return Err(Reply::too_large());
        }
        match self.body.into_bytes_limit(MAX_WEBHOOK_BODY_BYTES).await {
            Ok(bytes) => Ok((self.content_type, bytes)),
            Err(poem::error::ReadBodyError::PayloadTooLarge) => Err(Reply::too_large()),
            // The client went away or sent a broken body: nothing to record.
            Err(_) => Err(Reply::Refused {
                refusal: Refusal::InvalidPayload,
                message: "The body could not be read.".into(),
                delivery_id: None,
            }),
        }
    }
}

impl<'a> ApiExtractor<'a> for DeliveryBody {
    const TYPES: &'static [ApiExtractorType] = &[ApiExtractorType::RequestObject];

    type ParamType = ();
    type ParamRawType = ();

    fn register(registry: &mut Registry) {
        register_delivery::<JsonDelivery>(
            registry,
            JSON_DELIVERY,
            "A ThriveCart delivery as JSON (\"Receive results as JSON\"): every scalar a \
             string (`\"null\"` means absent), nested objects as ThriveCart nests them. The \
             fields vary by event and every other field is allowed; these are the ones \
             Larder reads first. Without `event` it is a ping.",
            true,
        );
        register_delivery::<FormDelivery>(
            registry,
            FORM_DELIVERY,
            "A ThriveCart delivery as a form (ThriveCart's default): PHP bracket keys for \
             nesting (`customer[email]`, `order[charges][0][name]`). The fields vary by \
             event and every other field is allowed; these are the ones Larder reads \
             first. Without `event` it is a ping.",
            false,
        );
    }

    fn request_meta() -> Option<MetaRequest> {
        Some(MetaRequest {
            description: Some(
                "The delivery, in either encoding ThriveCart uses: JSON (\"Receive results as \
                 JSON\") or a form (the default), or as a multipart form, read like the \
                 form. The body is read whatever its `Content-Type`, which may be missing or \
                 wrong; its form tells.",
            ),
            content: vec![
                MetaMediaType {
                    content_type: "application/json",
                    schema: MetaSchemaRef::Reference(JSON_DELIVERY.into()),
                },
                MetaMediaType {
                    content_type: "application/x-www-form-urlencoded",
                    schema: MetaSchemaRef::Reference(FORM_DELIVERY.into()),
                },
                MetaMediaType {
                    content_type: "multipart/form-data",
                    schema: MetaSchemaRef::Reference(FORM_DELIVERY.into()),
                },
            ],
            required: false,
        })
    }

    async fn from_request(
        request: &'a Request,
        body: &mut RequestBody,
        _param_opts: ExtractParamOptions<Self::ParamType>,
    ) -> poem::Result<Self> {
        Ok(Self {
            content_type: request.content_type().map(str::to_owned),
            declared_len: request
                .header(poem::http::header::CONTENT_LENGTH)
                .and_then(|v| v.parse().ok()),
            body: body.take().unwrap_or_else(|_| poem::Body::empty()),
        })
    }
}

fn error_code(refusal: Refusal) -> ErrorCode {
    match refusal {
        Refusal::NotFound => ErrorCode::NotFound,
        Refusal::SecretMismatch => ErrorCode::SecretMismatch,
        Refusal::InvalidPayload => ErrorCode::InvalidPayload,
        Refusal::PayloadTooLarge => ErrorCode::PayloadTooLarge,
        Refusal::TooManyRequests => ErrorCode::RateLimited,
        Refusal::Unavailable | Refusal::Failed => ErrorCode::Unavailable,
    }
}

fn receipt_status(status: DeliveryStatus) -> ReceiptStatus {
    match status {
        DeliveryStatus::Applied => ReceiptStatus::Applied,
        DeliveryStatus::Duplicate => ReceiptStatus::Duplicate,
        DeliveryStatus::Unmapped => ReceiptStatus::Unmapped,
        DeliveryStatus::Ping => ReceiptStatus::Ping,
        DeliveryStatus::Ignored => ReceiptStatus::Ignored,
        // Refusals are answered with an error, never a receipt; were one to get here,
        // "ignored" is the honest word for it.
        DeliveryStatus::Rejected | DeliveryStatus::Invalid | DeliveryStatus::Failed => {
            ReceiptStatus::Ignored
        }
    }
}

/// The answer to a delivery, as JSON.
#[derive(Debug)]
pub struct Receipt(pub Reply);

const RECEIPT_ERRORS: [(u16, &str); 6] = [
    (
        400,
        "`invalid_payload`: the body cannot be decoded, or a known event lacks what it needs \
         (recorded as `invalid`).",
    ),
    (
        401,
        "`secret_mismatch`: the app has a secret word and the delivery's `thrivecart_secret` \
         differs or is missing (recorded as `rejected`, with only the start of the body, \
         within the app's budget of 30 unverified deliveries a minute; pings are exempt).",
    ),
    (404, "`not_found`: no enabled integration has this URL."),
    (413, "`payload_too_large`: the body is over 1 MiB."),
    (
        429,
        "`rate_limited`: a ping without the app's secret word beyond the app's budget of \
         unverified deliveries (30 a minute); not recorded. Retry after `Retry-After` \
         seconds. A ping carrying the secret word is always recorded and answered 200.",
    ),
    (
        503,
        "`unavailable`: the delivery could not be recorded or applied; nothing of it was \
         kept, so ThriveCart should retry.",
    ),
];

impl ApiResponse for Receipt {
    fn meta() -> MetaResponses {
        let mut responses = vec![MetaResponse {
            description: "The delivery is durably recorded; `status` says what it became.",
            status: Some(200),
            status_range: None,
            content: vec![MetaMediaType {
                content_type: "application/json; charset=utf-8",
                schema: DeliveryReceipt::schema_ref(),
            }],
            headers: Vec::new(),
        }];
        responses.extend(
            RECEIPT_ERRORS
                .iter()
                .map(|(status, description)| MetaResponse {
                    description,
                    status: Some(*status),
                    status_range: None,
                    content: vec![MetaMediaType {
                        content_type: "application/json; charset=utf-8",
                        schema: WebhookError::schema_ref(),
                    }],
                    headers: if *status == 429 || *status == 503 {
                        vec![poem_openapi::registry::MetaHeader {
                            name: "Retry-After".into(),
                            description: Some("Seconds to wait before trying again.".into()),
                            required: true,
                            deprecated: false,
                            schema: u64::schema_ref(),
                        }]
                    } else {
                        Vec::new()
                    },
                }),
        );
        MetaResponses { responses }
    }

    fn register(registry: &mut Registry) {
        DeliveryReceipt::register(registry);
        WebhookError::register(registry);
    }
}

impl IntoResponse for Receipt {
    fn into_response(self) -> Response {
        let reply = self.0;
        let status = reply.status();
        match reply {
            Reply::Recorded {
                status,
                delivery_id,
            } => Json(DeliveryReceipt {
                status: receipt_status(status),
                delivery_id: delivery_id.to_string(),
            })
            .into_response(),
            Reply::Refused {
                refusal,
                message,
                delivery_id,
            } => {
                let mut resp = Json(WebhookError {
                    code: error_code(refusal),
                    message,
                    delivery_id: delivery_id.map(|id| id.to_string()),
                })
                .with_status(status)
                .into_response();
                let retry_after = match refusal {
                    Refusal::TooManyRequests => Some(UNVERIFIED_WINDOW.as_secs()),
                    Refusal::Unavailable | Refusal::Failed => Some(UNAVAILABLE_RETRY_AFTER),
                    _ => None,
                };
                if let Some(seconds) = retry_after {
                    resp.headers_mut().insert(
                        poem::http::header::RETRY_AFTER,
                        poem::http::HeaderValue::from(seconds),
                    );
                }
                resp
            }
        }
    }
}

/// The answer to a webhook URL check.
#[derive(Debug, ApiResponse)]
pub enum CheckReply {
    /// The URL belongs to an enabled integration.
    #[oai(status = 200)]
    Enabled(Json<WebhookStatus>),
    /// No enabled ThriveCart integration has this URL.
    #[oai(status = 404)]
    NotFound(Json<WebhookError>),
    /// The URL could not be looked up right now; retry later.
    #[oai(status = 503)]
    Unavailable(Json<WebhookError>),
}

/// The answer to a HEAD check of a webhook URL: the status alone.
#[derive(Debug, ApiResponse)]
pub enum HeadReply {
    /// The URL belongs to an enabled integration.
    #[oai(status = 200)]
    Enabled,
    /// No enabled ThriveCart integration has this URL.
    #[oai(status = 404)]
    NotFound,
    /// The URL could not be looked up right now; retry later.
    #[oai(status = 503)]
    Unavailable,
}

impl From<CheckReply> for HeadReply {
    fn from(reply: CheckReply) -> Self {
        match reply {
            CheckReply::Enabled(_) => HeadReply::Enabled,
            CheckReply::NotFound(_) => HeadReply::NotFound,
            CheckReply::Unavailable(_) => HeadReply::Unavailable,
        }
    }
}

/// The webhook endpoint, as an OpenAPI service.
#[derive(Debug, Clone)]
pub struct WebhookApi {
    pub gateway: Gateway,
}

impl WebhookApi {
    async fn check(&self, token: &str) -> CheckReply {
        match self.gateway.resolve(token).await {
            Ok(live) => {
                tracing::debug!(app_id = %live.app_id, "webhook URL verified");
                CheckReply::Enabled(Json(WebhookStatus {
                    status: WebhookState::Enabled,
                }))
            }
            Err(Reply::Refused {
                refusal, message, ..
            }) => {
                let body = Json(WebhookError {
                    code: error_code(refusal),
                    message,
                    delivery_id: None,
                });
                match refusal {
                    Refusal::NotFound => CheckReply::NotFound(body),
                    _ => CheckReply::Unavailable(body),
                }
            }
            Err(Reply::Recorded { .. }) => CheckReply::Unavailable(Json(WebhookError {
                code: ErrorCode::Unavailable,
                message: "The URL could not be checked; retry later.".into(),
                delivery_id: None,
            })),
        }
    }
}

#[OpenApi(tag = "Tag::Webhooks")]
impl WebhookApi {
    /// Check a webhook URL (GET)
    ///
    /// 200 while the token's integration is enabled, 404 otherwise. ThriveCart checks a URL
    /// before it saves it.
    #[oai(
        path = "/webhooks/thrivecart/:token",
        method = "get",
        operation_id = "verifyThriveCartWebhook"
    )]
    async fn verify(
        &self,
        /// The last segment of the app's webhook URL.
        token: Path<String>,
    ) -> CheckReply {
        self.check(&token).await
    }

    /// Check a webhook URL (HEAD)
    ///
    /// As the GET, without a body: ThriveCart's own check of a URL.
    #[oai(
        path = "/webhooks/thrivecart/:token",
        method = "head",
        operation_id = "checkThriveCartWebhook"
    )]
    async fn check_head(
        &self,
        /// The last segment of the app's webhook URL.
        token: Path<String>,
    ) -> HeadReply {
        self.check(&token).await.into()
    }

    /// Receive a ThriveCart delivery
    ///
    /// Every delivery to an enabled URL is recorded in the app's activity log, whatever
    /// becomes of it, before it is answered: 200 only once it is durably recorded. A POST
    /// without `event` is a ping (ThriveCart checking the URL), answered 200 whatever
    /// secret it carries.
    #[oai(
        path = "/webhooks/thrivecart/:token",
        method = "post",
        operation_id = "receiveThriveCartWebhook"
    )]
    async fn receive(
        &self,
        /// The last segment of the app's webhook URL.
        token: Path<String>,
        body: DeliveryBody,
    ) -> Receipt {
        let read = async {
            let live = self.gateway.resolve(&token).await?;
            let (content_type, bytes) = body.read().await?;
            Ok::<_, Reply>((live, content_type, bytes))
        };
        let (live, content_type, bytes) = match read.await {
            Ok(read) => read,
            Err(reply) => {
                self.gateway.count_unread(&reply);
                return Receipt(reply);
            }
        };
        Receipt(
            self.gateway
                .receive_for(&live, content_type.as_deref(), &bytes)
                .await,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use poem_openapi::types::ToJSON;

    #[test]
    fn refusal_codes_are_the_error_codes() {
        for refusal in [
            Refusal::NotFound,
            Refusal::SecretMismatch,
            Refusal::InvalidPayload,
            Refusal::PayloadTooLarge,
            Refusal::TooManyRequests,
            Refusal::Unavailable,
            Refusal::Failed,
        ] {
            assert_eq!(
                error_code(refusal).to_json(),
                Some(refusal.code().into()),
                "{refusal:?}"
            );
        }
        for status in [
            DeliveryStatus::Applied,
            DeliveryStatus::Duplicate,
            DeliveryStatus::Unmapped,
            DeliveryStatus::Ignored,
            DeliveryStatus::Ping,
        ] {
            assert_eq!(
                receipt_status(status).to_json(),
                Some(status.as_str().into())
            );
        }
    }
}
