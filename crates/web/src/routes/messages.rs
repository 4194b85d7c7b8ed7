//! The Messages pages: Outbox and Inbox with status filters and keyset pagination (fast at
//! any depth), rows that refresh live, and each message's detail with its event history.

use askama::Template;
use askama_web::WebTemplate;
use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use axum::response::Redirect;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use chrono::{DateTime, Utc};
use ender_core::sms::{Message, MessageId, Status, repo};

use crate::error::{AppError, AppResult};
use crate::extract::Form;
use crate::session::{CurrentWorkspace, flash};
use crate::state::AppState;
use crate::views::Shell;
use crate::views::{is_htmx, vary};

pub const PATH: &str = "/messages";
const PAGE: i64 = 50;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route(PATH, get(list))
        .route("/messages/conversation/delete", post(delete_conversation))
        .route("/messages/{id}", get(show))
}

pub struct Row {
    pub id: String,
    pub party: String,
    pub body: String,
    pub status: String,
    pub badge: &'static str,
    pub when: String,
    pub error: String,
}

pub fn badge(status: &str) -> &'static str {
    match status {
        "delivered" | "sent" | "received" => "badge-ok",
        "failed" | "expired" | "canceled" => "badge-err",
        "sending" | "assigned" => "badge-warn",
        _ => "badge-muted",
    }
}

impl From<&Message> for Row {
    fn from(m: &Message) -> Self {
        let body: String = m.body.chars().take(80).collect();
        Self {
            id: m.id.to_string(),
            party: if m.direction == "incoming" {
                m.from_number.clone()
            } else {
                m.recipient.clone()
            },
            body: if m.body.chars().count() > 80 {
                format!("{body}…")
            } else {
                body
            },
            status: m.status.clone(),
            badge: badge(&m.status),
            when: m.created_at.format("%Y-%m-%d %H:%M:%S").to_string(),
            error: m.error_message.clone(),
        }
    }
}

#[derive(serde::Deserialize, Default)]
#[serde(default)]
pub struct ListQuery {
    tab: String,
    status: String,
    number: String,
    device: String,
    before: String,
}

#[derive(Template, WebTemplate)]
#[template(path = "messages/list.html")]
pub struct MessagesPage {
    pub shell: Shell,
    pub inbox: bool,
    pub status: String,
    pub statuses: Vec<&'static str>,
    pub rows: Vec<Row>,
    pub next: String,
    pub first_page: bool,
    pub query: String,
    pub number: String,
    pub device: String,
    pub devices: Vec<(String, String)>,
}

#[derive(Template, WebTemplate)]
#[template(path = "messages/_rows.html")]
pub struct RowsPartial {
    pub rows: Vec<Row>,
}

/// A cursor is `<created_at in µs>_<id>` of the last row shown.
fn parse_cursor(raw: &str) -> Option<(DateTime<Utc>, MessageId)> {
    let (at, id) = raw.split_once('_')?;
    let at = DateTime::from_timestamp_micros(at.parse().ok()?)?;
    Some((at, id.parse().ok()?))
}

async fn list(
    State(state): State<AppState>,
    ws: CurrentWorkspace,
    headers: HeaderMap,
    shell: Shell,
    Query(q): Query<ListQuery>,
) -> AppResult<Response> {
    let inbox = q.tab == "inbox";
    let status = Status::parse(q.status.trim()).map(Status::as_str);
    let before = parse_cursor(&q.before);
    let number = q.number.trim();
    let party = (!number.is_empty()).then(|| {
        ender_core::sms::phone::PhoneNumber::parse(number)
            .map(|p| p.into_string())
            .unwrap_or_else(|_| number.to_owned())
    });
    let device = q.device.trim().parse::<ender_core::device::DeviceId>().ok();
    let filter = repo::PageFilter {
        status: status.map(str::to_owned),
        party: party.clone(),
        device,
    };
    let direction = if inbox { "incoming" } else { "outgoing" };
    let messages = repo::page_before(&state.pool, ws.id(), direction, &filter, before, PAGE).await?;
    let next = if messages.len() as i64 == PAGE {
        messages
            .last()
            .map(|m| format!("{}_{}", m.created_at.timestamp_micros(), m.id))
            .unwrap_or_default()
    } else {
        String::new()
    };
    let rows: Vec<Row> = messages.iter().map(Row::from).collect();
    let res = if is_htmx(&headers) {
        RowsPartial { rows }.into_response()
    } else {
        let query = format!(
            "tab={}&status={}&number={}&device={}",
            if inbox { "inbox" } else { "outbox" },
            status.unwrap_or(""),
            url::form_urlencoded::byte_serialize(party.as_deref().unwrap_or("").as_bytes())
                .collect::<String>(),
            device.map(|d| d.to_string()).unwrap_or_default()
        );
        let devices = ender_core::device::list(&state.pool, ws.id())
            .await?
            .into_iter()
            .map(|d| (d.id.to_string(), d.name))
            .collect();
        MessagesPage {
            shell,
            inbox,
            status: status.unwrap_or("").to_owned(),
            statuses: if inbox {
                vec!["received"]
            } else {
                vec![
                    "pending",
                    "assigned",
                    "sending",
                    "sent",
                    "delivered",
                    "failed",
                    "expired",
                ]
            },
            rows,
            next,
            first_page: before.is_none(),
            query,
            number: party.unwrap_or_default(),
            device: device.map(|d| d.to_string()).unwrap_or_default(),
            devices,
        }
        .into_response()
    };
    Ok(vary(res))
}

