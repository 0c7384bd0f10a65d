//! Every setting of the `larder` binary: a flag and an environment variable each, with
//! defaults that make a bare `larder serve` work on a fresh machine.

use std::net::SocketAddr;

use clap::builder::BoolishValueParser;
use clap::{ArgAction, Args, Parser, Subcommand, ValueEnum};

/// Larder: ThriveCart purchases in, membership access out.
#[derive(Debug, Parser)]
#[command(name = "larder", version, about, long_about = None)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the service (migrating the database first, unless told not to).
    Serve(Box<ServeSettings>),
    /// Apply database migrations and exit.
    Migrate(MigrateSettings),
    /// Print the OpenAPI document of the admin API and exit.
    Openapi,
}

#[derive(Clone, Args)]
pub struct DatabaseSettings {
    /// Where data lives: `postgres://…` for PostgreSQL, `sqlite:…` for an embedded file.
    #[arg(
        long,
        env = "DATABASE_URL",
        default_value = "sqlite://data/larder.db",
        hide_env_values = true
    )]
    pub database_url: String,
}

/// How log lines look and which are written.
#[derive(Debug, Clone, Args)]
pub struct LogSettings {
    /// `text` for people, `json` for a log pipeline: one JSON object per line, with
    /// `trace_id` and `span_id` while a trace is active.
    #[arg(long, env = "LARDER_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,

    /// Which log lines are written, as `tracing` filter directives (`info`,
    /// `warn,larder_gateway=debug`).
    #[arg(long, env = "RUST_LOG", default_value = "info")]
    pub log_filter: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

/// Where traces go. Unset endpoint: no exporter at all.
#[derive(Debug, Clone, Args)]
pub struct TelemetrySettings {
    /// OTLP/HTTP (protobuf) collector to export traces to, such as `http://collector:4318`;
    /// traces go to its `/v1/traces`. Unset: no traces are exported.
    #[arg(long, env = "OTEL_EXPORTER_OTLP_ENDPOINT")]
    pub otel_endpoint: Option<String>,

    /// The `service.name` of exported traces (default `larder`).
    #[arg(long, env = "OTEL_SERVICE_NAME")]
    pub otel_service_name: Option<String>,

    /// More resource attributes of exported traces, `key=value` pairs separated by commas
    /// (`deployment.environment.name=production,k8s.pod.name=larder-0`).
    #[arg(long, env = "OTEL_RESOURCE_ATTRIBUTES")]
    pub otel_resource_attributes: Option<String>,
}

#[derive(Debug, Clone, Args)]
pub struct MigrateSettings {
    #[command(flatten)]
    pub database: DatabaseSettings,

    #[command(flatten)]
    pub log: LogSettings,
}

#[derive(Clone, Args)]
pub struct ServeSettings {
    /// Address to listen on.
    #[arg(long, env = "LARDER_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: String,

    /// Base of the webhook URLs Larder hands out (default: http:// + the listen address).
    #[arg(long, env = "LARDER_PUBLIC_URL")]
    pub public_url: Option<String>,

    #[command(flatten)]
    pub database: DatabaseSettings,

    /// Redis for shared caches and idempotency keys; unset: in-process caches.
    #[arg(long, env = "REDIS_URL", hide_env_values = true)]
    pub redis_url: Option<String>,

