//! Prometheus metrics: request counts and latencies by operation, served at `/metrics`.

use prometheus::{
    Encoder, HistogramOpts, HistogramVec, IntCounterVec, Opts, Registry, TextEncoder,
};

/// The metrics of one server. Held in its state, never in a static, so each test server
/// counts only its own requests.
#[derive(Debug, Clone)]
pub struct Metrics {
    registry: Registry,
    requests: IntCounterVec,
    latency: HistogramVec,
    deliveries: IntCounterVec,
}

impl Metrics {
    pub fn new() -> Self {
        let registry = Registry::new_custom(Some("larder".into()), None)
            .expect("a constant prefix is a valid registry name");
        let requests = IntCounterVec::new(
            Opts::new(
                "http_requests_total",
                "HTTP requests answered, by operation and status.",
            ),
            &["operation", "method", "status"],
        )
        .expect("constant metric names are valid");
        let latency = HistogramVec::new(
            HistogramOpts::new(
                "http_request_duration_seconds",
                "Time to answer an HTTP request, by operation.",
            )
            .buckets(vec![
                0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
            ]),
            &["operation", "method"],
        )
        .expect("constant metric names are valid");
        let deliveries = IntCounterVec::new(
            Opts::new(
                "webhook_deliveries_total",
                "ThriveCart deliveries answered, by outcome (applied, duplicate, unmapped…).",
            ),
            &["outcome"],
        )
        .expect("constant metric names are valid");
        registry
            .register(Box::new(deliveries.clone()))
            .expect("registered once");
        registry
            .register(Box::new(requests.clone()))
            .expect("registered once");
        registry
            .register(Box::new(latency.clone()))
            .expect("registered once");
        Self {
            registry,
            requests,
            latency,
            deliveries,
        }
    }

    pub fn observe(&self, operation: &str, method: &str, status: u16, seconds: f64) {
        self.requests
            .with_label_values(&[operation, method, &status.to_string()])
            .inc();
        self.latency
            .with_label_values(&[operation, method])
            .observe(seconds);
    }

    pub fn delivery(&self, outcome: &str) {
        self.deliveries.with_label_values(&[outcome]).inc();
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
