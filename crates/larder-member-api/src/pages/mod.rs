//! The pages Larder serves members, under `/members/{app_id}/`, so the links in its emails
//! always lead somewhere when an app has no front end of its own (`member_url`):
//!
//! | page | what it does |
//! | --- | --- |
//! | `set-password?token=…` | set a password from an invitation or a welcome, then signed in |
//! | `sign-in` | sign in with a password, or ask for a magic link |
//! | `magic?token=…` | sign in with a magic link (a button: opening the link alone uses nothing) |
//! | `reset-password` | ask for a link to choose a new password |
//! | `reset-password?token=…` | choose a new password, then signed in |
//! | `/members/{app_id}/` | the signed-in member's access levels, and signing out |
//!
//! Older invitation links, `/members/set-password/{app_id}?token=…`, redirect to their page.
//!
//! Plain server-rendered HTML: forms that work without JavaScript, one inline stylesheet,
//! nothing loaded from elsewhere, served with a strict Content-Security-Policy,
//! `Referrer-Policy: no-referrer` (a link's token never leaks to another site) and
//! `Cache-Control: no-store`. Links are used only by a button (a form post), so mail
//! scanners that open links do not use them up. Every form carries a CSRF token that must
//! match a `SameSite=Strict` cookie, and a cross-site `Sec-Fetch-Site` is refused. The
//! signed-in member's session (the member API's kind) rides in an `HttpOnly`,
//! `SameSite=Lax` cookie scoped to the app's pages, `Secure` when Larder's public URL is
//! https. The pages call the same use cases as the member API, with the same limits.

mod html;

use std::collections::HashMap;

use larder_access::{AppId, Email};
use larder_api_common::{ApiError, ErrorCode};
use larder_store::{App, LinkPurpose, MessageKind, StoreError};
use larder_tenancy::secrets;
use poem::http::{HeaderValue, StatusCode, header};
use poem::web::Path;
use poem::{Body, Request, Response, Route, get, handler, post};

use crate::client::client_address;
use crate::service::{IssuedSession, MemberState, SESSION_TTL_DAYS};
use html::{Input, alert, form, link, notice, page, para};

/// The signed-in member's session token.
const SESSION_COOKIE: &str = "larder_session";
/// The token every form must echo.
const CSRF_COOKIE: &str = "larder_csrf";
/// Forms are small; anything bigger is refused unread.
const FORM_LIMIT: usize = 16 * 1024;

/// The hosted pages, to nest at `/members`.
pub fn routes() -> Route {
    Route::new()
        .at("/set-password/:app_id", get(older_invitation))
        .at("/:app_id", get(home_without_slash))
        .at("/:app_id/", get(home))
        .at("/:app_id/sign-in", get(sign_in_page).post(sign_in_submit))
        .at("/:app_id/magic", get(magic_page).post(magic_submit))
        .at(
            "/:app_id/set-password",
            get(set_password_page).post(set_password_submit),
        )
        .at(
            "/:app_id/reset-password",
            get(reset_password_page).post(reset_password_submit),
        )
        .at("/:app_id/sign-out", post(sign_out))
}

/// One visit to one app's pages: who the app is and how to answer.
struct Visit {
    state: MemberState,
    app: App,
    /// The CSRF token of this browser, and whether it is new (so the cookie is set).
    csrf: String,
    new_csrf: bool,
    /// The path of Larder's public URL (`""`, or `/larder` behind a path prefix).
    base: String,
    secure: bool,
}

fn plain_response(status: StatusCode, body: String) -> Response {
    Response::builder()
        .status(status)
        .content_type("text/html; charset=utf-8")
        .header(header::CONTENT_SECURITY_POLICY, html::CSP.as_str())
        .header(header::X_CONTENT_TYPE_OPTIONS, "nosniff")
        .header(header::REFERRER_POLICY, "no-referrer")
        .header(header::X_FRAME_OPTIONS, "DENY")
        .header(header::CACHE_CONTROL, "no-store")
        .body(body)
}

/// A page for when there is no app to speak for.
fn bare_page(status: StatusCode, title: &str, message: &str) -> Response {
    plain_response(status, page("Larder", title, &para(message)))
}

