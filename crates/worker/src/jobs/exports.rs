//! Makes exports (`ender_core::export`): the messages to a temporary file in the data
//! folder, page by page, then the whole file to the object store, then a mail to the
//! person who asked. Finished exports past their keeping time are deleted from the store
//! by [`sweep_expired`], which every worker's scheduler runs (deleting twice is harmless).

use std::path::PathBuf;

use apalis::prelude::{BoxDynError, Data};
use ender_core::export::{self, Export, ExportJob, MAX_ATTEMPTS};
use ender_core::mail::Mail;
use ender_core::store::{Store, StoreError};
use sqlx::PgPool;
use tokio::io::AsyncWriteExt;

use crate::webhooks::OwnerNotices;

pub use ender_core::export::QUEUE;

/// What the export job needs besides the database.
#[derive(Clone)]
pub struct Exports {
    pub store: Store,
    /// Where files are written before they are stored.
    pub tmp_dir: PathBuf,
    /// Days a finished export is kept.
    pub keep_days: i64,
    pub notices: Option<OwnerNotices>,
}

/// Why making the file stopped.
enum Failure {
    /// The object store refused or could not be reached: worth another try.
    Store(String),
    /// The local disk is full.
    DiskFull,
    /// The database (or anything else): the job library tries again.
    Other(anyhow::Error),
}

impl From<anyhow::Error> for Failure {
    fn from(e: anyhow::Error) -> Self {
        let full = e.chain().any(|c| {
            c.downcast_ref::<std::io::Error>()
                .is_some_and(|io| io.raw_os_error() == Some(libc::ENOSPC))
        });
        if full { Self::DiskFull } else { Self::Other(e) }
    }
}

impl From<StoreError> for Failure {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::DiskFull => Self::DiskFull,
            StoreError::Io(io) if io.raw_os_error() == Some(libc::ENOSPC) => Self::DiskFull,
            other => Self::Store(other.to_string()),
        }
    }
}

const DISK_FULL: &str = "The server's disk is full, so the file could not be written. Ask the server's administrator to free some space, then export again.";

pub async fn handle(job: ExportJob, pool: Data<PgPool>, ctx: Data<Exports>) -> Result<(), BoxDynError> {
    Ok(run_export(&pool, &ctx, job.id).await?)
}

/// Makes export `id` if it is still to be made (the job's work; tests call it directly).
pub async fn run_export(pool: &PgPool, ctx: &Exports, id: uuid::Uuid) -> anyhow::Result<()> {
    let Some(e) = export::claim(pool, id).await? else {
        // Finished, failed, expired or deleted meanwhile: nothing to do.
        return Ok(());
    };
    tracing::info!(export.id = %e.id, attempt = e.attempts, "export started");
    match make(pool, ctx, &e).await {
        Ok(size) => {
            if export::finish(pool, e.id, &e.key(), size, ctx.keep_days).await? {
                tracing::info!(export.id = %e.id, bytes = size, "export finished");
                tell_requester(pool, ctx, &e).await;
            }
        }
        Err(Failure::Store(reason)) if e.attempts < MAX_ATTEMPTS => {
            let wait = export::backoff(e.attempts);
            tracing::warn!(export.id = %e.id, error = %reason, retry_in_secs = wait.as_secs(), "storing an export failed");
            let message = format!(
                "The file store could not take the file ({reason}). Trying again in {} s.",
                wait.as_secs()
            );
            export::retry_later(pool, e.id, &message, wait).await?;
        }
        Err(Failure::Store(reason)) => {
            tracing::warn!(export.id = %e.id, error = %reason, "storing an export failed; giving up");
            export::fail(
                pool,
                e.id,
                &format!("The file store could not take the file after {MAX_ATTEMPTS} tries ({reason})."),
            )
            .await?;
        }
        Err(Failure::DiskFull) => {
            tracing::error!(export.id = %e.id, "the disk is full; the export failed");
            export::fail(pool, e.id, DISK_FULL).await?;
        }
        Err(Failure::Other(err)) => {
            tracing::warn!(export.id = %e.id, error = %format!("{err:#}"), "making an export failed");
            return Err(err);
        }
    }
    Ok(())
}

async fn make(pool: &PgPool, ctx: &Exports, e: &Export) -> Result<u64, Failure> {
    export::count(pool, e).await.map_err(anyhow::Error::from)?;
    tokio::fs::create_dir_all(&ctx.tmp_dir)
        .await
        .map_err(anyhow::Error::from)?;
    // One name per export: a second try (after a worker died) starts the same file over.
    let path = ctx.tmp_dir.join(format!("export-{}.part", e.id));
    let result = async {
        let file = tokio::fs::File::create(&path)
            .await
            .map_err(anyhow::Error::from)?;
        let mut out = tokio::io::BufWriter::with_capacity(1 << 20, file);
        let id = e.id;
        export::write_messages(pool, e, &mut out, |n| {
            let pool = pool.clone();
            async move { Ok(export::progress(&pool, id, n).await?) }
        })
        .await?;
        out.flush().await.map_err(anyhow::Error::from)?;
        out.into_inner().sync_all().await.map_err(anyhow::Error::from)?;
        Ok::<_, Failure>(
            ctx.store
                .put_file(&e.key(), &path, e.format.content_type())
                .await?,
        )
    }
    .await;
    let _ = tokio::fs::remove_file(&path).await;
    result
}

async fn tell_requester(pool: &PgPool, ctx: &Exports, e: &Export) {
    let (Some(notices), Some(user)) = (&ctx.notices, e.requested_by) else {
        return;
    };
    let Ok(Some(to)) = sqlx::query_scalar!("SELECT email FROM users WHERE id = $1", user)
        .fetch_optional(pool)
        .await
    else {
        return;
    };
    let link = format!(
        "{}/exports/{}/download",
        notices.public_url.trim_end_matches('/'),
        e.id
    );
    let mail = Mail {
        to,
        subject: "Your message export is ready".to_owned(),
        text: format!(
            "The export of {} you asked for is ready. Download it (signed in to the workspace) within {} days:\n\n  {link}\n",
            e.filter.describe(),
            ctx.keep_days
        ),
    };
    if let Err(err) = notices.mailer.send(&mail).await {
        tracing::warn!(export.id = %e.id, error = %err, "mailing an export's link failed");
    }
}

/// Deletes finished exports past their keeping time from the store. Returns how many.
pub async fn sweep_expired(pool: &PgPool, store: &Store) -> anyhow::Result<usize> {
    let due = export::expired(pool, 100).await?;
    let mut n = 0;
    for (id, key) in due {
        match store.delete(&key).await {
            Ok(()) => {
                export::mark_expired(pool, id).await?;
                n += 1;
            }
            Err(e) => tracing::warn!(export.id = %id, error = %e, "deleting an expired export failed"),
        }
    }
    if n > 0 {
        tracing::info!(exports = n, "expired exports deleted");
    }
    Ok(n)
}
