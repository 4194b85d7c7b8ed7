//! The console's workspaces: the list, one workspace in detail, and its actions (plan,
//! balance, pausing sending, deletion).

use askama::Template;
use askama_web::WebTemplate;
use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use ender_core::FieldError;
use ender_core::admin::AdminError;
use ender_core::admin::workspaces as ws_admin;
use ender_core::billing::{PlanId, format_cents};
use ender_core::workspace::WorkspaceId;
use serde::Deserialize;
use tower_sessions::Session;

use super::{PAGE, admin_of, done, refused, settle, when};
use crate::error::{AppError, AppResult};
use crate::extract::Form;
use crate::session::AdminUser;
use crate::state::AppState;
use crate::views::{Errors, Shell};

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/admin/workspaces", get(list_page))
        .route("/admin/workspaces/{id}", get(show))
        .route("/admin/workspaces/{id}/plan", post(change_plan))
        .route("/admin/workspaces/{id}/balance", post(adjust_balance))
        .route("/admin/workspaces/{id}/{action}", post(workspace_action))
}

fn parse(raw: &str) -> AppResult<WorkspaceId> {
    raw.parse::<uuid::Uuid>()
        .map(WorkspaceId)
        .map_err(|_| AppError::NotFound)
}

fn path_of(id: WorkspaceId) -> String {
    format!("/admin/workspaces/{id}")
}

#[derive(Debug, Default, Deserialize)]
struct ListQuery {
    #[serde(default)]
    q: String,
    #[serde(default)]
    after: String,
}

pub struct Row {
    pub id: String,
    pub name: String,
    pub personal: bool,
    pub plan: String,
    pub members: i64,
    pub sent: i32,
    pub devices_online: i64,
    pub devices: i64,
    pub queued: i64,
    pub last_send: String,
    pub balance: String,
    pub paused: bool,
}

fn row(state: &AppState, r: ws_admin::Row) -> Row {
    Row {
        id: r.id.to_string(),
        name: r.name,
        personal: r.personal,
        plan: if state.sms.billing.enabled {
            r.plan
                .unwrap_or_else(|| ender_core::billing::plans::SELF_HOSTED.to_owned())
        } else {
            ender_core::billing::plans::SELF_HOSTED.to_owned()
        },
        members: r.members,
        sent: r.sent_this_period,
        devices_online: r.devices_online,
        devices: r.devices,
        queued: r.queued,
        last_send: r.last_send_at.map(when).unwrap_or_else(|| "never".to_owned()),
        balance: format_cents(r.balance_cents, &state.sms.billing.currency),
        paused: r.paused,
    }
}

#[derive(Template, WebTemplate)]
#[template(path = "admin/workspaces.html")]
pub struct ListPage {
    pub shell: Shell,
    pub q: String,
    pub rows: Vec<Row>,
    pub next: Option<String>,
}

async fn list_page(
    State(state): State<AppState>,
    AdminUser(_admin): AdminUser,
    shell: Shell,
    Query(query): Query<ListQuery>,
) -> AppResult<ListPage> {
    let q: String = query.q.trim().chars().take(100).collect();
    let after = query.after.parse::<uuid::Uuid>().ok().map(WorkspaceId);
    let (rows, next) = ws_admin::list(&state.pool, &q, after, PAGE).await?;
    let next = next.map(|n| {
        url::form_urlencoded::Serializer::new(String::new())
            .append_pair("q", &q)
            .append_pair("after", &n.to_string())
            .finish()
    });
    Ok(ListPage {
        rows: rows.into_iter().map(|r| row(&state, r)).collect(),
        shell,
        q,
        next,
    })
}

pub struct PlanOption {
    pub id: String,
    pub name: String,
    pub current: bool,
}

#[derive(Template, WebTemplate)]
#[template(path = "admin/workspace.html")]
pub struct ShowPage {
    pub shell: Shell,
    pub ws: Row,
    pub paused_reason: String,
    pub paused_since: String,
    pub members: Vec<ws_admin::MemberRow>,
    pub devices: Vec<(ws_admin::DeviceRow, String)>,
    pub webhooks: Vec<(ws_admin::WebhookRow, String)>,
    pub ledger: Vec<(String, String, String, String, String)>,
    pub billing: Vec<(String, String, String)>,
    pub plans: Vec<PlanOption>,
    pub errors: Errors,
    pub amount: String,
    pub reason: String,
    pub deletion: &'static str,
}

async fn page(
    state: &AppState,
    shell: Shell,
    id: WorkspaceId,
    errors: Errors,
    amount: String,
    reason: String,
) -> AppResult<ShowPage> {
    let d = ws_admin::detail(&state.pool, id).await.map_err(|e| match e {
        AdminError::Database(d) => d.into(),
        _ => AppError::NotFound,
    })?;
    let currency = state.sms.billing.currency.clone();
    let current = d.plan_id;
    let default = ender_core::billing::plans::default_plan(&mut *state.pool.acquire().await?)
        .await?
        .map(|p| p.id);
    let plans = ender_core::billing::plans::all(&state.pool)
        .await?
        .into_iter()
        .map(|p| PlanOption {
            current: Some(p.id) == current.or(default),
            id: p.id.to_string(),
            name: if p.retired {
                format!("{} (retired)", p.name)
            } else {
                p.name
            },
        })
        .collect();
    Ok(ShowPage {
        shell,
        paused_reason: d.paused_reason,
        paused_since: d.paused_at.map(when).unwrap_or_default(),
        members: d.members,
        devices: d
            .devices
            .into_iter()
            .map(|dv| {
                let seen = dv.last_seen_at.map(when).unwrap_or_else(|| "never".to_owned());
                (dv, seen)
            })
            .collect(),
        webhooks: d
            .webhooks
            .into_iter()
            .map(|w| {
                let failing = w.failing_since.map(when).unwrap_or_default();
                (w, failing)
            })
            .collect(),
        ledger: d
            .ledger
            .into_iter()
            .map(|e| {
                (
                    when(e.created_at),
                    e.kind.label().to_owned(),
                    format_cents(e.amount_cents, &currency),
                    format_cents(e.balance_after_cents, &currency),
                    e.description,
                )
            })
            .collect(),
        billing: d
            .billing
            .into_iter()
            .map(|e| (when(e.created_at), e.kind, e.detail))
            .collect(),
        ws: row(state, d.row),
        plans,
        errors,
        amount,
        reason,
        deletion: ws_admin::DELETE_DOES,
    })
}

