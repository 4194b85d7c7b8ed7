//! Schedules in Postgres, scoped to their owner.

use std::collections::BTreeMap;

use chrono::{DateTime, NaiveDateTime, Utc};
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

use super::cron::{CronExpr, parse_timezone};
use super::model::{
    Content, Run, Schedule, ScheduleError, ScheduleId, ScheduleInput, Status, When, next_run,
};
use crate::contact::GroupId;
use crate::device::DeviceId;
use crate::secret::at_rest::{self, Column};
use crate::template::TemplateId;
use crate::workspace::WorkspaceId;

pub(crate) struct ScheduleRow {
    pub id: ScheduleId,
    pub workspace_id: WorkspaceId,
    pub name: String,
    pub kind: String,
    pub local_time: Option<NaiveDateTime>,
    pub cron_expr: String,
    pub timezone: String,
    pub recipients: Vec<String>,
    pub group_ids: Vec<Uuid>,
    pub body: String,
    pub body_sealed: Option<Vec<u8>>,
    pub template_id: Option<TemplateId>,
    pub variables: serde_json::Value,
    pub device_id: Option<DeviceId>,
    pub status: String,
    pub next_run_at: Option<DateTime<Utc>>,
    pub last_run_at: Option<DateTime<Utc>>,
    pub run_count: i32,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl ScheduleRow {
    /// The schedule, or why its stored definition no longer reads (a time zone removed
    /// from the database, say).
    pub(crate) fn into_schedule(self) -> Result<Schedule, String> {
        let timezone = parse_timezone(&self.timezone).map_err(|e| e.to_string())?;
        let when = match (self.kind.as_str(), self.local_time) {
            ("once", Some(t)) => When::Once(t),
            _ => When::Recurring(CronExpr::parse(&self.cron_expr).map_err(|e| e.to_string())?),
        };
        let content = match self.template_id {
            Some(id) => Content::Template {
                id,
                variables: serde_json::from_value::<BTreeMap<String, String>>(self.variables)
                    .unwrap_or_default(),
            },
            None => Content::Body(
                at_rest::open_text(
                    Column::ScheduleBody,
                    self.id.0,
                    self.body,
                    self.body_sealed.as_deref(),
                )
                .map_err(|e| format!("its message text could not be opened: {e}"))?,
            ),
        };
        Ok(Schedule {
            id: self.id,
            workspace_id: self.workspace_id,
            name: self.name,
            when,
            timezone,
            recipients: self.recipients,
            group_ids: self.group_ids.into_iter().map(GroupId).collect(),
            content,
            device_id: self.device_id,
            status: Status::parse(&self.status),
            next_run_at: self.next_run_at,
            last_run_at: self.last_run_at,
            run_count: self.run_count,
            created_at: self.created_at,
            updated_at: self.updated_at,
        })
    }
}

/// `query_as!` over the schedule columns, with the rest of the query appended.
macro_rules! query_schedules {
    ($tail:literal $(, $arg:expr)* $(,)?) => {
        sqlx::query_as!(
            ScheduleRow,
            r#"SELECT id AS "id: ScheduleId", workspace_id AS "workspace_id: WorkspaceId", name, kind, local_time, cron_expr, timezone,
                      recipients, group_ids, body, body_sealed, template_id AS "template_id: TemplateId", variables,
                      device_id AS "device_id: DeviceId", status, next_run_at, last_run_at, run_count, created_at, updated_at
               FROM scheduled_sends "# + $tail
            $(, $arg)*
        )
    };
}
pub(crate) use query_schedules;

fn readable(rows: Vec<ScheduleRow>) -> Vec<Schedule> {
    rows.into_iter().filter_map(|r| r.into_schedule().ok()).collect()
}

/// One page of the workspace's schedules, newest first, and how many there are.
pub async fn list(
    pool: &PgPool,
    workspace: WorkspaceId,
    offset: i64,
    limit: i64,
) -> sqlx::Result<(Vec<Schedule>, i64)> {
    let total = sqlx::query_scalar!(
        r#"SELECT count(*) AS "n!" FROM scheduled_sends WHERE workspace_id = $1"#,
        workspace as WorkspaceId
    )
    .fetch_one(pool)
    .await?;
    let rows = query_schedules!(
        "WHERE workspace_id = $1 ORDER BY created_at DESC, id DESC OFFSET $2 LIMIT $3",
        workspace as WorkspaceId,
        offset,
        limit
    )
    .fetch_all(pool)
    .await?;
    Ok((readable(rows), total))
}

pub async fn find(pool: &PgPool, workspace: WorkspaceId, id: ScheduleId) -> sqlx::Result<Option<Schedule>> {
    let row = query_schedules!(
        "WHERE id = $1 AND workspace_id = $2",
        id as ScheduleId,
        workspace as WorkspaceId
    )
    .fetch_optional(pool)
    .await?;
    Ok(row.and_then(|r| r.into_schedule().ok()))
}

/// Active and paused schedules of the workspace (what the limit counts).
pub async fn count_open(conn: &mut PgConnection, workspace: WorkspaceId) -> sqlx::Result<i64> {
    sqlx::query_scalar!(
        r#"SELECT count(*) AS "n!" FROM scheduled_sends WHERE workspace_id = $1 AND status IN ('active', 'paused')"#,
        workspace as WorkspaceId
    )
    .fetch_one(conn)
    .await
}

/// Checks that the groups, template and device a schedule names are the workspace's.
async fn check_owned(
    conn: &mut PgConnection,
    workspace: WorkspaceId,
    input: &ScheduleInput,
) -> Result<(), ScheduleError> {
    if !input.group_ids.is_empty() {
        let ids: Vec<Uuid> = input.group_ids.iter().map(|g| g.0).collect();
        let owned = sqlx::query_scalar!(
            r#"SELECT count(*) AS "n!" FROM contact_groups WHERE workspace_id = $1 AND id = ANY($2)"#,
            workspace as WorkspaceId,
            &ids
        )
        .fetch_one(&mut *conn)
        .await?;
        if owned != ids.len() as i64 {
            return Err(ScheduleError::GroupNotFound);
        }
    }
    if let Content::Template { id, .. } = &input.content {
        let owned = sqlx::query_scalar!(
            r#"SELECT count(*) AS "n!" FROM message_templates WHERE id = $1 AND workspace_id = $2"#,
            *id as TemplateId,
            workspace as WorkspaceId
        )
        .fetch_one(&mut *conn)
        .await?;
        if owned == 0 {
            return Err(ScheduleError::TemplateNotFound);
        }
    }
    if let Some(device) = input.device_id {
        let owned = sqlx::query_scalar!(
            r#"SELECT count(*) AS "n!" FROM devices WHERE id = $1 AND workspace_id = $2"#,
            device as DeviceId,
            workspace as WorkspaceId
        )
        .fetch_one(&mut *conn)
        .await?;
        if owned == 0 {
            return Err(ScheduleError::DeviceNotFound);
        }
    }
    Ok(())
}

struct Columns {
    kind: &'static str,
    local_time: Option<NaiveDateTime>,
    cron_expr: String,
    body: String,
    /// Empty for NULL.
    body_sealed: Vec<u8>,
    template_id: Option<Uuid>,
    variables: serde_json::Value,
    group_ids: Vec<Uuid>,
}

fn columns(id: ScheduleId, input: &ScheduleInput) -> sqlx::Result<Columns> {
    let (kind, local_time, cron_expr) = match &input.when {
        When::Once(t) => ("once", Some(*t), String::new()),
        When::Recurring(c) => ("recurring", None, c.as_str().to_owned()),
    };
    let (body, body_sealed, template_id, variables) = match &input.content {
        Content::Body(b) => {
            let (body, sealed) = at_rest::store_text(Column::ScheduleBody, id.0, b)?;
            (body, sealed, None, serde_json::json!({}))
        }
        Content::Template { id, variables } => (
            String::new(),
            Vec::new(),
            Some(id.0),
            serde_json::to_value(variables).unwrap_or_else(|_| serde_json::json!({})),
        ),
    };
    Ok(Columns {
        kind,
        local_time,
        cron_expr,
        body,
        body_sealed,
        template_id,
        variables,
        group_ids: input.group_ids.iter().map(|g| g.0).collect(),
    })
}

/// Creates an active schedule, within the workspace's limit of open schedules.
pub async fn create(
    pool: &PgPool,
    workspace: WorkspaceId,
    input: &ScheduleInput,
    max_open: i64,
    now: DateTime<Utc>,
) -> Result<Schedule, ScheduleError> {
    let mut tx = pool.begin().await?;
    // Serialises this workspace's creations so two at once cannot both pass the limit.
    crate::workspace::repo::lock(&mut tx, workspace).await?;
    let used = count_open(&mut tx, workspace).await?;
    if used >= max_open {
        return Err(ScheduleError::Limit {
            limit: max_open,
            used,
        });
    }
    check_owned(&mut tx, workspace, input).await?;
    let next = next_run(&input.when, input.timezone, now);
    let id = ScheduleId(Uuid::now_v7());
    let c = columns(id, input)?;
    sqlx::query!(
        "INSERT INTO scheduled_sends (id, workspace_id, name, kind, local_time, cron_expr, timezone, recipients, group_ids,
                                      body, body_sealed, template_id, variables, device_id, status, next_run_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, NULLIF($16, ''::bytea), $11, $12, $13, $14, $15)",
        id as ScheduleId,
        workspace as WorkspaceId,
        input.name,
        c.kind,
        c.local_time,
        c.cron_expr,
        input.timezone.name(),
        &input.recipients,
        &c.group_ids,
        c.body,
        c.template_id,
        c.variables,
        input.device_id.map(|d| d.0),
        if next.is_some() { "active" } else { "completed" },
        next,
        c.body_sealed
    )
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    find(pool, workspace, id).await?.ok_or(ScheduleError::NotFound)
}

