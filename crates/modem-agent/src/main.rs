//! The modem agent binary: loads the configuration, then either checks the modems
//! (`--check`) or relays SMS between them and Ender until SIGINT/SIGTERM.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use ender_modem_agent::agent;
use ender_modem_agent::config::{self, Config};
use ender_modem_agent::modem::Timeouts;
use tokio_util::sync::CancellationToken;

/// Drives GSM modems over AT commands and relays their SMS to and from Ender.
#[derive(Debug, Parser)]
#[command(version)]
struct Cli {
    /// The configuration file.
    #[arg(long, env = "ENDER_AGENT_CONFIG", default_value = config::DEFAULT_PATH)]
    config: PathBuf,
    /// Check the configuration and talk to each modem, without contacting the server.
    #[arg(long)]
    check: bool,
    /// Where each modem's journal and queue of reports for Ender are kept (one folder per
    /// modem); keep it across restarts.
    #[arg(long, env = "ENDER_AGENT_DATA_DIR", default_value = agent::DEFAULT_DATA_DIR)]
    data_dir: PathBuf,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let default_level = if cli.check { "warn" } else { "info" };
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default_level)),
        )
        .init();

    let config = match Config::load(&cli.config, std::env::vars()) {
        Ok(config) => config,
        Err(error) => {
            eprintln!("ender-modem-agent: {error}");
            return ExitCode::FAILURE;
        }
    };
    if let Some(warning) = config.cleartext_warning() {
        tracing::warn!("{warning}");
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("ender-modem-agent: cannot start the runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    if cli.check {
        let ok = runtime.block_on(ender_modem_agent::check::run(
            &config,
            Timeouts::default(),
            &mut std::io::stdout(),
        ));
        return if ok { ExitCode::SUCCESS } else { ExitCode::FAILURE };
    }
    let shutdown = CancellationToken::new();
    runtime.spawn(cancel_on_signal(shutdown.clone()));
    match runtime.block_on(agent::run(config, cli.data_dir, shutdown)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("ender-modem-agent: {error:#}");
            ExitCode::FAILURE
        }
    }
}

/// Cancels `token` on SIGINT or SIGTERM.
async fn cancel_on_signal(token: CancellationToken) {
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        () = term => {}
    }
    tracing::info!("shutting down");
    token.cancel();
}
