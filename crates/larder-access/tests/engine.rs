//! The access engine, table by table, on the ThriveCart fixtures: no database, a tiny
//! in-memory world that applies plans the way a store does.

#![allow(clippy::unwrap_used)]

use std::collections::HashMap;

use larder_access::engine::{
    EffectKind, ExistingMember, ItemState, ItemStatus, Plan, PlanInput, PlanStatus, plan,
};
use larder_access::thrivecart::{Action, Delivery, parse_delivery};
use larder_access::{AccessLevelId, CancellationPolicy, MemberId, ProductKey, TestModePolicy};

use larder_testkit::fixtures::{THRIVECART, permutations, storylines, thrivecart_json as fixture};

fn delivery(name: &str) -> Delivery {
    parse_delivery(&fixture(name)).unwrap().unwrap()
}

const NOW: i64 = 1_790_000_000; // 2026-09

/// Members by email and item states by (order, key): what a store keeps.
struct World {
    mappings: HashMap<ProductKey, Vec<AccessLevelId>>,
    members: HashMap<String, MemberId>,
    items: HashMap<(String, ProductKey), ItemState>,
    test_mode: TestModePolicy,
    cancellation: CancellationPolicy,
}

impl World {
    fn new(mapped: &[&str]) -> Self {
        Self {
            mappings: mapped
                .iter()
                .map(|k| (ProductKey::parse(k).unwrap(), vec![AccessLevelId::new()]))
                .collect(),
            members: HashMap::new(),
            items: HashMap::new(),
            test_mode: TestModePolicy::Process,
            cancellation: CancellationPolicy::Immediate,
        }
    }

    fn apply(&mut self, name: &str) -> Plan {
        self.apply_delivery(delivery(name))
    }

    fn apply_delivery(&mut self, d: Delivery) -> Plan {
        let order = d.order_id.clone().unwrap_or_default();
        let items: HashMap<ProductKey, ItemState> = self
            .items
            .iter()
            .filter(|((o, _), _)| *o == order)
            .map(|((_, k), s)| (k.clone(), s.clone()))
            .collect();
        let member = d
            .customer
            .as_ref()
            .and_then(|c| self.members.get(c.email.as_str()))
            .map(|id| ExistingMember { id: *id });
        let p = plan(&PlanInput {
            delivery: &d,
            mappings: &self.mappings,
            items: &items,
            member,
            test_mode: self.test_mode,
            cancellation: self.cancellation,
            now: NOW,
            new_member_id: MemberId::new(),
        });
        if let Some(m) = &p.member {
            self.members.insert(m.email.to_string(), m.id);
        }
        for w in &p.items {
            let state = w.applied_to(items.get(&w.product));
            self.items.insert((order.clone(), w.product.clone()), state);
        }
        p
    }

    fn status(&self, order: &str, key: &str) -> Option<ItemStatus> {
        self.items
            .get(&(order.to_owned(), ProductKey::parse(key).unwrap()))
            .map(|s| s.status)
    }
}

const ALL: [&str; 4] = ["product-12", "product-7", "bump-7", "upsell-3"];