fn unavailable_page() -> Response {
    bare_page(
        StatusCode::SERVICE_UNAVAILABLE,
        "Please try again",
        "Something went wrong on our side; try again in a moment.",
    )
}

fn read_cookie(req: &Request, name: &str) -> Option<String> {
    req.headers()
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(n, _)| *n == name)
        .map(|(_, v)| v.to_owned())
        .filter(|v| !v.is_empty())
}

fn query_param(req: &Request, name: &str) -> Option<String> {
    url::form_urlencoded::parse(req.uri().query().unwrap_or("").as_bytes())
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
        .filter(|v| !v.is_empty())
}

/// A posted form, or `None` when it is not a form or too big.
async fn read_form(req: &Request, body: Body) -> Option<HashMap<String, String>> {
    let is_form = req
        .content_type()
        .is_some_and(|t| t.starts_with("application/x-www-form-urlencoded"));
    if !is_form {
        return None;
    }
    let bytes = body.into_bytes_limit(FORM_LIMIT).await.ok()?;
    Some(url::form_urlencoded::parse(&bytes).into_owned().collect())
}

async fn visit(req: &Request, raw_app: &str) -> Result<Visit, Response> {
    let state = req
        .data::<MemberState>()
        .ok_or_else(unavailable_page)?
        .clone();
    let not_found = || {
        bare_page(
            StatusCode::NOT_FOUND,
            "Page not found",
            "There is no membership here. Check the link you followed.",
        )
    };
    let app_id: AppId = raw_app.parse().map_err(|_| not_found())?;
    let app = match state.store.get_app(app_id).await {
        Ok(app) => app,
        Err(StoreError::NotFound) => return Err(not_found()),
        Err(err) => {
            tracing::error!(error = %err, "could not read the app of a member page");
            return Err(unavailable_page());
        }
    };
    let (csrf, new_csrf) = match read_cookie(req, CSRF_COOKIE) {
        Some(token) => (token, false),
        None => (secrets::generate_session_token(), true),
    };
    let public = url::Url::parse(&state.public_url).ok();
    let base = public
        .as_ref()
        .map(|u| u.path().trim_end_matches('/').to_owned())
        .unwrap_or_default();
    let secure = public.is_some_and(|u| u.scheme() == "https");
    Ok(Visit {
        state,
        app,
        csrf,
        new_csrf,
        base,
        secure,
    })
}

impl Visit {
    fn cookie(&self, name: &str, value: &str, path: &str, same_site: &str, max_age: i64) -> String {
        let secure = if self.secure { "; Secure" } else { "" };
        format!(
            "{name}={value}; Path={path}; Max-Age={max_age}; HttpOnly; SameSite={same_site}{secure}"
        )
    }

    fn session_cookie(&self, session: Option<&IssuedSession>) -> String {
        let path = format!("{}/members/{}", self.base, self.app.id);
        match session {
            Some(s) => self.cookie(
                SESSION_COOKIE,
                &s.token,
                &path,
                "Lax",
                SESSION_TTL_DAYS * 24 * 3600,
            ),
            None => self.cookie(SESSION_COOKIE, "", &path, "Lax", 0),
        }
    }

    fn with_csrf_cookie(&self, mut resp: Response) -> Response {
        if self.new_csrf {
            let path = format!("{}/members", self.base);
            let cookie = self.cookie(CSRF_COOKIE, &self.csrf, &path, "Strict", 24 * 3600);
            if let Ok(value) = HeaderValue::from_str(&cookie) {
                resp.headers_mut().append(header::SET_COOKIE, value);
            }
        }
        resp
    }

    fn render(&self, status: StatusCode, title: &str, content: &str) -> Response {
        self.with_csrf_cookie(plain_response(status, page(&self.app.name, title, content)))
    }

    /// 303 to `location` (relative to the page), setting `cookies`.
    fn redirect(&self, location: &str, cookies: &[String]) -> Response {
        let mut resp = Response::builder()
            .status(StatusCode::SEE_OTHER)
            .header(header::LOCATION, location)
            .header(header::CACHE_CONTROL, "no-store")
            .header(header::REFERRER_POLICY, "no-referrer")
            .finish();
        for cookie in cookies {
            if let Ok(value) = HeaderValue::from_str(cookie) {
                resp.headers_mut().append(header::SET_COOKIE, value);
            }
        }
        resp
    }

