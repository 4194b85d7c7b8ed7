//! Joining the parts of long messages. Parts arrive in any order, sometimes twice, sometimes
//! never: duplicates are dropped, and what is still incomplete after a timeout is handed
//! over as received, with a note, rather than lost.

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use super::Address;
use super::deliver::Deliver;
use super::submit::Submit;
use super::timestamp::Timestamp;
use super::udh::Concat;
use super::user_data::{Body, UserData};

/// One received part, from whichever PDU carried it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Part {
    /// The sender; for an SMS-SUBMIT seen by a simulated modem, the destination.
    pub sender: Address,
    pub timestamp: Option<Timestamp>,
    pub concat: Option<Concat>,
    pub user_data: UserData,
}

impl From<Deliver> for Part {
    fn from(d: Deliver) -> Self {
        Self {
            concat: d.concat(),
            sender: d.originator,
            timestamp: Some(d.timestamp),
            user_data: d.user_data,
        }
    }
}

impl From<Submit> for Part {
    fn from(s: Submit) -> Self {
        Self {
            concat: s.concat(),
            sender: s.destination,
            timestamp: None,
            user_data: s.user_data,
        }
    }
}

/// A whole message, or what arrived of one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    pub sender: Address,
    /// The service centre time of the earliest part (by sequence) that arrived.
    pub timestamp: Option<Timestamp>,
    /// The parts that arrived, in order. Binary only when every part was 8-bit data.
    pub body: Body,
    /// 1 for a single SMS.
    pub total_parts: u8,
    /// Sequence numbers (1-based) that never arrived; empty when complete.
    pub missing_parts: Vec<u8>,
}

impl Message {
    pub fn is_complete(&self) -> bool {
        self.missing_parts.is_empty()
    }

