//! Sign-in with Google and GitHub: authorization code with PKCE and a state value kept in
//! the session. Provider URLs come from configuration so tests use a provider on loopback.

use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use ender_core::account::{self, AccountError, TokenError};
use oauth2::basic::BasicClient;
use oauth2::{
    AuthUrl, AuthorizationCode, ClientId, ClientSecret, CsrfToken, PkceCodeChallenge, PkceCodeVerifier,
    RedirectUrl, Scope, TokenResponse, TokenUrl,
};
use secrecy::ExposeSecret;
use serde::Deserialize;
use subtle::ConstantTimeEq;
use tower_sessions::Session;

use super::auth::{LoginPage, token_error};
use super::{paths, safe_next};
use crate::config::SignupPolicy;
use crate::error::{AppError, AppResult};
use crate::session::{flash, log_in};
use crate::state::AppState;
use crate::views::Shell;

const PENDING_KEY: &str = "oauth_pending";

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/auth/oauth/{provider}", get(start))
        .route("/auth/oauth/{provider}/callback", get(callback))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Provider {
    Google,
    Github,
}

impl Provider {
    fn parse(s: &str) -> Option<Self> {
        match s {
            "google" => Some(Self::Google),
            "github" => Some(Self::Github),
            _ => None,
        }
    }

    fn slug(self) -> &'static str {
        match self {
            Self::Google => "google",
            Self::Github => "github",
        }
    }

    fn label(self) -> &'static str {
        match self {
            Self::Google => "Google",
            Self::Github => "GitHub",
        }
    }

    fn scopes(self) -> &'static [&'static str] {
        match self {
            Self::Google => &["openid", "email", "profile"],
            Self::Github => &["read:user", "user:email"],
        }
    }
}

/// What the session remembers between the redirect and the callback.
#[derive(Debug, serde::Serialize, Deserialize)]
struct Pending {
    provider: Provider,
    state: String,
    verifier: String,
    next: String,
}

type Client = BasicClient<
    oauth2::EndpointSet,
    oauth2::EndpointNotSet,
    oauth2::EndpointNotSet,
    oauth2::EndpointNotSet,
    oauth2::EndpointSet,
>;

