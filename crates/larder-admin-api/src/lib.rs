//! Larder's admin API: apps, API keys, access levels, the ThriveCart integration and its
//! product mappings, documented with poem-openapi.
//!
//! Handlers stay thin: authenticate, scope to the app, call one store method, publish the
//! change to the tenancy caches where one matters, map the result. Every error answers the
//! shared body of [`error::ErrorBody`]. The operator may act on every app; an app's API key
//! only on its own, and another app's objects answer 404.

mod activity;
mod apps;
mod auth;
mod levels;
mod members;
mod thrivecart;

use std::sync::Arc;

use larder_gateway::Gateway;
use larder_tenancy::Tenancy;
use poem_openapi::Tags;

pub use larder_api_common::{ApiError, ErrorBody, body, error, error_response, paging};

/// What every admin operation needs.
#[derive(Debug, Clone)]
pub struct AdminState {
    pub tenancy: Tenancy,
    pub gateway: Gateway,
    /// Base of webhook URLs, without a trailing slash.
    pub public_url: Arc<str>,
}

impl AdminState {
    pub fn new(tenancy: Tenancy, public_url: &str) -> Self {
        Self {
            gateway: Gateway::new(tenancy.clone()),
            tenancy,
            public_url: public_url.trim_end_matches('/').into(),
        }
    }

    pub fn webhook_url(&self, token: &str) -> String {
        format!("{}/webhooks/thrivecart/{token}", self.public_url)
    }
}

#[derive(Tags)]
enum Tag {
    /// Apps (tenants) and their API keys. Creating and listing apps is for the operator.
    Apps,
    /// Access levels an app grants to its members.
    AccessLevels,
    /// An app's ThriveCart integration: webhook URL, secret word, policies, product mappings.
    Thrivecart,
    /// Members and the access their purchases gave them.
    Members,
    /// Every ThriveCart delivery and what became of it; replays.
    Activity,
}

/// The admin API as one poem-openapi service value.
pub fn admin_api(
    state: AdminState,
) -> (
    apps::AppsApi,
    levels::LevelsApi,
    thrivecart::ThriveCartApi,
    members::MembersApi,
    activity::ActivityApi,
) {
    (
        apps::AppsApi {
            state: state.clone(),
        },
        levels::LevelsApi {
            state: state.clone(),
        },
        thrivecart::ThriveCartApi {
            state: state.clone(),
        },
        members::MembersApi {
            state: state.clone(),
        },
        activity::ActivityApi { state },
    )
}

/// A name field: trimmed, 1–200 characters, no control characters. 422 otherwise.
fn parse_name(raw: &str) -> Result<larder_access::Name, ApiError> {
    larder_access::Name::parse(raw)
        .map_err(|e| ApiError::validation("validation_failed", "name", format!("`name` {e}.")))
}
