//! Firing due schedules. Any number of workers call [`fire_due`]; each due schedule is
//! taken by one of them (`FOR UPDATE SKIP LOCKED`), and its messages, its run record and
//! its move to the next due time commit together, so a due time fires once. The run
//! record's key `(schedule, due time)` backs that up. After downtime a schedule fires once
//! for all the due times it missed (the next one is counted from now), and its history
//! marks that run late.

use chrono::{DateTime, Utc};
use sqlx::{Acquire, PgPool};

use super::model::{Content, Schedule, ScheduleId, When, next_run};
use super::repo::{ScheduleRow, query_schedules};
use crate::config::SmsConfig;
use crate::device::DeviceId;
use crate::quota;
use crate::sms::send::{self, SendError, SendRequest, TemplateSendRequest, Validated};
use crate::template::TemplateId;
use crate::workspace::WorkspaceId;

/// A run that starts this long after its due time is recorded as late.
pub const LATE_AFTER_SECS: i64 = 60;

/// What firing one due time did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fired {
    pub schedule: ScheduleId,
    pub due_at: DateTime<Utc>,
    pub messages: i32,
    pub error: String,
    pub late: bool,
}

/// Fires every schedule due at `now` (at most `limit`), each in its own transaction.
pub async fn fire_due(
    pool: &PgPool,
    cfg: &SmsConfig,
    now: DateTime<Utc>,
    limit: usize,
) -> sqlx::Result<Vec<Fired>> {
    let mut fired = Vec::new();
    while fired.len() < limit {
        match fire_one(pool, cfg, now).await? {
            Some(f) => fired.push(f),
            None => break,
        }
    }
    Ok(fired)
}

/// Takes one due schedule nobody else holds and fires it; `None` when none is due.
async fn fire_one(pool: &PgPool, cfg: &SmsConfig, now: DateTime<Utc>) -> sqlx::Result<Option<Fired>> {
    let mut tx = pool.begin().await?;
    let row = query_schedules!(
        "WHERE status = 'active' AND next_run_at <= $1 ORDER BY next_run_at LIMIT 1 FOR UPDATE SKIP LOCKED",
        now
    )
    .fetch_optional(&mut *tx)
    .await?;
    let Some(row) = row else {
        return Ok(None);
    };
    let id = row.id;
    let Some(due_at) = row.next_run_at else {
        return Ok(None);
    };
    let late = (now - due_at).num_seconds() > LATE_AFTER_SECS;
    let schedule = match row.into_schedule() {
        Ok(s) => s,
        Err(why) => {
            // It can never fire as stored: record why and pause it for its owner to fix.
            let error = format!("This schedule cannot run: {why}");
            record(&mut tx, id, due_at, now, late, 0, None, &error).await?;
            sqlx::query!(
                "UPDATE scheduled_sends SET status = 'paused', updated_at = now() WHERE id = $1",
                id as ScheduleId
            )
            .execute(&mut *tx)
            .await?;
            tx.commit().await?;
            return Ok(Some(Fired {
                schedule: id,
                due_at,
                messages: 0,
                error,
                late,
            }));
        }
    };
    // Messages go in a savepoint: a refused send (quota, a deleted template) still
    // records its run and moves the schedule on.
    let outcome = {
        let mut sp = tx.begin().await?;
        match build(pool, cfg, &schedule).await {
            Err(e) => Err(e),
            Ok(_)
                if !send::paused_of(&mut sp, &[schedule.workspace_id.0])
                    .await?
                    .is_empty() =>
            {
                Err(SendError::Paused)
            }
            Ok(v) => {
                let (ids, batch, response) = send::accept(&v);
                send::insert_accepted(&mut sp, &[(schedule.workspace_id, &v, &ids, batch)], true).await?;
                let n = i32::try_from(v.count()).unwrap_or(i32::MAX);
                let allowance = crate::billing::plans::allowance(&mut sp, schedule.workspace_id, cfg).await?;
                match quota::consume(&mut sp, schedule.workspace_id, n, allowance).await {
                    Ok(total) => {
                        if cfg.billing.enabled {
                            quota::note_crossing(&mut sp, schedule.workspace_id, allowance, total - n, total)
                                .await?;
                        }
                        sp.commit().await?;
                        Ok((n, batch.map(|b| b.0), response))
                    }
                    Err(e) => Err(SendError::from(e)),
                }
            }
        }
    };
    let (messages, batch, error, refusal) = match outcome {
        Ok((n, batch, response)) => (
            n,
            batch.or_else(|| response.message_ids.first().and_then(|m| m.parse().ok())),
            String::new(),
            None,
        ),
        Err(SendError::Database(e)) => return Err(e),
        Err(e) => (0, None, run_error(&e), Some(e.kind())),
    };
    record(&mut tx, id, due_at, now, late, messages, batch, &error).await?;
    let next = match &schedule.when {
        When::Once(_) => None,
        When::Recurring(_) => next_run(&schedule.when, schedule.timezone, now.max(due_at)),
    };
    sqlx::query!(
        "UPDATE scheduled_sends
         SET next_run_at = $2, status = CASE WHEN $2::timestamptz IS NULL THEN 'completed' ELSE status END,
             last_run_at = $3, run_count = run_count + 1, updated_at = now()
         WHERE id = $1",
        id as ScheduleId,
        next,
        now
    )
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    match refusal {
        // The run's history keeps the whole reason; the log names its kind only, since
        // the reason can carry a recipient's number.
        Some(reason) => tracing::warn!(schedule.id = %id, late, reason, "scheduled send refused"),
        None => tracing::info!(schedule.id = %id, messages, late, "scheduled send fired"),
    }
    Ok(Some(Fired {
        schedule: id,
        due_at,
        messages,
        error,
        late,
    }))
}

