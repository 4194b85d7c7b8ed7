//! What was handed to the modem (`journal.jsonl` in the modem's directory), so that a
//! message pushed again — after a reconnect or an agent restart — never goes to the
//! modem twice, and so that a status report's message reference maps back to its
//! message. Append-only JSON lines, fsynced; loaded at start, pruned of entries older
//! than a few days, and compacted when it grew well past what it holds.

use std::collections::HashMap;
use std::fs::{self, File, OpenOptions};
use std::io::{self, BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use chrono::{DateTime, TimeDelta, Utc};
use serde::{Deserialize, Serialize};

use super::MessageId;
use super::disk::{self, blocking};

const FILE: &str = "journal.jsonl";

/// How long an entry is kept: far longer than the server keeps a message in flight, and
/// than a network holds a status report back.
pub const KEEP_FOR: TimeDelta = TimeDelta::days(3);

/// What the modem said when the message was written to it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Sent,
    /// It failed after (part of) it may have gone out.
    Failed(String),
}

/// What a status report for one part means for its message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PartOutcome {
    /// No message has this reference (an old one, pruned, or not ours).
    Unknown,
    /// Delivered, but other parts are still to be delivered.
    MoreParts(MessageId),
    /// The message is now delivered (every part) or failed (this part): report it.
    Finished(MessageId),
    /// The message's final state was already reported.
    AlreadyFinished(MessageId),
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
enum Line {
    Written {
        id: MessageId,
        refs: Vec<u8>,
        at: DateTime<Utc>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        failed: Option<String>,
    },
    Delivered {
        id: MessageId,
        mr: u8,
    },
    Finished {
        id: MessageId,
    },
}

#[derive(Debug, Clone)]
struct Entry {
    /// Order of writing: the later of two messages owns a reused reference.
    seq: u64,
    at: DateTime<Utc>,
    refs: Vec<u8>,
    delivered: Vec<u8>,
    outcome: Outcome,
    finished: bool,
}

#[derive(Debug)]
struct State {
    dir: PathBuf,
    file: File,
    entries: HashMap<MessageId, Entry>,
    by_ref: HashMap<u8, MessageId>,
    next_seq: u64,
    lines: usize,
    lines_after_compaction: usize,
}

#[derive(Debug, Clone)]
pub struct Journal {
    state: Arc<Mutex<State>>,
}

impl Journal {
    /// Loads (or creates) the journal in `modem_dir`, dropping entries older than
    /// [`KEEP_FOR`]. A torn last line (a crash mid-write) is skipped.
    pub async fn open(modem_dir: &Path) -> io::Result<Self> {
        let dir = modem_dir.to_owned();
        let state = blocking(move || State::load(dir)).await?;
        Ok(Self {
            state: Arc::new(Mutex::new(state)),
        })
    }

    /// How the message went when it was written to the modem, if it was.
    pub fn outcome(&self, id: &MessageId) -> Option<Outcome> {
        self.lock().entries.get(id).map(|e| e.outcome.clone())
    }

    /// The message whose (most recent) part got reference `mr`.
    pub fn message_for(&self, mr: u8) -> Option<MessageId> {
        self.lock().by_ref.get(&mr).cloned()
    }

