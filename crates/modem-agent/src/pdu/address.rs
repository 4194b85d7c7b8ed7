//! Address fields (TS 23.040 §9.1.2.5): phone numbers in swapped semi-octets, alphanumeric
//! senders in packed GSM-7, and the SMSC address in front of a modem's PDU (TS 24.011).

use std::fmt;

use super::{PduError, Reader, gsm7};

/// Longest number an address field holds (10 octets of digits).
const MAX_DIGITS: usize = 20;
/// Longest alphanumeric address: 11 characters in 10 octets.
const MAX_ALPHANUMERIC_SEPTETS: usize = 11;

pub(crate) const TOA_INTERNATIONAL: u8 = 0x91;
pub(crate) const TOA_UNKNOWN_ISDN: u8 = 0x81;
pub(crate) const TOA_ALPHANUMERIC: u8 = 0xD0;

/// The type-of-number bits (6..4) of a type-of-address octet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TypeOfNumber {
    Unknown,
    International,
    National,
    NetworkSpecific,
    Subscriber,
    Alphanumeric,
    Abbreviated,
    Reserved,
}

/// An originating, destination, recipient or service centre address.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Address {
    /// The type-of-address octet: bit 7 set, type of number in bits 6..4, numbering plan in
    /// bits 3..0 (`0x91` international, `0x81` unknown/national, `0xD0` alphanumeric).
    pub toa: u8,
    /// `+` and the digits for international numbers, the digits (`0-9*#abc`) for other
    /// numbers, the decoded name for alphanumeric addresses.
    pub value: String,
}

impl Address {
    /// A number to send to: `+` and digits is international (`0x91`), plain digits use the
    /// national/unknown type (`0x81`). `*` and `#` are allowed for service numbers.
    pub fn parse(number: &str) -> Result<Self, PduError> {
        let (toa, digits) = match number.strip_prefix('+') {
            Some(digits) => (TOA_INTERNATIONAL, digits),
            None => (TOA_UNKNOWN_ISDN, number),
        };
        if digits.is_empty() || digits.len() > MAX_DIGITS {
            return Err(PduError::invalid(
                "address",
                format!("a number has 1 to {MAX_DIGITS} digits, got {}", digits.len()),
            ));
        }
        if let Some(c) = digits.chars().find(|c| !matches!(c, '0'..='9' | '*' | '#')) {
            return Err(PduError::invalid("address", format!("{c:?} is not a digit")));
        }
        Ok(Self {
            toa,
            value: number.to_owned(),
        })
    }

    /// An alphanumeric sender name (GSM-7, at most 11 septets), as networks send for brands.
    pub fn alphanumeric(name: &str) -> Result<Self, PduError> {
        match gsm7::septet_len(name) {
            Some(1..=MAX_ALPHANUMERIC_SEPTETS) => Ok(Self {
                toa: TOA_ALPHANUMERIC,
                value: name.to_owned(),
            }),
            Some(n) => Err(PduError::invalid(
                "address",
                format!("an alphanumeric address has 1 to {MAX_ALPHANUMERIC_SEPTETS} septets, got {n}"),
            )),
            None => Err(PduError::invalid(
                "address",
                "an alphanumeric address must be in the GSM 7-bit alphabet",
            )),
        }
    }

    pub fn type_of_number(&self) -> TypeOfNumber {
        match (self.toa >> 4) & 0b111 {
            0 => TypeOfNumber::Unknown,
            1 => TypeOfNumber::International,
            2 => TypeOfNumber::National,
            3 => TypeOfNumber::NetworkSpecific,
            4 => TypeOfNumber::Subscriber,
            5 => TypeOfNumber::Alphanumeric,
            6 => TypeOfNumber::Abbreviated,
            _ => TypeOfNumber::Reserved,
        }
    }
}

impl fmt::Display for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.value)
    }
}

