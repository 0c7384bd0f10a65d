//! The access engine's vocabulary and rules: typed ids, product keys, validated names and
//! emails, and the planner that turns a ThriveCart delivery into access changes.
//!
//! This crate does no I/O. Raw strings from the outside world are parsed here once, at the
//! edge, so the rest of Larder cannot hold an invalid product key or a blank name.

mod email;
pub mod engine;
mod grant;
mod ids;
mod name;
mod policy;
mod product;
mod strings;
pub mod thrivecart;

pub use email::{Email, InvalidEmail};
pub use grant::{GrantSource, OverrideStatus};
pub use ids::{
    AccessLevelId, ApiKeyId, AppId, DeliveryId, GrantId, MappingId, MemberId, MessageId,
    ParseIdError,
};
pub use name::{InvalidName, Name};
pub use policy::{CancellationPolicy, TestModePolicy};
pub use product::{InvalidProduct, ProductKey, ProductKind};
pub use strings::UnknownValue;

#[doc(hidden)]
pub use serde as __serde;
