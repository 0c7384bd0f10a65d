//! Deliveries as the real world sends them and as a hostile client might: NUL characters,
//! every content type with the secret word in it, multipart forms, unverified floods,
//! bodies built to make one delivery expensive, and a failure whose cause must reach the
//! log.

use std::process::Stdio;
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::processes::{Larder, larder, wait_until_up};
use crate::support::{Backend, OPERATOR, TestApp, settings};
use crate::webhooks::{Encoding, fixture_bytes, hook, post};
use larder_server::Database;
use larder_testkit::fixtures::SECRET_WORD as SECRET;

const ALL: [&str; 4] = ["product-12", "product-7", "bump-7", "upsell-3"];

fn fixture_json(name: &str) -> Value {
    serde_json::from_slice(&fixture_bytes(name, Encoding::Json)).unwrap()
}

/// Everything a database holds, as bytes to search: SQLite's files, or a dump of the
/// PostgreSQL database.
fn stored_bytes(database: &Database) -> Vec<u8> {
    match database {
        Database::Sqlite(url) => {
            let path = url
                .trim_start_matches("sqlite://")
                .trim_start_matches("sqlite:");
            let mut all = Vec::new();
            for suffix in ["", "-wal", "-shm"] {
                if let Ok(bytes) = std::fs::read(format!("{path}{suffix}")) {
                    all.extend(bytes);
                }
            }
            assert!(!all.is_empty(), "no database file at {path}");
            all
        }
        Database::Postgres(url) => {
            let out = std::process::Command::new("pg_dump")
                .arg("--data-only")
                .arg(url)
                .output()
                .expect("pg_dump runs");
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
            out.stdout
        }
    }
}

fn contains(haystack: &[u8], needle: &str) -> bool {
    haystack
        .windows(needle.len())
        .any(|w| w == needle.as_bytes())
}

/// A form's fields as `multipart/form-data`.
fn multipart(form: &str) -> (String, Vec<u8>) {
    let boundary = "larder-bodies-test-boundary";
    let mut body = Vec::new();
    for (k, v) in url::form_urlencoded::parse(form.as_bytes()) {
        body.extend_from_slice(
            format!("--{boundary}\r\nContent-Disposition: form-data; name=\"{k}\"\r\n\r\n{v}\r\n")
                .as_bytes(),
        );
    }
    body.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
    (format!("multipart/form-data; boundary={boundary}"), body)
}

async fn activity(t: &TestApp, app: &str) -> Vec<Value> {
    let log = t
        .get(
            &format!("/admin/v1/apps/{app}/activity?limit=200"),
            OPERATOR,
        )
        .await;
    assert_eq!(log.status, StatusCode::OK, "{}", log.body);
    log.body["items"].as_array().unwrap().clone()
}

async fn entry(t: &TestApp, app: &str, id: &str) -> Value {
    t.get(&format!("/admin/v1/apps/{app}/activity/{id}"), OPERATOR)
        .await
        .body
}

async fn the_secret_word_never_reaches_storage_whatever_the_encoding(backend: Backend) {
    let s = settings(backend).await;
    let database = s.database.clone();
    let t = TestApp::spawn_with(s).await;
    let h = hook(&t, &ALL, Some(SECRET)).await;
    let form = larder_testkit::fixtures::thrivecart("01-order-success-single-product").form;
    let json = larder_testkit::fixtures::thrivecart("01-order-success-single-product").json;
    let (multipart_type, multipart_body) = multipart(form);
    let wrong_form = form.replace(SECRET, "not-the-word");
    // A copy of the word in another field, and a ping that carries it.
    let copied = form.replace(
        "customer%5Bname%5D=",
        &format!("note={SECRET}&customer%5Bname%5D="),
    );
    let cases: Vec<(&str, Option<String>, Vec<u8>, u16)> = vec![
        (
            "form",
            Some("application/x-www-form-urlencoded".into()),
            form.into(),
            200,
        ),
        ("json", Some("application/json".into()), json.into(), 200),
        ("multipart", Some(multipart_type), multipart_body, 200),
        (
            "sniffed, no type",
            None,
            form.replace("order_id=4100123", "order_id=4100124").into(),
            200,
        ),
        (
            "sniffed, text/plain",
            Some("text/plain".into()),
            json.replace("4100123", "4100125").into(),
            200,
        ),
        (
            "another field",
            Some("application/x-www-form-urlencoded".into()),
            copied.replace("4100123", "4100126").into(),
            200,
        ),
        (
            "ping",
            None,
            format!("thrivecart_secret={SECRET}").into(),
            200,
        ),
        (
            "wrong word",
            None,
            wrong_form
                .replace("not-the-word", &format!("{SECRET}x"))
                .into(),
            401,
        ),
        (
            "undecodable form",
            Some("application/x-www-form-urlencoded".into()),
            format!("a=1&a[b]=2&thrivecart_secret={SECRET}").into(),
            400,
        ),
        (
            "undecodable json",
            Some("application/json".into()),
            format!("{{\"thrivecart_secret\": \"{SECRET}\", ").into(),
            400,
        ),
        (
            "broken multipart",
            Some("multipart/form-data; boundary=zz".into()),
            format!("--zz\r\nthrivecart_secret={SECRET}").into(),
            400,
        ),
        (
            "xml",
            Some("application/xml".into()),
            format!("<thrivecart_secret>{SECRET}</thrivecart_secret>").into(),
            400,
        ),
    ];
    for (what, content_type, body, status) in cases {
        let a = post(&t, &h.url, body, content_type.as_deref()).await;
        assert_eq!(a.status.as_u16(), status, "{what}: {}", a.body);
    }
    let log = activity(&t, &h.app).await;
    assert_eq!(log.len(), 12, "every delivery is recorded");
    for e in &log {
        let full = entry(&t, &h.app, e["id"].as_str().unwrap()).await;
        assert!(!full.to_string().contains(SECRET), "{full}");
    }
    let stored = stored_bytes(&database);
    assert!(
        contains(&stored, "avery.quinn@example.com"),
        "the dump holds the data"
    );
    assert!(
        !contains(&stored, SECRET),
        "the secret word reached storage"
    );
}

