//! Webhook intake as a plain service: decode → verify → dedupe → plan → apply → record.
//!
//! Every delivery that reaches an enabled URL leaves exactly one activity entry, whatever
//! its outcome. A 2xx answer is given only after that entry is committed; when it cannot be
//! (the database is down), the answer is 503 so ThriveCart may retry.

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use larder_access::thrivecart::{self, field, parse_delivery};
use larder_access::{AppId, DeliveryId, Email};
use larder_cache::Cache;
use larder_store::{ApplyDelivery, DeliveryRecord, DeliveryStatus, NewDelivery, Store, StoreError};
use larder_tenancy::{LiveIntegration, Tenancy, secrets};
use serde_json::{Value, json};

use crate::decode::decode_body;

/// How long a processed delivery's fingerprint answers repeats from the cache.
const IDEMPOTENCY_TTL: Duration = Duration::from_secs(24 * 60 * 60);
/// How much of an undecodable body the activity log keeps.
const RAW_KEPT_BYTES: usize = 16 * 1024;

/// An HTTP answer of the intake: status and JSON body.
#[derive(Debug, Clone, PartialEq)]
pub struct Reply {
    pub status: u16,
    pub body: Value,
}

impl Reply {
    fn ok(status: DeliveryStatus, id: DeliveryId) -> Self {
        Self {
            status: 200,
            body: json!({"status": status.as_str(), "delivery_id": id.to_string()}),
        }
    }

    fn error(status: u16, code: &str, message: &str, id: Option<DeliveryId>) -> Self {
        let mut body = json!({"code": code, "message": message});
        if let Some(id) = id {
            body["delivery_id"] = id.to_string().into();
        }
        Self { status, body }
    }

    fn unavailable() -> Self {
        Self::error(
            503,
            "unavailable",
            "The delivery could not be recorded; retry later.",
            None,
        )
    }
}

/// Why a replay was refused.
#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    #[error("only `applied`, `unmapped` or `failed` deliveries can be replayed")]
    NotReplayable,
    #[error("the stored delivery cannot be read as a ThriveCart delivery")]
    Unreadable,
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The webhook gateway. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Gateway {
    tenancy: Tenancy,
}

/// What the activity log keeps of a body that could not be decoded: its start, with the
/// secret word's value replaced. A body that names the secret in a way that cannot be taken
/// apart (broken JSON, say) is not kept at all, only its size.
fn kept_raw(body: &[u8]) -> Value {
    let text = String::from_utf8_lossy(&body[..body.len().min(RAW_KEPT_BYTES)]);
    let decoded: String = url::form_urlencoded::parse(text.as_bytes())
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join("&");
    let names_secret = |s: &str| s.to_ascii_lowercase().contains(thrivecart::SECRET_FIELD);
    if !names_secret(&text) && !names_secret(&decoded) {
        return json!({ "raw": text });
    }
    let form_like = !text.trim_start().starts_with(['{', '[']);
    if form_like {
        let redacted: Vec<String> = text
            .split('&')
            .map(|pair| {
                let raw_key = pair.split('=').next().unwrap_or_default();
                let key: String = url::form_urlencoded::parse(raw_key.as_bytes())
                    .map(|(k, _)| k.into_owned())
                    .collect();
                if key.trim().eq_ignore_ascii_case(thrivecart::SECRET_FIELD) {
                    format!("{raw_key}=[redacted]")
                } else {
                    pair.to_owned()
                }
            })
            .collect();
        let redacted = redacted.join("&");
        // Whatever still names the secret after that is not kept.
        let rest: String = url::form_urlencoded::parse(redacted.as_bytes())
            .filter(|(_, v)| v != "[redacted]")
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        if !names_secret(&rest) {
            return json!({ "raw": redacted });
        }
    }
    json!({ "raw": null, "bytes": body.len(), "note": "not kept: it carries the secret word" })
}

fn idempotency_key(app: AppId, fingerprint: &str) -> String {
    format!("idem:{app}:{fingerprint}")
}

fn unix_now() -> i64 {
    Utc::now().timestamp()
}

impl Gateway {
    pub fn new(tenancy: Tenancy) -> Self {
        Self { tenancy }
    }

    fn store(&self) -> &Arc<dyn Store> {
        self.tenancy.store()
    }

    fn cache(&self) -> &Arc<dyn Cache> {
        self.tenancy.cache()
    }

    /// Records an entry that changes nothing; `None` when even that failed.
    async fn record(
        &self,
        record: NewDelivery,
        status: DeliveryStatus,
        message: &str,
    ) -> Option<DeliveryId> {
        let id = record.id;
        match self.store().record_delivery(record, status, message).await {
            Ok(()) => Some(id),
            Err(err) => {
                tracing::error!(error = %err, status = status.as_str(), "could not record a delivery");
                None
            }
        }
    }

