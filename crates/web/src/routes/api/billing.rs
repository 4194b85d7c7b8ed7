//! Billing through the API, as Vendel's clients call it: the public plans, the balance,
//! upgrading and cancelling, top-ups through a provider, promo codes, and the providers'
//! payment callbacks (Stripe's signed, QvaPay's verified by asking QvaPay). With billing
//! off every route here answers 404.

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::{get, post, put};
use axum::{Json, Router};
use chrono::Utc;
use ender_core::billing::payments::{self, ConfirmError, Confirmed, Credited, Provider};
use ender_core::billing::promo::{self, PromoError};
use ender_core::billing::subscriptions::{self, Change, SubscriptionError};
use ender_core::billing::{Cycle, PlanId, format_cents, ledger, plans, stripe};
use secrecy::ExposeSecret;
use serde::Deserialize;
use serde_json::{Value, json};

use super::auth::ApiCaller;
use super::format::Paging;
use super::{ApiError, ApiResult};
use crate::extract::{ApiJson, OptionalApiJson};
use crate::middleware::ClientIp;
use crate::payments::{self as providers, TopupError};
use crate::state::AppState;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/plans", get(list_plans))
        .route("/plans/balance", get(balance))
        .route("/plans/upgrade", put(upgrade))
        .route("/plans/topup", post(topup))
        .route("/plans/cancel", post(cancel))
        .route("/promos/redeem", post(redeem))
        .route("/webhooks/stripe", post(stripe_callback))
        .route("/webhooks/stripe/", post(stripe_callback))
        .route("/webhooks/qvapay", post(qvapay_callback))
        .route("/webhooks/qvapay/", post(qvapay_callback))
}

/// 404 unless billing is on: with it off these routes do not exist.
fn enabled(state: &AppState) -> ApiResult<()> {
    if state.sms.billing.enabled {
        Ok(())
    } else {
        Err(ApiError::not_found("Not found."))
    }
}

/// An amount in cents as the number of the currency's unit Vendel's clients read.
fn money(cents: i64) -> Value {
    serde_json::Number::from_f64(cents as f64 / 100.0).map_or(json!(0), Value::Number)
}

fn plan_json(p: &plans::Plan, currency: &str) -> Value {
    json!({
        "id": p.id.to_string(), "slug": p.slug, "name": p.name,
        "max_sms_per_month": p.max_sms_per_month, "max_devices": p.max_devices,
        "max_scheduled_sms": p.max_schedules, "max_integrations": p.max_api_keys,
        "max_webhooks": p.max_webhooks, "max_members": p.max_members,
        "price": money(p.price_monthly_cents), "price_yearly": money(p.price_yearly_cents),
        "price_monthly_cents": p.price_monthly_cents, "price_yearly_cents": p.price_yearly_cents,
        "currency": currency.to_ascii_uppercase(), "is_public": p.public, "is_default": p.is_default,
    })
}

/// The plans anyone may choose (no credential needed).
async fn list_plans(State(state): State<AppState>) -> ApiResult<Json<Value>> {
    enabled(&state)?;
    let all = plans::public(&state.pool).await?;
    let paging = Paging::parse(None, Some("200"));
    let total = i64::try_from(all.len()).unwrap_or(0);
    let items: Vec<Value> = all
        .iter()
        .map(|p| plan_json(p, &state.sms.billing.currency))
        .collect();
    Ok(Json(paging.wrap(items, total)))
}

async fn balance(State(state): State<AppState>, caller: ApiCaller) -> ApiResult<Json<Value>> {
    enabled(&state)?;
    let cents = ledger::balance(&state.pool, caller.workspace).await?;
    Ok(Json(json!({
        "balance": money(cents), "balance_cents": cents,
        "currency": state.sms.billing.currency.to_ascii_uppercase(),
        "wallet_address": "", "wallet_id": "",
    })))
}

impl From<SubscriptionError> for ApiError {
    fn from(e: SubscriptionError) -> Self {
        match e {
            SubscriptionError::Database(d) => d.into(),
            other => ApiError::bad_request(other.to_string()),
        }
    }
}

#[derive(Deserialize)]
struct UpgradeBody {
    #[serde(default)]
    plan_id: String,
    #[serde(default)]
    billing_cycle: String,
}

