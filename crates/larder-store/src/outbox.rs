//! The outbox: messages to members, written in the transaction of the change that causes
//! them and sent later by a background sender; and the per-app settings of what members
//! receive. What both backends must decide alike lives here, without SQL.

use chrono::{DateTime, Utc};
use larder_access::engine::{EffectKind, Plan};
use larder_access::thrivecart::Mode;
use larder_access::{AppId, Email, MemberId, MessageId};

use crate::LinkPurpose;

larder_access::string_enum! {
    /// What a message is.
    pub enum MessageKind("message kind") {
        /// Sent once, on a member's first purchase that gave access.
        Welcome => "welcome",
        /// A link to set a password, queued by an admin.
        Invitation => "invitation",
        /// A single-use sign-in link the member asked for.
        MagicLink => "magic_link",
        /// A link to set a new password, which the member asked for.
        PasswordReset => "password_reset",
    }
}

larder_access::string_enum! {
    /// Where a message is.
    pub enum MessageStatus("message status") {
        /// Waiting to be sent (maybe again, after a failed attempt).
        Queued => "queued",
        /// Handed to the mail server (or written to the outbox directory).
        Sent => "sent",
        /// Every attempt failed, for longer than messages are retried.
        Failed => "failed",
    }
}

larder_access::string_enum! {
    /// What the welcome email offers.
    pub enum WelcomeEmail("welcome email") {
        /// A link to set a password.
        SetPassword => "set_password",
        /// A magic link that signs the member in.
        MagicLink => "magic_link",
        /// No welcome email.
        Off => "off",
    }
}

/// The once-key of the automatic welcome: one per member.
pub const WELCOME_ONCE: &str = "welcome";

/// One message of the outbox.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    pub id: MessageId,
    pub app_id: AppId,
    pub member_id: MemberId,
    pub kind: MessageKind,
    /// The member's address when it was queued.
    pub to: Email,
    pub status: MessageStatus,
    pub attempts: u32,
    pub last_error: Option<String>,
    pub next_attempt_at: DateTime<Utc>,
    pub created_at: DateTime<Utc>,
    pub sent_at: Option<DateTime<Utc>>,
}

/// A message a sender claimed: nobody else sends it until the claim runs out, and only
/// this claim can finish it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClaimedMessage {
    pub message: Message,
    pub claim: uuid::Uuid,
}

/// How one attempt at sending ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Attempt {
    Sent,
    /// Failed; try again at `retry_at`.
    Retry {
        error: String,
        retry_at: DateTime<Utc>,
    },
    /// Failed, and no more attempts: the message is `failed`.
    GiveUp {
        error: String,
    },
}

/// Which messages a list shows.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MessageFilter {
    pub member: Option<MemberId>,
    pub kind: Option<MessageKind>,
    pub status: Option<MessageStatus>,
}

/// What an app's members receive and where their links go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberSettings {
    /// The base URL of the app's own member front end; links go there when set.
    pub member_url: Option<String>,
    pub sender_name: Option<String>,
    pub reply_to: Option<Email>,
    pub welcome_email: WelcomeEmail,
    pub welcome_for_test_purchases: bool,
    pub subject_template: Option<String>,
    pub body_template: Option<String>,
    /// Origins allowed to call the member API from a browser.
    pub cors_origins: Vec<String>,
}

impl Default for MemberSettings {
    fn default() -> Self {
        Self {
            member_url: None,
            sender_name: None,
            reply_to: None,
            welcome_email: WelcomeEmail::SetPassword,
            welcome_for_test_purchases: false,
            subject_template: None,
            body_template: None,
            cors_origins: Vec::new(),
        }
    }
}

