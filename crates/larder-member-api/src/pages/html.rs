//! The markup of the hosted pages: one layout, plain forms, no script, no outside assets.
//! Every value is escaped where it is inserted.

use std::sync::LazyLock;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use sha2::{Digest, Sha256};

/// The pages' one stylesheet, inline; the Content-Security-Policy allows exactly it (by
/// its hash) and nothing else.
const STYLE: &str = "\
:root{color-scheme:light dark;--fg:#1d1d1f;--bg:#f6f5f2;--card:#fff;--line:#c9c6bd;\
--accent:#2f5d50;--bad:#a4161a;--good:#2f5d50}\
@media (prefers-color-scheme:dark){:root{--fg:#eceae4;--bg:#1b1c1d;--card:#262729;\
--line:#55534d;--accent:#8cc7b2;--bad:#ff8a8a;--good:#8cc7b2}}\
*{box-sizing:border-box}\
body{margin:0;font:1rem/1.5 system-ui,-apple-system,'Segoe UI',sans-serif;color:var(--fg);\
background:var(--bg)}\
header{padding:1rem 1.5rem;border-bottom:1px solid var(--line)}\
header p{margin:0;font-weight:600}\
main{max-width:28rem;margin:2rem auto;padding:0 1rem}\
section{background:var(--card);border:1px solid var(--line);border-radius:.5rem;\
padding:1.25rem 1.5rem;margin-bottom:1.25rem}\
h1{font-size:1.5rem;margin:0 0 1rem}h2{font-size:1.1rem;margin:0 0 .75rem}\
label{display:block;font-weight:600;margin:.75rem 0 .25rem}\
input[type=email],input[type=password]{width:100%;padding:.6rem;font:inherit;\
color:inherit;background:transparent;border:1px solid var(--line);border-radius:.35rem}\
input:focus-visible,button:focus-visible,a:focus-visible{outline:3px solid var(--accent);\
outline-offset:2px}\
.hint{margin:.25rem 0 0;font-size:.9rem}\
button{margin-top:1rem;padding:.6rem 1rem;font:inherit;font-weight:600;color:#fff;\
background:var(--accent);border:0;border-radius:.35rem;cursor:pointer}\
@media (prefers-color-scheme:dark){button{color:#111}}\
.alert{border-left:4px solid var(--bad);padding:.5rem .75rem;margin:0 0 1rem}\
.notice{border-left:4px solid var(--good);padding:.5rem .75rem;margin:0 0 1rem}\
a{color:var(--accent)}ul{padding-left:1.25rem}\
";

/// The policy every page is served with: nothing loads but the inline stylesheet; forms
/// post only to this origin; no framing, no `<base>`.
pub static CSP: LazyLock<String> = LazyLock::new(|| {
    let hash = STANDARD.encode(Sha256::digest(STYLE.as_bytes()));
    format!(
        "default-src 'none'; style-src 'sha256-{hash}'; form-action 'self'; \
         frame-ancestors 'none'; base-uri 'none'"
    )
});

/// Escapes text for HTML, in content and in quoted attributes.
pub fn escape(text: &str) -> String {
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

/// A whole page: the app's name on top, then `content` (markup made by the helpers here).
pub fn page(app_name: &str, title: &str, content: &str) -> String {
    let app_name = escape(app_name);
    let title = escape(title);
    format!(
        "<!doctype html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <meta name=\"referrer\" content=\"no-referrer\">\n\
         <title>{title} · {app_name}</title>\n<style>{STYLE}</style>\n</head>\n<body>\n\
         <header><p>{app_name}</p></header>\n<main>\n<h1>{title}</h1>\n{content}</main>\n\
         </body>\n</html>\n"
    )
}

/// A message that something went wrong, read out by screen readers as it appears.
pub fn alert(message: &str) -> String {
    format!(
        "<p class=\"alert\" role=\"alert\">{}</p>\n",
        escape(message)
    )
}

/// A message that something worked.
pub fn notice(message: &str) -> String {
    format!(
        "<p class=\"notice\" role=\"status\">{}</p>\n",
        escape(message)
    )
}

/// A paragraph of text.
pub fn para(text: &str) -> String {
    format!("<p>{}</p>\n", escape(text))
}

/// A paragraph that is a link.
pub fn link(href: &str, text: &str) -> String {
    format!("<p><a href=\"{}\">{}</a></p>\n", escape(href), escape(text))
}

/// One labelled input.
#[derive(Debug, Clone, Copy)]
pub struct Input<'a> {
    pub id: &'a str,
    pub name: &'a str,
    pub label: &'a str,
    /// `email` or `password`.
    pub kind: &'a str,
    pub autocomplete: &'a str,
    pub value: &'a str,
    /// Said under the field, and tied to it for screen readers.
    pub hint: Option<&'a str>,
    pub min_length: Option<usize>,
}

