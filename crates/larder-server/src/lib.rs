//! The `larder` service: configuration, wiring and the HTTP server.
//!
//! [`build`] turns validated settings into a ready endpoint (store opened and migrated,
//! caches connected, operator token in place); [`serve`] runs it on a listener. Tests use
//! the same two functions, so what they exercise is what `larder serve` runs.

mod background;
mod document;
mod http;
mod ops;
pub mod server;
pub mod settings;
pub mod telemetry;

use std::future::Future;
use std::sync::Arc;

use larder_admin_api::{AdminState, admin_api};
use larder_cache::{Cache, MemoryCache, RedisCache};
use larder_gateway::{Gateway, WebhookApi};
use larder_member_api::{MemberApi, MemberState, Passwords};
pub use larder_metrics::Metrics;
use larder_store::{Store, StoreError};
use larder_store_postgres::{PgSettings, PgStore};
use larder_store_sqlite::SqliteStore;
use larder_tenancy::{Tenancy, secrets};
use poem::endpoint::BoxEndpoint;
use poem::web::Html;
use poem::{EndpointExt, IntoResponse, Route, get};
use poem_openapi::{LicenseObject, OpenApiService, ServerObject};

pub use settings::{Cli, Command, ConfigError, Database, ServeSettings, Validated, redact_url};

/// Why the service could not start, in one sentence.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("cannot open the database at {url}: {reason}")]
    Database { url: String, reason: String },
    #[error(
        "the database at {url} lacks migrations this version needs; run `larder migrate` (or \
         start with LARDER_MIGRATE_ON_START=true)"
    )]
    SchemaBehind { url: String },
    #[error("cannot reach Redis at {url}: {reason}")]
    Redis { url: String, reason: String },
    #[error("cannot listen on {addr}: {reason}")]
    Listen { addr: String, reason: String },
    #[error(transparent)]
    Telemetry(#[from] telemetry::TelemetryError),
}

/// An error and its causes, joined, for one-line messages.
fn chain(err: &(dyn std::error::Error + 'static)) -> String {
    let mut parts = vec![err.to_string()];
    let mut source = err.source();
    while let Some(s) = source {
        parts.push(s.to_string());
        source = s.source();
    }
    parts.dedup();
    parts.join(": ")
}

fn database_error(db: &Database, err: StoreError) -> StartError {
    let url = match db {
        Database::Postgres(u) | Database::Sqlite(u) => redact_url(u),
    };
    StartError::Database {
        url,
        reason: chain(&err),
    }
}

/// Opens the store `db` names and applies its migrations, or (`migrate` false) checks that
/// they are all applied already.
pub async fn open_store(db: &Database, migrate: bool) -> Result<Arc<dyn Store>, StartError> {
    let fail = |e| database_error(db, e);
    let store: Arc<dyn Store> = match db {
        Database::Postgres(url) => Arc::new(
            PgStore::connect(url, &PgSettings::default())
                .await
                .map_err(fail)?,
        ),
        Database::Sqlite(url) => Arc::new(SqliteStore::open_url(url).await.map_err(fail)?),
    };
    let current = if migrate {
        store.migrate().await.map_err(fail)?;
        true
    } else {
        store.schema_is_current().await.map_err(fail)?
    };
    if !current {
        let (Database::Postgres(url) | Database::Sqlite(url)) = db;
        return Err(StartError::SchemaBehind {
            url: redact_url(url),
        });
    }
    Ok(store)
}

const API_TITLE: &str = "Larder";

/// Everything the service answers over HTTP, as one OpenAPI service.
fn openapi_service(
    admin: AdminState,
    members: MemberState,
    tenancy: Tenancy,
) -> OpenApiService<impl poem_openapi::OpenApi, ()> {
    let webhooks = WebhookApi {
        gateway: admin.gateway.clone(),
    };
    OpenApiService::new(
        (
            admin_api(admin),
            MemberApi { state: members },
            webhooks,
            ops::OperationsApi { tenancy },
        ),
        API_TITLE,
        env!("CARGO_PKG_VERSION"),
    )
    .description(
        "Larder's admin API (apps, API keys, access levels, ThriveCart integrations, members, \
         the activity log), member API (set a password, sign in with a password or a \
         magic link, reset a password, see your access), the ThriveCart webhook and the operational probes. Admin operations take the operator \
         token or an app's API key as a bearer token; member operations a session token. \
         Every error answers `{\"code\", \"message\", \"field\"?}`.",
    )
    .license(LicenseObject::new("Apache-2.0").url("https://www.apache.org/licenses/LICENSE-2.0"))
    .server(ServerObject::new("/").description("This Larder service."))
}

/// The service's wiring for printing its document: nothing here queries, so the store is
/// one that never opens. Call it inside a Tokio runtime (the store registers with one).
fn document_service() -> OpenApiService<impl poem_openapi::OpenApi, ()> {
    let store: Arc<dyn Store> = Arc::new(SqliteStore::lazy(std::path::Path::new(
        "larder-openapi-never-opened.db",
    )));
    let tenancy = Tenancy::new(store, Arc::new(MemoryCache::new(1)), String::new());
    let gateway = Gateway::new(tenancy.clone());
    let members = MemberState::new(
        tenancy.clone(),
        Passwords::new(1),
        "http://127.0.0.1:8080",
        0,
    );
    openapi_service(
        AdminState::new(tenancy.clone(), gateway, "http://127.0.0.1:8080"),
        members,
        tenancy,
    )
}

/// The OpenAPI document, exactly as `/openapi.json` serves it. Call it inside a Tokio
/// runtime.
pub fn openapi_document() -> String {
    document::finish(&document_service().spec())
}

/// A service ready to serve.
pub struct Service {
    pub endpoint: BoxEndpoint<'static>,
    /// `/metrics` alone, without a token: for `LARDER_METRICS_LISTEN`.
    pub metrics_endpoint: BoxEndpoint<'static>,
    /// What connections and requests may take.
    pub limits: server::Limits,
    pub tenancy: Tenancy,
    /// The operator token generated on this start, to print once; `None` when it was
    /// configured or generated on an earlier start.
    pub generated_operator_token: Option<String>,
    /// Period-end revocations and activity pruning; stopped when the service is dropped.
    _background: background::Background,
}

impl std::fmt::Debug for Service {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Service")
            .field("tenancy", &self.tenancy)
            .field(
                "generated_operator_token",
                &self.generated_operator_token.is_some(),
            )
            .finish_non_exhaustive()
    }
}

