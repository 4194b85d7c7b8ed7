//! Plans and promo codes as administrators keep them: create and edit plans, retire them
//! (a retired plan cannot be chosen; its subscribers keep it until their renewal, which
//! then ends on the default plan), put them in order, and make and list promo codes.

use chrono::{DateTime, Utc};
use serde_json::json;
use sqlx::{PgConnection, PgPool};

use super::audit::{self, Target, kind};
use super::{Admin, AdminError};
use crate::FieldError;
use crate::billing::plans::Plan;
use crate::billing::promo::{self, NewPromo, NewPromoError};
use crate::billing::{MAX_AMOUNT_CENTS, PlanId, PromoId};

/// A plan as typed on the form, checked by [`PlanInput::check`].
#[derive(Debug, Clone, Default, serde::Deserialize)]
#[serde(default)]
pub struct PlanInput {
    pub slug: String,
    pub name: String,
    pub max_sms_per_month: String,
    pub max_devices: String,
    pub max_schedules: String,
    pub max_webhooks: String,
    pub max_api_keys: String,
    pub max_members: String,
    /// Prices as amounts ("9.99").
    pub price_monthly: String,
    pub price_yearly: String,
    #[serde(default)]
    pub public: Option<String>,
}

/// A checked plan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlanValues {
    pub slug: String,
    pub name: String,
    pub limits: [i32; 6],
    pub price_monthly_cents: i64,
    pub price_yearly_cents: i64,
    pub public: bool,
}

impl PlanInput {
    pub fn from_plan(p: &Plan) -> Self {
        Self {
            slug: p.slug.clone(),
            name: p.name.clone(),
            max_sms_per_month: p.max_sms_per_month.to_string(),
            max_devices: p.max_devices.to_string(),
            max_schedules: p.max_schedules.to_string(),
            max_webhooks: p.max_webhooks.to_string(),
            max_api_keys: p.max_api_keys.to_string(),
            max_members: p.max_members.to_string(),
            price_monthly: crate::billing::plain_amount(p.price_monthly_cents),
            price_yearly: crate::billing::plain_amount(p.price_yearly_cents),
            public: p.public.then(|| "on".to_owned()),
        }
    }

    pub fn check(&self) -> Result<PlanValues, Vec<FieldError>> {
        let mut errors = Vec::new();
        let slug = self.slug.trim().to_lowercase();
        let slug_ok = (1..=40).contains(&slug.len())
            && slug.bytes().next().is_some_and(|b| b.is_ascii_alphanumeric())
            && slug
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
        if !slug_ok {
            errors.push(FieldError::new(
                "slug",
                "Use 1 to 40 lower-case letters, digits or '-'.",
            ));
        }
        let name = self.name.trim().to_owned();
        if name.is_empty() || name.chars().count() > 60 || name.chars().any(char::is_control) {
            errors.push(FieldError::new(
                "name",
                "Give the plan a name of up to 60 characters.",
            ));
        }
        let mut limits = [0i32; 6];
        let fields: [(&'static str, &str, i32); 6] = [
            ("max_sms_per_month", &self.max_sms_per_month, 0),
            ("max_devices", &self.max_devices, 0),
            ("max_schedules", &self.max_schedules, 0),
            ("max_webhooks", &self.max_webhooks, 0),
            ("max_api_keys", &self.max_api_keys, 0),
            ("max_members", &self.max_members, 1),
        ];
        for (i, (field, raw, min)) in fields.iter().enumerate() {
            match raw.trim().parse::<i32>() {
                Ok(n) if n >= *min && n <= 100_000_000 => limits[i] = n,
                _ => errors.push(FieldError::new(
                    field,
                    format!("Enter a whole number from {min} to 100,000,000."),
                )),
            }
        }
        let price = |field: &'static str, raw: &str, errors: &mut Vec<FieldError>| {
            let raw = raw.trim();
            let parsed = if raw.is_empty() || raw == "0" {
                Some(0)
            } else {
                crate::billing::parse_amount(raw)
            };
            match parsed {
                Some(c) if (0..=MAX_AMOUNT_CENTS).contains(&c) => c,
                _ => {
                    errors.push(FieldError::new(
                        field,
                        "Enter a price such as 9.99, or 0 for free.",
                    ));
                    0
                }
            }
        };
        let price_monthly_cents = price("price_monthly", &self.price_monthly, &mut errors);
        let price_yearly_cents = price("price_yearly", &self.price_yearly, &mut errors);
        if errors.is_empty() {
            Ok(PlanValues {
                slug,
                name,
                limits,
                price_monthly_cents,
                price_yearly_cents,
                public: self.public.is_some(),
            })
        } else {
            Err(errors)
        }
    }
}

