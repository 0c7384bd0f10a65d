//! Logs and traces.
//!
//! Log lines go to standard output, as text or (`LARDER_LOG_FORMAT=json`) one JSON object
//! per line. Traces are exported over OTLP/HTTP (protobuf) only when
//! `OTEL_EXPORTER_OTLP_ENDPOINT` is set; otherwise no exporter exists and spans cost what
//! `tracing` costs. The exporter runs on its own thread with a bounded queue, so a collector
//! that is slow or down never holds up a request: spans beyond the queue are dropped.
//!
//! Only Larder's own spans are exported (the request, the delivery, cache and store calls),
//! whatever the log filter says, and none of them holds a raw path or a secret.

use std::sync::OnceLock;
use std::time::Duration;

use opentelemetry::KeyValue;
use opentelemetry::propagation::{Extractor, TextMapPropagator};
use opentelemetry::trace::{TraceContextExt, TracerProvider as _};
use opentelemetry_otlp::{Protocol, WithExportConfig};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::SdkTracerProvider;
use poem::http::HeaderMap;
use serde_json::{Map, Value};
use tracing::field::{Field, Visit};
use tracing::{Event, Subscriber};
use tracing_opentelemetry::{OpenTelemetrySpanExt, OtelData};
use tracing_subscriber::fmt::format::{JsonFields, Writer};
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields, FormattedFields};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer};

use crate::settings::{LogFormat, LogSettings, TelemetrySettings};

/// The propagator of incoming `traceparent` headers; set only while traces are exported.
static PROPAGATOR: OnceLock<TraceContextPropagator> = OnceLock::new();

/// How long one export may take before it is given up.
const EXPORT_TIMEOUT: Duration = Duration::from_secs(5);

/// Owns the trace exporter; [`Telemetry::shutdown`] flushes what is queued.
#[derive(Debug, Default)]
pub struct Telemetry {
    provider: Option<SdkTracerProvider>,
}

/// Why logging or tracing could not start.
#[derive(Debug, thiserror::Error)]
pub enum TelemetryError {
    #[error("RUST_LOG is not a valid log filter: {0}")]
    Filter(String),
    #[error("the OTLP trace exporter cannot be built: {0}")]
    Exporter(String),
}

/// Starts logging as `log` says, and trace export when `otel` names an endpoint.
pub fn init(
    log: &LogSettings,
    otel: Option<&TelemetrySettings>,
) -> Result<Telemetry, TelemetryError> {
    let filter =
        EnvFilter::try_new(&log.log_filter).map_err(|e| TelemetryError::Filter(e.to_string()))?;
    let fmt = match log.log_format {
        LogFormat::Text => tracing_subscriber::fmt::layer()
            .with_target(false)
            .with_filter(filter)
            .boxed(),
        LogFormat::Json => tracing_subscriber::fmt::layer()
            .fmt_fields(JsonFields::new())
            .event_format(JsonLines)
            .with_filter(filter)
            .boxed(),
    };
    let provider = match otel.and_then(|o| o.otel_endpoint.as_deref().map(|e| (o, e))) {
        Some((settings, endpoint)) => Some(provider(settings, endpoint)?),
        None => None,
    };
    let traces = provider.as_ref().map(|p| {
        tracing_opentelemetry::layer()
            .with_tracer(p.tracer("larder"))
            .with_filter(tracing_subscriber::filter::filter_fn(|meta| {
                meta.target().starts_with("larder") && *meta.level() <= tracing::Level::INFO
            }))
    });
    if provider.is_some() {
        let _ = PROPAGATOR.set(TraceContextPropagator::new());
    }
    tracing_subscriber::registry().with(fmt).with(traces).init();
    Ok(Telemetry { provider })
}

