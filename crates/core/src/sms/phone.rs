//! Phone numbers in E.164 (`+` and 2–15 digits, no leading zero).

/// A number in E.164 form.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct PhoneNumber(String);

impl PhoneNumber {
    /// Accepts E.164 with common formatting (spaces, dashes, dots, parentheses) removed.
    pub fn parse(raw: &str) -> Result<Self, InvalidPhone> {
        let cleaned: String = raw
            .trim()
            .chars()
            .filter(|c| !matches!(c, ' ' | '-' | '.' | '(' | ')' | '\u{a0}'))
            .collect();
        let digits = cleaned.strip_prefix('+').ok_or(InvalidPhone)?;
        let valid = (2..=15).contains(&digits.len())
            && digits.chars().all(|c| c.is_ascii_digit())
            && !digits.starts_with('0');
        if valid {
            Ok(Self(cleaned))
        } else {
            Err(InvalidPhone)
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn into_string(self) -> String {
        self.0
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("not an E.164 phone number")]
pub struct InvalidPhone;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn e164_numbers_are_accepted_and_normalised() {
        assert_eq!(PhoneNumber::parse("+1234567890").unwrap().as_str(), "+1234567890");
        assert_eq!(
            PhoneNumber::parse(" +1 (555) 123-4567 ").unwrap().as_str(),
            "+15551234567"
        );
        assert_eq!(
            PhoneNumber::parse("+44.20.7946.0958").unwrap().as_str(),
            "+442079460958"
        );
    }

    #[test]
    fn other_forms_are_refused() {
        for bad in [
            "",
            "+",
            "1234567890",
            "+0123456",
            "+1",
            "+1234567890123456",
            "+12a456",
            "++123",
            "00441234",
        ] {
            assert!(PhoneNumber::parse(bad).is_err(), "{bad:?}");
        }
    }
}
