//! Larder's member API: a member sets a password from an invitation, signs in, reads their
//! access, and signs out.
//!
//! Passwords are argon2id (OWASP's recommended 19 MiB, 2 passes, 1 lane). Hashing runs on
//! the blocking pool behind a semaphore of one permit per core, so a storm of sign-ins queues
//! there instead of stalling the async workers that answer webhooks. A wrong password and
//! an unknown email cost the same (an unknown email is checked against a dummy hash) and
//! answer alike. Ten failures for one app and email within 15 minutes lock that pair out
//! (429) until the window passes, counted in Redis when it is configured so every process
//! sees the same count.

use std::sync::Arc;
use std::time::Duration;

use argon2::{Argon2, PasswordHasher, PasswordVerifier};
use chrono::{DateTime, Utc};
use larder_access::{AppId, Email};
use larder_api_common::body::JsonBody;
use larder_api_common::{
    About, ApiError, Created, Done, ErrorCode, Fails, Found, JSON_BODY, LevelView, NOT_FOUND,
    PathId, SERVER, TOO_MANY_REQUESTS, UNAUTHORIZED,
};
use larder_store::{SessionOwner, Store};
use larder_tenancy::{Tenancy, secrets};
use poem::Request;
use poem_openapi::auth::Bearer;
use poem_openapi::param::Path;
use poem_openapi::{Object, OpenApi, SecurityScheme, Tags};
use tokio::sync::Semaphore;

/// How long a session lasts.
const SESSION_TTL_DAYS: i64 = 30;
/// Failures allowed per app and email within [`FAILURE_WINDOW`].
const MAX_FAILURES: i64 = 10;
const FAILURE_WINDOW: Duration = Duration::from_secs(15 * 60);
/// The shortest password accepted.
const MIN_PASSWORD_CHARS: usize = 10;
/// Longer passwords are refused rather than hashed (a cheap denial-of-service guard).
const MAX_PASSWORD_CHARS: usize = 1024;

/// Argon2id hashing off the async runtime, with bounded concurrency.
#[derive(Debug, Clone)]
pub struct Passwords {
    permits: Arc<Semaphore>,
    /// Verified against when the email is unknown, so both cases take as long.
    dummy: Arc<str>,
}

#[derive(Debug, thiserror::Error)]
#[error("password hashing failed")]
pub struct HashError;

impl Passwords {
    /// `concurrency` hashes at a time (one per core is right: argon2 is CPU-bound).
    pub fn new(concurrency: usize) -> Self {
        let dummy = Argon2::default()
            .hash_password(secrets::generate_session_token().as_bytes())
            .map(|h| h.to_string())
            .unwrap_or_default();
        Self {
            permits: Arc::new(Semaphore::new(concurrency.max(1))),
            dummy: dummy.into(),
        }
    }

    async fn blocking<T: Send + 'static>(
        &self,
        work: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, HashError> {
        let _permit = self.permits.acquire().await.map_err(|_| HashError)?;
        tokio::task::spawn_blocking(work)
            .await
            .map_err(|_| HashError)
    }

    pub async fn hash(&self, password: &str) -> Result<String, HashError> {
        let password = password.to_owned();
        self.blocking(move || {
            Argon2::default()
                .hash_password(password.as_bytes())
                .map(|h| h.to_string())
                .map_err(|_| HashError)
        })
        .await?
    }

    /// Whether `password` matches `stored`; with no stored hash, the same work is done
    /// against a dummy and the answer is no.
    pub async fn verify(&self, password: &str, stored: Option<&str>) -> bool {
        let password = password.to_owned();
        let (hash, real) = match stored {
            Some(h) => (h.to_owned(), true),
            None => (self.dummy.to_string(), false),
        };
        let matches = self
            .blocking(move || {
                Argon2::default()
                    .verify_password(password.as_bytes(), hash.as_str())
                    .is_ok()
            })
            .await
            .unwrap_or(false);
        matches && real
    }
}

/// What the member API needs.
#[derive(Debug, Clone)]
pub struct MemberState {
    pub store: Arc<dyn Store>,
    pub tenancy: Tenancy,
    pub passwords: Passwords,
}

#[derive(Tags)]
enum Tag {
    /// Members: set a password, sign in, see your access.
    Member,
}

