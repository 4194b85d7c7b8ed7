//! Sign up, email verification, sign in and out, forgotten and reset passwords.

use askama::Template;
use askama_web::WebTemplate;
use axum::Router;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use ender_core::account::{self, AccountError, Email, FullName, Password, TokenError};
use ender_core::crypto::hex_digest;
use ender_core::invite;
use ender_core::mail::Mail;
use ender_core::ratelimit::{self, Limit};
use tower_sessions::Session;

use super::{paths, safe_next};
use crate::config::SignupPolicy;
use crate::error::{AppError, AppResult};
use crate::extract::Form;
use crate::middleware::ClientIp;
use crate::session::{MaybeUser, flash, log_in, log_out};
use crate::state::AppState;
use crate::views::{Errors, Shell};

/// Failed sign-ins allowed per minute from one IP, whatever the accounts.
const LOGIN_FAILURES_IP: Limit = Limit::per_minute(20);
/// Failed sign-ins allowed per minute for one account from one IP. Keyed on both, so a
/// stranger elsewhere cannot lock a known address out.
const LOGIN_FAILURES_ACCOUNT: Limit = Limit::per_minute(5);
/// Password resets (forged or not) per minute per IP: each can cost an Argon2 run.
pub const TOKEN_FORMS_IP: Limit = Limit::per_minute(5);
/// Session key: the account this browser just signed up, whose verification link may
/// sign it in.
const SIGNED_UP_KEY: &str = "signed_up_user";
/// Sign-ups per hour per IP.
const SIGNUPS: Limit = Limit::per_hour(10);
/// Mail requests (reset, resend) per minute per IP, and per hour per account.
const MAIL_REQUESTS_IP: Limit = Limit::per_minute(5);
const MAIL_REQUESTS_ACCOUNT: Limit = Limit::per_hour(3);

pub fn routes() -> Router<AppState> {
    Router::new()
        .route(paths::LOGIN, get(login_form).post(login))
        .route(paths::LOGOUT, post(logout))
        .route(paths::SIGNUP, get(signup_form).post(signup))
        .route(paths::VERIFY_EMAIL, get(verify_email))
        .route(paths::RESEND_VERIFICATION, get(resend_form).post(resend))
        .route(paths::FORGOT_PASSWORD, get(forgot_form).post(forgot))
        .route(paths::RESET_PASSWORD, get(reset_form).post(reset))
}

#[derive(Template, WebTemplate)]
#[template(path = "auth/login.html")]
pub struct LoginPage {
    pub shell: Shell,
    pub email: String,
    pub next: String,
    pub error: String,
    pub unverified: bool,
}

#[derive(serde::Deserialize, Default)]
#[serde(default)]
pub struct NextQuery {
    next: Option<String>,
}

async fn login_form(
    State(state): State<AppState>,
    shell: Shell,
    MaybeUser(user): MaybeUser,
    Query(q): Query<NextQuery>,
) -> Response {
    let next = safe_next(q.next.as_deref(), &state.config.public_url);
    if user.is_some() {
        return Redirect::to(&next).into_response();
    }
    LoginPage {
        shell,
        email: String::new(),
        next,
        error: String::new(),
        unverified: false,
    }
    .into_response()
}

#[derive(serde::Deserialize, Default)]
#[serde(default)]
pub struct LoginForm {
    email: String,
    password: String,
    next: Option<String>,
}

fn account_key(kind: &str, email: &str) -> String {
    format!("{kind}:acct:{}", &hex_digest(&email.trim().to_lowercase())[..32])
}

