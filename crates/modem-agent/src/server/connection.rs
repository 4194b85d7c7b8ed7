//! One modem's connection to Ender: takes the messages the server assigns, sends each
//! through the modem at most once (the journal remembers), and queues what happened in
//! the outbox, which drains to the server in the background. Status reports and received
//! SMS come in from the modem side through [`Connection::delivered`],
//! [`Connection::failed_report`] and [`Connection::incoming`].

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, FixedOffset};
use futures::StreamExt;
use tokio_util::sync::CancellationToken;

use super::journal::{Journal, Outcome, PartOutcome};
use super::{Assigned, Backoff, Client, Incoming, MessageId, Outbox, Report, ServerError, Status};

/// The modem side, as the connection needs it.
pub trait ModemLink: Send + Sync {
    /// Sends `text` to `to` and returns the message references of its parts, in order.
    fn send(&self, to: &str, text: &str) -> impl Future<Output = Result<Vec<u8>, SendFailure>> + Send;
}

impl<T: ModemLink> ModemLink for Arc<T> {
    fn send(&self, to: &str, text: &str) -> impl Future<Output = Result<Vec<u8>, SendFailure>> + Send {
        (**self).send(to, text)
    }
}

/// Why the modem could not send a message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SendFailure {
    /// What to tell Ender (and the user), e.g. `the network refused it: +CMS ERROR: 38`.
    pub reason: String,
    /// Trying again cannot help (bad number, refused content).
    pub permanent: bool,
    /// References of the parts that did go out before the failure.
    pub sent: Vec<u8>,
    /// The failing part may have gone out anyway (the modem stopped answering after
    /// taking it).
    pub uncertain: bool,
}

impl SendFailure {
    /// A failure before anything went out.
    pub fn new(reason: impl Into<String>, permanent: bool) -> Self {
        Self {
            reason: reason.into(),
            permanent,
            sent: Vec::new(),
            uncertain: false,
        }
    }

    /// Whether the recipient may have got something: then it is never sent again.
    pub fn may_have_gone_out(&self) -> bool {
        self.uncertain || !self.sent.is_empty()
    }
}

/// Why the connection stopped.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConnectionError {
    #[error(
        "modem {modem:?}: Ender refused its device key (HTTP {status}: {message}). The `key` \
         for this modem is wrong or was revoked: give it the device's current key from Ender and \
         restart the agent."
    )]
    Unauthorized {
        modem: String,
        status: u16,
        message: String,
    },
    #[error("modem {modem:?}: Ender is unreachable ({reason})")]
    Unreachable { modem: String, reason: String },
}

/// How many times an incoming SMS is posted before [`Connection::incoming`] gives up
/// (the SIM keeps it for a later try).
const INCOMING_ATTEMPTS: u32 = 4;

pub struct Connection<L> {
    modem: String,
    client: Client,
    journal: Journal,
    outbox: Outbox,
    link: L,
    backoff: Backoff,
}

impl<L: ModemLink> Connection<L> {
    /// `modem` is the modem's name, for logs and errors.
    pub fn new(modem: impl Into<String>, client: Client, journal: Journal, outbox: Outbox, link: L) -> Self {
        Self {
            modem: modem.into(),
            client,
            journal,
            outbox,
            link,
            backoff: Backoff::default(),
        }
    }

    /// Replaces the reconnect and retry delays (the default: 1 s doubling to 60 s).
    pub fn with_backoff(mut self, backoff: Backoff) -> Self {
        self.backoff = backoff;
        self
    }

    pub fn journal(&self) -> &Journal {
        &self.journal
    }

    pub fn outbox(&self) -> &Outbox {
        &self.outbox
    }

    /// Keeps the event stream connected (reconnecting with backoff), sends what it
    /// pushes, and drains the outbox, until `shutdown` (Ok; a message being sent is
    /// finished first) or the server refuses the key (Err).
    pub async fn run(&self, shutdown: CancellationToken) -> Result<(), ConnectionError> {
        tokio::select! {
            r = self.receive(&shutdown) => r,
            r = self.drain() => r,
        }
    }