async fn a_multipart_delivery_applies_like_a_form(backend: Backend) {
    let t = TestApp::spawn(backend).await;
    let h = hook(&t, &ALL, Some(SECRET)).await;
    let form = larder_testkit::fixtures::thrivecart("02-order-success-bump-and-upsell").form;
    let (ct, body) = multipart(form);
    let a = post(&t, &h.url, body.clone(), Some(&ct)).await;
    assert_eq!(a.body["status"], "applied", "{}", a.body);
    let again = post(
        &t,
        &h.url,
        fixture_bytes("02-order-success-bump-and-upsell", Encoding::Form),
        Some("application/x-www-form-urlencoded"),
    )
    .await;
    assert_eq!(
        again.body["status"], "duplicate",
        "the same delivery: {}",
        again.body
    );
    let members = t
        .get(&format!("/admin/v1/apps/{}/members", h.app), OPERATOR)
        .await;
    assert_eq!(
        members.body["items"][0]["access_levels"]
            .as_array()
            .unwrap()
            .len(),
        3
    );
}

async fn nul_characters_are_stored_alike_on_both_stores(backend: Backend) {
    let t = TestApp::spawn(backend).await;
    let h = hook(&t, &ALL, Some(SECRET)).await;
    let mut doc = fixture_json("01-order-success-single-product");
    doc["customer"]["name"] = "Avery\u{0}Quinn".into();
    doc["customer"]["custom_fields"] = json!({"no\u{0}te": "a\u{0}b"});
    let a = post(
        &t,
        &h.url,
        serde_json::to_vec(&doc).unwrap(),
        Some("application/json"),
    )
    .await;
    assert_eq!(a.body["status"], "applied", "{}", a.body);
    let stored = entry(&t, &h.app, &a.str("delivery_id")).await;
    assert_eq!(stored["payload"]["customer"]["name"], "AveryQuinn");
    assert_eq!(
        stored["payload"]["customer"]["custom_fields"],
        json!({"note": "ab"})
    );
    let members = t
        .get(&format!("/admin/v1/apps/{}/members", h.app), OPERATOR)
        .await;
    assert_eq!(members.body["items"][0]["name"], "AveryQuinn");
    // A NUL in a form, too.
    let form = larder_testkit::fixtures::thrivecart("12-order-success-repeat-customer-blank-name")
        .form
        .replace("customer%5Bname%5D=+", "customer%5Bname%5D=Av%00ery");
    let a = post(
        &t,
        &h.url,
        form.into(),
        Some("application/x-www-form-urlencoded"),
    )
    .await;
    assert_eq!(a.body["status"], "applied", "{}", a.body);
    let stored = entry(&t, &h.app, &a.str("delivery_id")).await;
    assert!(!stored.to_string().contains("\\u0000"), "{stored}");
}

