//! The address book pages: contacts (search, group filter, paging, bulk actions), the
//! contact form, groups, CSV and vCard import (upload, preview with the column mapping, a
//! progress bar, the error report) and export.

use std::time::Duration;

use askama::Template;
use askama_web::WebTemplate;
use axum::Router;
use axum::body::Body;
use axum::extract::{DefaultBodyLimit, FromRequest, Multipart, Path, Query, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use ender_core::FieldError;
use ender_core::contact::import::{self, Format, Import, ImportId, Settings, StoredRowError, UploadError};
use ender_core::contact::import_csv::{ColumnMapping, ImportError, MAX_IMPORT_BYTES, guess_mapping};
use ender_core::contact::repo::{self, OnDuplicate};
use ender_core::contact::{
    Contact, ContactError, ContactId, ContactInput, ContactQuery, Group, GroupId, export, normalise_search,
};
use ender_core::workspace::{Action, WorkspaceId};
use futures::StreamExt;
use tower_sessions::Session;

use crate::error::{AppError, AppResult};
use crate::extract::Form;
use crate::session::{CurrentWorkspace, flash};
use crate::state::AppState;
use crate::views::{Errors, Shell, is_htmx, vary};

pub const PATH: &str = "/contacts";
pub const NEW: &str = "/contacts/new";
pub const BULK: &str = "/contacts/bulk";
pub const GROUPS: &str = "/contacts/groups";
pub const IMPORT: &str = "/contacts/import";
pub const EXPORT: &str = "/contacts/export";

/// Contacts one page of the list shows.
const PAGE: i64 = 50;
/// Rows the import preview shows.
const PREVIEW_ROWS: usize = 10;
/// Row errors the import result lists (the CSV has them all).
const SHOWN_ERRORS: usize = 20;
/// The upload's body limit: the largest file plus room for the multipart framing.
const UPLOAD_BODY_LIMIT: usize = MAX_IMPORT_BYTES + 64 * 1024;
/// A body announced larger than the limit is still read and dropped, up to this much and
/// this long, so the browser sees the form again instead of a reset connection.
const DRAIN_MAX_BYTES: u64 = 128 * 1024 * 1024;
const DRAIN_MAX_TIME: Duration = Duration::from_secs(60);

pub fn routes() -> Router<AppState> {
    Router::new()
        .route(PATH, get(list))
        .route(BULK, post(bulk))
        .route(NEW, get(new_form).post(create))
        .route("/contacts/{id}", get(edit_form).post(update))
        .route("/contacts/{id}/delete", post(delete))
        .route(GROUPS, get(groups).post(create_group))
        .route("/contacts/groups/{id}", post(rename_group))
        .route("/contacts/groups/{id}/delete", post(delete_group))
        .route(
            IMPORT,
            get(upload_form)
                .post(upload)
                .layer(DefaultBodyLimit::max(UPLOAD_BODY_LIMIT)),
        )
        .route("/contacts/import/{id}", get(import_page).post(import_settings))
        .route("/contacts/import/{id}/discard", post(discard_import))
        .route("/contacts/import/{id}/errors.csv", get(errors_csv))
        .route(EXPORT, get(export))
}

/// Failures that are not a form's field errors: anything missing is "not yours".
fn contact_error(e: ContactError) -> AppError {
    match e {
        ContactError::Database(e) => e.into(),
        _ => AppError::NotFound,
    }
}

fn upload_error(e: UploadError) -> AppError {
    match e {
        UploadError::Database(e) => e.into(),
        UploadError::File(e) => AppError::BadRequest(e.to_string()),
        UploadError::Reader => AppError::Internal(anyhow::anyhow!("the import reader stopped")),
        _ => AppError::NotFound,
    }
}

fn parse_id<T: std::str::FromStr>(raw: &str) -> AppResult<T> {
    raw.parse().map_err(|_| AppError::NotFound)
}

async fn load_contact(state: &AppState, workspace: WorkspaceId, raw: &str) -> AppResult<Contact> {
    repo::find(&state.pool, workspace, parse_id(raw)?)
        .await?
        .ok_or(AppError::NotFound)
}

async fn load_group(state: &AppState, workspace: WorkspaceId, raw: &str) -> AppResult<Group> {
    repo::find_group(&state.pool, workspace, parse_id(raw)?)
        .await?
        .ok_or(AppError::NotFound)
}

async fn load_import(state: &AppState, workspace: WorkspaceId, raw: &str) -> AppResult<Import> {
    import::find(&state.pool, workspace, parse_id(raw)?)
        .await?
        .ok_or(AppError::NotFound)
}

/// Id and name of each of the user's groups, for pickers.
async fn group_options(state: &AppState, workspace: WorkspaceId) -> AppResult<Vec<(String, String)>> {
    Ok(repo::all_groups(&state.pool, workspace)
        .await?
        .into_iter()
        .map(|g| (g.id.to_string(), g.name))
        .collect())
}

// ---------- The list ----------

#[derive(serde::Deserialize, Default)]
#[serde(default)]
pub struct ListQuery {
    q: String,
    group: String,
    page: String,
}

impl ListQuery {
    fn page(&self) -> i64 {
        // Bounded so the offset below can never overflow (review I4).
        self.page
            .trim()
            .parse::<i64>()
            .unwrap_or(1)
            .clamp(1, i64::from(i32::MAX))
    }
}

/// `/contacts` with these filters (only the ones set).
fn list_href(q: &str, group: &str, page: i64) -> String {
    let mut pairs: Vec<(&str, String)> = Vec::new();
    if !q.is_empty() {
        pairs.push(("q", q.to_owned()));
    }
    if !group.is_empty() {
        pairs.push(("group", group.to_owned()));
    }
    if page > 1 {
        pairs.push(("page", page.to_string()));
    }
    match serde_urlencoded::to_string(&pairs) {
        Ok(query) if !query.is_empty() => format!("{PATH}?{query}"),
        _ => PATH.to_owned(),
    }
}

pub struct ContactRow {
    pub id: String,
    pub name: String,
    pub phone: String,
    /// Id and name.
    pub groups: Vec<(String, String)>,
    pub notes: String,
}

impl From<Contact> for ContactRow {
    fn from(c: Contact) -> Self {
        const EXCERPT: usize = 60;
        let notes = if c.notes.chars().count() > EXCERPT {
            let cut: String = c.notes.chars().take(EXCERPT).collect();
            format!("{}…", cut.trim_end())
        } else {
            c.notes
        };
        Self {
            id: c.id.to_string(),
            name: c.name,
            phone: c.phone_number,
            groups: c.groups.into_iter().map(|g| (g.id.to_string(), g.name)).collect(),
            notes,
        }
    }
}

/// One page of the contacts as the filters select them.
pub struct ContactsTable {
    pub rows: Vec<ContactRow>,
    pub total: i64,
    pub from: i64,
    pub to: i64,
    pub prev: String,
    pub next: String,
    pub filtered: bool,
    /// The filters and page shown, for the bulk form to come back to.
    pub q: String,
    pub group: String,
    pub page: i64,
}

#[derive(Template, WebTemplate)]
#[template(path = "contacts/_table.html")]
pub struct ContactsTablePartial {
    pub table: ContactsTable,
}

#[derive(Template, WebTemplate)]
#[template(path = "contacts/list.html")]
pub struct ContactsPage {
    pub shell: Shell,
    pub table: ContactsTable,
    pub q: String,
    pub group: String,
    pub page: i64,
    pub groups: Vec<(String, String)>,
    /// The user has no contacts at all (not just none matching).
    pub empty: bool,
}

async fn list(
    State(state): State<AppState>,
    ws: CurrentWorkspace,
    headers: HeaderMap,
    shell: Shell,
    Query(q): Query<ListQuery>,
) -> AppResult<Response> {
    let group = match q.group.trim() {
        "" => None,
        raw => Some(load_group(&state, ws.id(), raw).await?.id),
    };
    let search = normalise_search(&q.q);
    let page = q.page();
    let query = ContactQuery {
        search: search.clone(),
        group,
        offset: (page - 1).saturating_mul(PAGE),
        limit: PAGE,
    };
    let (contacts, total) = repo::list(&state.pool, ws.id(), &query).await?;
    let group_raw = group.map(|g| g.to_string()).unwrap_or_default();
    let search_raw = search.unwrap_or_default();
    let shown = i64::try_from(contacts.len()).unwrap_or(PAGE);
    let table = ContactsTable {
        from: if shown == 0 { 0 } else { query.offset + 1 },
        to: query.offset + shown,
        prev: if page > 1 {
            list_href(&search_raw, &group_raw, page - 1)
        } else {
            String::new()
        },
        next: if query.offset + shown < total {
            list_href(&search_raw, &group_raw, page + 1)
        } else {
            String::new()
        },
        rows: contacts.into_iter().map(ContactRow::from).collect(),
        total,
        filtered: !search_raw.is_empty() || group.is_some(),
        q: search_raw.clone(),
        group: group_raw.clone(),
        page,
    };
    if is_htmx(&headers) {
        return Ok(vary(ContactsTablePartial { table }.into_response()));
    }
    let empty = total == 0 && !table.filtered;
    Ok(vary(
        ContactsPage {
            shell,
            table,
            q: q.q.trim().to_owned(),
            group: group_raw,
            page,
            groups: group_options(&state, ws.id()).await?,
            empty,
        }
        .into_response(),
    ))
}

// ---------- Bulk actions ----------

/// The bulk form: ticked contacts, the action, its group, and the list filters to go back to.
#[derive(Default)]
struct BulkForm {
    ids: Vec<ContactId>,
    action: String,
    target_group: String,
    confirmed: bool,
    q: String,
    group: String,
    page: i64,
}

impl BulkForm {
    fn from_pairs(pairs: Vec<(String, String)>) -> Self {
        let mut f = Self::default();
        for (k, v) in pairs {
            match k.as_str() {
                // Ids that do not parse cannot be the user's contacts: nothing to do for them.
                "ids" => f.ids.extend(v.parse::<ContactId>().ok()),
                "action" => f.action = v,
                "target_group" => f.target_group = v,
                "confirm" => f.confirmed = v == "yes",
                "q" => f.q = v,
                "group" => f.group = v,
                "page" => f.page = v.parse().unwrap_or(1),
                _ => {}
            }
        }
        f
    }

    fn back(&self) -> String {
        list_href(&self.q, &self.group, self.page)
    }
}

#[derive(Template, WebTemplate)]
#[template(path = "contacts/confirm_delete.html")]
pub struct ConfirmDeletePage {
    pub shell: Shell,
    pub ids: Vec<String>,
    /// Names (or numbers) of the first few, to show what goes.
    pub names: Vec<String>,
    pub more: usize,
    pub q: String,
    pub group: String,
    pub page: i64,
    pub back: String,
}

fn plural(n: u64, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

async fn bulk(
    State(state): State<AppState>,
    ws: CurrentWorkspace,
    session: Session,
    shell: Shell,
    Form(pairs): Form<Vec<(String, String)>>,
) -> AppResult<Response> {
    ws.may(Action::ManageContacts)?;
    let form = BulkForm::from_pairs(pairs);
    let back = form.back();
    if form.ids.is_empty() {
        flash(&session, "error", "Tick at least one contact first.").await?;
        return Ok(Redirect::to(&back).into_response());
    }
    let message = match form.action.as_str() {
        "add" | "remove" => {
            let Ok(group) = form.target_group.trim().parse::<GroupId>() else {
                flash(&session, "error", "Choose a group.").await?;
                return Ok(Redirect::to(&back).into_response());
            };
            let g = repo::find_group(&state.pool, ws.id(), group)
                .await?
                .ok_or(AppError::NotFound)?;
            if form.action == "add" {
                let n = repo::add_to_group(&state.pool, ws.id(), g.id, &form.ids)
                    .await
                    .map_err(contact_error)?;
                format!("{} added to {}.", plural(n, "contact", "contacts"), g.name)
            } else {
                let n = repo::remove_from_group(&state.pool, ws.id(), g.id, &form.ids)
                    .await
                    .map_err(contact_error)?;
                format!("{} removed from {}.", plural(n, "contact", "contacts"), g.name)
            }
        }
        "delete" if form.confirmed => {
            let n = repo::delete(&state.pool, ws.id(), &form.ids).await?;
            tracing::info!(workspace.id = %ws.id(), contacts = n, "contacts deleted");
            format!("{} deleted.", plural(n, "contact", "contacts"))
        }
        "delete" => {
            const SHOWN: usize = 10;
            let mut names = Vec::new();
            for id in form.ids.iter().take(SHOWN) {
                if let Some(c) = repo::find(&state.pool, ws.id(), *id).await? {
                    names.push(if c.name.is_empty() {
                        c.phone_number
                    } else {
                        format!("{} ({})", c.name, c.phone_number)
                    });
                }
            }
            return Ok(ConfirmDeletePage {
                shell,
                ids: form.ids.iter().map(ToString::to_string).collect(),
                more: form.ids.len().saturating_sub(names.len()),
                names,
                q: form.q.clone(),
                group: form.group.clone(),
                page: form.page.max(1),
                back,
            }
            .into_response());
        }
        _ => return Err(AppError::BadRequest("unknown bulk action".to_owned())),
    };
    flash(&session, "success", message).await?;
    Ok(Redirect::to(&back).into_response())
}

// ---------- One contact ----------

/// The contact form's values as submitted (or as stored), and the groups it offers.
pub struct ContactForm {
    pub name: String,
    pub phone_number: String,
    pub notes: String,
    /// Ids of the ticked groups.
    pub groups: Vec<String>,
    /// The user's groups: id and name.
    pub all_groups: Vec<(String, String)>,
}

impl ContactForm {
    fn from_pairs(pairs: Vec<(String, String)>) -> Self {
        let mut f = Self::blank();
        for (k, v) in pairs {
            match k.as_str() {
                "name" => f.name = v,
                "phone_number" => f.phone_number = v,
                "notes" => f.notes = v,
                "groups" => f.groups.push(v),
                _ => {}
            }
        }
        f
    }

    fn blank() -> Self {
        Self {
            name: String::new(),
            phone_number: String::new(),
            notes: String::new(),
            groups: Vec::new(),
            all_groups: Vec::new(),
        }
    }

    fn of(c: &Contact) -> Self {
        Self {
            name: c.name.clone(),
            phone_number: c.phone_number.clone(),
            notes: c.notes.clone(),
            groups: c.groups.iter().map(|g| g.id.to_string()).collect(),
            all_groups: Vec::new(),
        }
    }

    async fn with_groups(mut self, state: &AppState, workspace: WorkspaceId) -> AppResult<Self> {
        self.all_groups = group_options(state, workspace).await?;
        Ok(self)
    }

    pub fn checked(&self, id: &str) -> bool {
        self.groups.iter().any(|g| g == id)
    }

    fn parse(&self) -> Result<ContactInput, ContactError> {
        let groups = self
            .groups
            .iter()
            .map(|g| g.parse::<GroupId>())
            .collect::<Result<Vec<_>, _>>()
            .map_err(|_| ContactError::GroupNotFound)?;
        ContactInput::parse(&self.name, &self.phone_number, &self.notes, groups)
            .map_err(ContactError::Invalid)
    }
}

/// The field errors of a failed save, or the failure to report otherwise.
fn form_errors(e: ContactError) -> AppResult<Errors> {
    match e {
        ContactError::Invalid(errors) => Ok(Errors(errors)),
        ContactError::DuplicateNumber(_) | ContactError::TooManyContacts(_) => {
            Ok(Errors::one(FieldError::new("phone_number", e.to_string())))
        }
        ContactError::GroupNotFound => Ok(Errors::one(FieldError::new(
            "groups",
            "Choose among your groups.",
        ))),
        other => Err(contact_error(other)),
    }
}

#[derive(Template, WebTemplate)]
#[template(path = "contacts/new.html")]
pub struct NewContactPage {
    pub shell: Shell,
    pub form: ContactForm,
    pub errors: Errors,
}

async fn new_form(
    State(state): State<AppState>,
    ws: CurrentWorkspace,
    shell: Shell,
) -> AppResult<NewContactPage> {
    ws.may(Action::ManageContacts)?;
    Ok(NewContactPage {
        shell,
        form: ContactForm::blank().with_groups(&state, ws.id()).await?,
        errors: Errors::default(),
    })
}

async fn create(
    State(state): State<AppState>,
    ws: CurrentWorkspace,
    session: Session,
    shell: Shell,
    Form(pairs): Form<Vec<(String, String)>>,
) -> AppResult<Response> {
    ws.may(Action::ManageContacts)?;
    let form = ContactForm::from_pairs(pairs);
    let result = match form.parse() {
        Ok(input) => repo::create(&state.pool, ws.id(), &input, state.sms.limits.max_contacts).await,
        Err(e) => Err(e),
    };
    match result {
        Ok(c) => {
            flash(&session, "success", format!("{} was added.", label(&c))).await?;
            Ok(Redirect::to(PATH).into_response())
        }
        Err(e) => {
            let page = NewContactPage {
                shell,
                errors: form_errors(e)?,
                form: form.with_groups(&state, ws.id()).await?,
            };
            Ok((StatusCode::UNPROCESSABLE_ENTITY, page).into_response())
        }
    }
}

/// The name, or the number for a contact without one.
fn label(c: &Contact) -> &str {
    if c.name.is_empty() {
        &c.phone_number
    } else {
        &c.name
    }
}

#[derive(Template, WebTemplate)]
#[template(path = "contacts/edit.html")]
pub struct EditContactPage {
    pub shell: Shell,
    pub id: String,
    pub title: String,
    pub form: ContactForm,
    pub errors: Errors,
}

async fn edit_form(
    State(state): State<AppState>,
    ws: CurrentWorkspace,
    shell: Shell,
    Path(raw): Path<String>,
) -> AppResult<EditContactPage> {
    let c = load_contact(&state, ws.id(), &raw).await?;
    Ok(EditContactPage {
        shell,
        id: c.id.to_string(),
        title: label(&c).to_owned(),
        form: ContactForm::of(&c).with_groups(&state, ws.id()).await?,
        errors: Errors::default(),
    })
}

async fn update(
    State(state): State<AppState>,
    ws: CurrentWorkspace,
    session: Session,
    shell: Shell,
    Path(raw): Path<String>,
    Form(pairs): Form<Vec<(String, String)>>,
) -> AppResult<Response> {
    ws.may(Action::ManageContacts)?;
    let c = load_contact(&state, ws.id(), &raw).await?;
    let form = ContactForm::from_pairs(pairs);
    let result = match form.parse() {
        Ok(input) => repo::update(&state.pool, ws.id(), c.id, &input).await,
        Err(e) => Err(e),
    };
    match result {
        Ok(saved) => {
            flash(&session, "success", format!("{} was saved.", label(&saved))).await?;
            Ok(Redirect::to(&format!("/contacts/{}", c.id)).into_response())
        }
        Err(e) => {
            let page = EditContactPage {
                shell,
                id: c.id.to_string(),
                title: label(&c).to_owned(),
                errors: form_errors(e)?,
                form: form.with_groups(&state, ws.id()).await?,
            };
            Ok((StatusCode::UNPROCESSABLE_ENTITY, page).into_response())
        }
    }
}

async fn delete(
    State(state): State<AppState>,
    ws: CurrentWorkspace,
    session: Session,
    Path(raw): Path<String>,
) -> AppResult<Redirect> {
    ws.may(Action::ManageContacts)?;
    let c = load_contact(&state, ws.id(), &raw).await?;
    repo::delete(&state.pool, ws.id(), &[c.id]).await?;
    flash(&session, "success", format!("{} was deleted.", label(&c))).await?;
    Ok(Redirect::to(PATH))
}

// ---------- Groups ----------

pub struct GroupRow {
    pub id: String,
    pub name: String,
    pub members: i64,
}

#[derive(Template, WebTemplate)]
#[template(path = "contacts/groups.html")]
pub struct GroupsPage {
    pub shell: Shell,
    pub groups: Vec<GroupRow>,
    /// The create form's name.
    pub name: String,
    pub errors: Errors,
    /// The group whose rename failed, and the name tried.
    pub renaming: String,
    pub rename_value: String,
}

impl GroupsPage {
    async fn new(state: &AppState, workspace: WorkspaceId, shell: Shell) -> AppResult<Self> {
        let groups = repo::all_groups(&state.pool, workspace)
            .await?
            .into_iter()
            .map(|g| GroupRow {
                id: g.id.to_string(),
                name: g.name,
                members: g.members,
            })
            .collect();
        Ok(Self {
            shell,
            groups,
            name: String::new(),
            errors: Errors::default(),
            renaming: String::new(),
            rename_value: String::new(),
        })
    }

    /// The value the rename field of `row` shows.
    pub fn rename_value_of<'a>(&'a self, row: &'a GroupRow) -> &'a str {
        if self.renaming == row.id {
            &self.rename_value
        } else {
            &row.name
        }
    }
}

/// The field error of a failed group change, or the failure to report otherwise.
fn group_error(e: ContactError) -> AppResult<FieldError> {
    match e {
        ContactError::Invalid(mut errors) if !errors.is_empty() => Ok(errors.swap_remove(0)),
        ContactError::DuplicateGroup(_) | ContactError::TooManyGroups(_) => {
            Ok(FieldError::new("name", e.to_string()))
        }
        other => Err(contact_error(other)),
    }
}

async fn groups(State(state): State<AppState>, ws: CurrentWorkspace, shell: Shell) -> AppResult<GroupsPage> {
    GroupsPage::new(&state, ws.id(), shell).await
}

#[derive(serde::Deserialize, Default)]
#[serde(default)]
pub struct GroupForm {
    name: String,
}

async fn create_group(
    State(state): State<AppState>,
    ws: CurrentWorkspace,
    session: Session,
    shell: Shell,
    Form(form): Form<GroupForm>,
) -> AppResult<Response> {
    ws.may(Action::ManageContacts)?;
    match repo::create_group(&state.pool, ws.id(), &form.name, state.sms.limits.max_groups).await {
        Ok(g) => {
            flash(&session, "success", format!("The group {} was created.", g.name)).await?;
            Ok(Redirect::to(GROUPS).into_response())
        }
        Err(e) => {
            let mut page = GroupsPage::new(&state, ws.id(), shell).await?;
            page.errors = Errors::one(group_error(e)?);
            page.name = form.name;
            Ok((StatusCode::UNPROCESSABLE_ENTITY, page).into_response())
        }
    }
}

async fn rename_group(
    State(state): State<AppState>,
    ws: CurrentWorkspace,
    session: Session,
    shell: Shell,
    Path(raw): Path<String>,
    Form(form): Form<GroupForm>,
) -> AppResult<Response> {
    ws.may(Action::ManageContacts)?;
    let g = load_group(&state, ws.id(), &raw).await?;
    match repo::rename_group(&state.pool, ws.id(), g.id, &form.name).await {
        Ok(renamed) => {
            flash(
                &session,
                "success",
                format!("The group is now called {}.", renamed.name),
            )
            .await?;
            Ok(Redirect::to(GROUPS).into_response())
        }
        Err(e) => {
            let mut error = group_error(e)?;
            error.field = "rename";
            let mut page = GroupsPage::new(&state, ws.id(), shell).await?;
            page.errors = Errors::one(error);
            page.renaming = g.id.to_string();
            page.rename_value = form.name;
            Ok((StatusCode::UNPROCESSABLE_ENTITY, page).into_response())
        }
    }
}

async fn delete_group(
    State(state): State<AppState>,
    ws: CurrentWorkspace,
    session: Session,
    Path(raw): Path<String>,
) -> AppResult<Redirect> {
    ws.may(Action::ManageContacts)?;
    let g = load_group(&state, ws.id(), &raw).await?;
    repo::delete_group(&state.pool, ws.id(), g.id).await?;
    flash(
        &session,
        "success",
        format!("The group {} was deleted; its contacts stay.", g.name),
    )
    .await?;
    Ok(Redirect::to(GROUPS))
}

// ---------- Import: upload ----------

#[derive(Template, WebTemplate)]
#[template(path = "contacts/import.html")]
pub struct UploadPage {
    pub shell: Shell,
    pub errors: Errors,
    /// The user's imports waiting for their settings or running.
    pub open: Vec<OpenImport>,
}

pub struct OpenImport {
    pub id: String,
    pub file_name: String,
    pub running: bool,
    pub percent: i32,
}

async fn open_imports(state: &AppState, workspace: WorkspaceId) -> AppResult<Vec<OpenImport>> {
    Ok(import::open_imports(&state.pool, workspace)
        .await?
        .into_iter()
        .map(|i| OpenImport {
            id: i.id.to_string(),
            file_name: i.file_name.clone(),
            running: i.is_running(),
            percent: i.percent(),
        })
        .collect())
}

async fn upload_form(
    State(state): State<AppState>,
    ws: CurrentWorkspace,
    shell: Shell,
) -> AppResult<UploadPage> {
    ws.may(Action::ManageContacts)?;
    Ok(UploadPage {
        shell,
        errors: Errors::default(),
        open: open_imports(&state, ws.id()).await?,
    })
}

fn upload_refused(shell: Shell, status: StatusCode, message: impl Into<String>) -> Response {
    let page = UploadPage {
        shell,
        errors: Errors::one(FieldError::new("file", message)),
        open: Vec::new(),
    };
    (status, page).into_response()
}

fn too_large(shell: Shell) -> Response {
    upload_refused(
        shell,
        StatusCode::PAYLOAD_TOO_LARGE,
        ImportError::TooLarge.to_string(),
    )
}

fn interrupted(shell: Shell) -> Response {
    upload_refused(
        shell,
        StatusCode::BAD_REQUEST,
        "The upload was interrupted. Try again.",
    )
}

/// Reads what is left of a refused upload, within bounds, and drops it.
async fn drain(body: Body) {
    let mut stream = body.into_data_stream();
    let read = async {
        let mut seen = 0u64;
        while let Some(Ok(chunk)) = stream.next().await {
            seen += chunk.len() as u64;
            if seen > DRAIN_MAX_BYTES {
                break;
            }
        }
    };
    let _ = tokio::time::timeout(DRAIN_MAX_TIME, read).await;
}

/// The `file` field of the upload: its name and bytes; `Err` is the page to answer with.
async fn read_file(state: &AppState, shell: Shell, req: Request) -> Result<(String, Vec<u8>), Response> {
    let announced = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if announced.is_some_and(|n| n > UPLOAD_BODY_LIMIT as u64) {
        drain(req.into_body()).await;
        return Err(too_large(shell));
    }
    let choose = "Choose a CSV or vCard file to upload.";
    let Ok(mut multipart) = Multipart::from_request(req, state).await else {
        return Err(upload_refused(shell, StatusCode::UNPROCESSABLE_ENTITY, choose));
    };
    loop {
        let mut field = match multipart.next_field().await {
            Ok(Some(field)) => field,
            Ok(None) => break,
            Err(e) if e.status() == StatusCode::PAYLOAD_TOO_LARGE => return Err(too_large(shell)),
            Err(_) => {
                return Err(interrupted(shell));
            }
        };
        if field.name() != Some("file") {
            continue;
        }
        let name = field.file_name().unwrap_or_default().to_owned();
        // Read into room for the whole body at once: growing a buffer by doubling would
        // hold the old and the new copy of a 20 MiB file together.
        let room = announced.map_or(64 * 1024, |n| usize::try_from(n).unwrap_or(UPLOAD_BODY_LIMIT));
        let mut bytes = Vec::with_capacity(room.min(UPLOAD_BODY_LIMIT));
        let mut over = false;
        loop {
            match field.chunk().await {
                // Past the limit the rest is read and dropped (within the body limit), so
                // the browser gets the answer instead of a reset connection.
                Ok(Some(_)) if over => {}
                Ok(Some(chunk)) if bytes.len() + chunk.len() > MAX_IMPORT_BYTES => over = true,
                Ok(Some(chunk)) => bytes.extend_from_slice(&chunk),
                Ok(None) => break,
                Err(e) if e.status() == StatusCode::PAYLOAD_TOO_LARGE => return Err(too_large(shell)),
                Err(_) => return Err(interrupted(shell)),
            }
        }
        if over {
            return Err(too_large(shell));
        }
        if name.is_empty() && bytes.is_empty() {
            return Err(upload_refused(shell, StatusCode::UNPROCESSABLE_ENTITY, choose));
        }
        return Ok((name, bytes));
    }
    Err(upload_refused(shell, StatusCode::UNPROCESSABLE_ENTITY, choose))
}

/// Stores the file for its preview. The CSRF token comes in the action's query string
/// (see `csrf.rs`), since the body is multipart.
async fn upload(
    State(state): State<AppState>,
    ws: CurrentWorkspace,
    shell: Shell,
    req: Request,
) -> AppResult<Response> {
    ws.may(Action::ManageContacts)?;
    let (name, bytes) = match read_file(&state, shell.clone(), req).await {
        Ok(file) => file,
        Err(page) => return Ok(page),
    };
    let size = bytes.len();
    match import::upload(&state.pool, ws.id(), &name, bytes, &state.sms.limits).await {
        Ok(id) => {
            tracing::info!(workspace.id = %ws.id(), import.id = %id, bytes = size, "contact file uploaded");
            Ok(Redirect::to(&format!("/contacts/import/{id}")).into_response())
        }
        Err(UploadError::File(ImportError::TooLarge)) => Ok(too_large(shell)),
        Err(e @ UploadError::TooManyOpen(_)) => {
            let page = UploadPage {
                shell,
                errors: Errors::one(FieldError::new("file", e.to_string())),
                open: open_imports(&state, ws.id()).await?,
            };
            Ok((StatusCode::TOO_MANY_REQUESTS, page).into_response())
        }
        Err(UploadError::File(e)) => Ok(upload_refused(
            shell,
            StatusCode::UNPROCESSABLE_ENTITY,
            e.to_string(),
        )),
        Err(e) => Err(upload_error(e)),
    }
}

// ---------- Import: preview and settings ----------

const DELIMITERS: [(&str, u8, &str); 4] = [
    ("comma", b',', "Comma ( , )"),
    ("semicolon", b';', "Semicolon ( ; )"),
    ("tab", b'\t', "Tab"),
    ("pipe", b'|', "Pipe ( | )"),
];

fn delimiter_name(d: u8) -> &'static str {
    DELIMITERS
        .iter()
        .find(|(_, b, _)| *b == d)
        .map_or("comma", |(name, _, _)| name)
}

fn column(i: Option<usize>) -> String {
    i.map(|i| i.to_string()).unwrap_or_default()
}

/// The preview form's values as submitted (or as stored).
#[derive(Clone)]
pub struct SettingsForm {
    pub delimiter: String,
    pub has_header: bool,
    pub name: String,
    pub phone: String,
    pub notes: String,
    pub groups: String,
    pub default_country: String,
    pub on_duplicate: String,
    /// "" (no group), a group id, or "new" (then `new_group` names it).
    pub target: String,
    pub new_group: String,
    /// The delimiter and header choice the shown preview was read with (see [`Self::layout`]).
    pub shown: String,
}

impl SettingsForm {
    fn of(import: &Import) -> Self {
        let s = &import.settings;
        Self {
            delimiter: delimiter_name(s.delimiter).to_owned(),
            has_header: s.has_header,
            name: column(s.mapping.name),
            phone: column(s.mapping.phone),
            notes: column(s.mapping.notes),
            groups: column(s.mapping.groups),
            default_country: s.default_country.clone().unwrap_or_default(),
            on_duplicate: s.on_duplicate.as_str().to_owned(),
            target: s.group.map(|g| g.to_string()).unwrap_or_default(),
            new_group: String::new(),
            shown: String::new(),
        }
    }

    /// From the submitted pairs (an unticked checkbox is absent) and the action asked for.
    fn from_pairs(pairs: Vec<(String, String)>) -> (Self, String) {
        let mut f = Self {
            delimiter: String::new(),
            has_header: false,
            name: String::new(),
            phone: String::new(),
            notes: String::new(),
            groups: String::new(),
            default_country: String::new(),
            on_duplicate: String::new(),
            target: String::new(),
            new_group: String::new(),
            shown: String::new(),
        };
        let mut action = String::new();
        for (k, v) in pairs {
            match k.as_str() {
                "delimiter" => f.delimiter = v,
                "has_header" => f.has_header = true,
                "map_name" => f.name = v,
                "map_phone" => f.phone = v,
                "map_notes" => f.notes = v,
                "map_groups" => f.groups = v,
                "default_country" => f.default_country = v,
                "on_duplicate" => f.on_duplicate = v,
                "target" => f.target = v,
                "new_group" => f.new_group = v,
                "shown" => f.shown = v,
                "action" => action = v,
                _ => {}
            }
        }
        (f, action)
    }

    /// The settings these values give (the target group is resolved separately), or the
    /// field errors; `fallback` fills what a vCard form does not send.
    fn parse(&self, fallback: &Settings, format: Format) -> Result<Settings, Errors> {
        let mut errors = Errors::default();
        let col = |raw: &str, field: &'static str, errors: &mut Errors| match raw.trim() {
            "" => None,
            raw => match raw.parse::<usize>() {
                Ok(i) => Some(i),
                Err(_) => {
                    errors.push(FieldError::new(field, "Choose a column."));
                    None
                }
            },
        };
        let (delimiter, has_header, mapping) = if format == Format::Vcard {
            (fallback.delimiter, fallback.has_header, ColumnMapping::default())
        } else {
            let delimiter = match DELIMITERS.iter().find(|(name, _, _)| *name == self.delimiter) {
                Some((_, b, _)) => *b,
                None => {
                    errors.push(FieldError::new("delimiter", "Choose a delimiter."));
                    fallback.delimiter
                }
            };
            let mapping = ColumnMapping {
                name: col(&self.name, "map_name", &mut errors),
                phone: col(&self.phone, "map_phone", &mut errors),
                notes: col(&self.notes, "map_notes", &mut errors),
                groups: col(&self.groups, "map_groups", &mut errors),
            };
            (delimiter, self.has_header, mapping)
        };
        let default_country = match parse_country(&self.default_country) {
            Ok(c) => c,
            Err(e) => {
                errors.push(e);
                None
            }
        };
        let on_duplicate = OnDuplicate::parse(&self.on_duplicate).unwrap_or_else(|| {
            errors.push(FieldError::new(
                "on_duplicate",
                "Choose what to do with known numbers.",
            ));
            OnDuplicate::Update
        });
        let group = match self.target.trim() {
            "" | "new" => None,
            raw => match raw.parse::<GroupId>() {
                Ok(g) => Some(g),
                Err(_) => {
                    errors.push(FieldError::new("target", "Choose one of your groups."));
                    None
                }
            },
        };
        if !errors.is_empty() {
            return Err(errors);
        }
        Ok(Settings {
            delimiter,
            has_header,
            mapping,
            default_country,
            on_duplicate,
            group,
        })
    }

    /// How these values split the file into columns (see [`layout`]).
    fn layout(&self) -> String {
        layout(&self.delimiter, self.has_header)
    }

    fn set_mapping(&mut self, m: &ColumnMapping) {
        self.name = column(m.name);
        self.phone = column(m.phone);
        self.notes = column(m.notes);
        self.groups = column(m.groups);
    }

    pub fn delimiters(&self) -> Vec<(&'static str, &'static str, bool)> {
        DELIMITERS
            .iter()
            .map(|(name, _, label)| (*name, *label, *name == self.delimiter))
            .collect()
    }
}