async fn login(
    State(state): State<AppState>,
    session: Session,
    shell: Shell,
    ClientIp(ip): ClientIp,
    Form(form): Form<LoginForm>,
) -> AppResult<Response> {
    let ip_key = format!("login:ip:{ip}");
    let acct_key = format!("{}:ip:{ip}", account_key("login", &form.email));
    // Counted before the password is checked, so concurrent guesses cannot all slip
    // through; an attempt with the right password is taken back afterwards.
    {
        let mut conn = state.pool.acquire().await?;
        let ip_ok = ratelimit::attempt(&mut conn, &ip_key, LOGIN_FAILURES_IP).await?;
        let acct_ok = ratelimit::attempt(&mut conn, &acct_key, LOGIN_FAILURES_ACCOUNT).await?;
        if !(ip_ok && acct_ok) {
            return Err(AppError::RateLimited);
        }
    }
    let forgive = || async {
        let mut conn = state.pool.acquire().await?;
        ratelimit::forgive(&mut conn, &ip_key, LOGIN_FAILURES_IP).await?;
        ratelimit::forgive(&mut conn, &acct_key, LOGIN_FAILURES_ACCOUNT).await?;
        Ok::<_, AppError>(())
    };
    let next = safe_next(form.next.as_deref(), &state.config.public_url);
    let page = |error: &str, unverified: bool| LoginPage {
        shell: shell.clone(),
        email: form.email.trim().to_owned(),
        next: next.clone(),
        error: error.to_owned(),
        unverified,
    };
    match account::authenticate(
        &state.pool,
        &form.email,
        &form.password,
        state.config.require_email_verification,
    )
    .await
    {
        Ok(user) => {
            forgive().await?;
            let site = state.settings.get();
            if site.maintenance() && !user.is_admin {
                return Ok(crate::middleware::maintenance_answer(
                    false,
                    site.get("maintenance_message"),
                ));
            }
            log_in(&session, &user).await?;
            account::note_sign_in(&state.pool, user.id).await?;
            tracing::info!(user.id = %user.id, "signed in");
            Ok(Redirect::to(&next).into_response())
        }
        Err(AccountError::InvalidCredentials) => Ok((
            StatusCode::UNPROCESSABLE_ENTITY,
            page("Incorrect email or password.", false),
        )
            .into_response()),
        Err(AccountError::Suspended) => {
            forgive().await?;
            Ok((
                StatusCode::FORBIDDEN,
                page(
                    "This account is suspended. Contact the server's administrator.",
                    false,
                ),
            )
                .into_response())
        }
        Err(AccountError::EmailNotVerified) => {
            forgive().await?;
            Ok((
                StatusCode::UNPROCESSABLE_ENTITY,
                page(
                    "Confirm your email address first: follow the link we mailed you.",
                    true,
                ),
            )
                .into_response())
        }
        Err(e) => Err(e.into()),
    }
}

async fn logout(session: Session) -> AppResult<Redirect> {
    log_out(&session).await?;
    Ok(Redirect::to(paths::LOGIN))
}

#[derive(Template, WebTemplate)]
#[template(path = "auth/signup.html")]
pub struct SignupPage {
    pub shell: Shell,
    /// Sign-up is closed (`ENDER_SIGNUP=closed`): the page says so instead of a form.
    pub closed: bool,
    /// Sign-up is by invitation and no invitation link was opened: the page says so.
    pub invite_only: bool,
    /// The token of the invitation link being accepted, empty for an open sign-up.
    pub invite: String,
    pub email: String,
    pub full_name: String,
    pub errors: Errors,
}

impl SignupPage {
    fn new(shell: Shell, policy: SignupPolicy) -> Self {
        Self {
            shell,
            closed: policy == SignupPolicy::Closed,
            invite_only: policy == SignupPolicy::Invite,
            invite: String::new(),
            email: String::new(),
            full_name: String::new(),
            errors: Errors::default(),
        }
    }

    /// The form for accepting the invitation behind `token`, sent to `email`.
    fn for_invitation(shell: Shell, token: &str, email: &str) -> Self {
        Self {
            closed: false,
            invite_only: false,
            invite: token.to_owned(),
            email: email.to_owned(),
            ..Self::new(shell, SignupPolicy::Open)
        }
    }
}

#[derive(serde::Deserialize, Default)]
#[serde(default)]
pub struct SignupQuery {
    invite: String,
}

async fn signup_form(
    State(state): State<AppState>,
    shell: Shell,
    MaybeUser(user): MaybeUser,
    Query(query): Query<SignupQuery>,
) -> AppResult<Response> {
    if user.is_some() {
        return Ok(Redirect::to(paths::HOME).into_response());
    }
    let policy = state.signup();
    if query.invite.is_empty() || policy == SignupPolicy::Closed {
        return Ok(SignupPage::new(shell, policy).into_response());
    }
    match invite::check(&state.pool, &query.invite).await {
        Ok(invitation) => {
            Ok(SignupPage::for_invitation(shell, &query.invite, &invitation.email).into_response())
        }
        Err(AccountError::Token(e)) => Ok(invitation_refused(shell, e)),
        Err(e) => Err(e.into()),
    }
}

