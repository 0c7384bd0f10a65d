//! The one error body every non-2xx answer carries, the stable codes it may hold, and the
//! mapping of every error Larder or poem can raise onto it.
//!
//! Each operation declares the error statuses it can answer with [`Fails`]: `Fails<{
//! BAD_REQUEST | UNAUTHORIZED | NOT_FOUND | INTERNAL | UNAVAILABLE }>` publishes exactly those
//! five in the OpenAPI document, each with the shared [`ErrorBody`].

use poem::http::StatusCode;
use poem::{IntoResponse, Response};
use poem_openapi::payload::Json;
use poem_openapi::registry::{
    MetaHeader, MetaMediaType, MetaResponse, MetaResponses, MetaSchema, MetaSchemaRef, Registry,
};
use poem_openapi::types::{ToJSON, Type};
use poem_openapi::{ApiResponse, Enum, Object};

use larder_store::StoreError;

/// The stable codes of [`ErrorBody::code`]. Each one always comes with the same status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Enum)]
#[oai(rename_all = "snake_case")]
pub enum ErrorCode {
    // 400
    InvalidJson,
    InvalidParameter,
    InvalidToken,
    InvalidPayload,
    BadRequest,
    // 401
    Unauthorized,
    InvalidCredentials,
    SecretMismatch,
    // 403
    Forbidden,
    // 404
    NotFound,
    // 405
    MethodNotAllowed,
    // 409
    Conflict,
    AccessLevelInUse,
    GrantManagedByThrivecart,
    NotReplayable,
    // 413
    PayloadTooLarge,
    // 415
    UnsupportedMediaType,
    // 422
    ValidationFailed,
    InvalidProduct,
    UnknownAccessLevel,
    WeakPassword,
    // 429
    RateLimited,
    // 500
    InternalError,
    // 503
    Unavailable,
}

impl ErrorCode {
    /// The status every answer with this code has.
    pub fn status(self) -> StatusCode {
        use ErrorCode::*;
        match self {
            InvalidJson | InvalidParameter | InvalidToken | InvalidPayload | BadRequest => {
                StatusCode::BAD_REQUEST
            }
            Unauthorized | InvalidCredentials | SecretMismatch => StatusCode::UNAUTHORIZED,
            Forbidden => StatusCode::FORBIDDEN,
            NotFound => StatusCode::NOT_FOUND,
            MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            Conflict | AccessLevelInUse | GrantManagedByThrivecart | NotReplayable => {
                StatusCode::CONFLICT
            }
            PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ValidationFailed | InvalidProduct | UnknownAccessLevel | WeakPassword => {
                StatusCode::UNPROCESSABLE_ENTITY
            }
            RateLimited => StatusCode::TOO_MANY_REQUESTS,
            InternalError => StatusCode::INTERNAL_SERVER_ERROR,
            Unavailable => StatusCode::SERVICE_UNAVAILABLE,
        }
    }
}

/// `{"code", "message", "field"?}`: `code` is stable snake_case for programs, `message` a
/// sentence for people, `field` names the input at fault when there is one.
#[derive(Debug, Clone, Object)]
#[oai(example)]
pub struct ErrorBody {
    pub code: ErrorCode,
    pub message: String,
    #[oai(skip_serializing_if_is_none)]
    pub field: Option<String>,
}

impl poem_openapi::types::Example for ErrorBody {
    fn example() -> Self {
        Self {
            code: ErrorCode::NotFound,
            message: "No such member in this app.".into(),
            field: None,
        }
    }
}

/// An error answer: its code (and so its status), a sentence, maybe the field at fault.
#[derive(Debug, Clone)]
pub struct ApiError {
    pub body: ErrorBody,
    /// Seconds to wait, sent as `Retry-After` (429 and 503).
    pub retry_after: Option<u64>,
}

