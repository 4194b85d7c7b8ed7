//! Importing a CSV or vCard file: upload (decoded, sniffed and kept in Postgres), a preview
//! with a guessed column mapping, then a run that writes contacts in chunks and records its
//! progress, so a page can show a progress bar and any process can resume a stalled run.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sqlx::PgPool;
use uuid::Uuid;

use super::import_csv::{self, ColumnMapping, ContactDraft, ImportError, RowError, Table};
use super::model::GroupId;
use super::repo::{self, OnDuplicate};
use super::vcard;
use crate::account::UserId;

id_type!(ImportId);

/// Rows written per transaction (and per progress update).
const CHUNK: usize = 2_000;
/// Per-row errors kept for the report; the count covers them all.
const MAX_KEPT_ERRORS: usize = 10_000;
/// A running import whose heartbeat is older than this is taken over.
const STALE_SECS: f64 = 30.0;

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
    pub user_id: UserId,
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

/// Stores an uploaded file for preview: decoded to text, its delimiter sniffed and its
/// columns guessed. Nothing is imported yet.
pub async fn upload(
    pool: &PgPool,
    user: UserId,
    file_name: &str,
    bytes: &[u8],
) -> Result<ImportId, UploadError> {
    if bytes.len() > import_csv::MAX_IMPORT_BYTES {
        return Err(ImportError::TooLarge.into());
    }
    let (text, encoding) = import_csv::decode(bytes)?;
    if text.trim().is_empty() {
        return Err(ImportError::Empty.into());
    }
    let format = detect_format(file_name, &text);
    let (delimiter, mapping, total) = match format {
        Format::Csv => {
            let delimiter = import_csv::sniff_delimiter(&text);
            let table = import_csv::parse_table(&text, delimiter, true)?;
            let mapping = import_csv::guess_mapping(&table.headers);
            (delimiter, mapping, table.rows.len())
        }
        Format::Vcard => {
            let entries = vcard::parse(&text);
            if entries.is_empty() {
                return Err(ImportError::Empty.into());
            }
            (b',', ColumnMapping::default(), entries.len())
        }
    };
    let id = ImportId(Uuid::now_v7());
    let name: String = file_name.chars().take(200).collect();
    sqlx::query!(
        "INSERT INTO contact_imports (id, user_id, file_name, format, content, encoding, delimiter, mapping, total_rows)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
        id as ImportId,
        user as UserId,
        name,
        format.as_str(),
        text,
        encoding.label(),
        (delimiter as char).to_string(),
        serde_json::to_value(StoredMapping::from(&mapping)).unwrap_or_default(),
        i32::try_from(total).unwrap_or(i32::MAX)
    )
    .execute(pool)
    .await?;
    Ok(id)
}

