//! ThriveCart deliveries as Larder understands them.
//!
//! A delivery arrives as a decoded document (`serde_json::Value`, whichever encoding it came
//! in). [`parse_delivery`] turns it into a [`Delivery`]: the event, its time, the customer and
//! the typed product keys it concerns. Every scalar is a string on the wire and the literal
//! `"null"` means absent; ids stay strings (customer ids exceed 2^53).

use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::{Email, ProductKey};

/// The field carrying the secret word.
pub const SECRET_FIELD: &str = "thrivecart_secret";

/// The most distinct items one delivery may name (a purchase's products, bumps, upsells
/// and downsells; its subscriptions). A real order has a handful; more is refused as
/// invalid rather than planned, so a hostile body cannot make one delivery expensive.
pub const MAX_ITEMS_PER_DELIVERY: usize = 100;

crate::string_enum! {
    /// Live or test mode (`mode` / `mode_int`).
    pub enum Mode("delivery mode") {
        Live => "live",
        Test => "test",
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Customer {
    pub email: Email,
    /// `None` when ThriveCart sent a blank name (`" "`).
    pub name: Option<String>,
    /// ThriveCart's customer id, kept as a string.
    pub thrivecart_id: Option<String>,
}

/// What a delivery asks of the access engine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// `order.success`: grant every purchased item.
    Purchase {
        items: Vec<ProductKey>,
        /// ThriveCart's subscription id per item (`subscription_ids`).
        subscriptions: Vec<(ProductKey, String)>,
    },
    /// `order.subscription_payment`: a renewal of `item`.
    Renewal {
        item: ProductKey,
    },
    /// `order.subscription_cancelled`; `period_end` is the end of the paid period.
    Cancellation {
        item: ProductKey,
        period_end: Option<i64>,
    },
    Pause {
        item: ProductKey,
    },
    Resume {
        item: ProductKey,
    },
    /// `order.refund` of exactly `item`.
    Refund {
        item: ProductKey,
    },
    /// `order.rebill_failed`: no access change, the grant is past due.
    RebillFailed {
        item: ProductKey,
    },
    /// Affiliate events, abandoned carts, customer updates, unknown events.
    NoAccessChange,
}

/// A decoded, validated delivery.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    pub event: String,
    pub mode: Mode,
    pub order_id: Option<String>,
    pub customer: Option<Customer>,
    /// When the event happened (unix seconds), from the payload; `None` if it carries none.
    pub occurred_at: Option<i64>,
    pub action: Action,
}

impl Delivery {
    /// The typed product keys this delivery names, for the activity log.
    pub fn products(&self) -> Vec<ProductKey> {
        match &self.action {
            Action::Purchase { items, .. } => items.clone(),
            Action::Renewal { item }
            | Action::Cancellation { item, .. }
            | Action::Pause { item }
            | Action::Resume { item }
            | Action::Refund { item }
            | Action::RebillFailed { item } => vec![item.clone()],
            Action::NoAccessChange => Vec::new(),
        }
    }
}

/// Why a delivery cannot be used (answered 400 `invalid_payload`, recorded as `invalid`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InvalidDelivery {
    #[error("the body is not a ThriveCart delivery (expected an object of fields)")]
    NotAnObject,
    #[error("`{event}` needs `{field}`, which is missing or invalid")]
    Missing { event: String, field: &'static str },
    #[error("the delivery names more than {max} items (`{field}`); no order has that many")]
    TooManyItems { field: &'static str, max: usize },
}

/// A string field at `path`, with ThriveCart's `"null"` and blanks read as absent.
pub fn field<'a>(doc: &'a Value, path: &[&str]) -> Option<&'a str> {
    let mut at = doc;
    for key in path {
        at = at.get(key)?;
    }
    let text = match at {
        Value::String(s) => s.as_str(),
        _ => return None,
    };
    let trimmed = text.trim();
    (!trimmed.is_empty() && trimmed != "null").then_some(trimmed)
}

