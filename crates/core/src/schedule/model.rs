//! Schedule types and the checks a schedule passes.

use std::collections::BTreeMap;

use chrono::{DateTime, NaiveDateTime, Utc};
use chrono_tz::Tz;

use super::cron::{CronExpr, parse_timezone, resolve_local};
use crate::FieldError;
use crate::contact::GroupId;
use crate::device::DeviceId;
use crate::sms::phone::PhoneNumber;
use crate::template::TemplateId;
use crate::workspace::WorkspaceId;

id_type!(ScheduleId);

/// Longest schedule name, in characters.
pub const MAX_NAME: usize = 100;
/// Most numbers a schedule may list (groups add their members at each run).
pub const MAX_RECIPIENTS: usize = 1000;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Active,
    Paused,
    /// A one-time schedule that fired (or a recurring one with no further run).
    Completed,
}

impl Status {
    pub fn parse(s: &str) -> Self {
        match s {
            "paused" => Self::Paused,
            "completed" => Self::Completed,
            _ => Self::Active,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Active => "active",
            Self::Paused => "paused",
            Self::Completed => "completed",
        }
    }
}

/// When a schedule fires.
#[derive(Debug, Clone)]
pub enum When {
    Once(NaiveDateTime),
    Recurring(CronExpr),
}

/// What a schedule sends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Content {
    Body(String),
    Template {
        id: TemplateId,
        variables: BTreeMap<String, String>,
    },
}

#[derive(Debug, Clone)]
pub struct Schedule {
    pub id: ScheduleId,
    pub workspace_id: WorkspaceId,
    pub name: String,
    pub when: When,
    pub timezone: Tz,
    pub recipients: Vec<String>,
    pub group_ids: Vec<GroupId>,
    pub content: Content,
    pub device_id: Option<DeviceId>,
    pub status: Status,
    pub next_run_at: Option<DateTime<Utc>>,
    pub last_run_at: Option<DateTime<Utc>>,
    pub run_count: i32,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl Schedule {
    pub fn kind(&self) -> &'static str {
        match self.when {
            When::Once(_) => "once",
            When::Recurring(_) => "recurring",
        }
    }

    pub fn cron_expr(&self) -> &str {
        match &self.when {
            When::Recurring(c) => c.as_str(),
            When::Once(_) => "",
        }
    }

    /// The one-time wall-clock time as `YYYY-MM-DDTHH:MM` (empty for recurring).
    pub fn local_time(&self) -> String {
        match &self.when {
            When::Once(t) => t.format("%Y-%m-%dT%H:%M").to_string(),
            When::Recurring(_) => String::new(),
        }
    }

    /// A plain description of when it fires.
    pub fn describe(&self) -> String {
        match &self.when {
            When::Once(t) => format!("Once, {} ({})", t.format("%Y-%m-%d %H:%M"), self.timezone.name()),
            When::Recurring(c) => format!(
                "{} ({})",
                c.describe().unwrap_or_else(|| format!("Cron \"{}\"", c.as_str())),
                self.timezone.name()
            ),
        }
    }

    /// The next `n` times it fires after `after`.
    pub fn upcoming(&self, after: DateTime<Utc>, n: usize) -> Vec<DateTime<Utc>> {
        upcoming(&self.when, self.timezone, after, n)
    }
}

/// The next `n` fire times of `when` after `after`.
pub fn upcoming(when: &When, tz: Tz, after: DateTime<Utc>, n: usize) -> Vec<DateTime<Utc>> {
    match when {
        When::Once(local) => {
            let at = resolve_local(*local, tz);
            if at > after && n > 0 { vec![at] } else { Vec::new() }
        }
        When::Recurring(cron) => cron.upcoming(after, tz, n),
    }
}

/// The first fire time of `when` after `after`.
pub fn next_run(when: &When, tz: Tz, after: DateTime<Utc>) -> Option<DateTime<Utc>> {
    upcoming(when, tz, after, 1).into_iter().next()
}

/// A schedule as a form or an API request gives it, before checks.
#[derive(Debug, Clone, Default, serde::Deserialize)]
pub struct ScheduleForm {
    #[serde(default)]
    pub name: String,
    /// `once` or `recurring`.
    #[serde(default)]
    pub kind: String,
    /// One-time: `YYYY-MM-DDTHH:MM` (seconds allowed) on the wall clock of `timezone`.
    #[serde(default)]
    pub run_at: String,
    #[serde(default)]
    pub cron_expression: String,
    #[serde(default)]
    pub timezone: String,
    #[serde(default)]
    pub recipients: Vec<String>,
    #[serde(default)]
    pub group_ids: Vec<String>,
    #[serde(default)]
    pub body: String,
    #[serde(default)]
    pub template_id: String,
    #[serde(default)]
    pub variables: BTreeMap<String, String>,
    #[serde(default)]
    pub device_id: String,
}