/// How a file is split into columns: `comma:on` is commas with a header row.
fn layout(delimiter: &str, has_header: bool) -> String {
    format!("{delimiter}:{}", if has_header { "on" } else { "off" })
}

/// A calling code like `44` or `+44`, or nothing.
fn parse_country(raw: &str) -> Result<Option<String>, FieldError> {
    let raw = raw.trim();
    if raw.is_empty() {
        return Ok(None);
    }
    let digits = raw.strip_prefix('+').unwrap_or(raw);
    if (1..=3).contains(&digits.len())
        && digits.bytes().all(|b| b.is_ascii_digit())
        && !digits.starts_with('0')
    {
        Ok(Some(digits.to_owned()))
    } else {
        Err(FieldError::new(
            "default_country",
            "Enter a calling code of 1 to 3 digits, like 44 or 1, or leave it empty.",
        ))
    }
}

/// A preview row's outcome: the contact it becomes, or why it cannot.
pub struct DraftView {
    pub ok: bool,
    pub name: String,
    pub phone: String,
    pub groups: String,
    pub line: usize,
    pub value: String,
    pub error: String,
}

pub struct PreviewView {
    /// Index and header of each column.
    pub columns: Vec<(String, String)>,
    pub rows: Vec<Vec<String>>,
    pub total_rows: usize,
    pub drafts: Vec<DraftView>,
}

