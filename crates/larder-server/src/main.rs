//! `larder serve | migrate | openapi`.

use std::process::ExitCode;

use clap::Parser;
use larder_server::{Cli, Command, Database, StartError};
use tracing_subscriber::EnvFilter;

fn init_logging() {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(false)
        .init();
}

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
    tracing::info!("shutting down");
}

async fn run(cli: Cli) -> Result<(), StartError> {
    match cli.command {
        Command::Openapi => {
            println!("{}", larder_server::openapi_document());
            Ok(())
        }
        Command::Migrate(db) => {
            let db = Database::parse(&db.database_url)?;
            larder_server::open_store(&db).await?;
            eprintln!("larder: migrations applied");
            Ok(())
        }
        Command::Serve(settings) => {
            let settings = settings.validate()?;
            let listener = larder_server::bind(settings.listen).await?;
            let service = larder_server::build(&settings).await?;
            if let Some(token) = &service.generated_operator_token {
                // Printed once, to the terminal of whoever started the service; only its hash
                // is stored. It never goes through the log pipeline.
                println!(
                    "\nLarder generated the operator token. It is shown only this once; keep it \
                     safe:\n\n    {token}\n\nSet LARDER_OPERATOR_TOKEN to use a token of your own.\n"
                );
            }
            if matches!(settings.database, Database::Postgres(_)) && settings.redis_url.is_none() {
                tracing::warn!(
                    "PostgreSQL without REDIS_URL: caches are private to this process, so a \
                     change made through another process (a disable, a revoked key) reaches \
                     this one only when its cache entry expires (up to 5 minutes). Run one \
                     process, or set REDIS_URL."
                );
            }
            tracing::info!(
                listen = %settings.listen,
                public_url = %settings.public_url,
                store = service.tenancy.store().backend().as_str(),
                cache = ?service.tenancy.cache().kind(),
                "larder is serving"
            );
            larder_server::serve(listener, service, shutdown_signal())
                .await
                .map_err(|e| StartError::Listen {
                    addr: settings.listen.to_string(),
                    reason: e.to_string(),
                })
        }
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    if !matches!(cli.command, Command::Openapi) {
        init_logging();
    }
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
