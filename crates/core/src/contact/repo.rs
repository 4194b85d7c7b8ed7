//! Contacts and groups in Postgres. Every query is scoped to its owner: another workspace's id
//! reads as not found.

use std::collections::{HashMap, HashSet};

use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

use super::import_csv::ContactDraft;
use super::model::{Contact, ContactError, ContactId, ContactInput, ContactQuery, Group, GroupId, GroupRef};
use crate::config::TenantLimits;
use crate::db::is_unique_violation;
use crate::workspace::WorkspaceId;

struct ContactRow {
    id: ContactId,
    workspace_id: WorkspaceId,
    name: String,
    phone_number: String,
    notes: String,
    groups: serde_json::Value,
    created_at: chrono::DateTime<chrono::Utc>,
    updated_at: chrono::DateTime<chrono::Utc>,
}

impl From<ContactRow> for Contact {
    fn from(r: ContactRow) -> Self {
        let mut groups: Vec<GroupRef> = serde_json::from_value(r.groups).unwrap_or_default();
        groups.sort_by_key(|g| g.name.to_lowercase());
        Self {
            id: r.id,
            workspace_id: r.workspace_id,
            name: r.name,
            phone_number: r.phone_number,
            notes: r.notes,
            groups,
            created_at: r.created_at,
            updated_at: r.updated_at,
        }
    }
}

fn like_pattern(search: &str) -> String {
    let escaped = search
        .replace('\\', "\\\\")
        .replace('%', "\\%")
        .replace('_', "\\_");
    format!("%{escaped}%")
}

/// One page of the workspace's contacts (by name, then id) and how many match in all.
pub async fn list(
    pool: &PgPool,
    workspace: WorkspaceId,
    q: &ContactQuery,
) -> sqlx::Result<(Vec<Contact>, i64)> {
    let pattern = q.search.as_deref().map(like_pattern);
    let group = q.group.map(|g| g.0);
    let total = sqlx::query_scalar!(
        r#"SELECT count(*) AS "n!" FROM contacts c
           WHERE c.workspace_id = $1
             AND ($2::text IS NULL OR c.name ILIKE $2 OR c.phone_number LIKE $2)
             AND ($3::uuid IS NULL OR EXISTS (SELECT 1 FROM contact_group_members m
                                              WHERE m.contact_id = c.id AND m.group_id = $3))"#,
        workspace as WorkspaceId,
        pattern,
        group
    )
    .fetch_one(pool)
    .await?;
    let rows = sqlx::query_as!(
        ContactRow,
        r#"SELECT c.id AS "id: ContactId", c.workspace_id AS "workspace_id: WorkspaceId", c.name, c.phone_number, c.notes,
                  coalesce((SELECT json_agg(json_build_object('id', g.id, 'name', g.name))
                            FROM contact_group_members m JOIN contact_groups g ON g.id = m.group_id
                            WHERE m.contact_id = c.id), '[]')::jsonb AS "groups!",
                  c.created_at, c.updated_at
           FROM contacts c
           WHERE c.workspace_id = $1
             AND ($2::text IS NULL OR c.name ILIKE $2 OR c.phone_number LIKE $2)
             AND ($3::uuid IS NULL OR EXISTS (SELECT 1 FROM contact_group_members m
                                              WHERE m.contact_id = c.id AND m.group_id = $3))
           ORDER BY lower(c.name), c.id
           OFFSET $4 LIMIT $5"#,
        workspace as WorkspaceId,
        pattern,
        group,
        q.offset,
        q.limit
    )
    .fetch_all(pool)
    .await?;
    Ok((rows.into_iter().map(Contact::from).collect(), total))
}

