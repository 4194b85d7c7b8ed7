//! The private PostgreSQL cluster Ender runs when no `DATABASE_URL` is configured.
//!
//! The cluster lives in one folder, listens only on a Unix socket inside that folder,
//! persists across runs and is stopped by the process that started it. PostgreSQL refuses
//! to run as root, so under root the cluster is created and run as an unprivileged user
//! (`postgres` unless `ENDER_POSTGRES_USER` says otherwise).

use std::path::{Path, PathBuf};
use std::process::Stdio;

use sqlx::postgres::PgConnectOptions;
use sqlx::{ConnectOptions, Connection};
use tokio::process::Command;

/// Superuser of the private cluster.
const SUPERUSER: &str = "ender";
/// Port number of the socket file (no TCP port is opened).
const PORT: u16 = 5432;

#[derive(Debug, thiserror::Error)]
pub enum EmbeddedError {
    #[error(
        "PostgreSQL server binaries (initdb, pg_ctl) were not found on PATH or under /usr/lib/postgresql/*/bin. \
         Install them (Debian/Ubuntu: `apt-get install postgresql`) or set DATABASE_URL to an existing server."
    )]
    BinariesMissing,
    #[error(
        "Ender runs as root and PostgreSQL refuses to; the user `{0}` to run it as does not exist. \
         Install PostgreSQL from your distribution (it creates that user), set ENDER_POSTGRES_USER to another \
         unprivileged user, or set DATABASE_URL."
    )]
    NoUnprivilegedUser(String),
    #[error(
        "The user `{user}` cannot reach {dir}: every folder above it must be searchable by that user. \
         Set ENDER_DATA_DIR to a folder it can reach, or set DATABASE_URL."
    )]
    Unreachable { user: String, dir: String },
    #[error(
        "The socket path {0} is longer than PostgreSQL allows (107 bytes); set ENDER_DATA_DIR to a shorter path."
    )]
    SocketPathTooLong(String),
    #[error("{step} failed: {detail}")]
    Command { step: &'static str, detail: String },
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error("cannot connect to the private PostgreSQL cluster: {0}")]
    Connect(#[from] sqlx::Error),
}

/// A running private cluster.
#[derive(Debug)]
pub struct EmbeddedPostgres {
    dir: PathBuf,
    bin: PathBuf,
    run_as: Option<String>,
    started_here: bool,
}

impl EmbeddedPostgres {
    /// Creates the cluster in `dir` if needed and starts it unless it already runs.
    pub async fn start(dir: &Path) -> Result<Self, EmbeddedError> {
        let dir = std::path::absolute(dir)?;
        let socket = dir.join(format!(".s.PGSQL.{PORT}"));
        if socket.as_os_str().len() > 107 {
            return Err(EmbeddedError::SocketPathTooLong(socket.display().to_string()));
        }
        let bin = find_binaries().ok_or(EmbeddedError::BinariesMissing)?;
        let run_as = if is_root() {
            Some(std::env::var("ENDER_POSTGRES_USER").unwrap_or_else(|_| "postgres".to_owned()))
        } else {
            None
        };
        let mut pg = Self {
            dir,
            bin,
            run_as,
            started_here: false,
        };
        if !pg.dir.join("PG_VERSION").exists() {
            pg.init().await?;
        }
        if !pg.is_running().await {
            pg.run(
                "starting PostgreSQL",
                "pg_ctl",
                &[
                    "start",
                    "-w",
                    "-t",
                    "60",
                    "-D",
                    &pg.dir_str(),
                    "-l",
                    &pg.dir.join("server.log").display().to_string(),
                ],
            )
            .await?;
            pg.started_here = true;
            tracing::info!(data_dir = %pg.dir.display(), "started the private PostgreSQL cluster");
        }
        Ok(pg)
    }

    /// Connection options for `database` over the cluster's socket.
    pub fn connect_options(&self, database: &str) -> PgConnectOptions {
        PgConnectOptions::new()
            .socket(&self.dir)
            .port(PORT)
            .username(SUPERUSER)
            .database(database)
    }