/// A member's session: `Authorization: Bearer <session token>`.
#[derive(Debug, SecurityScheme)]
#[oai(ty = "bearer", checker = "check_session")]
pub struct MemberAuth(Session);

#[derive(Debug, Clone)]
struct Session {
    owner: SessionOwner,
    token_hash: String,
}

async fn check_session(req: &Request, bearer: Bearer) -> poem::Result<Session> {
    let state = req
        .data::<MemberState>()
        .ok_or_else(|| poem::Error::from_status(poem::http::StatusCode::INTERNAL_SERVER_ERROR))?;
    let token_hash = secrets::hash_token(&bearer.token);
    match state.store.find_session(&token_hash, Utc::now()).await {
        Ok(Some(owner)) => Ok(Session { owner, token_hash }),
        Ok(None) => Err(ApiError::new(
            ErrorCode::Unauthorized,
            "A valid session token is required.",
        )
        .into()),
        Err(err) => {
            tracing::error!(error = %err, "session lookup failed");
            Err(ApiError::unavailable().into())
        }
    }
}

fn invalid_token() -> ApiError {
    ApiError::new(
        ErrorCode::InvalidToken,
        "This invitation is unknown, used or expired; ask for a new one.",
    )
    .field("token")
}

fn invalid_credentials() -> ApiError {
    ApiError::new(
        ErrorCode::InvalidCredentials,
        "The email or the password is wrong.",
    )
}

#[derive(Object)]
#[oai(example)]
pub struct SetPasswordRequest {
    /// The token of the invitation link.
    pub token: String,
    /// At least 10 characters (at most 1024), and not the email address.
    #[oai(validator(min_length = 10, max_length = 1024))]
    pub password: String,
}

#[derive(Object)]
#[oai(example)]
pub struct SignInRequest {
    pub email: String,
    pub password: String,
}

// The token and the password stay out of any `Debug` output.
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

#[derive(Object)]
pub struct SessionView {
    /// Send as `Authorization: Bearer <token>`.
    pub token: String,
    pub expires_at: DateTime<Utc>,
}

impl std::fmt::Debug for SessionView {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SessionView")
            .field("expires_at", &self.expires_at)
            .finish_non_exhaustive()
    }
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

/// Why a password is refused, or `None`.
fn weakness(password: &str, email: &str) -> Option<&'static str> {
    let chars = password.chars().count();
    if chars < MIN_PASSWORD_CHARS {
        Some("The password needs at least 10 characters.")
    } else if chars > MAX_PASSWORD_CHARS {
        Some("The password may have at most 1024 characters.")
    } else if password.trim().eq_ignore_ascii_case(email.trim()) {
        Some("The password must not be the email address.")
    } else {
        None
    }
}

fn weak(message: &str) -> ApiError {
    ApiError::validation(ErrorCode::WeakPassword, "password", message)
}

/// Maps a missing member (erased a moment ago) to `absent`; every other store error to its
/// answer.
fn gone_as<T>(absent: T) -> impl FnOnce(larder_store::StoreError) -> Result<T, ApiError> {
    move |err| match err {
        larder_store::StoreError::NotFound => Ok(absent),
        other => Err(ApiError::from_store(other, "member")),
    }
}

fn failures_key(app: AppId, email: &str) -> String {
    format!("login:{app}:{}", secrets::hash_token(email))
}

/// The member API.
#[derive(Debug)]
pub struct MemberApi {
    pub state: MemberState,
}

