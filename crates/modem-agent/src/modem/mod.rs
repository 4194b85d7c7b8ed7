//! One modem: its port, its initialisation, and the SMS operations on top of the AT
//! channel. Every call ends within its timeout; a modem that stops answering gives
//! [`ModemError::needs_reset`] and [`Modem::reset`] brings it back or fails in bounded time.

mod error;
mod inbox;
mod parse;
mod types;

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use secrecy::{ExposeSecret, SecretString};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

pub use error::{ModemError, SendError, SendFailure};
pub use inbox::{Inbox, IncomingSms, ModemEvent, rfc3339};
pub use types::{Profile, Registration, Signal, Slot, Stored, Timeouts};

use crate::at::{AtChannel, AtError, Response, Urc, is_hex};
use crate::pdu::{self, Pdu};
use crate::port::Port;
use parse::PinState;

const ESC: u8 = 0x1b;
/// How often to ask whether the SIM is ready after the PIN, and how many times.
const SIM_READY_POLL: Duration = Duration::from_millis(300);
const SIM_READY_TRIES: u32 = 10;
/// How long a busy SIM (still starting) gets between tries, and how many.
const BUSY_PAUSE: Duration = Duration::from_millis(500);
const BUSY_TRIES: u32 = 10;
/// A modem needs a moment after `ATZ`.
const RESET_PAUSE: Duration = Duration::from_millis(300);

/// Choices for a [`Modem`].
#[derive(Debug, Clone)]
pub struct ModemOptions {
    /// For the logs.
    pub name: String,
    pub profile: Profile,
    pub timeouts: Timeouts,
    pub reassembly_timeout: Duration,
}

impl Default for ModemOptions {
    fn default() -> Self {
        Self {
            name: "modem".to_owned(),
            profile: Profile::Generic,
            timeouts: Timeouts::default(),
            reassembly_timeout: Inbox::DEFAULT_TIMEOUT,
        }
    }
}

/// A modem spoken to in PDU mode.
pub struct Modem {
    at: AtChannel,
    urcs: mpsc::UnboundedReceiver<Urc>,
    /// For a notification port's reader: its URCs join the command port's.
    urc_tx: mpsc::UnboundedSender<Urc>,
    notify: Option<JoinHandle<()>>,
    options: ModemOptions,
    inbox: Inbox,
    pin: Option<SecretString>,
    /// Set once the SIM refused the PIN (or gave no clear answer to it): from then on this
    /// modem never sends the PIN again.
    pin_rejected: bool,
    concat_reference: u8,
    /// The storage selected for reading and deleting, and the ones to sweep.
    storage: String,
    primary_storage: String,
    storages: BTreeSet<String>,
}

impl Drop for Modem {
    fn drop(&mut self) {
        if let Some(notify) = &self.notify {
            notify.abort();
        }
    }
}

impl Modem {
    /// Opens the modem's port (and its notification port, when it has a separate one).
    pub async fn open(
        port: &str,
        baud: u32,
        notify_port: Option<&str>,
        options: ModemOptions,
    ) -> Result<Self, ModemError> {
        let stream = Port::open(port, baud)?;
        let mut modem = Self::from_stream(stream, options);
        if let Some(notify_port) = notify_port {
            let notify = Port::open(notify_port, baud)?;
            modem.notify = Some(AtChannel::listen(notify, modem.urc_tx.clone()));
        }
        Ok(modem)
    }

    /// A modem on any byte stream (tests use an in-memory duplex).
    pub fn from_stream<S>(stream: S, options: ModemOptions) -> Self
    where
        S: AsyncRead + AsyncWrite + Send + 'static,
    {
        let (urc_tx, urcs) = mpsc::unbounded_channel();
        let at = AtChannel::with_urc_sender(stream, urc_tx.clone());
        let inbox = Inbox::new(options.reassembly_timeout);
        Self {
            at,
            urcs,
            urc_tx,
            notify: None,
            options,
            inbox,
            pin: None,
            pin_rejected: false,
            concat_reference: initial_reference(),
            storage: "SM".to_owned(),
            primary_storage: "SM".to_owned(),
            storages: BTreeSet::new(),
        }
    }