fn number(doc: &Value, path: &[&str]) -> Option<i64> {
    field(doc, path)?.parse().ok()
}

/// The event name, or `None` for a ping (a POST without `event`).
pub fn event_name(doc: &Value) -> Option<&str> {
    field(doc, &["event"])
}

fn mode(doc: &Value) -> Mode {
    declared_mode(doc).unwrap_or(Mode::Live)
}

/// The mode a document declares (`mode` or `mode_int`), `None` when it names none, as a
/// ping may not.
pub fn declared_mode(doc: &Value) -> Option<Mode> {
    match (field(doc, &["mode"]), field(doc, &["mode_int"])) {
        (Some("test"), _) | (_, Some("1")) => Some(Mode::Test),
        (Some(_), _) | (_, Some(_)) => Some(Mode::Live),
        (None, None) => None,
    }
}

/// The customer's name: `name`, else `first_name` and `last_name`, else `firstname` and
/// `lastname` (the spelling of older documents and some recent captures).
fn customer_name(doc: &Value) -> Option<String> {
    let joined = |first: &str, last: &str| {
        let first = field(doc, &["customer", first]).unwrap_or_default();
        let last = field(doc, &["customer", last]).unwrap_or_default();
        let joined = format!("{first} {last}").trim().to_owned();
        (!joined.is_empty()).then_some(joined)
    };
    field(doc, &["customer", "name"])
        .map(str::to_owned)
        .or_else(|| joined("first_name", "last_name"))
        .or_else(|| joined("firstname", "lastname"))
}

fn customer(doc: &Value) -> Option<Customer> {
    let email = Email::parse(field(doc, &["customer", "email"])?).ok()?;
    let name = customer_name(doc);
    Some(Customer {
        email,
        name,
        thrivecart_id: field(doc, &["customer", "id"])
            .or_else(|| field(doc, &["customer_id"]))
            .map(str::to_owned),
    })
}

fn typed_key(doc: &Value, section: &str) -> Option<ProductKey> {
    let kind = field(doc, &[section, "type"])?;
    let id = field(doc, &[section, "id"])?;
    ProductKey::parse(&format!("{kind}-{id}")).ok()
}

/// One place a purchase lists its items, read on demand.
type ItemSource<'a> = dyn Fn() -> Vec<Option<ProductKey>> + 'a;

/// The purchased items of an `order.success`: `purchase_map`, else `purchase_map_flat`, else
/// `order[charges]` (`item_type` + `reference`). Duplicates are dropped, order kept; linear
/// in the entries, and refused beyond [`MAX_ITEMS_PER_DELIVERY`] distinct items.
fn purchased_items(doc: &Value) -> Result<Vec<ProductKey>, InvalidDelivery> {
    let from_map = || -> Vec<Option<ProductKey>> {
        match doc.get("purchase_map") {
            Some(Value::Array(map)) => map
                .iter()
                .map(|entry| entry.as_str().and_then(|s| ProductKey::parse(s).ok()))
                .collect(),
            _ => Vec::new(),
        }
    };
    let from_flat = || -> Vec<Option<ProductKey>> {
        field(doc, &["purchase_map_flat"])
            .map(|flat| {
                flat.split(',')
                    .map(|e| ProductKey::parse(e.trim()).ok())
                    .collect()
            })
            .unwrap_or_default()
    };
    let from_charges = || -> Vec<Option<ProductKey>> {
        match doc.get("order").and_then(|o| o.get("charges")) {
            Some(Value::Array(charges)) => charges
                .iter()
                .map(|charge| {
                    field(charge, &["item_type"])
                        .zip(field(charge, &["reference"]))
                        .and_then(|(kind, id)| ProductKey::parse(&format!("{kind}-{id}")).ok())
                })
                .collect(),
            _ => Vec::new(),
        }
    };
    let sources: [(&'static str, &ItemSource<'_>); 3] = [
        ("purchase_map", &from_map),
        ("purchase_map_flat", &from_flat),
        ("order[charges]", &from_charges),
    ];
    let mut keys: Vec<ProductKey> = Vec::new();
    let mut seen = std::collections::HashSet::new();
    for (name, source) in sources {
        for key in source().into_iter().flatten() {
            if seen.insert(key.clone()) {
                if keys.len() == MAX_ITEMS_PER_DELIVERY {
                    return Err(InvalidDelivery::TooManyItems {
                        field: name,
                        max: MAX_ITEMS_PER_DELIVERY,
                    });
                }
                keys.push(key);
            }
        }
        if !keys.is_empty() {
            break;
        }
    }
    Ok(keys)
}