pub async fn find(pool: &PgPool, workspace: WorkspaceId, id: ContactId) -> sqlx::Result<Option<Contact>> {
    let row = sqlx::query_as!(
        ContactRow,
        r#"SELECT c.id AS "id: ContactId", c.workspace_id AS "workspace_id: WorkspaceId", c.name, c.phone_number, c.notes,
                  coalesce((SELECT json_agg(json_build_object('id', g.id, 'name', g.name))
                            FROM contact_group_members m JOIN contact_groups g ON g.id = m.group_id
                            WHERE m.contact_id = c.id), '[]')::jsonb AS "groups!",
                  c.created_at, c.updated_at
           FROM contacts c WHERE c.id = $1 AND c.workspace_id = $2"#,
        id as ContactId,
        workspace as WorkspaceId
    )
    .fetch_optional(pool)
    .await?;
    Ok(row.map(Contact::from))
}

/// Checks that every group belongs to the workspace.
async fn check_groups(
    conn: &mut PgConnection,
    workspace: WorkspaceId,
    groups: &[GroupId],
) -> Result<(), ContactError> {
    if groups.is_empty() {
        return Ok(());
    }
    let ids: Vec<Uuid> = groups.iter().map(|g| g.0).collect();
    let owned = sqlx::query_scalar!(
        r#"SELECT count(*) AS "n!" FROM contact_groups WHERE workspace_id = $1 AND id = ANY($2)"#,
        workspace as WorkspaceId,
        &ids
    )
    .fetch_one(&mut *conn)
    .await?;
    if owned != ids.len() as i64 {
        return Err(ContactError::GroupNotFound);
    }
    Ok(())
}

/// The constraints behind "this number is already a contact" and "this group name is taken".
const UNIQUE_NUMBER: &str = "contacts_workspace_id_phone_number_key";
const UNIQUE_GROUP_NAME: &str = "contact_groups_workspace_name";

async fn set_groups(
    conn: &mut PgConnection,
    workspace: WorkspaceId,
    contact: ContactId,
    groups: &[GroupId],
) -> sqlx::Result<()> {
    let ids: Vec<Uuid> = groups.iter().map(|g| g.0).collect();
    sqlx::query!(
        "DELETE FROM contact_group_members WHERE contact_id = $1 AND NOT (group_id = ANY($2))",
        contact as ContactId,
        &ids
    )
    .execute(&mut *conn)
    .await?;
    sqlx::query!(
        "INSERT INTO contact_group_members (workspace_id, group_id, contact_id)
         SELECT $1, g, $2 FROM unnest($3::uuid[]) AS g
         ON CONFLICT DO NOTHING",
        workspace as WorkspaceId,
        contact as ContactId,
        &ids
    )
    .execute(&mut *conn)
    .await?;
    Ok(())
}

async fn contact_count(conn: &mut PgConnection, workspace: WorkspaceId) -> sqlx::Result<i64> {
    sqlx::query_scalar!(
        r#"SELECT count(*) AS "n!" FROM contacts WHERE workspace_id = $1"#,
        workspace as WorkspaceId
    )
    .fetch_one(conn)
    .await
}

async fn group_count(conn: &mut PgConnection, workspace: WorkspaceId) -> sqlx::Result<i64> {
    sqlx::query_scalar!(
        r#"SELECT count(*) AS "n!" FROM contact_groups WHERE workspace_id = $1"#,
        workspace as WorkspaceId
    )
    .fetch_one(conn)
    .await
}

/// Creates a contact; the workspace may keep at most `max_contacts` (counted under a lock on the
/// workspace, so two creations at once cannot both pass the limit).
pub async fn create(
    pool: &PgPool,
    workspace: WorkspaceId,
    input: &ContactInput,
    max_contacts: i64,
) -> Result<Contact, ContactError> {
    let mut tx = pool.begin().await?;
    crate::workspace::repo::lock(&mut tx, workspace).await?;
    check_groups(&mut tx, workspace, &input.groups).await?;
    let id = ContactId(Uuid::now_v7());
    let inserted = sqlx::query!(
        "INSERT INTO contacts (id, workspace_id, name, phone_number, notes) VALUES ($1, $2, $3, $4, $5)",
        id as ContactId,
        workspace as WorkspaceId,
        input.name,
        input.phone_number,
        input.notes
    )
    .execute(&mut *tx)
    .await;
    match inserted {
        Err(e) if is_unique_violation(&e, UNIQUE_NUMBER) => {
            return Err(ContactError::DuplicateNumber(input.phone_number.clone()));
        }
        other => other?,
    };
    // Counted after the insert so a known number says so first; dropping `tx` rolls back.
    if contact_count(&mut tx, workspace).await? > max_contacts {
        return Err(ContactError::TooManyContacts(max_contacts));
    }
    set_groups(&mut tx, workspace, id, &input.groups).await?;
    tx.commit().await?;
    find(pool, workspace, id).await?.ok_or(ContactError::NotFound)
}