    /// The member's own page, signed in as `session`.
    fn signed_in(&self, session: Option<IssuedSession>) -> Response {
        match session {
            Some(s) => self.redirect("./", &[self.session_cookie(Some(&s))]),
            // Erased a moment ago: nobody to sign in.
            None => self.redirect("sign-in", &[]),
        }
    }

    /// Whether a posted form is this browser's own: the CSRF token it carries matches the
    /// cookie, and the browser does not say it came from another site.
    fn form_is_ours(&self, req: &Request, form: &HashMap<String, String>) -> bool {
        let cross_site = req
            .headers()
            .get("sec-fetch-site")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|site| !matches!(site, "same-origin" | "none"));
        if cross_site || self.new_csrf {
            return false;
        }
        form.get("csrf")
            .is_some_and(|given| secrets::constant_time_eq(given, &self.csrf))
    }

    fn stale_form(&self) -> Response {
        self.render(
            StatusCode::FORBIDDEN,
            "Please try again",
            &format!(
                "{}{}",
                alert(
                    "This form has expired, or your browser did not send its cookie. Go \
                     back, reload the page and send it again; cookies must be allowed for \
                     this site."
                ),
                link("sign-in", "Go to the sign-in page")
            ),
        )
    }

    /// An error as a page: `content` rebuilt around the error's message.
    fn failed(&self, err: &ApiError, title: &str, content: &str) -> Response {
        let message = match err.body.code {
            ErrorCode::Unavailable | ErrorCode::InternalError => {
                "Something went wrong on our side; try again in a moment."
            }
            _ => err.body.message.as_str(),
        };
        let mut resp = self.render(err.status(), title, &format!("{}{content}", alert(message)));
        if let Some(seconds) = err.retry_after {
            resp.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        }
        resp
    }

    fn ask_for_link_form(&self, action: &str, kind: &str, button: &str, email: &str) -> String {
        form(
            None,
            action,
            &self.csrf,
            &[("action", kind)],
            &[Input {
                id: "link-email",
                name: "email",
                label: "Email address",
                kind: "email",
                autocomplete: "email",
                value: email,
                hint: None,
                min_length: None,
            }],
            button,
        )
    }

    fn sign_in_content(&self, email: &str) -> String {
        let password = form(
            Some("With your password"),
            "sign-in",
            &self.csrf,
            &[("action", "password")],
            &[
                Input {
                    id: "email",
                    name: "email",
                    label: "Email address",
                    kind: "email",
                    autocomplete: "username",
                    value: email,
                    hint: None,
                    min_length: None,
                },
                Input {
                    id: "password",
                    name: "password",
                    label: "Password",
                    kind: "password",
                    autocomplete: "current-password",
                    value: "",
                    hint: None,
                    min_length: None,
                },
            ],
            "Sign in",
        );
        let magic = form(
            Some("Or with a link by email"),
            "sign-in",
            &self.csrf,
            &[("action", "magic-link")],
            &[Input {
                id: "magic-email",
                name: "email",
                label: "Email address",
                kind: "email",
                autocomplete: "email",
                value: email,
                hint: Some("We email you a link that signs you in, once, within 15 minutes."),
                min_length: None,
            }],
            "Email me a sign-in link",
        );
        format!(
            "{password}{magic}{}",
            link("reset-password", "Forgot your password?")
        )
    }

    fn new_password_content(&self, action: &str, token: &str, email: &str, button: &str) -> String {
        let mut content = para(&format!("For {email}."));
        content.push_str(&html::form_with(
            None,
            action,
            &self.csrf,
            &[("token", token)],
            &html::username_for_managers(email),
            &[Input {
                id: "password",
                name: "password",
                label: "New password",
                kind: "password",
                autocomplete: "new-password",
                value: "",
                hint: Some("At least 10 characters, and not your email address."),
                min_length: Some(10),
            }],
            button,
        ));
        content
    }

    fn dead_link(&self, purpose: LinkPurpose) -> Response {
        let (title, next) = match purpose {
            LinkPurpose::MagicLink => (
                "This sign-in link no longer works",
                "Sign-in links work once, for a short time. Ask for a new one:",
            ),
            LinkPurpose::SetPassword => (
                "This link no longer works",
                "It was used already, or it expired. Ask for a link to choose a password:",
            ),
            LinkPurpose::PasswordReset => (
                "This reset link no longer works",
                "It was used already, or it expired. Ask for a new one:",
            ),
        };
        let ask = match purpose {
            LinkPurpose::MagicLink => {
                self.ask_for_link_form("sign-in", "magic-link", "Email me a sign-in link", "")
            }
            _ => self.ask_for_link_form("reset-password", "reset", "Email me a link", ""),
        };
        self.render(
            StatusCode::BAD_REQUEST,
            title,
            &format!(
                "{}{ask}{}",
                para(next),
                link("sign-in", "Go to the sign-in page")
            ),
        )
    }

    fn check_your_email(&self, email: &Email, kind: MessageKind) -> Response {
        let what = match kind {
            MessageKind::PasswordReset => {
                "a link to choose a new password is on its way. It works once, for an hour."
            }
            _ => "a sign-in link is on its way. It works once, for 15 minutes.",
        };
        self.render(
            StatusCode::OK,
            "Check your email",
            &format!(
                "{}{}",
                notice(&format!(
                    "If {email} belongs to a member of {}, {what}",
                    self.app.name
                )),
                link("sign-in", "Back to the sign-in page")
            ),
        )
    }

    /// Asks for a link by email, from a posted form; the page to show.
    async fn ask_for_link(
        &self,
        req: &Request,
        form: &HashMap<String, String>,
        kind: MessageKind,
        title: &str,
        again: impl Fn(&str) -> String,
    ) -> Response {
        let raw = form.get("email").map(String::as_str).unwrap_or("");
        let Ok(email) = Email::parse(raw) else {
            return self.render(
                StatusCode::UNPROCESSABLE_ENTITY,
                title,
                &format!("{}{}", alert("Enter your email address."), again(raw)),
            );
        };
        let client = client_address(req, self.state.trusted_proxies);
        match self
            .state
            .request_link(self.app.id, &email, kind, client)
            .await
        {
            Ok(()) => self.check_your_email(&email, kind),
            Err(err) => self.failed(&err, title, &again(raw)),
        }
    }

    /// The member behind the browser's session cookie, for this app.
    async fn member(&self, req: &Request) -> Result<Option<larder_store::Member>, ApiError> {
        let Some(token) = read_cookie(req, SESSION_COOKIE) else {
            return Ok(None);
        };
        let Some(owner) = self.state.session(&token).await? else {
            return Ok(None);
        };
        if owner.app_id != self.app.id {
            return Ok(None);
        }
        match self
            .state
            .store
            .get_member(owner.app_id, owner.member_id)
            .await
        {
            Ok(m) => Ok(Some(m.member)),
            Err(StoreError::NotFound) => Ok(None),
            Err(err) => Err(ApiError::from_store(err, "member")),
        }
    }
}