impl ApiError {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            body: ErrorBody {
                code,
                message: message.into(),
                field: None,
            },
            retry_after: None,
        }
    }

    /// The same error, naming `field` as the input at fault.
    pub fn field(mut self, field: &str) -> Self {
        self.body.field = Some(field.to_owned());
        self
    }

    pub fn retry_after(mut self, seconds: u64) -> Self {
        self.retry_after = Some(seconds);
        self
    }

    pub fn status(&self) -> StatusCode {
        self.body.code.status()
    }

    pub fn unauthorized() -> Self {
        Self::new(ErrorCode::Unauthorized, "A valid bearer token is required.")
    }

    pub fn forbidden() -> Self {
        Self::new(ErrorCode::Forbidden, "Only the operator token may do this.")
    }

    /// 404 for a missing object of an app (another app's included): "No such member in this
    /// app." For `app` itself: "No such app."
    pub fn not_found(what: &str) -> Self {
        let message = if what == "app" {
            "No such app.".to_owned()
        } else {
            format!("No such {what} in this app.")
        };
        Self::new(ErrorCode::NotFound, message)
    }

    pub fn invalid_parameter(field: &str, message: impl Into<String>) -> Self {
        Self::new(ErrorCode::InvalidParameter, message).field(field)
    }

    pub fn invalid_json(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::InvalidJson, message)
    }

    /// 422 with `code`, naming `field`.
    pub fn validation(code: ErrorCode, field: &str, message: impl Into<String>) -> Self {
        Self::new(code, message).field(field)
    }

    pub fn validation_failed(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::ValidationFailed, message)
    }

    pub fn conflict(code: ErrorCode, message: impl Into<String>) -> Self {
        Self::new(code, message)
    }

    pub fn internal() -> Self {
        Self::new(ErrorCode::InternalError, "Internal error.")
    }

    pub fn unavailable() -> Self {
        Self::new(
            ErrorCode::Unavailable,
            "The service cannot reach its database right now; retry later.",
        )
    }

    pub fn unknown_access_level() -> Self {
        Self::validation(
            ErrorCode::UnknownAccessLevel,
            "access_level_id",
            "No access level with that id in this app.",
        )
    }

    /// Maps a store error, naming the object an operation was about.
    pub fn from_store(err: StoreError, what: &str) -> Self {
        match err {
            StoreError::NotFound => Self::not_found(what),
            StoreError::Conflict(thing) => {
                Self::conflict(ErrorCode::Conflict, format!("That {thing} already exists."))
            }
            StoreError::UnknownAccessLevel => Self::unknown_access_level(),
            StoreError::AccessLevelInUse => Self::conflict(
                ErrorCode::AccessLevelInUse,
                "The access level is still used by a mapping or a grant.",
            ),
            StoreError::GrantManagedByThrivecart => Self::conflict(
                ErrorCode::GrantManagedByThrivecart,
                "This grant comes from a ThriveCart purchase; refunds and cancellations \
                 revoke it. To take the level away whatever the purchases say, set an access \
                 override.",
            ),
            err @ StoreError::Unavailable(_) => {
                tracing::error!(error = %larder_store::causes(&err), "database unavailable");
                Self::unavailable()
            }
            err @ StoreError::Internal(_) => {
                tracing::error!(error = %larder_store::causes(&err), "database error");
                Self::internal()
            }
        }
    }
}

