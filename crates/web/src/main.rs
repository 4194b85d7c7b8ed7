//! `ender-web`: serve (the default), migrate, create administrators, health-check.

mod admin_cli;

use std::io::Read;

use clap::{Parser, Subcommand};
use ender_core::account::{self, Email, Password};
use ender_core::config::{DatabaseConfig, LogConfig};
use ender_core::db::Database;
use ender_web::ServeConfig;

#[derive(Parser)]
#[command(
    name = "ender-web",
    version,
    about = "Ender SMS gateway: web server and administration"
)]
#[command(args_conflicts_with_subcommands = true)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    serve: ServeConfig,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the dashboard and APIs (the default).
    Serve(Box<ServeConfig>),
    /// Apply the database migrations (Ender's and the job queue's) and exit.
    Migrate {
        /// Revert every Ender migration instead (for testing migrations).
        #[arg(long)]
        revert_all: bool,
        #[command(flatten)]
        database: DatabaseConfig,
        #[command(flatten)]
        log: LogConfig,
    },
    /// Administer the server: administrators, people, plans, settings.
    #[command(subcommand)]
    Admin(AdminCommand),
    /// Start or stop the private PostgreSQL cluster on its own, for development tools
    /// (`start` prints its DATABASE_URL and leaves it running).
    DevDb {
        #[arg(value_enum)]
        action: DevDbAction,
        #[arg(long, env = "ENDER_DATA_DIR", default_value = ".data")]
        data_dir: std::path::PathBuf,
    },
    /// Exit 0 when a running server answers its health check (for container health checks).
    Healthcheck {
        #[arg(long, default_value = "http://127.0.0.1:8080/healthz")]
        url: String,
    },
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum DevDbAction {
    Start,
    Stop,
}

