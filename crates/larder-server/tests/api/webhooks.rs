//! ThriveCart deliveries end to end: every fixture in both encodings, the storylines in
//! order and shuffled, repeats, concurrency, a failure midway, and bad input.

use std::collections::BTreeMap;

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::support::{Answer, Backend, OPERATOR, TestApp};

pub use larder_testkit::fixtures::Encoding;
use larder_testkit::fixtures::SECRET_WORD as SECRET;

pub fn fixture_bytes(name: &str, encoding: Encoding) -> Vec<u8> {
    larder_testkit::fixtures::thrivecart(name)
        .body(encoding)
        .as_bytes()
        .to_vec()
}

/// An app whose integration uses the fixtures' secret word, with levels mapped to the
/// fixtures' products (`mapped`).
pub struct Hook {
    pub app: String,
    pub url: String,
}

pub async fn hook(t: &TestApp, mapped: &[&'static str], secret: Option<&str>) -> Hook {
    let app = t.create_app("Shop").await;
    let mut body = json!({});
    if let Some(secret) = secret {
        body["secret_word"] = secret.into();
    }
    let tc = t
        .post(
            &format!("/admin/v1/apps/{app}/thrivecart/enable"),
            OPERATOR,
            body,
        )
        .await;
    let url = tc
        .str("webhook_url")
        .replace("https://larder.test", &t.base);
    for key in mapped {
        let level = t.create_level(&app, OPERATOR, key).await;
        map(t, &app, key, &level).await;
    }
    Hook { app, url }
}

async fn map(t: &TestApp, app: &str, product: &str, level: &str) {
    let a = t
        .post(
            &format!("/admin/v1/apps/{app}/thrivecart/mappings"),
            OPERATOR,
            json!({"product": product, "access_level_id": level}),
        )
        .await;
    assert_eq!(a.status, StatusCode::CREATED, "{}", a.body);
}

pub async fn post(t: &TestApp, url: &str, body: Vec<u8>, content_type: Option<&str>) -> Answer {
    let mut req = t.client().post(url).body(body);
    if let Some(ct) = content_type {
        req = req.header("content-type", ct);
    }
    t.raw(req).await
}

pub async fn deliver(t: &TestApp, h: &Hook, name: &str, encoding: Encoding) -> Answer {
    let ct = encoding.content_type();
    post(t, &h.url, fixture_bytes(name, encoding), Some(ct)).await
}

async fn expect(t: &TestApp, h: &Hook, name: &str, encoding: Encoding, status: &str) -> String {
    let a = deliver(t, h, name, encoding).await;
    assert_eq!(a.status, StatusCode::OK, "{name}: {}", a.body);
    assert_eq!(a.body["status"], status, "{name}: {}", a.body);
    a.str("delivery_id")
}

/// Members by email with their grants as `product → status`, read through the admin API.
pub async fn members(
    t: &TestApp,
    app: &str,
) -> BTreeMap<String, (Value, BTreeMap<String, String>)> {
    let list = t
        .get(&format!("/admin/v1/apps/{app}/members?limit=200"), OPERATOR)
        .await;
    assert_eq!(list.status, StatusCode::OK, "{}", list.body);
    let mut out = BTreeMap::new();
    for m in list.body["items"].as_array().unwrap() {
        let id = m["id"].as_str().unwrap();
        let detail = t
            .get(&format!("/admin/v1/apps/{app}/members/{id}"), OPERATOR)
            .await;
        let grants = detail.body["grants"]
            .as_array()
            .unwrap()
            .iter()
            .map(|g| {
                (
                    format!(
                        "{}@{}",
                        g["product"].as_str().unwrap(),
                        g["order_id"].as_str().unwrap()
                    ),
                    g["status"].as_str().unwrap().to_owned(),
                )
            })
            .collect();
        out.insert(
            m["email"].as_str().unwrap().to_owned(),
            (detail.body.clone(), grants),
        );
    }
    out
}

fn grants_of(
    state: &BTreeMap<String, (Value, BTreeMap<String, String>)>,
    email: &str,
) -> BTreeMap<String, String> {
    state.get(email).map(|(_, g)| g.clone()).unwrap_or_default()
}

fn g(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

const ALL: [&str; 4] = ["product-12", "product-7", "bump-7", "upsell-3"];
const JORDAN: &str = "jordan.ellis@example.com";
const AVERY: &str = "avery.quinn@example.com";

async fn fixtures_have_their_effects(t: &TestApp, encoding: Encoding) {
    let h = hook(t, &ALL, Some(SECRET)).await;

    // Jordan: 02 → 08 → 03 → 05 → 06 → 04.
    expect(
        t,
        &h,
        "02-order-success-bump-and-upsell",
        encoding,
        "applied",
    )
    .await;
    let s = members(t, &h.app).await;
    assert_eq!(
        grants_of(&s, JORDAN),
        g(&[
            ("product-7@4100456", "active"),
            ("bump-7@4100456", "active"),
            ("upsell-3@4100456", "active")
        ])
    );
    assert_eq!(s[JORDAN].0["name"], "Jordan Ellis-Müller");
    expect(t, &h, "08-order-refund-bump-only", encoding, "applied").await;
    assert_eq!(
        grants_of(&members(t, &h.app).await, JORDAN)["bump-7@4100456"],
        "revoked"
    );
    assert_eq!(
        grants_of(&members(t, &h.app).await, JORDAN)["product-7@4100456"],
        "active"
    );
    expect(t, &h, "03-order-subscription-payment", encoding, "applied").await;
    assert_eq!(
        grants_of(&members(t, &h.app).await, JORDAN)["product-7@4100456"],
        "active"
    );
    expect(t, &h, "05-order-subscription-paused", encoding, "applied").await;
    assert_eq!(
        grants_of(&members(t, &h.app).await, JORDAN)["product-7@4100456"],
        "paused"
    );
    expect(t, &h, "06-order-subscription-resumed", encoding, "applied").await;
    assert_eq!(
        grants_of(&members(t, &h.app).await, JORDAN)["product-7@4100456"],
        "active"
    );
    expect(
        t,
        &h,
        "04-order-subscription-cancelled",
        encoding,
        "applied",
    )
    .await;
    let s = members(t, &h.app).await;
    assert_eq!(
        grants_of(&s, JORDAN),
        g(&[
            ("product-7@4100456", "revoked"),
            ("bump-7@4100456", "revoked"),
            ("upsell-3@4100456", "active")
        ])
    );
    let levels: Vec<&str> = s[JORDAN].0["access_levels"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["name"].as_str().unwrap())
        .collect();
    assert_eq!(levels, ["upsell-3"]);

    // Avery: 01 → 07 → 12 → 09.
    expect(
        t,
        &h,
        "01-order-success-single-product",
        encoding,
        "applied",
    )
    .await;
    expect(t, &h, "07-order-refund-full", encoding, "applied").await;
    assert_eq!(
        grants_of(&members(t, &h.app).await, AVERY),
        g(&[("product-12@4100123", "revoked")])
    );
    expect(
        t,
        &h,
        "12-order-success-repeat-customer-blank-name",
        encoding,
        "applied",
    )
    .await;
    let s = members(t, &h.app).await;
    assert_eq!(
        s[AVERY].0["name"], "Avery Quinn",
        "a blank name never overwrites"
    );
    expect(t, &h, "09-order-rebill-failed", encoding, "applied").await;
    let s = members(t, &h.app).await;
    assert_eq!(
        grants_of(&s, AVERY),
        g(&[
            ("product-12@4100123", "revoked"),
            ("product-7@4101002", "active")
        ])
    );
    let detail = &s[AVERY].0;
    let past_due: Vec<bool> = detail["grants"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|g| g["product"] == "product-7")
        .map(|g| g["past_due"].as_bool().unwrap())
        .collect();
    assert_eq!(past_due, [true]);

    // Nothing for affiliates and abandoned carts.
    expect(t, &h, "10-affiliate-commission-earned", encoding, "ignored").await;
    expect(t, &h, "13-cart-abandoned", encoding, "ignored").await;
    // A test purchase creates a test member.
    expect(t, &h, "11-order-success-test-mode", encoding, "applied").await;
    let s = members(t, &h.app).await;
    assert_eq!(s.len(), 3, "{:?}", s.keys());
    assert_eq!(s["sam.tester@example.net"].0["test"], true);
    assert_eq!(s[JORDAN].0["test"], false);

    // Every fixture a second time: a duplicate, and nothing changes.
    let before = members(t, &h.app).await;
    for n in 1..=13 {
        let name = larder_testkit::fixtures::THRIVECART[n - 1].name;
        expect(t, &h, name, encoding, "duplicate").await;
    }
    assert_eq!(members(t, &h.app).await, before);
}

async fn every_fixture_in_form_encoding(backend: Backend) {
    let t = TestApp::spawn(backend).await;
    fixtures_have_their_effects(&t, Encoding::Form).await;
}

async fn every_fixture_in_json_encoding(backend: Backend) {
    let t = TestApp::spawn(backend).await;
    fixtures_have_their_effects(&t, Encoding::Json).await;
}

async fn storylines_end_the_same_shuffled(backend: Backend) {
    let t = TestApp::spawn(backend).await;
    let jordan = [
        "02-order-success-bump-and-upsell",
        "08-order-refund-bump-only",
        "03-order-subscription-payment",
        "05-order-subscription-paused",
        "06-order-subscription-resumed",
        "04-order-subscription-cancelled",
    ];
    let avery = [
        "01-order-success-single-product",
        "07-order-refund-full",
        "12-order-success-repeat-customer-blank-name",
        "09-order-rebill-failed",
    ];
    let orders: [([usize; 6], [usize; 4]); 3] = [
        ([5, 4, 3, 2, 1, 0], [3, 2, 1, 0]),
        ([5, 0, 1, 2, 3, 4], [1, 0, 3, 2]),
        ([2, 3, 4, 5, 1, 0], [2, 3, 0, 1]),
    ];
    for (j, a) in orders {
        let h = hook(&t, &ALL, Some(SECRET)).await;
        for i in j {
            let answer = deliver(&t, &h, jordan[i], Encoding::Form).await;
            assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
        }
        for i in a {
            let answer = deliver(&t, &h, avery[i], Encoding::Json).await;
            assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
        }
        let s = members(&t, &h.app).await;
        assert_eq!(s.len(), 2, "{j:?} {a:?}");
        assert_eq!(
            grants_of(&s, JORDAN),
            g(&[
                ("product-7@4100456", "revoked"),
                ("bump-7@4100456", "revoked"),
                ("upsell-3@4100456", "active")
            ]),
            "{j:?}"
        );
        assert_eq!(
            grants_of(&s, AVERY),
            g(&[
                ("product-12@4100123", "revoked"),
                ("product-7@4101002", "active")
            ]),
            "{a:?}"
        );
    }
}

async fn concurrent_copies_apply_once(backend: Backend) {
    let t = TestApp::spawn(backend).await;
    let h = hook(&t, &ALL, Some(SECRET)).await;
    let body = fixture_bytes("02-order-success-bump-and-upsell", Encoding::Form);
    let answers = futures::future::join_all((0..50).map(|_| {
        post(
            &t,
            &h.url,
            body.clone(),
            Some("application/x-www-form-urlencoded"),
        )
    }))
    .await;
    let mut counts: BTreeMap<String, usize> = BTreeMap::new();
    for a in &answers {
        assert_eq!(a.status, StatusCode::OK, "{}", a.body);
        *counts.entry(a.str("status")).or_default() += 1;
    }
    assert_eq!(
        counts,
        BTreeMap::from([("applied".into(), 1), ("duplicate".into(), 49)])
    );
    let s = members(&t, &h.app).await;
    assert_eq!(s.len(), 1);
    assert_eq!(grants_of(&s, JORDAN).len(), 3);
    let log = t
        .get(
            &format!("/admin/v1/apps/{}/activity?limit=200", h.app),
            OPERATOR,
        )
        .await;
    assert_eq!(log.body["items"].as_array().unwrap().len(), 50);
}

async fn concurrent_first_purchases_make_one_member(backend: Backend) {
    let t = TestApp::spawn(backend).await;
    // Three different orders by the same person (in different spellings of the email).
    let mut bodies = Vec::new();
    for (i, email) in ["Pat@Example.com", "pat@example.com ", "PAT@EXAMPLE.COM"]
        .iter()
        .enumerate()
    {
        let mut doc: Value = serde_json::from_slice(&fixture_bytes(
            "02-order-success-bump-and-upsell",
            Encoding::Json,
        ))
        .unwrap();
        doc["customer"]["email"] = (*email).into();
        doc["order_id"] = format!("77{i}").into();
        bodies.push(serde_json::to_vec(&doc).unwrap());
    }
    // Sent all at once, in one order and then (to a fresh app) in the other.
    for order in [
        bodies.clone(),
        bodies.iter().rev().cloned().collect::<Vec<_>>(),
    ] {
        let h = hook(&t, &ALL, Some(SECRET)).await;
        let answers = futures::future::join_all(
            order
                .into_iter()
                .map(|b| post(&t, &h.url, b, Some("application/json"))),
        )
        .await;
        assert!(
            answers.iter().all(|a| a.body["status"] == "applied"),
            "{answers:?}"
        );
        let s = members(&t, &h.app).await;
        assert_eq!(s.len(), 1, "{:?}", s.keys());
        assert_eq!(grants_of(&s, "pat@example.com").len(), 9);
    }
}

async fn a_failure_midway_leaves_nothing_and_the_retry_applies(backend: Backend) {
    let settings = crate::support::settings(backend).await;
    let database = settings.database.clone();
    let t = TestApp::spawn_with(settings).await;
    let h = hook(&t, &ALL, Some(SECRET)).await;
    // Make the activity insert of an applied delivery fail, as a crash midway would.
    let (install, remove): (Vec<&str>, Vec<&str>) = match backend {
        Backend::Postgres => (
            vec![
                "create function larder_test_fail() returns trigger language plpgsql as \
                 $$ begin raise exception 'injected failure'; end $$",
                "create trigger larder_test_fail before insert on deliveries for each row \
                 when (new.status = 'applied') execute function larder_test_fail()",
            ],
            vec!["drop trigger larder_test_fail on deliveries"],
        ),
        Backend::Sqlite => (
            vec![
                "create trigger larder_test_fail before insert on deliveries \
                 when new.status = 'applied' begin select raise(abort, 'injected failure'); end",
            ],
            vec!["drop trigger larder_test_fail"],
        ),
    };
    crate::support::execute(&database, &install).await;

    let a = deliver(&t, &h, "02-order-success-bump-and-upsell", Encoding::Form).await;
    a.assert_error(503, "unavailable");
    assert!(members(&t, &h.app).await.is_empty(), "no member, no grant");
    let log = t
        .get(&format!("/admin/v1/apps/{}/activity", h.app), OPERATOR)
        .await;
    let statuses: Vec<&str> = log.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["status"].as_str().unwrap())
        .collect();
    assert_eq!(statuses, ["failed"]);

    crate::support::execute(&database, &remove).await;
    expect(
        &t,
        &h,
        "02-order-success-bump-and-upsell",
        Encoding::Form,
        "applied",
    )
    .await;
    assert_eq!(grants_of(&members(&t, &h.app).await, JORDAN).len(), 3);
}

async fn bad_deliveries_are_refused_and_recorded(backend: Backend) {
    let t = TestApp::spawn(backend).await;
    let h = hook(&t, &ALL, Some(SECRET)).await;
    let purchase = || {
        serde_json::from_slice::<Value>(&fixture_bytes(
            "01-order-success-single-product",
            Encoding::Json,
        ))
        .unwrap()
    };

    let mut wrong = purchase();
    wrong["thrivecart_secret"] = "guess".into();
    let a = post(
        &t,
        &h.url,
        serde_json::to_vec(&wrong).unwrap(),
        Some("application/json"),
    )
    .await;
    a.assert_error(401, "secret_mismatch");
    let mut missing = purchase();
    missing.as_object_mut().unwrap().remove("thrivecart_secret");
    post(&t, &h.url, serde_json::to_vec(&missing).unwrap(), None)
        .await
        .assert_error(401, "secret_mismatch");

    post(
        &t,
        &h.url,
        b"{\"event\": ".to_vec(),
        Some("application/json"),
    )
    .await
    .assert_error(400, "invalid_payload");
    post(
        &t,
        &h.url,
        b"this is not a delivery".to_vec(),
        Some("text/plain"),
    )
    .await
    .assert_error(400, "invalid_payload");
    let mut no_email = purchase();
    no_email["customer"]["email"] = "null".into();
    post(&t, &h.url, serde_json::to_vec(&no_email).unwrap(), None)
        .await
        .assert_error(400, "invalid_payload");

    let mut big = purchase();
    big["padding"] = "x".repeat(1024 * 1024).into();
    post(&t, &h.url, serde_json::to_vec(&big).unwrap(), None)
        .await
        .assert_error(413, "payload_too_large");

    let unknown = format!("{}/webhooks/thrivecart/{}", t.base, "A".repeat(43));
    post(&t, &unknown, serde_json::to_vec(&purchase()).unwrap(), None)
        .await
        .assert_error(404, "not_found");

    assert!(members(&t, &h.app).await.is_empty());
    let log = t
        .get(&format!("/admin/v1/apps/{}/activity", h.app), OPERATOR)
        .await;
    let statuses: Vec<&str> = log.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["status"].as_str().unwrap())
        .collect();
    assert_eq!(
        statuses,
        ["invalid", "invalid", "invalid", "rejected", "rejected"]
    );
    let entry = t
        .get(
            &format!(
                "/admin/v1/apps/{}/activity/{}",
                h.app,
                log.body["items"][4]["id"].as_str().unwrap()
            ),
            OPERATOR,
        )
        .await;
    // Nobody vouched for it: only its start is kept, secret word redacted.
    let payload = &entry.body["payload"];
    assert!(payload["head"].as_str().unwrap().len() < 1024, "{payload}");
    assert_eq!(payload["event"], "order.success");
    assert!(payload["bytes"].as_u64().unwrap() > 0, "{payload}");
    assert!(payload.get("customer").is_none(), "{payload}");
    assert!(!entry.body.to_string().contains("guess"));

    // A disabled integration refuses deliveries and records nothing.
    t.post(
        &format!("/admin/v1/apps/{}/thrivecart/disable", h.app),
        OPERATOR,
        json!({}),
    )
    .await;
    post(&t, &h.url, serde_json::to_vec(&purchase()).unwrap(), None)
        .await
        .assert_error(404, "not_found");
    let after = t
        .get(&format!("/admin/v1/apps/{}/activity", h.app), OPERATOR)
        .await;
    assert_eq!(after.body["items"].as_array().unwrap().len(), 5);
    assert!(members(&t, &h.app).await.is_empty());
}

