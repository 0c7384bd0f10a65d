//! What an app owner does beyond the setup: override purchased access, erase and export a
//! member, rename and delete an app; and requests with unknown fields or bad values, which
//! are refused in words.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::support::{Backend, Configured, OPERATOR, TestApp};

async fn deliver(t: &TestApp, c: &Configured, mut doc: Value) -> Value {
    doc["thrivecart_secret"] = "sesame".into();
    let url = c.webhook_url.replace("https://larder.test", &t.base);
    let a = t.raw(t.client().post(url).json(&doc)).await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.body);
    a.body
}

fn has_only(member: &Value, level: &str) -> bool {
    level_ids(member) == [level]
}

fn level_ids(member: &Value) -> Vec<String> {
    member["access_levels"]
        .as_array()
        .expect("access levels")
        .iter()
        .map(|l| l["id"].as_str().unwrap_or_default().to_owned())
        .collect()
}

async fn an_override_takes_purchased_access_away_until_lifted(backend: Backend) {
    let t = TestApp::spawn(backend).await;
    let c = t.configured_app("A").await;
    let member = format!("/admin/v1/apps/{}/members/{}", c.app, c.member);
    let overrides = format!("{member}/access-overrides");
    let on_gold = format!("{overrides}/{}", c.level);
    assert!(has_only(&t.get(&member, &c.key).await.body, &c.level));

    let set = t
        .request(
            Method::PUT,
            &on_gold,
            Some(&c.key),
            Some(json!({"status": "revoked", "reason": "Chargeback."})),
        )
        .await;
    assert_eq!(set.status, StatusCode::CREATED, "{}", set.body);
    assert_eq!(set.body["status"], "revoked");
    assert_eq!(set.body["reason"], "Chargeback.");
    let detail = t.get(&member, &c.key).await;
    assert!(level_ids(&detail.body).is_empty(), "{}", detail.body);
    assert_eq!(
        detail.body["overrides"][0]["access_level_id"],
        c.level.as_str()
    );
    // The grant itself still says what the purchase says.
    assert_eq!(detail.body["grants"][0]["status"], "active");
    let with_gold = t
        .get(
            &format!(
                "/admin/v1/apps/{}/members?access_level_id={}",
                c.app, c.level
            ),
            &c.key,
        )
        .await;
    assert_eq!(with_gold.body["items"], json!([]));

    // A renewal of the order does not give the level back.
    let mut renewal = larder_testkit::fixtures::thrivecart_json("03-order-subscription-payment");
    renewal["order_id"] = "4101002".into();
    renewal["customer"]["email"] = "avery.quinn@example.com".into();
    renewal["date_unix"] = "1790000000".into();
    assert_eq!(deliver(&t, &c, renewal).await["status"], "applied");
    assert!(level_ids(&t.get(&member, &c.key).await.body).is_empty());

    // Setting it again replaces it.
    let replaced = t
        .request(
            Method::PUT,
            &on_gold,
            Some(&c.key),
            Some(json!({"status": "paused"})),
        )
        .await;
    assert_eq!(replaced.status, StatusCode::OK, "{}", replaced.body);
    assert_eq!(replaced.body["reason"], Value::Null);
    let one = t.get(&on_gold, &c.key).await;
    assert_eq!(one.status, StatusCode::OK, "{}", one.body);
    assert_eq!(one.body["status"], "paused");
    let listed = t.get(&overrides, &c.key).await;
    assert_eq!(listed.body["items"].as_array().unwrap().len(), 1);
    assert_eq!(listed.body["items"][0]["status"], "paused");
    assert_eq!(listed.body["next_cursor"], Value::Null);

    // Lifting it gives back what the purchase gives.
    let lifted = t.delete(&on_gold, &c.key).await;
    assert_eq!(lifted.status, StatusCode::NO_CONTENT, "{}", lifted.body);
    assert!(has_only(&t.get(&member, &c.key).await.body, &c.level));
    t.delete(&on_gold, &c.key)
        .await
        .assert_error(404, "not_found");
    t.get(&on_gold, &c.key).await.assert_error(404, "not_found");

    // A level or member that is not the app's is not there; a bad status is refused.
    let other = t.configured_app("B").await;
    let elsewhere = format!("{overrides}/{}", other.level);
    t.request(
        Method::PUT,
        &elsewhere,
        Some(&c.key),
        Some(json!({"status": "revoked"})),
    )
    .await
    .assert_error(404, "not_found");
    let a = t
        .request(
            Method::PUT,
            &on_gold,
            Some(&c.key),
            Some(json!({"status": "gone"})),
        )
        .await;
    a.assert_error(422, "validation_failed");
    assert_eq!(a.body["field"], "status");
    assert!(
        a.str("message").contains("`revoked`, `paused`"),
        "{}",
        a.body
    );
    assert!(has_only(&t.get(&member, &c.key).await.body, &c.level));
}