#[derive(Subcommand)]
enum AdminCommand {
    /// Make the account with this email an administrator, creating it if needed. Without
    /// --password-stdin a link to choose the password is printed.
    Create {
        #[arg(long)]
        email: String,
        /// Read the new password from standard input.
        #[arg(long)]
        password_stdin: bool,
        #[arg(long, env = "ENDER_PUBLIC_URL", default_value = "http://127.0.0.1:8080")]
        public_url: url::Url,
        #[command(flatten)]
        database: DatabaseConfig,
        #[command(flatten)]
        log: LogConfig,
    },
    /// Invite an address to create an account (for `ENDER_SIGNUP=invite`): prints the
    /// invitation link (valid 7 days, once) for you to pass on. The account gets this
    /// address, verified, so send the link only to its owner.
    Invite {
        #[arg(long)]
        email: String,
        #[arg(long, env = "ENDER_PUBLIC_URL", default_value = "http://127.0.0.1:8080")]
        public_url: url::Url,
        #[command(flatten)]
        database: DatabaseConfig,
        #[command(flatten)]
        log: LogConfig,
    },
    /// People.
    #[command(subcommand)]
    Users(admin_cli::UsersCommand),
    /// Suspend the account with this address: it cannot sign in and its sessions end.
    Suspend {
        email: String,
        #[command(flatten)]
        target: admin_cli::Target,
    },
    /// Lift a suspension.
    Unsuspend {
        email: String,
        #[command(flatten)]
        target: admin_cli::Target,
    },
    /// A workspace's plan.
    #[command(subcommand)]
    Plan(admin_cli::PlanCommand),
    /// Instance settings.
    #[command(subcommand)]
    Settings(admin_cli::SettingsCommand),
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    ender_core::return_large_frees_to_the_system();
    ender_core::install_crypto_provider();
    let cli = Cli::parse();
    let result = match cli.command {
        None => serve(cli.serve).await,
        Some(Command::Serve(cfg)) => serve(*cfg).await,
        Some(Command::Migrate {
            revert_all,
            database,
            log,
        }) => migrate(revert_all, database, log).await,
        Some(Command::Admin(AdminCommand::Create {
            email,
            password_stdin,
            public_url,
            database,
            log,
        })) => create_admin(&email, password_stdin, &public_url, database, log).await,
        Some(Command::Admin(AdminCommand::Invite {
            email,
            public_url,
            database,
            log,
        })) => invite(&email, &public_url, database, log).await,
        Some(Command::Admin(AdminCommand::Users(cmd))) => admin_cli::users(cmd).await,
        Some(Command::Admin(AdminCommand::Suspend { email, target })) => {
            admin_cli::suspend(&email, true, target).await
        }
        Some(Command::Admin(AdminCommand::Unsuspend { email, target })) => {
            admin_cli::suspend(&email, false, target).await
        }
        Some(Command::Admin(AdminCommand::Plan(cmd))) => admin_cli::plan(cmd).await,
        Some(Command::Admin(AdminCommand::Settings(cmd))) => admin_cli::settings(cmd).await,
        Some(Command::Healthcheck { url }) => healthcheck(&url).await,
        Some(Command::DevDb { action, data_dir }) => dev_db(action, &data_dir).await,
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("ender-web: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn serve(cfg: ServeConfig) -> anyhow::Result<()> {
    cfg.log.init_tracing();
    ender_web::run(cfg).await
}

async fn migrate(revert_all: bool, database: DatabaseConfig, log: LogConfig) -> anyhow::Result<()> {
    log.init_tracing();
    let db = Database::connect(&database).await?;
    let result = if revert_all {
        ender_core::db::migrate_down_all(&db.pool).await
    } else {
        ender_core::db::migrate(&db.pool).await
    };
    db.close().await;
    result?;
    eprintln!(
        "{}",
        if revert_all {
            "Migrations reverted."
        } else {
            "Migrations applied."
        }
    );
    Ok(())
}

async fn create_admin(
    email: &str,
    password_stdin: bool,
    public_url: &url::Url,
    database: DatabaseConfig,
    log: LogConfig,
) -> anyhow::Result<()> {
    log.init_tracing();
    let email = Email::parse(email).map_err(|e| anyhow::anyhow!("--email: {e}"))?;
    let password = if password_stdin {
        let mut raw = String::new();
        std::io::stdin().read_to_string(&mut raw)?;
        let raw = raw.trim_end_matches(['\r', '\n']);
        Some(Password::parse(raw, "password").map_err(|e| anyhow::anyhow!("password: {e}"))?)
    } else {
        None
    };
    let db = Database::connect(&database).await?;
    let result = async {
        ender_core::db::migrate(&db.pool).await?;
        let (user, created) = account::promote_or_create_admin(&db.pool, &email, password.as_ref()).await?;
        println!(
            "{} {} is an administrator.",
            if created { "Created" } else { "Updated" },
            user.email
        );
        if password.is_none()
            && (created || !user.has_password)
            && let Some((_, token)) = account::request_password_reset(&db.pool, user.email.as_str()).await?
        {
            let base = public_url.as_str().trim_end_matches('/');
            println!("Choose the password here (valid one hour): {base}/reset-password?token={token}");
        }
        anyhow::Ok(())
    }
    .await;
    db.close().await;
    result
}

async fn invite(
    email: &str,
    public_url: &url::Url,
    database: DatabaseConfig,
    log: LogConfig,
) -> anyhow::Result<()> {
    log.init_tracing();
    let email = Email::parse(email).map_err(|e| anyhow::anyhow!("--email: {e}"))?;
    let db = Database::connect(&database).await?;
    let result = async {
        ender_core::db::migrate(&db.pool).await?;
        let issued = ender_core::invite::create(&db.pool, None, &email, i64::MAX).await?;
        let base = public_url.as_str().trim_end_matches('/');
        println!(
            "Invitation for {} (valid 7 days, once): {base}/signup?invite={}",
            email.as_str(),
            issued.token
        );
        anyhow::Ok(())
    }
    .await;
    db.close().await;
    result
}

async fn healthcheck(url: &str) -> anyhow::Result<()> {
    let res = reqwest::Client::new()
        .get(url)
        .timeout(std::time::Duration::from_secs(5))
        .send()
        .await?;
    anyhow::ensure!(res.status().is_success(), "{url} answered {}", res.status());
    Ok(())
}

async fn dev_db(action: DevDbAction, data_dir: &std::path::Path) -> anyhow::Result<()> {
    let pg = ender_core::db::EmbeddedPostgres::start(&data_dir.join("postgres")).await?;
    match action {
        DevDbAction::Start => {
            pg.ensure_database("ender").await?;
            println!("{}", pg.url("ender"));
            pg.leave_running();
        }
        DevDbAction::Stop => pg.stop_now().await,
    }
    Ok(())
}