    /// Closes the port(s) for good before returning, so that they can be opened again
    /// right away (dropping a modem closes them a moment later, when its tasks stop).
    pub async fn close(mut self) {
        if let Some(notify) = self.notify.take() {
            notify.abort();
            let _ = notify.await;
        }
        self.at.close().await;
    }

    pub fn name(&self) -> &str {
        &self.options.name
    }

    pub fn options(&self) -> &ModemOptions {
        &self.options
    }

    /// Prepares the modem: echo off, verbose errors, the PIN if the SIM asks for one, PDU
    /// mode, SIM storage, and indications for new SMS and status reports.
    ///
    /// A rejected PIN is [`ModemError::WrongPin`], and this modem will not send a PIN again.
    pub async fn init(&mut self, pin: Option<&str>) -> Result<(), ModemError> {
        self.pin = pin.map(|p| SecretString::from(p.to_owned()));
        self.init_again().await
    }

    async fn init_again(&mut self) -> Result<(), ModemError> {
        self.wake().await?;
        self.cmd("ATE0").await?;
        if !self.optional("AT+CMEE=2").await? && !self.optional("AT+CMEE=1").await? {
            tracing::warn!("the modem does not give error reasons (AT+CMEE); errors will be bare");
        }
        self.unlock_sim().await?;
        self.cmd_while_busy("AT+CMGF=0").await?;
        self.choose_storage().await?;
        let mut indications = false;
        for cnmi in self.options.profile.cnmi() {
            if self.optional(cnmi).await? {
                indications = true;
                break;
            }
        }
        if !indications {
            tracing::warn!(
                "the modem refuses every AT+CNMI setting tried: new SMS will only be found by the periodic sweep"
            );
        }
        // Operator names in long alphanumeric form for `AT+COPS?`.
        self.optional("AT+COPS=3,0").await?;
        tracing::info!(modem.profile = %self.options.profile, "modem initialised");
        Ok(())
    }

    /// Brings back a modem that stopped answering: leaves any prompt, `ATZ`, and initialises
    /// it again (without sending a PIN the SIM refused). Fails in bounded time.
    pub async fn reset(&mut self) -> Result<(), ModemError> {
        tracing::warn!("resetting the modem");
        self.wake().await?;
        self.optional("ATZ").await?;
        tokio::time::sleep(RESET_PAUSE).await;
        self.storage = String::new();
        self.init_again().await
    }

    /// Gets the modem's attention: ESC ends a half-finished `AT+CMGS`, then `AT` until it
    /// answers (three tries).
    async fn wake(&mut self) -> Result<(), ModemError> {
        self.at.write_raw(&[ESC]).await?;
        let mut last = None;
        for _ in 0..3 {
            match self.at.command("AT", self.options.timeouts.command).await {
                Ok(_) | Err(AtError::Failed { .. }) => return Ok(()),
                Err(e @ AtError::Timeout { .. }) => last = Some(e),
                Err(e) => return Err(e.into()),
            }
        }
        Err(last
            .map(ModemError::from)
            .unwrap_or_else(|| ModemError::protocol("AT", "no answer")))
    }

    async fn unlock_sim(&mut self) -> Result<(), ModemError> {
        match self.pin_state().await? {
            PinState::Ready => Ok(()),
            PinState::Puk => Err(ModemError::PukRequired),
            PinState::Other(code) => Err(ModemError::Sim(format!(
                "it asks for {code}, which the agent does not enter"
            ))),
            PinState::Pin => {
                let Some(pin) = self.pin.clone() else {
                    return Err(ModemError::PinRequired);
                };
                if self.pin_rejected {
                    return Err(ModemError::WrongPin {
                        detail: "it was refused before".to_owned(),
                    });
                }
                // Anything but OK counts as refused: the PIN is never sent twice.
                self.pin_rejected = true;
                let command = format!("AT+CPIN=\"{}\"", pin.expose_secret());
                match self.at.command(&command, self.options.timeouts.command).await {
                    Ok(_) => self.pin_rejected = false,
                    Err(AtError::Failed { error, .. }) if error.is_puk_required() => {
                        return Err(ModemError::PukRequired);
                    }
                    Err(AtError::Failed { error, .. }) => {
                        tracing::error!(%error, "the SIM rejected the PIN; not trying again");
                        return Err(ModemError::WrongPin {
                            detail: error.to_string(),
                        });
                    }
                    Err(e) => {
                        tracing::error!(error = %e, "no clear answer to the PIN; not trying again");
                        return Err(ModemError::WrongPin {
                            detail: "the modem gave no clear answer".to_owned(),
                        });
                    }
                }
                for _ in 0..SIM_READY_TRIES {
                    if self.pin_state().await? == PinState::Ready {
                        tracing::info!("SIM unlocked");
                        return Ok(());
                    }
                    tokio::time::sleep(SIM_READY_POLL).await;
                }
                Err(ModemError::Sim(
                    "it took the PIN but did not become ready".to_owned(),
                ))
            }
        }
    }

