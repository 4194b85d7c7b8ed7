//! The scheduled-send pages: the user's schedules with when they run and how they went,
//! adding one (one time, or recurring by a pattern such as "weekdays at 08:30" or a raw
//! cron expression, in an IANA time zone) with its next runs previewed as the fields
//! change, and per schedule: editing, pause and resume, deleting, the next runs and the
//! run history.

use std::collections::BTreeMap;
use std::fmt::Display;

use askama::Template;
use askama_web::WebTemplate;
use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use chrono::{DateTime, TimeZone, Utc};
use ender_core::FieldError;
use ender_core::schedule::cron::timezone_names;
use ender_core::schedule::{
    self, Content, Run, Schedule, ScheduleError, ScheduleForm, ScheduleId, ScheduleInput, Status,
};
use ender_core::workspace::{Action, WorkspaceId};
use tower_sessions::Session;

use crate::error::{AppError, AppResult};
use crate::extract::Form;
use crate::routes::send::{Counter, GroupOption, group_options, split_recipients};
use crate::routes::templates::{
    PageQuery, Pager, TemplateOption, VarInputs, options as template_options, variables_of,
};
use crate::session::{CurrentWorkspace, flash};
use crate::state::AppState;
use crate::views::{Errors, Shell, htmx_only, vary};

pub const PATH: &str = "/scheduled";
pub const NEW: &str = "/scheduled/new";
pub const PREVIEW: &str = "/scheduled/preview";
pub const TEMPLATE_VARS: &str = "/scheduled/template-vars";
/// Schedules one page of the list shows.
const PAGE: i64 = 50;
/// Runs the history table shows.
const HISTORY: i64 = 50;
/// Upcoming runs previewed.
const UPCOMING: usize = 5;

/// The repeat patterns the form offers; `custom` takes the cron expression as typed.
pub const PATTERNS: [(&str, &str); 5] = [
    ("daily", "Every day"),
    ("weekdays", "Weekdays (Monday to Friday)"),
    ("weekly", "Every week"),
    ("monthly", "Every month"),
    ("custom", "Custom cron expression"),
];
/// Days of the week as cron numbers them (0 = Sunday).
pub const WEEKDAYS: [&str; 7] = [
    "Sunday",
    "Monday",
    "Tuesday",
    "Wednesday",
    "Thursday",
    "Friday",
    "Saturday",
];
/// Fields about when a schedule runs (what the next-runs preview reports on).
const TIMING_FIELDS: [&str; 8] = [
    "kind",
    "run_at",
    "cron_expression",
    "timezone",
    "pattern",
    "pattern_time",
    "pattern_weekday",
    "pattern_day",
];

pub fn routes() -> Router<AppState> {
    Router::new()
        .route(PATH, get(list))
        .route(NEW, get(new_form).post(create))
        .route(PREVIEW, post(preview))
        .route(TEMPLATE_VARS, get(template_vars))
        .route("/scheduled/{id}", get(show).post(update))
        .route("/scheduled/{id}/pause", post(pause))
        .route("/scheduled/{id}/resume", post(resume))
        .route("/scheduled/{id}/delete", post(delete))
}

/// `09:00` (seconds allowed, as a time input may send them) as hour and minute.
fn parse_time(raw: &str) -> Option<(u32, u32)> {
    let mut parts = raw.trim().split(':');
    let hour: u32 = parts.next()?.parse().ok().filter(|h| *h < 24)?;
    let minute: u32 = parts.next()?.parse().ok().filter(|m| *m < 60)?;
    match parts.next() {
        None => Some((hour, minute)),
        Some(s) if s.parse::<u32>().is_ok_and(|s| s < 60) && parts.next().is_none() => Some((hour, minute)),
        Some(_) => None,
    }
}

/// "1st", "22nd".
fn ordinal(n: u32) -> String {
    let suffix = match (n % 10, n % 100) {
        (_, 11..=13) => "th",
        (1, _) => "st",
        (2, _) => "nd",
        (3, _) => "rd",
        _ => "th",
    };
    format!("{n}{suffix}")
}