/// Everything inside the preview form, which HTMX swaps as a whole.
pub struct ImportView {
    pub id: String,
    pub file_name: String,
    pub encoding: String,
    pub vcard: bool,
    /// The delimiter that was detected on upload.
    pub detected: &'static str,
    pub csrf: String,
    pub form: SettingsForm,
    pub errors: Errors,
    pub groups: Vec<(String, String)>,
    pub preview: Option<PreviewView>,
    /// Why the file cannot be read with these settings.
    pub problem: String,
    /// Something the user should know before starting.
    pub notice: String,
    /// How the preview shown split the file (see [`layout`]).
    pub shown: String,
}

impl ImportView {
    /// The mapping selects: field name, label and chosen column.
    pub fn mapping_fields(&self) -> [(&'static str, &'static str, &str); 4] {
        [
            ("map_phone", "Phone number (required)", &self.form.phone),
            ("map_name", "Name", &self.form.name),
            ("map_notes", "Notes", &self.form.notes),
            ("map_groups", "Groups", &self.form.groups),
        ]
    }

    /// Index and header of each column of the file, as the settings read it.
    pub fn columns(&self) -> &[(String, String)] {
        self.preview.as_ref().map_or(&[], |p| &p.columns)
    }

    pub fn detected_label(&self) -> &'static str {
        DELIMITERS
            .iter()
            .find(|(name, _, _)| *name == self.detected)
            .map_or("comma", |(_, _, label)| label)
    }
}