    /// A status report said the part with reference `mr` was delivered.
    pub async fn delivered(&self, mr: u8) {
        self.part(mr, None).await;
    }

    /// A status report said the part with reference `mr` will not be delivered.
    pub async fn failed_report(&self, mr: u8, reason: &str) {
        self.part(mr, Some(reason)).await;
    }

    /// Posts a received SMS, trying a few times. Ok means the SIM copy can go: the server
    /// has it, or refused it for good (logged). `Unreachable` means keep it and try later.
    pub async fn incoming(
        &self,
        from: &str,
        body: &str,
        timestamp: DateTime<FixedOffset>,
    ) -> Result<(), ConnectionError> {
        let sms = Incoming::new(from, body, timestamp);
        let mut backoff = self.backoff.clone();
        let mut attempt = 1;
        loop {
            match self.client.incoming(&sms).await {
                Ok(()) => return Ok(()),
                Err(ServerError::Unauthorized { status, message }) => {
                    return Err(self.unauthorized(status, message));
                }
                Err(ServerError::Rejected { status, message }) => {
                    tracing::error!(
                        modem.name = %self.modem, http.status = status, error = %message,
                        "Ender refused a received SMS; dropping it"
                    );
                    return Ok(());
                }
                Err(ServerError::Retry { reason, .. }) if attempt >= INCOMING_ATTEMPTS => {
                    return Err(ConnectionError::Unreachable {
                        modem: self.modem.clone(),
                        reason,
                    });
                }
                Err(ServerError::Retry { reason, after }) => {
                    tracing::debug!(modem.name = %self.modem, error = %reason, attempt, "posting a received SMS failed; retrying");
                    tokio::time::sleep(delay(&mut backoff, after)).await;
                    attempt += 1;
                }
            }
        }
    }

    /// Queues a received SMS on disk, to be posted with the reports: for an SMS the modem
    /// did not store, which would otherwise be lost while Ender is away. When the disk
    /// refuses, it is posted directly instead.
    pub async fn queue_incoming(
        &self,
        from: &str,
        body: &str,
        timestamp: DateTime<FixedOffset>,
    ) -> Result<(), ConnectionError> {
        let sms = Incoming::new(from, body, timestamp);
        match self.outbox.append_incoming(&sms).await {
            Ok(()) => Ok(()),
            Err(e) => {
                tracing::error!(
                    modem.name = %self.modem, error = %e,
                    "cannot queue a received SMS on disk; posting it directly"
                );
                self.incoming(from, body, timestamp).await
            }
        }
    }

    /// Posts the modem's radio status. Only a refused key is an error: a status that
    /// does not get through is replaced by the next one.
    pub async fn status(&self, status: &Status) -> Result<(), ConnectionError> {
        match self.client.status(status).await {
            Err(ServerError::Unauthorized { status, message }) => Err(self.unauthorized(status, message)),
            Err(e) => {
                tracing::debug!(modem.name = %self.modem, error = %e, "could not report the modem's status");
                Ok(())
            }
            Ok(()) => Ok(()),
        }
    }

    fn unauthorized(&self, status: u16, message: String) -> ConnectionError {
        ConnectionError::Unauthorized {
            modem: self.modem.clone(),
            status,
            message,
        }
    }