fn provider(
    settings: &TelemetrySettings,
    endpoint: &str,
) -> Result<SdkTracerProvider, TelemetryError> {
    let mut exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_protocol(Protocol::HttpBinary);
    // The signal's own variable, when set, is the whole URL (the exporter reads it itself).
    if std::env::var_os("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT").is_none() {
        exporter = exporter.with_endpoint(format!("{}/v1/traces", endpoint.trim_end_matches('/')));
    }
    if std::env::var_os("OTEL_EXPORTER_OTLP_TIMEOUT").is_none()
        && std::env::var_os("OTEL_EXPORTER_OTLP_TRACES_TIMEOUT").is_none()
    {
        exporter = exporter.with_timeout(EXPORT_TIMEOUT);
    }
    // The builder's error repeats the endpoint as given; the message names it redacted.
    let exporter = exporter.build().map_err(|_| {
        TelemetryError::Exporter(format!(
            "{} is not a URL the exporter can post to",
            crate::redact_url(endpoint)
        ))
    })?;
    Ok(SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        .with_resource(resource(settings))
        .build())
}

/// `service.name` (`OTEL_SERVICE_NAME`, else one in `OTEL_RESOURCE_ATTRIBUTES`, else
/// `larder`), `service.version`, and the other attributes `OTEL_RESOURCE_ATTRIBUTES` lists.
fn resource(settings: &TelemetrySettings) -> Resource {
    let attributes = settings
        .otel_resource_attributes
        .as_deref()
        .map(parse_resource_attributes)
        .unwrap_or_default();
    let listed_name = attributes
        .iter()
        .find(|(k, _)| k == "service.name")
        .map(|(_, v)| v.clone());
    let name = settings
        .otel_service_name
        .clone()
        .filter(|n| !n.trim().is_empty())
        .or(listed_name)
        .unwrap_or_else(|| "larder".to_owned());
    Resource::builder_empty()
        .with_attribute(KeyValue::new("service.version", env!("CARGO_PKG_VERSION")))
        .with_attributes(
            attributes
                .into_iter()
                .filter(|(k, _)| k != "service.name")
                .map(|(k, v)| KeyValue::new(k, v)),
        )
        .with_service_name(name)
        .build()
}

/// `key=value,key2=value2`, values percent-decoded, as the OpenTelemetry spec writes them;
/// malformed pairs are skipped.
fn parse_resource_attributes(text: &str) -> Vec<(String, String)> {
    text.split(',')
        .filter_map(|pair| {
            let (k, v) = pair.split_once('=')?;
            let k = k.trim();
            if k.is_empty() {
                return None;
            }
            let v: String = url::form_urlencoded::parse(format!("v={}", v.trim()).as_bytes())
                .map(|(_, v)| v.into_owned())
                .next()
                .unwrap_or_default();
            Some((k.to_owned(), v))
        })
        .collect()
}

impl Telemetry {
    /// Exports what is still queued and stops the exporter, giving up after `within`: a
    /// collector that is down must not hold the process.
    pub async fn shutdown(self, within: Duration) {
        let Some(provider) = self.provider else {
            return;
        };
        let flushed = tokio::task::spawn_blocking(move || provider.shutdown_with_timeout(within));
        match tokio::time::timeout(within, flushed).await {
            Ok(Ok(Ok(()))) => {}
            Ok(Ok(Err(err))) => tracing::warn!(error = %err, "traces could not all be exported"),
            Ok(Err(_)) | Err(_) => tracing::warn!("traces could not be exported in time"),
        }
    }
}

/// Reads a W3C `traceparent` (and `tracestate`) from request headers.
struct Headers<'a>(&'a HeaderMap);

impl Extractor for Headers<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(|v| v.to_str().ok())
    }

    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(|k| k.as_str()).collect()
    }
}

/// Makes `span` continue the trace an incoming `traceparent` names; nothing when traces are
/// not exported.
pub fn continue_trace(span: &tracing::Span, headers: &HeaderMap) {
    if let Some(propagator) = PROPAGATOR.get()
        && headers.contains_key("traceparent")
    {
        span.set_parent(propagator.extract(&Headers(headers)));
    }
}

/// One JSON object per log line: `timestamp`, `level`, `target`, `message`, the event's
/// fields, the spans it is in (`spans`, outermost first, with their fields) and, while a
/// trace is exported, `trace_id` and `span_id`.
struct JsonLines;

