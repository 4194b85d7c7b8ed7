//! The running agent: for each configured modem, independently, the supervised modem
//! ([`ModemTask`]), its connection to Ender ([`Connection`], with its journal and outbox
//! under `<data dir>/<modem name>/`), and the loops that carry what the modem reports to
//! the server (received SMS, status reports, the radio heartbeat).
//!
//! A modem whose key Ender refuses, or that needs a person (a wrong PIN), stops with an
//! error naming it; the others carry on. [`run`] fails only once every modem has stopped.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, anyhow};
use chrono::{DateTime, Utc};
use secrecy::SecretString;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinSet;
use tokio::time::{MissedTickBehavior, interval_at};
use tokio_util::sync::CancellationToken;
use tracing::Instrument;
use url::Url;

use crate::config::{Config, ModemConfig};
use crate::modem::Registration;
use crate::server::{
    self, Backoff, Client, Connection, ConnectionError, Journal, ModemLink, Outbox, SendFailure,
};
use crate::task::{Event, Incoming, ModemHandle, ModemState, ModemTask, SendOutcome, TaskOptions};

/// Where the agent keeps its journals and outboxes when `--data-dir` is not given.
pub const DEFAULT_DATA_DIR: &str = "/var/lib/ender-modem-agent";

/// Timings of the agent; the defaults suit real modems, tests shorten them.
#[derive(Debug, Clone)]
pub struct AgentOptions {
    pub task: TaskOptions,
    /// Reconnect and retry delays towards Ender.
    pub backoff: Backoff,
    pub timeouts: server::Timeouts,
    /// The longest time between two radio reports while connected.
    pub heartbeat_every: Duration,
}

impl Default for AgentOptions {
    fn default() -> Self {
        Self {
            task: TaskOptions::default(),
            backoff: Backoff::default(),
            timeouts: server::Timeouts::default(),
            heartbeat_every: Duration::from_secs(60),
        }
    }
}

/// Runs every modem of `config` until `shutdown` (Ok) or until every modem has stopped
/// for good (Err, listing why).
pub async fn run(config: Config, data_dir: PathBuf, shutdown: CancellationToken) -> anyhow::Result<()> {
    run_with(config, data_dir, AgentOptions::default(), shutdown).await
}

/// [`run`] with other timings.
pub async fn run_with(
    config: Config,
    data_dir: PathBuf,
    options: AgentOptions,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let mut modems = JoinSet::new();
    let mut names = std::collections::HashMap::new();
    for modem in config.modems {
        let name = modem.name.clone();
        let dir = modem_dir(&data_dir, &name);
        let span = tracing::info_span!("agent", modem.name = %name);
        let unit = run_modem(
            config.server.clone(),
            modem,
            dir,
            options.clone(),
            shutdown.clone(),
        );
        let id = modems.spawn(unit.instrument(span)).id();
        names.insert(id, name);
    }
    let mut stopped = Vec::new();
    while let Some(joined) = modems.join_next_with_id().await {
        let error = match joined {
            Ok((_, Ok(()))) => continue,
            Ok((_, Err(error))) => format!("{error:#}"),
            Err(error) => {
                let name = names.get(&error.id()).map_or("?", String::as_str);
                format!("modem {name:?}: its task failed: {error}")
            }
        };
        tracing::error!(%error, remaining = modems.len(), "a modem has stopped; the others carry on");
        stopped.push(error);
    }
    if shutdown.is_cancelled() || stopped.is_empty() {
        return Ok(());
    }
    Err(anyhow!(
        "every modem has stopped:\n  - {}",
        stopped.join("\n  - ")
    ))
}

