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
use larder_access::{AppId, Email, MemberId};
use larder_api_common::ErrorBody;
use larder_api_common::body::JsonBody;
use larder_tenancy::{Tenancy, secrets};
use poem::Request;
use poem_openapi::auth::Bearer;
use poem_openapi::param::Path;
use poem_openapi::payload::Json;
use poem_openapi::{ApiResponse, Object, OpenApi, SecurityScheme, Tags};
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
    app: AppId,
    member: MemberId,
    token_hash: String,
}

async fn check_session(req: &Request, bearer: Bearer) -> poem::Result<Session> {
    let state = req
        .data::<MemberState>()
        .ok_or_else(|| poem::Error::from_status(poem::http::StatusCode::INTERNAL_SERVER_ERROR))?;
    let token_hash = secrets::hash_token(&bearer.token);
    match state
        .tenancy
        .store()
        .find_session(&token_hash, Utc::now())
        .await
    {
        Ok(Some((app, member))) => Ok(Session {
            app,
            member,
            token_hash,
        }),
        Ok(None) => Err(MemberError::unauthorized("A valid session token is required.").into()),
        Err(err) => {
            tracing::error!(error = %err, "session lookup failed");
            Err(MemberError::unavailable().into())
        }
    }
}

/// Every error a member operation can answer with.
#[derive(Debug, ApiResponse)]
pub enum MemberError {
    /// Malformed JSON, a bad path parameter, or an unusable invitation token.
    #[oai(status = 400)]
    BadRequest(Json<ErrorBody>),
    /// No session, an expired one, or wrong credentials.
    #[oai(status = 401)]
    Unauthorized(Json<ErrorBody>),
    /// The member no longer exists.
    #[oai(status = 404)]
    NotFound(Json<ErrorBody>),
    /// The request body is over 1 MiB.
    #[oai(status = 413)]
    PayloadTooLarge(Json<ErrorBody>),
    /// The request body is not JSON.
    #[oai(status = 415)]
    UnsupportedMediaType(Json<ErrorBody>),
    /// A field is missing or invalid, or the password is too weak.
    #[oai(status = 422)]
    Unprocessable(Json<ErrorBody>),
    /// Too many failed sign-ins for this email; retry after `Retry-After` seconds.
    #[oai(status = 429)]
    RateLimited(
        Json<ErrorBody>,
        /// Seconds until sign-in is allowed again.
        #[oai(header = "Retry-After")]
        u64,
    ),
    /// Something went wrong on our side.
    #[oai(status = 500)]
    Internal(Json<ErrorBody>),
    /// The database is unreachable right now; retry later.
    #[oai(status = 503)]
    Unavailable(Json<ErrorBody>),
}

fn error_body(code: &str, message: &str, field: Option<&str>) -> Json<ErrorBody> {
    Json(ErrorBody {
        code: code.into(),
        message: message.into(),
        field: field.map(Into::into),
    })
}

impl MemberError {
    fn unauthorized(message: &str) -> Self {
        MemberError::Unauthorized(error_body("unauthorized", message, None))
    }

    fn unavailable() -> Self {
        MemberError::Unavailable(error_body(
            "unavailable",
            "The service cannot reach its database right now; retry later.",
            None,
        ))
    }

    fn internal() -> Self {
        MemberError::Internal(error_body("internal_error", "Internal error.", None))
    }

    fn invalid_token() -> Self {
        MemberError::BadRequest(error_body(
            "invalid_token",
            "This invitation is unknown, used or expired; ask for a new one.",
            Some("token"),
        ))
    }

    fn invalid_credentials() -> Self {
        MemberError::Unauthorized(error_body(
            "invalid_credentials",
            "The email or the password is wrong.",
            None,
        ))
    }

    fn store(err: larder_store::StoreError) -> Self {
        match err {
            larder_store::StoreError::NotFound => {
                MemberError::NotFound(error_body("not_found", "No such member.", None))
            }
            larder_store::StoreError::Unavailable(e) => {
                tracing::error!(error = %e, "database unavailable");
                MemberError::unavailable()
            }
            other => {
                tracing::error!(error = ?other, "database error");
                MemberError::internal()
            }
        }
    }
}

fn parse_app(raw: &str) -> Result<AppId, MemberError> {
    raw.parse().map_err(|_| {
        MemberError::BadRequest(error_body(
            "invalid_parameter",
            "`app_id` is not a valid id.",
            Some("app_id"),
        ))
    })
}

#[derive(Debug, Object)]
#[oai(example)]
pub struct SetPasswordRequest {
    /// The token of the invitation link.
    pub token: String,
    /// At least 10 characters (at most 1024), and not the email address.
    #[oai(validator(min_length = 10, max_length = 1024))]
    pub password: String,
}

#[derive(Debug, Object)]
#[oai(example)]
pub struct SignInRequest {
    pub email: String,
    pub password: String,
}

