//! The success answers operations share, each with its one documented status: what a GET,
//! a list, a create, a change and a delete answer. An operation with an answer of its own
//! (202, several 2xx) writes its own `ApiResponse`.

use poem_openapi::ApiResponse;
use poem_openapi::payload::Json;
use poem_openapi::types::{ToJSON, Type};

use crate::paging::{ListItem, Page};

/// 200 with the object asked for.
#[derive(Debug, ApiResponse)]
pub enum Found<T: Type + ToJSON + Send> {
    /// The object asked for.
    #[oai(status = 200)]
    Ok(Json<T>),
}

impl<T: Type + ToJSON + Send> Found<T> {
    pub fn of(value: impl Into<T>) -> Self {
        Found::Ok(Json(value.into()))
    }
}

/// 200 with one page of a list.
#[derive(Debug, ApiResponse)]
pub enum Listed<T: ListItem + Send> {
    /// One page of the list; follow `next_cursor` until it is null to read it all.
    #[oai(status = 200)]
    Ok(Json<Page<T>>),
}

impl<T: ListItem + Send> Listed<T> {
    pub fn of(page: Page<T>) -> Self {
        Listed::Ok(Json(page))
    }
}

/// 201 with what was created.
#[derive(Debug, ApiResponse)]
pub enum Created<T: Type + ToJSON + Send> {
    /// Created; this is the new object.
    #[oai(status = 201)]
    Created(Json<T>),
}

impl<T: Type + ToJSON + Send> Created<T> {
    pub fn of(value: impl Into<T>) -> Self {
        Created::Created(Json(value.into()))
    }
}

/// 200 with the object as it is after the change.
#[derive(Debug, ApiResponse)]
pub enum Changed<T: Type + ToJSON + Send> {
    /// Done; the object as it is now.
    #[oai(status = 200)]
    Ok(Json<T>),
}

impl<T: Type + ToJSON + Send> Changed<T> {
    pub fn of(value: impl Into<T>) -> Self {
        Changed::Ok(Json(value.into()))
    }
}

/// 202: accepted, to be done in the background.
#[derive(Debug, ApiResponse)]
pub enum Accepted<T: Type + ToJSON + Send> {
    /// Accepted; this is what will be done.
    #[oai(status = 202)]
    Accepted(Json<T>),
}

impl<T: Type + ToJSON + Send> Accepted<T> {
    pub fn of(value: impl Into<T>) -> Self {
        Accepted::Accepted(Json(value.into()))
    }
}

/// 204: done, nothing to say.
#[derive(Debug, ApiResponse)]
pub enum Done {
    /// Done.
    #[oai(status = 204)]
    NoContent,
}

/// Maps a store result at the edge of an operation: `.about("member")?` turns a missing
/// object into "No such member in this app." and every other store error into its answer.
pub trait About<T> {
    fn about(self, what: &str) -> Result<T, crate::ApiError>;
}

impl<T> About<T> for Result<T, larder_store::StoreError> {
    fn about(self, what: &str) -> Result<T, crate::ApiError> {
        self.map_err(|e| crate::ApiError::from_store(e, what))
    }
}