    /// For an incomplete message, a line saying what is missing.
    pub fn note(&self) -> Option<String> {
        if self.is_complete() {
            return None;
        }
        let missing: Vec<String> = self.missing_parts.iter().map(u8::to_string).collect();
        let noun = if missing.len() == 1 { "part" } else { "parts" };
        Some(format!(
            "incomplete message: {noun} {} of {} never arrived",
            missing.join(", "),
            self.total_parts
        ))
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct Key {
    sender: String,
    reference: u16,
    total: u8,
}

#[derive(Debug)]
struct Pending {
    first_seen: Instant,
    parts: BTreeMap<u8, Part>,
}

/// Collects the parts of long messages, keyed by (sender, reference, total).
#[derive(Debug, Default)]
pub struct Reassembler {
    pending: HashMap<Key, Pending>,
}

impl Reassembler {
    pub fn new() -> Self {
        Self::default()
    }

    /// Takes a part; returns the message once it is whole. A part that is not part of a
    /// long message is whole by itself. A part already held is ignored.
    pub fn push(&mut self, part: impl Into<Part>, now: Instant) -> Option<Message> {
        let part = part.into();
        let Some(concat) = part.concat.filter(|c| c.total > 1) else {
            return Some(assemble(1, BTreeMap::from([(1, part)])));
        };
        let key = Key {
            sender: part.sender.value.clone(),
            reference: concat.reference,
            total: concat.total,
        };
        let pending = self.pending.entry(key.clone()).or_insert_with(|| Pending {
            first_seen: now,
            parts: BTreeMap::new(),
        });
        pending.parts.entry(concat.sequence).or_insert(part);
        if pending.parts.len() < usize::from(concat.total) {
            return None;
        }
        let pending = self.pending.remove(&key)?;
        Some(assemble(concat.total, pending.parts))
    }

    /// Gives up on messages whose first part came `timeout` or more before `now`, and
    /// returns what arrived of them, oldest first.
    pub fn expire(&mut self, now: Instant, timeout: Duration) -> Vec<Message> {
        let mut expired: Vec<(Instant, u8, BTreeMap<u8, Part>)> = Vec::new();
        self.pending.retain(|key, pending| {
            if now.saturating_duration_since(pending.first_seen) < timeout {
                return true;
            }
            expired.push((pending.first_seen, key.total, std::mem::take(&mut pending.parts)));
            false
        });
        expired.sort_by_key(|(first_seen, ..)| *first_seen);
        expired
            .into_iter()
            .map(|(_, total, parts)| assemble(total, parts))
            .collect()
    }

    /// How many long messages are waiting for parts.
    pub fn pending(&self) -> usize {
        self.pending.len()
    }
}

/// Joins the parts present. Consecutive parts in the same coding are joined before decoding,
/// so an escape or a surrogate pair that a sender split across parts survives.
fn assemble(total: u8, parts: BTreeMap<u8, Part>) -> Message {
    let missing_parts = (1..=total).filter(|s| !parts.contains_key(s)).collect();
    let first = parts.values().next();
    let sender = first.map(|p| p.sender.clone()).unwrap_or_else(|| Address {
        toa: 0,
        value: String::new(),
    });
    let timestamp = first.and_then(|p| p.timestamp);

    let body = if parts.values().all(|p| matches!(p.user_data, UserData::Data8(_))) {
        let mut octets = Vec::new();
        for part in parts.values() {
            if let UserData::Data8(data) = &part.user_data {
                octets.extend_from_slice(data);
            }
        }
        Body::Binary(octets)
    } else {
        let mut text = String::new();
        let mut run: Option<(u8, UserData)> = None;
        for (seq, part) in parts {
            let follows = run
                .as_ref()
                .is_some_and(|(last, _)| last.checked_add(1) == Some(seq));
            let joined = match (&mut run, &part.user_data) {
                (Some((last, UserData::Gsm7(acc))), UserData::Gsm7(more)) if follows => {
                    acc.extend_from_slice(more);
                    *last = seq;
                    true
                }
                (Some((last, UserData::Ucs2(acc))), UserData::Ucs2(more)) if follows => {
                    acc.extend_from_slice(more);
                    *last = seq;
                    true
                }
                _ => false,
            };
            if !joined && let Some((_, data)) = run.replace((seq, part.user_data)) {
                push_text(&mut text, &data);
            }
        }
        if let Some((_, data)) = run {
            push_text(&mut text, &data);
        }
        Body::Text(text)
    };
    Message {
        sender,
        timestamp,
        body,
        total_parts: total,
        missing_parts,
    }
}

fn push_text(text: &mut String, data: &UserData) {
    match data.to_body() {
        Body::Text(t) => text.push_str(&t),
        Body::Binary(b) => text.push_str(&String::from_utf8_lossy(&b)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn part(sender: &str, reference: u16, total: u8, sequence: u8, text: &str) -> Part {
        Part {
            sender: Address::parse(sender).unwrap(),
            timestamp: None,
            concat: Some(Concat {
                reference,
                total,
                sequence,
            }),
            user_data: UserData::from_text(text),
        }
    }

    #[test]
    fn parts_in_any_order_make_one_message() {
        let now = Instant::now();
        let mut r = Reassembler::new();
        assert_eq!(r.push(part("+1555", 7, 3, 3, "!"), now), None);
        assert_eq!(r.push(part("+1555", 7, 3, 1, "Hello, "), now), None);
        assert_eq!(r.pending(), 1);
        let m = r.push(part("+1555", 7, 3, 2, "world"), now).unwrap();
        assert_eq!(m.body, Body::Text("Hello, world!".to_owned()));
        assert!(m.is_complete());
        assert_eq!(m.note(), None);
        assert_eq!(r.pending(), 0);
    }

    #[test]
    fn duplicates_are_ignored() {
        let now = Instant::now();
        let mut r = Reassembler::new();
        assert_eq!(r.push(part("+1555", 7, 2, 1, "a"), now), None);
        assert_eq!(r.push(part("+1555", 7, 2, 1, "a"), now), None);
        let m = r.push(part("+1555", 7, 2, 2, "b"), now).unwrap();
        assert_eq!(m.body.as_text(), Some("ab"));
    }

    #[test]
    fn senders_references_and_totals_keep_messages_apart() {
        let now = Instant::now();
        let mut r = Reassembler::new();
        assert_eq!(r.push(part("+1555", 7, 2, 1, "a"), now), None);
        assert_eq!(r.push(part("+1666", 7, 2, 2, "x"), now), None);
        assert_eq!(r.push(part("+1555", 8, 2, 2, "y"), now), None);
        assert_eq!(r.push(part("+1555", 7, 3, 2, "z"), now), None);
        assert_eq!(r.pending(), 4);
        assert_eq!(
            r.push(part("+1555", 7, 2, 2, "b"), now).unwrap().body.as_text(),
            Some("ab")
        );
    }

    #[test]
    fn single_messages_pass_straight_through() {
        let mut p = part("+1555", 0, 1, 1, "one of one");
        let m = Reassembler::new().push(p.clone(), Instant::now()).unwrap();
        assert_eq!(m.body.as_text(), Some("one of one"));
        assert_eq!(m.total_parts, 1);
        p.concat = None;
        assert!(Reassembler::new().push(p, Instant::now()).unwrap().is_complete());
    }

    #[test]
    fn incomplete_messages_are_delivered_after_the_timeout() {
        let start = Instant::now();
        let timeout = Duration::from_secs(600);
        let mut r = Reassembler::new();
        r.push(part("+1555", 1, 4, 3, "three "), start);
        r.push(part("+1555", 1, 4, 1, "one "), start);
        r.push(part("+1666", 2, 2, 1, "later"), start + Duration::from_secs(300));
        assert_eq!(r.expire(start + Duration::from_secs(599), timeout), vec![]);
        let expired = r.expire(start + timeout, timeout);
        assert_eq!(expired.len(), 1);
        let m = &expired[0];
        assert_eq!(m.body.as_text(), Some("one three "));
        assert_eq!(m.missing_parts, [2, 4]);
        assert_eq!(
            m.note().unwrap(),
            "incomplete message: parts 2, 4 of 4 never arrived"
        );
        assert_eq!(r.pending(), 1);
        let rest = r.expire(start + Duration::from_secs(3600), timeout);
        assert_eq!(
            rest[0].note().unwrap(),
            "incomplete message: part 2 of 2 never arrived"
        );
        assert_eq!(r.pending(), 0);
    }

    #[test]
    fn a_surrogate_pair_split_by_the_sender_is_rejoined() {
        let now = Instant::now();
        let units: Vec<u16> = "a😀b".encode_utf16().collect();
        let mut first = part("+1555", 9, 2, 1, "");
        first.user_data = UserData::Ucs2(units[..2].to_vec());
        let mut second = part("+1555", 9, 2, 2, "");
        second.user_data = UserData::Ucs2(units[2..].to_vec());
        let mut r = Reassembler::new();
        r.push(second, now);
        assert_eq!(r.push(first, now).unwrap().body.as_text(), Some("a😀b"));
    }

    #[test]
    fn mixed_codings_are_decoded_part_by_part() {
        let now = Instant::now();
        let mut r = Reassembler::new();
        r.push(part("+1555", 3, 2, 1, "Price: 5€, "), now);
        let m = r.push(part("+1555", 3, 2, 2, "or 5 ₽"), now).unwrap();
        assert_eq!(m.body.as_text(), Some("Price: 5€, or 5 ₽"));
    }

    #[test]
    fn data_parts_stay_binary() {
        let now = Instant::now();
        let mut r = Reassembler::new();
        let mut a = part("+1555", 4, 2, 1, "");
        a.user_data = UserData::Data8(vec![1, 2]);
        let mut b = part("+1555", 4, 2, 2, "");
        b.user_data = UserData::Data8(vec![3]);
        r.push(b, now);
        assert_eq!(r.push(a, now).unwrap().body, Body::Binary(vec![1, 2, 3]));
    }
}