/// `<data_dir>/<name>`, with a name that is not a plain file name made safe (and kept
/// distinct from others by a hash of it).
pub fn modem_dir(data_dir: &Path, name: &str) -> PathBuf {
    let plain = !name.is_empty()
        && !name.starts_with('.')
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if plain {
        return data_dir.join(name);
    }
    let safe: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect();
    // FNV-1a: stable across builds, unlike the standard hasher.
    let hash = name.bytes().fold(0x811c_9dc5_u32, |h, b| {
        (h ^ u32::from(b)).wrapping_mul(0x0100_0193)
    });
    data_dir.join(format!("{safe}-{hash:08x}"))
}

/// One modem, from start to shutdown or to a failure only a person can fix.
async fn run_modem(
    server: Url,
    modem: ModemConfig,
    dir: PathBuf,
    options: AgentOptions,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let name = modem.name.clone();
    let (journal, outbox) = open_queues(&dir)
        .await
        .with_context(|| format!("modem {name:?}: cannot use its data folder {}", dir.display()))?;
    let client = Client::with_timeouts(
        server,
        SecretString::from(modem.key.expose().to_owned()),
        options.timeouts,
    )
    .with_context(|| format!("modem {name:?}: cannot build the HTTP client"))?;
    let (handle, events) = ModemTask::spawn(modem, options.task.clone());
    let result = drive(
        &name, client, journal, outbox, &handle, events, &options, &shutdown,
    )
    .await;
    handle.shutdown();
    result
}

async fn open_queues(dir: &Path) -> std::io::Result<(Journal, Outbox)> {
    tokio::fs::create_dir_all(dir).await?;
    Ok((Journal::open(dir).await?, Outbox::open(dir).await?))
}

#[expect(clippy::too_many_arguments, reason = "one modem's parts, handed over once")]
async fn drive(
    name: &str,
    client: Client,
    journal: Journal,
    outbox: Outbox,
    handle: &ModemHandle,
    events: mpsc::UnboundedReceiver<Event>,
    options: &AgentOptions,
    shutdown: &CancellationToken,
) -> anyhow::Result<()> {
    // Online only once the modem works: until then Ender gives its messages to others.
    let state = tokio::select! {
        () = shutdown.cancelled() => return Ok(()),
        state = handle.wait_for(|s| matches!(s, ModemState::Ready | ModemState::Stopped { .. })) => state,
    };
    if let Some(ModemState::Stopped { reason }) = state {
        return Err(stopped(name, &reason));
    }
    let link = Link(handle.clone());
    let connection =
        Arc::new(Connection::new(name, client, journal, outbox, link).with_backoff(options.backoff.clone()));
    // Ends both halves when either fails; the parent's shutdown ends both too.
    let stop = shutdown.child_token();
    let (connected, forwarded) = tokio::join!(
        async {
            let result = connection.run(stop.clone()).await;
            stop.cancel();
            result
        },
        async {
            let result = forward(name, &connection, handle, events, options, &stop).await;
            stop.cancel();
            result
        },
    );
    connected?;
    forwarded
}

fn stopped(name: &str, reason: &str) -> anyhow::Error {
    anyhow!("modem {name:?} has stopped: {reason}; restart the agent once it is fixed")
}

