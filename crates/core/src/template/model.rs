//! Template types and the checks a template passes.

use chrono::{DateTime, Utc};

use super::text::{TemplateError, TemplateText};
use crate::FieldError;
use crate::secret::at_rest::{self, Column};
use crate::sms::body::MAX_CHARS;
use crate::workspace::WorkspaceId;

id_type!(TemplateId);

/// Longest template name, in characters.
pub const MAX_NAME: usize = 100;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template {
    pub id: TemplateId,
    pub workspace_id: WorkspaceId,
    pub name: String,
    pub body: String,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// A template as its row holds it: the body sealed (or, from before sealing, in plaintext).
#[derive(Debug, Clone)]
pub struct StoredTemplate {
    pub id: TemplateId,
    pub workspace_id: WorkspaceId,
    pub name: String,
    pub body: String,
    pub body_sealed: Option<Vec<u8>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl StoredTemplate {
    /// The template with its body opened.
    pub fn open(self) -> sqlx::Result<Template> {
        Ok(Template {
            body: at_rest::open_text(
                Column::TemplateBody,
                self.id.0,
                self.body,
                self.body_sealed.as_deref(),
            )?,
            id: self.id,
            workspace_id: self.workspace_id,
            name: self.name,
            created_at: self.created_at,
            updated_at: self.updated_at,
        })
    }
}

impl Template {
    /// The variables the body uses, in first-seen order (empty if the stored body no
    /// longer parses, which the checks below prevent).
    pub fn variables(&self) -> Vec<String> {
        TemplateText::parse(&self.body)
            .map(|t| t.variables().into_iter().map(str::to_owned).collect())
            .unwrap_or_default()
    }
}

/// A template's fields, checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TemplateInput {
    pub name: String,
    pub body: String,
}

impl TemplateInput {
    pub fn parse(name: &str, body: &str) -> Result<Self, Vec<FieldError>> {
        let mut errors = Vec::new();
        let name = name.trim();
        if name.is_empty() {
            errors.push(FieldError::new("name", "Enter a name."));
        } else if name.chars().count() > MAX_NAME {
            errors.push(FieldError::new(
                "name",
                format!("Use at most {MAX_NAME} characters."),
            ));
        }
        let cleaned = crate::sms::body::clean(body);
        if cleaned.trim().is_empty() {
            errors.push(FieldError::new("body", "Enter the message text."));
        } else if cleaned.chars().count() > MAX_CHARS {
            errors.push(FieldError::new(
                "body",
                format!(
                    "Use at most {MAX_CHARS} characters (this has {}).",
                    cleaned.chars().count()
                ),
            ));
        } else if let Err(e) = TemplateText::parse(&cleaned) {
            errors.push(FieldError::new("body", template_error_message(&e)));
        }
        if !errors.is_empty() {
            return Err(errors);
        }
        Ok(Self {
            name: name.to_owned(),
            body: cleaned,
        })
    }
}

fn template_error_message(e: &TemplateError) -> String {
    e.to_string()
}

#[derive(Debug, thiserror::Error)]
pub enum TemplateStoreError {
    #[error("{}", .0.first().map(|e| e.message.as_str()).unwrap_or("Invalid input."))]
    Invalid(Vec<FieldError>),
    #[error("A template named \"{0}\" already exists.")]
    DuplicateName(String),
    #[error("Template not found.")]
    NotFound,
    #[error("This template is used by {0} scheduled send(s); change or delete them first.")]
    InUse(i64),
    #[error("This workspace can keep at most {0} templates (ENDER_MAX_TEMPLATES). Delete one first.")]
    TooMany(i64),
    #[error(transparent)]
    Database(#[from] sqlx::Error),
}
