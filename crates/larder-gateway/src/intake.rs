//! Webhook intake as a plain service: resolve → decode → verify → parse → dedupe → apply,
//! each step answering early when the delivery goes no further.
//!
//! Every delivery that reaches an enabled URL leaves exactly one activity entry, whatever
//! its outcome. A 2xx answer is given only after that entry is committed; when it cannot be
//! (the database is down), the answer is 503 so ThriveCart may retry.

use std::ops::ControlFlow;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use chrono::Utc;
use larder_access::thrivecart::{self, Delivery, field, parse_delivery};
use larder_access::{AppId, DeliveryId, Email};
use larder_cache::Cache;
use larder_metrics::{Lookup, event_label};
use larder_store::{
    AppliedDelivery, ApplyDelivery, Backend, DeliveryRecord, DeliveryStatus, NewDelivery,
    RecordDelivery, Store, StoreError, StoreResult, call_span, causes,
};
use larder_tenancy::{LiveIntegration, Tenancy, secrets};
use poem::http::StatusCode;
use serde_json::{Value, json};
use tracing::Instrument;

use crate::batcher::Batcher;
use crate::decode::decode_body;

/// How long a processed delivery's fingerprint answers repeats from the cache.
const IDEMPOTENCY_TTL: Duration = Duration::from_secs(24 * 60 * 60);
/// The idempotency cache, as metrics and spans name it.
const IDEMPOTENCY_CACHE: &str = "idempotency";
/// How much of an undecodable body the activity log keeps.
const RAW_KEPT_BYTES: usize = 16 * 1024;
/// How much of an unverified delivery (a ping, one rejected for its secret word) the
/// activity log keeps: its start, as JSON, secret word redacted.
const UNVERIFIED_HEAD_CHARS: usize = 512;
/// How many unverified deliveries (pings, rejected or undecodable ones) an app's activity
/// log records per [`UNVERIFIED_WINDOW`]; beyond, they are answered without a record, so
/// anyone who knows a URL cannot fill the database.
pub const UNVERIFIED_RECORDS_PER_WINDOW: i64 = 30;
pub const UNVERIFIED_WINDOW: Duration = Duration::from_secs(60);

/// Said of an unverified delivery answered without an activity entry.
const NOT_RECORDED: &str = "It was not recorded: this app has had too many unverified \
                            deliveries (pings, wrong or missing secret words, undecodable \
                            bodies) in the last minute.";

/// Why a delivery was not accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// 404: no enabled integration has this URL.
    NotFound,
    /// 401: the secret word is wrong or missing.
    SecretMismatch,
    /// 400: the body cannot be decoded, or the event lacks what it needs.
    InvalidPayload,
    /// 413: the body is over the limit.
    PayloadTooLarge,
    /// 429: too many unverified deliveries for the app just now; retry in a minute.
    TooManyRequests,
    /// 503: it could not be recorded; retry later.
    Unavailable,
    /// 503: it was recorded as `failed`, nothing of it applied; retry later.
    Failed,
}

impl Refusal {
    pub fn status(self) -> StatusCode {
        match self {
            Refusal::NotFound => StatusCode::NOT_FOUND,
            Refusal::SecretMismatch => StatusCode::UNAUTHORIZED,
            Refusal::InvalidPayload => StatusCode::BAD_REQUEST,
            Refusal::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            Refusal::TooManyRequests => StatusCode::TOO_MANY_REQUESTS,
            Refusal::Unavailable | Refusal::Failed => StatusCode::SERVICE_UNAVAILABLE,
        }
    }

    /// The stable error code of the answer.
    pub fn code(self) -> &'static str {
        match self {
            Refusal::NotFound => "not_found",
            Refusal::SecretMismatch => "secret_mismatch",
            Refusal::InvalidPayload => "invalid_payload",
            Refusal::PayloadTooLarge => "payload_too_large",
            Refusal::TooManyRequests => "rate_limited",
            Refusal::Unavailable | Refusal::Failed => "unavailable",
        }
    }

    /// What metrics and spans count it as: its code, but `failed` for one recorded as such
    /// (the client sees both as `unavailable`).
    pub fn outcome(self) -> &'static str {
        match self {
            Refusal::Failed => "failed",
            other => other.code(),
        }
    }
}

