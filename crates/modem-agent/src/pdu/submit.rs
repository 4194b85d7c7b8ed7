//! SMS-SUBMIT (TS 23.040 §9.2.2.2): what we hand to `AT+CMGS`, and what a simulated modem
//! decodes from us.

use super::address::{read_address, write_address};
use super::dcs::DataCoding;
use super::timestamp::Timestamp;
use super::udh::{Concat, UserDataHeader};
use super::user_data::{Body, UserData};
use super::{Address, EncodedPdu, PduError, Reader};

const MTI_SUBMIT: u8 = 0b01;
const RD: u8 = 0x04;
const VPF_MASK: u8 = 0x18;
const VPF_ENHANCED: u8 = 0x08;
const VPF_RELATIVE: u8 = 0x10;
const VPF_ABSOLUTE: u8 = 0x18;
const SRR: u8 = 0x20;
const UDHI: u8 = 0x40;
const RP: u8 = 0x80;

/// TP-VP: how long the service centre keeps trying.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Validity {
    /// The service centre's default.
    None,
    /// The raw octet (TS 23.040 §9.2.3.12.1): 0–143 are 5-minute steps, 144–167 half
    /// hours after 12 h, 168–196 days (`0xAA` = 4 days), 197–255 weeks.
    Relative(u8),
    Absolute(Timestamp),
    /// Enhanced format, kept raw.
    Enhanced([u8; 7]),
}

/// Choices for [`encode_submit_with`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SubmitOptions {
    /// The concatenation reference shared by the parts of one long message.
    pub reference: u8,
    pub request_status_report: bool,
    pub validity: Validity,
}

impl Default for SubmitOptions {
    /// Reference 0, no status report, valid for 4 days.
    fn default() -> Self {
        Self {
            reference: 0,
            request_status_report: false,
            validity: Validity::Relative(0xAA),
        }
    }
}

/// A decoded SMS-SUBMIT.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Submit {
    pub smsc: Option<Address>,
    /// TP-MR; `0` from us, as the modem assigns its own.
    pub message_reference: u8,
    pub destination: Address,
    pub protocol_id: u8,
    pub coding: DataCoding,
    pub validity: Validity,
    pub reject_duplicates: bool,
    pub status_report_requested: bool,
    pub reply_path: bool,
    pub header: Option<UserDataHeader>,
    pub user_data: UserData,
}

impl Submit {
    pub fn concat(&self) -> Option<Concat> {
        self.header.as_ref().and_then(UserDataHeader::concat)
    }

    pub fn body(&self) -> Body {
        self.user_data.to_body()
    }
}

/// SMS-SUBMIT PDUs for `text` to `to` (`+` and digits for international numbers), valid for
/// 4 days: GSM-7 when every character allows it, UCS-2 otherwise, in as many parts as needed,
/// each carrying concatenation reference `reference` when there are several.
pub fn encode_submit(
    to: &str,
    text: &str,
    reference: u8,
    request_status_report: bool,
) -> Result<Vec<EncodedPdu>, PduError> {
    let options = SubmitOptions {
        reference,
        request_status_report,
        ..SubmitOptions::default()
    };
    encode_submit_with(to, text, &options)
}

/// [`encode_submit`] with every choice spelt out.
pub fn encode_submit_with(
    to: &str,
    text: &str,
    options: &SubmitOptions,
) -> Result<Vec<EncodedPdu>, PduError> {
    encode(to, UserData::from_text(text), options)
}

/// SMS-SUBMIT PDUs carrying 8-bit data (134 octets per part when split).
pub fn encode_submit_data(
    to: &str,
    data: &[u8],
    options: &SubmitOptions,
) -> Result<Vec<EncodedPdu>, PduError> {
    encode(to, UserData::Data8(data.to_vec()), options)
}

fn encode(to: &str, data: UserData, options: &SubmitOptions) -> Result<Vec<EncodedPdu>, PduError> {
    let destination = Address::parse(to)?;
    let coding = DataCoding::plain(data.alphabet());
    let (vpf, vp) = match options.validity {
        Validity::None => (0, Vec::new()),
        Validity::Relative(v) => (VPF_RELATIVE, vec![v]),
        Validity::Absolute(ts) => {
            let mut out = Vec::with_capacity(7);
            ts.write(&mut out)?;
            (VPF_ABSOLUTE, out)
        }
        Validity::Enhanced(raw) => (VPF_ENHANCED, raw.to_vec()),
    };
    let srr = if options.request_status_report { SRR } else { 0 };
    data.split_with_headers(options.reference)?
        .into_iter()
        .map(|(header, part)| {
            let mut tpdu = Vec::with_capacity(176);
            tpdu.push(MTI_SUBMIT | vpf | srr | if header.is_some() { UDHI } else { 0 });
            tpdu.push(0x00); // TP-MR: the modem fills it in.
            write_address(&destination, &mut tpdu)?;
            tpdu.push(0x00); // TP-PID: plain short message.
            tpdu.push(coding.raw);
            tpdu.extend_from_slice(&vp);
            part.write(header.as_ref().map(|h| &h[..]), &mut tpdu)?;
            Ok(EncodedPdu::from_tpdu(&tpdu))
        })
        .collect()
}