/// The hash of the operator token, and the token itself when this call generated it.
async fn operator_token(
    store: &dyn Store,
    configured: Option<&str>,
    db: &Database,
) -> Result<(String, Option<String>), StartError> {
    if let Some(token) = configured {
        return Ok((secrets::hash_token(token), None));
    }
    if let Some(hash) = store
        .operator_token_hash()
        .await
        .map_err(|e| database_error(db, e))?
    {
        return Ok((hash, None));
    }
    let token = secrets::generate_operator_token();
    let hash = secrets::hash_token(&token);
    if store
        .init_operator_token_hash(&hash)
        .await
        .map_err(|e| database_error(db, e))?
    {
        return Ok((hash, Some(token)));
    }
    // Another process generated one at the same moment; it printed its token.
    let hash = store
        .operator_token_hash()
        .await
        .map_err(|e| database_error(db, e))?
        .unwrap_or(hash);
    Ok((hash, None))
}

/// Opens everything `settings` names and wires the service.
pub async fn build(settings: &Validated) -> Result<Service, StartError> {
    let store = open_store(&settings.database, settings.migrate_on_start).await?;
    let cache = open_cache(settings).await?;
    let (hash, generated) = operator_token(
        store.as_ref(),
        settings.operator_token.as_deref(),
        &settings.database,
    )
    .await?;
    let metrics = Metrics::new();
    let tenancy = Tenancy::new(store, cache, hash).with_metrics(metrics.clone());
    let gateway = Gateway::new(tenancy.clone());
    let state = AdminState::new(tenancy.clone(), gateway, &settings.public_url);
    let cores = std::thread::available_parallelism().map_or(2, usize::from);
    let members = MemberState::new(
        tenancy.clone(),
        Passwords::new(cores),
        &settings.public_url,
        settings.trusted_proxies,
    );
    let api = openapi_service(state, members.clone(), tenancy.clone());
    let written = api.spec();
    let spec = document::finish(&written);
    let routes = Arc::new(http::Routes::new(&spec));
    // The browsable UI shows the finished document too: poem-openapi embeds the document it
    // wrote in the page, so that is swapped for the finished one.
    let docs = api.swagger_ui_html();
    if !docs.contains(&written) {
        tracing::warn!(
            "the /docs page does not embed the written document; it shows it unfinished"
        );
    }
    let docs = docs.replacen(&written, &spec, 1);
    let route = Route::new()
        .nest("/", api)
        .at(
            "/openapi.json",
            get(poem::endpoint::make_sync(move |_| {
                spec.clone()
                    .with_content_type("application/json")
                    .into_response()
            })),
        )
        .at(
            "/docs",
            get(poem::endpoint::make_sync(move |_| Html(docs.clone()))),
        )
        .at("/metrics", get(http::render_metrics_for_the_operator))
        .nest("/members", larder_member_api::pages::routes())
        .data(tenancy.clone())
        .data(members)
        .data(metrics.clone());
    let sender = larder_mail::Sender::new(
        tenancy.store().clone(),
        mail_settings(settings)?,
        metrics.clone(),
    );
    let background = background::spawn(
        tenancy.store().clone(),
        metrics.clone(),
        settings.activity_retention,
        sender,
    );
    let metrics_endpoint = Route::new()
        .at("/metrics", get(http::render_metrics))
        .data(tenancy.clone())
        .data(metrics.clone())
        .boxed();
    let cors_tenancy = tenancy.clone();
    let endpoint = route
        .around(larder_member_api::answer_preflights)
        .around(move |ep, req| http::edge(ep, req, metrics.clone(), routes.clone()))
        .around(move |ep, req| larder_member_api::cors(ep, req, cors_tenancy.clone()))
        .boxed();
    Ok(Service {
        endpoint,
        metrics_endpoint,
        limits: settings.limits,
        tenancy,
        generated_operator_token: generated,
        _background: background,
    })
}

