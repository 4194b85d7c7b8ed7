//! The administrators' console.

use askama::Template;
use askama_web::WebTemplate;
use axum::Router;
use axum::extract::State;
use axum::routing::get;
use chrono::{DateTime, Utc};

use super::paths;
use crate::error::AppResult;
use crate::session::AdminUser;
use crate::state::AppState;
use crate::views::Shell;

pub fn routes() -> Router<AppState> {
    Router::new().route(paths::ADMIN, get(index))
}

pub struct UserRow {
    pub email: String,
    pub full_name: String,
    pub verified: bool,
    pub is_admin: bool,
    pub created_at: DateTime<Utc>,
}

#[derive(Template, WebTemplate)]
#[template(path = "admin/index.html")]
pub struct AdminPage {
    pub shell: Shell,
    pub total_users: i64,
    pub users: Vec<UserRow>,
}

async fn index(
    State(state): State<AppState>,
    AdminUser(_admin): AdminUser,
    shell: Shell,
) -> AppResult<AdminPage> {
    let recent = ender_core::account::repo::recent(&mut *state.pool.acquire().await?, 50).await?;
    let total_users = ender_core::account::repo::count(&mut *state.pool.acquire().await?).await?;
    Ok(AdminPage {
        shell,
        total_users,
        users: recent
            .into_iter()
            .map(|u| UserRow {
                verified: u.is_verified(),
                email: u.email,
                full_name: u.full_name,
                is_admin: u.is_admin,
                created_at: u.created_at,
            })
            .collect(),
    })
}