/// A stored expression as the pattern that builds it: (pattern, time, weekday, day of
/// month), or `None` when only "custom" says it.
fn pattern_of(expr: &str) -> Option<(&'static str, String, String, String)> {
    let fields: Vec<&str> = expr.split_whitespace().collect();
    let [minute, hour, dom, month, dow] = fields.as_slice() else {
        return None;
    };
    let minute: u32 = minute.parse().ok().filter(|m| *m < 60)?;
    let hour: u32 = hour.parse().ok().filter(|h| *h < 24)?;
    let time = format!("{hour:02}:{minute:02}");
    let (monday, first) = ("1".to_owned(), "1".to_owned());
    match (*dom, *month, *dow) {
        ("*", "*", "*") => Some(("daily", time, monday, first)),
        ("*", "*", "1-5") => Some(("weekdays", time, monday, first)),
        ("*", "*", d) => {
            let d: u32 = d.parse().ok().filter(|d| *d <= 6)?;
            Some(("weekly", time, d.to_string(), first))
        }
        (d, "*", "*") => {
            let d: u32 = d.parse().ok().filter(|d| (1..=31).contains(d))?;
            Some(("monthly", time, monday, d.to_string()))
        }
        _ => None,
    }
}

/// The form's values as submitted (or as stored).
pub struct ScheduleFields {
    pub name: String,
    /// `once` or `recurring`.
    pub kind: String,
    pub run_at: String,
    pub timezone: String,
    /// One of [`PATTERNS`].
    pub pattern: String,
    pub pattern_time: String,
    /// 0 (Sunday) to 6.
    pub pattern_weekday: String,
    /// 1 to 31.
    pub pattern_day: String,
    pub cron_expression: String,
    pub recipients: String,
    pub group_ids: Vec<String>,
    pub body: String,
    pub template_id: String,
    pub variables: BTreeMap<String, String>,
    pub device_id: String,
    /// A new form: the browser's zone replaces the UTC default (a script does it).
    pub guess_timezone: bool,
}

impl ScheduleFields {
    fn blank() -> Self {
        Self {
            name: String::new(),
            kind: "recurring".to_owned(),
            run_at: String::new(),
            timezone: "UTC".to_owned(),
            pattern: "daily".to_owned(),
            pattern_time: "09:00".to_owned(),
            pattern_weekday: "1".to_owned(),
            pattern_day: "1".to_owned(),
            cron_expression: "0 9 * * *".to_owned(),
            recipients: String::new(),
            group_ids: Vec::new(),
            body: String::new(),
            template_id: String::new(),
            variables: BTreeMap::new(),
            device_id: String::new(),
            guess_timezone: true,
        }
    }

    /// From the submitted pairs (`group_ids` repeats; `var.<name>` gives a template
    /// variable). A pattern other than "custom" sets the cron expression.
    fn from_pairs(pairs: Vec<(String, String)>) -> Self {
        let mut f = Self {
            kind: String::new(),
            pattern: String::new(),
            cron_expression: String::new(),
            timezone: String::new(),
            guess_timezone: false,
            variables: variables_of(&pairs),
            ..Self::blank()
        };
        for (k, v) in pairs {
            match k.as_str() {
                "name" => f.name = v,
                "kind" => f.kind = v,
                "run_at" => f.run_at = v,
                "timezone" => f.timezone = v,
                "pattern" => f.pattern = v,
                "pattern_time" => f.pattern_time = v,
                "pattern_weekday" => f.pattern_weekday = v,
                "pattern_day" => f.pattern_day = v,
                "cron_expression" => f.cron_expression = v,
                "recipients" => f.recipients = v,
                "group_ids" => f.group_ids.push(v),
                "body" => f.body = v,
                "template_id" => f.template_id = v,
                "device_id" => f.device_id = v,
                _ => {}
            }
        }
        if let Ok(Some(expr)) = f.pattern_cron() {
            f.cron_expression = expr;
        }
        f
    }

