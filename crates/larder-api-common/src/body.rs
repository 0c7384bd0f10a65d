//! JSON request bodies that tell a malformed document (400 `invalid_json`) from a
//! well-formed one with a missing or mistyped field (422 `validation_failed`); poem-openapi's
//! own `Json` answers 400 for both. A missing `Content-Type` is read as JSON (what `curl -d`
//! users mean); another media type is refused with 415.

use std::ops::Deref;

use poem::{Request, RequestBody};
use poem_openapi::payload::{ParsePayload, Payload};
use poem_openapi::registry::{MetaMediaType, MetaRequest, MetaSchemaRef, Registry};
use poem_openapi::types::{ParseFromJSON, Type};
use poem_openapi::{ApiExtractor, ApiExtractorType, ExtractParamOptions};

use crate::error::ApiError;

/// Largest JSON body an admin operation reads (413 `payload_too_large` beyond).
pub const MAX_JSON_BODY_BYTES: usize = 1024 * 1024;

/// A required JSON object body.
#[derive(Debug, Clone)]
pub struct JsonBody<T>(pub T);

/// A JSON object body that may be left out entirely (read as `{}`).
#[derive(Debug, Clone)]
pub struct OptionalJsonBody<T>(pub T);

fn is_json(content_type: &str) -> bool {
    content_type.parse::<mime::Mime>().is_ok_and(|m| {
        m.type_() == "application"
            && (m.subtype() == "json" || m.suffix().is_some_and(|s| s == "json"))
    })
}

async fn read_json<T: ParseFromJSON>(
    request: &Request,
    body: &mut RequestBody,
    empty_is_object: bool,
) -> poem::Result<T> {
    if let Some(ct) = request.content_type()
        && !is_json(ct)
    {
        return Err(poem_openapi::error::ContentTypeError::NotSupported {
            content_type: ct.to_owned(),
        }
        .into());
    }
    let data = body.take()?.into_bytes_limit(MAX_JSON_BODY_BYTES).await?;
    let value = if data.iter().all(u8::is_ascii_whitespace) {
        if !empty_is_object {
            return Err(
                ApiError::invalid_json("The request body is empty; send a JSON object.").into(),
            );
        }
        serde_json::Value::Object(Default::default())
    } else {
        serde_json::from_slice(&data).map_err(|err| {
            ApiError::invalid_json(format!("The request body is not valid JSON: {err}."))
        })?
    };
    if !value.is_object() {
        return Err(ApiError::validation_failed("The request body must be a JSON object.").into());
    }
    check_field_types::<T>(&value)?;
    T::parse_from_json(Some(value)).map_err(|err| {
        let message = err.into_message();
        match failed_field(&message) {
            Some(field) => ApiError::validation(
                code_for(field),
                field,
                format!("`{field}` is not valid: {message}."),
            ),
            None => ApiError::validation_failed(format!(
                "The request body is missing a field or has one of the wrong type: {message}"
            )),
        }
        .into()
    })
}

/// The field a poem-openapi validator refused (`field `name` verification failed`).
fn failed_field(message: &str) -> Option<&str> {
    let rest = message.split("field `").nth(1)?;
    let (field, after) = rest.split_once('`')?;
    after
        .trim_start()
        .starts_with("verification failed")
        .then_some(field)
}

/// The error code of a field whose published rules (`pattern`, lengths) it broke.
fn code_for(field: &str) -> &'static str {
    match field {
        "product" => "invalid_product",
        "password" => "weak_password",
        _ => "validation_failed",
    }
}

/// Refuses a body whose fields have the wrong JSON type. poem-openapi would read `7` or
/// `true` into a string field; the published document says string, so only a string is.
fn check_field_types<T: Type>(value: &serde_json::Value) -> Result<(), ApiError> {
    use poem_openapi::registry::{MetaSchema, MetaSchemaRef};
    use serde_json::Value;

    fn resolve<'a>(registry: &'a Registry, schema: &'a MetaSchemaRef) -> Option<&'a MetaSchema> {
        match schema {
            MetaSchemaRef::Inline(s) => Some(s),
            MetaSchemaRef::Reference(name) => registry.schemas.get(name),
        }
    }

    let mut registry = Registry::new();
    T::register(&mut registry);
    let schema_ref = T::schema_ref();
    let (Some(schema), Some(object)) = (resolve(&registry, &schema_ref), value.as_object()) else {
        return Ok(());
    };
    for (name, property) in &schema.properties {
        let (Some(given), Some(property)) = (object.get(*name), resolve(&registry, property))
        else {
            continue;
        };
        let fits = match (property.ty, given) {
            (_, Value::Null) => property.nullable || !schema.required.contains(name),
            ("string", v) => v.is_string(),
            ("integer", v) => v.is_i64() || v.is_u64(),
            ("number", v) => v.is_number(),
            ("boolean", v) => v.is_boolean(),
            ("array", v) => v.is_array(),
            ("object", v) => v.is_object(),
            _ => true,
        };
        if !fits {
            return Err(ApiError::validation(
                "validation_failed",
                name,
                format!("`{name}` must be of type {}.", property.ty),
            ));
        }
    }
    Ok(())
}

macro_rules! json_body {
    ($ty:ident, $required:literal) => {
        impl<T> Deref for $ty<T> {
            type Target = T;

            fn deref(&self) -> &T {
                &self.0
            }
        }

        impl<T: Type> Payload for $ty<T> {
            const CONTENT_TYPE: &'static str = "application/json; charset=utf-8";

            fn check_content_type(content_type: &str) -> bool {
                is_json(content_type)
            }

            fn schema_ref() -> MetaSchemaRef {
                T::schema_ref()
            }

            fn register(registry: &mut Registry) {
                T::register(registry);
            }
        }

        impl<T: ParseFromJSON> ParsePayload for $ty<T> {
            const IS_REQUIRED: bool = $required;

            async fn from_request(request: &Request, body: &mut RequestBody) -> poem::Result<Self> {
                read_json(request, body, !$required).await.map($ty)
            }
        }

        impl<'a, T: ParseFromJSON> ApiExtractor<'a> for $ty<T> {
            const TYPES: &'static [ApiExtractorType] = &[ApiExtractorType::RequestObject];

            type ParamType = ();
            type ParamRawType = ();

            fn register(registry: &mut Registry) {
                <Self as Payload>::register(registry);
            }

            fn request_meta() -> Option<MetaRequest> {
                Some(MetaRequest {
                    description: None,
                    content: vec![MetaMediaType {
                        content_type: <Self as Payload>::CONTENT_TYPE,
                        schema: <Self as Payload>::schema_ref(),
                    }],
                    required: $required,
                })
            }

            async fn from_request(
                request: &'a Request,
                body: &mut RequestBody,
                _param_opts: ExtractParamOptions<Self::ParamType>,
            ) -> poem::Result<Self> {
                <Self as ParsePayload>::from_request(request, body).await
            }
        }
    };
}

json_body!(JsonBody, true);
json_body!(OptionalJsonBody, false);
