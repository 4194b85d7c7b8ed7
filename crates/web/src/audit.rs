//! Writing the workspace's audit trail from pages and API routes, after the action it
//! records succeeded. A failure to write is logged, not shown: the action itself is done.

use ender_core::workspace::WorkspaceId;
use ender_core::workspace::audit::{self, Actor};
use serde_json::Value;

use crate::state::AppState;

pub async fn note(
    state: &AppState,
    workspace: WorkspaceId,
    actor: Actor,
    action: &str,
    subject: &str,
    detail: Value,
) {
    if let Err(e) = audit::record(&state.pool, workspace, actor, action, subject, detail).await {
        tracing::error!(workspace.id = %workspace, action, error = %e, "writing the audit trail failed");
    }
}