    /// A Redis Cluster instead of one Redis: node URLs separated by commas (a few are
    /// enough; the rest are discovered).
    #[arg(
        long,
        env = "LARDER_REDIS_CLUSTER_URLS",
        value_delimiter = ',',
        hide_env_values = true,
        conflicts_with = "redis_url"
    )]
    pub redis_cluster_urls: Vec<String>,

    /// Prefix of every Redis key Larder writes.
    #[arg(long, env = "LARDER_REDIS_PREFIX", default_value = "larder:")]
    pub redis_prefix: String,

    /// The operator's bearer token. Unset: one is generated on first start, printed once,
    /// and only its hash is stored.
    #[arg(long, env = "LARDER_OPERATOR_TOKEN", hide_env_values = true)]
    pub operator_token: Option<String>,

    /// How many days the activity log (with raw payloads) is kept.
    #[arg(long, env = "LARDER_ACTIVITY_RETENTION_DAYS", default_value_t = 90)]
    pub activity_retention_days: u32,

    /// SMTP server for messages to members: `smtp://host[:port]` (plain, upgraded with
    /// STARTTLS when the server offers it) or `smtps://host[:port]` (TLS); credentials in the
    /// URL or in LARDER_SMTP_PASSWORD_FILE. Unset: each message is written as an `.eml` file
    /// in LARDER_OUTBOX_DIR.
    #[arg(long, env = "LARDER_SMTP_URL", hide_env_values = true)]
    pub smtp_url: Option<String>,

    /// A file holding the SMTP password (for the URL's user name), instead of one in the URL.
    #[arg(long, env = "LARDER_SMTP_PASSWORD_FILE")]
    pub smtp_password_file: Option<std::path::PathBuf>,

    /// Where messages go without LARDER_SMTP_URL: one `.eml` file each.
    #[arg(long, env = "LARDER_OUTBOX_DIR", default_value = "data/outbox")]
    pub outbox_dir: std::path::PathBuf,

    /// The address messages to members come from, a bare address (each app may give it a
    /// display name).
    #[arg(long, env = "LARDER_MAIL_FROM", default_value = "larder@localhost")]
    pub mail_from: String,

    /// How many proxies (load balancers, ingresses) in front of Larder append the client's
    /// address to `X-Forwarded-For`; the per-address limits count the address the outermost
    /// of them saw. 0: the header is ignored and the peer's address counts.
    #[arg(long, env = "LARDER_TRUSTED_PROXIES", default_value_t = 0)]
    pub trusted_proxies: usize,

    /// Serve `/metrics` on this address too, without a token (for Prometheus inside the
    /// cluster), such as `0.0.0.0:9090`. The public listener's `/metrics` always wants the
    /// operator token.
    #[arg(long, env = "LARDER_METRICS_LISTEN")]
    pub metrics_listen: Option<String>,

    /// Most connections open at once; beyond, a new one gets 503 and is closed. Unset:
    /// 1024, or fewer when the process may open fewer files.
    #[arg(long, env = "LARDER_MAX_CONNECTIONS")]
    pub max_connections: Option<usize>,

    /// How long a request's headers may take to arrive (also how long a new connection may
    /// take to start its first request, and an HTTP/1.1 one may wait between requests).
    #[arg(long, env = "LARDER_HEADER_TIMEOUT", default_value = "10s")]
    pub header_timeout: String,

    /// How long a request's body may take to arrive, from its headers on.
    #[arg(long, env = "LARDER_BODY_TIMEOUT", default_value = "30s")]
    pub body_timeout: String,

    /// How long an HTTP/2 connection may go without a request (pings do not count), or an
    /// answer without progress (a client not reading it), before the connection is closed.
    #[arg(long, env = "LARDER_IDLE_TIMEOUT", default_value = "60s")]
    pub idle_timeout: String,

    /// Apply database migrations before serving. Turn it off where a deploy step migrates
    /// (the Helm chart's hook); the service then refuses to start on an old schema.
    #[arg(
        long,
        env = "LARDER_MIGRATE_ON_START",
        default_value_t = true,
        action = ArgAction::Set,
        value_parser = BoolishValueParser::new()
    )]
    pub migrate_on_start: bool,

    /// On SIGTERM, how long to finish the requests already read and flush traces before
    /// exiting: seconds (`20`) or with a unit (`20s`, `1m`).
    #[arg(long, env = "LARDER_SHUTDOWN_GRACE", default_value = "20s")]
    pub shutdown_grace: String,

    #[command(flatten)]
    pub log: LogSettings,

    #[command(flatten)]
    pub telemetry: TelemetrySettings,
}

