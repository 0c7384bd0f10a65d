//! Members get in by themselves: magic links and password resets asked for through the
//! member API (202 whoever asks), their emails, single use and limits; a password set from
//! a link ends every other session. CORS for an app's own front end; the hosted pages'
//! headers, CSRF guard and redirects. The walk through the pages in a browser is in
//! `browser.rs`.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::mail::{link_to, outbox_messages};
use crate::members::{invite, set_password, sign_in};
use crate::support::{Answer, Backend, Configured, TestApp};

async fn ask(t: &TestApp, app: &str, what: &str, email: &str) -> Answer {
    t.request(
        Method::POST,
        &format!("/member/v1/apps/{app}/{what}"),
        None,
        Some(json!({ "email": email })),
    )
    .await
}

async fn redeem(t: &TestApp, app: &str, what: &str, body: Value) -> Answer {
    t.request(
        Method::POST,
        &format!("/member/v1/apps/{app}/{what}/redeem"),
        None,
        Some(body),
    )
    .await
}

fn token_in(link: &str) -> String {
    link.split("token=").nth(1).expect("a token").to_owned()
}

async fn me(t: &TestApp, session: &str) -> Answer {
    t.get("/member/v1/me", session).await
}

/// The member of a configured app, and the messages written so far (the welcome).
async fn app_with_member(t: &TestApp) -> (Configured, String) {
    let c = t.configured_app("Pantry Club").await;
    let welcome = &outbox_messages(&t.outbox_dir, 1).await[0];
    let to = welcome["to"].as_str().unwrap();
    let email = to
        .rsplit('<')
        .next()
        .unwrap()
        .trim_end_matches('>')
        .to_owned();
    (c, email)
}

