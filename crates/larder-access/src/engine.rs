//! The access engine: one delivery plus the current state of its order in, a plan out.
//!
//! No I/O and no clock: the store reads the state inside its transaction, calls [`plan`],
//! and writes the plan in the same transaction, so concurrent deliveries for one order see
//! each other's effects. Every purchased item of an order (`order_id` + typed key) has one
//! [`ItemState`]; its grants (one per mapped access level) share its status.
//!
//! Ordering rules (deliveries may arrive late or out of order; event times decide):
//! - a cancellation or a refund revokes for good: no payment, purchase or resume brings the
//!   item back, whenever they arrive;
//! - a pause, resume or payment older than the item's last status change changes nothing
//!   (a pause followed by a late older payment stays paused);
//! - a purchase arriving after a later cancellation of the same item creates the member
//!   and the grants, already revoked.

use std::collections::HashMap;

use crate::thrivecart::{Action, Delivery, Mode};
use crate::{AccessLevelId, CancellationPolicy, Email, MemberId, ProductKey, TestModePolicy};

crate::string_enum! {
    /// The status of a purchased item, and so of its grants.
    pub enum ItemStatus("item status") {
        Active => "active",
        Paused => "paused",
        Revoked => "revoked",
    }
}

/// What is known of one purchased item of an order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ItemState {
    pub status: ItemStatus,
    /// Event time (unix seconds) of the delivery that set `status`.
    pub status_at: i64,
    pub past_due: bool,
    /// `None` for an item a lifecycle event told of before its purchase arrived.
    pub member_id: Option<MemberId>,
    /// The levels its grants give.
    pub levels: Vec<AccessLevelId>,
    /// When a period-end cancellation revokes it.
    pub revoke_at: Option<i64>,
    pub subscription_id: Option<String>,
    /// Event time of the latest payment fact (the purchase, a renewal, a failed rebill):
    /// an older one arriving late does not overrule it.
    pub payment_at: Option<i64>,
}

/// The member a purchase's email already belongs to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExistingMember {
    pub id: MemberId,
}

/// Everything [`plan`] needs.
#[derive(Debug, Clone)]
pub struct PlanInput<'a> {
    pub delivery: &'a Delivery,
    /// The app's mappings: typed key → levels.
    pub mappings: &'a HashMap<ProductKey, Vec<AccessLevelId>>,
    /// The current state of the delivery's order, per item.
    pub items: &'a HashMap<ProductKey, ItemState>,
    /// The member the purchase's email belongs to, if any.
    pub member: Option<ExistingMember>,
    pub test_mode: TestModePolicy,
    pub cancellation: CancellationPolicy,
    /// The time now (unix seconds); also the event time of a delivery that carries none.
    pub now: i64,
    /// The id to give a member this delivery creates.
    pub new_member_id: MemberId,
}

crate::string_enum! {
    /// The outcome of a delivery in the activity log.
    pub enum PlanStatus("plan status") {
        Applied => "applied",
        Ignored => "ignored",
        Unmapped => "unmapped",
    }
}

/// A member to create or update. Blank names never overwrite stored ones.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberWrite {
    pub id: MemberId,
    pub email: Email,
    pub name: Option<String>,
    pub thrivecart_customer_id: Option<String>,
    pub test: bool,
    pub create: bool,
}

/// The new state of one item; its grants are brought in line with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ItemWrite {
    pub product: ProductKey,
    pub status: ItemStatus,
    pub status_at: i64,
    pub past_due: bool,
    pub member_id: Option<MemberId>,
    pub revoke_at: Option<i64>,
    pub subscription_id: Option<String>,
    pub payment_at: Option<i64>,
    /// Levels whose grants must exist (created with `status` when missing).
    pub grant_levels: Vec<AccessLevelId>,
    pub test: bool,
}

