//! Tenant isolation: another app's key sees 404 for every app-scoped endpoint, and changes
//! nothing; no token or a wrong one is 401; an app key on operator endpoints is 403.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::support::{Backend, Configured, OPERATOR, TestApp};

/// Every app-scoped operation, aimed at `c`'s app and objects.
fn operations(c: &Configured) -> Vec<(Method, String, Option<Value>)> {
    let a = format!("/admin/v1/apps/{}", c.app);
    vec![
        (Method::GET, a.clone(), None),
        (
            Method::POST,
            format!("{a}/api-keys"),
            Some(json!({"name": "x"})),
        ),
        (Method::GET, format!("{a}/api-keys"), None),
        (Method::DELETE, format!("{a}/api-keys/{}", c.key_id), None),
        (
            Method::POST,
            format!("{a}/access-levels"),
            Some(json!({"name": "x"})),
        ),
        (Method::GET, format!("{a}/access-levels"), None),
        (Method::GET, format!("{a}/access-levels/{}", c.level), None),
        (
            Method::PATCH,
            format!("{a}/access-levels/{}", c.level),
            Some(json!({"name": "x"})),
        ),
        (
            Method::DELETE,
            format!("{a}/access-levels/{}", c.level),
            None,
        ),
        (Method::GET, format!("{a}/thrivecart"), None),
        (
            Method::PATCH,
            format!("{a}/thrivecart"),
            Some(json!({"test_mode": "ignore"})),
        ),
        (
            Method::POST,
            format!("{a}/thrivecart/enable"),
            Some(json!({"secret_word": "x"})),
        ),
        (Method::POST, format!("{a}/thrivecart/disable"), None),
        (
            Method::POST,
            format!("{a}/thrivecart/rotate-webhook-token"),
            None,
        ),
        (
            Method::POST,
            format!("{a}/thrivecart/mappings"),
            Some(json!({"product": "8", "access_level_id": c.level})),
        ),
        (Method::GET, format!("{a}/thrivecart/mappings"), None),
        (
            Method::DELETE,
            format!("{a}/thrivecart/mappings/{}", c.mapping),
            None,
        ),
        (
            Method::GET,
            format!("{a}/thrivecart/unmapped-products"),
            None,
        ),
        (Method::GET, format!("{a}/members"), None),
        (Method::GET, format!("{a}/members/{}", c.member), None),
        (
            Method::POST,
            format!("{a}/members/{}/grants", c.member),
            Some(json!({"access_level_id": c.level})),
        ),
        (
            Method::DELETE,
            format!("{a}/members/{}/grants/{}", c.member, c.grant),
            None,
        ),
        (
            Method::POST,
            format!("{a}/members/{}/invitations", c.member),
            None,
        ),
        (Method::GET, format!("{a}/activity"), None),
        (Method::GET, format!("{a}/activity/{}", c.delivery), None),
        (
            Method::POST,
            format!("{a}/activity/{}/replay", c.delivery),
            None,
        ),
        (Method::PATCH, a.clone(), Some(json!({"name": "x"}))),
        (
            Method::PUT,
            format!("{a}/members/{}/access-overrides/{}", c.member, c.level),
            Some(json!({"status": "revoked"})),
        ),
        (
            Method::GET,
            format!("{a}/members/{}/access-overrides", c.member),
            None,
        ),
        (
            Method::GET,
            format!("{a}/members/{}/access-overrides/{}", c.member, c.level),
            None,
        ),
        (
            Method::DELETE,
            format!("{a}/members/{}/access-overrides/{}", c.member, c.level),
            None,
        ),
        (
            Method::GET,
            format!("{a}/members/{}/export", c.member),
            None,
        ),
        (Method::GET, format!("{a}/member-settings"), None),
        (
            Method::PATCH,
            format!("{a}/member-settings"),
            Some(json!({"sender_name": "x"})),
        ),
        (Method::GET, format!("{a}/messages"), None),
        (
            Method::GET,
            format!("{a}/members/{}/messages", c.member),
            None,
        ),
        (
            Method::POST,
            format!("{a}/members/{}/welcome-email", c.member),
            None,
        ),
        // The destructive ones last, so the operator's run reaches every other one first.
        (Method::DELETE, format!("{a}/members/{}", c.member), None),
        (Method::DELETE, a.clone(), None),
    ]
}

/// Everything an app has, read with the operator token.
pub async fn snapshot(t: &TestApp, c: &Configured) -> Value {
    let a = format!("/admin/v1/apps/{}", c.app);
    let mut state = serde_json::Map::new();
    for path in [
        a.clone(),
        format!("{a}/api-keys"),
        format!("{a}/access-levels"),
        format!("{a}/thrivecart"),
        format!("{a}/thrivecart/mappings"),
        format!("{a}/members"),
        format!("{a}/members/{}", c.member),
        format!("{a}/activity"),
        format!("{a}/member-settings"),
    ] {
        let answer = t.get(&path, OPERATOR).await;
        assert_eq!(answer.status, StatusCode::OK, "{path}: {}", answer.body);
        state.insert(path, answer.body);
    }
    state.insert(
        "webhook".into(),
        json!(t.head_url(&c.webhook_url).await.as_u16()),
    );
    Value::Object(state)
}

