//! The operational endpoints and the OpenAPI document.

use reqwest::StatusCode;
use serde_json::json;

use crate::support::{Backend, OPERATOR, TestApp, settings};

async fn health_and_readiness_answer(backend: Backend) {
    let t = TestApp::spawn(backend).await;
    let h = t
        .request(reqwest::Method::GET, "/healthz", None, None)
        .await;
    assert_eq!(h.status, StatusCode::OK);
    let r = t.request(reqwest::Method::GET, "/readyz", None, None).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.body["checks"]["database"], "ok");
    match backend {
        Backend::Postgres => assert_eq!(r.body["checks"]["redis"], "ok"),
        Backend::Sqlite => assert_eq!(r.body["checks"].get("redis"), None),
    }
}

async fn metrics_count_requests_by_operation(backend: Backend) {
    let t = TestApp::spawn(backend).await;
    let c = t.configured_app("A").await;
    t.get("/admin/v1/apps", "wrong").await;
    // The purchase configured_app delivered, again: answered from the idempotency cache.
    let mut purchase =
        larder_testkit::fixtures::thrivecart_json("12-order-success-repeat-customer-blank-name");
    purchase["thrivecart_secret"] = "sesame".into();
    let webhook = c.webhook_url.replace("https://larder.test", &t.base);
    let repeat = t.raw(t.client().post(&webhook).json(&purchase)).await;
    assert_eq!(repeat.body["status"], "duplicate", "{}", repeat.body);
    let unknown = format!("{}/webhooks/thrivecart/whk_{}", t.base, "x".repeat(40));
    let gone = t.raw(t.client().post(&unknown).json(&purchase)).await;
    assert_eq!(gone.status, StatusCode::NOT_FOUND);

    // /metrics on the public listener is the operator's alone.
    let anonymous = t
        .client()
        .get(format!("{}/metrics", t.base))
        .send()
        .await
        .unwrap();
    assert_eq!(anonymous.status(), StatusCode::UNAUTHORIZED);
    let keyed = t
        .client()
        .get(format!("{}/metrics", t.base))
        .bearer_auth(&c.key)
        .send()
        .await
        .unwrap();
    assert_eq!(
        keyed.status(),
        StatusCode::UNAUTHORIZED,
        "an app's key is not enough"
    );

    // The background jobs run once at start; wait for their first runs (not a timing
    // assertion: the deadline only bounds a broken run).
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let text = loop {
        let m = t
            .client()
            .get(format!("{}/metrics", t.base))
            .bearer_auth(OPERATOR)
            .send()
            .await
            .unwrap();
        assert_eq!(m.status(), StatusCode::OK);
        assert!(
            m.headers()["content-type"]
                .to_str()
                .unwrap()
                .starts_with("text/plain")
        );
        let text = m.text().await.unwrap();
        // The revoker and the pruners are separate tasks: wait for both.
        let ran = [
            r#"job="prune_sign_ins",result="#,
            r#"job="revoke_due_items",result="#,
        ]
        .iter()
        .all(|job| text.contains(job));
        if ran || std::time::Instant::now() > deadline {
            break text;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    };
    for line in [
        r#"larder_http_requests_total{method="POST",operation="createApp",status="201"} 1"#,
        r#"larder_http_requests_total{method="GET",operation="listApps",status="401"} 1"#,
        r#"larder_http_requests_total{method="POST",operation="receiveThriveCartWebhook",status="200"} 2"#,
        r#"larder_http_requests_total{method="POST",operation="receiveThriveCartWebhook",status="404"} 1"#,
        r#"larder_http_request_duration_seconds_count{method="POST",operation="receiveThriveCartWebhook",route="/webhooks/thrivecart/{token}"} 3"#,
        r#"larder_http_request_duration_seconds_count{method="GET",operation="listApps",route="/admin/v1/apps"} 1"#,
        r#"larder_webhook_deliveries_total{event="order.success",outcome="applied"} 1"#,
        r#"larder_webhook_deliveries_total{event="order.success",outcome="duplicate"} 1"#,
        r#"larder_webhook_deliveries_total{event="none",outcome="not_found"} 1"#,
        "larder_webhook_intake_duration_seconds_count 2",
        r#"larder_cache_lookups_total{cache="idempotency",result="hit"} 1"#,
        r#"larder_cache_lookups_total{cache="idempotency",result="miss"} 1"#,
        "larder_idempotency_fast_path_total 1",
        r#"larder_db_pool_connections{state="in_use"}"#,
        r#"larder_db_pool_connections{state="idle"}"#,
        r#"larder_background_job_runs_total{job="revoke_due_items",result="ok"}"#,
        r#"larder_background_job_runs_total{job="prune_activity",result="ok"} 1"#,
        r#"larder_background_job_last_success_timestamp_seconds{job="prune_sign_ins"}"#,
    ] {
        assert!(text.contains(line), "{line} missing from\n{text}");
    }
    for cache in ["webhook_token", "mappings", "api_key"] {
        assert!(
            text.contains(&format!(r#"larder_cache_lookups_total{{cache="{cache}""#)),
            "{cache}: {text}"
        );
    }
    let token = c.webhook_url.rsplit('/').next().unwrap();
    assert!(!text.contains(token), "no tokens in metrics");
    assert!(!text.contains(&c.app), "no app ids in metrics");
}

async fn openapi_document_and_docs_are_served(backend: Backend) {
    let t = TestApp::spawn(backend).await;
    let spec = t
        .request(reqwest::Method::GET, "/openapi.json", None, None)
        .await;
    assert_eq!(spec.status, StatusCode::OK);
    let generated: serde_json::Value =
        serde_json::from_str(&larder_server::openapi_document()).unwrap();
    assert_eq!(spec.body, generated);
    let docs = t
        .client()
        .get(format!("{}/docs", t.base))
        .send()
        .await
        .unwrap();
    assert_eq!(docs.status(), StatusCode::OK);
    assert!(docs.text().await.unwrap().contains("swagger"));
}

/// `/docs` shows the document `/openapi.json` serves, finished (public operations marked
/// `security: []`), not poem-openapi's own.
async fn the_browsable_docs_show_the_published_document(backend: Backend) {
    let t = TestApp::spawn(backend).await;
    let docs = t
        .client()
        .get(format!("{}/docs", t.base))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        docs.contains("\"security\": []"),
        "the page embeds the unfinished document"
    );
    assert!(docs.contains("\"additionalProperties\": false"));
}

crate::on_both_backends!(
    the_browsable_docs_show_the_published_document,
    health_and_readiness_answer,
    metrics_count_requests_by_operation,
    openapi_document_and_docs_are_served,
);

#[tokio::test]
async fn committed_openapi_document_matches_the_code() {
    let committed = include_str!("../../../../openapi/larder.json");
    let generated = larder_server::openapi_document();
    assert!(
        committed.trim_end() == generated.trim_end(),
        "openapi/larder.json is out of date: regenerate it with \
         `cargo run -p larder-server -- openapi > openapi/larder.json`"
    );
}

#[tokio::test]
async fn every_operation_has_an_id_summary_and_error_body() {
    let spec: serde_json::Value = serde_json::from_str(&larder_server::openapi_document()).unwrap();
    let paths = spec["paths"].as_object().unwrap();
    assert!(paths.len() >= 10);
    for (path, item) in paths {
        for (method, op) in item.as_object().unwrap() {
            assert!(op["operationId"].is_string(), "{method} {path}");
            assert!(op["summary"].is_string(), "{method} {path}");
            assert!(op["description"].is_string(), "{method} {path}");
            // Request bodies come with an example.
            if let Some(reference) = op["requestBody"]["content"]["application/json; charset=utf-8"]
                ["schema"]["$ref"]
                .as_str()
            {
                let name = reference.rsplit('/').next().unwrap();
                assert!(
                    spec["components"]["schemas"][name]["example"].is_object(),
                    "{method} {path}: {name} has no example"
                );
            }
            let responses = op["responses"].as_object().unwrap();
            // Operations that take a token can refuse it; operations on an app's objects
            // (or a webhook token) can find nothing there.
            if op["security"].as_array().is_some_and(|s| !s.is_empty()) {
                assert!(responses.contains_key("401"), "{method} {path}");
            }
            let scoped = path.starts_with("/admin/") && path.contains("{app_id}");
            if scoped || path.contains("{token}") {
                assert!(responses.contains_key("404"), "{method} {path}");
            }
        }
    }
}

/// Each operation declares the statuses it can really answer: a parameter can be malformed
/// (400), a JSON body malformed, too large, of another type or invalid (400, 413, 415, 422),
/// a token wrong (401); and nothing it cannot. Every 2xx says what it means, every error
/// answers the shared body, and its code is one of the published stable codes.
#[tokio::test]
async fn operations_declare_exactly_what_they_can_answer() {
    let spec: serde_json::Value = serde_json::from_str(&larder_server::openapi_document()).unwrap();
    let schemas = &spec["components"]["schemas"];
    let codes: Vec<&str> = schemas["ErrorCode"]["enum"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap())
        .collect();
    for code in [
        "not_found",
        "validation_failed",
        "rate_limited",
        "unavailable",
    ] {
        assert!(codes.contains(&code), "{codes:?}");
    }
    assert_eq!(
        schemas["ErrorBody"]["properties"]["code"]["$ref"],
        "#/components/schemas/ErrorCode"
    );
    for (path, item) in spec["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            let responses = op["responses"].as_object().unwrap();
            let has = |s: &str| responses.contains_key(s);
            for (status, answer) in responses {
                if status.starts_with('2') {
                    assert!(
                        answer["description"]
                            .as_str()
                            .is_some_and(|d| !d.is_empty()),
                        "{method} {path} {status} has no description"
                    );
                }
            }
            let takes_parameters = op["parameters"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|p| p["name"] != "token");
            if takes_parameters {
                assert!(
                    has("400"),
                    "{method} {path} takes parameters but declares no 400"
                );
            }
            let json_body =
                op["requestBody"]["content"]["application/json; charset=utf-8"].is_object();
            if path.starts_with("/webhooks/") {
                continue;
            }
            for status in ["413", "415", "422"] {
                assert_eq!(has(status), json_body, "{method} {path} and {status}");
            }
            if json_body {
                assert!(has("400"), "{method} {path}");
            }
        }
    }
    // What a list of apps can answer, and nothing more.
    let list_apps: Vec<&String> = spec["paths"]["/admin/v1/apps"]["get"]["responses"]
        .as_object()
        .unwrap()
        .keys()
        .collect();
    assert_eq!(list_apps, ["200", "400", "401", "403", "500", "503"]);
}

/// Readiness names Redis when it stops answering.
#[tokio::test]
async fn readiness_names_redis_when_it_is_down() {
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let mut redis = std::process::Command::new("redis-server")
        .args([
            "--port",
            &port.to_string(),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
        ])
        .stdout(std::process::Stdio::null())
        .spawn()
        .expect("redis-server must be installed to run this test (see .ci/run)");
    let url = format!("redis://127.0.0.1:{port}");
    // Wait for it to accept connections.
    let mut up = false;
    for _ in 0..100 {
        if tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_ok()
        {
            up = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert!(up, "the throwaway redis-server did not start");
    let mut s = settings(Backend::Sqlite).await;
    s.redis_url = Some(url);
    let t = TestApp::spawn_with(s).await;
    let r = t.request(reqwest::Method::GET, "/readyz", None, None).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);

    redis.kill().unwrap();
    redis.wait().unwrap();
    let r = t.request(reqwest::Method::GET, "/readyz", None, None).await;
    r.assert_error(503, "unavailable");
    assert_eq!(r.body["checks"], json!({"database": "ok", "redis": "down"}));
    assert!(r.str("message").contains("Redis"), "{}", r.body);
    // The admin API still works from the database.
    let apps = t.get("/admin/v1/apps", OPERATOR).await;
    assert_eq!(apps.status, StatusCode::OK);
}

/// The committed OpenAPI document holds under schemathesis (`--checks all`): no 5xx, every
/// answer as documented, undeclared methods 405 with `Allow`. Needs `st` on PATH
/// (`pip install schemathesis==4.32.0`; `.ci/run` installs it).
#[tokio::test]
async fn schemathesis_finds_nothing() {
    let _alone = crate::support::timing_sensitive().await;
    let root = format!("{}/../..", env!("CARGO_MANIFEST_DIR"));
    let t = TestApp::spawn(Backend::Sqlite).await;
    let st = tokio::process::Command::new("st")
        .arg("--config-file")
        .arg(format!("{root}/openapi/schemathesis.toml"))
        .arg("run")
        .arg(format!("{root}/openapi/larder.json"))
        // One worker: with two, CPython 3.11's compiler, called from both threads at once,
        // now and then fails inside schemathesis's generator ("AST constructor recursion
        // depth mismatch"), which is no finding about the API.
        .args(["--url", &t.base, "--checks", "all", "--workers", "1"])
        .args(["--max-time", "60", "--seed", "20261127"])
        .args(["-H", &format!("Authorization: Bearer {OPERATOR}")])
        .kill_on_drop(true)
        .output()
        .await
        .expect("schemathesis (`st`) must be installed: pip install schemathesis==4.32.0");
    let report = String::from_utf8_lossy(&st.stdout);
    assert!(
        st.status.success(),
        "schemathesis found problems:\n{report}\n{}",
        String::from_utf8_lossy(&st.stderr)
    );
    assert!(report.contains("passed"), "{report}");
}