/// Either a page already made (an error) or the visit to go on with.
macro_rules! visit_or_return {
    ($req:expr, $app:expr) => {
        match visit($req, $app).await {
            Ok(v) => v,
            Err(resp) => return resp,
        }
    };
}

/// A posted form of this browser's, or the page that refuses it.
macro_rules! form_or_return {
    ($v:expr, $req:expr, $body:expr) => {
        match read_form($req, $body).await {
            Some(form) if $v.form_is_ours($req, &form) => form,
            Some(_) => return $v.stale_form(),
            None => {
                return $v.render(
                    StatusCode::BAD_REQUEST,
                    "Please try again",
                    &alert("That was not a form this page sends."),
                );
            }
        }
    };
}

#[handler]
async fn older_invitation(req: &Request, Path(app): Path<String>) -> Response {
    let query = req
        .uri()
        .query()
        .map(|q| format!("?{q}"))
        .unwrap_or_default();
    let location = format!(
        "../{}/set-password{query}",
        url::form_urlencoded::byte_serialize(app.as_bytes()).collect::<String>()
    );
    Response::builder()
        .status(StatusCode::PERMANENT_REDIRECT)
        .header(header::LOCATION, location)
        .header(header::REFERRER_POLICY, "no-referrer")
        .finish()
}

