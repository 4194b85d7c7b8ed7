//! The GSM 7-bit default alphabet and its extension table (TS 23.038 §6.2.1), and packing
//! septets into octets (§6.1.2.1.1), with the fill bits that align them after a header.

/// The escape to the extension table; a character from it costs two septets.
pub(crate) const ESC: u8 = 0x1B;

/// The default alphabet by septet value. Index 0x1B is the escape, never a character.
const BASIC: [char; 128] = [
    '@', '£', '$', '¥', 'è', 'é', 'ù', 'ì', 'ò', 'Ç', '\n', 'Ø', 'ø', '\r', 'Å', 'å', //
    'Δ', '_', 'Φ', 'Γ', 'Λ', 'Ω', 'Π', 'Ψ', 'Σ', 'Θ', 'Ξ', '\u{1B}', 'Æ', 'æ', 'ß', 'É', //
    ' ', '!', '"', '#', '¤', '%', '&', '\'', '(', ')', '*', '+', ',', '-', '.', '/', //
    '0', '1', '2', '3', '4', '5', '6', '7', '8', '9', ':', ';', '<', '=', '>', '?', //
    '¡', 'A', 'B', 'C', 'D', 'E', 'F', 'G', 'H', 'I', 'J', 'K', 'L', 'M', 'N', 'O', //
    'P', 'Q', 'R', 'S', 'T', 'U', 'V', 'W', 'X', 'Y', 'Z', 'Ä', 'Ö', 'Ñ', 'Ü', '§', //
    '¿', 'a', 'b', 'c', 'd', 'e', 'f', 'g', 'h', 'i', 'j', 'k', 'l', 'm', 'n', 'o', //
    'p', 'q', 'r', 's', 't', 'u', 'v', 'w', 'x', 'y', 'z', 'ä', 'ö', 'ñ', 'ü', 'à', //
];

/// The extension table: the septet after an escape, and its character.
const EXTENSION: [(u8, char); 10] = [
    (0x0A, '\u{0C}'), // form feed
    (0x14, '^'),
    (0x28, '{'),
    (0x29, '}'),
    (0x2F, '\\'),
    (0x3C, '['),
    (0x3D, '~'),
    (0x3E, ']'),
    (0x40, '|'),
    (0x65, '€'),
];

/// How one character is written in septets.
#[derive(Clone, Copy)]
enum Code {
    Basic(u8),
    Extended(u8),
}

fn code_of(c: char) -> Option<Code> {
    if let Some(&(code, _)) = EXTENSION.iter().find(|&&(_, ch)| ch == c) {
        return Some(Code::Extended(code));
    }
    // The escape slot holds no character: a literal U+001B is not encodable.
    BASIC
        .iter()
        .position(|&ch| ch == c)
        .filter(|&i| i != usize::from(ESC))
        .and_then(|i| u8::try_from(i).ok())
        .map(Code::Basic)
}

/// Whether every character of `text` is in the GSM 7-bit default alphabet or its extension.
pub fn gsm7_encodable(text: &str) -> bool {
    text.chars().all(|c| code_of(c).is_some())
}

/// The septets `text` takes in GSM-7 (extension characters count two), or `None` when a
/// character is not encodable.
pub fn septet_len(text: &str) -> Option<usize> {
    text.chars().try_fold(0usize, |n, c| match code_of(c)? {
        Code::Basic(_) => Some(n + 1),
        Code::Extended(_) => Some(n + 2),
    })
}

/// `text` as unpacked septets (escapes included), or `None` when a character is not encodable.
pub(crate) fn to_septets(text: &str) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(text.len());
    for c in text.chars() {
        match code_of(c)? {
            Code::Basic(s) => out.push(s),
            Code::Extended(s) => out.extend([ESC, s]),
        }
    }
    Some(out)
}

/// Septets to text. An unknown extension code shows its default-alphabet character and a
/// doubled escape a space, as TS 23.038 asks of a receiver; so does a dangling final escape.
pub(crate) fn from_septets(septets: &[u8]) -> String {
    let basic = |s: u8| BASIC.get(usize::from(s & 0x7F)).copied().unwrap_or(' ');
    let mut out = String::with_capacity(septets.len());
    let mut iter = septets.iter().copied();
    while let Some(s) = iter.next() {
        if s & 0x7F != ESC {
            out.push(basic(s));
            continue;
        }
        match iter.next().map(|n| n & 0x7F) {
            Some(ESC) | None => out.push(' '),
            Some(n) => match EXTENSION.iter().find(|&&(code, _)| code == n) {
                Some(&(_, c)) => out.push(c),
                None => out.push(basic(n)),
            },
        }
    }
    out
}

/// Packs septets LSB first, after `fill_bits` zero bits (the padding that brings septets
/// to a septet boundary after a user data header).
pub(crate) fn pack(septets: &[u8], fill_bits: usize) -> Vec<u8> {
    let total_bits = fill_bits + 7 * septets.len();
    let mut out = vec![0u8; total_bits.div_ceil(8)];
    for (i, &s) in septets.iter().enumerate() {
        let bit = fill_bits + 7 * i;
        let (byte, shift) = (bit / 8, bit % 8);
        let v = u16::from(s & 0x7F) << shift;
        let [lo, hi] = v.to_le_bytes();
        if let Some(b) = out.get_mut(byte) {
            *b |= lo;
        }
        if hi != 0
            && let Some(b) = out.get_mut(byte + 1)
        {
            *b |= hi;
        }
    }
    out
}