#[derive(Template, WebTemplate)]
#[template(path = "contacts/import_preview.html")]
pub struct ImportPreviewPage {
    pub shell: Shell,
    pub v: ImportView,
}

#[derive(Template, WebTemplate)]
#[template(path = "contacts/_import_settings.html")]
pub struct ImportSettingsPartial {
    pub v: ImportView,
}

async fn import_view(
    state: &AppState,
    workspace: WorkspaceId,
    csrf: String,
    import: &Import,
    form: SettingsForm,
    settings: &Settings,
    errors: Errors,
) -> AppResult<ImportView> {
    let (preview, problem) =
        match import::preview(&state.pool, import, settings, PREVIEW_ROWS, &state.sms.limits).await {
            Ok(p) => {
                let width = p.headers.len();
                let drafts = p
                    .drafts
                    .into_iter()
                    .map(|d| match d {
                        Ok(d) => DraftView {
                            ok: true,
                            name: d.name,
                            phone: d.phone,
                            groups: d.groups.join(", "),
                            line: 0,
                            value: String::new(),
                            error: String::new(),
                        },
                        Err(e) => DraftView {
                            ok: false,
                            name: String::new(),
                            phone: String::new(),
                            groups: String::new(),
                            line: e.line,
                            value: e.value,
                            error: e.message,
                        },
                    })
                    .collect();
                let view = PreviewView {
                    columns: p
                        .headers
                        .into_iter()
                        .enumerate()
                        .map(|(i, h)| (i.to_string(), h))
                        .collect(),
                    rows: p
                        .rows
                        .into_iter()
                        .map(|mut r| {
                            r.resize(width.max(r.len()), String::new());
                            r
                        })
                        .collect(),
                    total_rows: p.total_rows,
                    drafts,
                };
                (Some(view), String::new())
            }
            Err(UploadError::File(e)) => (None, e.to_string()),
            Err(e) => return Err(upload_error(e)),
        };
    Ok(ImportView {
        id: import.id.to_string(),
        file_name: import.file_name.clone(),
        encoding: import.encoding.clone(),
        vcard: import.format == Format::Vcard,
        detected: delimiter_name(import.settings.delimiter),
        csrf,
        form,
        errors,
        groups: group_options(state, workspace).await?,
        preview,
        problem,
        notice: String::new(),
        shown: layout(delimiter_name(settings.delimiter), settings.has_header),
    })
}

