//! The service's edge: one middleware that gives every answer the shared error body, opens
//! its server span, counts it in the metrics and logs it; and `/metrics`.
//!
//! Nothing here ever records the request's path: the webhook path holds an app's token.
//! Spans, labels and log lines name the route template instead
//! (`/webhooks/thrivecart/{token}`), read from the OpenAPI document.

use std::sync::Arc;
use std::time::Instant;

use larder_metrics::Metrics;
use larder_tenancy::Tenancy;
use poem::http::Method;
use poem::web::Data;
use poem::{Endpoint, IntoResponse, Request, Response, handler};
use poem_openapi::OperationId;
use tracing::Instrument;

use crate::telemetry;

/// The routes that are not OpenAPI operations: the operation name each is counted under,
/// and the methods it answers.
const PLAIN_ROUTES: [(&str, &str, &str); 10] = [
    ("/metrics", "metrics", "GET, HEAD"),
    ("/openapi.json", "openapi", "GET, HEAD"),
    ("/docs", "docs", "GET, HEAD"),
    // The pages Larder serves members (larder_member_api::pages).
    ("/members/{app_id}", "memberPages", "GET, HEAD"),
    (
        "/members/{app_id}/sign-in",
        "memberPages",
        "GET, HEAD, POST",
    ),
    ("/members/{app_id}/magic", "memberPages", "GET, HEAD, POST"),
    (
        "/members/{app_id}/set-password",
        "memberPages",
        "GET, HEAD, POST",
    ),
    (
        "/members/{app_id}/reset-password",
        "memberPages",
        "GET, HEAD, POST",
    ),
    ("/members/{app_id}/sign-out", "memberPages", "POST"),
    ("/members/set-password/{app_id}", "memberPages", "GET, HEAD"),
];

/// One route template and the methods it answers.
#[derive(Debug)]
struct RouteTemplate {
    template: String,
    segments: Vec<String>,
    /// The `Allow` value of a 405.
    allow: String,
}

impl RouteTemplate {
    /// How well `path` matches: the number of literal segments, `None` for no match.
    fn score(&self, path: &[&str]) -> Option<usize> {
        if self.segments.len() != path.len() {
            return None;
        }
        let mut literal = 0;
        for (t, p) in self.segments.iter().zip(path) {
            if t.starts_with('{') {
                continue;
            }
            if t != p {
                return None;
            }
            literal += 1;
        }
        Some(literal)
    }
}

/// The service's route templates, read from its OpenAPI document.
#[derive(Debug, Default)]
pub struct Routes {
    routes: Vec<RouteTemplate>,
}

impl Routes {
    /// Reads the paths and methods of an OpenAPI document, plus the plain routes.
    pub fn new(spec_json: &str) -> Self {
        let mut routes = Vec::new();
        if let Ok(spec) = serde_json::from_str::<serde_json::Value>(spec_json)
            && let Some(paths) = spec.get("paths").and_then(|p| p.as_object())
        {
            for (path, item) in paths {
                let mut methods: Vec<String> = item
                    .as_object()
                    .map(|ops| ops.keys().map(|m| m.to_uppercase()).collect())
                    .unwrap_or_default();
                methods.sort();
                routes.push(RouteTemplate {
                    template: path.clone(),
                    segments: segments(path).map(str::to_owned).collect(),
                    allow: methods.join(", "),
                });
            }
        }
        for (path, _, allow) in PLAIN_ROUTES {
            routes.push(RouteTemplate {
                template: path.to_owned(),
                segments: segments(path).map(str::to_owned).collect(),
                allow: allow.to_owned(),
            });
        }
        Self { routes }
    }

    /// The template `path` matches, the most literal one when several do.
    fn find(&self, path: &str) -> Option<&RouteTemplate> {
        let wanted: Vec<&str> = segments(path).collect();
        self.routes
            .iter()
            .filter_map(|r| r.score(&wanted).map(|s| (s, r)))
            .max_by_key(|(score, _)| *score)
            .map(|(_, r)| r)
    }
}

fn segments(path: &str) -> impl Iterator<Item = &str> {
    path.split('/').filter(|s| !s.is_empty())
}

