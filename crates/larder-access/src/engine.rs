//! The access engine: one delivery plus the current state of its order in, a plan out.
//!
//! No I/O and no clock: the store reads the state inside its transaction, calls [`plan`],
//! and writes the plan in the same transaction, so concurrent deliveries for one order see
//! each other's effects. Every purchased item of an order (`order_id` + typed key) has one
//! [`ItemState`]; its grants (one per mapped access level) share its status.
//!
//! Ordering (deliveries arrive late, retried, in any order; event times decide). Every
//! lifecycle fact is remembered with its event time, whether or not it changes access when
//! it arrives, and the item's state is a function of the facts known, so any arrival order
//! of the same deliveries ends in the same state:
//! - a cancellation or a refund revokes for good: no payment, purchase or resume brings the
//!   item back, whenever they arrive;
//! - otherwise the latest of its pauses and resumes decides whether it is paused (a resume
//!   wins a tie);
//! - the latest of its payment facts (the purchase, renewals, failed rebills) decides whether
//!   it is past due (a payment that went through wins a tie);
//! - a period-end cancellation ends access at the latest period end named;
//! - facts that arrive before their purchase are kept, and the purchase starts from them; a
//!   renewal of an order Larder never saw is taken as the purchase it missed.

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
    /// Event time of the latest pause, and of the latest resume, kept whatever the status
    /// was when they arrived.
    pub paused_at: Option<i64>,
    pub resumed_at: Option<i64>,
}

impl ItemState {
    /// Whether its status disagrees with its facts: only a release that kept no lifecycle
    /// times writes that (one still running during a rolling upgrade, or rolled back to).
    fn contradicts_itself(&self) -> bool {
        let pausing_now = pausing(self.paused_at, self.resumed_at).is_some();
        match self.status {
            ItemStatus::Paused => !pausing_now,
            ItemStatus::Active => pausing_now,
            ItemStatus::Revoked => false,
        }
    }

    /// The item with facts that agree with its status, which is the authority: paused at its
    /// status time (after any resume known), or resumed then (after any pause known).
    fn settled(&self) -> Self {
        let mut settled = self.clone();
        match self.status {
            ItemStatus::Paused if self.contradicts_itself() => {
                let after_resume = self.resumed_at.map_or(self.status_at, |r| r + 1);
                settled.paused_at = Some(self.status_at.max(after_resume));
            }
            ItemStatus::Active if self.contradicts_itself() => {
                let paused = self.paused_at.unwrap_or(self.status_at);
                settled.resumed_at = Some(self.status_at.max(paused));
            }
            _ => {}
        }
        settled
    }

    /// What a lifecycle fact that arrives before anything else of its item starts from.
    fn unknown(at: i64) -> Self {
        Self {
            status: ItemStatus::Active,
            status_at: at,
            past_due: false,
            member_id: None,
            levels: Vec::new(),
            revoke_at: None,
            subscription_id: None,
            payment_at: None,
            paused_at: None,
            resumed_at: None,
        }
    }
}

/// The time of the pause that keeps an item paused: the latest pause, unless a resume as
/// late or later came after it.
fn pausing(paused_at: Option<i64>, resumed_at: Option<i64>) -> Option<i64> {
    paused_at.filter(|p| resumed_at.is_none_or(|r| *p > r))
}

/// The latest of two optional times.
fn latest(known: Option<i64>, at: i64) -> Option<i64> {
    Some(known.map_or(at, |k| k.max(at)))
}

/// A payment fact at `at` (`failed` or not) merged into the latest one known: the later
/// wins, and at the same time one that went through wins. Returns `(payment_at, past_due)`.
fn merge_payment(
    payment_at: Option<i64>,
    past_due: bool,
    at: i64,
    failed: bool,
) -> (Option<i64>, bool) {
    match payment_at {
        Some(p) if at < p => (Some(p), past_due),
        Some(p) if at == p => (Some(p), past_due && failed),
        _ => (Some(at), failed),
    }
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
    pub paused_at: Option<i64>,
    pub resumed_at: Option<i64>,
    /// Levels whose grants must exist (created with `status` when missing).
    pub grant_levels: Vec<AccessLevelId>,
    pub test: bool,
}

