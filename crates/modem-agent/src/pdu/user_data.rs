//! User data: choosing GSM-7 or UCS-2 for a text, splitting long messages into parts
//! without cutting an escape or a surrogate pair, and reading and writing TP-UDL/TP-UD.

use super::dcs::Alphabet;
use super::udh::{CONCAT_HEADER_LEN, ConcatHeader, UserDataHeader, concat_header};
use super::{PduError, Reader, gsm7};

const MAX_SEPTETS: usize = 160;
const MAX_OCTETS: usize = 140;

/// User data as coded on the wire, header removed. Kept undecoded so that the parts of a
/// long message can be joined before decoding: senders do split escapes and surrogate pairs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UserData {
    /// GSM-7 septets, unpacked, escapes included.
    Gsm7(Vec<u8>),
    /// UTF-16 code units.
    Ucs2(Vec<u16>),
    Data8(Vec<u8>),
}

/// What a message says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Body {
    Text(String),
    Binary(Vec<u8>),
}

impl Body {
    pub fn as_text(&self) -> Option<&str> {
        match self {
            Self::Text(text) => Some(text),
            Self::Binary(_) => None,
        }
    }
}

impl UserData {
    /// GSM-7 when every character has a code there, UCS-2 otherwise.
    pub fn from_text(text: &str) -> Self {
        match gsm7::to_septets(text) {
            Some(septets) => Self::Gsm7(septets),
            None => Self::Ucs2(text.encode_utf16().collect()),
        }
    }

    pub fn alphabet(&self) -> Alphabet {
        match self {
            Self::Gsm7(_) => Alphabet::Gsm7,
            Self::Ucs2(_) => Alphabet::Ucs2,
            Self::Data8(_) => Alphabet::Data8,
        }
    }

    /// Decodes to text (invalid UTF-16 becomes U+FFFD) or leaves 8-bit data as it is.
    pub fn to_body(&self) -> Body {
        match self {
            Self::Gsm7(septets) => Body::Text(gsm7::from_septets(septets)),
            Self::Ucs2(units) => Body::Text(String::from_utf16_lossy(units)),
            Self::Data8(octets) => Body::Binary(octets.clone()),
        }
    }

    /// Septets for GSM-7, octets otherwise: what TP-UDL counts.
    fn wire_len(&self) -> usize {
        match self {
            Self::Gsm7(septets) => septets.len(),
            Self::Ucs2(units) => units.len() * 2,
            Self::Data8(octets) => octets.len(),
        }
    }

    /// The parts to send: one when it fits in 160 septets / 140 octets, otherwise pieces of
    /// 153 septets / 67 UTF-16 units / 134 octets that each leave room for the
    /// concatenation header. An escape and the character after it, or the two halves of a
    /// surrogate pair, always stay in the same part.
    pub(crate) fn split(self) -> Result<Vec<Self>, PduError> {
        let single_limit = match self {
            Self::Gsm7(_) => MAX_SEPTETS,
            Self::Ucs2(_) | Self::Data8(_) => MAX_OCTETS,
        };
        if self.wire_len() <= single_limit {
            return Ok(vec![self]);
        }
        let parts: Vec<Self> = match self {
            Self::Gsm7(septets) => {
                let max = MAX_SEPTETS - gsm7::header_septets(CONCAT_HEADER_LEN);
                chunk(&septets, max, |s, i| {
                    s.get(i) == Some(&gsm7::ESC) && i + 1 < s.len()
                })
                .into_iter()
                .map(Self::Gsm7)
                .collect()
            }
            Self::Ucs2(units) => {
                let max = (MAX_OCTETS - CONCAT_HEADER_LEN) / 2;
                let pair = |u: &[u16], i: usize| {
                    matches!(u.get(i), Some(0xD800..=0xDBFF)) && matches!(u.get(i + 1), Some(0xDC00..=0xDFFF))
                };
                chunk(&units, max, pair).into_iter().map(Self::Ucs2).collect()
            }
            Self::Data8(octets) => octets
                .chunks(MAX_OCTETS - CONCAT_HEADER_LEN)
                .map(|c| Self::Data8(c.to_vec()))
                .collect(),
        };
        if parts.len() > usize::from(u8::MAX) {
            return Err(PduError::TooLong { parts: parts.len() });
        }
        Ok(parts)
    }

    /// [`Self::split`], each part with its concatenation header when there are several.
    pub(crate) fn split_with_headers(
        self,
        reference: u8,
    ) -> Result<Vec<(Option<ConcatHeader>, Self)>, PduError> {
        let parts = self.split()?;
        let total = u8::try_from(parts.len()).unwrap_or(u8::MAX);
        if total == 1 {
            return Ok(parts.into_iter().map(|p| (None, p)).collect());
        }
        Ok((1..=total)
            .zip(parts)
            .map(|(sequence, part)| (Some(concat_header(reference, total, sequence)), part))
            .collect())
    }