/// The modem's events to the server, until `stop`.
async fn forward(
    name: &str,
    connection: &Connection<Link>,
    handle: &ModemHandle,
    mut events: mpsc::UnboundedReceiver<Event>,
    options: &AgentOptions,
    stop: &CancellationToken,
) -> anyhow::Result<()> {
    // Received SMS and radio reports are posted by loops of their own, so that a server
    // that is slow or away never holds up status reports (which go to the outbox on disk).
    let (incoming_tx, incoming_rx) = mpsc::unbounded_channel();
    let (status_tx, status_rx) = watch::channel(None);
    let events_loop = async {
        loop {
            let event = tokio::select! {
                () = stop.cancelled() => return Ok(()),
                state = handle.wait_for(|s| matches!(s, ModemState::Stopped { .. })) => {
                    let reason = match state {
                        Some(ModemState::Stopped { reason }) => reason,
                        _ => "the modem task ended".to_owned(),
                    };
                    return Err(stopped(name, &reason));
                }
                event = events.recv() => event,
            };
            match event {
                None => return Err(stopped(name, "the modem task ended")),
                // An SMS the modem did not store has no SIM copy to fall back on: it goes
                // to the outbox on disk at once, and from there to Ender.
                Some(Event::Incoming(sms)) if sms.ack.slots().is_empty() => {
                    let (body, timestamp) = incoming_fields(&sms);
                    match connection.queue_incoming(&sms.from, &body, timestamp).await {
                        Ok(()) => {}
                        Err(error @ ConnectionError::Unauthorized { .. }) => return Err(error.into()),
                        Err(error @ ConnectionError::Unreachable { .. }) => tracing::error!(
                            %error,
                            "a received SMS the modem did not store could neither be queued nor posted; it is lost"
                        ),
                    }
                }
                Some(Event::Incoming(sms)) => {
                    let _ = incoming_tx.send(sms);
                }
                Some(Event::Delivered { mr, .. }) => connection.delivered(mr).await,
                Some(Event::Failed { mr, reason, .. }) => connection.failed_report(mr, &reason).await,
                Some(Event::Status(status)) => {
                    status_tx.send_replace(Some(radio(&status)));
                }
            }
        }
    };
    tokio::try_join!(
        events_loop,
        post_incoming(connection, incoming_rx, stop),
        post_status(connection, handle, status_rx, options.heartbeat_every, stop),
    )?;
    Ok(())
}

/// Posts each received SMS; the SIM copy is deleted only once Ender has it.
async fn post_incoming(
    connection: &Connection<Link>,
    mut received: mpsc::UnboundedReceiver<Incoming>,
    stop: &CancellationToken,
) -> anyhow::Result<()> {
    loop {
        let sms = tokio::select! {
            () = stop.cancelled() => return Ok(()),
            sms = received.recv() => match sms {
                Some(sms) => sms,
                None => return Ok(()),
            },
        };
        let (body, timestamp) = incoming_fields(&sms);
        match connection.incoming(&sms.from, &body, timestamp).await {
            Ok(()) => {
                if let Err(error) = sms.ack.confirm().await {
                    tracing::warn!(%error, "Ender has a received SMS, but it is still on the SIM");
                }
            }
            Err(error @ ConnectionError::Unauthorized { .. }) => return Err(error.into()),
            Err(error @ ConnectionError::Unreachable { .. }) => {
                // Dropping the ack leaves it on the SIM for the next sweep.
                tracing::warn!(%error, "a received SMS stays on the SIM until Ender can take it");
            }
        }
    }
}

/// The body (with its note) and time to post a received SMS with.
fn incoming_fields(sms: &Incoming) -> (String, DateTime<chrono::FixedOffset>) {
    // Ender recognises a repeat by sender, body and this time, so it must be stable
    // across re-posts: the SMSC's, or for an undecodable PDU (whose body carries the
    // raw hex, SMSC time included) the start of today, so a repeat the same day is
    // still recognised.
    let timestamp = sms
        .timestamp_rfc3339()
        .and_then(|t| DateTime::parse_from_rfc3339(&t).ok())
        .unwrap_or_else(stable_time_without_timestamp);
    let body = match &sms.note {
        None => sms.text.clone(),
        Some(note) if sms.text.is_empty() => format!("[{note}]"),
        Some(note) => format!("{}\n\n[{note}]", sms.text),
    };
    (body, timestamp)
}

/// The time reported for an SMS that has no readable service-centre time: midnight UTC of
/// today, the same for every re-post of it today.
fn stable_time_without_timestamp() -> DateTime<chrono::FixedOffset> {
    let today = Utc::now().date_naive();
    today
        .and_hms_opt(0, 0, 0)
        .map(|t| t.and_utc().fixed_offset())
        .unwrap_or_else(|| Utc::now().fixed_offset())
}

