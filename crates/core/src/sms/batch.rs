//! Group commit for sends. Each commit of a send waits for the disk and holds the workspace's
//! usage row, so one account sending from many connections is limited by commits, not by
//! work. The batcher collects the requests that arrive while a commit is in flight and
//! accepts them together: one transaction, one insert per table, each workspace's usage row
//! locked once (in id order, so batchers of several processes never deadlock), each request
//! accepted or refused on its own against the remaining quota.

use std::sync::Arc;

use sqlx::PgPool;
use tokio::sync::{Mutex, mpsc, oneshot};

use super::send::{SendError, SendResponse, Validated, accept, insert_accepted};
use crate::config::SmsConfig;
use crate::quota::{Allowance, QuotaExceeded};
use crate::workspace::WorkspaceId;

/// Most requests accepted in one transaction.
const MAX_BATCH: usize = 256;
/// Transactions in flight at once. One: batches of one account would only queue on its
/// usage row, and a single writer lets each batch grow while the previous one commits.
const WORKERS: usize = 1;

type Reply = oneshot::Sender<Result<SendResponse, SendError>>;

#[derive(Clone)]
pub struct Batcher {
    tx: mpsc::Sender<(WorkspaceId, Validated, Reply)>,
}

impl Batcher {
    /// Starts the batch workers on the current runtime.
    pub fn start(pool: PgPool, cfg: SmsConfig) -> Self {
        let (tx, rx) = mpsc::channel(4096);
        let rx = Arc::new(Mutex::new(rx));
        for _ in 0..WORKERS {
            tokio::spawn(work(pool.clone(), cfg.clone(), rx.clone()));
        }
        Self { tx }
    }

    /// Accepts a validated request (or refuses it on quota) as part of the next batch.
    pub async fn submit(
        &self,
        workspace: WorkspaceId,
        request: Validated,
    ) -> Result<SendResponse, SendError> {
        let (reply, answer) = oneshot::channel();
        self.tx
            .send((workspace, request, reply))
            .await
            .map_err(|_| SendError::Database(sqlx::Error::PoolClosed))?;
        answer
            .await
            .unwrap_or(Err(SendError::Database(sqlx::Error::PoolClosed)))
    }
}

async fn work(pool: PgPool, cfg: SmsConfig, rx: Arc<Mutex<mpsc::Receiver<(WorkspaceId, Validated, Reply)>>>) {
    // The writer keeps one connection of its own (no pool round trip per batch), and takes
    // a fresh one after any error.
    let mut conn: Option<sqlx::PgConnection> = None;
    loop {
        let mut jobs = Vec::new();
        {
            let mut rx = rx.lock().await;
            let Some(first) = rx.recv().await else { return };
            jobs.push(first);
            while jobs.len() < MAX_BATCH {
                match rx.try_recv() {
                    Ok(job) => jobs.push(job),
                    Err(_) => break,
                }
            }
        }
        let result = match conn.as_mut() {
            Some(c) => commit(c, &cfg, &jobs).await,
            None => match pool.acquire().await {
                Ok(c) => commit(conn.insert(c.detach()), &cfg, &jobs).await,
                Err(e) => Err(e),
            },
        };
        if result.is_err() {
            conn = None;
        }
        match result {
            Ok(outcomes) => {
                for ((_, _, reply), outcome) in jobs.into_iter().zip(outcomes) {
                    let _ = reply.send(outcome);
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, requests = jobs.len(), "a batch of sends failed");
                let unavailable = crate::db::is_unavailable(&e);
                for (_, _, reply) in jobs {
                    let err = if unavailable {
                        sqlx::Error::PoolTimedOut
                    } else {
                        sqlx::Error::WorkerCrashed
                    };
                    let _ = reply.send(Err(SendError::Database(err)));
                }
            }
        }
    }
}