pub async fn update(
    pool: &PgPool,
    workspace: WorkspaceId,
    id: ContactId,
    input: &ContactInput,
) -> Result<Contact, ContactError> {
    let mut tx = pool.begin().await?;
    check_groups(&mut tx, workspace, &input.groups).await?;
    let updated = sqlx::query!(
        "UPDATE contacts SET name = $3, phone_number = $4, notes = $5, updated_at = now()
         WHERE id = $1 AND workspace_id = $2",
        id as ContactId,
        workspace as WorkspaceId,
        input.name,
        input.phone_number,
        input.notes
    )
    .execute(&mut *tx)
    .await;
    match updated {
        Err(e) if is_unique_violation(&e, UNIQUE_NUMBER) => {
            return Err(ContactError::DuplicateNumber(input.phone_number.clone()));
        }
        Ok(done) if done.rows_affected() == 0 => return Err(ContactError::NotFound),
        other => other?,
    };
    set_groups(&mut tx, workspace, id, &input.groups).await?;
    tx.commit().await?;
    find(pool, workspace, id).await?.ok_or(ContactError::NotFound)
}

/// Deletes the workspace's contacts among `ids`; returns how many went.
pub async fn delete(pool: &PgPool, workspace: WorkspaceId, ids: &[ContactId]) -> sqlx::Result<u64> {
    let ids: Vec<Uuid> = ids.iter().map(|c| c.0).collect();
    let done = sqlx::query!(
        "DELETE FROM contacts WHERE workspace_id = $1 AND id = ANY($2)",
        workspace as WorkspaceId,
        &ids
    )
    .execute(pool)
    .await?;
    Ok(done.rows_affected())
}

/// Adds the workspace's contacts among `ids` to the group; returns how many were added.
pub async fn add_to_group(
    pool: &PgPool,
    workspace: WorkspaceId,
    group: GroupId,
    ids: &[ContactId],
) -> Result<u64, ContactError> {
    let mut tx = pool.begin().await?;
    check_groups(&mut tx, workspace, &[group]).await?;
    let ids: Vec<Uuid> = ids.iter().map(|c| c.0).collect();
    let done = sqlx::query!(
        "INSERT INTO contact_group_members (workspace_id, group_id, contact_id)
         SELECT $1, $2, c.id FROM contacts c WHERE c.workspace_id = $1 AND c.id = ANY($3)
         ON CONFLICT DO NOTHING",
        workspace as WorkspaceId,
        group as GroupId,
        &ids
    )
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(done.rows_affected())
}

/// Removes contacts from the workspace's group; returns how many were removed.
pub async fn remove_from_group(
    pool: &PgPool,
    workspace: WorkspaceId,
    group: GroupId,
    ids: &[ContactId],
) -> Result<u64, ContactError> {
    let mut tx = pool.begin().await?;
    check_groups(&mut tx, workspace, &[group]).await?;
    let ids: Vec<Uuid> = ids.iter().map(|c| c.0).collect();
    let done = sqlx::query!(
        "DELETE FROM contact_group_members WHERE group_id = $1 AND contact_id = ANY($2)",
        group as GroupId,
        &ids
    )
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(done.rows_affected())
}