/// The answer to one delivery, serialised only at the HTTP edge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    /// 200: the delivery is durably recorded with this status.
    Recorded {
        status: DeliveryStatus,
        delivery_id: DeliveryId,
    },
    /// Not accepted; `delivery_id` is its activity entry when the refusal was recorded.
    Refused {
        refusal: Refusal,
        message: String,
        delivery_id: Option<DeliveryId>,
    },
}

impl Reply {
    fn refused(
        refusal: Refusal,
        message: impl Into<String>,
        delivery_id: Option<DeliveryId>,
    ) -> Self {
        Reply::Refused {
            refusal,
            message: message.into(),
            delivery_id,
        }
    }

    pub(crate) fn not_found() -> Self {
        Self::refused(
            Refusal::NotFound,
            "No enabled ThriveCart integration has this webhook URL.",
            None,
        )
    }

    pub(crate) fn unavailable() -> Self {
        Self::refused(
            Refusal::Unavailable,
            "The delivery could not be recorded; retry later.",
            None,
        )
    }

    pub(crate) fn too_large() -> Self {
        Self::refused(
            Refusal::PayloadTooLarge,
            "The delivery is larger than 1 MiB.",
            None,
        )
    }

    pub fn status(&self) -> StatusCode {
        match self {
            Reply::Recorded { .. } => StatusCode::OK,
            Reply::Refused { refusal, .. } => refusal.status(),
        }
    }

    /// The delivery status or the error code: what metrics and spans count it as.
    pub fn outcome(&self) -> &'static str {
        match self {
            Reply::Recorded { status, .. } => status.as_str(),
            Reply::Refused { refusal, .. } => refusal.outcome(),
        }
    }
}

/// A step that either hands its result on or answers the delivery.
type Step<T> = ControlFlow<Reply, T>;

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

/// The most deliveries one batch holds.
const MAX_BATCH: usize = 64;
/// How long a delivery waits for its batch before it is answered 503 (ThriveCart retries):
/// a store that falls behind sheds load rather than queueing without end.
const BATCH_PATIENCE: Duration = Duration::from_secs(5);

/// The webhook gateway. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Gateway {
    tenancy: Tenancy,
    /// Started on first use (on the runtime that serves the deliveries).
    batches: Arc<OnceLock<Batches>>,
}

/// Deliveries on their way to the store, applied or recorded together (group commit).
#[derive(Debug)]
struct Batches {
    apply: Batcher<(NewDelivery, ApplyDelivery), StoreResult<AppliedDelivery>>,
    record: Batcher<RecordDelivery, StoreResult<()>>,
}

impl Batches {
    fn start(store: &Arc<dyn Store>, metrics: &larder_metrics::Metrics) -> Self {
        // On PostgreSQL two batches at a time: one's statements overlap the other's
        // commit, and the batches stay large (four or eight in flight measured no faster,
        // with smaller batches and more of PostgreSQL's CPU: docs/performance.md). SQLite
        // has one writer, so one batch at a time.
        let in_flight = match store.backend() {
            Backend::Postgres => 2,
            Backend::Sqlite => 1,
        };
        let (applier, seen) = (store.clone(), metrics.clone());
        let apply = Batcher::start(
            "store.apply_deliveries",
            MAX_BATCH,
            in_flight,
            move |batch: Vec<(NewDelivery, ApplyDelivery)>| {
                seen.batch("apply", batch.len());
                let store = applier.clone();
                async move { store.apply_deliveries(batch).await }
            },
        );
        let (recorder, seen) = (store.clone(), metrics.clone());
        let record = Batcher::start(
            "store.record_deliveries",
            MAX_BATCH,
            in_flight,
            move |entries: Vec<RecordDelivery>| {
                seen.batch("record", entries.len());
                let store = recorder.clone();
                async move { record_together(store.as_ref(), entries).await }
            },
        );
        Self { apply, record }
    }
}

