//! Top-ups through a payment provider. Starting one records a `pending` payment whose id
//! travels with the checkout; the provider's verified callback completes it exactly once:
//! the payment row is locked, and the provider's transaction id is unique, so replays
//! (and the provider's own retries) credit nothing more and answer `already_processed`.

use chrono::{DateTime, Utc};
use sqlx::PgPool;

use super::PaymentId;
use super::ledger::{self, Kind, LedgerError, Refs};
use crate::account::UserId;
use crate::workspace::WorkspaceId;

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Provider {
    Stripe,
    Qvapay,
}

impl Provider {
    pub const ALL: [Self; 2] = [Self::Stripe, Self::Qvapay];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Stripe => "stripe",
            Self::Qvapay => "qvapay",
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            Self::Stripe => "Stripe",
            Self::Qvapay => "QvaPay",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s.trim().to_ascii_lowercase().as_str() {
            "stripe" => Some(Self::Stripe),
            "qvapay" => Some(Self::Qvapay),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct Payment {
    pub id: PaymentId,
    pub workspace_id: Option<WorkspaceId>,
    pub provider: String,
    pub checkout_ref: Option<String>,
    pub provider_tx_id: Option<String>,
    pub amount_cents: i64,
    pub currency: String,
    pub status: String,
    pub detail: String,
    pub created_at: DateTime<Utc>,
    pub completed_at: Option<DateTime<Utc>>,
}

macro_rules! select_payments {
    ($tail:literal $(, $arg:expr)*) => {
        sqlx::query_as!(
            Payment,
            r#"SELECT id AS "id: PaymentId", workspace_id AS "workspace_id: WorkspaceId", provider,
                      checkout_ref, provider_tx_id, amount_cents, currency, status, detail,
                      created_at, completed_at
               FROM payments "# + $tail
            $(, $arg)*
        )
    };
}

/// Records the start of a top-up of `amount_cents` (bounds are the caller's to check).
pub async fn start(
    pool: &PgPool,
    workspace: WorkspaceId,
    user: Option<UserId>,
    provider: Provider,
    amount_cents: i64,
    currency: &str,
) -> sqlx::Result<PaymentId> {
    let id = PaymentId(uuid::Uuid::new_v4());
    sqlx::query!(
        "INSERT INTO payments (id, workspace_id, created_by, provider, amount_cents, currency, status)
         VALUES ($1, $2, $3, $4, $5, $6, 'pending')",
        id as PaymentId,
        workspace as WorkspaceId,
        user.map(|u| u.0),
        provider.as_str(),
        amount_cents,
        currency
    )
    .execute(pool)
    .await?;
    Ok(id)
}

/// Keeps the provider's id of the checkout made for `payment`.
pub async fn set_checkout_ref(pool: &PgPool, payment: PaymentId, checkout_ref: &str) -> sqlx::Result<()> {
    sqlx::query!(
        "UPDATE payments SET checkout_ref = $2 WHERE id = $1 AND status = 'pending'",
        payment as PaymentId,
        checkout_ref
    )
    .execute(pool)
    .await?;
    Ok(())
}

/// A pending payment whose checkout could not be made.
pub async fn fail(pool: &PgPool, payment: PaymentId, detail: &str) -> sqlx::Result<()> {
    sqlx::query!(
        "UPDATE payments SET status = 'failed', detail = $2 WHERE id = $1 AND status = 'pending'",
        payment as PaymentId,
        detail
    )
    .execute(pool)
    .await?;
    Ok(())
}

/// The payments of `workspace`, newest first.
pub async fn list(pool: &PgPool, workspace: WorkspaceId, limit: i64) -> sqlx::Result<Vec<Payment>> {
    select_payments!(
        "WHERE workspace_id = $1 ORDER BY created_at DESC LIMIT $2",
        workspace as WorkspaceId,
        limit
    )
    .fetch_all(pool)
    .await
}

/// One payment of `workspace` (another workspace's reads as none).
pub async fn get(pool: &PgPool, workspace: WorkspaceId, id: PaymentId) -> sqlx::Result<Option<Payment>> {
    select_payments!(
        "WHERE workspace_id = $1 AND id = $2",
        workspace as WorkspaceId,
        id as PaymentId
    )
    .fetch_optional(pool)
    .await
}

/// Verified callbacks that named no payment of ours, newest first (for the administrator).
pub async fn unmatched(pool: &PgPool, limit: i64) -> sqlx::Result<Vec<Payment>> {
    select_payments!(
        "WHERE status = 'unmatched' ORDER BY created_at DESC LIMIT $1",
        limit
    )
    .fetch_all(pool)
    .await
}

/// A payment the provider says happened (its callback verified).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Confirmed {
    pub provider: Provider,
    /// Our payment id as the checkout carried it (may be anything on a foreign callback).
    pub reference: String,
    /// The provider's id of the checkout, when the callback names it.
    pub checkout_ref: Option<String>,
    /// The provider's id of the money movement.
    pub tx_id: String,
    pub amount_cents: i64,
    pub currency: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Credited {
    /// The balance went up.
    Credited {
        payment: PaymentId,
        workspace: WorkspaceId,
        balance_cents: i64,
    },
    /// This transaction was credited before; nothing changed.
    AlreadyProcessed { payment: PaymentId },
    /// No payment of ours matches; the callback is kept for the administrator.
    Unmatched { payment: PaymentId },
}

#[derive(Debug, thiserror::Error)]
pub enum ConfirmError {
    #[error("The amount paid ({paid} cents) is not the amount of the top-up ({expected} cents).")]
    Amount { paid: i64, expected: i64 },
    #[error("The currency paid ({paid}) is not the currency of the top-up ({expected}).")]
    Currency { paid: String, expected: String },
    #[error("The checkout named in the callback is not the one made for this top-up.")]
    Checkout,
    #[error("The callback has no transaction id.")]
    NoTransaction,
    #[error(transparent)]
    Database(#[from] sqlx::Error),
}

/// Completes the payment a verified callback names and credits its workspace, once.
pub async fn confirm(pool: &PgPool, c: &Confirmed) -> Result<Credited, ConfirmError> {
    if c.tx_id.trim().is_empty() {
        return Err(ConfirmError::NoTransaction);
    }
    let mut tx = pool.begin().await?;
    let ours = match c.reference.parse::<PaymentId>() {
        Ok(id) => {
            select_payments!(
                "WHERE id = $1 AND provider = $2 FOR UPDATE",
                id as PaymentId,
                c.provider.as_str()
            )
            .fetch_optional(&mut *tx)
            .await?
        }
        Err(_) => None,
    };
    let Some(payment) = ours.filter(|p| p.workspace_id.is_some()) else {
        // Replays of a foreign callback find the row kept the first time.
        let kept = PaymentId(uuid::Uuid::new_v4());
        let inserted = sqlx::query_scalar!(
            r#"INSERT INTO payments (id, provider, checkout_ref, provider_tx_id, amount_cents, currency, status, detail)
               VALUES ($1, $2, $3, $4, $5, $6, 'unmatched', $7)
               ON CONFLICT (provider, provider_tx_id) DO NOTHING RETURNING id AS "id: PaymentId""#,
            kept as PaymentId,
            c.provider.as_str(),
            c.checkout_ref,
            c.tx_id,
            c.amount_cents.max(1),
            if c.currency.len() == 3 { c.currency.as_str() } else { "xxx" },
            format!("reference {:?} matches no payment", truncate(&c.reference, 80))
        )
        .fetch_optional(&mut *tx)
        .await?;
        tx.commit().await?;
        return Ok(match inserted {
            Some(payment) => Credited::Unmatched { payment },
            None => Credited::AlreadyProcessed {
                payment: by_tx(&mut *pool.acquire().await?, c).await?.unwrap_or(kept),
            },
        });
    };
    if payment.status == "completed" {
        return Ok(Credited::AlreadyProcessed { payment: payment.id });
    }
    if c.amount_cents != payment.amount_cents {
        return Err(ConfirmError::Amount {
            paid: c.amount_cents,
            expected: payment.amount_cents,
        });
    }
    if c.currency != payment.currency {
        return Err(ConfirmError::Currency {
            paid: c.currency.clone(),
            expected: payment.currency.clone(),
        });
    }
    if let (Some(named), Some(made)) = (&c.checkout_ref, &payment.checkout_ref)
        && named != made
    {
        return Err(ConfirmError::Checkout);
    }
    // The same transaction id already completed another payment: a replay in disguise.
    // (On this transaction's connection: a second one from the pool, while this one holds
    // the payment's lock, could wait for ever behind the other replays.)
    if let Some(other) = by_tx(&mut tx, c).await? {
        return Ok(Credited::AlreadyProcessed { payment: other });
    }
    let workspace = payment.workspace_id.ok_or(ConfirmError::Checkout)?;
    sqlx::query!(
        "UPDATE payments SET status = 'completed', provider_tx_id = $2, completed_at = now(), detail = ''
         WHERE id = $1",
        payment.id as PaymentId,
        c.tx_id
    )
    .execute(&mut *tx)
    .await?;
    let balance = ledger::post(
        &mut tx,
        workspace,
        Kind::Topup,
        payment.amount_cents,
        &format!("Top-up via {}", c.provider.label()),
        Refs {
            payment: Some(payment.id),
            ..Refs::default()
        },
    )
    .await
    .map_err(|e| match e {
        LedgerError::Database(e) => ConfirmError::Database(e),
        _ => ConfirmError::Checkout,
    })?;
    tx.commit().await?;
    Ok(Credited::Credited {
        payment: payment.id,
        workspace,
        balance_cents: balance,
    })
}

async fn by_tx(conn: &mut sqlx::PgConnection, c: &Confirmed) -> sqlx::Result<Option<PaymentId>> {
    sqlx::query_scalar!(
        r#"SELECT id AS "id: PaymentId" FROM payments WHERE provider = $1 AND provider_tx_id = $2"#,
        c.provider.as_str(),
        c.tx_id
    )
    .fetch_optional(conn)
    .await
}

fn truncate(s: &str, max: usize) -> &str {
    match s.char_indices().nth(max) {
        Some((i, _)) => &s[..i],
        None => s,
    }
}
