//! Reports that must reach Ender even when it is away or the agent restarts: one file per
//! report (`outbox/<seq>.json` in the modem's directory), written durably before the
//! append returns, posted in order, removed once the server took it (or refused it for
//! good). Files that cannot be read are moved aside to `outbox/bad/`.
//!
//! Received SMS that the modem did not store (`+CMT`: no SIM copy to fall back on) are
//! queued here too, and posted to `/api/sms/incoming` in their turn.

use std::collections::HashMap;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};

use tokio::sync::Notify;

use serde::{Deserialize, Serialize};

use super::disk::{self, blocking};
use super::{Client, Incoming, MessageId, Report, ServerError};

/// What one file of the outbox holds. Untagged, so that files written before received SMS
/// were queued here still read as reports.
#[derive(Debug, Serialize, Deserialize)]
#[serde(untagged)]
enum Queued {
    Report(Report),
    Incoming(Incoming),
}

pub struct Outbox {
    dir: PathBuf,
    /// The next sequence number; held across a whole append so files appear in order.
    next: tokio::sync::Mutex<u64>,
    /// How many queued reports each message has.
    held: Arc<Mutex<HashMap<MessageId, usize>>>,
    draining: tokio::sync::Mutex<()>,
    /// Something new to drain: an append, or a [`Outbox::wake`].
    ready: Notify,
}

impl Outbox {
    /// Opens (or creates) the outbox under `modem_dir`, continuing its numbering.
    pub async fn open(modem_dir: &Path) -> io::Result<Self> {
        let dir = modem_dir.join("outbox");
        let scan_dir = dir.clone();
        let (next, held) = blocking(move || scan(&scan_dir)).await?;
        Ok(Self {
            dir,
            next: tokio::sync::Mutex::new(next),
            held: Arc::new(Mutex::new(held)),
            draining: tokio::sync::Mutex::new(()),
            ready: Notify::new(),
        })
    }

    /// Queues `report`; when this returns Ok the report is on disk.
    pub async fn append(&self, report: &Report) -> io::Result<()> {
        let bytes = serde_json::to_vec(report)?;
        self.write(bytes).await?;
        *self.held().entry(report.message_id.clone()).or_default() += 1;
        self.ready.notify_one();
        Ok(())
    }

    /// Queues a received SMS that exists nowhere else (the modem did not store it); when
    /// this returns Ok it is on disk.
    pub async fn append_incoming(&self, sms: &Incoming) -> io::Result<()> {
        let bytes = serde_json::to_vec(sms)?;
        self.write(bytes).await?;
        self.ready.notify_one();
        Ok(())
    }

    async fn write(&self, bytes: Vec<u8>) -> io::Result<()> {
        let mut next = self.next.lock().await;
        let seq = *next;
        // Never reuse a number, even if this write fails half-way.
        *next = seq
            .checked_add(1)
            .ok_or_else(|| io::Error::other("the outbox has run out of file numbers"))?;
        let dir = self.dir.clone();
        blocking(move || disk::write_atomically(&dir, &file_name(seq), &bytes)).await?;
        drop(next);
        Ok(())
    }

    /// Posts the queued reports in order and removes each one the server took or
    /// rejected (a rejection is logged). Stops at the first failure that is not a
    /// rejection: `Retry` (try again later) or `Unauthorized`. Returns how many went.
    pub async fn drain(&self, client: &Client) -> Result<usize, ServerError> {
        let _one_at_a_time = self.draining.lock().await;
        let dir = self.dir.clone();
        let files = blocking(move || list(&dir))
            .await
            .map_err(|e| ServerError::Retry {
                reason: format!("cannot read the outbox: {e}"),
                after: None,
            })?;
        let mut done = 0;
        for path in files {
            let read_path = path.clone();
            let queued = match blocking(move || read(&read_path)).await {
                Ok(Ok(queued)) => queued,
                Ok(Err(reason)) => {
                    self.move_aside(&path, &reason).await;
                    continue;
                }
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                Err(e) => {
                    tracing::error!(file = %path.display(), error = %e, "cannot read a queued report; skipping it");
                    continue;
                }
            };
            match &queued {
                Queued::Report(report) => match client.report(report).await {
                    Ok(()) => {
                        tracing::debug!(message.id = %report.message_id, status = ?report.status, "report delivered to Ender");
                    }
                    Err(ServerError::Rejected { status, message }) => tracing::warn!(
                        message.id = %report.message_id,
                        report = ?report.status,
                        http.status = status,
                        error = %message,
                        "Ender rejected a report; dropping it"
                    ),
                    Err(e) => return Err(e),
                },
                Queued::Incoming(sms) => match client.incoming(sms).await {
                    Ok(()) => tracing::debug!("a queued received SMS was delivered to Ender"),
                    Err(ServerError::Rejected { status, message }) => tracing::error!(
                        http.status = status,
                        error = %message,
                        "Ender refused a received SMS; dropping it"
                    ),
                    Err(e) => return Err(e),
                },
            }
            let remove_path = path.clone();
            if let Err(e) = blocking(move || fs::remove_file(&remove_path)).await {
                tracing::error!(file = %path.display(), error = %e, "cannot remove a delivered report; it will be sent again");
            }
            if let Queued::Report(report) = &queued {
                self.forget(&report.message_id);
            }
            done += 1;
        }
        Ok(done)
    }

