//! The payment providers' HTTP side: making a Stripe Checkout session or a QvaPay invoice
//! for a top-up, and asking QvaPay whether the transaction its (unsigned) callback names
//! was really paid. Each provider's base URL is configurable (tests run fakes on loopback).

use ender_core::billing::PaymentId;
use ender_core::billing::payments::Provider;
use secrecy::ExposeSecret;
use serde_json::{Value, json};

use crate::config::PaymentConfig;

/// What the payer opens to pay.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checkout {
    /// The provider's id of the checkout (a Stripe session, a QvaPay invoice).
    pub reference: String,
    pub url: String,
}

#[derive(Debug, thiserror::Error)]
pub enum ProviderError {
    #[error("{0} is not configured on this server.")]
    NotConfigured(&'static str),
    #[error("{0} could not be reached. Try again in a moment.")]
    Unreachable(&'static str),
    #[error("{provider} refused the payment: {message}")]
    Refused { provider: &'static str, message: String },
}

/// The providers whose keys are set, in the order the Billing page offers them.
pub fn configured(cfg: &PaymentConfig) -> Vec<Provider> {
    Provider::ALL
        .into_iter()
        .filter(|p| match p {
            Provider::Stripe => cfg.stripe_secret_key.is_some() && cfg.stripe_webhook_secret.is_some(),
            Provider::Qvapay => cfg.qvapay_app_id.is_some() && cfg.qvapay_app_secret.is_some(),
        })
        .collect()
}

/// Where a top-up goes and comes back.
pub struct Urls {
    pub success: String,
    pub cancel: String,
    pub callback: String,
}

fn endpoint(base: &url::Url, path: &str) -> String {
    format!("{}{path}", base.as_str().trim_end_matches('/'))
}

/// Sends a request to `provider` and reads its JSON answer with the status.
async fn exchange(
    req: reqwest::RequestBuilder,
    provider: &'static str,
) -> Result<(reqwest::StatusCode, Value), ProviderError> {
    let res = req
        .send()
        .await
        .map_err(|_| ProviderError::Unreachable(provider))?;
    let status = res.status();
    let body = res
        .json()
        .await
        .map_err(|_| ProviderError::Unreachable(provider))?;
    Ok((status, body))
}

/// A POST to QvaPay's API with the app's credentials.
fn qvapay_post(
    http: &reqwest::Client,
    cfg: &PaymentConfig,
    path: &str,
) -> Result<reqwest::RequestBuilder, ProviderError> {
    let (id, secret) = qvapay_keys(cfg)?;
    Ok(http
        .post(endpoint(&cfg.qvapay_api_base, path))
        .header("app-id", id)
        .header("app-secret", secret))
}

/// Makes the provider's checkout for `payment`, which carries our payment id so the
/// callback can name it.
pub async fn checkout(
    http: &reqwest::Client,
    cfg: &PaymentConfig,
    provider: Provider,
    payment: PaymentId,
    amount_cents: i64,
    currency: &str,
    urls: &Urls,
) -> Result<Checkout, ProviderError> {
    match provider {
        Provider::Stripe => stripe_checkout(http, cfg, payment, amount_cents, currency, urls).await,
        Provider::Qvapay => qvapay_invoice(http, cfg, payment, amount_cents, urls).await,
    }
}

async fn stripe_checkout(
    http: &reqwest::Client,
    cfg: &PaymentConfig,
    payment: PaymentId,
    amount_cents: i64,
    currency: &str,
    urls: &Urls,
) -> Result<Checkout, ProviderError> {
    let key = cfg
        .stripe_secret_key
        .as_ref()
        .ok_or(ProviderError::NotConfigured("Stripe"))?;
    let form = [
        ("mode", "payment".to_owned()),
        ("line_items[0][price_data][currency]", currency.to_owned()),
        (
            "line_items[0][price_data][product_data][name]",
            "Balance top-up".to_owned(),
        ),
        ("line_items[0][price_data][unit_amount]", amount_cents.to_string()),
        ("line_items[0][quantity]", "1".to_owned()),
        ("client_reference_id", payment.to_string()),
        ("metadata[payment_id]", payment.to_string()),
        ("success_url", urls.success.clone()),
        ("cancel_url", urls.cancel.clone()),
    ];
    let req = http
        .post(endpoint(&cfg.stripe_api_base, "/v1/checkout/sessions"))
        .bearer_auth(key.expose_secret())
        .header("Idempotency-Key", payment.to_string())
        .form(&form);
    let (status, body) = exchange(req, "Stripe").await?;
    if !status.is_success() {
        return Err(ProviderError::Refused {
            provider: "Stripe",
            message: body["error"]["message"].as_str().unwrap_or("an error").to_owned(),
        });
    }
    match (body["id"].as_str(), body["url"].as_str()) {
        (Some(id), Some(url)) => Ok(Checkout {
            reference: id.to_owned(),
            url: url.to_owned(),
        }),
        _ => Err(ProviderError::Refused {
            provider: "Stripe",
            message: "the checkout session came without an id or URL".to_owned(),
        }),
    }
}

fn qvapay_keys(cfg: &PaymentConfig) -> Result<(&str, &str), ProviderError> {
    match (&cfg.qvapay_app_id, &cfg.qvapay_app_secret) {
        (Some(id), Some(secret)) => Ok((id.as_str(), secret.expose_secret())),
        _ => Err(ProviderError::NotConfigured("QvaPay")),
    }
}

fn dollars(cents: i64) -> Value {
    // QvaPay takes the amount as a number in the currency's unit.
    serde_json::Number::from_f64(cents as f64 / 100.0).map_or(Value::Null, Value::Number)
}

async fn qvapay_invoice(
    http: &reqwest::Client,
    cfg: &PaymentConfig,
    payment: PaymentId,
    amount_cents: i64,
    urls: &Urls,
) -> Result<Checkout, ProviderError> {
    let req = qvapay_post(http, cfg, "/create_invoice")?.json(&json!({
        "amount": dollars(amount_cents),
        "description": "Balance top-up",
        "remote_id": payment.to_string(),
        "webhook": urls.callback,
    }));
    let (status, body) = exchange(req, "QvaPay").await?;
    let url = body["url"].as_str().filter(|_| status.is_success());
    let Some(url) = url else {
        return Err(ProviderError::Refused {
            provider: "QvaPay",
            message: body["error"]
                .as_str()
                .or(body["message"].as_str())
                .unwrap_or("an error")
                .to_owned(),
        });
    };
    let reference = ["transaction_uuid", "transation_uuid", "uuid"]
        .iter()
        .find_map(|k| body[*k].as_str())
        .unwrap_or_default();
    Ok(Checkout {
        reference: reference.to_owned(),
        url: url.to_owned(),
    })
}

/// A QvaPay transaction as QvaPay itself reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QvapayTransaction {
    pub status: String,
    pub remote_id: String,
    pub amount_cents: Option<i64>,
}

/// Reads an amount given as a number or a string in the currency's unit.
pub fn amount_cents(v: &Value) -> Option<i64> {
    match v {
        Value::String(s) => ender_core::billing::parse_amount(s),
        Value::Number(n) => {
            // At most two decimals, and within the bounds any amount has.
            let cents = n.as_f64()? * 100.0;
            let whole = cents.round();
            let bound = ender_core::billing::MAX_AMOUNT_CENTS as f64;
            ((cents - whole).abs() < 1e-6 && whole.abs() <= bound).then_some(whole as i64)
        }
        _ => None,
    }
}

fn text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Number(n) => n.to_string(),
        _ => String::new(),
    }
}

