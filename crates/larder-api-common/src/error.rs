//! The one error body every non-2xx answer carries, and the mapping of every error Larder
//! or poem can raise onto it.

use poem::http::StatusCode;
use poem::{IntoResponse, Response};
use poem_openapi::payload::Json;
use poem_openapi::{ApiResponse, Object};

use larder_store::StoreError;

/// `{"code", "message", "field"?}`: `code` is stable snake_case for programs, `message` a
/// sentence for people, `field` names the input at fault when there is one.
#[derive(Debug, Clone, Object, serde::Serialize)]
#[oai(example)]
pub struct ErrorBody {
    pub code: String,
    pub message: String,
    #[oai(skip_serializing_if_is_none)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
}

impl poem_openapi::types::Example for ErrorBody {
    fn example() -> Self {
        Self {
            code: "not_found".into(),
            message: "No such object in this app.".into(),
            field: None,
        }
    }
}

/// Every error an admin operation can answer with.
#[derive(Debug, ApiResponse)]
pub enum ApiError {
    /// Malformed JSON, or a bad query or path parameter.
    #[oai(status = 400)]
    BadRequest(Json<ErrorBody>),
    /// No bearer token, or one that is wrong or revoked.
    #[oai(status = 401)]
    Unauthorized(Json<ErrorBody>),
    /// The token is valid but may not do this (an app key on an operator-only endpoint).
    #[oai(status = 403)]
    Forbidden(Json<ErrorBody>),
    /// No such object in this app (another app's objects included).
    #[oai(status = 404)]
    NotFound(Json<ErrorBody>),
    /// A duplicate, or an object still in use.
    #[oai(status = 409)]
    Conflict(Json<ErrorBody>),
    /// The request body is over 1 MiB.
    #[oai(status = 413)]
    PayloadTooLarge(Json<ErrorBody>),
    /// The request body is not JSON.
    #[oai(status = 415)]
    UnsupportedMediaType(Json<ErrorBody>),
    /// The body is well-formed JSON but a field is missing, mistyped or invalid.
    #[oai(status = 422)]
    Unprocessable(Json<ErrorBody>),
    /// Something went wrong on our side; the message says no more.
    #[oai(status = 500)]
    Internal(Json<ErrorBody>),
    /// The database is unreachable right now; retry later.
    #[oai(status = 503)]
    Unavailable(Json<ErrorBody>),
}

fn body(code: &str, message: impl Into<String>, field: Option<&str>) -> Json<ErrorBody> {
    Json(ErrorBody {
        code: code.to_owned(),
        message: message.into(),
        field: field.map(str::to_owned),
    })
}

impl ApiError {
    pub fn unauthorized() -> Self {
        ApiError::Unauthorized(body(
            "unauthorized",
            "A valid bearer token is required.",
            None,
        ))
    }

    pub fn forbidden() -> Self {
        ApiError::Forbidden(body(
            "forbidden",
            "Only the operator token may do this.",
            None,
        ))
    }

    pub fn not_found(what: &str) -> Self {
        ApiError::NotFound(body(
            "not_found",
            format!("No such {what} in this app."),
            None,
        ))
    }

    pub fn invalid_parameter(field: &str, message: impl Into<String>) -> Self {
        ApiError::BadRequest(body("invalid_parameter", message, Some(field)))
    }

    pub fn invalid_json(message: impl Into<String>) -> Self {
        ApiError::BadRequest(body("invalid_json", message, None))
    }

    pub fn validation(code: &str, field: &str, message: impl Into<String>) -> Self {
        ApiError::Unprocessable(body(code, message, Some(field)))
    }

    pub fn validation_failed(message: impl Into<String>) -> Self {
        ApiError::Unprocessable(body("validation_failed", message, None))
    }

    pub fn conflict(code: &str, message: impl Into<String>) -> Self {
        ApiError::Conflict(body(code, message, None))
    }

    pub fn internal() -> Self {
        ApiError::Internal(body("internal_error", "Internal error.", None))
    }

    pub fn unavailable() -> Self {
        ApiError::Unavailable(body(
            "unavailable",
            "The service cannot reach its database right now; retry later.",
            None,
        ))
    }

    /// Maps a store error, naming the object an operation was about.
    pub fn from_store(err: StoreError, what: &str) -> Self {
        match err {
            StoreError::NotFound => ApiError::not_found(what),
            StoreError::Conflict(thing) => {
                ApiError::conflict("conflict", format!("That {thing} already exists."))
            }
            StoreError::UnknownAccessLevel => ApiError::validation(
                "unknown_access_level",
                "access_level_id",
                "No access level with that id in this app.",
            ),
            StoreError::AccessLevelInUse => ApiError::conflict(
                "access_level_in_use",
                "The access level is still used by a mapping or a grant.",
            ),
            StoreError::GrantManagedByThrivecart => ApiError::conflict(
                "grant_managed_by_thrivecart",
                "This grant comes from a ThriveCart purchase; refunds and cancellations \
                 revoke it. Only manual grants can be revoked here.",
            ),
            StoreError::Unavailable(source) => {
                tracing::error!(error = %source, "database unavailable");
                ApiError::unavailable()
            }
            StoreError::Internal(source) => {
                tracing::error!(error = ?source, "database error");
                ApiError::internal()
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
    let (code, message, field) = if err.is::<AuthorizationError>() {
        return ApiError::unauthorized().into_response();
    } else if let Some(e) = err.downcast_ref::<ParseParamError>() {
        (
            "invalid_parameter",
            format!("The parameter `{}` is invalid: {}", e.name, e.reason),
            Some(e.name.to_owned()),
        )
    } else if err.is::<ParsePathError>() {
        (
            "invalid_parameter",
            "A path parameter is invalid.".to_owned(),
            None,
        )
    } else if let Some(e) = err.downcast_ref::<ParseRequestPayloadError>() {
        return ApiError::invalid_json(format!("The request body is not valid: {}", e.reason))
            .into_response();
    } else if let Some(e) = err.downcast_ref::<ContentTypeError>() {
        (
            "unsupported_media_type",
            match e {
                ContentTypeError::NotSupported { .. } => {
                    "The request body must be JSON (Content-Type: application/json).".to_owned()
                }
                ContentTypeError::ExpectContentType => {
                    "The request needs a Content-Type header.".to_owned()
                }
            },
            None,
        )
    } else {
        match status {
            StatusCode::NOT_FOUND => ("not_found", "No such endpoint.".to_owned(), None),
            StatusCode::METHOD_NOT_ALLOWED => (
                "method_not_allowed",
                "This endpoint does not answer that method.".to_owned(),
                None,
            ),
            StatusCode::PAYLOAD_TOO_LARGE => (
                "payload_too_large",
                "The request body is too large.".to_owned(),
                None,
            ),
            s if s.is_server_error() => {
                tracing::error!(error = %err, "request failed");
                ("internal_error", "Internal error.".to_owned(), None)
            }
            StatusCode::BAD_REQUEST => {
                ("bad_request", "The request is malformed.".to_owned(), None)
            }
            _ => (
                "error",
                status.canonical_reason().unwrap_or("Error").to_owned(),
                None,
            ),
        }
    };
    let mut resp = poem::web::Json(ErrorBody {
        code: code.to_owned(),
        message,
        field,
    })
    .with_status(status)
    .into_response();
    if status == StatusCode::METHOD_NOT_ALLOWED
        && let Some(allow) = allow
        && let Ok(value) = allow.parse()
    {
        resp.headers_mut().insert(poem::http::header::ALLOW, value);
    }
    resp
}