impl ItemWrite {
    /// The item's state once this write is applied over `before`, as a store keeps it: the
    /// write's facts, and the levels it had plus those granted (when there is a member).
    pub fn applied_to(&self, before: Option<&ItemState>) -> ItemState {
        let mut levels = before.map(|s| s.levels.clone()).unwrap_or_default();
        if self.member_id.is_some() {
            for l in &self.grant_levels {
                if !levels.contains(l) {
                    levels.push(*l);
                }
            }
        }
        ItemState {
            status: self.status,
            status_at: self.status_at,
            past_due: self.past_due,
            member_id: self.member_id,
            levels,
            revoke_at: self.revoke_at,
            subscription_id: self.subscription_id.clone(),
            payment_at: self.payment_at,
            paused_at: self.paused_at,
            resumed_at: self.resumed_at,
        }
    }
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
    if input.items.values().any(ItemState::contradicts_itself) {
        let settled: HashMap<ProductKey, ItemState> = input
            .items
            .iter()
            .map(|(key, state)| (key.clone(), state.settled()))
            .collect();
        return plan(&PlanInput {
            items: &settled,
            ..input.clone()
        });
    }
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
        Action::Renewal { item } => {
            let known = input.items.get(item).is_some_and(|s| s.member_id.is_some());
            let mapped = input.mappings.get(item).is_some_and(|l| !l.is_empty());
            if !known && mapped && d.customer.is_some() {
                // A payment names the customer and the product: the purchase Larder missed
                // (an account connected after its subscribers bought, a lost delivery).
                let mut plan = purchase(input, std::slice::from_ref(item), &[], at);
                plan.message = format!(
                    "Renewal of {item} in order {order}, whose purchase Larder never \
                     received: taken as that purchase. {}",
                    plan.message
                );
                return plan;
            }
            lifecycle(input, item, order, at, Change::Renewal)
        }
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
        let (status, status_at, past_due, payment_at, revoke_at, known_levels, subscription_id) =
            match input.items.get(key) {
                None => (
                    ItemStatus::Active,
                    at,
                    false,
                    Some(at),
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
                    let (payment_at, past_due) = merge_payment(s.payment_at, s.past_due, at, false);
                    // Active since the purchase, unless a resume says since when.
                    let status_at = match s.status {
                        ItemStatus::Active if s.resumed_at.is_none() => at,
                        _ => s.status_at,
                    };
                    (
                        s.status,
                        status_at,
                        past_due,
                        payment_at,
                        s.revoke_at,
                        s.levels.clone(),
                        subscription_id.or_else(|| s.subscription_id.clone()),
                    )
                }
            };
        let (paused_at, resumed_at) = input
            .items
            .get(key)
            .map_or((None, None), |s| (s.paused_at, s.resumed_at));
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
            paused_at,
            resumed_at,
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

impl Change {
    /// The fact, in words, for messages.
    fn fact(self) -> &'static str {
        match self {
            Change::Renewal => "a renewal",
            Change::Revoke("refunded") => "a refund",
            Change::Revoke(_) => "a cancellation",
            Change::RevokeAt(_) => "a cancellation at the end of the paid period",
            Change::Pause => "a pause",
            Change::Resume => "a resume",
            Change::PastDue => "a failed payment",
        }
    }
}

