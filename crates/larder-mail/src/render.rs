//! What a message says: a subject, a plain-text body and its HTML twin, from the app's
//! templates or the defaults, with a small set of placeholders:
//!
//! | placeholder | value |
//! | --- | --- |
//! | `{{app_name}}` | the app's name |
//! | `{{member_name}}` | the member's name, or their address when they have none |
//! | `{{member_email}}` | the member's address |
//! | `{{access_levels}}` | the levels they have, separated by commas |
//! | `{{link}}` | the link the message is about (set a password, sign in…) |
//! | `{{link_valid_for}}` | how long the link works (`7 days`, `15 minutes`) |
//!
//! Templates are text, and so are the values put in them: the HTML twin escapes all of it,
//! so neither an app's template nor a member's name can add markup. An unknown placeholder
//! stays as written.

use larder_store::{MessageKind, WelcomeEmail};

/// What the placeholders stand for.
#[derive(Debug, Clone)]
pub struct Context {
    pub app_name: String,
    pub member_name: Option<String>,
    pub member_email: String,
    pub access_levels: Vec<String>,
    pub link: String,
    /// How long the link works, in words.
    pub link_valid_for: String,
}

/// A message ready to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rendered {
    pub subject: String,
    pub text: String,
    pub html: String,
}

/// The default subject and body of a kind (`welcome` in the way the app welcomes).
fn defaults(kind: MessageKind, welcome: WelcomeEmail) -> (&'static str, &'static str) {
    match (kind, welcome) {
        (MessageKind::Welcome, WelcomeEmail::MagicLink) => (
            "Welcome to {{app_name}}",
            "Hello {{member_name}},\n\nYour {{app_name}} account is ready, with access to: \
             {{access_levels}}.\n\nSign in with this link (it works once, for \
             {{link_valid_for}}):\n{{link}}\n\nYou can ask for a new link on the sign-in page \
             at any time.",
        ),
        (MessageKind::Welcome, _) => (
            "Welcome to {{app_name}}",
            "Hello {{member_name}},\n\nYour {{app_name}} account is ready, with access to: \
             {{access_levels}}.\n\nSet your password to sign in:\n{{link}}\n\nThe link works \
             once, for {{link_valid_for}}.",
        ),
        (MessageKind::Invitation, _) => (
            "Set your password for {{app_name}}",
            "Hello {{member_name}},\n\nSet your password for {{app_name}} with this link:\n\
             {{link}}\n\nThe link works once, for {{link_valid_for}}.",
        ),
        (MessageKind::MagicLink, _) => (
            "Your sign-in link for {{app_name}}",
            "Hello {{member_name}},\n\nSign in to {{app_name}} with this link:\n{{link}}\n\n\
             It works once, for {{link_valid_for}}. If you did not ask for it, ignore this message.",
        ),
        (MessageKind::PasswordReset, _) => (
            "Reset your {{app_name}} password",
            "Hello {{member_name}},\n\nSet a new password for {{app_name}} with this link:\n\
             {{link}}\n\nIt works once, for {{link_valid_for}}. If you did not ask for it, ignore this \
             message: your password stays as it is.",
        ),
    }
}

fn fill(template: &str, ctx: &Context) -> String {
    let name = ctx.member_name.as_deref().unwrap_or(&ctx.member_email);
    let levels = if ctx.access_levels.is_empty() {
        "nothing yet".to_owned()
    } else {
        ctx.access_levels.join(", ")
    };
    let value = |placeholder: &str| -> Option<&str> {
        Some(match placeholder {
            "app_name" => &ctx.app_name,
            "member_name" => name,
            "member_email" => &ctx.member_email,
            "access_levels" => &levels,
            "link" => &ctx.link,
            "link_valid_for" => &ctx.link_valid_for,
            _ => return None,
        })
    };
    // One pass over the template, so a value that looks like a placeholder (a member
    // named `{{link}}`) stays as it is.
    let mut out = String::with_capacity(template.len() + 256);
    let mut rest = template;
    while let Some(start) = rest.find("{{") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        match after
            .find("}}")
            .and_then(|end| value(&after[..end]).map(|v| (end, v)))
        {
            Some((end, v)) => {
                out.push_str(v);
                rest = &after[end + 2..];
            }
            None => {
                out.push_str("{{");
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out
}

/// A link's lifetime in words: `15 minutes`, `1 hour`, `24 hours`, `7 days`.
pub fn duration_words(d: std::time::Duration) -> String {
    let secs = d.as_secs();
    let (n, unit) = if secs >= 2 * 86_400 && secs.is_multiple_of(86_400) {
        (secs / 86_400, "day")
    } else if secs >= 3_600 && secs.is_multiple_of(3_600) {
        (secs / 3_600, "hour")
    } else {
        (secs.div_ceil(60).max(1), "minute")
    };
    if n == 1 {
        format!("1 {unit}")
    } else {
        format!("{n} {unit}s")
    }
}

/// Escapes text for HTML.
pub fn escape_html(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            _ => out.push(c),
        }
    }
    out
}

