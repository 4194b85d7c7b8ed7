//! Instance settings: what an operator changes on the Settings page without a restart
//! (name, support address, mail sender, banner, sign-up policy, maintenance mode) and what
//! takes effect at the next start (billing and its providers' credentials). Stored in
//! `instance_settings`; secrets sealed with the keyring and never read back out to a page
//! or an answer. An environment variable set for a key wins over the stored value.
//!
//! Each process keeps the settings in memory ([`Cache`]) and reloads them when another
//! process saves (a `NOTIFY` on [`CHANGED`]), and every minute in case a notification was
//! missed while its listening connection was down.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, RwLock};

use sqlx::{PgConnection, PgPool};

use crate::FieldError;
use crate::secret::at_rest;

/// The channel a save notifies; the payload is empty.
pub const CHANGED: &str = "ender_settings";

/// What values a setting takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// One line of text, up to the given number of characters.
    Text(usize),
    /// An email address, or empty.
    Email,
    /// An `http(s)` address, or empty.
    Url,
    /// `true` or `false`.
    Bool,
    /// One of the listed values.
    Choice(&'static [&'static str]),
    /// A credential: write-only, sealed at rest; empty means "leave as it is".
    Secret,
}

/// One setting: its key (in the database, the API and the CLI), the environment variable
/// that overrides it, its default, and whether a change needs a restart.
#[derive(Debug, Clone, Copy)]
pub struct Key {
    pub key: &'static str,
    pub label: &'static str,
    pub help: &'static str,
    pub kind: Kind,
    pub env: Option<&'static str>,
    pub default: &'static str,
    pub restart: bool,
}

pub const SIGNUP_POLICIES: &[&str] = &["open", "invite", "closed"];

/// Every setting there is, in the order the page shows them.
pub const KEYS: &[Key] = &[
    Key {
        key: "instance_name",
        label: "Instance name",
        help: "Shown in the top bar, page titles and mail.",
        kind: Kind::Text(60),
        env: Some("ENDER_INSTANCE_NAME"),
        default: "Ender",
        restart: false,
    },
    Key {
        key: "support_email",
        label: "Support email",
        help: "Where people are told to write for help.",
        kind: Kind::Email,
        env: Some("ENDER_SUPPORT_EMAIL"),
        default: "",
        restart: false,
    },
    Key {
        key: "mail_from_name",
        label: "Sender name",
        help: "The name mail from this server comes from.",
        kind: Kind::Text(60),
        env: None,
        default: "",
        restart: false,
    },
    Key {
        key: "mail_from_address",
        label: "Sender address",
        help: "The address mail from this server comes from (empty: ENDER_MAIL_FROM).",
        kind: Kind::Email,
        env: None,
        default: "",
        restart: false,
    },
    Key {
        key: "banner_text",
        label: "Banner text",
        help: "A line shown at the top of every page, for news or planned work.",
        kind: Kind::Text(200),
        env: None,
        default: "",
        restart: false,
    },
    Key {
        key: "banner_link",
        label: "Banner link",
        help: "An http(s) address the banner links to.",
        kind: Kind::Url,
        env: None,
        default: "",
        restart: false,
    },
    Key {
        key: "signup",
        label: "Sign-up",
        help: "open: anyone may sign up; invite: only with an invitation link; closed: nobody.",
        kind: Kind::Choice(SIGNUP_POLICIES),
        env: Some("ENDER_SIGNUP"),
        default: "open",
        restart: false,
    },
    Key {
        key: "maintenance_mode",
        label: "Maintenance mode",
        help: "Only administrators may sign in or change anything; phones and modems keep reporting.",
        kind: Kind::Bool,
        env: Some("ENDER_MAINTENANCE_MODE"),
        default: "false",
        restart: false,
    },
    Key {
        key: "maintenance_message",
        label: "Maintenance message",
        help: "What people are told while maintenance mode is on.",
        kind: Kind::Text(200),
        env: None,
        default: "This server is under maintenance. Please try again shortly.",
        restart: false,
    },
    Key {
        key: "billing",
        label: "Billing",
        help: "Plans, balances and payments. Takes effect when the server restarts.",
        kind: Kind::Bool,
        env: Some("ENDER_BILLING"),
        default: "false",
        restart: true,
    },
    Key {
        key: "stripe_secret_key",
        label: "Stripe secret key",
        help: "Takes effect when the server restarts.",
        kind: Kind::Secret,
        env: Some("ENDER_STRIPE_SECRET_KEY"),
        default: "",
        restart: true,
    },
    Key {
        key: "stripe_webhook_secret",
        label: "Stripe webhook signing secret",
        help: "Takes effect when the server restarts.",
        kind: Kind::Secret,
        env: Some("ENDER_STRIPE_WEBHOOK_SECRET"),
        default: "",
        restart: true,
    },
    Key {
        key: "qvapay_app_id",
        label: "QvaPay app id",
        help: "Takes effect when the server restarts.",
        kind: Kind::Text(100),
        env: Some("ENDER_QVAPAY_APP_ID"),
        default: "",
        restart: true,
    },
    Key {
        key: "qvapay_app_secret",
        label: "QvaPay app secret",
        help: "Takes effect when the server restarts.",
        kind: Kind::Secret,
        env: Some("ENDER_QVAPAY_APP_SECRET"),
        default: "",
        restart: true,
    },
];