// ---------- Import: progress and results ----------

pub struct ProgressView {
    pub id: String,
    pub file_name: String,
    pub status: String,
    pub running: bool,
    pub percent: i32,
    pub total: i32,
    pub processed: i32,
    pub created: i32,
    pub updated: i32,
    pub skipped: i32,
    pub failed: i32,
    pub error_message: String,
    pub errors: Vec<StoredRowError>,
}

impl ProgressView {
    /// More rows failed than the page lists.
    pub fn more_errors(&self) -> bool {
        usize::try_from(self.failed).unwrap_or(0) > self.errors.len()
    }
}

#[derive(Template, WebTemplate)]
#[template(path = "contacts/_progress.html")]
pub struct ProgressPartial {
    pub p: ProgressView,
}

#[derive(Template, WebTemplate)]
#[template(path = "contacts/import_progress.html")]
pub struct ProgressPage {
    pub shell: Shell,
    pub p: ProgressView,
}

async fn progress_view(state: &AppState, workspace: WorkspaceId, import: &Import) -> AppResult<ProgressView> {
    let errors = if import.is_running() || import.failed == 0 {
        Vec::new()
    } else {
        import::first_errors(&state.pool, workspace, import.id, SHOWN_ERRORS).await?
    };
    Ok(ProgressView {
        id: import.id.to_string(),
        file_name: import.file_name.clone(),
        status: import.status.clone(),
        running: import.is_running(),
        percent: import.percent(),
        total: import.total_rows,
        processed: import.processed,
        created: import.created,
        updated: import.updated,
        skipped: import.skipped,
        failed: import.failed,
        error_message: import.error_message.clone(),
        errors,
    })
}

