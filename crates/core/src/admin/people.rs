//! People: finding them (search and filters over a keyset-paged list that stays fast at
//! 100,000 accounts and more), what one person has, and what an administrator may do to
//! them. Each action writes the admin audit log in its own transaction.
//!
//! The rules: there is always an administrator who is not suspended (promotions and
//! demotions lock every administrator's row, so two concurrent demotions cannot both pass);
//! nobody suspends, demotes-as-last or deletes themselves here; mailing another
//! administrator a password link, or deleting them, needs a second confirmation.

use chrono::{DateTime, NaiveDate, Utc};
use serde_json::json;
use sqlx::{PgConnection, PgPool};

use super::audit::{self, Target, kind};
use super::{Admin, AdminError};
use crate::account::{self, TokenPurpose, UserId};
use crate::workspace::WorkspaceId;

/// What the list is narrowed to.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Filter {
    /// Part of an address or a name (case-insensitive).
    pub q: String,
    pub admins: bool,
    pub unverified: bool,
    pub suspended: bool,
    pub since: Option<NaiveDate>,
}

/// One row of the list.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Person {
    pub id: UserId,
    pub email: String,
    pub full_name: String,
    pub is_admin: bool,
    pub verified: bool,
    pub suspended: bool,
    pub created_at: DateTime<Utc>,
    pub last_sign_in_at: Option<DateTime<Utc>>,
}

/// Where a page of the list starts: after this account in (created_at, id) order, newest
/// first. Written in links as `<microseconds>_<uuid>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cursor {
    pub created_at: DateTime<Utc>,
    pub id: UserId,
}

impl Cursor {
    pub fn encode(&self) -> String {
        format!("{}_{}", self.created_at.timestamp_micros(), self.id)
    }

    pub fn decode(raw: &str) -> Option<Self> {
        let (t, id) = raw.split_once('_')?;
        Some(Self {
            created_at: DateTime::from_timestamp_micros(t.parse().ok()?)?,
            id: UserId(id.parse().ok()?),
        })
    }
}

