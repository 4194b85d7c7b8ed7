//! SMS-STATUS-REPORT (TS 23.040 §9.2.2.3): the service centre's word on a message we sent,
//! as in `+CDS`. Encoding is here for a simulated modem.

use super::address::{read_address, write_address};
use super::dcs::DataCoding;
use super::timestamp::Timestamp;
use super::udh::UserDataHeader;
use super::user_data::UserData;
use super::{Address, EncodedPdu, PduError, Reader};

const MTI_STATUS_REPORT: u8 = 0b10;
const MMS_NO_MORE: u8 = 0x04;
const SRQ: u8 = 0x20;
const UDHI: u8 = 0x40;

/// TP-ST (TS 23.040 §9.2.3.15), with the raw code kept for the record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DeliveryStatus {
    /// `0x00`–`0x1F`: the transaction completed (received, forwarded but unconfirmed,
    /// replaced, or a service-centre-specific success).
    Delivered(u8),
    /// `0x20`–`0x3F`: a temporary error; the service centre is still trying, so another
    /// report will follow.
    TemporaryFailure(u8),
    /// `0x40`–`0x7F`: a permanent error, or (`0x60`–`0x7F`) a temporary one the service
    /// centre gave up on; either way the message will not be delivered. Reserved values
    /// (`0x80`–`0xFF`) are read as final failures too.
    PermanentFailure(u8),
}

impl DeliveryStatus {
    pub fn from_code(code: u8) -> Self {
        match code {
            0x00..=0x1F => Self::Delivered(code),
            0x20..=0x3F => Self::TemporaryFailure(code),
            _ => Self::PermanentFailure(code),
        }
    }

    pub fn code(&self) -> u8 {
        match *self {
            Self::Delivered(c) | Self::TemporaryFailure(c) | Self::PermanentFailure(c) => c,
        }
    }

    /// Whether this is the last word on the message.
    pub fn is_final(&self) -> bool {
        !matches!(self, Self::TemporaryFailure(_))
    }
}

/// A decoded SMS-STATUS-REPORT.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatusReport {
    pub smsc: Option<Address>,
    /// TP-MR: the reference the modem answered `+CMGS: <mr>` with.
    pub message_reference: u8,
    pub recipient: Address,
    /// When the service centre received the message.
    pub service_centre_time: Timestamp,
    /// When the status was reached (delivery, or the last attempt).
    pub discharge_time: Timestamp,
    pub status: DeliveryStatus,
    /// The service centre has more messages waiting (TP-MMS clear).
    pub more_messages: bool,
    /// TP-SRQ: the report answers an SMS-COMMAND rather than an SMS-SUBMIT.
    pub for_command: bool,
    /// Optional parameters after TP-PI, when present and well formed.
    pub protocol_id: Option<u8>,
    pub coding: Option<DataCoding>,
    pub header: Option<UserDataHeader>,
    pub user_data: Option<UserData>,
}

pub(crate) fn read(r: &mut Reader<'_>, smsc: Option<Address>) -> Result<StatusReport, PduError> {
    let first = r.u8("first octet")?;
    let message_reference = r.u8("TP-MR")?;
    let recipient = read_address(r, "TP-RA")?;
    let service_centre_time = Timestamp::read(r, "TP-SCTS")?;
    let discharge_time = Timestamp::read(r, "TP-DT")?;
    let status = DeliveryStatus::from_code(r.u8("TP-ST")?);
    // What matters is read by now; a malformed optional tail (some modems pad reports)
    // must not cost the report, so it is dropped instead of failing.
    let optional = read_optional(r, first & UDHI != 0).unwrap_or_default();
    Ok(StatusReport {
        smsc,
        message_reference,
        recipient,
        service_centre_time,
        discharge_time,
        status,
        more_messages: first & MMS_NO_MORE == 0,
        for_command: first & SRQ != 0,
        protocol_id: optional.protocol_id,
        coding: optional.coding,
        header: optional.header,
        user_data: optional.user_data,
    })
}

#[derive(Default)]
struct Optional {
    protocol_id: Option<u8>,
    coding: Option<DataCoding>,
    header: Option<UserDataHeader>,
    user_data: Option<UserData>,
}