/// The operation name of a plain route; anything else unmatched (an unknown path, a method
/// a path does not answer) is `unmatched`, so random paths cannot grow the label sets.
fn plain_operation(route: Option<&str>) -> &'static str {
    PLAIN_ROUTES
        .iter()
        .find(|(path, _, _)| Some(*path) == route)
        .map_or("unmatched", |(_, op, _)| op)
}

/// The method as a label: only the known ones, since a method is a client's free text.
fn method_label(method: &Method) -> &'static str {
    match method.as_str() {
        "GET" => "GET",
        "HEAD" => "HEAD",
        "POST" => "POST",
        "PUT" => "PUT",
        "PATCH" => "PATCH",
        "DELETE" => "DELETE",
        "OPTIONS" => "OPTIONS",
        _ => "_OTHER",
    }
}

/// Whether the query holds a percent-encoded NUL. (Path parameters are ids, refused when
/// malformed, and webhook tokens, checked for their shape before any lookup.)
fn has_nul(uri: &poem::http::Uri) -> bool {
    uri.query().is_some_and(|q| {
        q.as_bytes()
            .windows(3)
            .any(|w| w[0] == b'%' && w[1] == b'0' && w[2] == b'0')
    })
}

/// Wraps the whole service: errors become the shared JSON body; every answer gets a server
/// span (continuing an incoming `traceparent`), is counted and logged under its operation
/// and route template.
pub async fn edge<E: Endpoint>(
    ep: Arc<E>,
    req: Request,
    metrics: Metrics,
    routes: Arc<Routes>,
) -> poem::Result<Response> {
    let started = Instant::now();
    let method = method_label(req.method());
    let matched = routes.find(req.uri().path());
    let route = matched.map(|r| r.template.as_str());
    let span = tracing::info_span!(
        "http.request",
        otel.name = %match route {
            Some(route) => format!("{method} {route}"),
            None => method.to_owned(),
        },
        otel.kind = "server",
        otel.status_code = tracing::field::Empty,
        http.request.method = method,
        http.route = route,
        http.response.status_code = tracing::field::Empty,
    );
    telemetry::continue_trace(&span, req.headers());
    let result = if has_nul(req.uri()) {
        // No parameter may hold a NUL: nothing Larder stores or looks up can (PostgreSQL
        // refuses them), so it is refused here, the same for every operation.
        Err(larder_api_common::ApiError::new(
            larder_api_common::ErrorCode::InvalidParameter,
            "Query parameters must not contain NUL characters (%00).",
        )
        .into())
    } else {
        ep.call(req).instrument(span.clone()).await
    };
    let (operation, resp) = match result {
        Ok(resp) => {
            let resp = resp.into_response();
            let op = resp.data::<OperationId>().map(|o| o.0);
            (op, resp)
        }
        Err(err) => {
            let op = err.data::<OperationId>().map(|o| o.0);
            let allow = matched.map(|r| r.allow.as_str());
            (op, larder_admin_api::error_response(err, allow))
        }
    };
    let operation = operation.unwrap_or_else(|| plain_operation(route));
    let status = resp.status();
    let elapsed = started.elapsed();
    metrics.request(
        operation,
        method,
        route.unwrap_or("unmatched"),
        status.as_u16(),
        elapsed.as_secs_f64(),
    );
    span.record("http.response.status_code", status.as_u16());
    let _in_span = span.enter();
    let ms = u64::try_from(elapsed.as_millis()).unwrap_or(u64::MAX);
    if status.is_server_error() {
        span.record("otel.status_code", "ERROR");
        tracing::warn!(
            method,
            operation,
            status = status.as_u16(),
            ms,
            "request failed"
        );
    } else {
        tracing::info!(method, operation, status = status.as_u16(), ms, "request");
    }
    Ok(resp)
}