    pub fn len(&self) -> usize {
        self.lock().entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Records that `id` was written to the modem, with its parts' references. Known in
    /// memory at once, even if the write to disk fails.
    pub async fn record(&self, id: &MessageId, refs: &[u8], outcome: Outcome) -> io::Result<()> {
        let line = Line::Written {
            id: id.clone(),
            refs: refs.to_vec(),
            at: Utc::now(),
            failed: match outcome {
                Outcome::Sent => None,
                Outcome::Failed(reason) => Some(reason),
            },
        };
        let state = self.state.clone();
        blocking(move || {
            let mut state = lock(&state);
            state.apply(&line);
            state.append(&[line])
        })
        .await
    }

    /// A status report for reference `mr`: `delivered`, or failed. The answer holds even
    /// if writing it down failed (that is logged).
    pub async fn part(&self, mr: u8, delivered: bool) -> PartOutcome {
        let state = self.state.clone();
        let outcome = blocking(move || {
            let mut state = lock(&state);
            let Some(id) = state.by_ref.get(&mr).cloned() else {
                return Ok((PartOutcome::Unknown, Ok(())));
            };
            let Some(entry) = state.entries.get(&id) else {
                return Ok((PartOutcome::Unknown, Ok(())));
            };
            if entry.finished {
                return Ok((PartOutcome::AlreadyFinished(id), Ok(())));
            }
            let mut lines = Vec::new();
            if delivered {
                lines.push(Line::Delivered { id: id.clone(), mr });
            }
            let complete = !delivered || entry.refs.iter().all(|r| *r == mr || entry.delivered.contains(r));
            if complete {
                lines.push(Line::Finished { id: id.clone() });
            }
            for line in &lines {
                state.apply(line);
            }
            let written = state.append(&lines);
            Ok((
                if complete {
                    PartOutcome::Finished(id)
                } else {
                    PartOutcome::MoreParts(id)
                },
                written,
            ))
        })
        .await;
        match outcome {
            Ok((outcome, Ok(()))) => outcome,
            Ok((outcome, Err(e))) => {
                tracing::error!(error = %e, "cannot write the journal; a restart may forget a delivered part");
                outcome
            }
            Err(e) => {
                tracing::error!(error = %e, "cannot update the journal");
                PartOutcome::Unknown
            }
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        lock(&self.state)
    }
}

fn lock(state: &Mutex<State>) -> MutexGuard<'_, State> {
    state.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Compaction happens once the file holds this many lines more than after the last one.
const COMPACT_SLACK: usize = 1000;

impl State {
    fn load(dir: PathBuf) -> io::Result<Self> {
        fs::create_dir_all(&dir)?;
        let path = dir.join(FILE);
        let mut lines = Vec::new();
        let mut torn = 0;
        let existed = path.exists();
        match File::open(&path) {
            Ok(file) => {
                for raw in BufReader::new(file).split(b'\n') {
                    let raw = raw?;
                    if raw.iter().all(u8::is_ascii_whitespace) {
                        continue;
                    }
                    match serde_json::from_slice::<Line>(&raw) {
                        Ok(line) => lines.push(line),
                        Err(_) => torn += 1,
                    }
                }
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
        if torn > 0 {
            tracing::warn!(file = %path.display(), lines = torn, "skipped unreadable journal lines");
        }
        let file = open_append(&path)?;
        if !existed {
            disk::sync_dir(&dir)?;
        }
        let mut state = Self {
            dir,
            file,
            entries: HashMap::new(),
            by_ref: HashMap::new(),
            next_seq: 0,
            lines: lines.len(),
            lines_after_compaction: 0,
        };
        for line in &lines {
            state.apply(line);
        }
        let before = state.entries.len();
        state.prune(Utc::now());
        if torn > 0 || state.entries.len() < before || state.lines > COMPACT_SLACK {
            state.compact()?;
        } else {
            state.lines_after_compaction = state.lines;
        }
        Ok(state)
    }

    fn apply(&mut self, line: &Line) {
        match line {
            Line::Written { id, refs, at, failed } => {
                for r in refs {
                    self.by_ref.insert(*r, id.clone());
                }
                self.entries.insert(
                    id.clone(),
                    Entry {
                        seq: self.next_seq,
                        at: *at,
                        refs: refs.clone(),
                        delivered: Vec::new(),
                        outcome: failed.clone().map_or(Outcome::Sent, Outcome::Failed),
                        // A failure was reported when it was written.
                        finished: failed.is_some(),
                    },
                );
                self.next_seq += 1;
            }
            Line::Delivered { id, mr } => {
                if let Some(e) = self.entries.get_mut(id)
                    && !e.delivered.contains(mr)
                {
                    e.delivered.push(*mr);
                }
            }
            Line::Finished { id } => {
                if let Some(e) = self.entries.get_mut(id) {
                    e.finished = true;
                }
            }
        }
    }

    fn append(&mut self, lines: &[Line]) -> io::Result<()> {
        if lines.is_empty() {
            return Ok(());
        }
        let mut buf = Vec::new();
        for line in lines {
            serde_json::to_writer(&mut buf, line)?;
            buf.push(b'\n');
        }
        self.file.write_all(&buf)?;
        self.file.sync_data()?;
        self.lines += lines.len();
        if self.lines > self.lines_after_compaction + COMPACT_SLACK {
            self.prune(Utc::now());
            self.compact()?;
        }
        Ok(())
    }

    fn prune(&mut self, now: DateTime<Utc>) {
        self.entries.retain(|_, e| now - e.at <= KEEP_FOR);
        let entries = &self.entries;
        self.by_ref.retain(|_, id| entries.contains_key(id));
    }

    /// Rewrites the file with what it holds now, in the order it was written.
    fn compact(&mut self) -> io::Result<()> {
        let mut entries: Vec<_> = self.entries.iter().collect();
        entries.sort_by_key(|(_, e)| e.seq);
        let mut lines = Vec::new();
        for (id, e) in entries {
            let failed = match &e.outcome {
                Outcome::Sent => None,
                Outcome::Failed(reason) => Some(reason.clone()),
            };
            let was_failed = failed.is_some();
            lines.push(Line::Written {
                id: id.clone(),
                refs: e.refs.clone(),
                at: e.at,
                failed,
            });
            lines.extend(e.delivered.iter().map(|mr| Line::Delivered {
                id: id.clone(),
                mr: *mr,
            }));
            if e.finished && !was_failed {
                lines.push(Line::Finished { id: id.clone() });
            }
        }
        let mut buf = Vec::new();
        for line in &lines {
            serde_json::to_writer(&mut buf, line)?;
            buf.push(b'\n');
        }
        disk::write_atomically(&self.dir, FILE, &buf)?;
        self.file = open_append(&self.dir.join(FILE))?;
        self.lines = lines.len();
        self.lines_after_compaction = lines.len();
        Ok(())
    }
}

fn open_append(path: &Path) -> io::Result<File> {
    OpenOptions::new().create(true).append(true).open(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(s: &str) -> MessageId {
        MessageId::new(s)
    }

    #[tokio::test]
    async fn server_journal_remembers_written_messages_across_restarts() {
        let dir = tempfile::tempdir().unwrap();
        let journal = Journal::open(dir.path()).await.unwrap();
        assert_eq!(journal.outcome(&id("m1")), None);
        journal.record(&id("m1"), &[1, 2], Outcome::Sent).await.unwrap();
        journal
            .record(&id("m2"), &[3], Outcome::Failed("no answer after the PDU".into()))
            .await
            .unwrap();
        assert_eq!(journal.outcome(&id("m1")), Some(Outcome::Sent));
        drop(journal);

        // A crash mid-write leaves a torn last line.
        let path = dir.path().join(FILE);
        let mut f = OpenOptions::new().append(true).open(&path).unwrap();
        f.write_all(b"{\"op\":\"written\",\"id\":\"m9\",\"re").unwrap();
        drop(f);

        let journal = Journal::open(dir.path()).await.unwrap();
        assert_eq!(journal.len(), 2);
        assert_eq!(journal.outcome(&id("m1")), Some(Outcome::Sent));
        assert_eq!(
            journal.outcome(&id("m2")),
            Some(Outcome::Failed("no answer after the PDU".into()))
        );
        assert_eq!(journal.message_for(2), Some(id("m1")));
        // Writing continues after the torn line.
        journal.record(&id("m3"), &[4], Outcome::Sent).await.unwrap();
        let journal = Journal::open(dir.path()).await.unwrap();
        assert_eq!(journal.len(), 3);
    }

    #[tokio::test]
    async fn server_journal_maps_references_to_messages_and_waits_for_every_part() {
        let dir = tempfile::tempdir().unwrap();
        let journal = Journal::open(dir.path()).await.unwrap();
        journal
            .record(&id("long"), &[254, 255, 0], Outcome::Sent)
            .await
            .unwrap();
        journal.record(&id("short"), &[1], Outcome::Sent).await.unwrap();

        assert_eq!(journal.part(7, true).await, PartOutcome::Unknown);
        assert_eq!(journal.part(255, true).await, PartOutcome::MoreParts(id("long")));
        assert_eq!(journal.part(255, true).await, PartOutcome::MoreParts(id("long")));
        assert_eq!(journal.part(0, true).await, PartOutcome::MoreParts(id("long")));
        drop(journal);
        let journal = Journal::open(dir.path()).await.unwrap();
        assert_eq!(journal.part(254, true).await, PartOutcome::Finished(id("long")));
        assert_eq!(
            journal.part(254, true).await,
            PartOutcome::AlreadyFinished(id("long"))
        );

        // One failed part fails the message; later reports change nothing.
        assert_eq!(journal.part(1, false).await, PartOutcome::Finished(id("short")));
        assert_eq!(
            journal.part(1, true).await,
            PartOutcome::AlreadyFinished(id("short"))
        );
    }

    #[tokio::test]
    async fn server_journal_gives_a_wrapped_reference_to_the_latest_message() {
        let dir = tempfile::tempdir().unwrap();
        let journal = Journal::open(dir.path()).await.unwrap();
        // 256 single-part messages take references 0…255, then they wrap around.
        for n in 0..=257u16 {
            let mr = (n % 256) as u8;
            journal
                .record(&id(&format!("m{n}")), &[mr], Outcome::Sent)
                .await
                .unwrap();
        }
        assert_eq!(journal.message_for(0), Some(id("m256")));
        assert_eq!(journal.message_for(1), Some(id("m257")));
        assert_eq!(journal.message_for(2), Some(id("m2")));
        drop(journal);
        let journal = Journal::open(dir.path()).await.unwrap();
        assert_eq!(journal.message_for(0), Some(id("m256")));
        assert_eq!(journal.part(1, true).await, PartOutcome::Finished(id("m257")));
        // The older message still counts as written.
        assert_eq!(journal.outcome(&id("m1")), Some(Outcome::Sent));
    }

    #[tokio::test]
    async fn server_journal_prunes_old_entries_and_compacts() {
        let dir = tempfile::tempdir().unwrap();
        let old = (Utc::now() - KEEP_FOR - TimeDelta::hours(1)).to_rfc3339();
        let recent = Utc::now().to_rfc3339();
        let mut text = format!(
            "{{\"op\":\"written\",\"id\":\"old\",\"refs\":[9],\"at\":\"{old}\"}}\n\
             {{\"op\":\"written\",\"id\":\"new\",\"refs\":[5,6],\"at\":\"{recent}\"}}\n\
             {{\"op\":\"delivered\",\"id\":\"new\",\"mr\":5}}\n"
        );
        for _ in 0..50 {
            text.push_str("{\"op\":\"delivered\",\"id\":\"new\",\"mr\":5}\n");
        }
        std::fs::write(dir.path().join(FILE), text).unwrap();

        let journal = Journal::open(dir.path()).await.unwrap();
        assert_eq!(journal.outcome(&id("old")), None);
        assert_eq!(journal.message_for(9), None);
        assert_eq!(journal.part(6, true).await, PartOutcome::Finished(id("new")));
        let lines = std::fs::read_to_string(dir.path().join(FILE)).unwrap();
        assert_eq!(lines.lines().count(), 4, "{lines}");

        // Many appends compact the file down to what it holds.
        for n in 0..(COMPACT_SLACK + 10) {
            journal
                .record(&id(&format!("m{n}")), &[(n % 256) as u8], Outcome::Sent)
                .await
                .unwrap();
        }
        let lines = std::fs::read_to_string(dir.path().join(FILE))
            .unwrap()
            .lines()
            .count();
        assert!(lines <= COMPACT_SLACK + 20, "{lines} lines");
        let journal = Journal::open(dir.path()).await.unwrap();
        assert_eq!(journal.len(), COMPACT_SLACK + 11);
        assert_eq!(journal.part(5, true).await, PartOutcome::Finished(id("m773")));
    }
}
