//! JSON request bodies that tell a malformed document (400 `invalid_json`) from a
//! well-formed one with a missing, unknown or mistyped field (422 `validation_failed`, naming
//! the field, in words); poem-openapi's own `Json` answers 400 for both. A missing
//! `Content-Type` is read as JSON (what `curl -d` users mean); another media type is refused
//! with 415. A body over 1 MiB is refused with 413, by its `Content-Length` before it is read.

use std::ops::Deref;

use poem::{Request, RequestBody};
use poem_openapi::payload::{ParsePayload, Payload};
use poem_openapi::registry::{MetaMediaType, MetaRequest, MetaSchema, MetaSchemaRef, Registry};
use poem_openapi::types::{ParseFromJSON, Type};
use poem_openapi::{ApiExtractor, ApiExtractorType, ExtractParamOptions};

use serde_json::Value;

use crate::error::{ApiError, ErrorCode};
use crate::fields::pattern_rule;

/// The media type strict JSON bodies publish: every body read here refuses unknown fields,
/// and the published document says so (`additionalProperties: false`) for these.
pub const JSON_CONTENT_TYPE: &str = "application/json; charset=utf-8";

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
    let too_large = || {
        ApiError::new(
            ErrorCode::PayloadTooLarge,
            "The request body is over 1 MiB.",
        )
    };
    let declared = request
        .header(poem::http::header::CONTENT_LENGTH)
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|len| len > MAX_JSON_BODY_BYTES as u64) {
        return Err(too_large().into());
    }
    let data = match body.take()?.into_bytes_limit(MAX_JSON_BODY_BYTES).await {
        Ok(data) => data,
        Err(poem::error::ReadBodyError::PayloadTooLarge) => return Err(too_large().into()),
        Err(_) => return Err(ApiError::invalid_json("The request body could not be read.").into()),
    };
    // Only JSON's own whitespace makes an empty body (a form feed is not JSON).
    let value = if data
        .iter()
        .all(|b| matches!(b, b' ' | b'\t' | b'\n' | b'\r'))
    {
        if !empty_is_object {
            return Err(
                ApiError::invalid_json("The request body is empty; send a JSON object.").into(),
            );
        }
        Value::Object(Default::default())
    } else {
        serde_json::from_slice(&data).map_err(|err| {
            ApiError::invalid_json(format!("The request body is not valid JSON: {err}."))
        })?
    };
    if let Some(field) = nul_field(&value, "") {
        return Err(ApiError::validation(
            ErrorCode::ValidationFailed,
            &field,
            format!("`{field}` must not contain NUL characters (\\u0000)."),
        )
        .into());
    }
    validate::<T>(&value)?;
    T::parse_from_json(Some(value)).map_err(|err| {
        // Everything the document publishes was checked above; this is a rule of the
        // field's own type.
        tracing::debug!(error = %err.into_message(), "request body refused by its type");
        ApiError::validation_failed("The request body is not valid.").into()
    })
}

/// The first field (by its path, `a.b`) whose key or text holds a NUL character: no text
/// Larder stores may hold one (PostgreSQL refuses them), so none is accepted.
fn nul_field(value: &Value, path: &str) -> Option<String> {
    let here = |key: &str| {
        if path.is_empty() {
            key.to_owned()
        } else {
            format!("{path}.{key}")
        }
    };
    match value {
        Value::String(text) if text.contains('\0') => Some(if path.is_empty() {
            "body".into()
        } else {
            path.to_owned()
        }),
        Value::Array(items) => items
            .iter()
            .enumerate()
            .find_map(|(i, v)| nul_field(v, &here(&i.to_string()))),
        Value::Object(map) => map.iter().find_map(|(k, v)| {
            if k.contains('\0') {
                Some(here(&k.replace('\0', "\\u0000")))
            } else {
                nul_field(v, &here(k))
            }
        }),
        _ => None,
    }
}

/// The code of an answer about `field` breaking its published rules (`pattern`, lengths).
fn code_for(field: &str) -> ErrorCode {
    match field {
        "product" => ErrorCode::InvalidProduct,
        "password" => ErrorCode::WeakPassword,
        _ => ErrorCode::ValidationFailed,
    }
}

fn resolve<'a>(registry: &'a Registry, schema: &'a MetaSchemaRef) -> Option<&'a MetaSchema> {
    match schema {
        MetaSchemaRef::Inline(s) => Some(s),
        MetaSchemaRef::Reference(name) => registry.schemas.get(name),
    }
}

fn kind(ty: &str) -> &'static str {
    match ty {
        "string" => "a string",
        "integer" => "a whole number",
        "number" => "a number",
        "boolean" => "true or false",
        "array" => "a list",
        "object" => "an object",
        _ => "a value of another kind",
    }
}

fn list(names: impl IntoIterator<Item = impl std::fmt::Display>) -> String {
    names
        .into_iter()
        .map(|n| format!("`{n}`"))
        .collect::<Vec<_>>()
        .join(", ")
}

