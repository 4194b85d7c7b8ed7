//! `ender-web admin …` for what the console does, where a shell is handier. Every command
//! goes through `ender_core::admin`, as the pages do, and is written to the admin audit
//! log as done from the command line.

use std::io::Read;

use clap::Subcommand;
use ender_core::admin::{Admin, people, settings, workspaces};
use ender_core::config::{DatabaseConfig, LogConfig, SecretConfig};
use ender_core::db::Database;
use ender_core::workspace::WorkspaceId;

#[derive(clap::Args)]
pub struct Target {
    #[command(flatten)]
    database: DatabaseConfig,
    #[command(flatten)]
    log: LogConfig,
}

#[derive(Subcommand)]
pub enum UsersCommand {
    /// People, newest first: email, flags, sign-up date.
    List {
        /// Part of an address or a name.
        #[arg(long, default_value = "")]
        search: String,
        #[arg(long)]
        admins: bool,
        #[arg(long)]
        suspended: bool,
        #[arg(long)]
        unverified: bool,
        #[arg(long, default_value_t = 50)]
        limit: i64,
        #[command(flatten)]
        target: Target,
    },
}

#[derive(Subcommand)]
pub enum PlanCommand {
    /// Give WORKSPACE (its id, or the email of the person whose personal workspace it is)
    /// the plan with slug PLAN, free of charge.
    Set {
        workspace: String,
        plan: String,
        #[command(flatten)]
        target: Target,
    },
}

#[derive(Subcommand)]
pub enum SettingsCommand {
    /// Print every setting (or one): secrets only as "set".
    Get {
        key: Option<String>,
        #[command(flatten)]
        target: Target,
    },
    /// Save one setting. A VALUE of "-" is read from standard input (for secrets).
    Set {
        key: String,
        value: String,
        #[command(flatten)]
        secrets: SecretConfig,
        #[command(flatten)]
        target: Target,
    },
}

async fn connect(target: &Target) -> anyhow::Result<Database> {
    target.log.init_tracing();
    let db = Database::connect(&target.database).await?;
    ender_core::db::migrate(&db.pool).await?;
    Ok(db)
}

fn problem(e: ender_core::admin::AdminError) -> anyhow::Error {
    match e {
        ender_core::admin::AdminError::NotFound => anyhow::anyhow!("not found"),
        other => anyhow::anyhow!("{other}"),
    }
}

pub async fn users(cmd: UsersCommand) -> anyhow::Result<()> {
    let UsersCommand::List {
        search,
        admins,
        suspended,
        unverified,
        limit,
        target,
    } = cmd;
    let db = connect(&target).await?;
    let filter = people::Filter {
        q: search,
        admins,
        unverified,
        suspended,
        since: None,
    };
    let result = people::list(&db.pool, &filter, None, limit.clamp(1, 10_000)).await;
    db.close().await;
    let (rows, more) = result?;
    for p in &rows {
        let mut flags = Vec::new();
        if p.is_admin {
            flags.push("admin");
        }
        if p.suspended {
            flags.push("suspended");
        }
        if !p.verified {
            flags.push("unverified");
        }
        println!(
            "{}\t{}\t{}\t{}",
            p.email,
            flags.join(","),
            p.created_at.format("%Y-%m-%d"),
            p.id
        );
    }
    if more.is_some() {
        eprintln!("(more: raise --limit)");
    }
    Ok(())
}

pub async fn suspend(email: &str, suspended: bool, target: Target) -> anyhow::Result<()> {
    let db = connect(&target).await?;
    let result = async {
        let id = people::by_email(&db.pool, email).await.map_err(problem)?;
        people::set_suspended(&db.pool, &Admin::shell(), id, suspended)
            .await
            .map_err(problem)?;
        anyhow::Ok(())
    }
    .await;
    db.close().await;
    result?;
    eprintln!(
        "{email} {}",
        if suspended {
            "is suspended; their sessions have ended"
        } else {
            "may sign in again"
        }
    );
    Ok(())
}

pub async fn plan(cmd: PlanCommand) -> anyhow::Result<()> {
    let PlanCommand::Set {
        workspace,
        plan,
        target,
    } = cmd;
    let db = connect(&target).await?;
    let result = async {
        let ws = match workspace.parse::<uuid::Uuid>() {
            Ok(id) => WorkspaceId(id),
            Err(_) => {
                let user = people::by_email(&db.pool, &workspace).await.map_err(|_| {
                    anyhow::anyhow!("no workspace with id {workspace} and nobody with that address")
                })?;
                ender_core::workspace::repo::personal(&mut *db.pool.acquire().await?, user)
                    .await?
                    .ok_or_else(|| anyhow::anyhow!("{workspace} has no personal workspace"))?
                    .id
            }
        };
        let plan_id = sqlx::query_scalar::<_, uuid::Uuid>("SELECT id FROM plans WHERE slug = $1")
            .bind(plan.trim().to_lowercase())
            .fetch_optional(&db.pool)
            .await?
            .ok_or_else(|| anyhow::anyhow!("no plan with slug {plan}"))?;
        workspaces::change_plan(
            &db.pool,
            &Admin::shell(),
            ws,
            ender_core::billing::PlanId(plan_id),
        )
        .await
        .map_err(problem)?;
        anyhow::Ok(ws)
    }
    .await;
    db.close().await;
    let ws = result?;
    eprintln!("workspace {ws} now has the plan {plan}");
    Ok(())
}

pub async fn settings(cmd: SettingsCommand) -> anyhow::Result<()> {
    match cmd {
        SettingsCommand::Get { key, target } => {
            let db = connect(&target).await?;
            let result = settings::load(&mut *db.pool.acquire().await?).await;
            db.close().await;
            let s = result?;
            let mut found = false;
            for k in settings::KEYS {
                if key.as_deref().is_some_and(|want| want != k.key) {
                    continue;
                }
                found = true;
                let value = if k.kind == settings::Kind::Secret {
                    if s.is_set(k.key) { "set" } else { "" }.to_owned()
                } else {
                    s.get(k.key).to_owned()
                };
                let pinned = settings::pinned_by_env(k)
                    .map(|v| format!("\t(from {v})"))
                    .unwrap_or_default();
                println!("{}\t{value}{pinned}", k.key);
            }
            if !found {
                anyhow::bail!("there is no setting called {}", key.unwrap_or_default());
            }
            Ok(())
        }
        SettingsCommand::Set {
            key,
            value,
            secrets,
            target,
        } => {
            let value = if value == "-" {
                let mut v = String::new();
                std::io::stdin().read_to_string(&mut v)?;
                v.trim_end_matches(['\r', '\n']).to_owned()
            } else {
                value
            };
            let db = connect(&target).await?;
            let result = async {
                secrets.install_keyring(&target.database.data_dir)?;
                let changes = settings::save(&db.pool, &Admin::shell(), &[(key.clone(), value)])
                    .await
                    .map_err(|errors| {
                        anyhow::anyhow!(
                            "{}",
                            errors
                                .iter()
                                .map(|e| e.message.clone())
                                .collect::<Vec<_>>()
                                .join(" ")
                        )
                    })?;
                anyhow::Ok(changes.len())
            }
            .await;
            db.close().await;
            let n = result?;
            eprintln!("{}", if n == 0 { "nothing changed" } else { "saved" });
            Ok(())
        }
    }
}