async fn pings_and_unverified_deliveries(backend: Backend) {
    let t = TestApp::spawn(backend).await;
    let h = hook(&t, &ALL, Some(SECRET)).await;
    for body in [&b""[..], b"{}", b"thrivecart_account=larderdemo"] {
        let a = post(&t, &h.url, body.to_vec(), None).await;
        assert_eq!(a.status, StatusCode::OK, "{}", a.body);
        assert_eq!(a.body["status"], "ping");
    }
    // Without a secret word, deliveries apply and say they were unverified.
    let open = hook(&t, &ALL, None).await;
    let id = expect(
        &t,
        &open,
        "01-order-success-single-product",
        Encoding::Form,
        "applied",
    )
    .await;
    let entry = t
        .get(
            &format!("/admin/v1/apps/{}/activity/{id}", open.app),
            OPERATOR,
        )
        .await;
    assert_eq!(entry.body["verified"], false);
    assert!(
        entry.str("message").contains("Unverified"),
        "{}",
        entry.body
    );
    assert_eq!(entry.body["payload"]["thrivecart_secret"], "[redacted]");
    assert_eq!(entry.body["customer_email"], AVERY);
    assert_eq!(entry.body["products"], json!(["product-12"]));
    let kinds: Vec<&str> = entry.body["effects"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["kind"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["member_created", "granted"]);
}

async fn test_mode_can_be_ignored(backend: Backend) {
    let t = TestApp::spawn(backend).await;
    let h = hook(&t, &ALL, Some(SECRET)).await;
    t.patch(
        &format!("/admin/v1/apps/{}/thrivecart", h.app),
        OPERATOR,
        json!({"test_mode": "ignore"}),
    )
    .await;
    let id = expect(
        &t,
        &h,
        "11-order-success-test-mode",
        Encoding::Json,
        "ignored",
    )
    .await;
    let entry = t
        .get(&format!("/admin/v1/apps/{}/activity/{id}", h.app), OPERATOR)
        .await;
    assert!(entry.str("message").contains("Test-mode"), "{}", entry.body);
    assert!(members(&t, &h.app).await.is_empty());
}

async fn unmapped_deliveries_show_their_products_and_replay(backend: Backend) {
    let t = TestApp::spawn(backend).await;
    let h = hook(&t, &[], Some(SECRET)).await;
    let id = expect(
        &t,
        &h,
        "02-order-success-bump-and-upsell",
        Encoding::Form,
        "unmapped",
    )
    .await;
    assert!(members(&t, &h.app).await.is_empty());
    let unmapped = t
        .get(
            &format!("/admin/v1/apps/{}/thrivecart/unmapped-products", h.app),
            OPERATOR,
        )
        .await;
    let mut keys: Vec<&str> = unmapped.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["product"].as_str().unwrap())
        .collect();
    keys.sort();
    assert_eq!(keys, ["bump-7", "product-7", "upsell-3"]);
    assert_eq!(unmapped.body["items"][0]["deliveries"], 1);
    assert_eq!(unmapped.body["next_cursor"], json!(null));
    let filtered = t
        .get(
            &format!(
                "/admin/v1/apps/{}/activity?status=unmapped&product=7",
                h.app
            ),
            OPERATOR,
        )
        .await;
    assert_eq!(filtered.body["items"][0]["id"], id.as_str());

    // Map the bump, replay: only the bump is granted.
    let level = t.create_level(&h.app, OPERATOR, "Vault").await;
    map(&t, &h.app, "bump-7", &level).await;
    let replay = t
        .post(
            &format!("/admin/v1/apps/{}/activity/{id}/replay", h.app),
            OPERATOR,
            json!({}),
        )
        .await;
    assert_eq!(replay.status, StatusCode::OK, "{}", replay.body);
    assert_eq!(replay.body["status"], "applied");
    assert_eq!(replay.body["replay_of"], id.as_str());
    assert_eq!(
        grants_of(&members(&t, &h.app).await, JORDAN),
        g(&[("bump-7@4100456", "active")])
    );
    let original = t
        .get(&format!("/admin/v1/apps/{}/activity/{id}", h.app), OPERATOR)
        .await;
    assert_eq!(
        original.body["status"], "unmapped",
        "the original keeps its status"
    );

    // Map the rest and replay again: the rest is granted, the bump not twice.
    let level = t.create_level(&h.app, OPERATOR, "Club").await;
    map(&t, &h.app, "product-7", &level).await;
    let again = t
        .post(
            &format!("/admin/v1/apps/{}/activity/{id}/replay", h.app),
            OPERATOR,
            json!({}),
        )
        .await;
    let kinds: Vec<&str> = again.body["effects"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["kind"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["granted"], "{}", again.body);
    let third = t
        .post(
            &format!("/admin/v1/apps/{}/activity/{id}/replay", h.app),
            OPERATOR,
            json!({}),
        )
        .await;
    assert_eq!(third.body["effects"], json!([]));
    assert_eq!(grants_of(&members(&t, &h.app).await, JORDAN).len(), 2);
    let unmapped = t
        .get(
            &format!("/admin/v1/apps/{}/thrivecart/unmapped-products", h.app),
            OPERATOR,
        )
        .await;
    assert_eq!(unmapped.body["items"].as_array().unwrap().len(), 1);

    // Duplicates (like ignored, rejected… entries) cannot be replayed; other apps' entries
    // are not there.
    let duplicate = expect(
        &t,
        &h,
        "02-order-success-bump-and-upsell",
        Encoding::Form,
        "duplicate",
    )
    .await;
    t.post(
        &format!("/admin/v1/apps/{}/activity/{duplicate}/replay", h.app),
        OPERATOR,
        json!({}),
    )
    .await
    .assert_error(409, "not_replayable");
    // An applied purchase with an item unmapped then gets that item once it is mapped.
    let partial = hook(&t, &["product-7"], Some(SECRET)).await;
    let id = expect(
        &t,
        &partial,
        "02-order-success-bump-and-upsell",
        Encoding::Json,
        "applied",
    )
    .await;
    let level = t.create_level(&partial.app, OPERATOR, "Planner").await;
    map(&t, &partial.app, "upsell-3", &level).await;
    let again = t
        .post(
            &format!("/admin/v1/apps/{}/activity/{id}/replay", partial.app),
            OPERATOR,
            json!({}),
        )
        .await;
    assert_eq!(again.body["status"], "applied", "{}", again.body);
    assert_eq!(
        grants_of(&members(&t, &partial.app).await, JORDAN),
        g(&[
            ("product-7@4100456", "active"),
            ("upsell-3@4100456", "active")
        ])
    );
    let other = hook(&t, &[], None).await;
    t.post(
        &format!("/admin/v1/apps/{}/activity/{id}/replay", other.app),
        OPERATOR,
        json!({}),
    )
    .await
    .assert_error(404, "not_found");
}

async fn a_new_mapping_applies_to_the_next_delivery(backend: Backend) {
    let t = TestApp::spawn(backend).await;
    let h = hook(&t, &[], Some(SECRET)).await;
    expect(
        &t,
        &h,
        "01-order-success-single-product",
        Encoding::Json,
        "unmapped",
    )
    .await;
    let level = t.create_level(&h.app, OPERATOR, "Knives").await;
    map(&t, &h.app, "12", &level).await;
    expect(
        &t,
        &h,
        "12-order-success-repeat-customer-blank-name",
        Encoding::Json,
        "unmapped",
    )
    .await;
    expect(
        &t,
        &h,
        "11-order-success-test-mode",
        Encoding::Json,
        "applied",
    )
    .await;
}

crate::on_both_backends!(
    every_fixture_in_form_encoding,
    every_fixture_in_json_encoding,
    storylines_end_the_same_shuffled,
    concurrent_copies_apply_once,
    concurrent_first_purchases_make_one_member,
    a_failure_midway_leaves_nothing_and_the_retry_applies,
    bad_deliveries_are_refused_and_recorded,
    pings_and_unverified_deliveries,
    test_mode_can_be_ignored,
    unmapped_deliveries_show_their_products_and_replay,
    a_new_mapping_applies_to_the_next_delivery,
);