    /// Handles one POST to a webhook URL.
    #[tracing::instrument(skip_all, fields(app_id, delivery_id, event, outcome))]
    pub async fn receive(&self, token: &str, content_type: Option<&str>, body: &[u8]) -> Reply {
        let live = match self.tenancy.resolve_webhook_token(token).await {
            Ok(Some(live)) => live,
            Ok(None) => {
                return Reply::error(
                    404,
                    "not_found",
                    "No enabled ThriveCart integration has this webhook URL.",
                    None,
                );
            }
            Err(err) => {
                tracing::error!(error = %err, "webhook token lookup failed");
                return Reply::unavailable();
            }
        };
        let span = tracing::Span::current();
        span.record("app_id", tracing::field::display(live.app_id));
        let reply = self.receive_for(&live, content_type, body).await;
        span.record(
            "outcome",
            reply.body["status"]
                .as_str()
                .or(reply.body["code"].as_str())
                .unwrap_or_default(),
        );
        reply
    }

    async fn receive_for(
        &self,
        live: &LiveIntegration,
        content_type: Option<&str>,
        body: &[u8],
    ) -> Reply {
        let mut record = NewDelivery {
            id: DeliveryId::new(),
            app_id: live.app_id,
            received_at: Utc::now(),
            event: None,
            mode: None,
            order_id: None,
            customer_email: None,
            products: Vec::new(),
            verified: false,
            payload: None,
            replay_of: None,
        };
        tracing::Span::current().record("delivery_id", tracing::field::display(record.id));

        let mut doc = match decode_body(content_type, body) {
            Ok(doc) if doc.is_object() => doc,
            Ok(_) => {
                return self
                    .invalid(record, "The body is not an object of fields.")
                    .await;
            }
            Err(err) => {
                // Keep the start of what arrived (without the secret word), so an admin can
                // see what was wrong.
                record.payload = Some(kept_raw(body));
                return self
                    .invalid(record, &format!("Undecodable body: {err}."))
                    .await;
            }
        };
        let secret = field(&doc, &[thrivecart::SECRET_FIELD]).map(str::to_owned);
        thrivecart::redact_secret(&mut doc);
        record.event = thrivecart::event_name(&doc).map(str::to_owned);
        record.mode = field(&doc, &["mode"]).map(str::to_owned);
        record.order_id = field(&doc, &["order_id"]).map(str::to_owned);
        record.customer_email = field(&doc, &["customer", "email"]).map(|e| {
            Email::parse(e)
                .map(|e| e.to_string())
                .unwrap_or_else(|_| e.trim().to_lowercase())
        });
        record.payload = Some(doc.clone());

        if record.event.is_none() {
            // ThriveCart checks a URL with a POST before saving it: no event, maybe no secret.
            return match self
                .record(record, DeliveryStatus::Ping, "Ping: nothing to apply.")
                .await
            {
                Some(id) => Reply::ok(DeliveryStatus::Ping, id),
                None => Reply::unavailable(),
            };
        }
        tracing::Span::current().record("event", record.event.as_deref().unwrap_or_default());

        if let Some(hash) = &live.secret_word_hash {
            let matches = secret
                .as_deref()
                .is_some_and(|word| secrets::verify_secret_word(word, hash));
            if !matches {
                let message = if secret.is_some() {
                    "Rejected: the secret word does not match the app's."
                } else {
                    "Rejected: the delivery carries no secret word."
                };
                let id = self.record(record, DeliveryStatus::Rejected, message).await;
                return match id {
                    Some(id) => Reply::error(401, "secret_mismatch", message, Some(id)),
                    None => Reply::unavailable(),
                };
            }
            record.verified = true;
        }

        let delivery = match parse_delivery(&doc) {
            Ok(Some(d)) => d,
            Ok(None) => return self.invalid(record, "The delivery names no event.").await,
            Err(err) => {
                return self
                    .invalid(record, &format!("Invalid delivery: {err}."))
                    .await;
            }
        };
        record.products = delivery
            .products()
            .iter()
            .map(ToString::to_string)
            .collect();
        if let Some(c) = &delivery.customer {
            record.customer_email = Some(c.email.to_string());
        }
        if record.order_id.is_none() {
            record.order_id = delivery.order_id.clone();
        }

        let fingerprint = thrivecart::fingerprint(&doc);
        let idem = idempotency_key(live.app_id, &fingerprint);
        // The fast answer to a repeat; the database's unique fingerprint still decides.
        if let Ok(Some(original)) = self.cache().get(&idem).await {
            let message = format!("Duplicate of delivery {original}; nothing changed.");
            return match self
                .record(record, DeliveryStatus::Duplicate, &message)
                .await
            {
                Some(id) => Reply::ok(DeliveryStatus::Duplicate, id),
                None => Reply::unavailable(),
            };
        }

        let mappings = match self.tenancy.mappings(live.app_id).await {
            Ok(m) => m,
            Err(err) => {
                tracing::error!(error = %err, "could not read mappings");
                return self.failed(record).await;
            }
        };
        let apply = ApplyDelivery {
            fingerprint: Some(fingerprint),
            delivery,
            mappings,
            test_mode: live.test_mode,
            cancellation: live.cancellation,
            now: unix_now(),
        };
        match self.store().apply_delivery(&record, apply).await {
            Ok(done) => {
                if done.status != DeliveryStatus::Duplicate
                    && let Err(err) = self
                        .cache()
                        .set(&idem, &done.id.to_string(), IDEMPOTENCY_TTL)
                        .await
                {
                    tracing::warn!(error = %err, "could not cache a delivery fingerprint");
                }
                Reply::ok(done.status, done.id)
            }
            Err(err) => {
                tracing::error!(error = %err, "could not apply a delivery");
                self.failed(record).await
            }
        }
    }

