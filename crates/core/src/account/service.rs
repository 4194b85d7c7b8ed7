//! Account use cases. Each opens its own transaction and calls the repo.

use chrono::{Duration, Utc};
use secrecy::SecretString;
use sqlx::{PgConnection, PgPool};

use super::model::{Email, FullName, Password, TokenPurpose, User, UserId};
use super::repo;
use crate::crypto::{hash_password, random_token, token_digest, verify_password};
use crate::db::is_unique_violation;
use crate::{FieldError, session};

/// How long an email verification link works.
pub const VERIFY_TTL: Duration = Duration::hours(48);
/// How long a password reset link works.
pub const RESET_TTL: Duration = Duration::hours(1);

#[derive(Debug, thiserror::Error)]
pub enum AccountError {
    #[error(transparent)]
    Invalid(#[from] FieldError),
    #[error("An account with this email already exists.")]
    EmailTaken,
    #[error("Incorrect email or password.")]
    InvalidCredentials,
    #[error("Verify your email address before signing in.")]
    EmailNotVerified,
    #[error("The password is incorrect.")]
    WrongPassword,
    #[error(transparent)]
    Token(#[from] TokenError),
    #[error("The sign-in provider did not confirm this email address.")]
    UnverifiedProviderEmail,
    #[error("Sign-up is closed on this server.")]
    SignupClosed,
    #[error("This account is suspended. Contact the server's administrator.")]
    Suspended,
    #[error("Account not found.")]
    NotFound,
    #[error(transparent)]
    Database(#[from] sqlx::Error),
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

/// Why a mailed or printed token was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error("This link is not valid.")]
    Invalid,
    #[error("This link has expired.")]
    Expired,
    #[error("This link has already been used.")]
    Used,
}

/// A unique violation on the email becomes [`AccountError::EmailTaken`].
pub(crate) fn email_taken(e: sqlx::Error) -> AccountError {
    if is_unique_violation(&e, "users_email_normalized_key") {
        AccountError::EmailTaken
    } else {
        e.into()
    }
}

/// A new account and, when verification is required, the token for its verification link.
pub struct SignedUp {
    pub user: User,
    pub verify_token: Option<String>,
}

/// Creates an account with a password. With `require_verification` the account starts
/// unverified and a verification token is issued in the same transaction.
pub async fn sign_up(
    pool: &PgPool,
    email: &Email,
    password: &Password,
    full_name: &FullName,
    require_verification: bool,
) -> Result<SignedUp, AccountError> {
    let hash = hash_password(password.secret()).await?;
    let mut tx = pool.begin().await?;
    let user = repo::insert(
        &mut tx,
        UserId::new(),
        email.as_str(),
        full_name.as_str(),
        Some(&hash),
        !require_verification,
        false,
    )
    .await
    .map_err(email_taken)?;
    let verify_token = if require_verification {
        Some(issue_token(&mut tx, user.id, TokenPurpose::VerifyEmail, VERIFY_TTL).await?)
    } else {
        None
    };
    tx.commit().await?;
    Ok(SignedUp { user, verify_token })
}

/// Checks an email and password. Unknown emails cost the same time as wrong passwords.
pub async fn authenticate(
    pool: &PgPool,
    email: &str,
    password: &str,
    require_verification: bool,
) -> Result<User, AccountError> {
    let found = repo::find_by_email(&mut *pool.acquire().await?, email.trim()).await?;
    let (user, hash) = match found {
        Some((user, hash)) => (Some(user), hash),
        None => (None, None),
    };
    if !verify_password(SecretString::from(password.to_owned()), hash).await {
        return Err(AccountError::InvalidCredentials);
    }
    let user = user.ok_or(AccountError::InvalidCredentials)?;
    if user.suspended_at.is_some() {
        return Err(AccountError::Suspended);
    }
    if require_verification && !user.is_verified() {
        return Err(AccountError::EmailNotVerified);
    }
    Ok(user)
}

/// Records a sign-in's time, for the admin console.
pub async fn note_sign_in(pool: &PgPool, id: UserId) -> sqlx::Result<()> {
    sqlx::query!(
        "UPDATE users SET last_sign_in_at = now() WHERE id = $1",
        id as UserId
    )
    .execute(pool)
    .await?;
    Ok(())
}

pub async fn find(pool: &PgPool, id: UserId) -> Result<Option<User>, AccountError> {
    Ok(repo::find(&mut *pool.acquire().await?, id).await?)
}

/// A fresh verification token for an unverified account with this email, if there is one.
pub async fn resend_verification(pool: &PgPool, email: &str) -> Result<Option<(User, String)>, AccountError> {
    let mut tx = pool.begin().await?;
    let Some((user, _)) = repo::find_by_email(&mut tx, email.trim()).await? else {
        return Ok(None);
    };
    if user.is_verified() {
        return Ok(None);
    }
    repo::retire_tokens(&mut tx, user.id, TokenPurpose::VerifyEmail).await?;
    let token = issue_token(&mut tx, user.id, TokenPurpose::VerifyEmail, VERIFY_TTL).await?;
    tx.commit().await?;
    Ok(Some((user, token)))
}

/// Uses a verification token: the account becomes verified.
pub async fn verify_email(pool: &PgPool, token: &str) -> Result<User, AccountError> {
    let mut tx = pool.begin().await?;
    let user_id = consume_token(&mut tx, token, TokenPurpose::VerifyEmail).await?;
    repo::mark_verified(&mut tx, user_id).await?;
    let user = repo::find(&mut tx, user_id)
        .await?
        .ok_or(AccountError::NotFound)?;
    tx.commit().await?;
    Ok(user)
}

/// A reset token for the account with this email, if there is one. Earlier reset links
/// stop working.
pub async fn request_password_reset(
    pool: &PgPool,
    email: &str,
) -> Result<Option<(User, String)>, AccountError> {
    let mut tx = pool.begin().await?;
    let Some((user, _)) = repo::find_by_email(&mut tx, email.trim()).await? else {
        return Ok(None);
    };
    repo::retire_tokens(&mut tx, user.id, TokenPurpose::ResetPassword).await?;
    let token = issue_token(&mut tx, user.id, TokenPurpose::ResetPassword, RESET_TTL).await?;
    tx.commit().await?;
    Ok(Some((user, token)))
}

/// Whether a reset token would be accepted now (without using it).
pub async fn check_reset_token(pool: &PgPool, token: &str) -> Result<(), AccountError> {
    let mut tx = pool.begin().await?;
    check_token(&mut tx, token, TokenPurpose::ResetPassword).await?;
    tx.rollback().await?;
    Ok(())
}

/// Uses a reset token to set a new password. The email counts as verified (the link
/// proved it) and every session of the account ends.
pub async fn reset_password(pool: &PgPool, token: &str, password: &Password) -> Result<User, AccountError> {
    // The token first: a forged or stale link costs no Argon2 run.
    check_reset_token(pool, token).await?;
    let hash = hash_password(password.secret()).await?;
    let mut tx = pool.begin().await?;
    let user_id = consume_token(&mut tx, token, TokenPurpose::ResetPassword).await?;
    repo::set_password(&mut tx, user_id, &hash).await?;
    repo::mark_verified(&mut tx, user_id).await?;
    session::repo::delete_for_user(&mut tx, user_id, None).await?;
    let user = repo::find(&mut tx, user_id)
        .await?
        .ok_or(AccountError::NotFound)?;
    tx.commit().await?;
    Ok(user)
}

/// Changes the password after checking the current one (accounts created through OAuth
/// have none and may set one directly). Every other session of the account ends.
pub async fn change_password(
    pool: &PgPool,
    user_id: UserId,
    current: &str,
    new: &Password,
    keep_session: Option<&str>,
) -> Result<(), AccountError> {
    confirm_password(pool, user_id, current).await?;
    let hash = hash_password(new.secret()).await?;
    let mut tx = pool.begin().await?;
    repo::set_password(&mut tx, user_id, &hash).await?;
    session::repo::delete_for_user(&mut tx, user_id, keep_session).await?;
    tx.commit().await?;
    Ok(())
}

pub async fn update_profile(
    pool: &PgPool,
    user_id: UserId,
    full_name: &FullName,
) -> Result<(), AccountError> {
    repo::set_full_name(&mut *pool.acquire().await?, user_id, full_name.as_str()).await?;
    Ok(())
}

/// Deletes the account and everything it owns (its personal workspace, and shared
/// workspaces it is the only member of), after checking its password. Refused while it is
/// the only owner of a shared workspace that has other members: a workspace always keeps an
/// owner. Those workspaces are locked first, so an owner demoted meanwhile is refused.
pub async fn delete_account(pool: &PgPool, user_id: UserId, password: &str) -> Result<(), AccountError> {
    confirm_password(pool, user_id, password).await?;
    let mut tx = pool.begin().await?;
    remove_account_in(&mut tx, user_id, "You are").await?;
    tx.commit().await?;
    Ok(())
}

/// Deletes the account and what it owns, as [`delete_account`] does, in the caller's
/// transaction and without a password (for an administrator). `who` starts the refusal
/// ("You are", "They are").
pub(crate) async fn remove_account_in(
    tx: &mut PgConnection,
    user_id: UserId,
    who: &str,
) -> Result<(), AccountError> {
    let owned = sqlx::query!(
        r#"SELECT w.id, w.name,
                  (SELECT count(*) FROM workspace_members o
                   WHERE o.workspace_id = w.id AND o.role = 'owner' AND o.user_id <> $1) AS "other_owners!",
                  (SELECT count(*) FROM workspace_members o
                   WHERE o.workspace_id = w.id AND o.user_id <> $1) AS "others!"
           FROM workspaces w JOIN workspace_members m ON m.workspace_id = w.id
           WHERE m.user_id = $1 AND m.role = 'owner' AND w.personal_user_id IS NULL
           ORDER BY w.name
           FOR NO KEY UPDATE OF w"#,
        user_id as UserId
    )
    .fetch_all(&mut *tx)
    .await?;
    let stranded: Vec<&str> = owned
        .iter()
        .filter(|w| w.other_owners == 0 && w.others > 0)
        .map(|w| w.name.as_str())
        .collect();
    if !stranded.is_empty() {
        return Err(FieldError::new(
            "delete_password",
            format!(
                "{who} the only owner of {}: make another member an owner, or delete the workspace, first. The account was not deleted.",
                stranded.join(", ")
            ),
        )
        .into());
    }
    let alone: Vec<uuid::Uuid> = owned.iter().filter(|w| w.others == 0).map(|w| w.id).collect();
    sqlx::query!("DELETE FROM workspaces WHERE id = ANY($1)", &alone)
        .execute(&mut *tx)
        .await?;
    if !repo::delete(&mut *tx, user_id).await? {
        return Err(AccountError::NotFound);
    }
    Ok(())
}

/// Signs in through an OAuth provider: the linked account, else the account with the
/// provider's verified email (which gets linked), else a new verified account (when
/// `may_create`; otherwise [`AccountError::SignupClosed`]).
///
/// An account found by email that never proved the address may have been made by
/// someone else in the owner's name. The provider has now proved the address, so its
/// owner takes the account over: in the same transaction the password is removed, its
/// mailed links are retired and its sessions end, so whoever signed it up keeps nothing.
pub async fn oauth_sign_in(
    pool: &PgPool,
    provider: &str,
    subject: &str,
    email: &str,
    email_verified: bool,
    full_name: &str,
    may_create: bool,
) -> Result<User, AccountError> {
    let mut tx = pool.begin().await?;
    if let Some(id) = repo::find_by_identity(&mut tx, provider, subject).await? {
        let user = repo::find(&mut tx, id).await?.ok_or(AccountError::NotFound)?;
        tx.commit().await?;
        if user.suspended_at.is_some() {
            return Err(AccountError::Suspended);
        }
        return Ok(user);
    }
    if !email_verified {
        return Err(AccountError::UnverifiedProviderEmail);
    }
    let email = Email::parse(email).map_err(|_| AccountError::UnverifiedProviderEmail)?;
    let user = match repo::find_by_email(&mut tx, email.as_str()).await? {
        Some((user, _)) => {
            if !user.is_verified() {
                repo::clear_password(&mut tx, user.id).await?;
                repo::retire_all_tokens(&mut tx, user.id).await?;
                session::repo::delete_for_user(&mut tx, user.id, None).await?;
                tracing::info!(user.id = %user.id, "unverified account taken over by the provider-verified owner of its email");
            }
            repo::mark_verified(&mut tx, user.id).await?;
            user
        }
        None if !may_create => return Err(AccountError::SignupClosed),
        None => {
            let name = FullName::parse(full_name).unwrap_or_default();
            repo::insert(
                &mut tx,
                UserId::new(),
                email.as_str(),
                name.as_str(),
                None,
                true,
                false,
            )
            .await?
        }
    };
    if user.suspended_at.is_some() {
        return Err(AccountError::Suspended);
    }
    repo::link_identity(&mut tx, provider, subject, user.id).await?;
    let user = repo::find(&mut tx, user.id)
        .await?
        .ok_or(AccountError::NotFound)?;
    tx.commit().await?;
    Ok(user)
}

/// Makes the account with this email an administrator, creating it (verified) when it
/// does not exist. Returns the user and whether it was created.
pub async fn promote_or_create_admin(
    pool: &PgPool,
    email: &Email,
    password: Option<&Password>,
) -> Result<(User, bool), AccountError> {
    let hash = match password {
        Some(p) => Some(hash_password(p.secret()).await?),
        None => None,
    };
    let mut tx = pool.begin().await?;
    let (user, created) = match repo::find_by_email(&mut tx, email.as_str()).await? {
        Some((user, _)) => {
            repo::set_admin(&mut tx, user.id).await?;
            if let Some(hash) = &hash {
                repo::set_password(&mut tx, user.id, hash).await?;
            }
            repo::mark_verified(&mut tx, user.id).await?;
            (user.id, false)
        }
        None => {
            let user = repo::insert(
                &mut tx,
                UserId::new(),
                email.as_str(),
                "",
                hash.as_deref(),
                true,
                true,
            )
            .await?;
            (user.id, true)
        }
    };
    let user = repo::find(&mut tx, user).await?.ok_or(AccountError::NotFound)?;
    tx.commit().await?;
    Ok((user, created))
}

async fn confirm_password(pool: &PgPool, user_id: UserId, password: &str) -> Result<(), AccountError> {
    let hash = repo::password_hash(&mut *pool.acquire().await?, user_id).await?;
    if hash.is_none() {
        // OAuth-only accounts have no password to re-enter.
        return Ok(());
    }
    if verify_password(SecretString::from(password.to_owned()), hash).await {
        Ok(())
    } else {
        Err(AccountError::WrongPassword)
    }
}

/// Issues a mailed token and returns its plaintext (only its digest is stored).
pub(crate) async fn issue_token(
    conn: &mut PgConnection,
    user: UserId,
    purpose: TokenPurpose,
    ttl: Duration,
) -> sqlx::Result<String> {
    let token = random_token(40);
    repo::insert_token(conn, &token_digest(&token), user, purpose, Utc::now() + ttl).await?;
    Ok(token)
}

async fn check_token(
    conn: &mut PgConnection,
    token: &str,
    purpose: TokenPurpose,
) -> Result<UserId, AccountError> {
    if token.is_empty() || token.len() > 200 {
        return Err(TokenError::Invalid.into());
    }
    let row = repo::lock_token(conn, &token_digest(token), purpose)
        .await?
        .ok_or(TokenError::Invalid)?;
    if row.used_at.is_some() {
        return Err(TokenError::Used.into());
    }
    if row.expires_at <= Utc::now() {
        return Err(TokenError::Expired.into());
    }
    Ok(row.user_id)
}

async fn consume_token(
    conn: &mut PgConnection,
    token: &str,
    purpose: TokenPurpose,
) -> Result<UserId, AccountError> {
    let user = check_token(conn, token, purpose).await?;
    repo::mark_token_used(conn, &token_digest(token)).await?;
    Ok(user)
}