/// Reads the SMSC part a modem puts in front of the TPDU: a length in octets (type octet
/// included), `00` when absent.
pub(crate) fn read_smsc(r: &mut Reader<'_>) -> Result<Option<Address>, PduError> {
    let len = usize::from(r.u8("SMSC length")?);
    if len == 0 {
        return Ok(None);
    }
    if len > 1 + MAX_DIGITS / 2 {
        return Err(PduError::bad_length(
            "SMSC address",
            format!("{len} octets, at most {} allowed", 1 + MAX_DIGITS / 2),
        ));
    }
    let toa = r.u8("SMSC type of address")?;
    let octets = r.take(len - 1, "SMSC address")?;
    // The length counts octets, so the digits end at the first F filler.
    let value = with_plus(toa, decode_semi_octets(octets, octets.len() * 2));
    Ok(Some(Address { toa, value }))
}

/// Reads a TP-OA / TP-DA / TP-RA: a length in semi-octets, the type, then the digits.
pub(crate) fn read_address(r: &mut Reader<'_>, field: &'static str) -> Result<Address, PduError> {
    let len = usize::from(r.u8(field)?);
    if len > MAX_DIGITS {
        return Err(PduError::bad_length(
            field,
            format!("{len} semi-octets, at most {MAX_DIGITS} allowed"),
        ));
    }
    let toa = r.u8(field)?;
    let octets = r.take(len.div_ceil(2), field)?;
    let value = if (toa >> 4) & 0b111 == 0b101 {
        // Alphanumeric: the semi-octet count covers the septets' bits.
        let septets = gsm7::unpack(octets, 0, len * 4 / 7)
            .ok_or_else(|| PduError::bad_length(field, "alphanumeric address shorter than its length"))?;
        gsm7::from_septets(&septets)
    } else {
        with_plus(toa, decode_semi_octets(octets, len))
    };
    Ok(Address { toa, value })
}

/// Writes a TP-DA / TP-OA / TP-RA.
pub(crate) fn write_address(address: &Address, out: &mut Vec<u8>) -> Result<(), PduError> {
    if address.type_of_number() == TypeOfNumber::Alphanumeric {
        let septets = gsm7::to_septets(&address.value)
            .filter(|s| !s.is_empty() && s.len() <= MAX_ALPHANUMERIC_SEPTETS)
            .ok_or_else(|| PduError::invalid("address", "not a valid alphanumeric address"))?;
        let semi_octets = (septets.len() * 7).div_ceil(4);
        out.push(u8::try_from(semi_octets).unwrap_or(u8::MAX));
        out.push(address.toa);
        out.extend(gsm7::pack(&septets, 0));
        return Ok(());
    }
    let digits = address.value.strip_prefix('+').unwrap_or(&address.value);
    let nibbles = digits
        .chars()
        .map(digit_nibble)
        .collect::<Option<Vec<u8>>>()
        .filter(|n| n.len() <= MAX_DIGITS)
        .ok_or_else(|| PduError::invalid("address", format!("{:?} is not a phone number", address.value)))?;
    out.push(u8::try_from(nibbles.len()).unwrap_or(u8::MAX));
    out.push(address.toa);
    out.extend(swap_semi_octets(&nibbles));
    Ok(())
}

/// Pairs nibbles low-first into octets, padding an odd count with `F`.
pub(crate) fn swap_semi_octets(nibbles: &[u8]) -> Vec<u8> {
    nibbles
        .chunks(2)
        .map(|pair| match *pair {
            [lo, hi] => (hi << 4) | lo,
            [lo] => 0xF0 | lo,
            _ => 0xFF,
        })
        .collect()
}

fn with_plus(toa: u8, digits: String) -> String {
    if (toa >> 4) & 0b111 == 0b001 && !digits.is_empty() {
        format!("+{digits}")
    } else {
        digits
    }
}

/// Up to `count` digits, low nibble first; an `F` filler ends the number.
fn decode_semi_octets(octets: &[u8], count: usize) -> String {
    octets
        .iter()
        .flat_map(|&b| [b & 0x0F, b >> 4])
        .take(count)
        .take_while(|&n| n != 0x0F)
        .map(nibble_digit)
        .collect()
}

