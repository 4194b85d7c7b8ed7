//! The Billing page (billing on only): the plan and its usage, the balance with top-up and
//! promo forms, the plans to move to with a confirmation of what happens and when,
//! cancelling, the history, and a printable receipt per payment. Everyone in the
//! workspace sees the plan and usage; only its owners see and use the rest.

use askama::Template;
use askama_web::WebTemplate;
use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use chrono::Utc;
use ender_core::billing::payments::{self, Payment};
use ender_core::billing::plans::{self, Plan};
use ender_core::billing::subscriptions::{self, Change, Status, Subscription};
use ender_core::billing::{Cycle, PaymentId, PlanId, format_cents, ledger, parse_amount, promo};
use ender_core::workspace::{Action, WorkspaceId};
use serde::Deserialize;
use tower_sessions::Session;

use crate::error::{AppError, AppResult};
use crate::extract::Form;
use crate::session::{CurrentWorkspace, flash};
use crate::state::AppState;
use crate::views::{Errors, Shell};

const PATH: &str = "/billing";

pub fn routes() -> Router<AppState> {
    Router::new()
        .route(PATH, get(show))
        .route("/billing/topup", post(topup))
        .route("/billing/promo", post(redeem))
        .route("/billing/change", get(confirm_change).post(change))
        .route("/billing/cancel", get(confirm_cancel).post(cancel))
        .route("/billing/receipts/{id}", get(receipt))
}

fn enabled(state: &AppState) -> AppResult<()> {
    if state.sms.billing.enabled {
        Ok(())
    } else {
        Err(AppError::NotFound)
    }
}

/// A plan's SMS allowance and what is used of it, for the dashboard and this page.
#[derive(Debug, Clone)]
pub struct Usage {
    pub plan: String,
    pub used: i32,
    pub limit: i32,
    pub percent: i64,
    pub reset: String,
    pub devices: i64,
    pub max_devices: i64,
}

impl Usage {
    pub async fn of(state: &AppState, workspace: WorkspaceId) -> sqlx::Result<Self> {
        Self::with(state, workspace, state.limits(workspace).await?).await
    }

    /// The usage against limits the caller has read already.
    pub async fn with(
        state: &AppState,
        workspace: WorkspaceId,
        limits: ender_core::billing::plans::Limits,
    ) -> sqlx::Result<Self> {
        let mut conn = state.pool.acquire().await?;
        let used = ender_core::quota::used(&mut conn, workspace, limits.allowance().period).await?;
        drop(conn);
        let devices = ender_core::device::count(&state.pool, workspace).await?;
        let percent = if limits.sms <= 0 {
            100
        } else {
            (i64::from(used) * 100 / i64::from(limits.sms)).min(100)
        };
        Ok(Self {
            plan: limits.plan,
            used,
            limit: limits.sms,
            percent,
            reset: limits.period_end.format("%Y-%m-%d").to_string(),
            devices,
            max_devices: limits.devices,
        })
    }

    /// The bar's class: warn from 80%, full at 100%.
    pub fn bar_class(&self) -> &'static str {
        match self.percent {
            100.. => "usage-bar full",
            80.. => "usage-bar warn",
            _ => "usage-bar",
        }
    }
}

pub struct PlanView {
    pub plan: Plan,
    pub monthly: String,
    pub yearly: String,
    pub current: bool,
}

pub struct LineView {
    pub when: String,
    pub what: String,
    pub amount: String,
    pub balance: String,
    pub credit: bool,
}

pub struct PaymentView {
    pub id: PaymentId,
    pub when: String,
    pub provider: String,
    pub amount: String,
    pub status: String,
    pub receipt: bool,
}

#[derive(Template, WebTemplate)]
#[template(path = "billing/show.html")]
pub struct BillingPage {
    pub shell: Shell,
    pub u: Usage,
    pub manage: bool,
    pub subscription: Option<Subscription>,
    pub past_due_until: String,
    pub balance: String,
    pub plans: Vec<PlanView>,
    pub providers: Vec<(&'static str, &'static str)>,
    pub topup_amount: String,
    pub topup_provider: String,
    pub topup_hint: String,
    pub promo_code: String,
    pub errors: Errors,
    pub notice: String,
    pub lines: Vec<LineView>,
    pub events: Vec<(String, String, String)>,
    pub payments: Vec<PaymentView>,
}