#[test]
fn every_fixture_parses_with_the_right_action() {
    let expected = [
        (
            "01-order-success-single-product",
            "purchase",
            vec!["product-12"],
        ),
        (
            "02-order-success-bump-and-upsell",
            "purchase",
            vec!["product-7", "bump-7", "upsell-3"],
        ),
        (
            "03-order-subscription-payment",
            "renewal",
            vec!["product-7"],
        ),
        (
            "04-order-subscription-cancelled",
            "cancellation",
            vec!["product-7"],
        ),
        ("05-order-subscription-paused", "pause", vec!["product-7"]),
        ("06-order-subscription-resumed", "resume", vec!["product-7"]),
        ("07-order-refund-full", "refund", vec!["product-12"]),
        ("08-order-refund-bump-only", "refund", vec!["bump-7"]),
        ("09-order-rebill-failed", "rebill_failed", vec!["product-7"]),
        ("10-affiliate-commission-earned", "none", vec![]),
        ("11-order-success-test-mode", "purchase", vec!["product-12"]),
        (
            "12-order-success-repeat-customer-blank-name",
            "purchase",
            vec!["product-7"],
        ),
        ("13-cart-abandoned", "none", vec![]),
    ];
    for (name, kind, products) in expected {
        let d = delivery(name);
        let got = match d.action {
            Action::Purchase { .. } => "purchase",
            Action::Renewal { .. } => "renewal",
            Action::Cancellation { .. } => "cancellation",
            Action::Pause { .. } => "pause",
            Action::Resume { .. } => "resume",
            Action::Refund { .. } => "refund",
            Action::RebillFailed { .. } => "rebill_failed",
            Action::NoAccessChange => "none",
        };
        assert_eq!(got, kind, "{name}");
        let keys: Vec<String> = d.products().iter().map(ToString::to_string).collect();
        assert_eq!(keys, products, "{name}");
    }
    // Emails are normalised; blank names are no names; affiliates and viewers are no one.
    assert_eq!(
        delivery("02-order-success-bump-and-upsell")
            .customer
            .unwrap()
            .email
            .as_str(),
        "jordan.ellis@example.com"
    );
    assert_eq!(
        delivery("12-order-success-repeat-customer-blank-name")
            .customer
            .unwrap()
            .name,
        None
    );
    assert_eq!(delivery("10-affiliate-commission-earned").customer, None);
    assert_eq!(delivery("13-cart-abandoned").customer, None);
}

#[test]
fn a_ping_has_no_event_and_a_purchase_needs_an_email() {
    assert_eq!(
        parse_delivery(&serde_json::json!({"thrivecart_secret": "x"})),
        Ok(None)
    );
    let mut doc = fixture("01-order-success-single-product");
    doc["customer"]["email"] = "null".into();
    assert!(parse_delivery(&doc).is_err());
    let mut doc = fixture("08-order-refund-bump-only");
    doc.as_object_mut().unwrap().remove("refund");
    assert!(parse_delivery(&doc).is_err());
    assert!(parse_delivery(&serde_json::json!(["event"])).is_err());
}

#[test]
fn jordans_storyline_in_order() {
    let mut w = World::new(&ALL);
    let p = w.apply("02-order-success-bump-and-upsell");
    assert_eq!(p.status, PlanStatus::Applied);
    let kinds: Vec<EffectKind> = p.effects.iter().map(|e| e.kind).collect();
    assert_eq!(
        kinds,
        [
            EffectKind::MemberCreated,
            EffectKind::Granted,
            EffectKind::Granted,
            EffectKind::Granted
        ]
    );
    assert_eq!(
        w.apply("08-order-refund-bump-only").status,
        PlanStatus::Applied
    );
    assert_eq!(w.status("4100456", "bump-7"), Some(ItemStatus::Revoked));
    assert_eq!(w.status("4100456", "product-7"), Some(ItemStatus::Active));
    assert_eq!(w.status("4100456", "upsell-3"), Some(ItemStatus::Active));

    let p = w.apply("03-order-subscription-payment");
    assert_eq!(p.status, PlanStatus::Applied, "{}", p.message);
    assert_eq!(w.status("4100456", "product-7"), Some(ItemStatus::Active));
    w.apply("05-order-subscription-paused");
    assert_eq!(w.status("4100456", "product-7"), Some(ItemStatus::Paused));
    w.apply("06-order-subscription-resumed");
    assert_eq!(w.status("4100456", "product-7"), Some(ItemStatus::Active));
    let p = w.apply("04-order-subscription-cancelled");
    assert_eq!(p.effects[0].kind, EffectKind::Revoked);
    assert_eq!(w.status("4100456", "product-7"), Some(ItemStatus::Revoked));
    assert_eq!(w.status("4100456", "upsell-3"), Some(ItemStatus::Active));
    assert_eq!(w.members.len(), 1);
}

