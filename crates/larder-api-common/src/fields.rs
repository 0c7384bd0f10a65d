//! Request fields with a published rule: a name, a product key, a secret word. Each type
//! publishes its rule in the OpenAPI document (`maxLength`, `pattern`) and holds the
//! sentence that says it, so a request that breaks it is told in words.

use std::borrow::Cow;
use std::sync::LazyLock;

use poem_openapi::registry::{MetaSchema, MetaSchemaRef};
use poem_openapi::types::{ParseError, ParseFromJSON, ParseResult, ToJSON, Type};
use regex::Regex;

/// A name for people: not blank, no control characters.
pub const NAME_PATTERN: &str =
    "^[^\\x00-\\x1f\\x7f-\\x9f]*[^\\x00-\\x20\\x7f-\\x9f][^\\x00-\\x1f\\x7f-\\x9f]*$";
/// A ThriveCart product ID (`7`) or a typed key (`bump-7`).
pub const PRODUCT_PATTERN: &str = "^((product|bump|upsell|downsell)-)?0{0,24}[1-9][0-9]{0,23}$";
/// Anything but blanks.
pub const NOT_BLANK_PATTERN: &str = "[^\\x00-\\x20]";
/// An absolute http(s) URL with a domain host, an optional port and path, no query or
/// fragment.
pub const WEB_URL_PATTERN: &str = "^https?://([A-Za-z0-9-]+\\.)*[A-Za-z][A-Za-z0-9-]*(:[0-9]{1,5})?(/[A-Za-z0-9._~!$&'()*+,;=:@%/-]*)?$";
/// A web origin: scheme, host and port.
pub const ORIGIN_PATTERN: &str =
    "^https?://([A-Za-z0-9-]+\\.)*[A-Za-z][A-Za-z0-9-]*(:[0-9]{1,5})?/?$";
/// An email address: one `@`, a dotted domain, no blanks or control characters.
pub const EMAIL_PATTERN: &str = "^[^\\s@\\x00-\\x1f\\x7f-\\x9f]+@[^\\s@.\\x00-\\x1f\\x7f-\\x9f][^\\s@\\x00-\\x1f\\x7f-\\x9f]*\\.[^\\s@\\x00-\\x1f\\x7f-\\x9f]*[^\\s@.\\x00-\\x1f\\x7f-\\x9f]$";

/// The sentence for each published pattern, as it reads after the field's name.
const RULES: [(&str, &str); 6] = [
    (
        NAME_PATTERN,
        "must not be blank and must not hold control characters",
    ),
    (
        PRODUCT_PATTERN,
        "must be a ThriveCart product ID such as `7`, or a typed key such as `product-7`, \
         `bump-7`, `upsell-3` or `downsell-2`",
    ),
    (NOT_BLANK_PATTERN, "must not be blank"),
    (
        WEB_URL_PATTERN,
        "must be an absolute http:// or https:// URL with a domain name, without query or \
         fragment",
    ),
    (
        ORIGIN_PATTERN,
        "must be an origin, scheme://host[:port] (http or https), with no path",
    ),
    (EMAIL_PATTERN, "must be an email address"),
];

/// What breaking `pattern` means, in words.
pub fn pattern_rule(pattern: &str) -> &'static str {
    RULES
        .iter()
        .find(|(p, _)| *p == pattern)
        .map_or("is not in the expected form", |(_, rule)| rule)
}