/// A setting that cannot work, said in one sentence.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("LARDER_LISTEN must be an address and port such as 127.0.0.1:8080, not `{0}`")]
    Listen(String),
    #[error("LARDER_PUBLIC_URL must be an absolute http:// or https:// URL, not `{0}`")]
    PublicUrl(String),
    #[error("DATABASE_URL must start with postgres:// or sqlite: (got `{0}`)")]
    DatabaseScheme(String),
    #[error("REDIS_URL must start with redis:// or rediss://")]
    RedisScheme,
    #[error(
        "LARDER_REDIS_CLUSTER_URLS must be node URLs separated by commas, each starting with \
         redis:// or rediss://"
    )]
    RedisClusterUrls,
    #[error("LARDER_SHUTDOWN_GRACE must be a duration from 1s to 1h, such as 20 or 20s, not `{0}`")]
    ShutdownGrace(String),
    #[error("OTEL_EXPORTER_OTLP_ENDPOINT must be an http:// or https:// URL, not `{0}`")]
    OtelEndpoint(String),
    #[error("LARDER_SMTP_URL must be smtp://host[:port] or smtps://host[:port]")]
    SmtpUrl,
    #[error("LARDER_SMTP_PASSWORD_FILE cannot be read: {0}")]
    SmtpPasswordFile(String),
    #[error("LARDER_MAIL_FROM must be a bare email address such as larder@example.com, not `{0}`")]
    MailFrom(String),
    #[error(
        "RUST_LOG must be log filter directives such as `info` or `warn,larder_gateway=debug`, not `{0}`"
    )]
    LogFilter(String),
    #[error("LARDER_OPERATOR_TOKEN must be at least 20 characters long")]
    OperatorTokenTooShort,
    #[error("LARDER_ACTIVITY_RETENTION_DAYS must be between 1 and 3650")]
    Retention,
    #[error("LARDER_METRICS_LISTEN must be an address and port such as 0.0.0.0:9090, not `{0}`")]
    MetricsListen(String),
    #[error("LARDER_MAX_CONNECTIONS must be a number from 1 to 1000000")]
    MaxConnections,
    #[error("{0} must be a duration from 1s to 1h, such as 10s, not `{1}`")]
    Timeout(&'static str, String),
}

/// The validated form of [`ServeSettings`].
#[derive(Clone)]
pub struct Validated {
    pub listen: SocketAddr,
    pub public_url: String,
    pub database: Database,
    pub redis_url: Option<String>,
    /// Redis Cluster nodes; empty unless a cluster was named instead of `redis_url`.
    pub redis_cluster_urls: Vec<String>,
    pub redis_prefix: String,
    pub operator_token: Option<String>,
    pub activity_retention: std::time::Duration,
    pub migrate_on_start: bool,
    pub shutdown_grace: std::time::Duration,
    /// Where messages to members go; `None`: `.eml` files under `data/outbox/`.
    pub smtp_url: Option<String>,
    /// Read from LARDER_SMTP_PASSWORD_FILE.
    pub smtp_password: Option<String>,
    pub outbox_dir: std::path::PathBuf,
    pub mail_from: String,
    /// Proxies in front that append to `X-Forwarded-For`.
    pub trusted_proxies: usize,
    /// Where `/metrics` is served without a token, besides the public listener.
    pub metrics_listen: Option<SocketAddr>,
    /// What connections and requests may take.
    pub limits: crate::server::Limits,
}

#[derive(Clone, PartialEq, Eq)]
pub enum Database {
    Postgres(String),
    Sqlite(String),
}

// Settings are logged and printed in errors; their `Debug` never shows a secret: URLs lose
// their passwords, the operator token is only said to be set.

/// What `Debug` shows of a secret: whether it is set.
fn secret(value: &Option<String>) -> &'static str {
    if value.is_some() { "[set]" } else { "[unset]" }
}

impl std::fmt::Debug for Database {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Database::Postgres(url) => f.debug_tuple("Postgres").field(&redact_url(url)).finish(),
            Database::Sqlite(url) => f.debug_tuple("Sqlite").field(&redact_url(url)).finish(),
        }
    }
}

impl std::fmt::Debug for DatabaseSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DatabaseSettings")
            .field("database_url", &redact_url(&self.database_url))
            .finish()
    }
}

impl std::fmt::Debug for ServeSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServeSettings")
            .field("listen", &self.listen)
            .field("public_url", &self.public_url)
            .field("database", &self.database)
            .field("redis_url", &self.redis_url.as_deref().map(redact_url))
            .field("redis_cluster_urls", &redact_urls(&self.redis_cluster_urls))
            .field("redis_prefix", &self.redis_prefix)
            .field("operator_token", &secret(&self.operator_token))
            .field("activity_retention_days", &self.activity_retention_days)
            .field("migrate_on_start", &self.migrate_on_start)
            .field("shutdown_grace", &self.shutdown_grace)
            .field("smtp_url", &self.smtp_url.as_deref().map(redact_url))
            .field("smtp_password_file", &self.smtp_password_file)
            .field("outbox_dir", &self.outbox_dir)
            .field("mail_from", &self.mail_from)
            .field("trusted_proxies", &self.trusted_proxies)
            .field("metrics_listen", &self.metrics_listen)
            .field("max_connections", &self.max_connections)
            .field("header_timeout", &self.header_timeout)
            .field("body_timeout", &self.body_timeout)
            .field("idle_timeout", &self.idle_timeout)
            .field("log", &self.log)
            .field("telemetry", &self.telemetry)
            .finish()
    }
}

