//! Larder's outbox sender.
//!
//! What Larder must tell a member is queued in the store's outbox, in the transaction of the
//! change that causes it (see `larder_store::OutboxStore`). A [`Sender`] in every `larder
//! serve` process claims due messages, renders them, makes the link each one carries (only
//! the link's hash is stored), hands them to the [`Transport`] and records the attempt.
//! Failures are retried with exponential backoff and jitter (10 s, 20 s, 40 s…, at most 30
//! minutes apart) for a day, then the message is `failed`; a refusal of the message itself
//! (no such mailbox: 550–556) fails it at once. Claims are leased and renewed before each
//! send, so a process that dies mid-send leaves its messages to another (or to itself,
//! restarted) once the lease is up, and a slow batch never outlives its lease.
//!
//! The sender runs on its own task and touches intake only through the store's pool.

pub mod render;
mod transport;

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use larder_metrics::Metrics;
use larder_store::{
    Attempt, ClaimedMessage, LinkPurpose, Message, MessageKind, NewLink, Store, WelcomeEmail,
};
use larder_tenancy::secrets;
use lettre::message::{Mailbox, MultiPart};
use tokio::sync::Notify;
use tracing::Instrument;

pub use transport::{SMTP_TIMEOUT, SendError, Transport, TransportError};

/// How long a claim keeps a message from other senders. Renewed just before each message
/// of a batch is sent, and longer than [`SEND_DEADLINE`], so a message is sent twice only
/// if a process dies after the server took it and before the store heard.
pub const LEASE: Duration = Duration::from_secs(60);
/// The most one attempt at a message may take, from reading its member to the server's
/// answer (lettre's own timeout counts each read and write, not the conversation).
pub const SEND_DEADLINE: Duration = Duration::from_secs(40);
/// Messages claimed at once.
const BATCH: u32 = 20;
/// How often the outbox is looked at when nothing wakes the sender.
const POLL: Duration = Duration::from_secs(1);
/// How long a message is retried before it is `failed`.
pub const RETRY_FOR: Duration = Duration::from_secs(24 * 60 * 60);
/// How long a set-password link (an invitation, a welcome) works.
pub const SET_PASSWORD_TTL: Duration = Duration::from_secs(7 * 24 * 60 * 60);
/// How long a magic link a member asked for works.
pub const MAGIC_LINK_TTL: Duration = Duration::from_secs(15 * 60);
/// How long the magic link of a welcome works: longer than one asked for, since a welcome
/// is read when the buyer gets to it, not at once.
pub const WELCOME_MAGIC_LINK_TTL: Duration = Duration::from_secs(24 * 60 * 60);
/// How long a password-reset link works.
pub const PASSWORD_RESET_TTL: Duration = Duration::from_secs(60 * 60);

/// What the link in a message of `kind` does, and how long it works.
pub fn link_for(kind: MessageKind, welcome: WelcomeEmail) -> (LinkPurpose, Duration) {
    match (kind, welcome) {
        (MessageKind::Welcome, WelcomeEmail::MagicLink) => {
            (LinkPurpose::MagicLink, WELCOME_MAGIC_LINK_TTL)
        }
        // A welcome sent by hand while automatic ones are off still lets the member in.
        (MessageKind::Welcome, WelcomeEmail::SetPassword | WelcomeEmail::Off)
        | (MessageKind::Invitation, _) => (LinkPurpose::SetPassword, SET_PASSWORD_TTL),
        (MessageKind::MagicLink, _) => (LinkPurpose::MagicLink, MAGIC_LINK_TTL),
        (MessageKind::PasswordReset, _) => (LinkPurpose::PasswordReset, PASSWORD_RESET_TTL),
    }
}

/// The wait before the next attempt after `failures` failed ones (1 for the first), given
/// `jitter` in `[0, 1)`: 10 s doubling each time, at most 30 minutes, ±20 %.
pub fn retry_delay(failures: u32, jitter: f64) -> Duration {
    let base = 10.0 * 2f64.powi(i32::try_from(failures.saturating_sub(1).min(20)).unwrap_or(20));
    let capped = base.min(30.0 * 60.0);
    Duration::from_secs_f64(capped * (0.8 + 0.4 * jitter.clamp(0.0, 1.0)))
}

