//! The storage contract: every case runs against every backend.
//!
//! Each backend crate instantiates the whole suite with [`crate::contract_cases!`] in its
//! `tests/contract.rs`. A new `Store` method or a fixed storage bug adds a case here.

#![allow(clippy::unwrap_used, missing_docs)]

use crate::*;
use larder_access::engine::ItemStatus;
use larder_access::{
    AccessLevelId, ApiKeyId, AppId, CancellationPolicy, GrantSource, MappingId, Name,
    OverrideStatus, ProductKey, TestModePolicy,
};

/// Instantiates every contract case as a `#[tokio::test]`, each on a store from `$factory`
/// (an async fn returning something that derefs to a `Store`, fresh per case).
#[macro_export]
macro_rules! contract_cases {
    ($factory:path) => {
        $crate::contract_cases!(@cases $factory;
            operator_token_is_stored_once,
            apps_round_trip,
            missing_app_is_not_found,
            app_pages_cover_every_app_exactly_once,
            api_keys_resolve_by_hash_until_deleted,
            api_keys_are_scoped_to_their_app,
            api_key_for_a_missing_app_is_not_found,
            access_levels_round_trip,
            access_level_names_are_unique_per_app,
            access_levels_are_scoped_to_their_app,
            access_level_used_by_a_mapping_cannot_be_deleted,
            integration_defaults_to_disabled,
            enabling_keeps_token_and_secret,
            disabling_keeps_the_token_but_stops_it,
            rotating_replaces_the_token,
            patching_changes_only_what_is_given,
            integration_of_a_missing_app_is_not_found,
            webhook_tokens_are_unique,
            mappings_round_trip,
            mapping_rules,
            mappings_are_scoped_to_their_app,
            purchases_create_members_and_grants_once,
            lifecycle_events_follow_their_item,
            activity_is_listed_newest_first_and_filtered,
            unmapped_products_are_reported_until_mapped,
            live_grants_keep_their_level_alive,
            period_end_revocations_happen_when_due,
            old_activity_is_pruned,
            deliveries_are_scoped_to_their_app,
            manual_grants_are_added_and_revoked,
            links_are_single_use_for_their_purpose_and_expire,
            setting_a_password_ends_every_session_and_voids_other_links,
            a_magic_link_starts_one_session,
            sessions_start_only_with_the_current_password,
            a_reset_racing_sign_ins_leaves_no_session_behind,
            sessions_expire_and_end,
            late_older_payments_do_not_overrule_newer_ones,
            apps_are_renamed_and_deleted_with_everything_they_own,
            overrides_take_a_level_away_until_lifted,
            deleting_a_member_erases_them_and_keeps_the_log,
            member_activity_holds_their_deliveries,
            erasing_a_member_leaves_other_customers_alone,
            a_first_purchase_queues_one_welcome,
            messages_are_claimed_once_retried_and_finished,
            concurrent_claims_never_share_a_message,
            messages_are_listed_filtered_and_scoped,
            member_settings_round_trip,
            an_invitation_and_its_email_are_stored_together,
            messages_are_queued_by_email_only_to_members,
            origins_are_allowed_by_the_apps_that_list_them,
            claims_are_renewed_until_another_sender_takes_them,
            member_settings_patches_change_only_their_fields,
            every_arrival_order_of_a_storyline_ends_the_same,
            a_batch_applies_as_its_deliveries_would_one_by_one,
            one_bad_delivery_fails_only_itself_in_a_batch,
            entries_that_change_nothing_are_recorded_together,
        );
    };
    (@cases $factory:path; $($case:ident),* $(,)?) => {
        $(
            #[tokio::test]
            async fn $case() {
                let store = $factory().await;
                $crate::contract::$case(&*store).await;
            }
        )*
    };
}

fn name(s: &str) -> Name {
    Name::parse(s).unwrap()
}

async fn app(store: &dyn Store, n: &str) -> App {
    store
        .create_app(NewApp {
            id: AppId::new(),
            name: name(n),
        })
        .await
        .unwrap()
}

async fn level(store: &dyn Store, app: AppId, n: &str) -> AccessLevel {
    store
        .create_access_level(NewAccessLevel {
            id: AccessLevelId::new(),
            app_id: app,
            name: name(n),
        })
        .await
        .unwrap()
}

fn mapping(app: AppId, product: &str, level: AccessLevelId) -> NewMapping {
    NewMapping {
        id: MappingId::new(),
        app_id: app,
        product: ProductKey::parse(product).unwrap(),
        access_level_id: level,
    }
}

async fn all_mappings(store: &dyn Store, app: AppId) -> Vec<Mapping> {
    store
        .list_mappings(app, PageRequest::first(200))
        .await
        .unwrap()
        .items
}

fn enable(token: &str, secret: Option<&str>) -> EnableIntegration {
    EnableIntegration {
        token_if_new: token.into(),
        secret_word_hash: secret.map(Into::into),
    }
}

pub async fn operator_token_is_stored_once(store: &dyn Store) {
    assert_eq!(store.operator_token_hash().await.unwrap(), None);
    assert!(store.init_operator_token_hash("first").await.unwrap());
    assert!(!store.init_operator_token_hash("second").await.unwrap());
    assert_eq!(
        store.operator_token_hash().await.unwrap().as_deref(),
        Some("first")
    );
}

pub async fn apps_round_trip(store: &dyn Store) {
    let created = app(store, "  Yoga Studio ").await;
    assert_eq!(created.name, "Yoga Studio");
    let fetched = store.get_app(created.id).await.unwrap();
    assert_eq!(fetched, created);
    let listed = store.list_apps(PageRequest::default()).await.unwrap();
    assert_eq!(listed.items, vec![created]);
    assert_eq!(listed.next, None);
}

pub async fn missing_app_is_not_found(store: &dyn Store) {
    assert!(matches!(
        store.get_app(AppId::new()).await,
        Err(StoreError::NotFound)
    ));
}

pub async fn app_pages_cover_every_app_exactly_once(store: &dyn Store) {
    let mut expected = Vec::new();
    for i in 0..5 {
        expected.push(app(store, &format!("app {i}")).await.id);
    }
    let mut seen = Vec::new();
    let mut page = PageRequest::first(2);
    let mut added_while_reading = false;
    loop {
        let got = store.list_apps(page).await.unwrap();
        assert!(got.items.len() <= 2);
        seen.extend(got.items.iter().map(|a| a.id));
        if !added_while_reading {
            // A row added mid-way shows up once, at the end.
            expected.push(app(store, "late").await.id);
            added_while_reading = true;
        }
        match got.next {
            Some(after) => page = page.after(after),
            None => break,
        }
    }
    assert_eq!(seen, expected);
}

pub async fn api_keys_resolve_by_hash_until_deleted(store: &dyn Store) {
    let a = app(store, "a").await;
    let key = store
        .create_api_key(NewApiKey {
            id: ApiKeyId::new(),
            app_id: a.id,
            name: name("ci"),
            key_hash: "hash-1".into(),
        })
        .await
        .unwrap();
    assert_eq!(key.name, "ci");
    assert_eq!(
        store.find_api_key_by_hash("hash-1").await.unwrap(),
        Some(ApiKeyOwner {
            key_id: key.id,
            app_id: a.id
        })
    );
    assert_eq!(store.find_api_key_by_hash("hash-2").await.unwrap(), None);
    let listed = store
        .list_api_keys(a.id, PageRequest::default())
        .await
        .unwrap();
    assert_eq!(listed.items, vec![key.clone()]);

    assert_eq!(store.delete_api_key(a.id, key.id).await.unwrap(), "hash-1");
    assert_eq!(store.find_api_key_by_hash("hash-1").await.unwrap(), None);
    assert!(matches!(
        store.delete_api_key(a.id, key.id).await,
        Err(StoreError::NotFound)
    ));
}

pub async fn api_keys_are_scoped_to_their_app(store: &dyn Store) {
    let a = app(store, "a").await;
    let b = app(store, "b").await;
    let key = store
        .create_api_key(NewApiKey {
            id: ApiKeyId::new(),
            app_id: a.id,
            name: name("k"),
            key_hash: "hash-a".into(),
        })
        .await
        .unwrap();
    assert!(matches!(
        store.delete_api_key(b.id, key.id).await,
        Err(StoreError::NotFound)
    ));
    let b_keys = store
        .list_api_keys(b.id, PageRequest::default())
        .await
        .unwrap();
    assert!(b_keys.items.is_empty());
    // Untouched by the refused delete.
    assert!(
        store
            .find_api_key_by_hash("hash-a")
            .await
            .unwrap()
            .is_some()
    );
}

pub async fn api_key_for_a_missing_app_is_not_found(store: &dyn Store) {
    let result = store
        .create_api_key(NewApiKey {
            id: ApiKeyId::new(),
            app_id: AppId::new(),
            name: name("k"),
            key_hash: "h".into(),
        })
        .await;
    assert!(matches!(result, Err(StoreError::NotFound)), "{result:?}");
    assert_eq!(store.find_api_key_by_hash("h").await.unwrap(), None);
}

pub async fn access_levels_round_trip(store: &dyn Store) {
    let a = app(store, "a").await;
    let gold = level(store, a.id, "Gold").await;
    assert_eq!(gold.name, "Gold");
    assert_eq!(store.get_access_level(a.id, gold.id).await.unwrap(), gold);
    let renamed = store
        .rename_access_level(a.id, gold.id, name("Platinum"))
        .await
        .unwrap();
    assert_eq!(renamed.name, "Platinum");
    assert!(renamed.updated_at >= gold.updated_at);
    let listed = store
        .list_access_levels(a.id, PageRequest::default())
        .await
        .unwrap();
    assert_eq!(listed.items, vec![renamed]);
    store.delete_access_level(a.id, gold.id).await.unwrap();
    assert!(matches!(
        store.get_access_level(a.id, gold.id).await,
        Err(StoreError::NotFound)
    ));
}

pub async fn access_level_names_are_unique_per_app(store: &dyn Store) {
    let a = app(store, "a").await;
    let b = app(store, "b").await;
    let gold = level(store, a.id, "Gold").await;
    let silver = level(store, a.id, "Silver").await;
    let dup = store
        .create_access_level(NewAccessLevel {
            id: AccessLevelId::new(),
            app_id: a.id,
            name: name("gold"),
        })
        .await;
    assert!(matches!(dup, Err(StoreError::Conflict(_))), "{dup:?}");
    let clash = store
        .rename_access_level(a.id, silver.id, name("GOLD"))
        .await;
    assert!(matches!(clash, Err(StoreError::Conflict(_))), "{clash:?}");
    assert_eq!(
        store.get_access_level(a.id, silver.id).await.unwrap().name,
        "Silver"
    );
    // Another app may use the same name.
    level(store, b.id, "Gold").await;
    // Renaming to its own name in another case is fine.
    let same = store
        .rename_access_level(a.id, gold.id, name("GOLD"))
        .await
        .unwrap();
    assert_eq!(same.name, "GOLD");
    let for_missing_app = store
        .create_access_level(NewAccessLevel {
            id: AccessLevelId::new(),
            app_id: AppId::new(),
            name: name("x"),
        })
        .await;
    assert!(matches!(for_missing_app, Err(StoreError::NotFound)));
}

pub async fn access_levels_are_scoped_to_their_app(store: &dyn Store) {
    let a = app(store, "a").await;
    let b = app(store, "b").await;
    let gold = level(store, a.id, "Gold").await;
    assert!(matches!(
        store.get_access_level(b.id, gold.id).await,
        Err(StoreError::NotFound)
    ));
    assert!(matches!(
        store.rename_access_level(b.id, gold.id, name("x")).await,
        Err(StoreError::NotFound)
    ));
    assert!(matches!(
        store.delete_access_level(b.id, gold.id).await,
        Err(StoreError::NotFound)
    ));
    assert!(
        store
            .list_access_levels(b.id, PageRequest::default())
            .await
            .unwrap()
            .items
            .is_empty()
    );
    assert_eq!(store.get_access_level(a.id, gold.id).await.unwrap(), gold);
}