    /// Whether a report about `id` is still waiting.
    pub fn holds(&self, id: &MessageId) -> bool {
        self.held().contains_key(id)
    }

    /// How many reports wait.
    pub fn len(&self) -> usize {
        self.held().values().sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Waits until something was appended or [`Outbox::wake`] was called (returns at
    /// once if that happened since the last wait).
    pub async fn wait(&self) {
        self.ready.notified().await;
    }

    /// Ends a [`Outbox::wait`]: the server is back, try now.
    pub fn wake(&self) {
        self.ready.notify_one();
    }

    fn held(&self) -> std::sync::MutexGuard<'_, HashMap<MessageId, usize>> {
        self.held.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn forget(&self, id: &MessageId) {
        let mut held = self.held();
        if let Some(n) = held.get_mut(id) {
            *n -= 1;
            if *n == 0 {
                held.remove(id);
            }
        }
    }

    async fn move_aside(&self, path: &Path, reason: &str) {
        let from = path.to_owned();
        let to = self.dir.join("bad").join(path.file_name().unwrap_or_default());
        let target = to.clone();
        match blocking(move || fs::rename(&from, &target)).await {
            Ok(()) => tracing::warn!(
                file = %to.display(), error = reason,
                "a queued report cannot be read; moved it aside"
            ),
            Err(e) => {
                tracing::error!(file = %path.display(), error = %e, "cannot move an unreadable report aside; deleting it");
                let path = path.to_owned();
                let _ = blocking(move || fs::remove_file(path)).await;
            }
        }
    }
}

fn file_name(seq: u64) -> String {
    format!("{seq:020}.json")
}

fn parse_name(name: &str) -> Option<u64> {
    let digits = name.strip_suffix(".json")?;
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// The queued files in order.
fn list(dir: &Path) -> io::Result<Vec<PathBuf>> {
    let mut files: Vec<(u64, PathBuf)> = Vec::new();
    for entry in fs::read_dir(dir)? {
        let entry = entry?;
        if let Some(seq) = entry.file_name().to_str().and_then(parse_name) {
            files.push((seq, entry.path()));
        }
    }
    files.sort();
    Ok(files.into_iter().map(|(_, p)| p).collect())
}

/// Outer error: the file could not be read; inner: it is not a report.
fn read(path: &Path) -> io::Result<Result<Queued, String>> {
    let bytes = fs::read(path)?;
    Ok(serde_json::from_slice(&bytes).map_err(|e| e.to_string()))
}

/// Prepares the directory: removes interrupted writes, moves unreadable files aside, and
/// finds the next number (after every file, including those moved aside) and what waits.
fn scan(dir: &Path) -> io::Result<(u64, HashMap<MessageId, usize>)> {
    let bad = dir.join("bad");
    fs::create_dir_all(&bad)?;
    let mut next = 0;
    for entry in fs::read_dir(&bad)? {
        if let Some(seq) = entry?.file_name().to_str().and_then(parse_name) {
            next = next.max(seq.saturating_add(1));
        }
    }
    let mut held = HashMap::new();
    for entry in fs::read_dir(dir)? {
        let entry = entry?;
        let Some(name) = entry.file_name().to_str().map(str::to_owned) else {
            continue;
        };
        if disk::is_temporary(&name) {
            fs::remove_file(entry.path())?;
            continue;
        }
        let Some(seq) = parse_name(&name) else {
            continue;
        };
        next = next.max(seq.saturating_add(1));
        match read(&entry.path())? {
            Ok(Queued::Report(report)) => *held.entry(report.message_id).or_default() += 1,
            Ok(Queued::Incoming(_)) => {}
            Err(reason) => {
                fs::rename(entry.path(), bad.join(&name))?;
                tracing::warn!(file = %bad.join(&name).display(), error = reason, "a queued report cannot be read; moved it aside");
            }
        }
    }
    Ok((next, held))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::server::fake::{Answer, Fake, capture_logs};

    fn report(id: &str) -> Report {
        Report::sent(MessageId::new(id))
    }

    fn ids(fake: &Fake) -> Vec<String> {
        fake.reports().into_iter().map(|(id, _)| id).collect()
    }

    #[tokio::test]
    async fn server_outbox_survives_a_restart_and_posts_in_order_exactly_once() {
        let dir = tempfile::tempdir().unwrap();
        let outbox = Outbox::open(dir.path()).await.unwrap();
        for id in ["m1", "m2", "m3"] {
            outbox.append(&report(id)).await.unwrap();
        }
        outbox
            .append(&Report::delivered(MessageId::new("m1")))
            .await
            .unwrap();
        drop(outbox);

        // A half-written file from a crash is not a report.
        std::fs::write(dir.path().join("outbox/.00000000000000000009.json.tmp"), b"{").unwrap();
        let outbox = Outbox::open(dir.path()).await.unwrap();
        assert_eq!(outbox.len(), 4);
        assert!(outbox.holds(&MessageId::new("m1")));
        outbox.append(&report("m4")).await.unwrap();

        let fake = Fake::start().await;
        assert_eq!(outbox.drain(&fake.client()).await, Ok(5));
        assert_eq!(ids(&fake), ["m1", "m2", "m3", "m1", "m4"]);
        assert_eq!(fake.reports()[3].1, "delivered");
        assert!(outbox.is_empty() && !outbox.holds(&MessageId::new("m1")));

        assert_eq!(outbox.drain(&fake.client()).await, Ok(0));
        let outbox = Outbox::open(dir.path()).await.unwrap();
        assert_eq!(outbox.drain(&fake.client()).await, Ok(0));
        assert_eq!(fake.reports().len(), 5);
    }

    #[tokio::test]
    async fn server_down_loses_nothing_and_the_outbox_drains_when_it_is_back() {
        let dir = tempfile::tempdir().unwrap();
        let outbox = Outbox::open(dir.path()).await.unwrap();
        outbox.append(&report("m1")).await.unwrap();
        outbox.append(&report("m2")).await.unwrap();

        // Nothing listens on this port.
        let addr = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap();
        let url = url::Url::parse(&format!("http://{addr}/")).unwrap();
        let client = Client::new(url, Fake::device_key()).unwrap();
        let e = outbox.drain(&client).await;
        assert!(
            matches!(&e, Err(ServerError::Retry { reason, .. }) if reason.contains("connect")),
            "{e:?}"
        );
        assert_eq!(outbox.len(), 2);

        let fake = Fake::start_on(addr).await;
        assert_eq!(outbox.drain(&client).await, Ok(2));
        assert_eq!(ids(&fake), ["m1", "m2"]);
    }

    #[tokio::test]
    async fn server_errors_keep_the_report_and_rejections_drop_it() {
        let dir = tempfile::tempdir().unwrap();
        let outbox = Outbox::open(dir.path()).await.unwrap();
        for id in ["m1", "m2", "m3"] {
            outbox.append(&report(id)).await.unwrap();
        }
        let fake = Fake::start().await;
        let (_guard, logs) = capture_logs();

        // 503: stop and keep everything.
        fake.answer(Answer::status(503));
        assert!(matches!(
            outbox.drain(&fake.client()).await,
            Err(ServerError::Retry { .. })
        ));
        assert_eq!(outbox.len(), 3);

        // Then m1 is refused (400), the others go.
        fake.answer(Answer::status(400).message("Invalid status: must be sent, delivered, or failed."));
        assert_eq!(outbox.drain(&fake.client()).await, Ok(3));
        assert!(outbox.is_empty());
        assert_eq!(ids(&fake), ["m1", "m1", "m2", "m3"]);
        let logs = logs.text();
        assert!(
            logs.contains("Ender rejected a report; dropping it") && logs.contains("Invalid status"),
            "{logs}"
        );
        assert_eq!(outbox.drain(&fake.client()).await, Ok(0));
        assert_eq!(fake.reports().len(), 4);
    }

    #[tokio::test]
    async fn server_refusing_the_key_stops_the_drain_and_keeps_the_reports() {
        let dir = tempfile::tempdir().unwrap();
        let outbox = Outbox::open(dir.path()).await.unwrap();
        outbox.append(&report("m1")).await.unwrap();
        let fake = Fake::start().await;
        fake.answer(Answer::status(401).message("Invalid API key."));
        assert!(matches!(
            outbox.drain(&fake.client()).await,
            Err(ServerError::Unauthorized { status: 401, .. })
        ));
        assert_eq!(outbox.len(), 1);
    }

    #[tokio::test]
    async fn server_outbox_posts_queued_sms_in_turn_with_the_reports() {
        let dir = tempfile::tempdir().unwrap();
        let outbox = Outbox::open(dir.path()).await.unwrap();
        outbox.append(&report("m1")).await.unwrap();
        let sms = Incoming {
            from_number: "+15550002".into(),
            body: "hi".into(),
            timestamp: chrono::DateTime::parse_from_rfc3339("2025-03-01T10:00:00+01:00").unwrap(),
        };
        outbox.append_incoming(&sms).await.unwrap();
        outbox.append(&report("m2")).await.unwrap();
        drop(outbox);
        let outbox = Outbox::open(dir.path()).await.unwrap();
        assert_eq!(outbox.len(), 2, "reports only");

        let fake = Fake::start().await;
        assert_eq!(outbox.drain(&fake.client()).await, Ok(3));
        let paths: Vec<String> = fake.received().into_iter().map(|(p, _, _)| p).collect();
        assert_eq!(paths, ["/api/sms/report", "/api/sms/incoming", "/api/sms/report"]);
        assert_eq!(fake.received()[1].1["body"], "hi");
        assert_eq!(outbox.drain(&fake.client()).await, Ok(0));
    }

    #[tokio::test]
    async fn server_outbox_survives_a_file_numbered_at_the_end_of_the_range() {
        let dir = tempfile::tempdir().unwrap();
        Outbox::open(dir.path()).await.unwrap();
        let last = dir.path().join("outbox").join(file_name(u64::MAX));
        std::fs::write(&last, serde_json::to_vec(&report("m1")).unwrap()).unwrap();
        let outbox = Outbox::open(dir.path()).await.unwrap();
        assert!(outbox.append(&report("m2")).await.is_err());
        assert!(last.exists(), "the queued report is not overwritten");
    }

    #[tokio::test]
    async fn server_outbox_moves_corrupt_files_aside() {
        let dir = tempfile::tempdir().unwrap();
        let outbox = Outbox::open(dir.path()).await.unwrap();
        outbox.append(&report("m1")).await.unwrap();
        outbox.append(&report("m2")).await.unwrap();
        let first = dir.path().join("outbox").join(file_name(0));
        std::fs::write(&first, b"{\"message_id\": \"m1\", \"sta").unwrap();

        // While running: moved aside during the drain, the rest still goes.
        let fake = Fake::start().await;
        assert_eq!(outbox.drain(&fake.client()).await, Ok(1));
        assert_eq!(ids(&fake), ["m2"]);
        assert!(dir.path().join("outbox/bad").join(file_name(0)).exists());
        assert!(!first.exists());

        // At start: moved aside, and its number is not reused.
        std::fs::write(dir.path().join("outbox").join(file_name(5)), b"not json").unwrap();
        let outbox = Outbox::open(dir.path()).await.unwrap();
        assert!(dir.path().join("outbox/bad").join(file_name(5)).exists());
        assert!(outbox.is_empty());
        outbox
            .append(&Report::failed(MessageId::new("m3"), "x"))
            .await
            .unwrap();
        assert!(dir.path().join("outbox").join(file_name(6)).exists());
        assert_eq!(outbox.drain(&fake.client()).await, Ok(1));
        assert_eq!(
            fake.reports().last().map(|r| r.1.clone()),
            Some("failed".to_owned())
        );
    }
}