    /// TP-UDL and TP-UD for this part, behind `header` (UDHL included) when there is one.
    pub(crate) fn write(&self, header: Option<&[u8]>, out: &mut Vec<u8>) -> Result<(), PduError> {
        let header = header.unwrap_or_default();
        let (udl, body) = match self {
            Self::Gsm7(septets) => {
                let skip = if header.is_empty() {
                    0
                } else {
                    gsm7::header_septets(header.len())
                };
                let fill_bits = skip * 7 - header.len() * 8;
                (skip + septets.len(), gsm7::pack(septets, fill_bits))
            }
            Self::Ucs2(units) => (
                header.len() + units.len() * 2,
                units.iter().flat_map(|u| u.to_be_bytes()).collect(),
            ),
            Self::Data8(octets) => (header.len() + octets.len(), octets.clone()),
        };
        let limit = match self {
            Self::Gsm7(_) => MAX_SEPTETS,
            Self::Ucs2(_) | Self::Data8(_) => MAX_OCTETS,
        };
        let udl = u8::try_from(udl)
            .ok()
            .filter(|&l| usize::from(l) <= limit)
            .ok_or_else(|| PduError::bad_length("TP-UDL", format!("{udl} is more than {limit}")))?;
        out.push(udl);
        out.extend_from_slice(header);
        out.extend(body);
        Ok(())
    }

    /// Reads TP-UDL and TP-UD; any octets after the user data are left unread.
    pub(crate) fn read(
        r: &mut Reader<'_>,
        alphabet: Alphabet,
        has_header: bool,
    ) -> Result<(Option<UserDataHeader>, Self), PduError> {
        let udl = usize::from(r.u8("TP-UDL")?);
        let limit = if alphabet == Alphabet::Gsm7 {
            MAX_SEPTETS
        } else {
            MAX_OCTETS
        };
        if udl > limit {
            return Err(PduError::bad_length(
                "TP-UDL",
                format!("{udl} is more than {limit}"),
            ));
        }
        let octets = match alphabet {
            Alphabet::Gsm7 => r.take((udl * 7).div_ceil(8), "TP-UD")?,
            Alphabet::Ucs2 | Alphabet::Data8 => r.take(udl, "TP-UD")?,
        };
        let (header, header_len) = match (has_header, octets.split_first()) {
            (false, _) => (None, 0),
            (true, None) => {
                return Err(PduError::bad_length(
                    "TP-UD",
                    "a header is indicated but there is no user data",
                ));
            }
            (true, Some((&udhl, rest))) => {
                let udhl = usize::from(udhl);
                let bytes = rest.get(..udhl).ok_or_else(|| {
                    PduError::bad_length("user data header", format!("UDHL {udhl} is past the user data"))
                })?;
                (Some(UserDataHeader::parse(bytes)?), udhl + 1)
            }
        };
        let data = match alphabet {
            Alphabet::Gsm7 => {
                let skip = if header.is_some() {
                    gsm7::header_septets(header_len)
                } else {
                    0
                };
                let count = udl.checked_sub(skip).ok_or_else(|| {
                    PduError::bad_length(
                        "TP-UDL",
                        format!("{udl} septets cannot hold a {header_len}-octet header"),
                    )
                })?;
                let septets = gsm7::unpack(octets, skip * 7, count)
                    .ok_or_else(|| PduError::bad_length("TP-UD", "septets run past the user data"))?;
                Self::Gsm7(septets)
            }
            Alphabet::Ucs2 => {
                let body = octets.get(header_len..).unwrap_or_default();
                if body.len() % 2 != 0 {
                    return Err(PduError::bad_length(
                        "TP-UD",
                        "UCS-2 text with an odd number of octets",
                    ));
                }
                Self::Ucs2(
                    body.chunks_exact(2)
                        .map(|p| u16::from_be_bytes([p[0], p[1]]))
                        .collect(),
                )
            }
            Alphabet::Data8 => Self::Data8(octets.get(header_len..).unwrap_or_default().to_vec()),
        };
        Ok((header, data))
    }
}