    fn of(s: &Schedule) -> Self {
        let (pattern, time, weekday, day) = pattern_of(s.cron_expr()).unwrap_or((
            "custom",
            "09:00".to_owned(),
            "1".to_owned(),
            "1".to_owned(),
        ));
        let (body, template_id, variables) = match &s.content {
            Content::Body(b) => (b.clone(), String::new(), BTreeMap::new()),
            Content::Template { id, variables } => (String::new(), id.to_string(), variables.clone()),
        };
        Self {
            name: s.name.clone(),
            kind: s.kind().to_owned(),
            run_at: s.local_time(),
            timezone: s.timezone.name().to_owned(),
            pattern: if s.kind() == "once" { "daily" } else { pattern }.to_owned(),
            pattern_time: time,
            pattern_weekday: weekday,
            pattern_day: day,
            cron_expression: s.cron_expr().to_owned(),
            recipients: s.recipients.join("\n"),
            group_ids: s.group_ids.iter().map(ToString::to_string).collect(),
            body,
            template_id,
            variables,
            device_id: s.device_id.map(|d| d.to_string()).unwrap_or_default(),
            guess_timezone: false,
        }
    }

    /// The cron expression the pattern fields stand for, `None` for "custom".
    fn pattern_cron(&self) -> Result<Option<String>, FieldError> {
        let time = || {
            parse_time(&self.pattern_time)
                .ok_or_else(|| FieldError::new("pattern_time", "Enter a time of day, like 09:00."))
        };
        let expr = match self.pattern.trim() {
            "custom" => return Ok(None),
            "daily" => {
                let (h, m) = time()?;
                format!("{m} {h} * * *")
            }
            "weekdays" => {
                let (h, m) = time()?;
                format!("{m} {h} * * 1-5")
            }
            "weekly" => {
                let (h, m) = time()?;
                let day = self
                    .pattern_weekday
                    .trim()
                    .parse::<u32>()
                    .ok()
                    .filter(|d| *d <= 6)
                    .ok_or_else(|| FieldError::new("pattern_weekday", "Choose a day of the week."))?;
                format!("{m} {h} * * {day}")
            }
            "monthly" => {
                let (h, m) = time()?;
                let day = self
                    .pattern_day
                    .trim()
                    .parse::<u32>()
                    .ok()
                    .filter(|d| (1..=31).contains(d))
                    .ok_or_else(|| FieldError::new("pattern_day", "Choose a day of the month, 1 to 31."))?;
                format!("{m} {h} {day} * *")
            }
            _ => return Err(FieldError::new("pattern", "Choose how often it repeats.")),
        };
        Ok(Some(expr))
    }

    /// What core checks, and the pattern's own error (for a recurring schedule).
    fn to_form(&self) -> (ScheduleForm, Vec<FieldError>) {
        let mut errors = Vec::new();
        if self.kind.trim() == "recurring"
            && let Err(e) = self.pattern_cron()
        {
            errors.push(e);
        }
        let form = ScheduleForm {
            name: self.name.clone(),
            kind: self.kind.clone(),
            run_at: self.run_at.clone(),
            cron_expression: self.cron_expression.clone(),
            timezone: self.timezone.clone(),
            recipients: split_recipients(&self.recipients),
            group_ids: self.group_ids.clone(),
            body: self.body.clone(),
            template_id: self.template_id.clone(),
            variables: self.variables.clone(),
            device_id: self.device_id.clone(),
        };
        (form, errors)
    }

    /// Every field checked; `vars` are the chosen template's inputs, all of which need a
    /// value.
    fn input(&self, now: DateTime<Utc>, vars: &VarInputs) -> Result<ScheduleInput, Vec<FieldError>> {
        let (form, mut errors) = self.to_form();
        if let Some(missing) = vars.missing() {
            errors.push(FieldError::new(
                "variables",
                format!("Give a value for {missing}."),
            ));
        }
        match ScheduleInput::parse(&form, now) {
            Ok(input) if errors.is_empty() => Ok(input),
            Ok(_) => Err(errors),
            Err(more) => {
                errors.extend(more);
                Err(errors)
            }
        }
    }

    /// Only the timing fields checked, exactly as a save checks them: the other fields get
    /// placeholders that pass.
    fn timing(&self, now: DateTime<Utc>) -> Result<ScheduleInput, Vec<FieldError>> {
        let (mut form, mut errors) = self.to_form();
        form.name.clear();
        form.recipients = vec!["+15551234567".to_owned()];
        form.group_ids.clear();
        form.body = "-".to_owned();
        form.template_id.clear();
        form.device_id.clear();
        match ScheduleInput::parse(&form, now) {
            Ok(input) if errors.is_empty() => Ok(input),
            Ok(_) => Err(errors),
            Err(more) => {
                errors.extend(more.into_iter().filter(|e| TIMING_FIELDS.contains(&e.field)));
                Err(errors)
            }
        }
    }