fn nibble_digit(n: u8) -> char {
    match n {
        0..=9 => char::from(b'0' + n),
        0x0A => '*',
        0x0B => '#',
        0x0C => 'a',
        0x0D => 'b',
        _ => 'c',
    }
}

fn digit_nibble(c: char) -> Option<u8> {
    match c {
        '0'..='9' => c.to_digit(10).and_then(|d| u8::try_from(d).ok()),
        '*' => Some(0x0A),
        '#' => Some(0x0B),
        'a' => Some(0x0C),
        'b' => Some(0x0D),
        'c' => Some(0x0E),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn encoded(address: &Address) -> String {
        let mut out = Vec::new();
        write_address(address, &mut out).unwrap();
        hex::encode_upper(out)
    }

    fn decoded(hex: &str) -> Address {
        let bytes = hex::decode(hex).unwrap();
        read_address(&mut Reader::new(&bytes), "address").unwrap()
    }

    #[test]
    fn international_numbers_swap_digits_and_pad_with_f() {
        // The dreamfabric tutorial's destination: 46708251358 → 0B 91 6407281553F8.
        let a = Address::parse("+46708251358").unwrap();
        assert_eq!(a.type_of_number(), TypeOfNumber::International);
        assert_eq!(encoded(&a), "0B916407281553F8");
        assert_eq!(decoded("0B916407281553F8"), a);
    }

    #[test]
    fn national_numbers_use_type_81() {
        // Same tutorial: "0708251358" in the unknown format → 0A 81 7080523185.
        let a = Address::parse("0708251358").unwrap();
        assert_eq!(encoded(&a), "0A817080523185");
        assert_eq!(decoded("0A817080523185"), a);
    }

    #[test]
    fn alphanumeric_addresses_pack_gsm7() {
        // Vectors from python-gsmmodem's test suite (TON 101, NPI 0000 → 0xD0).
        for (name, hex) in [
            ("abc", "06D061F118"),
            ("FRANCOIS", "0ED04669D0397C26A7"),
            ("a[]{}€", "14D0E10D6FE3DBA036A94D19"),
        ] {
            let a = Address::alphanumeric(name).unwrap();
            assert_eq!(a.type_of_number(), TypeOfNumber::Alphanumeric);
            assert_eq!(encoded(&a), hex, "{name}");
            assert_eq!(decoded(hex), a, "{name}");
        }
    }

    #[test]
    fn service_digits_survive() {
        let a = Address::parse("*100#").unwrap();
        assert_eq!(encoded(&a), "05811A00FB");
        assert_eq!(decoded("05811A00FB").value, "*100#");
    }

    #[test]
    fn bad_numbers_are_refused() {
        for bad in ["", "+", "+12a4", "123 456", "+123456789012345678901", "😀"] {
            assert!(Address::parse(bad).is_err(), "{bad:?}");
        }
        assert!(Address::alphanumeric("").is_err());
        assert!(Address::alphanumeric("TwelveLetter").is_err());
        assert!(Address::alphanumeric("Café😀").is_err());
        let err = read_address(&mut Reader::new(&[0x15, 0x91]), "TP-OA").unwrap_err();
        assert!(matches!(err, PduError::BadLength { field: "TP-OA", .. }), "{err}");
    }

    #[test]
    fn smsc_addresses_count_octets() {
        // python-gsmmodem: "06 91 7228195339" is +2782913593 (no filler: 10 digits).
        let bytes = hex::decode("069172281953390000").unwrap();
        let mut r = Reader::new(&bytes);
        let smsc = read_smsc(&mut r).unwrap().unwrap();
        assert_eq!(smsc.value, "+2782913593");
        assert_eq!(r.remaining(), 2);
        assert_eq!(read_smsc(&mut Reader::new(&[0])).unwrap(), None);
    }
}