fn values_json(v: &PlanValues) -> serde_json::Value {
    json!({
        "slug": v.slug, "name": v.name, "max_sms_per_month": v.limits[0], "max_devices": v.limits[1],
        "max_schedules": v.limits[2], "max_webhooks": v.limits[3], "max_api_keys": v.limits[4],
        "max_members": v.limits[5], "price_monthly_cents": v.price_monthly_cents,
        "price_yearly_cents": v.price_yearly_cents, "public": v.public,
    })
}

fn plan_json(p: &Plan) -> serde_json::Value {
    json!({
        "slug": p.slug, "name": p.name, "max_sms_per_month": p.max_sms_per_month, "max_devices": p.max_devices,
        "max_schedules": p.max_schedules, "max_webhooks": p.max_webhooks, "max_api_keys": p.max_api_keys,
        "max_members": p.max_members, "price_monthly_cents": p.price_monthly_cents,
        "price_yearly_cents": p.price_yearly_cents, "public": p.public,
    })
}

fn slug_taken(e: &sqlx::Error) -> bool {
    crate::db::is_unique_violation(e, "plans_slug_key")
}

fn taken() -> AdminError {
    AdminError::Invalid(FieldError::new("slug", "Another plan has this slug."))
}

/// A plan in the console's list, with how many workspaces are on it.
#[derive(Debug, Clone)]
pub struct Listed {
    pub plan: Plan,
    pub workspaces: i64,
}

pub async fn list(pool: &PgPool) -> sqlx::Result<Vec<Listed>> {
    let plans = crate::billing::plans::all(pool).await?;
    let counts = sqlx::query!(
        r#"SELECT coalesce(w.plan_id, (SELECT id FROM plans WHERE is_default)) AS "plan?", count(*) AS "n!"
           FROM workspaces w WHERE w.deleted_at IS NULL GROUP BY 1"#
    )
    .fetch_all(pool)
    .await?;
    Ok(plans
        .into_iter()
        .map(|plan| Listed {
            workspaces: counts
                .iter()
                .find(|c| c.plan == Some(plan.id.0))
                .map_or(0, |c| c.n),
            plan,
        })
        .collect())
}

/// Stores a plan's values: a new plan (placed last) or the ones of the plan with this id
/// (its place, default flag and retirement stay). A slug in use is a field error.
async fn write(conn: &mut PgConnection, id: PlanId, v: &PlanValues) -> Result<(), AdminError> {
    sqlx::query!(
        "INSERT INTO plans (id, slug, name, max_sms_per_month, max_devices, max_schedules, max_webhooks,
                            max_api_keys, max_members, price_monthly_cents, price_yearly_cents, public, sort)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, (SELECT coalesce(max(sort), 0) + 1 FROM plans))
         ON CONFLICT (id) DO UPDATE SET slug = EXCLUDED.slug, name = EXCLUDED.name,
             max_sms_per_month = EXCLUDED.max_sms_per_month, max_devices = EXCLUDED.max_devices,
             max_schedules = EXCLUDED.max_schedules, max_webhooks = EXCLUDED.max_webhooks,
             max_api_keys = EXCLUDED.max_api_keys, max_members = EXCLUDED.max_members,
             price_monthly_cents = EXCLUDED.price_monthly_cents,
             price_yearly_cents = EXCLUDED.price_yearly_cents, public = EXCLUDED.public",
        id as PlanId,
        v.slug,
        v.name,
        v.limits[0],
        v.limits[1],
        v.limits[2],
        v.limits[3],
        v.limits[4],
        v.limits[5],
        v.price_monthly_cents,
        v.price_yearly_cents,
        v.public
    )
    .execute(conn)
    .await
    .map_err(|e| if slug_taken(&e) { taken() } else { e.into() })?;
    Ok(())
}

