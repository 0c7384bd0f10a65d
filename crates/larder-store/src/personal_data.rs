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

/// Removes a member's personal data from one stored delivery, returning whether anything
/// changed. `theirs` says the delivery is the member's own (its customer is them, or its
/// effects name them): then its customer fields go, and any string that is exactly their
/// name. In every delivery, theirs or another's, a string that holds their email address
/// becomes [`ERASED`]: a whole kept raw body (of an undecodable delivery) included. Another
/// customer's data stays: an address is matched whole, so erasing `an@example.com` leaves
/// `jordan@example.com` alone.
pub fn erase_personal_data(
    payload: &mut Value,
    theirs: bool,
    email: &Email,
    name: Option<&str>,
) -> bool {
    let name = name
        .map(str::trim)
        .filter(|n| theirs && n.chars().count() >= 3);
    let mut changed = false;
    if theirs && let Value::Object(fields) = payload {
        for key in CUSTOMER_FIELDS {
            if let Some(value) = fields.get_mut(key)
                && *value != Value::String(ERASED.into())
            {
                *value = Value::String(ERASED.into());
                changed = true;
            }
        }
    }
    erase_strings(payload, email.as_str(), name, &mut changed);
    changed
}

fn erase_strings(value: &mut Value, email: &str, name: Option<&str>, changed: &mut bool) {
    match value {
        Value::String(text) => {
            let is_name = name.is_some_and(|n| text.trim().eq_ignore_ascii_case(n));
            if text != ERASED && (is_name || holds_address(text, email)) {
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

/// Whether `text` holds the address `email` (already lowercased) as a whole address, as it
/// is or percent-decoded (kept raw bodies are form-encoded: `%40`, `%2B`).
pub fn holds_address(text: &str, email: &str) -> bool {
    let lower = text.to_lowercase();
    holds_whole(&lower, email) || holds_whole(&percent_decoded(&lower), email)
}

fn holds_whole(text: &str, email: &str) -> bool {
    let local = |c: char| c.is_alphanumeric() || matches!(c, '.' | '_' | '%' | '+' | '-');
    let mut from = 0;
    while let Some(found) = text[from..].find(email) {
        let at = from + found;
        let end = at + email.len();
        let before = text[..at].chars().next_back();
        let mut after = text[end..].chars();
        let next = after.next();
        // A dot that ends a sentence is no part of the domain.
        let continues = match next {
            Some('.') => after.next().is_some_and(char::is_alphanumeric),
            Some(c) => c.is_alphanumeric() || c == '-',
            None => false,
        };
        if !before.is_some_and(local) && !continues {
            return true;
        }
        from = at + email.chars().next().map_or(1, char::len_utf8);
    }
    false
}

/// `%XX` decoded and `+` read as a space, as a form body means them; anything else kept.
fn percent_decoded(text: &str) -> String {
    let bytes = text.as_bytes();
    let hex = |b: u8| (b as char).to_digit(16);
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' if i + 2 < bytes.len() => match (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                (Some(high), Some(low)) => {
                    out.push((high * 16 + low) as u8);
                    i += 3;
                    continue;
                }
                _ => out.push(b'%'),
            },
            b'+' => out.push(b' '),
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
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
            "order": {"notes": ["ship to jordan.ellis@example.com."], "total": "2900"},
            "fulfillment": {"recipient": "Jordan Ellis"},
            "affiliate": {"name": "Sam Affiliate", "email": "sam@example.com"},
        });
        assert!(erase_personal_data(
            &mut doc,
            true,
            &email,
            Some("Jordan Ellis")
        ));
        assert_eq!(
            doc,
            json!({
                "event": "order.success",
                "customer": ERASED,
                "customer_id": ERASED,
                "order": {"notes": [ERASED], "total": "2900"},
                "fulfillment": {"recipient": ERASED},
                "affiliate": {"name": "Sam Affiliate", "email": "sam@example.com"},
            })
        );
        // Erasing again changes nothing.
        assert!(!erase_personal_data(
            &mut doc,
            true,
            &email,
            Some("Jordan Ellis")
        ));
        // A kept raw body goes whole, whatever the form encoding spelled.
        let plus = Email::parse("jo+shop@example.com").unwrap();
        let mut raw = json!({"raw": "customer%5Bemail%5D=jo%2Bshop%40example.com&x=1"});
        assert!(erase_personal_data(&mut raw, false, &plus, None));
        assert_eq!(raw, json!({"raw": ERASED}));
    }

    #[test]
    fn another_customers_data_stays() {
        // The affiliate of someone else's purchase is named there, and only that goes.
        let sam = Email::parse("sam@example.com").unwrap();
        let mut theirs = json!({
            "customer": {"email": "river@example.org", "name": "River Okafor"},
            "affiliate": {"email": "sam@example.com", "name": "Sam Affiliate"},
        });
        assert!(erase_personal_data(
            &mut theirs,
            false,
            &sam,
            Some("Sam Affiliate")
        ));
        assert_eq!(
            theirs,
            json!({
                "customer": {"email": "river@example.org", "name": "River Okafor"},
                "affiliate": {"email": ERASED, "name": "Sam Affiliate"},
            })
        );
        // An address is matched whole: `an@example.com` is not in `jordan@example.com`.
        let an = Email::parse("an@example.com").unwrap();
        for text in [
            "jordan@example.com",
            "an@example.community",
            "x.an@example.com",
        ] {
            assert!(!holds_address(text, an.as_str()), "{text}");
        }
        for text in [
            "an@example.com",
            "to: an@example.com.",
            "<an@example.com>",
            "e=an%40example.com",
        ] {
            assert!(holds_address(text, an.as_str()), "{text}");
        }
    }
}
