//! The setup flow of the README, on both backends.

use reqwest::StatusCode;
use serde_json::json;

use crate::support::{Backend, OPERATOR, TestApp};

async fn setup_flow_works_end_to_end(backend: Backend) {
    let t = TestApp::spawn(backend).await;
    let app = t.create_app("Acme Academy").await;

    let key = t
        .post(
            &format!("/admin/v1/apps/{app}/api-keys"),
            OPERATOR,
            json!({"name": "ci"}),
        )
        .await;
    assert_eq!(key.status, StatusCode::CREATED);
    let key = key.str("key");

    let level = t.create_level(&app, &key, "Gold").await;

    // Before enabling: defaults, no URL.
    let tc = t
        .get(&format!("/admin/v1/apps/{app}/thrivecart"), &key)
        .await;
    assert_eq!(
        tc.body,
        json!({"enabled": false, "webhook_url": null, "secret_word_set": false,
               "test_mode": "process", "cancellation": "immediate"})
    );

    let tc = t
        .post(
            &format!("/admin/v1/apps/{app}/thrivecart/enable"),
            &key,
            json!({"secret_word": "sesame"}),
        )
        .await;
    assert_eq!(tc.status, StatusCode::OK, "{}", tc.body);
    assert_eq!(tc.body["enabled"], true);
    assert_eq!(tc.body["secret_word_set"], true);
    let url = tc.str("webhook_url");
    assert!(
        url.starts_with("https://larder.test/webhooks/thrivecart/"),
        "{url}"
    );
    assert!(!tc.body.to_string().contains("sesame"));
    assert_eq!(t.head_url(&url).await, StatusCode::OK);
    let get = t
        .client()
        .get(url.replace("https://larder.test", &t.base))
        .send()
        .await
        .unwrap();
    assert_eq!(get.status(), StatusCode::OK);

    let mapping = t
        .post(
            &format!("/admin/v1/apps/{app}/thrivecart/mappings"),
            &key,
            json!({"product": "7", "access_level_id": level}),
        )
        .await;
    assert_eq!(mapping.status, StatusCode::CREATED, "{}", mapping.body);
    assert_eq!(mapping.body["product"], "product-7");
    assert_eq!(mapping.body["access_level_id"], level.as_str());
    let list = t
        .get(&format!("/admin/v1/apps/{app}/thrivecart/mappings"), &key)
        .await;
    assert_eq!(list.body["items"].as_array().unwrap().len(), 1);
    assert_eq!(list.body["items"][0]["product"], "product-7");
    assert_eq!(list.body["next_cursor"], json!(null));

    // Enabling again keeps the URL and the secret word.
    let again = t
        .post(
            &format!("/admin/v1/apps/{app}/thrivecart/enable"),
            &key,
            json!({}),
        )
        .await;
    assert_eq!(again.str("webhook_url"), url);
    assert_eq!(again.body["secret_word_set"], true);

    let rotated = t
        .post(
            &format!("/admin/v1/apps/{app}/thrivecart/rotate-webhook-token"),
            &key,
            json!({}),
        )
        .await;
    assert_eq!(rotated.status, StatusCode::OK);
    let new_url = rotated.str("webhook_url");
    assert_ne!(new_url, url);
    assert_eq!(t.head_url(&url).await, StatusCode::NOT_FOUND);
    assert_eq!(t.head_url(&new_url).await, StatusCode::OK);

    let disabled = t
        .post(
            &format!("/admin/v1/apps/{app}/thrivecart/disable"),
            &key,
            json!({}),
        )
        .await;
    assert_eq!(disabled.body["enabled"], false);
    assert_eq!(disabled.body["webhook_url"], json!(null));
    assert_eq!(t.head_url(&new_url).await, StatusCode::NOT_FOUND);

    // Enabling after a disable brings the same URL back.
    let back = t
        .post(
            &format!("/admin/v1/apps/{app}/thrivecart/enable"),
            &key,
            json!({}),
        )
        .await;
    assert_eq!(back.str("webhook_url"), new_url);
    assert_eq!(t.head_url(&new_url).await, StatusCode::OK);
}

async fn patch_tells_absent_from_null(backend: Backend) {
    let t = TestApp::spawn(backend).await;
    let c = t.configured_app("Acme").await;
    let path = format!("/admin/v1/apps/{}/thrivecart", c.app);

    let a = t.patch(&path, &c.key, json!({"test_mode": "ignore"})).await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.body);
    assert_eq!(a.body["test_mode"], "ignore");
    assert_eq!(
        a.body["secret_word_set"], true,
        "absent leaves the secret word"
    );

    let a = t
        .patch(
            &path,
            &c.key,
            json!({"cancellation": "period_end", "secret_word": null}),
        )
        .await;
    assert_eq!(a.body["cancellation"], "period_end");
    assert_eq!(a.body["test_mode"], "ignore");
    assert_eq!(a.body["secret_word_set"], false, "null clears it");

    let a = t
        .patch(&path, &c.key, json!({"secret_word": "new word"}))
        .await;
    assert_eq!(a.body["secret_word_set"], true);
    assert_eq!(t.get(&path, &c.key).await.body, a.body);
}