async fn nul_in_parameters_is_refused(backend: Backend) {
    let t = TestApp::spawn(backend).await;
    let h = hook(&t, &ALL, Some(SECRET)).await;
    for path in [
        format!("/admin/v1/apps/{}/members?email=a%00b@example.com", h.app),
        format!("/admin/v1/apps/{}/activity?email=a%00b@example.com", h.app),
        format!("/admin/v1/apps/{}/activity?event=order.success%00", h.app),
    ] {
        t.get(&path, OPERATOR)
            .await
            .assert_error(400, "invalid_parameter");
    }
    let signed = t
        .request(
            reqwest::Method::POST,
            &format!("/member/v1/apps/{}/sessions", h.app),
            None,
            Some(json!({"email": "a\u{0}@example.com", "password": "whatever it is"})),
        )
        .await;
    signed.assert_error(422, "validation_failed");
    assert_eq!(signed.body["field"], "email");
    let named = t
        .post("/admin/v1/apps", OPERATOR, json!({"name": "Shop\u{0}"}))
        .await;
    assert_eq!(
        named.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "{}",
        named.body
    );
    let settings = t
        .patch(
            &format!("/admin/v1/apps/{}/member-settings", h.app),
            OPERATOR,
            json!({"body_template": "Hello\u{0}"}),
        )
        .await;
    assert_eq!(
        settings.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "{}",
        settings.body
    );
    assert_eq!(settings.body["field"], "body_template");
}

async fn unverified_deliveries_keep_only_their_start_and_are_limited(backend: Backend) {
    let t = TestApp::spawn(backend).await;
    let h = hook(&t, &ALL, Some(SECRET)).await;
    // A 900 KiB delivery with a wrong word: kept as its first half kilobyte.
    let mut doc = fixture_json("01-order-success-single-product");
    doc["thrivecart_secret"] = "a wrong word".into();
    doc["padding"] = "x".repeat(900 * 1024).into();
    let body = serde_json::to_vec(&doc).unwrap();
    let a = post(&t, &h.url, body.clone(), Some("application/json")).await;
    a.assert_error(401, "secret_mismatch");
    let kept = entry(&t, &h.app, a.body["delivery_id"].as_str().unwrap()).await;
    let payload = &kept["payload"];
    assert_eq!(payload["event"], "order.success");
    assert_eq!(payload["bytes"], body.len());
    assert!(payload["head"].as_str().unwrap().len() <= 2048, "{payload}");
    assert!(!kept.to_string().contains("a wrong word"));
    // Within a minute, 30 unverified deliveries are recorded; the rest are answered alike,
    // but not recorded (a ping is told to come back, unless it carries the secret word).
    for _ in 0..40 {
        post(&t, &h.url, body.clone(), Some("application/json")).await;
    }
    let over = post(&t, &h.url, body.clone(), Some("application/json")).await;
    over.assert_error(401, "secret_mismatch");
    assert!(over.body.get("delivery_id").is_none(), "{}", over.body);
    let ping = post(&t, &h.url, b"{}".to_vec(), Some("application/json")).await;
    ping.assert_error(429, "rate_limited");
    assert_eq!(ping.headers["retry-after"], "60");
    assert_eq!(
        activity(&t, &h.app).await.len(),
        30,
        "recorded within the budget"
    );
    let vouched = post(
        &t,
        &h.url,
        serde_json::to_vec(&json!({ "thrivecart_secret": SECRET })).unwrap(),
        Some("application/json"),
    )
    .await;
    assert_eq!(vouched.status, StatusCode::OK, "{}", vouched.body);
    assert_eq!(vouched.body["status"], "ping");
    let log = activity(&t, &h.app).await;
    assert_eq!(log.len(), 31, "a ping with the secret word is recorded");
    assert!(!serde_json::to_string(&log).unwrap().contains(SECRET));
    // A verified delivery is never held back by it.
    let ok = post(
        &t,
        &h.url,
        fixture_bytes("01-order-success-single-product", Encoding::Json),
        Some("application/json"),
    )
    .await;
    assert_eq!(ok.body["status"], "applied", "{}", ok.body);

    // An app without a secret word vouches for nothing: an invalid delivery keeps only its
    // start, within the same budget.
    let open = hook(&t, &ALL, None).await;
    let mut invalid = fixture_json("01-order-success-single-product");
    invalid["customer"]["email"] = "not an address".into();
    invalid["padding"] = "x".repeat(900 * 1024).into();
    let body = serde_json::to_vec(&invalid).unwrap();
    let a = post(&t, &open.url, body.clone(), Some("application/json")).await;
    a.assert_error(400, "invalid_payload");
    let kept = entry(&t, &open.app, a.body["delivery_id"].as_str().unwrap()).await;
    assert!(
        kept["payload"]["head"].as_str().unwrap().len() <= 2048,
        "{}",
        kept["payload"]
    );
    for _ in 0..40 {
        post(&t, &open.url, body.clone(), Some("application/json")).await;
    }
    let over = post(&t, &open.url, body, Some("application/json")).await;
    over.assert_error(400, "invalid_payload");
    assert!(over.body.get("delivery_id").is_none(), "{}", over.body);
    assert_eq!(activity(&t, &open.app).await.len(), 30);
}

