//! The address book through the API: Vendel's `GET /api/contacts` and
//! `GET /api/contacts/groups`, and Ender's create, show, change and delete for contacts and
//! groups, bulk delete and group membership. Another user's contact or group reads as not
//! found.

use std::collections::HashMap;

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use ender_core::FieldError;
use ender_core::contact::{
    Contact, ContactError, ContactId, ContactInput, ContactQuery, Group, GroupId, normalise_search, repo,
};
use ender_core::workspace::WorkspaceId;
use serde::Deserialize;
use serde_json::{Value, json};

use super::auth::ApiWorkspace;
use super::format::{Paging, filter, ts};
use super::{ApiError, ApiResult};
use crate::extract::ApiJson;
use crate::state::AppState;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/contacts", get(list).post(create))
        .route("/contacts/bulk-delete", post(bulk_delete))
        .route("/contacts/groups", get(list_groups).post(create_group))
        .route(
            "/contacts/groups/{id}",
            get(show_group).put(rename_group).delete(remove_group),
        )
        .route(
            "/contacts/groups/{id}/members",
            post(add_members).delete(remove_members),
        )
        .route(
            "/contacts/{id}",
            get(show).put(replace).patch(patch).delete(remove),
        )
}

impl From<ContactError> for ApiError {
    fn from(e: ContactError) -> Self {
        match e {
            ContactError::Invalid(errors) => ApiError::invalid(&errors),
            ContactError::DuplicateNumber(_) | ContactError::DuplicateGroup(_) => {
                ApiError::new(StatusCode::CONFLICT, e.to_string())
            }
            ContactError::NotFound | ContactError::GroupNotFound => ApiError::not_found(e.to_string()),
            // As the other per-user caps (API keys, schedules, webhooks) answer.
            ContactError::TooManyContacts(_) | ContactError::TooManyGroups(_) => {
                ApiError::new(StatusCode::TOO_MANY_REQUESTS, e.to_string())
            }
            ContactError::Database(d) => d.into(),
        }
    }
}

fn contact_not_found() -> ApiError {
    ApiError::not_found("Contact not found.")
}

fn group_not_found() -> ApiError {
    ApiError::not_found("Group not found.")
}

/// A group named in a request body that is not one of the caller's: the body is at fault.
fn unknown_group() -> ApiError {
    ApiError::invalid(&[FieldError::new("groups", "Group not found.")])
}

fn contact_id(raw: &str) -> ApiResult<ContactId> {
    raw.parse().map_err(|_| contact_not_found())
}

fn group_id(raw: &str) -> ApiResult<GroupId> {
    raw.parse().map_err(|_| group_not_found())
}

fn contact_json(c: &Contact) -> Value {
    let groups: Vec<String> = c.groups.iter().map(|g| g.id.to_string()).collect();
    json!({
        "id": c.id.to_string(), "name": c.name, "phone_number": c.phone_number, "groups": groups,
        "notes": c.notes, "created": ts(Some(c.created_at)), "updated": ts(Some(c.updated_at)),
    })
}

fn group_json(g: &Group) -> Value {
    json!({
        "id": g.id.to_string(), "name": g.name, "members": g.members,
        "created": ts(Some(g.created_at)), "updated": ts(Some(g.updated_at)),
    })
}

/// A contact as a request gives it. Groups come as `groups` (Vendel's name) or `group_ids`.
#[derive(Deserialize)]
struct ContactBody {
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    phone_number: Option<String>,
    #[serde(default)]
    notes: Option<String>,
    #[serde(default)]
    groups: Option<Vec<String>>,
    #[serde(default)]
    group_ids: Option<Vec<String>>,
}

impl ContactBody {
    /// The groups given under either name, or `None` when neither was sent.
    fn groups(&self) -> ApiResult<Option<Vec<GroupId>>> {
        if self.groups.is_none() && self.group_ids.is_none() {
            return Ok(None);
        }
        let raw = self.groups.iter().chain(&self.group_ids).flatten();
        raw.map(|g| g.trim())
            .filter(|g| !g.is_empty())
            .map(|g| g.parse().map_err(|_| unknown_group()))
            .collect::<ApiResult<Vec<GroupId>>>()
            .map(Some)
    }
}

