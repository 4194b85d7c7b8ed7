//! Message bodies: cleaning, the 1600-character limit, and GSM-7 / UCS-2 segment counts.

/// Longest body accepted, in characters.
pub const MAX_CHARS: usize = 1600;

/// How a body travels over the air.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Encoding {
    Gsm7,
    Ucs2,
}

impl Encoding {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Gsm7 => "gsm7",
            Self::Ucs2 => "ucs2",
        }
    }
}

/// A cleaned, non-empty body within the limit, with its encoding and segment count.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SmsBody {
    text: String,
    pub encoding: Encoding,
    pub segments: i32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum BodyError {
    #[error("Message body required.")]
    Empty,
    #[error("Message body exceeds 1600 character limit.")]
    TooLong,
}

impl SmsBody {
    pub fn parse(raw: &str) -> Result<Self, BodyError> {
        Self::build(raw, MAX_CHARS)
    }

    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// A received body: cleaned and non-empty; long concatenated SMS (up to 10,000
    /// characters) are kept whole, since the phone already received them.
    pub fn parse_received(raw: &str) -> Result<Self, BodyError> {
        Self::build(raw, 10_000)
    }

    fn build(raw: &str, max_chars: usize) -> Result<Self, BodyError> {
        let text = clean(raw);
        if text.trim().is_empty() {
            return Err(BodyError::Empty);
        }
        if text.chars().count() > max_chars {
            return Err(BodyError::TooLong);
        }
        let (encoding, segments) = measure(&text);
        Ok(Self {
            text,
            encoding,
            segments,
        })
    }
}

/// Removes control and invisible format characters, keeping `\n`, `\r` and `\t`.
pub fn clean(raw: &str) -> String {
    raw.chars()
        .filter(|&c| matches!(c, '\n' | '\r' | '\t') || !(c.is_control() || is_format(c)))
        .collect()
}

/// Unicode general category Cf (format characters).
fn is_format(c: char) -> bool {
    matches!(c,
        '\u{00AD}' | '\u{0600}'..='\u{0605}' | '\u{061C}' | '\u{06DD}' | '\u{070F}' | '\u{08E2}' | '\u{180E}'
        | '\u{200B}'..='\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2060}'..='\u{2064}' | '\u{2066}'..='\u{206F}'
        | '\u{FEFF}' | '\u{FFF9}'..='\u{FFFB}' | '\u{110BD}' | '\u{110CD}' | '\u{1BCA0}'..='\u{1BCA3}'
        | '\u{1D173}'..='\u{1D17A}' | '\u{E0001}' | '\u{E0020}'..='\u{E007F}')
}

/// The GSM 03.38 basic character set.
const GSM7_BASIC: &str = "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà";
/// Characters of the extension table: each takes two septets (escape + code).
const GSM7_EXTENSION: &str = "\u{000C}^{}\\[~]|€";

/// GSM-7 septets of a character, or None when it needs UCS-2.
fn gsm7_units(c: char) -> Option<i32> {
    if GSM7_BASIC.contains(c) {
        Some(1)
    } else if GSM7_EXTENSION.contains(c) {
        Some(2)
    } else {
        None
    }
}

/// The encoding and number of SMS parts of `text`: GSM-7 160 septets in one part or 153
/// per part of a long message (an escape pair never split across parts); UCS-2 70 code
/// units in one part or 67 per part (a surrogate pair never split).
pub fn measure(text: &str) -> (Encoding, i32) {
    let gsm: Option<Vec<i32>> = text.chars().map(gsm7_units).collect();
    match gsm {
        Some(units) => (Encoding::Gsm7, parts(&units, 160, 153)),
        None => {
            let units: Vec<i32> = text
                .chars()
                .map(|c| i32::try_from(c.len_utf16()).unwrap_or(2))
                .collect();
            (Encoding::Ucs2, parts(&units, 70, 67))
        }
    }
}

fn parts(units: &[i32], single: i32, multi: i32) -> i32 {
    let total: i32 = units.iter().sum();
    if total <= single {
        return 1;
    }
    let (mut count, mut used) = (1, 0);
    for &u in units {
        if used + u > multi {
            count += 1;
            used = 0;
        }
        used += u;
    }
    count
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seg(text: &str) -> (Encoding, i32) {
        measure(text)
    }

    #[test]
    fn gsm7_fits_160_then_153_per_part() {
        assert_eq!(seg(&"a".repeat(160)), (Encoding::Gsm7, 1));
        assert_eq!(seg(&"a".repeat(161)), (Encoding::Gsm7, 2));
        assert_eq!(seg(&"a".repeat(306)), (Encoding::Gsm7, 2));
        assert_eq!(seg(&"a".repeat(307)), (Encoding::Gsm7, 3));
    }

    #[test]
    fn extension_characters_count_double_and_are_not_split() {
        assert_eq!(seg(&"€".repeat(80)), (Encoding::Gsm7, 1));
        assert_eq!(seg(&"€".repeat(81)), (Encoding::Gsm7, 2));
        // 152 septets then a two-septet character: it moves whole to the next part.
        let text = format!("{}{}{}", "a".repeat(152), "€", "a".repeat(10));
        assert_eq!(seg(&text), (Encoding::Gsm7, 2));
    }

    #[test]
    fn anything_outside_gsm7_switches_to_ucs2() {
        assert_eq!(seg(&"é".repeat(160)), (Encoding::Gsm7, 1));
        assert_eq!(seg(&"ж".repeat(70)), (Encoding::Ucs2, 1));
        assert_eq!(seg(&"ж".repeat(71)), (Encoding::Ucs2, 2));
        assert_eq!(seg(&"ж".repeat(134)), (Encoding::Ucs2, 2));
        assert_eq!(seg(&"ж".repeat(135)), (Encoding::Ucs2, 3));
        // Emoji are surrogate pairs: two units each, never split.
        assert_eq!(seg(&"😀".repeat(35)), (Encoding::Ucs2, 1));
        assert_eq!(seg(&"😀".repeat(36)), (Encoding::Ucs2, 2));
    }

    #[test]
    fn bodies_are_cleaned_and_limited() {
        assert_eq!(
            SmsBody::parse("a\u{200B}b\u{7}c\td\ne").unwrap().as_str(),
            "abc\td\ne"
        );
        assert_eq!(SmsBody::parse("  \u{200B} "), Err(BodyError::Empty));
        assert!(SmsBody::parse(&"x".repeat(1600)).is_ok());
        assert_eq!(SmsBody::parse(&"x".repeat(1601)), Err(BodyError::TooLong));
    }
}