    async fn pin_state(&mut self) -> Result<PinState, ModemError> {
        match self.cmd("AT+CPIN?").await {
            Ok(response) => response
                .value("+CPIN:")
                .map(parse::cpin)
                .ok_or_else(|| ModemError::protocol("AT+CPIN?", "no +CPIN line")),
            Err(ModemError::At(AtError::Failed { error, .. })) => {
                if error.is_sim_missing() {
                    Err(ModemError::Sim("no SIM is inserted".to_owned()))
                } else if error.is_puk_required() {
                    Err(ModemError::PukRequired)
                } else if error.is_pin_required() {
                    Ok(PinState::Pin)
                } else {
                    Err(ModemError::Sim(error.to_string()))
                }
            }
            Err(e) => Err(e),
        }
    }

    /// SIM storage for everything; a modem that refuses keeps its own, which we then ask.
    async fn choose_storage(&mut self) -> Result<(), ModemError> {
        if self
            .cmd_while_busy_optional("AT+CPMS=\"SM\",\"SM\",\"SM\"")
            .await?
        {
            self.storage = "SM".to_owned();
        } else {
            let current = match self.cmd("AT+CPMS?").await {
                Ok(r) => r
                    .value("+CPMS:")
                    .and_then(|v| parse::fields(v).into_iter().next())
                    .filter(|s| !s.is_empty()),
                Err(ModemError::At(AtError::Failed { .. })) => None,
                Err(e) => return Err(e),
            };
            self.storage = current.unwrap_or_else(|| "SM".to_owned());
            tracing::warn!(sms.storage = %self.storage, "the modem refuses SIM storage; using its own");
        }
        self.primary_storage = self.storage.clone();
        self.storages.insert(self.storage.clone());
        Ok(())
    }

    /// Selects where [`Modem::read`], [`Modem::delete`] and [`Modem::list_stored`] look.
    pub async fn select_storage(&mut self, storage: &str) -> Result<(), ModemError> {
        if self.storage == storage {
            return Ok(());
        }
        self.cmd(&format!("AT+CPMS=\"{storage}\"")).await?;
        self.storage = storage.to_owned();
        Ok(())
    }

    pub async fn signal(&mut self) -> Result<Signal, ModemError> {
        let response = self.cmd("AT+CSQ").await?;
        response
            .value("+CSQ:")
            .and_then(parse::csq)
            .map(Signal::from_rssi)
            .ok_or_else(|| ModemError::protocol("AT+CSQ", format!("no +CSQ value in {:?}", response.lines)))
    }

    /// The best registration among the profile's queries (a modem on LTE may show only
    /// in `+CEREG`).
    pub async fn registration(&mut self) -> Result<Registration, ModemError> {
        let mut first = None;
        for query in self.options.profile.registration_queries() {
            let prefix = format!("{}:", query.trim_start_matches("AT").trim_end_matches('?'));
            let response = match self.cmd(query).await {
                Ok(response) => response,
                Err(ModemError::At(AtError::Failed { .. })) => continue,
                Err(e) => return Err(e),
            };
            let registration = response
                .value(&prefix)
                .and_then(parse::creg)
                .map_or(Registration::Unknown, Registration::from_stat);
            if registration.is_registered() {
                return Ok(registration);
            }
            first.get_or_insert(registration);
        }
        Ok(first.unwrap_or(Registration::Unknown))
    }

    pub async fn operator(&mut self) -> Result<Option<String>, ModemError> {
        let response = self.cmd("AT+COPS?").await?;
        Ok(response.value("+COPS:").and_then(parse::cops))
    }