/// Asks QvaPay for the transaction `uuid`.
pub async fn qvapay_transaction(
    http: &reqwest::Client,
    cfg: &PaymentConfig,
    uuid: &str,
) -> Result<QvapayTransaction, ProviderError> {
    let safe: String = url::form_urlencoded::byte_serialize(uuid.as_bytes()).collect();
    let (status, body) = exchange(
        qvapay_post(http, cfg, &format!("/transactions/{safe}"))?,
        "QvaPay",
    )
    .await?;
    if !status.is_success() {
        return Err(ProviderError::Refused {
            provider: "QvaPay",
            message: format!("the transaction lookup answered {status}"),
        });
    }
    Ok(QvapayTransaction {
        status: text(&body["status"]),
        remote_id: text(&body["remote_id"]),
        amount_cents: amount_cents(&body["amount"]),
    })
}

/// Why a top-up could not start; each is a sentence for the page and the API.
#[derive(Debug, thiserror::Error)]
pub enum TopupError {
    #[error("Provider is required.")]
    NoProvider,
    #[error("Unknown or unconfigured provider: {0}.")]
    UnknownProvider(String),
    #[error("Enter an amount such as 10 or 12.50.")]
    BadAmount,
    #[error("Minimum top-up amount is {0}.")]
    TooSmall(String),
    #[error("Maximum top-up amount is {0}.")]
    TooLarge(String),
    #[error(transparent)]
    Provider(#[from] ProviderError),
    #[error(transparent)]
    Database(#[from] sqlx::Error),
}

/// Checks a top-up, records it as pending and makes the provider's checkout for it.
pub async fn start_topup(
    state: &crate::state::AppState,
    workspace: ender_core::workspace::WorkspaceId,
    user: Option<ender_core::account::UserId>,
    provider: &str,
    amount_cents: Option<i64>,
) -> Result<(PaymentId, Checkout), TopupError> {
    let billing = &state.sms.billing;
    if provider.trim().is_empty() {
        return Err(TopupError::NoProvider);
    }
    let chosen = Provider::parse(provider)
        .filter(|p| configured(&state.config.payments).contains(p))
        .ok_or_else(|| TopupError::UnknownProvider(provider.trim().chars().take(40).collect()))?;
    let cents = amount_cents.ok_or(TopupError::BadAmount)?;
    let money = |c| ender_core::billing::format_cents(c, &billing.currency);
    if cents < billing.topup_min_cents {
        return Err(TopupError::TooSmall(money(billing.topup_min_cents)));
    }
    if cents > billing.topup_max_cents {
        return Err(TopupError::TooLarge(money(billing.topup_max_cents)));
    }
    let payment =
        ender_core::billing::payments::start(&state.pool, workspace, user, chosen, cents, &billing.currency)
            .await?;
    let urls = Urls {
        success: state.config.absolute(&format!("/billing?topup={payment}")),
        cancel: state.config.absolute("/billing?topup=canceled"),
        callback: state
            .config
            .absolute(&format!("/api/webhooks/{}", chosen.as_str())),
    };
    match checkout(
        &state.http,
        &state.config.payments,
        chosen,
        payment,
        cents,
        &billing.currency,
        &urls,
    )
    .await
    {
        Ok(c) => {
            ender_core::billing::payments::set_checkout_ref(&state.pool, payment, &c.reference).await?;
            tracing::info!(workspace.id = %workspace, payment.id = %payment, provider = chosen.as_str(), "top-up started");
            Ok((payment, c))
        }
        Err(e) => {
            tracing::warn!(workspace.id = %workspace, payment.id = %payment, error = %e, "top-up checkout failed");
            ender_core::billing::payments::fail(&state.pool, payment, &e.to_string()).await?;
            Err(e.into())
        }
    }
}
