//! Where messages go: an SMTP server (`LARDER_SMTP_URL`), or `.eml` files in a directory,
//! the embedded default, so a fresh `larder serve` shows what it would send.

use std::path::PathBuf;
use std::time::Duration;

use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Tls, TlsParameters};
use lettre::{AsyncSmtpTransport, AsyncTransport, Tokio1Executor};

/// How long one SMTP conversation may take.
pub const SMTP_TIMEOUT: Duration = Duration::from_secs(20);

/// A transport that could not be set up from its settings.
#[derive(Debug, thiserror::Error)]
pub enum TransportError {
    #[error("LARDER_SMTP_URL must be smtp://host[:port] or smtps://host[:port]")]
    Url,
    #[error("the SMTP server's TLS settings cannot be made: {0}")]
    Tls(String),
}

/// Why one message was not handed over.
#[derive(Debug, thiserror::Error)]
#[error("{text}")]
pub struct SendError {
    /// The server refused it for good (a 5xx): trying again will not help.
    pub permanent: bool,
    pub text: String,
}

/// Where messages go.
#[derive(Clone)]
pub enum Transport {
    Smtp {
        transport: AsyncSmtpTransport<Tokio1Executor>,
        /// For logs: the server, without credentials.
        server: String,
    },
    /// Each message as `<dir>/<message id>.eml`.
    Files(PathBuf),
}

impl std::fmt::Debug for Transport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Transport::Smtp { server, .. } => f.debug_tuple("Smtp").field(server).finish(),
            Transport::Files(dir) => f.debug_tuple("Files").field(dir).finish(),
        }
    }
}

impl Transport {
    /// SMTP as `url` says: `smtp://` speaks plain SMTP and upgrades with STARTTLS when the
    /// server offers it (a local relay or a test server offers none); `smtps://` is TLS
    /// from the first byte. Credentials come from the URL's user part (percent-encoded), or
    /// `password` (read from a secret file) with the URL's user name. With credentials,
    /// `smtp://` requires STARTTLS: a password (and the links in the messages) never cross
    /// the network in the clear because someone in between removed the server's offer.
    pub fn smtp(url: &str, password: Option<&str>) -> Result<Self, TransportError> {
        let parsed = url::Url::parse(url).map_err(|_| TransportError::Url)?;
        let host = parsed.host_str().ok_or(TransportError::Url)?.to_owned();
        let tls =
            TlsParameters::new(host.clone()).map_err(|e| TransportError::Tls(e.to_string()))?;
        let user = decode(parsed.username());
        let password = parsed
            .password()
            .map(decode)
            .or_else(|| password.map(str::to_owned));
        let (tls, default_port) = match parsed.scheme() {
            "smtp" if password.is_some() => (Tls::Required(tls), 25),
            "smtp" => (Tls::Opportunistic(tls), 25),
            "smtps" => (Tls::Wrapper(tls), 465),
            _ => return Err(TransportError::Url),
        };
        let port = parsed.port().unwrap_or(default_port);
        let mut builder = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(&host)
            .port(port)
            .tls(tls)
            .timeout(Some(SMTP_TIMEOUT));
        if let Some(password) = password {
            builder = builder.credentials(Credentials::new(user, password));
        }
        Ok(Transport::Smtp {
            transport: builder.build(),
            server: format!("{}://{host}:{port}", parsed.scheme()),
        })
    }

    /// `.eml` files under `dir` (made when the first message is written).
    pub fn files(dir: impl Into<PathBuf>) -> Self {
        Transport::Files(dir.into())
    }

    /// Hands `message` over; `id` names its file.
    pub async fn send(&self, id: &str, message: lettre::Message) -> Result<(), SendError> {
        match self {
            Transport::Smtp { transport, .. } => {
                transport
                    .send(message)
                    .await
                    .map(|_| ())
                    .map_err(|e| SendError {
                        permanent: refuses_the_message(e.status().map(u16::from)),
                        text: smtp_error_text(&e),
                    })
            }
            Transport::Files(dir) => {
                let write = async {
                    tokio::fs::create_dir_all(dir).await?;
                    // Written whole under a temporary name, then renamed: a reader never
                    // sees half a message.
                    let part = dir.join(format!(".{id}.eml.part"));
                    tokio::fs::write(&part, message.formatted()).await?;
                    tokio::fs::rename(&part, dir.join(format!("{id}.eml"))).await
                };
                write.await.map_err(|e| SendError {
                    permanent: false,
                    text: format!("could not write to {}: {e}", dir.display()),
                })
            }
        }
    }
}

/// Whether an SMTP reply refuses this message for good (no such mailbox, a domain that
/// takes no mail, a message refused as it is), rather than the service: a failed sign-in
/// (535), a TLS demand (530) or a command the server did not take (5.0.x) is Larder's
/// setting or the server's state, and is retried like a temporary failure, so fixing the
/// setting sends what waited.
pub fn refuses_the_message(code: Option<u16>) -> bool {
    matches!(code, Some(521 | 550..=556))
}

/// Percent-decodes a URL's user or password (`+` stays `+`).
fn decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        if bytes[i] == b'%'
            && i + 2 < bytes.len()
            && let (Some(hi), Some(lo)) = (hex(bytes[i + 1]), hex(bytes[i + 2]))
        {
            out.push(u8::try_from(hi * 16 + lo).unwrap_or(b'?'));
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The server's answer, or what went wrong on the way, in one line, without credentials.
fn smtp_error_text(err: &lettre::transport::smtp::Error) -> String {
    let mut text = err.to_string();
    let mut source = std::error::Error::source(err);
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text.chars().filter(|c| !c.is_control()).take(500).collect()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn smtp_urls_are_read_or_refused() {
        let plain = Transport::smtp("smtp://127.0.0.1:2525", None).unwrap();
        assert!(format!("{plain:?}").contains("smtp://127.0.0.1:2525"));
        let tls = Transport::smtp("smtps://mail.example.com", None).unwrap();
        assert!(format!("{tls:?}").contains("smtps://mail.example.com:465"));
        let with_user = Transport::smtp("smtp://larder:s3cret@mail.example.com:587", None).unwrap();
        assert!(!format!("{with_user:?}").contains("s3cret"));
        for bad in ["http://mail.example.com", "mail.example.com", "smtp://"] {
            assert!(Transport::smtp(bad, None).is_err(), "{bad}");
        }
    }

    #[test]
    fn credentials_are_percent_decoded() {
        assert_eq!(decode("a%2Bb+c%26d%40e"), "a+b+c&d@e");
        assert_eq!(decode("100%"), "100%");
        assert_eq!(decode("%zz%4"), "%zz%4");
        assert_eq!(decode("caf%C3%A9"), "café");
    }

    #[test]
    fn only_a_refusal_of_the_message_gives_it_up() {
        for code in [550, 551, 552, 553, 554, 521] {
            assert!(refuses_the_message(Some(code)), "{code}");
        }
        // Sign-in failures, TLS demands, syntax errors and 4xx are the service's state.
        for code in [535, 534, 530, 500, 501, 502, 503, 421, 450, 451] {
            assert!(!refuses_the_message(Some(code)), "{code}");
        }
        assert!(!refuses_the_message(None));
    }
}
