//! Fake Stripe and QvaPay on loopback, speaking their real HTTP: Stripe's
//! `POST /v1/checkout/sessions` (form-encoded, bearer key) with a checkout page whose Pay
//! button sends Ender a `checkout.session.completed` event signed with the real
//! `Stripe-Signature` scheme; QvaPay's `create_invoice` and `transactions/{uuid}` (app-id
//! and app-secret headers), with transactions the test marks paid.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::extract::{Form, Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{Value, json};

pub const STRIPE_KEY: &str = "sk_test_ender";
pub const STRIPE_WHSEC: &str = "whsec_test_ender";
pub const QVAPAY_ID: &str = "qv-app";
pub const QVAPAY_SECRET: &str = "qv-secret";

#[derive(Debug, Clone)]
pub struct Session {
    pub id: String,
    pub form: HashMap<String, String>,
}

#[derive(Debug, Clone)]
pub struct Invoice {
    pub uuid: String,
    pub body: Value,
    pub paid: bool,
}

#[derive(Default)]
struct Inner {
    sessions: Vec<Session>,
    invoices: Vec<Invoice>,
    /// Where paid checkouts are reported (Ender's Stripe callback).
    stripe_callback: String,
    refuse_checkouts: bool,
}

#[derive(Clone)]
pub struct FakePay {
    inner: Arc<Mutex<Inner>>,
    pub base: String,
}

impl FakePay {
    pub async fn start() -> Self {
        let inner = Arc::new(Mutex::new(Inner::default()));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let fake = Self { inner, base };
        let router = Router::new()
            .route("/v1/checkout/sessions", post(create_session))
            .route("/checkout/{id}", get(checkout_page))
            .route("/checkout/{id}/pay", post(pay))
            .route("/qvapay/create_invoice", post(create_invoice))
            .route("/qvapay/transactions/{uuid}", post(transaction))
            .with_state(fake.clone());
        tokio::spawn(async move { axum::serve(listener, router).await });
        fake
    }

    /// The arguments that point Ender at this fake.
    pub fn args(&self) -> Vec<String> {
        vec![
            "--stripe-secret-key".into(),
            STRIPE_KEY.into(),
            "--stripe-webhook-secret".into(),
            STRIPE_WHSEC.into(),
            "--stripe-api-base".into(),
            self.base.clone(),
            "--qvapay-app-id".into(),
            QVAPAY_ID.into(),
            "--qvapay-app-secret".into(),
            QVAPAY_SECRET.into(),
            "--qvapay-api-base".into(),
            format!("{}/qvapay", self.base),
        ]
    }

    pub fn report_to(&self, callback: String) {
        self.inner.lock().unwrap().stripe_callback = callback;
    }

    pub fn refuse_checkouts(&self) {
        self.inner.lock().unwrap().refuse_checkouts = true;
    }

    pub fn sessions(&self) -> Vec<Session> {
        self.inner.lock().unwrap().sessions.clone()
    }

    pub fn invoices(&self) -> Vec<Invoice> {
        self.inner.lock().unwrap().invoices.clone()
    }

    pub fn mark_paid(&self, uuid: &str) {
        for i in &mut self.inner.lock().unwrap().invoices {
            if i.uuid == uuid {
                i.paid = true;
            }
        }
    }
}

/// A Stripe event for a checkout session, as Stripe would send it.
pub fn checkout_event(session: &Session, status: &str, amount_total: i64) -> Vec<u8> {
    let reference = session
        .form
        .get("client_reference_id")
        .cloned()
        .unwrap_or_default();
    serde_json::to_vec(&json!({
        "id": format!("evt_{}", session.id),
        "object": "event",
        "type": "checkout.session.completed",
        "data": {"object": {
            "id": session.id, "object": "checkout.session", "mode": "payment",
            "payment_status": status, "status": "complete",
            "amount_total": amount_total,
            "currency": session.form.get("line_items[0][price_data][currency]").cloned().unwrap_or_default(),
            "payment_intent": format!("pi_{}", session.id),
            "client_reference_id": reference,
            "metadata": {"payment_id": reference},
        }}
    }))
    .unwrap()
}

/// `Stripe-Signature` for `body` signed at `t`.
pub fn signature(secret: &str, t: i64, body: &[u8]) -> String {
    format!("t={t},v1={}", ender_core::billing::stripe::sign(secret, t, body))
}

