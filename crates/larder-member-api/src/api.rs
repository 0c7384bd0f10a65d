//! The member API: a member sets a password from an invitation, signs in with a password or
//! a magic link, resets a forgotten password, reads their access, and signs out.

use chrono::{DateTime, Utc};
use larder_access::{AppId, Email};
use larder_api_common::body::JsonBody;
use larder_api_common::fields::EmailField;
use larder_api_common::{
    About, Accepted, ApiError, Created, Done, ErrorCode, Fails, Found, JSON_BODY, LevelView,
    NOT_FOUND, PathId, SERVER, TOO_MANY_REQUESTS, UNAUTHORIZED,
};
use larder_store::{LinkPurpose, MessageKind, SessionOwner};
use poem::Request;
use poem_openapi::auth::Bearer;
use poem_openapi::param::Path;
use poem_openapi::{Object, OpenApi, SecurityScheme, Tags};

use crate::client::client_address;
use crate::service::{IssuedSession, MemberState};

#[derive(Tags)]
enum Tag {
    /// Members: set a password, sign in (with a password or a magic link), reset a
    /// password, see your access.
    Member,
}

/// A member's session: `Authorization: Bearer <session token>`.
#[derive(Debug, SecurityScheme)]
#[oai(ty = "bearer", checker = "check_session")]
pub struct MemberAuth(Session);

#[derive(Debug, Clone)]
struct Session {
    owner: SessionOwner,
    token: String,
}

/// The app of the session a request signed in with, for answers that depend on it (the
/// CORS headers of the member API's paths that name no app). Put in a request's extensions
/// before it is handled; filled in once its session is known.
#[derive(Debug, Clone, Default)]
pub struct SessionApp(pub std::sync::Arc<std::sync::OnceLock<AppId>>);

async fn check_session(req: &Request, bearer: Bearer) -> poem::Result<Session> {
    let state = req
        .data::<MemberState>()
        .ok_or_else(|| poem::Error::from_status(poem::http::StatusCode::INTERNAL_SERVER_ERROR))?;
    match state.session(&bearer.token).await {
        Ok(Some(owner)) => {
            if let Some(slot) = req.extensions().get::<SessionApp>() {
                let _ = slot.0.set(owner.app_id);
            }
            Ok(Session {
                owner,
                token: bearer.token,
            })
        }
        Ok(None) => Err(ApiError::new(
            ErrorCode::Unauthorized,
            "A valid session token is required.",
        )
        .into()),
        Err(err) => Err(err.into()),
    }
}

#[derive(Object)]
#[oai(example)]
pub struct SetPasswordRequest {
    /// The token of the link (`token=` in its URL).
    #[oai(validator(pattern = r"^[^\x00]*$"))]
    pub token: String,
    /// At least 10 characters (at most 1024), and not the email address.
    #[oai(validator(min_length = 10, max_length = 1024, pattern = r"^[^\x00]*$"))]
    pub password: String,
}

#[derive(Object)]
#[oai(example)]
pub struct SignInRequest {
    #[oai(validator(pattern = r"^[^\x00]*$"))]
    pub email: String,
    #[oai(validator(pattern = r"^[^\x00]*$"))]
    pub password: String,
}

/// Who wants a link.
#[derive(Debug, Object)]
#[oai(example)]
pub struct LinkRequest {
    /// The member's email address.
    pub email: EmailField,
}

/// A link's token, to use it.
#[derive(Object)]
#[oai(example)]
pub struct RedeemLinkRequest {
    /// The token of the link (`token=` in its URL).
    #[oai(validator(pattern = r"^[^\x00]*$"))]
    pub token: String,
}

// Tokens and passwords stay out of any `Debug` output.
impl std::fmt::Debug for SetPasswordRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SetPasswordRequest").finish_non_exhaustive()
    }
}

impl std::fmt::Debug for SignInRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SignInRequest").finish_non_exhaustive()
    }
}

impl std::fmt::Debug for RedeemLinkRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedeemLinkRequest").finish_non_exhaustive()
    }
}

#[derive(Object)]
pub struct SessionView {
    /// Send as `Authorization: Bearer <token>`.
    pub token: String,
    pub expires_at: DateTime<Utc>,
}

impl From<IssuedSession> for SessionView {
    fn from(s: IssuedSession) -> Self {
        Self {
            token: s.token,
            expires_at: s.expires_at,
        }
    }
}

impl std::fmt::Debug for SessionView {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SessionView")
            .field("expires_at", &self.expires_at)
            .finish_non_exhaustive()
    }
}