/// TP-PI and the parameters it announces.
fn read_optional(r: &mut Reader<'_>, has_header: bool) -> Result<Optional, PduError> {
    if r.remaining() == 0 {
        return Ok(Optional::default());
    }
    let pi = r.u8("TP-PI")?;
    // Bit 7 extends TP-PI into further octets, none of which we use.
    let mut extension = pi;
    while extension & 0x80 != 0 {
        extension = r.u8("TP-PI")?;
    }
    let protocol_id = if pi & 0x01 != 0 {
        Some(r.u8("TP-PID")?)
    } else {
        None
    };
    let coding = if pi & 0x02 != 0 {
        Some(DataCoding::parse(r.u8("TP-DCS")?)?)
    } else {
        None
    };
    let (header, user_data) = if pi & 0x04 != 0 {
        let alphabet = coding
            .unwrap_or(DataCoding::plain(super::Alphabet::Gsm7))
            .alphabet;
        let (header, data) = UserData::read(r, alphabet, has_header)?;
        (header, Some(data))
    } else {
        (None, None)
    };
    Ok(Optional {
        protocol_id,
        coding,
        header,
        user_data,
    })
}

/// An SMS-STATUS-REPORT for message `message_reference` to `recipient`, with raw TP-ST
/// `status`; what a simulated modem shows in `+CDS`.
pub fn encode_status_report(
    recipient: &Address,
    message_reference: u8,
    service_centre_time: &Timestamp,
    discharge_time: &Timestamp,
    status: u8,
) -> Result<EncodedPdu, PduError> {
    let mut tpdu = Vec::with_capacity(32);
    tpdu.push(MTI_STATUS_REPORT | MMS_NO_MORE);
    tpdu.push(message_reference);
    write_address(recipient, &mut tpdu)?;
    service_centre_time.write(&mut tpdu)?;
    discharge_time.write(&mut tpdu)?;
    tpdu.push(status);
    Ok(EncodedPdu::from_tpdu(&tpdu))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pdu::{Body, Pdu, decode};

    fn report(hex: &str) -> StatusReport {
        match decode(hex) {
            Ok(Pdu::StatusReport(s)) => s,
            other => panic!("expected an SMS-STATUS-REPORT, got {other:?}"),
        }
    }

    #[test]
    fn status_codes_fall_into_three_kinds() {
        assert_eq!(DeliveryStatus::from_code(0x00), DeliveryStatus::Delivered(0));
        assert_eq!(DeliveryStatus::from_code(0x02), DeliveryStatus::Delivered(2));
        assert_eq!(
            DeliveryStatus::from_code(0x21),
            DeliveryStatus::TemporaryFailure(0x21)
        );
        assert_eq!(
            DeliveryStatus::from_code(0x41),
            DeliveryStatus::PermanentFailure(0x41)
        );
        assert_eq!(
            DeliveryStatus::from_code(0x62),
            DeliveryStatus::PermanentFailure(0x62)
        );
        assert_eq!(DeliveryStatus::from_code(0xFF).code(), 0xFF);
        assert!(!DeliveryStatus::from_code(0x30).is_final());
        assert!(DeliveryStatus::from_code(0x00).is_final());
        assert!(DeliveryStatus::from_code(0x45).is_final());
    }

    #[test]
    fn encoded_reports_decode_back() {
        let base = report("0006D60B911326880736F4111011719551401110117195714000");
        let pdu = encode_status_report(
            &base.recipient,
            base.message_reference,
            &base.service_centre_time,
            &base.discharge_time,
            0x40,
        )
        .unwrap();
        assert_eq!(pdu.hex, "0006D60B911326880736F4111011719551401110117195714040");
        assert_eq!(pdu.tpdu_len, 25);
        let back = report(&pdu.hex);
        assert_eq!(back.status, DeliveryStatus::PermanentFailure(0x40));
        assert_eq!(back.recipient.value, "+31628870634");
    }

    #[test]
    fn optional_parameters_are_read_when_announced() {
        // The report above plus TP-PI 07 (PID, DCS, UDL), PID 00, DCS 00, UDL 2, "hi".
        let s = report("0006D60B911326880736F411101171955140111011719571400007000002E834");
        assert_eq!(s.protocol_id, Some(0));
        assert_eq!(
            s.user_data.map(|d| d.to_body()),
            Some(Body::Text("hi".to_owned()))
        );
        // A broken tail (PI announces user data that is not there) is dropped, not fatal.
        let s = report("0006D60B911326880736F411101171955140111011719571400004");
        assert_eq!(s.status, DeliveryStatus::Delivered(0));
        assert_eq!(s.user_data, None);
    }
}