async fn commit(
    conn: &mut sqlx::PgConnection,
    cfg: &SmsConfig,
    jobs: &[(WorkspaceId, Validated, Reply)],
) -> sqlx::Result<Vec<Result<SendResponse, SendError>>> {
    let mut workspaces: Vec<uuid::Uuid> = jobs.iter().map(|j| j.0.0).collect();
    workspaces.sort();
    workspaces.dedup();
    let mut tx = sqlx::Connection::begin(conn).await?;
    // Each workspace's allowance: the server's, or (billing on) its plan's over its period.
    let mut allowances: std::collections::HashMap<uuid::Uuid, Allowance> = std::collections::HashMap::new();
    for w in &workspaces {
        let a = crate::billing::plans::allowance(&mut tx, WorkspaceId(*w), cfg).await?;
        allowances.insert(*w, a);
    }
    let periods: Vec<chrono::NaiveDate> = workspaces.iter().map(|w| allowances[w].period).collect();
    // Creates missing usage rows and locks them all, in id order, in one statement.
    let rows = sqlx::query!(
        "INSERT INTO sms_usage (workspace_id, month, sent)
         SELECT u, m, 0 FROM unnest($1::uuid[], $2::date[]) AS t(u, m) ORDER BY u
         ON CONFLICT (workspace_id, month) DO UPDATE SET sent = sms_usage.sent
         RETURNING workspace_id, sent",
        &workspaces,
        &periods
    )
    .fetch_all(&mut *tx)
    .await?;
    let mut used: std::collections::HashMap<uuid::Uuid, i32> =
        rows.into_iter().map(|r| (r.workspace_id, r.sent)).collect();
    let used_before = used.clone();

    let paused = super::send::paused_of(&mut tx, &workspaces).await?;
    let mut outcomes = Vec::with_capacity(jobs.len());
    let mut accepted = Vec::new();
    let mut prepared = Vec::new();
    for (workspace, v, _) in jobs {
        if paused.contains(&workspace.0) {
            outcomes.push(Some(Err(SendError::Paused)));
            continue;
        }
        let limit = allowances
            .get(&workspace.0)
            .map_or(cfg.max_sms_per_month, |a| a.limit);
        let n = i32::try_from(v.count()).unwrap_or(i32::MAX);
        let u = used.entry(workspace.0).or_insert(0);
        if u.saturating_add(n) > limit {
            outcomes.push(Some(Err(SendError::Quota(QuotaExceeded {
                limit,
                used: *u,
                available: (limit - *u).max(0),
            }))));
            continue;
        }
        *u += n;
        prepared.push(accept(v));
        outcomes.push(None);
    }
    let mut next = prepared.iter();
    for ((workspace, v, _), outcome) in jobs.iter().zip(&outcomes) {
        if outcome.is_none()
            && let Some((ids, batch, _)) = next.next()
        {
            accepted.push((*workspace, v, ids.as_slice(), *batch));
        }
    }
    if !accepted.is_empty() {
        insert_accepted(&mut tx, &accepted, false).await?;
        let mut ids = Vec::new();
        let mut deltas = Vec::new();
        let mut months = Vec::new();
        for (u, n) in &used {
            let d = n - used_before.get(u).copied().unwrap_or(0);
            if d > 0 {
                ids.push(*u);
                deltas.push(d);
                months.push(allowances[u].period);
            }
        }
        // Counts the usage and wakes the dispatchers of these workspaces (at commit) in one go.
        sqlx::query!(
            "WITH counted AS (
                 UPDATE sms_usage s SET sent = s.sent + d.n
                 FROM unnest($1::uuid[], $2::int[], $3::date[]) AS d(workspace_id, n, month)
                 WHERE s.workspace_id = d.workspace_id AND s.month = d.month RETURNING s.workspace_id)
             SELECT pg_notify($4, workspace_id::text) FROM counted",
            &ids,
            &deltas,
            &months,
            crate::bus::DISPATCH
        )
        .fetch_all(&mut *tx)
        .await?;
        if cfg.billing.enabled {
            for (u, after) in &used {
                let before = used_before.get(u).copied().unwrap_or(0);
                crate::quota::note_crossing(&mut tx, WorkspaceId(*u), allowances[u], before, *after).await?;
            }
        }
    }
    tx.commit().await?;
    let mut responses = prepared.into_iter().map(|(_, _, r)| r);
    Ok(outcomes
        .into_iter()
        .map(|o| match o {
            Some(err) => err,
            None => responses
                .next()
                .ok_or(SendError::Database(sqlx::Error::WorkerCrashed)),
        })
        .collect())
}