    pub fn is_once(&self) -> bool {
        self.kind == "once"
    }

    pub fn counter(&self) -> Counter {
        Counter::of(&self.body)
    }
}

/// What the form offers to choose from.
pub struct Choices {
    pub groups: Vec<GroupOption>,
    pub templates: Vec<TemplateOption>,
    pub devices: Vec<(String, String)>,
    pub timezones: Vec<&'static str>,
}

impl Choices {
    async fn load(state: &AppState, workspace: WorkspaceId, form: &ScheduleFields) -> AppResult<Self> {
        Ok(Self {
            groups: group_options(state, workspace, &form.group_ids).await?,
            templates: template_options(state, workspace).await?,
            devices: ender_core::device::list(&state.pool, workspace)
                .await?
                .into_iter()
                .map(|d| (d.id.to_string(), d.name))
                .collect(),
            timezones: timezone_names().collect(),
        })
    }

    /// The inputs for the chosen template's variables (none without a template).
    fn vars(&self, form: &ScheduleFields) -> VarInputs {
        self.templates
            .iter()
            .find(|t| !form.template_id.trim().is_empty() && t.id == form.template_id.trim())
            .map(|t| VarInputs::of(&t.variables, &form.variables))
            .unwrap_or_default()
    }

    pub fn patterns(&self) -> &'static [(&'static str, &'static str)] {
        &PATTERNS
    }

    /// (value, label) of the days of the week.
    pub fn weekdays(&self) -> Vec<(String, &'static str)> {
        WEEKDAYS
            .iter()
            .enumerate()
            .map(|(i, d)| (i.to_string(), *d))
            .collect()
    }

    /// (value, label) of the days of a month.
    pub fn month_days(&self) -> Vec<(String, String)> {
        (1..=31).map(|d| (d.to_string(), ordinal(d))).collect()
    }
}

/// A fire time on the schedule's clock, and in UTC.
pub struct RunTime {
    pub local: String,
    pub utc: String,
}

impl RunTime {
    fn new<Z: TimeZone>(t: DateTime<Utc>, tz: &Z) -> Self
    where
        Z::Offset: Display,
    {
        Self {
            local: t.with_timezone(tz).format("%a %Y-%m-%d %H:%M %Z").to_string(),
            utc: t.format("%Y-%m-%d %H:%M UTC").to_string(),
        }
    }
}

/// The next runs the form's timing gives, or why there are none.
pub struct RunsPreview {
    pub times: Vec<RunTime>,
    pub errors: Errors,
    /// The expression a pattern built, to put in the cron field (HTMX answers only).
    pub cron: String,
    pub oob: bool,
}

impl RunsPreview {
    fn of(form: &ScheduleFields, now: DateTime<Utc>) -> Self {
        let (times, errors) = match form.timing(now) {
            Ok(input) => (
                schedule::upcoming(&input.when, input.timezone, now, UPCOMING)
                    .into_iter()
                    .map(|t| RunTime::new(t, &input.timezone))
                    .collect(),
                Errors::default(),
            ),
            Err(errors) => (Vec::new(), Errors(errors)),
        };
        Self {
            times,
            errors,
            cron: match form.pattern_cron() {
                Ok(Some(expr)) if !form.is_once() => expr,
                _ => String::new(),
            },
            oob: false,
        }
    }

    /// The label of a timing field, for errors shown away from it.
    pub fn label(&self, field: &str) -> &'static str {
        match field {
            "kind" => "Kind",
            "run_at" => "Date and time",
            "cron_expression" => "Cron expression",
            "timezone" => "Time zone",
            "pattern" => "Repeats",
            "pattern_time" => "Time",
            "pattern_weekday" => "Day of the week",
            _ => "Day of the month",
        }
    }
}

/// A schedule as the list and its page show it.
pub struct ScheduleView {
    pub id: String,
    pub name: String,
    pub when: String,
    pub status: &'static str,
    pub badge: &'static str,
    pub next_run: String,
    pub last_run: String,
    pub run_count: i32,
    pub content: String,
    pub targets: String,
}

