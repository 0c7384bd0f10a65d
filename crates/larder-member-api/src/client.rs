//! Who is asking: the client's address, for per-address limits.
//!
//! Behind a load balancer or an ingress the peer is the proxy, and the client's address is
//! in `X-Forwarded-For`, where each proxy appends the address it got the request from. Only
//! the entries the service's own proxies added can be trusted (a client can send the header
//! with anything in it), so with `trusted_proxies` proxies in front, the client is the
//! entry that many places from the end; with none, the header is ignored.

use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, Ordering};

use poem::Request;

/// The address of the client that sent `req`, as far as it can be trusted.
pub fn client_address(req: &Request, trusted_proxies: usize) -> Option<IpAddr> {
    let peer = req.remote_addr().as_socket_addr().map(|a| a.ip());
    if trusted_proxies == 0 {
        if req.headers().contains_key("x-forwarded-for") {
            warn_once_of_untrusted_proxies();
        }
        return peer;
    }
    let forwarded: Vec<&str> = req
        .headers()
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .collect();
    forwarded_client(&forwarded, trusted_proxies).or(peer)
}

/// Requests come through a proxy Larder was not told of: each client counts as the proxy.
fn warn_once_of_untrusted_proxies() {
    static WARNED: AtomicBool = AtomicBool::new(false);
    if !WARNED.swap(true, Ordering::Relaxed) {
        tracing::warn!(
            "requests carry X-Forwarded-For but LARDER_TRUSTED_PROXIES is 0: if a proxy is in \
             front of Larder, per-address limits count every client as the proxy; then set it \
             to the number of proxies (a client may also have written the header itself)"
        );
    }
}

/// The entry of `forwarded` (oldest first) that the outermost of `trusted_proxies` proxies
/// saw the request come from; the first one when the chain is shorter.
fn forwarded_client(forwarded: &[&str], trusted_proxies: usize) -> Option<IpAddr> {
    let index = forwarded.len().saturating_sub(trusted_proxies);
    forwarded.get(index).and_then(|a| a.parse().ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_client_is_what_the_outermost_trusted_proxy_saw() {
        let ip = |s: &str| s.parse::<IpAddr>().ok();
        // A client that forged an entry before reaching one trusted proxy.
        let chain = ["6.6.6.6", "203.0.113.7"];
        assert_eq!(forwarded_client(&chain, 1), ip("203.0.113.7"));
        assert_eq!(forwarded_client(&chain, 2), ip("6.6.6.6"));
        assert_eq!(forwarded_client(&chain, 3), ip("6.6.6.6"));
        assert_eq!(forwarded_client(&["not an address"], 1), None);
        assert_eq!(forwarded_client(&[], 1), None);
        assert_eq!(forwarded_client(&["2001:db8::1"], 1), ip("2001:db8::1"));
    }
}