/// Cuts `items` into pieces of at most `max`, where `pair(items, i)` says the item at `i`
/// must stay with the next one.
fn chunk<T: Copy>(items: &[T], max: usize, pair: impl Fn(&[T], usize) -> bool) -> Vec<Vec<T>> {
    let mut parts = Vec::new();
    let mut current = Vec::with_capacity(max);
    let mut i = 0;
    while i < items.len() {
        let len = if pair(items, i) { 2 } else { 1 };
        if current.len() + len > max {
            parts.push(std::mem::replace(&mut current, Vec::with_capacity(max)));
        }
        current.extend_from_slice(items.get(i..i + len).unwrap_or_default());
        i += len;
    }
    if !current.is_empty() {
        parts.push(current);
    }
    parts
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parts(text: &str) -> Vec<UserData> {
        UserData::from_text(text).split().unwrap()
    }

    #[test]
    fn text_picks_gsm7_when_it_can() {
        assert_eq!(UserData::from_text("Hi {there}").alphabet(), Alphabet::Gsm7);
        assert_eq!(UserData::from_text("Hi 😀").alphabet(), Alphabet::Ucs2);
        assert_eq!(UserData::from_text("ç").alphabet(), Alphabet::Ucs2);
    }

    #[test]
    fn single_part_limits_are_160_septets_and_70_units() {
        assert_eq!(parts(&"a".repeat(160)).len(), 1);
        assert_eq!(parts(&"a".repeat(161)).len(), 2);
        assert_eq!(parts(&"€".repeat(80)).len(), 1);
        assert_eq!(parts(&"€".repeat(81)).len(), 2);
        assert_eq!(parts(&"я".repeat(70)).len(), 1);
        assert_eq!(parts(&"я".repeat(71)).len(), 2);
        assert_eq!(parts("").len(), 1);
    }

    #[test]
    fn multipart_gsm7_takes_153_septets_per_part() {
        let p = parts(&"a".repeat(306));
        assert_eq!(p.iter().map(UserData::wire_len).collect::<Vec<_>>(), [153, 153]);
        let p = parts(&"a".repeat(307));
        assert_eq!(
            p.iter().map(UserData::wire_len).collect::<Vec<_>>(),
            [153, 153, 1]
        );
    }

    #[test]
    fn an_escape_pair_is_never_cut() {
        // 152 plain septets, then '€' would straddle septets 153 and 154.
        let text = format!("{}€{}", "a".repeat(152), "b".repeat(10));
        let p = parts(&text);
        assert_eq!(p.iter().map(UserData::wire_len).collect::<Vec<_>>(), [152, 12]);
        let UserData::Gsm7(second) = &p[1] else {
            panic!("GSM-7 expected")
        };
        assert_eq!(second[..2], [gsm7::ESC, 0x65]);
    }

    #[test]
    fn a_surrogate_pair_is_never_cut() {
        // 66 units, then an emoji (two units) would straddle units 67 and 68.
        let text = format!("{}😀{}", "я".repeat(66), "я".repeat(5));
        let p = parts(&text);
        assert_eq!(p.iter().map(|d| d.wire_len() / 2).collect::<Vec<_>>(), [66, 7]);
        let joined: String = p
            .iter()
            .map(|d| d.to_body().as_text().unwrap().to_owned())
            .collect();
        assert_eq!(joined, text);
        assert_eq!(parts(&"😀".repeat(35)).len(), 1);
        let p = parts(&"😀".repeat(36));
        assert_eq!(p.iter().map(|d| d.wire_len() / 2).collect::<Vec<_>>(), [66, 6]);
    }

    #[test]
    fn more_than_255_parts_is_too_long() {
        let text = "a".repeat(153 * 255);
        assert_eq!(parts(&text).len(), 255);
        let err = UserData::from_text(&format!("{text}a")).split().unwrap_err();
        assert_eq!(err, PduError::TooLong { parts: 256 });
    }

    #[test]
    fn written_user_data_reads_back_with_and_without_header() {
        for data in [
            UserData::from_text("hellohello"),
            UserData::from_text("ßtraße {ok}"),
            UserData::from_text("Привет 😀"),
            UserData::Data8(vec![0, 1, 2, 255]),
        ] {
            for header in [None, Some(concat_header(9, 2, 1))] {
                let mut out = Vec::new();
                data.write(header.as_ref().map(|h| &h[..]), &mut out).unwrap();
                let (udh, read) =
                    UserData::read(&mut Reader::new(&out), data.alphabet(), header.is_some()).unwrap();
                assert_eq!(read, data);
                assert_eq!(udh.is_some(), header.is_some());
            }
        }
    }

    #[test]
    fn gsm7_after_the_concat_header_has_one_fill_bit() {
        // UDL counts the header: 7 septets + 5 for "hello" = 12; the first text septet
        // starts at bit 49, so the 7th octet holds the fill bit (0) and 'h' << 1.
        let mut out = Vec::new();
        UserData::from_text("hello")
            .write(Some(&concat_header(0, 2, 1)), &mut out)
            .unwrap();
        assert_eq!(out[0], 12);
        assert_eq!(out[7], 0x68 << 1);
    }

    #[test]
    fn bad_lengths_are_errors_not_panics() {
        let read = |bytes: &[u8], alphabet, udhi| UserData::read(&mut Reader::new(bytes), alphabet, udhi);
        assert!(matches!(
            read(&[161], Alphabet::Gsm7, false),
            Err(PduError::BadLength { .. })
        ));
        assert!(matches!(
            read(&[141], Alphabet::Ucs2, false),
            Err(PduError::BadLength { .. })
        ));
        assert!(matches!(
            read(&[3, 0, 1], Alphabet::Ucs2, false),
            Err(PduError::Truncated { .. })
        ));
        assert!(matches!(
            read(&[3, 0, 1, 2], Alphabet::Ucs2, false),
            Err(PduError::BadLength { .. })
        ));
        assert!(matches!(
            read(&[0], Alphabet::Data8, true),
            Err(PduError::BadLength { .. })
        ));
        assert!(matches!(
            read(&[2, 9, 0], Alphabet::Data8, true),
            Err(PduError::BadLength { .. })
        ));
        // A 6-octet header needs 7 septets; a UDL of 6 cannot hold it.
        assert!(read(&[6, 5, 0, 3, 1, 1, 1], Alphabet::Gsm7, true).is_err());
    }
}
