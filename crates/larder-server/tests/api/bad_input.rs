//! Bad input gets the right status and code, in the shared error body, and changes nothing.

use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::isolation::snapshot;
use crate::support::{Backend, OPERATOR, TestApp};

async fn malformed_and_invalid_bodies_are_refused(backend: Backend) {
    let t = TestApp::spawn(backend).await;
    let c = t.configured_app("A").await;
    let before = snapshot(&t, &c).await;
    let levels = format!("{}/admin/v1/apps/{}/access-levels", t.base, c.app);
    let send = |body: &'static str, content_type: &'static str| {
        t.client()
            .post(&levels)
            .bearer_auth(&c.key)
            .header("content-type", content_type)
            .body(body)
    };
    let json = "application/json";
    t.raw(send("{\"name\":", json))
        .await
        .assert_error(400, "invalid_json");
    t.raw(send("", json))
        .await
        .assert_error(400, "invalid_json");
    t.raw(send("not json", json))
        .await
        .assert_error(400, "invalid_json");
    t.raw(send("[1, 2]", json))
        .await
        .assert_error(422, "validation_failed");
    t.raw(send("{}", json))
        .await
        .assert_error(422, "validation_failed");
    t.raw(send("{\"name\": [\"x\"]}", json))
        .await
        .assert_error(422, "validation_failed");
    t.raw(send("{\"name\": \"x\"}", "text/plain"))
        .await
        .assert_error(415, "unsupported_media_type");

    for name in [
        json!("   "),
        json!("a".repeat(201)),
        json!("bad\u{0007}name"),
    ] {
        let a = t
            .post(
                &format!("/admin/v1/apps/{}/access-levels", c.app),
                &c.key,
                json!({"name": name}),
            )
            .await;
        a.assert_error(422, "validation_failed");
        assert_eq!(a.body["field"], "name");
    }
    // The same name in another case is a duplicate.
    t.post(
        &format!("/admin/v1/apps/{}/access-levels", c.app),
        &c.key,
        json!({"name": "gold"}),
    )
    .await
    .assert_error(409, "conflict");

    let tc = format!("/admin/v1/apps/{}/thrivecart", c.app);
    t.patch(&tc, &c.key, json!({"test_mode": "sometimes"}))
        .await
        .assert_error(422, "validation_failed");
    t.patch(&tc, &c.key, json!({"secret_word": ""}))
        .await
        .assert_error(422, "validation_failed");
    t.post(
        &format!("{tc}/enable"),
        &c.key,
        json!({"secret_word": "  "}),
    )
    .await
    .assert_error(422, "validation_failed");

    // Whitespace JSON does not know (a form feed) is not an empty body.
    t.raw(
        t.client()
            .post(format!("{}{tc}/enable", t.base))
            .bearer_auth(&c.key)
            .header("content-type", json)
            .body("\x0c"),
    )
    .await
    .assert_error(400, "invalid_json");

    let big = format!("{{\"name\": \"{}\"}}", "a".repeat(1024 * 1024 + 10));
    let a = t
        .raw(
            t.client()
                .post(&levels)
                .bearer_auth(&c.key)
                .header("content-type", json)
                .body(big),
        )
        .await;
    a.assert_error(413, "payload_too_large");

    assert_eq!(snapshot(&t, &c).await, before);
}

async fn mapping_rules_are_enforced(backend: Backend) {
    let t = TestApp::spawn(backend).await;
    let c = t.configured_app("A").await;
    let other = t.configured_app("B").await;
    let before = snapshot(&t, &c).await;
    let path = format!("/admin/v1/apps/{}/thrivecart/mappings", c.app);
    for product in [
        "",
        "abc",
        "7.5",
        "-7",
        "gift-7",
        "product-",
        "bump-x",
        "9999999999999999999999999",
    ] {
        let a = t
            .post(
                &path,
                &c.key,
                json!({"product": product, "access_level_id": c.level}),
            )
            .await;
        a.assert_error(422, "invalid_product");
        assert_eq!(a.body["field"], "product");
    }
    for level in [
        "01a21ade-0000-7000-8000-000000000000".to_owned(),
        "not-an-id".to_owned(),
        other.level.clone(),
    ] {
        let a = t
            .post(
                &path,
                &c.key,
                json!({"product": "8", "access_level_id": level}),
            )
            .await;
        a.assert_error(422, "unknown_access_level");
        assert_eq!(a.body["field"], "access_level_id");
    }
    // The same pair twice, however the product is spelled.
    for product in ["7", "product-7", "007"] {
        t.post(
            &path,
            &c.key,
            json!({"product": product, "access_level_id": c.level}),
        )
        .await
        .assert_error(409, "conflict");
    }
    t.delete(
        &format!("/admin/v1/apps/{}/access-levels/{}", c.app, c.level),
        &c.key,
    )
    .await
    .assert_error(409, "access_level_in_use");
    assert_eq!(snapshot(&t, &c).await, before);
}

async fn bad_parameters_are_400(backend: Backend) {
    let t = TestApp::spawn(backend).await;
    let c = t.configured_app("A").await;
    let levels = format!("/admin/v1/apps/{}/access-levels", c.app);
    for query in ["limit=0", "limit=201", "limit=abc", "limit=-1"] {
        let a = t.get(&format!("{levels}?{query}"), &c.key).await;
        a.assert_error(400, "invalid_parameter");
        assert_eq!(a.body["field"], "limit");
    }
    for cursor in ["zz", "AAAA", "%20"] {
        let a = t.get(&format!("{levels}?cursor={cursor}"), &c.key).await;
        a.assert_error(400, "invalid_parameter");
        assert_eq!(a.body["field"], "cursor");
    }
    t.get("/admin/v1/apps/not-an-id/access-levels", OPERATOR)
        .await
        .assert_error(400, "invalid_parameter");
    t.get(&format!("{levels}/not-an-id"), &c.key)
        .await
        .assert_error(400, "invalid_parameter");
    t.get("/admin/v1/apps?limit=200", OPERATOR)
        .await
        .status
        .is_success()
        .then_some(())
        .unwrap();
}

async fn unknown_routes_and_methods_answer_json(backend: Backend) {
    let t = TestApp::spawn(backend).await;
    let c = t.configured_app("A").await;
    t.get("/admin/v1/nothing-here", OPERATOR)
        .await
        .assert_error(404, "not_found");
    let a = t
        .request(Method::PUT, "/admin/v1/apps", Some(OPERATOR), None)
        .await;
    a.assert_error(405, "method_not_allowed");
    assert_eq!(a.headers["allow"], "GET, POST");
    let a = t
        .request(
            Method::PUT,
            &format!("/admin/v1/apps/{}/thrivecart", c.app),
            Some(OPERATOR),
            None,
        )
        .await;
    a.assert_error(405, "method_not_allowed");
    assert_eq!(a.headers["allow"], "GET, PATCH");
    let webhook = c.webhook_url.replace("https://larder.test", "");
    let a = t.request(Method::DELETE, &webhook, None, None).await;
    assert_eq!(a.status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(a.headers["allow"], "GET, HEAD, POST");
    // Unknown and malformed webhook tokens are 404s.
    for token in ["nope", &"A".repeat(43), &"A".repeat(2000)] {
        let status = t
            .head_url(&format!("{}/webhooks/thrivecart/{token}", t.base))
            .await;
        assert_eq!(status, StatusCode::NOT_FOUND);
    }
}

crate::on_both_backends!(
    malformed_and_invalid_bodies_are_refused,
    mapping_rules_are_enforced,
    bad_parameters_are_400,
    unknown_routes_and_methods_answer_json,
);
