//! The Send page: recipients (numbers and groups), a body with a live character and segment
//! counter (computed by the server, so page and API agree) or a template filled per
//! recipient, and the device to use.

use std::collections::BTreeMap;

use askama::Template;
use askama_web::WebTemplate;
use axum::Router;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use ender_core::sms::body::{BodyError, MAX_CHARS, clean, measure};
use ender_core::sms::send::{self, SendError, SendRequest, Sent, TemplateSendRequest};
use ender_core::workspace::{Action, WorkspaceId};
use tower_sessions::Session;

use crate::error::AppResult;
use crate::extract::Form;
use crate::routes::templates::{TemplateOption, VarInputs, options as template_options, variables_of};
use crate::session::{CurrentWorkspace, flash};
use crate::state::AppState;
use crate::views::{Errors, Shell, htmx_only, vary};
use ender_core::sms::send::SendResponse;
use ender_core::workspace::audit;

pub const PATH: &str = "/send";

pub fn routes() -> Router<AppState> {
    Router::new()
        .route(PATH, get(form).post(submit))
        .route("/send/count", get(count))
        .route("/send/template", get(template_fields))
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

/// One of the user's groups, as a checkbox.
pub struct GroupOption {
    pub id: String,
    pub name: String,
    pub members: i64,
    pub checked: bool,
}

/// The user's groups, ticked when chosen.
pub async fn group_options(
    state: &AppState,
    workspace: WorkspaceId,
    chosen: &[String],
) -> AppResult<Vec<GroupOption>> {
    Ok(ender_core::contact::repo::all_groups(&state.pool, workspace)
        .await?
        .into_iter()
        .map(|g| {
            let id = g.id.to_string();
            GroupOption {
                checked: chosen.contains(&id),
                id,
                name: g.name,
                members: g.members,
            }
        })
        .collect())
}

/// The template the message comes from.
pub struct ChosenTemplate {
    pub id: String,
    pub name: String,
}

/// The message part of the form: a body typed by hand, or a template's (read-only) with
/// inputs for its variables.
pub struct MessageFields {
    pub body: String,
    pub template: Option<ChosenTemplate>,
    pub vars: VarInputs,
    pub counter: Counter,
}

impl MessageFields {
    fn typed(body: String) -> Self {
        Self {
            counter: Counter::of(&body),
            body,
            template: None,
            vars: VarInputs::default(),
        }
    }

    /// The template with `raw` id among `templates`, or a typed body when there is none.
    fn of(templates: &[TemplateOption], raw: &str, body: String, values: &BTreeMap<String, String>) -> Self {
        match templates.iter().find(|t| !raw.is_empty() && t.id == raw.trim()) {
            Some(t) => Self {
                counter: Counter::of(&t.body),
                body: t.body.clone(),
                template: Some(ChosenTemplate {
                    id: t.id.clone(),
                    name: t.name.clone(),
                }),
                vars: VarInputs::of(&t.variables, values),
            },
            None => Self::typed(body),
        }
    }
}

#[derive(Template, WebTemplate)]
#[template(path = "send/form.html")]
pub struct SendPage {
    pub shell: Shell,
    pub recipients: String,
    pub device_id: String,
    pub devices: Vec<DeviceOption>,
    pub groups: Vec<GroupOption>,
    pub templates: Vec<TemplateOption>,
    pub message: MessageFields,
    pub errors: Errors,
}

#[derive(Template, WebTemplate)]
#[template(path = "send/_message.html")]
pub struct MessagePartial {
    pub message: MessageFields,
    pub errors: Errors,
}

async fn devices(state: &AppState, workspace: WorkspaceId) -> AppResult<Vec<DeviceOption>> {
    Ok(ender_core::device::list(&state.pool, workspace)
        .await?
        .into_iter()
        .map(|d| DeviceOption {
            id: d.id.to_string(),
            name: d.name,
        })
        .collect())
}

/// `?template=<id>` starts the form from that template.
#[derive(serde::Deserialize, Default)]
#[serde(default)]
pub struct FormQuery {
    template: String,
    body: String,
}

async fn form(
    State(state): State<AppState>,
    ws: CurrentWorkspace,
    shell: Shell,
    Query(q): Query<FormQuery>,
) -> AppResult<SendPage> {
    ws.may(Action::Send)?;
    let templates = template_options(&state, ws.id()).await?;
    Ok(SendPage {
        shell,
        recipients: String::new(),
        device_id: String::new(),
        devices: devices(&state, ws.id()).await?,
        groups: group_options(&state, ws.id(), &[]).await?,
        message: MessageFields::of(&templates, &q.template, q.body, &BTreeMap::new()),
        templates,
        errors: Errors::default(),
    })
}

/// The message part for the chosen template (HTMX, when the picker changes); choosing none
/// leaves the text that was there to edit.
async fn template_fields(
    State(state): State<AppState>,
    ws: CurrentWorkspace,
    headers: HeaderMap,
    Query(q): Query<FormQuery>,
) -> AppResult<Response> {
    ws.may(Action::Send)?;
    htmx_only(&headers)?;
    let templates = template_options(&state, ws.id()).await?;
    let message = MessageFields::of(&templates, &q.template, q.body, &BTreeMap::new());
    Ok(vary(
        MessagePartial {
            message,
            errors: Errors::default(),
        }
        .into_response(),
    ))
}

#[derive(serde::Deserialize, Default)]
#[serde(default)]
pub struct CountQuery {
    body: String,
}

async fn count(_ws: CurrentWorkspace, Query(q): Query<CountQuery>) -> Counter {
    Counter::of(&q.body)
}

/// The send form as submitted: `group_ids` repeats, one per ticked box; `var.<name>` gives
/// a template variable.
#[derive(Default)]
pub struct SendForm {
    recipients: String,
    body: String,
    device_id: String,
    group_ids: Vec<String>,
    template_id: String,
    variables: BTreeMap<String, String>,
}

impl SendForm {
    fn from_pairs(pairs: Vec<(String, String)>) -> Self {
        let mut f = Self {
            variables: variables_of(&pairs),
            ..Self::default()
        };
        for (k, v) in pairs {
            match k.as_str() {
                "recipients" => f.recipients = v,
                "body" => f.body = v,
                "device_id" => f.device_id = v,
                "group_ids" => f.group_ids.push(v),
                "template_id" => f.template_id = v,
                _ => {}
            }
        }
        f
    }

    fn device(&self) -> Option<String> {
        Some(self.device_id.clone()).filter(|d| !d.trim().is_empty())
    }
}

/// Numbers separated by commas, semicolons, spaces between numbers or new lines.
/// A send to more than [`audit::BULK_SEND_OVER`] recipients goes into the audit trail.
pub async fn note_bulk(state: &AppState, workspace: WorkspaceId, actor: audit::Actor, res: &SendResponse) {
    let n = i64::try_from(res.recipients_count).unwrap_or(i64::MAX);
    if n > audit::BULK_SEND_OVER {
        let detail = serde_json::json!({ "recipients": n, "batch_id": res.batch_id });
        crate::audit::note(
            state,
            workspace,
            actor,
            audit::kind::BULK_SEND,
            &format!("{n} recipients"),
            detail,
        )
        .await;
    }
}

pub fn split_recipients(raw: &str) -> Vec<String> {
    raw.split([',', ';', '\n', '\r'])
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect()
}

/// The form field a refused send is about.
fn field(e: &SendError) -> &'static str {
    match e {
        SendError::NoRecipients | SendError::InvalidNumber(_) | SendError::TooManyRecipients(_) => {
            "recipients"
        }
        SendError::Body(BodyError::Empty | BodyError::TooLong) => "body",
        SendError::DeviceNotFound(_) | SendError::DeviceNotOwned => "device_id",
        SendError::TemplateIdRequired | SendError::TemplateNotFound | SendError::TemplateNotOwned => {
            "template_id"
        }
        SendError::MissingVariable(_) => "variables",
        _ => "body",
    }
}