/// Escapes `%`, `_` and `\` for a `LIKE` pattern.
fn like_escaped(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if matches!(c, '%' | '_' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// A page of people matching `filter`, newest first, after `after`; and the cursor of the
/// next page when there is one.
pub async fn list(
    pool: &PgPool,
    filter: &Filter,
    after: Option<Cursor>,
    limit: i64,
) -> sqlx::Result<(Vec<Person>, Option<Cursor>)> {
    let (after_t, after_id) = match after {
        Some(c) => (c.created_at, c.id.0),
        None => (DateTime::<Utc>::MAX_UTC, uuid::Uuid::max()),
    };
    let since = filter
        .since
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .map(|d| d.and_utc());
    let q = filter.q.trim().to_lowercase();
    // Two statements rather than one with `$1 = '' OR …`: each keeps a plan that uses its
    // index (the (created_at, id) index alone; the trigram index, or the date order, with
    // a search).
    let mut rows = if q.is_empty() {
        sqlx::query_as!(
            Person,
            r#"SELECT id AS "id: UserId", email, full_name, is_admin, email_verified_at IS NOT NULL AS "verified!",
                      suspended_at IS NOT NULL AS "suspended!", created_at, last_sign_in_at
               FROM users
               WHERE (created_at, id) < ($1, $2)
                 AND (NOT $3 OR is_admin) AND (NOT $4 OR email_verified_at IS NULL)
                 AND (NOT $5 OR suspended_at IS NOT NULL) AND created_at >= coalesce($6::timestamptz, '-infinity'::timestamptz)
               ORDER BY created_at DESC, id DESC LIMIT $7"#,
            after_t,
            after_id,
            filter.admins,
            filter.unverified,
            filter.suspended,
            since,
            limit + 1
        )
        .fetch_all(pool)
        .await?
    } else {
        // A search's best plan depends on the term (a rare one: the trigram index; one that
        // most rows match: the date order), so it is planned for each term rather than
        // with the prepared statement's generic plan.
        let mut tx = pool.begin().await?;
        sqlx::query("SET LOCAL plan_cache_mode = force_custom_plan")
            .execute(&mut *tx)
            .await?;
        let rows = sqlx::query_as!(
            Person,
            r#"SELECT id AS "id: UserId", email, full_name, is_admin, email_verified_at IS NOT NULL AS "verified!",
                      suspended_at IS NOT NULL AS "suspended!", created_at, last_sign_in_at
               FROM users
               WHERE (email_normalized || ' ' || lower(full_name)) LIKE '%' || $8 || '%'
                 AND (created_at, id) < ($1, $2)
                 AND (NOT $3 OR is_admin) AND (NOT $4 OR email_verified_at IS NULL)
                 AND (NOT $5 OR suspended_at IS NOT NULL) AND created_at >= coalesce($6::timestamptz, '-infinity'::timestamptz)
               ORDER BY created_at DESC, id DESC LIMIT $7"#,
            after_t,
            after_id,
            filter.admins,
            filter.unverified,
            filter.suspended,
            since,
            limit + 1,
            like_escaped(&q)
        )
        .fetch_all(&mut *tx)
        .await?;
        tx.commit().await?;
        rows
    };
    let next = if rows.len() as i64 > limit {
        rows.truncate(usize::try_from(limit).unwrap_or(0));
        rows.last().map(|p| Cursor {
            created_at: p.created_at,
            id: p.id,
        })
    } else {
        None
    };
    Ok((rows, next))
}

/// A workspace a person belongs to, with their role.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Membership {
    pub workspace_id: WorkspaceId,
    pub name: String,
    pub role: String,
    pub personal: bool,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct Detail {
    pub person: Person,
    pub has_password: bool,
    pub suspended_at: Option<DateTime<Utc>>,
    pub workspaces: Vec<Membership>,
    /// Sessions open now.
    pub sessions: i64,
    /// Linked sign-in providers and when each was linked.
    pub oauth: Vec<(String, DateTime<Utc>)>,
}

pub async fn detail(pool: &PgPool, id: UserId) -> Result<Detail, AdminError> {
    let mut conn = pool.acquire().await?;
    let row = sqlx::query!(
        r#"SELECT id AS "id: UserId", email, full_name, is_admin, email_verified_at IS NOT NULL AS "verified!",
                  suspended_at, created_at, last_sign_in_at, password_hash IS NOT NULL AS "has_password!"
           FROM users WHERE id = $1"#,
        id as UserId
    )
    .fetch_optional(&mut *conn)
    .await?
    .ok_or(AdminError::NotFound)?;
    let workspaces = sqlx::query_as!(
        Membership,
        r#"SELECT w.id AS "workspace_id: WorkspaceId", w.name, m.role, w.personal_user_id IS NOT NULL AS "personal!"
           FROM workspace_members m JOIN workspaces w ON w.id = m.workspace_id
           WHERE m.user_id = $1 AND w.deleted_at IS NULL
           ORDER BY w.personal_user_id IS NULL, lower(w.name)"#,
        id as UserId
    )
    .fetch_all(&mut *conn)
    .await?;
    let sessions = crate::session::repo::count_for_user(&mut conn, id).await?;
    let oauth = sqlx::query!(
        "SELECT provider, created_at FROM oauth_identities WHERE user_id = $1 ORDER BY provider",
        id as UserId
    )
    .fetch_all(&mut *conn)
    .await?
    .into_iter()
    .map(|r| (r.provider, r.created_at))
    .collect();
    Ok(Detail {
        person: Person {
            id: row.id,
            email: row.email,
            full_name: row.full_name,
            is_admin: row.is_admin,
            verified: row.verified,
            suspended: row.suspended_at.is_some(),
            created_at: row.created_at,
            last_sign_in_at: row.last_sign_in_at,
        },
        has_password: row.has_password,
        suspended_at: row.suspended_at,
        workspaces,
        sessions,
        oauth,
    })
}

/// The account with this address, for the CLI.
pub async fn by_email(pool: &PgPool, email: &str) -> Result<UserId, AdminError> {
    let found = account::repo::find_by_email(&mut *pool.acquire().await?, email).await?;
    found.map(|(u, _)| u.id).ok_or(AdminError::NotFound)
}

struct Locked {
    email: String,
    is_admin: bool,
    suspended: bool,
    verified: bool,
}

async fn lock(conn: &mut PgConnection, id: UserId) -> Result<Locked, AdminError> {
    sqlx::query_as!(
        Locked,
        r#"SELECT email, is_admin, suspended_at IS NOT NULL AS "suspended!", email_verified_at IS NOT NULL AS "verified!"
           FROM users WHERE id = $1 FOR UPDATE"#,
        id as UserId
    )
    .fetch_optional(conn)
    .await?
    .ok_or(AdminError::NotFound)
}

/// Locks every administrator's row (in id order, so concurrent callers queue) and counts
/// those who are not suspended, leaving out `except`.
async fn other_active_admins(conn: &mut PgConnection, except: UserId) -> sqlx::Result<i64> {
    let rows = sqlx::query!(
        r#"SELECT id AS "id: UserId", suspended_at IS NULL AS "active!" FROM users WHERE is_admin ORDER BY id FOR UPDATE"#
    )
    .fetch_all(conn)
    .await?;
    Ok(rows.iter().filter(|r| r.active && r.id != except).count() as i64)
}

fn target(id: UserId, email: &str) -> Target {
    Target::new("user", id, email)
}

/// Suspends or restores an account. A suspended person cannot sign in (by password or a
/// provider) and every session of theirs ends now. Nobody suspends themselves, nor the
/// last administrator who is not suspended.
pub async fn set_suspended(
    pool: &PgPool,
    admin: &Admin,
    id: UserId,
    suspended: bool,
) -> Result<(), AdminError> {
    if suspended && admin.is(id) {
        return Err(AdminError::Refused("You cannot suspend yourself.".into()));
    }
    let mut tx = pool.begin().await?;
    // A suspension locks the administrators first, in the same order as promotions and
    // demotions; lifting one cannot take the last administrator away.
    let others = if suspended {
        Some(other_active_admins(&mut tx, id).await?)
    } else {
        None
    };
    let who = lock(&mut tx, id).await?;
    if who.is_admin && others == Some(0) {
        return Err(AdminError::Refused(
            "This is the last administrator who can sign in: make someone else an administrator first."
                .into(),
        ));
    }
    if who.suspended == suspended {
        tx.commit().await?;
        return Ok(());
    }
    sqlx::query!(
        "UPDATE users SET suspended_at = CASE WHEN $2 THEN now() END, updated_at = now() WHERE id = $1",
        id as UserId,
        suspended
    )
    .execute(&mut *tx)
    .await?;
    let mut ended = 0;
    if suspended {
        ended = crate::session::repo::delete_for_user(&mut tx, id, None).await?;
    }
    audit::record(
        &mut *tx,
        admin,
        if suspended {
            kind::USER_SUSPENDED
        } else {
            kind::USER_UNSUSPENDED
        },
        &target(id, &who.email),
        json!({ "suspended": !suspended }),
        json!({ "suspended": suspended, "sessions_ended": ended }),
    )
    .await?;
    tx.commit().await?;
    tracing::info!(user.id = %id, suspended, "account suspension changed by an administrator");
    Ok(())
}

/// Makes an account an administrator or takes it back. Never leaves the server without an
/// administrator who can sign in.
pub async fn set_admin(pool: &PgPool, admin: &Admin, id: UserId, make_admin: bool) -> Result<(), AdminError> {
    let mut tx = pool.begin().await?;
    let others = other_active_admins(&mut tx, id).await?;
    let who = lock(&mut tx, id).await?;
    if who.is_admin == make_admin {
        tx.commit().await?;
        return Ok(());
    }
    if !make_admin && others == 0 {
        return Err(AdminError::Refused(
            "This is the last administrator: make someone else an administrator first.".into(),
        ));
    }
    sqlx::query!(
        "UPDATE users SET is_admin = $2, updated_at = now() WHERE id = $1",
        id as UserId,
        make_admin
    )
    .execute(&mut *tx)
    .await?;
    audit::record(
        &mut *tx,
        admin,
        if make_admin {
            kind::USER_PROMOTED
        } else {
            kind::USER_DEMOTED
        },
        &target(id, &who.email),
        json!({ "is_admin": who.is_admin }),
        json!({ "is_admin": make_admin }),
    )
    .await?;
    tx.commit().await?;
    Ok(())
}

/// Marks the address as confirmed without the mailed link.
pub async fn mark_verified(pool: &PgPool, admin: &Admin, id: UserId) -> Result<(), AdminError> {
    let mut tx = pool.begin().await?;
    let who = lock(&mut tx, id).await?;
    if who.verified {
        tx.commit().await?;
        return Ok(());
    }
    account::repo::mark_verified(&mut tx, id).await?;
    account::repo::retire_tokens(&mut tx, id, TokenPurpose::VerifyEmail).await?;
    audit::record(
        &mut *tx,
        admin,
        kind::USER_VERIFIED,
        &target(id, &who.email),
        json!({ "verified": false }),
        json!({ "verified": true }),
    )
    .await?;
    tx.commit().await?;
    Ok(())
}

/// A mailed link for the person: its token and the address to mail it to.
#[derive(Debug)]
pub struct Link {
    pub email: String,
    pub token: String,
}

/// A fresh verification link for an unconfirmed address (earlier ones stop working).
pub async fn verification_link(pool: &PgPool, admin: &Admin, id: UserId) -> Result<Link, AdminError> {
    let mut tx = pool.begin().await?;
    let who = lock(&mut tx, id).await?;
    if who.verified {
        return Err(AdminError::Refused("This address is already confirmed.".into()));
    }
    issue_link(tx, admin, id, who.email, TokenPurpose::VerifyEmail).await
}

/// Retires the person's earlier links of `purpose`, issues a fresh one, writes the audit
/// entry and commits.
async fn issue_link(
    mut tx: sqlx::Transaction<'_, sqlx::Postgres>,
    admin: &Admin,
    id: UserId,
    email: String,
    purpose: TokenPurpose,
) -> Result<Link, AdminError> {
    let (ttl, what) = match purpose {
        TokenPurpose::VerifyEmail => (account::VERIFY_TTL, kind::USER_VERIFICATION_SENT),
        TokenPurpose::ResetPassword => (account::RESET_TTL, kind::USER_PASSWORD_RESET_SENT),
    };
    account::repo::retire_tokens(&mut tx, id, purpose).await?;
    let token = account::issue_token(&mut tx, id, purpose, ttl).await?;
    audit::record(&mut *tx, admin, what, &target(id, &email), json!({}), json!({})).await?;
    tx.commit().await?;
    Ok(Link { email, token })
}

/// A password reset link for the person (the administrator never sees or sets a
/// password). For another administrator, only with `confirmed`.
pub async fn password_reset_link(
    pool: &PgPool,
    admin: &Admin,
    id: UserId,
    confirmed: bool,
) -> Result<Link, AdminError> {
    let mut tx = pool.begin().await?;
    let who = lock(&mut tx, id).await?;
    if who.is_admin && !admin.is(id) && !confirmed {
        return Err(AdminError::NeedsConfirmation(format!(
            "{} is an administrator. Confirm that you mean to mail them a password reset link.",
            who.email
        )));
    }
    issue_link(tx, admin, id, who.email, TokenPurpose::ResetPassword).await
}

/// Ends every session of the person (they sign in again on their next click).
pub async fn sign_out_everywhere(pool: &PgPool, admin: &Admin, id: UserId) -> Result<u64, AdminError> {
    let mut tx = pool.begin().await?;
    let who = lock(&mut tx, id).await?;
    let ended = crate::session::repo::delete_for_user(&mut tx, id, None).await?;
    audit::record(
        &mut *tx,
        admin,
        kind::USER_SIGNED_OUT,
        &target(id, &who.email),
        json!({}),
        json!({ "sessions_ended": ended }),
    )
    .await?;
    tx.commit().await?;
    Ok(ended)
}

/// What deleting an account removes, for the confirmation.
pub const DELETE_REMOVES: &str = "Their sign-in, sessions and provider links; their personal workspace with its devices, API keys, messages, contacts, templates, schedules and webhooks; and shared workspaces they are the only member of. Shared workspaces with other members stay; the account must not be the only owner of one.";

/// Deletes the account and what it owns (see [`DELETE_REMOVES`]). Not oneself (that is on
/// the account's own settings page), not the last administrator, and another
/// administrator only with `confirmed`.
pub async fn delete(pool: &PgPool, admin: &Admin, id: UserId, confirmed: bool) -> Result<(), AdminError> {
    if admin.is(id) {
        return Err(AdminError::Refused(
            "You cannot delete your own account here: use your account settings.".into(),
        ));
    }
    let mut tx = pool.begin().await?;
    let others = other_active_admins(&mut tx, id).await?;
    let who = lock(&mut tx, id).await?;
    if who.is_admin {
        if others == 0 {
            return Err(AdminError::Refused("This is the last administrator.".into()));
        }
        if !confirmed {
            return Err(AdminError::NeedsConfirmation(format!(
                "{} is an administrator. Confirm that you mean to delete their account.",
                who.email
            )));
        }
    }
    account::remove_account_in(&mut tx, id, "They are").await?;
    audit::record(
        &mut *tx,
        admin,
        kind::USER_DELETED,
        &target(id, &who.email),
        json!({ "email": who.email, "is_admin": who.is_admin }),
        json!({}),
    )
    .await?;
    tx.commit().await?;
    tracing::info!(user.id = %id, "account deleted by an administrator");
    Ok(())
}
