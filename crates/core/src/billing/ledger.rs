//! The balance of a workspace as an append-only ledger. Each entry moves the balance by a
//! non-zero number of cents and records the balance after it; the workspace row carries
//! the running balance, updated in the same statement that checks it stays at or above
//! zero (a database constraint backs that), so concurrent charges can never overdraw it.

use chrono::{DateTime, Utc};
use sqlx::{PgConnection, PgPool};

use super::{MAX_AMOUNT_CENTS, PaymentId, SubscriptionId};
use crate::account::UserId;
use crate::workspace::WorkspaceId;

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    /// Money paid in through a provider.
    Topup,
    /// A promo code's credit.
    Promo,
    /// A subscription period paid from the balance.
    Subscription,
    /// Money given back (the unused part of a period on an upgrade).
    Refund,
    /// An administrator's correction, either way.
    Adjustment,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Topup => "topup",
            Self::Promo => "promo",
            Self::Subscription => "subscription",
            Self::Refund => "refund",
            Self::Adjustment => "adjustment",
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            Self::Topup => "Top-up",
            Self::Promo => "Promo code",
            Self::Subscription => "Subscription",
            Self::Refund => "Refund",
            Self::Adjustment => "Adjustment",
        }
    }

    fn parse(s: &str) -> Self {
        match s {
            "topup" => Self::Topup,
            "promo" => Self::Promo,
            "subscription" => Self::Subscription,
            "refund" => Self::Refund,
            _ => Self::Adjustment,
        }
    }
}

/// What an entry is tied to.
#[derive(Debug, Clone, Copy, Default)]
pub struct Refs {
    pub payment: Option<PaymentId>,
    pub subscription: Option<SubscriptionId>,
    pub actor: Option<UserId>,
}

#[derive(Debug, thiserror::Error)]
pub enum LedgerError {
    #[error("insufficient balance: need {need} cents, have {have}")]
    Insufficient { need: i64, have: i64 },
    #[error("an amount must be non-zero and at most {MAX_AMOUNT_CENTS} cents either way")]
    BadAmount,
    #[error("workspace not found")]
    NotFound,
    #[error(transparent)]
    Database(#[from] sqlx::Error),
}

/// Moves the balance of `workspace` by `amount_cents` (credits positive) and records it.
/// A debit larger than the balance is refused and changes nothing. Returns the balance
/// after. The workspace row stays locked until the caller's transaction ends.
pub async fn post(
    conn: &mut PgConnection,
    workspace: WorkspaceId,
    kind: Kind,
    amount_cents: i64,
    description: &str,
    refs: Refs,
) -> Result<i64, LedgerError> {
    if amount_cents == 0 || amount_cents.unsigned_abs() > MAX_AMOUNT_CENTS.unsigned_abs() {
        return Err(LedgerError::BadAmount);
    }
    let after = sqlx::query_scalar!(
        "UPDATE workspaces SET balance_cents = balance_cents + $2
         WHERE id = $1 AND balance_cents + $2 >= 0 RETURNING balance_cents",
        workspace as WorkspaceId,
        amount_cents
    )
    .fetch_optional(&mut *conn)
    .await?;
    let Some(after) = after else {
        let have = sqlx::query_scalar!(
            "SELECT balance_cents FROM workspaces WHERE id = $1",
            workspace as WorkspaceId
        )
        .fetch_optional(&mut *conn)
        .await?
        .ok_or(LedgerError::NotFound)?;
        return Err(LedgerError::Insufficient {
            need: -amount_cents,
            have,
        });
    };
    sqlx::query!(
        "INSERT INTO ledger_entries (workspace_id, kind, amount_cents, balance_after_cents, description,
                                     payment_id, subscription_id, actor_user)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        workspace as WorkspaceId,
        kind.as_str(),
        amount_cents,
        after,
        description,
        refs.payment.map(|p| p.0),
        refs.subscription.map(|s| s.0),
        refs.actor.map(|u| u.0),
    )
    .execute(&mut *conn)
    .await?;
    Ok(after)
}

/// The balance of `workspace` in cents.
pub async fn balance(pool: &PgPool, workspace: WorkspaceId) -> sqlx::Result<i64> {
    Ok(sqlx::query_scalar!(
        "SELECT balance_cents FROM workspaces WHERE id = $1",
        workspace as WorkspaceId
    )
    .fetch_optional(pool)
    .await?
    .unwrap_or(0))
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct Entry {
    pub id: i64,
    pub kind: Kind,
    pub amount_cents: i64,
    pub balance_after_cents: i64,
    pub description: String,
    pub payment_id: Option<PaymentId>,
    pub created_at: DateTime<Utc>,
}

/// The latest `limit` entries of `workspace`, newest first.
pub async fn history(pool: &PgPool, workspace: WorkspaceId, limit: i64) -> sqlx::Result<Vec<Entry>> {
    let rows = sqlx::query!(
        r#"SELECT id, kind, amount_cents, balance_after_cents, description,
                  payment_id AS "payment_id: PaymentId", created_at
           FROM ledger_entries WHERE workspace_id = $1 ORDER BY id DESC LIMIT $2"#,
        workspace as WorkspaceId,
        limit
    )
    .fetch_all(pool)
    .await?;
    Ok(rows
        .into_iter()
        .map(|r| Entry {
            id: r.id,
            kind: Kind::parse(&r.kind),
            amount_cents: r.amount_cents,
            balance_after_cents: r.balance_after_cents,
            description: r.description,
            payment_id: r.payment_id,
            created_at: r.created_at,
        })
        .collect())
}
