//! Typed path and query parameters: each publishes its rule in the OpenAPI document, is
//! parsed once by poem-openapi, and says what is wrong in words (`app_id` is not a valid
//! id) rather than in a validator's terms.

use std::borrow::Cow;
use std::str::FromStr;

use poem_openapi::registry::{MetaSchema, MetaSchemaRef, Registry};
use poem_openapi::types::{ParseError, ParseFromParameter, ParseResult, Type};

/// The published form of every id: a canonical, hyphenated UUID.
pub const ID_PATTERN: &str =
    "^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$";

/// An id in a path or query parameter (`Path<PathId<AppId>>`), parsed into its typed id.
/// A malformed one is 400 `invalid_parameter`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PathId<T>(pub T);

impl<T> std::ops::Deref for PathId<T> {
    type Target = T;

    fn deref(&self) -> &T {
        &self.0
    }
}

/// The name and inline schema of a parameter type.
macro_rules! inline_schema {
    ($name:literal, $schema:expr) => {
        fn name() -> Cow<'static, str> {
            $name.into()
        }

        fn schema_ref() -> MetaSchemaRef {
            MetaSchemaRef::Inline(Box::new($schema))
        }
    };
}

impl<T: FromStr + Send + Sync> Type for PathId<T> {
    crate::own_raw_value!();

    inline_schema!(
        "string_id",
        MetaSchema {
            pattern: Some(ID_PATTERN.into()),
            ..MetaSchema::new("string")
        }
    );
}

impl<T: FromStr + Send + Sync> ParseFromParameter for PathId<T> {
    fn parse_from_parameter(value: &str) -> ParseResult<Self> {
        // Only the canonical form: the typed ids refuse other spellings of a UUID.
        value
            .parse()
            .map(PathId)
            .map_err(|_| ParseError::custom("is not a valid id"))
    }
}

/// What any text parameter may hold: anything but a NUL (the service refuses one in any
/// parameter, 400 `invalid_parameter`).
pub const TEXT_PATTERN: &str = "^[^\\x00]*$";

/// A free-text query or path parameter (an email, an event name, a token). Its published
/// pattern says what the service enforces for every parameter: no NUL character.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TextParam(pub String);

impl std::ops::Deref for TextParam {
    type Target = str;

    fn deref(&self) -> &str {
        &self.0
    }
}

impl Type for TextParam {
    crate::own_raw_value!();

    inline_schema!(
        "text",
        MetaSchema {
            pattern: Some(TEXT_PATTERN.into()),
            ..MetaSchema::new("string")
        }
    );
}

impl ParseFromParameter for TextParam {
    fn parse_from_parameter(value: &str) -> ParseResult<Self> {
        if value.contains('\0') {
            return Err(ParseError::custom("must not contain NUL characters"));
        }
        Ok(TextParam(value.to_owned()))
    }
}

/// The largest page a list answers.
pub const MAX_LIMIT: u32 = larder_store::MAX_PAGE_SIZE;

/// `limit`: a page size from 1 to 200.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PageLimit(pub u32);

impl Type for PageLimit {
    crate::own_raw_value!();

    inline_schema!(
        "page_limit",
        MetaSchema {
            format: Some("uint32"),
            minimum: Some(1.0),
            maximum: Some(f64::from(MAX_LIMIT)),
            ..MetaSchema::new("integer")
        }
    );
}

impl ParseFromParameter for PageLimit {
    fn parse_from_parameter(value: &str) -> ParseResult<Self> {
        match value.parse::<u32>() {
            Ok(n) if (1..=MAX_LIMIT).contains(&n) => Ok(PageLimit(n)),
            _ => Err(ParseError::custom(format!(
                "must be a whole number from 1 to {MAX_LIMIT}"
            ))),
        }
    }
}

/// The published form of a cursor.
pub const CURSOR_PATTERN: &str = "^[A-Za-z0-9_-]{22}$";

/// `cursor`: the `next_cursor` of the previous page, opaque to clients.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cursor(pub uuid::Uuid);

impl Type for Cursor {
    crate::own_raw_value!();

    inline_schema!(
        "cursor",
        MetaSchema {
            pattern: Some(CURSOR_PATTERN.into()),
            ..MetaSchema::new("string")
        }
    );
}