pub struct EventRow {
    pub status: String,
    pub badge: &'static str,
    pub detail: String,
    pub device: String,
    pub when: String,
}

#[derive(Template, WebTemplate)]
#[template(path = "messages/show.html")]
pub struct MessagePage {
    pub shell: Shell,
    pub m: Message,
    pub badge: &'static str,
    pub device: String,
    pub events: Vec<EventRow>,
}

async fn show(
    State(state): State<AppState>,
    ws: CurrentWorkspace,
    shell: Shell,
    Path(raw): Path<String>,
) -> AppResult<MessagePage> {
    let id: MessageId = raw.parse().map_err(|_| AppError::NotFound)?;
    let m = repo::find(&state.pool, ws.id(), id)
        .await?
        .ok_or(AppError::NotFound)?;
    let devices = ender_core::device::list(&state.pool, ws.id()).await?;
    let name = |d: Option<ender_core::device::DeviceId>| {
        d.and_then(|d| devices.iter().find(|x| x.id == d))
            .map(|d| d.name.clone())
            .unwrap_or_default()
    };
    let events = repo::events(&state.pool, id)
        .await?
        .into_iter()
        .map(|e| EventRow {
            badge: badge(&e.status),
            device: name(e.device_id),
            when: e.created_at.format("%Y-%m-%d %H:%M:%S%.3f").to_string(),
            status: e.status,
            detail: e.detail,
        })
        .collect();
    Ok(MessagePage {
        badge: badge(&m.status),
        device: name(m.device_id),
        shell,
        m,
        events,
    })
}

#[derive(Debug, Default, serde::Deserialize)]
#[serde(default)]
pub struct ConversationForm {
    number: String,
    confirm: String,
}

/// Deletes every message to and from one number (a person asking to be forgotten), after
/// the box is ticked; owners and admins only. The audit trail keeps who, when and how many,
/// with the number's last four digits.
async fn delete_conversation(
    State(state): State<AppState>,
    ws: CurrentWorkspace,
    session: tower_sessions::Session,
    Form(form): Form<ConversationForm>,
) -> AppResult<Response> {
    ws.may(ender_core::workspace::Action::Export)?;
    let Ok(number) = ender_core::sms::phone::PhoneNumber::parse(form.number.trim()) else {
        flash(
            &session,
            "error",
            "Enter the number in international form, such as +15551234567.",
        )
        .await?;
        return Ok(Redirect::to(PATH).into_response());
    };
    let number = number.into_string();
    let back = format!(
        "{PATH}?number={}",
        url::form_urlencoded::byte_serialize(number.as_bytes()).collect::<String>()
    );
    if form.confirm != "yes" {
        flash(
            &session,
            "error",
            "Tick the box to confirm: deleted messages cannot be brought back.",
        )
        .await?;
        return Ok(Redirect::to(&back).into_response());
    }
    let n = repo::delete_conversation(&state.pool, ws.id(), &number, ws.actor()).await?;
    tracing::info!(workspace.id = %ws.id(), messages = n, "conversation deleted");
    flash(
        &session,
        "success",
        format!(
            "Deleted {n} message{} of the conversation with {}.",
            if n == 1 { "" } else { "s" },
            repo::masked_number(&number)
        ),
    )
    .await?;
    Ok(Redirect::to(PATH).into_response())
}
