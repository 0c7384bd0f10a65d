//! Manual grants, invitations and the member API: from an admin's invitation to a member's
//! `GET /member/v1/me`, with the password rules, the rate limit and session isolation.

use std::time::Instant;

use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::support::{Answer, Backend, Configured, OPERATOR, TestApp};

const PASSWORD: &str = "correct horse battery";

/// The invitation token of a set-password link.
pub fn token_of(url: &str) -> String {
    url.split("token=")
        .nth(1)
        .expect("a token in the link")
        .to_owned()
}

pub async fn invite(t: &TestApp, c: &Configured) -> String {
    let a = t
        .post(
            &format!("/admin/v1/apps/{}/members/{}/invitations", c.app, c.member),
            &c.key,
            json!({}),
        )
        .await;
    assert_eq!(a.status, StatusCode::CREATED, "{}", a.body);
    let url = a.str("url");
    assert!(url.starts_with("https://larder.test/"), "{url}");
    assert!(a.body["expires_at"].is_string());
    token_of(&url)
}

pub async fn set_password(t: &TestApp, app: &str, token: &str, password: &str) -> Answer {
    t.request(
        Method::POST,
        &format!("/member/v1/apps/{app}/password"),
        None,
        Some(json!({"token": token, "password": password})),
    )
    .await
}

pub async fn sign_in(t: &TestApp, app: &str, email: &str, password: &str) -> Answer {
    t.request(
        Method::POST,
        &format!("/member/v1/apps/{app}/sessions"),
        None,
        Some(json!({"email": email, "password": password})),
    )
    .await
}

/// A configured app whose member (avery.quinn@example.com) has set a password.
async fn member_with_password(t: &TestApp, name: &str) -> Configured {
    let c = t.configured_app(name).await;
    let token = invite(t, &c).await;
    let a = set_password(t, &c.app, &token, PASSWORD).await;
    assert_eq!(a.status, StatusCode::NO_CONTENT, "{}", a.body);
    c
}

fn level_names(me: &Answer) -> Vec<String> {
    me.body["access_levels"]
        .as_array()
        .expect("access levels")
        .iter()
        .map(|l| l["name"].as_str().unwrap_or_default().to_owned())
        .collect()
}

async fn an_invited_member_signs_in_and_sees_their_access(backend: Backend) {
    let t = TestApp::spawn(backend).await;
    let c = t.configured_app("A").await;
    let token = invite(&t, &c).await;

    set_password(&t, &c.app, &token, "short")
        .await
        .assert_error(422, "weak_password");
    set_password(&t, &c.app, &token, "AVERY.QUINN@example.com")
        .await
        .assert_error(422, "weak_password");
    set_password(&t, &c.app, "li_unknown", PASSWORD)
        .await
        .assert_error(400, "invalid_token");
    let done = set_password(&t, &c.app, &token, PASSWORD).await;
    assert_eq!(done.status, StatusCode::NO_CONTENT, "{}", done.body);
    set_password(&t, &c.app, &token, "another good password")
        .await
        .assert_error(400, "invalid_token");

    let session = sign_in(&t, &c.app, "  Avery.Quinn@Example.com ", PASSWORD).await;
    assert_eq!(session.status, StatusCode::CREATED, "{}", session.body);
    let session_token = session.str("token");
    assert!(session.body["expires_at"].is_string());

    let me = t.get("/member/v1/me", &session_token).await;
    assert_eq!(me.status, StatusCode::OK, "{}", me.body);
    assert_eq!(me.body["id"], c.member.as_str());
    assert_eq!(me.body["email"], "avery.quinn@example.com");
    assert_eq!(level_names(&me), ["Gold"]);

    // A manual grant shows up; revoking it takes it away.
    let extra = t.create_level(&c.app, &c.key, "Extra").await;
    let grants = format!("/admin/v1/apps/{}/members/{}/grants", c.app, c.member);
    let grant = t
        .post(&grants, &c.key, json!({"access_level_id": extra}))
        .await;
    assert_eq!(grant.status, StatusCode::CREATED, "{}", grant.body);
    assert_eq!(grant.body["source"], "manual");
    assert_eq!(grant.body["order_id"], json!(null));
    assert_eq!(
        level_names(&t.get("/member/v1/me", &session_token).await),
        ["Extra", "Gold"]
    );
    let revoke = t
        .delete(&format!("{grants}/{}", grant.str("id")), &c.key)
        .await;
    assert_eq!(revoke.status, StatusCode::NO_CONTENT, "{}", revoke.body);
    assert_eq!(
        level_names(&t.get("/member/v1/me", &session_token).await),
        ["Gold"]
    );
    // Purchases' grants are not the admin's to revoke.
    let detail = t
        .get(
            &format!("/admin/v1/apps/{}/members/{}", c.app, c.member),
            &c.key,
        )
        .await;
    let bought = detail.body["grants"]
        .as_array()
        .expect("grants")
        .iter()
        .find(|g| g["source"] == "thrivecart")
        .expect("a purchase's grant")["id"]
        .as_str()
        .expect("an id")
        .to_owned();
    t.delete(&format!("{grants}/{bought}"), &c.key)
        .await
        .assert_error(409, "grant_managed_by_thrivecart");
    t.post(&grants, &c.key, json!({"access_level_id": "nope"}))
        .await
        .assert_error(422, "unknown_access_level");

    let out = t
        .delete("/member/v1/sessions/current", &session_token)
        .await;
    assert_eq!(out.status, StatusCode::NO_CONTENT);
    t.get("/member/v1/me", &session_token)
        .await
        .assert_error(401, "unauthorized");
}