impl ParseFromParameter for Cursor {
    fn parse_from_parameter(value: &str) -> ParseResult<Self> {
        crate::paging::decode_cursor(value)
            .map(Cursor)
            .ok_or_else(|| {
                ParseError::custom("is not one this API handed out; pass `next_cursor` as given")
            })
    }
}

/// An enum in a query parameter (`Query<Option<OneOf<ActivityStatus>>>`): published as the
/// enum itself, and a value outside it is refused naming the values there are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OneOf<T>(pub T);

impl<T: Type> Type for OneOf<T> {
    crate::own_raw_value!();

    fn name() -> Cow<'static, str> {
        T::name()
    }

    fn schema_ref() -> MetaSchemaRef {
        T::schema_ref()
    }

    fn register(registry: &mut Registry) {
        T::register(registry);
    }
}

impl<T: ParseFromParameter> ParseFromParameter for OneOf<T> {
    fn parse_from_parameter(value: &str) -> ParseResult<Self> {
        T::parse_from_parameter(value).map(OneOf).map_err(|_| {
            ParseError::custom(format!("must be one of: {}", enum_values::<T>().join(", ")))
        })
    }
}

/// The values an enum type publishes, in order.
pub fn enum_values<T: Type>() -> Vec<String> {
    let mut registry = Registry::new();
    T::register(&mut registry);
    let schema = match T::schema_ref() {
        MetaSchemaRef::Inline(schema) => Some(*schema),
        MetaSchemaRef::Reference(name) => registry.schemas.get(&name).cloned(),
    };
    schema
        .map(|s| {
            s.enum_items
                .iter()
                .map(|v| v.as_str().map_or_else(|| v.to_string(), str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

/// A nullable enum field (`#[oai(nullable)] Option<NullableEnum<T>>`), written out where it
/// is used: `{"type": "string", "enum": [..., null], "nullable": true}`, as OpenAPI 3.0 wants
/// it, instead of `allOf` around a reference, which generators and linters misread.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NullableEnum<T>(pub T);

impl<T: Type> Type for NullableEnum<T> {
    crate::own_raw_value!();

    fn name() -> Cow<'static, str> {
        T::name()
    }

    fn schema_ref() -> MetaSchemaRef {
        let mut registry = Registry::new();
        T::register(&mut registry);
        match T::schema_ref() {
            MetaSchemaRef::Reference(name) => match registry.schemas.remove(&name) {
                Some(mut schema) => {
                    schema.title = None;
                    schema.rust_typename = None;
                    schema.nullable = true;
                    // OpenAPI 3.0.3: `nullable` does not add null to an `enum`; list it.
                    schema.enum_items.push(serde_json::Value::Null);
                    MetaSchemaRef::Inline(Box::new(schema))
                }
                None => MetaSchemaRef::Reference(name),
            },
            inline => inline,
        }
    }
}

impl<T: poem_openapi::types::ToJSON> poem_openapi::types::ToJSON for NullableEnum<T> {
    fn to_json(&self) -> Option<serde_json::Value> {
        self.0.to_json()
    }
}

impl<T: poem_openapi::types::ParseFromJSON> poem_openapi::types::ParseFromJSON for NullableEnum<T> {
    fn parse_from_json(value: Option<serde_json::Value>) -> ParseResult<Self> {
        T::parse_from_json(value)
            .map(NullableEnum)
            .map_err(ParseError::propagate)
    }
}

/// `product` in a query: a ThriveCart product ID or typed key, published with its pattern.
#[derive(Debug, Clone)]
pub struct ProductParam(pub larder_access::ProductKey);

impl Type for ProductParam {
    crate::own_raw_value!();

    fn name() -> Cow<'static, str> {
        "product".into()
    }

    fn schema_ref() -> MetaSchemaRef {
        crate::fields::ProductField::schema_ref()
    }
}

impl ParseFromParameter for ProductParam {
    fn parse_from_parameter(value: &str) -> ParseResult<Self> {
        use crate::fields::{PRODUCT_PATTERN, ProductField, pattern_rule};
        if !ProductField::is_valid(value) {
            return Err(ParseError::custom(pattern_rule(PRODUCT_PATTERN)));
        }
        larder_access::ProductKey::parse(value)
            .map(ProductParam)
            .map_err(|_| ParseError::custom(pattern_rule(PRODUCT_PATTERN)))
    }
}
