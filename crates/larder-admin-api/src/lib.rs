//! Larder's admin API: apps, API keys, access levels, the ThriveCart integration and its
//! product mappings, members with their grants and overrides, and the activity log,
//! documented with poem-openapi.
//!
//! Handlers stay thin: authenticate, scope to the app, call one store method, publish the
//! change to the tenancy caches where one matters, map the result. Each declares the error
//! statuses it can answer ([`Fails`]); every error answers the shared body of
//! [`ErrorBody`]. The operator may act on every app; an app's API key only on its own, and
//! another app's objects answer 404.

mod activity;
mod apps;
mod auth;
mod levels;
mod member_settings;
mod members;
mod messages;
mod thrivecart;

use std::sync::Arc;

use larder_gateway::Gateway;
use larder_store::Store;
use larder_tenancy::Tenancy;
use poem_openapi::Tags;

pub use larder_api_common::{ApiError, ErrorBody, body, error, error_response, paging};
use larder_api_common::{BAD_REQUEST, CONFLICT, Fails, JSON_BODY, NOT_FOUND, SERVER, UNAUTHORIZED};

/// What every admin operation needs.
#[derive(Debug, Clone)]
pub struct AdminState {
    pub store: Arc<dyn Store>,
    pub tenancy: Tenancy,
    pub gateway: Gateway,
    /// Base of webhook URLs and member links, without a trailing slash.
    pub public_url: Arc<str>,
}

impl AdminState {
    pub fn new(tenancy: Tenancy, gateway: Gateway, public_url: &str) -> Self {
        Self {
            store: tenancy.store().clone(),
            tenancy,
            gateway,
            public_url: public_url.trim_end_matches('/').into(),
        }
    }

    /// The app an app-scoped operation acts on (see [`auth::AdminAuth::app`]).
    async fn scope(
        &self,
        auth: &auth::AdminAuth,
        app: &larder_api_common::PathId<larder_access::AppId>,
    ) -> Result<larder_access::AppId, ApiError> {
        auth.app(&*self.store, app.0).await
    }

    pub fn webhook_url(&self, token: &str) -> String {
        format!("{}/webhooks/thrivecart/{token}", self.public_url)
    }
}

#[derive(Tags)]
enum Tag {
    /// Apps (tenants) and their API keys. Creating, listing and deleting apps is for the
    /// operator.
    Apps,
    /// Access levels an app grants to its members.
    AccessLevels,
    /// An app's ThriveCart integration: webhook URL, secret word, policies, product mappings.
    Thrivecart,
    /// Members, the access their purchases gave them, and what an admin changes of it.
    Members,
    /// Every ThriveCart delivery and what became of it; replays.
    Activity,
}

/// The errors of an operation on an app's objects that takes no body: a bad id (400), no
/// or a wrong token (401), not this app's (404), the database (500, 503).
type ReadFails = Fails<{ BAD_REQUEST | UNAUTHORIZED | NOT_FOUND | SERVER }>;
/// The same, for an operation with a JSON body (adds 413, 415, 422).
type WriteFails = Fails<{ JSON_BODY | UNAUTHORIZED | NOT_FOUND | SERVER }>;
/// A body-less operation that can also conflict with the state of its object.
type ReadConflictFails = Fails<{ BAD_REQUEST | UNAUTHORIZED | NOT_FOUND | CONFLICT | SERVER }>;
/// An operation with a JSON body that can also conflict.
type WriteConflictFails = Fails<{ JSON_BODY | UNAUTHORIZED | NOT_FOUND | CONFLICT | SERVER }>;

/// The admin API as one poem-openapi service value.
pub fn admin_api(
    state: AdminState,
) -> (
    apps::AppsApi,
    levels::LevelsApi,
    thrivecart::ThriveCartApi,
    members::MembersApi,
    messages::MessagesApi,
    member_settings::MemberSettingsApi,
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
        messages::MessagesApi {
            state: state.clone(),
        },
        member_settings::MemberSettingsApi {
            state: state.clone(),
        },
        activity::ActivityApi { state },
    )
}

/// A name field, trimmed. The published rules are checked before a handler runs, so this
/// only fails for what they cannot say.
fn parse_name(
    field: &larder_api_common::fields::NameField,
) -> Result<larder_access::Name, ApiError> {
    larder_access::Name::parse(field).map_err(|e| {
        ApiError::validation(
            larder_api_common::ErrorCode::ValidationFailed,
            "name",
            format!("`name` {e}."),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use larder_api_common::spelled_alike;

    #[test]
    fn api_enums_are_spelled_as_the_domain_spells_them() {
        use larder_access::engine::{EffectKind, ItemStatus};
        use larder_access::thrivecart::Mode;
        use larder_access::{CancellationPolicy, GrantSource, OverrideStatus, TestModePolicy};
        use larder_store::DeliveryStatus;
        assert!(spelled_alike::<_, thrivecart::TestMode>(
            TestModePolicy::ALL
        ));
        assert!(spelled_alike::<_, thrivecart::Cancellation>(
            CancellationPolicy::ALL
        ));
        assert!(spelled_alike::<_, activity::ActivityStatus>(
            DeliveryStatus::ALL
        ));
        assert!(spelled_alike::<_, activity::DeliveryMode>(Mode::ALL));
        assert!(spelled_alike::<_, activity::EffectKindView>(
            EffectKind::ALL
        ));
        assert!(spelled_alike::<_, members::GrantStatus>(ItemStatus::ALL));
        assert!(spelled_alike::<_, members::GrantSourceView>(
            GrantSource::ALL
        ));
        assert!(spelled_alike::<_, members::AccessOverrideStatus>(
            OverrideStatus::ALL
        ));
    }
}