/// The page for an invitation link that is spent, revoked, expired or forged.
fn invitation_refused(shell: Shell, e: TokenError) -> Response {
    let e = match e {
        TokenError::Used => {
            "This invitation has already been used. Sign in with the account it created.".to_owned()
        }
        other => crate::routes::workspaces::token_refusal(other).to_owned(),
    };
    (
        StatusCode::BAD_REQUEST,
        TokenErrorPage {
            shell,
            message: e,
            retry_path: paths::LOGIN,
            retry_label: "Sign in",
        },
    )
        .into_response()
}

#[derive(serde::Deserialize, Default)]
#[serde(default)]
pub struct SignupForm {
    email: String,
    password: String,
    full_name: String,
    /// The invitation link's token, when the form came from one.
    invite: String,
}

#[derive(Template, WebTemplate)]
#[template(path = "auth/check_email.html")]
pub struct CheckEmailPage {
    pub shell: Shell,
    pub title: &'static str,
    pub message: String,
}

async fn signup(
    State(state): State<AppState>,
    session: Session,
    shell: Shell,
    ClientIp(ip): ClientIp,
    Form(form): Form<SignupForm>,
) -> AppResult<Response> {
    let policy = state.signup();
    if policy == SignupPolicy::Closed || (policy == SignupPolicy::Invite && form.invite.is_empty()) {
        return Ok((StatusCode::FORBIDDEN, SignupPage::new(shell, policy)).into_response());
    }
    if !ratelimit::allow(
        &mut *state.pool.acquire().await?,
        &format!("signup:ip:{ip}"),
        SIGNUPS,
    )
    .await?
    {
        return Err(AppError::RateLimited);
    }
    if !form.invite.is_empty() {
        return accept_invitation(&state, &session, shell, form).await;
    }
    let mut errors = Errors::default();
    let email = Email::parse(&form.email).map_err(|e| errors.push(e)).ok();
    let password = Password::parse(&form.password, "password")
        .map_err(|e| errors.push(e))
        .ok();
    let full_name = FullName::parse(&form.full_name).map_err(|e| errors.push(e)).ok();
    let rerender = |errors: Errors| {
        (
            StatusCode::UNPROCESSABLE_ENTITY,
            SignupPage {
                email: form.email.trim().to_owned(),
                full_name: form.full_name.trim().to_owned(),
                errors,
                ..SignupPage::new(shell.clone(), SignupPolicy::Open)
            },
        )
            .into_response()
    };
    let (Some(email), Some(password), Some(full_name)) = (email, password, full_name) else {
        return Ok(rerender(errors));
    };
    let require = state.config.require_email_verification;
    // With verification on, a taken address gets the same answer as a new one (the
    // address's owner gets a mail saying they already have an account), so the form does
    // not tell who has an account. Without verification a new account is signed in at
    // once, which cannot be imitated: the form says the address is taken.
    let check_email = |shell: Shell, address: &str| CheckEmailPage {
        shell,
        title: "Check your email",
        message: format!(
            "We sent a link to {address} to confirm the address. Follow it to finish creating your account."
        ),
    };
    let created = match account::sign_up(&state.pool, &email, &password, &full_name, require).await {
        Ok(created) => created,
        Err(AccountError::EmailTaken) if require => {
            send_in_background(&state, account_exists_mail(&state, email.as_str()));
            return Ok(check_email(shell, email.as_str()).into_response());
        }
        Err(AccountError::EmailTaken) => {
            return Ok(rerender(Errors::one(ender_core::FieldError::new(
                "email",
                "An account with this email already exists. Sign in, or reset your password.",
            ))));
        }
        Err(e) => return Err(e.into()),
    };
    tracing::info!(user.id = %created.user.id, "account created");
    match created.verify_token {
        Some(token) => {
            session.insert(SIGNED_UP_KEY, created.user.id).await?;
            send_in_background(&state, verification_mail(&state, &created.user.email, &token));
            Ok(check_email(shell, email.as_str()).into_response())
        }
        None => {
            log_in(&session, &created.user).await?;
            flash(&session, "success", "Welcome to Ender.").await?;
            Ok(Redirect::to(paths::HOME).into_response())
        }
    }
}

