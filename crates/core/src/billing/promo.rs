//! Promo codes: a fixed credit to the balance, within a validity window, up to a number of
//! redemptions overall and per workspace. Codes compare case-insensitively. Redemptions of
//! one code queue on its row lock, so the counts stay exact under any concurrency.

use chrono::{DateTime, Utc};
use sqlx::PgPool;

use super::ledger::{self, Kind, LedgerError, Refs};
use super::{MAX_AMOUNT_CENTS, PromoId};
use crate::account::UserId;
use crate::workspace::WorkspaceId;

/// Why a code was not redeemed; the texts are the ones Vendel's clients show.
#[derive(Debug, thiserror::Error)]
pub enum PromoError {
    #[error("Code is required")]
    Missing,
    #[error("Invalid promo code")]
    Unknown,
    #[error("This promo code is no longer active")]
    Inactive,
    #[error("This promo code is not valid yet")]
    NotYet,
    #[error("This promo code has expired")]
    Expired,
    #[error("This promo code has been fully redeemed")]
    Exhausted,
    #[error("You have already redeemed this code")]
    AlreadyRedeemed,
    #[error(transparent)]
    Database(#[from] sqlx::Error),
}

impl From<LedgerError> for PromoError {
    fn from(e: LedgerError) -> Self {
        match e {
            LedgerError::Database(e) => Self::Database(e),
            // A credit within the code's bounds is never refused; a vanished workspace is.
            _ => Self::Database(sqlx::Error::RowNotFound),
        }
    }
}

/// Normalises a typed code: trimmed, upper-case.
pub fn normalize(code: &str) -> String {
    code.trim().to_uppercase()
}

fn well_formed(code: &str) -> bool {
    (2..=40).contains(&code.len())
        && code.bytes().next().is_some_and(|b| b.is_ascii_alphanumeric())
        && code
            .bytes()
            .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_' || b == b'-')
}

#[derive(Debug, Clone)]
pub struct NewPromo {
    pub code: String,
    pub credit_cents: i64,
    pub valid_from: DateTime<Utc>,
    pub valid_until: Option<DateTime<Utc>>,
    pub max_redemptions: Option<i32>,
    pub max_per_workspace: i32,
}

#[derive(Debug, thiserror::Error)]
pub enum NewPromoError {
    #[error("A code is 2 to 40 letters, digits, '-' or '_'.")]
    BadCode,
    #[error("The credit must be between 0.01 and 10,000,000.")]
    BadCredit,
    #[error("The end of the validity window must come after its start.")]
    BadWindow,
    #[error("Redemption limits must be at least 1.")]
    BadLimit,
    #[error("That code exists already.")]
    Taken,
    #[error(transparent)]
    Database(#[from] sqlx::Error),
}

/// Makes a promo code (the admin console's; tests use it too).
pub async fn create<'e>(db: impl sqlx::PgExecutor<'e>, new: &NewPromo) -> Result<PromoId, NewPromoError> {
    let code = normalize(&new.code);
    if !well_formed(&code) {
        return Err(NewPromoError::BadCode);
    }
    if new.credit_cents <= 0 || new.credit_cents > MAX_AMOUNT_CENTS {
        return Err(NewPromoError::BadCredit);
    }
    if new.valid_until.is_some_and(|u| u <= new.valid_from) {
        return Err(NewPromoError::BadWindow);
    }
    if new.max_redemptions.is_some_and(|m| m < 1) || new.max_per_workspace < 1 {
        return Err(NewPromoError::BadLimit);
    }
    let id = PromoId(uuid::Uuid::new_v4());
    let inserted = sqlx::query!(
        "INSERT INTO promo_codes (id, code, credit_cents, valid_from, valid_until, max_redemptions, max_per_workspace)
         VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (code) DO NOTHING",
        id as PromoId,
        code,
        new.credit_cents,
        new.valid_from,
        new.valid_until,
        new.max_redemptions,
        new.max_per_workspace
    )
    .execute(db)
    .await?;
    if inserted.rows_affected() == 0 {
        return Err(NewPromoError::Taken);
    }
    Ok(id)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Redeemed {
    pub credit_cents: i64,
    pub balance_cents: i64,
}

/// Credits the code's amount to `workspace`, or says why not (nothing changes then).
pub async fn redeem(
    pool: &PgPool,
    workspace: WorkspaceId,
    user: Option<UserId>,
    code: &str,
    now: DateTime<Utc>,
) -> Result<Redeemed, PromoError> {
    let code = normalize(code);
    if code.is_empty() {
        return Err(PromoError::Missing);
    }
    if !well_formed(&code) {
        return Err(PromoError::Unknown);
    }
    let mut tx = pool.begin().await?;
    let promo = sqlx::query!(
        r#"SELECT id AS "id: PromoId", credit_cents, valid_from, valid_until, max_redemptions,
                  max_per_workspace, redeemed, active
           FROM promo_codes WHERE code = $1 FOR UPDATE"#,
        code
    )
    .fetch_optional(&mut *tx)
    .await?
    .ok_or(PromoError::Unknown)?;
    if !promo.active {
        return Err(PromoError::Inactive);
    }
    if now < promo.valid_from {
        return Err(PromoError::NotYet);
    }
    if promo.valid_until.is_some_and(|u| now >= u) {
        return Err(PromoError::Expired);
    }
    if promo.max_redemptions.is_some_and(|m| promo.redeemed >= m) {
        return Err(PromoError::Exhausted);
    }
    let mine = sqlx::query_scalar!(
        r#"SELECT count(*) AS "n!" FROM promo_redemptions WHERE promo_id = $1 AND workspace_id = $2"#,
        promo.id as PromoId,
        workspace as WorkspaceId
    )
    .fetch_one(&mut *tx)
    .await?;
    if mine >= i64::from(promo.max_per_workspace) {
        return Err(PromoError::AlreadyRedeemed);
    }
    sqlx::query!(
        "UPDATE promo_codes SET redeemed = redeemed + 1 WHERE id = $1",
        promo.id as PromoId
    )
    .execute(&mut *tx)
    .await?;
    sqlx::query!(
        "INSERT INTO promo_redemptions (promo_id, workspace_id, user_id) VALUES ($1, $2, $3)",
        promo.id as PromoId,
        workspace as WorkspaceId,
        user.map(|u| u.0)
    )
    .execute(&mut *tx)
    .await?;
    let balance = ledger::post(
        &mut tx,
        workspace,
        Kind::Promo,
        promo.credit_cents,
        &format!("Promo code {code}"),
        Refs {
            actor: user,
            ..Refs::default()
        },
    )
    .await?;
    tx.commit().await?;
    Ok(Redeemed {
        credit_cents: promo.credit_cents,
        balance_cents: balance,
    })
}