async fn a_hostile_body_is_answered_quickly_while_others_are_served(backend: Backend) {
    let t = TestApp::spawn(backend).await;
    // An app without a secret word: anyone with its URL can post.
    let h = hook(&t, &ALL, None).await;
    let mut doc = fixture_json("02-order-success-bump-and-upsell");
    let many: Vec<Value> = (0..80_000)
        .map(|n| format!("bump-{}", n + 1).into())
        .collect();
    // 80,000 distinct items as 80,000 fields (the decoder's cap refuses them), and as one
    // flat list (the parser's cap on items does).
    let flat: Vec<String> = many
        .iter()
        .map(|m| m.as_str().unwrap().to_owned())
        .collect();
    let mut flat_doc = doc.clone();
    flat_doc.as_object_mut().unwrap().remove("purchase_map");
    flat_doc["purchase_map_flat"] = flat.join(",").into();
    doc["purchase_map"] = many.into();
    let body = serde_json::to_vec(&doc).unwrap();
    let flat_body = serde_json::to_vec(&flat_doc).unwrap();
    assert!(body.len() < 1024 * 1024 && flat_body.len() < 1024 * 1024);
    let health = async {
        // While two hostile bodies are in flight, the service keeps answering.
        let mut slowest = Duration::ZERO;
        for _ in 0..20 {
            let started = Instant::now();
            let r = t
                .client()
                .get(format!("{}/healthz", t.base))
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), StatusCode::OK);
            slowest = slowest.max(started.elapsed());
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        slowest
    };
    let started = Instant::now();
    let (a, b, slowest) = tokio::join!(
        post(&t, &h.url, body.clone(), Some("application/json")),
        post(&t, &h.url, flat_body, Some("application/json")),
        health
    );
    let took = started.elapsed();
    for (r, cap) in [(&a, "fields"), (&b, "items")] {
        r.assert_error(400, "invalid_payload");
        let message = r.body["message"].as_str().unwrap();
        assert!(message.contains("more than"), "{message}");
        assert!(message.contains(cap), "{message}");
    }
    // Bounds far above what linear work takes, far below what quadratic work took (40 s).
    assert!(
        took < Duration::from_secs(10),
        "two hostile bodies took {took:?}"
    );
    assert!(
        slowest < Duration::from_secs(2),
        "/healthz took {slowest:?}"
    );
}

crate::on_both_backends!(
    the_secret_word_never_reaches_storage_whatever_the_encoding,
    a_multipart_delivery_applies_like_a_form,
    nul_characters_are_stored_alike_on_both_stores,
    nul_in_parameters_is_refused,
    unverified_deliveries_keep_only_their_start_and_are_limited,
    a_hostile_body_is_answered_quickly_while_others_are_served,
);

/// A delivery the database refuses (a trigger stands in for whatever a database may say)
/// is answered 503, and the log line says why, the database's own words included.
#[tokio::test]
async fn a_delivery_that_cannot_be_applied_logs_its_cause() {
    let database = larder_testkit::fresh_postgres_url().await;
    let dir = larder_testkit::fresh_sqlite_path()
        .parent()
        .unwrap()
        .to_path_buf();
    let envs = [
        ("DATABASE_URL", database.clone()),
        ("LARDER_OPERATOR_TOKEN", OPERATOR.to_owned()),
        ("LARDER_PUBLIC_URL", "https://larder.test".to_owned()),
        ("RUST_LOG", "error".to_owned()),
    ];
    let (mut cmd, base) = larder(&envs, &dir);
    let child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn larder");
    let mut l = Larder { child, base };
    wait_until_up(&mut l).await;
    let t = TestApp::at(&l.base);
    let h = hook(&t, &ALL, Some(SECRET)).await;
    crate::support::execute(
        &Database::Postgres(database),
        &[
            "create function larder_test_fail() returns trigger language plpgsql as \
             $$ begin raise exception 'the grants table is having a bad day'; end $$",
            "create trigger larder_test_fail before insert on grants \
             for each row execute function larder_test_fail()",
        ],
    )
    .await;
    let a = post(
        &t,
        &h.url,
        fixture_bytes("01-order-success-single-product", Encoding::Form),
        Some("application/x-www-form-urlencoded"),
    )
    .await;
    a.assert_error(503, "unavailable");
    let _ = l.child.kill();
    let _ = l.child.wait();
    let mut out = String::new();
    if let Some(mut stdout) = l.child.stdout.take() {
        use std::io::Read;
        let _ = stdout.read_to_string(&mut out);
    }
    assert!(
        out.contains("could not apply a delivery")
            && out.contains("the grants table is having a bad day"),
        "{out}"
    );
    assert!(!out.contains(SECRET), "{out}");
}