    /// Creates `database` if it does not exist yet.
    pub async fn ensure_database(&self, database: &str) -> Result<(), EmbeddedError> {
        let mut conn = self.connect_options("postgres").connect().await?;
        let exists: bool = sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)")
            .bind(database)
            .fetch_one(&mut conn)
            .await?;
        if !exists {
            // Identifiers cannot be bound as parameters; the name is ours, quoted anyway.
            let sql = format!("CREATE DATABASE \"{}\"", database.replace('"', "\"\""));
            if let Err(e) = sqlx::raw_sql(sqlx::AssertSqlSafe(sql)).execute(&mut conn).await {
                // Another process may have created it between the check and now.
                if !matches!(&e, sqlx::Error::Database(db) if db.code().as_deref() == Some("42P04")) {
                    return Err(e.into());
                }
            }
        }
        conn.close().await?;
        Ok(())
    }

    /// A connection URL for tools outside Ender (psql, sqlx-cli) over the socket.
    pub fn url(&self, database: &str) -> String {
        format!(
            "postgres://{SUPERUSER}@localhost:{PORT}/{database}?host={}",
            self.dir.display()
        )
    }

    /// Leaves the cluster running after this value is gone (for `dev-db start`).
    pub fn leave_running(mut self) {
        self.started_here = false;
    }

    /// Stops the cluster whoever started it (for `dev-db stop`).
    pub async fn stop_now(mut self) {
        self.started_here = true;
        self.stop().await;
    }

    /// Stops the cluster if this process started it.
    pub async fn stop(self) {
        if !self.started_here {
            return;
        }
        let dir = self.dir_str();
        match self
            .run(
                "stopping PostgreSQL",
                "pg_ctl",
                &["stop", "-w", "-m", "fast", "-D", &dir],
            )
            .await
        {
            Ok(()) => tracing::info!("stopped the private PostgreSQL cluster"),
            Err(e) => tracing::warn!(error = %e, "stopping the private PostgreSQL cluster failed"),
        }
    }

    async fn init(&self) -> Result<(), EmbeddedError> {
        std::fs::create_dir_all(&self.dir)?;
        if let Some(user) = &self.run_as {
            let (uid, gid) = user_ids(user)
                .await
                .ok_or_else(|| EmbeddedError::NoUnprivilegedUser(user.clone()))?;
            std::os::unix::fs::chown(&self.dir, Some(uid), Some(gid))?;
            let reachable = Command::new("runuser")
                .args(["-u", user, "--", "test", "-w", &self.dir_str()])
                .status()
                .await?
                .success();
            if !reachable {
                return Err(EmbeddedError::Unreachable {
                    user: user.clone(),
                    dir: self.dir.display().to_string(),
                });
            }
        }
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&self.dir, std::fs::Permissions::from_mode(0o700))?;
        self.run(
            "initdb",
            "initdb",
            &[
                "-D",
                &self.dir_str(),
                "-U",
                SUPERUSER,
                "--auth=trust",
                "--encoding=UTF8",
                "--no-locale",
            ],
        )
        .await?;
        let conf = format!(
            "\n# Written by Ender: socket only, inside the data folder.\nlisten_addresses = ''\nunix_socket_directories = '{}'\nport = {PORT}\nmax_connections = 200\n",
            self.dir.display()
        );
        use std::io::Write;
        std::fs::OpenOptions::new()
            .append(true)
            .open(self.dir.join("postgresql.conf"))?
            .write_all(conf.as_bytes())?;
        tracing::info!(data_dir = %self.dir.display(), "created a private PostgreSQL cluster");
        Ok(())
    }

    async fn is_running(&self) -> bool {
        self.command("pg_ctl", &["status", "-D", &self.dir_str()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .await
            .is_ok_and(|s| s.success())
    }

    fn dir_str(&self) -> String {
        self.dir.display().to_string()
    }

    fn command(&self, program: &str, args: &[&str]) -> Command {
        let program = self.bin.join(program);
        let mut cmd = match &self.run_as {
            Some(user) => {
                let mut c = Command::new("runuser");
                c.args(["-u", user, "--"]).arg(program);
                c
            }
            None => Command::new(program),
        };
        cmd.args(args).stdin(Stdio::null());
        cmd
    }

    async fn run(&self, step: &'static str, program: &str, args: &[&str]) -> Result<(), EmbeddedError> {
        let out = self.command(program, args).output().await?;
        if out.status.success() {
            return Ok(());
        }
        let mut detail = String::from_utf8_lossy(&out.stderr).trim().to_owned();
        if detail.is_empty() {
            detail = String::from_utf8_lossy(&out.stdout).trim().to_owned();
        }
        if step == "starting PostgreSQL"
            && let Ok(log) = std::fs::read_to_string(self.dir.join("server.log"))
        {
            {
                let tail: Vec<&str> = log.lines().rev().take(5).collect();
                detail.push_str("\nserver log:\n");
                detail.push_str(&tail.into_iter().rev().collect::<Vec<_>>().join("\n"));
            }
        }
        Err(EmbeddedError::Command { step, detail })
    }
}

/// The folder holding `initdb` and `pg_ctl`: the newest `/usr/lib/postgresql/N/bin`, else PATH.
fn find_binaries() -> Option<PathBuf> {
    let has_both = |d: &Path| d.join("initdb").is_file() && d.join("pg_ctl").is_file();
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let v = e.file_name().to_str()?.parse::<u32>().ok()?;
            Some((v, e.path().join("bin")))
        })
        .filter(|(_, p)| has_both(p))
        .collect();
    versions.sort();
    if let Some((_, p)) = versions.pop() {
        return Some(p);
    }
    std::env::split_paths(&std::env::var_os("PATH")?).find(|d| has_both(d))
}

fn is_root() -> bool {
    current_uid() == 0
}

#[expect(unsafe_code, reason = "geteuid(2) cannot fail and has no preconditions")]
fn current_uid() -> u32 {
    unsafe { libc::geteuid() }
}

async fn user_ids(user: &str) -> Option<(u32, u32)> {
    let id = |flag: &'static str| {
        let user = user.to_owned();
        async move {
            let out = Command::new("id").args([flag, &user]).output().await.ok()?;
            if !out.status.success() {
                return None;
            }
            String::from_utf8_lossy(&out.stdout).trim().parse::<u32>().ok()
        }
    };
    Some((id("-u").await?, id("-g").await?))
}
