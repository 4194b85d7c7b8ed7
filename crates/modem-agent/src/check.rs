//! `--check`: open each configured modem, initialise it and print what it reports,
//! without contacting the server.

use std::io::Write;

use crate::config::{Config, ModemConfig};
use crate::modem::{Modem, ModemError, ModemOptions, Timeouts};

/// Checks every modem in turn, writing one line each to `out`. `true` when all are fine.
pub async fn run(config: &Config, timeouts: Timeouts, out: &mut impl Write) -> bool {
    let mut all_ok = true;
    for modem in &config.modems {
        let line = match check_one(modem, timeouts).await {
            Ok(report) => format!("{}: ok: {report}", modem.name),
            Err(error) => {
                all_ok = false;
                format!("{}: FAILED: {error}", modem.name)
            }
        };
        // Nothing useful to do if stdout is gone.
        let _ = writeln!(out, "{line}");
    }
    all_ok
}

async fn check_one(config: &ModemConfig, timeouts: Timeouts) -> Result<String, ModemError> {
    let options = ModemOptions {
        name: config.name.clone(),
        profile: config.profile,
        timeouts,
        ..ModemOptions::default()
    };
    let mut modem = Modem::open(&config.port, config.baud, config.notify_port.as_deref(), options).await?;
    modem.init(config.pin.as_ref().map(|p| p.expose())).await?;
    let signal = modem.signal().await?;
    let registration = modem.registration().await?;
    let operator = modem.operator().await?;
    modem.close().await;
    Ok(format!(
        "{} at {} baud, profile {}; signal {signal}; {registration}; operator {}",
        config.port,
        config.baud,
        config.profile,
        operator.as_deref().unwrap_or("unknown"),
    ))
}
