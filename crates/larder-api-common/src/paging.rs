//! Cursor pagination for every admin list: `limit` 1–200 (default 50) and an opaque cursor.

use base64::Engine;
use base64::alphabet::URL_SAFE;
use base64::engine::DecodePaddingMode;
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig, URL_SAFE_NO_PAD};
use larder_store::{DEFAULT_PAGE_SIZE, Page, PageRequest};

use crate::error::ApiError;

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

fn decode_cursor(cursor: &str) -> Option<uuid::Uuid> {
    let bytes = LENIENT.decode(cursor).ok()?;
    uuid::Uuid::from_slice(&bytes).ok()
}

/// The page asked for; `limit` bounds are declared on the parameters and checked by
/// poem-openapi, the cursor is checked here.
pub fn page_request(limit: Option<u32>, cursor: Option<&str>) -> Result<PageRequest, ApiError> {
    let page = PageRequest::first(limit.unwrap_or(DEFAULT_PAGE_SIZE));
    match cursor {
        None => Ok(page),
        Some(raw) => decode_cursor(raw)
            .map(|after| page.after(after))
            .ok_or_else(|| {
                ApiError::invalid_parameter(
                    "cursor",
                    "`cursor` is not one this API handed out; pass `next_cursor` as given.",
                )
            }),
    }
}

/// A store page as `(items, next_cursor)`.
pub fn into_items<T, V>(page: Page<T>, view: impl Fn(T) -> V) -> (Vec<V>, Option<String>) {
    (
        page.items.into_iter().map(view).collect(),
        page.next.map(encode_cursor),
    )
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn cursors_round_trip_and_junk_is_refused() {
        let id = uuid::Uuid::now_v7();
        let page = page_request(Some(10), Some(&encode_cursor(id))).unwrap();
        assert_eq!(page.after, Some(id));
        assert_eq!(page.limit, 10);
        assert!(page_request(None, Some("not a cursor")).is_err());
        assert!(page_request(None, Some("")).is_err());
        assert_eq!(page_request(None, None).unwrap().limit, DEFAULT_PAGE_SIZE);
    }
}