    /// Sends `text` to `to` in as many parts as it needs, asking for status reports.
    /// Returns the modem's message reference for each part, in order: status reports name
    /// them.
    pub async fn send(&mut self, to: &str, text: &str) -> Result<Vec<u8>, SendError> {
        self.concat_reference = self.concat_reference.wrapping_add(1);
        let pdus = pdu::encode_submit(to, text, self.concat_reference, true).map_err(|e| SendError {
            failure: SendFailure::Invalid(e),
            part: 0,
            total: 0,
            sent: Vec::new(),
        })?;
        let total = pdus.len();
        let mut sent = Vec::with_capacity(total);
        for (i, pdu) in pdus.iter().enumerate() {
            let command = format!("AT+CMGS={}", pdu.tpdu_len);
            let t = self.options.timeouts;
            let failure = match self
                .at
                .command_with_pdu(&command, &pdu.hex, t.prompt, t.send)
                .await
            {
                Ok(response) => match response.value("+CMGS:").and_then(parse::cmgs) {
                    Some(mr) => {
                        sent.push(mr);
                        continue;
                    }
                    None => SendFailure::Protocol(format!(
                        "OK without a +CMGS reference (lines: {:?})",
                        response.lines
                    )),
                },
                Err(AtError::Failed { error, .. }) => SendFailure::Rejected(error),
                Err(AtError::Timeout {
                    stage: crate::at::Stage::Pdu,
                    ..
                }) => SendFailure::NoAnswerAfterPdu,
                Err(AtError::Timeout { .. }) => SendFailure::NoAnswer,
                Err(e @ AtError::NoPrompt { .. }) => SendFailure::NoPrompt(e.to_string()),
                Err(AtError::Closed(reason) | AtError::Write(reason)) => SendFailure::Disconnected(reason),
                Err(AtError::LostAfterPdu { reason, .. }) => SendFailure::DisconnectedAfterPdu(reason),
            };
            let error = SendError {
                failure,
                part: i + 1,
                total,
                sent,
            };
            tracing::warn!(sms.parts = total, sms.mr = ?error.sent, %error, "sending an SMS failed");
            return Err(error);
        }
        tracing::info!(sms.parts = total, sms.mr = ?sent, "sent an SMS");
        Ok(sent)
    }

    /// Every SMS in the selected storage (`AT+CMGL=4`).
    pub async fn list_stored(&mut self) -> Result<Vec<Stored>, ModemError> {
        let response = self.at.command("AT+CMGL=4", self.options.timeouts.list).await?;
        let mut stored = Vec::new();
        let mut lines = response.lines.iter().peekable();
        while let Some(line) = lines.next() {
            let Some(value) = crate::at::strip_prefix_ignore_case(line, "+CMGL:") else {
                tracing::debug!(at.line = %line.escape_debug(), "ignoring a stray line in the +CMGL listing");
                continue;
            };
            let Some((index, stat)) = parse::cmgl(value) else {
                tracing::warn!(at.line = %line.escape_debug(), "ignoring a malformed +CMGL line");
                continue;
            };
            match lines.next_if(|l| is_hex(l)) {
                Some(pdu) => stored.push(Stored {
                    storage: self.storage.clone(),
                    index,
                    stat,
                    pdu: pdu.clone(),
                }),
                None => tracing::warn!(
                    sms.index = index,
                    "the listing has no PDU for this entry; leaving it in storage"
                ),
            }
        }
        Ok(stored)
    }

    /// The SMS at `index` in the selected storage (`AT+CMGR`); `None` when the slot is empty.
    pub async fn read(&mut self, index: u32) -> Result<Option<Stored>, ModemError> {
        let command = format!("AT+CMGR={index}");
        let response = match self.cmd(&command).await {
            Ok(response) => response,
            Err(ModemError::At(AtError::Failed { error, .. })) if error.cms_code() == Some(321) => {
                return Ok(None);
            }
            Err(e) => return Err(e),
        };
        let mut lines = response.lines.iter();
        let Some(stat) = lines
            .by_ref()
            .find_map(|l| crate::at::strip_prefix_ignore_case(l, "+CMGR:"))
            .map(|v| parse::cmgr(v).unwrap_or(0))
        else {
            return Ok(None);
        };
        match lines.next().filter(|l| is_hex(l)) {
            Some(pdu) => Ok(Some(Stored {
                storage: self.storage.clone(),
                index,
                stat,
                pdu: pdu.clone(),
            })),
            None => Err(ModemError::protocol(&command, "no PDU after +CMGR")),
        }
    }