/// One page of the workspace's groups by name, with member counts, and how many there are.
pub async fn list_groups(
    pool: &PgPool,
    workspace: WorkspaceId,
    offset: i64,
    limit: i64,
) -> sqlx::Result<(Vec<Group>, i64)> {
    let total = sqlx::query_scalar!(
        r#"SELECT count(*) AS "n!" FROM contact_groups WHERE workspace_id = $1"#,
        workspace as WorkspaceId
    )
    .fetch_one(pool)
    .await?;
    let groups = sqlx::query_as!(
        Group,
        r#"SELECT g.id AS "id: GroupId", g.workspace_id AS "workspace_id: WorkspaceId", g.name,
                  (SELECT count(*) FROM contact_group_members m WHERE m.group_id = g.id) AS "members!",
                  g.created_at, g.updated_at
           FROM contact_groups g WHERE g.workspace_id = $1
           ORDER BY lower(g.name), g.id OFFSET $2 LIMIT $3"#,
        workspace as WorkspaceId,
        offset,
        limit
    )
    .fetch_all(pool)
    .await?;
    Ok((groups, total))
}

/// Every group of the workspace (for pickers), by name.
pub async fn all_groups(pool: &PgPool, workspace: WorkspaceId) -> sqlx::Result<Vec<Group>> {
    Ok(list_groups(pool, workspace, 0, 10_000).await?.0)
}

pub async fn find_group(pool: &PgPool, workspace: WorkspaceId, id: GroupId) -> sqlx::Result<Option<Group>> {
    sqlx::query_as!(
        Group,
        r#"SELECT g.id AS "id: GroupId", g.workspace_id AS "workspace_id: WorkspaceId", g.name,
                  (SELECT count(*) FROM contact_group_members m WHERE m.group_id = g.id) AS "members!",
                  g.created_at, g.updated_at
           FROM contact_groups g WHERE g.id = $1 AND g.workspace_id = $2"#,
        id as GroupId,
        workspace as WorkspaceId
    )
    .fetch_optional(pool)
    .await
}

/// Creates a group; the workspace may keep at most `max_groups`.
pub async fn create_group(
    pool: &PgPool,
    workspace: WorkspaceId,
    name: &str,
    max_groups: i64,
) -> Result<Group, ContactError> {
    let name = super::model::parse_group_name(name)?;
    let mut tx = pool.begin().await?;
    crate::workspace::repo::lock(&mut tx, workspace).await?;
    let id = GroupId(Uuid::now_v7());
    let inserted = sqlx::query!(
        "INSERT INTO contact_groups (id, workspace_id, name) VALUES ($1, $2, $3)",
        id as GroupId,
        workspace as WorkspaceId,
        name
    )
    .execute(&mut *tx)
    .await;
    match inserted {
        Err(e) if is_unique_violation(&e, UNIQUE_GROUP_NAME) => {
            return Err(ContactError::DuplicateGroup(name));
        }
        other => other?,
    };
    // Counted after the insert so a taken name says so first; dropping `tx` rolls back.
    if group_count(&mut tx, workspace).await? > max_groups {
        return Err(ContactError::TooManyGroups(max_groups));
    }
    tx.commit().await?;
    find_group(pool, workspace, id)
        .await?
        .ok_or(ContactError::GroupNotFound)
}

pub async fn rename_group(
    pool: &PgPool,
    workspace: WorkspaceId,
    id: GroupId,
    name: &str,
) -> Result<Group, ContactError> {
    let name = super::model::parse_group_name(name)?;
    let updated = sqlx::query!(
        "UPDATE contact_groups SET name = $3, updated_at = now() WHERE id = $1 AND workspace_id = $2",
        id as GroupId,
        workspace as WorkspaceId,
        name
    )
    .execute(pool)
    .await;
    match updated {
        Err(e) if is_unique_violation(&e, UNIQUE_GROUP_NAME) => {
            return Err(ContactError::DuplicateGroup(name));
        }
        Ok(done) if done.rows_affected() == 0 => return Err(ContactError::GroupNotFound),
        other => other?,
    };
    find_group(pool, workspace, id)
        .await?
        .ok_or(ContactError::GroupNotFound)
}

