//! The access engine's vocabulary: typed ids, product keys and validated names.
//!
//! This crate does no I/O. Raw strings from the outside world are parsed here once, at the
//! edge, so the rest of Larder cannot hold an invalid product key or a blank name. The rules
//! that turn a ThriveCart event into a plan of access changes live here too (issue #3).

mod email;
pub mod engine;
mod ids;
mod name;
mod product;
pub mod thrivecart;

pub use email::{Email, InvalidEmail};
pub use ids::{
    AccessLevelId, ApiKeyId, AppId, DeliveryId, GrantId, MappingId, MemberId, ParseIdError,
};
pub use name::{InvalidName, Name};
pub use product::{InvalidProduct, ProductKey, ProductKind};
mod policy;
pub use policy::{CancellationPolicy, TestModePolicy, UnknownPolicy};
