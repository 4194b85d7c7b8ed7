//! SMS in PDU mode (3GPP TS 23.040 for the TPDUs, TS 23.038 for alphabets and coding
//! schemes), as a modem speaks it in `AT+CMGS`, `+CMT`, `+CMGL` and `+CDS`.
//!
//! Pure code: hex strings in, typed values out, and back. Decoding never panics; anything
//! malformed is a [`PduError`] that says what was wrong and where.
//!
//! Directions are taken from the modem's side: a PDU whose message type is `00` is an
//! SMS-DELIVER, `01` an SMS-SUBMIT (what we send, and what a simulated modem receives) and
//! `10` an SMS-STATUS-REPORT.

mod address;
mod dcs;
mod deliver;
mod gsm7;
mod reader;
mod reassembly;
mod status_report;
mod submit;
mod timestamp;
mod udh;
mod user_data;

pub use address::{Address, TypeOfNumber};
pub use dcs::{Alphabet, DataCoding, MessageClass};
pub use deliver::{Deliver, encode_deliver};
pub use gsm7::{gsm7_encodable, septet_len};
pub use reassembly::{Message, Part, Reassembler};
pub use status_report::{DeliveryStatus, StatusReport, encode_status_report};
pub use submit::{Submit, SubmitOptions, Validity, encode_submit, encode_submit_data, encode_submit_with};
pub use timestamp::Timestamp;
pub use udh::{Concat, InformationElement, UserDataHeader};
pub use user_data::{Body, UserData};

use reader::Reader;

/// Why a PDU could not be decoded or a message could not be encoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PduError {
    #[error("bad hex: {0}")]
    BadHex(String),
    #[error("PDU truncated: {field} needs {needed} octet(s) at offset {offset}, only {available} left")]
    Truncated {
        field: &'static str,
        offset: usize,
        needed: usize,
        available: usize,
    },
    #[error("bad length in {field}: {detail}")]
    BadLength { field: &'static str, detail: String },
    #[error("invalid {field}: {detail}")]
    Invalid { field: &'static str, detail: String },
    #[error("unsupported {field}: {detail}")]
    Unsupported { field: &'static str, detail: String },
    #[error("message too long: it needs {parts} parts, at most 255 are possible")]
    TooLong { parts: usize },
}

impl PduError {
    pub(crate) fn bad_length(field: &'static str, detail: impl Into<String>) -> Self {
        Self::BadLength {
            field,
            detail: detail.into(),
        }
    }

    pub(crate) fn invalid(field: &'static str, detail: impl Into<String>) -> Self {
        Self::Invalid {
            field,
            detail: detail.into(),
        }
    }

    pub(crate) fn unsupported(field: &'static str, detail: impl Into<String>) -> Self {
        Self::Unsupported {
            field,
            detail: detail.into(),
        }
    }
}

/// A decoded PDU.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Pdu {
    Deliver(Deliver),
    Submit(Submit),
    StatusReport(StatusReport),
}

/// A PDU ready to hand to the modem (or, from a simulated modem, to the agent).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EncodedPdu {
    /// Uppercase hex, starting with the SMSC part (`00`: use the SIM's service centre).
    pub hex: String,
    /// Octets of the TPDU, i.e. without the SMSC part: the `<length>` of `AT+CMGS=<length>`,
    /// `+CMT: ,<length>` and `+CDS: <length>`.
    pub tpdu_len: usize,
}

impl EncodedPdu {
    /// Prefixes the "no SMSC" octet to a TPDU.
    fn from_tpdu(tpdu: &[u8]) -> Self {
        let mut hex = String::with_capacity(2 + tpdu.len() * 2);
        hex.push_str("00");
        hex.push_str(&hex::encode_upper(tpdu));
        Self {
            hex,
            tpdu_len: tpdu.len(),
        }
    }
}

/// Decodes a PDU as a modem shows it: hex, starting with the SMSC address (length octet
/// `00` when absent). Surrounding whitespace is ignored.
pub fn decode(hex: &str) -> Result<Pdu, PduError> {
    let bytes = parse_hex(hex)?;
    let mut r = Reader::new(&bytes);
    let smsc = address::read_smsc(&mut r)?;
    decode_tpdu_from(&mut r, smsc)
}

/// Decodes a bare TPDU (no SMSC part in front), as some tools and specs print them.
pub fn decode_tpdu(hex: &str) -> Result<Pdu, PduError> {
    let bytes = parse_hex(hex)?;
    decode_tpdu_from(&mut Reader::new(&bytes), None)
}

fn decode_tpdu_from(r: &mut Reader<'_>, smsc: Option<Address>) -> Result<Pdu, PduError> {
    let first = r.peek_u8("first octet")?;
    match first & 0b11 {
        0b00 => deliver::read(r, smsc).map(Pdu::Deliver),
        0b01 => submit::read(r, smsc).map(Pdu::Submit),
        0b10 => status_report::read(r, smsc).map(Pdu::StatusReport),
        _ => Err(PduError::unsupported(
            "message type",
            format!("TP-MTI 11 (first octet {first:#04X}) is reserved"),
        )),
    }
}

fn parse_hex(hex: &str) -> Result<Vec<u8>, PduError> {
    let hex = hex.trim();
    if hex.is_empty() {
        return Err(PduError::BadHex("empty PDU".to_owned()));
    }
    hex::decode(hex).map_err(|e| PduError::BadHex(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_hex_is_reported_not_panicked() {
        assert!(matches!(decode("0G"), Err(PduError::BadHex(_))));
        assert!(matches!(decode("000"), Err(PduError::BadHex(_))));
        assert!(matches!(decode("   "), Err(PduError::BadHex(_))));
    }

    #[test]
    fn an_smsc_length_alone_is_truncated() {
        let err = decode("00").unwrap_err();
        assert!(
            matches!(
                err,
                PduError::Truncated {
                    field: "first octet",
                    ..
                }
            ),
            "{err}"
        );
    }

    #[test]
    fn reserved_message_type_is_unsupported() {
        let err = decode("0003").unwrap_err();
        assert!(matches!(err, PduError::Unsupported { .. }), "{err}");
        assert!(err.to_string().contains("reserved"));
    }
}
