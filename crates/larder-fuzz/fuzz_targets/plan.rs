//! The access engine's planner on any sequence of deliveries to one order: each byte picks a
//! lifecycle fixture and its event time, the sequence is planned one by one against the
//! state the earlier plans left (as a store would keep it). It must never panic, a revoked
//! item must stay revoked, and no plan may grant a level twice.

#![no_main]

use std::collections::HashMap;

use larder_access::engine::{ExistingMember, ItemState, ItemStatus, PlanInput, plan};
use larder_access::thrivecart::parse_delivery;
use larder_access::{AccessLevelId, CancellationPolicy, MemberId, ProductKey, TestModePolicy};
use libfuzzer_sys::fuzz_target;

/// The lifecycle deliveries of one order (product-7 with its bump and upsell), as JSON.
const FIXTURES: [&str; 7] = [
    include_str!("../../larder-testkit/fixtures/thrivecart/02-order-success-bump-and-upsell.json"),
    include_str!("../../larder-testkit/fixtures/thrivecart/03-order-subscription-payment.json"),
    include_str!("../../larder-testkit/fixtures/thrivecart/04-order-subscription-cancelled.json"),
    include_str!("../../larder-testkit/fixtures/thrivecart/05-order-subscription-paused.json"),
    include_str!("../../larder-testkit/fixtures/thrivecart/06-order-subscription-resumed.json"),
    include_str!("../../larder-testkit/fixtures/thrivecart/08-order-refund-bump-only.json"),
    include_str!("../../larder-testkit/fixtures/thrivecart/09-order-rebill-failed.json"),
];

const T0: i64 = 1_772_529_160;

fuzz_target!(|data: &[u8]| {
    let docs: Vec<serde_json::Value> = FIXTURES
        .iter()
        .map(|f| serde_json::from_str(f).expect("fixtures are JSON"))
        .collect();
    let mappings: HashMap<ProductKey, Vec<AccessLevelId>> = ["product-7", "bump-7", "upsell-3"]
        .iter()
        .map(|k| {
            (
                ProductKey::parse(k).expect("a key"),
                vec![AccessLevelId::new()],
            )
        })
        .collect();
    let mut items: HashMap<ProductKey, ItemState> = HashMap::new();
    let mut member: Option<MemberId> = None;
    let cancellation = if data.first().is_some_and(|b| b & 1 == 1) {
        CancellationPolicy::PeriodEnd
    } else {
        CancellationPolicy::Immediate
    };
    for pair in data.chunks(2).take(64) {
        let mut doc = docs[usize::from(pair[0]) % docs.len()].clone();
        let at = T0 + i64::from(*pair.get(1).unwrap_or(&0)) * 86_400;
        doc["order_id"] = "4100456".into();
        if doc.get("date_unix").is_some() {
            doc["date_unix"] = at.to_string().into();
        } else {
            doc["order_timestamp"] = at.to_string().into();
        }
        let Ok(Some(delivery)) = parse_delivery(&doc) else {
            continue;
        };
        let p = plan(&PlanInput {
            delivery: &delivery,
            mappings: &mappings,
            items: &items,
            member: member.map(|id| ExistingMember { id }),
            test_mode: TestModePolicy::Process,
            cancellation,
            now: T0 + 400 * 86_400,
            new_member_id: MemberId::new(),
        });
        if let Some(m) = &p.member {
            member = Some(m.id);
        }
        for w in &p.items {
            let before = items.get(&w.product);
            if before.is_some_and(|s| s.status == ItemStatus::Revoked) {
                assert_eq!(w.status, ItemStatus::Revoked, "a revoked item came back");
            }
            let state = w.applied_to(before);
            items.insert(w.product.clone(), state);
        }
        let mut granted: Vec<_> = p
            .effects
            .iter()
            .filter(|e| e.kind == larder_access::engine::EffectKind::Granted)
            .map(|e| (e.product.clone(), e.access_level_id))
            .collect();
        let n = granted.len();
        granted.sort_by_key(|(p, l)| {
            (
                p.as_ref().map(ToString::to_string),
                l.map(|l| l.to_string()),
            )
        });
        granted.dedup();
        assert_eq!(granted.len(), n, "a plan granted a level twice");
    }
});
