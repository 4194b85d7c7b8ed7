//! A supervised modem: [`ModemTask`] owns one [`Modem`], opens and initialises it,
//! resets it when it stops answering, reopens it with backoff when it goes away, and stops
//! with a clear reason when only a person can help (a wrong PIN). The connection to the
//! server talks to it through a [`ModemHandle`] (send an SMS) and a stream of [`Event`]s
//! (received SMS with an [`Ack`] to delete them once the server has them, delivery
//! reports, status).

use std::collections::HashMap;
use std::fmt;
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, oneshot, watch};
use tokio::time::{MissedTickBehavior, interval_at};
use tracing::Instrument;

use crate::at::AtError;
use crate::config::ModemConfig;
use crate::modem::{
    Inbox, Modem, ModemError, ModemEvent, ModemOptions, Registration, Signal, Slot, Timeouts,
};
use crate::pdu::{DeliveryStatus, Timestamp};

/// How long the reference of a sent SMS is remembered for its status report.
const OUTBOX_TTL: Duration = Duration::from_secs(7 * 24 * 3600);

/// Choices for a [`ModemTask`].
#[derive(Debug, Clone)]
pub struct TaskOptions {
    pub timeouts: Timeouts,
    /// How long the parts of a long SMS are waited for.
    pub reassembly_timeout: Duration,
    /// How often storage is swept for SMS whose indication was missed.
    pub sweep_every: Duration,
    /// How often signal, registration and operator are reported.
    pub status_every: Duration,
    /// First and longest wait before reopening a modem that went away.
    pub backoff_min: Duration,
    pub backoff_max: Duration,
}

impl Default for TaskOptions {
    fn default() -> Self {
        Self {
            timeouts: Timeouts::default(),
            reassembly_timeout: Inbox::DEFAULT_TIMEOUT,
            sweep_every: Duration::from_secs(60),
            status_every: Duration::from_secs(60),
            backoff_min: Duration::from_secs(1),
            backoff_max: Duration::from_secs(60),
        }
    }
}

/// Where a modem stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ModemState {
    Starting,
    Ready,
    /// Not answering or gone; the task keeps trying.
    Unavailable {
        reason: String,
    },
    /// Given up: a person must act (wrong PIN, blocked SIM…). Final.
    Stopped {
        reason: String,
    },
}

/// Signal, registration and operator, as polled.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Status {
    pub signal: Signal,
    pub registration: Registration,
    pub operator: Option<String>,
}

/// What a modem has to tell the server.
#[derive(Debug)]
pub enum Event {
    Incoming(Incoming),
    /// The part sent with reference `mr` reached the phone. `message_id` is the id given to
    /// [`ModemHandle::send`] while the agent remembers it (not across restarts).
    Delivered {
        mr: u8,
        message_id: Option<String>,
    },
    /// The part sent with reference `mr` will not be delivered.
    Failed {
        mr: u8,
        message_id: Option<String>,
        reason: String,
    },
    Status(Status),
}

/// A received SMS. It stays in the modem's storage until [`Ack::confirm`].
#[derive(Debug)]
pub struct Incoming {
    pub from: String,
    pub text: String,
    pub timestamp: Option<Timestamp>,
    /// Something the server should show with it: missing parts, an undecodable PDU.
    pub note: Option<String>,
    pub ack: Ack,
}

impl Incoming {
    /// [`Incoming::timestamp`] as RFC 3339 (`2025-06-01T12:00:00+02:00`).
    pub fn timestamp_rfc3339(&self) -> Option<String> {
        self.timestamp.as_ref().map(crate::modem::rfc3339)
    }
}

/// Deletes a received SMS from the modem once the server has it. Dropped without
/// [`Ack::confirm`], the SMS is passed on again with the next sweep.
pub struct Ack {
    slots: Vec<Slot>,
    requests: Option<mpsc::UnboundedSender<Request>>,
}

impl fmt::Debug for Ack {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Ack").field("slots", &self.slots).finish()
    }
}

/// Why [`Ack::confirm`] did not delete right away.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AckError {
    /// The modem is unavailable or failed to delete: it will be deleted once the modem is
    /// back, and this agent will not pass it on again meanwhile.
    #[error("deleting the SMS is deferred: {0}")]
    Deferred(String),
    /// The modem task has ended: after a restart the SMS will be passed on again.
    #[error("the modem task has ended; the SMS stays in the modem")]
    TaskGone,
}

impl Ack {
    /// Where the SMS's parts are stored.
    pub fn slots(&self) -> &[Slot] {
        &self.slots
    }

