//! Webhook bodies: a flat JSON object with sorted keys, compact separators and every
//! non-ASCII character escaped as `\uXXXX` (UTF-16, lowercase hex). That is byte for byte
//! what `json.dumps(obj, sort_keys=True, separators=(",", ":"))` produces, so receivers
//! that re-serialise the parsed body (as the Vendel SDKs' verifiers do) get the same bytes
//! the signature covers.

use std::collections::BTreeMap;
use std::io::Write;

use chrono::{DateTime, Utc};
use serde_json::Value;

/// What a webhook reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Event {
    SmsReceived,
    SmsSent,
    SmsDelivered,
    SmsFailed,
    SmsExpired,
    DeviceOnline,
    DeviceOffline,
    Test,
}

impl Event {
    pub const SUBSCRIBABLE: [Event; 7] = [
        Self::SmsReceived,
        Self::SmsSent,
        Self::SmsDelivered,
        Self::SmsFailed,
        Self::SmsExpired,
        Self::DeviceOnline,
        Self::DeviceOffline,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::SmsReceived => "sms_received",
            Self::SmsSent => "sms_sent",
            Self::SmsDelivered => "sms_delivered",
            Self::SmsFailed => "sms_failed",
            Self::SmsExpired => "sms_expired",
            Self::DeviceOnline => "device_online",
            Self::DeviceOffline => "device_offline",
            Self::Test => "test",
        }
    }

    /// A name an endpoint may subscribe to (`test` is sent on request, not subscribed).
    pub fn parse(name: &str) -> Option<Self> {
        Self::SUBSCRIBABLE.into_iter().find(|e| e.as_str() == name)
    }
}

/// The fields of one webhook body; unset ones are left out, per the contract's table.
#[derive(Debug, Clone, Default)]
pub struct Payload {
    pub fields: BTreeMap<&'static str, Value>,
}

impl Payload {
    pub fn new(event: Event, message_id: &str, at: DateTime<Utc>) -> Self {
        let mut p = Self::default();
        p.fields.insert("event", event.as_str().into());
        p.fields.insert("message_id", message_id.into());
        p.fields.insert("timestamp", rfc3339(at).into());
        p
    }

    /// Adds a field unless the value is empty.
    pub fn with(mut self, key: &'static str, value: impl Into<String>) -> Self {
        let value = value.into();
        if !value.is_empty() {
            self.fields.insert(key, value.into());
        }
        self
    }

    pub fn with_time(self, key: &'static str, t: Option<DateTime<Utc>>) -> Self {
        match t {
            Some(t) => self.with(key, rfc3339(t)),
            None => self,
        }
    }

    /// The exact bytes to send and sign.
    pub fn to_bytes(&self) -> Vec<u8> {
        canonical_json(&Value::Object(
            self.fields
                .iter()
                .map(|(k, v)| ((*k).to_owned(), v.clone()))
                .collect(),
        ))
    }
}

fn rfc3339(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string()
}

/// Serialises with sorted keys (serde_json's map is ordered), no spaces and ASCII-only
/// output.
pub fn canonical_json(value: &Value) -> Vec<u8> {
    let mut out = Vec::new();
    let mut ser = serde_json::Serializer::with_formatter(&mut out, AsciiFormatter);
    // Writing into memory cannot fail.
    let _ = serde::Serialize::serialize(value, &mut ser);
    out
}

struct AsciiFormatter;

impl serde_json::ser::Formatter for AsciiFormatter {
    fn write_string_fragment<W: ?Sized + Write>(
        &mut self,
        writer: &mut W,
        fragment: &str,
    ) -> std::io::Result<()> {
        for c in fragment.chars() {
            if c.is_ascii() {
                writer.write_all(&[c as u8])?;
            } else {
                let mut units = [0u16; 2];
                for unit in c.encode_utf16(&mut units) {
                    write!(writer, "\\u{unit:04x}")?;
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bodies_are_sorted_compact_and_ascii() {
        let at = DateTime::parse_from_rfc3339("2026-01-15T10:30:00Z")
            .unwrap()
            .to_utc();
        let body = Payload::new(Event::SmsReceived, "m1", at)
            .with("from", "+15551234567")
            .with("body", "Olá 😀 \"hi\"\n")
            .with("error_message", "");
        assert_eq!(
            String::from_utf8(body.to_bytes()).unwrap(),
            r#"{"body":"Ol\u00e1 \ud83d\ude00 \"hi\"\n","event":"sms_received","from":"+15551234567","message_id":"m1","timestamp":"2026-01-15T10:30:00.000Z"}"#
        );
    }

    #[test]
    fn only_known_events_can_be_subscribed() {
        assert_eq!(Event::parse("sms_delivered"), Some(Event::SmsDelivered));
        assert_eq!(Event::parse("test"), None);
        assert_eq!(Event::parse("sms_everything"), None);
    }
}