/// What to do after a failed attempt at `message`.
pub fn after_failure(
    message: &Message,
    err: &SendError,
    now: DateTime<Utc>,
    jitter: f64,
) -> Attempt {
    if err.permanent {
        return Attempt::GiveUp {
            error: err.text.clone(),
        };
    }
    let delay = retry_delay(message.attempts + 1, jitter);
    let retry_at = now + chrono::Duration::from_std(delay).unwrap_or(chrono::Duration::MAX);
    let deadline =
        message.created_at + chrono::Duration::from_std(RETRY_FOR).unwrap_or(chrono::Duration::MAX);
    if retry_at > deadline {
        Attempt::GiveUp {
            error: err.text.clone(),
        }
    } else {
        Attempt::Retry {
            error: err.text.clone(),
            retry_at,
        }
    }
}

/// Where messages come from and go.
#[derive(Debug, Clone)]
pub struct MailSettings {
    pub transport: Transport,
    /// The sender's address (`LARDER_MAIL_FROM`); each app may give it a display name.
    pub from: lettre::Address,
    /// Larder's public base URL, for links to the pages it serves.
    pub public_url: String,
}

/// The outbox sender of one process. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Sender {
    store: Arc<dyn Store>,
    mail: Arc<MailSettings>,
    metrics: Metrics,
    wake: Arc<Notify>,
}

impl Sender {
    pub fn new(store: Arc<dyn Store>, mail: MailSettings, metrics: Metrics) -> Self {
        Self {
            store,
            mail: Arc::new(mail),
            metrics,
            wake: Arc::new(Notify::new()),
        }
    }

    /// Wakes the sender now (something was just queued) rather than at its next look.
    pub fn wake(&self) {
        self.wake.notify_one();
    }

    /// Claims what is due and sends it; returns how many messages it attempted.
    pub async fn run_once(&self) -> larder_store::StoreResult<usize> {
        let claimed = self.store.claim_messages(Utc::now(), LEASE, BATCH).await?;
        let count = claimed.len();
        for message in claimed {
            self.send_one(message).await;
        }
        Ok(count)
    }

    /// Sends until the task is aborted.
    pub fn spawn(self) -> tokio::task::JoinHandle<()> {
        tokio::spawn(async move {
            loop {
                match self.run_once().await {
                    // A full batch: there may be more.
                    Ok(n) if n >= BATCH as usize => continue,
                    Ok(_) => {}
                    Err(err) => tracing::warn!(error = %err, "could not read the outbox"),
                }
                let _ = tokio::time::timeout(POLL, self.wake.notified()).await;
            }
        })
    }

    async fn send_one(&self, claimed: ClaimedMessage) {
        let message = &claimed.message;
        let span = tracing::info_span!(
            "outbox.send",
            larder.app_id = %message.app_id,
            larder.message_id = %message.id,
            larder.message_kind = message.kind.as_str(),
        );
        self.attempt(&claimed).instrument(span).await;
    }

    async fn attempt(&self, claimed: &ClaimedMessage) {
        let message = &claimed.message;
        // The batch's lease started when it was claimed; this message's starts now. A
        // claim that ran out and went to another sender is theirs to send.
        match self.store.renew_claim(claimed, LEASE, Utc::now()).await {
            Ok(true) => {}
            Ok(false) => {
                tracing::info!("another sender took this message over; not sending it");
                return;
            }
            Err(err) => {
                tracing::warn!(error = %err, "could not renew the claim on a message");
                return;
            }
        }
        let sent = tokio::time::timeout(SEND_DEADLINE, self.deliver(message)).await;
        let attempt = match sent {
            Ok(Ok(())) => Attempt::Sent,
            Ok(Err(err)) => after_failure(message, &err, Utc::now(), rand::random()),
            Err(_) => {
                let err = SendError {
                    permanent: false,
                    text: format!(
                        "no answer from the mail server within {} s",
                        SEND_DEADLINE.as_secs()
                    ),
                };
                after_failure(message, &err, Utc::now(), rand::random())
            }
        };
        let result = match &attempt {
            Attempt::Sent => "sent",
            Attempt::Retry { error, .. } => {
                tracing::warn!(error = %error, "message not sent; it is retried");
                "retry"
            }
            Attempt::GiveUp { error } => {
                tracing::error!(error = %error, "message not sent; giving up");
                "failed"
            }
        };
        self.metrics.message(message.kind.as_str(), result);
        match self
            .store
            .finish_message(claimed, attempt, Utc::now())
            .await
        {
            Ok(true) => {}
            Ok(false) => tracing::warn!("the claim on a message ran out before it was sent"),
            Err(err) => tracing::warn!(error = %err, "could not record a message attempt"),
        }
    }