/// Where messages to members go: the SMTP server the settings name, else `.eml` files in
/// the outbox directory.
fn mail_settings(settings: &Validated) -> Result<larder_mail::MailSettings, StartError> {
    let transport = match &settings.smtp_url {
        Some(url) => larder_mail::Transport::smtp(url, settings.smtp_password.as_deref())
            .map_err(|_| StartError::Config(ConfigError::SmtpUrl))?,
        None => larder_mail::Transport::files(&settings.outbox_dir),
    };
    let from = settings
        .mail_from
        .parse()
        .map_err(|_| StartError::Config(ConfigError::MailFrom(settings.mail_from.clone())))?;
    Ok(larder_mail::MailSettings {
        transport,
        from,
        public_url: settings.public_url.clone(),
    })
}

/// The shared cache the settings name (a Redis, a Redis Cluster), else one in memory.
async fn open_cache(settings: &Validated) -> Result<Arc<dyn Cache>, StartError> {
    let redis_error = |url: String, e: larder_cache::CacheError| StartError::Redis {
        url,
        reason: chain(&e),
    };
    if !settings.redis_cluster_urls.is_empty() {
        let cache =
            RedisCache::connect_cluster(&settings.redis_cluster_urls, &settings.redis_prefix)
                .await
                .map_err(|e| {
                    let nodes: Vec<String> = settings
                        .redis_cluster_urls
                        .iter()
                        .map(|u| redact_url(u))
                        .collect();
                    redis_error(nodes.join(","), e)
                })?;
        return Ok(Arc::new(cache));
    }
    Ok(match &settings.redis_url {
        Some(url) => Arc::new(
            RedisCache::connect(url, &settings.redis_prefix)
                .await
                .map_err(|e| redis_error(redact_url(url), e))?,
        ),
        None => Arc::new(MemoryCache::default()),
    })
}

/// Binds `addr`, for callers that want the port before serving (`127.0.0.1:0` in tests).
pub async fn bind(addr: std::net::SocketAddr) -> Result<tokio::net::TcpListener, StartError> {
    tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|e| StartError::Listen {
            addr: addr.to_string(),
            reason: e.to_string(),
        })
}

/// Serves until `shutdown` resolves; then stops accepting and finishes the requests already
/// read, for at most `grace`.
pub async fn serve(
    listener: tokio::net::TcpListener,
    service: Service,
    shutdown: impl Future<Output = ()> + Send,
    grace: std::time::Duration,
) -> std::io::Result<()> {
    serve_with_metrics(listener, None, service, shutdown, grace).await
}

/// [`serve`], and `/metrics` alone, without a token, on `metrics` when there is one.
pub async fn serve_with_metrics(
    listener: tokio::net::TcpListener,
    metrics: Option<tokio::net::TcpListener>,
    service: Service,
    shutdown: impl Future<Output = ()> + Send,
    grace: std::time::Duration,
) -> std::io::Result<()> {
    let Service {
        endpoint,
        metrics_endpoint,
        limits,
        _background: background,
        ..
    } = service;
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let metrics_server = metrics.map(|listener| {
        let mut stopped = stopped.clone();
        tokio::spawn(server::run(
            listener,
            Arc::new(metrics_endpoint),
            server::Limits {
                max_connections: server::METRICS_CONNECTIONS,
                ..limits
            },
            async move {
                let _ = stopped.wait_for(|s| *s).await;
            },
            std::time::Duration::from_secs(1),
        ))
    });
    let served = server::run(
        listener,
        Arc::new(endpoint),
        limits,
        async move {
            shutdown.await;
            let _ = stop.send(true);
        },
        grace,
    )
    .await;
    if let Some(task) = metrics_server {
        let _ = task.await;
    }
    // Background runs stop once the last request is answered, not before.
    drop(background);
    served
}