impl From<larder_tenancy::TenancyError> for ApiError {
    fn from(err: larder_tenancy::TenancyError) -> Self {
        match err {
            larder_tenancy::TenancyError::Store(err) => ApiError::from_store(err, "object"),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        let mut resp = Json(self.body).with_status(status).into_response();
        if let Some(seconds) = self.retry_after
            && let Ok(value) = seconds.to_string().parse()
        {
            resp.headers_mut()
                .insert(poem::http::header::RETRY_AFTER, value);
        }
        resp
    }
}

impl From<ApiError> for poem::Error {
    fn from(err: ApiError) -> Self {
        poem::Error::from_response(err.into_response())
    }
}

// --- statuses an operation declares -------------------------------------------------------

/// Malformed JSON, a bad parameter, an unusable token.
pub const BAD_REQUEST: u32 = 1 << 0;
/// No credentials, wrong ones, or a wrong secret word.
pub const UNAUTHORIZED: u32 = 1 << 1;
/// The token may not do this.
pub const FORBIDDEN: u32 = 1 << 2;
/// No such object in this app.
pub const NOT_FOUND: u32 = 1 << 3;
/// A duplicate, an object in use, or a state that forbids it.
pub const CONFLICT: u32 = 1 << 4;
/// The request body is too large.
pub const PAYLOAD_TOO_LARGE: u32 = 1 << 5;
/// The request body is not JSON.
pub const UNSUPPORTED_MEDIA_TYPE: u32 = 1 << 6;
/// A field is missing, mistyped or invalid.
pub const UNPROCESSABLE: u32 = 1 << 7;
/// Too many attempts.
pub const TOO_MANY_REQUESTS: u32 = 1 << 8;
/// Something went wrong on our side.
pub const INTERNAL: u32 = 1 << 9;
/// A database or cache is unreachable.
pub const UNAVAILABLE: u32 = 1 << 10;

/// What every operation with a JSON request body can answer besides its own errors.
pub const JSON_BODY: u32 = BAD_REQUEST | PAYLOAD_TOO_LARGE | UNSUPPORTED_MEDIA_TYPE | UNPROCESSABLE;
/// What every operation that reaches the database can answer.
pub const SERVER: u32 = INTERNAL | UNAVAILABLE;

/// Each declarable status: its bit, its code, and what it means.
const STATUSES: [(u32, u16, &str); 11] = [
    (
        BAD_REQUEST,
        400,
        "Malformed JSON, a bad query or path parameter, or an unusable token.",
    ),
    (
        UNAUTHORIZED,
        401,
        "No bearer token, or one that is wrong, expired or revoked.",
    ),
    (
        FORBIDDEN,
        403,
        "The token is valid but may not do this (an app key on an operator-only operation).",
    ),
    (
        NOT_FOUND,
        404,
        "No such object in this app (another app's objects included).",
    ),
    (
        CONFLICT,
        409,
        "A duplicate, an object still in use, or a state that does not allow this.",
    ),
    (PAYLOAD_TOO_LARGE, 413, "The request body is over 1 MiB."),
    (UNSUPPORTED_MEDIA_TYPE, 415, "The request body is not JSON."),
    (
        UNPROCESSABLE,
        422,
        "The body is well-formed JSON but a field is missing, unknown, mistyped or invalid.",
    ),
    (
        TOO_MANY_REQUESTS,
        429,
        "Too many attempts; retry after `Retry-After` seconds.",
    ),
    (
        INTERNAL,
        500,
        "Something went wrong on our side; the message says no more.",
    ),
    (
        UNAVAILABLE,
        503,
        "The database (or Redis) is unreachable right now; retry later.",
    ),
];

fn status_bit(status: StatusCode) -> u32 {
    STATUSES
        .iter()
        .find(|(_, code, _)| *code == status.as_u16())
        .map_or(0, |(bit, _, _)| *bit)
}

/// The documented error answers for the statuses in `set`, each with [`ErrorBody`].
pub fn error_responses(set: u32) -> Vec<MetaResponse> {
    STATUSES
        .iter()
        .filter(|(bit, _, _)| set & bit != 0)
        .map(|(_, status, description)| MetaResponse {
            description,
            status: Some(*status),
            status_range: None,
            content: vec![MetaMediaType {
                content_type: "application/json; charset=utf-8",
                schema: ErrorBody::schema_ref(),
            }],
            headers: if *status == 429 || *status == 503 {
                vec![MetaHeader {
                    name: "Retry-After".into(),
                    description: Some("Seconds to wait before trying again.".into()),
                    required: *status == 429,
                    deprecated: false,
                    schema: u64::schema_ref(),
                }]
            } else {
                Vec::new()
            },
        })
        .collect()
}

/// The errors an operation can answer: the statuses in `S` (a union of the constants above)
/// are what its OpenAPI document declares.
#[derive(Debug)]
pub struct Fails<const S: u32>(pub ApiError);

impl<const S: u32> From<ApiError> for Fails<S> {
    fn from(err: ApiError) -> Self {
        // An answer the document does not declare is a bug in the operation's set.
        debug_assert!(
            S & status_bit(err.status()) != 0,
            "{} answered but not declared: {:?}",
            err.status(),
            err.body
        );
        Fails(err)
    }
}

impl<const S: u32> ApiResponse for Fails<S> {
    fn meta() -> MetaResponses {
        MetaResponses {
            responses: error_responses(S),
        }
    }