/// What happens now that a link was asked for.
#[derive(Debug, Object)]
pub struct LinkRequestedView {
    /// In words, the same whether or not the email is a member's.
    pub message: String,
}

#[derive(Debug, Object)]
#[oai(example)]
pub struct MeView {
    pub id: String,
    pub email: String,
    #[oai(nullable)]
    pub name: Option<String>,
    /// The access levels the member has now.
    pub access_levels: Vec<LevelView>,
}

/// The request's email as the store keeps it.
fn parse_email(field: &EmailField) -> Result<Email, ApiError> {
    Email::parse(field).map_err(|_| {
        ApiError::validation(
            ErrorCode::ValidationFailed,
            "email",
            "`email` must be an email address.",
        )
    })
}

/// The member API.
#[derive(Debug)]
pub struct MemberApi {
    pub state: MemberState,
}

impl MemberApi {
    async fn request_link(
        &self,
        req: &Request,
        app: AppId,
        body: &LinkRequest,
        kind: MessageKind,
    ) -> Result<Accepted<LinkRequestedView>, ApiError> {
        let email = parse_email(&body.email)?;
        let client = client_address(req, self.state.trusted_proxies);
        self.state.request_link(app, &email, kind, client).await?;
        let what = match kind {
            MessageKind::PasswordReset => "a link to set a new password",
            _ => "a sign-in link",
        };
        Ok(Accepted::of(LinkRequestedView {
            message: format!(
                "If {email} belongs to a member of this app, {what} is on its way to it."
            ),
        }))
    }
}