pub async fn create(pool: &PgPool, admin: &Admin, v: &PlanValues) -> Result<PlanId, AdminError> {
    let id = PlanId(uuid::Uuid::now_v7());
    let mut tx = pool.begin().await?;
    write(&mut tx, id, v).await?;
    audit::record(
        &mut *tx,
        admin,
        kind::PLAN_CREATED,
        &Target::new("plan", id, &v.name),
        json!({}),
        values_json(v),
    )
    .await?;
    tx.commit().await?;
    Ok(id)
}

/// Changes a plan. Prices change for new subscriptions and renewals; a running period keeps
/// the price it was paid at. The default plan stays free.
pub async fn update(pool: &PgPool, admin: &Admin, id: PlanId, v: &PlanValues) -> Result<(), AdminError> {
    let mut tx = pool.begin().await?;
    let before = crate::billing::plans::get_for_update(&mut tx, id)
        .await?
        .ok_or(AdminError::NotFound)?;
    if before.is_default && (v.price_monthly_cents != 0 || v.price_yearly_cents != 0) {
        return Err(FieldError::new(
            "price_monthly",
            "The default plan is free: make another plan the default before charging for this one.",
        )
        .into());
    }
    write(&mut tx, id, v).await?;
    audit::record(
        &mut *tx,
        admin,
        kind::PLAN_CHANGED,
        &Target::new("plan", id, &v.name),
        plan_json(&before),
        values_json(v),
    )
    .await?;
    tx.commit().await?;
    Ok(())
}

/// Retires a plan or brings it back. The default plan cannot be retired.
pub async fn set_retired(pool: &PgPool, admin: &Admin, id: PlanId, retired: bool) -> Result<(), AdminError> {
    let mut tx = pool.begin().await?;
    let p = sqlx::query!(
        r#"SELECT name, is_default, retired_at IS NOT NULL AS "retired!" FROM plans WHERE id = $1 FOR UPDATE"#,
        id as PlanId
    )
    .fetch_optional(&mut *tx)
    .await?
    .ok_or(AdminError::NotFound)?;
    if p.retired == retired {
        tx.commit().await?;
        return Ok(());
    }
    if retired && p.is_default {
        return Err(AdminError::Refused(
            "The default plan cannot be retired: make another plan the default first.".into(),
        ));
    }
    sqlx::query!(
        "UPDATE plans SET retired_at = CASE WHEN $2 THEN now() END WHERE id = $1",
        id as PlanId,
        retired
    )
    .execute(&mut *tx)
    .await?;
    audit::record(
        &mut *tx,
        admin,
        if retired {
            kind::PLAN_RETIRED
        } else {
            kind::PLAN_RESTORED
        },
        &Target::new("plan", id, &p.name),
        json!({ "retired": !retired }),
        json!({ "retired": retired }),
    )
    .await?;
    tx.commit().await?;
    Ok(())
}

/// Moves a plan one place up or down the order plans are offered in.
pub async fn reorder(pool: &PgPool, admin: &Admin, id: PlanId, up: bool) -> Result<(), AdminError> {
    let mut tx = pool.begin().await?;
    // Every plan's row, so two moves at once queue; then renumber densely.
    let mut order = sqlx::query!(
        r#"SELECT id AS "id: PlanId", name FROM plans ORDER BY sort, price_monthly_cents, name, id FOR UPDATE"#
    )
    .fetch_all(&mut *tx)
    .await?;
    let i = order
        .iter()
        .position(|p| p.id == id)
        .ok_or(AdminError::NotFound)?;
    let j = if up {
        i.checked_sub(1)
    } else {
        Some(i + 1).filter(|j| *j < order.len())
    };
    let Some(j) = j else {
        tx.commit().await?;
        return Ok(());
    };
    order.swap(i, j);
    let ids: Vec<uuid::Uuid> = order.iter().map(|p| p.id.0).collect();
    sqlx::query!(
        "UPDATE plans p SET sort = o.n FROM unnest($1::uuid[]) WITH ORDINALITY AS o(id, n) WHERE p.id = o.id",
        &ids
    )
    .execute(&mut *tx)
    .await?;
    audit::record(
        &mut *tx,
        admin,
        kind::PLAN_MOVED,
        &Target::new("plan", id, &order[j].name),
        json!({ "position": i + 1 }),
        json!({ "position": j + 1 }),
    )
    .await?;
    tx.commit().await?;
    Ok(())
}