#[allow(clippy::too_many_arguments)]
async fn record(
    conn: &mut sqlx::PgConnection,
    id: ScheduleId,
    due_at: DateTime<Utc>,
    now: DateTime<Utc>,
    late: bool,
    messages: i32,
    batch: Option<uuid::Uuid>,
    error: &str,
) -> sqlx::Result<()> {
    sqlx::query!(
        "INSERT INTO schedule_runs (schedule_id, due_at, ran_at, late, messages, batch_id, error)
         VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (schedule_id, due_at) DO NOTHING",
        id as ScheduleId,
        due_at,
        now,
        late,
        messages,
        batch,
        error
    )
    .execute(conn)
    .await?;
    Ok(())
}

/// The history's words for a refused run.
fn run_error(e: &SendError) -> String {
    match e {
        SendError::Quota(q) => format!("Monthly SMS quota reached: {q}."),
        SendError::NoRecipients => {
            "No recipients: the groups are empty and no numbers are listed.".to_owned()
        }
        SendError::TemplateNotFound | SendError::TemplateNotOwned => {
            "The template no longer exists.".to_owned()
        }
        other => other.to_string(),
    }
}

/// The messages of one run: groups resolved now, the template as it reads now.
async fn build(pool: &PgPool, cfg: &SmsConfig, s: &Schedule) -> Result<Validated, SendError> {
    if !has_enabled_device(pool, s.workspace_id).await? {
        return Err(SendError::NoDevice);
    }
    let group_ids: Vec<String> = s.group_ids.iter().map(ToString::to_string).collect();
    let device_id = s.device_id.map(|d: DeviceId| d.to_string());
    match &s.content {
        Content::Body(body) => {
            let req = SendRequest {
                recipients: s.recipients.clone(),
                body: body.clone(),
                device_id,
                group_ids,
                valid_until: None,
            };
            send::validate(pool, cfg, s.workspace_id, &req).await
        }
        Content::Template { id, variables } => {
            let req = TemplateSendRequest {
                recipients: s.recipients.clone(),
                template_id: TemplateId::to_string(id),
                variables: variables.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
                device_id,
                group_ids,
                valid_until: None,
            };
            send::validate_template(pool, cfg, s.workspace_id, &req).await
        }
    }
}

async fn has_enabled_device(pool: &PgPool, workspace: WorkspaceId) -> sqlx::Result<bool> {
    sqlx::query_scalar!(
        r#"SELECT EXISTS (SELECT 1 FROM devices WHERE workspace_id = $1 AND enabled) AS "e!""#,
        workspace as WorkspaceId
    )
    .fetch_one(pool)
    .await
}
