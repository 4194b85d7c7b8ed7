//! What every page template gets: the signed-in user, the workspace they are looking at (and
//! the others they may switch to), the CSRF token, flash messages and the active navigation
//! entry; and the field errors of a re-rendered form.

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use ender_core::FieldError;
use ender_core::account::User;
use ender_core::workspace::{Action, Membership};
use tower_sessions::Session;

use crate::error::{AppError, AppResult};
use crate::session::{CurrentWorkspace, Flash, MaybeUser, csrf_token, take_flashes};
use crate::state::AppState;

/// The page frame's data.
#[derive(Debug, Clone)]
pub struct Shell {
    pub user: Option<User>,
    /// The signed-in user's current workspace and role.
    pub workspace: Option<Membership>,
    /// Every workspace the user belongs to, for the switcher.
    pub workspaces: Vec<Membership>,
    pub csrf: String,
    pub flashes: Vec<Flash>,
    pub path: String,
    pub oauth_google: bool,
    pub oauth_github: bool,
    /// Billing is on (`ENDER_BILLING`): the Billing page and the plan's limits are shown.
    pub billing: bool,
    /// The instance settings: name, banner, maintenance mode.
    pub site: std::sync::Arc<ender_core::admin::settings::Settings>,
}

impl Shell {
    /// True when the navigation entry for `prefix` is the current page's section.
    pub fn active(&self, prefix: &str) -> bool {
        if prefix == "/" {
            self.path == "/"
        } else {
            self.path == prefix || self.path.starts_with(&format!("{prefix}/"))
        }
    }

    pub fn instance_name(&self) -> &str {
        self.site.instance_name()
    }

    pub fn banner_text(&self) -> &str {
        self.site.get("banner_text")
    }

    pub fn banner_link(&self) -> &str {
        self.site.get("banner_link")
    }

    pub fn maintenance(&self) -> bool {
        self.site.maintenance()
    }

    pub fn maintenance_message(&self) -> &str {
        self.site.get("maintenance_message")
    }

    pub fn is_admin(&self) -> bool {
        self.user.as_ref().is_some_and(|u| u.is_admin)
    }

    pub fn user_name(&self) -> &str {
        self.user.as_ref().map(User::display_name).unwrap_or("")
    }

    /// Whether the user's role in the current workspace allows `what`, to show or hide the
    /// page's controls (the handlers check again): `send`, `templates`, `schedules`,
    /// `contacts`, `devices`, `keys`, `webhooks`, `members`, `audit`, `export`, `billing`.
    pub fn can(&self, what: &str) -> bool {
        let action = match what {
            "send" => Action::Send,
            "templates" => Action::ManageTemplates,
            "schedules" => Action::ManageSchedules,
            "contacts" => Action::ManageContacts,
            "devices" => Action::ManageDevices,
            "keys" => Action::ManageKeys,
            "webhooks" => Action::ManageWebhooks,
            "members" => Action::ManageMembers,
            "audit" => Action::ReadAudit,
            "export" => Action::Export,
            "billing" => Action::ManageBilling,
            _ => return false,
        };
        self.workspace.as_ref().is_some_and(|m| m.role.may(action))
    }
}

impl FromRequestParts<AppState> for Shell {
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> AppResult<Self> {
        let MaybeUser(user) = MaybeUser::from_request_parts(parts, state).await?;
        let (workspace, workspaces) = match &user {
            Some(u) => {
                let CurrentWorkspace(current) = CurrentWorkspace::from_request_parts(parts, state).await?;
                let all = ender_core::workspace::list_for(&state.pool, u.id).await?;
                (Some(current), all)
            }
            None => (None, Vec::new()),
        };
        let session = Session::from_request_parts(parts, state)
            .await
            .map_err(|_| AppError::Internal(anyhow::anyhow!("session layer missing")))?;
        Ok(Self {
            user,
            workspace,
            workspaces,
            csrf: csrf_token(&session).await?,
            flashes: take_flashes(&session).await?,
            path: parts.uri.path().to_owned(),
            oauth_google: state.config.oauth.google_client_id.is_some(),
            oauth_github: state.config.oauth.github_client_id.is_some(),
            billing: state.sms.billing.enabled,
            site: state.settings.get(),
        })
    }
}

/// Field errors of a form being shown again.
#[derive(Debug, Clone, Default)]
pub struct Errors(pub Vec<FieldError>);

impl Errors {
    pub fn one(e: FieldError) -> Self {
        Self(vec![e])
    }

    pub fn push(&mut self, e: FieldError) {
        self.0.push(e);
    }

    /// The message for `field` ("" when it has none).
    pub fn get(&self, field: &str) -> &str {
        self.0
            .iter()
            .find(|e| e.field == field)
            .map(|e| e.message.as_str())
            .unwrap_or("")
    }

    pub fn has(&self, field: &str) -> bool {
        self.0.iter().any(|e| e.field == field)
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// A QR code as inline SVG markup (dark modules on white, scales with its box).
pub fn qr_svg(text: &str) -> String {
    match qrcode::QrCode::new(text.as_bytes()) {
        Ok(code) => code
            .render::<qrcode::render::svg::Color>()
            .min_dimensions(220, 220)
            .dark_color(qrcode::render::svg::Color("#000000"))
            .light_color(qrcode::render::svg::Color("#ffffff"))
            .build(),
        Err(_) => String::new(),
    }
}

/// "3 minutes ago"-style age of a moment, for tables.
pub fn ago(t: Option<chrono::DateTime<chrono::Utc>>) -> String {
    let Some(t) = t else { return "never".to_owned() };
    let secs = (chrono::Utc::now() - t).num_seconds().max(0);
    match secs {
        0..=59 => "just now".to_owned(),
        60..=3599 => format!("{} min ago", secs / 60),
        3600..=86_399 => format!("{} h ago", secs / 3600),
        _ => t.format("%Y-%m-%d").to_string(),
    }
}

/// Whether HTMX made the request (it then wants a fragment, not the page).
/// A size in bytes as people read it: `512 B`, `1.5 KiB`, `3.0 GiB`.
pub fn bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n as f64;
    let mut unit = 0;
    while v >= 1024.0 && unit < UNITS.len() - 1 {
        v /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[unit])
    }
}

pub fn is_htmx(headers: &axum::http::HeaderMap) -> bool {
    headers.contains_key("hx-request")
}

/// A fragment-only route answers HTMX alone; a plain request gets a 400 page.
pub fn htmx_only(headers: &axum::http::HeaderMap) -> AppResult<()> {
    if is_htmx(headers) {
        Ok(())
    } else {
        Err(AppError::BadRequest(
            "this address serves a part of a page".to_owned(),
        ))
    }
}

/// A response that differs for HTMX (page or fragment), so caches keep both.
pub fn vary(mut res: axum::response::Response) -> axum::response::Response {
    res.headers_mut()
        .insert("vary", axum::http::HeaderValue::from_static("HX-Request"));
    res
}
