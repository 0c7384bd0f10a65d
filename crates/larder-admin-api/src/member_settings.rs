//! What an app's members receive and where their links go.

use larder_access::{AppId, Email};
use larder_api_common::body::JsonBody;
use larder_api_common::fields::{
    BodyTemplateField, EmailField, OriginField, SenderNameField, SubjectTemplateField, WebUrlField,
};
use larder_api_common::{About, ApiError, Changed, ErrorCode, Found, PathId};
use larder_store::{MemberSettings, MemberSettingsPatch};
use poem_openapi::param::Path;
use poem_openapi::types::MaybeUndefined;
use poem_openapi::{Enum, Object, OpenApi};

use crate::auth::AdminAuth;
use crate::{AdminState, ReadFails, Tag, WriteFails};

#[derive(Debug)]
pub struct MemberSettingsApi {
    pub(crate) state: AdminState,
}

/// What the welcome email offers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Enum)]
#[oai(rename_all = "snake_case", remote = "larder_store::WelcomeEmail")]
pub enum WelcomeEmail {
    /// A link to set a password.
    SetPassword,
    /// A magic link that signs the member in.
    MagicLink,
    /// No welcome email.
    Off,
}

/// What the app's members receive and where their links go.
#[derive(Debug, Object)]
#[oai(example)]
pub struct MemberSettingsView {
    /// The base URL of the app's own member front end: links go to
    /// `{member_url}/set-password?token=…` and the like. `null`: to the pages Larder serves.
    #[oai(nullable)]
    pub member_url: Option<String>,
    /// The display name messages come from (the address is the service's).
    #[oai(nullable)]
    pub sender_name: Option<String>,
    /// Where replies to messages go.
    #[oai(nullable)]
    pub reply_to: Option<String>,
    pub welcome_email: WelcomeEmail,
    /// Welcome the buyers of test-mode purchases too.
    pub welcome_for_test_purchases: bool,
    /// The welcome's subject; placeholders `{{app_name}}`, `{{member_name}}`,
    /// `{{member_email}}`, `{{access_levels}}`, `{{link}}`. `null`: the default.
    #[oai(nullable)]
    pub subject_template: Option<String>,
    /// The welcome's text, with the same placeholders (escaped in its HTML twin). `null`:
    /// the default.
    #[oai(nullable)]
    pub body_template: Option<String>,
    /// Origins allowed to call the member API from a browser (`https://members.example.com`).
    pub cors_origins: Vec<String>,
}

impl From<MemberSettings> for MemberSettingsView {
    fn from(s: MemberSettings) -> Self {
        Self {
            member_url: s.member_url,
            sender_name: s.sender_name,
            reply_to: s.reply_to.map(|e| e.to_string()),
            welcome_email: s.welcome_email.into(),
            welcome_for_test_purchases: s.welcome_for_test_purchases,
            subject_template: s.subject_template,
            body_template: s.body_template,
            cors_origins: s.cors_origins,
        }
    }
}

impl poem_openapi::types::Example for MemberSettingsView {
    fn example() -> Self {
        Self {
            member_url: Some("https://members.example.com".into()),
            sender_name: Some("Pantry Club".into()),
            reply_to: Some("help@example.com".into()),
            welcome_email: WelcomeEmail::SetPassword,
            welcome_for_test_purchases: false,
            subject_template: Some("Welcome to {{app_name}}".into()),
            body_template: None,
            cors_origins: vec!["https://members.example.com".into()],
        }
    }
}

/// Only the fields present change; `null` clears a nullable one.
#[derive(Debug, Object)]
#[oai(example)]
pub struct UpdateMemberSettingsRequest {
    /// An absolute http(s) URL without query or fragment, up to 500 characters.
    #[oai(nullable)]
    pub member_url: MaybeUndefined<WebUrlField>,
    /// Up to 100 characters, on one line.
    #[oai(nullable)]
    pub sender_name: MaybeUndefined<SenderNameField>,
    /// An email address.
    #[oai(nullable)]
    pub reply_to: MaybeUndefined<EmailField>,
    pub welcome_email: Option<WelcomeEmail>,
    pub welcome_for_test_purchases: Option<bool>,
    /// Up to 200 characters, on one line.
    #[oai(nullable)]
    pub subject_template: MaybeUndefined<SubjectTemplateField>,
    /// Up to 10,000 characters.
    #[oai(nullable)]
    pub body_template: MaybeUndefined<BodyTemplateField>,
    /// Up to 20 origins, each `scheme://host[:port]`, http or https.
    #[oai(validator(max_items = 20))]
    pub cors_origins: Option<Vec<OriginField>>,
}

impl poem_openapi::types::Example for UpdateMemberSettingsRequest {
    fn example() -> Self {
        Self {
            member_url: MaybeUndefined::Value(WebUrlField("https://members.example.com".into())),
            sender_name: MaybeUndefined::Undefined,
            reply_to: MaybeUndefined::Undefined,
            welcome_email: Some(WelcomeEmail::MagicLink),
            welcome_for_test_purchases: None,
            subject_template: MaybeUndefined::Null,
            body_template: MaybeUndefined::Undefined,
            cors_origins: Some(vec![OriginField("https://members.example.com".into())]),
        }
    }
}