async fn deleting_a_member_erases_them_and_exports_show_everything(backend: Backend) {
    let t = TestApp::spawn(backend).await;
    let c = t.configured_app("A").await;
    let member = format!("/admin/v1/apps/{}/members/{}", c.app, c.member);
    let grant = t
        .post(
            &format!("{member}/grants"),
            &c.key,
            json!({"access_level_id": c.level}),
        )
        .await;
    assert_eq!(grant.status, StatusCode::CREATED, "{}", grant.body);

    let export = t.get(&format!("{member}/export"), &c.key).await;
    assert_eq!(export.status, StatusCode::OK, "{}", export.body);
    assert_eq!(export.body["member"]["email"], "avery.quinn@example.com");
    let grants = export.body["grants"].as_array().unwrap();
    assert_eq!(grants.len(), 2);
    let purchased = grants.iter().find(|g| g["source"] == "thrivecart").unwrap();
    assert_eq!(purchased["history"][0]["kind"], "granted");
    assert_eq!(purchased["history"][0]["delivery_id"], c.delivery.as_str());
    let manual = grants.iter().find(|g| g["source"] == "manual").unwrap();
    assert_eq!(manual["history"][0]["delivery_id"], Value::Null);
    let activity = export.body["activity"].as_array().unwrap();
    assert_eq!(activity.len(), 1);
    assert_eq!(activity[0]["id"], c.delivery.as_str());
    assert!(activity[0]["payload"]["customer"].is_object());
    assert!(!export.body.to_string().contains("sesame"));

    let gone = t.delete(&member, &c.key).await;
    assert_eq!(gone.status, StatusCode::NO_CONTENT, "{}", gone.body);
    t.get(&member, &c.key).await.assert_error(404, "not_found");
    t.get(&format!("{member}/export"), &c.key)
        .await
        .assert_error(404, "not_found");
    t.delete(&member, &c.key)
        .await
        .assert_error(404, "not_found");
    let entry = t
        .get(
            &format!("/admin/v1/apps/{}/activity/{}", c.app, c.delivery),
            &c.key,
        )
        .await;
    assert_eq!(entry.status, StatusCode::OK);
    assert_eq!(entry.body["status"], "applied");
    assert_eq!(entry.body["customer_email"], Value::Null);
    assert!(
        !entry.body.to_string().to_lowercase().contains("avery"),
        "{}",
        entry.body
    );

    // A later purchase for the same email makes a new member.
    let mut again =
        larder_testkit::fixtures::thrivecart_json("12-order-success-repeat-customer-blank-name");
    again["order_id"] = "4109999".into();
    again["invoice_id"] = "000009999".into();
    assert_eq!(deliver(&t, &c, again).await["status"], "applied");
    let members = t
        .get(&format!("/admin/v1/apps/{}/members", c.app), &c.key)
        .await;
    let items = members.body["items"].as_array().unwrap();
    assert_eq!(items.len(), 1);
    assert_ne!(items[0]["id"], c.member.as_str());
}

async fn apps_are_renamed_and_deleted_by_the_operator(backend: Backend) {
    let t = TestApp::spawn(backend).await;
    let c = t.configured_app("A").await;
    let other = t.configured_app("B").await;
    let app = format!("/admin/v1/apps/{}", c.app);
    let renamed = t.patch(&app, &c.key, json!({"name": "  Acme EU "})).await;
    assert_eq!(renamed.status, StatusCode::OK, "{}", renamed.body);
    assert_eq!(renamed.body["name"], "Acme EU");
    assert_eq!(t.get(&app, OPERATOR).await.body["name"], "Acme EU");

    t.delete(&app, &c.key).await.assert_error(403, "forbidden");
    t.delete(&app, &other.key)
        .await
        .assert_error(404, "not_found");
    let gone = t.delete(&app, OPERATOR).await;
    assert_eq!(gone.status, StatusCode::NO_CONTENT, "{}", gone.body);
    t.get(&app, OPERATOR).await.assert_error(404, "not_found");
    t.get(&format!("{app}/members"), &c.key)
        .await
        .assert_error(401, "unauthorized");
    assert_eq!(t.head_url(&c.webhook_url).await, StatusCode::NOT_FOUND);
    t.delete(&app, OPERATOR)
        .await
        .assert_error(404, "not_found");
    // The other app keeps everything.
    assert_eq!(t.head_url(&other.webhook_url).await, StatusCode::OK);
    let left = t.get("/admin/v1/apps", OPERATOR).await;
    assert_eq!(left.body["items"].as_array().unwrap().len(), 1);
    assert_eq!(left.body["items"][0]["id"], other.app.as_str());
}