#[OpenApi(prefix_path = "/member/v1", tag = "Tag::Member")]
impl MemberApi {
    /// Set a password from an invitation
    ///
    /// Uses the invitation (once); 400 `invalid_token` for a used, expired or unknown one,
    /// 422 `weak_password` for a password under 10 characters or equal to the email.
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
        let app = **app_id;
        let store = &self.state.store;
        let token_hash = secrets::hash_token(&body.token);
        // A member erased meanwhile has no invitation either.
        let member = store
            .find_invitation(app, &token_hash, Utc::now())
            .await
            .or_else(gone_as(None))?
            .ok_or_else(invalid_token)?;
        if let Some(why) = weakness(&body.password, member.email.as_str()) {
            return Err(weak(why).into());
        }
        let hash = self
            .state
            .passwords
            .hash(&body.password)
            .await
            .map_err(|_| ApiError::internal())?;
        // A concurrent use of the same invitation loses here.
        if !store
            .redeem_invitation(app, &token_hash, &hash, Utc::now())
            .await
            .or_else(gone_as(false))?
        {
            return Err(invalid_token().into());
        }
        Ok(Done::NoContent)
    }

    /// Sign in
    ///
    /// 401 `invalid_credentials` for a wrong password and an unknown email alike. After 10
    /// failures for one app and email within 15 minutes, 429 `rate_limited` (even for the
    /// right password) until the window has passed.
    #[oai(
        path = "/apps/:app_id/sessions",
        method = "post",
        operation_id = "signIn"
    )]
    async fn sign_in(
        &self,
        app_id: Path<PathId<AppId>>,
        body: JsonBody<SignInRequest>,
    ) -> Result<
        Created<SessionView>,
        Fails<{ JSON_BODY | UNAUTHORIZED | TOO_MANY_REQUESTS | SERVER }>,
    > {
        let app = **app_id;
        let email = Email::parse(&body.email).ok();
        let counted = email
            .as_ref()
            .map_or_else(|| body.email.trim().to_lowercase(), |e| e.to_string());
        let cache = self.state.tenancy.cache();
        let key = failures_key(app, &counted);
        // Reserve this attempt before the slow check, atomically: parallel attempts each
        // take a place, so no burst gets more than the allowed tries. A success gives its
        // place back; a failure keeps it. Without a working counter, no sign-in (fail closed).
        let (attempts, left) = cache.add(&key, 1, FAILURE_WINDOW).await.map_err(|err| {
            tracing::error!(error = %err, "could not count a sign-in attempt");
            ApiError::unavailable()
        })?;
        if attempts > MAX_FAILURES {
            return Err(ApiError::new(
                ErrorCode::RateLimited,
                "Too many failed sign-ins for this email; try again later.",
            )
            .retry_after(left.as_secs().max(1))
            .into());
        }
        let found = match &email {
            Some(email) => self
                .state
                .store
                .member_credentials(app, email)
                .await
                .about("member")?,
            None => None,
        };
        let stored = found.as_ref().and_then(|c| c.password_hash.as_deref());
        let too_long = body.password.chars().count() > MAX_PASSWORD_CHARS;
        let ok = !too_long && self.state.passwords.verify(&body.password, stored).await;
        let member = match (ok, found) {
            (true, Some(credentials)) => {
                if let Err(err) = cache.add(&key, -1, FAILURE_WINDOW).await {
                    tracing::warn!(error = %err, "could not release a sign-in attempt");
                }
                credentials.member_id
            }
            // The reserved place stays: it is this failure.
            _ => return Err(invalid_credentials().into()),
        };
        let token = secrets::generate_session_token();
        let expires_at = Utc::now() + chrono::Duration::days(SESSION_TTL_DAYS);
        // A member erased since the password check has no session to get.
        match self
            .state
            .store
            .create_session(app, member, &secrets::hash_token(&token), expires_at)
            .await
        {
            Err(larder_store::StoreError::NotFound) => return Err(invalid_credentials().into()),
            other => other.about("member")?,
        }
        Ok(Created::of(SessionView { token, expires_at }))
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
        self.state
            .store
            .delete_session(&auth.0.token_hash)
            .await
            .about("session")?;
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn weak_passwords_are_named() {
        assert!(weakness("short", "a@b.c").is_some());
        assert!(weakness("Pat@Example.com", "pat@example.com").is_some());
        assert!(weakness(&"x".repeat(1025), "a@b.c").is_some());
        assert_eq!(weakness("correct horse battery", "a@b.c"), None);
    }

    #[tokio::test]
    async fn passwords_verify_only_themselves() {
        let p = Passwords::new(2);
        let hash = p
            .hash("correct horse battery")
            .await
            .expect("hashing works");
        assert!(
            hash.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"),
            "{hash}"
        );
        assert!(p.verify("correct horse battery", Some(&hash)).await);
        assert!(!p.verify("correct horse batter", Some(&hash)).await);
        assert!(!p.verify("correct horse battery", None).await);
        assert!(!p.verify("x", Some("not a hash")).await);
    }
}
