//! The service's edge: one middleware that gives every answer the shared error body,
//! counts it in the metrics and logs it; and `/metrics`.

use std::sync::Arc;
use std::time::Instant;

use poem::web::Data;
use poem::{Endpoint, IntoResponse, Request, Response, handler};
use poem_openapi::OperationId;

use crate::metrics::Metrics;

/// Which methods each path answers, for the `Allow` header of a 405.
#[derive(Debug, Default)]
pub struct AllowIndex {
    routes: Vec<(Vec<String>, String)>,
}

impl AllowIndex {
    /// Reads the paths and methods of an OpenAPI document.
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
                routes.push((segments(path), methods.join(", ")));
            }
        }
        Self { routes }
    }

    /// The `Allow` value of the route `path` matches.
    pub fn allow(&self, path: &str) -> Option<&str> {
        let wanted = segments(path);
        self.routes
            .iter()
            .find(|(template, _)| {
                template.len() == wanted.len()
                    && template
                        .iter()
                        .zip(&wanted)
                        .all(|(t, w)| t == w || (t.starts_with('{') || t.starts_with(':')))
            })
            .map(|(_, methods)| methods.as_str())
    }
}

fn segments(path: &str) -> Vec<String> {
    path.split('/')
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect()
}

/// Names for the routes that are not OpenAPI operations; everything else unmatched (an
/// unknown path, a method a path does not answer) is counted as `unmatched`, so random
/// paths cannot blow up the metrics' label sets.
fn fallback_operation(path: &str) -> &'static str {
    match path {
        "/metrics" => "metrics",
        "/openapi.json" => "openapi",
        "/docs" => "docs",
        _ => "unmatched",
    }
}

/// Wraps the whole service: errors become the shared JSON body, every answer is counted
/// and logged under its operation (never its raw path, which may hold a webhook token).
pub async fn edge<E: Endpoint>(
    ep: Arc<E>,
    req: Request,
    metrics: Metrics,
    allow: Arc<AllowIndex>,
) -> poem::Result<Response> {
    let started = Instant::now();
    let method = req.method().clone();
    let path = req.uri().path().to_owned();
    let result = ep.call(req).await;
    let (operation, resp) = match result {
        Ok(resp) => {
            let resp = resp.into_response();
            let op = resp.data::<OperationId>().map(|o| o.0);
            (op, resp)
        }
        Err(err) => {
            let op = err.data::<OperationId>().map(|o| o.0);
            (
                op,
                larder_admin_api::error_response(err, allow.allow(&path)),
            )
        }
    };
    let operation = operation.unwrap_or_else(|| fallback_operation(&path));
    if let Some(outcome) = resp.data::<larder_gateway::DeliveryOutcome>() {
        metrics.delivery(outcome.0);
    }
    let status = resp.status();
    let elapsed = started.elapsed();
    // Methods are a client's free text: only the known ones become labels.
    let method_label = match method.as_str() {
        m @ ("GET" | "HEAD" | "POST" | "PUT" | "PATCH" | "DELETE" | "OPTIONS") => m,
        _ => "other",
    };
    metrics.observe(
        operation,
        method_label,
        status.as_u16(),
        elapsed.as_secs_f64(),
    );
    if status.is_server_error() {
        tracing::warn!(%method, operation, status = status.as_u16(), ms = elapsed.as_millis() as u64, "request failed");
    } else {
        tracing::info!(%method, operation, status = status.as_u16(), ms = elapsed.as_millis() as u64, "request");
    }
    Ok(resp)
}

#[handler]
pub async fn render_metrics(metrics: Data<&Metrics>) -> Response {
    metrics
        .render()
        .with_content_type("text/plain; version=0.0.4; charset=utf-8")
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allow_lists_the_methods_of_the_matching_template() {
        let spec = r#"{"paths": {
            "/admin/v1/apps": {"get": {}, "post": {}},
            "/admin/v1/apps/{app_id}/api-keys/{key_id}": {"delete": {}}
        }}"#;
        let index = AllowIndex::new(spec);
        assert_eq!(index.allow("/admin/v1/apps"), Some("GET, POST"));
        assert_eq!(index.allow("/admin/v1/apps/x/api-keys/y"), Some("DELETE"));
        assert_eq!(index.allow("/nope"), None);
    }
}