/// Sign-up through an invitation link: the account gets the invited address, verified,
/// and is signed in at once.
async fn accept_invitation(
    state: &AppState,
    session: &Session,
    shell: Shell,
    form: SignupForm,
) -> AppResult<Response> {
    let mut errors = Errors::default();
    let password = Password::parse(&form.password, "password")
        .map_err(|e| errors.push(e))
        .ok();
    let full_name = FullName::parse(&form.full_name).map_err(|e| errors.push(e)).ok();
    let rerender = |errors: Errors, email: &str| {
        (
            StatusCode::UNPROCESSABLE_ENTITY,
            SignupPage {
                full_name: form.full_name.trim().to_owned(),
                errors,
                ..SignupPage::for_invitation(shell.clone(), &form.invite, email)
            },
        )
            .into_response()
    };
    let (Some(password), Some(full_name)) = (password, full_name) else {
        return match invite::check(&state.pool, &form.invite).await {
            Ok(invitation) => Ok(rerender(errors, &invitation.email)),
            Err(AccountError::Token(e)) => Ok(invitation_refused(shell, e)),
            Err(e) => Err(e.into()),
        };
    };
    match invite::accept(&state.pool, &form.invite, &password, &full_name).await {
        Ok(user) => {
            tracing::info!(user.id = %user.id, "account created from an invitation");
            log_in(session, &user).await?;
            // An invitation to a workspace: the new account starts in it.
            let joined = ender_core::workspace::list_for(&state.pool, user.id).await?;
            if let Some(m) = joined.iter().find(|m| m.workspace.personal_for != Some(user.id)) {
                crate::session::switch_workspace(session, m).await?;
                let detail = serde_json::json!({ "role": m.role.as_str(), "signed_up": true });
                let actor = ender_core::workspace::audit::Actor::User(user.id);
                let joined = ender_core::workspace::audit::kind::MEMBER_JOINED;
                crate::audit::note(state, m.workspace.id, actor, joined, &user.email, detail).await;
            }
            flash(session, "success", "Welcome to Ender.").await?;
            Ok(Redirect::to(paths::HOME).into_response())
        }
        Err(AccountError::Token(e)) => Ok(invitation_refused(shell, e)),
        Err(AccountError::EmailTaken) => {
            // Only the address's owner holds the link, so saying so tells nobody else.
            let email = invite::check(&state.pool, &form.invite)
                .await
                .map(|i| i.email)
                .unwrap_or_default();
            Ok(rerender(
                Errors::one(ender_core::FieldError::new(
                    "email",
                    "This address already has an account. Sign in, or reset your password.",
                )),
                &email,
            ))
        }
        Err(e) => Err(e.into()),
    }
}

/// Sends a mail from a background task, so an answer never waits for the mail server (and
/// its timing does not tell whether a mail was sent at all).
pub(crate) fn send_in_background(state: &AppState, mail: Mail) {
    let mailer = state.mailer.clone();
    tokio::spawn(async move {
        if let Err(e) = mailer.send(&mail).await {
            tracing::error!(error = %e, subject = %mail.subject, "sending a mail failed");
        }
    });
}

pub(crate) fn verification_mail(state: &AppState, to: &str, token: &str) -> Mail {
    let link = state
        .config
        .absolute(&format!("{}?token={token}", paths::VERIFY_EMAIL));
    Mail {
        to: to.to_owned(),
        subject: "Confirm your email address for Ender".to_owned(),
        text: format!(
            "Hello,\n\nConfirm your email address to start using Ender:\n\n{link}\n\nThe link works for 48 hours. If you did not sign up, ignore this mail.\n"
        ),
    }
}

fn account_exists_mail(state: &AppState, to: &str) -> Mail {
    let login = state.config.absolute(paths::LOGIN);
    let forgot = state.config.absolute(paths::FORGOT_PASSWORD);
    Mail {
        to: to.to_owned(),
        subject: "You already have an Ender account".to_owned(),
        text: format!(
            "Hello,\n\nSomeone (hopefully you) tried to sign up for Ender with this address, but you already have an account.\n\nSign in here:\n\n{login}\n\nIf you forgot your password, choose a new one here:\n\n{forgot}\n\nIf you did not try to sign up, ignore this mail: nothing was changed.\n"
        ),
    }
}

#[derive(Template, WebTemplate)]
#[template(path = "auth/token_error.html")]
pub struct TokenErrorPage {
    pub shell: Shell,
    pub message: String,
    pub retry_path: &'static str,
    pub retry_label: &'static str,
}

/// The page for a refused link, offering a new one.
pub fn token_error(
    shell: Shell,
    e: TokenError,
    retry_path: &'static str,
    retry_label: &'static str,
) -> Response {
    (
        StatusCode::BAD_REQUEST,
        TokenErrorPage {
            shell,
            message: e.to_string(),
            retry_path,
            retry_label,
        },
    )
        .into_response()
}

#[derive(serde::Deserialize, Default)]
#[serde(default)]
pub struct TokenQuery {
    token: String,
}