#[test]
fn averys_storyline_in_order() {
    let mut w = World::new(&ALL);
    w.apply("01-order-success-single-product");
    w.apply("07-order-refund-full");
    assert_eq!(w.status("4100123", "product-12"), Some(ItemStatus::Revoked));
    let p = w.apply("12-order-success-repeat-customer-blank-name");
    assert!(
        p.member
            .as_ref()
            .is_some_and(|m| !m.create && m.name.is_none())
    );
    assert_eq!(w.members.len(), 1);
    let p = w.apply("09-order-rebill-failed");
    assert_eq!(p.effects[0].kind, EffectKind::PastDue);
    assert_eq!(w.status("4101002", "product-7"), Some(ItemStatus::Active));
}

/// Final states after a storyline, whatever order its deliveries arrive in.
#[test]
fn storylines_end_the_same_in_any_order() {
    let jordan = [
        "02-order-success-bump-and-upsell",
        "08-order-refund-bump-only",
        "03-order-subscription-payment",
        "05-order-subscription-paused",
        "06-order-subscription-resumed",
        "04-order-subscription-cancelled",
    ];
    // A few fixed shuffles, including the cancellation first and the purchase last.
    let orders: [[usize; 6]; 5] = [
        [5, 4, 3, 2, 1, 0],
        [5, 0, 1, 2, 3, 4],
        [1, 0, 2, 3, 4, 5],
        [3, 2, 0, 1, 4, 5],
        [2, 3, 4, 5, 1, 0],
    ];
    for order in orders {
        let mut w = World::new(&ALL);
        for i in order {
            w.apply(jordan[i]);
        }
        assert_eq!(
            w.status("4100456", "product-7"),
            Some(ItemStatus::Revoked),
            "{order:?}"
        );
        assert_eq!(
            w.status("4100456", "bump-7"),
            Some(ItemStatus::Revoked),
            "{order:?}"
        );
        assert_eq!(
            w.status("4100456", "upsell-3"),
            Some(ItemStatus::Active),
            "{order:?}"
        );
        assert_eq!(w.members.len(), 1, "{order:?}");
    }
}

#[test]
fn a_pause_followed_by_an_older_payment_stays_paused() {
    let mut w = World::new(&ALL);
    w.apply("02-order-success-bump-and-upsell");
    w.apply("05-order-subscription-paused");
    let p = w.apply("03-order-subscription-payment");
    assert_eq!(p.status, PlanStatus::Ignored, "{}", p.message);
    assert_eq!(w.status("4100456", "product-7"), Some(ItemStatus::Paused));
}

#[test]
fn payments_while_paused_change_nothing_of_access() {
    use larder_testkit::fixtures::{jordans_failed_rebill, moved};
    const T0: i64 = 1_772_529_160;
    const DAY: i64 = 86_400;
    let mut w = World::new(&ALL);
    w.apply("02-order-success-bump-and-upsell");
    w.apply_delivery(
        parse_delivery(&moved("05-order-subscription-paused", T0 + 10 * DAY))
            .unwrap()
            .unwrap(),
    );
    // A failed rebill and then a renewal, both after the pause: remembered, no effect (the
    // grants stay paused, neither "past due" nor "restored").
    for doc in [
        jordans_failed_rebill(T0 + 31 * DAY),
        moved("03-order-subscription-payment", T0 + 33 * DAY),
    ] {
        let p = w.apply_delivery(parse_delivery(&doc).unwrap().unwrap());
        assert_eq!(p.status, PlanStatus::Ignored, "{}", p.message);
        assert!(p.effects.is_empty(), "{:?}", p.effects);
        assert!(p.message.contains("pause"), "{}", p.message);
        assert_eq!(w.status("4100456", "product-7"), Some(ItemStatus::Paused));
    }
    // The last payment went through: a resume restores access in good standing.
    let resume = moved("06-order-subscription-resumed", T0 + 40 * DAY);
    let p = w.apply_delivery(parse_delivery(&resume).unwrap().unwrap());
    let kinds: Vec<EffectKind> = p.effects.iter().map(|e| e.kind).collect();
    assert_eq!(kinds, [EffectKind::Restored], "{}", p.message);

    // A failed rebill while paused, then a resume: restored, and past due, both said.
    let mut w = World::new(&ALL);
    w.apply("02-order-success-bump-and-upsell");
    for doc in [
        moved("05-order-subscription-paused", T0 + 10 * DAY),
        jordans_failed_rebill(T0 + 31 * DAY),
    ] {
        w.apply_delivery(parse_delivery(&doc).unwrap().unwrap());
    }
    let p = w.apply_delivery(parse_delivery(&resume).unwrap().unwrap());
    let kinds: Vec<EffectKind> = p.effects.iter().map(|e| e.kind).collect();
    assert_eq!(
        kinds,
        [EffectKind::Restored, EffectKind::PastDue],
        "{}",
        p.message
    );
    assert!(p.message.contains("past due"), "{}", p.message);
}