/// A schedule's fields, checked (ownership of groups, template and device is checked by
/// the repository).
#[derive(Debug, Clone)]
pub struct ScheduleInput {
    pub name: String,
    pub when: When,
    pub timezone: Tz,
    pub recipients: Vec<String>,
    pub group_ids: Vec<GroupId>,
    pub content: Content,
    pub device_id: Option<DeviceId>,
}

fn parse_local(raw: &str) -> Option<NaiveDateTime> {
    let raw = raw.trim();
    [
        "%Y-%m-%dT%H:%M",
        "%Y-%m-%dT%H:%M:%S",
        "%Y-%m-%d %H:%M",
        "%Y-%m-%d %H:%M:%S",
    ]
    .iter()
    .find_map(|f| NaiveDateTime::parse_from_str(raw, f).ok())
}

impl ScheduleInput {
    /// Checks every field against `now` and reports all problems at once.
    pub fn parse(form: &ScheduleForm, now: DateTime<Utc>) -> Result<Self, Vec<FieldError>> {
        let mut errors = Vec::new();
        let name = form.name.trim();
        if name.chars().count() > MAX_NAME {
            errors.push(FieldError::new(
                "name",
                format!("Use at most {MAX_NAME} characters."),
            ));
        }
        let tz_raw = if form.timezone.trim().is_empty() {
            "UTC"
        } else {
            form.timezone.trim()
        };
        let timezone = match parse_timezone(tz_raw) {
            Ok(tz) => Some(tz),
            Err(e) => {
                errors.push(FieldError::new("timezone", e.to_string()));
                None
            }
        };
        let when = match form.kind.trim() {
            "once" => match parse_local(&form.run_at) {
                None => {
                    errors.push(FieldError::new(
                        "run_at",
                        if form.run_at.trim().is_empty() {
                            "Choose a date and time.".to_owned()
                        } else {
                            format!(
                                "\"{}\" is not a date and time (use YYYY-MM-DDTHH:MM).",
                                form.run_at.trim()
                            )
                        },
                    ));
                    None
                }
                Some(local) => {
                    if let Some(tz) = timezone
                        && resolve_local(local, tz) <= now
                    {
                        errors.push(FieldError::new(
                            "run_at",
                            "This time has already passed; choose a time in the future.",
                        ));
                    }
                    Some(When::Once(local))
                }
            },
            "recurring" => match CronExpr::parse(&form.cron_expression) {
                Ok(c) => Some(When::Recurring(c)),
                Err(e) => {
                    errors.push(FieldError::new("cron_expression", e.to_string()));
                    None
                }
            },
            _ => {
                errors.push(FieldError::new("kind", "Choose one-time or recurring."));
                None
            }
        };
        let mut recipients: Vec<String> = Vec::new();
        for raw in form.recipients.iter().map(|r| r.trim()).filter(|r| !r.is_empty()) {
            match PhoneNumber::parse(raw) {
                Ok(p) => {
                    if !recipients.iter().any(|r| r == p.as_str()) {
                        recipients.push(p.into_string());
                    }
                }
                Err(_) => {
                    errors.push(FieldError::new(
                        "recipients",
                        format!("Invalid phone number: {raw}. Must be E.164 format (e.g. +1234567890)."),
                    ));
                    break;
                }
            }
        }
        if recipients.len() > MAX_RECIPIENTS {
            errors.push(FieldError::new(
                "recipients",
                format!("List at most {MAX_RECIPIENTS} numbers; use a group for more."),
            ));
        }
        let mut group_ids = Vec::new();
        for raw in form.group_ids.iter().map(|g| g.trim()).filter(|g| !g.is_empty()) {
            match raw.parse::<GroupId>() {
                Ok(g) if !group_ids.contains(&g) => group_ids.push(g),
                Ok(_) => {}
                Err(_) => {
                    errors.push(FieldError::new("group_ids", "Group not found."));
                    break;
                }
            }
        }
        if recipients.is_empty() && group_ids.is_empty() && !errors.iter().any(|e| e.field == "recipients") {
            errors.push(FieldError::new("recipients", "Add at least one number or group."));
        }
        let content = if form.template_id.trim().is_empty() {
            let body = crate::sms::body::clean(&form.body);
            if body.trim().is_empty() {
                errors.push(FieldError::new(
                    "body",
                    "Enter the message text or choose a template.",
                ));
            } else if body.chars().count() > crate::sms::body::MAX_CHARS {
                errors.push(FieldError::new(
                    "body",
                    "Message body exceeds 1600 character limit.",
                ));
            }
            Content::Body(body)
        } else {
            match form.template_id.trim().parse::<TemplateId>() {
                Ok(id) => Content::Template {
                    id,
                    variables: form
                        .variables
                        .iter()
                        .map(|(k, v)| (k.trim().to_owned(), v.clone()))
                        .filter(|(k, _)| !k.is_empty())
                        .collect(),
                },
                Err(_) => {
                    errors.push(FieldError::new("template_id", "Template not found."));
                    Content::Body(String::new())
                }
            }
        };
        let device_id = match form.device_id.trim() {
            "" => None,
            raw => match raw.parse::<DeviceId>() {
                Ok(d) => Some(d),
                Err(_) => {
                    errors.push(FieldError::new("device_id", "Device not found."));
                    None
                }
            },
        };
        match (when, timezone) {
            (Some(when), Some(timezone)) if errors.is_empty() => Ok(Self {
                name: name.to_owned(),
                when,
                timezone,
                recipients,
                group_ids,
                content,
                device_id,
            }),
            _ => Err(errors),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ScheduleError {
    #[error("{}", .0.first().map(|e| e.message.as_str()).unwrap_or("Invalid input."))]
    Invalid(Vec<FieldError>),
    #[error("Schedule not found.")]
    NotFound,
    #[error("Group not found.")]
    GroupNotFound,
    #[error("Template not found.")]
    TemplateNotFound,
    #[error("Device not found.")]
    DeviceNotFound,
    #[error("You have {used} of {limit} scheduled sends; delete one before adding another.")]
    Limit { limit: i64, used: i64 },
    #[error("This one-time send has already gone out.")]
    Completed,
    #[error(transparent)]
    Database(#[from] sqlx::Error),
}

/// One fired due time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Run {
    pub due_at: DateTime<Utc>,
    pub ran_at: DateTime<Utc>,
    pub late: bool,
    pub messages: i32,
    pub batch_id: Option<uuid::Uuid>,
    pub error: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn form() -> ScheduleForm {
        ScheduleForm {
            kind: "recurring".into(),
            cron_expression: "0 9 * * *".into(),
            timezone: "Europe/London".into(),
            recipients: vec!["+447700900123".into()],
            body: "Hello".into(),
            ..ScheduleForm::default()
        }
    }

    fn now() -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2026-11-22T12:00:00Z")
            .unwrap()
            .to_utc()
    }

    #[test]
    fn a_recurring_schedule_is_accepted() {
        let input = ScheduleInput::parse(&form(), now()).unwrap();
        assert_eq!(input.timezone.name(), "Europe/London");
        assert_eq!(input.recipients, ["+447700900123"]);
    }

    #[test]
    fn each_bad_field_is_named() {
        let cases: Vec<(ScheduleForm, &str)> = vec![
            (
                ScheduleForm {
                    cron_expression: "61 * * * *".into(),
                    ..form()
                },
                "cron_expression",
            ),
            (
                ScheduleForm {
                    timezone: "Mars/Base".into(),
                    ..form()
                },
                "timezone",
            ),
            (
                ScheduleForm {
                    kind: "often".into(),
                    ..form()
                },
                "kind",
            ),
            (
                ScheduleForm {
                    recipients: vec!["12345".into()],
                    ..form()
                },
                "recipients",
            ),
            (
                ScheduleForm {
                    recipients: vec![],
                    ..form()
                },
                "recipients",
            ),
            (
                ScheduleForm {
                    body: " ".into(),
                    ..form()
                },
                "body",
            ),
            (
                ScheduleForm {
                    template_id: "nope".into(),
                    ..form()
                },
                "template_id",
            ),
            (
                ScheduleForm {
                    device_id: "nope".into(),
                    ..form()
                },
                "device_id",
            ),
            (
                ScheduleForm {
                    kind: "once".into(),
                    run_at: "tomorrow".into(),
                    ..form()
                },
                "run_at",
            ),
        ];
        for (f, field) in cases {
            let errors = ScheduleInput::parse(&f, now()).unwrap_err();
            assert!(errors.iter().any(|e| e.field == field), "{field}: {errors:?}");
        }
    }

    #[test]
    fn a_one_time_send_in_the_past_is_refused() {
        let past = ScheduleForm {
            kind: "once".into(),
            run_at: "2026-11-22T11:59".into(),
            timezone: "UTC".into(),
            ..form()
        };
        let errors = ScheduleInput::parse(&past, now()).unwrap_err();
        assert!(errors[0].message.contains("already passed"), "{errors:?}");
        let future = ScheduleForm {
            run_at: "2026-11-22T12:01".into(),
            ..past
        };
        assert!(ScheduleInput::parse(&future, now()).is_ok());
    }
}
