//! The Send page: recipients, a body with a live character and segment counter (computed
//! by the server, so page and API agree), and the device to use.

use askama::Template;
use askama_web::WebTemplate;
use axum::Router;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use ender_core::sms::body::{BodyError, MAX_CHARS, clean, measure};
use ender_core::sms::send::{self, SendError, SendRequest, Sent};
use tower_sessions::Session;

use crate::error::AppResult;
use crate::extract::Form;
use crate::session::{CurrentUser, flash};
use crate::state::AppState;
use crate::views::{Errors, Shell};

pub const PATH: &str = "/send";

pub fn routes() -> Router<AppState> {
    Router::new()
        .route(PATH, get(form).post(submit))
        .route("/send/count", get(count))
}

/// The counter under the body field.
#[derive(Template, WebTemplate)]
#[template(path = "send/_counter.html")]
pub struct Counter {
    pub chars: usize,
    pub segments: i32,
    pub encoding: &'static str,
    pub over: bool,
}

impl Counter {
    pub fn of(body: &str) -> Self {
        let text = clean(body);
        let chars = text.chars().count();
        let (encoding, segments) = measure(&text);
        Self {
            chars,
            segments: if chars == 0 { 0 } else { segments },
            encoding: match encoding {
                ender_core::sms::body::Encoding::Gsm7 => "GSM-7",
                ender_core::sms::body::Encoding::Ucs2 => "Unicode (UCS-2)",
            },
            over: chars > MAX_CHARS,
        }
    }
}

pub struct DeviceOption {
    pub id: String,
    pub name: String,
}

#[derive(Template, WebTemplate)]
#[template(path = "send/form.html")]
pub struct SendPage {
    pub shell: Shell,
    pub recipients: String,
    pub body: String,
    pub device_id: String,
    pub devices: Vec<DeviceOption>,
    pub counter: Counter,
    pub errors: Errors,
}

async fn devices(state: &AppState, user: ender_core::account::UserId) -> AppResult<Vec<DeviceOption>> {
    Ok(ender_core::device::list(&state.pool, user)
        .await?
        .into_iter()
        .map(|d| DeviceOption {
            id: d.id.to_string(),
            name: d.name,
        })
        .collect())
}

async fn form(
    State(state): State<AppState>,
    CurrentUser(user): CurrentUser,
    shell: Shell,
) -> AppResult<SendPage> {
    Ok(SendPage {
        shell,
        recipients: String::new(),
        body: String::new(),
        device_id: String::new(),
        devices: devices(&state, user.id).await?,
        counter: Counter::of(""),
        errors: Errors::default(),
    })
}

#[derive(serde::Deserialize, Default)]
#[serde(default)]
pub struct CountQuery {
    body: String,
}

async fn count(CurrentUser(_user): CurrentUser, Query(q): Query<CountQuery>) -> Counter {
    Counter::of(&q.body)
}

#[derive(serde::Deserialize, Default)]
#[serde(default)]
pub struct SendForm {
    recipients: String,
    body: String,
    device_id: String,
}

/// Numbers separated by commas, semicolons, spaces between numbers or new lines.
fn split_recipients(raw: &str) -> Vec<String> {
    raw.split([',', ';', '\n', '\r'])
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect()
}

async fn submit(
    State(state): State<AppState>,
    CurrentUser(user): CurrentUser,
    session: Session,
    shell: Shell,
    Form(form): Form<SendForm>,
) -> AppResult<Response> {
    let req = SendRequest {
        recipients: split_recipients(&form.recipients),
        body: form.body.clone(),
        device_id: Some(form.device_id.clone()).filter(|d| !d.trim().is_empty()),
        group_ids: Vec::new(),
        valid_until: None,
    };
    let field = |e: &SendError| match e {
        SendError::NoRecipients | SendError::InvalidNumber(_) | SendError::TooManyRecipients(_) => {
            "recipients"
        }
        SendError::Body(BodyError::Empty | BodyError::TooLong) => "body",
        SendError::DeviceNotFound(_) | SendError::DeviceNotOwned => "device_id",
        _ => "body",
    };
    let outcome = match send::validate(&state.pool, &state.sms, user.id, &req).await {
        Ok(v) => state.batcher.submit(user.id, v).await.map(Sent::Accepted),
        Err(e) => Err(e),
    };
    match outcome {
        Ok(Sent::Accepted(res)) => {
            let n = res.recipients_count;
            flash(
                &session,
                "success",
                format!("{n} message{} accepted.", if n == 1 { "" } else { "s" }),
            )
            .await?;
            Ok(Redirect::to("/messages").into_response())
        }
        Ok(Sent::Replayed(_)) => Ok(Redirect::to("/messages").into_response()),
        Err(SendError::Database(e)) => Err(e.into()),
        Err(e) => {
            let message = match &e {
                SendError::Quota(q) => format!(
                    "Your monthly allowance is used up: {} of {} sent.",
                    q.used, q.limit
                ),
                other => other.to_string(),
            };
            let page = SendPage {
                counter: Counter::of(&form.body),
                devices: devices(&state, user.id).await?,
                shell,
                recipients: form.recipients,
                body: form.body,
                device_id: form.device_id,
                errors: Errors::one(ender_core::FieldError::new(field(&e), message)),
            };
            Ok((StatusCode::UNPROCESSABLE_ENTITY, page).into_response())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recipients_split_on_commas_and_lines() {
        assert_eq!(
            split_recipients("+1 555 000 1111, +15550002222\n+15550003333;;"),
            ["+1 555 000 1111", "+15550002222", "+15550003333"]
        );
    }

    #[test]
    fn the_counter_matches_the_api() {
        let c = Counter::of(&"a".repeat(161));
        assert_eq!(
            (c.chars, c.segments, c.encoding, c.over),
            (161, 2, "GSM-7", false)
        );
        assert_eq!(Counter::of("").segments, 0);
        assert!(Counter::of(&"x".repeat(1601)).over);
    }
}