#[test]
fn status_is_the_authority_over_facts_an_older_release_left() {
    use larder_testkit::fixtures::moved;
    const T0: i64 = 1_772_529_160;
    const DAY: i64 = 86_400;
    let key = ProductKey::parse("product-7").unwrap();
    let order = "4100456".to_owned();
    let renewal = moved("03-order-subscription-payment", T0 + 31 * DAY);
    let late_pause = moved("05-order-subscription-paused", T0 + 11 * DAY);
    for (status, paused_at, resumed_at, doc, expected) in [
        // Paused by a release that kept no times: a renewal leaves it paused.
        (ItemStatus::Paused, None, None, &renewal, ItemStatus::Paused),
        // Paused by it after a resume this release saw.
        (
            ItemStatus::Paused,
            Some(T0 + 2 * DAY),
            Some(T0 + 5 * DAY),
            &renewal,
            ItemStatus::Paused,
        ),
        // Resumed by it after a pause this release saw: an older pause arriving late
        // does not pause it again, nor does a renewal.
        (
            ItemStatus::Active,
            Some(T0 + 10 * DAY),
            None,
            &late_pause,
            ItemStatus::Active,
        ),
        (
            ItemStatus::Active,
            Some(T0 + 10 * DAY),
            None,
            &renewal,
            ItemStatus::Active,
        ),
    ] {
        let mut w = World::new(&ALL);
        w.apply("02-order-success-bump-and-upsell");
        let item = w.items.get_mut(&(order.clone(), key.clone())).unwrap();
        item.status = status;
        item.status_at = T0 + 12 * DAY;
        item.paused_at = paused_at;
        item.resumed_at = resumed_at;
        let p = w.apply_delivery(parse_delivery(doc).unwrap().unwrap());
        assert_eq!(
            w.status("4100456", "product-7"),
            Some(expected),
            "{status:?} {paused_at:?} {resumed_at:?}: {}",
            p.message
        );
    }
}

#[test]
fn unmapped_purchases_create_no_member() {
    let mut w = World::new(&["product-99"]);
    let p = w.apply("02-order-success-bump-and-upsell");
    assert_eq!(p.status, PlanStatus::Unmapped);
    assert!(p.message.contains("bump-7"));
    assert!(w.members.is_empty() && w.items.is_empty());

    // Partly mapped: granted what is mapped, the rest listed.
    let mut w = World::new(&["upsell-3"]);
    let p = w.apply("02-order-success-bump-and-upsell");
    assert_eq!(p.status, PlanStatus::Applied);
    assert!(
        p.message.contains("Unmapped: product-7, bump-7"),
        "{}",
        p.message
    );
}

#[test]
fn non_access_events_change_nothing() {
    for name in ["10-affiliate-commission-earned", "13-cart-abandoned"] {
        let mut w = World::new(&ALL);
        let p = w.apply(name);
        assert_eq!(p.status, PlanStatus::Ignored);
        assert!(p.member.is_none() && p.items.is_empty() && p.effects.is_empty());
    }
}

#[test]
fn test_mode_is_flagged_or_ignored_by_policy() {
    let mut w = World::new(&ALL);
    let p = w.apply("11-order-success-test-mode");
    assert_eq!(p.status, PlanStatus::Applied);
    assert!(p.member.unwrap().test);
    assert!(p.items.iter().all(|i| i.test));

    let mut w = World::new(&ALL);
    w.test_mode = TestModePolicy::Ignore;
    let p = w.apply("11-order-success-test-mode");
    assert_eq!(p.status, PlanStatus::Ignored);
    assert!(w.members.is_empty());
}