    /// The server has the SMS: delete it from the modem.
    pub async fn confirm(mut self) -> Result<(), AckError> {
        let Some(requests) = self.requests.take() else {
            return Ok(());
        };
        if self.slots.is_empty() {
            return Ok(());
        }
        let (reply, answer) = oneshot::channel();
        let slots = std::mem::take(&mut self.slots);
        requests
            .send(Request::Ack { slots, reply })
            .map_err(|_| AckError::TaskGone)?;
        answer.await.map_err(|_| AckError::TaskGone)?
    }
}

impl Drop for Ack {
    fn drop(&mut self) {
        if let Some(requests) = self.requests.take()
            && !self.slots.is_empty()
        {
            let _ = requests.send(Request::Release {
                slots: std::mem::take(&mut self.slots),
            });
        }
    }
}

/// How a send ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SendOutcome {
    /// Handed to the network; one reference per part, for the status reports.
    Sent { refs: Vec<u8> },
    Failed {
        reason: String,
        /// `true`: this message can never go through; `false`: try again later or on
        /// another modem.
        permanent: bool,
        /// References of parts that did go out before the failure.
        refs: Vec<u8>,
        /// The failing part may have gone out anyway (the modem stopped answering after
        /// taking it): the message must not be sent again.
        uncertain: bool,
    },
}

enum Request {
    Send {
        message_id: String,
        to: String,
        text: String,
        reply: oneshot::Sender<SendOutcome>,
    },
    Ack {
        slots: Vec<Slot>,
        reply: oneshot::Sender<Result<(), AckError>>,
    },
    Release {
        slots: Vec<Slot>,
    },
    Shutdown,
}

/// Talks to a running [`ModemTask`].
#[derive(Clone)]
pub struct ModemHandle {
    name: String,
    requests: mpsc::UnboundedSender<Request>,
    state: watch::Receiver<ModemState>,
}

impl ModemHandle {
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Sends `text` to `to`; `message_id` is the server's, returned with status reports.
    pub async fn send(&self, message_id: impl Into<String>, to: &str, text: &str) -> SendOutcome {
        let (reply, answer) = oneshot::channel();
        let request = Request::Send {
            message_id: message_id.into(),
            to: to.to_owned(),
            text: text.to_owned(),
            reply,
        };
        let gone = || SendOutcome::Failed {
            reason: format!("modem {} is no longer running", self.name),
            permanent: false,
            refs: Vec::new(),
            uncertain: false,
        };
        if self.requests.send(request).is_err() {
            return gone();
        }
        answer.await.unwrap_or_else(|_| gone())
    }

    pub fn state(&self) -> ModemState {
        self.state.borrow().clone()
    }

    /// Waits until the state satisfies `wanted`, and returns it; `None` if the task ended
    /// first.
    pub async fn wait_for(&self, wanted: impl Fn(&ModemState) -> bool) -> Option<ModemState> {
        let mut state = self.state.clone();
        state.wait_for(|s| wanted(s)).await.ok().map(|s| s.clone())
    }

    /// Stops the task (it also stops when every handle and [`Ack`] is dropped).
    pub fn shutdown(&self) {
        let _ = self.requests.send(Request::Shutdown);
    }
}

/// See the module documentation.
pub struct ModemTask {
    config: ModemConfig,
    options: TaskOptions,
    requests: mpsc::UnboundedReceiver<Request>,
    /// For the [`Ack`]s handed out: weak, so that dropping every handle ends the task.
    request_tx: mpsc::WeakUnboundedSender<Request>,
    events: mpsc::UnboundedSender<Event>,
    state: watch::Sender<ModemState>,
    inbox: Inbox,
    outbox: Outbox,
    /// Deletions confirmed while the modem was away, done once it is back.
    deferred_acks: Vec<Slot>,
    /// The modem was ready since it was opened: a later failure starts the backoff over.
    reached_ready: bool,
}

enum Exit {
    Shutdown,
    Lost(ModemError),
}

