//! The administrators' console, shared by its pages, its API routes and the admin CLI:
//! people, workspaces, plans and promo codes, instance settings, the health figures and
//! the audit log of what administrators did.

pub mod audit;
pub mod health;
pub mod people;
pub mod plans;
pub mod settings;
pub mod workspaces;

use crate::FieldError;
use crate::account::{User, UserId};

/// Who acts: a signed-in administrator, or the server's shell (the CLI).
#[derive(Debug, Clone)]
pub struct Admin {
    pub id: Option<UserId>,
    /// Their name and address as the log keeps it.
    pub label: String,
}

impl Admin {
    pub fn user(user: &User) -> Self {
        let label = if user.full_name.trim().is_empty() {
            user.email.clone()
        } else {
            format!("{} <{}>", user.full_name.trim(), user.email)
        };
        Self {
            id: Some(user.id),
            label,
        }
    }

    /// The command line on the server: whoever runs it can read the database anyway.
    pub fn shell() -> Self {
        let who = std::env::var("USER").unwrap_or_default();
        Self {
            id: None,
            label: if who.is_empty() {
                "command line".to_owned()
            } else {
                format!("command line ({who})")
            },
        }
    }

    fn is(&self, user: UserId) -> bool {
        self.id == Some(user)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    #[error(transparent)]
    Invalid(#[from] FieldError),
    /// The action is not allowed as asked; the text says why.
    #[error("{0}")]
    Refused(String),
    /// The action touches another administrator and needs a second confirmation.
    #[error("{0}")]
    NeedsConfirmation(String),
    #[error("Not found.")]
    NotFound,
    #[error(transparent)]
    Database(#[from] sqlx::Error),
}

impl From<crate::account::AccountError> for AdminError {
    fn from(e: crate::account::AccountError) -> Self {
        use crate::account::AccountError as A;
        match e {
            A::Database(d) => Self::Database(d),
            A::NotFound => Self::NotFound,
            A::Invalid(f) => Self::Refused(f.message),
            other => Self::Refused(other.to_string()),
        }
    }
}

impl From<crate::workspace::WorkspaceError> for AdminError {
    fn from(e: crate::workspace::WorkspaceError) -> Self {
        use crate::workspace::WorkspaceError as W;
        match e {
            W::Db(d) => Self::Database(d),
            W::NotFound => Self::NotFound,
            other => Self::Refused(other.to_string()),
        }
    }
}
