//! What Larder's admin and member APIs share: the one error body every non-2xx answer
//! carries ([`error::ErrorBody`]) and the mapping of every error onto it, JSON bodies that
//! tell malformed JSON (400) from invalid fields (422), and opaque list cursors.

pub mod body;
pub mod error;
pub mod paging;

pub use error::{ApiError, ErrorBody, error_response};