/// Records entries in one write; when that fails, each alone, so one bad entry fails only
/// itself.
async fn record_together(store: &dyn Store, entries: Vec<RecordDelivery>) -> Vec<StoreResult<()>> {
    match store.record_deliveries(&entries).await {
        Ok(()) => entries.iter().map(|_| Ok(())).collect(),
        Err(err) if entries.len() == 1 => vec![Err(err)],
        Err(StoreError::Unavailable(err)) => {
            StoreError::unavailable_each(&err.to_string(), entries.len())
        }
        Err(_) => {
            let mut done = Vec::with_capacity(entries.len());
            for e in &entries {
                done.push(
                    store
                        .record_delivery(&e.delivery, e.status, &e.message)
                        .await,
                );
            }
            done
        }
    }
}

/// What a batcher's missing answer means: nothing is known to be kept, and a retry is
/// safe (it applies, or is a duplicate of what was kept).
fn no_answer() -> StoreError {
    StoreError::Unavailable("no answer from the batch holding the delivery in time".into())
}

/// What the activity log keeps of a body that could not be decoded: its start, with the
/// secret word's value replaced. A body that names the secret in a way that cannot be taken
/// apart (broken JSON, say) is not kept at all, only its size.
fn kept_raw(body: &[u8]) -> Value {
    let text = String::from_utf8_lossy(&body[..body.len().min(RAW_KEPT_BYTES)]);
    let text = thrivecart::strip_nul(&text).into_owned();
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

/// What the activity log keeps of a delivery nobody vouched for (a ping, or one rejected
/// for its secret word): enough to see why, never the whole body.
fn unverified_summary(doc: &Value, bytes: usize) -> Value {
    let text = doc.to_string();
    let head: String = text.chars().take(UNVERIFIED_HEAD_CHARS).collect();
    json!({
        "event": thrivecart::event_name(doc),
        "bytes": bytes,
        "head": head,
        "note": "only the start of an unverified delivery is kept",
    })
}

/// Keeps only the summary of the delivery's stored copy (already without the secret word).
fn summarize(record: &mut NewDelivery, bytes: usize) {
    let kept = record.payload.take().unwrap_or(Value::Null);
    record.payload = Some(unverified_summary(&kept, bytes));
}

/// Replaces every text equal to the secret word, wherever it stands (a copy in another
/// field), so it is not stored.
fn scrub(value: &mut Value, secret: &str) {
    match value {
        Value::String(text) if text.trim() == secret => *text = "[redacted]".into(),
        Value::Array(items) => items.iter_mut().for_each(|v| scrub(v, secret)),
        Value::Object(map) => map.values_mut().for_each(|v| scrub(v, secret)),
        _ => {}
    }
}

fn unverified_key(app: AppId) -> String {
    format!("unverified:{app}")
}

fn idempotency_key(app: AppId, fingerprint: &str) -> String {
    format!("idem:{app}:{fingerprint}")
}

/// What the activity log shows of a document's customer email: the normalised address, or
/// nothing when the field holds no address.
fn customer_email(doc: &Value) -> Option<Email> {
    field(doc, &["customer", "email"]).and_then(|e| Email::parse(e).ok())
}

impl Gateway {
    pub fn new(tenancy: Tenancy) -> Self {
        Self {
            tenancy,
            batches: Arc::default(),
        }
    }

    fn batches(&self) -> &Batches {
        self.batches
            .get_or_init(|| Batches::start(self.store(), self.tenancy.metrics()))
    }

    fn store(&self) -> &Arc<dyn Store> {
        self.tenancy.store()
    }

    fn cache(&self) -> &Arc<dyn Cache> {
        self.tenancy.cache()
    }

    /// The enabled integration a webhook token belongs to, or the answer for one that has
    /// none (404) or cannot be looked up (503).
    pub async fn resolve(&self, token: &str) -> Result<LiveIntegration, Reply> {
        match self.tenancy.resolve_webhook_token(token).await {
            Ok(Some(live)) => Ok(live),
            Ok(None) => Err(Reply::not_found()),
            Err(err) => {
                tracing::error!(error = %err, "webhook token lookup failed");
                Err(Reply::unavailable())
            }
        }
    }

    /// Handles one POST to a webhook URL.
    pub async fn receive(&self, token: &str, content_type: Option<&str>, body: &[u8]) -> Reply {
        match self.resolve(token).await {
            Ok(live) => self.receive_for(&live, content_type, body).await,
            Err(reply) => reply,
        }
    }

    /// Handles one delivery to `live`'s URL: decode → verify → parse → dedupe → apply.
    ///
    /// Its span (`webhook.intake`) carries the app, the activity entry, the event (folded
    /// into the known ones, as in the metrics) and the outcome; the cache and store calls
    /// are its children.
    #[tracing::instrument(
        name = "webhook.intake",
        skip_all,
        fields(
            larder.app_id = %live.app_id,
            larder.delivery_id,
            thrivecart.event,
            larder.outcome,
        )
    )]
    pub async fn receive_for(
        &self,
        live: &LiveIntegration,
        content_type: Option<&str>,
        body: &[u8],
    ) -> Reply {
        let started = Instant::now();
        let mut record = NewDelivery::received(live.app_id);
        let span = tracing::Span::current();
        span.record("larder.delivery_id", tracing::field::display(record.id));
        let reply = match self.intake(live, &mut record, content_type, body).await {
            ControlFlow::Continue(reply) | ControlFlow::Break(reply) => reply,
        };
        let event = event_label(record.event.as_deref());
        span.record("thrivecart.event", event);
        span.record("larder.outcome", reply.outcome());
        tracing::debug!(outcome = reply.outcome(), "delivery answered");
        let metrics = self.tenancy.metrics();
        metrics.delivery(event, reply.outcome());
        metrics.intake(started.elapsed().as_secs_f64());
        reply
    }

    /// Counts a delivery answered before its body was read or decoded (an unknown URL, a
    /// body over the limit): it has no event.
    pub fn count_unread(&self, reply: &Reply) {
        self.tenancy
            .metrics()
            .delivery(event_label(None), reply.outcome());
    }

    fn store_span(&self, operation: &'static str) -> tracing::Span {
        call_span(self.store().backend(), operation)
    }

    async fn intake(
        &self,
        live: &LiveIntegration,
        record: &mut NewDelivery,
        content_type: Option<&str>,
        body: &[u8],
    ) -> Step<Reply> {
        let (doc, secret) = self.decode(record, content_type, body).await?;
        if record.event.is_none() {
            // ThriveCart checks a URL with a POST before saving it: no event, maybe no secret.
            // One with the app's secret word is always recorded (and so answered 200);
            // others only within the app's budget, so a stranger with the URL can neither
            // fill the log nor, beyond it, get more than a 429.
            summarize(record, body.len());
            let vouched = live
                .secret_word_hash
                .as_ref()
                .zip(secret.as_deref())
                .is_some_and(|(hash, word)| secrets::verify_secret_word(word, hash));
            if vouched {
                record.verified = true;
            } else if !self.unverified_budget(live.app_id).await {
                return ControlFlow::Break(Reply::refused(
                    Refusal::TooManyRequests,
                    format!("Too many pings for this URL; retry in a minute. {NOT_RECORDED}"),
                    None,
                ));
            }
            return self
                .answer(record, DeliveryStatus::Ping, "Ping: nothing to apply.")
                .await;
        }
        self.verify(live, record, secret.as_deref(), body.len())
            .await?;
        let delivery = self.parse(record, &doc, body.len()).await?;
        let fingerprint = thrivecart::fingerprint(&doc);
        let idem = idempotency_key(live.app_id, &fingerprint);
        self.answer_known_repeat(record, &idem).await?;
        ControlFlow::Continue(self.apply(live, record, delivery, fingerprint, &idem).await)
    }

    /// Decodes the body into a document and describes it in `record`; the secret word is
    /// taken out of the document (and returned) before anything keeps it.
    async fn decode(
        &self,
        record: &mut NewDelivery,
        content_type: Option<&str>,
        body: &[u8],
    ) -> Step<(Value, Option<String>)> {
        let mut doc = match decode_body(content_type, body) {
            Ok(doc) if doc.is_object() => doc,
            Ok(_) => {
                record.payload = Some(kept_raw(body));
                return self
                    .invalid(record, body.len(), "The body is not an object of fields.")
                    .await;
            }
            Err(err) => {
                // Keep the start of what arrived (without the secret word), so an admin can
                // see what was wrong; nobody vouched for it, so within the app's budget.
                record.payload = Some(kept_raw(body));
                let message = format!("Undecodable body: {err}.");
                if !self.unverified_budget(record.app_id).await {
                    return ControlFlow::Break(Reply::refused(
                        Refusal::InvalidPayload,
                        format!("{message} {NOT_RECORDED}"),
                        None,
                    ));
                }
                return self.record_invalid(record, &message).await;
            }
        };
        thrivecart::strip_nul_json(&mut doc);
        let secret = field(&doc, &[thrivecart::SECRET_FIELD]).map(str::to_owned);
        thrivecart::redact_secret(&mut doc);
        // Any other copy of the secret word goes too, before anything reads the document:
        // nothing derived from it (the event, the order, a parse error) can carry it.
        if let Some(secret) = &secret {
            scrub(&mut doc, secret);
        }
        record.event = thrivecart::event_name(&doc).map(str::to_owned);
        record.mode = thrivecart::declared_mode(&doc);
        record.order_id = field(&doc, &["order_id"]).map(str::to_owned);
        record.customer_email = customer_email(&doc);
        record.payload = Some(doc.clone());
        ControlFlow::Continue((doc, secret))
    }

    /// Whether another unverified delivery of `app` may be recorded in this window. Without
    /// a working counter it may (the limit guards the database's size, not correctness).
    async fn unverified_budget(&self, app: AppId) -> bool {
        match self
            .cache()
            .add(&unverified_key(app), 1, UNVERIFIED_WINDOW)
            .await
        {
            Ok((count, _)) => {
                let within = count <= UNVERIFIED_RECORDS_PER_WINDOW;
                if !within {
                    tracing::warn!(
                        "too many unverified deliveries for this app; answered without a record"
                    );
                }
                within
            }
            Err(err) => {
                err.log("could not count an unverified delivery");
                true
            }
        }
    }

    /// Checks the secret word when the app has one (constant time); a mismatch is recorded
    /// as `rejected` and answered 401.
    async fn verify(
        &self,
        live: &LiveIntegration,
        record: &mut NewDelivery,
        secret: Option<&str>,
        bytes: usize,
    ) -> Step<()> {
        let Some(hash) = &live.secret_word_hash else {
            return ControlFlow::Continue(());
        };
        if secret.is_some_and(|word| secrets::verify_secret_word(word, hash)) {
            record.verified = true;
            return ControlFlow::Continue(());
        }
        let message = if secret.is_some() {
            "Rejected: the secret word does not match the app's."
        } else {
            "Rejected: the delivery carries no secret word."
        };
        summarize(record, bytes);
        if !self.unverified_budget(live.app_id).await {
            return ControlFlow::Break(Reply::refused(
                Refusal::SecretMismatch,
                format!("{message} {NOT_RECORDED}"),
                None,
            ));
        }
        let id = self.record(record, DeliveryStatus::Rejected, message).await;
        ControlFlow::Break(match id {
            Some(id) => Reply::refused(Refusal::SecretMismatch, message, Some(id)),
            None => Reply::unavailable(),
        })
    }

    /// Reads the document as a ThriveCart delivery; one that lacks what its event needs is
    /// recorded as `invalid` and answered 400.
    async fn parse(&self, record: &mut NewDelivery, doc: &Value, bytes: usize) -> Step<Delivery> {
        let delivery = match parse_delivery(doc) {
            Ok(Some(d)) => d,
            Ok(None) => {
                return self
                    .invalid(record, bytes, "The delivery names no event.")
                    .await;
            }
            Err(err) => {
                return self
                    .invalid(record, bytes, &format!("Invalid delivery: {err}."))
                    .await;
            }
        };
        record.mode = Some(delivery.mode);
        record.products = delivery.products();
        if let Some(c) = &delivery.customer {
            record.customer_email = Some(c.email.clone());
        }
        if record.order_id.is_none() {
            record.order_id = delivery.order_id.clone();
        }
        ControlFlow::Continue(delivery)
    }

    /// The fast answer to a repeat the cache knows; the database's unique fingerprint still
    /// decides for those it does not.
    async fn answer_known_repeat(&self, record: &NewDelivery, idem: &str) -> Step<()> {
        let span = tracing::info_span!(
            "cache.lookup",
            larder.cache = IDEMPOTENCY_CACHE,
            larder.cache.result = tracing::field::Empty
        );
        let found = self.cache().get(idem).instrument(span.clone()).await;
        let result = match &found {
            Ok(Some(_)) => Lookup::Hit,
            Ok(None) => Lookup::Miss,
            Err(err) => {
                err.log("idempotency cache read failed; the database decides");
                Lookup::Error
            }
        };
        span.record("larder.cache.result", result.label());
        let metrics = self.tenancy.metrics();
        metrics.cache_lookup(IDEMPOTENCY_CACHE, result);
        match found {
            Ok(Some(original)) => {
                metrics.fast_path();
                let message = format!("Duplicate of delivery {original}; nothing changed.");
                self.answer(record, DeliveryStatus::Duplicate, &message)
                    .await
            }
            _ => ControlFlow::Continue(()),
        }
    }

    /// Applies the delivery in one transaction and remembers its fingerprint in the cache.
    async fn apply(
        &self,
        live: &LiveIntegration,
        record: &NewDelivery,
        delivery: Delivery,
        fingerprint: String,
        idem: &str,
    ) -> Reply {
        let mappings = match self.tenancy.mappings(live.app_id).await {
            Ok(m) => m,
            Err(larder_tenancy::TenancyError::Store(err)) => {
                tracing::error!(error = %causes(&err), "could not read mappings");
                return match err {
                    StoreError::Unavailable(_) => Reply::unavailable(),
                    _ => self.failed(record).await,
                };
            }
        };
        let apply = ApplyDelivery {
            fingerprint: Some(fingerprint),
            delivery,
            mappings,
            test_mode: live.test_mode,
            cancellation: live.cancellation,
            now: Utc::now(),
        };
        // The span covers the wait for the batch and its commit.
        let applied = self
            .batches()
            .apply
            .submit((record.clone(), apply), BATCH_PATIENCE)
            .instrument(self.store_span("apply_delivery"))
            .await
            .unwrap_or_else(|| Err(no_answer()));
        match applied {
            Ok(done) => {
                if done.status != DeliveryStatus::Duplicate
                    && let Err(err) = self
                        .cache()
                        .set(idem, &done.id.to_string(), IDEMPOTENCY_TTL)
                        .instrument(tracing::info_span!(
                            "cache.set",
                            larder.cache = IDEMPOTENCY_CACHE
                        ))
                        .await
                {
                    err.log("could not cache a delivery fingerprint");
                }
                Reply::Recorded {
                    status: done.status,
                    delivery_id: done.id,
                }
            }
            // The app was deleted while its delivery was on the way: its URL is gone.
            Err(StoreError::NotFound) => Reply::not_found(),
            // The database cannot be reached: recording the failure would wait as long
            // again for nothing. Answer at once; ThriveCart retries.
            Err(err @ StoreError::Unavailable(_)) => {
                tracing::error!(error = %causes(&err), "could not apply a delivery");
                Reply::unavailable()
            }
            Err(err) => {
                tracing::error!(error = %causes(&err), "could not apply a delivery");
                self.failed(record).await
            }
        }
    }

    /// Records an entry that changes nothing; `None` when even that failed.
    async fn record(
        &self,
        record: &NewDelivery,
        status: DeliveryStatus,
        message: &str,
    ) -> Option<DeliveryId> {
        // A duplicate keeps no payload: it is its original's, which the message names.
        let entry = RecordDelivery {
            delivery: NewDelivery {
                id: record.id,
                app_id: record.app_id,
                received_at: record.received_at,
                event: record.event.clone(),
                mode: record.mode,
                order_id: record.order_id.clone(),
                customer_email: record.customer_email.clone(),
                products: record.products.clone(),
                verified: record.verified,
                payload: match status {
                    DeliveryStatus::Duplicate => None,
                    _ => record.payload.clone(),
                },
                replay_of: record.replay_of,
            },
            status,
            message: message.to_owned(),
        };
        let recorded = self
            .batches()
            .record
            .submit(entry, BATCH_PATIENCE)
            .instrument(self.store_span("record_delivery"))
            .await
            .unwrap_or_else(|| Err(no_answer()));
        match recorded {
            Ok(()) => Some(record.id),
            Err(err) => {
                tracing::error!(
                    error = %causes(&err),
                    status = status.as_str(),
                    "could not record a delivery"
                );
                None
            }
        }
    }

    /// Records an entry that changes nothing and answers 200 with it (503 if it could not
    /// be recorded).
    async fn answer<T>(
        &self,
        record: &NewDelivery,
        status: DeliveryStatus,
        message: &str,
    ) -> Step<T> {
        ControlFlow::Break(match self.record(record, status, message).await {
            Some(delivery_id) => Reply::Recorded {
                status,
                delivery_id,
            },
            None => Reply::unavailable(),
        })
    }

    /// Records an invalid delivery and refuses it. One nobody vouched for (the app has no
    /// secret word) keeps only its start, within the app's budget of unverified deliveries.
    async fn invalid<T>(&self, record: &mut NewDelivery, bytes: usize, message: &str) -> Step<T> {
        if !record.verified {
            summarize(record, bytes);
            if !self.unverified_budget(record.app_id).await {
                return ControlFlow::Break(Reply::refused(
                    Refusal::InvalidPayload,
                    format!("{message} {NOT_RECORDED}"),
                    None,
                ));
            }
        }
        self.record_invalid(record, message).await
    }

    async fn record_invalid<T>(&self, record: &NewDelivery, message: &str) -> Step<T> {
        ControlFlow::Break(
            match self.record(record, DeliveryStatus::Invalid, message).await {
                Some(id) => Reply::refused(Refusal::InvalidPayload, message, Some(id)),
                None => Reply::unavailable(),
            },
        )
    }

    /// Nothing of the delivery was applied: record that (best effort) and ask for a retry.
    async fn failed(&self, record: &NewDelivery) -> Reply {
        let message = "Failed: the delivery could not be applied; nothing of it was kept. \
                       ThriveCart may retry it, or replay it from here.";
        self.record(record, DeliveryStatus::Failed, message).await;
        Reply::refused(
            Refusal::Failed,
            "The delivery could not be applied; retry later.",
            None,
        )
    }

    /// Applies a stored `unmapped`, `failed` or `applied` delivery again, with today's
    /// mappings. The original entry keeps its status; the new attempt gets its own entry.
    /// Items already applied are not applied twice (grants are unique per order, item and
    /// level).
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
            event: original.event.clone(),
            mode: original.mode,
            order_id: original.order_id.clone(),
            customer_email: original.customer_email.clone(),
            products: original.products.clone(),
            verified: original.verified,
            payload: Some(doc),
            replay_of: Some(original.id),
            ..NewDelivery::received(app)
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
                    now: Utc::now(),
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
