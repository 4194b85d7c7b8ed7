//! `ender-worker`: the background worker as its own process.

use clap::Parser;
use ender_core::config::{DatabaseConfig, LogConfig, MailConfig};
use ender_core::db::Database;
use ender_core::mail::Mailer;
use ender_worker::WorkerConfig;
use tokio_util::sync::CancellationToken;

#[derive(Parser)]
#[command(
    name = "ender-worker",
    version,
    about = "Ender SMS gateway: background worker"
)]
struct Cli {
    #[command(flatten)]
    database: DatabaseConfig,
    #[command(flatten)]
    worker: WorkerConfig,
    #[command(flatten)]
    mail: MailConfig,
    /// The address people use to reach Ender (for links in mails to owners).
    #[arg(long, env = "ENDER_PUBLIC_URL", default_value = "http://127.0.0.1:8080")]
    public_url: String,
    #[command(flatten)]
    log: LogConfig,
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    ender_core::install_crypto_provider();
    let cli = Cli::parse();
    cli.log.init_tracing();
    match run(cli).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("ender-worker: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    let db = Database::connect(&cli.database).await?;
    // Migrations take an advisory lock, so a worker starting beside web processes is safe.
    let result = async {
        ender_core::db::migrate(&db.pool).await?;
        let shutdown = CancellationToken::new();
        tokio::spawn(signal(shutdown.clone()));
        let keyring = std::sync::Arc::new(cli.worker.secrets.install_keyring(&cli.database.data_dir)?);
        let notices = ender_worker::webhooks::OwnerNotices {
            mailer: Mailer::from_config(&cli.mail, &cli.database.data_dir)?.with_database(db.pool.clone()),
            public_url: cli.public_url,
        };
        let mut worker = cli.worker;
        let saved = ender_core::admin::settings::load(&mut *db.pool.acquire().await?).await?;
        ender_core::admin::settings::apply_billing(&saved, &mut worker.sms);
        ender_worker::run(
            db.pool.clone(),
            worker,
            keyring,
            Some(notices),
            cli.database.data_dir.clone(),
            shutdown,
        )
        .await
    }
    .await;
    db.close().await;
    result
}

async fn signal(token: CancellationToken) {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = async { match term.as_mut() { Some(t) => { t.recv().await; } None => std::future::pending::<()>().await } } => {}
    }
    tracing::info!("shutting down");
    token.cancel();
}
