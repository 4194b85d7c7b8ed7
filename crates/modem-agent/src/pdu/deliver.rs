//! SMS-DELIVER (TS 23.040 §9.2.2.1): a message the network hands to the modem, as in `+CMT`
//! and `+CMGL`. Encoding is here for a simulated modem.

use super::address::{read_address, write_address};
use super::dcs::DataCoding;
use super::timestamp::Timestamp;
use super::udh::{Concat, UserDataHeader};
use super::user_data::{Body, UserData};
use super::{Address, EncodedPdu, PduError, Reader};

const MTI_DELIVER: u8 = 0b00;
const MMS_NO_MORE: u8 = 0x04;
const SRI: u8 = 0x20;
const UDHI: u8 = 0x40;
const RP: u8 = 0x80;

/// A received SMS-DELIVER.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Deliver {
    /// The service centre, when the modem put its address in front.
    pub smsc: Option<Address>,
    pub originator: Address,
    pub protocol_id: u8,
    pub coding: DataCoding,
    pub timestamp: Timestamp,
    pub header: Option<UserDataHeader>,
    pub user_data: UserData,
    /// The service centre has more messages waiting (TP-MMS clear).
    pub more_messages: bool,
    /// The sender asked for a status report (TP-SRI).
    pub status_report_indication: bool,
    /// TP-RP: a reply may go through the same service centre.
    pub reply_path: bool,
}

impl Deliver {
    /// Where this part sits in a long message, if it is one.
    pub fn concat(&self) -> Option<Concat> {
        self.header.as_ref().and_then(UserDataHeader::concat)
    }

    /// This part's text or data on its own; use a [`super::Reassembler`] for long messages.
    pub fn body(&self) -> Body {
        self.user_data.to_body()
    }
}

pub(crate) fn read(r: &mut Reader<'_>, smsc: Option<Address>) -> Result<Deliver, PduError> {
    let first = r.u8("first octet")?;
    let originator = read_address(r, "TP-OA")?;
    let protocol_id = r.u8("TP-PID")?;
    let coding = DataCoding::parse(r.u8("TP-DCS")?)?;
    let timestamp = Timestamp::read(r, "TP-SCTS")?;
    let (header, user_data) = UserData::read(r, coding.alphabet, first & UDHI != 0)?;
    Ok(Deliver {
        smsc,
        originator,
        protocol_id,
        coding,
        timestamp,
        header,
        user_data,
        more_messages: first & MMS_NO_MORE == 0,
        status_report_indication: first & SRI != 0,
        reply_path: first & RP != 0,
    })
}

/// SMS-DELIVER PDUs for `text` from `from`, split and concatenated like
/// [`super::encode_submit`] does; what a simulated modem shows in `+CMT`.
pub fn encode_deliver(
    from: &Address,
    text: &str,
    timestamp: &Timestamp,
    reference: u8,
) -> Result<Vec<EncodedPdu>, PduError> {
    let data = UserData::from_text(text);
    let coding = DataCoding::plain(data.alphabet());
    data.split_with_headers(reference)?
        .into_iter()
        .map(|(header, part)| {
            let mut tpdu = Vec::with_capacity(176);
            tpdu.push(MTI_DELIVER | MMS_NO_MORE | if header.is_some() { UDHI } else { 0 });
            write_address(from, &mut tpdu)?;
            tpdu.push(0x00);
            tpdu.push(coding.raw);
            timestamp.write(&mut tpdu)?;
            part.write(header.as_ref().map(|h| &h[..]), &mut tpdu)?;
            Ok(EncodedPdu::from_tpdu(&tpdu))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pdu::{Alphabet, Pdu, decode};

    fn deliver(hex: &str) -> Deliver {
        match decode(hex) {
            Ok(Pdu::Deliver(d)) => d,
            other => panic!("expected an SMS-DELIVER, got {other:?}"),
        }
    }

    #[test]
    fn more_messages_reads_the_inverted_bit() {
        // "hellohello" from the classic tutorial, with TP-MMS set (04) and clear (00).
        let tail = "0BC87238880900F10000993092516195800AE8329BFD4697D9EC37";
        assert!(!deliver(&format!("0004{tail}")).more_messages);
        assert!(deliver(&format!("0000{tail}")).more_messages);
    }

    #[test]
    fn encoded_delivers_decode_to_the_same_message() {
        let from = Address::alphanumeric("Ender").unwrap();
        let ts =
            deliver("07917283010010F5040BC87238880900F10000993092516195800AE8329BFD4697D9EC37").timestamp;
        let pdus = encode_deliver(&from, "Grüße 😀", &ts, 7).unwrap();
        assert_eq!(pdus.len(), 1);
        assert_eq!(pdus[0].tpdu_len * 2 + 2, pdus[0].hex.len());
        let d = deliver(&pdus[0].hex);
        assert_eq!(d.originator, from);
        assert_eq!(d.timestamp, ts);
        assert_eq!(d.coding.alphabet, Alphabet::Ucs2);
        assert_eq!(d.body(), Body::Text("Grüße 😀".to_owned()));
        assert_eq!(d.concat(), None);
    }
}