fn lifecycle(
    input: &PlanInput<'_>,
    key: &ProductKey,
    order: &str,
    at: i64,
    change: Change,
) -> Plan {
    let mapped = input.mappings.get(key).is_some_and(|l| !l.is_empty());
    let blank;
    let state = match input.items.get(key) {
        Some(state) => state,
        None if !mapped => {
            return Plan::nothing(
                PlanStatus::Unmapped,
                format!("No access level is mapped to {key}, and no purchase of it is known."),
            );
        }
        None => {
            blank = ItemState::unknown(at);
            &blank
        }
    };
    let mut next = ItemWrite {
        product: key.clone(),
        status: state.status,
        status_at: state.status_at,
        past_due: state.past_due,
        member_id: state.member_id,
        revoke_at: state.revoke_at,
        subscription_id: state.subscription_id.clone(),
        payment_at: state.payment_at,
        paused_at: state.paused_at,
        resumed_at: state.resumed_at,
        grant_levels: Vec::new(),
        test: input.delivery.mode == Mode::Test,
    };
    // Remember the fact, whatever it changes now.
    match change {
        Change::Revoke(_) => {
            next.status_at = if state.status == ItemStatus::Revoked {
                state.status_at.max(at)
            } else {
                at
            };
            next.status = ItemStatus::Revoked;
            next.revoke_at = None;
        }
        Change::RevokeAt(end) if state.status != ItemStatus::Revoked => {
            next.revoke_at = latest(state.revoke_at, end);
        }
        Change::RevokeAt(_) => {}
        Change::Pause => next.paused_at = latest(state.paused_at, at),
        Change::Resume => next.resumed_at = latest(state.resumed_at, at),
        Change::Renewal | Change::PastDue => {
            let failed = matches!(change, Change::PastDue);
            (next.payment_at, next.past_due) =
                merge_payment(state.payment_at, state.past_due, at, failed);
        }
    }
    // What the facts now say.
    if next.status != ItemStatus::Revoked {
        match pausing(next.paused_at, next.resumed_at) {
            Some(paused) => {
                next.status = ItemStatus::Paused;
                next.status_at = paused;
            }
            None => {
                next.status = ItemStatus::Active;
                if let Some(resumed) = next.resumed_at {
                    next.status_at = resumed;
                }
            }
        }
    }

    if state.member_id.is_none() {
        let what = match (next.status, next.revoke_at) {
            (ItemStatus::Active, Some(end)) => {
                format!("cancelled at the end of the paid period ({end})")
            }
            (status, _) => status.as_str().to_owned(),
        };
        let mut plan = Plan::nothing(
            PlanStatus::Applied,
            format!(
                "{key} in order {order}: {} recorded before its purchase arrived; it stands \
                 as {what} so far.",
                change.fact()
            ),
        );
        plan.items.push(next);
        return plan;
    }

    // What changed for the member's access, and so the effects.
    let kind = if next.status != state.status {
        Some(match next.status {
            ItemStatus::Revoked => EffectKind::Revoked,
            ItemStatus::Paused => EffectKind::Paused,
            ItemStatus::Active => EffectKind::Restored,
        })
    } else if next.status == ItemStatus::Active && next.past_due != state.past_due {
        // (A paused item's payment standing changes nothing of its access until it resumes.)
        Some(if next.past_due {
            EffectKind::PastDue
        } else {
            EffectKind::Restored
        })
    } else {
        None
    };
    let message = match (kind, change) {
        (Some(EffectKind::Revoked), Change::Revoke(how)) => {
            format!("{key} {how}: access revoked.")
        }
        (Some(EffectKind::Paused), _) => format!("{key} paused."),
        (Some(EffectKind::Restored), Change::Resume) if next.past_due => format!(
            "{key} resumed: access restored; a payment failed while it was paused, so it is \
             past due (access kept until a cancellation arrives)."
        ),
        (Some(EffectKind::Restored), Change::Resume) => {
            format!("{key} resumed: access restored.")
        }
        (Some(EffectKind::Restored), _) => format!("{key} renewed: back in good standing."),
        (Some(EffectKind::PastDue), _) => {
            format!("{key}: a payment failed; access kept until a cancellation arrives.")
        }
        (_, Change::RevokeAt(end)) if next.revoke_at != state.revoke_at => {
            format!("{key} cancelled: access ends at the end of the paid period ({end}).")
        }
        (_, Change::Renewal)
            if next.payment_at != state.payment_at && next.status == ItemStatus::Active =>
        {
            format!("{key} renewed: access kept.")
        }
        _ => {
            let why = match next.status {
                ItemStatus::Revoked => "it is revoked".to_owned(),
                ItemStatus::Paused => {
                    format!("a pause as late or later stands ({})", next.status_at)
                }
                ItemStatus::Active => match change {
                    Change::Renewal | Change::PastDue => {
                        "a payment fact as late or later stands".to_owned()
                    }
                    Change::Pause => {
                        format!("a resume as late or later stands ({})", next.status_at)
                    }
                    _ => "it is active".to_owned(),
                },
            };
            let mut plan = Plan::nothing(
                PlanStatus::Ignored,
                format!(
                    "{key} in order {order}: {} remembered; nothing changes now, since {why}.",
                    change.fact()
                ),
            );
            plan.items.push(next);
            return plan;
        }
    };
    let mut plan = Plan::nothing(PlanStatus::Applied, message);
    if let (Some(kind), Some(member_id)) = (kind, state.member_id) {
        // Back from a pause past due: both are news.
        let resumed_past_due =
            kind == EffectKind::Restored && state.status == ItemStatus::Paused && next.past_due;
        let kinds: &[EffectKind] = if resumed_past_due {
            &[EffectKind::Restored, EffectKind::PastDue]
        } else {
            &[kind]
        };
        for kind in kinds {
            for level in &state.levels {
                plan.effects.push(Effect {
                    kind: *kind,
                    member_id,
                    access_level_id: Some(*level),
                    product: Some(key.clone()),
                });
            }
        }
    }
    plan.items.push(next);
    plan
}
