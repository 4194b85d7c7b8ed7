//! Received SMS between the modem's storage and the caller: decoding, joining the parts
//! of long messages (with a deadline for parts that never come), and remembering which
//! storage slots are already on their way so that a sweep does not pass them on twice.
//! Nothing here deletes: slots leave the storage only when the caller acknowledges.

use std::collections::{BTreeSet, HashMap};
use std::time::{Duration, Instant};

use crate::pdu::{self, Body, DeliveryStatus, Message, Pdu, Reassembler, Timestamp};

use super::types::Slot;

/// A received SMS, whole (or as whole as it got before the deadline).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IncomingSms {
    /// The sender as the network gave it: `+` and digits, digits, or a name.
    pub from: String,
    pub body: Body,
    /// When the service centre received it, in the sender's network's local time.
    pub timestamp: Option<Timestamp>,
    /// Set when something is off: parts that never came, a PDU that could not be decoded.
    pub note: Option<String>,
    /// Where its parts are stored; empty for an SMS the modem passed on without storing.
    pub slots: Vec<Slot>,
}

impl IncomingSms {
    /// [`IncomingSms::timestamp`] as RFC 3339 (`2025-06-01T12:00:00+02:00`).
    pub fn timestamp_rfc3339(&self) -> Option<String> {
        self.timestamp.as_ref().map(rfc3339)
    }

    /// The text, with 8-bit data shown as hex.
    pub fn text(&self) -> String {
        match &self.body {
            Body::Text(text) => text.clone(),
            Body::Binary(octets) => hex::encode_upper(octets),
        }
    }
}

/// What the modem has to say about SMS.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ModemEvent {
    Incoming(IncomingSms),
    /// A status report for the SMS the modem sent with reference `mr`.
    StatusReport {
        mr: u8,
        status: DeliveryStatus,
        slot: Option<Slot>,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct PartKey {
    sender: String,
    reference: u16,
    total: u8,
}

#[derive(Debug)]
struct Pending {
    parts: Reassembler,
    slots: Vec<Slot>,
    first_seen: Instant,
}

/// See the module documentation.
#[derive(Debug)]
pub struct Inbox {
    /// Slots read and passed on (or waiting for their other parts), not yet deleted.
    held: BTreeSet<Slot>,
    pending: HashMap<PartKey, Pending>,
    timeout: Duration,
}

impl Default for Inbox {
    fn default() -> Self {
        Self::new(Self::DEFAULT_TIMEOUT)
    }
}

impl Inbox {
    /// How long to wait for the missing parts of a long message.
    pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(15 * 60);

    pub fn new(reassembly_timeout: Duration) -> Self {
        Self {
            held: BTreeSet::new(),
            pending: HashMap::new(),
            timeout: reassembly_timeout,
        }
    }

    /// Whether this slot was already read and is on its way.
    pub fn is_held(&self, slot: &Slot) -> bool {
        self.held.contains(slot)
    }

    /// Long messages still waiting for parts.
    pub fn pending(&self) -> usize {
        self.pending.len()
    }

    /// Takes one PDU, stored at `slot` or passed on directly. Returns the event it
    /// completes, if any; a slot already held gives nothing.
    pub fn accept(&mut self, slot: Option<Slot>, pdu_hex: &str, now: Instant) -> Option<ModemEvent> {
        if let Some(slot) = &slot
            && !self.held.insert(slot.clone())
        {
            return None;
        }
        let slots: Vec<Slot> = slot.iter().cloned().collect();
        let deliver = match pdu::decode(pdu_hex) {
            Ok(Pdu::Deliver(deliver)) => deliver,
            Ok(Pdu::StatusReport(report)) => {
                return Some(ModemEvent::StatusReport {
                    mr: report.message_reference,
                    status: report.status,
                    slot,
                });
            }
            Ok(Pdu::Submit(_)) => {
                tracing::debug!(sms.slot = ?slot, "leaving a stored outgoing message alone");
                return None;
            }
            Err(error) => {
                // Passed on with a note rather than left behind: a PDU we cannot read may
                // still be a message someone needs, and the raw hex keeps it.
                tracing::warn!(sms.slot = ?slot, %error, "the modem holds a PDU that cannot be decoded; passing it on as raw hex");
                return Some(ModemEvent::Incoming(IncomingSms {
                    from: "unknown".to_owned(),
                    body: Body::Text(String::new()),
                    timestamp: None,
                    note: Some(format!("undecodable PDU ({error}): {}", pdu_hex.trim())),
                    slots,
                }));
            }
        };
        let Some(concat) = deliver.concat().filter(|c| c.total > 1) else {
            let message = Reassembler::new().push(deliver, now)?;
            return Some(incoming(message, slots));
        };
        let key = PartKey {
            sender: deliver.originator.value.clone(),
            reference: concat.reference,
            total: concat.total,
        };
        let pending = self.pending.entry(key.clone()).or_insert_with(|| Pending {
            parts: Reassembler::new(),
            slots: Vec::new(),
            first_seen: now,
        });
        pending.slots.extend(slots);
        let message = pending.parts.push(deliver, now)?;
        let pending = self.pending.remove(&key)?;
        Some(incoming(message, pending.slots))
    }

    /// Long messages whose missing parts did not come in time, passed on as they are.
    pub fn expire(&mut self, now: Instant) -> Vec<ModemEvent> {
        let timeout = self.timeout;
        let due: Vec<PartKey> = self
            .pending
            .iter()
            .filter(|(_, p)| now.saturating_duration_since(p.first_seen) >= timeout)
            .map(|(k, _)| k.clone())
            .collect();
        let mut events = Vec::new();
        for key in due {
            let Some(mut pending) = self.pending.remove(&key) else {
                continue;
            };
            for message in pending.parts.expire(now, timeout) {
                tracing::warn!(
                    sms.parts = message.total_parts,
                    sms.missing = ?message.missing_parts,
                    "passing on a long SMS with parts missing"
                );
                events.push(incoming(message, std::mem::take(&mut pending.slots)));
            }
        }
        events
    }

    /// The caller could not pass these on: read them again on the next sweep.
    pub fn release(&mut self, slots: &[Slot]) {
        for slot in slots {
            self.held.remove(slot);
        }
    }

    /// These were deleted from the storage.
    pub fn forget(&mut self, slots: &[Slot]) {
        self.release(slots);
    }
}

/// A service centre timestamp as RFC 3339, with its offset.
pub fn rfc3339(t: &Timestamp) -> String {
    let offset = t.utc_offset_minutes();
    let sign = if offset < 0 { '-' } else { '+' };
    let offset = offset.unsigned_abs();
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}{sign}{:02}:{:02}",
        t.year,
        t.month,
        t.day,
        t.hour,
        t.minute,
        t.second,
        offset / 60,
        offset % 60
    )
}

fn incoming(message: Message, slots: Vec<Slot>) -> ModemEvent {
    let note = message.note();
    ModemEvent::Incoming(IncomingSms {
        from: message.sender.value,
        body: message.body,
        timestamp: message.timestamp,
        note,
        slots,
    })
}