macro_rules! text_field {
    ($(#[$doc:meta])* $name:ident, max = $max:expr, pattern = $pattern:expr) => {
        $(#[$doc])*
        #[derive(Clone, PartialEq, Eq)]
        pub struct $name(pub String);

        impl $name {
            pub const MAX_CHARS: usize = $max;

            fn regex() -> &'static Regex {
                static REGEX: LazyLock<Regex> = LazyLock::new(|| {
                    Regex::new($pattern).expect("the published pattern is a valid regex")
                });
                &REGEX
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }

            /// Whether `text` keeps the published rules.
            pub fn is_valid(text: &str) -> bool {
                text.chars().count() <= $max && Self::regex().is_match(text)
            }
        }

        impl std::ops::Deref for $name {
            type Target = str;

            fn deref(&self) -> &str {
                &self.0
            }
        }

        impl Type for $name {
            crate::own_raw_value!();

            fn name() -> Cow<'static, str> {
                "string".into()
            }

            fn schema_ref() -> MetaSchemaRef {
                MetaSchemaRef::Inline(Box::new(MetaSchema {
                    max_length: Some($max),
                    pattern: Some($pattern.to_owned()),
                    ..MetaSchema::new("string")
                }))
            }

        }

        impl ParseFromJSON for $name {
            fn parse_from_json(value: Option<serde_json::Value>) -> ParseResult<Self> {
                match value {
                    Some(serde_json::Value::String(text)) if Self::is_valid(&text) => {
                        Ok($name(text))
                    }
                    _ => Err(ParseError::custom(pattern_rule($pattern))),
                }
            }
        }

        impl ToJSON for $name {
            fn to_json(&self) -> Option<serde_json::Value> {
                Some(serde_json::Value::String(self.0.clone()))
            }
        }
    };
}

text_field!(
    /// A name for people: up to 200 characters, no control characters, not blank.
    NameField,
    max = 200,
    pattern = NAME_PATTERN
);

text_field!(
    /// A ThriveCart product ID or typed key, up to 60 characters.
    ProductField,
    max = 60,
    pattern = PRODUCT_PATTERN
);

text_field!(
    /// A secret word: up to 200 characters, not blank. Its `Debug` never shows it.
    SecretWordField,
    max = 200,
    pattern = NOT_BLANK_PATTERN
);

text_field!(
    /// A name on one line, up to 100 characters: the display name messages come from.
    SenderNameField,
    max = 100,
    pattern = NAME_PATTERN
);

text_field!(
    /// A line of text up to 200 characters with placeholders: a subject.
    SubjectTemplateField,
    max = 200,
    pattern = NAME_PATTERN
);

text_field!(
    /// Text up to 10,000 characters with placeholders: a message's body.
    BodyTemplateField,
    max = 10_000,
    pattern = NOT_BLANK_PATTERN
);

text_field!(
    /// An absolute http(s) URL, up to 500 characters.
    WebUrlField,
    max = 500,
    pattern = WEB_URL_PATTERN
);

text_field!(
    /// A web origin (`https://members.example.com`), up to 300 characters.
    OriginField,
    max = 300,
    pattern = ORIGIN_PATTERN
);

text_field!(
    /// An email address, up to 200 characters.
    EmailField,
    max = 200,
    pattern = EMAIL_PATTERN
);

macro_rules! plain_debug {
    ($($name:ident),*) => {
        $(
            impl std::fmt::Debug for $name {
                fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                    f.debug_tuple(stringify!($name)).field(&self.0).finish()
                }
            }
        )*
    };
}

plain_debug!(
    SenderNameField,
    SubjectTemplateField,
    BodyTemplateField,
    WebUrlField,
    OriginField,
    EmailField
);

impl std::fmt::Debug for NameField {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("NameField").field(&self.0).finish()
    }
}

impl std::fmt::Debug for ProductField {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("ProductField").field(&self.0).finish()
    }
}

impl std::fmt::Debug for SecretWordField {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SecretWordField([redacted])")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_keep_their_published_rules() {
        let ok = |v: &str| NameField::parse_from_json(Some(v.into())).is_ok();
        assert!(ok("Gold"));
        assert!(!ok("   "));
        assert!(!ok("bad\u{7}name"));
        assert!(!ok(&"a".repeat(201)));
        let product = |v: &str| ProductField::parse_from_json(Some(v.into())).is_ok();
        assert!(product("7") && product("bump-7") && !product("gift-7"));
        assert_eq!(pattern_rule(NOT_BLANK_PATTERN), "must not be blank");
        let secret = SecretWordField("K7QX2M9PLD4R".into());
        assert!(!format!("{secret:?}").contains("K7QX"));
    }
}
