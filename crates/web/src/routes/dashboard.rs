//! The dashboard home and the sections still to come.

use askama::Template;
use askama_web::WebTemplate;
use axum::Router;
use axum::routing::get;

use crate::session::CurrentUser;
use crate::state::AppState;
use crate::views::Shell;

pub fn routes() -> Router<AppState> {
    let mut router = Router::new().route("/", get(home));
    for (path, _) in SECTIONS {
        router = router.route(path, get(section));
    }
    router
}

/// Sections of the navigation that are not built yet, with what they will hold.
const SECTIONS: &[(&str, &str)] = &[
    (
        "/messages",
        "Messages: your outbox and inbox with live delivery status.",
    ),
    ("/devices", "Devices: the phones and modems that send your SMS."),
    ("/contacts", "Contacts and groups: your address book."),
    ("/templates", "Templates: reusable message texts with variables."),
    (
        "/scheduled",
        "Scheduled: sends that happen on their own, once or on a schedule.",
    ),
    (
        "/webhooks",
        "Webhooks: signed notifications to your software when messages move.",
    ),
    (
        "/api-keys",
        "API keys: credentials for your own software to use the API.",
    ),
    ("/billing", "Billing: your plan, quotas and usage."),
];

#[derive(Template, WebTemplate)]
#[template(path = "dashboard/home.html")]
pub struct HomePage {
    pub shell: Shell,
}

async fn home(CurrentUser(_user): CurrentUser, shell: Shell) -> HomePage {
    HomePage { shell }
}

#[derive(Template, WebTemplate)]
#[template(path = "dashboard/soon.html")]
pub struct SoonPage {
    pub shell: Shell,
    pub title: &'static str,
    pub description: &'static str,
}

async fn section(CurrentUser(_user): CurrentUser, shell: Shell) -> SoonPage {
    let entry = SECTIONS
        .iter()
        .find(|(p, _)| shell.active(p))
        .map(|(_, d)| *d)
        .unwrap_or("");
    let (title, description) = entry.split_once(": ").unwrap_or((entry, ""));
    SoonPage {
        shell,
        title,
        description,
    }
}