async fn show(
    State(state): State<AppState>,
    AdminUser(_admin): AdminUser,
    shell: Shell,
    Path(id): Path<String>,
) -> AppResult<ShowPage> {
    page(
        &state,
        shell,
        parse(&id)?,
        Errors::default(),
        String::new(),
        String::new(),
    )
    .await
}

#[derive(Debug, Default, Deserialize)]
struct PlanForm {
    #[serde(default)]
    plan: String,
}

async fn change_plan(
    State(state): State<AppState>,
    AdminUser(admin): AdminUser,
    session: Session,
    Path(id): Path<String>,
    Form(form): Form<PlanForm>,
) -> AppResult<Response> {
    let id = parse(&id)?;
    let Ok(plan) = form.plan.trim().parse::<uuid::Uuid>().map(PlanId) else {
        return refused(
            &session,
            &path_of(id),
            FieldError::new("plan", "Choose a plan.").into(),
        )
        .await;
    };
    let result = ws_admin::change_plan(&state.pool, &admin_of(&admin), id, plan).await;
    settle(
        &session,
        result,
        &path_of(id),
        &path_of(id),
        "The plan is changed.",
    )
    .await
}

#[derive(Debug, Default, Deserialize)]
struct BalanceForm {
    #[serde(default)]
    amount: String,
    #[serde(default)]
    reason: String,
}

/// Parses a signed amount ("-5", "12.50") into cents.
fn signed_cents(raw: &str) -> Option<i64> {
    let raw = raw.trim();
    let (neg, digits) = match raw.strip_prefix('-') {
        Some(rest) => (true, rest.trim()),
        None => (false, raw.strip_prefix('+').unwrap_or(raw).trim()),
    };
    if digits.starts_with(['-', '+']) {
        return None;
    }
    let cents = ender_core::billing::parse_amount(digits)?;
    Some(if neg { -cents } else { cents })
}

async fn adjust_balance(
    State(state): State<AppState>,
    AdminUser(admin): AdminUser,
    session: Session,
    shell: Shell,
    Path(id): Path<String>,
    Form(form): Form<BalanceForm>,
) -> AppResult<Response> {
    let id = parse(&id)?;
    let again = |e: FieldError| async {
        let p = page(
            &state,
            shell.clone(),
            id,
            Errors::one(e),
            form.amount.clone(),
            form.reason.clone(),
        )
        .await?;
        Ok::<_, AppError>((StatusCode::UNPROCESSABLE_ENTITY, p).into_response())
    };
    let Some(cents) = signed_cents(&form.amount) else {
        return again(FieldError::new(
            "amount",
            "Enter an amount such as 10.00 to credit, or -10.00 to debit.",
        ))
        .await;
    };
    match ws_admin::adjust_balance(
        &state.pool,
        &admin_of(&admin),
        id,
        cents,
        &form.reason,
        &state.sms.billing.currency,
    )
    .await
    {
        Ok(after) => {
            done(
                &session,
                &path_of(id),
                format!(
                    "The balance is now {}.",
                    format_cents(after, &state.sms.billing.currency)
                ),
            )
            .await
        }
        Err(AdminError::Invalid(e)) => again(e).await,
        Err(e) => refused(&session, &path_of(id), e).await,
    }
}

#[derive(Debug, Default, Deserialize)]
struct ReasonForm {
    #[serde(default)]
    reason: String,
}

/// `POST /admin/workspaces/{id}/{action}`: pause (with a reason), resume and delete.
async fn workspace_action(
    State(state): State<AppState>,
    AdminUser(admin): AdminUser,
    session: Session,
    Path((id, action)): Path<(String, String)>,
    Form(form): Form<ReasonForm>,
) -> AppResult<Response> {
    let id = parse(&id)?;
    let (pool, by, back) = (&state.pool, admin_of(&admin), path_of(id));
    let (result, to, text) = match action.as_str() {
        "pause" => (
            ws_admin::set_paused(pool, &by, id, true, &form.reason).await,
            back.as_str(),
            "Sending is paused: new sends are refused and queued messages wait.",
        ),
        "resume" => (
            ws_admin::set_paused(pool, &by, id, false, "").await,
            back.as_str(),
            "Sending is resumed.",
        ),
        "delete" => (
            ws_admin::delete(pool, &by, id).await,
            "/admin/workspaces",
            "The workspace is deleted.",
        ),
        _ => return Err(AppError::NotFound),
    };
    settle(&session, result, &back, to, text).await
}

#[cfg(test)]
mod tests {
    use super::signed_cents;

    #[test]
    fn signed_amounts() {
        assert_eq!(signed_cents("10"), Some(1000));
        assert_eq!(signed_cents("-2.50"), Some(-250));
        assert_eq!(signed_cents("+1.01"), Some(101));
        assert_eq!(signed_cents("abc"), None);
        assert_eq!(signed_cents(""), None);
        assert_eq!(signed_cents("--1"), None);
    }
}