    fn register(registry: &mut Registry) {
        ErrorBody::register(registry);
    }
}

impl<const S: u32> IntoResponse for Fails<S> {
    fn into_response(self) -> Response {
        self.0.into_response()
    }
}

impl<const S: u32> From<Fails<S>> for poem::Error {
    fn from(err: Fails<S>) -> Self {
        err.0.into()
    }
}

/// A `null`-able string schema with a description, for hand-written schemas.
pub fn nullable_string(description: &'static str) -> MetaSchemaRef {
    MetaSchemaRef::Inline(Box::new(MetaSchema {
        description: Some(description),
        nullable: true,
        ..MetaSchema::new("string")
    }))
}

/// JSON of a value, for hand-written `ToJSON` impls.
pub fn to_json<T: ToJSON>(value: &T) -> serde_json::Value {
    value.to_json().unwrap_or_default()
}

/// Turns any error that reached the edge of the service into the shared error body:
/// Larder's own errors pass through, poem's and poem-openapi's get a code and a sentence.
/// `allow` lists the methods of the path for a 405.
pub fn error_response(err: poem::Error, allow: Option<&str>) -> Response {
    use poem_openapi::error::{
        AuthorizationError, ContentTypeError, ParseParamError, ParsePathError,
        ParseRequestPayloadError,
    };

    if err.is_from_response() {
        return err.into_response();
    }
    let status = err.status();
    let error = if err.is::<AuthorizationError>() {
        ApiError::unauthorized()
    } else if let Some(e) = err.downcast_ref::<ParseParamError>() {
        ApiError::invalid_parameter(e.name, parameter_message(e.name, &e.reason))
    } else if let Some(e) = err.downcast_ref::<ParsePathError>() {
        ApiError::invalid_parameter(e.name, parameter_message(e.name, &e.reason))
    } else if err.is::<ParseRequestPayloadError>() {
        ApiError::invalid_json("The request body is not valid JSON.")
    } else if let Some(e) = err.downcast_ref::<ContentTypeError>() {
        ApiError::new(
            ErrorCode::UnsupportedMediaType,
            match e {
                ContentTypeError::NotSupported { .. } => {
                    "The request body must be JSON (Content-Type: application/json)."
                }
                ContentTypeError::ExpectContentType => "The request needs a Content-Type header.",
            },
        )
    } else {
        match status {
            StatusCode::NOT_FOUND => ApiError::new(ErrorCode::NotFound, "No such endpoint."),
            StatusCode::METHOD_NOT_ALLOWED => ApiError::new(
                ErrorCode::MethodNotAllowed,
                "This endpoint does not answer that method.",
            ),
            StatusCode::PAYLOAD_TOO_LARGE => {
                ApiError::new(ErrorCode::PayloadTooLarge, "The request body is too large.")
            }
            s if s.is_server_error() => {
                tracing::error!(error = %err, "request failed");
                ApiError::internal()
            }
            _ => ApiError::new(ErrorCode::BadRequest, "The request is malformed."),
        }
    };
    let mut resp = error.into_response();
    if status == StatusCode::METHOD_NOT_ALLOWED
        && let Some(allow) = allow
        && let Ok(value) = allow.parse()
    {
        resp.headers_mut().insert(poem::http::header::ALLOW, value);
    }
    resp
}

/// A parameter's problem as a sentence. Larder's own parameter types give reasons that read
/// on after the name (`is not a valid id`), which poem-openapi wraps as `failed to parse
/// "<type>": <reason>`, maybe followed by ` (occurred while parsing "<type>")`; poem's own
/// reasons (validator rules, type names) are not for people, so they get a plain one.
fn parameter_message(name: &str, reason: &str) -> String {
    let ours = reason
        .strip_prefix("failed to parse \"")
        .and_then(|rest| rest.split_once("\": "))
        .map(|(_, rest)| {
            rest.split(" (occurred while parsing")
                .next()
                .unwrap_or(rest)
        })
        .filter(|r| r.starts_with("is ") || r.starts_with("must "));
    match ours {
        Some(reason) => format!("`{name}` {reason}."),
        None => format!("`{name}` is not a valid value for this parameter."),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parameter_messages_keep_our_reasons_and_drop_poems() {
        assert_eq!(
            parameter_message(
                "limit",
                "failed to parse \"page_limit\": must be a whole number from 1 to 200 \
                 (occurred while parsing \"optional_page_limit\")"
            ),
            "`limit` must be a whole number from 1 to 200."
        );
        assert_eq!(
            parameter_message("app_id", "failed to parse \"string_id\": is not a valid id"),
            "`app_id` is not a valid id."
        );
        assert_eq!(
            parameter_message("x", "verification failed. maximum(200, exclusive: false)"),
            "`x` is not a valid value for this parameter."
        );
    }
}