async fn create_session(
    State(f): State<FakePay>,
    headers: HeaderMap,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    if headers.get("authorization").and_then(|v| v.to_str().ok()) != Some(&format!("Bearer {STRIPE_KEY}")) {
        return (
            StatusCode::UNAUTHORIZED,
            Json(json!({"error": {"message": "Invalid API Key provided"}})),
        )
            .into_response();
    }
    let mut inner = f.inner.lock().unwrap();
    if inner.refuse_checkouts {
        return (
            StatusCode::BAD_REQUEST,
            Json(json!({"error": {"message": "Amount must be at least 50 cents"}})),
        )
            .into_response();
    }
    let id = format!("cs_test_{}", inner.sessions.len() + 1);
    inner.sessions.push(Session { id: id.clone(), form });
    Json(json!({"id": id, "object": "checkout.session", "url": format!("{}/checkout/{id}", f.base)}))
        .into_response()
}

async fn checkout_page(State(f): State<FakePay>, Path(id): Path<String>) -> Response {
    let inner = f.inner.lock().unwrap();
    let Some(s) = inner.sessions.iter().find(|s| s.id == id) else {
        return StatusCode::NOT_FOUND.into_response();
    };
    let amount = s
        .form
        .get("line_items[0][price_data][unit_amount]")
        .cloned()
        .unwrap_or_default();
    Html(format!(
        "<!doctype html><title>Fake Stripe Checkout</title><h1>Pay {amount} cents</h1>\
         <form method=post action=/checkout/{id}/pay><button id=pay type=submit>Pay</button></form>"
    ))
    .into_response()
}

/// The payer pays: Stripe tells Ender (signed), then sends the payer back.
async fn pay(State(f): State<FakePay>, Path(id): Path<String>) -> Response {
    let (session, callback) = {
        let inner = f.inner.lock().unwrap();
        let Some(s) = inner.sessions.iter().find(|s| s.id == id).cloned() else {
            return StatusCode::NOT_FOUND.into_response();
        };
        (s, inner.stripe_callback.clone())
    };
    let amount: i64 = session.form["line_items[0][price_data][unit_amount]"]
        .parse()
        .unwrap();
    let body = checkout_event(&session, "paid", amount);
    let t = chrono::Utc::now().timestamp();
    let res = reqwest::Client::new()
        .post(&callback)
        .header("stripe-signature", signature(STRIPE_WHSEC, t, &body))
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .unwrap();
    assert!(
        res.status().is_success(),
        "Ender refused the paid checkout: {}",
        res.text().await.unwrap()
    );
    Redirect::to(&session.form["success_url"]).into_response()
}

fn qvapay_authorized(headers: &HeaderMap) -> bool {
    headers.get("app-id").and_then(|v| v.to_str().ok()) == Some(QVAPAY_ID)
        && headers.get("app-secret").and_then(|v| v.to_str().ok()) == Some(QVAPAY_SECRET)
}

async fn create_invoice(State(f): State<FakePay>, headers: HeaderMap, Json(body): Json<Value>) -> Response {
    if !qvapay_authorized(&headers) {
        return (StatusCode::UNAUTHORIZED, Json(json!({"error": "Unauthorized"}))).into_response();
    }
    let mut inner = f.inner.lock().unwrap();
    let uuid = format!("9b1c{:04}-0000-4000-8000-000000000000", inner.invoices.len() + 1);
    inner.invoices.push(Invoice {
        uuid: uuid.clone(),
        body,
        paid: false,
    });
    Json(json!({"url": format!("{}/qvapay/pay/{uuid}", f.base), "transaction_uuid": uuid})).into_response()
}

async fn transaction(State(f): State<FakePay>, headers: HeaderMap, Path(uuid): Path<String>) -> Response {
    if !qvapay_authorized(&headers) {
        return (StatusCode::UNAUTHORIZED, Json(json!({"error": "Unauthorized"}))).into_response();
    }
    let inner = f.inner.lock().unwrap();
    let Some(i) = inner.invoices.iter().find(|i| i.uuid == uuid) else {
        return (
            StatusCode::NOT_FOUND,
            Json(json!({"error": "Transaction not found"})),
        )
            .into_response();
    };
    Json(json!({
        "uuid": i.uuid,
        "status": if i.paid { "paid" } else { "pending" },
        "remote_id": i.body["remote_id"],
        "amount": format!("{:.2}", i.body["amount"].as_f64().unwrap_or(0.0)),
    }))
    .into_response()
}
