//! Workspaces, their members' roles, and the one table of what each role may do.

use std::fmt;

use chrono::{DateTime, Utc};

use crate::FieldError;
use crate::account::UserId;

id_type!(WorkspaceId);

impl WorkspaceId {
    pub fn new() -> Self {
        Self(uuid::Uuid::now_v7())
    }
}

impl Default for WorkspaceId {
    fn default() -> Self {
        Self::new()
    }
}

/// A member's role in a workspace. Each role may do everything the ones after it may.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Role {
    /// Billing, deleting the workspace, making or removing owners.
    Owner,
    /// Members, devices, API keys, webhooks, the address book and the audit trail.
    Admin,
    /// Sending, reading messages and contacts, templates and scheduled sends.
    Member,
    /// Reading only.
    Viewer,
}

impl Role {
    pub const ALL: [Role; 4] = [Self::Owner, Self::Admin, Self::Member, Self::Viewer];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Owner => "owner",
            Self::Admin => "admin",
            Self::Member => "member",
            Self::Viewer => "viewer",
        }
    }

    pub fn parse(name: &str) -> Result<Self, FieldError> {
        Self::ALL
            .into_iter()
            .find(|r| r.as_str() == name.trim())
            .ok_or_else(|| FieldError::new("role", "Choose owner, admin, member or viewer."))
    }

    /// A sentence for the members page.
    pub fn describe(self) -> &'static str {
        match self {
            Self::Owner => "Everything, including billing, deleting the workspace and naming owners",
            Self::Admin => "Members, devices, API keys, webhooks and the address book",
            Self::Member => "Send SMS, read messages and contacts, manage templates and schedules",
            Self::Viewer => "Read only",
        }
    }

    /// Whether this role may do `action` (the table is [`Action::least_role`]).
    pub fn may(self, action: Action) -> bool {
        self <= action.least_role()
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Something a member asks to do in a workspace. Every page and API route names one, and
/// [`Role::may`] decides; there is no other check of roles.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Action {
    /// See messages, batches, contacts, groups, templates, schedules, devices, webhook
    /// endpoints (never their secrets), usage and the members list.
    Read,
    /// Send SMS (now or from a template) and cancel a pending one.
    Send,
    /// Create, change and delete templates.
    ManageTemplates,
    /// Create, change, pause and delete scheduled sends.
    ManageSchedules,
    /// Change contacts and groups, import and export them.
    ManageContacts,
    /// Add, change, pause, remove devices and rotate their keys.
    ManageDevices,
    /// Create, rotate and revoke API keys.
    ManageKeys,
    /// Create, change and delete webhook endpoints, reveal and rotate their secrets,
    /// replay deliveries.
    ManageWebhooks,
    /// Invite and remove members and change roles below owner.
    ManageMembers,
    /// Read the audit trail.
    ReadAudit,
    /// Export the message history (every body in one file) and delete conversations.
    Export,
    /// Rename the workspace.
    Rename,
    /// The plan, payments and invoices.
    ManageBilling,
    /// Make a member an owner, or an owner something else.
    ManageOwners,
    /// Delete the workspace and everything it holds.
    Delete,
}

impl Action {
    pub const ALL: [Action; 15] = [
        Self::Read,
        Self::Send,
        Self::ManageTemplates,
        Self::ManageSchedules,
        Self::ManageContacts,
        Self::ManageDevices,
        Self::ManageKeys,
        Self::ManageWebhooks,
        Self::ManageMembers,
        Self::ReadAudit,
        Self::Export,
        Self::Rename,
        Self::ManageBilling,
        Self::ManageOwners,
        Self::Delete,
    ];

    /// What the action is, to finish "Your role does not allow you to …".
    pub fn describe(self) -> &'static str {
        match self {
            Self::Read => "see this workspace",
            Self::Send => "send SMS",
            Self::ManageTemplates => "change templates",
            Self::ManageSchedules => "change scheduled sends",
            Self::ManageContacts => "change contacts and groups",
            Self::ManageDevices => "change devices",
            Self::ManageKeys => "manage API keys",
            Self::ManageWebhooks => "manage webhooks",
            Self::ManageMembers => "manage members",
            Self::ReadAudit => "read the audit trail",
            Self::Export => "export the workspace's messages",
            Self::Rename => "rename the workspace",
            Self::ManageBilling => "manage billing",
            Self::ManageOwners => "change who owns the workspace",
            Self::Delete => "delete the workspace",
        }
    }

    /// The least role that may do this: the whole authorisation table.
    pub fn least_role(self) -> Role {
        match self {
            Self::Read => Role::Viewer,
            Self::Send | Self::ManageTemplates | Self::ManageSchedules => Role::Member,
            Self::ManageContacts
            | Self::ManageDevices
            | Self::ManageKeys
            | Self::ManageWebhooks
            | Self::ManageMembers
            | Self::ReadAudit
            | Self::Export
            | Self::Rename => Role::Admin,
            Self::ManageBilling | Self::ManageOwners | Self::Delete => Role::Owner,
        }
    }
}

