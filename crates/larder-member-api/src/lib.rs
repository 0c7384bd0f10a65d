//! Larder's member side: the member API (set a password from an invitation, sign in with a
//! password or a magic link, reset a forgotten password, read one's access, sign out), its
//! CORS for apps' own front ends, and the pages Larder serves members whose app has no
//! front end of its own.
//!
//! Both the API and the pages call the same use cases ([`MemberState`]), with the same
//! limits ([`limits`]): a wrong password and an unknown email cost and answer the same; asking
//! for a link answers the same whether or not the email is a member's; links are single use
//! and setting a password ends every other session of the member. Tokens are stored only as
//! hashes.

mod api;
mod client;
mod cors;
pub mod limits;
pub mod pages;
mod passwords;
mod service;

pub use api::{MemberApi, SessionApp};
pub use client::client_address;
pub use cors::{ALLOW_HEADERS, ALLOW_METHODS, MAX_AGE_SECONDS, answer_preflights, cors};
pub use passwords::{HashError, Passwords};
pub use service::{IssuedSession, MemberState, SESSION_TTL_DAYS};