impl BillingPage {
    pub fn period_end(&self) -> String {
        self.subscription
            .as_ref()
            .map(|s| s.current_period_end.format("%Y-%m-%d").to_string())
            .unwrap_or_default()
    }
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct ShowQuery {
    topup: String,
}

fn when(t: chrono::DateTime<Utc>) -> String {
    t.format("%Y-%m-%d %H:%M UTC").to_string()
}

async fn page(state: &AppState, ws: &CurrentWorkspace, shell: Shell) -> AppResult<BillingPage> {
    let currency = state.sms.billing.currency.as_str();
    let money = |c: i64| format_cents(c, currency);
    let limits = state.limits(ws.id()).await?;
    let plan_id = limits.plan_id;
    let u = Usage::with(state, ws.id(), limits).await?;
    let mut conn = state.pool.acquire().await?;
    let subscription = subscriptions::current(&mut conn, ws.id()).await?;
    drop(conn);
    let plans = plans::public(&state.pool)
        .await?
        .into_iter()
        .map(|p| PlanView {
            monthly: money(p.price_monthly_cents),
            yearly: money(p.price_yearly_cents),
            current: plan_id == Some(p.id),
            plan: p,
        })
        .collect();
    let manage = ws.0.role.may(Action::ManageBilling);
    let (lines, events, payments) = if manage {
        let lines = ledger::history(&state.pool, ws.id(), 50)
            .await?
            .into_iter()
            .map(|e| LineView {
                when: when(e.created_at),
                what: if e.description.is_empty() {
                    e.kind.label().to_owned()
                } else {
                    e.description
                },
                amount: money(e.amount_cents),
                balance: money(e.balance_after_cents),
                credit: e.amount_cents > 0,
            })
            .collect();
        let events = subscriptions::history(&state.pool, ws.id(), 50)
            .await?
            .into_iter()
            .map(|e| (when(e.created_at), e.kind.replace('_', " "), e.detail))
            .collect();
        let payments = payments::list(&state.pool, ws.id(), 50)
            .await?
            .into_iter()
            .map(|p| PaymentView {
                id: p.id,
                when: when(p.created_at),
                provider: ender_core::billing::payments::Provider::parse(&p.provider)
                    .map_or(p.provider.clone(), |x| x.label().to_owned()),
                amount: money(p.amount_cents),
                receipt: p.status == "completed",
                status: p.status,
            })
            .collect();
        (lines, events, payments)
    } else {
        (Vec::new(), Vec::new(), Vec::new())
    };
    let past_due_until = subscription
        .as_ref()
        .and_then(|s| s.past_due_since)
        .map(|t| when(t + chrono::Duration::days(state.sms.billing.grace_days)))
        .unwrap_or_default();
    Ok(BillingPage {
        shell,
        u,
        manage,
        subscription,
        past_due_until,
        balance: money(ledger::balance(&state.pool, ws.id()).await?),
        plans,
        providers: crate::payments::configured(&state.config.payments)
            .into_iter()
            .map(|p| (p.as_str(), p.label()))
            .collect(),
        topup_amount: String::new(),
        topup_provider: String::new(),
        topup_hint: format!(
            "From {} to {}",
            money(state.sms.billing.topup_min_cents),
            money(state.sms.billing.topup_max_cents)
        ),
        promo_code: String::new(),
        errors: Errors::default(),
        notice: String::new(),
        lines,
        events,
        payments,
    })
}

async fn show(
    State(state): State<AppState>,
    ws: CurrentWorkspace,
    shell: Shell,
    Query(q): Query<ShowQuery>,
) -> AppResult<BillingPage> {
    enabled(&state)?;
    let mut p = page(&state, &ws, shell).await?;
    // Back from a provider's checkout: the credit arrives with its callback.
    if q.topup == "canceled" {
        p.notice = "The top-up was canceled; nothing was charged.".to_owned();
    } else if let Ok(id) = q.topup.parse::<PaymentId>()
        && let Some(payment) = payments::get(&state.pool, ws.id(), id).await?
    {
        p.notice = if payment.status == "completed" {
            format!(
                "{} was added to the balance.",
                format_cents(payment.amount_cents, &payment.currency)
            )
        } else {
            "Thank you. The balance goes up as soon as the provider confirms the payment; reload this page in a moment."
                .to_owned()
        };
    }
    Ok(p)
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct TopupForm {
    amount: String,
    provider: String,
}

async fn topup(
    State(state): State<AppState>,
    ws: CurrentWorkspace,
    shell: Shell,
    Form(form): Form<TopupForm>,
) -> AppResult<Response> {
    enabled(&state)?;
    ws.may(Action::ManageBilling)?;
    let cents = parse_amount(&form.amount);
    match crate::payments::start_topup(&state, ws.id(), Some(ws.user_id()), &form.provider, cents).await {
        // A page with the link, not a redirect: the pages' `form-action 'self'` forbids a
        // form's answer from sending the browser to another site.
        Ok((_, checkout)) => Ok(LeavingPage {
            shell,
            provider: ender_core::billing::payments::Provider::parse(&form.provider)
                .map_or("the provider", |p| p.label()),
            amount: format_cents(cents.unwrap_or_default(), &state.sms.billing.currency),
            url: checkout.url,
        }
        .into_response()),
        Err(crate::payments::TopupError::Database(e)) => Err(e.into()),
        Err(e) => {
            let mut p = page(&state, &ws, shell).await?;
            p.topup_amount = form.amount;
            p.topup_provider = form.provider;
            let field = match e {
                crate::payments::TopupError::NoProvider | crate::payments::TopupError::UnknownProvider(_) => {
                    "provider"
                }
                _ => "amount",
            };
            p.errors = Errors::one(ender_core::FieldError::new(field, e.to_string()));
            let status = if matches!(e, crate::payments::TopupError::Provider(_)) {
                StatusCode::BAD_GATEWAY
            } else {
                StatusCode::UNPROCESSABLE_ENTITY
            };
            Ok((status, p).into_response())
        }
    }
}

#[derive(Template, WebTemplate)]
#[template(path = "billing/leaving.html")]
pub struct LeavingPage {
    pub shell: Shell,
    pub provider: &'static str,
    pub amount: String,
    pub url: String,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct PromoForm {
    code: String,
}

async fn redeem(
    State(state): State<AppState>,
    ws: CurrentWorkspace,
    session: Session,
    shell: Shell,
    Form(form): Form<PromoForm>,
) -> AppResult<Response> {
    enabled(&state)?;
    ws.may(Action::ManageBilling)?;
    match promo::redeem(&state.pool, ws.id(), Some(ws.user_id()), &form.code, Utc::now()).await {
        Ok(r) => {
            crate::routes::api::billing::after_credit(&state, ws.id()).await;
            let amount = format_cents(r.credit_cents, &state.sms.billing.currency);
            flash(&session, "success", format!("{amount} credited to your balance.")).await?;
            Ok(Redirect::to(PATH).into_response())
        }
        Err(promo::PromoError::Database(e)) => Err(e.into()),
        Err(e) => {
            let mut p = page(&state, &ws, shell).await?;
            p.promo_code = form.code;
            p.errors = Errors::one(ender_core::FieldError::new("code", format!("{e}.")));
            Ok((StatusCode::UNPROCESSABLE_ENTITY, p).into_response())
        }
    }
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct ChangeForm {
    plan: String,
    cycle: String,
}

#[derive(Template, WebTemplate)]
#[template(path = "billing/confirm.html")]
pub struct ConfirmPage {
    pub shell: Shell,
    pub title: String,
    pub lines: Vec<String>,
    pub action: &'static str,
    pub fields: Vec<(&'static str, String)>,
    pub button: String,
    pub danger: bool,
}

/// What choosing `plan` on `cycle` would do, in words, or why it cannot be chosen.
async fn describe_change(
    state: &AppState,
    ws: &CurrentWorkspace,
    plan: &Plan,
    cycle: Cycle,
) -> AppResult<Result<Vec<String>, String>> {
    let currency = state.sms.billing.currency.as_str();
    let money = |c: i64| format_cents(c, currency);
    let mut conn = state.pool.acquire().await?;
    let current = subscriptions::current(&mut conn, ws.id()).await?;
    drop(conn);
    let balance = ledger::balance(&state.pool, ws.id()).await?;
    let price = plan.price(cycle);
    let limits = format!(
        "{} allows {} SMS a month, {} devices, {} scheduled sends, {} API keys, {} webhook endpoints and {} members.",
        plan.name,
        plan.max_sms_per_month,
        plan.max_devices,
        plan.max_schedules,
        plan.max_api_keys,
        plan.max_webhooks,
        plan.max_members
    );
    let Some(s) = current else {
        if plan.is_free() {
            return Ok(Ok(vec![
                format!("The workspace moves to {} now, at no charge.", plan.name),
                limits,
            ]));
        }
        let mut lines = vec![
            format!(
                "{} ({}) starts now. {} is taken from the balance ({} now), and the same again every {} until you cancel.",
                plan.name,
                cycle.as_str(),
                money(price),
                money(balance),
                if cycle == Cycle::Yearly { "year" } else { "month" }
            ),
            limits,
        ];
        if balance < price {
            lines.push(format!(
                "The balance is too low: top up at least {} first.",
                money(price - balance)
            ));
        }
        return Ok(Ok(lines));
    };
    if s.status == Status::PastDue {
        return Ok(Err(
            "The subscription is past due: top up the balance to renew it first.".to_owned(),
        ));
    }
    if s.plan_id == plan.id && s.cycle == cycle {
        return Ok(if s.has_pending_change() {
            Ok(vec![format!(
                "You stay on {}: the change planned for {} is called off.",
                s.plan_name,
                s.current_period_end.format("%Y-%m-%d")
            )])
        } else {
            Err(format!(
                "The workspace is on {} ({}) already.",
                s.plan_name,
                cycle.as_str()
            ))
        });
    }
    let mut conn = state.pool.acquire().await?;
    let from = plans::get(&mut conn, s.plan_id)
        .await?
        .ok_or(AppError::NotFound)?;
    drop(conn);
    let end = s.current_period_end.format("%Y-%m-%d");
    Ok(Ok(if s.is_upgrade(&from, plan, cycle) {
        let refund = s.unused_cents(Utc::now());
        vec![
            format!(
                "{} ({}) starts now and replaces {}. The unused part of {} until {end}, {}, comes back to the balance; then {} is taken.",
                plan.name,
                cycle.as_str(),
                s.plan_name,
                s.plan_name,
                money(refund),
                money(price)
            ),
            limits,
        ]
    } else if plan.is_free() {
        vec![
            format!(
                "{} stays until {end}; then the workspace moves to {} and nothing more is charged.",
                s.plan_name, plan.name
            ),
            limits,
        ]
    } else {
        vec![
            format!(
                "{} stays until {end}; from then the workspace is on {} ({}) at {}.",
                s.plan_name,
                plan.name,
                cycle.as_str(),
                money(price)
            ),
            limits,
        ]
    }))
}

async fn find_plan(state: &AppState, raw: &str) -> AppResult<Plan> {
    let id: PlanId = raw.parse().map_err(|_| AppError::NotFound)?;
    let mut conn = state.pool.acquire().await?;
    plans::get(&mut conn, id)
        .await?
        .filter(|p| p.public || p.is_default)
        .ok_or(AppError::NotFound)
}

async fn confirm_change(
    State(state): State<AppState>,
    ws: CurrentWorkspace,
    session: Session,
    shell: Shell,
    Query(q): Query<ChangeForm>,
) -> AppResult<Response> {
    enabled(&state)?;
    ws.may(Action::ManageBilling)?;
    let plan = find_plan(&state, &q.plan).await?;
    let cycle = Cycle::parse(&q.cycle).unwrap_or(Cycle::Monthly);
    match describe_change(&state, &ws, &plan, cycle).await? {
        Ok(lines) => Ok(ConfirmPage {
            shell,
            title: format!("Move to {}?", plan.name),
            lines,
            action: "/billing/change",
            fields: vec![
                ("plan", plan.id.to_string()),
                ("cycle", cycle.as_str().to_owned()),
            ],
            button: format!("Move to {}", plan.name),
            danger: false,
        }
        .into_response()),
        Err(why) => {
            flash(&session, "error", why).await?;
            Ok(Redirect::to(PATH).into_response())
        }
    }
}

async fn change(
    State(state): State<AppState>,
    ws: CurrentWorkspace,
    session: Session,
    Form(form): Form<ChangeForm>,
) -> AppResult<Redirect> {
    enabled(&state)?;
    ws.may(Action::ManageBilling)?;
    let plan = find_plan(&state, &form.plan).await?;
    let cycle =
        Cycle::parse(&form.cycle).ok_or_else(|| AppError::BadRequest("unknown billing cycle".to_owned()))?;
    let outcome = subscriptions::upgrade(
        &state.pool,
        ws.id(),
        Some(ws.user_id()),
        plan.id,
        cycle,
        &state.sms.billing.currency,
        Utc::now(),
    )
    .await;
    match outcome {
        Ok(Change::Started(s)) => {
            flash(
                &session,
                "success",
                format!(
                    "The workspace is on {} until {}.",
                    s.plan_name,
                    s.current_period_end.format("%Y-%m-%d")
                ),
            )
            .await?
        }
        Ok(Change::Scheduled(s)) => {
            let msg = match (&s.next_plan_name, s.cancel_at_period_end) {
                (_, true) => format!(
                    "{} ends on {}.",
                    s.plan_name,
                    s.current_period_end.format("%Y-%m-%d")
                ),
                (Some(next), _) => format!(
                    "The workspace moves to {next} on {}.",
                    s.current_period_end.format("%Y-%m-%d")
                ),
                (None, _) => format!("You stay on {}.", s.plan_name),
            };
            flash(&session, "success", msg).await?
        }
        Ok(Change::FreePlan(name)) => {
            flash(&session, "success", format!("The workspace is on {name}.")).await?
        }
        Err(subscriptions::SubscriptionError::Database(e)) => return Err(e.into()),
        Err(e) => flash(&session, "error", e.to_string()).await?,
    }
    Ok(Redirect::to(PATH))
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct CancelForm {
    when: String,
}

async fn confirm_cancel(
    State(state): State<AppState>,
    ws: CurrentWorkspace,
    session: Session,
    shell: Shell,
    Query(q): Query<CancelForm>,
) -> AppResult<Response> {
    enabled(&state)?;
    ws.may(Action::ManageBilling)?;
    let mut conn = state.pool.acquire().await?;
    let Some(s) = subscriptions::current(&mut conn, ws.id()).await? else {
        flash(&session, "error", "There is no subscription to cancel.").await?;
        return Ok(Redirect::to(PATH).into_response());
    };
    drop(conn);
    let now = q.when == "now";
    let end = s.current_period_end.format("%Y-%m-%d");
    let lines = if now {
        vec![
            format!(
                "{} ends now and the workspace moves to the free plan at once.",
                s.plan_name
            ),
            format!("Nothing of the period paid until {end} is given back."),
        ]
    } else {
        vec![
            format!(
                "{} stays until {end}, then the workspace moves to the free plan.",
                s.plan_name
            ),
            "Nothing more is charged. You can choose the plan again before then to keep it.".to_owned(),
        ]
    };
    Ok(ConfirmPage {
        shell,
        title: if now {
            "Cancel now?".to_owned()
        } else {
            format!("Cancel at the end of the period ({end})?")
        },
        lines,
        action: "/billing/cancel",
        fields: vec![("when", if now { "now" } else { "end" }.to_owned())],
        button: if now {
            "Cancel now".to_owned()
        } else {
            "Cancel at period end".to_owned()
        },
        danger: true,
    }
    .into_response())
}

async fn cancel(
    State(state): State<AppState>,
    ws: CurrentWorkspace,
    session: Session,
    Form(form): Form<CancelForm>,
) -> AppResult<Redirect> {
    enabled(&state)?;
    ws.may(Action::ManageBilling)?;
    match subscriptions::cancel(
        &state.pool,
        ws.id(),
        Some(ws.user_id()),
        form.when == "now",
        Utc::now(),
    )
    .await
    {
        Ok(s) if s.ended_at.is_some() => {
            flash(&session, "success", format!("{} was canceled.", s.plan_name)).await?
        }
        Ok(s) => {
            flash(
                &session,
                "success",
                format!(
                    "{} ends on {}.",
                    s.plan_name,
                    s.current_period_end.format("%Y-%m-%d")
                ),
            )
            .await?
        }
        Err(subscriptions::SubscriptionError::Database(e)) => return Err(e.into()),
        Err(e) => flash(&session, "error", e.to_string()).await?,
    }
    Ok(Redirect::to(PATH))
}

#[derive(Template, WebTemplate)]
#[template(path = "billing/receipt.html")]
pub struct ReceiptPage {
    pub workspace: String,
    pub payment: Payment,
    pub provider: String,
    pub amount: String,
    pub paid_at: String,
    pub instance: String,
}

async fn receipt(
    State(state): State<AppState>,
    ws: CurrentWorkspace,
    Path(raw): Path<String>,
) -> AppResult<ReceiptPage> {
    enabled(&state)?;
    ws.may(Action::ManageBilling)?;
    let id: PaymentId = raw.parse().map_err(|_| AppError::NotFound)?;
    let payment = payments::get(&state.pool, ws.id(), id)
        .await?
        .filter(|p| p.status == "completed")
        .ok_or(AppError::NotFound)?;
    Ok(ReceiptPage {
        workspace: ws.0.workspace.name.clone(),
        provider: ender_core::billing::payments::Provider::parse(&payment.provider)
            .map_or(payment.provider.clone(), |p| p.label().to_owned()),
        amount: format_cents(payment.amount_cents, &payment.currency),
        paid_at: payment.completed_at.map(when).unwrap_or_default(),
        instance: state.config.public_url.host_str().unwrap_or("Ender").to_owned(),
        payment,
    })
}
