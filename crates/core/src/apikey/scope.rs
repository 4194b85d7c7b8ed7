//! What an integration key may do. A key holds a set of scopes; each API route needs one
//! (the table is [`for_route`]). A browser session may do what its role in the workspace
//! allows ([`action_for`]).

use std::fmt;

use crate::workspace::Action;

/// One permission of an integration key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Scope {
    /// Send SMS (now, from a template) and create, change or delete scheduled sends.
    Send,
    /// Read messages, batches, delivery status, quota, devices and scheduled sends.
    Read,
    /// Read and change contacts, groups and templates.
    Contacts,
    /// Manage webhook endpoints: their secrets, deliveries, tests and replays.
    Webhooks,
    /// Create, rotate and revoke integration keys.
    Keys,
}

impl Scope {
    pub const ALL: [Scope; 5] = [Self::Send, Self::Read, Self::Contacts, Self::Webhooks, Self::Keys];

    /// What a new key gets unless its maker chooses: everything the Vendel SDKs call
    /// (send, status, batches, messages, quota, devices, contacts and groups), nothing more.
    pub const DEFAULT: [Scope; 3] = [Self::Send, Self::Read, Self::Contacts];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Send => "send",
            Self::Read => "read",
            Self::Contacts => "contacts",
            Self::Webhooks => "webhooks",
            Self::Keys => "keys",
        }
    }

    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.as_str() == name.trim())
    }

    /// A sentence for the keys page.
    pub fn describe(self) -> &'static str {
        match self {
            Self::Send => "Send SMS and manage scheduled sends",
            Self::Read => "Read messages, delivery status, quota, devices and schedules",
            Self::Contacts => "Read and change contacts, groups and templates",
            Self::Webhooks => "Manage webhooks, including their signing secrets",
            Self::Keys => "Create, rotate and revoke API keys",
        }
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A set of scopes, kept in the order of [`Scope::ALL`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Scopes(u8);

impl Scopes {
    pub fn all() -> Self {
        Self::from_iter(Scope::ALL)
    }

    pub fn default_for_new_keys() -> Self {
        Self::from_iter(Scope::DEFAULT)
    }

    fn bit(s: Scope) -> u8 {
        1 << (s as u8)
    }

    pub fn contains(self, s: Scope) -> bool {
        self.0 & Self::bit(s) != 0
    }

    /// Every scope of `other` is in `self`.
    pub fn covers(self, other: Scopes) -> bool {
        other.0 & !self.0 == 0
    }

    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    pub fn iter(self) -> impl Iterator<Item = Scope> {
        Scope::ALL.into_iter().filter(move |s| self.contains(*s))
    }

    /// The names as stored in the database (`api_keys.scopes`).
    pub fn names(self) -> Vec<String> {
        self.iter().map(|s| s.as_str().to_owned()).collect()
    }

    /// Scopes from stored names; unknown names (from a newer version) grant nothing.
    pub fn from_names<S: AsRef<str>>(names: &[S]) -> Self {
        Self::from_iter(names.iter().filter_map(|n| Scope::parse(n.as_ref())))
    }

    /// Scopes a caller asked for by name, refusing unknown names and an empty set.
    pub fn parse_requested<S: AsRef<str>>(names: &[S]) -> Result<Self, crate::FieldError> {
        let mut out = Self::default();
        for n in names {
            let Some(s) = Scope::parse(n.as_ref()) else {
                return Err(crate::FieldError::new(
                    "scopes",
                    format!(
                        "Unknown scope `{}`: use {}.",
                        n.as_ref().trim(),
                        Scope::ALL.map(Scope::as_str).join(", ")
                    ),
                ));
            };
            out.0 |= Self::bit(s);
        }
        if out.is_empty() {
            return Err(crate::FieldError::new(
                "scopes",
                "Give the key at least one scope.",
            ));
        }
        Ok(out)
    }
}

impl FromIterator<Scope> for Scopes {
    fn from_iter<I: IntoIterator<Item = Scope>>(iter: I) -> Self {
        Self(iter.into_iter().fold(0, |acc, s| acc | Self::bit(s)))
    }
}

/// Stored as `text[]` of names.
impl sqlx::Type<sqlx::Postgres> for Scopes {
    fn type_info() -> sqlx::postgres::PgTypeInfo {
        <Vec<String> as sqlx::Type<sqlx::Postgres>>::type_info()
    }

    fn compatible(ty: &sqlx::postgres::PgTypeInfo) -> bool {
        <Vec<String> as sqlx::Type<sqlx::Postgres>>::compatible(ty)
    }
}

impl<'r> sqlx::Decode<'r, sqlx::Postgres> for Scopes {
    fn decode(value: sqlx::postgres::PgValueRef<'r>) -> Result<Self, sqlx::error::BoxDynError> {
        let names = <Vec<String> as sqlx::Decode<sqlx::Postgres>>::decode(value)?;
        Ok(Self::from_names(&names))
    }
}

/// The scope an integration API route needs, from its method and its route template
/// (as axum matched it, with or without the `/api` prefix). Anything not listed here needs
/// every scope, so a route added without a line of its own is closed to limited keys.
pub fn for_route(method: &str, template: &str) -> Option<Scope> {
    let path = template
        .strip_prefix("/api")
        .filter(|p| p.starts_with('/'))
        .unwrap_or(template);
    let read_only = method.eq_ignore_ascii_case("GET") || method.eq_ignore_ascii_case("HEAD");
    let under = |prefix: &str| path == prefix || path.starts_with(&format!("{prefix}/"));
    Some(if under("/api-keys") {
        Scope::Keys
    } else if under("/webhooks") {
        Scope::Webhooks
    } else if under("/contacts") || under("/templates") {
        Scope::Contacts
    } else if under("/schedules") {
        if read_only { Scope::Read } else { Scope::Send }
    } else if path == "/sms/send" || path == "/sms/send-template" {
        Scope::Send
    } else if path == "/sms/validate-cron"
        || read_only
            && (under("/sms/status")
                || under("/sms/batch")
                || path == "/sms/messages"
                || path == "/plans/quota"
                || path == "/devices")
    {
        Scope::Read
    } else {
        return None;
    })
}

/// What a person signed in (calling an integration route from their session, in their
/// current workspace) asks to do by calling the route; their role must allow it
/// ([`Action::least_role`]). `None` for a state-changing route this table does not name,
/// which only an owner may call, so a new route is closed until it has a line here. Keys
/// are held to their scopes ([`for_route`]) instead.
pub fn action_for(method: &str, template: &str) -> Option<Action> {
    let path = template
        .strip_prefix("/api")
        .filter(|p| p.starts_with('/'))
        .unwrap_or(template);
    let read_only = method.eq_ignore_ascii_case("GET") || method.eq_ignore_ascii_case("HEAD");
    let under = |prefix: &str| path == prefix || path.starts_with(&format!("{prefix}/"));
    Some(if under("/api-keys") {
        Action::ManageKeys
    } else if under("/plans") || under("/promos") {
        if read_only {
            Action::Read
        } else {
            Action::ManageBilling
        }
    } else if under("/audit") {
        Action::ReadAudit
    } else if under("/exports") || path == "/user/export" || under("/sms/conversations") {
        Action::Export
    } else if under("/webhooks") {
        if read_only && !path.ends_with("/secret") {
            Action::Read
        } else {
            Action::ManageWebhooks
        }
    } else if read_only || path == "/sms/validate-cron" {
        Action::Read
    } else if under("/contacts") {
        Action::ManageContacts
    } else if under("/templates") {
        Action::ManageTemplates
    } else if under("/schedules") {
        Action::ManageSchedules
    } else if path == "/sms/send" || path == "/sms/send-template" {
        Action::Send
    } else {
        return None;
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_session_call_asks_for_the_action_its_route_does() {
        let table: &[(&str, &str, Option<Action>)] = &[
            ("POST", "/api/sms/send", Some(Action::Send)),
            ("POST", "/api/sms/send-template", Some(Action::Send)),
            ("POST", "/api/sms/validate-cron", Some(Action::Read)),
            ("GET", "/api/sms/status/{id}", Some(Action::Read)),
            ("GET", "/api/sms/messages", Some(Action::Read)),
            ("GET", "/api/plans/quota", Some(Action::Read)),
            ("GET", "/api/devices", Some(Action::Read)),
            ("GET", "/api/contacts", Some(Action::Read)),
            ("POST", "/api/contacts", Some(Action::ManageContacts)),
            (
                "DELETE",
                "/api/contacts/groups/{id}/members",
                Some(Action::ManageContacts),
            ),
            ("GET", "/api/templates", Some(Action::Read)),
            ("PUT", "/api/templates/{id}", Some(Action::ManageTemplates)),
            ("GET", "/api/schedules", Some(Action::Read)),
            ("POST", "/api/schedules/{id}/pause", Some(Action::ManageSchedules)),
            ("GET", "/api/webhooks", Some(Action::Read)),
            ("GET", "/api/webhooks/{id}/deliveries", Some(Action::Read)),
            ("GET", "/api/webhooks/{id}/secret", Some(Action::ManageWebhooks)),
            ("POST", "/api/webhooks/{id}/replay", Some(Action::ManageWebhooks)),
            ("GET", "/api/api-keys", Some(Action::ManageKeys)),
            ("POST", "/api/api-keys", Some(Action::ManageKeys)),
            ("GET", "/api/audit", Some(Action::ReadAudit)),
            ("GET", "/api/exports/{id}/download", Some(Action::Export)),
            ("POST", "/api/exports", Some(Action::Export)),
            ("GET", "/api/user/export", Some(Action::Export)),
            ("POST", "/api/sms/conversations/delete", Some(Action::Export)),
            ("POST", "/api/something-new", None),
            ("DELETE", "/api/sms/status/{id}", None),
        ];
        for (method, route, action) in table {
            assert_eq!(action_for(method, route), *action, "{method} {route}");
        }
    }

    #[test]
    fn every_integration_route_needs_the_scope_its_table_row_names() {
        let table: &[(&str, &str, Option<Scope>)] = &[
            ("POST", "/api/sms/send", Some(Scope::Send)),
            ("POST", "/api/sms/send-template", Some(Scope::Send)),
            ("POST", "/api/sms/validate-cron", Some(Scope::Read)),
            ("GET", "/api/sms/status/{id}", Some(Scope::Read)),
            ("GET", "/api/sms/batch/{id}", Some(Scope::Read)),
            ("GET", "/api/sms/messages", Some(Scope::Read)),
            ("GET", "/api/plans/quota", Some(Scope::Read)),
            ("GET", "/api/devices", Some(Scope::Read)),
            ("GET", "/api/schedules", Some(Scope::Read)),
            ("GET", "/api/schedules/{id}/runs", Some(Scope::Read)),
            ("POST", "/api/schedules", Some(Scope::Send)),
            ("PUT", "/api/schedules/{id}", Some(Scope::Send)),
            ("DELETE", "/api/schedules/{id}", Some(Scope::Send)),
            ("POST", "/api/schedules/{id}/pause", Some(Scope::Send)),
            ("GET", "/api/contacts", Some(Scope::Contacts)),
            ("POST", "/api/contacts/bulk-delete", Some(Scope::Contacts)),
            (
                "DELETE",
                "/api/contacts/groups/{id}/members",
                Some(Scope::Contacts),
            ),
            ("PUT", "/api/templates/{id}", Some(Scope::Contacts)),
            ("GET", "/api/webhooks", Some(Scope::Webhooks)),
            ("GET", "/api/webhooks/{id}/secret", Some(Scope::Webhooks)),
            ("POST", "/api/webhooks/test", Some(Scope::Webhooks)),
            ("GET", "/api/api-keys", Some(Scope::Keys)),
            ("POST", "/api/api-keys", Some(Scope::Keys)),
            ("POST", "/api/api-keys/{id}/rotate", Some(Scope::Keys)),
            ("DELETE", "/api/api-keys/{id}", Some(Scope::Keys)),
            // Not in the table: every scope is needed.
            ("POST", "/api/sms/messages", None),
            ("POST", "/api/devices", None),
            ("GET", "/api/api-keysx", None),
            ("GET", "/api/webhooksx", None),
            ("GET", "/api/something-new", None),
        ];
        for (method, path, want) in table {
            assert_eq!(for_route(method, path), *want, "{method} {path}");
            let bare = path.strip_prefix("/api").unwrap();
            assert_eq!(for_route(method, bare), *want, "{method} {bare}");
        }
    }

    #[test]
    fn scopes_round_trip_through_their_names_and_refuse_unknown_ones() {
        let s = Scopes::default_for_new_keys();
        assert_eq!(s.names(), ["send", "read", "contacts"]);
        assert_eq!(Scopes::from_names(&s.names()), s);
        assert!(Scopes::all().covers(s));
        assert!(!s.covers(Scopes::all()));
        assert!(!s.contains(Scope::Keys));
        assert_eq!(
            Scopes::from_names(&["read", "future-scope"]),
            Scopes::from_iter([Scope::Read])
        );
        assert!(Scopes::parse_requested(&["read", "nope"]).is_err());
        assert!(Scopes::parse_requested::<&str>(&[]).is_err());
        assert_eq!(
            Scopes::parse_requested(&[" webhooks", "keys"]).unwrap(),
            Scopes::from_iter([Scope::Webhooks, Scope::Keys])
        );
    }
}
