//! Larder's Prometheus metrics, served at `/metrics`.
//!
//! One [`Metrics`] per service, held in its state and never in a static, so each test server
//! counts only its own. The names and labels are a contract dashboards and alerts rely on
//! (`docs/operations.md` says what each means); no label ever holds an app id, a token or
//! any other value a client chooses freely: free text is folded into a known set first.

use prometheus::{
    Encoder, Gauge, GaugeVec, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec,
    IntGaugeVec, Opts, Registry, TextEncoder,
};

/// Every metric's name: the contract dashboards and alerts (`helm/larder`'s PrometheusRule)
/// rely on.
pub const NAMES: [&str; 11] = [
    "larder_http_requests_total",
    "larder_http_request_duration_seconds",
    "larder_webhook_deliveries_total",
    "larder_webhook_intake_duration_seconds",
    "larder_cache_lookups_total",
    "larder_idempotency_fast_path_total",
    "larder_db_pool_connections",
    "larder_background_job_runs_total",
    "larder_background_job_last_success_timestamp_seconds",
    "larder_messages_total",
    "larder_outbox_oldest_queued_seconds",
];

/// Latency buckets, in seconds: 0.5 ms to 5 s.
const BUCKETS: [f64; 13] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
];

/// The ThriveCart events counted by name; any other is counted as `other`, and a delivery
/// without one (a ping, an undecodable body) as `none`.
const EVENTS: [&str; 12] = [
    "order.success",
    "order.refund",
    "order.subscription_payment",
    "order.subscription_cancelled",
    "order.subscription_paused",
    "order.subscription_resumed",
    "order.rebill_failed",
    "affiliate.commission_earned",
    "affiliate.commission_payout",
    "affiliate.commission_refund",
    "cart.abandoned",
    "customer_updated",
];

/// The event label of a delivery: its event when it is a known one.
pub fn event_label(event: Option<&str>) -> &'static str {
    match event {
        None => "none",
        Some(e) => EVENTS
            .iter()
            .find(|known| **known == e)
            .copied()
            .unwrap_or("other"),
    }
}

/// What a cache lookup found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lookup {
    Hit,
    Miss,
    Error,
}

impl Lookup {
    pub fn label(self) -> &'static str {
        match self {
            Lookup::Hit => "hit",
            Lookup::Miss => "miss",
            Lookup::Error => "error",
        }
    }
}

/// The metrics of one service.
#[derive(Debug, Clone)]
pub struct Metrics {
    registry: Registry,
    requests: IntCounterVec,
    latency: HistogramVec,
    deliveries: IntCounterVec,
    intake: Histogram,
    batch_size: HistogramVec,
    cache_lookups: IntCounterVec,
    fast_path: IntCounter,
    pool: IntGaugeVec,
    job_runs: IntCounterVec,
    job_success: GaugeVec,
    messages: IntCounterVec,
    outbox_oldest: Gauge,
}

fn counter(name: &str, help: &str, labels: &[&str]) -> IntCounterVec {
    IntCounterVec::new(Opts::new(name, help), labels).expect("constant metric names are valid")
}

impl Metrics {
    pub fn new() -> Self {
        let registry = Registry::new_custom(Some("larder".into()), None)
            .expect("a constant prefix is a valid registry name");
        let requests = counter(
            "http_requests_total",
            "HTTP requests answered, by operation, method and status.",
            &["operation", "method", "status"],
        );
        let latency = HistogramVec::new(
            HistogramOpts::new(
                "http_request_duration_seconds",
                "Time to answer an HTTP request, by operation, method and route template.",
            )
            .buckets(BUCKETS.to_vec()),
            &["operation", "method", "route"],
        )
        .expect("constant metric names are valid");
        let deliveries = counter(
            "webhook_deliveries_total",
            "ThriveCart deliveries answered, by event and outcome (applied, duplicate, unmapped, \
             ignored, ping, or the error code).",
            &["event", "outcome"],
        );
        let intake = Histogram::with_opts(
            HistogramOpts::new(
                "webhook_intake_duration_seconds",
                "Time from a delivery's body being read to its answer.",
            )
            .buckets(BUCKETS.to_vec()),
        )
        .expect("constant metric names are valid");
        let batch_size = HistogramVec::new(
            HistogramOpts::new(
                "store_batch_size",
                "Deliveries written together in one batch, by operation (apply, record).",
            )
            .buckets(vec![1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0]),
            &["operation"],
        )
        .expect("constant metric names are valid");
        let cache_lookups = counter(
            "cache_lookups_total",
            "Cached lookups (webhook tokens, API keys, mappings, idempotency keys), by cache and \
             result (hit, miss, error).",
            &["cache", "result"],
        );
        let fast_path = IntCounter::new(
            "idempotency_fast_path_total",
            "Repeated deliveries answered from the idempotency cache, without the database.",
        )
        .expect("constant metric names are valid");
        let pool = IntGaugeVec::new(
            Opts::new(
                "db_pool_connections",
                "Database connections of this process, by state (in_use, idle).",
            ),
            &["state"],
        )
        .expect("constant metric names are valid");
        let job_runs = counter(
            "background_job_runs_total",
            "Runs of the background jobs (period-end revocations, pruning), by job and result \
             (ok, error).",
            &["job", "result"],
        );
        let job_success = GaugeVec::new(
            Opts::new(
                "background_job_last_success_timestamp_seconds",
                "When each background job last ran without an error (unix seconds).",
            ),
            &["job"],
        )
        .expect("constant metric names are valid");
        let messages = counter(
            "messages_total",
            "Attempts at sending messages to members, by kind (welcome, invitation, magic_link, \
             password_reset) and result (sent, retry, failed).",
            &["kind", "result"],
        );
        let outbox_oldest = Gauge::new(
            "outbox_oldest_queued_seconds",
            "How long the oldest message still queued has waited (0 when none is).",
        )
        .expect("constant metric names are valid");
        for metric in [
            Box::new(requests.clone()) as Box<dyn prometheus::core::Collector>,
            Box::new(latency.clone()),
            Box::new(deliveries.clone()),
            Box::new(intake.clone()),
            Box::new(batch_size.clone()),
            Box::new(cache_lookups.clone()),
            Box::new(fast_path.clone()),
            Box::new(pool.clone()),
            Box::new(job_runs.clone()),
            Box::new(job_success.clone()),
            Box::new(messages.clone()),
            Box::new(outbox_oldest.clone()),
        ] {
            registry
                .register(metric)
                .expect("each metric is registered once");
        }
        Self {
            registry,
            requests,
            latency,
            deliveries,
            intake,
            batch_size,
            cache_lookups,
            fast_path,
            pool,
            job_runs,
            job_success,
            messages,
            outbox_oldest,
        }
    }