impl ModemTask {
    /// Starts driving the modem `config` describes. Must be called inside a Tokio runtime.
    pub fn spawn(config: ModemConfig, options: TaskOptions) -> (ModemHandle, mpsc::UnboundedReceiver<Event>) {
        let (request_tx, requests) = mpsc::unbounded_channel();
        let (events, event_rx) = mpsc::unbounded_channel();
        let (state, state_rx) = watch::channel(ModemState::Starting);
        let handle = ModemHandle {
            name: config.name.clone(),
            requests: request_tx.clone(),
            state: state_rx,
        };
        let span = tracing::info_span!("modem", modem.name = %config.name);
        let task = Self {
            inbox: Inbox::new(options.reassembly_timeout),
            config,
            options,
            requests,
            request_tx: request_tx.downgrade(),
            events,
            state,
            outbox: Outbox::default(),
            deferred_acks: Vec::new(),
            reached_ready: false,
        };
        tokio::spawn(task.run().instrument(span));
        (handle, event_rx)
    }

    async fn run(mut self) {
        let mut backoff = self.options.backoff_min;
        loop {
            self.set_state(ModemState::Starting);
            let (error, was_ready) = match self.open().await {
                Ok(mut modem) => {
                    modem.replace_inbox(std::mem::take(&mut self.inbox));
                    let exit = self.drive(&mut modem).await;
                    self.inbox = modem.replace_inbox(Inbox::new(self.options.reassembly_timeout));
                    modem.close().await;
                    match exit {
                        Exit::Shutdown => return,
                        Exit::Lost(error) => (error, std::mem::take(&mut self.reached_ready)),
                    }
                }
                Err(error) => (error, false),
            };
            if error.is_fatal() {
                let reason = error.to_string();
                tracing::error!(%error, "stopping this modem until someone fixes it");
                self.set_state(ModemState::Stopped { reason });
                self.serve_while_away(None).await;
                return;
            }
            if was_ready {
                backoff = self.options.backoff_min;
            }
            tracing::warn!(%error, retry_in_ms = backoff.as_millis(), "the modem is unavailable");
            self.set_state(ModemState::Unavailable {
                reason: error.to_string(),
            });
            if self.serve_while_away(Some(backoff)).await {
                return;
            }
            backoff = (backoff * 2).min(self.options.backoff_max);
        }
    }

    async fn open(&self) -> Result<Modem, ModemError> {
        let options = ModemOptions {
            name: self.config.name.clone(),
            profile: self.config.profile,
            timeouts: self.options.timeouts,
            reassembly_timeout: self.options.reassembly_timeout,
        };
        Modem::open(
            &self.config.port,
            self.config.baud,
            self.config.notify_port.as_deref(),
            options,
        )
        .await
    }

    async fn drive(&mut self, modem: &mut Modem) -> Exit {
        let pin = self.config.pin.as_ref().map(|p| p.expose().to_owned());
        if let Err(error) = modem.init(pin.as_deref()).await {
            return Exit::Lost(error);
        }
        if let Err(error) = self.become_ready(modem).await {
            return Exit::Lost(error);
        }
        let start = tokio::time::Instant::now();
        let mut sweep = interval_at(start + self.options.sweep_every, self.options.sweep_every);
        sweep.set_missed_tick_behavior(MissedTickBehavior::Delay);
        let mut status = interval_at(start + self.options.status_every, self.options.status_every);
        status.set_missed_tick_behavior(MissedTickBehavior::Delay);
        loop {
            let result = tokio::select! {
                request = self.requests.recv() => match request {
                    None | Some(Request::Shutdown) => return Exit::Shutdown,
                    Some(request) => self.handle(modem, request).await,
                },
                urc = modem.next_urc() => match modem.handle_urc(urc).await {
                    Ok(events) => {
                        self.dispatch(events);
                        Ok(())
                    }
                    Err(error) => Err(error),
                },
                _ = sweep.tick() => self.sweep(modem).await,
                _ = status.tick() => self.report_status(modem).await,
            };
            let Err(error) = result else { continue };
            if refused(&error) {
                // The modem said no to one thing (a full SIM, a storage it lacks); the
                // rest still works and the next sweep tries again.
                tracing::warn!(%error, "the modem refused a command; carrying on");
                continue;
            }
            if !error.needs_reset() {
                return Exit::Lost(error);
            }
            tracing::warn!(%error, "the modem stopped answering; resetting it");
            self.set_state(ModemState::Unavailable {
                reason: format!("resetting after: {error}"),
            });
            if let Err(error) = modem.reset().await {
                return Exit::Lost(error);
            }
            if let Err(error) = self.become_ready(modem).await {
                return Exit::Lost(error);
            }
        }
    }

    /// After init or reset: deletions that waited, a sweep, a status report.
    async fn become_ready(&mut self, modem: &mut Modem) -> Result<(), ModemError> {
        carry_on(self.sweep(modem).await)?;
        carry_on(self.report_status(modem).await)?;
        self.set_state(ModemState::Ready);
        self.reached_ready = true;
        tracing::info!("modem ready");
        Ok(())
    }