async fn upgrade(
    State(state): State<AppState>,
    caller: ApiCaller,
    ApiJson(b): ApiJson<UpgradeBody>,
) -> ApiResult<Json<Value>> {
    enabled(&state)?;
    let cycle = Cycle::parse(&b.billing_cycle)
        .ok_or_else(|| ApiError::bad_request("Billing cycle must be monthly or yearly."))?;
    let plan: PlanId = b
        .plan_id
        .parse()
        .map_err(|_| ApiError::bad_request("Plan not found."))?;
    let change = subscriptions::upgrade(
        &state.pool,
        caller.workspace,
        caller.user,
        plan,
        cycle,
        &state.sms.billing.currency,
        Utc::now(),
    )
    .await?;
    tracing::info!(workspace.id = %caller.workspace, plan.id = %plan, "plan change through the API");
    Ok(Json(match &change {
        Change::Started(s) => json!({
            "subscription_id": s.id.to_string(), "status": s.status.as_str(),
            "message": "Subscription activated",
            "current_period_end": super::format::ts(Some(s.current_period_end)),
        }),
        Change::Scheduled(s) => json!({
            "subscription_id": s.id.to_string(), "status": s.status.as_str(),
            "message": match (&s.next_plan_name, s.cancel_at_period_end) {
                (_, true) => format!("Subscription will cancel at period end ({})", s.current_period_end.format("%Y-%m-%d")),
                (Some(next), _) => format!("Plan changes to {next} on {}", s.current_period_end.format("%Y-%m-%d")),
                (None, _) => format!("Staying on {}", s.plan_name),
            },
            "current_period_end": super::format::ts(Some(s.current_period_end)),
        }),
        Change::FreePlan(name) => json!({
            "subscription_id": "", "status": "active", "message": format!("Now on the {name} plan"),
        }),
    }))
}

#[derive(Deserialize, Default)]
struct CancelBody {
    #[serde(default)]
    immediate: bool,
}

async fn cancel(
    State(state): State<AppState>,
    caller: ApiCaller,
    OptionalApiJson(b): OptionalApiJson<CancelBody>,
) -> ApiResult<Json<Value>> {
    enabled(&state)?;
    let s = subscriptions::cancel(
        &state.pool,
        caller.workspace,
        caller.user,
        b.immediate,
        Utc::now(),
    )
    .await?;
    let message = if s.cancel_at_period_end && s.ended_at.is_none() {
        "Subscription will cancel at period end"
    } else {
        "Subscription canceled immediately"
    };
    Ok(Json(
        json!({ "message": message, "subscription_id": s.id.to_string(), "status": s.status.as_str() }),
    ))
}

#[derive(Deserialize)]
struct TopupBody {
    #[serde(default)]
    amount: Value,
    #[serde(default)]
    provider: String,
}

impl From<TopupError> for ApiError {
    fn from(e: TopupError) -> Self {
        match e {
            TopupError::Database(d) => d.into(),
            TopupError::Provider(p) => ApiError::new(StatusCode::BAD_GATEWAY, p.to_string()),
            other => ApiError::bad_request(other.to_string()),
        }
    }
}

async fn topup(
    State(state): State<AppState>,
    caller: ApiCaller,
    ApiJson(b): ApiJson<TopupBody>,
) -> ApiResult<Json<Value>> {
    enabled(&state)?;
    let cents = providers::amount_cents(&b.amount);
    let (payment, checkout) =
        providers::start_topup(&state, caller.workspace, caller.user, &b.provider, cents).await?;
    Ok(Json(json!({
        "provider": b.provider.trim().to_ascii_lowercase(),
        "payment_url": checkout.url,
        "payment_id": payment.to_string(),
    })))
}

#[derive(Deserialize)]
struct RedeemBody {
    #[serde(default)]
    code: String,
}

impl From<PromoError> for ApiError {
    fn from(e: PromoError) -> Self {
        let status = match &e {
            PromoError::Database(_) => StatusCode::INTERNAL_SERVER_ERROR,
            PromoError::Missing => StatusCode::BAD_REQUEST,
            PromoError::Unknown => StatusCode::NOT_FOUND,
            PromoError::AlreadyRedeemed => StatusCode::CONFLICT,
            PromoError::Inactive | PromoError::NotYet | PromoError::Expired | PromoError::Exhausted => {
                StatusCode::GONE
            }
        };
        match e {
            PromoError::Database(d) => d.into(),
            other => ApiError::new(status, format!("{other}.")),
        }
    }
}

async fn redeem(
    State(state): State<AppState>,
    caller: ApiCaller,
    ApiJson(b): ApiJson<RedeemBody>,
) -> ApiResult<Json<Value>> {
    enabled(&state)?;
    let r = promo::redeem(&state.pool, caller.workspace, caller.user, &b.code, Utc::now()).await?;
    after_credit(&state, caller.workspace).await;
    Ok(Json(json!({
        "message": format!("{} credited to your balance", format_cents(r.credit_cents, &state.sms.billing.currency)),
        "amount": money(r.credit_cents),
        "new_balance": money(r.balance_cents),
    })))
}

/// Money came in: a past-due subscription renews if it now can.
pub async fn after_credit(state: &AppState, workspace: ender_core::workspace::WorkspaceId) {
    if let Err(e) =
        subscriptions::retry_past_due(&state.pool, workspace, &state.sms.billing.currency, Utc::now()).await
    {
        tracing::warn!(workspace.id = %workspace, error = %e, "renewing a past-due subscription after a credit failed");
    }
}

impl From<ConfirmError> for ApiError {
    fn from(e: ConfirmError) -> Self {
        match e {
            ConfirmError::Database(d) => d.into(),
            other => ApiError::bad_request(other.to_string()),
        }
    }
}

