//! Account types, parsed and validated at the edge.

use chrono::{DateTime, Utc};
use secrecy::{ExposeSecret, SecretString};
use uuid::Uuid;

use crate::FieldError;

/// Identifier of a user.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, sqlx::Type, serde::Serialize, serde::Deserialize)]
#[sqlx(transparent)]
#[serde(transparent)]
pub struct UserId(pub Uuid);

impl UserId {
    pub fn new() -> Self {
        Self(Uuid::now_v7())
    }
}

impl Default for UserId {
    fn default() -> Self {
        Self::new()
    }
}

impl std::fmt::Display for UserId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

/// A syntactically valid email address, as typed (trimmed).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Email(String);

impl Email {
    pub fn parse(raw: &str) -> Result<Self, FieldError> {
        let value = raw.trim();
        let invalid = || FieldError::new("email", "Enter a valid email address.");
        if value.is_empty() {
            return Err(FieldError::new("email", "Enter your email address."));
        }
        if value.chars().count() > 254 || value.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(invalid());
        }
        let (local, domain) = value.rsplit_once('@').ok_or_else(invalid)?;
        let domain_ok = domain.contains('.')
            && !domain.starts_with('.')
            && !domain.ends_with('.')
            && !domain.contains("..")
            && !domain.contains('@');
        if local.is_empty() || local.len() > 64 || !domain_ok || local.contains('@') {
            return Err(invalid());
        }
        Ok(Self(value.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The form used for look-ups and uniqueness.
    pub fn normalized(&self) -> String {
        self.0.to_lowercase()
    }
}

/// A new password: at least 10 characters, at most 256.
pub struct Password(SecretString);

impl Password {
    pub const MIN_CHARS: usize = 10;
    pub const MAX_CHARS: usize = 256;

    pub fn parse(raw: &str, field: &'static str) -> Result<Self, FieldError> {
        let n = raw.chars().count();
        if n < Self::MIN_CHARS {
            return Err(FieldError::new(
                field,
                format!("Use at least {} characters.", Self::MIN_CHARS),
            ));
        }
        if n > Self::MAX_CHARS {
            return Err(FieldError::new(
                field,
                format!("Use at most {} characters.", Self::MAX_CHARS),
            ));
        }
        Ok(Self(SecretString::from(raw.to_owned())))
    }

    pub fn secret(&self) -> SecretString {
        SecretString::from(self.0.expose_secret().to_owned())
    }
}

impl std::fmt::Debug for Password {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Password(..)")
    }
}

/// A person's name as they want it shown: up to 100 characters, no control characters.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FullName(String);

impl FullName {
    pub fn parse(raw: &str) -> Result<Self, FieldError> {
        let value = raw.trim();
        if value.chars().count() > 100 {
            return Err(FieldError::new("full_name", "Use at most 100 characters."));
        }
        if value.chars().any(char::is_control) {
            return Err(FieldError::new("full_name", "Remove the control characters."));
        }
        Ok(Self(value.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// What a mailed token may be used for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenPurpose {
    VerifyEmail,
    ResetPassword,
}

impl TokenPurpose {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::VerifyEmail => "verify_email",
            Self::ResetPassword => "reset_password",
        }
    }
}

/// A user as the rest of the system sees it (never the password hash).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    pub id: UserId,
    pub email: String,
    pub full_name: String,
    pub email_verified_at: Option<DateTime<Utc>>,
    pub is_admin: bool,
    pub has_password: bool,
    pub created_at: DateTime<Utc>,
    /// Set while an administrator has suspended the account: it cannot sign in.
    pub suspended_at: Option<DateTime<Utc>>,
}

impl User {
    pub fn is_verified(&self) -> bool {
        self.email_verified_at.is_some()
    }

    /// The name to greet the user with: the full name, else the email.
    pub fn display_name(&self) -> &str {
        if self.full_name.is_empty() {
            &self.email
        } else {
            &self.full_name
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emails_are_trimmed_and_validated() {
        assert_eq!(
            Email::parse("  Ada@Example.org ").unwrap().as_str(),
            "Ada@Example.org"
        );
        assert_eq!(
            Email::parse("Ada@Example.org").unwrap().normalized(),
            "ada@example.org"
        );
        for bad in [
            "",
            "ada",
            "ada@",
            "@example.org",
            "ada@example",
            "a da@example.org",
            "ada@.org",
            "ada@example..org",
        ] {
            assert!(Email::parse(bad).is_err(), "{bad:?} should be rejected");
        }
    }

    #[test]
    fn passwords_need_ten_characters() {
        assert_eq!(
            Password::parse("123456789", "password").unwrap_err().field,
            "password"
        );
        assert!(Password::parse("1234567890", "password").is_ok());
        assert!(Password::parse("ééééééééééé", "password").is_ok());
        assert!(Password::parse(&"x".repeat(257), "password").is_err());
    }

    #[test]
    fn full_names_reject_control_characters_and_length() {
        assert_eq!(
            FullName::parse("  Ada Lovelace ").unwrap().as_str(),
            "Ada Lovelace"
        );
        assert!(FullName::parse("Ada\u{7}").is_err());
        assert!(FullName::parse(&"a".repeat(101)).is_err());
    }
}