    /// Deletions that had to wait, then everything stored that is not on its way yet.
    async fn sweep(&mut self, modem: &mut Modem) -> Result<(), ModemError> {
        if !self.deferred_acks.is_empty() {
            let slots = std::mem::take(&mut self.deferred_acks);
            if let Err(error) = modem.acknowledge(&slots).await {
                self.deferred_acks = slots;
                return Err(error);
            }
            tracing::info!(sms.parts = slots.len(), "deleted SMS whose deletion had to wait");
        }
        let events = modem.sweep().await?;
        self.dispatch(events);
        Ok(())
    }

    async fn report_status(&mut self, modem: &mut Modem) -> Result<(), ModemError> {
        let signal = match modem.signal().await {
            Err(error) if refused(&error) => Signal::from_rssi(99),
            other => other?,
        };
        let registration = modem.registration().await?;
        let operator = match modem.operator().await {
            Err(error) if refused(&error) => None,
            other => other?,
        };
        let status = Status {
            signal,
            registration,
            operator,
        };
        tracing::debug!(
            modem.signal_dbm = ?status.signal.dbm,
            modem.registration = ?status.registration,
            "modem status"
        );
        let _ = self.events.send(Event::Status(status));
        Ok(())
    }

    async fn handle(&mut self, modem: &mut Modem, request: Request) -> Result<(), ModemError> {
        match request {
            Request::Send {
                message_id,
                to,
                text,
                reply,
            } => self.send(modem, message_id, &to, &text, reply).await,
            Request::Ack { slots, reply } => match modem.acknowledge(&slots).await {
                Ok(()) => {
                    let _ = reply.send(Ok(()));
                    Ok(())
                }
                Err(error) => {
                    let _ = reply.send(Err(AckError::Deferred(error.to_string())));
                    self.deferred_acks.extend(slots);
                    Err(error)
                }
            },
            Request::Release { slots } => {
                modem.release(&slots);
                Ok(())
            }
            Request::Shutdown => Ok(()),
        }
    }

    async fn send(
        &mut self,
        modem: &mut Modem,
        message_id: String,
        to: &str,
        text: &str,
        reply: oneshot::Sender<SendOutcome>,
    ) -> Result<(), ModemError> {
        let result = match modem.send(to, text).await {
            Err(error) if error.needs_reset() => {
                // Reset here rather than in the loop: a send that never reached the modem
                // is tried once more on the modem brought back.
                self.outbox.record(&message_id, &error.sent);
                if let Err(reset_error) = modem.reset().await {
                    let _ = reply.send(failed(&error));
                    return Err(reset_error);
                }
                if !error.nothing_sent() {
                    let _ = reply.send(failed(&error));
                    return Ok(());
                }
                tracing::info!("sending again after the reset");
                modem.send(to, text).await
            }
            other => other,
        };
        match result {
            Ok(refs) => {
                self.outbox.record(&message_id, &refs);
                let _ = reply.send(SendOutcome::Sent { refs });
                Ok(())
            }
            Err(error) => {
                self.outbox.record(&message_id, &error.sent);
                let _ = reply.send(failed(&error));
                if error.is_disconnected() {
                    Err(AtError::Closed(error.to_string()).into())
                } else if error.needs_reset() {
                    Err(ModemError::protocol("AT+CMGS", error.to_string()))
                } else {
                    Ok(())
                }
            }
        }
    }

    fn dispatch(&mut self, events: Vec<ModemEvent>) {
        for event in events {
            let event = match event {
                ModemEvent::Incoming(sms) => {
                    tracing::info!(sms.parts = sms.slots.len(), "received an SMS");
                    Event::Incoming(Incoming {
                        text: sms.text(),
                        from: sms.from,
                        timestamp: sms.timestamp,
                        note: sms.note,
                        ack: Ack {
                            slots: sms.slots,
                            requests: self.request_tx.upgrade(),
                        },
                    })
                }
                ModemEvent::StatusReport { mr, status, .. } => {
                    let message_id = self.outbox.lookup(mr);
                    match status {
                        DeliveryStatus::Delivered(_) => {
                            self.outbox.forget(mr);
                            tracing::info!(sms.mr = mr, "delivered");
                            Event::Delivered { mr, message_id }
                        }
                        DeliveryStatus::TemporaryFailure(code) => {
                            tracing::debug!(sms.mr = mr, sms.status = code, "the network is still trying");
                            continue;
                        }
                        DeliveryStatus::PermanentFailure(code) => {
                            self.outbox.forget(mr);
                            let reason = describe_status(code);
                            tracing::info!(sms.mr = mr, sms.status = code, %reason, "not delivered");
                            Event::Failed {
                                mr,
                                message_id,
                                reason,
                            }
                        }
                    }
                }
            };
            let _ = self.events.send(event);
        }
    }

