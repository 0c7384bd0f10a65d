//! Rate limits on what members ask for, counted in the shared cache (Redis when it is
//! configured, so every process sees the same counts; in process otherwise).
//!
//! | what | limit |
//! | --- | --- |
//! | failed sign-ins, per app and email | 10 per 15 minutes (then even the right password waits) |
//! | failed sign-ins, per client address | 50 per 15 minutes |
//! | magic links and password resets asked for, per app and email | 5 per 15 minutes |
//! | magic links and password resets asked for, per client address | 20 per 15 minutes |
//!
//! The per-email counts are kept whether or not the email is a member's, so a refusal
//! tells nobody whether it is. Without a working counter, nothing is sent (fail closed).
//! An IPv6 client counts by its /64 (one subscriber's block), so rotating addresses within
//! it does not reset its count. Behind proxies the client's address is only known when
//! `LARDER_TRUSTED_PROXIES` says how many there are: otherwise every client counts as the
//! proxy, and 50 failures from anyone hold back every sign-in for 15 minutes.

use std::net::IpAddr;
use std::time::Duration;

use larder_access::AppId;
use larder_api_common::{ApiError, ErrorCode};
use larder_cache::Cache;
use larder_tenancy::secrets;

/// Failed sign-ins allowed per app and email within [`WINDOW`].
pub const MAX_SIGN_IN_FAILURES: i64 = 10;
/// Failed sign-ins allowed per client address within [`WINDOW`], across apps and emails.
pub const MAX_SIGN_IN_FAILURES_PER_ADDRESS: i64 = 50;
/// Links asked for per app and email within [`WINDOW`].
pub const LINK_REQUESTS_PER_EMAIL: i64 = 5;
/// Links asked for per client address within [`WINDOW`], across apps.
pub const LINK_REQUESTS_PER_ADDRESS: i64 = 20;
/// The window every limit here counts in.
pub const WINDOW: Duration = Duration::from_secs(15 * 60);

/// Keys hold digests: neither an email nor an address is written to the cache.
pub fn sign_in_key(app: AppId, email: &str) -> String {
    format!("login:{app}:{}", secrets::hash_token(email))
}

/// What a client address counts as: itself, or for IPv6 its /64.
fn address_block(address: IpAddr) -> String {
    match address {
        IpAddr::V4(v4) => v4.to_string(),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => v4.to_string(),
            None => {
                let s = v6.segments();
                format!("{:x}:{:x}:{:x}:{:x}::/64", s[0], s[1], s[2], s[3])
            }
        },
    }
}

fn sign_in_address_key(address: IpAddr) -> String {
    format!("login-ip:{}", secrets::hash_token(&address_block(address)))
}

/// The places a sign-in attempt holds in its counters until it is known to have failed.
#[derive(Debug)]
pub struct SignInPlaces {
    keys: Vec<String>,
}

impl SignInPlaces {
    /// Gives the places back: the attempt succeeded, or was never checked.
    pub async fn give_back(self, cache: &dyn Cache) {
        for key in self.keys {
            if let Err(err) = cache.add(&key, -1, WINDOW).await {
                tracing::warn!(error = %err, "could not release a sign-in attempt");
            }
        }
    }
}

/// Reserves a sign-in attempt's places: per client address, then per app and email. 429
/// when either is over its limit (giving back what was taken), 503 when they cannot be
/// counted.
pub async fn take_sign_in(
    cache: &dyn Cache,
    app: AppId,
    email: &str,
    client: Option<IpAddr>,
) -> Result<SignInPlaces, ApiError> {
    let mut taken = SignInPlaces { keys: Vec::new() };
    let mut limits = Vec::new();
    if let Some(address) = client {
        limits.push((
            sign_in_address_key(address),
            MAX_SIGN_IN_FAILURES_PER_ADDRESS,
            "Too many failed sign-ins from this address; try again later.",
        ));
    }
    limits.push((
        sign_in_key(app, email),
        MAX_SIGN_IN_FAILURES,
        "Too many failed sign-ins for this email; try again later.",
    ));
    for (key, limit, message) in limits {
        let counted = cache.add(&key, 1, WINDOW).await;
        let (count, left) = match counted {
            Ok(c) => c,
            Err(err) => {
                tracing::error!(error = %err, "could not count a sign-in attempt");
                taken.give_back(cache).await;
                return Err(ApiError::unavailable());
            }
        };
        taken.keys.push(key);
        if count > limit {
            taken.give_back(cache).await;
            return Err(
                ApiError::new(ErrorCode::RateLimited, message).retry_after(left.as_secs().max(1))
            );
        }
    }
    Ok(taken)
}

