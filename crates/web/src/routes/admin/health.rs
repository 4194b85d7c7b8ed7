//! The Health page and the admin audit log (page and `GET /api/admin/audit`).

use askama::Template;
use askama_web::WebTemplate;
use axum::extract::{Query, State};
use axum::routing::get;
use axum::{Json, Router};
use ender_core::admin::{audit, health};
use serde::Deserialize;
use serde_json::{Value, json};

use super::settings::ApiAdmin;
use super::when;
use crate::error::AppResult;
use crate::routes::api::ApiError;
use crate::session::AdminUser;
use crate::state::AppState;
use crate::views::Shell;
use crate::views::bytes;

/// Audit entries per page.
const AUDIT_PAGE: i64 = 50;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/admin/health", get(health_page))
        .route("/admin/audit", get(audit_page))
}

pub fn api_routes() -> Router<AppState> {
    Router::new().route("/admin/audit", get(audit_api))
}

fn age(t: Option<chrono::DateTime<chrono::Utc>>) -> String {
    let Some(t) = t else { return String::new() };
    let secs = (chrono::Utc::now() - t).num_seconds().max(0);
    match secs {
        0..=119 => format!("{secs} s"),
        120..=7199 => format!("{} min", secs / 60),
        7200..=172_799 => format!("{} h", secs / 3600),
        _ => format!("{} days", secs / 86_400),
    }
}

pub struct WorkerRow {
    pub name: String,
    pub version: String,
    pub host: String,
    pub pid: i32,
    pub started: String,
    pub beat: String,
    pub alive: bool,
}

#[derive(Template, WebTemplate)]
#[template(path = "admin/health.html")]
pub struct HealthPage {
    pub shell: Shell,
    pub web_version: &'static str,
    pub workers: Vec<WorkerRow>,
    pub database: String,
    pub connections: String,
    pub messages: Vec<(String, i64, String)>,
    pub webhook_backlog: i64,
    pub webhook_oldest: String,
    pub endpoints_in_breaker: i64,
    pub endpoints_disabled: i64,
    pub devices: String,
    pub scheduled_next_hour: i64,
    pub jobs: Option<Vec<health::JobLine>>,
    pub disk: String,
    pub disk_low: bool,
    pub paused_workspaces: i64,
    pub suspended_people: i64,
    pub mail_failures: i64,
    /// (when, subject, reason) of the newest failures.
    pub recent_mail_failures: Vec<(String, String, String)>,
}

async fn health_page(
    State(state): State<AppState>,
    AdminUser(_admin): AdminUser,
    shell: Shell,
) -> AppResult<HealthPage> {
    let h = health::read(&state.pool, &state.config.data_dir).await?;
    let (disk, disk_low) = match (h.disk_free_bytes, h.disk_total_bytes) {
        (Some(free), Some(total)) => (
            format!("{} free of {}", bytes(free), bytes(total)),
            total > 0 && free.saturating_mul(10) < total,
        ),
        _ => ("unknown".to_owned(), false),
    };
    Ok(HealthPage {
        shell,
        web_version: env!("CARGO_PKG_VERSION"),
        workers: h
            .workers
            .into_iter()
            .map(|w| WorkerRow {
                started: when(w.started_at),
                beat: format!("{} ago", age(Some(w.beat_at))),
                name: w.name,
                version: w.version,
                host: w.host,
                pid: w.pid,
                alive: w.alive,
            })
            .collect(),
        database: bytes(u64::try_from(h.database_bytes).unwrap_or(0)),
        connections: format!("{} of {}", h.connections, h.max_connections),
        messages: h
            .messages
            .into_iter()
            .map(|m| (m.status, m.count, age(m.oldest)))
            .collect(),
        webhook_backlog: h.webhook_backlog,
        webhook_oldest: age(h.webhook_oldest),
        endpoints_in_breaker: h.endpoints_in_breaker,
        endpoints_disabled: h.endpoints_disabled,
        devices: format!("{} of {}", h.devices_online, h.devices),
        scheduled_next_hour: h.scheduled_next_hour,
        jobs: h.jobs,
        disk,
        disk_low,
        paused_workspaces: h.paused_workspaces,
        suspended_people: h.suspended_people,
        mail_failures: h.mail_failures,
        recent_mail_failures: h
            .recent_mail_failures
            .into_iter()
            .map(|f| (format!("{} ago", age(Some(f.at))), f.subject, f.error))
            .collect(),
    })
}