/// A change of some of an app's member settings: `None` leaves a field as it is; for the
/// nullable ones `Some(None)` clears it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MemberSettingsPatch {
    pub member_url: Option<Option<String>>,
    pub sender_name: Option<Option<String>>,
    pub reply_to: Option<Option<Email>>,
    pub welcome_email: Option<WelcomeEmail>,
    pub welcome_for_test_purchases: Option<bool>,
    pub subject_template: Option<Option<String>>,
    pub body_template: Option<Option<String>>,
    pub cors_origins: Option<Vec<String>>,
}

impl MemberSettingsPatch {
    /// `settings` with this change.
    pub fn apply(&self, mut settings: MemberSettings) -> MemberSettings {
        fn set<T: Clone>(field: &mut T, value: &Option<T>) {
            if let Some(v) = value {
                *field = v.clone();
            }
        }
        set(&mut settings.member_url, &self.member_url);
        set(&mut settings.sender_name, &self.sender_name);
        set(&mut settings.reply_to, &self.reply_to);
        set(&mut settings.welcome_email, &self.welcome_email);
        set(
            &mut settings.welcome_for_test_purchases,
            &self.welcome_for_test_purchases,
        );
        set(&mut settings.subject_template, &self.subject_template);
        set(&mut settings.body_template, &self.body_template);
        set(&mut settings.cors_origins, &self.cors_origins);
        settings
    }
}

impl LinkPurpose {
    /// The page a link of this purpose opens, under the app's member front end or Larder's
    /// hosted pages.
    pub fn page(self) -> &'static str {
        match self {
            LinkPurpose::SetPassword => "set-password",
            LinkPurpose::MagicLink => "magic",
            LinkPurpose::PasswordReset => "reset-password",
        }
    }
}

impl MemberSettings {
    /// Where a link with `token` takes the member: `{member_url}/{page}?token=…` when the
    /// app has its own front end, else the page Larder serves,
    /// `{public_url}/members/{app}/{page}?token=…`.
    pub fn link_url(
        &self,
        public_url: &str,
        app: AppId,
        purpose: LinkPurpose,
        token: &str,
    ) -> String {
        let page = purpose.page();
        match &self.member_url {
            Some(base) => format!("{}/{page}?token={token}", base.trim_end_matches('/')),
            None => format!(
                "{}/members/{app}/{page}?token={token}",
                public_url.trim_end_matches('/')
            ),
        }
    }
}

/// The member a delivery's plan welcomes, if any: the member it first gave access to (a
/// `granted` effect), unless the app sends no welcome, or the purchase is a test one and
/// the app does not welcome those. Whether this member was welcomed before is the once-key's
/// business, not this function's.
pub fn welcome_due(
    plan: &Plan,
    mode: Mode,
    welcome: WelcomeEmail,
    for_test_purchases: bool,
) -> Option<MemberId> {
    if welcome == WelcomeEmail::Off || (mode == Mode::Test && !for_test_purchases) {
        return None;
    }
    plan.effects
        .iter()
        .find(|e| e.kind == EffectKind::Granted)
        .map(|e| e.member_id)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn links_go_to_the_apps_front_end_or_the_hosted_pages() {
        let app: AppId = "01a21af4-c5d8-7242-a47f-2353fee99c4f"
            .parse()
            .expect("a valid id");
        let hosted = MemberSettings::default();
        assert_eq!(
            hosted.link_url(
                "https://larder.example.com/",
                app,
                LinkPurpose::MagicLink,
                "lm_x"
            ),
            "https://larder.example.com/members/01a21af4-c5d8-7242-a47f-2353fee99c4f/magic?token=lm_x"
        );
        let own = MemberSettings {
            member_url: Some("https://members.example.com/app/".into()),
            ..MemberSettings::default()
        };
        assert_eq!(
            own.link_url(
                "https://larder.example.com",
                app,
                LinkPurpose::PasswordReset,
                "t"
            ),
            "https://members.example.com/app/reset-password?token=t"
        );
        assert_eq!(
            own.link_url(
                "https://larder.example.com",
                app,
                LinkPurpose::SetPassword,
                "t"
            ),
            "https://members.example.com/app/set-password?token=t"
        );
    }
}