#[test]
fn period_end_cancellation_waits_for_the_end_of_the_paid_period() {
    let mut w = World::new(&ALL);
    w.cancellation = CancellationPolicy::PeriodEnd;
    w.apply("02-order-success-bump-and-upsell");
    // The fixture's period ended in May 2026, before NOW: revoked at once.
    w.apply("04-order-subscription-cancelled");
    assert_eq!(w.status("4100456", "product-7"), Some(ItemStatus::Revoked));

    let mut w = World::new(&ALL);
    w.cancellation = CancellationPolicy::PeriodEnd;
    w.apply("02-order-success-bump-and-upsell");
    let mut doc = fixture("04-order-subscription-cancelled");
    doc["subscription"]["billing_period_end"] = (NOW + 86_400).to_string().into();
    let d = parse_delivery(&doc).unwrap().unwrap();
    let items: HashMap<ProductKey, ItemState> = w
        .items
        .iter()
        .map(|((_, k), s)| (k.clone(), s.clone()))
        .collect();
    let p = plan(&PlanInput {
        delivery: &d,
        mappings: &w.mappings,
        items: &items,
        member: None,
        test_mode: w.test_mode,
        cancellation: w.cancellation,
        now: NOW,
        new_member_id: MemberId::new(),
    });
    assert_eq!(p.items[0].status, ItemStatus::Active);
    assert_eq!(p.items[0].revoke_at, Some(NOW + 86_400));
    assert!(p.effects.is_empty());
}

#[test]
fn a_period_end_cancellation_before_its_purchase_still_ends_access() {
    let mut w = World::new(&ALL);
    w.cancellation = CancellationPolicy::PeriodEnd;
    let mut cancel = fixture("04-order-subscription-cancelled");
    cancel["subscription"]["billing_period_end"] = (NOW + 86_400).to_string().into();
    let d = parse_delivery(&cancel).unwrap().unwrap();
    let p = plan(&PlanInput {
        delivery: &d,
        mappings: &w.mappings,
        items: &HashMap::new(),
        member: None,
        test_mode: w.test_mode,
        cancellation: w.cancellation,
        now: NOW,
        new_member_id: MemberId::new(),
    });
    assert_eq!(p.status, PlanStatus::Applied, "{}", p.message);
    assert_eq!(p.items[0].revoke_at, Some(NOW + 86_400));
    // The purchase, arriving after, keeps the end date.
    let state = ItemState {
        status: p.items[0].status,
        status_at: p.items[0].status_at,
        past_due: false,
        member_id: None,
        levels: Vec::new(),
        revoke_at: p.items[0].revoke_at,
        subscription_id: None,
        payment_at: None,
        paused_at: None,
        resumed_at: None,
    };
    w.items.insert(
        ("4100456".into(), ProductKey::parse("product-7").unwrap()),
        state,
    );
    let p = w.apply("02-order-success-bump-and-upsell");
    let item = p
        .items
        .iter()
        .find(|i| i.product.to_string() == "product-7")
        .unwrap();
    assert_eq!(item.status, ItemStatus::Active);
    assert_eq!(item.revoke_at, Some(NOW + 86_400));
}

#[test]
fn a_late_older_renewal_does_not_clear_a_newer_failed_payment() {
    let mut w = World::new(&ALL);
    w.apply("12-order-success-repeat-customer-blank-name");
    w.apply("09-order-rebill-failed");
    // A renewal dated before the failed rebill, arriving after it.
    let mut renewal = fixture("03-order-subscription-payment");
    renewal["order_id"] = "4101002".into();
    renewal["date_unix"] = "1776000000".into();
    let order = "4101002".to_owned();
    let key = ProductKey::parse("product-7").unwrap();
    let items: HashMap<ProductKey, ItemState> =
        [(key.clone(), w.items[&(order.clone(), key.clone())].clone())].into();
    let d = parse_delivery(&renewal).unwrap().unwrap();
    let p = plan(&PlanInput {
        delivery: &d,
        mappings: &w.mappings,
        items: &items,
        member: None,
        test_mode: w.test_mode,
        cancellation: w.cancellation,
        now: NOW,
        new_member_id: MemberId::new(),
    });
    assert_eq!(p.status, PlanStatus::Ignored, "{}", p.message);
    // A newer renewal does put it back in good standing.
    renewal["date_unix"] = "1777000000".into();
    let d = parse_delivery(&renewal).unwrap().unwrap();
    let p = plan(&PlanInput {
        delivery: &d,
        mappings: &w.mappings,
        items: &items,
        member: None,
        test_mode: w.test_mode,
        cancellation: w.cancellation,
        now: NOW,
        new_member_id: MemberId::new(),
    });
    assert_eq!(p.effects[0].kind, EffectKind::Restored, "{}", p.message);
    assert!(!p.items[0].past_due);
}