    /// Deletes the SMS at `index` in the selected storage (`AT+CMGD`). Only for SMS the
    /// caller has safely passed on: see [`Modem::acknowledge`].
    pub async fn delete(&mut self, index: u32) -> Result<(), ModemError> {
        self.cmd(&format!("AT+CMGD={index}")).await?;
        Ok(())
    }

    /// Waits for the next unsolicited result code. Cancel-safe: use it in `select!` and
    /// hand what it gives to [`Modem::handle_urc`].
    pub async fn next_urc(&mut self) -> Urc {
        self.urcs.recv().await.unwrap_or_else(|| Urc::PortClosed {
            reason: "the reader stopped".to_owned(),
        })
    }

    /// Acts on an unsolicited result code: reads a newly stored SMS, decodes a status
    /// report, joins parts. A closed port is [`ModemError::is_disconnected`].
    pub async fn handle_urc(&mut self, urc: Urc) -> Result<Vec<ModemEvent>, ModemError> {
        match urc {
            Urc::NewMessage { storage, index } => {
                self.storages.insert(storage.clone());
                let slot = Slot { storage, index };
                if self.inbox.is_held(&slot) {
                    return Ok(Vec::new());
                }
                self.select_storage(&slot.storage).await?;
                match self.read(index).await? {
                    Some(stored) => Ok(self.take(stored).await?.into_iter().collect()),
                    None => {
                        tracing::debug!(sms.slot = %slot, "a new-SMS indication for an empty slot");
                        Ok(Vec::new())
                    }
                }
            }
            Urc::Message { pdu } => {
                let now = now();
                Ok(self.inbox.accept(None, &pdu, now).into_iter().collect())
            }
            Urc::StatusReport { pdu } => match pdu::decode(&pdu) {
                Ok(Pdu::StatusReport(report)) => Ok(vec![ModemEvent::StatusReport {
                    mr: report.message_reference,
                    status: report.status,
                    slot: None,
                }]),
                Ok(other) => {
                    tracing::warn!(pdu.kind = ?std::mem::discriminant(&other), "a +CDS that is not a status report; ignoring it");
                    Ok(Vec::new())
                }
                Err(error) => {
                    tracing::warn!(%error, "a status report that cannot be decoded; ignoring it");
                    Ok(Vec::new())
                }
            },
            Urc::StoredStatusReport { storage, index } => {
                self.storages.insert(storage.clone());
                self.select_storage(&storage).await?;
                match self.read(index).await? {
                    Some(stored) => Ok(self.take(stored).await?.into_iter().collect()),
                    None => Ok(Vec::new()),
                }
            }
            Urc::Ring => {
                tracing::debug!("the modem rings; calls are not handled");
                Ok(Vec::new())
            }
            Urc::Other(line) => {
                tracing::debug!(at.urc = %line.escape_debug(), "unsolicited result code");
                Ok(Vec::new())
            }
            Urc::Malformed { line, problem } => {
                tracing::warn!(at.urc = %line.escape_debug(), problem, "a malformed unsolicited result code");
                Ok(Vec::new())
            }
            Urc::PortClosed { reason } => Err(AtError::Closed(reason).into()),
        }
    }

    /// [`Modem::next_urc`] then [`Modem::handle_urc`], for callers with nothing else to
    /// wait for. Not cancel-safe.
    pub async fn next_events(&mut self) -> Result<Vec<ModemEvent>, ModemError> {
        let urc = self.next_urc().await;
        self.handle_urc(urc).await
    }

    /// Reads every stored SMS not yet on its way (at start, and now and then in case an
    /// indication was missed), and passes on long messages whose parts are overdue.
    pub async fn sweep(&mut self) -> Result<Vec<ModemEvent>, ModemError> {
        let mut events = Vec::new();
        let mut storages = self.storages.clone();
        storages.insert(self.primary_storage.clone());
        for storage in storages {
            match self.select_storage(&storage).await {
                Ok(()) => {}
                // A storage named in an indication that cannot be selected: reading it on
                // indication is all we can do.
                Err(ModemError::At(AtError::Failed { error, .. })) if storage != self.primary_storage => {
                    tracing::warn!(sms.storage = %storage, %error, "cannot select this storage; no longer sweeping it");
                    self.storages.remove(&storage);
                    continue;
                }
                Err(e) => return Err(e),
            }
            for stored in self.list_stored().await? {
                // 2 and 3 are outgoing messages someone stored: not ours.
                if stored.stat >= 2 {
                    continue;
                }
                let slot = Slot {
                    storage: stored.storage.clone(),
                    index: stored.index,
                };
                if self.inbox.is_held(&slot) {
                    continue;
                }
                events.extend(self.take(stored).await?);
            }
        }
        let primary = self.primary_storage.clone();
        self.select_storage(&primary).await?;
        events.extend(self.expire_partial());
        Ok(events)
    }