/// Deletes the group (its contacts stay); false if the workspace has no such group.
pub async fn delete_group(pool: &PgPool, workspace: WorkspaceId, id: GroupId) -> sqlx::Result<bool> {
    let done = sqlx::query!(
        "DELETE FROM contact_groups WHERE id = $1 AND workspace_id = $2",
        id as GroupId,
        workspace as WorkspaceId
    )
    .execute(pool)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// The numbers of the workspace's contacts in any of `groups`, in name order, each once.
/// Groups that are not the workspace's add nothing.
pub async fn numbers_in_groups(
    conn: &mut PgConnection,
    workspace: WorkspaceId,
    groups: &[GroupId],
) -> sqlx::Result<Vec<String>> {
    if groups.is_empty() {
        return Ok(Vec::new());
    }
    let ids: Vec<Uuid> = groups.iter().map(|g| g.0).collect();
    sqlx::query_scalar!(
        "SELECT c.phone_number FROM contacts c
         WHERE c.workspace_id = $1
           AND EXISTS (SELECT 1 FROM contact_group_members m JOIN contact_groups g ON g.id = m.group_id
                       WHERE m.contact_id = c.id AND g.workspace_id = $1 AND m.group_id = ANY($2))
         ORDER BY lower(c.name), c.phone_number",
        workspace as WorkspaceId,
        &ids
    )
    .fetch_all(conn)
    .await
}

/// The names of the workspace's contacts with these numbers (for `{{name}}`).
pub async fn names_by_number(
    conn: &mut PgConnection,
    workspace: WorkspaceId,
    numbers: &[String],
) -> sqlx::Result<HashMap<String, String>> {
    let rows = sqlx::query!(
        "SELECT phone_number, name FROM contacts WHERE workspace_id = $1 AND phone_number = ANY($2)",
        workspace as WorkspaceId,
        numbers
    )
    .fetch_all(conn)
    .await?;
    Ok(rows.into_iter().map(|r| (r.phone_number, r.name)).collect())
}

/// How an import treats a number that is already a contact.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnDuplicate {
    /// Overwrite the name and notes (when the row has them) and add the row's groups.
    Update,
    /// Leave the existing contact as it is.
    Skip,
}

impl OnDuplicate {
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "update" => Some(Self::Update),
            "skip" => Some(Self::Skip),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Update => "update",
            Self::Skip => "skip",
        }
    }
}

/// What one chunk of an import did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct UpsertCounts {
    pub created: i32,
    pub updated: i32,
    pub skipped: i32,
    /// New numbers not written because the workspace holds `ENDER_MAX_CONTACTS` contacts.
    pub refused: i32,
    /// The limit that refused new contacts or groups, if one did.
    pub limit_hit: Option<LimitHit>,
}

/// A per-workspace limit an import ran into.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum LimitHit {
    #[error("This workspace can keep at most {0} contacts (ENDER_MAX_CONTACTS).")]
    Contacts(i64),
    #[error("This workspace can keep at most {0} groups (ENDER_MAX_GROUPS).")]
    Groups(i64),
}