#[test]
fn replaying_a_purchase_grants_nothing_twice() {
    let mut w = World::new(&ALL);
    w.apply("01-order-success-single-product");
    let p = w.apply("01-order-success-single-product");
    assert!(p.effects.is_empty(), "{:?}", p.effects);
}

#[test]
fn fingerprints_tell_renewals_from_the_purchase() {
    use larder_access::thrivecart::fingerprint;
    let mut prints: Vec<String> = THRIVECART
        .iter()
        .map(|f| fingerprint(&f.json_value()))
        .collect();
    prints.sort();
    prints.dedup();
    assert_eq!(prints.len(), 13, "every fixture is a distinct delivery");
    let mut with_id = fixture("02-order-success-bump-and-upsell");
    with_id["webhook_id"] = "7b1c0e2a-0000-4000-8000-000000000001".into();
    assert_eq!(
        fingerprint(&with_id),
        "webhook:7b1c0e2a-0000-4000-8000-000000000001"
    );
}

#[test]
fn names_fall_back_to_first_and_last_in_either_spelling() {
    let mut doc = fixture("12-order-success-repeat-customer-blank-name");
    doc["customer"]["firstname"] = "Avery".into();
    doc["customer"]["lastname"] = "Quinn".into();
    let d = parse_delivery(&doc).unwrap().unwrap();
    assert_eq!(d.customer.unwrap().name.as_deref(), Some("Avery Quinn"));
    // The underscored spelling wins when both are there, and `name` over both.
    doc["customer"]["first_name"] = "Ave".into();
    let d = parse_delivery(&doc).unwrap().unwrap();
    assert_eq!(d.customer.unwrap().name.as_deref(), Some("Ave"));
    doc["customer"]["name"] = "A. Quinn".into();
    let d = parse_delivery(&doc).unwrap().unwrap();
    assert_eq!(d.customer.unwrap().name.as_deref(), Some("A. Quinn"));
}

#[test]
fn a_purchase_naming_too_many_items_is_invalid() {
    use larder_access::thrivecart::{InvalidDelivery, MAX_ITEMS_PER_DELIVERY};
    let mut doc = fixture("02-order-success-bump-and-upsell");
    // 80,000 distinct keys: refused, after one pass over them.
    let many: Vec<serde_json::Value> = (0..80_000)
        .map(|n| format!("bump-{}", n + 1).into())
        .collect();
    doc["purchase_map"] = many.into();
    assert_eq!(
        parse_delivery(&doc),
        Err(InvalidDelivery::TooManyItems {
            field: "purchase_map",
            max: MAX_ITEMS_PER_DELIVERY
        })
    );
    // Repeats of a few keys are no more than those keys.
    let repeated: Vec<serde_json::Value> = (0..80_000)
        .map(|n| format!("bump-{}", n % 3 + 1).into())
        .collect();
    doc["purchase_map"] = repeated.into();
    let d = parse_delivery(&doc).unwrap().unwrap();
    assert_eq!(d.products().len(), 3);
    // Exactly the cap is fine.
    let cap: Vec<serde_json::Value> = (0..MAX_ITEMS_PER_DELIVERY)
        .map(|n| format!("upsell-{}", n + 1).into())
        .collect();
    doc["purchase_map"] = cap.into();
    assert_eq!(
        parse_delivery(&doc).unwrap().unwrap().products().len(),
        MAX_ITEMS_PER_DELIVERY
    );
    let mut doc = fixture("02-order-success-bump-and-upsell");
    let subs: serde_json::Map<String, serde_json::Value> = (0..=MAX_ITEMS_PER_DELIVERY)
        .map(|n| (format!("bump-{}", n + 1), "1".into()))
        .collect();
    doc["subscription_ids"] = subs.into();
    assert!(matches!(
        parse_delivery(&doc),
        Err(InvalidDelivery::TooManyItems {
            field: "subscription_ids",
            ..
        })
    ));
}