/// Reads `count` septets starting at bit `start_bit`; `None` when the octets run out.
pub(crate) fn unpack(octets: &[u8], start_bit: usize, count: usize) -> Option<Vec<u8>> {
    let needed_bits = start_bit.checked_add(count.checked_mul(7)?)?;
    if needed_bits > octets.len().checked_mul(8)? {
        return None;
    }
    let mut out = Vec::with_capacity(count);
    for i in 0..count {
        let bit = start_bit + 7 * i;
        let (byte, shift) = (bit / 8, bit % 8);
        let lo = u16::from(*octets.get(byte)?);
        // The next octet is only read when the septet straddles into it.
        let hi = if shift > 1 {
            u16::from(*octets.get(byte + 1)?)
        } else {
            0
        };
        let v = (((hi << 8) | lo) >> shift) & 0x7F;
        out.push(u8::try_from(v).ok()?);
    }
    Some(out)
}

/// Septets a header of `header_octets` occupies, fill bits included (TS 23.040 §9.2.3.24).
pub(crate) fn header_septets(header_octets: usize) -> usize {
    (header_octets * 8).div_ceil(7)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hellohello_packs_to_the_published_octets() {
        // TS 23.038 packing as in the widely reproduced GSM 03.40 tutorial (dreamfabric):
        // 'h' = 0x68 = 1101000, 'e' = 0x65 = 1100101 → first octet 1|1101000 = 0xE8, …
        let septets = to_septets("hellohello").unwrap();
        let packed = pack(&septets, 0);
        assert_eq!(hex::encode_upper(&packed), "E8329BFD4697D9EC37");
        assert_eq!(unpack(&packed, 0, 10).unwrap(), septets);
        assert_eq!(from_septets(&septets), "hellohello");
    }

    #[test]
    fn eight_septets_fill_seven_octets_exactly() {
        // "12345678" from python-gsmmodem's test suite: [49, 217, 140, 86, 179, 221, 112].
        let packed = pack(&to_septets("12345678").unwrap(), 0);
        assert_eq!(packed, [49, 217, 140, 86, 179, 221, 112]);
    }

    #[test]
    fn extension_characters_cost_two_septets_and_round_trip() {
        let text = "^{}\\[~]|€\u{0C}";
        assert!(gsm7_encodable(text));
        assert_eq!(septet_len(text), Some(20));
        let septets = to_septets(text).unwrap();
        assert_eq!(septets[..4], [ESC, 0x14, ESC, 0x28]);
        assert_eq!(from_septets(&septets), text);
        // '[{abc}]~' packed, from python-gsmmodem's test suite.
        let packed = pack(&to_septets("[{abc}]~").unwrap(), 0);
        assert_eq!(packed, [27, 222, 6, 21, 22, 143, 55, 169, 141, 111, 211, 3]);
    }

    #[test]
    fn the_whole_default_alphabet_round_trips() {
        let text: String = BASIC
            .iter()
            .enumerate()
            .filter(|&(i, _)| i != usize::from(ESC))
            .map(|(_, &c)| c)
            .collect();
        assert_eq!(septet_len(&text), Some(127));
        let septets = to_septets(&text).unwrap();
        assert_eq!(from_septets(&unpack(&pack(&septets, 0), 0, 127).unwrap()), text);
    }

    #[test]
    fn characters_outside_the_alphabet_are_not_encodable() {
        for text in ["ç", "😀", "Привет", "\u{1B}", "`", "á"] {
            assert!(!gsm7_encodable(text), "{text}");
            assert_eq!(septet_len(text), None, "{text}");
        }
        assert!(gsm7_encodable(""));
        assert!(gsm7_encodable("Ça coute 5€? Non: 4,99 £ à Köln, ÆØÅ ΔΦΓΛΩΠΨΣΘΞ"));
    }

    #[test]
    fn unknown_escapes_fall_back_to_the_default_table() {
        assert_eq!(from_septets(&[ESC, 0x41]), "A");
        assert_eq!(from_septets(&[ESC, ESC, 0x41]), " A");
        assert_eq!(from_septets(&[0x41, ESC]), "A ");
    }

    #[test]
    fn fill_bits_shift_the_septets_after_a_header() {
        // After a 6-octet header (48 bits) one fill bit brings the text to septet 7.
        assert_eq!(header_septets(6), 7);
        assert_eq!(header_septets(7), 8);
        let septets = to_septets("hello").unwrap();
        let packed = pack(&septets, 1);
        assert_eq!(unpack(&packed, 1, 5).unwrap(), septets);
        assert_eq!(packed[0] & 1, 0, "the fill bit is zero");
    }

    #[test]
    fn unpacking_past_the_end_is_refused() {
        assert_eq!(unpack(&[0xE8], 0, 2), None);
        assert_eq!(unpack(&[], 0, 0), Some(vec![]));
        assert_eq!(unpack(&[0xFF], 0, usize::MAX), None);
    }
}