pub(crate) fn read(r: &mut Reader<'_>, smsc: Option<Address>) -> Result<Submit, PduError> {
    let first = r.u8("first octet")?;
    let message_reference = r.u8("TP-MR")?;
    let destination = read_address(r, "TP-DA")?;
    let protocol_id = r.u8("TP-PID")?;
    let coding = DataCoding::parse(r.u8("TP-DCS")?)?;
    let validity = match first & VPF_MASK {
        VPF_RELATIVE => Validity::Relative(r.u8("TP-VP")?),
        VPF_ABSOLUTE => Validity::Absolute(Timestamp::read(r, "TP-VP")?),
        VPF_ENHANCED => {
            let raw = r.take(7, "TP-VP")?;
            Validity::Enhanced(<[u8; 7]>::try_from(raw).unwrap_or_default())
        }
        _ => Validity::None,
    };
    let (header, user_data) = UserData::read(r, coding.alphabet, first & UDHI != 0)?;
    Ok(Submit {
        smsc,
        message_reference,
        destination,
        protocol_id,
        coding,
        validity,
        reject_duplicates: first & RD != 0,
        status_report_requested: first & SRR != 0,
        reply_path: first & RP != 0,
        header,
        user_data,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pdu::{Pdu, decode};

    fn submit(hex: &str) -> Submit {
        match decode(hex) {
            Ok(Pdu::Submit(s)) => s,
            other => panic!("expected an SMS-SUBMIT, got {other:?}"),
        }
    }

    #[test]
    fn first_octet_carries_vpf_srr_and_udhi() {
        let one = encode_submit("+46708251358", "hi", 0, false).unwrap();
        assert_eq!(&one[0].hex[..4], "0011");
        let one = encode_submit("+46708251358", "hi", 0, true).unwrap();
        assert_eq!(&one[0].hex[..4], "0031");
        let long = encode_submit("+46708251358", &"x".repeat(200), 5, true).unwrap();
        assert_eq!(long.len(), 2);
        assert!(long.iter().all(|p| &p.hex[..4] == "0071"));
        let none = SubmitOptions {
            validity: Validity::None,
            ..SubmitOptions::default()
        };
        assert_eq!(
            &encode_submit_with("123", "hi", &none).unwrap()[0].hex[..4],
            "0001"
        );
    }

    #[test]
    fn every_validity_format_round_trips() {
        let ts = Timestamp {
            year: 2013,
            month: 7,
            day: 10,
            hour: 13,
            minute: 39,
            second: 0,
            offset_quarters: 8,
        };
        for validity in [
            Validity::None,
            Validity::Relative(0xA9),
            Validity::Absolute(ts),
            Validity::Enhanced([1, 2, 3, 4, 5, 6, 7]),
        ] {
            let options = SubmitOptions {
                validity,
                ..SubmitOptions::default()
            };
            let pdu = &encode_submit_with("+27820001111", "Timestamp validity test", &options).unwrap()[0];
            let s = submit(&pdu.hex);
            assert_eq!(s.validity, validity);
            assert_eq!(s.body(), Body::Text("Timestamp validity test".to_owned()));
        }
    }

    #[test]
    fn bad_destinations_are_refused() {
        assert!(matches!(
            encode_submit("+44 20 7946 0000", "hi", 0, false),
            Err(PduError::Invalid { field: "address", .. })
        ));
        assert!(encode_submit("", "hi", 0, false).is_err());
    }

    #[test]
    fn data_is_sent_as_8_bit() {
        let pdus = encode_submit_data(
            "+27821234567",
            &[0xDE, 0xAD, 0xBE, 0xEF],
            &SubmitOptions::default(),
        )
        .unwrap();
        let s = submit(&pdus[0].hex);
        assert_eq!(s.coding.raw, 0x04);
        assert_eq!(s.body(), Body::Binary(vec![0xDE, 0xAD, 0xBE, 0xEF]));
        let pdus = encode_submit_data("+27821234567", &[7; 300], &SubmitOptions::default()).unwrap();
        assert_eq!(pdus.len(), 3);
    }
}