    /// Renders `message`, makes its link, and hands it over.
    async fn deliver(&self, message: &Message) -> Result<(), SendError> {
        let store_error = |e: larder_store::StoreError| SendError {
            permanent: matches!(e, larder_store::StoreError::NotFound),
            text: format!("could not read the message's member or app: {e}"),
        };
        let app = self
            .store
            .get_app(message.app_id)
            .await
            .map_err(store_error)?;
        let settings = self
            .store
            .member_settings(message.app_id)
            .await
            .map_err(store_error)?;
        let member = self
            .store
            .get_member(message.app_id, message.member_id)
            .await
            .map_err(store_error)?
            .member;
        let (purpose, ttl) = link_for(message.kind, settings.welcome_email);
        let token = secrets::generate_link_token(purpose);
        let expires = Utc::now() + chrono::Duration::from_std(ttl).unwrap_or(chrono::Duration::MAX);
        self.store
            .create_link(NewLink {
                app_id: message.app_id,
                member_id: message.member_id,
                purpose,
                token_hash: &secrets::hash_token(&token),
                expires_at: expires,
                message_id: Some(message.id),
            })
            .await
            .map_err(store_error)?;
        let link = settings.link_url(&self.mail.public_url, message.app_id, purpose, &token);
        let ctx = render::Context {
            app_name: app.name,
            member_name: member.name.clone(),
            member_email: member.email.as_str().to_owned(),
            access_levels: member
                .access_levels
                .iter()
                .map(|l| l.name.to_string())
                .collect(),
            link,
            link_valid_for: render::duration_words(ttl),
        };
        let rendered = render::render(
            message.kind,
            settings.welcome_email,
            settings.subject_template.as_deref(),
            settings.body_template.as_deref(),
            &ctx,
        );
        let email = self.build(message, &settings, &member, rendered)?;
        self.mail
            .transport
            .send(&message.id.to_string(), email)
            .await
    }

    fn build(
        &self,
        message: &Message,
        settings: &larder_store::MemberSettings,
        member: &larder_store::Member,
        rendered: render::Rendered,
    ) -> Result<lettre::Message, SendError> {
        let invalid = |text: String| SendError {
            permanent: true,
            text,
        };
        let from = Mailbox::new(settings.sender_name.clone(), self.mail.from.clone());
        let to_address: lettre::Address = message
            .to
            .as_str()
            .parse()
            .map_err(|e| invalid(format!("the member's address cannot be mailed: {e}")))?;
        let mut builder = lettre::Message::builder()
            .from(from)
            .to(Mailbox::new(member.name.clone(), to_address))
            .subject(rendered.subject)
            .message_id(Some(format!("<{}@larder>", message.id)));
        if let Some(reply_to) = &settings.reply_to
            && let Ok(address) = reply_to.as_str().parse::<lettre::Address>()
        {
            builder = builder.reply_to(Mailbox::new(None, address));
        }
        builder
            .multipart(MultiPart::alternative_plain_html(
                rendered.text,
                rendered.html,
            ))
            .map_err(|e| invalid(format!("the message cannot be built: {e}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retries_back_off_with_jitter_and_end() {
        assert_eq!(retry_delay(1, 0.5), Duration::from_secs(10));
        assert_eq!(retry_delay(2, 0.5), Duration::from_secs(20));
        assert_eq!(retry_delay(3, 0.5), Duration::from_secs(40));
        assert_eq!(retry_delay(30, 0.5), Duration::from_secs(1800));
        assert!(retry_delay(1, 0.0) >= Duration::from_secs(8));
        assert!(retry_delay(1, 0.999) < Duration::from_secs(12));
        // Even at the most jitter, the first two retries come within a minute, and a server
        // back after an outage of a minute gets the message within two.
        let after = |n: u32| (1..=n).map(|k| retry_delay(k, 0.999)).sum::<Duration>();
        assert!(after(2) < Duration::from_secs(60), "{:?}", after(2));
        assert!(after(3) > Duration::from_secs(60) && after(3) < Duration::from_secs(120));
    }
}
