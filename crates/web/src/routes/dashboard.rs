//! The dashboard home.

use askama::Template;
use askama_web::WebTemplate;
use axum::Router;
use axum::routing::get;

use axum::extract::State;
use ender_core::sms::repo::{self, Stats};

use crate::error::AppResult;
use crate::session::CurrentWorkspace;
use crate::state::AppState;
use crate::views::Shell;

pub fn routes() -> Router<AppState> {
    Router::new().route("/", get(home))
}

#[derive(Template, WebTemplate)]
#[template(path = "dashboard/home.html")]
pub struct HomePage {
    pub shell: Shell,
    pub stats: Stats,
    pub delivered_percent: String,
    pub devices_online: usize,
    pub devices_total: usize,
    pub chart: String,
    /// The plan and its SMS allowance (billing on only).
    pub usage: Option<crate::routes::billing::Usage>,
}

async fn home(State(state): State<AppState>, ws: CurrentWorkspace, shell: Shell) -> AppResult<HomePage> {
    let stats = repo::stats(&state.pool, ws.id()).await?;
    let devices = ender_core::device::list(&state.pool, ws.id()).await?;
    let window = state.sms.device_seen_window_secs;
    let daily = repo::daily(&state.pool, ws.id(), 14).await?;
    let usage = if state.sms.billing.enabled {
        Some(crate::routes::billing::Usage::of(&state, ws.id()).await?)
    } else {
        None
    };
    Ok(HomePage {
        usage,
        delivered_percent: stats
            .delivered_percent()
            .map(|p| format!("{p}%"))
            .unwrap_or_else(|| "—".to_owned()),
        devices_online: devices
            .iter()
            .filter(|d| d.enabled && d.is_online(window))
            .count(),
        devices_total: devices.len(),
        chart: chart_svg(&daily),
        stats,
        shell,
    })
}

/// Sent and delivered per day as a bar chart in SVG (no script, scales with its box).
pub fn chart_svg(days: &[(chrono::NaiveDate, i64, i64)]) -> String {
    let (w, h, pad) = (560.0_f64, 180.0_f64, 22.0_f64);
    let max = days.iter().map(|d| d.1.max(d.2)).max().unwrap_or(0).max(1) as f64;
    let slot = (w - pad) / days.len().max(1) as f64;
    let bar = (slot / 2.0 - 2.0).max(1.0);
    let mut out = format!(
        r#"<svg class="chart" viewBox="0 0 {w} {h}" role="img" aria-label="Sent and delivered per day, last {} days" xmlns="http://www.w3.org/2000/svg">"#,
        days.len()
    );
    out.push_str(&format!(
        r#"<line class="axis" x1="{pad}" y1="{y}" x2="{w}" y2="{y}"/>"#,
        y = h - pad
    ));
    out.push_str(&format!(
        r#"<text class="label" x="0" y="12">{}</text>"#,
        max as i64
    ));
    for (i, (day, sent, delivered)) in days.iter().enumerate() {
        let x = pad + i as f64 * slot + 1.0;
        for (j, (value, class)) in [(*sent, "sent"), (*delivered, "delivered")]
            .into_iter()
            .enumerate()
        {
            let height = (value as f64 / max) * (h - pad * 2.0);
            out.push_str(&format!(
                r#"<rect class="{class}" x="{:.1}" y="{:.1}" width="{bar:.1}" height="{height:.1}"><title>{day}: {value} {class}</title></rect>"#,
                x + j as f64 * (bar + 1.0),
                h - pad - height
            ));
        }
        if i % 2 == 0 {
            out.push_str(&format!(
                r#"<text class="label" x="{x:.1}" y="{:.1}">{}</text>"#,
                h - 6.0,
                day.format("%d %b")
            ));
        }
    }
    out.push_str("</svg>");
    out
}
