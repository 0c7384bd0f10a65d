//! `larder serve | migrate | openapi`.

use std::io::Write as _;
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use larder_server::settings::LogFormat;
use larder_server::telemetry;
use larder_server::{Cli, Command, Database, StartError};

/// mimalloc rather than the system allocator: a request allocates and frees many small
/// buffers (bodies, JSON values, rows), and glibc's malloc took about a quarter of the
/// service's CPU under load (docs/performance.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {}
        () = term => {}
    }
    tracing::info!("shutting down: finishing the requests already read");
}

/// How much of the shutdown grace is kept for flushing traces after the last answer.
fn flush_budget(grace: Duration) -> Duration {
    (grace / 4).min(Duration::from_secs(3))
}

async fn run(cli: Cli) -> Result<(), StartError> {
    match cli.command {
        Command::Openapi => {
            println!("{}", larder_server::openapi_document());
            Ok(())
        }
        Command::Migrate(settings) => {
            let db = Database::parse(&settings.database.database_url)?;
            let _telemetry = telemetry::init(&settings.log, None)?;
            larder_server::open_store(&db, true).await?;
            tracing::info!("migrations applied");
            Ok(())
        }
        Command::Serve(raw) => {
            // Settings first: a bad one exits 2 with its sentence, before anything starts.
            let settings = raw.validate()?;
            let telemetry = telemetry::init(&raw.log, Some(&raw.telemetry))?;
            let result = serve(&raw, &settings).await;
            if let Err(err) = &result {
                tracing::error!(error = %err, "larder could not start");
            }
            telemetry
                .shutdown(flush_budget(settings.shutdown_grace))
                .await;
            result
        }
    }
}

async fn serve(
    raw: &larder_server::ServeSettings,
    settings: &larder_server::Validated,
) -> Result<(), StartError> {
    let listener = larder_server::bind(settings.listen).await?;
    let metrics_listener = match settings.metrics_listen {
        Some(addr) => Some(larder_server::bind(addr).await?),
        None => None,
    };
    let service = larder_server::build(settings).await?;
    if let Some(token) = &service.generated_operator_token {
        match raw.log.log_format {
            // Shown once, to whoever started the service; only its hash is stored. One
            // write, and a closed output is no reason to stop serving.
            LogFormat::Text => {
                let notice = format!(
                    "\nLarder generated the operator token. It is shown only this once; keep \
                     it safe:\n\n    {token}\n\nSet LARDER_OPERATOR_TOKEN to use a token of \
                     your own.\n\n"
                );
                let _ = std::io::stdout().lock().write_all(notice.as_bytes());
            }
            // JSON output goes to a log pipeline, where no secret may go: the token is not
            // shown, and the operator sets one of their own (a configured token wins).
            LogFormat::Json => tracing::warn!(
                "no operator token is configured; one was generated but, with JSON logs, is \
                 not shown: set LARDER_OPERATOR_TOKEN to use the admin API as the operator"
            ),
        }
    }
    if matches!(settings.database, Database::Postgres(_))
        && settings.redis_url.is_none()
        && settings.redis_cluster_urls.is_empty()
    {
        tracing::warn!(
            "PostgreSQL without REDIS_URL: caches are private to this process, so a change \
             made through another process (a disable, a revoked key) reaches this one only \
             when its cache entry expires (up to 5 minutes). Run one process, or set REDIS_URL."
        );
    }
    tracing::info!(
        listen = %settings.listen,
        public_url = %settings.public_url,
        store = service.tenancy.store().backend().as_str(),
        cache = ?service.tenancy.cache().kind(),
        "larder is serving"
    );
    let grace = settings.shutdown_grace;
    if let Some(addr) = settings.metrics_listen {
        tracing::info!(%addr, "serving /metrics without a token");
    }
    larder_server::serve_with_metrics(
        listener,
        metrics_listener,
        service,
        shutdown_signal(),
        grace - flush_budget(grace),
    )
    .await
    .map_err(|e| StartError::Listen {
        addr: settings.listen.to_string(),
        reason: e.to_string(),
    })?;
    tracing::info!("larder stopped");
    Ok(())
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("larder: {err}.");
            ExitCode::from(match err {
                StartError::Config(_) | StartError::Telemetry(_) => 2,
                _ => 1,
            })
        }
    }
}