struct ImportRow {
    id: ImportId,
    user_id: UserId,
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
            user_id: r.user_id,
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

/// The user's import (without its file content).
pub async fn find(pool: &PgPool, user: UserId, id: ImportId) -> sqlx::Result<Option<Import>> {
    let row = sqlx::query_as!(
        ImportRow,
        r#"SELECT id AS "id: ImportId", user_id AS "user_id: UserId", file_name, format, encoding, delimiter, has_header,
                  mapping, default_country, on_duplicate, group_id AS "group_id: GroupId", status, total_rows, processed,
                  created, updated, skipped, failed, error_message, heartbeat_at, created_at, finished_at
           FROM contact_imports WHERE id = $1 AND user_id = $2"#,
        id as ImportId,
        user as UserId
    )
    .fetch_optional(pool)
    .await?;
    Ok(row.map(Import::from))
}

async fn content(pool: &PgPool, id: ImportId) -> sqlx::Result<String> {
    sqlx::query_scalar!(
        "SELECT content FROM contact_imports WHERE id = $1",
        id as ImportId
    )
    .fetch_one(pool)
    .await
}

/// Each row of a file: a contact, or why it is not one.
type Drafts = Vec<Result<ContactDraft, RowError>>;

/// Every row of the file as the settings read it: contacts or per-row errors, in file order.
fn read_all(format: Format, text: &str, settings: &Settings) -> Result<(Option<Table>, Drafts), ImportError> {
    let country = settings.default_country.as_deref();
    match format {
        Format::Csv => {
            let table = import_csv::parse_table(text, settings.delimiter, settings.has_header)?;
            let drafts = import_csv::rows_to_drafts(&table, &settings.mapping, country);
            Ok((Some(table), drafts))
        }
        Format::Vcard => {
            let entries = vcard::parse(text);
            Ok((None, vcard::entries_to_drafts(&entries, country)))
        }
    }
}

/// The first `n` rows under `settings` (the stored ones unless the page sends others).
pub async fn preview(
    pool: &PgPool,
    import: &Import,
    settings: &Settings,
    n: usize,
) -> Result<Preview, UploadError> {
    let text = content(pool, import.id).await?;
    let (table, drafts) = read_all(import.format, &text, settings)?;
    let total_rows = drafts.len();
    let (headers, rows) = match table {
        Some(t) => (t.headers, t.rows.into_iter().take(n).map(|r| r.fields).collect()),
        None => (Vec::new(), Vec::new()),
    };
    Ok(Preview {
        headers,
        rows,
        total_rows,
        drafts: drafts.into_iter().take(n).collect(),
    })
}

/// Saves the settings and marks the import running; the caller then calls [`run`]
/// (usually on a spawned task).
pub async fn start(
    pool: &PgPool,
    user: UserId,
    id: ImportId,
    settings: &Settings,
) -> Result<(), UploadError> {
    let import = find(pool, user, id).await?.ok_or(UploadError::NotFound)?;
    if import.format == Format::Csv && settings.mapping.phone.is_none() {
        return Err(UploadError::NoPhoneColumn);
    }
    if let Some(g) = settings.group
        && repo::find_group(pool, user, g).await?.is_none()
    {
        return Err(UploadError::GroupNotFound);
    }
    // Re-read the file under the chosen settings so the total is right (and a bad
    // delimiter choice fails here, on the form, not in the background).
    let text = content(pool, id).await?;
    let (_, drafts) = read_all(import.format, &text, settings)?;
    let started = sqlx::query!(
        "UPDATE contact_imports
         SET status = 'running', delimiter = $3, has_header = $4, mapping = $5, default_country = $6,
             on_duplicate = $7, group_id = $8, total_rows = $9, processed = 0, created = 0, updated = 0,
             skipped = 0, failed = 0, errors = '[]', heartbeat_at = now()
         WHERE id = $1 AND user_id = $2 AND status = 'preview'",
        id as ImportId,
        user as UserId,
        (settings.delimiter as char).to_string(),
        settings.has_header,
        serde_json::to_value(StoredMapping::from(&settings.mapping)).unwrap_or_default(),
        settings.default_country.clone().unwrap_or_default(),
        settings.on_duplicate.as_str(),
        settings.group.map(|g| g.0),
        i32::try_from(drafts.len()).unwrap_or(i32::MAX)
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
pub async fn claim_stale(pool: &PgPool, user: UserId, id: ImportId) -> sqlx::Result<bool> {
    let done = sqlx::query!(
        "UPDATE contact_imports SET heartbeat_at = now()
         WHERE id = $1 AND user_id = $2 AND status = 'running'
           AND (heartbeat_at IS NULL OR heartbeat_at < now() - make_interval(secs => $3))",
        id as ImportId,
        user as UserId,
        STALE_SECS
    )
    .execute(pool)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Works through a running import from where it stands, a chunk per transaction. Each
/// chunk's progress update only applies if nobody else moved the import on meanwhile, so
/// two runners never write the same chunk twice.
pub async fn run(pool: &PgPool, user: UserId, id: ImportId) -> Result<(), UploadError> {
    let import = find(pool, user, id).await?.ok_or(UploadError::NotFound)?;
    if !import.is_running() {
        return Ok(());
    }
    let text = content(pool, id).await?;
    let drafts = match read_all(import.format, &text, &import.settings) {
        Ok((_, drafts)) => drafts,
        Err(e) => {
            fail(pool, id, &e.to_string()).await?;
            return Ok(());
        }
    };
    drop(text);
    let mut at = usize::try_from(import.processed).unwrap_or(0);
    let mut kept_errors = usize::try_from(import.failed).unwrap_or(0);
    while at < drafts.len() {
        let end = (at + CHUNK).min(drafts.len());
        let chunk = &drafts[at..end];
        let ok: Vec<ContactDraft> = chunk.iter().filter_map(|d| d.as_ref().ok().cloned()).collect();
        let errors: Vec<StoredRowError> = chunk
            .iter()
            .filter_map(|d| d.as_ref().err())
            .map(|e| StoredRowError {
                line: e.line,
                value: e.value.clone(),
                message: e.message.clone(),
            })
            .collect();
        let failed = errors.len();
        let keep: Vec<StoredRowError> = errors
            .into_iter()
            .take(MAX_KEPT_ERRORS.saturating_sub(kept_errors))
            .collect();
        kept_errors += keep.len();
        let mut tx = pool.begin().await?;
        let counts = repo::upsert_drafts(
            &mut tx,
            user,
            &ok,
            import.settings.on_duplicate,
            import.settings.group,
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
            i32::try_from(failed).unwrap_or(i32::MAX),
            serde_json::to_value(&keep).unwrap_or_default()
        )
        .execute(&mut *tx)
        .await?;
        if moved.rows_affected() == 0 {
            // Someone else took the import over (or it was finished); leave it to them.
            tx.rollback().await?;
            return Ok(());
        }
        tx.commit().await?;
        at = end;
    }
    sqlx::query!(
        "UPDATE contact_imports SET status = 'done', finished_at = now(), heartbeat_at = now()
         WHERE id = $1 AND status = 'running'",
        id as ImportId
    )
    .execute(pool)
    .await?;
    tracing::info!(import.id = %id, rows = drafts.len(), "contact import finished");
    Ok(())
}

async fn fail(pool: &PgPool, id: ImportId, message: &str) -> sqlx::Result<()> {
    sqlx::query!(
        "UPDATE contact_imports SET status = 'failed', error_message = $2, finished_at = now() WHERE id = $1",
        id as ImportId,
        message
    )
    .execute(pool)
    .await?;
    Ok(())
}

/// The rows that could not be imported, as a CSV (line, value, error).
pub async fn errors_csv(pool: &PgPool, user: UserId, id: ImportId) -> sqlx::Result<Option<Vec<u8>>> {
    let errors = sqlx::query_scalar!(
        "SELECT errors FROM contact_imports WHERE id = $1 AND user_id = $2",
        id as ImportId,
        user as UserId
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
    user: UserId,
    id: ImportId,
    n: usize,
) -> sqlx::Result<Vec<StoredRowError>> {
    let errors = sqlx::query_scalar!(
        "SELECT errors FROM contact_imports WHERE id = $1 AND user_id = $2",
        id as ImportId,
        user as UserId
    )
    .fetch_optional(pool)
    .await?;
    let stored: Vec<StoredRowError> = errors
        .and_then(|e| serde_json::from_value(e).ok())
        .unwrap_or_default();
    Ok(stored.into_iter().take(n).collect())
}
