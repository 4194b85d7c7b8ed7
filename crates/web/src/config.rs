//! The web server's settings, read once at start by clap from flags and the environment.

use std::net::SocketAddr;

use ender_core::config::{DatabaseConfig, LogConfig, MailConfig, net, secret};
use ender_worker::WorkerConfig;
use ipnet::IpNet;
use secrecy::SecretString;
use url::Url;

/// Everything `ender-web serve` needs.
#[derive(clap::Args, Debug, Clone)]
pub struct ServeConfig {
    #[command(flatten)]
    pub web: WebConfig,
    #[command(flatten)]
    pub database: DatabaseConfig,
    #[command(flatten)]
    pub mail: MailConfig,
    #[command(flatten)]
    pub worker: WorkerConfig,
    #[command(flatten)]
    pub log: LogConfig,
}

#[derive(clap::Args, Debug, Clone)]
pub struct WebConfig {
    /// Address and port to listen on.
    #[arg(long, env = "ENDER_BIND", default_value = "127.0.0.1:8080")]
    pub bind: SocketAddr,

    /// The address people use to reach Ender: base of links in mails and of OAuth
    /// redirect URIs. `https://` turns on Secure cookies and HSTS.
    #[arg(long, env = "ENDER_PUBLIC_URL", default_value = "http://127.0.0.1:8080")]
    pub public_url: Url,

    /// Proxies (IPs or CIDR ranges, comma-separated) whose X-Forwarded-For is believed.
    #[arg(long, env = "ENDER_TRUSTED_PROXIES", value_delimiter = ',', value_parser = net)]
    pub trusted_proxies: Vec<IpNet>,

    /// New accounts must confirm their email before they can sign in.
    #[arg(long, env = "ENDER_REQUIRE_EMAIL_VERIFICATION", default_value_t = true, action = clap::ArgAction::Set)]
    pub require_email_verification: bool,

    /// A session unused for this many minutes ends.
    #[arg(long, env = "ENDER_SESSION_IDLE_MINUTES", default_value_t = 10_080)]
    pub session_idle_minutes: i64,

    /// A session ends this many hours after sign-in, however active.
    #[arg(long, env = "ENDER_SESSION_MAX_HOURS", default_value_t = 720)]
    pub session_max_hours: i64,

    /// Run the background worker inside this process.
    #[arg(long, env = "ENDER_EMBEDDED_WORKER", default_value_t = true, action = clap::ArgAction::Set)]
    pub embedded_worker: bool,

    /// Do not run the background worker here (run `ender-worker` separately).
    #[arg(long)]
    pub no_worker: bool,

    /// API requests allowed per credential (key, device or session) per minute, per process.
    #[arg(long, env = "ENDER_API_RATE_PER_MINUTE", default_value_t = 6000)]
    pub api_rate_per_minute: u32,

    /// Seconds a client has to send the headers of a request (a slow-header client is
    /// disconnected).
    #[arg(long, env = "ENDER_HEADER_READ_TIMEOUT_SECS", default_value_t = 30)]
    pub header_read_timeout_secs: u64,

    /// Seconds a request may take until its answer starts, body upload included; later it
    /// is answered 408. Event streams are not cut once they have started.
    #[arg(long, env = "ENDER_REQUEST_TIMEOUT_SECS", default_value_t = 120)]
    pub request_timeout_secs: u64,

    /// Who may create an account: `open` (anyone), `invite` (whoever opens an invitation
    /// link a user or `ender-web admin invite` sent) or `closed` (only `ender-web admin
    /// create`; sign-up, including through OAuth, is refused).
    #[arg(long, env = "ENDER_SIGNUP", value_enum, default_value_t = SignupPolicy::Open)]
    pub signup: SignupPolicy,

    /// Invitations one user may have waiting for an answer at once.
    #[arg(long, env = "ENDER_MAX_PENDING_INVITATIONS", default_value_t = 20)]
    pub max_pending_invitations: i64,

    #[command(flatten)]
    pub oauth: OAuthConfig,

    #[command(flatten)]
    pub payments: PaymentConfig,

    /// The data folder (`ENDER_DATA_DIR`), copied here at start for the Health page's
    /// disk figure.
    #[arg(skip)]
    pub data_dir: std::path::PathBuf,
}

/// Payment providers for top-ups (billing on). A provider is offered once its keys are set.
#[derive(clap::Args, Debug, Clone)]
pub struct PaymentConfig {
    /// Stripe secret API key (`sk_live_…` or `sk_test_…`).
    #[arg(long, env = "ENDER_STRIPE_SECRET_KEY", value_parser = secret, hide_env_values = true)]
    pub stripe_secret_key: Option<SecretString>,
    /// The signing secret of the Stripe webhook endpoint (`whsec_…`).
    #[arg(long, env = "ENDER_STRIPE_WEBHOOK_SECRET", value_parser = secret, hide_env_values = true)]
    pub stripe_webhook_secret: Option<SecretString>,
    /// Base URL of Stripe's API.
    #[arg(long, env = "ENDER_STRIPE_API_BASE", default_value = "https://api.stripe.com")]
    pub stripe_api_base: Url,