impl ScheduleView {
    fn new(s: &Schedule, templates: &[TemplateOption]) -> Self {
        let at = |t: Option<DateTime<Utc>>| t.map(|t| RunTime::new(t, &s.timezone).local).unwrap_or_default();
        let groups = s.group_ids.len();
        let numbers = s.recipients.len();
        let mut targets = Vec::new();
        if numbers > 0 {
            targets.push(format!("{numbers} number{}", if numbers == 1 { "" } else { "s" }));
        }
        if groups > 0 {
            targets.push(format!("{groups} group{}", if groups == 1 { "" } else { "s" }));
        }
        Self {
            id: s.id.to_string(),
            name: if s.name.is_empty() {
                s.describe()
            } else {
                s.name.clone()
            },
            when: s.describe(),
            status: s.status.as_str(),
            badge: match s.status {
                Status::Active => "badge-ok",
                Status::Paused => "badge-warn",
                Status::Completed => "badge-muted",
            },
            next_run: match s.status {
                Status::Active => at(s.next_run_at),
                _ => String::new(),
            },
            last_run: at(s.last_run_at),
            run_count: s.run_count,
            content: match &s.content {
                Content::Body(b) => b.clone(),
                Content::Template { id, .. } => {
                    let id = id.to_string();
                    let name = templates
                        .iter()
                        .find(|t| t.id == id)
                        .map(|t| t.name.as_str())
                        .unwrap_or("?");
                    format!("Template “{name}”")
                }
            },
            targets: targets.join(" and "),
        }
    }
}

/// One fired due time.
pub struct RunView {
    pub due: String,
    pub ran: String,
    pub late: bool,
    pub messages: i32,
    pub error: String,
}

impl RunView {
    fn new(r: &Run, s: &Schedule) -> Self {
        Self {
            due: RunTime::new(r.due_at, &s.timezone).local,
            ran: RunTime::new(r.ran_at, &s.timezone).local,
            late: r.late,
            messages: r.messages,
            error: r.error.clone(),
        }
    }
}

#[derive(Template, WebTemplate)]
#[template(path = "scheduled/list.html")]
pub struct SchedulesPage {
    pub shell: Shell,
    pub rows: Vec<ScheduleView>,
    pub pager: Pager,
    pub limit: i64,
}

async fn list(
    State(state): State<AppState>,
    ws: CurrentWorkspace,
    shell: Shell,
    Query(q): Query<PageQuery>,
) -> AppResult<SchedulesPage> {
    let (items, total) = schedule::repo::list(&state.pool, ws.id(), q.offset(PAGE), PAGE).await?;
    let templates = template_options(&state, ws.id()).await?;
    Ok(SchedulesPage {
        shell,
        rows: items.iter().map(|s| ScheduleView::new(s, &templates)).collect(),
        pager: Pager::new(&q, total, PAGE),
        limit: state.limits(ws.id()).await?.schedules,
    })
}

#[derive(Template, WebTemplate)]
#[template(path = "scheduled/new.html")]
pub struct NewSchedulePage {
    pub shell: Shell,
    pub form: ScheduleFields,
    pub choices: Choices,
    pub vars: VarInputs,
    pub runs: RunsPreview,
    pub errors: Errors,
}

impl NewSchedulePage {
    async fn new(
        state: &AppState,
        workspace: WorkspaceId,
        shell: Shell,
        form: ScheduleFields,
        errors: Errors,
    ) -> AppResult<Self> {
        let choices = Choices::load(state, workspace, &form).await?;
        let mut vars = choices.vars(&form);
        vars.error = errors.get("variables").to_owned();
        Ok(Self {
            shell,
            runs: RunsPreview::of(&form, Utc::now()),
            vars,
            choices,
            form,
            errors,
        })
    }
}

/// `?template=<id>` starts the form with that template.
#[derive(serde::Deserialize, Default)]
#[serde(default)]
pub struct NewQuery {
    template: String,
}

async fn new_form(
    State(state): State<AppState>,
    ws: CurrentWorkspace,
    shell: Shell,
    Query(q): Query<NewQuery>,
) -> AppResult<NewSchedulePage> {
    ws.may(Action::ManageSchedules)?;
    let form = ScheduleFields {
        template_id: q.template,
        ..ScheduleFields::blank()
    };
    NewSchedulePage::new(&state, ws.id(), shell, form, Errors::default()).await
}

