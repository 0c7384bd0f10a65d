//! What Larder's HTTP APIs share: the one error body every non-2xx answer carries
//! ([`ErrorBody`]) with its stable codes and the statuses each operation declares
//! ([`Fails`]); JSON bodies that tell malformed JSON (400) from invalid fields (422, in
//! words); typed path and query parameters ([`PathId`]); the one list shape ([`Page`]); and
//! request fields that publish their rules ([`fields`]).

/// The part of a poem-openapi `Type` impl every value type here shares: it is required, and
/// it is its own raw value (what validators and the spec see).
#[macro_export]
macro_rules! own_raw_value {
    () => {
        const IS_REQUIRED: bool = true;
        type RawValueType = Self;
        type RawElementValueType = Self;

        fn as_raw_value(&self) -> Option<&Self::RawValueType> {
            Some(self)
        }

        fn raw_element_iter<'a>(
            &'a self,
        ) -> Box<dyn Iterator<Item = &'a Self::RawElementValueType> + 'a> {
            Box::new(self.as_raw_value().into_iter())
        }
    };
}

pub mod answers;
pub mod body;
pub mod error;
pub mod fields;
pub mod paging;
pub mod params;

pub use answers::{About, Accepted, Changed, Created, Done, Found, Listed};
pub use error::{
    ApiError, BAD_REQUEST, CONFLICT, ErrorBody, ErrorCode, FORBIDDEN, Fails, INTERNAL, JSON_BODY,
    NOT_FOUND, PAYLOAD_TOO_LARGE, SERVER, TOO_MANY_REQUESTS, UNAUTHORIZED, UNAVAILABLE,
    UNPROCESSABLE, UNSUPPORTED_MEDIA_TYPE, error_response,
};
pub use paging::{ListItem, Page, page_request};
pub use params::{Cursor, NullableEnum, OneOf, PageLimit, PathId, ProductParam, TextParam};

use poem_openapi::Object;

/// An access level as a member has it: its id and name. Shared by the admin API's member
/// views and the member API's `/me`.
#[derive(Debug, Clone, Object)]
pub struct LevelView {
    pub id: String,
    pub name: String,
}

impl From<larder_store::LevelRef> for LevelView {
    fn from(level: larder_store::LevelRef) -> Self {
        Self {
            id: level.id.to_string(),
            name: level.name,
        }
    }
}

/// Whether every variant of a domain enum (`all`) turns into an API twin (one made with
/// poem-openapi's `#[oai(remote = …)]`) spelled as the domain spells it. For tests.
pub fn spelled_alike<D, A>(all: &[D]) -> bool
where
    D: Copy + std::fmt::Display,
    A: From<D> + poem_openapi::types::ToJSON,
{
    all.iter()
        .all(|d| A::from(*d).to_json() == Some(serde_json::Value::from(d.to_string())))
}