    async fn invalid(&self, record: NewDelivery, message: &str) -> Reply {
        match self.record(record, DeliveryStatus::Invalid, message).await {
            Some(id) => Reply::error(400, "invalid_payload", message, Some(id)),
            None => Reply::unavailable(),
        }
    }

    /// Nothing of the delivery was applied: record that (best effort) and ask for a retry.
    async fn failed(&self, record: NewDelivery) -> Reply {
        let message = "Failed: the delivery could not be applied; nothing of it was kept. \
                       ThriveCart may retry it, or replay it from here.";
        self.record(record, DeliveryStatus::Failed, message).await;
        Reply::unavailable()
    }

    /// Applies a stored `unmapped`, `failed` or `applied` delivery again, with today's
    /// mappings.
    /// The original entry keeps its status; the new attempt gets its own entry. Items
    /// already applied are not applied twice (grants are unique per order, item and level).
    pub async fn replay(&self, app: AppId, id: DeliveryId) -> Result<DeliveryRecord, ReplayError> {
        let original = self.store().get_activity(app, id).await?;
        // Applied ones too: a purchase applied with some items unmapped gets the rest once
        // they are mapped. Nothing is ever applied twice, so this is always safe.
        if !matches!(
            original.status,
            DeliveryStatus::Unmapped | DeliveryStatus::Failed | DeliveryStatus::Applied
        ) {
            return Err(ReplayError::NotReplayable);
        }
        let doc = original.payload.clone().ok_or(ReplayError::Unreadable)?;
        let delivery = match parse_delivery(&doc) {
            Ok(Some(d)) => d,
            _ => return Err(ReplayError::Unreadable),
        };
        let integration = self.store().get_integration(app).await?;
        let record = NewDelivery {
            id: DeliveryId::new(),
            app_id: app,
            received_at: Utc::now(),
            event: original.event.clone(),
            mode: original.mode.clone(),
            order_id: original.order_id.clone(),
            customer_email: original.customer_email.clone(),
            products: original.products.clone(),
            verified: original.verified,
            payload: Some(doc),
            replay_of: Some(original.id),
        };
        let mappings = self
            .tenancy
            .mappings(app)
            .await
            .map_err(|larder_tenancy::TenancyError::Store(e)| e)?;
        let done = self
            .store()
            .apply_delivery(
                &record,
                ApplyDelivery {
                    fingerprint: None,
                    delivery,
                    mappings,
                    test_mode: integration.test_mode,
                    cancellation: integration.cancellation,
                    now: unix_now(),
                },
            )
            .await?;
        Ok(self.store().get_activity(app, done.id).await?)
    }
}

#[cfg(test)]
mod tests {
    use super::kept_raw;

    #[test]
    fn undecodable_bodies_are_kept_without_the_secret() {
        let kept = kept_raw(b"a=1&a[b]=2&thrivecart_secret=K7QX2M9PLD4R&event=order.success");
        let text = kept["raw"].as_str().expect("kept");
        assert!(!text.contains("K7QX"), "{text}");
        assert!(text.contains("thrivecart_secret=[redacted]"), "{text}");
        assert!(text.contains("event=order.success"), "{text}");

        let kept = kept_raw(b"thrivecart%5Fsecret=K7QX2M9PLD4R&a=%ff");
        assert!(!kept.to_string().contains("K7QX"), "{kept}");

        let kept = kept_raw(br#"{"thrivecart_secret": "K7QX2M9PLD4R", "#);
        assert!(!kept.to_string().contains("K7QX"), "{kept}");
        assert_eq!(kept["bytes"], 38);

        assert_eq!(kept_raw(b"not a delivery")["raw"], "not a delivery");
    }
}
