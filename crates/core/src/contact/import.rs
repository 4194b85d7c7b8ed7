//! Importing a CSV or vCard file: upload (decoded, sniffed and kept in Postgres), a preview
//! with a guessed column mapping, then a run that writes contacts in chunks and records its
//! progress, so a page can show a progress bar and any process can resume a stalled run.
//!
//! A file is read one row (or card) at a time on the blocking pool, at most [`PARALLEL_PARSES`]
//! at once per process: the memory an import takes is its text and one chunk of contacts,
//! whatever the file holds. Rows, fields and field lengths are capped ([`ImportLimits`]), and
//! so are the imports one workspace may hold open (`ENDER_MAX_OPEN_IMPORTS`).

use std::ops::ControlFlow;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sqlx::{Connection, PgExecutor, PgPool};
use tokio::sync::{Semaphore, mpsc};
use uuid::Uuid;

use super::import_csv::{
    self, ColumnMapping, ContactDraft, ImportError, ImportLimits, RowError, TextEncoding,
};
use super::model::GroupId;
use super::repo::{self, OnDuplicate};
use super::vcard;
use crate::config::TenantLimits;
use crate::workspace::WorkspaceId;

id_type!(ImportId);

/// Rows written per transaction (and per progress update).
const CHUNK: usize = 2_000;
/// Per-row errors kept for the report; the count covers them all.
const MAX_KEPT_ERRORS: usize = 10_000;
/// A running import whose heartbeat is older than this is taken over.
const STALE_SECS: f64 = 30.0;
/// Files read at once per process (uploads, previews, starts and runs together).
pub const PARALLEL_PARSES: usize = 2;

static PARSES: Semaphore = Semaphore::const_new(PARALLEL_PARSES);

/// Runs a parse on the blocking pool, waiting for one of the [`PARALLEL_PARSES`] slots.
async fn off_thread<T: Send + 'static>(work: impl FnOnce() -> T + Send + 'static) -> Result<T, UploadError> {
    let _slot = PARSES.acquire().await.map_err(|_| UploadError::Reader)?;
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|_| UploadError::Reader)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Csv,
    Vcard,
}

impl Format {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Csv => "csv",
            Self::Vcard => "vcard",
        }
    }
}

/// How the user wants the file read, chosen on the preview page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    pub delimiter: u8,
    pub has_header: bool,
    pub mapping: ColumnMapping,
    pub default_country: Option<String>,
    pub on_duplicate: OnDuplicate,
    pub group: Option<GroupId>,
}

#[derive(Debug, Clone, Serialize, Deserialize, Default)]
struct StoredMapping {
    name: Option<usize>,
    phone: Option<usize>,
    notes: Option<usize>,
    groups: Option<usize>,
}

impl From<&ColumnMapping> for StoredMapping {
    fn from(m: &ColumnMapping) -> Self {
        Self {
            name: m.name,
            phone: m.phone,
            notes: m.notes,
            groups: m.groups,
        }
    }
}

impl From<StoredMapping> for ColumnMapping {
    fn from(m: StoredMapping) -> Self {
        Self {
            name: m.name,
            phone: m.phone,
            notes: m.notes,
            groups: m.groups,
        }
    }
}

/// A stored row error, as the report lists it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct StoredRowError {
    pub line: usize,
    pub value: String,
    pub message: String,
}

/// An import as its pages show it.
#[derive(Debug, Clone)]
pub struct Import {
    pub id: ImportId,
    pub workspace_id: WorkspaceId,
    pub file_name: String,
    pub format: Format,
    pub encoding: String,
    pub settings: Settings,
    pub status: String,
    pub total_rows: i32,
    pub processed: i32,
    pub created: i32,
    pub updated: i32,
    pub skipped: i32,
    pub failed: i32,
    pub error_message: String,
    pub heartbeat_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub finished_at: Option<DateTime<Utc>>,
}

impl Import {
    /// Percent done, 0–100.
    pub fn percent(&self) -> i32 {
        if self.total_rows <= 0 {
            return if self.status == "done" { 100 } else { 0 };
        }
        ((i64::from(self.processed) * 100) / i64::from(self.total_rows)).clamp(0, 100) as i32
    }

    pub fn is_running(&self) -> bool {
        self.status == "running"
    }
}