    /// Long messages whose missing parts are overdue, passed on as they are.
    pub fn expire_partial(&mut self) -> Vec<ModemEvent> {
        self.inbox.expire(now())
    }

    /// Deletes SMS the caller has safely passed on.
    pub async fn acknowledge(&mut self, slots: &[Slot]) -> Result<(), ModemError> {
        for slot in slots {
            self.select_storage(&slot.storage).await?;
            match self.delete(slot.index).await {
                // Already gone (deleted before a reset cut the answer short).
                Err(ModemError::At(AtError::Failed { error, .. })) if error.cms_code() == Some(321) => {}
                other => other?,
            }
            self.inbox.forget(std::slice::from_ref(slot));
        }
        let primary = self.primary_storage.clone();
        self.select_storage(&primary).await
    }

    /// The caller could not pass these on: they stay stored and come again with the next
    /// sweep.
    pub fn release(&mut self, slots: &[Slot]) {
        self.inbox.release(slots);
    }

    pub fn inbox(&self) -> &Inbox {
        &self.inbox
    }

    /// Swaps the inbox, to carry it over to a reopened modem (so that messages on their
    /// way are not passed on twice).
    pub fn replace_inbox(&mut self, inbox: Inbox) -> Inbox {
        std::mem::replace(&mut self.inbox, inbox)
    }

    /// Decodes one stored PDU; status reports are deleted once read (they are not messages
    /// anyone acknowledges).
    async fn take(&mut self, stored: Stored) -> Result<Option<ModemEvent>, ModemError> {
        let slot = Slot {
            storage: stored.storage,
            index: stored.index,
        };
        let event = self.inbox.accept(Some(slot), &stored.pdu, now());
        if let Some(ModemEvent::StatusReport { slot: Some(slot), .. }) = &event {
            let slot = slot.clone();
            self.acknowledge(std::slice::from_ref(&slot)).await?;
        }
        Ok(event)
    }

    async fn cmd(&mut self, command: &str) -> Result<Response, ModemError> {
        Ok(self.at.command(command, self.options.timeouts.command).await?)
    }

    /// `Ok(false)` when the modem refuses; timeouts and a closed port are errors.
    async fn optional(&mut self, command: &str) -> Result<bool, ModemError> {
        match self.cmd(command).await {
            Ok(_) => Ok(true),
            Err(ModemError::At(AtError::Failed { error, .. })) => {
                tracing::debug!(at.command = command, %error, "the modem refused an optional command");
                Ok(false)
            }
            Err(e) => Err(e),
        }
    }

    /// Asks again while the SIM is busy starting up.
    async fn cmd_while_busy(&mut self, command: &str) -> Result<Response, ModemError> {
        let mut tries = 0;
        loop {
            match self.cmd(command).await {
                Err(ModemError::At(AtError::Failed { error, .. }))
                    if error.is_busy() && tries < BUSY_TRIES =>
                {
                    tries += 1;
                    tracing::debug!(at.command = command, "the SIM is busy; asking again");
                    tokio::time::sleep(BUSY_PAUSE).await;
                }
                other => return other,
            }
        }
    }

    async fn cmd_while_busy_optional(&mut self, command: &str) -> Result<bool, ModemError> {
        match self.cmd_while_busy(command).await {
            Ok(_) => Ok(true),
            Err(ModemError::At(AtError::Failed { .. })) => Ok(false),
            Err(e) => Err(e),
        }
    }
}

fn now() -> Instant {
    tokio::time::Instant::now().into_std()
}

/// A concatenation reference that differs from one start to the next, so that a recipient
/// does not join the parts of two messages sent across a restart.
fn initial_reference() -> u8 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or_default();
    (nanos % 256) as u8
}