/// Writes drafts as contacts in one go: new numbers are created, known ones updated or
/// skipped, groups named in the rows are created when missing, and every written contact
/// joins `into` (the group the import targets) and its row's groups. Rows repeating a
/// number within the chunk count once (the last wins). New contacts and groups beyond the
/// workspace's limits are not written ([`UpsertCounts::limit_hit`] says which); the workspace row is
/// locked so concurrent writers count the same.
pub async fn upsert_drafts(
    conn: &mut PgConnection,
    workspace: WorkspaceId,
    drafts: &[ContactDraft],
    on_duplicate: OnDuplicate,
    into: Option<GroupId>,
    limits: &TenantLimits,
) -> sqlx::Result<UpsertCounts> {
    crate::workspace::repo::lock(&mut *conn, workspace).await?;
    // Last row wins for a number repeated in the chunk; earlier ones count as skipped.
    let mut by_number: HashMap<&str, usize> = HashMap::new();
    for (i, d) in drafts.iter().enumerate() {
        by_number.insert(d.phone.as_str(), i);
    }
    let repeated = i32::try_from(drafts.len() - by_number.len()).unwrap_or(0);
    let mut chosen: Vec<&ContactDraft> = by_number.values().map(|&i| &drafts[i]).collect();
    chosen.sort_by(|a, b| a.phone.cmp(&b.phone));
    // Known numbers are always written; new ones while they fit under the limit.
    let wanted: Vec<String> = chosen.iter().map(|d| d.phone.clone()).collect();
    let known: HashSet<String> = sqlx::query_scalar!(
        "SELECT phone_number FROM contacts WHERE workspace_id = $1 AND phone_number = ANY($2)",
        workspace as WorkspaceId,
        &wanted
    )
    .fetch_all(&mut *conn)
    .await?
    .into_iter()
    .collect();
    let room =
        usize::try_from(limits.max_contacts - contact_count(&mut *conn, workspace).await?).unwrap_or(0);
    let mut fresh = 0usize;
    chosen.retain(|d| {
        known.contains(&d.phone) || {
            fresh += 1;
            fresh <= room
        }
    });
    let refused = fresh.saturating_sub(room);
    let mut limit_hit = (refused > 0).then_some(LimitHit::Contacts(limits.max_contacts));
    let ids: Vec<Uuid> = chosen.iter().map(|_| Uuid::now_v7()).collect();
    let names: Vec<String> = chosen.iter().map(|d| d.name.clone()).collect();
    let phones: Vec<String> = chosen.iter().map(|d| d.phone.clone()).collect();
    let notes: Vec<String> = chosen.iter().map(|d| d.notes.clone()).collect();
    let update = on_duplicate == OnDuplicate::Update;
    // xmax = 0 tells an inserted row from an updated one.
    let written = sqlx::query!(
        r#"INSERT INTO contacts (id, workspace_id, name, phone_number, notes)
           SELECT id, $1, name, phone, notes FROM unnest($2::uuid[], $3::text[], $4::text[], $5::text[])
                AS t(id, name, phone, notes)
           ON CONFLICT (workspace_id, phone_number) DO UPDATE
               SET name = CASE WHEN excluded.name <> '' THEN excluded.name ELSE contacts.name END,
                   notes = CASE WHEN excluded.notes <> '' THEN excluded.notes ELSE contacts.notes END,
                   updated_at = now()
               WHERE $6
           RETURNING id, phone_number, (xmax = 0) AS "inserted!""#,
        workspace as WorkspaceId,
        &ids,
        &names,
        &phones,
        &notes,
        update
    )
    .fetch_all(&mut *conn)
    .await?;
    let created = written.iter().filter(|r| r.inserted).count();
    let counts = UpsertCounts {
        created: i32::try_from(created).unwrap_or(i32::MAX),
        updated: i32::try_from(written.len() - created).unwrap_or(i32::MAX),
        skipped: i32::try_from(chosen.len() - written.len()).unwrap_or(i32::MAX) + repeated,
        refused: i32::try_from(refused).unwrap_or(i32::MAX),
        limit_hit: None,
    };
    // Groups: the import's target group and the groups named in the rows.
    let id_by_phone: HashMap<&str, Uuid> = written.iter().map(|r| (r.phone_number.as_str(), r.id)).collect();
    let mut names_wanted: Vec<String> = chosen.iter().flat_map(|d| d.groups.iter().cloned()).collect();
    names_wanted.sort_by_key(|n| n.to_lowercase());
    names_wanted.dedup_by_key(|n| n.to_lowercase());
    let mut group_ids: HashMap<String, Uuid> = HashMap::new();
    if !names_wanted.is_empty() {
        // Groups that exist are joined; new ones are created while they fit under the limit.
        let lowered: Vec<String> = names_wanted.iter().map(|n| n.to_lowercase()).collect();
        let existing: HashSet<String> = sqlx::query_scalar!(
            r#"SELECT lower(name) AS "name!" FROM contact_groups WHERE workspace_id = $1 AND lower(name) = ANY($2)"#,
            workspace as WorkspaceId,
            &lowered
        )
        .fetch_all(&mut *conn)
        .await?
        .into_iter()
        .collect();
        let room =
            usize::try_from(limits.max_groups - group_count(&mut *conn, workspace).await?).unwrap_or(0);
        let mut fresh = 0usize;
        names_wanted.retain(|n| {
            existing.contains(&n.to_lowercase()) || {
                fresh += 1;
                fresh <= room
            }
        });
        if fresh > room {
            limit_hit = limit_hit.or(Some(LimitHit::Groups(limits.max_groups)));
        }
        let new_ids: Vec<Uuid> = names_wanted.iter().map(|_| Uuid::now_v7()).collect();
        sqlx::query!(
            "INSERT INTO contact_groups (id, workspace_id, name)
             SELECT id, $1, name FROM unnest($2::uuid[], $3::text[]) AS t(id, name)
             ON CONFLICT (workspace_id, lower(name)) DO NOTHING",
            workspace as WorkspaceId,
            &new_ids,
            &names_wanted
        )
        .execute(&mut *conn)
        .await?;
        let lowered: Vec<String> = names_wanted.iter().map(|n| n.to_lowercase()).collect();
        let rows = sqlx::query!(
            "SELECT id, lower(name) AS \"name!\" FROM contact_groups WHERE workspace_id = $1 AND lower(name) = ANY($2)",
            workspace as WorkspaceId,
            &lowered
        )
        .fetch_all(&mut *conn)
        .await?;
        group_ids = rows.into_iter().map(|r| (r.name, r.id)).collect();
    }
    let (mut member_groups, mut member_contacts) = (Vec::new(), Vec::new());
    for d in &chosen {
        let Some(&contact) = id_by_phone.get(d.phone.as_str()) else {
            continue;
        };
        if let Some(g) = into {
            member_groups.push(g.0);
            member_contacts.push(contact);
        }
        for name in &d.groups {
            if let Some(&g) = group_ids.get(&name.to_lowercase()) {
                member_groups.push(g);
                member_contacts.push(contact);
            }
        }
    }
    if !member_groups.is_empty() {
        sqlx::query!(
            "INSERT INTO contact_group_members (workspace_id, group_id, contact_id)
             SELECT $1, g, c FROM unnest($2::uuid[], $3::uuid[]) AS t(g, c) ON CONFLICT DO NOTHING",
            workspace as WorkspaceId,
            &member_groups,
            &member_contacts
        )
        .execute(&mut *conn)
        .await?;
    }
    Ok(UpsertCounts { limit_hit, ..counts })
}

/// Every contact of the workspace, or of one group, for export, by name.
pub async fn export(
    pool: &PgPool,
    workspace: WorkspaceId,
    group: Option<GroupId>,
) -> sqlx::Result<Vec<super::export::ExportContact>> {
    let rows = sqlx::query!(
        r#"SELECT c.name, c.phone_number, c.notes,
                  coalesce((SELECT array_agg(g.name ORDER BY lower(g.name))
                            FROM contact_group_members m JOIN contact_groups g ON g.id = m.group_id
                            WHERE m.contact_id = c.id), '{}') AS "groups!"
           FROM contacts c
           WHERE c.workspace_id = $1
             AND ($2::uuid IS NULL OR EXISTS (SELECT 1 FROM contact_group_members m
                                              WHERE m.contact_id = c.id AND m.group_id = $2))
           ORDER BY lower(c.name), c.phone_number"#,
        workspace as WorkspaceId,
        group.map(|g| g.0)
    )
    .fetch_all(pool)
    .await?;
    Ok(rows
        .into_iter()
        .map(|r| super::export::ExportContact {
            name: r.name,
            phone: r.phone_number,
            notes: r.notes,
            groups: r.groups,
        })
        .collect())
}