/// Renders a message of `kind`. The app's `subject_template` and `body_template` apply to
/// the welcome; the other kinds use the defaults.
pub fn render(
    kind: MessageKind,
    welcome: WelcomeEmail,
    subject_template: Option<&str>,
    body_template: Option<&str>,
    ctx: &Context,
) -> Rendered {
    let (default_subject, default_body) = defaults(kind, welcome);
    let (subject, body) = if kind == MessageKind::Welcome {
        (
            subject_template.unwrap_or(default_subject),
            body_template.unwrap_or(default_body),
        )
    } else {
        (default_subject, default_body)
    };
    // One line, whatever the template or a name holds.
    let subject: String = fill(subject, ctx)
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    let text = fill(body, ctx);
    // The HTML twin: the same text, all of it escaped (an app's template is text too),
    // paragraphs kept, the link clickable.
    let link = escape_html(&ctx.link);
    let html_body: String = escape_html(&text)
        .split("\n\n")
        .map(|p| {
            let p = p.replace('\n', "<br>\n");
            let p = p.replace(&link, &format!("<a href=\"{link}\">{link}</a>"));
            format!("<p>{p}</p>")
        })
        .collect::<Vec<_>>()
        .join("\n");
    let html = format!(
        "<!doctype html>\n<html><head><meta charset=\"utf-8\"><title>{}</title></head>\n\
         <body>\n{html_body}\n</body></html>\n",
        escape_html(&subject)
    );
    Rendered {
        subject,
        text,
        html,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ctx() -> Context {
        Context {
            app_name: "Pantry <Club>".into(),
            member_name: Some("Jordan \"J\" Ellis".into()),
            member_email: "jordan@example.com".into(),
            access_levels: vec!["Gold".into(), "Recipes".into()],
            link: "https://larder.example.com/members/a/set-password?token=li_x&y=1".into(),
            link_valid_for: "7 days".into(),
        }
    }

    #[test]
    fn the_default_welcome_names_the_access_and_the_link() {
        let r = render(
            MessageKind::Welcome,
            WelcomeEmail::SetPassword,
            None,
            None,
            &ctx(),
        );
        assert_eq!(r.subject, "Welcome to Pantry <Club>");
        assert!(r.text.contains("access to: Gold, Recipes."), "{}", r.text);
        assert!(r.text.contains("token=li_x&y=1"), "{}", r.text);
        assert!(r.text.contains("works once, for 7 days."), "{}", r.text);
        assert!(r.html.contains("Pantry &lt;Club&gt;"), "{}", r.html);
        assert!(r.html.contains("Jordan &quot;J&quot; Ellis"), "{}", r.html);
        assert!(
            r.html.contains(
                "<a href=\"https://larder.example.com/members/a/set-password?token=li_x&amp;y=1\">"
            ),
            "{}",
            r.html
        );
        assert!(!r.html.contains("<Club>"));
    }

    #[test]
    fn lifetimes_read_as_words() {
        use std::time::Duration;
        assert_eq!(duration_words(Duration::from_secs(15 * 60)), "15 minutes");
        assert_eq!(duration_words(Duration::from_secs(3600)), "1 hour");
        assert_eq!(duration_words(Duration::from_secs(86_400)), "24 hours");
        assert_eq!(duration_words(Duration::from_secs(7 * 86_400)), "7 days");
        assert_eq!(duration_words(Duration::from_secs(90)), "2 minutes");
    }

    #[test]
    fn an_apps_templates_fill_their_placeholders_and_stay_text() {
        let r = render(
            MessageKind::Welcome,
            WelcomeEmail::MagicLink,
            Some("Hi {{member_name}}\r\nBcc: evil@example.com"),
            Some("{{member_email}} gets {{access_levels}}: {{link}} {{unknown}}"),
            &ctx(),
        );
        assert_eq!(r.subject, "Hi Jordan \"J\" Ellis  Bcc: evil@example.com");
        assert!(
            r.text
                .starts_with("jordan@example.com gets Gold, Recipes: https://")
        );
        assert!(r.text.ends_with("{{unknown}}"));
        // Values are not templates.
        let mut sly = ctx();
        sly.member_name = Some("{{link}} {{".into());
        let r = render(
            MessageKind::Welcome,
            WelcomeEmail::SetPassword,
            Some("Hi {{member_name}}"),
            None,
            &sly,
        );
        assert_eq!(r.subject, "Hi {{link}} {{");
        // A template's own text is text in the HTML twin too.
        let r = render(
            MessageKind::Welcome,
            WelcomeEmail::SetPassword,
            None,
            Some("Tips & <b>tricks</b>: {{link}}"),
            &ctx(),
        );
        assert!(
            r.html.contains("Tips &amp; &lt;b&gt;tricks&lt;/b&gt;"),
            "{}",
            r.html
        );
        assert!(
            r.html.contains("<a href=\"https://larder.example.com/"),
            "{}",
            r.html
        );
        // Other kinds keep their own wording.
        let reset = render(
            MessageKind::PasswordReset,
            WelcomeEmail::MagicLink,
            Some("ignored"),
            Some("ignored"),
            &ctx(),
        );
        assert_eq!(reset.subject, "Reset your Pantry <Club> password");
    }
}