    /// The event stream, reconnected until shutdown.
    async fn receive(&self, shutdown: &CancellationToken) -> Result<(), ConnectionError> {
        let mut backoff = self.backoff.clone();
        loop {
            let mut after = None;
            match self.client.events().await {
                Ok(events) => {
                    tracing::info!(modem.name = %self.modem, "connected to Ender");
                    backoff.connected(Instant::now());
                    self.outbox.wake();
                    let mut events = std::pin::pin!(events);
                    loop {
                        let next = tokio::select! {
                            () = shutdown.cancelled() => return Ok(()),
                            next = events.next() => next,
                        };
                        match next {
                            Some(Ok(assigned)) => self.handle(assigned).await,
                            Some(Err(e)) => {
                                tracing::warn!(modem.name = %self.modem, error = %e, "lost the connection to Ender; reconnecting");
                                break;
                            }
                            None => {
                                tracing::info!(modem.name = %self.modem, "Ender closed the event stream; reconnecting");
                                break;
                            }
                        }
                    }
                }
                Err(ServerError::Unauthorized { status, message }) => {
                    return Err(self.unauthorized(status, message));
                }
                Err(ServerError::Retry { reason, after: wait }) => {
                    tracing::warn!(modem.name = %self.modem, error = %reason, "cannot reach Ender; retrying");
                    after = wait;
                }
                Err(ServerError::Rejected { status, message }) => tracing::error!(
                    modem.name = %self.modem, http.status = status, error = %message,
                    "Ender refused the event stream (is the server address right?); retrying"
                ),
            }
            tokio::select! {
                () = shutdown.cancelled() => return Ok(()),
                () = tokio::time::sleep(delay(&mut backoff, after)) => {}
            }
        }
    }

    /// Sends one assigned message, unless it was written to the modem before.
    async fn handle(&self, assigned: Assigned) {
        let Assigned {
            message_id: id,
            recipient,
            body,
        } = assigned;
        if let Some(outcome) = self.journal.outcome(&id) {
            if self.outbox.holds(&id) {
                tracing::debug!(modem.name = %self.modem, message.id = %id, "pushed again; already sent and reported");
                return;
            }
            // The server still counts it as in flight and no report waits: the report may
            // have been lost (a crash between modem and outbox). Say it again; repeats
            // change nothing on the server.
            tracing::info!(modem.name = %self.modem, message.id = %id, "pushed again; already written to the modem, so reporting its outcome again");
            self.queue(match outcome {
                Outcome::Sent => Report::sent(id),
                Outcome::Failed(reason) => Report::failed(id, reason),
            })
            .await;
            return;
        }
        match self.link.send(&recipient, &body).await {
            Ok(refs) => {
                tracing::info!(modem.name = %self.modem, message.id = %id, parts = refs.len(), "message sent");
                self.remember(&id, &refs, Outcome::Sent).await;
                self.queue(Report::sent(id)).await;
            }
            Err(failure) => {
                tracing::warn!(
                    modem.name = %self.modem, message.id = %id, permanent = failure.permanent,
                    error = %failure.reason, "the modem could not send a message"
                );
                // When nothing went out, a later push (the server retrying it) may try again.
                if failure.may_have_gone_out() {
                    self.remember(&id, &failure.sent, Outcome::Failed(failure.reason.clone()))
                        .await;
                }
                self.queue(Report::failed(id, failure.reason)).await;
            }
        }
    }

    async fn remember(&self, id: &MessageId, refs: &[u8], outcome: Outcome) {
        if let Err(e) = self.journal.record(id, refs, outcome).await {
            tracing::error!(
                modem.name = %self.modem, message.id = %id, error = %e,
                "cannot write the journal; after a restart this message could be sent twice"
            );
        }
    }

    async fn queue(&self, report: Report) {
        if let Err(e) = self.outbox.append(&report).await {
            tracing::error!(
                modem.name = %self.modem, message.id = %report.message_id, error = %e,
                "cannot queue a report on disk; posting it directly"
            );
            if let Err(e) = self.client.report(&report).await {
                tracing::error!(modem.name = %self.modem, message.id = %report.message_id, error = %e, "a report is lost");
            }
        }
    }