/// Checks the fields and creates the contact (`id` `None`) or replaces it.
async fn save(
    state: &AppState,
    workspace: WorkspaceId,
    id: Option<ContactId>,
    (name, phone, notes): (&str, &str, &str),
    groups: Vec<GroupId>,
) -> ApiResult<Json<Value>> {
    let input = ContactInput::parse(name, phone, notes, groups).map_err(|e| ApiError::invalid(&e))?;
    let saved = match id {
        None => repo::create(&state.pool, workspace, &input, state.sms.limits.max_contacts).await,
        Some(id) => repo::update(&state.pool, workspace, id, &input).await,
    };
    match saved {
        Ok(c) => Ok(Json(contact_json(&c))),
        Err(ContactError::GroupNotFound) => Err(unknown_group()),
        Err(e) => Err(e.into()),
    }
}

/// Query `page`, `per_page`, `search` (a substring of the name or number) and `group_id`
/// (an id that is not one of the caller's groups matches nothing).
async fn list(
    State(state): State<AppState>,
    ApiWorkspace(workspace): ApiWorkspace,
    Query(q): Query<HashMap<String, String>>,
) -> ApiResult<Json<Value>> {
    let paging = Paging::from_query(&q);
    // Not trimmed first: a leading space is an unencoded `+`.
    let search = q.get("search").and_then(|s| normalise_search(s));
    let group = filter(q.get("group_id")).map(|g| g.parse().unwrap_or(GroupId(uuid::Uuid::nil())));
    let query = ContactQuery {
        search,
        group,
        offset: paging.offset(),
        limit: paging.per_page,
    };
    let (items, total) = repo::list(&state.pool, workspace, &query).await?;
    Ok(Json(paging.wrap(items.iter().map(contact_json).collect(), total)))
}

async fn create(
    State(state): State<AppState>,
    ApiWorkspace(workspace): ApiWorkspace,
    ApiJson(b): ApiJson<ContactBody>,
) -> ApiResult<Json<Value>> {
    let groups = b.groups()?.unwrap_or_default();
    let fields = (
        b.name.as_deref().unwrap_or(""),
        b.phone_number.as_deref().unwrap_or(""),
        b.notes.as_deref().unwrap_or(""),
    );
    save(&state, workspace, None, fields, groups).await
}

async fn show(
    State(state): State<AppState>,
    ApiWorkspace(workspace): ApiWorkspace,
    Path(raw): Path<String>,
) -> ApiResult<Json<Value>> {
    let c = repo::find(&state.pool, workspace, contact_id(&raw)?)
        .await?
        .ok_or_else(contact_not_found)?;
    Ok(Json(contact_json(&c)))
}

/// The whole contact: a field left out takes its default (no notes, no groups).
async fn replace(
    State(state): State<AppState>,
    ApiWorkspace(workspace): ApiWorkspace,
    Path(raw): Path<String>,
    ApiJson(b): ApiJson<ContactBody>,
) -> ApiResult<Json<Value>> {
    let id = contact_id(&raw)?;
    let groups = b.groups()?.unwrap_or_default();
    let fields = (
        b.name.as_deref().unwrap_or(""),
        b.phone_number.as_deref().unwrap_or(""),
        b.notes.as_deref().unwrap_or(""),
    );
    save(&state, workspace, Some(id), fields, groups).await
}

/// Only the fields given change.
async fn patch(
    State(state): State<AppState>,
    ApiWorkspace(workspace): ApiWorkspace,
    Path(raw): Path<String>,
    ApiJson(b): ApiJson<ContactBody>,
) -> ApiResult<Json<Value>> {
    let id = contact_id(&raw)?;
    let current = repo::find(&state.pool, workspace, id)
        .await?
        .ok_or_else(contact_not_found)?;
    let groups = match b.groups()? {
        Some(g) => g,
        None => current.groups.iter().map(|g| g.id).collect(),
    };
    let fields = (
        b.name.as_deref().unwrap_or(&current.name),
        b.phone_number.as_deref().unwrap_or(&current.phone_number),
        b.notes.as_deref().unwrap_or(&current.notes),
    );
    save(&state, workspace, Some(id), fields, groups).await
}

async fn remove(
    State(state): State<AppState>,
    ApiWorkspace(workspace): ApiWorkspace,
    Path(raw): Path<String>,
) -> ApiResult<Json<Value>> {
    if repo::delete(&state.pool, workspace, &[contact_id(&raw)?]).await? == 0 {
        return Err(contact_not_found());
    }
    Ok(Json(json!({ "success": true })))
}