async fn unknown_fields_are_refused_naming_the_field(backend: Backend) {
    let t = TestApp::spawn(backend).await;
    let c = t.configured_app("A").await;
    let tc = format!("/admin/v1/apps/{}/thrivecart", c.app);
    let before = t.get(&tc, &c.key).await.body;

    // A typo must not leave the webhook unverified, or change nothing and say 200.
    let a = t
        .post(
            &format!("{tc}/enable"),
            &c.key,
            json!({"secret": "K7QX2M9PLD4R"}),
        )
        .await;
    a.assert_error(422, "validation_failed");
    assert_eq!(a.body["field"], "secret");
    assert!(a.str("message").contains("`secret_word`"), "{}", a.body);
    let a = t.patch(&tc, &c.key, json!({"secret_wrod": null})).await;
    a.assert_error(422, "validation_failed");
    assert_eq!(a.body["field"], "secret_wrod");
    let a = t
        .patch(
            &tc,
            &c.key,
            json!({"test_mode": "ignore", "cancelation": "period_end"}),
        )
        .await;
    a.assert_error(422, "validation_failed");
    assert_eq!(a.body["field"], "cancelation");
    assert_eq!(t.get(&tc, &c.key).await.body, before);

    let a = t
        .post(
            "/admin/v1/apps",
            OPERATOR,
            json!({"name": "X", "owner": "me"}),
        )
        .await;
    a.assert_error(422, "validation_failed");
    assert_eq!(a.body["field"], "owner");
    let apps = t.get("/admin/v1/apps", OPERATOR).await;
    assert_eq!(apps.body["items"].as_array().unwrap().len(), 1);
}

/// Messages are sentences for people: no regexes, type names or parser jargon.
async fn error_messages_speak_to_a_person(backend: Backend) {
    let t = TestApp::spawn(backend).await;
    let c = t.configured_app("A").await;
    let a_app = format!("/admin/v1/apps/{}", c.app);
    let answers = vec![
        t.post(
            &format!("{a_app}/access-levels"),
            &c.key,
            json!({"name": "  "}),
        )
        .await,
        t.post(&format!("{a_app}/access-levels"), &c.key, json!({}))
            .await,
        t.post(
            &format!("{a_app}/access-levels"),
            &c.key,
            json!({"name": 7}),
        )
        .await,
        t.post(
            &format!("{a_app}/thrivecart/mappings"),
            &c.key,
            json!({"product": "gift-7", "access_level_id": c.level}),
        )
        .await,
        t.patch(
            &format!("{a_app}/thrivecart"),
            &c.key,
            json!({"test_mode": "sometimes"}),
        )
        .await,
        t.patch(
            &format!("{a_app}/thrivecart"),
            &c.key,
            json!({"test_mode": null}),
        )
        .await,
        t.get(&format!("{a_app}/members?limit=0"), &c.key).await,
        t.get(&format!("{a_app}/activity?status=maybe"), &c.key)
            .await,
        t.get(&format!("{a_app}/activity?product=gift-7"), &c.key)
            .await,
        t.get(&format!("{a_app}/members?cursor=zz"), &c.key).await,
        t.get("/admin/v1/apps/not-an-id", OPERATOR).await,
        t.get(
            "/admin/v1/apps/01a21ade-0000-7000-8000-000000000000",
            OPERATOR,
        )
        .await,
        t.request(
            Method::POST,
            &format!("/member/v1/apps/{}/password", c.app),
            None,
            Some(json!({"token": "x"})),
        )
        .await,
        t.request(
            Method::POST,
            &format!("/member/v1/apps/{}/password", c.app),
            None,
            Some(json!({"token": "x", "password": "short"})),
        )
        .await,
    ];
    for a in answers {
        assert!(a.status.is_client_error(), "{} {}", a.status, a.body);
        let message = a.str("message");
        for jargon in [
            "\\x",
            "[^",
            "^(",
            "{0,",
            "verification failed",
            "failed to parse",
            "optional_",
            "Request\"",
            "TestMode",
            "ActivityStatus",
            "in this app in this app",
            "app in this app",
        ] {
            assert!(!message.contains(jargon), "{message:?} says {jargon:?}");
        }
        assert!(message.ends_with('.'), "{message:?}");
    }
    let a = t
        .get(
            "/admin/v1/apps/01a21ade-0000-7000-8000-000000000000",
            OPERATOR,
        )
        .await;
    assert_eq!(a.str("message"), "No such app.");
    let a = t
        .get(&format!("{a_app}/activity?status=maybe"), &c.key)
        .await;
    assert!(a.str("message").contains("applied"), "{}", a.body);
}

async fn invitations_give_their_token_apart(backend: Backend) {
    let t = TestApp::spawn(backend).await;
    let c = t.configured_app("A").await;
    let a = t
        .post(
            &format!("/admin/v1/apps/{}/members/{}/invitations", c.app, c.member),
            &c.key,
            json!({}),
        )
        .await;
    assert_eq!(a.status, StatusCode::CREATED, "{}", a.body);
    let token = a.str("token");
    assert!(token.starts_with("li_"), "{token}");
    assert!(
        a.str("url").ends_with(&format!("?token={token}")),
        "{}",
        a.body
    );
}

crate::on_both_backends!(
    an_override_takes_purchased_access_away_until_lifted,
    deleting_a_member_erases_them_and_exports_show_everything,
    apps_are_renamed_and_deleted_by_the_operator,
    unknown_fields_are_refused_naming_the_field,
    error_messages_speak_to_a_person,
    invitations_give_their_token_apart,
);
