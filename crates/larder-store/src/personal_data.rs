//! Personal data in the activity log: erasing a member's from stored deliveries, and the
//! history of a member's grants as their deliveries tell it. Pure functions, so both
//! backends erase and export alike.

use chrono::{DateTime, Utc};
use larder_access::engine::EffectKind;
use larder_access::{DeliveryId, Email, GrantSource, MemberId};
use serde_json::Value;

use crate::{DeliveryRecord, Grant};

/// What erased values are replaced by.
pub const ERASED: &str = "[erased]";

/// Fields of a ThriveCart delivery that describe its customer, whoever they are.
const CUSTOMER_FIELDS: [&str; 3] = ["customer", "customer_id", "customer_identifier"];

/// Removes a member's personal data from one stored delivery: the customer fields go, and
/// any other string that holds their email, or is exactly their name, becomes [`ERASED`].
/// A kept raw body (of an undecodable delivery) that mentions the email is dropped whole.
/// Returns whether anything changed.
pub fn erase_personal_data(payload: &mut Value, email: &Email, name: Option<&str>) -> bool {
    let email = email.as_str();
    let name = name.map(str::trim).filter(|n| n.chars().count() >= 3);
    let mut changed = false;
    if let Value::Object(fields) = payload {
        for key in CUSTOMER_FIELDS {
            if let Some(value) = fields.get_mut(key)
                && *value != Value::String(ERASED.into())
            {
                *value = Value::String(ERASED.into());
                changed = true;
            }
        }
    }
    erase_strings(payload, email, name, &mut changed);
    changed
}

fn erase_strings(value: &mut Value, email: &str, name: Option<&str>, changed: &mut bool) {
    match value {
        Value::String(text) => {
            // Kept raw bodies are form-encoded: `@` may be `%40`.
            let lower = text.to_lowercase();
            let holds_email = lower.contains(email) || lower.replace("%40", "@").contains(email);
            let is_name = name.is_some_and(|n| text.trim().eq_ignore_ascii_case(n));
            if (holds_email || is_name) && text != ERASED {
                *text = ERASED.into();
                *changed = true;
            }
        }
        Value::Array(items) => {
            for item in items {
                erase_strings(item, email, name, changed);
            }
        }
        Value::Object(fields) => {
            for item in fields.values_mut() {
                erase_strings(item, email, name, changed);
            }
        }
        _ => {}
    }
}

/// One change of a grant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GrantEvent {
    pub at: DateTime<Utc>,
    pub kind: EffectKind,
    /// The delivery that made it; `None` for an admin's manual grant and its revocation.
    pub delivery_id: Option<DeliveryId>,
}

/// The history of `grant`: for a purchase's grant, the effects of the member's deliveries
/// on it (as far back as the activity log is kept); for a manual grant, its creation and,
/// when revoked, its revocation. Oldest first.
pub fn grant_history(
    member: MemberId,
    grant: &Grant,
    activity: &[DeliveryRecord],
) -> Vec<GrantEvent> {
    let mut events: Vec<GrantEvent> = match grant.source {
        GrantSource::Manual => {
            let mut events = vec![GrantEvent {
                at: grant.created_at,
                kind: EffectKind::Granted,
                delivery_id: None,
            }];
            if grant.status == larder_access::engine::ItemStatus::Revoked {
                events.push(GrantEvent {
                    at: grant.updated_at,
                    kind: EffectKind::Revoked,
                    delivery_id: None,
                });
            }
            events
        }
        GrantSource::Thrivecart => activity
            .iter()
            .filter(|d| d.order_id.is_some() && d.order_id == grant.order_id)
            .flat_map(|d| {
                d.effects
                    .iter()
                    .filter(|e| {
                        e.member_id == member
                            && e.access_level_id == Some(grant.access_level_id)
                            && e.product.is_some()
                            && e.product == grant.product
                    })
                    .map(|e| GrantEvent {
                        at: d.received_at,
                        kind: e.kind,
                        delivery_id: Some(d.id),
                    })
            })
            .collect(),
    };
    events.sort_by_key(|e| e.at);
    events
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use serde_json::json;

    #[test]
    fn erasure_takes_the_customer_and_every_mention_of_them() {
        let email = Email::parse("Jordan.Ellis@Example.com").unwrap();
        let mut doc = json!({
            "event": "order.success",
            "customer": {"email": "Jordan.Ellis@Example.COM", "name": "Jordan Ellis"},
            "customer_id": "4295",
            "order": {"notes": ["ship to jordan.ellis@example.com"], "total": "2900"},
            "fulfillment": {"recipient": "Jordan Ellis"},
            "affiliate": {"name": "Sam Affiliate"},
        });
        assert!(erase_personal_data(&mut doc, &email, Some("Jordan Ellis")));
        assert_eq!(
            doc,
            json!({
                "event": "order.success",
                "customer": ERASED,
                "customer_id": ERASED,
                "order": {"notes": [ERASED], "total": "2900"},
                "fulfillment": {"recipient": ERASED},
                "affiliate": {"name": "Sam Affiliate"},
            })
        );
        // Erasing again changes nothing.
        assert!(!erase_personal_data(&mut doc, &email, Some("Jordan Ellis")));
        let mut raw = json!({"raw": "customer%5Bemail%5D=jordan.ellis%40example.com&x=1"});
        assert!(erase_personal_data(&mut raw, &email, None));
        assert_eq!(raw, json!({"raw": ERASED}));
    }
}