#[derive(Deserialize)]
struct ContactIds {
    #[serde(default)]
    contact_ids: Vec<String>,
}

impl ContactIds {
    /// The ids, at least one; a value that is not an id cannot be the caller's contact
    /// and is skipped.
    fn parse(&self) -> ApiResult<Vec<ContactId>> {
        if self.contact_ids.is_empty() {
            return Err(ApiError::invalid(&[FieldError::new(
                "contact_ids",
                "List at least one contact in contact_ids.",
            )]));
        }
        Ok(self.contact_ids.iter().filter_map(|c| c.parse().ok()).collect())
    }
}

/// Deletes the caller's contacts among `contact_ids`; others' and unknown ids are skipped.
async fn bulk_delete(
    State(state): State<AppState>,
    ApiWorkspace(workspace): ApiWorkspace,
    ApiJson(b): ApiJson<ContactIds>,
) -> ApiResult<Json<Value>> {
    let deleted = repo::delete(&state.pool, workspace, &b.parse()?).await?;
    Ok(Json(json!({ "deleted": deleted })))
}

async fn add_members(
    State(state): State<AppState>,
    ApiWorkspace(workspace): ApiWorkspace,
    Path(raw): Path<String>,
    ApiJson(b): ApiJson<ContactIds>,
) -> ApiResult<Json<Value>> {
    let group = group_id(&raw)?;
    let added = repo::add_to_group(&state.pool, workspace, group, &b.parse()?).await?;
    Ok(Json(json!({ "added": added })))
}

async fn remove_members(
    State(state): State<AppState>,
    ApiWorkspace(workspace): ApiWorkspace,
    Path(raw): Path<String>,
    ApiJson(b): ApiJson<ContactIds>,
) -> ApiResult<Json<Value>> {
    let group = group_id(&raw)?;
    let removed = repo::remove_from_group(&state.pool, workspace, group, &b.parse()?).await?;
    Ok(Json(json!({ "removed": removed })))
}

/// Groups by name, with their member counts.
async fn list_groups(
    State(state): State<AppState>,
    ApiWorkspace(workspace): ApiWorkspace,
    Query(q): Query<HashMap<String, String>>,
) -> ApiResult<Json<Value>> {
    let paging = Paging::from_query(&q);
    let (items, total) = repo::list_groups(&state.pool, workspace, paging.offset(), paging.per_page).await?;
    Ok(Json(paging.wrap(items.iter().map(group_json).collect(), total)))
}

#[derive(Deserialize)]
struct GroupBody {
    #[serde(default)]
    name: String,
}

async fn create_group(
    State(state): State<AppState>,
    ApiWorkspace(workspace): ApiWorkspace,
    ApiJson(b): ApiJson<GroupBody>,
) -> ApiResult<Json<Value>> {
    let g = repo::create_group(&state.pool, workspace, &b.name, state.sms.limits.max_groups).await?;
    Ok(Json(group_json(&g)))
}

async fn show_group(
    State(state): State<AppState>,
    ApiWorkspace(workspace): ApiWorkspace,
    Path(raw): Path<String>,
) -> ApiResult<Json<Value>> {
    let g = repo::find_group(&state.pool, workspace, group_id(&raw)?)
        .await?
        .ok_or_else(group_not_found)?;
    Ok(Json(group_json(&g)))
}

async fn rename_group(
    State(state): State<AppState>,
    ApiWorkspace(workspace): ApiWorkspace,
    Path(raw): Path<String>,
    ApiJson(b): ApiJson<GroupBody>,
) -> ApiResult<Json<Value>> {
    let g = repo::rename_group(&state.pool, workspace, group_id(&raw)?, &b.name).await?;
    Ok(Json(group_json(&g)))
}

/// Deletes the group; its contacts stay.
async fn remove_group(
    State(state): State<AppState>,
    ApiWorkspace(workspace): ApiWorkspace,
    Path(raw): Path<String>,
) -> ApiResult<Json<Value>> {
    if !repo::delete_group(&state.pool, workspace, group_id(&raw)?).await? {
        return Err(group_not_found());
    }
    Ok(Json(json!({ "success": true })))
}