fn pattern_matches(pattern: &str, text: &str) -> bool {
    use std::collections::HashMap;
    use std::sync::{LazyLock, RwLock};
    static COMPILED: LazyLock<RwLock<HashMap<String, Option<regex::Regex>>>> =
        LazyLock::new(Default::default);
    if let Ok(cache) = COMPILED.read()
        && let Some(compiled) = cache.get(pattern)
    {
        return compiled.as_ref().is_none_or(|r| r.is_match(text));
    }
    let compiled = regex::Regex::new(pattern).ok();
    let matches = compiled.as_ref().is_none_or(|r| r.is_match(text));
    if let Ok(mut cache) = COMPILED.write() {
        cache.insert(pattern.to_owned(), compiled);
    }
    matches
}

/// Checks a body against everything the document publishes for `T`, field by field, and
/// says in words what is wrong: an unknown field (a typo must not pass silently), a missing
/// one, a wrong type (a number where a string is published is refused, not converted), a
/// value outside an enum, a length or pattern broken.
fn validate<T: Type>(value: &Value) -> Result<(), ApiError> {
    let mut registry = Registry::new();
    T::register(&mut registry);
    let schema_ref = T::schema_ref();
    let Some(schema) = resolve(&registry, &schema_ref) else {
        return Ok(());
    };
    let Some(object) = value.as_object() else {
        return Err(ApiError::validation_failed(
            "The request body must be a JSON object.",
        ));
    };
    let known: Vec<&str> = schema.properties.iter().map(|(name, _)| *name).collect();
    if let Some(unknown) = object.keys().find(|k| !known.contains(&k.as_str())) {
        let takes = if known.is_empty() {
            "This request takes no fields.".to_owned()
        } else {
            format!("This request takes {}.", list(&known))
        };
        return Err(ApiError::validation(
            ErrorCode::ValidationFailed,
            unknown,
            format!("`{unknown}` is not a field of this request. {takes}"),
        ));
    }
    for (name, property) in &schema.properties {
        let fail = |message: String| {
            Err(ApiError::validation(
                ErrorCode::ValidationFailed,
                name,
                message,
            ))
        };
        let Some(given) = object.get(*name) else {
            if schema.required.contains(name) {
                return fail(format!("`{name}` is required."));
            }
            continue;
        };
        let Some(property) = resolve(&registry, property) else {
            continue;
        };
        if given.is_null() {
            if property.nullable {
                continue;
            }
            return fail(format!("`{name}` must be {}, not null.", kind(property.ty)));
        }
        if !property.enum_items.is_empty() {
            if !property.enum_items.contains(given) {
                let values = property
                    .enum_items
                    .iter()
                    .map(|v| v.as_str().unwrap_or_default());
                return fail(format!("`{name}` must be one of: {}.", list(values)));
            }
            continue;
        }
        let fits = match property.ty {
            "string" => given.is_string(),
            "integer" => given.is_i64() || given.is_u64(),
            "number" => given.is_number(),
            "boolean" => given.is_boolean(),
            "array" => given.is_array(),
            "object" => given.is_object(),
            _ => true,
        };
        if !fits {
            return fail(format!("`{name}` must be {}.", kind(property.ty)));
        }
        if let Some(text) = given.as_str() {
            let chars = text.chars().count();
            let rule = |message: String| Err(ApiError::validation(code_for(name), name, message));
            if let Some(max) = property.max_length
                && chars > max
            {
                return rule(format!("`{name}` must be at most {max} characters."));
            }
            if let Some(min) = property.min_length
                && chars < min
            {
                return rule(format!("`{name}` must be at least {min} characters."));
            }
            if let Some(pattern) = &property.pattern
                && !pattern_matches(pattern, text)
            {
                return rule(format!("`{name}` {}.", pattern_rule(pattern)));
            }
        }
        if let Some(items) = given.as_array() {
            if let Some(max) = property.max_items
                && items.len() > max
            {
                return fail(format!("`{name}` must hold at most {max} items."));
            }
            let item = property
                .items
                .as_deref()
                .and_then(|i| resolve(&registry, i));
            if let Some(item) = item.filter(|i| i.ty == "string") {
                for given in items {
                    let Some(text) = given.as_str() else {
                        return fail(format!("Each item of `{name}` must be text."));
                    };
                    let too_long = item
                        .max_length
                        .is_some_and(|max| text.chars().count() > max);
                    let broken = item
                        .pattern
                        .as_deref()
                        .is_some_and(|p| !pattern_matches(p, text));
                    if too_long || broken {
                        let rule = match (&item.pattern, item.max_length) {
                            (Some(p), _) if broken => pattern_rule(p).to_owned(),
                            (_, Some(max)) => format!("must be at most {max} characters"),
                            _ => "is not valid".to_owned(),
                        };
                        return fail(format!("Each item of `{name}` {rule}; `{text}` is not."));
                    }
                }
            }
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
            const CONTENT_TYPE: &'static str = JSON_CONTENT_TYPE;

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