async fn another_apps_key_gets_404_and_changes_nothing(backend: Backend) {
    let t = TestApp::spawn(backend).await;
    let a = t.configured_app("A").await;
    let b = t.configured_app("B").await;
    let before = snapshot(&t, &a).await;

    for (method, path, body) in operations(&a) {
        let answer = t
            .request(method.clone(), &path, Some(&b.key), body.clone())
            .await;
        answer.assert_error(404, "not_found");
        // Reaching A's objects through B's own app path is just as missing.
        let via_b = path.replace(&a.app, &b.app);
        let names_an_object = [
            &a.level,
            &a.mapping,
            &a.key_id,
            &a.member,
            &a.delivery,
            &a.grant,
        ]
        .iter()
        .any(|id| via_b.contains(id.as_str()));
        if names_an_object {
            let answer = t.request(method.clone(), &via_b, Some(&b.key), body).await;
            answer.assert_error(404, "not_found");
        }
    }
    assert_eq!(snapshot(&t, &a).await, before);
}

async fn missing_or_wrong_tokens_get_401_and_change_nothing(backend: Backend) {
    let t = TestApp::spawn(backend).await;
    let a = t.configured_app("A").await;
    let before = snapshot(&t, &a).await;
    let wrong = [
        "lk_".to_owned() + &"A".repeat(43),
        "nonsense".into(),
        format!("{OPERATOR}x"),
    ];
    for (method, path, body) in operations(&a) {
        let answer = t.request(method.clone(), &path, None, body.clone()).await;
        answer.assert_error(401, "unauthorized");
        for token in &wrong {
            let answer = t
                .request(method.clone(), &path, Some(token), body.clone())
                .await;
            answer.assert_error(401, "unauthorized");
        }
    }
    for (method, path) in [
        (Method::GET, "/admin/v1/apps"),
        (Method::POST, "/admin/v1/apps"),
    ] {
        let answer = t
            .request(method, path, None, Some(json!({"name": "x"})))
            .await;
        answer.assert_error(401, "unauthorized");
    }
    assert_eq!(snapshot(&t, &a).await, before);
}

async fn revoked_keys_get_401_everywhere(backend: Backend) {
    let t = TestApp::spawn(backend).await;
    let a = t.configured_app("A").await;
    let d = t
        .delete(
            &format!("/admin/v1/apps/{}/api-keys/{}", a.app, a.key_id),
            OPERATOR,
        )
        .await;
    assert_eq!(d.status, StatusCode::NO_CONTENT);
    let before = snapshot(&t, &a).await;
    for (method, path, body) in operations(&a) {
        let answer = t.request(method.clone(), &path, Some(&a.key), body).await;
        answer.assert_error(401, "unauthorized");
    }
    assert_eq!(snapshot(&t, &a).await, before);
}

async fn app_keys_cannot_use_operator_endpoints(backend: Backend) {
    let t = TestApp::spawn(backend).await;
    let a = t.configured_app("A").await;
    t.get("/admin/v1/apps", &a.key)
        .await
        .assert_error(403, "forbidden");
    t.post("/admin/v1/apps", &a.key, json!({"name": "sneaky"}))
        .await
        .assert_error(403, "forbidden");
    let apps = t.get("/admin/v1/apps", OPERATOR).await;
    assert_eq!(apps.body["items"].as_array().unwrap().len(), 1);
}

async fn the_operator_may_act_on_every_app(backend: Backend) {
    let t = TestApp::spawn(backend).await;
    let a = t.configured_app("A").await;
    for (method, path, body) in operations(&a) {
        let answer = t.request(method.clone(), &path, Some(OPERATOR), body).await;
        assert!(
            answer.status.is_success() || answer.status == StatusCode::CONFLICT,
            "{method} {path}: {} {}",
            answer.status,
            answer.body
        );
    }
}

async fn operator_on_a_missing_app_gets_404(backend: Backend) {
    let t = TestApp::spawn(backend).await;
    let a = t.configured_app("A").await;
    let missing = Configured {
        app: "01a21ade-0000-7000-8000-000000000000".into(),
        ..a
    };
    for (method, path, body) in operations(&missing) {
        let answer = t.request(method.clone(), &path, Some(OPERATOR), body).await;
        answer.assert_error(404, "not_found");
    }
}

crate::on_both_backends!(
    another_apps_key_gets_404_and_changes_nothing,
    missing_or_wrong_tokens_get_401_and_change_nothing,
    app_keys_cannot_use_operator_endpoints,
    revoked_keys_get_401_everywhere,
    the_operator_may_act_on_every_app,
    operator_on_a_missing_app_gets_404,
);