fn subscriptions(doc: &Value) -> Result<Vec<(ProductKey, String)>, InvalidDelivery> {
    let Some(Value::Object(map)) = doc.get("subscription_ids") else {
        return Ok(Vec::new());
    };
    if map.len() > MAX_ITEMS_PER_DELIVERY {
        return Err(InvalidDelivery::TooManyItems {
            field: "subscription_ids",
            max: MAX_ITEMS_PER_DELIVERY,
        });
    }
    Ok(map
        .iter()
        .filter_map(|(key, id)| {
            let key = ProductKey::parse(key).ok()?;
            let id = id.as_str().filter(|s| !s.is_empty() && *s != "null")?;
            Some((key, id.to_owned()))
        })
        .collect())
}

/// Parses a decoded delivery. `Ok(None)` is a ping: a POST without `event`.
pub fn parse_delivery(doc: &Value) -> Result<Option<Delivery>, InvalidDelivery> {
    if !doc.is_object() {
        return Err(InvalidDelivery::NotAnObject);
    }
    let Some(event) = event_name(doc) else {
        return Ok(None);
    };
    let missing = |field: &'static str| InvalidDelivery::Missing {
        event: event.to_owned(),
        field,
    };
    let order_id = field(doc, &["order_id"])
        .or_else(|| field(doc, &["order", "id"]))
        .map(str::to_owned);
    let customer = customer(doc);
    let lifecycle_time = number(doc, &["date_unix"]);
    let subscription_item = || {
        typed_key(doc, "subscription")
            .ok_or_else(|| missing("subscription[type] and subscription[id]"))
    };

    let (action, occurred_at) = match event {
        "order.success" => {
            if customer.is_none() {
                return Err(missing("customer[email]"));
            }
            order_id.as_ref().ok_or_else(|| missing("order_id"))?;
            let items = purchased_items(doc)?;
            if items.is_empty() {
                return Err(missing("purchase_map"));
            }
            let at = number(doc, &["order_timestamp"])
                .or_else(|| number(doc, &["order", "date_unix"]))
                .or(lifecycle_time);
            (
                Action::Purchase {
                    items,
                    subscriptions: subscriptions(doc)?,
                },
                at,
            )
        }
        "order.subscription_payment"
        | "order.subscription_cancelled"
        | "order.subscription_paused"
        | "order.subscription_resumed"
        | "order.rebill_failed" => {
            order_id.as_ref().ok_or_else(|| missing("order_id"))?;
            let item = subscription_item()?;
            let action = match event {
                "order.subscription_payment" => Action::Renewal { item },
                "order.subscription_cancelled" => Action::Cancellation {
                    item,
                    period_end: number(doc, &["subscription", "billing_period_end"]),
                },
                "order.subscription_paused" => Action::Pause { item },
                "order.subscription_resumed" => Action::Resume { item },
                _ => Action::RebillFailed { item },
            };
            (action, lifecycle_time)
        }
        "order.refund" => {
            order_id.as_ref().ok_or_else(|| missing("order_id"))?;
            let item =
                typed_key(doc, "refund").ok_or_else(|| missing("refund[type] and refund[id]"))?;
            (Action::Refund { item }, lifecycle_time)
        }
        _ => (Action::NoAccessChange, lifecycle_time),
    };
    Ok(Some(Delivery {
        event: event.to_owned(),
        mode: mode(doc),
        order_id,
        customer: match action {
            // Never treat a non-purchase's people (affiliates, cart viewers) as members.
            Action::NoAccessChange => None,
            _ => customer,
        },
        occurred_at,
        action,
    }))
}

