//! Choosing the workspace to look at: the switcher in the top bar posts here. The choice
//! lives in the session, so every page keeps its address whichever workspace it shows.

use axum::Router;
use axum::extract::State;
use axum::response::Redirect;
use axum::routing::post;
use ender_core::workspace::WorkspaceId;
use serde::Deserialize;
use tower_sessions::Session;

use crate::error::AppResult;
use crate::extract::Form;
use crate::session::{CurrentUser, flash, switch_workspace};
use crate::state::AppState;

pub const SWITCH: &str = "/workspaces/switch";

pub fn routes() -> Router<AppState> {
    Router::new().route(SWITCH, post(switch))
}

#[derive(Deserialize)]
struct SwitchForm {
    workspace: String,
}

/// Makes the chosen workspace current, if the user belongs to it (otherwise the same 404
/// whether or not it exists), and opens its dashboard.
async fn switch(
    State(state): State<AppState>,
    CurrentUser(user): CurrentUser,
    session: Session,
    Form(form): Form<SwitchForm>,
) -> AppResult<Redirect> {
    let id = form
        .workspace
        .trim()
        .parse::<uuid::Uuid>()
        .map_err(|_| crate::error::AppError::NotFound)?;
    let m = ender_core::workspace::membership(&state.pool, WorkspaceId(id), user.id).await?;
    switch_workspace(&session, &m).await?;
    flash(
        &session,
        "success",
        format!("You are now in {}.", m.workspace.name),
    )
    .await?;
    Ok(Redirect::to("/"))
}