async fn verify_email(
    State(state): State<AppState>,
    session: Session,
    shell: Shell,
    Query(q): Query<TokenQuery>,
) -> AppResult<Response> {
    match account::verify_email(&state.pool, &q.token).await {
        Ok(user) if session.get::<account::UserId>(SIGNED_UP_KEY).await? != Some(user.id) => {
            // Opened in another browser than the one that signed up: the address is
            // confirmed, but whoever opened the link is not signed in, so a link mailed
            // to someone else's account cannot sign a victim into it (login CSRF).
            flash(
                &session,
                "success",
                "Your email address is confirmed. Sign in to continue.",
            )
            .await?;
            Ok(Redirect::to(paths::LOGIN).into_response())
        }
        Ok(user) => {
            log_in(&session, &user).await?;
            flash(
                &session,
                "success",
                "Your email address is confirmed. Welcome to Ender.",
            )
            .await?;
            Ok(Redirect::to(paths::HOME).into_response())
        }
        Err(AccountError::Token(e)) => Ok(token_error(
            shell,
            e,
            paths::RESEND_VERIFICATION,
            "Send a new confirmation link",
        )),
        Err(e) => Err(e.into()),
    }
}

#[derive(Template, WebTemplate)]
#[template(path = "auth/email_request.html")]
pub struct EmailRequestPage {
    pub shell: Shell,
    pub title: &'static str,
    pub intro: &'static str,
    pub action: &'static str,
    pub button: &'static str,
    pub email: String,
    pub sent: bool,
    pub errors: Errors,
}

impl EmailRequestPage {
    fn resend(shell: Shell) -> Self {
        Self {
            shell,
            title: "Resend the confirmation link",
            intro: "Enter the address you signed up with and we will send a new confirmation link.",
            action: paths::RESEND_VERIFICATION,
            button: "Send the link",
            email: String::new(),
            sent: false,
            errors: Errors::default(),
        }
    }

    fn forgot(shell: Shell) -> Self {
        Self {
            shell,
            title: "Reset your password",
            intro: "Enter your account's email address and we will send you a link to choose a new password.",
            action: paths::FORGOT_PASSWORD,
            button: "Send the reset link",
            email: String::new(),
            sent: false,
            errors: Errors::default(),
        }
    }
}

#[derive(serde::Deserialize, Default)]
#[serde(default)]
pub struct EmailForm {
    email: String,
}

async fn resend_form(shell: Shell) -> EmailRequestPage {
    EmailRequestPage::resend(shell)
}

/// Rate-limits a mail request per IP and per address; false when over the limit.
async fn mail_request_allowed(
    state: &AppState,
    kind: &str,
    ip: std::net::IpAddr,
    email: &str,
) -> AppResult<bool> {
    let mut conn = state.pool.acquire().await?;
    Ok(
        ratelimit::allow(&mut conn, &format!("{kind}:ip:{ip}"), MAIL_REQUESTS_IP).await?
            && ratelimit::allow(&mut conn, &account_key(kind, email), MAIL_REQUESTS_ACCOUNT).await?,
    )
}

async fn resend(
    State(state): State<AppState>,
    shell: Shell,
    ClientIp(ip): ClientIp,
    Form(form): Form<EmailForm>,
) -> AppResult<Response> {
    let mut page = EmailRequestPage::resend(shell);
    page.email = form.email.trim().to_owned();
    if let Err(e) = Email::parse(&form.email) {
        page.errors = Errors::one(e);
        return Ok((StatusCode::UNPROCESSABLE_ENTITY, page).into_response());
    }
    if !mail_request_allowed(&state, "resend", ip, &form.email).await? {
        return Err(AppError::RateLimited);
    }
    // Looked up and mailed in the background: the answer is the same, and as fast, whether
    // or not the address has an account.
    let background = state.clone();
    tokio::spawn(async move {
        match account::resend_verification(&background.pool, &form.email).await {
            Ok(Some((user, token))) => {
                send_in_background(&background, verification_mail(&background, &user.email, &token));
            }
            Ok(None) => {}
            Err(e) => tracing::error!(error = %e, "issuing a verification link failed"),
        }
    });
    page.sent = true;
    Ok(page.into_response())
}

async fn forgot_form(shell: Shell) -> EmailRequestPage {
    EmailRequestPage::forgot(shell)
}