/// The idempotency key of a delivery: ThriveCart's `webhook_id` when present, else a digest
/// of what makes a delivery unique (account, event, order, invoice, item, refund,
/// subscription payment, event time, `event_id`). Never the order id alone: every renewal
/// repeats it.
pub fn fingerprint(doc: &Value) -> String {
    if let Some(id) = field(doc, &["webhook_id"]) {
        return format!("webhook:{id}");
    }
    let parts: [&[&str]; 16] = [
        &["thrivecart_account"],
        &["event"],
        &["mode"],
        &["order_id"],
        &["invoice_id"],
        &["event_id"],
        &["subscription_id"],
        &["recurring_payment_idx"],
        &["subscription", "type"],
        &["subscription", "id"],
        &["refund", "type"],
        &["refund", "id"],
        &["refund", "amount"],
        &["date_unix"],
        &["order_timestamp"],
        &["customer", "email"],
    ];
    let mut hasher = Sha256::new();
    for path in parts {
        hasher.update(field(doc, path).unwrap_or("").as_bytes());
        hasher.update([0x1f]);
    }
    let anchored = [
        &["order_id"][..],
        &["event_id"],
        &["date_unix"],
        &["order_timestamp"],
    ]
    .iter()
    .any(|path| field(doc, path).is_some());
    if !anchored {
        // Nothing identifies this delivery: the whole document (secret left out) does.
        let mut rest = doc.clone();
        redact_secret(&mut rest);
        hasher.update(rest.to_string().as_bytes());
    }
    let digest = hasher.finalize();
    let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
    format!("sha256:{hex}")
}

/// `text` without NUL characters, which no stored text may hold (PostgreSQL refuses them,
/// SQLite keeps them): both stores keep the same thing.
pub fn strip_nul(text: &str) -> std::borrow::Cow<'_, str> {
    if text.contains('\0') {
        text.replace('\0', "").into()
    } else {
        text.into()
    }
}

/// Whether any key or text of a document holds a NUL character.
pub fn has_nul(value: &Value) -> bool {
    match value {
        Value::String(text) => text.contains('\0'),
        Value::Array(items) => items.iter().any(has_nul),
        Value::Object(map) => map.iter().any(|(k, v)| k.contains('\0') || has_nul(v)),
        _ => false,
    }
}

/// A document without NUL characters in any key or text.
pub fn strip_nul_json(value: &mut Value) {
    match value {
        Value::String(text) if text.contains('\0') => *text = text.replace('\0', ""),
        Value::Array(items) => items.iter_mut().for_each(strip_nul_json),
        Value::Object(map) => {
            if map.keys().any(|k| k.contains('\0')) {
                let old = std::mem::take(map);
                for (k, v) in old {
                    map.insert(k.replace('\0', ""), v);
                }
            }
            map.values_mut().for_each(strip_nul_json);
        }
        _ => {}
    }
}

impl Delivery {
    /// The delivery without NUL characters in its text.
    pub fn strip_nul(&mut self) {
        let clean = |t: &mut String| {
            if t.contains('\0') {
                *t = t.replace('\0', "");
            }
        };
        clean(&mut self.event);
        if let Some(o) = &mut self.order_id {
            clean(o);
        }
        if let Some(c) = &mut self.customer {
            c.name.iter_mut().for_each(clean);
            c.thrivecart_id.iter_mut().for_each(clean);
        }
        if let Action::Purchase { subscriptions, .. } = &mut self.action {
            subscriptions.iter_mut().for_each(|(_, id)| clean(id));
        }
    }
}

/// Replaces the secret word in a document about to be stored.
pub fn redact_secret(doc: &mut Value) {
    if let Some(secret) = doc.get_mut(SECRET_FIELD) {
        *secret = Value::String("[redacted]".into());
    }
}