/// Works through the import in the background; a failure leaves it running with a stale
/// heartbeat, and the next look at its page resumes it.
fn spawn_run(state: &AppState, workspace: WorkspaceId, id: ImportId) {
    let pool = state.pool.clone();
    let limits = state.sms.limits.clone();
    tokio::spawn(async move {
        if let Err(e) = import::run(&pool, workspace, id, &limits).await {
            tracing::error!(import.id = %id, error = %e, "contact import stopped; it resumes when its page is next open");
        }
    });
}

/// The preview form while the import waits for its settings; the progress (the bar alone
/// for HTMX's polling) once it started.
async fn import_page(
    State(state): State<AppState>,
    ws: CurrentWorkspace,
    headers: HeaderMap,
    shell: Shell,
    Path(raw): Path<String>,
) -> AppResult<Response> {
    ws.may(Action::ManageContacts)?;
    let import = load_import(&state, ws.id(), &raw).await?;
    if import.status == "preview" {
        let form = SettingsForm::of(&import);
        let v = import_view(
            &state,
            ws.id(),
            shell.csrf.clone(),
            &import,
            form,
            &import.settings,
            Errors::default(),
        )
        .await?;
        return Ok(vary(ImportPreviewPage { shell, v }.into_response()));
    }
    if import.is_running() && import::claim_stale(&state.pool, ws.id(), import.id).await? {
        tracing::info!(import.id = %import.id, "resuming a stalled contact import");
        spawn_run(&state, ws.id(), import.id);
    }
    let p = progress_view(&state, ws.id(), &import).await?;
    if is_htmx(&headers) {
        return Ok(vary(ProgressPartial { p }.into_response()));
    }
    Ok(vary(ProgressPage { shell, p }.into_response()))
}