/// The field errors of a failed save, or the failure to report otherwise.
fn save_errors(e: ScheduleError) -> AppResult<Vec<FieldError>> {
    let field = match &e {
        ScheduleError::Invalid(_) | ScheduleError::NotFound | ScheduleError::Database(_) => "",
        ScheduleError::GroupNotFound => "group_ids",
        ScheduleError::TemplateNotFound => "template_id",
        ScheduleError::DeviceNotFound => "device_id",
        ScheduleError::Limit { .. } | ScheduleError::Completed => "form",
    };
    match e {
        ScheduleError::Invalid(errors) => Ok(errors),
        ScheduleError::NotFound => Err(AppError::NotFound),
        ScheduleError::Database(e) => Err(e.into()),
        other => Ok(vec![FieldError::new(field, other.to_string())]),
    }
}

async fn create(
    State(state): State<AppState>,
    ws: CurrentWorkspace,
    session: Session,
    shell: Shell,
    Form(pairs): Form<Vec<(String, String)>>,
) -> AppResult<Response> {
    ws.may(Action::ManageSchedules)?;
    let form = ScheduleFields::from_pairs(pairs);
    let vars = Choices::load(&state, ws.id(), &form).await?.vars(&form);
    let now = Utc::now();
    let result = match form.input(now, &vars) {
        Ok(input) => {
            schedule::repo::create(
                &state.pool,
                ws.id(),
                &input,
                state.limits(ws.id()).await?.schedules,
                now,
            )
            .await
        }
        Err(errors) => Err(ScheduleError::Invalid(errors)),
    };
    match result {
        Ok(s) => {
            tracing::info!(workspace.id = %ws.id(), schedule.id = %s.id, "scheduled send added");
            flash(&session, "success", format!("Scheduled: {}.", s.describe())).await?;
            Ok(Redirect::to(&format!("/scheduled/{}", s.id)).into_response())
        }
        Err(e) => {
            let errors = Errors(save_errors(e)?);
            let page = NewSchedulePage::new(&state, ws.id(), shell, form, errors).await?;
            Ok((StatusCode::UNPROCESSABLE_ENTITY, page).into_response())
        }
    }
}

fn schedule_id(raw: &str) -> AppResult<ScheduleId> {
    raw.parse().map_err(|_| AppError::NotFound)
}

async fn load(state: &AppState, workspace: WorkspaceId, raw: &str) -> AppResult<Schedule> {
    schedule::repo::find(&state.pool, workspace, schedule_id(raw)?)
        .await?
        .ok_or(AppError::NotFound)
}

#[derive(Template, WebTemplate)]
#[template(path = "scheduled/show.html")]
pub struct SchedulePage {
    pub shell: Shell,
    pub schedule: ScheduleView,
    pub upcoming: Vec<RunTime>,
    pub history: Vec<RunView>,
    pub form: ScheduleFields,
    pub choices: Choices,
    pub vars: VarInputs,
    pub runs: RunsPreview,
    pub errors: Errors,
}

impl SchedulePage {
    /// The page of `s`, its form showing `form` (the stored values unless a save failed).
    async fn new(
        state: &AppState,
        workspace: WorkspaceId,
        shell: Shell,
        s: &Schedule,
        form: Option<ScheduleFields>,
        errors: Errors,
    ) -> AppResult<Self> {
        let now = Utc::now();
        let form = form.unwrap_or_else(|| ScheduleFields::of(s));
        let choices = Choices::load(state, workspace, &form).await?;
        let mut vars = choices.vars(&form);
        vars.error = errors.get("variables").to_owned();
        let history = schedule::repo::runs(&state.pool, workspace, s.id, HISTORY)
            .await?
            .iter()
            .map(|r| RunView::new(r, s))
            .collect();
        Ok(Self {
            shell,
            schedule: ScheduleView::new(s, &choices.templates),
            upcoming: upcoming(s, now),
            history,
            runs: RunsPreview::of(&form, now),
            vars,
            choices,
            form,
            errors,
        })
    }
}