    async fn part(&self, mr: u8, failure: Option<&str>) {
        match self.journal.part(mr, failure.is_none()).await {
            PartOutcome::Finished(id) => {
                tracing::info!(modem.name = %self.modem, message.id = %id, delivered = failure.is_none(), "status report");
                self.queue(match failure {
                    None => Report::delivered(id),
                    Some(reason) => Report::failed(id, reason),
                })
                .await;
            }
            PartOutcome::MoreParts(id) => {
                tracing::debug!(modem.name = %self.modem, message.id = %id, mr, "one part delivered");
            }
            PartOutcome::AlreadyFinished(id) => {
                tracing::debug!(modem.name = %self.modem, message.id = %id, mr, "status report for a finished message");
            }
            PartOutcome::Unknown => {
                tracing::info!(modem.name = %self.modem, mr, "status report for an unknown message reference; ignoring it");
            }
        }
    }

    /// The outbox, drained whenever something is added and retried with backoff while
    /// the server is away.
    async fn drain(&self) -> Result<(), ConnectionError> {
        let mut backoff = self.backoff.clone();
        loop {
            match self.outbox.drain(&self.client).await {
                Ok(_) | Err(ServerError::Rejected { .. }) => {
                    backoff.reset();
                    self.outbox.wait().await;
                }
                Err(ServerError::Unauthorized { status, message }) => {
                    return Err(self.unauthorized(status, message));
                }
                Err(ServerError::Retry { reason, after }) => {
                    tracing::debug!(
                        modem.name = %self.modem, queued = self.outbox.len(), error = %reason,
                        "cannot deliver reports yet; retrying"
                    );
                    tokio::select! {
                        () = tokio::time::sleep(delay(&mut backoff, after)) => {}
                        () = self.outbox.wait() => {}
                    }
                }
            }
        }
    }
}

