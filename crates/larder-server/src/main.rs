//! `larder serve | migrate | openapi`.

use std::io::Write as _;
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use larder_server::settings::LogFormat;
use larder_server::telemetry;
use larder_server::{Cli, Command, Database, StartError};

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
            let _telemetry = telemetry::init(&settings.log, None)?;
            let db = Database::parse(&settings.database.database_url)?;
            larder_server::open_store(&db, true).await?;
            tracing::info!("migrations applied");
            Ok(())
        }
        Command::Serve(raw) => {
            let telemetry = telemetry::init(&raw.log, Some(&raw.telemetry))?;
            let result = serve(&raw).await;
            if let Err(err) = &result {
                tracing::error!(error = %err, "larder could not start");
            }
            let grace = larder_server::settings::parse_duration(&raw.shutdown_grace)
                .unwrap_or(Duration::from_secs(20));
            telemetry.shutdown(flush_budget(grace)).await;
            result
        }
    }
}

async fn serve(raw: &larder_server::ServeSettings) -> Result<(), StartError> {
    let settings = raw.validate()?;
    let listener = larder_server::bind(settings.listen).await?;
    let service = larder_server::build(&settings).await?;
    if let Some(token) = &service.generated_operator_token {
        // Shown once, to whoever started the service; only its hash is stored. It never
        // goes through the log pipeline, and with JSON logs it goes to stderr, so standard
        // output stays one JSON object per line.
        let notice = format!(
            "\nLarder generated the operator token. It is shown only this once; keep it \
             safe:\n\n    {token}\n\nSet LARDER_OPERATOR_TOKEN to use a token of your own.\n\n"
        );
        // One write, and a closed output is no reason to stop serving.
        let _ = match raw.log.log_format {
            LogFormat::Text => std::io::stdout().lock().write_all(notice.as_bytes()),
            LogFormat::Json => std::io::stderr().lock().write_all(notice.as_bytes()),
        };
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
    larder_server::serve(
        listener,
        service,
        shutdown_signal(),
        grace - flush_budget(grace),
    )
    .await
    .map_err(|e| StartError::Listen {
        addr: settings.listen.to_string(),
        reason: e.to_string(),
    })?;
    tracing::info!("every request answered; exiting");
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
                StartError::Config(_) => 2,
                _ => 1,
            })
        }
    }
}