/// Posts every new radio status, and the latest again when nothing new came for
/// `every` (an unknown one while the modem is away).
async fn post_status(
    connection: &Connection<Link>,
    handle: &ModemHandle,
    mut latest: watch::Receiver<Option<server::Status>>,
    every: Duration,
    stop: &CancellationToken,
) -> anyhow::Result<()> {
    let mut heartbeat = interval_at(tokio::time::Instant::now() + every, every);
    heartbeat.set_missed_tick_behavior(MissedTickBehavior::Delay);
    loop {
        let status = tokio::select! {
            () = stop.cancelled() => return Ok(()),
            changed = latest.changed() => {
                if changed.is_err() {
                    return Ok(());
                }
                latest.borrow_and_update().clone()
            }
            _ = heartbeat.tick() => match handle.state() {
                ModemState::Ready => latest.borrow().clone(),
                _ => Some(server::Status::new(None, "", server::Registration::Unknown)),
            },
        };
        heartbeat.reset();
        if let Some(status) = status {
            connection.status(&status).await?;
        }
    }
}

fn radio(status: &crate::task::Status) -> server::Status {
    let registration = match status.registration {
        Registration::Home => server::Registration::Home,
        Registration::Roaming => server::Registration::Roaming,
        Registration::Searching => server::Registration::Searching,
        Registration::Denied => server::Registration::Denied,
        Registration::NotRegistered => server::Registration::NotRegistered,
        Registration::Unknown => server::Registration::Unknown,
    };
    server::Status::new(
        status.signal.dbm,
        status.operator.as_deref().unwrap_or_default(),
        registration,
    )
}

/// The connection's view of the modem task.
struct Link(ModemHandle);