impl Input<'_> {
    fn render(&self) -> String {
        let id = escape(self.id);
        let (described, hint) = match self.hint {
            Some(hint) => (
                format!(" aria-describedby=\"{id}-hint\""),
                format!("<p class=\"hint\" id=\"{id}-hint\">{}</p>\n", escape(hint)),
            ),
            None => (String::new(), String::new()),
        };
        let min = self
            .min_length
            .map(|n| format!(" minlength=\"{n}\""))
            .unwrap_or_default();
        let value = if self.value.is_empty() {
            String::new()
        } else {
            format!(" value=\"{}\"", escape(self.value))
        };
        format!(
            "<label for=\"{id}\">{}</label>\n<input id=\"{id}\" name=\"{}\" type=\"{}\" \
             autocomplete=\"{}\" required{min}{value}{described}>\n{hint}",
            escape(self.label),
            escape(self.name),
            escape(self.kind),
            escape(self.autocomplete),
        )
    }
}

/// A form that posts to `action` (relative to the page), with the CSRF token, hidden
/// fields, inputs and one button; inside a section with an optional heading, unless it is
/// a lone button.
pub fn form(
    heading: Option<&str>,
    action: &str,
    csrf: &str,
    hidden: &[(&str, &str)],
    inputs: &[Input<'_>],
    button: &str,
) -> String {
    form_with(heading, action, csrf, hidden, "", inputs, button)
}

/// [`form`] with markup of its own (`extra`, made by the helpers here) before the inputs.
pub fn form_with(
    heading: Option<&str>,
    action: &str,
    csrf: &str,
    hidden: &[(&str, &str)],
    extra: &str,
    inputs: &[Input<'_>],
    button: &str,
) -> String {
    let boxed = heading.is_some() || !inputs.is_empty();
    let mut out = String::new();
    if boxed {
        out.push_str("<section>\n");
    }
    if let Some(h) = heading {
        out.push_str(&format!("<h2>{}</h2>\n", escape(h)));
    }
    out.push_str(&format!(
        "<form method=\"post\" action=\"{}\">\n<input type=\"hidden\" name=\"csrf\" value=\"{}\">\n",
        escape(action),
        escape(csrf)
    ));
    for (name, value) in hidden {
        out.push_str(&format!(
            "<input type=\"hidden\" name=\"{}\" value=\"{}\">\n",
            escape(name),
            escape(value)
        ));
    }
    out.push_str(extra);
    for input in inputs {
        out.push_str(&input.render());
    }
    out.push_str(&format!(
        "<button type=\"submit\">{}</button>\n</form>\n",
        escape(button)
    ));
    if boxed {
        out.push_str("</section>\n");
    }
    out
}

/// A username field password managers pair with a new password (inside its form), not
/// shown.
pub fn username_for_managers(email: &str) -> String {
    format!(
        "<input type=\"email\" name=\"username\" autocomplete=\"username\" value=\"{}\" \
         hidden readonly>\n",
        escape(email)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_escaped_and_the_policy_names_the_stylesheet() {
        let html = page("Pantry <Club>", "Sign in", &alert("a \"b\" & c"));
        assert!(html.contains("<p>Pantry &lt;Club&gt;</p>"), "{html}");
        assert!(html.contains("a &quot;b&quot; &amp; c"), "{html}");
        assert!(!html.contains("<Club>"));
        assert!(CSP.starts_with("default-src 'none'; style-src 'sha256-"));
        let form = form(
            None,
            "sign-in",
            "tok\"en",
            &[("token", "<x>")],
            &[Input {
                id: "email",
                name: "email",
                label: "Email",
                kind: "email",
                autocomplete: "email",
                value: "",
                hint: Some("Yours"),
                min_length: None,
            }],
            "Go",
        );
        assert!(form.contains("value=\"tok&quot;en\""), "{form}");
        assert!(form.contains("value=\"&lt;x&gt;\""), "{form}");
        assert!(
            form.contains("<label for=\"email\">Email</label>"),
            "{form}"
        );
        assert!(form.contains("aria-describedby=\"email-hint\""), "{form}");
    }
}