    /// One attempt at sending a message of `kind`: `sent`, `retry` or `failed`.
    pub fn message(&self, kind: &'static str, result: &'static str) {
        self.messages.with_label_values(&[kind, result]).inc();
    }

    /// How long the oldest queued message has waited, at the scrape.
    pub fn outbox_oldest(&self, seconds: f64) {
        self.outbox_oldest.set(seconds.max(0.0));
    }

    /// One HTTP answer. `route` is the route template (`/admin/v1/apps/{app_id}`), never the
    /// path.
    pub fn request(&self, operation: &str, method: &str, route: &str, status: u16, seconds: f64) {
        self.requests
            .with_label_values(&[operation, method, &status.to_string()])
            .inc();
        self.latency
            .with_label_values(&[operation, method, route])
            .observe(seconds);
    }

    /// One delivery answered with `outcome`; `event` is an [`event_label`].
    pub fn delivery(&self, event: &'static str, outcome: &'static str) {
        self.deliveries.with_label_values(&[event, outcome]).inc();
    }

    /// How long one delivery took from its body being read to its answer.
    pub fn intake(&self, seconds: f64) {
        self.intake.observe(seconds);
    }

    /// A batch of `size` deliveries written together by `operation` (`apply`, `record`).
    pub fn batch(&self, operation: &'static str, size: usize) {
        self.batch_size
            .with_label_values(&[operation])
            .observe(size as f64);
    }

    /// One lookup in `cache` (`webhook_token`, `api_key`, `mappings`, `idempotency`).
    pub fn cache_lookup(&self, cache: &'static str, result: Lookup) {
        self.cache_lookups
            .with_label_values(&[cache, result.label()])
            .inc();
    }

    /// A repeat answered from the idempotency cache.
    pub fn fast_path(&self) {
        self.fast_path.inc();
    }

    /// The database pool as it is now.
    pub fn pool(&self, in_use: u32, idle: u32) {
        self.pool
            .with_label_values(&["in_use"])
            .set(i64::from(in_use));
        self.pool.with_label_values(&["idle"]).set(i64::from(idle));
    }

    /// One run of a background job; `at` is now, in unix seconds.
    pub fn job(&self, job: &'static str, ok: bool, at: f64) {
        self.job_runs
            .with_label_values(&[job, if ok { "ok" } else { "error" }])
            .inc();
        if ok {
            let gauge: Gauge = self.job_success.with_label_values(&[job]);
            gauge.set(at);
        }
    }

    /// The Prometheus text exposition of every metric.
    pub fn render(&self) -> String {
        let mut out = Vec::new();
        if let Err(err) = TextEncoder::new().encode(&self.registry.gather(), &mut out) {
            tracing::error!(error = %err, "could not encode metrics");
        }
        String::from_utf8(out).unwrap_or_default()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_hold_no_free_text() {
        assert_eq!(event_label(Some("order.success")), "order.success");
        assert_eq!(event_label(Some("order.success\"} 1\nevil")), "other");
        assert_eq!(event_label(None), "none");
        let m = Metrics::new();
        m.delivery(event_label(Some("order.refund")), "applied");
        m.intake(0.01);
        m.cache_lookup("webhook_token", Lookup::Hit);
        m.job("prune", true, 1_790_000_000.0);
        let text = m.render();
        assert!(
            text.contains(
                r#"larder_webhook_deliveries_total{event="order.refund",outcome="applied"} 1"#
            ),
            "{text}"
        );
        assert!(
            text.contains(r#"larder_cache_lookups_total{cache="webhook_token",result="hit"} 1"#)
        );
        assert!(text.contains(
            r#"larder_background_job_last_success_timestamp_seconds{job="prune"} 1790000000"#
        ));
    }

    #[test]
    fn every_name_is_a_metric_and_every_metric_is_named() {
        let m = Metrics::new();
        m.request("listApps", "GET", "/admin/v1/apps", 200, 0.01);
        m.delivery("none", "ping");
        m.intake(0.01);
        m.cache_lookup("mappings", Lookup::Miss);
        m.fast_path();
        m.pool(1, 2);
        m.job("prune_activity", false, 0.0);
        m.job("prune_activity", true, 1.0);
        m.message("welcome", "sent");
        m.outbox_oldest(0.0);
        let text = m.render();
        let mut exported: Vec<&str> = text
            .lines()
            .filter_map(|l| l.strip_prefix("# TYPE "))
            .filter_map(|l| l.split(' ').next())
            .collect();
        exported.sort_unstable();
        let mut names = NAMES.to_vec();
        names.sort_unstable();
        assert_eq!(exported, names);
    }
}
