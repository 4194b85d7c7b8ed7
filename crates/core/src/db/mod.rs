//! Connecting to PostgreSQL (configured, or the embedded private cluster) and the one
//! migration entry point for Ender's schema and apalis' queue tables.

mod embedded;

use std::time::Duration;

use secrecy::ExposeSecret;
use sqlx::PgPool;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};

pub use embedded::{EmbeddedError, EmbeddedPostgres};

use crate::config::DatabaseConfig;

/// Ender's own migrations (`migrations/` at the workspace root).
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("../../migrations");

/// A connection pool, and the embedded cluster behind it when Ender started one.
pub struct Database {
    pub pool: PgPool,
    embedded: Option<EmbeddedPostgres>,
}

impl Database {
    /// Connects to `DATABASE_URL`, or starts the private cluster when it is unset.
    pub async fn connect(cfg: &DatabaseConfig) -> anyhow::Result<Self> {
        let (options, embedded) = match &cfg.database_url {
            Some(url) => {
                let options: PgConnectOptions = url
                    .expose_secret()
                    .parse()
                    .map_err(|e| anyhow::anyhow!("DATABASE_URL is not a valid PostgreSQL URL: {e}"))?;
                (options, None)
            }
            None => {
                let pg = EmbeddedPostgres::start(&cfg.data_dir.join("postgres")).await?;
                pg.ensure_database("ender").await?;
                (pg.connect_options("ender"), Some(pg))
            }
        };
        let pool = pool_options(cfg.db_max_connections)
            .connect_with(options)
            .await
            .map_err(|e| anyhow::anyhow!("cannot connect to PostgreSQL: {e}"))?;
        Ok(Self { pool, embedded })
    }

    /// Closes the pool and stops the embedded cluster if this process started it.
    pub async fn close(self) {
        self.pool.close().await;
        if let Some(pg) = self.embedded {
            pg.stop().await;
        }
    }
}

/// Pool settings shared by every process: fail fast when the database is away, so pages
/// answer 503 quickly and recover on their own when it returns.
pub fn pool_options(max_connections: u32) -> PgPoolOptions {
    PgPoolOptions::new()
        .max_connections(max_connections)
        .min_connections(0)
        .acquire_timeout(Duration::from_secs(3))
        .idle_timeout(Duration::from_secs(300))
        .test_before_acquire(true)
}

/// Applies Ender's migrations, then apalis' (they keep separate history tables).
pub async fn migrate(pool: &PgPool) -> anyhow::Result<()> {
    MIGRATOR
        .run(pool)
        .await
        .map_err(|e| anyhow::anyhow!("applying Ender's migrations failed: {e}"))?;
    apalis_postgres::PostgresStorage::setup(pool)
        .await
        .map_err(|e| anyhow::anyhow!("applying the job queue's migrations failed: {e}"))?;
    Ok(())
}

/// Reverts every Ender migration (apalis' tables stay; they have no down migrations).
pub async fn migrate_down_all(pool: &PgPool) -> anyhow::Result<()> {
    MIGRATOR
        .undo(pool, 0)
        .await
        .map_err(|e| anyhow::anyhow!("reverting Ender's migrations failed: {e}"))
}

/// True when the database answers a trivial query.
pub async fn is_ready(pool: &PgPool) -> bool {
    sqlx::query_scalar::<_, i32>("SELECT 1")
        .fetch_one(pool)
        .await
        .is_ok()
}

/// True for errors that mean "the database is unreachable right now", as opposed to a
/// bad query: the caller answers 503 instead of 500.
pub fn is_unavailable(err: &sqlx::Error) -> bool {
    matches!(
        err,
        sqlx::Error::PoolTimedOut | sqlx::Error::Io(_) | sqlx::Error::PoolClosed | sqlx::Error::Tls(_)
    ) || matches!(err, sqlx::Error::Database(db) if db.code().is_some_and(|c| c.starts_with("57P") || c.starts_with("08")))
}

/// True when `err` is a unique-constraint violation on `constraint`.
pub fn is_unique_violation(err: &sqlx::Error, constraint: &str) -> bool {
    matches!(err, sqlx::Error::Database(db) if db.is_unique_violation() && db.constraint() == Some(constraint))
}