crate::string_enum! {
    /// What a delivery did to a member.
    pub enum EffectKind("effect kind") {
        /// The purchase created the member.
        MemberCreated => "member_created",
        /// An access level was granted.
        Granted => "granted",
        /// A pause suspended a grant.
        Paused => "paused",
        /// A resume or a renewal after a failed payment restored a grant.
        Restored => "restored",
        /// A cancellation or a refund revoked a grant.
        Revoked => "revoked",
        /// A renewal payment failed; access stays until a cancellation.
        PastDue => "past_due",
    }
}

/// One thing a delivery did, as the activity log keeps it: `{kind, member_id,
/// access_level_id?, product?}`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Effect {
    pub kind: EffectKind,
    pub member_id: MemberId,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub access_level_id: Option<AccessLevelId>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub product: Option<ProductKey>,
}

/// What one delivery should change. Written atomically by a store, or not at all.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    pub status: PlanStatus,
    pub message: String,
    pub member: Option<MemberWrite>,
    pub items: Vec<ItemWrite>,
    pub effects: Vec<Effect>,
}

impl Plan {
    fn nothing(status: PlanStatus, message: impl Into<String>) -> Self {
        Self {
            status,
            message: message.into(),
            member: None,
            items: Vec::new(),
            effects: Vec::new(),
        }
    }
}

fn keys(items: &[ProductKey]) -> String {
    items
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

/// Decides what `input.delivery` changes.
pub fn plan(input: &PlanInput<'_>) -> Plan {
    let d = input.delivery;
    if d.mode == Mode::Test && input.test_mode == TestModePolicy::Ignore {
        return Plan::nothing(
            PlanStatus::Ignored,
            "Test-mode delivery ignored (the app's test_mode is `ignore`).",
        );
    }
    let at = d.occurred_at.unwrap_or(input.now);
    let order = d.order_id.as_deref().unwrap_or_default();
    match &d.action {
        Action::NoAccessChange => Plan::nothing(
            PlanStatus::Ignored,
            format!("`{}` does not change access.", d.event),
        ),
        Action::Purchase {
            items,
            subscriptions,
        } => purchase(input, items, subscriptions, at),
        Action::Renewal { item } => lifecycle(input, item, order, at, Change::Renewal),
        Action::Cancellation { item, period_end } => {
            let change = match (input.cancellation, period_end) {
                (CancellationPolicy::PeriodEnd, Some(end)) if *end > input.now => {
                    Change::RevokeAt(*end)
                }
                _ => Change::Revoke("cancelled"),
            };
            lifecycle(input, item, order, at, change)
        }
        Action::Refund { item } => lifecycle(input, item, order, at, Change::Revoke("refunded")),
        Action::Pause { item } => lifecycle(input, item, order, at, Change::Pause),
        Action::Resume { item } => lifecycle(input, item, order, at, Change::Resume),
        Action::RebillFailed { item } => lifecycle(input, item, order, at, Change::PastDue),
    }
}

fn purchase(
    input: &PlanInput<'_>,
    items: &[ProductKey],
    subscriptions: &[(ProductKey, String)],
    at: i64,
) -> Plan {
    let d = input.delivery;
    let Some(customer) = &d.customer else {
        // parse_delivery refuses a purchase without a customer; be safe anyway.
        return Plan::nothing(PlanStatus::Ignored, "The purchase names no customer.");
    };
    let (mapped, unmapped): (Vec<&ProductKey>, Vec<&ProductKey>) = items
        .iter()
        .partition(|key| input.mappings.get(*key).is_some_and(|l| !l.is_empty()));
    if mapped.is_empty() {
        return Plan::nothing(
            PlanStatus::Unmapped,
            format!(
                "No access level is mapped to {}; map it and replay this delivery.",
                keys(items)
            ),
        );
    }
    let test = d.mode == Mode::Test;
    let (member_id, create) = match &input.member {
        Some(m) => (m.id, false),
        None => (input.new_member_id, true),
    };
    let mut plan = Plan {
        status: PlanStatus::Applied,
        message: String::new(),
        member: Some(MemberWrite {
            id: member_id,
            email: customer.email.clone(),
            name: customer.name.clone(),
            thrivecart_customer_id: customer.thrivecart_id.clone(),
            test,
            create,
        }),
        items: Vec::new(),
        effects: Vec::new(),
    };
    if create {
        plan.effects.push(Effect {
            kind: EffectKind::MemberCreated,
            member_id,
            access_level_id: None,
            product: None,
        });
    }
    let mut notes = Vec::new();
    for key in mapped {
        let levels = input.mappings.get(key).cloned().unwrap_or_default();
        let subscription_id = subscriptions
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, id)| id.clone());
        let payment_at = Some(
            input
                .items
                .get(key)
                .and_then(|s| s.payment_at)
                .map_or(at, |p| p.max(at)),
        );
        let (status, status_at, past_due, revoke_at, known_levels, subscription_id) =
            match input.items.get(key) {
                None => (
                    ItemStatus::Active,
                    at,
                    false,
                    None,
                    Vec::new(),
                    subscription_id,
                ),
                Some(s) => {
                    if s.status != ItemStatus::Active && s.status_at >= at {
                        notes.push(format!(
                            "{key} was already {} by a later delivery",
                            s.status.as_str()
                        ));
                    }
                    (
                        s.status,
                        s.status_at.max(at),
                        s.past_due,
                        s.revoke_at,
                        s.levels.clone(),
                        subscription_id.or_else(|| s.subscription_id.clone()),
                    )
                }
            };
        for level in &levels {
            if !known_levels.contains(level) && status == ItemStatus::Active {
                plan.effects.push(Effect {
                    kind: EffectKind::Granted,
                    member_id,
                    access_level_id: Some(*level),
                    product: Some(key.clone()),
                });
            }
        }
        plan.items.push(ItemWrite {
            product: key.clone(),
            status,
            status_at,
            past_due,
            member_id: Some(member_id),
            revoke_at,
            subscription_id,
            payment_at,
            grant_levels: levels,
            test,
        });
    }
    let granted = plan
        .effects
        .iter()
        .filter(|e| e.kind == EffectKind::Granted)
        .count();
    let mut message = format!("Purchase applied: {granted} grant(s).");
    if !unmapped.is_empty() {
        let unmapped: Vec<ProductKey> = unmapped.into_iter().cloned().collect();
        message.push_str(&format!(" Unmapped: {}.", keys(&unmapped)));
    }
    for note in notes {
        message.push_str(&format!(" {note}."));
    }
    plan.message = message;
    plan
}