async fn wrong_passwords_and_unknown_emails_answer_alike(backend: Backend) {
    let t = TestApp::spawn(backend).await;
    let c = member_with_password(&t, "A").await;
    let wrong = sign_in(&t, &c.app, "avery.quinn@example.com", "not the password").await;
    let unknown = sign_in(&t, &c.app, "nobody@example.com", PASSWORD).await;
    let no_password_yet = sign_in(&t, &c.app, "jordan@example.com", PASSWORD).await;
    for a in [&wrong, &unknown, &no_password_yet] {
        a.assert_error(401, "invalid_credentials");
    }
    assert_eq!(wrong.body, unknown.body);
}

async fn repeated_failures_are_rate_limited(backend: Backend) {
    let t = TestApp::spawn(backend).await;
    let c = member_with_password(&t, "A").await;
    for _ in 0..10 {
        sign_in(&t, &c.app, "avery.quinn@example.com", "wrong password!")
            .await
            .assert_error(401, "invalid_credentials");
    }
    let limited = sign_in(&t, &c.app, "Avery.Quinn@example.com", PASSWORD).await;
    limited.assert_error(429, "rate_limited");
    let retry: u64 = limited.headers["retry-after"]
        .to_str()
        .expect("a header value")
        .parse()
        .expect("seconds");
    assert!((1..=900).contains(&retry), "{retry}");
    // A burst of parallel attempts gets no more than the allowed tries either.
    let burst = futures::future::join_all(
        (0..30).map(|_| sign_in(&t, &c.app, "burst@example.com", "wrong password!")),
    )
    .await;
    let tried = burst
        .iter()
        .filter(|a| a.status == StatusCode::UNAUTHORIZED)
        .count();
    let limited = burst
        .iter()
        .filter(|a| a.status == StatusCode::TOO_MANY_REQUESTS)
        .count();
    assert_eq!((tried, limited), (10, 20));
    // The same email in another app is not limited.
    let other = member_with_password(&t, "B").await;
    let ok = sign_in(&t, &other.app, "avery.quinn@example.com", PASSWORD).await;
    assert_eq!(ok.status, StatusCode::CREATED, "{}", ok.body);
}