/// Replaces a schedule's definition; its next run is worked out afresh from `now`. A
/// completed one-time send given a new future time becomes active again, if the workspace's
/// limit of open schedules has room.
pub async fn update(
    pool: &PgPool,
    workspace: WorkspaceId,
    id: ScheduleId,
    input: &ScheduleInput,
    max_open: i64,
    now: DateTime<Utc>,
) -> Result<Schedule, ScheduleError> {
    let mut tx = pool.begin().await?;
    check_owned(&mut tx, workspace, input).await?;
    let next = next_run(&input.when, input.timezone, now);
    crate::workspace::repo::lock(&mut tx, workspace).await?;
    let status = sqlx::query_scalar!(
        "SELECT status FROM scheduled_sends WHERE id = $1 AND workspace_id = $2",
        id as ScheduleId,
        workspace as WorkspaceId
    )
    .fetch_optional(&mut *tx)
    .await?
    .ok_or(ScheduleError::NotFound)?;
    if status == "completed" && next.is_some() {
        let used = count_open(&mut tx, workspace).await?;
        if used >= max_open {
            return Err(ScheduleError::Limit {
                limit: max_open,
                used,
            });
        }
    }
    let c = columns(id, input)?;
    let done = sqlx::query!(
        "UPDATE scheduled_sends
         SET name = $3, kind = $4, local_time = $5, cron_expr = $6, timezone = $7, recipients = $8, group_ids = $9,
             body = $10, body_sealed = NULLIF($15, ''::bytea), template_id = $11, variables = $12, device_id = $13, next_run_at = $14,
             status = CASE WHEN $14::timestamptz IS NULL THEN 'completed'
                           WHEN status = 'paused' THEN 'paused' ELSE 'active' END,
             updated_at = now()
         WHERE id = $1 AND workspace_id = $2",
        id as ScheduleId,
        workspace as WorkspaceId,
        input.name,
        c.kind,
        c.local_time,
        c.cron_expr,
        input.timezone.name(),
        &input.recipients,
        &c.group_ids,
        c.body,
        c.template_id,
        c.variables,
        input.device_id.map(|d| d.0),
        next,
        c.body_sealed
    )
    .execute(&mut *tx)
    .await?;
    if done.rows_affected() == 0 {
        return Err(ScheduleError::NotFound);
    }
    tx.commit().await?;
    find(pool, workspace, id).await?.ok_or(ScheduleError::NotFound)
}