#[handler]
async fn home_without_slash(Path(app): Path<String>) -> Response {
    let app: String = url::form_urlencoded::byte_serialize(app.as_bytes()).collect();
    Response::builder()
        .status(StatusCode::PERMANENT_REDIRECT)
        .header(header::LOCATION, format!("{app}/"))
        .finish()
}

#[handler]
async fn home(req: &Request, Path(app): Path<String>) -> Response {
    let v = visit_or_return!(req, &app);
    let member = match v.member(req).await {
        Ok(Some(member)) => member,
        Ok(None) => return v.redirect("sign-in", &[]),
        Err(err) => return v.failed(&err, "Your membership", ""),
    };
    let who = match &member.name {
        Some(name) => format!("{name} ({})", member.email),
        None => member.email.to_string(),
    };
    let mut content = notice(&format!("Signed in as {who}."));
    content.push_str("<section>\n<h2>Your access</h2>\n");
    if member.access_levels.is_empty() {
        content.push_str(&para("You have no access levels right now."));
    } else {
        content.push_str("<ul>\n");
        for level in &member.access_levels {
            content.push_str(&format!("<li>{}</li>\n", html::escape(&level.name)));
        }
        content.push_str("</ul>\n");
    }
    content.push_str("</section>\n");
    content.push_str(&form(None, "sign-out", &v.csrf, &[], &[], "Sign out"));
    v.render(StatusCode::OK, "Your membership", &content)
}

#[handler]
async fn sign_in_page(req: &Request, Path(app): Path<String>) -> Response {
    let v = visit_or_return!(req, &app);
    if let Ok(Some(_)) = v.member(req).await {
        return v.redirect("./", &[]);
    }
    v.render(StatusCode::OK, "Sign in", &v.sign_in_content(""))
}

#[handler]
async fn sign_in_submit(req: &Request, Path(app): Path<String>, body: Body) -> Response {
    let v = visit_or_return!(req, &app);
    let form = form_or_return!(v, req, body);
    let email = form.get("email").map(String::as_str).unwrap_or("");
    if form.get("action").map(String::as_str) == Some("magic-link") {
        return v
            .ask_for_link(req, &form, MessageKind::MagicLink, "Sign in", |raw| {
                v.sign_in_content(raw)
            })
            .await;
    }
    let password = form.get("password").map(String::as_str).unwrap_or("");
    let client = client_address(req, v.state.trusted_proxies);
    match v.state.sign_in(v.app.id, email, password, client).await {
        Ok(session) => v.signed_in(Some(session)),
        Err(err) => v.failed(&err, "Sign in", &v.sign_in_content(email)),
    }
}

#[handler]
async fn magic_page(req: &Request, Path(app): Path<String>) -> Response {
    let v = visit_or_return!(req, &app);
    let Some(token) = query_param(req, "token") else {
        return v.dead_link(LinkPurpose::MagicLink);
    };
    let found = v
        .state
        .store
        .find_link(
            v.app.id,
            LinkPurpose::MagicLink,
            &secrets::hash_token(&token),
            chrono::Utc::now(),
        )
        .await;
    match found {
        Ok(Some(member)) => {
            let content = format!(
                "{}{}",
                para(&format!("Sign in as {}.", member.email)),
                form(None, "magic", &v.csrf, &[("token", &token)], &[], "Sign in")
            );
            v.render(
                StatusCode::OK,
                &format!("Sign in to {}", v.app.name),
                &content,
            )
        }
        Ok(None) | Err(StoreError::NotFound) => v.dead_link(LinkPurpose::MagicLink),
        Err(err) => v.failed(&ApiError::from_store(err, "member"), "Sign in", ""),
    }
}

#[handler]
async fn magic_submit(req: &Request, Path(app): Path<String>, body: Body) -> Response {
    let v = visit_or_return!(req, &app);
    let form = form_or_return!(v, req, body);
    let token = form.get("token").map(String::as_str).unwrap_or("");
    match v.state.redeem_magic_link(v.app.id, token).await {
        Ok(session) => v.signed_in(Some(session)),
        Err(err) if err.body.code == ErrorCode::InvalidToken => v.dead_link(LinkPurpose::MagicLink),
        Err(err) => v.failed(&err, "Sign in", ""),
    }
}