#[OpenApi(prefix_path = "/member/v1", tag = "Tag::Member")]
impl MemberApi {
    /// Set a password from an invitation
    ///
    /// Uses the invitation (once) and ends every session of the member; 400
    /// `invalid_token` for a used, expired or unknown one, 422 `weak_password` for a
    /// password under 10 characters or equal to the email.
    #[oai(
        path = "/apps/:app_id/password",
        method = "post",
        operation_id = "setPassword"
    )]
    async fn set_password(
        &self,
        app_id: Path<PathId<AppId>>,
        body: JsonBody<SetPasswordRequest>,
    ) -> Result<Done, Fails<{ JSON_BODY | SERVER }>> {
        self.state
            .set_password(
                **app_id,
                LinkPurpose::SetPassword,
                &body.token,
                &body.password,
            )
            .await?;
        Ok(Done::NoContent)
    }

    /// Sign in
    ///
    /// 401 `invalid_credentials` for a wrong password and an unknown email alike; 404 for
    /// an unknown app. After 10 failures for one app and email, or 50 from one client
    /// address, within 15 minutes, 429 `rate_limited` (even for the right password) until
    /// the window has passed. 503 with `Retry-After` when too many passwords are being
    /// checked at once.
    #[oai(
        path = "/apps/:app_id/sessions",
        method = "post",
        operation_id = "signIn"
    )]
    async fn sign_in(
        &self,
        req: &Request,
        app_id: Path<PathId<AppId>>,
        body: JsonBody<SignInRequest>,
    ) -> Result<
        Created<SessionView>,
        Fails<{ JSON_BODY | UNAUTHORIZED | NOT_FOUND | TOO_MANY_REQUESTS | SERVER }>,
    > {
        let client = client_address(req, self.state.trusted_proxies);
        let session = self
            .state
            .sign_in(**app_id, &body.email, &body.password, client)
            .await?;
        Ok(Created::of(session))
    }

    /// Ask for a magic link
    ///
    /// Emails the member a link that signs them in, once, within 15 minutes. Answers 202
    /// whether or not the email is a member's. At most 5 links per email and 20 per client
    /// address within 15 minutes (magic links and password resets together); then 429
    /// `rate_limited` with `Retry-After`. 404 for an unknown app.
    #[oai(
        path = "/apps/:app_id/magic-links",
        method = "post",
        operation_id = "requestMagicLink"
    )]
    async fn request_magic_link(
        &self,
        req: &Request,
        app_id: Path<PathId<AppId>>,
        body: JsonBody<LinkRequest>,
    ) -> Result<
        Accepted<LinkRequestedView>,
        Fails<{ JSON_BODY | NOT_FOUND | TOO_MANY_REQUESTS | SERVER }>,
    > {
        Ok(self
            .request_link(req, **app_id, &body, MessageKind::MagicLink)
            .await?)
    }

    /// Sign in with a magic link
    ///
    /// Uses the link (once) and starts a session, as signing in with a password does. 400
    /// `invalid_token` for a used, expired or unknown link.
    #[oai(
        path = "/apps/:app_id/magic-links/redeem",
        method = "post",
        operation_id = "redeemMagicLink"
    )]
    async fn redeem_magic_link(
        &self,
        app_id: Path<PathId<AppId>>,
        body: JsonBody<RedeemLinkRequest>,
    ) -> Result<Created<SessionView>, Fails<{ JSON_BODY | SERVER }>> {
        let session = self.state.redeem_magic_link(**app_id, &body.token).await?;
        Ok(Created::of(session))
    }

    /// Ask for a password reset
    ///
    /// Emails the member a link to set a new password, valid once for an hour. Answers 202
    /// whether or not the email is a member's; rate limited as magic links are (shared
    /// counts), 429 `rate_limited` with `Retry-After`. 404 for an unknown app.
    #[oai(
        path = "/apps/:app_id/password-resets",
        method = "post",
        operation_id = "requestPasswordReset"
    )]
    async fn request_password_reset(
        &self,
        req: &Request,
        app_id: Path<PathId<AppId>>,
        body: JsonBody<LinkRequest>,
    ) -> Result<
        Accepted<LinkRequestedView>,
        Fails<{ JSON_BODY | NOT_FOUND | TOO_MANY_REQUESTS | SERVER }>,
    > {
        Ok(self
            .request_link(req, **app_id, &body, MessageKind::PasswordReset)
            .await?)
    }

    /// Set a new password from a reset link
    ///
    /// Uses the link (once), sets the password and ends every session of the member. 400
    /// `invalid_token` for a used, expired or unknown link, 422 `weak_password` as for
    /// setting a password.
    #[oai(
        path = "/apps/:app_id/password-resets/redeem",
        method = "post",
        operation_id = "redeemPasswordReset"
    )]
    async fn redeem_password_reset(
        &self,
        app_id: Path<PathId<AppId>>,
        body: JsonBody<SetPasswordRequest>,
    ) -> Result<Done, Fails<{ JSON_BODY | SERVER }>> {
        self.state
            .set_password(
                **app_id,
                LinkPurpose::PasswordReset,
                &body.token,
                &body.password,
            )
            .await?;
        Ok(Done::NoContent)
    }

    /// Who am I
    ///
    /// The signed-in member and the access levels they have now.
    #[oai(path = "/me", method = "get", operation_id = "getMe")]
    async fn me(
        &self,
        auth: MemberAuth,
    ) -> Result<Found<MeView>, Fails<{ UNAUTHORIZED | NOT_FOUND | SERVER }>> {
        let owner = auth.0.owner;
        let member = self
            .state
            .store
            .get_member(owner.app_id, owner.member_id)
            .await
            .about("member")?
            .member;
        Ok(Found::of(MeView {
            id: member.id.to_string(),
            email: member.email.to_string(),
            name: member.name,
            access_levels: member.access_levels.into_iter().map(Into::into).collect(),
        }))
    }

    /// Sign out
    ///
    /// Ends the session whose token authorises this request.
    #[oai(
        path = "/sessions/current",
        method = "delete",
        operation_id = "signOut"
    )]
    async fn sign_out(&self, auth: MemberAuth) -> Result<Done, Fails<{ UNAUTHORIZED | SERVER }>> {
        self.state.sign_out(&auth.0.token).await?;
        Ok(Done::NoContent)
    }
}

impl poem_openapi::types::Example for SetPasswordRequest {
    fn example() -> Self {
        Self {
            token: "li_Q2hpY2tlbiBzb3VwIGZvciB0aGUgc291bA".into(),
            password: "correct horse battery staple".into(),
        }
    }
}

impl poem_openapi::types::Example for SignInRequest {
    fn example() -> Self {
        Self {
            email: "avery.quinn@example.com".into(),
            password: "correct horse battery staple".into(),
        }
    }
}

impl poem_openapi::types::Example for LinkRequest {
    fn example() -> Self {
        Self {
            email: EmailField("avery.quinn@example.com".into()),
        }
    }
}

impl poem_openapi::types::Example for RedeemLinkRequest {
    fn example() -> Self {
        Self {
            token: "lm_Q2hpY2tlbiBzb3VwIGZvciB0aGUgc291bA".into(),
        }
    }
}

impl poem_openapi::types::Example for MeView {
    fn example() -> Self {
        Self {
            id: "01a21af4-c5d8-7242-a47f-2353fee99c4f".into(),
            email: "avery.quinn@example.com".into(),
            name: Some("Avery Quinn".into()),
            access_levels: vec![LevelView {
                id: "01a21adf-1965-7166-8ba8-81632aa17ed4".into(),
                name: "Gold".into(),
            }],
        }
    }
}