/// What a storyline leaves: per item its status, past-due flag, period end and whether a
/// member holds it; the members and the levels granted.
type Summary = (Vec<String>, usize, Vec<(String, usize)>);

fn final_state(w: &World) -> Summary {
    let mut items: Vec<String> = w
        .items
        .iter()
        .map(|((order, key), s)| {
            format!(
                "{order}/{key}: {} past_due={} revoke_at={:?} member={}",
                s.status.as_str(),
                s.past_due,
                s.revoke_at,
                s.member_id.is_some()
            )
        })
        .collect();
    items.sort();
    let mut levels: Vec<(String, usize)> = w
        .items
        .iter()
        .map(|((order, key), s)| (format!("{order}/{key}"), s.levels.len()))
        .collect();
    levels.sort();
    (items, w.members.len(), levels)
}

/// Any arrival order of a storyline's deliveries ends in the same state.
#[test]
fn every_arrival_order_of_a_storyline_ends_the_same() {
    for story in storylines() {
        let (name, expected) = (story.name, story.expected);
        let deliveries: Vec<Delivery> = story
            .deliveries
            .iter()
            .map(|d| parse_delivery(d).unwrap().unwrap())
            .collect();
        let mut first: Option<Summary> = None;
        let orders = permutations(deliveries.len());
        for order in &orders {
            let mut w = World::new(&ALL);
            for i in order {
                w.apply_delivery(deliveries[*i].clone());
            }
            let state = final_state(&w);
            assert!(
                state.0.iter().any(|s| s.starts_with(expected)),
                "{name}, in the order {order:?}: {:#?}",
                state.0
            );
            match &first {
                None => first = Some(state),
                Some(f) => assert_eq!(&state, f, "{name}, in the order {order:?}"),
            }
        }
        assert!(orders.len() >= 6, "{name}");
    }
}

#[test]
fn a_renewal_of_an_order_never_seen_is_taken_as_its_purchase() {
    // An app connected after Jordan bought: the first thing Larder hears is a renewal.
    let mut w = World::new(&ALL);
    let p = w.apply("03-order-subscription-payment");
    assert_eq!(p.status, PlanStatus::Applied, "{}", p.message);
    assert!(p.message.contains("never received"), "{}", p.message);
    let kinds: Vec<EffectKind> = p.effects.iter().map(|e| e.kind).collect();
    assert_eq!(kinds, [EffectKind::MemberCreated, EffectKind::Granted]);
    assert_eq!(w.status("4100456", "product-7"), Some(ItemStatus::Active));
    assert_eq!(w.members.len(), 1);
    // The purchase arriving after all adds its other items, and nothing twice.
    let p = w.apply("02-order-success-bump-and-upsell");
    assert_eq!(
        p.effects
            .iter()
            .filter(|e| e.kind == EffectKind::Granted)
            .count(),
        2,
        "{}",
        p.message
    );
    assert_eq!(w.members.len(), 1);

    // A later cancellation still wins, whichever arrives first.
    let mut w = World::new(&ALL);
    w.apply("04-order-subscription-cancelled");
    let p = w.apply("03-order-subscription-payment");
    assert_eq!(w.status("4100456", "product-7"), Some(ItemStatus::Revoked));
    assert!(
        p.effects.iter().all(|e| e.kind != EffectKind::Granted),
        "{:?}",
        p.effects
    );

    // Unmapped, it is reported as such (and can be replayed once mapped).
    let mut w = World::new(&["product-12"]);
    let p = w.apply("03-order-subscription-payment");
    assert_eq!(p.status, PlanStatus::Unmapped, "{}", p.message);
    assert!(p.member.is_none());
}
