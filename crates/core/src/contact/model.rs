//! Contact and group types, and the checks their fields pass.

use chrono::{DateTime, Utc};

use crate::FieldError;
use crate::sms::phone::PhoneNumber;
use crate::workspace::WorkspaceId;

id_type!(ContactId);
id_type!(GroupId);

/// Longest contact or group name, in characters.
pub const MAX_NAME: usize = 200;
/// Longest contact notes, in characters.
pub const MAX_NOTES: usize = 2000;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Contact {
    pub id: ContactId,
    pub workspace_id: WorkspaceId,
    pub name: String,
    pub phone_number: String,
    pub notes: String,
    pub groups: Vec<GroupRef>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// A group as a contact lists it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct GroupRef {
    pub id: GroupId,
    pub name: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Group {
    pub id: GroupId,
    pub workspace_id: WorkspaceId,
    pub name: String,
    pub members: i64,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// A contact's fields, checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContactInput {
    pub name: String,
    pub phone_number: String,
    pub notes: String,
    pub groups: Vec<GroupId>,
}

impl ContactInput {
    /// Checks every field and reports all problems at once.
    pub fn parse(
        name: &str,
        phone: &str,
        notes: &str,
        groups: Vec<GroupId>,
    ) -> Result<Self, Vec<FieldError>> {
        let mut errors = Vec::new();
        let name = name.trim();
        if name.chars().count() > MAX_NAME {
            errors.push(FieldError::new(
                "name",
                format!("Use at most {MAX_NAME} characters."),
            ));
        }
        let phone_number = match PhoneNumber::parse(phone) {
            Ok(p) => p.into_string(),
            Err(_) => {
                errors.push(FieldError::new(
                    "phone_number",
                    if phone.trim().is_empty() {
                        "Enter a phone number.".to_owned()
                    } else {
                        format!(
                            "Invalid phone number: {}. Must be E.164 format (e.g. +1234567890).",
                            phone.trim()
                        )
                    },
                ));
                String::new()
            }
        };
        let notes = notes.trim();
        if notes.chars().count() > MAX_NOTES {
            errors.push(FieldError::new(
                "notes",
                format!("Use at most {MAX_NOTES} characters."),
            ));
        }
        if !errors.is_empty() {
            return Err(errors);
        }
        let mut groups = groups;
        groups.sort();
        groups.dedup();
        Ok(Self {
            name: name.to_owned(),
            phone_number,
            notes: notes.to_owned(),
            groups,
        })
    }
}

/// A group name, checked: 1–200 characters after trimming.
pub fn parse_group_name(raw: &str) -> Result<String, FieldError> {
    let name = raw.trim();
    if name.is_empty() {
        return Err(FieldError::new("name", "Enter a group name."));
    }
    if name.chars().count() > MAX_NAME {
        return Err(FieldError::new(
            "name",
            format!("Use at most {MAX_NAME} characters."),
        ));
    }
    Ok(name.to_owned())
}

/// What a contact or group change can fail with.
#[derive(Debug, thiserror::Error)]
pub enum ContactError {
    #[error("{}", .0.first().map(|e| e.message.as_str()).unwrap_or("Invalid input."))]
    Invalid(Vec<FieldError>),
    #[error("A contact with the number {0} already exists.")]
    DuplicateNumber(String),
    #[error("A group named \"{0}\" already exists.")]
    DuplicateGroup(String),
    #[error("Contact not found.")]
    NotFound,
    #[error("Group not found.")]
    GroupNotFound,
    #[error("This workspace can keep at most {0} contacts (ENDER_MAX_CONTACTS). Delete some first.")]
    TooManyContacts(i64),
    #[error("This workspace can keep at most {0} groups (ENDER_MAX_GROUPS). Delete one first.")]
    TooManyGroups(i64),
    #[error(transparent)]
    Database(#[from] sqlx::Error),
}

impl From<FieldError> for ContactError {
    fn from(e: FieldError) -> Self {
        Self::Invalid(vec![e])
    }
}

/// Filters and a page for listing contacts.
#[derive(Debug, Clone, Default)]
pub struct ContactQuery {
    /// A substring of the name or number, case-insensitive.
    pub search: Option<String>,
    pub group: Option<GroupId>,
    pub offset: i64,
    pub limit: i64,
}

/// A search string as the SDKs send it: one builds the query without URL-encoding, so
/// `+1555` arrives as ` 1555`; a leading space before digits reads as `+`.
pub fn normalise_search(raw: &str) -> Option<String> {
    let fixed = match raw.strip_prefix(' ') {
        Some(rest) if rest.trim_start().starts_with(|c: char| c.is_ascii_digit()) => {
            format!("+{}", rest.trim_start())
        }
        _ => raw.to_owned(),
    };
    let trimmed = fixed.trim();
    (!trimmed.is_empty()).then(|| trimmed.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unencoded_plus_in_a_search_reads_as_plus() {
        assert_eq!(normalise_search(" 1555").as_deref(), Some("+1555"));
        assert_eq!(normalise_search("+1555").as_deref(), Some("+1555"));
        assert_eq!(normalise_search(" ana ").as_deref(), Some("ana"));
        assert_eq!(normalise_search("   "), None);
    }

    #[test]
    fn contact_input_reports_every_bad_field() {
        let long = "x".repeat(MAX_NAME + 1);
        let errors = ContactInput::parse(&long, "12345", &"n".repeat(MAX_NOTES + 1), vec![]).unwrap_err();
        let fields: Vec<_> = errors.iter().map(|e| e.field).collect();
        assert_eq!(fields, ["name", "phone_number", "notes"]);
        let ok = ContactInput::parse(" Ana ", "+44 20 7946 0958", "", vec![]).unwrap();
        assert_eq!(ok.name, "Ana");
        assert_eq!(ok.phone_number, "+442079460958");
    }
}
