//! Tokens, keys and secret words: how they are made, stored and compared.
//!
//! Webhook tokens, API keys and the operator token are random (256 bits), so a fast hash is
//! as safe as a slow one: nobody can brute-force 2^256 guesses. They are stored as SHA-256
//! digests, which keeps a per-request check at microseconds; argon2 would cost tens of
//! milliseconds on every admin request and is kept for member passwords, which people choose.
//!
//! A ThriveCart secret word is chosen by a person and sent in every delivery, so it is
//! checked on the hot path. It is stored salted and hashed (SHA-256) and compared in
//! constant time; the word itself is never stored, logged or returned.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rand::RngCore;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// Prefix of API keys, so a leaked one is recognisable (and scannable) as Larder's.
pub const API_KEY_PREFIX: &str = "lk_";
/// Prefix of the operator token.
pub const OPERATOR_TOKEN_PREFIX: &str = "lop_";

const RANDOM_BYTES: usize = 32;
/// Length of 32 bytes in unpadded base64url.
const RANDOM_CHARS: usize = 43;

fn random_part() -> String {
    let mut bytes = [0u8; RANDOM_BYTES];
    rand::rng().fill_bytes(&mut bytes);
    URL_SAFE_NO_PAD.encode(bytes)
}

/// A new webhook token (the last segment of an app's webhook URL).
pub fn generate_webhook_token() -> String {
    random_part()
}

/// A new API key, shown to the admin once.
pub fn generate_api_key() -> String {
    format!("{API_KEY_PREFIX}{}", random_part())
}

/// A new invitation token (in a set-password link).
pub fn generate_invitation_token() -> String {
    generate_link_token(larder_store::LinkPurpose::SetPassword)
}

/// A new token for a single-use link of `purpose`; its prefix tells them apart
/// (`li_` to set a password, `lm_` a magic link, `lr_` a password reset).
pub fn generate_link_token(purpose: larder_store::LinkPurpose) -> String {
    let prefix = match purpose {
        larder_store::LinkPurpose::SetPassword => "li_",
        larder_store::LinkPurpose::MagicLink => "lm_",
        larder_store::LinkPurpose::PasswordReset => "lr_",
    };
    format!("{prefix}{}", random_part())
}

/// A new member session token.
pub fn generate_session_token() -> String {
    format!("ls_{}", random_part())
}

/// A new operator token, printed once on first start.
pub fn generate_operator_token() -> String {
    format!("{OPERATOR_TOKEN_PREFIX}{}", random_part())
}

/// Whether `token` is shaped like something [`generate_webhook_token`] made. Anything else
/// is refused without a lookup.
pub fn is_webhook_token_shaped(token: &str) -> bool {
    token.len() == RANDOM_CHARS && token.bytes().all(is_base64url)
}

/// Whether `key` is shaped like an API key.
pub fn is_api_key_shaped(key: &str) -> bool {
    key.strip_prefix(API_KEY_PREFIX)
        .is_some_and(|rest| rest.len() == RANDOM_CHARS && rest.bytes().all(is_base64url))
}

fn is_base64url(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'-' || b == b'_'
}

/// The stored form of a random token or key: hex SHA-256.
pub fn hash_token(token: &str) -> String {
    hex(&Sha256::digest(token.as_bytes()))
}

/// Constant-time equality of two strings (of public length).
pub fn constant_time_eq(a: &str, b: &str) -> bool {
    a.as_bytes().ct_eq(b.as_bytes()).into()
}

const SECRET_SCHEME: &str = "sha256";

/// The stored form of a secret word: `sha256$<salt>$<digest>`, salt random per word.
pub fn hash_secret_word(word: &str) -> String {
    let mut salt = [0u8; 16];
    rand::rng().fill_bytes(&mut salt);
    let salt = hex(&salt);
    let digest = salted_digest(&salt, word);
    format!("{SECRET_SCHEME}${salt}${digest}")
}

/// Whether `word` is the secret word `stored` was made from; constant time in the word.
pub fn verify_secret_word(word: &str, stored: &str) -> bool {
    let mut parts = stored.splitn(3, '$');
    let (Some(SECRET_SCHEME), Some(salt), Some(digest)) =
        (parts.next(), parts.next(), parts.next())
    else {
        return false;
    };
    constant_time_eq(&salted_digest(salt, word), digest)
}

fn salted_digest(salt: &str, word: &str) -> String {
    let mut hasher = Sha256::new();
    hasher.update(salt.as_bytes());
    hasher.update([0u8]);
    hasher.update(word.as_bytes());
    hex(&hasher.finalize())
}

fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    bytes
        .iter()
        .fold(String::with_capacity(bytes.len() * 2), |mut s, b| {
            let _ = write!(s, "{b:02x}");
            s
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_tokens_are_random_and_well_formed() {
        let (a, b) = (generate_webhook_token(), generate_webhook_token());
        assert_ne!(a, b);
        assert!(is_webhook_token_shaped(&a));
        let key = generate_api_key();
        assert!(is_api_key_shaped(&key));
        assert!(!is_api_key_shaped(&a));
        assert!(!is_webhook_token_shaped(&key));
        assert!(generate_operator_token().starts_with(OPERATOR_TOKEN_PREFIX));
    }

    #[test]
    fn odd_tokens_are_not_token_shaped() {
        for odd in [
            "",
            "abc",
            "lk_",
            "lk_short",
            &"a".repeat(44),
            &format!("{}!", "a".repeat(42)),
        ] {
            assert!(!is_webhook_token_shaped(odd), "{odd}");
            assert!(!is_api_key_shaped(odd), "{odd}");
        }
    }

    #[test]
    fn token_hash_is_stable_and_hides_the_token() {
        let token = generate_api_key();
        assert_eq!(hash_token(&token), hash_token(&token));
        assert_eq!(hash_token(&token).len(), 64);
        assert!(!hash_token(&token).contains(&token[3..]));
        assert_ne!(hash_token(&token), hash_token(&generate_api_key()));
    }

    #[test]
    fn secret_words_verify_only_themselves() {
        let stored = hash_secret_word("open sesame");
        assert!(!stored.contains("open sesame"));
        assert!(verify_secret_word("open sesame", &stored));
        assert!(!verify_secret_word("open sesame ", &stored));
        assert!(!verify_secret_word("", &stored));
        assert!(!verify_secret_word("open sesame", "garbage"));
        // Salted: the same word hashes differently each time.
        assert_ne!(stored, hash_secret_word("open sesame"));
    }
}