#[derive(Debug, Clone, Copy)]
enum Change {
    Renewal,
    Revoke(&'static str),
    RevokeAt(i64),
    Pause,
    Resume,
    PastDue,
}

fn lifecycle(
    input: &PlanInput<'_>,
    key: &ProductKey,
    order: &str,
    at: i64,
    change: Change,
) -> Plan {
    let mapped = input.mappings.get(key).is_some_and(|l| !l.is_empty());
    let Some(state) = input.items.get(key) else {
        if !mapped {
            return Plan::nothing(
                PlanStatus::Unmapped,
                format!("No access level is mapped to {key}, and no purchase of it is known."),
            );
        }
        // The purchase has not arrived yet. Remember what happened, so the purchase,
        // when it comes, starts from here.
        let (status, revoke_at) = match change {
            Change::Revoke(_) => (ItemStatus::Revoked, None),
            Change::Pause => (ItemStatus::Paused, None),
            // Access until the end of the paid period, whenever the purchase arrives.
            Change::RevokeAt(end) => (ItemStatus::Active, Some(end)),
            _ => {
                return Plan::nothing(
                    PlanStatus::Ignored,
                    format!("No purchase of {key} in order {order} is known yet."),
                );
            }
        };
        let what = match revoke_at {
            Some(end) => format!("cancelled at the end of the paid period ({end})"),
            None => status.as_str().to_owned(),
        };
        let mut plan = Plan::nothing(
            PlanStatus::Applied,
            format!("{key} in order {order} recorded as {what} before its purchase arrived."),
        );
        plan.items.push(ItemWrite {
            product: key.clone(),
            status,
            status_at: at,
            past_due: false,
            member_id: None,
            revoke_at,
            subscription_id: None,
            payment_at: None,
            grant_levels: Vec::new(),
            test: input.delivery.mode == Mode::Test,
        });
        return plan;
    };

    let ignored = |why: String| Plan::nothing(PlanStatus::Ignored, why);
    let mut next = ItemWrite {
        product: key.clone(),
        status: state.status,
        status_at: state.status_at,
        past_due: state.past_due,
        member_id: state.member_id,
        revoke_at: state.revoke_at,
        subscription_id: state.subscription_id.clone(),
        payment_at: state.payment_at,
        grant_levels: Vec::new(),
        test: input.delivery.mode == Mode::Test,
    };
    let (kind, message) = match change {
        _ if state.status == ItemStatus::Revoked => {
            return ignored(format!("{key} in order {order} is already revoked."));
        }
        Change::Revoke(how) => {
            next.status = ItemStatus::Revoked;
            next.status_at = state.status_at.max(at);
            next.revoke_at = None;
            (
                Some(EffectKind::Revoked),
                format!("{key} {how}: access revoked."),
            )
        }
        Change::RevokeAt(end) => {
            next.revoke_at = Some(end);
            (
                None,
                format!("{key} cancelled: access ends at the end of the paid period ({end})."),
            )
        }
        _ if at < state.status_at => {
            return ignored(format!(
                "Older than the {} of {key} already applied; nothing changes.",
                match state.status {
                    ItemStatus::Paused => "pause",
                    _ => "latest change",
                }
            ));
        }
        Change::Renewal | Change::PastDue if state.payment_at.is_some_and(|p| at < p) => {
            return ignored(format!(
                "Older than the latest payment of {key} already applied; nothing changes."
            ));
        }
        Change::Renewal => match state.status {
            ItemStatus::Active if state.past_due => {
                next.past_due = false;
                next.payment_at = Some(at);
                (
                    Some(EffectKind::Restored),
                    format!("{key} renewed: back in good standing."),
                )
            }
            ItemStatus::Active => {
                next.payment_at = Some(at);
                (None, format!("{key} renewed: access kept."))
            }
            _ => return ignored(format!("{key} is paused; a payment does not resume it.")),
        },
        Change::Pause => match state.status {
            ItemStatus::Active => {
                next.status = ItemStatus::Paused;
                next.status_at = at;
                (Some(EffectKind::Paused), format!("{key} paused."))
            }
            _ => return ignored(format!("{key} is already paused.")),
        },
        Change::Resume => match state.status {
            ItemStatus::Paused => {
                next.status = ItemStatus::Active;
                next.status_at = at;
                (
                    Some(EffectKind::Restored),
                    format!("{key} resumed: access restored."),
                )
            }
            _ => return ignored(format!("{key} is not paused.")),
        },
        Change::PastDue => {
            if state.status != ItemStatus::Active || state.past_due {
                return ignored(format!("{key} is already past due or not active."));
            }
            next.past_due = true;
            next.payment_at = Some(at);
            (
                Some(EffectKind::PastDue),
                format!("{key}: a payment failed; access kept until a cancellation arrives."),
            )
        }
    };
    let mut plan = Plan::nothing(PlanStatus::Applied, message);
    if let (Some(kind), Some(member_id)) = (kind, state.member_id) {
        for level in &state.levels {
            plan.effects.push(Effect {
                kind,
                member_id,
                access_level_id: Some(*level),
                product: Some(key.clone()),
            });
        }
    }
    plan.items.push(next);
    plan
}