#[derive(Debug, Default, Deserialize)]
struct AuditQuery {
    #[serde(default)]
    action: String,
    #[serde(default)]
    before: Option<i64>,
}

/// Keeps an action filter to the characters actions are made of.
fn action_filter(raw: &str) -> String {
    raw.chars()
        .filter(|c| c.is_ascii_lowercase() || *c == '.' || *c == '_')
        .take(60)
        .collect()
}

pub struct EntryRow {
    pub when: String,
    pub actor: String,
    pub action: String,
    pub target: String,
    pub before: String,
    pub after: String,
}

#[derive(Template, WebTemplate)]
#[template(path = "admin/audit.html")]
pub struct AuditPage {
    pub shell: Shell,
    pub action: String,
    pub entries: Vec<EntryRow>,
    pub older: Option<String>,
}

async fn audit_page(
    State(state): State<AppState>,
    AdminUser(_admin): AdminUser,
    shell: Shell,
    Query(q): Query<AuditQuery>,
) -> AppResult<AuditPage> {
    let action = action_filter(&q.action);
    let (entries, more) = audit::page(&state.pool, &action, q.before, AUDIT_PAGE).await?;
    let older = if more {
        entries
            .last()
            .map(|e| format!("/admin/audit?action={action}&before={}", e.id))
    } else {
        None
    };
    Ok(AuditPage {
        shell,
        entries: entries
            .into_iter()
            .map(|e| EntryRow {
                when: when(e.created_at),
                actor: e.actor,
                action: e.action,
                target: if e.target.is_empty() {
                    e.target_id
                } else {
                    e.target
                },
                before: if e.before == json!({}) {
                    String::new()
                } else {
                    e.before.to_string()
                },
                after: if e.after == json!({}) {
                    String::new()
                } else {
                    e.after.to_string()
                },
            })
            .collect(),
        action,
        older,
    })
}

/// `GET /api/admin/audit?action=&before=&per_page=`: newest first, with `next_before` to
/// page on.
async fn audit_api(
    State(state): State<AppState>,
    ApiAdmin(_admin): ApiAdmin,
    Query(q): Query<std::collections::HashMap<String, String>>,
) -> Result<Json<Value>, ApiError> {
    let number = |name: &str| -> Result<Option<i64>, ApiError> {
        q.get(name)
            .filter(|v| !v.is_empty())
            .map(|v| {
                v.parse::<i64>()
                    .map_err(|_| ApiError::bad_request(format!("{name} must be a whole number.")))
            })
            .transpose()
    };
    let per_page = number("per_page")?.unwrap_or(AUDIT_PAGE).clamp(1, 200);
    let before = number("before")?;
    let action = action_filter(q.get("action").map_or("", String::as_str));
    let (entries, more) = audit::page(&state.pool, &action, before, per_page).await?;
    let next = if more { entries.last().map(|e| e.id) } else { None };
    Ok(Json(json!({ "items": entries, "next_before": next })))
}

#[cfg(test)]
mod tests {
    #[test]
    fn sizes_read_well() {
        assert_eq!(crate::views::bytes(512), "512 B");
        assert_eq!(crate::views::bytes(1536), "1.5 KiB");
        assert_eq!(crate::views::bytes(3 * 1024 * 1024 * 1024), "3.0 GiB");
    }

    #[test]
    fn action_filters_keep_only_action_characters() {
        assert_eq!(super::action_filter("user.sus%'pended"), "user.suspended");
    }
}
