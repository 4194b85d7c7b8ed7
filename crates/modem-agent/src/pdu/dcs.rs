//! The data coding scheme octet (TS 23.038 §4): which alphabet the user data is in and
//! which message class it has.

use super::PduError;

/// How the user data is coded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Alphabet {
    /// GSM 7-bit default alphabet, packed; lengths count septets.
    Gsm7,
    /// 8-bit data, opaque to us.
    Data8,
    /// UCS-2, read as UTF-16BE so surrogate pairs (emoji) work as every phone sends them.
    Ucs2,
}

/// Message class: 0 is a "flash" message shown at once, 1 goes to the phone, 2 to the SIM,
/// 3 to the terminal equipment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MessageClass {
    Class0,
    Class1,
    Class2,
    Class3,
}

/// A decoded TP-DCS.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct DataCoding {
    /// The octet as received.
    pub raw: u8,
    pub alphabet: Alphabet,
    pub class: Option<MessageClass>,
}

impl DataCoding {
    /// Decodes a TP-DCS. Compressed data and reserved codings are unsupported.
    pub fn parse(raw: u8) -> Result<Self, PduError> {
        let unsupported = |what: &str| PduError::unsupported("TP-DCS", format!("{raw:#04X}: {what}"));
        let class_bits = |raw: u8| match raw & 0b11 {
            0 => MessageClass::Class0,
            1 => MessageClass::Class1,
            2 => MessageClass::Class2,
            _ => MessageClass::Class3,
        };
        let (alphabet, class) = match raw >> 4 {
            // General data coding (00xx) and its automatic-deletion twin (01xx).
            0b0000..=0b0111 => {
                if raw & 0x20 != 0 {
                    return Err(unsupported("compressed user data"));
                }
                let alphabet = match (raw >> 2) & 0b11 {
                    0b00 => Alphabet::Gsm7,
                    0b01 => Alphabet::Data8,
                    0b10 => Alphabet::Ucs2,
                    _ => return Err(unsupported("reserved alphabet")),
                };
                (alphabet, (raw & 0x10 != 0).then(|| class_bits(raw)))
            }
            0b1000..=0b1011 => return Err(unsupported("reserved coding group")),
            // Message waiting indication: discard (1100) or store (1101) in GSM-7, store in UCS-2 (1110).
            0b1100 | 0b1101 => (Alphabet::Gsm7, None),
            0b1110 => (Alphabet::Ucs2, None),
            // Data coding / message class group.
            _ => {
                let alphabet = if raw & 0x04 == 0 {
                    Alphabet::Gsm7
                } else {
                    Alphabet::Data8
                };
                (alphabet, Some(class_bits(raw)))
            }
        };
        Ok(Self { raw, alphabet, class })
    }

    /// The plain scheme for an alphabet, no class: `00`, `04` or `08`.
    pub(crate) fn plain(alphabet: Alphabet) -> Self {
        let raw = match alphabet {
            Alphabet::Gsm7 => 0x00,
            Alphabet::Data8 => 0x04,
            Alphabet::Ucs2 => 0x08,
        };
        Self {
            raw,
            alphabet,
            class: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parsed(raw: u8) -> (Alphabet, Option<MessageClass>) {
        let dcs = DataCoding::parse(raw).unwrap();
        assert_eq!(dcs.raw, raw);
        (dcs.alphabet, dcs.class)
    }

    #[test]
    fn general_data_coding_reads_alphabet_and_optional_class() {
        assert_eq!(parsed(0x00), (Alphabet::Gsm7, None));
        assert_eq!(parsed(0x04), (Alphabet::Data8, None));
        assert_eq!(parsed(0x08), (Alphabet::Ucs2, None));
        assert_eq!(parsed(0x10), (Alphabet::Gsm7, Some(MessageClass::Class0)));
        assert_eq!(parsed(0x18), (Alphabet::Ucs2, Some(MessageClass::Class0)));
        assert_eq!(parsed(0x16), (Alphabet::Data8, Some(MessageClass::Class2)));
        assert_eq!(parsed(0x48), (Alphabet::Ucs2, None));
        // Class bits without the "class present" bit mean nothing.
        assert_eq!(parsed(0x01), (Alphabet::Gsm7, None));
    }

    #[test]
    fn message_class_group_has_gsm7_or_8_bit() {
        assert_eq!(parsed(0xF0), (Alphabet::Gsm7, Some(MessageClass::Class0)));
        assert_eq!(parsed(0xF1), (Alphabet::Gsm7, Some(MessageClass::Class1)));
        assert_eq!(parsed(0xF5), (Alphabet::Data8, Some(MessageClass::Class1)));
        assert_eq!(parsed(0xF6), (Alphabet::Data8, Some(MessageClass::Class2)));
        assert_eq!(parsed(0xF3), (Alphabet::Gsm7, Some(MessageClass::Class3)));
    }

    #[test]
    fn message_waiting_groups_carry_text() {
        assert_eq!(parsed(0xC0), (Alphabet::Gsm7, None));
        assert_eq!(parsed(0xD8), (Alphabet::Gsm7, None));
        assert_eq!(parsed(0xE0), (Alphabet::Ucs2, None));
    }

    #[test]
    fn compressed_and_reserved_codings_are_unsupported() {
        for raw in [0x20, 0x28, 0x0C, 0x1C, 0x60, 0x80, 0xB4] {
            let err = DataCoding::parse(raw).unwrap_err();
            assert!(
                matches!(err, PduError::Unsupported { field: "TP-DCS", .. }),
                "{raw:#04X}: {err}"
            );
        }
    }
}
