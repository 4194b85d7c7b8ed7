//! The console's plans and promo codes.

use askama::Template;
use askama_web::WebTemplate;
use axum::Router;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use chrono::{NaiveDate, Utc};
use ender_core::FieldError;
use ender_core::admin::AdminError;
use ender_core::admin::plans::{self, PlanInput};
use ender_core::billing::promo::NewPromo;
use ender_core::billing::{PlanId, format_cents};
use serde::Deserialize;
use tower_sessions::Session;

use super::{admin_of, done, refused, settle, when};
use crate::error::{AppError, AppResult};
use crate::extract::Form;
use crate::session::AdminUser;
use crate::state::AppState;
use crate::views::{Errors, Shell};

const LIST: &str = "/admin/plans";

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/admin/plans", get(list_page).post(create))
        .route("/admin/plans/new", get(new_page))
        .route("/admin/plans/{id}", get(edit_page).post(update))
        .route("/admin/plans/{id}/{action}", post(plan_action))
        .route("/admin/promos", get(promos_page).post(create_promo))
}

fn parse(raw: &str) -> AppResult<PlanId> {
    raw.parse::<uuid::Uuid>()
        .map(PlanId)
        .map_err(|_| AppError::NotFound)
}

pub struct PlanRow {
    pub id: String,
    pub name: String,
    pub slug: String,
    pub sms: i32,
    pub devices: i32,
    pub monthly: String,
    pub yearly: String,
    pub public: bool,
    pub default: bool,
    pub retired: bool,
    pub workspaces: i64,
}

#[derive(Template, WebTemplate)]
#[template(path = "admin/plans.html")]
pub struct PlansPage {
    pub shell: Shell,
    pub plans: Vec<PlanRow>,
}

async fn list_page(
    State(state): State<AppState>,
    AdminUser(_admin): AdminUser,
    shell: Shell,
) -> AppResult<PlansPage> {
    let currency = &state.sms.billing.currency;
    let plans = plans::list(&state.pool)
        .await?
        .into_iter()
        .map(|l| PlanRow {
            id: l.plan.id.to_string(),
            monthly: format_cents(l.plan.price_monthly_cents, currency),
            yearly: format_cents(l.plan.price_yearly_cents, currency),
            name: l.plan.name,
            slug: l.plan.slug,
            sms: l.plan.max_sms_per_month,
            devices: l.plan.max_devices,
            public: l.plan.public,
            default: l.plan.is_default,
            retired: l.plan.retired,
            workspaces: l.workspaces,
        })
        .collect();
    Ok(PlansPage { shell, plans })
}

#[derive(Template, WebTemplate)]
#[template(path = "admin/plan_form.html")]
pub struct PlanFormPage {
    pub shell: Shell,
    /// `None` for a new plan.
    pub id: Option<String>,
    pub form: PlanInput,
    pub errors: Errors,
}

async fn new_page(AdminUser(_admin): AdminUser, shell: Shell) -> PlanFormPage {
    PlanFormPage {
        shell,
        id: None,
        form: PlanInput {
            max_members: "1".into(),
            price_monthly: "0".into(),
            price_yearly: "0".into(),
            public: Some("on".into()),
            ..PlanInput::default()
        },
        errors: Errors::default(),
    }
}

async fn edit_page(
    State(state): State<AppState>,
    AdminUser(_admin): AdminUser,
    shell: Shell,
    Path(id): Path<String>,
) -> AppResult<PlanFormPage> {
    let id = parse(&id)?;
    let plan = ender_core::billing::plans::get(&mut *state.pool.acquire().await?, id)
        .await?
        .ok_or(AppError::NotFound)?;
    Ok(PlanFormPage {
        shell,
        id: Some(id.to_string()),
        form: PlanInput::from_plan(&plan),
        errors: Errors::default(),
    })
}

fn again(shell: Shell, id: Option<PlanId>, form: PlanInput, errors: Vec<FieldError>) -> Response {
    (
        StatusCode::UNPROCESSABLE_ENTITY,
        PlanFormPage {
            shell,
            id: id.map(|i| i.to_string()),
            form,
            errors: Errors(errors),
        },
    )
        .into_response()
}

async fn create(
    State(state): State<AppState>,
    AdminUser(admin): AdminUser,
    session: Session,
    shell: Shell,
    Form(form): Form<PlanInput>,
) -> AppResult<Response> {
    let values = match form.check() {
        Ok(v) => v,
        Err(errors) => return Ok(again(shell, None, form, errors)),
    };
    match plans::create(&state.pool, &admin_of(&admin), &values).await {
        Ok(_) => done(&session, LIST, format!("The plan {} is created.", values.name)).await,
        Err(AdminError::Invalid(e)) => Ok(again(shell, None, form, vec![e])),
        Err(e) => refused(&session, LIST, e).await,
    }
}

async fn update(
    State(state): State<AppState>,
    AdminUser(admin): AdminUser,
    session: Session,
    shell: Shell,
    Path(id): Path<String>,
    Form(form): Form<PlanInput>,
) -> AppResult<Response> {
    let id = parse(&id)?;
    let values = match form.check() {
        Ok(v) => v,
        Err(errors) => return Ok(again(shell, Some(id), form, errors)),
    };
    match plans::update(&state.pool, &admin_of(&admin), id, &values).await {
        Ok(()) => done(&session, LIST, format!("The plan {} is saved.", values.name)).await,
        Err(AdminError::Invalid(e)) => Ok(again(shell, Some(id), form, vec![e])),
        Err(e) => refused(&session, LIST, e).await,
    }
}