    /// QvaPay app id.
    #[arg(long, env = "ENDER_QVAPAY_APP_ID")]
    pub qvapay_app_id: Option<String>,
    /// QvaPay app secret.
    #[arg(long, env = "ENDER_QVAPAY_APP_SECRET", value_parser = secret, hide_env_values = true)]
    pub qvapay_app_secret: Option<SecretString>,
    /// Base URL of QvaPay's API.
    #[arg(
        long,
        env = "ENDER_QVAPAY_API_BASE",
        default_value = "https://api.qvapay.com/v2"
    )]
    pub qvapay_api_base: Url,
}

/// Who may create an account.
#[derive(clap::ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum SignupPolicy {
    /// Anyone with an email address.
    Open,
    /// Whoever holds an invitation link, mailed to the invited address by a user of the
    /// server (Settings → Invitations) or printed by `ender-web admin invite`.
    Invite,
    /// Nobody through the web: accounts come from `ender-web admin create`.
    Closed,
}

impl WebConfig {
    pub fn runs_worker(&self) -> bool {
        self.embedded_worker && !self.no_worker
    }

    pub fn is_https(&self) -> bool {
        self.public_url.scheme() == "https"
    }

    /// A warning when Ender listens beyond this machine while its public URL is plain
    /// `http://`: cookies then go without `Secure` and no HSTS is sent, so a TLS proxy in
    /// front must be named in `ENDER_PUBLIC_URL` as `https://` for browsers to be protected.
    pub fn insecure_cookie_warning(&self) -> Option<String> {
        let local = self.bind.ip().is_loopback();
        (!local && !self.is_https()).then(|| {
            format!(
                "Ender listens on {} but ENDER_PUBLIC_URL ({}) is not https://: session cookies are sent without Secure and without HSTS. Put Ender behind TLS and set ENDER_PUBLIC_URL to the https:// address people open",
                self.bind, self.public_url
            )
        })
    }

    /// An absolute URL under the public base.
    pub fn absolute(&self, path_and_query: &str) -> String {
        format!(
            "{}{}",
            self.public_url.as_str().trim_end_matches('/'),
            path_and_query
        )
    }
}

/// OAuth providers. A provider without a client id is shown disabled.
#[derive(clap::Args, Debug, Clone)]
pub struct OAuthConfig {
    #[arg(long, env = "ENDER_GOOGLE_CLIENT_ID")]
    pub google_client_id: Option<String>,
    #[arg(long, env = "ENDER_GOOGLE_CLIENT_SECRET", value_parser = secret, hide_env_values = true)]
    pub google_client_secret: Option<SecretString>,
    #[arg(
        long,
        env = "ENDER_GOOGLE_AUTH_URL",
        default_value = "https://accounts.google.com/o/oauth2/v2/auth"
    )]
    pub google_auth_url: Url,
    #[arg(
        long,
        env = "ENDER_GOOGLE_TOKEN_URL",
        default_value = "https://oauth2.googleapis.com/token"
    )]
    pub google_token_url: Url,
    #[arg(
        long,
        env = "ENDER_GOOGLE_USERINFO_URL",
        default_value = "https://openidconnect.googleapis.com/v1/userinfo"
    )]
    pub google_userinfo_url: Url,

    #[arg(long, env = "ENDER_GITHUB_CLIENT_ID")]
    pub github_client_id: Option<String>,
    #[arg(long, env = "ENDER_GITHUB_CLIENT_SECRET", value_parser = secret, hide_env_values = true)]
    pub github_client_secret: Option<SecretString>,
    #[arg(
        long,
        env = "ENDER_GITHUB_AUTH_URL",
        default_value = "https://github.com/login/oauth/authorize"
    )]
    pub github_auth_url: Url,
    #[arg(
        long,
        env = "ENDER_GITHUB_TOKEN_URL",
        default_value = "https://github.com/login/oauth/access_token"
    )]
    pub github_token_url: Url,
    #[arg(long, env = "ENDER_GITHUB_API_URL", default_value = "https://api.github.com")]
    pub github_api_url: Url,
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::WebConfig;

    #[derive(Parser)]
    struct Args {
        #[command(flatten)]
        web: WebConfig,
    }

    fn web(args: &[&str]) -> WebConfig {
        Args::parse_from(std::iter::once("ender-web").chain(args.iter().copied())).web
    }

    #[test]
    fn a_plain_http_public_url_beyond_loopback_is_warned_about() {
        assert_eq!(web(&[]).insecure_cookie_warning(), None);
        assert_eq!(
            web(&[
                "--bind",
                "0.0.0.0:8080",
                "--public-url",
                "https://sms.example.org"
            ])
            .insecure_cookie_warning(),
            None
        );
        let warning = web(&["--bind", "0.0.0.0:8080", "--public-url", "http://sms.example.org"])
            .insecure_cookie_warning()
            .unwrap_or_default();
        assert!(warning.contains("without Secure"), "{warning}");
        assert!(
            web(&["--bind", "[::]:8080"]).insecure_cookie_warning().is_some(),
            "the default http:// public URL on every address"
        );
    }
}