pub async fn delete(pool: &PgPool, workspace: WorkspaceId, id: ScheduleId) -> sqlx::Result<bool> {
    let done = sqlx::query!(
        "DELETE FROM scheduled_sends WHERE id = $1 AND workspace_id = $2",
        id as ScheduleId,
        workspace as WorkspaceId
    )
    .execute(pool)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Stops an active schedule from firing until it is resumed.
pub async fn pause(pool: &PgPool, workspace: WorkspaceId, id: ScheduleId) -> Result<Schedule, ScheduleError> {
    let s = find(pool, workspace, id).await?.ok_or(ScheduleError::NotFound)?;
    if s.status == Status::Completed {
        return Err(ScheduleError::Completed);
    }
    sqlx::query!(
        "UPDATE scheduled_sends SET status = 'paused', updated_at = now() WHERE id = $1 AND workspace_id = $2 AND status = 'active'",
        id as ScheduleId,
        workspace as WorkspaceId
    )
    .execute(pool)
    .await?;
    find(pool, workspace, id).await?.ok_or(ScheduleError::NotFound)
}

/// Starts a paused schedule again from `now`: a recurring one at its next due time (runs
/// missed while paused are skipped); a one-time one whose time passed while paused fires
/// at once.
pub async fn resume(
    pool: &PgPool,
    workspace: WorkspaceId,
    id: ScheduleId,
    now: DateTime<Utc>,
) -> Result<Schedule, ScheduleError> {
    let s = find(pool, workspace, id).await?.ok_or(ScheduleError::NotFound)?;
    if s.status == Status::Completed {
        return Err(ScheduleError::Completed);
    }
    let next = match &s.when {
        When::Once(local) => Some(super::cron::resolve_local(*local, s.timezone)),
        When::Recurring(_) => next_run(&s.when, s.timezone, now),
    };
    sqlx::query!(
        "UPDATE scheduled_sends
         SET status = CASE WHEN $3::timestamptz IS NULL THEN 'completed' ELSE 'active' END,
             next_run_at = $3, updated_at = now()
         WHERE id = $1 AND workspace_id = $2 AND status = 'paused'",
        id as ScheduleId,
        workspace as WorkspaceId,
        next
    )
    .execute(pool)
    .await?;
    find(pool, workspace, id).await?.ok_or(ScheduleError::NotFound)
}

/// The schedule's most recent runs, newest first.
pub async fn runs(
    pool: &PgPool,
    workspace: WorkspaceId,
    id: ScheduleId,
    limit: i64,
) -> sqlx::Result<Vec<Run>> {
    sqlx::query_as!(
        Run,
        "SELECT r.due_at, r.ran_at, r.late, r.messages, r.batch_id, r.error
         FROM schedule_runs r JOIN scheduled_sends s ON s.id = r.schedule_id
         WHERE r.schedule_id = $1 AND s.workspace_id = $2
         ORDER BY r.ran_at DESC, r.due_at DESC LIMIT $3",
        id as ScheduleId,
        workspace as WorkspaceId,
        limit
    )
    .fetch_all(pool)
    .await
}