#[derive(Debug, Object)]
pub struct SessionView {
    /// Send as `Authorization: Bearer <token>`.
    pub token: String,
    pub expires_at: DateTime<Utc>,
}

#[derive(Debug, Object)]
#[oai(rename = "MemberAccessLevel")]
pub struct LevelView {
    pub id: String,
    pub name: String,
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

#[derive(Debug, ApiResponse)]
pub enum Done {
    /// Done.
    #[oai(status = 204)]
    NoContent,
}

#[derive(Debug, ApiResponse)]
pub enum SignedIn {
    /// Signed in.
    #[oai(status = 201)]
    Created(Json<SessionView>),
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

fn weak(message: &str) -> MemberError {
    MemberError::Unprocessable(error_body("weak_password", message, Some("password")))
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
        #[oai(validator(
            pattern = "^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$"
        ))]
        app_id: Path<String>,
        body: JsonBody<SetPasswordRequest>,
    ) -> Result<Done, MemberError> {
        let app = parse_app(&app_id)?;
        let store = self.state.tenancy.store();
        let token_hash = secrets::hash_token(&body.token);
        let member = store
            .find_invitation(app, &token_hash, Utc::now())
            .await
            .map_err(MemberError::store)?
            .ok_or_else(MemberError::invalid_token)?;
        if let Some(why) = weakness(&body.password, &member.email) {
            return Err(weak(why));
        }
        let hash = self
            .state
            .passwords
            .hash(&body.password)
            .await
            .map_err(|_| MemberError::internal())?;
        // A concurrent use of the same invitation loses here.
        if !store
            .redeem_invitation(app, &token_hash, &hash, Utc::now())
            .await
            .map_err(MemberError::store)?
        {
            return Err(MemberError::invalid_token());
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
        #[oai(validator(
            pattern = "^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$"
        ))]
        app_id: Path<String>,
        body: JsonBody<SignInRequest>,
    ) -> Result<SignedIn, MemberError> {
        let app = parse_app(&app_id)?;
        let email = Email::parse(&body.email)
            .map(|e| e.to_string())
            .unwrap_or_else(|_| body.email.trim().to_lowercase());
        let cache = self.state.tenancy.cache();
        let key = failures_key(app, &email);
        // Reserve this attempt before the slow check, atomically: parallel attempts each
        // take a place, so no burst gets more than the allowed tries. A success gives its
        // place back; a failure keeps it. Without a working counter, no sign-in (fail closed).
        let (attempts, left) = cache.add(&key, 1, FAILURE_WINDOW).await.map_err(|err| {
            tracing::error!(error = %err, "could not count a sign-in attempt");
            MemberError::unavailable()
        })?;
        if attempts > MAX_FAILURES {
            return Err(MemberError::RateLimited(
                error_body(
                    "rate_limited",
                    "Too many failed sign-ins for this email; try again later.",
                    None,
                ),
                left.as_secs().max(1),
            ));
        }
        let store = self.state.tenancy.store();
        let found = store
            .member_password(app, &email)
            .await
            .map_err(MemberError::store)?;
        let stored = found.as_ref().and_then(|(_, h)| h.as_deref());
        let too_long = body.password.chars().count() > MAX_PASSWORD_CHARS;
        let ok = !too_long && self.state.passwords.verify(&body.password, stored).await;
        let member = match (ok, found) {
            (true, Some((member, _))) => {
                if let Err(err) = cache.add(&key, -1, FAILURE_WINDOW).await {
                    tracing::warn!(error = %err, "could not release a sign-in attempt");
                }
                member
            }
            // The reserved place stays: it is this failure.
            _ => return Err(MemberError::invalid_credentials()),
        };
        let token = secrets::generate_session_token();
        let expires_at = Utc::now() + chrono::Duration::days(SESSION_TTL_DAYS);
        store
            .create_session(app, member, &secrets::hash_token(&token), expires_at)
            .await
            .map_err(MemberError::store)?;
        Ok(SignedIn::Created(Json(SessionView { token, expires_at })))
    }

    /// Who am I
    ///
    /// The signed-in member and the access levels they have now.
    #[oai(path = "/me", method = "get", operation_id = "getMe")]
    async fn me(&self, auth: MemberAuth) -> Result<Json<MeView>, MemberError> {
        let session = auth.0;
        let (member, _) = self
            .state
            .tenancy
            .store()
            .get_member(session.app, session.member)
            .await
            .map_err(MemberError::store)?;
        Ok(Json(MeView {
            id: member.id.to_string(),
            email: member.email,
            name: member.name,
            access_levels: member
                .access_levels
                .into_iter()
                .map(|l| LevelView {
                    id: l.id.to_string(),
                    name: l.name,
                })
                .collect(),
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
    async fn sign_out(&self, auth: MemberAuth) -> Result<Done, MemberError> {
        self.state
            .tenancy
            .store()
            .delete_session(&auth.0.token_hash)
            .await
            .map_err(MemberError::store)?;
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