/// Completes a verified payment and answers the provider.
async fn credit(state: &AppState, confirmed: &Confirmed) -> ApiResult<Json<Value>> {
    let outcome = payments::confirm(&state.pool, confirmed).await.inspect_err(|e| {
        tracing::warn!(provider = confirmed.provider.as_str(), error = %e, "payment callback refused");
    })?;
    Ok(Json(match outcome {
        Credited::Credited {
            payment, workspace, ..
        } => {
            tracing::info!(provider = confirmed.provider.as_str(), payment.id = %payment, workspace.id = %workspace, "payment credited");
            after_credit(state, workspace).await;
            json!({ "status": "credited", "payment_id": payment.to_string() })
        }
        Credited::AlreadyProcessed { payment } => {
            json!({ "status": "already_processed", "payment_id": payment.to_string() })
        }
        Credited::Unmatched { payment } => {
            tracing::warn!(provider = confirmed.provider.as_str(), payment.id = %payment, "a verified payment names no top-up; kept for the administrator");
            json!({ "status": "recorded", "payment_id": payment.to_string() })
        }
    }))
}

/// Callbacks carry no credential: they are limited per client address instead (a QvaPay
/// one makes Ender ask QvaPay, which no one may make it do without bound).
fn limit_callbacks(state: &AppState, ip: std::net::IpAddr) -> ApiResult<()> {
    state
        .limiter
        .check(&format!("payment-callback:{ip}"))
        .map_err(|_| ApiError::new(StatusCode::TOO_MANY_REQUESTS, "Too many requests."))
}

async fn stripe_callback(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult<Json<Value>> {
    enabled(&state)?;
    limit_callbacks(&state, ip)?;
    let secret = state
        .config
        .payments
        .stripe_webhook_secret
        .as_ref()
        .ok_or_else(|| ApiError::not_found("Unknown payment provider."))?;
    let header = headers.get("stripe-signature").and_then(|v| v.to_str().ok());
    stripe::verify(header, &body, secret.expose_secret(), Utc::now().timestamp()).map_err(|e| {
        tracing::warn!(error = %e, "Stripe callback with a bad signature");
        ApiError::bad_request(e.to_string())
    })?;
    match stripe::parse_event(&body).map_err(|e| ApiError::bad_request(e.to_string()))? {
        stripe::Event::Ignored(kind) => {
            tracing::debug!(event = %kind, "Stripe event ignored");
            Ok(Json(json!({ "status": "ignored" })))
        }
        stripe::Event::Paid(c) => credit(&state, &c).await,
    }
}

/// QvaPay signs nothing: the callback only names a transaction, which is then looked up
/// at QvaPay; its answer (status, our reference, amount) is what counts.
async fn qvapay_callback(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    body: Bytes,
) -> ApiResult<Json<Value>> {
    enabled(&state)?;
    limit_callbacks(&state, ip)?;
    if providers::configured(&state.config.payments)
        .iter()
        .all(|p| *p != Provider::Qvapay)
    {
        return Err(ApiError::not_found("Unknown payment provider."));
    }
    let v: Value =
        serde_json::from_slice(&body).map_err(|_| ApiError::bad_request("Invalid JSON payload."))?;
    let uuid = ["transaction_uuid", "transation_uuid"]
        .iter()
        .find_map(|k| v[*k].as_str())
        .filter(|u| !u.is_empty() && u.len() <= 100)
        .ok_or_else(|| ApiError::bad_request("Unrecognized webhook payload."))?;
    let claimed_reference = match &v["remote_id"] {
        Value::String(s) => s.clone(),
        Value::Number(n) => n.to_string(),
        _ => return Err(ApiError::bad_request("QvaPay webhook missing remote_id.")),
    };
    let tx = providers::qvapay_transaction(&state.http, &state.config.payments, uuid)
        .await
        .map_err(|e| ApiError::new(StatusCode::BAD_GATEWAY, e.to_string()))?;
    if tx.status != "paid" {
        return Err(ApiError::bad_request(format!(
            "The QvaPay transaction is {:?}, not paid.",
            tx.status
        )));
    }
    if tx.remote_id != claimed_reference {
        return Err(ApiError::bad_request(
            "The QvaPay transaction belongs to another payment.",
        ));
    }
    let amount = tx
        .amount_cents
        .ok_or_else(|| ApiError::bad_request("The QvaPay transaction has no amount."))?;
    if let Some(claimed) = providers::amount_cents(&v["amount"])
        && claimed != amount
    {
        return Err(ApiError::bad_request(
            "The amount in the callback is not the amount QvaPay reports.",
        ));
    }
    let confirmed = Confirmed {
        provider: Provider::Qvapay,
        reference: tx.remote_id,
        checkout_ref: None,
        tx_id: uuid.to_owned(),
        amount_cents: amount,
        currency: "usd".to_owned(),
    };
    credit(&state, &confirmed).await
}