pub fn key(name: &str) -> Option<&'static Key> {
    KEYS.iter().find(|k| k.key == name)
}

/// The environment variable overriding `key`, when it is set in this process.
pub fn pinned_by_env(key: &Key) -> Option<&'static str> {
    key.env.filter(|v| std::env::var_os(v).is_some())
}

/// Checks one value for `key` and returns it as stored (trimmed; booleans as
/// `true`/`false`). Errors name the field.
pub fn validate(key: &Key, raw: &str) -> Result<String, FieldError> {
    let v = raw.trim();
    let field = key.key;
    match key.kind {
        Kind::Text(max) => {
            if v.chars().count() > max {
                return Err(FieldError::new(field, format!("Use at most {max} characters.")));
            }
            if v.chars().any(char::is_control) {
                return Err(FieldError::new(field, "Use one line of text."));
            }
            Ok(v.to_owned())
        }
        Kind::Email => {
            if v.is_empty() {
                return Ok(String::new());
            }
            crate::account::Email::parse(v)
                .map(|e| e.as_str().to_owned())
                .map_err(|_| FieldError::new(field, "Enter a valid email address, or leave it empty."))
        }
        Kind::Url => {
            if v.is_empty() {
                return Ok(String::new());
            }
            match url::Url::parse(v) {
                Ok(u)
                    if matches!(u.scheme(), "http" | "https") && u.host_str().is_some() && v.len() <= 500 =>
                {
                    Ok(u.to_string())
                }
                _ => Err(FieldError::new(
                    field,
                    "Enter an http:// or https:// address, or leave it empty.",
                )),
            }
        }
        Kind::Bool => match v.to_ascii_lowercase().as_str() {
            "true" | "on" | "1" | "yes" => Ok("true".to_owned()),
            "false" | "off" | "0" | "no" | "" => Ok("false".to_owned()),
            _ => Err(FieldError::new(field, "Use true or false.")),
        },
        Kind::Choice(options) => {
            let lower = v.to_ascii_lowercase();
            if options.contains(&lower.as_str()) {
                Ok(lower)
            } else {
                Err(FieldError::new(
                    field,
                    format!("Use one of: {}.", options.join(", ")),
                ))
            }
        }
        Kind::Secret => {
            if v.chars().count() > 500 || v.chars().any(char::is_control) {
                return Err(FieldError::new(field, "This does not look like a credential."));
            }
            Ok(v.to_owned())
        }
    }
}

/// The settings as read from the database and the environment. Secrets are not kept
/// here, only whether each is set.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Settings {
    values: BTreeMap<&'static str, String>,
    secrets_set: BTreeMap<&'static str, bool>,
    stored: BTreeSet<&'static str>,
}

impl Settings {
    /// The effective value of a non-secret setting: the environment's, else the stored
    /// one, else the default. Unknown keys give "".
    pub fn get(&self, key: &str) -> &str {
        self.values.get(key).map_or("", String::as_str)
    }