fn client(state: &AppState, provider: Provider) -> Option<Client> {
    let o = &state.config.oauth;
    let (id, secret, auth, token) = match provider {
        Provider::Google => (
            &o.google_client_id,
            &o.google_client_secret,
            &o.google_auth_url,
            &o.google_token_url,
        ),
        Provider::Github => (
            &o.github_client_id,
            &o.github_client_secret,
            &o.github_auth_url,
            &o.github_token_url,
        ),
    };
    let redirect = state
        .config
        .absolute(&format!("/auth/oauth/{}/callback", provider.slug()));
    let mut client = BasicClient::new(ClientId::new(id.clone()?))
        .set_auth_uri(AuthUrl::from_url(auth.clone()))
        .set_token_uri(TokenUrl::from_url(token.clone()))
        .set_redirect_uri(RedirectUrl::new(redirect).ok()?);
    if let Some(secret) = secret {
        client = client.set_client_secret(ClientSecret::new(secret.expose_secret().to_owned()));
    }
    Some(client)
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct StartQuery {
    next: Option<String>,
}

async fn start(
    State(state): State<AppState>,
    session: Session,
    Path(provider): Path<String>,
    Query(q): Query<StartQuery>,
) -> AppResult<Response> {
    let provider = Provider::parse(&provider).ok_or(AppError::NotFound)?;
    let client = client(&state, provider).ok_or(AppError::NotFound)?;
    let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
    let mut request = client
        .authorize_url(CsrfToken::new_random)
        .set_pkce_challenge(challenge);
    for scope in provider.scopes() {
        request = request.add_scope(Scope::new((*scope).to_owned()));
    }
    let (url, csrf) = request.url();
    session
        .insert(
            PENDING_KEY,
            Pending {
                provider,
                state: csrf.secret().clone(),
                verifier: verifier.secret().clone(),
                next: safe_next(q.next.as_deref(), &state.config.public_url),
            },
        )
        .await?;
    Ok(Redirect::to(url.as_str()).into_response())
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct CallbackQuery {
    code: String,
    state: String,
    error: Option<String>,
}

async fn callback(
    State(state): State<AppState>,
    session: Session,
    shell: Shell,
    Path(provider): Path<String>,
    Query(q): Query<CallbackQuery>,
) -> AppResult<Response> {
    let provider = Provider::parse(&provider).ok_or(AppError::NotFound)?;
    let client = client(&state, provider).ok_or(AppError::NotFound)?;
    let pending: Option<Pending> = session.remove(PENDING_KEY).await?;
    let valid = pending.as_ref().is_some_and(|p| {
        p.provider == provider
            && !q.state.is_empty()
            && bool::from(p.state.as_bytes().ct_eq(q.state.as_bytes()))
    });
    let Some(pending) = pending.filter(|_| valid) else {
        return Ok(token_error(
            shell,
            TokenError::Invalid,
            paths::LOGIN,
            "Sign in again",
        ));
    };
    if q.error.is_some() || q.code.is_empty() {
        flash(
            &session,
            "error",
            format!("Sign-in with {} was cancelled.", provider.label()),
        )
        .await?;
        return Ok(Redirect::to(paths::LOGIN).into_response());
    }

    let client_http = state.http.clone();
    let http = move |req| {
        let c = client_http.clone();
        async move { send(&c, req).await }
    };
    let token = client
        .exchange_code(AuthorizationCode::new(q.code))
        .set_pkce_verifier(PkceCodeVerifier::new(pending.verifier))
        .request_async(&http)
        .await;
    let profile = match token {
        Ok(token) => fetch_profile(&state, provider, token.access_token().secret().clone()).await,
        Err(e) => Err(anyhow::anyhow!("token exchange failed: {e}")),
    };
    let profile = match profile {
        Ok(p) => p,
        Err(e) => {
            tracing::warn!(provider = provider.slug(), error = %format!("{e:#}"), "OAuth sign-in failed");
            flash(
                &session,
                "error",
                format!("Sign-in with {} failed. Try again.", provider.label()),
            )
            .await?;
            return Ok(Redirect::to(paths::LOGIN).into_response());
        }
    };
    match account::oauth_sign_in(&state.pool, provider.slug(), &profile.subject, &profile.email, profile.email_verified, &profile.name, state.signup() == SignupPolicy::Open).await {
        Ok(user) if !user.is_admin && state.settings.get().maintenance() => Ok(
            crate::middleware::maintenance_answer(false, state.settings.get().get("maintenance_message")),
        ),
        Ok(user) => {
            log_in(&session, &user).await?;
            account::note_sign_in(&state.pool, user.id).await?;
            tracing::info!(user.id = %user.id, provider = provider.slug(), "signed in through OAuth");
            Ok(Redirect::to(&pending.next).into_response())
        }
        Err(AccountError::UnverifiedProviderEmail) => Ok((
            StatusCode::UNPROCESSABLE_ENTITY,
            LoginPage {
                shell,
                email: String::new(),
                next: pending.next,
                error: format!(
                    "{} did not confirm an email address for this account. Confirm it there, or sign up with email and password.",
                    provider.label()
                ),
                unverified: false,
            },
        )
            .into_response()),
        Err(AccountError::Suspended) => Ok((
            StatusCode::FORBIDDEN,
            LoginPage {
                shell,
                email: String::new(),
                next: pending.next,
                error: "This account is suspended. Contact the server's administrator.".to_owned(),
                unverified: false,
            },
        )
            .into_response()),
        Err(AccountError::SignupClosed) => Ok((
            StatusCode::FORBIDDEN,
            LoginPage {
                shell,
                email: String::new(),
                next: pending.next,
                error: if state.signup() == SignupPolicy::Invite {
                    "Sign-up on this server is by invitation: there is no account for this address. Open the invitation link you were mailed to create one; then you can sign in here too.".to_owned()
                } else {
                    "Sign-up is closed on this server: there is no account for this address. Ask the administrator for one.".to_owned()
                },
                unverified: false,
            },
        )
            .into_response()),
        Err(e) => Err(e.into()),
    }
}

/// Who the provider says signed in.
struct Profile {
    subject: String,
    email: String,
    email_verified: bool,
    name: String,
}

async fn fetch_profile(
    state: &AppState,
    provider: Provider,
    access_token: String,
) -> anyhow::Result<Profile> {
    let get = |url: String| {
        state
            .http
            .get(url)
            .bearer_auth(&access_token)
            .header("accept", "application/json")
            .send()
    };
    match provider {
        Provider::Google => {
            #[derive(Deserialize)]
            struct Info {
                sub: String,
                #[serde(default)]
                email: String,
                #[serde(default)]
                email_verified: bool,
                #[serde(default)]
                name: String,
            }
            let info: Info = get(state.config.oauth.google_userinfo_url.to_string())
                .await?
                .error_for_status()?
                .json()
                .await?;
            Ok(Profile {
                subject: info.sub,
                email: info.email,
                email_verified: info.email_verified,
                name: info.name,
            })
        }
        Provider::Github => {
            #[derive(Deserialize)]
            struct User {
                id: i64,
                #[serde(default)]
                name: Option<String>,
            }
            #[derive(Deserialize)]
            struct Address {
                email: String,
                #[serde(default)]
                primary: bool,
                #[serde(default)]
                verified: bool,
            }
            let api = state
                .config
                .oauth
                .github_api_url
                .as_str()
                .trim_end_matches('/')
                .to_owned();
            let user: User = get(format!("{api}/user"))
                .await?
                .error_for_status()?
                .json()
                .await?;
            let emails: Vec<Address> = get(format!("{api}/user/emails"))
                .await?
                .error_for_status()?
                .json()
                .await?;
            let chosen = emails
                .iter()
                .find(|e| e.primary && e.verified)
                .or_else(|| emails.iter().find(|e| e.verified))
                .or_else(|| emails.first());
            Ok(Profile {
                subject: user.id.to_string(),
                email: chosen.map(|e| e.email.clone()).unwrap_or_default(),
                email_verified: chosen.is_some_and(|e| e.verified),
                name: user.name.unwrap_or_default(),
            })
        }
    }
}

/// oauth2's HTTP calls, made with our one reqwest client.
async fn send(
    http: &reqwest::Client,
    req: oauth2::HttpRequest,
) -> Result<oauth2::HttpResponse, std::io::Error> {
    let (parts, body) = req.into_parts();
    let res = http
        .request(parts.method, parts.uri.to_string())
        .headers(parts.headers)
        .body(body)
        .send()
        .await
        .map_err(std::io::Error::other)?;
    let mut builder = axum::http::Response::builder().status(res.status());
    for (k, v) in res.headers() {
        builder = builder.header(k, v);
    }
    let bytes = res.bytes().await.map_err(std::io::Error::other)?;
    builder.body(bytes.to_vec()).map_err(std::io::Error::other)
}