async fn tokens_stay_in_their_lane(backend: Backend) {
    let t = TestApp::spawn(backend).await;
    let a = member_with_password(&t, "A").await;
    let b = member_with_password(&t, "B").await;
    let session_a = sign_in(&t, &a.app, "avery.quinn@example.com", PASSWORD)
        .await
        .str("token");
    let session_b = sign_in(&t, &b.app, "avery.quinn@example.com", PASSWORD)
        .await
        .str("token");
    // Same email, two apps: each session reads its own app's member.
    assert_eq!(
        t.get("/member/v1/me", &session_a).await.body["id"],
        a.member.as_str()
    );
    assert_eq!(
        t.get("/member/v1/me", &session_b).await.body["id"],
        b.member.as_str()
    );
    // Session tokens never work on admin endpoints; admin tokens never on member ones.
    for path in [
        format!("/admin/v1/apps/{}/members", a.app),
        "/admin/v1/apps".to_owned(),
    ] {
        t.get(&path, &session_a)
            .await
            .assert_error(401, "unauthorized");
    }
    t.get("/member/v1/me", OPERATOR)
        .await
        .assert_error(401, "unauthorized");
    t.get("/member/v1/me", &a.key)
        .await
        .assert_error(401, "unauthorized");
    t.request(Method::GET, "/member/v1/me", None, None)
        .await
        .assert_error(401, "unauthorized");
    // Invitations of one app do not work in another.
    let token = invite(&t, &a).await;
    set_password(&t, &b.app, &token, PASSWORD)
        .await
        .assert_error(400, "invalid_token");
}

async fn webhooks_are_answered_while_sign_ins_hash(backend: Backend) {
    let _alone = crate::support::timing_sensitive().await;
    let t = TestApp::spawn(backend).await;
    let c = member_with_password(&t, "A").await;
    let webhook = c.webhook_url.replace("https://larder.test", &t.base);
    // Fifty sign-ins at once (each with its own email, so none is rate limited by email):
    // each costs an argon2 verification, and the queue for them is bounded, so those
    // beyond it are told at once to come back.
    let sign_ins = async {
        let emails: Vec<String> = (0..50).map(|i| format!("visitor{i}@example.com")).collect();
        let all = futures::future::join_all(
            emails
                .iter()
                .map(|email| sign_in(&t, &c.app, email, PASSWORD)),
        )
        .await;
        let checked = all
            .iter()
            .filter(|a| a.status == StatusCode::UNAUTHORIZED)
            .count();
        let refused: Vec<_> = all
            .iter()
            .filter(|a| a.status == StatusCode::SERVICE_UNAVAILABLE)
            .collect();
        assert_eq!(checked + refused.len(), 50, "{all:?}");
        assert!(checked >= 9, "{checked} checked");
        assert!(!refused.is_empty(), "the queue was not bounded");
        for r in refused {
            r.assert_error(503, "unavailable");
            assert_eq!(r.headers["retry-after"], "1");
        }
        Instant::now()
    };
    let webhooks = async {
        // Let the sign-ins queue up first.
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        for _ in 0..10 {
            let a = t.raw(t.client().post(&webhook).body("")).await;
            assert_eq!(a.body["status"], "ping");
        }
        Instant::now()
    };
    let (signed_in, pinged) = tokio::join!(sign_ins, webhooks);
    assert!(
        pinged < signed_in,
        "webhooks waited for the sign-ins to finish"
    );
}

async fn sign_ins_are_refused_early_for_unknown_apps_and_busy_addresses(backend: Backend) {
    let t = TestApp::spawn(backend).await;
    let c = member_with_password(&t, "A").await;
    sign_in(
        &t,
        &uuid::Uuid::now_v7().to_string(),
        "a@example.com",
        PASSWORD,
    )
    .await
    .assert_error(404, "not_found");
    // Fifty failures from one address, each for another email (so no email's own limit is
    // reached): the address is stopped, even for a right password.
    for i in 0..50 {
        let a = sign_in(
            &t,
            &c.app,
            &format!("guess{i}@example.com"),
            "not the password",
        )
        .await;
        a.assert_error(401, "invalid_credentials");
    }
    let stopped = sign_in(&t, &c.app, "avery.quinn@example.com", PASSWORD).await;
    stopped.assert_error(429, "rate_limited");
    assert!(
        stopped.str("message").contains("address"),
        "{}",
        stopped.body
    );
    assert!(stopped.headers.contains_key("retry-after"));
}

crate::on_both_backends!(
    sign_ins_are_refused_early_for_unknown_apps_and_busy_addresses,
    an_invited_member_signs_in_and_sees_their_access,
    wrong_passwords_and_unknown_emails_answer_alike,
    repeated_failures_are_rate_limited,
    tokens_stay_in_their_lane,
    webhooks_are_answered_while_sign_ins_hash,
);