/// `/metrics` on the public listener: for the operator's token only (the counters say how
/// busy the service is and how it fails, which is nobody else's business). Prometheus
/// scrapes `LARDER_METRICS_LISTEN` instead, or sends the token.
#[handler]
pub async fn render_metrics_for_the_operator(
    req: &poem::Request,
    metrics: Data<&Metrics>,
    tenancy: Data<&Tenancy>,
) -> Response {
    let bearer = req
        .header(poem::http::header::AUTHORIZATION)
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim);
    let operator = match bearer {
        Some(token) => matches!(
            tenancy.authenticate(token).await,
            Ok(Some(larder_tenancy::Principal::Operator))
        ),
        None => false,
    };
    if !operator {
        return larder_api_common::ApiError::new(
            larder_api_common::ErrorCode::Unauthorized,
            "`/metrics` wants the operator token here; Prometheus scrapes LARDER_METRICS_LISTEN.",
        )
        .into_response();
    }
    render_metrics_now(&metrics, &tenancy).await
}

/// `/metrics`: every counter, with the database pool as it is at the scrape.
#[handler]
pub async fn render_metrics(metrics: Data<&Metrics>, tenancy: Data<&Tenancy>) -> Response {
    render_metrics_now(&metrics, &tenancy).await
}

async fn render_metrics_now(metrics: &Metrics, tenancy: &Tenancy) -> Response {
    let pool = tenancy.store().connections();
    metrics.pool(pool.in_use, pool.idle);
    match tenancy.store().oldest_queued_message().await {
        Ok(oldest) => metrics.outbox_oldest(oldest.map_or(0.0, |at| {
            (chrono::Utc::now() - at).num_milliseconds() as f64 / 1000.0
        })),
        Err(err) => tracing::warn!(error = %err, "could not read the outbox for /metrics"),
    }
    metrics
        .render()
        .with_content_type("text/plain; version=0.0.4; charset=utf-8")
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nul_in_a_query_is_seen() {
        let uri = |s: &str| s.parse::<poem::http::Uri>().expect("a valid URI");
        assert!(has_nul(&uri(
            "/admin/v1/apps/x/members?email=a%00b@example.com"
        )));
        assert!(!has_nul(&uri("/webhooks/thrivecart/%00")));
        assert!(!has_nul(&uri(
            "/admin/v1/apps/x/members?email=a%2500@example.com"
        )));
        assert!(!has_nul(&uri("/admin/v1/apps?limit=100")));
    }

    #[test]
    fn paths_are_named_by_their_templates() {
        let spec = r#"{"paths": {
            "/admin/v1/apps": {"get": {}, "post": {}},
            "/admin/v1/apps/{app_id}": {"get": {}},
            "/admin/v1/apps/{app_id}/api-keys/{key_id}": {"delete": {}},
            "/admin/v1/apps/{app_id}/export": {"get": {}},
            "/webhooks/thrivecart/{token}": {"head": {}, "get": {}, "post": {}}
        }}"#;
        let routes = Routes::new(spec);
        let allow = |path| routes.find(path).map(|r| r.allow.as_str());
        let template = |path| routes.find(path).map(|r| r.template.as_str());
        assert_eq!(allow("/admin/v1/apps"), Some("GET, POST"));
        assert_eq!(allow("/admin/v1/apps/x/api-keys/y"), Some("DELETE"));
        assert_eq!(
            template("/webhooks/thrivecart/whk_secret"),
            Some("/webhooks/thrivecart/{token}")
        );
        assert_eq!(
            template("/admin/v1/apps/x/export"),
            Some("/admin/v1/apps/{app_id}/export")
        );
        assert_eq!(template("/metrics"), Some("/metrics"));
        assert_eq!(plain_operation(template("/metrics")), "metrics");
        assert_eq!(
            template("/members/01a2/set-password"),
            Some("/members/{app_id}/set-password")
        );
        assert_eq!(
            template("/members/set-password/01a2"),
            Some("/members/set-password/{app_id}")
        );
        assert_eq!(template("/members/01a2/"), Some("/members/{app_id}"));
        assert_eq!(
            plain_operation(template("/members/01a2/magic")),
            "memberPages"
        );
        assert_eq!(template("/nope"), None);
        assert_eq!(plain_operation(None), "unmatched");
        assert_eq!(
            method_label(&Method::from_bytes(b"BREW").expect("a valid method")),
            "_OTHER"
        );
    }
}