async fn submit(
    State(state): State<AppState>,
    ws: CurrentWorkspace,
    session: Session,
    shell: Shell,
    Form(pairs): Form<Vec<(String, String)>>,
) -> AppResult<Response> {
    ws.may(Action::Send)?;
    let form = SendForm::from_pairs(pairs);
    let outcome = if form.template_id.trim().is_empty() {
        let req = SendRequest {
            recipients: split_recipients(&form.recipients),
            body: form.body.clone(),
            device_id: form.device(),
            group_ids: form.group_ids.clone(),
            valid_until: None,
        };
        match send::validate(&state.pool, &state.sms, ws.id(), &req).await {
            Ok(v) => state.batcher.submit(ws.id(), v).await.map(Sent::Accepted),
            Err(e) => Err(e),
        }
    } else {
        // Filled per recipient ({{name}} from their contact), so it is sent on its own.
        let req = TemplateSendRequest {
            recipients: split_recipients(&form.recipients),
            template_id: form.template_id.clone(),
            variables: form.variables.clone().into_iter().collect(),
            device_id: form.device(),
            group_ids: form.group_ids.clone(),
            valid_until: None,
        };
        send::send_template(&state.pool, &state.sms, ws.id(), &req, None).await
    };
    match outcome {
        Ok(Sent::Accepted(res)) => {
            note_bulk(&state, ws.id(), ws.actor(), &res).await;
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
            let templates = template_options(&state, ws.id()).await?;
            let mut fields = MessageFields::of(&templates, &form.template_id, form.body, &form.variables);
            let error = ender_core::FieldError::new(field(&e), message);
            if error.field == "variables" {
                fields.vars.error = error.message.clone();
            }
            let page = SendPage {
                devices: devices(&state, ws.id()).await?,
                groups: group_options(&state, ws.id(), &form.group_ids).await?,
                templates,
                message: fields,
                shell,
                recipients: form.recipients,
                device_id: form.device_id,
                errors: Errors::one(error),
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
