//! What members do, as use cases both the JSON API and the hosted pages call: sign in, set
//! a password from a link, ask for a link, redeem a magic link, sign out. Errors are the
//! API's own ([`ApiError`]); the pages show their messages.

use std::net::IpAddr;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use larder_access::{AppId, Email, MemberId};
use larder_api_common::{About, ApiError, ErrorCode};
use larder_store::{LinkPurpose, MessageKind, NewSession, SessionOwner, Store, StoreError};
use larder_tenancy::{Tenancy, secrets};
use tracing::Instrument;

use crate::limits;
use crate::passwords::{HashError, MAX_PASSWORD_CHARS, Passwords, weakness};

/// How long a session lasts.
pub const SESSION_TTL_DAYS: i64 = 30;

/// What the member API and the hosted pages need.
#[derive(Debug, Clone)]
pub struct MemberState {
    pub store: Arc<dyn Store>,
    pub tenancy: Tenancy,
    pub passwords: Passwords,
    /// Larder's public base URL, without a trailing slash.
    pub public_url: Arc<str>,
    /// How many proxies in front of the service append to `X-Forwarded-For`.
    pub trusted_proxies: usize,
}

/// A session just started: its token (shown once) and when it ends.
#[derive(Clone)]
pub struct IssuedSession {
    pub token: String,
    pub expires_at: DateTime<Utc>,
}

impl std::fmt::Debug for IssuedSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IssuedSession")
            .field("expires_at", &self.expires_at)
            .finish_non_exhaustive()
    }
}

impl IssuedSession {
    fn new() -> Self {
        Self {
            token: secrets::generate_session_token(),
            expires_at: Utc::now() + chrono::Duration::days(SESSION_TTL_DAYS),
        }
    }
}

/// A member's password as it was just checked or set: a session starts only while it is
/// still theirs.
pub struct PasswordSet {
    pub member: MemberId,
    password_hash: String,
}

impl std::fmt::Debug for PasswordSet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PasswordSet")
            .field("member", &self.member)
            .finish_non_exhaustive()
    }
}

fn invalid_link(purpose: LinkPurpose) -> ApiError {
    let what = match purpose {
        LinkPurpose::SetPassword => "This invitation",
        LinkPurpose::MagicLink => "This sign-in link",
        LinkPurpose::PasswordReset => "This password-reset link",
    };
    ApiError::new(
        ErrorCode::InvalidToken,
        format!("{what} is unknown, used or expired; ask for a new one."),
    )
    .field("token")
}

pub(crate) fn invalid_credentials() -> ApiError {
    ApiError::new(
        ErrorCode::InvalidCredentials,
        "The email or the password is wrong.",
    )
}

/// A password that could not be checked: too busy (503, retry in a second), or broken.
fn busy_or_internal(err: HashError) -> ApiError {
    match err {
        HashError::Busy => ApiError::new(
            ErrorCode::Unavailable,
            "Too many passwords are being checked at once; retry in a second.",
        )
        .retry_after(1),
        HashError::Failed => ApiError::internal(),
    }
}

fn weak(message: &str) -> ApiError {
    ApiError::validation(ErrorCode::WeakPassword, "password", message)
}

/// Maps a missing member (erased a moment ago) to `absent`; every other store error to its
/// answer.
fn gone_as<T>(absent: T) -> impl FnOnce(StoreError) -> Result<T, ApiError> {
    move |err| match err {
        StoreError::NotFound => Ok(absent),
        other => Err(ApiError::from_store(other, "member")),
    }
}

impl MemberState {
    pub fn new(
        tenancy: Tenancy,
        passwords: Passwords,
        public_url: &str,
        trusted_proxies: usize,
    ) -> Self {
        Self {
            store: tenancy.store().clone(),
            tenancy,
            passwords,
            public_url: public_url.trim_end_matches('/').into(),
            trusted_proxies,
        }
    }

    /// Signs a member in with their password.
    ///
    /// An unknown app is refused (404) before any password work. A wrong password and an
    /// unknown email cost the same (an unknown email is checked against a dummy hash) and
    /// answer alike. Ten failures for one app and email, or fifty from one client address,
    /// within 15 minutes lock them out (429) until the window passes. When too many
    /// passwords are being checked at once, 503 with `Retry-After` rather than a queue.
    pub async fn sign_in(
        &self,
        app: AppId,
        email: &str,
        password: &str,
        client: Option<IpAddr>,
    ) -> Result<IssuedSession, ApiError> {
        self.store.get_app(app).await.about("app")?;
        let parsed = Email::parse(email).ok();
        let counted = parsed
            .as_ref()
            .map_or_else(|| email.trim().to_lowercase(), |e| e.to_string());
        let cache = self.tenancy.cache();
        // Reserve this attempt's places before the slow check, atomically: parallel
        // attempts each take one, so no burst gets more than the allowed tries. A success
        // (or an attempt that never got checked) gives them back; a failure keeps them.
        // Without a working counter, no sign-in (fail closed).
        let places = limits::take_sign_in(cache.as_ref(), app, &counted, client).await?;
        let found = match &parsed {
            Some(email) => match self.store.member_credentials(app, email).await {
                Ok(found) => found,
                Err(err) => {
                    places.give_back(cache.as_ref()).await;
                    return Err(ApiError::from_store(err, "member"));
                }
            },
            None => None,
        };
        let stored = found.as_ref().and_then(|c| c.password_hash.as_deref());
        let too_long = password.chars().count() > MAX_PASSWORD_CHARS;
        let ok = if too_long {
            false
        } else {
            match self.passwords.verify(password, stored).await {
                Ok(ok) => ok,
                Err(err) => {
                    places.give_back(cache.as_ref()).await;
                    return Err(busy_or_internal(err));
                }
            }
        };
        let (member, hash) = match (ok, found) {
            (true, Some(credentials)) => {
                places.give_back(cache.as_ref()).await;
                let hash = credentials.password_hash.unwrap_or_default();
                (credentials.member_id, hash)
            }
            // The reserved places stay: they are this failure.
            _ => return Err(invalid_credentials()),
        };
        // A password changed since it was checked (a reset) starts no session.
        self.start_session(
            app,
            &PasswordSet {
                member,
                password_hash: hash,
            },
        )
        .await?
        .ok_or_else(invalid_credentials)
    }

