//! The user data header (TS 23.040 §9.2.3.24): information elements in front of the text,
//! of which we act on concatenation (IEI 0x00 with an 8-bit reference, 0x08 with 16 bits).

use super::PduError;

const IEI_CONCAT_8: u8 = 0x00;
const IEI_CONCAT_16: u8 = 0x08;

/// The header we put on each part of a long message: UDHL 5, IEI 0, length 3, reference,
/// total, sequence. Six octets, which leaves 153 septets or 134 octets per part.
pub(crate) const CONCAT_HEADER_LEN: usize = 6;
pub(crate) type ConcatHeader = [u8; CONCAT_HEADER_LEN];

/// One information element, kept as received.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InformationElement {
    pub id: u8,
    pub data: Vec<u8>,
}

/// A parsed user data header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserDataHeader {
    pub elements: Vec<InformationElement>,
}

/// Where a part sits in a concatenated message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Concat {
    /// The sender's reference, the same on every part (8 or 16 bits on the wire).
    pub reference: u16,
    pub total: u8,
    /// 1-based.
    pub sequence: u8,
}

impl UserDataHeader {
    /// Parses the header's elements (`bytes` excludes the UDHL octet).
    pub(crate) fn parse(bytes: &[u8]) -> Result<Self, PduError> {
        let mut elements = Vec::new();
        let mut rest = bytes;
        while let [id, len, tail @ ..] = rest {
            let len = usize::from(*len);
            let Some(data) = tail.get(..len) else {
                return Err(PduError::bad_length(
                    "user data header",
                    format!(
                        "element {id:#04X} claims {len} octets, {} left in the header",
                        tail.len()
                    ),
                ));
            };
            elements.push(InformationElement {
                id: *id,
                data: data.to_vec(),
            });
            rest = tail.get(len..).unwrap_or_default();
        }
        if !rest.is_empty() {
            return Err(PduError::bad_length(
                "user data header",
                "a dangling octet after the last element",
            ));
        }
        Ok(Self { elements })
    }

    /// The concatenation element, if there is a valid one. Per TS 23.040 an element with a
    /// zero total, or a sequence of zero or past the total, is ignored.
    pub fn concat(&self) -> Option<Concat> {
        self.elements.iter().find_map(|ie| {
            let (reference, total, sequence) = match (ie.id, ie.data.as_slice()) {
                (IEI_CONCAT_8, &[r, t, s]) => (u16::from(r), t, s),
                (IEI_CONCAT_16, &[hi, lo, t, s]) => (u16::from_be_bytes([hi, lo]), t, s),
                _ => return None,
            };
            (total >= 1 && (1..=total).contains(&sequence)).then_some(Concat {
                reference,
                total,
                sequence,
            })
        })
    }
}

/// The header for part `sequence` of `total`, UDHL included.
pub(crate) fn concat_header(reference: u8, total: u8, sequence: u8) -> ConcatHeader {
    [5, IEI_CONCAT_8, 3, reference, total, sequence]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_concatenation_elements_are_read() {
        // python-gsmmodem's element vectors: 8-bit ref 23, part 1 of 3; 16-bit ref 384, 2 of 4.
        let udh = UserDataHeader::parse(&hex::decode("0003170301").unwrap()).unwrap();
        assert_eq!(
            udh.concat(),
            Some(Concat {
                reference: 23,
                total: 3,
                sequence: 1
            })
        );
        let udh = UserDataHeader::parse(&hex::decode("080401800402").unwrap()).unwrap();
        assert_eq!(
            udh.concat(),
            Some(Concat {
                reference: 384,
                total: 4,
                sequence: 2
            })
        );
    }

    #[test]
    fn other_elements_are_skipped() {
        // Application port addressing (IEI 05) before the concatenation element.
        let udh = UserDataHeader::parse(&hex::decode("0504158115810003420201").unwrap()).unwrap();
        assert_eq!(udh.elements.len(), 2);
        assert_eq!(udh.elements[0].id, 0x05);
        assert_eq!(
            udh.concat().map(|c| (c.reference, c.total, c.sequence)),
            Some((0x42, 2, 1))
        );
    }

    #[test]
    fn invalid_concatenation_is_ignored() {
        // Zero total, zero sequence, sequence past the total, wrong element lengths.
        for hex in [
            "0003170000",
            "0003170300",
            "0003170304",
            "00021703",
            "000417030101",
        ] {
            let udh = UserDataHeader::parse(&hex::decode(hex).unwrap()).unwrap();
            assert_eq!(udh.concat(), None, "{hex}");
        }
    }

    #[test]
    fn overrunning_elements_are_bad_length() {
        let err = UserDataHeader::parse(&[0x00, 0x03, 0x17]).unwrap_err();
        assert!(matches!(err, PduError::BadLength { .. }), "{err}");
        assert!(UserDataHeader::parse(&[0x00]).is_err());
        assert_eq!(UserDataHeader::parse(&[]).unwrap().elements, vec![]);
    }

    #[test]
    fn our_header_is_six_octets() {
        assert_eq!(concat_header(0xC3, 2, 1), [0x05, 0x00, 0x03, 0xC3, 0x02, 0x01]);
        let udh = UserDataHeader::parse(&concat_header(7, 3, 2)[1..]).unwrap();
        assert_eq!(
            udh.concat(),
            Some(Concat {
                reference: 7,
                total: 3,
                sequence: 2
            })
        );
    }
}