pub async fn access_level_used_by_a_mapping_cannot_be_deleted(store: &dyn Store) {
    let a = app(store, "a").await;
    let gold = level(store, a.id, "Gold").await;
    let m = store
        .create_mapping(mapping(a.id, "7", gold.id))
        .await
        .unwrap();
    assert!(matches!(
        store.delete_access_level(a.id, gold.id).await,
        Err(StoreError::AccessLevelInUse)
    ));
    assert_eq!(store.get_access_level(a.id, gold.id).await.unwrap(), gold);
    assert_eq!(all_mappings(store, a.id).await, vec![m.clone()]);
    store.delete_mapping(a.id, m.id).await.unwrap();
    store.delete_access_level(a.id, gold.id).await.unwrap();
}

pub async fn integration_defaults_to_disabled(store: &dyn Store) {
    let a = app(store, "a").await;
    let tc = store.get_integration(a.id).await.unwrap();
    assert_eq!(tc, Integration::unconfigured(a.id));
    assert_eq!(tc.test_mode, TestModePolicy::Process);
    assert_eq!(tc.cancellation, CancellationPolicy::Immediate);
}

pub async fn enabling_keeps_token_and_secret(store: &dyn Store) {
    let a = app(store, "a").await;
    let first = store
        .enable_integration(a.id, enable("tok-1", Some("secret-hash")))
        .await
        .unwrap();
    assert!(first.enabled);
    assert_eq!(first.live_token(), Some("tok-1"));
    assert_eq!(first.secret_word_hash.as_deref(), Some("secret-hash"));

    let again = store
        .enable_integration(a.id, enable("tok-2", None))
        .await
        .unwrap();
    assert_eq!(again, first, "enabling again keeps the URL and the secret");

    let new_secret = store
        .enable_integration(a.id, enable("tok-3", Some("other-hash")))
        .await
        .unwrap();
    assert_eq!(new_secret.live_token(), Some("tok-1"));
    assert_eq!(new_secret.secret_word_hash.as_deref(), Some("other-hash"));
    assert_eq!(store.get_integration(a.id).await.unwrap(), new_secret);
    assert_eq!(
        store.find_integration_by_token("tok-1").await.unwrap(),
        Some(new_secret)
    );
    assert_eq!(
        store.find_integration_by_token("tok-2").await.unwrap(),
        None
    );
}

pub async fn disabling_keeps_the_token_but_stops_it(store: &dyn Store) {
    let a = app(store, "a").await;
    store
        .enable_integration(a.id, enable("tok", Some("h")))
        .await
        .unwrap();
    let off = store.disable_integration(a.id).await.unwrap();
    assert!(!off.enabled);
    assert_eq!(off.live_token(), None);
    let found = store
        .find_integration_by_token("tok")
        .await
        .unwrap()
        .unwrap();
    assert!(!found.enabled);
    let on = store
        .enable_integration(a.id, enable("other", None))
        .await
        .unwrap();
    assert_eq!(on.live_token(), Some("tok"));
    assert_eq!(on.secret_word_hash.as_deref(), Some("h"));
    // Disabling an app that never enabled is fine and leaves it disabled.
    let b = app(store, "b").await;
    assert!(!store.disable_integration(b.id).await.unwrap().enabled);
}

pub async fn rotating_replaces_the_token(store: &dyn Store) {
    let a = app(store, "a").await;
    store
        .enable_integration(a.id, enable("old", None))
        .await
        .unwrap();
    let RotatedToken {
        old_token: old,
        integration: rotated,
    } = store.rotate_webhook_token(a.id, "new").await.unwrap();
    assert_eq!(old.as_deref(), Some("old"));
    assert_eq!(rotated.live_token(), Some("new"));
    assert_eq!(store.find_integration_by_token("old").await.unwrap(), None);
    assert_eq!(
        store.find_integration_by_token("new").await.unwrap(),
        Some(rotated)
    );
    // Rotating a never-enabled integration gives it a token but leaves it disabled.
    let b = app(store, "b").await;
    let RotatedToken {
        old_token: old,
        integration: b_tc,
    } = store.rotate_webhook_token(b.id, "b-tok").await.unwrap();
    assert_eq!(old, None);
    assert!(!b_tc.enabled);
    assert_eq!(b_tc.webhook_token.as_deref(), Some("b-tok"));
    let b_on = store
        .enable_integration(b.id, enable("ignored", None))
        .await
        .unwrap();
    assert_eq!(b_on.live_token(), Some("b-tok"));
}