fn link_email_key(app: AppId, email: &str) -> String {
    format!("links:{app}:{}", secrets::hash_token(email))
}

fn link_address_key(address: IpAddr) -> String {
    format!("links-ip:{}", secrets::hash_token(&address_block(address)))
}

/// Counts one request against `key`; 429 with `Retry-After` when it is over `limit`.
async fn take(cache: &dyn Cache, key: &str, limit: i64, message: &str) -> Result<(), ApiError> {
    let (count, left) = cache.add(key, 1, WINDOW).await.map_err(|err| {
        tracing::error!(error = %err, "could not count a request against its limit");
        ApiError::unavailable()
    })?;
    if count > limit {
        return Err(
            ApiError::new(ErrorCode::RateLimited, message).retry_after(left.as_secs().max(1))
        );
    }
    Ok(())
}

/// Counts a request for a magic link or a password reset, by the client's address first
/// (so one client cycling through addresses is stopped) and then by the email.
pub async fn take_link_request(
    cache: &dyn Cache,
    app: AppId,
    email: &str,
    client: Option<IpAddr>,
) -> Result<(), ApiError> {
    if let Some(address) = client {
        take(
            cache,
            &link_address_key(address),
            LINK_REQUESTS_PER_ADDRESS,
            "Too many links asked for from this address; try again later.",
        )
        .await?;
    }
    take(
        cache,
        &link_email_key(app, email),
        LINK_REQUESTS_PER_EMAIL,
        "Too many links asked for this email; try again later.",
    )
    .await
}

#[cfg(test)]
mod tests {
    use super::*;
    use larder_cache::MemoryCache;

    #[test]
    fn an_ipv6_client_counts_by_its_block() {
        let key = |a: &str| sign_in_address_key(a.parse().expect("an address"));
        assert_eq!(key("2001:db8:1:2::1"), key("2001:db8:1:2:ffff::9"));
        assert_ne!(key("2001:db8:1:2::1"), key("2001:db8:1:3::1"));
        assert_eq!(key("::ffff:203.0.113.7"), key("203.0.113.7"));
        assert_ne!(key("203.0.113.7"), key("203.0.113.8"));
        let link = |a: &str| link_address_key(a.parse().expect("an address"));
        assert_eq!(link("2001:db8::1"), link("2001:db8::2"));
    }

    #[tokio::test]
    async fn five_links_per_email_and_twenty_per_address() {
        let cache = MemoryCache::new(100);
        let app = AppId::new();
        let client: Option<IpAddr> = "203.0.113.7".parse().ok();
        for _ in 0..LINK_REQUESTS_PER_EMAIL {
            take_link_request(&cache, app, "a@example.com", client)
                .await
                .expect("within the limit");
        }
        let refused = take_link_request(&cache, app, "a@example.com", client)
            .await
            .expect_err("the sixth is refused");
        assert_eq!(refused.body.code, ErrorCode::RateLimited);
        assert!(refused.retry_after.is_some_and(|s| s > 0 && s <= 900));
        // Another app's member with that address has their own count.
        take_link_request(&cache, AppId::new(), "a@example.com", None)
            .await
            .expect("another app");
        // The address runs out after twenty, whatever the emails.
        for n in 0..(LINK_REQUESTS_PER_ADDRESS - LINK_REQUESTS_PER_EMAIL - 1) {
            take_link_request(&cache, app, &format!("{n}@example.com"), client)
                .await
                .expect("within the address's limit");
        }
        let refused = take_link_request(&cache, app, "fresh@example.com", client)
            .await
            .expect_err("over the address's limit");
        assert!(
            refused.body.message.contains("address"),
            "{}",
            refused.body.message
        );
    }
}