/// The next backoff delay, or longer if the server asked for it.
fn delay(backoff: &mut Backoff, after: Option<Duration>) -> Duration {
    backoff.next_delay(Instant::now()).max(after.unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use std::collections::VecDeque;
    use std::path::Path;
    use std::sync::Mutex;
    use std::sync::atomic::{AtomicU8, Ordering};

    use super::*;
    use crate::server::fake::{Answer, Fake, Script, capture_logs};

    /// The modem side: records what it was asked to send.
    #[derive(Default)]
    struct Link {
        sent: Mutex<Vec<String>>,
        next_mr: AtomicU8,
        failures: Mutex<VecDeque<SendFailure>>,
    }

    impl ModemLink for Link {
        async fn send(&self, _to: &str, text: &str) -> Result<Vec<u8>, SendFailure> {
            self.sent.lock().unwrap().push(text.to_owned());
            if let Some(f) = self.failures.lock().unwrap().pop_front() {
                return Err(f);
            }
            Ok(vec![self.next_mr.fetch_add(1, Ordering::SeqCst)])
        }
    }

    impl Link {
        fn sent(&self) -> Vec<String> {
            self.sent.lock().unwrap().clone()
        }
    }

    fn quick() -> Backoff {
        Backoff::new(
            Duration::from_millis(10),
            Duration::from_millis(50),
            Duration::from_secs(60),
        )
    }

    async fn connection(fake: &Fake, dir: &Path, link: Arc<Link>) -> Arc<Connection<Arc<Link>>> {
        let journal = Journal::open(dir).await.unwrap();
        let outbox = Outbox::open(dir).await.unwrap();
        Arc::new(Connection::new("dongle-1", fake.client(), journal, outbox, link).with_backoff(quick()))
    }

    fn start(
        conn: &Arc<Connection<Arc<Link>>>,
    ) -> (
        CancellationToken,
        tokio::task::JoinHandle<Result<(), ConnectionError>>,
    ) {
        let shutdown = CancellationToken::new();
        let conn = conn.clone();
        let token = shutdown.clone();
        (shutdown, tokio::spawn(async move { conn.run(token).await }))
    }

    fn count(fake: &Fake, id: &str, status: &str) -> usize {
        fake.reports()
            .iter()
            .filter(|(i, s)| i == id && s == status)
            .count()
    }

    #[tokio::test]
    async fn server_pushes_again_never_reach_the_modem_twice() {
        let fake = Fake::start().await;
        let dir = tempfile::tempdir().unwrap();
        let link = Arc::new(Link::default());
        // Pushed twice on one stream, then again after a reconnect.
        fake.script(Script::pushing(&["m1", "m1"], true));
        fake.script(Script::pushing(&["m1", "m2"], false));
        let conn = connection(&fake, dir.path(), link.clone()).await;
        let (shutdown, task) = start(&conn);
        fake.wait_until("m2 is reported sent", |f| count(f, "m2", "sent") == 1)
            .await;
        assert_eq!(link.sent(), ["text of m1", "text of m2"]);
        assert_eq!(fake.connections(), 2);

        // Status reports map back through the references (m1 got 0, m2 got 1).
        conn.delivered(1).await;
        conn.failed_report(0, "the network gave up").await;
        conn.delivered(0).await;
        fake.wait_until("both status reports arrived", |f| {
            count(f, "m2", "delivered") == 1 && count(f, "m1", "failed") == 1
        })
        .await;
        shutdown.cancel();
        assert_eq!(task.await.unwrap(), Ok(()));
        assert_eq!(count(&fake, "m1", "delivered"), 0);

        // After a restart the server pushes them again: they are not sent again.
        let reports = fake.reports().len();
        fake.script(Script::pushing(&["m1", "m2", "m3"], false));
        let conn = connection(&fake, dir.path(), link.clone()).await;
        let (shutdown, task) = start(&conn);
        fake.wait_until("m3 is reported sent", |f| count(f, "m3", "sent") == 1)
            .await;
        assert_eq!(link.sent(), ["text of m1", "text of m2", "text of m3"]);
        // No report waited, so the known outcomes were said again (the server ignores
        // repeats).
        fake.wait_until("the outcomes were repeated", |f| f.reports().len() == reports + 3)
            .await;
        shutdown.cancel();
        assert_eq!(task.await.unwrap(), Ok(()));
    }

    #[tokio::test]
    async fn server_gets_the_modem_failure_and_only_sure_failures_are_tried_again() {
        let fake = Fake::start().await;
        let dir = tempfile::tempdir().unwrap();
        let link = Arc::new(Link::default());
        link.failures.lock().unwrap().extend([
            SendFailure::new("the network refused it: +CMS ERROR: 38", false),
            SendFailure {
                uncertain: true,
                ..SendFailure::new("the modem stopped answering after taking the PDU", false)
            },
        ]);
        fake.script(Script::pushing(&["m1", "m2"], true));
        fake.script(Script::pushing(&["m1", "m2"], false));
        let conn = connection(&fake, dir.path(), link.clone()).await;
        let (shutdown, task) = start(&conn);
        fake.wait_until("m1 is sent on the second try", |f| count(f, "m1", "sent") == 1)
            .await;
        fake.wait_until("m2's failure is reported", |f| count(f, "m2", "failed") >= 1)
            .await;
        shutdown.cancel();
        assert_eq!(task.await.unwrap(), Ok(()));
        assert_eq!(link.sent(), ["text of m1", "text of m2", "text of m1"]);
        let failed = fake
            .received()
            .into_iter()
            .find(|(_, b, _)| b["message_id"] == "m1" && b["status"] == "failed")
            .unwrap();
        assert_eq!(
            failed.1["error_message"],
            "the network refused it: +CMS ERROR: 38"
        );
    }

    #[tokio::test]
    async fn server_refusing_the_key_stops_the_connection_with_the_modem_name() {
        let fake = Fake::start().await;
        let dir = tempfile::tempdir().unwrap();
        let client = Client::new(fake.url(), secrecy::SecretString::from("dk_revoked")).unwrap();
        let conn = Connection::new(
            "dongle-1",
            client,
            Journal::open(dir.path()).await.unwrap(),
            Outbox::open(dir.path()).await.unwrap(),
            Arc::new(Link::default()),
        )
        .with_backoff(quick());
        let e = conn.run(CancellationToken::new()).await.unwrap_err();
        assert!(matches!(&e, ConnectionError::Unauthorized { status: 401, .. }));
        let text = e.to_string();
        assert!(
            text.contains("\"dongle-1\"") && text.contains("Invalid API key."),
            "{text}"
        );
        assert_eq!(fake.connections(), 0);
    }

    #[tokio::test]
    async fn server_gets_received_sms_after_retries_or_drops_refused_ones() {
        let fake = Fake::start().await;
        let dir = tempfile::tempdir().unwrap();
        let conn = connection(&fake, dir.path(), Arc::new(Link::default())).await;
        let at = DateTime::parse_from_rfc3339("2025-03-01T10:00:00+01:00").unwrap();

        fake.answer(Answer::status(503));
        fake.answer(Answer::status(502));
        assert_eq!(conn.incoming("+15550002", "hello", at).await, Ok(()));
        let received = fake.received();
        assert_eq!(received.len(), 3);
        assert_eq!(received[2].0, "/api/sms/incoming");
        assert_eq!(
            received[2].1,
            serde_json::json!({"from_number": "+15550002", "body": "hello", "timestamp": "2025-03-01T10:00:00+01:00"})
        );

        let (_guard, logs) = capture_logs();
        fake.answer(Answer::status(400).message("Invalid from_number."));
        assert_eq!(conn.incoming("", "hello", at).await, Ok(()));
        assert!(logs.text().contains("Invalid from_number."), "{}", logs.text());

        for _ in 0..INCOMING_ATTEMPTS {
            fake.answer(Answer::status(503));
        }
        assert!(matches!(
            conn.incoming("+15550002", "later", at).await,
            Err(ConnectionError::Unreachable { .. })
        ));
    }

    #[tokio::test]
    async fn server_away_never_loses_a_received_sms_the_modem_did_not_store() {
        let fake = Fake::start().await;
        let dir = tempfile::tempdir().unwrap();
        let at = DateTime::parse_from_rfc3339("2025-03-01T10:00:00+01:00").unwrap();
        let posted = |f: &Fake| {
            f.received()
                .iter()
                .filter(|(path, body, status)| {
                    path == "/api/sms/incoming" && body["body"] == "flash" && *status == 200
                })
                .count()
        };

        // Queued while nothing drains, then the agent restarts: still there.
        let conn = connection(&fake, dir.path(), Arc::new(Link::default())).await;
        assert_eq!(conn.queue_incoming("+15550002", "flash", at).await, Ok(()));
        drop(conn);

        // Ender fails far more often than a direct post would try.
        for _ in 0..INCOMING_ATTEMPTS * 2 {
            fake.answer(Answer::status(503));
        }
        let conn = connection(&fake, dir.path(), Arc::new(Link::default())).await;
        let (shutdown, task) = start(&conn);
        fake.wait_until("the SMS is posted once Ender is back", |f| posted(f) == 1)
            .await;
        assert_eq!(
            fake.received().last().unwrap().1,
            serde_json::json!({"from_number": "+15550002", "body": "flash", "timestamp": "2025-03-01T10:00:00+01:00"})
        );
        shutdown.cancel();
        assert_eq!(task.await.unwrap(), Ok(()));
        let conn = connection(&fake, dir.path(), Arc::new(Link::default())).await;
        assert_eq!(
            conn.outbox().drain(&fake.client()).await,
            Ok(0),
            "posted once only"
        );
    }

    #[tokio::test]
    async fn server_status_reports_the_radio_and_ignores_failures() {
        let fake = Fake::start().await;
        let dir = tempfile::tempdir().unwrap();
        let conn = connection(&fake, dir.path(), Arc::new(Link::default())).await;
        let status = Status::new(Some(-71), "Operator", crate::server::Registration::Roaming);
        fake.answer(Answer::status(500));
        assert_eq!(conn.status(&status).await, Ok(()));
        assert_eq!(conn.status(&status).await, Ok(()));
        let received = fake.received();
        assert_eq!(
            received[1],
            (
                "/api/device/status".to_owned(),
                serde_json::json!({"signal_dbm": -71, "operator": "Operator", "registration": "roaming"}),
                200
            )
        );
    }
}