pub async fn patching_changes_only_what_is_given(store: &dyn Store) {
    let a = app(store, "a").await;
    let on = store
        .enable_integration(a.id, enable("tok", Some("h")))
        .await
        .unwrap();
    let patched = store
        .update_integration(
            a.id,
            IntegrationPatch {
                test_mode: Some(TestModePolicy::Ignore),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(patched.test_mode, TestModePolicy::Ignore);
    assert_eq!(patched.secret_word_hash, on.secret_word_hash);
    assert_eq!(patched.cancellation, CancellationPolicy::Immediate);
    let cleared = store
        .update_integration(
            a.id,
            IntegrationPatch {
                secret_word_hash: Some(None),
                cancellation: Some(CancellationPolicy::PeriodEnd),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(cleared.secret_word_hash, None);
    assert_eq!(cleared.cancellation, CancellationPolicy::PeriodEnd);
    assert_eq!(cleared.test_mode, TestModePolicy::Ignore);
    assert_eq!(cleared.live_token(), Some("tok"));
    // A patch before the first enable is kept for it.
    let b = app(store, "b").await;
    let pre = store
        .update_integration(
            b.id,
            IntegrationPatch {
                secret_word_hash: Some(Some("bh".into())),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert!(!pre.enabled);
    let b_on = store
        .enable_integration(b.id, enable("b-tok", None))
        .await
        .unwrap();
    assert_eq!(b_on.secret_word_hash.as_deref(), Some("bh"));
}

pub async fn integration_of_a_missing_app_is_not_found(store: &dyn Store) {
    let ghost = AppId::new();
    assert!(matches!(
        store.get_integration(ghost).await,
        Err(StoreError::NotFound)
    ));
    assert!(matches!(
        store.enable_integration(ghost, enable("t", None)).await,
        Err(StoreError::NotFound)
    ));
    assert!(matches!(
        store.disable_integration(ghost).await,
        Err(StoreError::NotFound)
    ));
    assert!(matches!(
        store
            .update_integration(ghost, IntegrationPatch::default())
            .await,
        Err(StoreError::NotFound)
    ));
    assert!(matches!(
        store.rotate_webhook_token(ghost, "t").await,
        Err(StoreError::NotFound)
    ));
    assert_eq!(store.find_integration_by_token("t").await.unwrap(), None);
}

pub async fn webhook_tokens_are_unique(store: &dyn Store) {
    let a = app(store, "a").await;
    let b = app(store, "b").await;
    store
        .enable_integration(a.id, enable("same", None))
        .await
        .unwrap();
    let clash = store.rotate_webhook_token(b.id, "same").await;
    assert!(matches!(clash, Err(StoreError::Conflict(_))), "{clash:?}");
    let b_tc = store.get_integration(b.id).await.unwrap();
    assert_eq!(b_tc, Integration::unconfigured(b.id));
}

pub async fn mappings_round_trip(store: &dyn Store) {
    let a = app(store, "a").await;
    let gold = level(store, a.id, "Gold").await;
    let silver = level(store, a.id, "Silver").await;
    let m1 = store
        .create_mapping(mapping(a.id, "7", gold.id))
        .await
        .unwrap();
    assert_eq!(m1.product.to_string(), "product-7");
    assert_eq!(m1.access_level_id, gold.id);
    // One key may map to several levels.
    let m2 = store
        .create_mapping(mapping(a.id, "product-7", silver.id))
        .await
        .unwrap();
    let m3 = store
        .create_mapping(mapping(a.id, "bump-7", gold.id))
        .await
        .unwrap();
    assert_eq!(
        all_mappings(store, a.id).await,
        vec![m1.clone(), m2.clone(), m3.clone()]
    );
    store.delete_mapping(a.id, m2.id).await.unwrap();
    assert_eq!(all_mappings(store, a.id).await, vec![m1, m3]);
    assert!(matches!(
        store.delete_mapping(a.id, m2.id).await,
        Err(StoreError::NotFound)
    ));
}

pub async fn mapping_rules(store: &dyn Store) {
    let a = app(store, "a").await;
    let gold = level(store, a.id, "Gold").await;
    let m = store
        .create_mapping(mapping(a.id, "upsell-3", gold.id))
        .await
        .unwrap();
    let dup = store
        .create_mapping(mapping(a.id, "upsell-3", gold.id))
        .await;
    assert!(matches!(dup, Err(StoreError::Conflict(_))), "{dup:?}");
    let unknown = store
        .create_mapping(mapping(a.id, "upsell-4", AccessLevelId::new()))
        .await;
    assert!(
        matches!(unknown, Err(StoreError::UnknownAccessLevel)),
        "{unknown:?}"
    );
    assert_eq!(all_mappings(store, a.id).await, vec![m]);
}

pub async fn mappings_are_scoped_to_their_app(store: &dyn Store) {
    let a = app(store, "a").await;
    let b = app(store, "b").await;
    let gold = level(store, a.id, "Gold").await;
    let m = store
        .create_mapping(mapping(a.id, "7", gold.id))
        .await
        .unwrap();
    // B cannot map to A's level, list A's mappings, or delete them.
    let cross = store.create_mapping(mapping(b.id, "7", gold.id)).await;
    assert!(
        matches!(cross, Err(StoreError::UnknownAccessLevel)),
        "{cross:?}"
    );
    assert!(all_mappings(store, b.id).await.is_empty());
    assert!(matches!(
        store.delete_mapping(b.id, m.id).await,
        Err(StoreError::NotFound)
    ));
    assert_eq!(all_mappings(store, a.id).await, vec![m]);
}

// --- deliveries ---------------------------------------------------------------------------

macro_rules! fixture {
    ($name:literal) => {
        larder_testkit::fixtures::thrivecart($name).json
    };
}

const NOW: i64 = 1_790_000_000;

fn at(unix: i64) -> chrono::DateTime<chrono::Utc> {
    chrono::DateTime::from_timestamp(unix, 0).unwrap()
}

fn doc(text: &str) -> serde_json::Value {
    serde_json::from_str(text).unwrap()
}

fn new_delivery(app: AppId, doc: &serde_json::Value) -> NewDelivery {
    let d = larder_access::thrivecart::parse_delivery(doc).unwrap();
    NewDelivery {
        id: larder_access::DeliveryId::new(),
        app_id: app,
        received_at: chrono::Utc::now(),
        event: d.as_ref().map(|d| d.event.clone()),
        mode: d.as_ref().map(|d| d.mode),
        order_id: d.as_ref().and_then(|d| d.order_id.clone()),
        customer_email: d
            .as_ref()
            .and_then(|d| d.customer.as_ref())
            .map(|c| c.email.clone()),
        products: d.as_ref().map(|d| d.products()).unwrap_or_default(),
        verified: true,
        payload: Some(doc.clone()),
        replay_of: None,
    }
}

/// A delivery of `doc` to `app` as the gateway hands it to the store.
async fn to_apply(
    store: &dyn Store,
    app: AppId,
    doc: &serde_json::Value,
    cancellation: CancellationPolicy,
) -> (NewDelivery, ApplyDelivery) {
    let mappings = all_mappings(store, app).await;
    let mut map: std::collections::HashMap<ProductKey, Vec<AccessLevelId>> = Default::default();
    for m in mappings {
        map.entry(m.product).or_default().push(m.access_level_id);
    }
    (
        new_delivery(app, doc),
        ApplyDelivery {
            fingerprint: Some(larder_access::thrivecart::fingerprint(doc)),
            delivery: larder_access::thrivecart::parse_delivery(doc)
                .unwrap()
                .unwrap(),
            mappings: map,
            test_mode: TestModePolicy::Process,
            cancellation,
            now: at(NOW),
        },
    )
}

async fn deliver_with(
    store: &dyn Store,
    app: AppId,
    doc: &serde_json::Value,
    cancellation: CancellationPolicy,
) -> AppliedDelivery {
    let (record, apply) = to_apply(store, app, doc, cancellation).await;
    store.apply_delivery(&record, apply).await.unwrap()
}

pub(crate) async fn deliver(
    store: &dyn Store,
    app: AppId,
    doc: &serde_json::Value,
) -> AppliedDelivery {
    deliver_with(store, app, doc, CancellationPolicy::Immediate).await
}

/// An app mapping the fixtures' four products to one level each.
pub(crate) async fn shop(
    store: &dyn Store,
) -> (
    AppId,
    std::collections::HashMap<&'static str, AccessLevelId>,
) {
    let a = app(store, "shop").await;
    let mut levels = std::collections::HashMap::new();
    for key in ["product-12", "product-7", "bump-7", "upsell-3"] {
        let l = level(store, a.id, key).await;
        store
            .create_mapping(mapping(a.id, key, l.id))
            .await
            .unwrap();
        levels.insert(key, l.id);
    }
    (a.id, levels)
}

async fn only_member(store: &dyn Store, app: AppId) -> (Member, Vec<Grant>) {
    let members = store
        .list_members(app, MemberFilter::default(), PageRequest::first(200))
        .await
        .unwrap();
    assert_eq!(members.items.len(), 1, "{members:?}");
    member_of(store, app, members.items[0].id).await
}

async fn member_of(
    store: &dyn Store,
    app: AppId,
    id: larder_access::MemberId,
) -> (Member, Vec<Grant>) {
    let found = store.get_member(app, id).await.unwrap();
    (found.member, found.grants)
}

fn statuses(grants: &[Grant]) -> std::collections::BTreeMap<String, String> {
    grants
        .iter()
        .map(|g| {
            (
                g.product
                    .as_ref()
                    .map(ToString::to_string)
                    .unwrap_or_default(),
                g.status.as_str().to_owned(),
            )
        })
        .collect()
}

fn product(key: &str) -> ProductKey {
    ProductKey::parse(key).unwrap()
}

fn email(text: &str) -> larder_access::Email {
    larder_access::Email::parse(text).unwrap()
}

pub async fn purchases_create_members_and_grants_once(store: &dyn Store) {
    let (app, levels) = shop(store).await;
    let purchase = doc(fixture!("02-order-success-bump-and-upsell"));
    let first = deliver(store, app, &purchase).await;
    assert_eq!(first.status, DeliveryStatus::Applied, "{}", first.message);
    let again = deliver(store, app, &purchase).await;
    assert_eq!(again.status, DeliveryStatus::Duplicate);
    assert!(again.message.contains(&first.id.to_string()));

    let (member, grants) = only_member(store, app).await;
    assert_eq!(member.email.as_str(), "jordan.ellis@example.com");
    assert_eq!(member.name.as_deref(), Some("Jordan Ellis-Müller"));
    assert!(!member.test);
    assert_eq!(grants.len(), 3);
    assert!(
        grants
            .iter()
            .all(|g| g.status == ItemStatus::Active && g.source == GrantSource::Thrivecart)
    );
    assert!(
        grants
            .iter()
            .all(|g| g.order_id.as_deref() == Some("4100456"))
    );
    let mut got: Vec<AccessLevelId> = member.access_levels.iter().map(|l| l.id).collect();
    got.sort();
    let mut want = vec![levels["product-7"], levels["bump-7"], levels["upsell-3"]];
    want.sort();
    assert_eq!(got, want);

    let entry = store.get_activity(app, first.id).await.unwrap();
    assert_eq!(entry.status, DeliveryStatus::Applied);
    assert_eq!(
        entry.products,
        [product("product-7"), product("bump-7"), product("upsell-3")]
    );
    assert_eq!(
        entry.customer_email.as_ref().map(|e| e.as_str()),
        Some("jordan.ellis@example.com")
    );
    assert_eq!(entry.payload.as_ref(), Some(&purchase));
    let kinds: Vec<&str> = entry.effects.iter().map(|e| e.kind.as_str()).collect();
    assert_eq!(kinds, ["member_created", "granted", "granted", "granted"]);
    let dup = store.get_activity(app, again.id).await.unwrap();
    assert_eq!(dup.status, DeliveryStatus::Duplicate);
    assert!(dup.effects.is_empty());

    // The same person buying again is the same member; a blank name changes nothing.
    let avery = doc(fixture!("01-order-success-single-product"));
    deliver(store, app, &avery).await;
    let repeat = doc(fixture!("12-order-success-repeat-customer-blank-name"));
    assert_eq!(
        deliver(store, app, &repeat).await.status,
        DeliveryStatus::Applied
    );
    let page = store
        .list_members(
            app,
            MemberFilter {
                email: Some(email("avery.quinn@example.com")),
                ..Default::default()
            },
            PageRequest::first(10),
        )
        .await
        .unwrap();
    assert_eq!(page.items.len(), 1);
    assert_eq!(page.items[0].name.as_deref(), Some("Avery Quinn"));
    let (_, grants) = member_of(store, app, page.items[0].id).await;
    assert_eq!(grants.len(), 2);
}

pub async fn lifecycle_events_follow_their_item(store: &dyn Store) {
    let (app, _) = shop(store).await;
    for name in [
        fixture!("02-order-success-bump-and-upsell"),
        fixture!("08-order-refund-bump-only"),
        fixture!("03-order-subscription-payment"),
        fixture!("05-order-subscription-paused"),
    ] {
        let done = deliver(store, app, &doc(name)).await;
        assert_eq!(done.status, DeliveryStatus::Applied, "{}", done.message);
    }
    let (_, grants) = only_member(store, app).await;
    let got = statuses(&grants);
    assert_eq!(got["product-7"], "paused");
    assert_eq!(got["bump-7"], "revoked");
    assert_eq!(got["upsell-3"], "active");
    deliver(store, app, &doc(fixture!("06-order-subscription-resumed"))).await;
    deliver(
        store,
        app,
        &doc(fixture!("04-order-subscription-cancelled")),
    )
    .await;
    let (member, grants) = only_member(store, app).await;
    let got = statuses(&grants);
    assert_eq!(got["product-7"], "revoked");
    assert_eq!(got["upsell-3"], "active");
    assert_eq!(member.access_levels.len(), 1);
}

pub async fn activity_is_listed_newest_first_and_filtered(store: &dyn Store) {
    let (app, _) = shop(store).await;
    let a = deliver(
        store,
        app,
        &doc(fixture!("01-order-success-single-product")),
    )
    .await;
    let b = deliver(store, app, &doc(fixture!("13-cart-abandoned"))).await;
    let c = deliver(store, app, &doc(fixture!("07-order-refund-full"))).await;
    assert_eq!(b.status, DeliveryStatus::Ignored);
    let all = store
        .list_activity(app, ActivityFilter::default(), PageRequest::first(2))
        .await
        .unwrap();
    assert_eq!(
        all.items.iter().map(|d| d.id).collect::<Vec<_>>(),
        [c.id, b.id]
    );
    assert!(all.items.iter().all(|d| d.payload.is_none()));
    let rest = store
        .list_activity(
            app,
            ActivityFilter::default(),
            PageRequest::first(2).after(all.next.unwrap()),
        )
        .await
        .unwrap();
    assert_eq!(rest.items.iter().map(|d| d.id).collect::<Vec<_>>(), [a.id]);
    assert_eq!(rest.next, None);

    let by = |filter: ActivityFilter| async move {
        store
            .list_activity(app, filter, PageRequest::first(50))
            .await
            .unwrap()
            .items
            .into_iter()
            .map(|d| d.id)
            .collect::<Vec<_>>()
    };
    assert_eq!(
        by(ActivityFilter {
            status: Some(DeliveryStatus::Ignored),
            ..Default::default()
        })
        .await,
        [b.id]
    );
    assert_eq!(
        by(ActivityFilter {
            event: Some("order.refund".into()),
            ..Default::default()
        })
        .await,
        [c.id]
    );
    assert_eq!(
        by(ActivityFilter {
            product: Some(product("product-12")),
            ..Default::default()
        })
        .await,
        [c.id, a.id]
    );
    assert_eq!(
        by(ActivityFilter {
            email: Some(email("avery.quinn@example.com")),
            ..Default::default()
        })
        .await,
        [c.id, a.id]
    );
    assert!(
        by(ActivityFilter {
            product: Some(product("bump-7")),
            ..Default::default()
        })
        .await
        .is_empty()
    );
}

pub async fn unmapped_products_are_reported_until_mapped(store: &dyn Store) {
    let a = app(store, "a").await;
    let purchase = doc(fixture!("02-order-success-bump-and-upsell"));
    let done = deliver(store, a.id, &purchase).await;
    assert_eq!(done.status, DeliveryStatus::Unmapped);
    assert!(
        store
            .list_members(a.id, MemberFilter::default(), PageRequest::first(10))
            .await
            .unwrap()
            .items
            .is_empty()
    );
    let unmapped = store.unmapped_products(a.id).await.unwrap();
    let mut keys: Vec<String> = unmapped.iter().map(|u| u.product.to_string()).collect();
    keys.sort();
    assert_eq!(keys, ["bump-7", "product-7", "upsell-3"]);
    assert!(unmapped.iter().all(|u| u.deliveries == 1));

    let gold = level(store, a.id, "Gold").await;
    store
        .create_mapping(mapping(a.id, "bump-7", gold.id))
        .await
        .unwrap();
    let unmapped = store.unmapped_products(a.id).await.unwrap();
    assert_eq!(unmapped.len(), 2);
    assert!(unmapped.iter().all(|u| u.product != product("bump-7")));
}

pub async fn live_grants_keep_their_level_alive(store: &dyn Store) {
    let (app, levels) = shop(store).await;
    deliver(
        store,
        app,
        &doc(fixture!("01-order-success-single-product")),
    )
    .await;
    let level = levels["product-12"];
    let m = all_mappings(store, app)
        .await
        .into_iter()
        .find(|m| m.access_level_id == level)
        .unwrap();
    store.delete_mapping(app, m.id).await.unwrap();
    assert!(matches!(
        store.delete_access_level(app, level).await,
        Err(StoreError::AccessLevelInUse)
    ));
    // Revoked grants do not count.
    deliver(store, app, &doc(fixture!("07-order-refund-full"))).await;
    store.delete_access_level(app, level).await.unwrap();
    let (_, grants) = only_member(store, app).await;
    assert!(grants.is_empty());
}

pub async fn period_end_revocations_happen_when_due(store: &dyn Store) {
    let (app, _) = shop(store).await;
    deliver(
        store,
        app,
        &doc(fixture!("02-order-success-bump-and-upsell")),
    )
    .await;
    let mut cancel = doc(fixture!("04-order-subscription-cancelled"));
    cancel["subscription"]["billing_period_end"] = (NOW + 3600).to_string().into();
    let done = deliver_with(store, app, &cancel, CancellationPolicy::PeriodEnd).await;
    assert_eq!(done.status, DeliveryStatus::Applied);
    assert_eq!(
        statuses(&only_member(store, app).await.1)["product-7"],
        "active"
    );
    assert_eq!(store.revoke_due_items(at(NOW)).await.unwrap(), 0);
    assert_eq!(store.revoke_due_items(at(NOW + 3600)).await.unwrap(), 1);
    assert_eq!(
        statuses(&only_member(store, app).await.1)["product-7"],
        "revoked"
    );
    assert_eq!(store.revoke_due_items(at(NOW + 7200)).await.unwrap(), 0);
}

pub async fn old_activity_is_pruned(store: &dyn Store) {
    let (app, _) = shop(store).await;
    let purchase = doc(fixture!("01-order-success-single-product"));
    deliver(store, app, &purchase).await;
    let cutoff = chrono::Utc::now() + chrono::Duration::seconds(1);
    assert_eq!(
        store
            .prune_deliveries(cutoff - chrono::Duration::days(1))
            .await
            .unwrap(),
        0
    );
    assert_eq!(store.prune_deliveries(cutoff).await.unwrap(), 1);
    let left = store
        .list_activity(app, ActivityFilter::default(), PageRequest::first(10))
        .await
        .unwrap();
    assert!(left.items.is_empty());
    // Members and grants stay; only the log goes.
    assert_eq!(only_member(store, app).await.1.len(), 1);
}

pub async fn deliveries_are_scoped_to_their_app(store: &dyn Store) {
    let (a, _) = shop(store).await;
    let (b, _) = shop(store).await;
    let purchase = doc(fixture!("01-order-success-single-product"));
    let in_a = deliver(store, a, &purchase).await;
    // The same delivery to another app is that app's own, not a duplicate.
    assert_eq!(
        deliver(store, b, &purchase).await.status,
        DeliveryStatus::Applied
    );
    assert!(matches!(
        store.get_activity(b, in_a.id).await,
        Err(StoreError::NotFound)
    ));
    let (member_a, _) = only_member(store, a).await;
    assert!(matches!(
        store.get_member(b, member_a.id).await,
        Err(StoreError::NotFound)
    ));
    assert!(matches!(
        store.member_activity(b, member_a.id).await,
        Err(StoreError::NotFound)
    ));
}

// --- manual grants and sign-in ------------------------------------------------------------

async fn avery(
    store: &dyn Store,
) -> (
    AppId,
    larder_access::MemberId,
    std::collections::HashMap<&'static str, AccessLevelId>,
) {
    let (app, levels) = shop(store).await;
    deliver(
        store,
        app,
        &doc(fixture!("01-order-success-single-product")),
    )
    .await;
    let (member, _) = only_member(store, app).await;
    (app, member.id, levels)
}

pub async fn manual_grants_are_added_and_revoked(store: &dyn Store) {
    let (app, member, levels) = avery(store).await;
    let extra = level(store, app, "Extra").await;
    let grant = store.grant_manually(app, member, extra.id).await.unwrap();
    assert_eq!(grant.source, GrantSource::Manual);
    assert_eq!(grant.status, ItemStatus::Active);
    assert_eq!(
        (grant.order_id.as_deref(), grant.product.as_ref()),
        (None, None)
    );
    let (m, grants) = member_of(store, app, member).await;
    assert!(m.access_levels.iter().any(|l| l.id == extra.id));
    assert_eq!(grants.len(), 2);

    // A level in use by a manual grant cannot be deleted.
    assert!(matches!(
        store.delete_access_level(app, extra.id).await,
        Err(StoreError::AccessLevelInUse)
    ));
    store
        .revoke_manual_grant(app, member, grant.id)
        .await
        .unwrap();
    let (m, _) = member_of(store, app, member).await;
    assert!(!m.access_levels.iter().any(|l| l.id == extra.id));

    let purchased = member_of(store, app, member)
        .await
        .1
        .into_iter()
        .find(|g| g.source == GrantSource::Thrivecart)
        .unwrap();
    assert!(matches!(
        store.revoke_manual_grant(app, member, purchased.id).await,
        Err(StoreError::GrantManagedByThrivecart)
    ));
    assert_eq!(levels.len(), 4);
    let other = app_with_member(store).await;
    assert!(matches!(
        store.grant_manually(other.0, member, extra.id).await,
        Err(StoreError::NotFound)
    ));
    assert!(matches!(
        store.grant_manually(other.0, other.1, extra.id).await,
        Err(StoreError::UnknownAccessLevel)
    ));
    assert!(matches!(
        store.revoke_manual_grant(other.0, member, grant.id).await,
        Err(StoreError::NotFound)
    ));
}

async fn app_with_member(store: &dyn Store) -> (AppId, larder_access::MemberId) {
    let (app, member, _) = avery(store).await;
    (app, member)
}

fn link(
    app: AppId,
    member: larder_access::MemberId,
    purpose: LinkPurpose,
    hash: &str,
    expires: i64,
) -> NewLink<'_> {
    NewLink {
        app_id: app,
        member_id: member,
        purpose,
        token_hash: hash,
        expires_at: at(expires),
        message_id: None,
    }
}

/// The password hash [`with_password`] sets.
const PHC: &str = "phc-of-the-members-password";

/// Sets the member's password (to [`PHC`]) through a link, as a member would.
async fn with_password(store: &dyn Store, app: AppId, member: larder_access::MemberId) {
    let hash = format!("set-{member}");
    store
        .create_link(link(
            app,
            member,
            LinkPurpose::SetPassword,
            &hash,
            NOW + 3600,
        ))
        .await
        .unwrap();
    let set = store
        .redeem_password_link(app, LinkPurpose::SetPassword, &hash, PHC, at(NOW))
        .await
        .unwrap();
    assert_eq!(set, Some(member));
}

/// Starts a session for a member whose password is [`PHC`].
async fn start(
    store: &dyn Store,
    app: AppId,
    member: larder_access::MemberId,
    token_hash: &str,
    expires_at: chrono::DateTime<chrono::Utc>,
) {
    let started = store
        .create_session(
            app,
            member,
            PHC,
            NewSession {
                token_hash,
                expires_at,
            },
        )
        .await
        .unwrap();
    assert!(started, "no session {token_hash}");
}

pub async fn links_are_single_use_for_their_purpose_and_expire(store: &dyn Store) {
    let (app, member, _) = avery(store).await;
    let week = 7 * 24 * 3600;
    store
        .create_link(link(
            app,
            member,
            LinkPurpose::SetPassword,
            "hash-a",
            NOW + week,
        ))
        .await
        .unwrap();
    store
        .create_link(link(
            app,
            member,
            LinkPurpose::SetPassword,
            "hash-old",
            NOW - 1,
        ))
        .await
        .unwrap();
    let find = |purpose, hash: &'static str| async move {
        store
            .find_link(app, purpose, hash, at(NOW))
            .await
            .unwrap()
            .map(|m| m.id)
    };
    assert_eq!(find(LinkPurpose::SetPassword, "hash-a").await, Some(member));
    assert_eq!(find(LinkPurpose::SetPassword, "hash-old").await, None);
    assert_eq!(find(LinkPurpose::SetPassword, "nope").await, None);
    // A link is only good for what it was made for.
    assert_eq!(find(LinkPurpose::PasswordReset, "hash-a").await, None);
    assert_eq!(find(LinkPurpose::MagicLink, "hash-a").await, None);
    let other = app_with_member(store).await;
    assert!(
        store
            .find_link(other.0, LinkPurpose::SetPassword, "hash-a", at(NOW))
            .await
            .unwrap()
            .is_none()
    );
    // Nor for another app's member.
    let refused = store
        .create_link(link(
            other.0,
            member,
            LinkPurpose::SetPassword,
            "hash-x",
            NOW + week,
        ))
        .await;
    assert!(matches!(refused, Err(StoreError::NotFound)), "{refused:?}");

    assert_eq!(
        store
            .member_credentials(app, &email("avery.quinn@example.com"))
            .await
            .unwrap(),
        Some(MemberCredentials {
            member_id: member,
            password_hash: None
        })
    );
    let redeem = |purpose, hash: &'static str, phc: &'static str| async move {
        store
            .redeem_password_link(app, purpose, hash, phc, at(NOW))
            .await
            .unwrap()
    };
    assert_eq!(
        redeem(LinkPurpose::PasswordReset, "hash-a", "wrong purpose").await,
        None
    );
    assert_eq!(
        redeem(LinkPurpose::SetPassword, "hash-a", "phc").await,
        Some(member)
    );
    assert_eq!(
        redeem(LinkPurpose::SetPassword, "hash-a", "again").await,
        None
    );
    assert_eq!(
        redeem(LinkPurpose::SetPassword, "hash-old", "late").await,
        None
    );
    assert_eq!(
        store
            .member_credentials(app, &email("avery.quinn@example.com"))
            .await
            .unwrap(),
        Some(MemberCredentials {
            member_id: member,
            password_hash: Some("phc".into())
        })
    );
    assert_eq!(
        store
            .member_credentials(app, &email("nobody@example.com"))
            .await
            .unwrap(),
        None
    );
}

pub async fn setting_a_password_ends_every_session_and_voids_other_links(store: &dyn Store) {
    let (app, member, _) = avery(store).await;
    let (other_app, other_member) = app_with_member(store).await;
    let hour = 3600;
    with_password(store, app, member).await;
    with_password(store, other_app, other_member).await;
    for (a, m, hash) in [
        (app, member, "s1"),
        (app, member, "s2"),
        (other_app, other_member, "s3"),
    ] {
        start(store, a, m, hash, at(NOW + hour)).await;
    }
    for (purpose, hash) in [
        (LinkPurpose::PasswordReset, "reset"),
        (LinkPurpose::PasswordReset, "reset-2"),
        (LinkPurpose::MagicLink, "magic"),
        (LinkPurpose::SetPassword, "invite"),
    ] {
        store
            .create_link(link(app, member, purpose, hash, NOW + hour))
            .await
            .unwrap();
    }
    store
        .create_link(link(
            other_app,
            other_member,
            LinkPurpose::MagicLink,
            "theirs",
            NOW + hour,
        ))
        .await
        .unwrap();
    assert_eq!(
        store
            .redeem_password_link(app, LinkPurpose::PasswordReset, "reset", "new-phc", at(NOW))
            .await
            .unwrap(),
        Some(member)
    );
    for hash in ["s1", "s2"] {
        assert_eq!(
            store.find_session(hash, at(NOW)).await.unwrap(),
            None,
            "{hash}"
        );
    }
    for (purpose, hash) in [
        (LinkPurpose::PasswordReset, "reset-2"),
        (LinkPurpose::MagicLink, "magic"),
        (LinkPurpose::SetPassword, "invite"),
    ] {
        assert!(
            store
                .find_link(app, purpose, hash, at(NOW))
                .await
                .unwrap()
                .is_none(),
            "{hash} still works"
        );
    }
    // Another member's sessions and links are theirs still.
    assert!(store.find_session("s3", at(NOW)).await.unwrap().is_some());
    assert!(
        store
            .find_link(other_app, LinkPurpose::MagicLink, "theirs", at(NOW))
            .await
            .unwrap()
            .is_some()
    );
}

pub async fn a_magic_link_starts_one_session(store: &dyn Store) {
    let (app, member, _) = avery(store).await;
    let hour = 3600;
    store
        .create_link(link(
            app,
            member,
            LinkPurpose::MagicLink,
            "magic",
            NOW + 900,
        ))
        .await
        .unwrap();
    store
        .create_link(link(
            app,
            member,
            LinkPurpose::SetPassword,
            "invite",
            NOW + hour,
        ))
        .await
        .unwrap();
    let session = |hash| NewSession {
        token_hash: hash,
        expires_at: at(NOW + hour),
    };
    // A set-password link is no magic link.
    assert_eq!(
        store
            .redeem_magic_link(app, "invite", session("s0"), at(NOW))
            .await
            .unwrap(),
        None
    );
    assert_eq!(store.find_session("s0", at(NOW)).await.unwrap(), None);
    // Two tabs redeem the same link at once: one session, one refusal.
    let (a, b) = futures::join!(
        store.redeem_magic_link(app, "magic", session("s1"), at(NOW)),
        store.redeem_magic_link(app, "magic", session("s2"), at(NOW)),
    );
    let (a, b) = (a.unwrap(), b.unwrap());
    assert_eq!(
        [a, b].iter().filter(|r| **r == Some(member)).count(),
        1,
        "{a:?} {b:?}"
    );
    let sessions = [
        store.find_session("s1", at(NOW)).await.unwrap(),
        store.find_session("s2", at(NOW)).await.unwrap(),
    ];
    assert_eq!(sessions.iter().flatten().count(), 1, "{sessions:?}");
    assert_eq!(
        sessions.iter().flatten().next(),
        Some(&SessionOwner {
            app_id: app,
            member_id: member
        })
    );
    // Expired ones sign nobody in.
    store
        .create_link(link(app, member, LinkPurpose::MagicLink, "stale", NOW - 1))
        .await
        .unwrap();
    assert_eq!(
        store
            .redeem_magic_link(app, "stale", session("s3"), at(NOW))
            .await
            .unwrap(),
        None
    );
    // Nor does one from another app.
    let (other, _) = app_with_member(store).await;
    store
        .create_link(link(
            app,
            member,
            LinkPurpose::MagicLink,
            "magic-2",
            NOW + 900,
        ))
        .await
        .unwrap();
    assert_eq!(
        store
            .redeem_magic_link(other, "magic-2", session("s4"), at(NOW))
            .await
            .unwrap(),
        None
    );
}

pub async fn sessions_expire_and_end(store: &dyn Store) {
    let (app, member, _) = avery(store).await;
    let now = chrono::Utc::now();
    with_password(store, app, member).await;
    start(store, app, member, "s1", now + chrono::Duration::hours(1)).await;
    start(store, app, member, "s2", now - chrono::Duration::seconds(1)).await;
    assert_eq!(
        store.find_session("s1", now).await.unwrap(),
        Some(SessionOwner {
            app_id: app,
            member_id: member
        })
    );
    assert_eq!(store.find_session("s2", now).await.unwrap(), None);
    store.delete_session("s1").await.unwrap();
    assert_eq!(store.find_session("s1", now).await.unwrap(), None);

    // Expired sessions and used or expired links are pruned; live ones stay.
    start(store, app, member, "s3", now + chrono::Duration::hours(1)).await;
    let day = now + chrono::Duration::days(1);
    let new_link = |purpose, hash| NewLink {
        app_id: app,
        member_id: member,
        purpose,
        token_hash: hash,
        expires_at: day,
        message_id: None,
    };
    store
        .create_link(new_link(LinkPurpose::MagicLink, "i-used"))
        .await
        .unwrap();
    assert!(
        store
            .redeem_magic_link(
                app,
                "i-used",
                NewSession {
                    token_hash: "s4",
                    expires_at: day
                },
                now
            )
            .await
            .unwrap()
            .is_some()
    );
    store
        .create_link(new_link(LinkPurpose::SetPassword, "i-live"))
        .await
        .unwrap();
    // s2, the used link and the one with_password used.
    assert_eq!(store.prune_sign_ins(now).await.unwrap(), 3);
    for hash in ["s3", "s4"] {
        assert_eq!(
            store.find_session(hash, now).await.unwrap(),
            Some(SessionOwner {
                app_id: app,
                member_id: member
            })
        );
    }
    assert!(
        store
            .find_link(app, LinkPurpose::SetPassword, "i-live", now)
            .await
            .unwrap()
            .is_some()
    );
}

pub async fn late_older_payments_do_not_overrule_newer_ones(store: &dyn Store) {
    let (app, _) = shop(store).await;
    deliver(
        store,
        app,
        &doc(fixture!("12-order-success-repeat-customer-blank-name")),
    )
    .await;
    deliver(store, app, &doc(fixture!("09-order-rebill-failed"))).await;
    let past_due = |grants: Vec<Grant>| {
        grants
            .into_iter()
            .find(|g| g.product == Some(product("product-7")))
            .map(|g| g.past_due)
    };
    assert_eq!(past_due(only_member(store, app).await.1), Some(true));
    let mut renewal = doc(fixture!("03-order-subscription-payment"));
    renewal["order_id"] = "4101002".into();
    renewal["date_unix"] = "1776000000".into();
    let late = deliver(store, app, &renewal).await;
    assert_eq!(late.status, DeliveryStatus::Ignored, "{}", late.message);
    assert_eq!(past_due(only_member(store, app).await.1), Some(true));
    renewal["date_unix"] = "1777000000".into();
    let newer = deliver(store, app, &renewal).await;
    assert_eq!(newer.status, DeliveryStatus::Applied, "{}", newer.message);
    assert_eq!(past_due(only_member(store, app).await.1), Some(false));
}

// --- app lifecycle, overrides, erasure and export --------------------------------------

pub async fn apps_are_renamed_and_deleted_with_everything_they_own(store: &dyn Store) {
    let (app, levels) = shop(store).await;
    let (other, _) = shop(store).await;
    store
        .enable_integration(app, enable("doomed-token", Some("hash")))
        .await
        .unwrap();
    store
        .create_api_key(NewApiKey {
            id: ApiKeyId::new(),
            app_id: app,
            name: name("k"),
            key_hash: "doomed-key".into(),
        })
        .await
        .unwrap();
    deliver(
        store,
        app,
        &doc(fixture!("02-order-success-bump-and-upsell")),
    )
    .await;
    deliver(
        store,
        other,
        &doc(fixture!("02-order-success-bump-and-upsell")),
    )
    .await;
    let (member, _) = only_member(store, app).await;
    with_password(store, app, member.id).await;
    start(
        store,
        app,
        member.id,
        "doomed-session",
        chrono::Utc::now() + chrono::Duration::hours(1),
    )
    .await;

    let renamed = store.rename_app(app, name("Renamed")).await.unwrap();
    assert_eq!(renamed.name, "Renamed");
    assert_eq!(store.get_app(app).await.unwrap().name, "Renamed");
    assert!(matches!(
        store.rename_app(AppId::new(), name("x")).await,
        Err(StoreError::NotFound)
    ));

    let gone = store.delete_app(app).await.unwrap();
    assert_eq!(gone.webhook_token.as_deref(), Some("doomed-token"));
    assert_eq!(gone.api_key_hashes, ["doomed-key".to_owned()]);
    assert!(matches!(
        store.get_app(app).await,
        Err(StoreError::NotFound)
    ));
    assert_eq!(
        store
            .find_integration_by_token("doomed-token")
            .await
            .unwrap(),
        None
    );
    assert_eq!(
        store.find_api_key_by_hash("doomed-key").await.unwrap(),
        None
    );
    assert!(matches!(
        store.get_access_level(app, levels["product-7"]).await,
        Err(StoreError::NotFound)
    ));
    assert!(matches!(
        store.get_member(app, member.id).await,
        Err(StoreError::NotFound)
    ));
    assert_eq!(
        store
            .find_session("doomed-session", chrono::Utc::now())
            .await
            .unwrap(),
        None
    );
    assert!(
        store
            .list_activity(app, ActivityFilter::default(), PageRequest::first(10))
            .await
            .unwrap()
            .items
            .is_empty()
    );
    assert!(matches!(
        store.delete_app(app).await,
        Err(StoreError::NotFound)
    ));
    // The other app keeps everything.
    assert_eq!(only_member(store, other).await.1.len(), 3);
    assert_eq!(all_mappings(store, other).await.len(), 4);
}

pub async fn overrides_take_a_level_away_until_lifted(store: &dyn Store) {
    let (app, levels) = shop(store).await;
    deliver(
        store,
        app,
        &doc(fixture!("02-order-success-bump-and-upsell")),
    )
    .await;
    let (jordan, _) = only_member(store, app).await;
    let gold = levels["product-7"];
    let has = |m: &Member| m.access_levels.iter().any(|l| l.id == gold);
    assert!(has(&jordan));

    let set = NewAccessOverride {
        member_id: jordan.id,
        access_level_id: gold,
        status: OverrideStatus::Revoked,
        reason: Some("chargeback".into()),
    };
    let (o, created) = store.put_access_override(app, set.clone()).await.unwrap();
    assert!(created);
    assert_eq!(
        (o.status, o.reason.as_deref()),
        (OverrideStatus::Revoked, Some("chargeback"))
    );
    let found = store.get_member(app, jordan.id).await.unwrap();
    assert!(!has(&found.member), "{:?}", found.member.access_levels);
    assert_eq!(found.overrides, vec![o.clone()]);
    // The grant itself still says what the purchases say.
    assert_eq!(statuses(&found.grants)["product-7"], "active");
    let with_gold = MemberFilter {
        access_level_id: Some(gold),
        ..Default::default()
    };
    assert!(
        store
            .list_members(app, with_gold.clone(), PageRequest::first(10))
            .await
            .unwrap()
            .items
            .is_empty()
    );

    // Later deliveries for the order do not give the level back.
    deliver(store, app, &doc(fixture!("05-order-subscription-paused"))).await;
    deliver(store, app, &doc(fixture!("06-order-subscription-resumed"))).await;
    assert!(!has(&member_of(store, app, jordan.id).await.0));

    // Replacing changes the status and keeps the creation time.
    let (paused, created) = store
        .put_access_override(
            app,
            NewAccessOverride {
                status: OverrideStatus::Paused,
                reason: None,
                ..set.clone()
            },
        )
        .await
        .unwrap();
    assert!(!created);
    assert_eq!(
        (paused.status, paused.reason),
        (OverrideStatus::Paused, None)
    );
    assert_eq!(paused.created_at, o.created_at);
    assert_eq!(
        store
            .list_access_overrides(app, jordan.id)
            .await
            .unwrap()
            .len(),
        1
    );

    // Lifting gives back what the purchases give.
    store
        .delete_access_override(app, jordan.id, gold)
        .await
        .unwrap();
    assert!(has(&member_of(store, app, jordan.id).await.0));
    assert_eq!(
        store
            .list_members(app, with_gold, PageRequest::first(10))
            .await
            .unwrap()
            .items
            .len(),
        1
    );
    assert!(matches!(
        store.delete_access_override(app, jordan.id, gold).await,
        Err(StoreError::NotFound)
    ));

    // Another app's member or level is not there.
    let (other, other_levels) = shop(store).await;
    assert!(matches!(
        store.put_access_override(other, set.clone()).await,
        Err(StoreError::NotFound)
    ));
    assert!(matches!(
        store
            .put_access_override(
                app,
                NewAccessOverride {
                    access_level_id: other_levels["product-7"],
                    ..set.clone()
                },
            )
            .await,
        Err(StoreError::UnknownAccessLevel)
    ));
    assert!(matches!(
        store.list_access_overrides(other, jordan.id).await,
        Err(StoreError::NotFound)
    ));
    assert!(
        store
            .list_access_overrides(app, jordan.id)
            .await
            .unwrap()
            .is_empty()
    );
}

pub async fn deleting_a_member_erases_them_and_keeps_the_log(store: &dyn Store) {
    let (app, levels) = shop(store).await;
    // The same person buying from another app is that app's member, and stays so.
    let (elsewhere, _) = shop(store).await;
    let purchase = doc(fixture!("02-order-success-bump-and-upsell"));
    let theirs = deliver(store, elsewhere, &purchase).await;
    let first = deliver(store, app, &purchase).await;
    deliver(store, app, &doc(fixture!("05-order-subscription-paused"))).await;
    deliver(
        store,
        app,
        &doc(fixture!("01-order-success-single-product")),
    )
    .await;
    let jordan = member_by_email(store, app, "jordan.ellis@example.com").await;
    store
        .put_access_override(
            app,
            NewAccessOverride {
                member_id: jordan.id,
                access_level_id: levels["product-7"],
                status: OverrideStatus::Paused,
                reason: None,
            },
        )
        .await
        .unwrap();
    let later = chrono::Utc::now() + chrono::Duration::hours(1);
    with_password(store, app, jordan.id).await;
    start(store, app, jordan.id, "jordan-session", later).await;
    store
        .create_link(NewLink {
            app_id: app,
            member_id: jordan.id,
            purpose: LinkPurpose::SetPassword,
            token_hash: "jordan-invite",
            expires_at: later,
            message_id: None,
        })
        .await
        .unwrap();
    let entries_before = store
        .list_activity(app, ActivityFilter::default(), PageRequest::first(50))
        .await
        .unwrap()
        .items
        .len();

    let erased = store.delete_member(app, jordan.id).await.unwrap();
    assert_eq!(erased, 2, "the purchase and the pause named Jordan");
    assert!(matches!(
        store.get_member(app, jordan.id).await,
        Err(StoreError::NotFound)
    ));
    assert_eq!(
        store
            .find_session("jordan-session", chrono::Utc::now())
            .await
            .unwrap(),
        None
    );
    assert!(
        store
            .find_link(
                app,
                LinkPurpose::SetPassword,
                "jordan-invite",
                chrono::Utc::now()
            )
            .await
            .unwrap()
            .is_none()
    );
    // Every entry stays, none of them with Jordan's data.
    let entries = store
        .list_activity(app, ActivityFilter::default(), PageRequest::first(50))
        .await
        .unwrap()
        .items;
    assert_eq!(entries.len(), entries_before);
    for entry in &entries {
        let full = store.get_activity(app, entry.id).await.unwrap();
        let text = format!(
            "{:?} {}",
            full.customer_email,
            full.payload.unwrap_or_default()
        );
        assert!(!text.to_lowercase().contains("jordan"), "{text}");
    }
    let kept = store.get_activity(app, first.id).await.unwrap();
    assert_eq!(kept.status, DeliveryStatus::Applied);
    assert_eq!(kept.customer_email, None);
    assert_eq!(kept.payload.unwrap()["order_id"], "4100456");
    // Avery is untouched.
    let (avery, avery_grants) = only_member(store, app).await;
    assert_eq!(avery.email.as_str(), "avery.quinn@example.com");
    assert_eq!(avery_grants.len(), 1);
    // A later purchase for the same email makes a new member.
    let mut again = purchase.clone();
    again["order_id"] = "4100999".into();
    again["invoice_id"] = "000000999".into();
    assert_eq!(
        deliver(store, app, &again).await.status,
        DeliveryStatus::Applied
    );
    let renewed = store
        .list_members(
            app,
            MemberFilter {
                email: Some(email("jordan.ellis@example.com")),
                ..Default::default()
            },
            PageRequest::first(10),
        )
        .await
        .unwrap()
        .items;
    assert_eq!(renewed.len(), 1);
    assert_ne!(renewed[0].id, jordan.id);
    assert!(matches!(
        store.delete_member(app, jordan.id).await,
        Err(StoreError::NotFound)
    ));
    assert!(matches!(
        store.delete_member(elsewhere, avery.id).await,
        Err(StoreError::NotFound)
    ));
    assert_eq!(only_member_count(store, app).await, 2);
    let untouched = store.get_activity(elsewhere, theirs.id).await.unwrap();
    assert_eq!(
        untouched.customer_email.map(|e| e.to_string()).as_deref(),
        Some("jordan.ellis@example.com")
    );
    assert_eq!(untouched.payload.as_ref(), Some(&purchase));
    assert_eq!(
        only_member(store, elsewhere).await.0.email.as_str(),
        "jordan.ellis@example.com"
    );
}

async fn member_by_email(store: &dyn Store, app: AppId, address: &str) -> Member {
    let mut found = store
        .list_members(
            app,
            MemberFilter {
                email: Some(email(address)),
                ..Default::default()
            },
            PageRequest::first(10),
        )
        .await
        .unwrap()
        .items;
    assert_eq!(found.len(), 1, "{found:?}");
    found.remove(0)
}

async fn only_member_count(store: &dyn Store, app: AppId) -> usize {
    store
        .list_members(app, MemberFilter::default(), PageRequest::first(200))
        .await
        .unwrap()
        .items
        .len()
}

pub async fn member_activity_holds_their_deliveries(store: &dyn Store) {
    let (app, _) = shop(store).await;
    let purchase = deliver(
        store,
        app,
        &doc(fixture!("02-order-success-bump-and-upsell")),
    )
    .await;
    let pause = deliver(store, app, &doc(fixture!("05-order-subscription-paused"))).await;
    deliver(
        store,
        app,
        &doc(fixture!("01-order-success-single-product")),
    )
    .await;
    let jordan = member_by_email(store, app, "jordan.ellis@example.com").await;
    let entries = store.member_activity(app, jordan.id).await.unwrap();
    assert_eq!(
        entries.iter().map(|d| d.id).collect::<Vec<_>>(),
        [pause.id, purchase.id]
    );
    assert!(entries.iter().all(|d| d.payload.is_some()));
    let grants = store.get_member(app, jordan.id).await.unwrap().grants;
    let seven = grants
        .iter()
        .find(|g| g.product == Some(product("product-7")))
        .unwrap();
    let history = personal_data::grant_history(jordan.id, seven, &entries);
    assert_eq!(
        history.iter().map(|e| e.kind.as_str()).collect::<Vec<_>>(),
        ["granted", "paused"]
    );
    assert!(matches!(
        store
            .member_activity(app, larder_access::MemberId::new())
            .await,
        Err(StoreError::NotFound)
    ));
}

pub async fn erasing_a_member_leaves_other_customers_alone(store: &dyn Store) {
    let (app, _) = shop(store).await;
    // Jordan, and a member whose address is a part of Jordan's.
    let jordans = deliver(
        store,
        app,
        &doc(fixture!("02-order-success-bump-and-upsell")),
    )
    .await;
    let mut ellis = doc(fixture!("01-order-success-single-product"));
    ellis["customer"]["email"] = "ellis@example.com".into();
    ellis["order_id"] = "4200001".into();
    ellis["invoice_id"] = "000200001".into();
    deliver(store, app, &ellis).await;
    // Mika is the affiliate of River's order, and also buys something herself.
    let rivers = deliver(store, app, &doc(fixture!("10-affiliate-commission-earned"))).await;
    let mut mika = doc(fixture!("01-order-success-single-product"));
    mika["customer"]["email"] = "mika.affiliate@example.org".into();
    mika["customer"]["name"] = "Mika Santos".into();
    mika["order_id"] = "4200002".into();
    mika["invoice_id"] = "000200002".into();
    deliver(store, app, &mika).await;

    let gone = member_by_email(store, app, "ellis@example.com").await;
    store.delete_member(app, gone.id).await.unwrap();
    let kept = store.get_activity(app, jordans.id).await.unwrap();
    assert_eq!(
        kept.customer_email.map(|e| e.to_string()).as_deref(),
        Some("jordan.ellis@example.com")
    );
    assert_eq!(
        kept.payload.as_ref(),
        Some(&doc(fixture!("02-order-success-bump-and-upsell")))
    );

    let mika = member_by_email(store, app, "mika.affiliate@example.org").await;
    store.delete_member(app, mika.id).await.unwrap();
    let river = store.get_activity(app, rivers.id).await.unwrap();
    let payload = river.payload.unwrap();
    assert_eq!(payload["customer"]["email"], "river.okafor@example.org");
    assert_eq!(payload["affiliate"]["email"], personal_data::ERASED);
    assert_eq!(payload["affiliate"]["name"], "Mika Santos");
    // Jordan is still there, whole.
    assert_eq!(
        member_by_email(store, app, "jordan.ellis@example.com")
            .await
            .email
            .as_str(),
        "jordan.ellis@example.com"
    );
}

// --- the outbox -------------------------------------------------------------------------

/// The bump-and-upsell purchase, by `email`, as order `order`, in `mode`.
fn purchase_by(address: &str, order: &str, mode: &str) -> serde_json::Value {
    let mut d = doc(fixture!("02-order-success-bump-and-upsell"));
    d["customer"]["email"] = address.into();
    d["order_id"] = order.into();
    d["order"]["id"] = order.into();
    d["mode"] = mode.into();
    d.as_object_mut().unwrap().remove("mode_int");
    d
}

/// An app with one member and no message yet (its welcome is off).
async fn quiet_member(store: &dyn Store) -> (AppId, larder_access::MemberId) {
    let (app, _) = shop(store).await;
    let off = MemberSettings {
        welcome_email: WelcomeEmail::Off,
        ..MemberSettings::default()
    };
    store.put_member_settings(app, off).await.unwrap();
    deliver(
        store,
        app,
        &purchase_by("quinn@example.com", "9200001", "live"),
    )
    .await;
    let (member, _) = only_member(store, app).await;
    (app, member.id)
}

async fn messages(store: &dyn Store, app: AppId, filter: MessageFilter) -> Vec<Message> {
    store
        .list_messages(app, filter, PageRequest::first(200))
        .await
        .unwrap()
        .items
}

fn kinds(messages: &[Message]) -> Vec<(String, String)> {
    let mut kinds: Vec<(String, String)> = messages
        .iter()
        .map(|m| (m.to.as_str().to_owned(), m.kind.as_str().to_owned()))
        .collect();
    kinds.sort();
    kinds
}

pub async fn a_first_purchase_queues_one_welcome(store: &dyn Store) {
    let (app, _) = shop(store).await;
    let first = purchase_by("jordan@example.com", "9100001", "live");
    assert_eq!(
        deliver(store, app, &first).await.status,
        DeliveryStatus::Applied
    );
    // A retry, a second purchase and a replay: still one welcome.
    assert_eq!(
        deliver(store, app, &first).await.status,
        DeliveryStatus::Duplicate
    );
    let again = purchase_by("jordan@example.com", "9100002", "live");
    assert_eq!(
        deliver(store, app, &again).await.status,
        DeliveryStatus::Applied
    );
    let welcome = messages(store, app, MessageFilter::default()).await;
    assert_eq!(
        kinds(&welcome),
        [("jordan@example.com".into(), "welcome".into())]
    );
    assert_eq!(welcome[0].status, MessageStatus::Queued);
    assert_eq!(welcome[0].attempts, 0);
    let (member, _) = only_member(store, app).await;
    assert_eq!(welcome[0].member_id, member.id);

    // A test purchase welcomes nobody, unless the app asks.
    let test = purchase_by("tess@example.com", "9100003", "test");
    assert_eq!(
        deliver(store, app, &test).await.status,
        DeliveryStatus::Applied
    );
    assert_eq!(
        messages(store, app, MessageFilter::default()).await.len(),
        1
    );
    let asked = MemberSettings {
        welcome_for_test_purchases: true,
        ..MemberSettings::default()
    };
    store.put_member_settings(app, asked).await.unwrap();
    let test = purchase_by("tom@example.com", "9100004", "test");
    deliver(store, app, &test).await;
    let all = messages(store, app, MessageFilter::default()).await;
    assert_eq!(
        kinds(&all),
        [
            ("jordan@example.com".into(), "welcome".into()),
            ("tom@example.com".into(), "welcome".into()),
        ]
    );

    // Welcomes off: none.
    let off = MemberSettings {
        welcome_email: WelcomeEmail::Off,
        ..MemberSettings::default()
    };
    store.put_member_settings(app, off).await.unwrap();
    deliver(
        store,
        app,
        &purchase_by("otto@example.com", "9100005", "live"),
    )
    .await;
    assert_eq!(
        messages(store, app, MessageFilter::default()).await.len(),
        2
    );

    // A purchase of nothing mapped gives no access, so no welcome either.
    store
        .put_member_settings(app, MemberSettings::default())
        .await
        .unwrap();
    let mut unmapped = purchase_by("uma@example.com", "9100006", "live");
    unmapped["purchase_map"] = serde_json::json!(["product-999"]);
    unmapped["accessible_purchase_map"] = serde_json::json!(["product-999"]);
    unmapped["base_product"] = "999".into();
    unmapped["order"]["charges"] = serde_json::json!([]);
    deliver(store, app, &unmapped).await;
    assert_eq!(
        messages(store, app, MessageFilter::default()).await.len(),
        2
    );
}

pub async fn messages_are_claimed_once_retried_and_finished(store: &dyn Store) {
    let (app, member) = quiet_member(store).await;
    let lease = std::time::Duration::from_secs(60);
    let queued = store
        .queue_message(app, member, MessageKind::Invitation, at(NOW))
        .await
        .unwrap();
    assert_eq!(queued.status, MessageStatus::Queued);
    let claimed = store.claim_messages(at(NOW), lease, 10).await.unwrap();
    assert_eq!(claimed.len(), 1);
    assert_eq!(claimed[0].message.id, queued.id);
    // Claimed: nobody else gets it while the lease lasts.
    assert!(
        store
            .claim_messages(at(NOW + 1), lease, 10)
            .await
            .unwrap()
            .is_empty()
    );

    let retry = Attempt::Retry {
        error: "421 try later".into(),
        retry_at: at(NOW + 10),
    };
    assert!(
        store
            .finish_message(&claimed[0], retry.clone(), at(NOW + 1))
            .await
            .unwrap()
    );
    // A finished claim cannot finish again.
    assert!(
        !store
            .finish_message(&claimed[0], Attempt::Sent, at(NOW + 2))
            .await
            .unwrap()
    );
    assert!(
        store
            .claim_messages(at(NOW + 5), lease, 10)
            .await
            .unwrap()
            .is_empty()
    );
    let second = store.claim_messages(at(NOW + 10), lease, 10).await.unwrap();
    assert_eq!(second.len(), 1);
    assert_eq!(second[0].message.attempts, 1);
    assert_eq!(
        second[0].message.last_error.as_deref(),
        Some("421 try later")
    );

    // A lease that runs out lets another claim take the message; the first claim is then
    // powerless.
    let third = store.claim_messages(at(NOW + 71), lease, 10).await.unwrap();
    assert_eq!(third.len(), 1);
    assert_ne!(third[0].claim, second[0].claim);
    assert!(
        !store
            .finish_message(&second[0], Attempt::Sent, at(NOW + 72))
            .await
            .unwrap()
    );
    let give_up = Attempt::GiveUp {
        error: "550 no such user".into(),
    };
    assert!(
        store
            .finish_message(&third[0], give_up, at(NOW + 72))
            .await
            .unwrap()
    );
    let list = messages(store, app, MessageFilter::default()).await;
    assert_eq!(list[0].status, MessageStatus::Failed);
    assert_eq!(list[0].attempts, 2);
    assert_eq!(list[0].last_error.as_deref(), Some("550 no such user"));
    assert!(
        store
            .claim_messages(at(NOW + 9999), lease, 10)
            .await
            .unwrap()
            .is_empty()
    );

    // Sent: done, with the time it went.
    store
        .queue_message(app, member, MessageKind::PasswordReset, at(NOW + 100))
        .await
        .unwrap();
    let claimed = store
        .claim_messages(at(NOW + 100), lease, 10)
        .await
        .unwrap();
    assert!(
        store
            .finish_message(&claimed[0], Attempt::Sent, at(NOW + 101))
            .await
            .unwrap()
    );
    let sent = &messages(store, app, MessageFilter::default()).await[0];
    assert_eq!(sent.status, MessageStatus::Sent);
    assert_eq!(sent.sent_at, Some(at(NOW + 101)));
    assert_eq!(sent.attempts, 1);
    assert!(
        store
            .claim_messages(at(NOW + 9999), lease, 10)
            .await
            .unwrap()
            .is_empty()
    );
}

pub async fn concurrent_claims_never_share_a_message(store: &dyn Store) {
    let (app, member) = quiet_member(store).await;
    for _ in 0..24 {
        store
            .queue_message(app, member, MessageKind::MagicLink, at(NOW))
            .await
            .unwrap();
    }
    let lease = std::time::Duration::from_secs(60);
    let claims =
        futures::future::join_all((0..6).map(|_| store.claim_messages(at(NOW + 1), lease, 5)))
            .await;
    let mut ids: Vec<_> = claims
        .into_iter()
        .flat_map(|c| c.unwrap())
        .map(|c| c.message.id)
        .collect();
    let claimed = ids.len();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), claimed, "a message was claimed twice");
    assert_eq!(claimed, 24);
}

pub async fn messages_are_listed_filtered_and_scoped(store: &dyn Store) {
    let (app, member) = quiet_member(store).await;
    assert_eq!(store.oldest_queued_message().await.unwrap(), None);
    for (kind, t) in [
        (MessageKind::Invitation, NOW),
        (MessageKind::MagicLink, NOW + 1),
        (MessageKind::MagicLink, NOW + 2),
    ] {
        store.queue_message(app, member, kind, at(t)).await.unwrap();
    }
    assert_eq!(store.oldest_queued_message().await.unwrap(), Some(at(NOW)));
    let all = messages(store, app, MessageFilter::default()).await;
    assert_eq!(all.len(), 3);
    assert!(all.windows(2).all(|w| w[0].id > w[1].id), "newest first");
    let magic = MessageFilter {
        kind: Some(MessageKind::MagicLink),
        ..MessageFilter::default()
    };
    assert_eq!(messages(store, app, magic).await.len(), 2);
    let sent = MessageFilter {
        status: Some(MessageStatus::Sent),
        ..MessageFilter::default()
    };
    assert!(messages(store, app, sent).await.is_empty());
    let theirs = MessageFilter {
        member: Some(member),
        ..MessageFilter::default()
    };
    assert_eq!(messages(store, app, theirs).await.len(), 3);
    // Pages cover every message once.
    let first = store
        .list_messages(app, MessageFilter::default(), PageRequest::first(2))
        .await
        .unwrap();
    let next = first.next.expect("a second page");
    let rest = store
        .list_messages(
            app,
            MessageFilter::default(),
            PageRequest::first(2).after(next),
        )
        .await
        .unwrap();
    assert_eq!(first.items.len() + rest.items.len(), 3);
    assert!(rest.next.is_none());

    // Another app sees none of them and cannot queue for this app's member.
    let other = self::app(store, "other").await;
    assert!(
        messages(store, other.id, MessageFilter::default())
            .await
            .is_empty()
    );
    let refused = store
        .queue_message(other.id, member, MessageKind::Invitation, at(NOW))
        .await;
    assert!(matches!(refused, Err(StoreError::NotFound)), "{refused:?}");

    // Erasing the member erases their messages.
    store.delete_member(app, member).await.unwrap();
    assert!(
        messages(store, app, MessageFilter::default())
            .await
            .is_empty()
    );
    assert_eq!(store.oldest_queued_message().await.unwrap(), None);
}

pub async fn member_settings_round_trip(store: &dyn Store) {
    let a = app(store, "settings").await;
    assert_eq!(
        store.member_settings(a.id).await.unwrap(),
        MemberSettings::default()
    );
    let set = MemberSettings {
        member_url: Some("https://members.example.com".into()),
        sender_name: Some("Pantry Club".into()),
        reply_to: Some(email("help@example.com")),
        welcome_email: WelcomeEmail::MagicLink,
        welcome_for_test_purchases: true,
        subject_template: Some("Welcome to {{app_name}}".into()),
        body_template: Some("Hello {{member_name}}".into()),
        cors_origins: vec!["https://members.example.com".into()],
    };
    assert_eq!(
        store.put_member_settings(a.id, set.clone()).await.unwrap(),
        set
    );
    assert_eq!(store.member_settings(a.id).await.unwrap(), set);
    let reset = MemberSettings::default();
    store
        .put_member_settings(a.id, reset.clone())
        .await
        .unwrap();
    assert_eq!(store.member_settings(a.id).await.unwrap(), reset);
    let missing = AppId::new();
    assert!(matches!(
        store.member_settings(missing).await,
        Err(StoreError::NotFound)
    ));
    assert!(matches!(
        store.put_member_settings(missing, reset).await,
        Err(StoreError::NotFound)
    ));
}

pub async fn an_invitation_and_its_email_are_stored_together(store: &dyn Store) {
    let (app, member) = quiet_member(store).await;
    let message = store
        .invite_member(app, member, "invite", at(NOW + 3600), at(NOW))
        .await
        .unwrap();
    assert_eq!(message.kind, MessageKind::Invitation);
    assert_eq!(message.member_id, member);
    assert_eq!(message.to.as_str(), "quinn@example.com");
    assert_eq!(
        messages(store, app, MessageFilter::default()).await,
        [message]
    );
    assert!(
        store
            .find_link(app, LinkPurpose::SetPassword, "invite", at(NOW))
            .await
            .unwrap()
            .is_some()
    );
    // Another app's member: neither the link nor the message.
    let other = self::app(store, "other").await;
    let refused = store
        .invite_member(other.id, member, "invite-2", at(NOW + 3600), at(NOW))
        .await;
    assert!(matches!(refused, Err(StoreError::NotFound)), "{refused:?}");
    assert!(
        messages(store, other.id, MessageFilter::default())
            .await
            .is_empty()
    );
    assert!(
        store
            .find_link(other.id, LinkPurpose::SetPassword, "invite-2", at(NOW))
            .await
            .unwrap()
            .is_none()
    );
    assert_eq!(
        messages(store, app, MessageFilter::default()).await.len(),
        1
    );
}

pub async fn messages_are_queued_by_email_only_to_members(store: &dyn Store) {
    let (app, member) = quiet_member(store).await;
    let queued = store
        .queue_message_by_email(
            app,
            &email("quinn@example.com"),
            MessageKind::MagicLink,
            at(NOW),
        )
        .await
        .unwrap()
        .expect("a member with that address");
    assert_eq!(queued.member_id, member);
    assert_eq!(queued.kind, MessageKind::MagicLink);
    assert_eq!(queued.status, MessageStatus::Queued);
    let nobody = store
        .queue_message_by_email(
            app,
            &email("nobody@example.com"),
            MessageKind::PasswordReset,
            at(NOW),
        )
        .await
        .unwrap();
    assert_eq!(nobody, None);
    // The same address in another app is another app's business.
    let other = self::app(store, "other").await;
    let theirs = store
        .queue_message_by_email(
            other.id,
            &email("quinn@example.com"),
            MessageKind::MagicLink,
            at(NOW),
        )
        .await
        .unwrap();
    assert_eq!(theirs, None);
    assert_eq!(
        messages(store, app, MessageFilter::default()).await,
        [queued]
    );
    assert!(
        messages(store, other.id, MessageFilter::default())
            .await
            .is_empty()
    );
}

pub async fn origins_are_allowed_by_the_apps_that_list_them(store: &dyn Store) {
    let a = app(store, "cors").await;
    let b = app(store, "cors too").await;
    let origin = "https://members.example.com";
    assert!(!store.origin_allowed_anywhere(origin).await.unwrap());
    let with = |origins: &[&str]| MemberSettings {
        cors_origins: origins.iter().map(|o| (*o).to_owned()).collect(),
        ..MemberSettings::default()
    };
    store
        .put_member_settings(a.id, with(&["http://localhost:5173", origin]))
        .await
        .unwrap();
    store
        .put_member_settings(b.id, with(&["https://other.example.com"]))
        .await
        .unwrap();
    assert!(store.origin_allowed_anywhere(origin).await.unwrap());
    assert!(
        store
            .origin_allowed_anywhere("http://localhost:5173")
            .await
            .unwrap()
    );
    // Exact matches only: no prefixes, no other ports.
    for not in [
        "https://members.example.co",
        "https://members.example.com:8443",
        "http://members.example.com",
        "",
    ] {
        assert!(!store.origin_allowed_anywhere(not).await.unwrap(), "{not}");
    }
    store.put_member_settings(a.id, with(&[])).await.unwrap();
    assert!(!store.origin_allowed_anywhere(origin).await.unwrap());
}

pub async fn sessions_start_only_with_the_current_password(store: &dyn Store) {
    let (app, member, _) = avery(store).await;
    let session = |hash| NewSession {
        token_hash: hash,
        expires_at: at(NOW + 3600),
    };
    // No password yet: no password session.
    assert!(
        !store
            .create_session(app, member, PHC, session("s0"))
            .await
            .unwrap()
    );
    with_password(store, app, member).await;
    assert!(
        store
            .create_session(app, member, PHC, session("s1"))
            .await
            .unwrap()
    );
    assert!(
        !store
            .create_session(app, member, "another hash", session("s2"))
            .await
            .unwrap()
    );
    assert_eq!(store.find_session("s2", at(NOW)).await.unwrap(), None);
    // A sign-in checked against the old password before a reset starts nothing after it.
    store
        .create_link(link(
            app,
            member,
            LinkPurpose::PasswordReset,
            "reset",
            NOW + 3600,
        ))
        .await
        .unwrap();
    store
        .redeem_password_link(app, LinkPurpose::PasswordReset, "reset", "new-phc", at(NOW))
        .await
        .unwrap();
    assert!(
        !store
            .create_session(app, member, PHC, session("s3"))
            .await
            .unwrap()
    );
    assert_eq!(store.find_session("s1", at(NOW)).await.unwrap(), None);
    // Another app cannot start a session for this member.
    let (other, _) = app_with_member(store).await;
    assert!(
        !store
            .create_session(other, member, "new-phc", session("s4"))
            .await
            .unwrap()
    );
}

pub async fn a_reset_racing_sign_ins_leaves_no_session_behind(store: &dyn Store) {
    let (app, member, _) = avery(store).await;
    with_password(store, app, member).await;
    for round in 0..10 {
        let new_password = format!("phc-{round}");
        let reset = format!("reset-{round}");
        let magic = format!("magic-{round}");
        for (purpose, hash) in [
            (LinkPurpose::PasswordReset, &reset),
            (LinkPurpose::MagicLink, &magic),
        ] {
            store
                .create_link(link(app, member, purpose, hash, NOW + 3600))
                .await
                .unwrap();
        }
        let signed_in = format!("password-{round}");
        let magic_session = format!("magic-session-{round}");
        // A sign-in with the old password and a magic link, at the moment of a reset.
        let (started, magic_used, reset_done) = futures::join!(
            store.create_session(
                app,
                member,
                PHC,
                NewSession {
                    token_hash: &signed_in,
                    expires_at: at(NOW + 3600),
                },
            ),
            store.redeem_magic_link(
                app,
                &magic,
                NewSession {
                    token_hash: &magic_session,
                    expires_at: at(NOW + 3600),
                },
                at(NOW),
            ),
            store.redeem_password_link(
                app,
                LinkPurpose::PasswordReset,
                &reset,
                &new_password,
                at(NOW),
            ),
        );
        let _ = (started.unwrap(), magic_used.unwrap());
        assert_eq!(reset_done.unwrap(), Some(member));
        // Whatever the order, the reset is the last word: no session is left.
        for hash in [&signed_in, &magic_session] {
            assert_eq!(
                store.find_session(hash, at(NOW)).await.unwrap(),
                None,
                "round {round}: {hash} outlived the reset"
            );
        }
        password_back(store, app, member, round).await;
    }
}

/// Puts the member's password back to [`PHC`] for the next round of a race (the reset
/// changed it).
async fn password_back(
    store: &dyn Store,
    app: AppId,
    member: larder_access::MemberId,
    round: usize,
) {
    let hash = format!("back-{round}");
    store
        .create_link(link(
            app,
            member,
            LinkPurpose::SetPassword,
            &hash,
            NOW + 3600,
        ))
        .await
        .unwrap();
    store
        .redeem_password_link(app, LinkPurpose::SetPassword, &hash, PHC, at(NOW))
        .await
        .unwrap();
}

pub async fn claims_are_renewed_until_another_sender_takes_them(store: &dyn Store) {
    let (app, member) = quiet_member(store).await;
    store
        .queue_message(app, member, MessageKind::MagicLink, at(NOW))
        .await
        .unwrap();
    let lease = std::time::Duration::from_secs(60);
    let mine = store.claim_messages(at(NOW), lease, 10).await.unwrap();
    assert_eq!(mine.len(), 1);
    // Renewed before the lease ran out, nobody else may take it.
    assert!(
        store
            .renew_claim(&mine[0], lease, at(NOW + 50))
            .await
            .unwrap()
    );
    assert!(
        store
            .claim_messages(at(NOW + 70), lease, 10)
            .await
            .unwrap()
            .is_empty()
    );
    // Left to run out, another sender takes it; the first may no longer send it.
    let theirs = store
        .claim_messages(at(NOW + 111), lease, 10)
        .await
        .unwrap();
    assert_eq!(theirs.len(), 1);
    assert!(
        !store
            .renew_claim(&mine[0], lease, at(NOW + 112))
            .await
            .unwrap()
    );
    assert!(
        store
            .renew_claim(&theirs[0], lease, at(NOW + 112))
            .await
            .unwrap()
    );
    // A finished message has no claim to renew.
    assert!(
        store
            .finish_message(&theirs[0], Attempt::Sent, at(NOW + 113))
            .await
            .unwrap()
    );
    assert!(
        !store
            .renew_claim(&theirs[0], lease, at(NOW + 114))
            .await
            .unwrap()
    );
}

pub async fn member_settings_patches_change_only_their_fields(store: &dyn Store) {
    let a = app(store, "patched").await;
    let (before, after) = store
        .update_member_settings(
            a.id,
            MemberSettingsPatch {
                sender_name: Some(Some("Pantry Club".into())),
                cors_origins: Some(vec!["https://members.example.com".into()]),
                ..MemberSettingsPatch::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(before, MemberSettings::default());
    assert_eq!(after.sender_name.as_deref(), Some("Pantry Club"));
    assert_eq!(store.member_settings(a.id).await.unwrap(), after);
    // Two patches of different fields at once: both stick.
    let (x, y) = futures::join!(
        store.update_member_settings(
            a.id,
            MemberSettingsPatch {
                welcome_email: Some(WelcomeEmail::MagicLink),
                ..MemberSettingsPatch::default()
            },
        ),
        store.update_member_settings(
            a.id,
            MemberSettingsPatch {
                reply_to: Some(Some(email("help@example.com"))),
                sender_name: Some(None),
                ..MemberSettingsPatch::default()
            },
        ),
    );
    x.unwrap();
    y.unwrap();
    let now = store.member_settings(a.id).await.unwrap();
    assert_eq!(now.welcome_email, WelcomeEmail::MagicLink);
    assert_eq!(now.reply_to, Some(email("help@example.com")));
    assert_eq!(now.sender_name, None);
    assert_eq!(now.cors_origins, ["https://members.example.com"]);
    assert!(matches!(
        store
            .update_member_settings(AppId::new(), MemberSettingsPatch::default())
            .await,
        Err(StoreError::NotFound)
    ));
}

/// What an app's members hold after a storyline: per grant, its item, status and past-due
/// flag; and how many members there are.
pub(crate) async fn holdings(store: &dyn Store, app: AppId) -> (Vec<String>, usize) {
    let members = store
        .list_members(app, MemberFilter::default(), PageRequest::first(200))
        .await
        .unwrap();
    let mut lines = Vec::new();
    for m in &members.items {
        let (_, grants) = member_of(store, app, m.id).await;
        for g in grants {
            lines.push(format!(
                "{}/{}: {} past_due={}",
                g.order_id.unwrap_or_default(),
                g.product.map(|p| p.to_string()).unwrap_or_default(),
                g.status.as_str(),
                g.past_due
            ));
        }
    }
    lines.sort();
    (lines, members.items.len())
}

pub async fn every_arrival_order_of_a_storyline_ends_the_same(store: &dyn Store) {
    for story in larder_testkit::fixtures::storylines() {
        let all = larder_testkit::fixtures::permutations(story.deliveries.len());
        // Every order of a short storyline; of a long one, a spread of 24 and the reverse.
        let step = (all.len() / 24).max(1);
        let mut orders: Vec<&Vec<usize>> = all.iter().step_by(step).collect();
        let reversed: Vec<usize> = (0..story.deliveries.len()).rev().collect();
        orders.push(&reversed);
        let expected = story
            .expected
            .split(" revoke_at")
            .next()
            .unwrap_or(story.expected);
        let mut first: Option<(Vec<String>, usize)> = None;
        for order in orders {
            let (app, _) = shop(store).await;
            for i in order {
                deliver(store, app, &story.deliveries[*i]).await;
            }
            let held = holdings(store, app).await;
            assert!(
                held.0.iter().any(|l| l.starts_with(expected)),
                "{}, in the order {order:?}: {:#?}",
                story.name,
                held.0
            );
            match &first {
                None => first = Some(held),
                Some(f) => assert_eq!(&held, f, "{}, in the order {order:?}", story.name),
            }
        }
    }
}

pub async fn a_batch_applies_as_its_deliveries_would_one_by_one(store: &dyn Store) {
    for story in larder_testkit::fixtures::storylines() {
        let reversed: Vec<usize> = (0..story.deliveries.len()).rev().collect();
        let forward: Vec<usize> = (0..story.deliveries.len()).collect();
        for order in [forward, reversed] {
            // One by one.
            let (one_app, _) = shop(store).await;
            let mut one_by_one = Vec::new();
            for i in &order {
                let done = deliver(store, one_app, &story.deliveries[*i]).await;
                one_by_one.push(done.status);
            }
            let first_copy = deliver(store, one_app, &story.deliveries[order[0]]).await;
            one_by_one.push(first_copy.status);

            // Together, with a copy of the first: the copy is a duplicate of the first.
            let (app, _) = shop(store).await;
            let mut batch = Vec::new();
            for i in order.iter().chain([&order[0]]) {
                batch.push(
                    to_apply(
                        store,
                        app,
                        &story.deliveries[*i],
                        CancellationPolicy::Immediate,
                    )
                    .await,
                );
            }
            let first_id = batch[0].0.id;
            let done = store.apply_deliveries(batch).await;
            let together: Vec<DeliveryStatus> = done
                .iter()
                .map(|d| d.as_ref().expect("applied").status)
                .collect();
            assert_eq!(
                together, one_by_one,
                "{}, in the order {order:?}",
                story.name
            );
            let copy = done.last().unwrap().as_ref().unwrap();
            assert_eq!(
                copy.message,
                format!("Duplicate of delivery {first_id}; nothing changed.")
            );
            assert_eq!(
                holdings(store, app).await,
                holdings(store, one_app).await,
                "{}, in the order {order:?}",
                story.name
            );
            let entries = |app| async move {
                let listed = store
                    .list_activity(app, ActivityFilter::default(), PageRequest::first(200))
                    .await
                    .unwrap();
                let mut kinds: Vec<(String, Vec<String>)> = listed
                    .items
                    .iter()
                    .map(|d| {
                        let effects = d.effects.iter().map(|e| e.kind.as_str().to_owned());
                        (d.status.as_str().to_owned(), effects.collect())
                    })
                    .collect();
                kinds.sort();
                kinds
            };
            assert_eq!(entries(app).await, entries(one_app).await, "{}", story.name);
        }
    }
}

pub async fn one_bad_delivery_fails_only_itself_in_a_batch(store: &dyn Store) {
    let (app, _) = shop(store).await;
    let gone = app_gone(store).await;
    let mut batch = Vec::new();
    for (who, order) in [
        ("a@example.com", "1"),
        ("b@example.com", "2"),
        ("c@example.com", "3"),
    ] {
        let purchase = purchase_by(who, order, "live");
        batch.push(to_apply(store, app, &purchase, CancellationPolicy::Immediate).await);
    }
    batch[1].0.app_id = gone;
    let done = store.apply_deliveries(batch).await;
    assert!(
        matches!(done[1], Err(StoreError::NotFound)),
        "{:?}",
        done[1]
    );
    for at in [0, 2] {
        assert_eq!(done[at].as_ref().unwrap().status, DeliveryStatus::Applied);
    }
    member_by_email(store, app, "a@example.com").await;
    member_by_email(store, app, "c@example.com").await;
    assert_eq!(only_member_count(store, app).await, 2);
}

/// The id of an app that existed and was deleted.
async fn app_gone(store: &dyn Store) -> AppId {
    let gone = app(store, "gone").await.id;
    store.delete_app(gone).await.unwrap();
    gone
}

pub async fn entries_that_change_nothing_are_recorded_together(store: &dyn Store) {
    let (app, _) = shop(store).await;
    let purchase = doc(fixture!("02-order-success-bump-and-upsell"));
    let entries: Vec<RecordDelivery> = [
        (DeliveryStatus::Ping, "Ping."),
        (DeliveryStatus::Duplicate, "Duplicate."),
        (DeliveryStatus::Rejected, "Rejected."),
    ]
    .into_iter()
    .map(|(status, message)| RecordDelivery {
        delivery: new_delivery(app, &purchase),
        status,
        message: message.into(),
    })
    .collect();
    store.record_deliveries(&entries).await.unwrap();
    for e in &entries {
        let found = store.get_activity(app, e.delivery.id).await.unwrap();
        assert_eq!(found.status, e.status);
        assert_eq!(found.message, e.message);
        // A duplicate keeps no payload: it is its original's.
        let kept = match e.status {
            DeliveryStatus::Duplicate => None,
            _ => e.delivery.payload.clone(),
        };
        assert_eq!(found.payload, kept, "{:?}", e.status);
        assert!(found.effects.is_empty());
    }
    // All or none: one entry for an app that is gone fails them all.
    let mut with_bad = entries.clone();
    for e in &mut with_bad {
        e.delivery.id = larder_access::DeliveryId::new();
    }
    with_bad[1].delivery.app_id = app_gone(store).await;
    assert!(store.record_deliveries(&with_bad).await.is_err());
    assert!(matches!(
        store.get_activity(app, with_bad[0].delivery.id).await,
        Err(StoreError::NotFound)
    ));
}
