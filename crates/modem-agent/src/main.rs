//! The modem agent binary: loads the configuration, then checks the modems (`--check`).
//! Relaying to the server is not wired yet.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use ender_modem_agent::config::{self, Config};
use ender_modem_agent::modem::Timeouts;

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
    if !cli.check {
        eprintln!(
            "ender-modem-agent: the configuration is fine, but the connection to the server is not wired yet; use --check to test the modems"
        );
        return ExitCode::from(2);
    }
    let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("ender-modem-agent: cannot start the runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    let ok = runtime.block_on(ender_modem_agent::check::run(
        &config,
        Timeouts::default(),
        &mut std::io::stdout(),
    ));
    if ok { ExitCode::SUCCESS } else { ExitCode::FAILURE }
}
