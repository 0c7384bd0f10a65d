//! CORS for the member API, so an app's own front end can call it from a browser.
//!
//! Each app lists the origins allowed to (`cors_origins` in its member settings). A
//! preflight (`OPTIONS` with `Access-Control-Request-Method`) to a member API path is
//! answered 204, as the Fetch standard has it; when the origin is allowed, with
//! `Access-Control-Allow-Origin` naming it, the methods `GET, POST, DELETE`, the headers
//! `content-type, authorization`, and a `Max-Age`. Every answer to an allowed origin names
//! it the same way and exposes `Retry-After`; other origins get no CORS headers, so their
//! browsers keep the answer from them. No credentials mode: members authenticate with a
//! bearer token, never a cookie, on the API.
//!
//! Which app decides: the one in the path (`/member/v1/apps/{app_id}/…`), or for the paths
//! that name none (`/member/v1/me`, `/member/v1/sessions/current`) the app of the request's
//! session. A preflight carries no token, so for those paths it is answered for an origin
//! that any app allows; the request that follows still needs its session's app to allow it.

use std::sync::Arc;

use larder_access::AppId;
use larder_tenancy::Tenancy;
use poem::http::header::{
    ACCESS_CONTROL_ALLOW_HEADERS, ACCESS_CONTROL_ALLOW_METHODS, ACCESS_CONTROL_ALLOW_ORIGIN,
    ACCESS_CONTROL_EXPOSE_HEADERS, ACCESS_CONTROL_MAX_AGE, ACCESS_CONTROL_REQUEST_METHOD, ORIGIN,
    VARY,
};
use poem::http::{HeaderValue, Method, StatusCode};
use poem::{Endpoint, IntoResponse, Request, Response};
use poem_openapi::OperationId;

use crate::api::SessionApp;

const PREFIX: &str = "/member/v1/";
/// What a preflight allows.
pub const ALLOW_METHODS: &str = "GET, POST, DELETE";
pub const ALLOW_HEADERS: &str = "content-type, authorization";
/// How long a browser may keep a preflight's answer, in seconds.
pub const MAX_AGE_SECONDS: u32 = 600;

/// The app a member API path names, if any.
fn app_in_path(path: &str) -> Option<AppId> {
    path.strip_prefix(PREFIX)?
        .strip_prefix("apps/")?
        .split('/')
        .next()?
        .parse()
        .ok()
}

/// Answers the preflights of member API paths (204), inside the service's edge so they are
/// counted and traced like any request; [`cors`] adds the headers.
pub async fn answer_preflights<E: Endpoint>(ep: Arc<E>, req: Request) -> poem::Result<Response> {
    if req.method() == Method::OPTIONS && req.uri().path().starts_with(PREFIX) {
        let mut resp = StatusCode::NO_CONTENT.into_response();
        resp.set_data(OperationId("corsPreflight"));
        return Ok(resp);
    }
    ep.call(req).await.map(IntoResponse::into_response)
}

/// Adds CORS headers to the answers of member API paths, for allowed origins. Wraps the
/// whole service, so error answers get them too and a browser can read them.
pub async fn cors<E: Endpoint>(
    ep: Arc<E>,
    mut req: Request,
    tenancy: Tenancy,
) -> poem::Result<Response> {
    if !req.uri().path().starts_with(PREFIX) {
        return ep.call(req).await.map(IntoResponse::into_response);
    }
    let origin = req
        .headers()
        .get(ORIGIN)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let path_app = app_in_path(req.uri().path());
    let preflight = req.method() == Method::OPTIONS
        && req.headers().contains_key(ACCESS_CONTROL_REQUEST_METHOD);
    let session = SessionApp::default();
    req.extensions_mut().insert(session.clone());
    let mut resp = ep.call(req).await?.into_response();
    // The answer depends on the origin: caches must keep them apart.
    resp.headers_mut()
        .append(VARY, HeaderValue::from_static("Origin"));
    let Some(origin) = origin else {
        return Ok(resp);
    };
    let allowed = match path_app.or_else(|| session.0.get().copied()) {
        Some(app) => tenancy
            .cors_origins(app)
            .await
            .map(|origins| origins.contains(&origin)),
        None => tenancy.origin_allowed_anywhere(&origin).await,
    };
    let allowed = allowed.unwrap_or_else(|err| {
        tracing::warn!(error = %err, "could not read the allowed origins; answering without CORS");
        false
    });
    let Ok(value) = HeaderValue::from_str(&origin) else {
        return Ok(resp);
    };
    if !allowed {
        return Ok(resp);
    }
    let headers = resp.headers_mut();
    headers.insert(ACCESS_CONTROL_ALLOW_ORIGIN, value);
    if preflight {
        headers.insert(
            ACCESS_CONTROL_ALLOW_METHODS,
            HeaderValue::from_static(ALLOW_METHODS),
        );
        headers.insert(
            ACCESS_CONTROL_ALLOW_HEADERS,
            HeaderValue::from_static(ALLOW_HEADERS),
        );
        headers.insert(ACCESS_CONTROL_MAX_AGE, HeaderValue::from(MAX_AGE_SECONDS));
    } else {
        headers.insert(
            ACCESS_CONTROL_EXPOSE_HEADERS,
            HeaderValue::from_static("Retry-After"),
        );
    }
    Ok(resp)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_app_comes_from_the_path_when_it_names_one() {
        let id = "01a21af4-c5d8-7242-a47f-2353fee99c4f";
        assert_eq!(
            app_in_path(&format!("/member/v1/apps/{id}/sessions")),
            id.parse().ok()
        );
        assert_eq!(app_in_path("/member/v1/me"), None);
        assert_eq!(app_in_path("/member/v1/apps/nope/sessions"), None);
        assert_eq!(app_in_path("/admin/v1/apps"), None);
    }
}