/// Drops an import still waiting for its settings (it no longer counts against
/// `ENDER_MAX_OPEN_IMPORTS`); one that started or finished is left as it is.
async fn discard_import(
    State(state): State<AppState>,
    ws: CurrentWorkspace,
    Path(raw): Path<String>,
) -> AppResult<Response> {
    ws.may(Action::ManageContacts)?;
    let import = load_import(&state, ws.id(), &raw).await?;
    if import::discard(&state.pool, ws.id(), import.id).await? {
        tracing::info!(workspace.id = %ws.id(), import.id = %import.id, "contact import discarded");
        return Ok(Redirect::to(IMPORT).into_response());
    }
    Ok(Redirect::to(&format!("/contacts/import/{}", import.id)).into_response())
}

/// Finds or creates the group named on the form for "new group named …".
async fn new_group(state: &AppState, workspace: WorkspaceId, name: &str) -> Result<GroupId, FieldError> {
    match repo::create_group(&state.pool, workspace, name, state.sms.limits.max_groups).await {
        Ok(g) => Ok(g.id),
        Err(ContactError::DuplicateGroup(_)) => {
            let wanted = name.trim().to_lowercase();
            match repo::all_groups(&state.pool, workspace).await {
                Ok(all) => all
                    .into_iter()
                    .find(|g| g.name.to_lowercase() == wanted)
                    .map(|g| g.id)
                    .ok_or_else(|| FieldError::new("new_group", "Choose another name.")),
                Err(_) => Err(FieldError::new(
                    "new_group",
                    "The group could not be created. Try again.",
                )),
            }
        }
        Err(ContactError::Invalid(mut errors)) if !errors.is_empty() => {
            let mut e = errors.swap_remove(0);
            e.field = "new_group";
            Err(e)
        }
        Err(_) => Err(FieldError::new(
            "new_group",
            "The group could not be created. Try again.",
        )),
    }
}

