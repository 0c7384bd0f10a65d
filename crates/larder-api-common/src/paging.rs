//! Every list answers one shape, [`Page`]: `{"items": [...], "next_cursor": string|null}`.
//! `limit` is 1–200 (default 50); the cursor is opaque to clients.

use std::borrow::Cow;

use base64::Engine;
use base64::alphabet::URL_SAFE;
use base64::engine::DecodePaddingMode;
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig, URL_SAFE_NO_PAD};
use larder_store::{DEFAULT_PAGE_SIZE, PageRequest};
use poem_openapi::registry::{MetaSchema, MetaSchemaRef, Registry};
use poem_openapi::types::{IsObjectType, ToJSON, Type};

use crate::params::{Cursor, PageLimit};

/// The cursor is the last id of the previous page, encoded so clients treat it as opaque.
pub fn encode_cursor(after: uuid::Uuid) -> String {
    URL_SAFE_NO_PAD.encode(after.as_bytes())
}

/// Reads any 22 base64url characters (the `pattern` the document publishes), whatever the
/// unused low bits of the last one: every such cursor is a position, if not one handed out.
const LENIENT: GeneralPurpose = GeneralPurpose::new(
    &URL_SAFE,
    GeneralPurposeConfig::new()
        .with_decode_allow_trailing_bits(true)
        .with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

pub(crate) fn decode_cursor(cursor: &str) -> Option<uuid::Uuid> {
    let bytes = LENIENT.decode(cursor).ok()?;
    uuid::Uuid::from_slice(&bytes).ok()
}

/// The page asked for by `limit` and `cursor`.
pub fn page_request(limit: Option<PageLimit>, cursor: Option<Cursor>) -> PageRequest {
    let page = PageRequest::first(limit.map_or(DEFAULT_PAGE_SIZE, |l| l.0));
    match cursor {
        Some(Cursor(after)) => page.after(after),
        None => page,
    }
}

/// What can be listed: the item type names its list's schema, so lists keep the names
/// clients generated from them (`AppList`, `MemberList`…).
pub trait ListItem: Type + ToJSON {
    /// The name of the list schema.
    const LIST: &'static str;
    /// What `next_cursor` means in this list.
    const NEXT_CURSOR: &'static str =
        "Pass as `cursor` to read the next page; null on the last one.";
}

/// One page of a list, and where the next one starts.
#[derive(Debug, Clone)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub next_cursor: Option<String>,
}

impl<T> Page<T> {
    /// A store page, each row shown as `view`.
    pub fn from_store<R>(page: larder_store::Page<R>, view: impl Fn(R) -> T) -> Self {
        Self {
            items: page.items.into_iter().map(view).collect(),
            next_cursor: page.next.map(encode_cursor),
        }
    }

    /// A list that comes whole, on one page.
    pub fn whole(items: impl IntoIterator<Item = T>) -> Self {
        Self {
            items: items.into_iter().collect(),
            next_cursor: None,
        }
    }
}

impl<T: ListItem> Type for Page<T> {
    crate::own_raw_value!();

    fn name() -> Cow<'static, str> {
        T::LIST.into()
    }

    fn schema_ref() -> MetaSchemaRef {
        MetaSchemaRef::Reference(T::LIST.to_owned())
    }

    fn register(registry: &mut Registry) {
        registry.create_schema::<Self, _>(T::LIST.to_owned(), |registry| {
            T::register(registry);
            MetaSchema {
                title: Some(T::LIST.to_owned()),
                required: vec!["items", "next_cursor"],
                properties: vec![
                    ("items", Vec::<T>::schema_ref()),
                    ("next_cursor", crate::error::nullable_string(T::NEXT_CURSOR)),
                ],
                ..MetaSchema::new("object")
            }
        });
    }
}

impl<T: ListItem> IsObjectType for Page<T> {}

impl<T: ListItem> ToJSON for Page<T> {
    fn to_json(&self) -> Option<serde_json::Value> {
        Some(serde_json::json!({
            "items": self.items.iter().map(crate::error::to_json).collect::<Vec<_>>(),
            "next_cursor": self.next_cursor,
        }))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use poem_openapi::types::ParseFromParameter;

    #[test]
    fn cursors_round_trip_and_junk_is_refused() {
        let id = uuid::Uuid::now_v7();
        let cursor = Cursor::parse_from_parameter(&encode_cursor(id)).unwrap();
        let page = page_request(Some(PageLimit(10)), Some(cursor));
        assert_eq!(page.after, Some(id));
        assert_eq!(page.limit, 10);
        assert!(Cursor::parse_from_parameter("not a cursor").is_err());
        assert!(Cursor::parse_from_parameter("").is_err());
        assert_eq!(page_request(None, None).limit, DEFAULT_PAGE_SIZE);
        assert!(PageLimit::parse_from_parameter("0").is_err());
        assert!(PageLimit::parse_from_parameter("201").is_err());
        assert_eq!(
            PageLimit::parse_from_parameter("200").unwrap(),
            PageLimit(200)
        );
    }
}