impl std::fmt::Debug for Validated {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Validated")
            .field("listen", &self.listen)
            .field("public_url", &self.public_url)
            .field("database", &self.database)
            .field("redis_url", &self.redis_url.as_deref().map(redact_url))
            .field("redis_cluster_urls", &redact_urls(&self.redis_cluster_urls))
            .field("redis_prefix", &self.redis_prefix)
            .field("operator_token", &secret(&self.operator_token))
            .field("activity_retention", &self.activity_retention)
            .field("migrate_on_start", &self.migrate_on_start)
            .field("shutdown_grace", &self.shutdown_grace)
            .field("smtp_url", &self.smtp_url.as_deref().map(redact_url))
            .field("smtp_password", &secret(&self.smtp_password))
            .field("outbox_dir", &self.outbox_dir)
            .field("mail_from", &self.mail_from)
            .field("trusted_proxies", &self.trusted_proxies)
            .field("metrics_listen", &self.metrics_listen)
            .field("limits", &self.limits)
            .finish()
    }
}

impl Database {
    pub fn parse(url: &str) -> Result<Self, ConfigError> {
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Ok(Database::Postgres(url.to_owned()))
        } else if url.starts_with("sqlite:") {
            Ok(Database::Sqlite(url.to_owned()))
        } else {
            Err(ConfigError::DatabaseScheme(redact_url(url)))
        }
    }
}

fn redact_urls(urls: &[String]) -> Vec<String> {
    urls.iter().map(|u| redact_url(u)).collect()
}

/// A duration as settings take it: seconds (`20`), or a number with `ms`, `s`, `m` or `h`.
pub fn parse_duration(text: &str) -> Option<std::time::Duration> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let n: u64 = number.parse().ok()?;
    let millis = match unit.trim() {
        "" | "s" => n.checked_mul(1000)?,
        "ms" => n,
        "m" => n.checked_mul(60_000)?,
        "h" => n.checked_mul(3_600_000)?,
        _ => return None,
    };
    Some(std::time::Duration::from_millis(millis))
}

fn is_redis_url(url: &str) -> bool {
    url.starts_with("redis://") || url.starts_with("rediss://")
}

/// `url` with any password replaced, for messages: the one in the user part and any query
/// parameter whose name holds `password` (`?password=`, `?sslpassword=`).
pub fn redact_url(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut parsed) => {
            if parsed.password().is_some() {
                let _ = parsed.set_password(Some("***"));
            }
            let secret_query = parsed
                .query_pairs()
                .any(|(k, _)| k.to_ascii_lowercase().contains("password"));
            if secret_query {
                let pairs: Vec<(String, String)> = parsed
                    .query_pairs()
                    .map(|(k, v)| {
                        let v = if k.to_ascii_lowercase().contains("password") {
                            "***".to_owned()
                        } else {
                            v.into_owned()
                        };
                        (k.into_owned(), v)
                    })
                    .collect();
                parsed.query_pairs_mut().clear().extend_pairs(pairs);
            }
            parsed.to_string()
        }
        // Not a URL: keep what follows the last `@` and drop any query.
        Err(_) => url
            .split('@')
            .next_back()
            .unwrap_or_default()
            .split('?')
            .next()
            .unwrap_or_default()
            .to_owned(),
    }
}