/// The schedule's next runs: from its next due time when active (the worker may not have
/// fired an earlier one yet), from now when paused (resuming skips what was missed).
fn upcoming(s: &Schedule, now: DateTime<Utc>) -> Vec<RunTime> {
    let after = match (s.status, s.next_run_at) {
        (Status::Completed, _) => return Vec::new(),
        (Status::Active, Some(next)) => (next - chrono::Duration::seconds(1)).max(now),
        _ => now,
    };
    s.upcoming(after, UPCOMING)
        .into_iter()
        .map(|t| RunTime::new(t, &s.timezone))
        .collect()
}

async fn show(
    State(state): State<AppState>,
    ws: CurrentWorkspace,
    shell: Shell,
    Path(raw): Path<String>,
) -> AppResult<SchedulePage> {
    let s = load(&state, ws.id(), &raw).await?;
    SchedulePage::new(&state, ws.id(), shell, &s, None, Errors::default()).await
}

async fn update(
    State(state): State<AppState>,
    ws: CurrentWorkspace,
    session: Session,
    shell: Shell,
    Path(raw): Path<String>,
    Form(pairs): Form<Vec<(String, String)>>,
) -> AppResult<Response> {
    ws.may(Action::ManageSchedules)?;
    let s = load(&state, ws.id(), &raw).await?;
    let form = ScheduleFields::from_pairs(pairs);
    let vars = Choices::load(&state, ws.id(), &form).await?.vars(&form);
    let now = Utc::now();
    let result = match form.input(now, &vars) {
        Ok(input) => {
            schedule::repo::update(
                &state.pool,
                ws.id(),
                s.id,
                &input,
                state.limits(ws.id()).await?.schedules,
                now,
            )
            .await
        }
        Err(errors) => Err(ScheduleError::Invalid(errors)),
    };
    match result {
        Ok(saved) => {
            flash(&session, "success", format!("Saved: {}.", saved.describe())).await?;
            Ok(Redirect::to(&format!("/scheduled/{}", s.id)).into_response())
        }
        Err(e) => {
            let errors = Errors(save_errors(e)?);
            let page = SchedulePage::new(&state, ws.id(), shell, &s, Some(form), errors).await?;
            Ok((StatusCode::UNPROCESSABLE_ENTITY, page).into_response())
        }
    }
}

#[derive(Template, WebTemplate)]
#[template(path = "scheduled/_runs.html")]
pub struct RunsPartial {
    pub runs: RunsPreview,
}

/// The next runs of the form's timing fields (HTMX, as they change), and the cron field a
/// pattern fills.
async fn preview(
    ws: CurrentWorkspace,
    headers: HeaderMap,
    Form(pairs): Form<Vec<(String, String)>>,
) -> AppResult<Response> {
    ws.may(Action::ManageSchedules)?;
    htmx_only(&headers)?;
    let form = ScheduleFields::from_pairs(pairs);
    let mut runs = RunsPreview::of(&form, Utc::now());
    runs.oob = !runs.cron.is_empty();
    Ok(vary(RunsPartial { runs }.into_response()))
}

#[derive(Template, WebTemplate)]
#[template(path = "templates/_vars.html")]
pub struct VarsPartial {
    pub vars: VarInputs,
}

#[derive(serde::Deserialize, Default)]
#[serde(default)]
pub struct VarsQuery {
    template_id: String,
}

/// The inputs for the variables of the template just chosen (HTMX).
async fn template_vars(
    State(state): State<AppState>,
    ws: CurrentWorkspace,
    headers: HeaderMap,
    Query(q): Query<VarsQuery>,
) -> AppResult<Response> {
    htmx_only(&headers)?;
    let vars = template_options(&state, ws.id())
        .await?
        .iter()
        .find(|t| !q.template_id.trim().is_empty() && t.id == q.template_id.trim())
        .map(|t| VarInputs::of(&t.variables, &BTreeMap::new()))
        .unwrap_or_default();
    Ok(vary(VarsPartial { vars }.into_response()))
}

/// Flashes why pausing or resuming was refused.
async fn refused(session: &Session, e: ScheduleError) -> AppResult<()> {
    match e {
        ScheduleError::NotFound => Err(AppError::NotFound),
        ScheduleError::Database(e) => Err(e.into()),
        other => flash(session, "error", other.to_string()).await,
    }
}