/// A workspace as its members see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Workspace {
    pub id: WorkspaceId,
    pub name: String,
    /// The user it was made for at sign-up: they cannot leave it or be removed from it,
    /// and it goes when their account does. `None` for a shared workspace.
    pub personal_for: Option<UserId>,
    pub created_at: DateTime<Utc>,
}

/// One user's place in one workspace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Membership {
    pub workspace: Workspace,
    pub user_id: UserId,
    pub role: Role,
}

/// A workspace's name as typed: trimmed, 1 to 80 characters, no control characters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkspaceName(String);

impl WorkspaceName {
    pub const MAX_CHARS: usize = 80;

    pub fn parse(raw: &str) -> Result<Self, FieldError> {
        let name = raw.trim();
        if name.is_empty() {
            return Err(FieldError::new("name", "Give the workspace a name."));
        }
        if name.chars().count() > Self::MAX_CHARS {
            return Err(FieldError::new(
                "name",
                format!("A workspace name has at most {} characters.", Self::MAX_CHARS),
            ));
        }
        if name.chars().any(char::is_control) {
            return Err(FieldError::new(
                "name",
                "A workspace name cannot hold control characters.",
            ));
        }
        Ok(Self(name.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The name of a new user's personal workspace.
    pub fn personal_for(full_name: &str, email: &str) -> Self {
        let who = if full_name.trim().is_empty() {
            email
        } else {
            full_name.trim()
        };
        let name: String = format!("{who}'s workspace")
            .chars()
            .filter(|c| !c.is_control())
            .take(Self::MAX_CHARS)
            .collect();
        Self(name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every action against every role, written out so a change to the table is a change
    /// to this test too.
    #[test]
    fn the_table_of_actions_and_roles_is_exactly_this() {
        use Action::*;
        let expected: [(Action, [bool; 4]); 15] = [
            //                  owner  admin  member viewer
            (Read, [true, true, true, true]),
            (Send, [true, true, true, false]),
            (ManageTemplates, [true, true, true, false]),
            (ManageSchedules, [true, true, true, false]),
            (ManageContacts, [true, true, false, false]),
            (ManageDevices, [true, true, false, false]),
            (ManageKeys, [true, true, false, false]),
            (ManageWebhooks, [true, true, false, false]),
            (ManageMembers, [true, true, false, false]),
            (ReadAudit, [true, true, false, false]),
            (Export, [true, true, false, false]),
            (Rename, [true, true, false, false]),
            (ManageBilling, [true, false, false, false]),
            (ManageOwners, [true, false, false, false]),
            (Delete, [true, false, false, false]),
        ];
        assert_eq!(
            expected.iter().map(|e| e.0).collect::<Vec<_>>(),
            Action::ALL,
            "every action is in the table once"
        );
        for (action, allowed) in expected {
            for (role, want) in Role::ALL.into_iter().zip(allowed) {
                assert_eq!(role.may(action), want, "{role} may {action:?}");
            }
        }
    }

    #[test]
    fn roles_parse_from_their_names_only() {
        for role in Role::ALL {
            assert_eq!(Role::parse(role.as_str()), Ok(role));
        }
        for bad in ["", "Owner", "root", "admin2", "superuser"] {
            assert!(Role::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn names_are_trimmed_bounded_and_printable() {
        assert_eq!(WorkspaceName::parse("  Clinic  ").unwrap().as_str(), "Clinic");
        assert!(WorkspaceName::parse("   ").is_err());
        assert!(WorkspaceName::parse(&"x".repeat(81)).is_err());
        assert!(WorkspaceName::parse(&"é".repeat(80)).is_ok());
        assert!(WorkspaceName::parse("a\u{0}b").is_err());
        assert_eq!(
            WorkspaceName::personal_for("", "ana@example.org").as_str(),
            "ana@example.org's workspace"
        );
        assert_eq!(
            WorkspaceName::personal_for(" Ana ", "a@b.c").as_str(),
            "Ana's workspace"
        );
        assert!(
            WorkspaceName::personal_for(&"n".repeat(200), "a@b.c")
                .as_str()
                .chars()
                .count()
                <= 80
        );
    }
}