impl<S, N> FormatEvent<S, N> for JsonLines
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> std::fmt::Result {
        let meta = event.metadata();
        let mut line = Map::new();
        line.insert(
            "timestamp".into(),
            chrono::Utc::now()
                .to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
                .into(),
        );
        line.insert("level".into(), meta.level().as_str().into());
        line.insert("target".into(), meta.target().into());
        let mut fields = Map::new();
        event.record(&mut JsonVisitor(&mut fields));
        if let Some(message) = fields.remove("message") {
            line.insert("message".into(), message);
        }
        if !fields.is_empty() {
            line.insert("fields".into(), Value::Object(fields));
        }
        if let Some(scope) = ctx.event_scope() {
            let mut spans = Vec::new();
            for span in scope.from_root() {
                let mut entry = Map::new();
                entry.insert("name".into(), span.name().into());
                let extensions = span.extensions();
                if let Some(formatted) = extensions.get::<FormattedFields<N>>()
                    && let Ok(Value::Object(fields)) =
                        serde_json::from_str::<Value>(formatted.as_str())
                {
                    entry.extend(fields);
                }
                spans.push(Value::Object(entry));
            }
            if !spans.is_empty() {
                line.insert("spans".into(), Value::Array(spans));
            }
        }
        // The innermost span that is exported carries the ids; spans of other crates (not
        // exported) sit inside it without any.
        let exported = ctx.event_scope().and_then(|scope| {
            scope
                .into_iter()
                .find(|span| span.extensions().get::<OtelData>().is_some())
        });
        if let Some(span) = exported
            && let Some(otel) = span.extensions().get::<OtelData>()
        {
            let parent = otel.parent_cx.span();
            let parent = parent.span_context();
            let trace_id = if parent.is_valid() {
                Some(parent.trace_id())
            } else {
                otel.builder.trace_id
            };
            if let (Some(trace_id), Some(span_id)) = (trace_id, otel.builder.span_id) {
                line.insert("trace_id".into(), trace_id.to_string().into());
                line.insert("span_id".into(), span_id.to_string().into());
            }
        }
        let text = serde_json::to_string(&Value::Object(line)).map_err(|_| std::fmt::Error)?;
        writer.write_str(&text)?;
        writer.write_char('\n')
    }
}

/// Collects an event's fields as JSON values.
struct JsonVisitor<'a>(&'a mut Map<String, Value>);

impl Visit for JsonVisitor<'_> {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        self.0
            .insert(field.name().into(), format!("{value:?}").into());
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        self.0.insert(field.name().into(), value.into());
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        self.0.insert(field.name().into(), value.into());
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        self.0.insert(field.name().into(), value.into());
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        self.0.insert(field.name().into(), value.into());
    }

    fn record_f64(&mut self, field: &Field, value: f64) {
        self.0.insert(field.name().into(), value.into());
    }

    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        self.0.insert(field.name().into(), value.to_string().into());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resource_attributes_are_pairs_with_decoded_values() {
        assert_eq!(
            parse_resource_attributes("a=1, deployment.environment.name=prod%20eu,bad,=x"),
            vec![
                ("a".to_owned(), "1".to_owned()),
                (
                    "deployment.environment.name".to_owned(),
                    "prod eu".to_owned()
                ),
            ]
        );
    }

    #[test]
    fn the_service_is_named_larder_unless_told_otherwise() {
        let name = |settings: TelemetrySettings| {
            resource(&settings)
                .get(&opentelemetry::Key::new("service.name"))
                .map(|v| v.to_string())
        };
        let none = TelemetrySettings {
            otel_endpoint: None,
            otel_service_name: None,
            otel_resource_attributes: None,
        };
        assert_eq!(name(none.clone()).as_deref(), Some("larder"));
        let listed = TelemetrySettings {
            otel_resource_attributes: Some("service.name=from-list".into()),
            ..none.clone()
        };
        assert_eq!(name(listed.clone()).as_deref(), Some("from-list"));
        let named = TelemetrySettings {
            otel_service_name: Some("larder-eu".into()),
            ..listed
        };
        assert_eq!(name(named).as_deref(), Some("larder-eu"));
    }
}