/// The first rows of a file as the user's settings read them.
#[derive(Debug, Clone)]
pub struct Preview {
    pub headers: Vec<String>,
    pub rows: Vec<Vec<String>>,
    pub total_rows: usize,
    /// The first rows as contacts or errors, so the user sees what the mapping gives.
    pub drafts: Vec<Result<ContactDraft, RowError>>,
}

#[derive(Debug, thiserror::Error)]
pub enum UploadError {
    #[error(transparent)]
    File(#[from] ImportError),
    #[error("Import not found.")]
    NotFound,
    #[error("Choose the column that holds the phone numbers.")]
    NoPhoneColumn,
    #[error("This import has already started.")]
    AlreadyStarted,
    #[error("Group not found.")]
    GroupNotFound,
    #[error(
        "You already have {0} imports waiting or running, the most one account may hold (ENDER_MAX_OPEN_IMPORTS). Finish or discard one first."
    )]
    TooManyOpen(i64),
    #[error("the import reader stopped")]
    Reader,
    #[error(transparent)]
    Database(#[from] sqlx::Error),
}

fn detect_format(file_name: &str, text: &str) -> Format {
    let lower = file_name.to_ascii_lowercase();
    if lower.ends_with(".vcf")
        || lower.ends_with(".vcard")
        || text.trim_start().to_ascii_uppercase().starts_with("BEGIN:VCARD")
    {
        Format::Vcard
    } else {
        Format::Csv
    }
}

/// Imports of the workspace waiting for their settings or running.
async fn open_count(db: impl PgExecutor<'_>, workspace: WorkspaceId) -> sqlx::Result<i64> {
    sqlx::query_scalar!(
        r#"SELECT count(*) AS "n!" FROM contact_imports WHERE workspace_id = $1 AND status IN ('preview', 'running')"#,
        workspace as WorkspaceId
    )
    .fetch_one(db)
    .await
}

/// A decoded upload and what a first pass over it found.
struct Read {
    text: String,
    encoding: TextEncoding,
    format: Format,
    delimiter: u8,
    mapping: ColumnMapping,
    total: usize,
}

fn read_upload(file_name: &str, bytes: Vec<u8>, caps: &ImportLimits) -> Result<Read, ImportError> {
    let (text, encoding) = import_csv::decode_owned(bytes)?;
    if text.trim().is_empty() {
        return Err(ImportError::Empty);
    }
    let format = detect_format(file_name, &text);
    let (delimiter, mapping, total) = match format {
        Format::Csv => {
            let delimiter = import_csv::sniff_delimiter(&text);
            let shape = import_csv::scan_table(&text, delimiter, true, caps, |_| ControlFlow::Continue(()))?;
            (delimiter, import_csv::guess_mapping(&shape.headers), shape.rows)
        }
        Format::Vcard => {
            let cards = vcard::for_each_card(&text, caps, |_| ControlFlow::Continue(()))?;
            if cards == 0 {
                return Err(ImportError::Empty);
            }
            (b',', ColumnMapping::default(), cards)
        }
    };
    Ok(Read {
        text,
        encoding,
        format,
        delimiter,
        mapping,
        total,
    })
}

/// Stores an uploaded file for preview: decoded to text, its delimiter sniffed, its columns
/// guessed and its rows counted within the limits. Nothing is imported yet.
pub async fn upload(
    pool: &PgPool,
    workspace: WorkspaceId,
    file_name: &str,
    bytes: Vec<u8>,
    limits: &TenantLimits,
) -> Result<ImportId, UploadError> {
    if bytes.len() > import_csv::MAX_IMPORT_BYTES {
        return Err(ImportError::TooLarge.into());
    }
    // A first look without the lock, so a workspace at the limit costs no parse.
    if open_count(pool, workspace).await? >= limits.max_open_imports {
        return Err(UploadError::TooManyOpen(limits.max_open_imports));
    }
    let caps = ImportLimits::from(limits);
    let name: String = file_name.chars().take(200).collect();
    let hint = name.clone();
    let read = off_thread(move || read_upload(&hint, bytes, &caps)).await??;
    let mut conn = pool.acquire().await?;
    let mut tx = conn.begin().await?;
    // Serialises this workspace's uploads so two at once cannot both pass the limit.
    crate::workspace::repo::lock(&mut tx, workspace).await?;
    if open_count(&mut *tx, workspace).await? >= limits.max_open_imports {
        return Err(UploadError::TooManyOpen(limits.max_open_imports));
    }
    let id = ImportId(Uuid::now_v7());
    sqlx::query!(
        "INSERT INTO contact_imports (id, workspace_id, file_name, format, content, encoding, delimiter, mapping, total_rows)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
        id as ImportId,
        workspace as WorkspaceId,
        name,
        read.format.as_str(),
        read.text,
        read.encoding.label(),
        (read.delimiter as char).to_string(),
        serde_json::to_value(StoredMapping::from(&read.mapping)).unwrap_or_default(),
        i32::try_from(read.total).unwrap_or(i32::MAX)
    )
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    // The write buffer grew to the file's size (see `content`).
    conn.shrink_buffers();
    Ok(id)
}