impl ModemLink for Link {
    async fn send(&self, to: &str, text: &str) -> Result<Vec<u8>, SendFailure> {
        // The task's own id for the message is only echoed in its events; the journal
        // maps references back to Ender's ids, across restarts too.
        match self.0.send("", to, text).await {
            SendOutcome::Sent { refs } => Ok(refs),
            SendOutcome::Failed {
                reason,
                permanent,
                refs,
                uncertain,
            } => Err(SendFailure {
                reason,
                permanent,
                sent: refs,
                uncertain,
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::server::fake::Fake;
    use crate::sim::{SimModem, SimOptions};

    #[test]
    fn an_sms_without_a_readable_time_is_reported_at_a_stable_time() {
        use chrono::Timelike;
        let first = stable_time_without_timestamp();
        assert_eq!((first.hour(), first.minute(), first.second()), (0, 0, 0));
        assert_eq!(first.date_naive(), Utc::now().date_naive());
        assert_eq!(
            stable_time_without_timestamp(),
            first,
            "a re-post carries the same time"
        );
    }

    fn quick() -> AgentOptions {
        AgentOptions {
            task: TaskOptions {
                sweep_every: Duration::from_millis(300),
                status_every: Duration::from_secs(3600),
                backoff_min: Duration::from_millis(50),
                backoff_max: Duration::from_millis(200),
                ..TaskOptions::default()
            },
            backoff: Backoff::new(
                Duration::from_millis(20),
                Duration::from_millis(100),
                Duration::from_secs(60),
            ),
            heartbeat_every: Duration::from_millis(200),
            ..AgentOptions::default()
        }
    }

    /// `(name, key, port, pin)` for each modem.
    fn config(server: &Url, modems: &[(&str, &str, String, Option<&str>)]) -> Config {
        let mut text = format!("server = \"{server}\"\n");
        for (name, key, port, pin) in modems {
            text.push_str(&format!(
                "[[modem]]\nname = \"{name}\"\nkey = \"{key}\"\nport = \"{port}\"\n"
            ));
            if let Some(pin) = pin {
                text.push_str(&format!("pin = \"{pin}\"\n"));
            }
        }
        Config::parse(Path::new("agent.toml"), &text, Vec::new()).unwrap()
    }

    fn with_pin() -> SimModem {
        SimModem::start(SimOptions {
            pin: Some("2468".to_owned()),
            ..SimOptions::default()
        })
        .unwrap()
    }

    fn statuses(fake: &Fake) -> usize {
        fake.received()
            .iter()
            .filter(|(path, _, _)| path == "/api/device/status")
            .count()
    }

    #[tokio::test]
    async fn one_failing_modem_never_stops_the_others() {
        let fake = Fake::start().await;
        let good = SimModem::start(SimOptions::default()).unwrap();
        let locked = with_pin();
        let revoked = SimModem::start(SimOptions::default()).unwrap();
        let config = config(
            &fake.url(),
            &[
                ("good", "dk_test_key", good.port(), None),
                ("locked", "dk_other", locked.port(), Some("1111")),
                ("revoked", "dk_revoked", revoked.port(), None),
            ],
        );
        let dir = tempfile::tempdir().unwrap();
        let shutdown = CancellationToken::new();
        let agent = tokio::spawn(run_with(config, dir.path().to_owned(), quick(), shutdown.clone()));
        // The good modem's radio, then heartbeats well after the others gave up.
        fake.wait_until("the good modem reports its radio", |f| statuses(f) >= 1)
            .await;
        let first = &fake.received()[0];
        assert_eq!(
            first.1,
            serde_json::json!({"signal_dbm": -73, "operator": "Ender Mobile", "registration": "home"})
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
        let before = statuses(&fake);
        fake.wait_until("heartbeats go on", |f| statuses(f) >= before + 2)
            .await;
        assert!(!agent.is_finished());
        assert_eq!(locked.pin_attempts(), 1);
        assert!(dir.path().join("good/outbox").is_dir());
        shutdown.cancel();
        let stopped = tokio::time::timeout(Duration::from_secs(10), agent)
            .await
            .unwrap()
            .unwrap();
        assert!(stopped.is_ok(), "{stopped:?}");
    }

    #[tokio::test]
    async fn the_agent_fails_once_every_modem_has_stopped_naming_each() {
        let fake = Fake::start().await;
        let locked = with_pin();
        let revoked = SimModem::start(SimOptions::default()).unwrap();
        let config = config(
            &fake.url(),
            &[
                ("locked", "dk_other", locked.port(), Some("1111")),
                ("revoked", "dk_revoked", revoked.port(), None),
            ],
        );
        let dir = tempfile::tempdir().unwrap();
        let result = tokio::time::timeout(
            Duration::from_secs(10),
            run_with(config, dir.path().to_owned(), quick(), CancellationToken::new()),
        )
        .await
        .unwrap();
        let message = format!("{:#}", result.unwrap_err());
        assert!(message.starts_with("every modem has stopped"), "{message}");
        assert!(
            message.contains("modem \"locked\" has stopped: the SIM rejected the PIN"),
            "{message}"
        );
        assert!(
            message.contains("modem \"revoked\": Ender refused its device key (HTTP 401"),
            "{message}"
        );
        assert!(
            !message.contains("1111") && !message.contains("dk_revoked"),
            "{message}"
        );
        assert_eq!(locked.pin_attempts(), 1);
    }

    #[test]
    fn modem_folders_are_plain_names_or_made_safe() {
        let base = Path::new("/data");
        assert_eq!(modem_dir(base, "dongle-1"), Path::new("/data/dongle-1"));
        let odd = modem_dir(base, "../a b");
        assert!(odd.starts_with("/data") && odd.parent() == Some(base), "{odd:?}");
        assert!(odd.file_name().unwrap().to_str().unwrap().starts_with("___a_b-"));
        assert_ne!(modem_dir(base, "a/b"), modem_dir(base, "a_b"));
        assert_ne!(modem_dir(base, "a/b"), modem_dir(base, "a?b"));
    }
}