    /// Whether an administrator saved a value for `key` (otherwise the server's own
    /// configuration applies).
    pub fn is_stored(&self, key: &str) -> bool {
        self.stored.contains(key)
    }

    pub fn flag(&self, key: &str) -> bool {
        self.get(key) == "true"
    }

    /// Whether a secret is set (stored or in the environment).
    pub fn is_set(&self, key: &str) -> bool {
        self.secrets_set.get(key).copied().unwrap_or(false)
    }

    pub fn instance_name(&self) -> &str {
        self.get("instance_name")
    }

    pub fn maintenance(&self) -> bool {
        self.flag("maintenance_mode")
    }

    /// The defaults alone, for a process that has not read the database yet.
    pub fn defaults() -> Self {
        Self::from_rows(Vec::new())
    }

    fn from_rows(rows: Vec<(String, String, bool)>) -> Self {
        let mut s = Self::default();
        for k in KEYS {
            let stored = rows.iter().find(|r| r.0 == k.key);
            if stored.is_some() {
                s.stored.insert(k.key);
            }
            let env = pinned_by_env(k).and_then(|v| std::env::var(v).ok());
            if k.kind == Kind::Secret {
                let set = env.is_some_and(|v| !v.is_empty()) || stored.is_some_and(|r| r.2);
                s.secrets_set.insert(k.key, set);
                continue;
            }
            let value = env
                .and_then(|v| validate(k, &v).ok())
                .or_else(|| stored.map(|r| r.1.clone()))
                .unwrap_or_else(|| k.default.to_owned());
            s.values.insert(k.key, value);
        }
        s
    }

    /// The non-secret settings as key/value pairs, and secrets as "set"/"".
    pub fn to_json(&self) -> serde_json::Value {
        let mut out = serde_json::Map::new();
        for k in KEYS {
            let v = if k.kind == Kind::Secret {
                serde_json::Value::String(if self.is_set(k.key) {
                    "set".into()
                } else {
                    String::new()
                })
            } else if k.kind == Kind::Bool {
                serde_json::Value::Bool(self.flag(k.key))
            } else {
                serde_json::Value::String(self.get(k.key).to_owned())
            };
            out.insert(k.key.to_owned(), v);
        }
        serde_json::Value::Object(out)
    }
}

pub async fn load(conn: &mut PgConnection) -> sqlx::Result<Settings> {
    let rows = sqlx::query!("SELECT key, value, sealed IS NOT NULL AS \"sealed!\" FROM instance_settings")
        .fetch_all(conn)
        .await?;
    Ok(Settings::from_rows(
        rows.into_iter().map(|r| (r.key, r.value, r.sealed)).collect(),
    ))
}

/// With billing's setting saved (and `ENDER_BILLING` not set), the saved choice: read by
/// each process at its start.
pub fn apply_billing(s: &Settings, sms: &mut crate::config::SmsConfig) {
    if s.is_stored("billing") && key("billing").and_then(pinned_by_env).is_none() {
        sms.billing.enabled = s.flag("billing");
    }
}

/// A stored secret in the clear, for the process that uses it (a payment provider's key),
/// when the environment does not set it.
pub async fn secret(conn: &mut PgConnection, name: &str) -> sqlx::Result<Option<String>> {
    let Some(k) = key(name).filter(|k| k.kind == Kind::Secret) else {
        return Ok(None);
    };
    if let Some(v) = pinned_by_env(k).and_then(|v| std::env::var(v).ok()) {
        return Ok(Some(v));
    }
    let sealed = sqlx::query_scalar!("SELECT sealed FROM instance_settings WHERE key = $1", k.key)
        .fetch_optional(conn)
        .await?
        .flatten();
    let Some(sealed) = sealed else { return Ok(None) };
    let clear = at_rest::open_setting(k.key, &sealed).map_err(|e| sqlx::Error::Decode(Box::new(e)))?;
    Ok(String::from_utf8(clear).ok())
}