async fn product_keys_are_typed(backend: Backend) {
    let t = TestApp::spawn(backend).await;
    let c = t.configured_app("Acme").await;
    let path = format!("/admin/v1/apps/{}/thrivecart/mappings", c.app);
    for (given, stored) in [
        ("bump-7", "bump-7"),
        ("upsell-3", "upsell-3"),
        ("downsell-2", "downsell-2"),
        ("product-12", "product-12"),
    ] {
        let a = t
            .post(
                &path,
                &c.key,
                json!({"product": given, "access_level_id": c.level}),
            )
            .await;
        assert_eq!(a.status, StatusCode::CREATED, "{given}: {}", a.body);
        assert_eq!(a.body["product"], stored);
    }
    // One key may map to several levels.
    let silver = t.create_level(&c.app, &c.key, "Silver").await;
    let a = t
        .post(
            &path,
            &c.key,
            json!({"product": "7", "access_level_id": silver}),
        )
        .await;
    assert_eq!(a.status, StatusCode::CREATED);

    let d = t.delete(&format!("{path}/{}", c.mapping), &c.key).await;
    assert_eq!(d.status, StatusCode::NO_CONTENT);
    let list = t.get(&path, &c.key).await;
    assert_eq!(list.body["items"].as_array().unwrap().len(), 5);
    // Gold is still mapped from the typed keys above.
    let del = t
        .delete(
            &format!("/admin/v1/apps/{}/access-levels/{}", c.app, c.level),
            &c.key,
        )
        .await;
    del.assert_error(409, "access_level_in_use");
}

async fn access_levels_can_be_renamed_and_deleted(backend: Backend) {
    let t = TestApp::spawn(backend).await;
    let app = t.create_app("Acme").await;
    let level = t.create_level(&app, OPERATOR, "Gold").await;
    let path = format!("/admin/v1/apps/{app}/access-levels/{level}");
    let a = t.patch(&path, OPERATOR, json!({"name": "Platinum"})).await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.body);
    assert_eq!(a.body["name"], "Platinum");
    assert_eq!(t.get(&path, OPERATOR).await.body["name"], "Platinum");
    assert_eq!(
        t.delete(&path, OPERATOR).await.status,
        StatusCode::NO_CONTENT
    );
    t.get(&path, OPERATOR).await.assert_error(404, "not_found");
}

async fn revoked_api_keys_stop_working_at_once(backend: Backend) {
    let t = TestApp::spawn(backend).await;
    let c = t.configured_app("Acme").await;
    let levels = format!("/admin/v1/apps/{}/access-levels", c.app);
    assert_eq!(t.get(&levels, &c.key).await.status, StatusCode::OK);
    let d = t
        .delete(
            &format!("/admin/v1/apps/{}/api-keys/{}", c.app, c.key_id),
            &c.key,
        )
        .await;
    assert_eq!(d.status, StatusCode::NO_CONTENT);
    t.get(&levels, &c.key)
        .await
        .assert_error(401, "unauthorized");
    let keys = t
        .get(&format!("/admin/v1/apps/{}/api-keys", c.app), OPERATOR)
        .await;
    assert_eq!(keys.body["items"], json!([]));
}

async fn lists_page_through_every_row_once(backend: Backend) {
    let t = TestApp::spawn(backend).await;
    let app = t.create_app("Acme").await;
    let mut created = Vec::new();
    for i in 0..7 {
        created.push(t.create_level(&app, OPERATOR, &format!("Level {i}")).await);
    }
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    let mut pages = 0;
    loop {
        let mut path = format!("/admin/v1/apps/{app}/access-levels?limit=3");
        if let Some(c) = &cursor {
            path.push_str(&format!("&cursor={c}"));
        }
        let page = t.get(&path, OPERATOR).await;
        assert_eq!(page.status, StatusCode::OK, "{}", page.body);
        let items = page.body["items"].as_array().unwrap();
        assert!(items.len() <= 3);
        seen.extend(items.iter().map(|i| i["id"].as_str().unwrap().to_owned()));
        pages += 1;
        if pages == 1 {
            // A row added while reading is still read, once.
            created.push(t.create_level(&app, OPERATOR, "Added midway").await);
        }
        match page.body["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => break,
        }
    }
    assert_eq!(seen, created);
    assert_eq!(pages, 3);
}

crate::on_both_backends!(
    setup_flow_works_end_to_end,
    patch_tells_absent_from_null,
    product_keys_are_typed,
    access_levels_can_be_renamed_and_deleted,
    revoked_api_keys_stop_working_at_once,
    lists_page_through_every_row_once,
);
