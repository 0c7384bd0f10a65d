//! Member passwords: argon2id (OWASP's recommended 19 MiB, 2 passes, 1 lane), hashed on the
//! blocking pool behind a semaphore of one permit per core, so a storm of sign-ins queues
//! there instead of stalling the async workers that answer webhooks. The queue is bounded
//! too: beyond [`QUEUE_PER_PERMIT`] waiting per permit, a hash is refused at once
//! ([`HashError::Busy`]), answered 503 with `Retry-After`, rather than waited for.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use argon2::{Argon2, PasswordHasher, PasswordVerifier};
use larder_tenancy::secrets;
use tokio::sync::Semaphore;

/// The shortest password accepted.
pub const MIN_PASSWORD_CHARS: usize = 10;
/// Longer passwords are refused rather than hashed (a cheap denial-of-service guard).
pub const MAX_PASSWORD_CHARS: usize = 1024;

/// How many hashes may wait per permit before more are refused.
pub const QUEUE_PER_PERMIT: usize = 8;

/// Argon2id hashing off the async runtime, with bounded concurrency and a bounded queue.
#[derive(Debug, Clone)]
pub struct Passwords {
    permits: Arc<Semaphore>,
    /// Hashes waiting for a permit or running, and how many may.
    queued: Arc<AtomicUsize>,
    max_queued: usize,
    /// Verified against when the email is unknown, so both cases take as long.
    dummy: Arc<str>,
}

#[derive(Debug, thiserror::Error)]
pub enum HashError {
    /// Too many hashes are waiting already: try again in a moment.
    #[error("too many passwords are being checked at once")]
    Busy,
    #[error("password hashing failed")]
    Failed,
}

impl Passwords {
    /// `concurrency` hashes at a time (one per core is right: argon2 is CPU-bound).
    pub fn new(concurrency: usize) -> Self {
        let dummy = Argon2::default()
            .hash_password(secrets::generate_session_token().as_bytes())
            .map(|h| h.to_string())
            .unwrap_or_default();
        let concurrency = concurrency.max(1);
        Self {
            permits: Arc::new(Semaphore::new(concurrency)),
            queued: Arc::new(AtomicUsize::new(0)),
            max_queued: concurrency * (QUEUE_PER_PERMIT + 1),
            dummy: dummy.into(),
        }
    }

    async fn blocking<T: Send + 'static>(
        &self,
        work: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, HashError> {
        if self.queued.fetch_add(1, Ordering::AcqRel) >= self.max_queued {
            self.queued.fetch_sub(1, Ordering::AcqRel);
            return Err(HashError::Busy);
        }
        // Counted out however this ends (a dropped request included).
        struct Queued<'a>(&'a AtomicUsize);
        impl Drop for Queued<'_> {
            fn drop(&mut self) {
                self.0.fetch_sub(1, Ordering::AcqRel);
            }
        }
        let _queued = Queued(&self.queued);
        let _permit = self
            .permits
            .acquire()
            .await
            .map_err(|_| HashError::Failed)?;
        tokio::task::spawn_blocking(work)
            .await
            .map_err(|_| HashError::Failed)
    }

    pub async fn hash(&self, password: &str) -> Result<String, HashError> {
        let password = password.to_owned();
        self.blocking(move || {
            Argon2::default()
                .hash_password(password.as_bytes())
                .map(|h| h.to_string())
                .map_err(|_| HashError::Failed)
        })
        .await?
    }

    /// Whether `password` matches `stored`; with no stored hash, the same work is done
    /// against a dummy and the answer is no. `Err(Busy)` when too many wait already.
    pub async fn verify(&self, password: &str, stored: Option<&str>) -> Result<bool, HashError> {
        let password = password.to_owned();
        let (hash, real) = match stored {
            Some(h) => (h.to_owned(), true),
            None => (self.dummy.to_string(), false),
        };
        let matches = self
            .blocking(move || {
                Argon2::default()
                    .verify_password(password.as_bytes(), hash.as_str())
                    .is_ok()
            })
            .await?;
        Ok(matches && real)
    }
}

/// Why a password is refused, or `None`.
pub fn weakness(password: &str, email: &str) -> Option<&'static str> {
    let chars = password.chars().count();
    if chars < MIN_PASSWORD_CHARS {
        Some("The password needs at least 10 characters.")
    } else if chars > MAX_PASSWORD_CHARS {
        Some("The password may have at most 1024 characters.")
    } else if password.trim().eq_ignore_ascii_case(email.trim()) {
        Some("The password must not be the email address.")
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn weak_passwords_are_named() {
        assert!(weakness("short", "a@b.c").is_some());
        assert!(weakness("Pat@Example.com", "pat@example.com").is_some());
        assert!(weakness(&"x".repeat(1025), "a@b.c").is_some());
        assert_eq!(weakness("correct horse battery", "a@b.c"), None);
    }

    #[tokio::test]
    async fn passwords_verify_only_themselves() {
        let p = Passwords::new(2);
        let hash = p
            .hash("correct horse battery")
            .await
            .expect("hashing works");
        assert!(
            hash.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"),
            "{hash}"
        );
        assert!(
            p.verify("correct horse battery", Some(&hash))
                .await
                .unwrap()
        );
        assert!(!p.verify("correct horse batter", Some(&hash)).await.unwrap());
        assert!(!p.verify("correct horse battery", None).await.unwrap());
        assert!(!p.verify("x", Some("not a hash")).await.unwrap());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn beyond_the_queue_hashes_are_refused_at_once() {
        let p = Passwords::new(1);
        let hash = p
            .hash("correct horse battery")
            .await
            .expect("hashing works");
        // One running and eight waiting fill it; the rest are refused, not queued.
        let all = futures::future::join_all(
            (0..20).map(|_| p.verify("correct horse battery", Some(&hash))),
        )
        .await;
        let busy = all
            .iter()
            .filter(|r| matches!(r, Err(HashError::Busy)))
            .count();
        let checked = all.iter().filter(|r| matches!(r, Ok(true))).count();
        assert_eq!(checked, 1 + QUEUE_PER_PERMIT, "{all:?}");
        assert_eq!(busy, 20 - 1 - QUEUE_PER_PERMIT);
        // Once they are through, there is room again.
        assert!(
            p.verify("correct horse battery", Some(&hash))
                .await
                .unwrap()
        );
    }
}