/// What a save changed: each key with its value before and after (secrets as "set").
pub type Changes = Vec<(&'static str, String, String)>;

/// Checks every given value first (all errors at once, nothing saved when any is bad),
/// then stores those that changed and notifies the other processes. Unknown keys and
/// keys pinned by the environment are errors. An empty secret leaves it as it is. What
/// changed goes to the admin audit log (secrets as "set") in the same transaction.
pub async fn save(
    pool: &PgPool,
    admin: &super::Admin,
    input: &[(String, String)],
) -> Result<Changes, Vec<FieldError>> {
    let mut errors = Vec::new();
    let mut checked: Vec<(&'static Key, String)> = Vec::new();
    for (name, raw) in input {
        let Some(k) = key(name) else {
            errors.push(FieldError::new(
                "settings",
                format!("There is no setting called “{name}”."),
            ));
            continue;
        };
        if let Some(env) = pinned_by_env(k) {
            errors.push(FieldError::new(
                k.key,
                format!("Set by the environment variable {env}, which wins."),
            ));
            continue;
        }
        match validate(k, raw) {
            Ok(v) => checked.push((k, v)),
            Err(e) => errors.push(e),
        }
    }
    if !errors.is_empty() {
        return Err(errors);
    }
    let db = |e: sqlx::Error| {
        vec![FieldError::new(
            "settings",
            format!("The settings could not be saved: {e}"),
        )]
    };
    let mut tx = pool.begin().await.map_err(db)?;
    let before = load(&mut tx).await.map_err(db)?;
    let mut changes = Vec::new();
    for (k, v) in checked {
        if k.kind == Kind::Secret {
            if v.is_empty() {
                continue;
            }
            let sealed = at_rest::seal_setting(k.key, v.as_bytes()).map_err(|e| {
                vec![FieldError::new(
                    k.key,
                    format!("The secret could not be sealed: {e}"),
                )]
            })?;
            sqlx::query!(
                "INSERT INTO instance_settings (key, value, sealed) VALUES ($1, '', $2)
                 ON CONFLICT (key) DO UPDATE SET value = '', sealed = $2, updated_at = now()",
                k.key,
                sealed
            )
            .execute(&mut *tx)
            .await
            .map_err(db)?;
            let was = if before.is_set(k.key) { "set" } else { "" };
            changes.push((k.key, was.to_owned(), "set".to_owned()));
            continue;
        }
        if before.get(k.key) == v {
            continue;
        }
        sqlx::query!(
            "INSERT INTO instance_settings (key, value) VALUES ($1, $2)
             ON CONFLICT (key) DO UPDATE SET value = $2, sealed = NULL, updated_at = now()",
            k.key,
            v
        )
        .execute(&mut *tx)
        .await
        .map_err(db)?;
        changes.push((k.key, before.get(k.key).to_owned(), v));
    }
    if !changes.is_empty() {
        let mut before = serde_json::Map::new();
        let mut after = serde_json::Map::new();
        for (k, b, a) in &changes {
            before.insert((*k).to_owned(), serde_json::Value::String(b.clone()));
            after.insert((*k).to_owned(), serde_json::Value::String(a.clone()));
        }
        super::audit::record(
            &mut *tx,
            admin,
            super::audit::kind::SETTINGS_CHANGED,
            &super::audit::Target::new("settings", "", "Instance settings"),
            before.into(),
            after.into(),
        )
        .await
        .map_err(db)?;
        sqlx::query!("SELECT pg_notify($1, '')", CHANGED)
            .execute(&mut *tx)
            .await
            .map_err(db)?;
    }
    tx.commit().await.map_err(db)?;
    Ok(changes)
}

/// This process's copy of the settings, shared by its handlers.
#[derive(Debug, Clone, Default)]
pub struct Cache(Arc<RwLock<Arc<Settings>>>);

impl Cache {
    pub fn new(settings: Settings) -> Self {
        Self(Arc::new(RwLock::new(Arc::new(settings))))
    }

    pub fn get(&self) -> Arc<Settings> {
        self.0
            .read()
            .map(|s| s.clone())
            .unwrap_or_else(|p| p.into_inner().clone())
    }

    pub async fn reload(&self, pool: &PgPool) -> sqlx::Result<()> {
        let fresh = Arc::new(load(&mut *pool.acquire().await?).await?);
        match self.0.write() {
            Ok(mut s) => *s = fresh,
            Err(p) => *p.into_inner() = fresh,
        }
        Ok(())
    }
}