async fn magic_links_sign_a_member_in_once(backend: Backend) {
    let t = TestApp::spawn(backend).await;
    let (c, email) = app_with_member(&t).await;

    // A member and a stranger get the same answer; only the member gets an email.
    let asked = ask(&t, &c.app, "magic-links", &email.to_uppercase()).await;
    assert_eq!(asked.status, StatusCode::ACCEPTED, "{}", asked.body);
    let stranger = ask(&t, &c.app, "magic-links", "nobody@example.com").await;
    assert_eq!(stranger.status, StatusCode::ACCEPTED, "{}", stranger.body);
    assert_eq!(
        asked.str("message").replace(&email, "X"),
        stranger.str("message").replace("nobody@example.com", "X")
    );
    let messages = outbox_messages(&t.outbox_dir, 2).await;
    let magic = &messages[1];
    assert_eq!(magic["subject"], "Your sign-in link for Pantry Club");
    let text = magic["text"].as_str().unwrap();
    assert!(text.contains("It works once, for 15 minutes."), "{text}");
    let link = link_to(text, "magic");
    assert!(
        link.starts_with(&format!(
            "https://larder.test/members/{}/magic?token=lm_",
            c.app
        )),
        "{link}"
    );
    let listed = t
        .get(
            &format!("/admin/v1/apps/{}/messages?kind=magic_link", c.app),
            &c.key,
        )
        .await;
    assert_eq!(
        listed.body["items"].as_array().unwrap().len(),
        1,
        "{}",
        listed.body
    );
    assert!(!listed.body.to_string().contains(&token_in(&link)));

    // The link signs in once.
    let session = redeem(&t, &c.app, "magic-links", json!({"token": token_in(&link)})).await;
    assert_eq!(session.status, StatusCode::CREATED, "{}", session.body);
    assert!(session.body["expires_at"].is_string());
    let who = me(&t, &session.str("token")).await;
    assert_eq!(who.status, StatusCode::OK, "{}", who.body);
    assert_eq!(who.str("email"), email);
    redeem(&t, &c.app, "magic-links", json!({"token": token_in(&link)}))
        .await
        .assert_error(400, "invalid_token");
    // A set-password link is no magic link.
    let welcome_link = link_to(messages[0]["text"].as_str().unwrap(), "set-password");
    redeem(
        &t,
        &c.app,
        "magic-links",
        json!({"token": token_in(&welcome_link)}),
    )
    .await
    .assert_error(400, "invalid_token");
    // Another app's path does not take this app's link, and leaves it unused.
    let other = t.create_app("Other Club").await;
    let asked = ask(&t, &c.app, "magic-links", &email).await;
    assert_eq!(asked.status, StatusCode::ACCEPTED);
    let again = link_to(
        outbox_messages(&t.outbox_dir, 3).await[2]["text"]
            .as_str()
            .unwrap(),
        "magic",
    );
    redeem(
        &t,
        &other,
        "magic-links",
        json!({"token": token_in(&again)}),
    )
    .await
    .assert_error(400, "invalid_token");
    let theirs = redeem(
        &t,
        &c.app,
        "magic-links",
        json!({"token": token_in(&again)}),
    )
    .await;
    assert_eq!(theirs.status, StatusCode::CREATED, "{}", theirs.body);

    // Bad input is named; an unknown app is 404.
    let bad = ask(&t, &c.app, "magic-links", "not an email").await;
    assert_eq!(bad.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", bad.body);
    assert_eq!(bad.body["field"], "email");
    ask(&t, &uuid::Uuid::now_v7().to_string(), "magic-links", &email)
        .await
        .assert_error(404, "not_found");
}

async fn a_password_reset_ends_every_session(backend: Backend) {
    let t = TestApp::spawn(backend).await;
    let (c, email) = app_with_member(&t).await;
    let old = "the old passphrase";
    let invited = set_password(&t, &c.app, &invite(&t, &c).await, old).await;
    assert_eq!(invited.status, StatusCode::NO_CONTENT, "{}", invited.body);
    let mut sessions = Vec::new();
    for _ in 0..2 {
        let s = sign_in(&t, &c.app, &email, old).await;
        assert_eq!(s.status, StatusCode::CREATED, "{}", s.body);
        sessions.push(s.str("token"));
    }

    let asked = ask(&t, &c.app, "password-resets", &email).await;
    assert_eq!(asked.status, StatusCode::ACCEPTED, "{}", asked.body);
    // The welcome, the invitation's email, then the reset.
    let messages = outbox_messages(&t.outbox_dir, 3).await;
    let reset = messages
        .iter()
        .find(|m| m["subject"] == "Reset your Pantry Club password")
        .expect("the reset email");
    let link = link_to(reset["text"].as_str().unwrap(), "reset-password");
    assert!(link.contains("token=lr_"), "{link}");
    let token = token_in(&link);

    // A weak password is refused and uses nothing up.
    redeem(
        &t,
        &c.app,
        "password-resets",
        json!({"token": token, "password": email}),
    )
    .await
    .assert_error(422, "weak_password");
    for s in &sessions {
        assert_eq!(me(&t, s).await.status, StatusCode::OK);
    }
    let new = "a brand new passphrase";
    let done = redeem(
        &t,
        &c.app,
        "password-resets",
        json!({"token": token, "password": new}),
    )
    .await;
    assert_eq!(done.status, StatusCode::NO_CONTENT, "{}", done.body);
    for s in &sessions {
        me(&t, s).await.assert_error(401, "unauthorized");
    }
    sign_in(&t, &c.app, &email, old)
        .await
        .assert_error(401, "invalid_credentials");
    assert_eq!(
        sign_in(&t, &c.app, &email, new).await.status,
        StatusCode::CREATED
    );
    redeem(
        &t,
        &c.app,
        "password-resets",
        json!({"token": token, "password": "yet another passphrase"}),
    )
    .await
    .assert_error(400, "invalid_token");
    // A reset token does not set a password through the invitation path either.
    set_password(&t, &c.app, &token, "yet another passphrase")
        .await
        .assert_error(400, "invalid_token");

    // A password set from an invitation ends the sessions too.
    let s = sign_in(&t, &c.app, &email, new).await.str("token");
    let invited = set_password(&t, &c.app, &invite(&t, &c).await, "third passphrase!").await;
    assert_eq!(invited.status, StatusCode::NO_CONTENT, "{}", invited.body);
    me(&t, &s).await.assert_error(401, "unauthorized");
}

async fn a_password_set_from_an_invitation_ends_every_other_session(backend: Backend) {
    let t = TestApp::spawn(backend).await;
    let (c, email) = app_with_member(&t).await;
    // Signed in twice without a password, through magic links.
    let mut sessions = Vec::new();
    for n in 0..2 {
        let asked = ask(&t, &c.app, "magic-links", &email).await;
        assert_eq!(asked.status, StatusCode::ACCEPTED, "{}", asked.body);
        let messages = outbox_messages(&t.outbox_dir, 2 + n).await;
        let link = link_to(messages[1 + n]["text"].as_str().unwrap(), "magic");
        let s = redeem(&t, &c.app, "magic-links", json!({"token": token_in(&link)})).await;
        assert_eq!(s.status, StatusCode::CREATED, "{}", s.body);
        sessions.push(s.str("token"));
    }
    for s in &sessions {
        assert_eq!(me(&t, s).await.status, StatusCode::OK);
    }

    // The admin's invitation sets a password: every session before it ends.
    let password = "an invited passphrase";
    let set = set_password(&t, &c.app, &invite(&t, &c).await, password).await;
    assert_eq!(set.status, StatusCode::NO_CONTENT, "{}", set.body);
    for s in &sessions {
        me(&t, s).await.assert_error(401, "unauthorized");
    }
    // The new password signs in.
    let fresh = sign_in(&t, &c.app, &email, password).await;
    assert_eq!(fresh.status, StatusCode::CREATED, "{}", fresh.body);
    assert_eq!(me(&t, &fresh.str("token")).await.status, StatusCode::OK);
}

async fn link_requests_are_limited_per_email_and_address(backend: Backend) {
    let t = TestApp::spawn(backend).await;
    let (c, email) = app_with_member(&t).await;
    for n in 0..5 {
        let what = if n % 2 == 0 {
            "magic-links"
        } else {
            "password-resets"
        };
        let a = ask(&t, &c.app, what, &email).await;
        assert_eq!(a.status, StatusCode::ACCEPTED, "request {n}: {}", a.body);
    }
    let refused = ask(&t, &c.app, "magic-links", &email).await;
    refused.assert_error(429, "rate_limited");
    let wait: u64 = refused.headers["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=900).contains(&wait), "{wait}");
    // A stranger's address is counted the same, so a refusal tells nothing.
    for _ in 0..5 {
        ask(&t, &c.app, "magic-links", "stranger@example.com").await;
    }
    ask(&t, &c.app, "magic-links", "stranger@example.com")
        .await
        .assert_error(429, "rate_limited");
    // Twenty per client address, whatever the emails: 12 so far.
    for n in 0..8 {
        let a = ask(
            &t,
            &c.app,
            "magic-links",
            &format!("someone{n}@example.com"),
        )
        .await;
        assert_eq!(a.status, StatusCode::ACCEPTED, "{n}: {}", a.body);
    }
    let over = ask(&t, &c.app, "magic-links", "someone.else@example.com").await;
    over.assert_error(429, "rate_limited");
    assert!(over.str("message").contains("address"), "{}", over.body);
    // Six messages in all (the welcome and five links): the member's, never a stranger's.
    outbox_messages(&t.outbox_dir, 6).await;
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    let listed = t
        .get(&format!("/admin/v1/apps/{}/messages", c.app), &c.key)
        .await;
    let to: Vec<&str> = listed.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["to"].as_str().unwrap())
        .collect();
    assert_eq!(to.len(), 6, "{}", listed.body);
    assert!(to.iter().all(|a| *a == email), "{to:?}");
}

async fn preflight(t: &TestApp, path: &str, origin: &str) -> reqwest::Response {
    t.client()
        .request(Method::OPTIONS, format!("{}{path}", t.base))
        .header("origin", origin)
        .header("access-control-request-method", "POST")
        .header(
            "access-control-request-headers",
            "content-type,authorization",
        )
        .send()
        .await
        .unwrap()
}

fn allowed_origin(resp: &reqwest::Response) -> Option<String> {
    resp.headers()
        .get("access-control-allow-origin")
        .map(|v| v.to_str().unwrap().to_owned())
}

async fn only_an_apps_origins_may_call_the_member_api(backend: Backend) {
    let t = TestApp::spawn(backend).await;
    let (c, email) = app_with_member(&t).await;
    let other = t.configured_app("Other Club").await;
    let front = "https://members.example.com";
    let settings = format!("/admin/v1/apps/{}/member-settings", c.app);
    let set = t
        .patch(&settings, &c.key, json!({"cors_origins": [front]}))
        .await;
    assert_eq!(set.status, StatusCode::OK, "{}", set.body);
    let sessions = format!("/member/v1/apps/{}/sessions", c.app);

    let ok = preflight(&t, &sessions, front).await;
    assert_eq!(ok.status(), StatusCode::NO_CONTENT);
    assert_eq!(allowed_origin(&ok).as_deref(), Some(front));
    let h = |name: &str| ok.headers()[name].to_str().unwrap().to_owned();
    assert_eq!(h("access-control-allow-methods"), "GET, POST, DELETE");
    assert_eq!(
        h("access-control-allow-headers"),
        "content-type, authorization"
    );
    assert!(h("access-control-max-age").parse::<u32>().unwrap() > 0);
    assert!(h("vary").contains("Origin"));
    assert!(
        ok.headers()
            .get("access-control-allow-credentials")
            .is_none()
    );
    for (path, origin) in [
        (sessions.clone(), "https://evil.example.com"),
        (sessions.clone(), "http://members.example.com"),
        (format!("/member/v1/apps/{}/sessions", other.app), front),
        (format!("/admin/v1/apps/{}/members", c.app), front),
    ] {
        let refused = preflight(&t, &path, origin).await;
        assert_eq!(allowed_origin(&refused), None, "{path} from {origin}");
    }

    // The answers themselves, errors included, are readable from the app's origin only.
    let wrong = t
        .client()
        .post(format!("{}{sessions}", t.base))
        .header("origin", front)
        .json(&json!({"email": email, "password": "not the password"}))
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(allowed_origin(&wrong).as_deref(), Some(front));
    assert!(
        wrong.headers()["access-control-expose-headers"]
            .to_str()
            .unwrap()
            .contains("Retry-After")
    );

    // `/me` names no app: its preflight is answered for any app's origin, the request for
    // its session's app's.
    assert_eq!(
        allowed_origin(&preflight(&t, "/member/v1/me", front).await).as_deref(),
        Some(front)
    );
    let token = set_password(&t, &c.app, &invite(&t, &c).await, "a passphrase here").await;
    assert_eq!(token.status, StatusCode::NO_CONTENT);
    let session = sign_in(&t, &c.app, &email, "a passphrase here")
        .await
        .str("token");
    let read_me = || async {
        t.client()
            .get(format!("{}/member/v1/me", t.base))
            .header("origin", front)
            .bearer_auth(&session)
            .send()
            .await
            .unwrap()
    };
    assert_eq!(allowed_origin(&read_me().await).as_deref(), Some(front));
    let other_set = t
        .patch(
            &format!("/admin/v1/apps/{}/member-settings", other.app),
            &other.key,
            json!({"cors_origins": ["https://other.example.com"]}),
        )
        .await;
    assert_eq!(other_set.status, StatusCode::OK);
    let theirs = t
        .client()
        .get(format!("{}/member/v1/me", t.base))
        .header("origin", "https://other.example.com")
        .bearer_auth(&session)
        .send()
        .await
        .unwrap();
    assert_eq!(theirs.status(), StatusCode::OK);
    assert_eq!(
        allowed_origin(&theirs),
        None,
        "another app's origin read /me"
    );

    // A change takes effect at once.
    t.patch(&settings, &c.key, json!({"cors_origins": []}))
        .await;
    assert_eq!(allowed_origin(&read_me().await), None);
    assert_eq!(allowed_origin(&preflight(&t, &sessions, front).await), None);
    assert_eq!(
        allowed_origin(&preflight(&t, "/member/v1/me", front).await),
        None
    );
}

fn no_redirects() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

async fn hosted_pages_are_locked_down(backend: Backend) {
    let t = TestApp::spawn(backend).await;
    let (c, _) = app_with_member(&t).await;
    let client = no_redirects();
    let page = |path: String| {
        let client = client.clone();
        let url = format!("{}{path}", t.base);
        async move { client.get(url).send().await.unwrap() }
    };

    let sign_in_page = page(format!("/members/{}/sign-in", c.app)).await;
    assert_eq!(sign_in_page.status(), StatusCode::OK);
    let headers = sign_in_page.headers().clone();
    let header = |name: &str| headers[name].to_str().unwrap().to_owned();
    assert_eq!(header("content-type"), "text/html; charset=utf-8");
    let csp = header("content-security-policy");
    assert!(
        csp.starts_with("default-src 'none'; style-src 'sha256-"),
        "{csp}"
    );
    assert!(csp.contains("form-action 'self'") && csp.contains("frame-ancestors 'none'"));
    assert_eq!(header("referrer-policy"), "no-referrer");
    assert_eq!(header("x-frame-options"), "DENY");
    assert_eq!(header("cache-control"), "no-store");
    let csrf_cookie = header("set-cookie");
    assert!(csrf_cookie.starts_with("larder_csrf="), "{csrf_cookie}");
    assert!(csrf_cookie.contains("HttpOnly") && csrf_cookie.contains("SameSite=Strict"));
    let html = sign_in_page.text().await.unwrap();
    assert!(html.contains("<p>Pantry Club</p>"), "{html}");
    assert!(
        html.contains("<label for=\"email\">Email address</label>"),
        "{html}"
    );
    assert!(!html.contains("<script"), "{html}");
    let csrf = csrf_cookie
        .split(';')
        .next()
        .unwrap()
        .trim_start_matches("larder_csrf=")
        .to_owned();

    // A form post without the cookie, with a wrong token, or from another site is refused.
    let post = |cookie: Option<String>, site: Option<&'static str>, token: String| {
        let client = client.clone();
        let url = format!("{}/members/{}/sign-in", t.base, c.app);
        async move {
            let mut req = client.post(url).form(&[
                ("csrf", token.as_str()),
                ("action", "password"),
                ("email", "jordan@example.com"),
                ("password", "whatever it is"),
            ]);
            if let Some(cookie) = cookie {
                req = req.header("cookie", cookie);
            }
            if let Some(site) = site {
                req = req.header("sec-fetch-site", site);
            }
            req.send().await.unwrap()
        }
    };
    let cookie = format!("larder_csrf={csrf}");
    assert_eq!(
        post(None, None, csrf.clone()).await.status(),
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        post(Some(cookie.clone()), None, "forged".into())
            .await
            .status(),
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        post(Some(cookie.clone()), Some("cross-site"), csrf.clone())
            .await
            .status(),
        StatusCode::FORBIDDEN
    );
    // The same form of this browser's gets to the sign-in itself.
    let wrong = post(Some(cookie.clone()), Some("same-origin"), csrf.clone()).await;
    assert_eq!(wrong.status(), StatusCode::UNAUTHORIZED);
    assert!(
        wrong
            .text()
            .await
            .unwrap()
            .contains("The email or the password is wrong."),
    );

    // Older invitation links lead to their page; signed-out visits to the sign-in page.
    let older = page(format!("/members/set-password/{}?token=li_x", c.app)).await;
    assert_eq!(older.status(), StatusCode::PERMANENT_REDIRECT);
    assert_eq!(
        older.headers()["location"],
        format!("../{}/set-password?token=li_x", c.app).as_str()
    );
    let home = page(format!("/members/{}/", c.app)).await;
    assert_eq!(home.status(), StatusCode::SEE_OTHER);
    assert_eq!(home.headers()["location"], "sign-in");
    // A dead link says so, and offers a new one; an unknown app has no pages.
    let dead = page(format!("/members/{}/magic?token=lm_nothing", c.app)).await;
    assert_eq!(dead.status(), StatusCode::BAD_REQUEST);
    assert!(dead.text().await.unwrap().contains("no longer works"));
    let unknown = page(format!("/members/{}/sign-in", uuid::Uuid::now_v7())).await;
    assert_eq!(unknown.status(), StatusCode::NOT_FOUND);
    assert!(
        unknown.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/html")
    );
}

crate::on_both_backends!(
    magic_links_sign_a_member_in_once,
    a_password_reset_ends_every_session,
    a_password_set_from_an_invitation_ends_every_other_session,
    link_requests_are_limited_per_email_and_address,
    only_an_apps_origins_may_call_the_member_api,
    hosted_pages_are_locked_down,
);