/// A field's new value: `Some(None)` to clear it, `None` to leave it.
fn patch<F, T>(value: &MaybeUndefined<F>, map: impl Fn(&F) -> T) -> Option<Option<T>> {
    match value {
        MaybeUndefined::Undefined => None,
        MaybeUndefined::Null => Some(None),
        MaybeUndefined::Value(v) => Some(Some(map(v))),
    }
}

/// An origin as browsers send it: lowercase, no trailing slash, no default port.
pub fn origin(field: &OriginField) -> String {
    let origin = field.as_str().trim_end_matches('/').to_ascii_lowercase();
    for (scheme, port) in [("https://", ":443"), ("http://", ":80")] {
        if origin.starts_with(scheme)
            && let Some(bare) = origin.strip_suffix(port)
        {
            return bare.to_owned();
        }
    }
    origin
}

#[OpenApi(prefix_path = "/admin/v1/apps", tag = "Tag::Members")]
impl MemberSettingsApi {
    /// Get the member settings
    ///
    /// What the app's members receive (the welcome email and its wording) and where their
    /// links go, and which browser origins may call the member API.
    #[oai(
        path = "/:app_id/member-settings",
        method = "get",
        operation_id = "getMemberSettings"
    )]
    async fn get(
        &self,
        auth: AdminAuth,
        app_id: Path<PathId<AppId>>,
    ) -> Result<Found<MemberSettingsView>, ReadFails> {
        let app = self.state.scope(&auth, &app_id).await?;
        let settings = self.state.store.member_settings(app).await.about("app")?;
        Ok(Found::of(settings))
    }

    /// Change the member settings
    ///
    /// Only the fields present change; `null` clears a nullable one.
    #[oai(
        path = "/:app_id/member-settings",
        method = "patch",
        operation_id = "updateMemberSettings"
    )]
    async fn update(
        &self,
        auth: AdminAuth,
        app_id: Path<PathId<AppId>>,
        body: JsonBody<UpdateMemberSettingsRequest>,
    ) -> Result<Changed<MemberSettingsView>, WriteFails> {
        let app = self.state.scope(&auth, &app_id).await?;
        let reply_to = match patch(&body.reply_to, |e| Email::parse(e)) {
            Some(Some(Err(_))) => {
                return Err(ApiError::validation(
                    ErrorCode::ValidationFailed,
                    "reply_to",
                    "`reply_to` must be an email address.",
                )
                .into());
            }
            Some(Some(Ok(email))) => Some(Some(email)),
            Some(None) => Some(None),
            None => None,
        };
        let change = MemberSettingsPatch {
            member_url: patch(&body.member_url, |u| u.trim_end_matches('/').to_owned()),
            sender_name: patch(&body.sender_name, |n| n.trim().to_owned()),
            reply_to,
            welcome_email: body.welcome_email.map(Into::into),
            welcome_for_test_purchases: body.welcome_for_test_purchases,
            subject_template: patch(&body.subject_template, |t| t.trim().to_owned()),
            body_template: patch(&body.body_template, |t| t.as_str().to_owned()),
            cors_origins: body.cors_origins.as_ref().map(|origins| {
                let mut unique: Vec<String> = Vec::with_capacity(origins.len());
                for o in origins.iter().map(origin) {
                    if !unique.contains(&o) {
                        unique.push(o);
                    }
                }
                unique
            }),
        };
        let (before, saved) = self
            .state
            .store
            .update_member_settings(app, change)
            .await
            .about("app")?;
        if before.cors_origins != saved.cors_origins {
            self.state
                .tenancy
                .cors_changed(app, &before.cors_origins, &saved.cors_origins)
                .await;
        }
        Ok(Changed::of(saved))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use poem_openapi::types::ParseFromJSON;

    #[test]
    fn origins_are_scheme_host_and_port_only() {
        let parse = |raw: &str| OriginField::parse_from_json(Some(raw.into())).ok();
        assert_eq!(
            parse("https://Members.Example.com")
                .as_ref()
                .map(origin)
                .as_deref(),
            Some("https://members.example.com")
        );
        assert_eq!(
            parse("http://localhost:5173/")
                .as_ref()
                .map(origin)
                .as_deref(),
            Some("http://localhost:5173")
        );
        assert_eq!(
            parse("https://members.example.com:443")
                .as_ref()
                .map(origin)
                .as_deref(),
            Some("https://members.example.com")
        );
        assert_eq!(
            parse("http://localhost:8443")
                .as_ref()
                .map(origin)
                .as_deref(),
            Some("http://localhost:8443")
        );
        for bad in [
            "members.example.com",
            "ftp://example.com",
            "https://example.com/app",
            "https://example.com?x=1",
            "https://user@example.com",
            "*",
        ] {
            assert!(parse(bad).is_none(), "{bad}");
        }
    }
}