impl ServeSettings {
    pub fn validate(&self) -> Result<Validated, ConfigError> {
        let listen: SocketAddr = self
            .listen
            .parse()
            .map_err(|_| ConfigError::Listen(self.listen.clone()))?;
        let public_url = match &self.public_url {
            Some(raw) => {
                let parsed =
                    url::Url::parse(raw).map_err(|_| ConfigError::PublicUrl(raw.clone()))?;
                if !matches!(parsed.scheme(), "http" | "https") || parsed.host().is_none() {
                    return Err(ConfigError::PublicUrl(raw.clone()));
                }
                raw.trim_end_matches('/').to_owned()
            }
            None => format!("http://{listen}"),
        };
        let database = Database::parse(&self.database.database_url)?;
        if let Some(redis) = &self.redis_url
            && !is_redis_url(redis)
        {
            return Err(ConfigError::RedisScheme);
        }
        let redis_cluster_urls: Vec<String> = self
            .redis_cluster_urls
            .iter()
            .map(|u| u.trim().to_owned())
            .filter(|u| !u.is_empty())
            .collect();
        if redis_cluster_urls.iter().any(|u| !is_redis_url(u))
            || (!self.redis_cluster_urls.is_empty() && redis_cluster_urls.is_empty())
        {
            return Err(ConfigError::RedisClusterUrls);
        }
        let shutdown_grace = parse_duration(&self.shutdown_grace)
            .filter(|d| (1..=3600).contains(&d.as_secs()))
            .ok_or_else(|| ConfigError::ShutdownGrace(self.shutdown_grace.clone()))?;
        if let Some(smtp) = &self.smtp_url {
            let ok = url::Url::parse(smtp).is_ok_and(|u| {
                matches!(u.scheme(), "smtp" | "smtps")
                    && u.host_str().is_some_and(|h| !h.is_empty())
            });
            if !ok {
                return Err(ConfigError::SmtpUrl);
            }
        }
        let smtp_password = match &self.smtp_password_file {
            Some(path) => Some(
                std::fs::read_to_string(path)
                    .map_err(|e| ConfigError::SmtpPasswordFile(format!("{}: {e}", path.display())))?
                    .trim_end_matches(['\r', '\n'])
                    .to_owned(),
            ),
            None => None,
        };
        let mail_from = self.mail_from.trim();
        let bare = mail_from.split_once('@').is_some_and(|(local, domain)| {
            !local.is_empty()
                && !domain.is_empty()
                && !mail_from.contains(|c: char| c.is_whitespace() || "<>\",;".contains(c))
        });
        if !bare {
            return Err(ConfigError::MailFrom(self.mail_from.clone()));
        }
        if tracing_subscriber::EnvFilter::try_new(&self.log.log_filter).is_err() {
            return Err(ConfigError::LogFilter(self.log.log_filter.clone()));
        }
        if let Some(endpoint) = &self.telemetry.otel_endpoint {
            let ok = url::Url::parse(endpoint)
                .is_ok_and(|u| matches!(u.scheme(), "http" | "https") && u.host().is_some());
            if !ok {
                return Err(ConfigError::OtelEndpoint(redact_url(endpoint)));
            }
        }
        if let Some(token) = &self.operator_token
            && token.chars().count() < 20
        {
            return Err(ConfigError::OperatorTokenTooShort);
        }
        if !(1..=3650).contains(&self.activity_retention_days) {
            return Err(ConfigError::Retention);
        }
        let metrics_listen = match &self.metrics_listen {
            Some(addr) => Some(
                addr.parse::<SocketAddr>()
                    .map_err(|_| ConfigError::MetricsListen(addr.clone()))?,
            ),
            None => None,
        };
        let timeout = |name: &'static str, raw: &str| {
            parse_duration(raw)
                .filter(|d| (1..=3600).contains(&d.as_secs()))
                .ok_or_else(|| ConfigError::Timeout(name, raw.to_owned()))
        };
        let max_connections = match self.max_connections {
            Some(n) if (1..=1_000_000).contains(&n) => n,
            Some(_) => return Err(ConfigError::MaxConnections),
            None => crate::server::default_max_connections(),
        };
        let limits = crate::server::Limits {
            header_timeout: timeout("LARDER_HEADER_TIMEOUT", &self.header_timeout)?,
            body_timeout: timeout("LARDER_BODY_TIMEOUT", &self.body_timeout)?,
            idle_timeout: timeout("LARDER_IDLE_TIMEOUT", &self.idle_timeout)?,
            max_connections,
            ..crate::server::Limits::default()
        };
        Ok(Validated {
            activity_retention: std::time::Duration::from_secs(
                u64::from(self.activity_retention_days) * 24 * 60 * 60,
            ),
            listen,
            public_url,
            database,
            redis_url: self.redis_url.clone(),
            redis_cluster_urls,
            redis_prefix: self.redis_prefix.clone(),
            operator_token: self.operator_token.clone(),
            migrate_on_start: self.migrate_on_start,
            shutdown_grace,
            smtp_url: self.smtp_url.clone(),
            smtp_password,
            outbox_dir: self.outbox_dir.clone(),
            mail_from: mail_from.to_owned(),
            trusted_proxies: self.trusted_proxies,
            metrics_listen,
            limits,
        })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn serve(args: &[&str]) -> ServeSettings {
        let mut argv = vec!["larder", "serve"];
        argv.extend_from_slice(args);
        match Cli::try_parse_from(argv).unwrap().command {
            Command::Serve(s) => *s,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn defaults_run_on_sqlite_under_data() {
        // Flags win over the environment, so the test pins every setting it checks.
        let s = serve(&[
            "--listen",
            "127.0.0.1:8080",
            "--database-url",
            "sqlite://data/larder.db",
        ])
        .validate()
        .unwrap();
        assert_eq!(s.public_url, "http://127.0.0.1:8080");
        assert_eq!(
            s.database,
            Database::Sqlite("sqlite://data/larder.db".into())
        );
    }

    #[test]
    fn bad_settings_are_refused_with_a_sentence() {
        let cases: [(&[&str], &str); 9] = [
            (&["--listen", "nowhere"], "LARDER_LISTEN"),
            (&["--public-url", "ftp://x"], "LARDER_PUBLIC_URL"),
            (&["--database-url", "mysql://u:pw@h/db"], "DATABASE_URL"),
            (&["--redis-url", "localhost"], "REDIS_URL"),
            (&["--operator-token", "short"], "LARDER_OPERATOR_TOKEN"),
            (
                &["--redis-cluster-urls", "redis://a:1,b:2"],
                "LARDER_REDIS_CLUSTER_URLS",
            ),
            (&["--shutdown-grace", "0"], "LARDER_SHUTDOWN_GRACE"),
            (&["--shutdown-grace", "soon"], "LARDER_SHUTDOWN_GRACE"),
            (
                &["--otel-endpoint", "collector:4318"],
                "OTEL_EXPORTER_OTLP_ENDPOINT",
            ),
        ];
        for (args, names) in cases {
            let mut all = args.to_vec();
            if !args.contains(&"--database-url") {
                all.extend(["--database-url", "sqlite://data/larder.db"]);
            }
            let err = serve(&all).validate().unwrap_err().to_string();
            assert!(err.contains(names), "{err}");
            assert!(!err.contains("pw"), "{err}");
        }
    }

    #[test]
    fn debug_output_shows_no_secret() {
        let settings = serve(&[
            "--database-url",
            "postgres://larder:hunter2@db/larder",
            "--redis-url",
            "redis://:s3cret@cache:6379",
            "--operator-token",
            "lop_the-operators-own-token",
        ]);
        let validated = settings.validate().unwrap();
        for text in [format!("{settings:?}"), format!("{validated:?}")] {
            for secret in ["hunter2", "s3cret", "the-operators-own-token"] {
                assert!(!text.contains(secret), "{text}");
            }
            assert!(text.contains("[set]"), "{text}");
            assert!(text.contains("db/larder"), "{text}");
        }
    }

    #[test]
    fn durations_take_seconds_or_a_unit() {
        assert_eq!(
            parse_duration("20"),
            Some(std::time::Duration::from_secs(20))
        );
        assert_eq!(
            parse_duration("20s"),
            Some(std::time::Duration::from_secs(20))
        );
        assert_eq!(
            parse_duration("1m"),
            Some(std::time::Duration::from_secs(60))
        );
        assert_eq!(
            parse_duration("250ms"),
            Some(std::time::Duration::from_millis(250))
        );
        for bad in ["", "s", "-1", "1d", "1.5s", "99999999999999999999"] {
            assert_eq!(parse_duration(bad), None, "{bad}");
        }
    }

    #[test]
    fn migrations_on_start_can_be_turned_off() {
        assert!(serve(&[]).migrate_on_start);
        for off in ["false", "0", "no", "off"] {
            assert!(
                !serve(&["--migrate-on-start", off]).migrate_on_start,
                "{off}"
            );
        }
    }

    #[test]
    fn a_cluster_or_one_redis_not_both() {
        let argv = [
            "larder",
            "serve",
            "--redis-url",
            "redis://a:6379",
            "--redis-cluster-urls",
            "redis://b:6379",
        ];
        assert!(Cli::try_parse_from(argv).is_err());
        let s = serve(&["--redis-cluster-urls", "redis://a:1, redis://b:2"])
            .validate()
            .unwrap();
        assert_eq!(s.redis_cluster_urls, ["redis://a:1", "redis://b:2"]);
    }

    #[test]
    fn urls_are_redacted() {
        assert_eq!(
            redact_url("postgres://u:secret@h:5432/db"),
            "postgres://u:***@h:5432/db"
        );
        assert_eq!(redact_url("redis://h:6379"), "redis://h:6379");
        assert_eq!(
            redact_url("postgres://u@h/db?sslmode=require&password=hunter2&sslpassword=x"),
            "postgres://u@h/db?sslmode=require&password=***&sslpassword=***"
        );
        assert!(!redact_url("not a url?password=hunter2").contains("hunter2"));
    }
}