/// Discards an import still waiting for its settings; false if there is none to discard.
pub async fn discard(pool: &PgPool, workspace: WorkspaceId, id: ImportId) -> sqlx::Result<bool> {
    let done = sqlx::query!(
        "DELETE FROM contact_imports WHERE id = $1 AND workspace_id = $2 AND status = 'preview'",
        id as ImportId,
        workspace as WorkspaceId
    )
    .execute(pool)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// The workspace's imports waiting or running, newest first (for the upload page).
pub async fn open_imports(pool: &PgPool, workspace: WorkspaceId) -> sqlx::Result<Vec<Import>> {
    let rows = sqlx::query_as!(
        ImportRow,
        r#"SELECT id AS "id: ImportId", workspace_id AS "workspace_id: WorkspaceId", file_name, format, encoding, delimiter, has_header,
                  mapping, default_country, on_duplicate, group_id AS "group_id: GroupId", status, total_rows, processed,
                  created, updated, skipped, failed, error_message, heartbeat_at, created_at, finished_at
           FROM contact_imports WHERE workspace_id = $1 AND status IN ('preview', 'running')
           ORDER BY created_at DESC"#,
        workspace as WorkspaceId
    )
    .fetch_all(pool)
    .await?;
    Ok(rows.into_iter().map(Import::from).collect())
}

struct ImportRow {
    id: ImportId,
    workspace_id: WorkspaceId,
    file_name: String,
    format: String,
    encoding: String,
    delimiter: String,
    has_header: bool,
    mapping: serde_json::Value,
    default_country: String,
    on_duplicate: String,
    group_id: Option<GroupId>,
    status: String,
    total_rows: i32,
    processed: i32,
    created: i32,
    updated: i32,
    skipped: i32,
    failed: i32,
    error_message: String,
    heartbeat_at: Option<DateTime<Utc>>,
    created_at: DateTime<Utc>,
    finished_at: Option<DateTime<Utc>>,
}

impl From<ImportRow> for Import {
    fn from(r: ImportRow) -> Self {
        let mapping: StoredMapping = serde_json::from_value(r.mapping).unwrap_or_default();
        Self {
            id: r.id,
            workspace_id: r.workspace_id,
            file_name: r.file_name,
            format: if r.format == "vcard" {
                Format::Vcard
            } else {
                Format::Csv
            },
            encoding: r.encoding,
            settings: Settings {
                delimiter: r.delimiter.bytes().next().unwrap_or(b','),
                has_header: r.has_header,
                mapping: mapping.into(),
                default_country: (!r.default_country.is_empty()).then_some(r.default_country),
                on_duplicate: OnDuplicate::parse(&r.on_duplicate).unwrap_or(OnDuplicate::Update),
                group: r.group_id,
            },
            status: r.status,
            total_rows: r.total_rows,
            processed: r.processed,
            created: r.created,
            updated: r.updated,
            skipped: r.skipped,
            failed: r.failed,
            error_message: r.error_message,
            heartbeat_at: r.heartbeat_at,
            created_at: r.created_at,
            finished_at: r.finished_at,
        }
    }
}

/// The workspace's import (without its file content).
pub async fn find(pool: &PgPool, workspace: WorkspaceId, id: ImportId) -> sqlx::Result<Option<Import>> {
    let row = sqlx::query_as!(
        ImportRow,
        r#"SELECT id AS "id: ImportId", workspace_id AS "workspace_id: WorkspaceId", file_name, format, encoding, delimiter, has_header,
                  mapping, default_country, on_duplicate, group_id AS "group_id: GroupId", status, total_rows, processed,
                  created, updated, skipped, failed, error_message, heartbeat_at, created_at, finished_at
           FROM contact_imports WHERE id = $1 AND workspace_id = $2"#,
        id as ImportId,
        workspace as WorkspaceId
    )
    .fetch_optional(pool)
    .await?;
    Ok(row.map(Import::from))
}

/// The stored file. The connection's buffers grew to the file's size to carry it; they are
/// shrunk before the connection goes back to the pool, or every pooled connection that
/// ever carried a file would keep that much memory.
async fn content(pool: &PgPool, id: ImportId) -> sqlx::Result<String> {
    let mut conn = pool.acquire().await?;
    let text = sqlx::query_scalar!(
        "SELECT content FROM contact_imports WHERE id = $1",
        id as ImportId
    )
    .fetch_one(&mut *conn)
    .await;
    conn.shrink_buffers();
    text
}

/// Reads every row of the file as the settings read it, handing each contact (or per-row
/// error) to `each` in file order; the CSV shape comes back (`None` for vCard).
fn for_each_draft(
    format: Format,
    text: &str,
    settings: &Settings,
    caps: &ImportLimits,
    mut each: impl FnMut(Result<ContactDraft, RowError>, Option<import_csv::RowRef<'_>>) -> ControlFlow<()>,
) -> Result<Option<import_csv::Shape>, ImportError> {
    let country = settings.default_country.as_deref();
    match format {
        Format::Csv => {
            let shape = import_csv::scan_table(text, settings.delimiter, settings.has_header, caps, |row| {
                let draft = import_csv::row_to_draft(&row.to_row(), &settings.mapping, country);
                each(draft, Some(row))
            })?;
            Ok(Some(shape))
        }
        Format::Vcard => {
            vcard::for_each_card(text, caps, |card| {
                for draft in vcard::entries_to_drafts(std::slice::from_ref(&card), country) {
                    each(draft, None)?;
                }
                ControlFlow::Continue(())
            })?;
            Ok(None)
        }
    }
}

/// The first `n` rows under `settings` (the stored ones unless the page sends others), and
/// how many there are in all. Only those `n` are kept while the rest are counted.
pub async fn preview(
    pool: &PgPool,
    import: &Import,
    settings: &Settings,
    n: usize,
    limits: &TenantLimits,
) -> Result<Preview, UploadError> {
    let text = content(pool, import.id).await?;
    let (format, settings, caps) = (import.format, settings.clone(), ImportLimits::from(limits));
    off_thread(move || {
        let mut rows = Vec::new();
        let mut drafts = Vec::new();
        let mut total_rows = 0usize;
        let shape = for_each_draft(format, &text, &settings, &caps, |draft, row| {
            total_rows += 1;
            if drafts.len() < n {
                drafts.push(draft);
                if let Some(row) = row {
                    rows.push(row.to_row().fields);
                }
            }
            ControlFlow::Continue(())
        })?;
        Ok(Preview {
            headers: shape.map(|s| s.headers).unwrap_or_default(),
            rows,
            total_rows,
            drafts,
        })
    })
    .await?
}

/// How many contacts (or per-row errors) the file gives under `settings`, within the limits.
async fn count_drafts(
    format: Format,
    text: String,
    settings: &Settings,
    caps: ImportLimits,
) -> Result<usize, UploadError> {
    let settings = settings.clone();
    off_thread(move || {
        let mut total = 0usize;
        for_each_draft(format, &text, &settings, &caps, |_, _| {
            total += 1;
            ControlFlow::Continue(())
        })?;
        Ok(total)
    })
    .await?
}

/// Saves the settings and marks the import running; the caller then calls [`run`]
/// (usually on a spawned task).
pub async fn start(
    pool: &PgPool,
    workspace: WorkspaceId,
    id: ImportId,
    settings: &Settings,
    limits: &TenantLimits,
) -> Result<(), UploadError> {
    let import = find(pool, workspace, id).await?.ok_or(UploadError::NotFound)?;
    if import.format == Format::Csv && settings.mapping.phone.is_none() {
        return Err(UploadError::NoPhoneColumn);
    }
    if let Some(g) = settings.group
        && repo::find_group(pool, workspace, g).await?.is_none()
    {
        return Err(UploadError::GroupNotFound);
    }
    // Re-read the file under the chosen settings so the total is right (and a bad
    // delimiter choice fails here, on the form, not in the background).
    let text = content(pool, id).await?;
    let total = count_drafts(import.format, text, settings, ImportLimits::from(limits)).await?;
    let started = sqlx::query!(
        "UPDATE contact_imports
         SET status = 'running', delimiter = $3, has_header = $4, mapping = $5, default_country = $6,
             on_duplicate = $7, group_id = $8, total_rows = $9, processed = 0, created = 0, updated = 0,
             skipped = 0, failed = 0, errors = '[]', heartbeat_at = now()
         WHERE id = $1 AND workspace_id = $2 AND status = 'preview'",
        id as ImportId,
        workspace as WorkspaceId,
        (settings.delimiter as char).to_string(),
        settings.has_header,
        serde_json::to_value(StoredMapping::from(&settings.mapping)).unwrap_or_default(),
        settings.default_country.clone().unwrap_or_default(),
        settings.on_duplicate.as_str(),
        settings.group.map(|g| g.0),
        i32::try_from(total).unwrap_or(i32::MAX)
    )
    .execute(pool)
    .await?;
    if started.rows_affected() == 0 {
        return Err(UploadError::AlreadyStarted);
    }
    Ok(())
}

/// Takes over a running import whose worker stopped moving its heartbeat; true if the
/// caller should now [`run`] it.
pub async fn claim_stale(pool: &PgPool, workspace: WorkspaceId, id: ImportId) -> sqlx::Result<bool> {
    let done = sqlx::query!(
        "UPDATE contact_imports SET heartbeat_at = now()
         WHERE id = $1 AND workspace_id = $2 AND status = 'running'
           AND (heartbeat_at IS NULL OR heartbeat_at < now() - make_interval(secs => $3))",
        id as ImportId,
        workspace as WorkspaceId,
        STALE_SECS
    )
    .execute(pool)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// How the writing half of a run ended.
enum Written {
    All,
    /// Another runner moved the import on.
    TakenOver,
    /// A per-workspace limit stopped it, with the message for the user.
    Stopped(String),
}

/// Works through a running import from where it stands, a chunk per transaction. The file
/// is read on the blocking pool and handed over a chunk at a time, so only one chunk of
/// contacts is held however long the file. Each chunk's progress update only applies if
/// nobody else moved the import on meanwhile, so two runners never write the same chunk twice.
pub async fn run(
    pool: &PgPool,
    workspace: WorkspaceId,
    id: ImportId,
    limits: &TenantLimits,
) -> Result<(), UploadError> {
    let import = find(pool, workspace, id).await?.ok_or(UploadError::NotFound)?;
    if !import.is_running() {
        return Ok(());
    }
    let text = content(pool, id).await?;
    let from = usize::try_from(import.processed).unwrap_or(0);
    let (format, settings, caps) = (import.format, import.settings.clone(), ImportLimits::from(limits));
    let limits = limits.clone();
    // One chunk waits while the previous one is written.
    let (chunks, mut next) = mpsc::channel::<Vec<Result<ContactDraft, RowError>>>(1);
    // Not one of the parse slots: a run is paced by its writes and may take minutes.
    let reader = tokio::task::spawn_blocking(move || {
        let mut seen = 0usize;
        let mut chunk = Vec::with_capacity(CHUNK);
        let mut sent = true;
        let read = for_each_draft(format, &text, &settings, &caps, |draft, _| {
            seen += 1;
            if seen <= from {
                return ControlFlow::Continue(());
            }
            chunk.push(draft);
            if chunk.len() == CHUNK {
                sent = chunks
                    .blocking_send(std::mem::replace(&mut chunk, Vec::with_capacity(CHUNK)))
                    .is_ok();
                if !sent {
                    return ControlFlow::Break(());
                }
            }
            ControlFlow::Continue(())
        });
        if sent && !chunk.is_empty() {
            let _ = chunks.blocking_send(chunk);
        }
        read.map(|_| seen)
    });
    let writer = async move {
        let mut at = from;
        let mut kept_errors = usize::try_from(import.failed).unwrap_or(0);
        while let Some(chunk) = next.recv().await {
            let end = at + chunk.len();
            let mut ok = Vec::with_capacity(chunk.len());
            let mut errors = Vec::new();
            for draft in chunk {
                match draft {
                    Ok(d) => ok.push(d),
                    Err(e) => errors.push(StoredRowError {
                        line: e.line,
                        value: e.value,
                        message: e.message,
                    }),
                }
            }
            let failed = errors.len();
            errors.truncate(MAX_KEPT_ERRORS.saturating_sub(kept_errors));
            kept_errors += errors.len();
            let mut tx = pool.begin().await?;
            let counts = repo::upsert_drafts(
                &mut tx,
                workspace,
                &ok,
                import.settings.on_duplicate,
                import.settings.group,
                &limits,
            )
            .await?;
            let moved = sqlx::query!(
                "UPDATE contact_imports
                 SET processed = $3, created = created + $4, updated = updated + $5, skipped = skipped + $6,
                     failed = failed + $7, errors = errors || $8, heartbeat_at = now()
                 WHERE id = $1 AND status = 'running' AND processed = $2",
                id as ImportId,
                i32::try_from(at).unwrap_or(i32::MAX),
                i32::try_from(end).unwrap_or(i32::MAX),
                counts.created,
                counts.updated,
                counts.skipped,
                i32::try_from(failed)
                    .unwrap_or(i32::MAX)
                    .saturating_add(counts.refused),
                serde_json::to_value(&errors).unwrap_or_default()
            )
            .execute(&mut *tx)
            .await?;
            if moved.rows_affected() == 0 {
                // Someone else took the import over (or it was finished); leave it to them.
                tx.rollback().await?;
                return Ok::<_, UploadError>(Written::TakenOver);
            }
            tx.commit().await?;
            if let Some(hit) = counts.limit_hit {
                return Ok(Written::Stopped(format!(
                    "{hit} The import stopped after {end} of {} rows; the rows before were written.",
                    import.total_rows
                )));
            }
            at = end;
        }
        Ok(Written::All)
    };
    // The writer drops the receiver when it stops early, which stops the reader.
    let (read, wrote) = tokio::join!(reader, writer);
    match wrote? {
        Written::All => {}
        Written::TakenOver => return Ok(()),
        Written::Stopped(message) => {
            fail(pool, id, &message).await?;
            return Ok(());
        }
    }
    let rows = match read.map_err(|_| UploadError::Reader)? {
        Ok(rows) => rows,
        Err(e) => {
            fail(pool, id, &e.to_string()).await?;
            return Ok(());
        }
    };
    // The file is no longer needed once the import is over; only the report stays.
    sqlx::query!(
        "UPDATE contact_imports SET status = 'done', finished_at = now(), heartbeat_at = now(), content = ''
         WHERE id = $1 AND status = 'running'",
        id as ImportId
    )
    .execute(pool)
    .await?;
    tracing::info!(import.id = %id, rows, "contact import finished");
    Ok(())
}

async fn fail(pool: &PgPool, id: ImportId, message: &str) -> sqlx::Result<()> {
    sqlx::query!(
        "UPDATE contact_imports SET status = 'failed', error_message = $2, finished_at = now(), content = ''
         WHERE id = $1",
        id as ImportId,
        message
    )
    .execute(pool)
    .await?;
    Ok(())
}

/// The rows that could not be imported, as a CSV (line, value, error).
pub async fn errors_csv(
    pool: &PgPool,
    workspace: WorkspaceId,
    id: ImportId,
) -> sqlx::Result<Option<Vec<u8>>> {
    let errors = sqlx::query_scalar!(
        "SELECT errors FROM contact_imports WHERE id = $1 AND workspace_id = $2",
        id as ImportId,
        workspace as WorkspaceId
    )
    .fetch_optional(pool)
    .await?;
    Ok(errors.map(|e| {
        let stored: Vec<StoredRowError> = serde_json::from_value(e).unwrap_or_default();
        let rows: Vec<RowError> = stored
            .into_iter()
            .map(|e| RowError {
                line: e.line,
                value: e.value,
                message: e.message,
            })
            .collect();
        import_csv::errors_csv(&rows)
    }))
}

/// The first `n` row errors, for the result page.
pub async fn first_errors(
    pool: &PgPool,
    workspace: WorkspaceId,
    id: ImportId,
    n: usize,
) -> sqlx::Result<Vec<StoredRowError>> {
    let errors = sqlx::query_scalar!(
        "SELECT errors FROM contact_imports WHERE id = $1 AND workspace_id = $2",
        id as ImportId,
        workspace as WorkspaceId
    )
    .fetch_optional(pool)
    .await?;
    let stored: Vec<StoredRowError> = errors
        .and_then(|e| serde_json::from_value(e).ok())
        .unwrap_or_default();
    Ok(stored.into_iter().take(n).collect())
}