/// `POST /admin/plans/{id}/{action}`: retire, restore, up, down and default.
async fn plan_action(
    State(state): State<AppState>,
    AdminUser(admin): AdminUser,
    session: Session,
    Path((id, action)): Path<(String, String)>,
) -> AppResult<Response> {
    let id = parse(&id)?;
    let (pool, by) = (&state.pool, admin_of(&admin));
    let (result, text) = match action.as_str() {
        "retire" => (
            plans::set_retired(pool, &by, id, true).await,
            "Retired: nobody may choose it now; its subscribers keep it until their renewal.",
        ),
        "restore" => (
            plans::set_retired(pool, &by, id, false).await,
            "The plan is offered again.",
        ),
        "up" => (plans::reorder(pool, &by, id, true).await, "Moved up."),
        "down" => (plans::reorder(pool, &by, id, false).await, "Moved down."),
        "default" => (
            plans::set_default(pool, &by, id).await,
            "New workspaces get this plan now.",
        ),
        _ => return Err(AppError::NotFound),
    };
    settle(&session, result, LIST, LIST, text).await
}

pub struct PromoRow {
    pub code: String,
    pub credit: String,
    pub window: String,
    pub redeemed: i32,
    pub max: String,
    pub per_workspace: i32,
    pub active: bool,
}

#[derive(Debug, Default, Deserialize)]
pub struct PromoForm {
    #[serde(default)]
    pub code: String,
    #[serde(default)]
    pub credit: String,
    #[serde(default)]
    pub valid_until: String,
    #[serde(default)]
    pub max_redemptions: String,
    #[serde(default)]
    pub max_per_workspace: String,
}

#[derive(Template, WebTemplate)]
#[template(path = "admin/promos.html")]
pub struct PromosPage {
    pub shell: Shell,
    pub promos: Vec<PromoRow>,
    pub form: PromoForm,
    pub errors: Errors,
}

async fn promos_view(
    state: &AppState,
    shell: Shell,
    form: PromoForm,
    errors: Errors,
) -> AppResult<PromosPage> {
    let currency = &state.sms.billing.currency;
    let promos = plans::promos(&state.pool)
        .await?
        .into_iter()
        .map(|p| PromoRow {
            credit: format_cents(p.credit_cents, currency),
            window: match p.valid_until {
                Some(u) => format!("{} to {}", when(p.valid_from), when(u)),
                None => format!("from {}", when(p.valid_from)),
            },
            redeemed: p.redeemed,
            max: p
                .max_redemptions
                .map_or_else(|| "no limit".to_owned(), |m| m.to_string()),
            per_workspace: p.max_per_workspace,
            active: p.active,
            code: p.code,
        })
        .collect();
    Ok(PromosPage {
        shell,
        promos,
        form,
        errors,
    })
}

async fn promos_page(
    State(state): State<AppState>,
    AdminUser(_admin): AdminUser,
    shell: Shell,
) -> AppResult<PromosPage> {
    let form = PromoForm {
        max_per_workspace: "1".into(),
        ..PromoForm::default()
    };
    promos_view(&state, shell, form, Errors::default()).await
}

fn check_promo(form: &PromoForm) -> Result<NewPromo, Vec<FieldError>> {
    let mut errors = Vec::new();
    let credit = ender_core::billing::parse_amount(form.credit.trim()).unwrap_or_else(|| {
        errors.push(FieldError::new(
            "credit",
            "Enter the credit as an amount, such as 5.00.",
        ));
        0
    });
    let valid_until = match form.valid_until.trim() {
        "" => None,
        raw => match NaiveDate::parse_from_str(raw, "%Y-%m-%d") {
            Ok(d) => d.and_hms_opt(23, 59, 59).map(|t| t.and_utc()),
            Err(_) => {
                errors.push(FieldError::new(
                    "valid_until",
                    "Enter a date as YYYY-MM-DD, or leave it empty.",
                ));
                None
            }
        },
    };
    let max_redemptions = match form.max_redemptions.trim() {
        "" => None,
        raw => match raw.parse::<i32>() {
            Ok(n) => Some(n),
            Err(_) => {
                errors.push(FieldError::new(
                    "max_redemptions",
                    "Enter a whole number, or leave it empty.",
                ));
                None
            }
        },
    };
    let max_per_workspace = match form.max_per_workspace.trim() {
        "" => 1,
        raw => raw.parse::<i32>().unwrap_or_else(|_| {
            errors.push(FieldError::new("max_per_workspace", "Enter a whole number."));
            1
        }),
    };
    if errors.is_empty() {
        Ok(NewPromo {
            code: form.code.clone(),
            credit_cents: credit,
            valid_from: Utc::now(),
            valid_until,
            max_redemptions,
            max_per_workspace,
        })
    } else {
        Err(errors)
    }
}

async fn create_promo(
    State(state): State<AppState>,
    AdminUser(admin): AdminUser,
    session: Session,
    shell: Shell,
    Form(form): Form<PromoForm>,
) -> AppResult<Response> {
    let errors = match check_promo(&form) {
        Ok(new) => match plans::create_promo(&state.pool, &admin_of(&admin), &new).await {
            Ok(_) => {
                return done(
                    &session,
                    "/admin/promos",
                    format!(
                        "The code {} is ready.",
                        ender_core::billing::promo::normalize(&new.code)
                    ),
                )
                .await;
            }
            Err(AdminError::Invalid(e)) => vec![e],
            Err(e) => return refused(&session, "/admin/promos", e).await,
        },
        Err(errors) => errors,
    };
    let page = promos_view(&state, shell, form, Errors(errors)).await?;
    Ok((StatusCode::UNPROCESSABLE_ENTITY, page).into_response())
}