/// Makes `id` the plan new workspaces get (and lapsed subscriptions fall back to). It
/// must be free and not retired.
pub async fn set_default(pool: &PgPool, admin: &Admin, id: PlanId) -> Result<(), AdminError> {
    let mut tx = pool.begin().await?;
    let p = sqlx::query!(
        r#"SELECT name, price_monthly_cents + price_yearly_cents AS "price!", retired_at IS NOT NULL AS "retired!",
                  is_default
           FROM plans WHERE id = $1 FOR UPDATE"#,
        id as PlanId
    )
    .fetch_optional(&mut *tx)
    .await?
    .ok_or_else(|| AdminError::Invalid(FieldError::new("default_plan", "Choose a plan.")))?;
    if p.price != 0 || p.retired {
        return Err(FieldError::new("default_plan", "The default plan must be free and not retired.").into());
    }
    sqlx::query!(
        "UPDATE plans SET is_default = false WHERE is_default AND id <> $1",
        id as PlanId
    )
    .execute(&mut *tx)
    .await?;
    sqlx::query!("UPDATE plans SET is_default = true WHERE id = $1", id as PlanId)
        .execute(&mut *tx)
        .await?;
    if !p.is_default {
        audit::record(
            &mut *tx,
            admin,
            kind::PLAN_CHANGED,
            &Target::new("plan", id, &p.name),
            json!({ "default": false }),
            json!({ "default": true }),
        )
        .await?;
    }
    tx.commit().await?;
    Ok(())
}

/// A promo code with how often it was redeemed.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Promo {
    pub id: PromoId,
    pub code: String,
    pub credit_cents: i64,
    pub valid_from: DateTime<Utc>,
    pub valid_until: Option<DateTime<Utc>>,
    pub max_redemptions: Option<i32>,
    pub max_per_workspace: i32,
    pub redeemed: i32,
    pub active: bool,
    pub created_at: DateTime<Utc>,
}

pub async fn promos(pool: &PgPool) -> sqlx::Result<Vec<Promo>> {
    sqlx::query_as!(
        Promo,
        r#"SELECT id AS "id: PromoId", code, credit_cents, valid_from, valid_until, max_redemptions,
                  max_per_workspace, redeemed, active, created_at
           FROM promo_codes ORDER BY created_at DESC LIMIT 500"#
    )
    .fetch_all(pool)
    .await
}

/// Makes a promo code and logs it.
pub async fn create_promo(pool: &PgPool, admin: &Admin, new: &NewPromo) -> Result<PromoId, AdminError> {
    let mut tx = pool.begin().await?;
    let id = promo::create(&mut *tx, new).await.map_err(|e| match e {
        NewPromoError::Database(d) => AdminError::Database(d),
        NewPromoError::BadCode | NewPromoError::Taken => {
            AdminError::Invalid(FieldError::new("code", e.to_string()))
        }
        NewPromoError::BadCredit => AdminError::Invalid(FieldError::new("credit", e.to_string())),
        NewPromoError::BadWindow => AdminError::Invalid(FieldError::new("valid_until", e.to_string())),
        NewPromoError::BadLimit => AdminError::Invalid(FieldError::new("max_redemptions", e.to_string())),
    })?;
    audit::record(
        &mut *tx,
        admin,
        kind::PROMO_CREATED,
        &Target::new("promo", id, promo::normalize(&new.code)),
        json!({}),
        json!({
            "code": promo::normalize(&new.code), "credit_cents": new.credit_cents,
            "valid_until": new.valid_until, "max_redemptions": new.max_redemptions,
            "max_per_workspace": new.max_per_workspace,
        }),
    )
    .await?;
    tx.commit().await?;
    Ok(id)
}