    /// Starts a session for the member whose password was just checked or set; `None` when
    /// it changed meanwhile or the member was erased.
    pub async fn start_session(
        &self,
        app: AppId,
        set: &PasswordSet,
    ) -> Result<Option<IssuedSession>, ApiError> {
        let session = IssuedSession::new();
        let started = self
            .store
            .create_session(
                app,
                set.member,
                &set.password_hash,
                NewSession {
                    token_hash: &secrets::hash_token(&session.token),
                    expires_at: session.expires_at,
                },
            )
            .await
            .about("member")?;
        Ok(started.then_some(session))
    }

    /// Sets a password from a link of `purpose` (an invitation or a reset), which is used
    /// up; every session of the member ends and their other links stop working.
    pub async fn set_password(
        &self,
        app: AppId,
        purpose: LinkPurpose,
        token: &str,
        password: &str,
    ) -> Result<PasswordSet, ApiError> {
        let token_hash = secrets::hash_token(token);
        // The link is checked before the slow hash: a wrong one costs nothing. A member
        // erased meanwhile has no links either.
        let member = self
            .store
            .find_link(app, purpose, &token_hash, Utc::now())
            .await
            .or_else(gone_as(None))?
            .ok_or_else(|| invalid_link(purpose))?;
        if let Some(why) = weakness(password, member.email.as_str()) {
            return Err(weak(why));
        }
        let hash = self
            .passwords
            .hash(password)
            .await
            .map_err(busy_or_internal)?;
        // A concurrent use of the same link loses here.
        let member = self
            .store
            .redeem_password_link(app, purpose, &token_hash, &hash, Utc::now())
            .await
            .or_else(gone_as(None))?
            .ok_or_else(|| invalid_link(purpose))?;
        Ok(PasswordSet {
            member,
            password_hash: hash,
        })
    }

    /// Signs a member in with a magic link, which is used up.
    pub async fn redeem_magic_link(
        &self,
        app: AppId,
        token: &str,
    ) -> Result<IssuedSession, ApiError> {
        let session = IssuedSession::new();
        let redeemed = self
            .store
            .redeem_magic_link(
                app,
                &secrets::hash_token(token),
                NewSession {
                    token_hash: &secrets::hash_token(&session.token),
                    expires_at: session.expires_at,
                },
                Utc::now(),
            )
            .await
            .or_else(gone_as(None))?;
        match redeemed {
            Some(_) => Ok(session),
            None => Err(invalid_link(LinkPurpose::MagicLink)),
        }
    }

    /// Queues a magic link or a password-reset link to the app's member with `email`, if
    /// there is one. Answers the same either way, and as fast, so nobody learns who is a
    /// member; only the rate limits (counted for every email alike) refuse. 404 for an
    /// unknown app.
    pub async fn request_link(
        &self,
        app: AppId,
        email: &Email,
        kind: MessageKind,
        client: Option<IpAddr>,
    ) -> Result<(), ApiError> {
        self.store.get_app(app).await.about("app")?;
        limits::take_link_request(self.tenancy.cache().as_ref(), app, email.as_str(), client)
            .await?;
        // Queued once the answer is on its way, so not even its timing tells a member's
        // email from a stranger's (a write for one, none for the other). A process that
        // dies in between loses the request; the member asks again.
        let store = self.store.clone();
        let email = email.clone();
        let queue = async move {
            match store
                .queue_message_by_email(app, &email, kind, Utc::now())
                .await
            {
                Ok(Some(message)) => tracing::info!(
                    larder.message_id = %message.id,
                    larder.message_kind = kind.as_str(),
                    "a member asked for a link"
                ),
                Ok(None) => {}
                Err(err) => tracing::warn!(error = %err, "could not queue a link asked for"),
            }
        };
        tokio::spawn(queue.instrument(tracing::Span::current()));
        Ok(())
    }

    /// The owner of an unexpired session token.
    pub async fn session(&self, token: &str) -> Result<Option<SessionOwner>, ApiError> {
        self.store
            .find_session(&secrets::hash_token(token), Utc::now())
            .await
            .map_err(|err| ApiError::from_store(err, "session"))
    }

    /// Ends the session of `token` (nothing happens for an unknown one).
    pub async fn sign_out(&self, token: &str) -> Result<(), ApiError> {
        self.store
            .delete_session(&secrets::hash_token(token))
            .await
            .about("session")
    }
}