    /// While the modem is away: sends fail at once (the server may use another modem),
    /// deletions wait, released SMS are released. Returns `true` on shutdown. `None` waits
    /// for shutdown only.
    async fn serve_while_away(&mut self, wait: Option<Duration>) -> bool {
        let deadline = wait.map(|w| tokio::time::Instant::now() + w);
        loop {
            let request = match deadline {
                Some(deadline) => tokio::select! {
                    request = self.requests.recv() => request,
                    () = tokio::time::sleep_until(deadline) => return false,
                },
                None => self.requests.recv().await,
            };
            let reason = match &*self.state.borrow() {
                ModemState::Stopped { reason } | ModemState::Unavailable { reason } => reason.clone(),
                _ => "not ready".to_owned(),
            };
            match request {
                None | Some(Request::Shutdown) => return true,
                Some(Request::Send { reply, .. }) => {
                    let _ = reply.send(SendOutcome::Failed {
                        reason: format!("modem {} is unavailable: {reason}", self.config.name),
                        permanent: false,
                        refs: Vec::new(),
                        uncertain: false,
                    });
                }
                Some(Request::Ack { slots, reply }) => {
                    self.deferred_acks.extend(slots);
                    let _ = reply.send(Err(AckError::Deferred(format!(
                        "modem {} is unavailable: {reason}",
                        self.config.name
                    ))));
                }
                Some(Request::Release { slots }) => self.inbox.release(&slots),
            }
        }
    }

    fn set_state(&self, state: ModemState) {
        self.state.send_replace(state);
    }
}

/// The modem answered an error to one command: not a reason to reset or reconnect.
fn refused(error: &ModemError) -> bool {
    matches!(error, ModemError::At(AtError::Failed { .. }))
}

/// A refusal is logged and passed over; anything else stands.
fn carry_on(result: Result<(), ModemError>) -> Result<(), ModemError> {
    match result {
        Err(error) if refused(&error) => {
            tracing::warn!(%error, "the modem refused a command; carrying on");
            Ok(())
        }
        other => other,
    }
}

fn failed(error: &crate::modem::SendError) -> SendOutcome {
    SendOutcome::Failed {
        reason: error.to_string(),
        permanent: error.is_permanent(),
        refs: error.sent.clone(),
        uncertain: error.uncertain(),
    }
}

/// TP-ST values of TS 23.040 §9.2.3.15 for a message that will not be delivered.
fn describe_status(code: u8) -> String {
    let text = match code {
        0x40 => "remote procedure error",
        0x41 => "incompatible destination",
        0x42 => "connection rejected by the recipient",
        0x43 => "not obtainable",
        0x44 | 0x64 => "quality of service not available",
        0x45 => "no interworking available",
        0x46 => "validity period expired",
        0x47 => "deleted by the sender",
        0x48 => "deleted by the service centre",
        0x49 => "message does not exist",
        0x60 => "congestion",
        0x61 => "recipient busy",
        0x62 => "no response from the recipient",
        0x63 => "service rejected",
        0x65 => "error in the recipient's phone",
        _ => "failed",
    };
    format!("{text} (status 0x{code:02X})")
}

/// Message references of sent parts → the server's message id.
#[derive(Debug, Default)]
struct Outbox {
    refs: HashMap<u8, (String, Instant)>,
}

impl Outbox {
    fn record(&mut self, message_id: &str, refs: &[u8]) {
        let now = Instant::now();
        self.refs
            .retain(|_, (_, at)| now.saturating_duration_since(*at) < OUTBOX_TTL);
        for &mr in refs {
            if let Some((old, _)) = self.refs.insert(mr, (message_id.to_owned(), now))
                && old != message_id
            {
                tracing::debug!(
                    sms.mr = mr,
                    "message reference reused before its status report came"
                );
            }
        }
    }

    fn lookup(&self, mr: u8) -> Option<String> {
        self.refs.get(&mr).map(|(id, _)| id.clone())
    }

    fn forget(&mut self, mr: u8) {
        self.refs.remove(&mr);
    }
}