async fn forgot(
    State(state): State<AppState>,
    shell: Shell,
    ClientIp(ip): ClientIp,
    Form(form): Form<EmailForm>,
) -> AppResult<Response> {
    let mut page = EmailRequestPage::forgot(shell);
    page.email = form.email.trim().to_owned();
    if let Err(e) = Email::parse(&form.email) {
        page.errors = Errors::one(e);
        return Ok((StatusCode::UNPROCESSABLE_ENTITY, page).into_response());
    }
    if !mail_request_allowed(&state, "reset", ip, &form.email).await? {
        return Err(AppError::RateLimited);
    }
    // Looked up and mailed in the background: the answer is the same, and as fast, whether
    // or not the address has an account.
    let background = state.clone();
    tokio::spawn(async move {
        match account::request_password_reset(&background.pool, &form.email).await {
            Ok(Some((user, token))) => {
                send_in_background(&background, reset_mail(&background, &user.email, &token));
            }
            Ok(None) => {}
            Err(e) => tracing::error!(error = %e, "issuing a password reset link failed"),
        }
    });
    page.sent = true;
    Ok(page.into_response())
}

pub(crate) fn reset_mail(state: &AppState, to: &str, token: &str) -> Mail {
    let link = state
        .config
        .absolute(&format!("{}?token={token}", paths::RESET_PASSWORD));
    Mail {
        to: to.to_owned(),
        subject: "Reset your Ender password".to_owned(),
        text: format!(
            "Hello,\n\nSomeone (hopefully you) asked to reset the password of your Ender account. Choose a new one here:\n\n{link}\n\nThe link works for one hour and only once. If you did not ask, ignore this mail: your password stays as it is.\n"
        ),
    }
}

#[derive(Template, WebTemplate)]
#[template(path = "auth/reset.html")]
pub struct ResetPage {
    pub shell: Shell,
    pub token: String,
    pub errors: Errors,
}

async fn reset_form(
    State(state): State<AppState>,
    shell: Shell,
    Query(q): Query<TokenQuery>,
) -> AppResult<Response> {
    match account::check_reset_token(&state.pool, &q.token).await {
        Ok(()) => Ok(ResetPage {
            shell,
            token: q.token,
            errors: Errors::default(),
        }
        .into_response()),
        Err(AccountError::Token(e)) => Ok(token_error(
            shell,
            e,
            paths::FORGOT_PASSWORD,
            "Request a new reset link",
        )),
        Err(e) => Err(e.into()),
    }
}

#[derive(serde::Deserialize, Default)]
#[serde(default)]
pub struct ResetForm {
    token: String,
    password: String,
    password_confirm: String,
}

async fn reset(
    State(state): State<AppState>,
    session: Session,
    shell: Shell,
    ClientIp(ip): ClientIp,
    Form(form): Form<ResetForm>,
) -> AppResult<Response> {
    let password = match Password::parse(&form.password, "password") {
        Ok(p) if form.password == form.password_confirm => p,
        Ok(_) => {
            return Ok(reset_rerender(
                shell,
                form.token,
                ender_core::FieldError::new("password_confirm", "The two passwords differ."),
            ));
        }
        Err(e) => return Ok(reset_rerender(shell, form.token, e)),
    };
    if !ratelimit::allow(
        &mut *state.pool.acquire().await?,
        &format!("reset-password:ip:{ip}"),
        TOKEN_FORMS_IP,
    )
    .await?
    {
        return Err(AppError::RateLimited);
    }
    match account::reset_password(&state.pool, &form.token, &password).await {
        Ok(user) => {
            // The link proved the address: failed sign-ins against it are forgotten.
            ratelimit::clear(
                &mut *state.pool.acquire().await?,
                &format!("{}:", account_key("login", &user.email)),
            )
            .await?;
            log_in(&session, &user).await?;
            flash(
                &session,
                "success",
                "Your password was changed. Other sessions were signed out.",
            )
            .await?;
            tracing::info!(user.id = %user.id, "password reset");
            Ok(Redirect::to(paths::HOME).into_response())
        }
        Err(AccountError::Token(e)) => Ok(token_error(
            shell,
            e,
            paths::FORGOT_PASSWORD,
            "Request a new reset link",
        )),
        Err(e) => Err(e.into()),
    }
}

fn reset_rerender(shell: Shell, token: String, e: ender_core::FieldError) -> Response {
    (
        StatusCode::UNPROCESSABLE_ENTITY,
        ResetPage {
            shell,
            token,
            errors: Errors::one(e),
        },
    )
        .into_response()
}