async fn pause(
    State(state): State<AppState>,
    ws: CurrentWorkspace,
    session: Session,
    Path(raw): Path<String>,
) -> AppResult<Redirect> {
    ws.may(Action::ManageSchedules)?;
    let s = load(&state, ws.id(), &raw).await?;
    match schedule::repo::pause(&state.pool, ws.id(), s.id).await {
        Ok(_) => {
            flash(
                &session,
                "success",
                "Paused: it does not run until you resume it.",
            )
            .await?
        }
        Err(e) => refused(&session, e).await?,
    }
    Ok(Redirect::to(&format!("/scheduled/{}", s.id)))
}

async fn resume(
    State(state): State<AppState>,
    ws: CurrentWorkspace,
    session: Session,
    Path(raw): Path<String>,
) -> AppResult<Redirect> {
    ws.may(Action::ManageSchedules)?;
    let s = load(&state, ws.id(), &raw).await?;
    match schedule::repo::resume(&state.pool, ws.id(), s.id, Utc::now()).await {
        Ok(resumed) => {
            let next = resumed
                .next_run_at
                .map(|t| format!(" Next run: {}.", RunTime::new(t, &resumed.timezone).local))
                .unwrap_or_default();
            flash(&session, "success", format!("Resumed.{next}")).await?;
        }
        Err(e) => refused(&session, e).await?,
    }
    Ok(Redirect::to(&format!("/scheduled/{}", s.id)))
}

async fn delete(
    State(state): State<AppState>,
    ws: CurrentWorkspace,
    session: Session,
    Path(raw): Path<String>,
) -> AppResult<Redirect> {
    ws.may(Action::ManageSchedules)?;
    let s = load(&state, ws.id(), &raw).await?;
    if !schedule::repo::delete(&state.pool, ws.id(), s.id).await? {
        return Err(AppError::NotFound);
    }
    tracing::info!(workspace.id = %ws.id(), schedule.id = %s.id, "scheduled send deleted");
    flash(
        &session,
        "success",
        "The scheduled send was deleted, with its history.",
    )
    .await?;
    Ok(Redirect::to(PATH))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields(pattern: &str, time: &str, weekday: &str, day: &str) -> ScheduleFields {
        ScheduleFields {
            pattern: pattern.to_owned(),
            pattern_time: time.to_owned(),
            pattern_weekday: weekday.to_owned(),
            pattern_day: day.to_owned(),
            ..ScheduleFields::blank()
        }
    }

    #[test]
    fn patterns_build_cron_expressions() {
        let cases = [
            (fields("daily", "09:00", "", ""), "0 9 * * *"),
            (fields("weekdays", "08:30", "", ""), "30 8 * * 1-5"),
            (fields("weekly", "18:05:00", "0", ""), "5 18 * * 0"),
            (fields("monthly", "00:00", "", "31"), "0 0 31 * *"),
        ];
        for (f, expr) in cases {
            assert_eq!(f.pattern_cron().unwrap().as_deref(), Some(expr));
            assert_eq!(
                pattern_of(expr).map(|p| p.0),
                Some(f.pattern.as_str()),
                "{expr} reads back"
            );
        }
        assert_eq!(fields("custom", "", "", "").pattern_cron().unwrap(), None);
        assert_eq!(pattern_of("*/15 * * * *"), None);
        assert_eq!(pattern_of("0 9 1 * 1"), None);
    }

    #[test]
    fn bad_pattern_fields_are_named() {
        for (f, field) in [
            (fields("daily", "25:00", "", ""), "pattern_time"),
            (fields("daily", "9", "", ""), "pattern_time"),
            (fields("weekly", "09:00", "7", ""), "pattern_weekday"),
            (fields("monthly", "09:00", "", "0"), "pattern_day"),
            (fields("often", "09:00", "", ""), "pattern"),
        ] {
            assert_eq!(f.pattern_cron().unwrap_err().field, field);
        }
    }

    #[test]
    fn ordinals_read_naturally() {
        let got: Vec<String> = [1, 2, 3, 4, 11, 12, 13, 21, 22, 23, 31].map(ordinal).into();
        assert_eq!(
            got,
            [
                "1st", "2nd", "3rd", "4th", "11th", "12th", "13th", "21st", "22nd", "23rd", "31st"
            ]
        );
    }
}