/// The page of a link that sets a password: its form, or why the link is dead.
async fn new_password_page(
    v: &Visit,
    token: Option<String>,
    purpose: LinkPurpose,
    error: Option<&ApiError>,
) -> Response {
    let Some(token) = token else {
        return v.dead_link(purpose);
    };
    let (action, title, button) = match purpose {
        LinkPurpose::PasswordReset => (
            "reset-password",
            "Choose a new password",
            "Save password and sign in",
        ),
        _ => (
            "set-password",
            "Set your password",
            "Set password and sign in",
        ),
    };
    let found = v
        .state
        .store
        .find_link(
            v.app.id,
            purpose,
            &secrets::hash_token(&token),
            chrono::Utc::now(),
        )
        .await;
    let member = match found {
        Ok(Some(member)) => member,
        Ok(None) | Err(StoreError::NotFound) => return v.dead_link(purpose),
        Err(err) => return v.failed(&ApiError::from_store(err, "member"), title, ""),
    };
    let content = v.new_password_content(action, &token, member.email.as_str(), button);
    match error {
        Some(err) => v.failed(err, title, &content),
        None => v.render(StatusCode::OK, title, &content),
    }
}

/// Sets a password from a posted form with a link's token.
async fn set_password_from(
    v: &Visit,
    form: &HashMap<String, String>,
    purpose: LinkPurpose,
) -> Response {
    let token = form.get("token").cloned().unwrap_or_default();
    let password = form.get("password").map(String::as_str).unwrap_or("");
    match v
        .state
        .set_password(v.app.id, purpose, &token, password)
        .await
    {
        Ok(set) => match v.state.start_session(v.app.id, &set).await {
            Ok(session) => v.signed_in(session),
            Err(err) => v.failed(&err, "Sign in", &link("sign-in", "Go to the sign-in page")),
        },
        Err(err) if err.body.code == ErrorCode::InvalidToken => v.dead_link(purpose),
        Err(err) => new_password_page(v, Some(token), purpose, Some(&err)).await,
    }
}

#[handler]
async fn set_password_page(req: &Request, Path(app): Path<String>) -> Response {
    let v = visit_or_return!(req, &app);
    new_password_page(
        &v,
        query_param(req, "token"),
        LinkPurpose::SetPassword,
        None,
    )
    .await
}

#[handler]
async fn set_password_submit(req: &Request, Path(app): Path<String>, body: Body) -> Response {
    let v = visit_or_return!(req, &app);
    let form = form_or_return!(v, req, body);
    set_password_from(&v, &form, LinkPurpose::SetPassword).await
}

fn ask_for_reset_content(v: &Visit, email: &str) -> String {
    format!(
        "{}{}{}",
        para("We email you a link to choose a new password."),
        v.ask_for_link_form("reset-password", "reset", "Email me a link", email),
        link("sign-in", "Back to the sign-in page")
    )
}

#[handler]
async fn reset_password_page(req: &Request, Path(app): Path<String>) -> Response {
    let v = visit_or_return!(req, &app);
    match query_param(req, "token") {
        Some(token) => new_password_page(&v, Some(token), LinkPurpose::PasswordReset, None).await,
        None => v.render(
            StatusCode::OK,
            "Reset your password",
            &ask_for_reset_content(&v, ""),
        ),
    }
}

#[handler]
async fn reset_password_submit(req: &Request, Path(app): Path<String>, body: Body) -> Response {
    let v = visit_or_return!(req, &app);
    let form = form_or_return!(v, req, body);
    if form.contains_key("token") {
        return set_password_from(&v, &form, LinkPurpose::PasswordReset).await;
    }
    v.ask_for_link(
        req,
        &form,
        MessageKind::PasswordReset,
        "Reset your password",
        |raw| ask_for_reset_content(&v, raw),
    )
    .await
}

#[handler]
async fn sign_out(req: &Request, Path(app): Path<String>, body: Body) -> Response {
    let v = visit_or_return!(req, &app);
    let _form = form_or_return!(v, req, body);
    if let Some(token) = read_cookie(req, SESSION_COOKIE)
        && let Err(err) = v.state.sign_out(&token).await
    {
        return v.failed(&err, "Sign out", "");
    }
    v.redirect("sign-in", &[v.session_cookie(None)])
}