/// The preview form: "Refresh preview" (also HTMX on every change) re-renders it with the
/// chosen settings; "Start import" saves them and starts the run.
async fn import_settings(
    State(state): State<AppState>,
    ws: CurrentWorkspace,
    headers: HeaderMap,
    shell: Shell,
    Path(raw): Path<String>,
    Form(pairs): Form<Vec<(String, String)>>,
) -> AppResult<Response> {
    ws.may(Action::ManageContacts)?;
    let import = load_import(&state, ws.id(), &raw).await?;
    let to_page = format!("/contacts/import/{}", import.id);
    if import.status != "preview" {
        return Ok(Redirect::to(&to_page).into_response());
    }
    let (mut form, mut action) = SettingsForm::from_pairs(pairs);
    let parsed = form.parse(&import.settings, import.format);
    let mut errors = Errors::default();
    let mut settings = match parsed {
        Ok(s) => s,
        Err(e) => {
            errors = e;
            import.settings.clone()
        }
    };
    let mut notice = String::new();
    // Other columns under another delimiter or header choice: the old mapping means
    // nothing there, so guess again (and look again before starting).
    if import.format == Format::Csv
        && errors.is_empty()
        && !form.shown.is_empty()
        && form.shown != form.layout()
    {
        if let Ok(p) = import::preview(&state.pool, &import, &settings, 0, &state.sms.limits).await {
            let guessed = guess_mapping(&p.headers);
            if guessed.phone.is_some() {
                form.set_mapping(&guessed);
                settings.mapping = guessed;
            }
        }
        if action == "start" {
            action.clear();
            notice = "The file is read differently now: check the columns below, then start the import."
                .to_owned();
        }
    }
    if action == "start" && errors.is_empty() {
        if form.target == "new" {
            match new_group(&state, ws.id(), &form.new_group).await {
                Ok(g) => {
                    settings.group = Some(g);
                    // Shown again as the chosen group if the start fails below.
                    form.target = g.to_string();
                    form.new_group.clear();
                }
                Err(e) => errors.push(e),
            }
        }
        if errors.is_empty() {
            match import::start(&state.pool, ws.id(), import.id, &settings, &state.sms.limits).await {
                Ok(()) => {
                    tracing::info!(workspace.id = %ws.id(), import.id = %import.id, "contact import started");
                    spawn_run(&state, ws.id(), import.id);
                    return Ok(Redirect::to(&to_page).into_response());
                }
                Err(UploadError::AlreadyStarted) => return Ok(Redirect::to(&to_page).into_response()),
                Err(UploadError::NoPhoneColumn) => {
                    errors.push(FieldError::new(
                        "map_phone",
                        UploadError::NoPhoneColumn.to_string(),
                    ));
                }
                Err(UploadError::GroupNotFound) => {
                    errors.push(FieldError::new("target", "Choose one of your groups."));
                }
                Err(UploadError::File(e)) => errors.push(FieldError::new("file", e.to_string())),
                Err(e) => return Err(upload_error(e)),
            }
        }
    }
    let failed = !errors.is_empty();
    let mut v = import_view(
        &state,
        ws.id(),
        shell.csrf.clone(),
        &import,
        form,
        &settings,
        errors,
    )
    .await?;
    v.notice = notice;
    let status = if failed {
        StatusCode::UNPROCESSABLE_ENTITY
    } else {
        StatusCode::OK
    };
    if is_htmx(&headers) {
        // HTMX swaps only successful answers; a refresh with errors still shows them.
        return Ok(vary(ImportSettingsPartial { v }.into_response()));
    }
    Ok(vary((status, ImportPreviewPage { shell, v }).into_response()))
}

fn attachment(content_type: &'static str, file_name: &str, body: Vec<u8>) -> Response {
    let disposition = format!("attachment; filename=\"{file_name}\"");
    (
        [
            (header::CONTENT_TYPE, HeaderValue::from_static(content_type)),
            (
                header::CONTENT_DISPOSITION,
                HeaderValue::from_str(&disposition)
                    .unwrap_or_else(|_| HeaderValue::from_static("attachment")),
            ),
            (header::CACHE_CONTROL, HeaderValue::from_static("no-store")),
        ],
        body,
    )
        .into_response()
}

async fn errors_csv(
    State(state): State<AppState>,
    ws: CurrentWorkspace,
    Path(raw): Path<String>,
) -> AppResult<Response> {
    ws.may(Action::ManageContacts)?;
    let id: ImportId = parse_id(&raw)?;
    let csv = import::errors_csv(&state.pool, ws.id(), id)
        .await?
        .ok_or(AppError::NotFound)?;
    Ok(attachment("text/csv; charset=utf-8", "import-errors.csv", csv))
}

// ---------- Export ----------

#[derive(serde::Deserialize, Default)]
#[serde(default)]
pub struct ExportQuery {
    format: String,
    group: String,
}

/// A file-name-safe form of a group name: lower-case ASCII letters and digits joined by `-`.
fn slug(name: &str) -> String {
    let mut out = String::new();
    for c in name.chars() {
        if c.is_ascii_alphanumeric() {
            out.push(c.to_ascii_lowercase());
        } else if !out.is_empty() && !out.ends_with('-') {
            out.push('-');
        }
    }
    let out = out.trim_end_matches('-');
    let out: String = out.chars().take(60).collect();
    if out.is_empty() { "group".to_owned() } else { out }
}

async fn export(
    State(state): State<AppState>,
    ws: CurrentWorkspace,
    Query(q): Query<ExportQuery>,
) -> AppResult<Response> {
    ws.may(Action::ManageContacts)?;
    let group = match q.group.trim() {
        "" => None,
        raw => Some(load_group(&state, ws.id(), raw).await?),
    };
    let stem = match &group {
        Some(g) => format!("contacts-{}", slug(&g.name)),
        None => "contacts".to_owned(),
    };
    let contacts = repo::export(&state.pool, ws.id(), group.as_ref().map(|g| g.id)).await?;
    let detail = serde_json::json!({ "contacts": contacts.len(), "format": q.format });
    let what = group
        .as_ref()
        .map_or_else(|| "all contacts".to_owned(), |g| format!("group {}", g.name));
    crate::audit::note(
        &state,
        ws.id(),
        ws.actor(),
        ender_core::workspace::audit::kind::CONTACTS_EXPORTED,
        &what,
        detail,
    )
    .await;
    match q.format.as_str() {
        "" | "csv" => Ok(attachment(
            "text/csv; charset=utf-8",
            &format!("{stem}.csv"),
            export::to_csv(&contacts),
        )),
        "vcard" | "vcf" => Ok(attachment(
            "text/vcard; charset=utf-8",
            &format!("{stem}.vcf"),
            export::to_vcard(&contacts).into_bytes(),
        )),
        _ => Err(AppError::BadRequest("unknown export format".to_owned())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn group_names_become_file_name_slugs() {
        assert_eq!(slug("Staff"), "staff");
        assert_eq!(slug("  Night shift / B "), "night-shift-b");
        assert_eq!(slug("Équipe"), "quipe");
        assert_eq!(slug("!!!"), "group");
    }

    #[test]
    fn default_country_is_a_calling_code_or_nothing() {
        assert_eq!(parse_country("").unwrap(), None);
        assert_eq!(parse_country(" +44 ").unwrap().as_deref(), Some("44"));
        assert_eq!(parse_country("1").unwrap().as_deref(), Some("1"));
        for bad in ["0", "4444", "uk", "+"] {
            assert_eq!(parse_country(bad).unwrap_err().field, "default_country", "{bad}");
        }
    }

    #[test]
    fn list_links_keep_only_the_filters_set() {
        assert_eq!(list_href("", "", 1), "/contacts");
        assert_eq!(list_href("+44 20", "", 2), "/contacts?q=%2B44+20&page=2");
    }
}
