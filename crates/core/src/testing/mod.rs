//! Test support: one PostgreSQL server for every test process of a checkout (the private
//! embedded cluster, or `ENDER_TEST_DATABASE_URL`), a migrated template database, and a
//! fresh copy of it for each test.

pub mod s3;

use std::sync::OnceLock;
use std::sync::atomic::{AtomicU32, Ordering};

use sqlx::postgres::PgConnectOptions;
use sqlx::{ConnectOptions, Connection, PgConnection, PgPool};

use crate::db::{EmbeddedPostgres, MIGRATOR, migrate, pool_options};

struct Server {
    admin: PgConnectOptions,
    template: String,
}

static SERVER: OnceLock<Result<Server, String>> = OnceLock::new();
static COUNTER: AtomicU32 = AtomicU32::new(0);

/// A database of its own for one test, dropped when the test ends.
pub struct TestDb {
    pub pool: PgPool,
    pub name: String,
    options: PgConnectOptions,
}

impl TestDb {
    /// Options to open more connections (or another pool) to this test's database.
    pub fn connect_options(&self) -> PgConnectOptions {
        self.options.clone()
    }

    /// A `DATABASE_URL` for this test's database, for a process the test starts.
    pub fn url(&self) -> String {
        let o = &self.options;
        let host = o
            .get_socket()
            .map(|p| p.display().to_string())
            .unwrap_or_else(|| o.get_host().to_owned());
        format!(
            "postgres://{}@localhost/{}?host={host}&port={}",
            o.get_username(),
            self.name,
            o.get_port()
        )
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        let Some(Ok(server)) = SERVER.get() else { return };
        let admin = server.admin.clone();
        let name = self.name.clone();
        // Dropping needs async I/O; do it on a thread of its own so no runtime is required here.
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .ok()?;
            rt.block_on(async move {
                let mut conn = admin.connect().await.ok()?;
                drop_database(&mut conn, &name).await;
                Some(())
            })
        })
        .join();
    }
}

/// The key list test processes seal bodies with: fixed, so a test can open what it finds
/// in a row, and give it (as `ENDER_SECRET_KEYS`) to the binaries it starts.
pub const TEST_SECRET_KEYS: &str = "1:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";

static TEST_KEYRING: std::sync::LazyLock<crate::secret::Keyring> =
    std::sync::LazyLock::new(|| crate::secret::Keyring::parse(TEST_SECRET_KEYS).expect("a valid key list"));

/// A new database with every migration applied.
pub async fn test_db() -> TestDb {
    crate::install_crypto_provider();
    crate::secret::at_rest::install(&TEST_KEYRING, true);
    let server = SERVER
        .get_or_init(|| {
            std::thread::spawn(|| {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .map_err(|e| e.to_string())?;
                rt.block_on(init_server()).map_err(|e| format!("{e:#}"))
            })
            .join()
            .unwrap_or_else(|_| Err("test database setup panicked".to_owned()))
        })
        .as_ref()
        .unwrap_or_else(|e| panic!("cannot prepare the test database server: {e}"));

    let name = format!(
        "ender_t_{}_{}_{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed),
        crate::crypto::random_token(6).to_lowercase()
    );
    let mut admin = server.admin.connect().await.expect("connect to the test server");
    let sql = format!("CREATE DATABASE \"{name}\" TEMPLATE \"{}\"", server.template);
    let mut attempt = 0;
    loop {
        match sqlx::raw_sql(sqlx::AssertSqlSafe(sql.clone()))
            .execute(&mut admin)
            .await
        {
            Ok(_) => break,
            // Two creations from one template at the same instant can collide; try again.
            Err(e) if attempt < 20 => {
                attempt += 1;
                tracing::debug!(error = %e, "retrying test database creation");
                tokio::time::sleep(std::time::Duration::from_millis(50 * attempt)).await;
            }
            Err(e) => panic!("creating test database failed: {e}"),
        }
    }
    let _ = admin.close().await;
    let options = server.admin.clone().database(&name);
    let pool = pool_options(8)
        .connect_with(options.clone())
        .await
        .expect("connect to the test database");
    TestDb { pool, name, options }
}

async fn init_server() -> anyhow::Result<Server> {
    let admin = match std::env::var("ENDER_TEST_DATABASE_URL") {
        Ok(url) => url.parse::<PgConnectOptions>()?,
        Err(_) => {
            let uid = std::fs::metadata("/proc/self")
                .map(|m| std::os::unix::fs::MetadataExt::uid(&m))
                .unwrap_or(0);
            let dir = std::env::temp_dir().join(format!("ender-test-pg-{uid}"));
            let lock = std::fs::File::create(std::env::temp_dir().join(format!("ender-test-pg-{uid}.lock")))?;
            lock.lock()?;
            let pg = EmbeddedPostgres::start(&dir).await?;
            // The cluster stays up for later test processes; it is cheap when idle.
            let options = pg.connect_options("postgres");
            std::mem::forget(pg);
            drop(lock);
            options
        }
    };
    let template = template_name();
    let lock_path = std::env::temp_dir().join("ender-test-template.lock");
    let lock = std::fs::File::create(lock_path)?;
    lock.lock()?;
    let mut conn = admin.connect().await?;
    remove_leftovers(&mut conn, &template).await?;
    let exists: bool = sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)")
        .bind(&template)
        .fetch_one(&mut conn)
        .await?;
    if !exists {
        let building = format!("{template}_building");
        drop_database(&mut conn, &building).await;
        sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE DATABASE \"{building}\"")))
            .execute(&mut conn)
            .await?;
        let pool = pool_options(2)
            .connect_with(admin.clone().database(&building))
            .await?;
        migrate(&pool).await?;
        pool.close().await;
        sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
            "ALTER DATABASE \"{building}\" RENAME TO \"{template}\""
        )))
        .execute(&mut conn)
        .await?;
    }
    conn.close().await?;
    drop(lock);
    Ok(Server { admin, template })
}

/// The template's name changes whenever a migration does.
fn template_name() -> String {
    use sha2::{Digest, Sha256};
    let mut h = Sha256::new();
    for m in MIGRATOR.iter() {
        h.update(m.version.to_le_bytes());
        h.update(&m.checksum);
    }
    format!("ender_tpl_{}", &hex::encode(h.finalize())[..16])
}

/// Drops test databases of processes that are gone, and templates of other migrations
/// that no live test process uses. Test processes of other checkouts (other migrations)
/// share the server, so each registers the template it uses (under the template lock,
/// before its first test database is made from it) and a template is dropped only when
/// every process registered for it has ended.
async fn remove_leftovers(conn: &mut PgConnection, template: &str) -> anyhow::Result<()> {
    sqlx::raw_sql(
        "CREATE TABLE IF NOT EXISTS ender_test_template_users (
             template text NOT NULL, pid integer NOT NULL, PRIMARY KEY (template, pid))",
    )
    .execute(&mut *conn)
    .await?;
    let users: Vec<(String, i32)> = sqlx::query_as("SELECT template, pid FROM ender_test_template_users")
        .fetch_all(&mut *conn)
        .await?;
    for (name, pid) in &users {
        if !process_alive(*pid) {
            sqlx::query("DELETE FROM ender_test_template_users WHERE template = $1 AND pid = $2")
                .bind(name)
                .bind(pid)
                .execute(&mut *conn)
                .await?;
        }
    }
    let in_use: Vec<String> = users
        .into_iter()
        .filter(|(_, pid)| process_alive(*pid))
        .map(|(name, _)| name)
        .collect();
    sqlx::query(
        "INSERT INTO ender_test_template_users (template, pid) VALUES ($1, $2) ON CONFLICT DO NOTHING",
    )
    .bind(template)
    .bind(i32::try_from(std::process::id()).unwrap_or(0))
    .execute(&mut *conn)
    .await?;
    let names: Vec<String> = sqlx::query_scalar("SELECT datname FROM pg_database WHERE datname LIKE 'ender\\_t\\_%' OR datname LIKE 'ender\\_tpl\\_%'")
        .fetch_all(&mut *conn)
        .await?;
    for name in names {
        let stale = if let Some(rest) = name.strip_prefix("ender_t_") {
            let pid: i32 = rest.split('_').next().and_then(|p| p.parse().ok()).unwrap_or(0);
            !process_alive(pid)
        } else {
            name != template && !name.ends_with("_building") && !in_use.contains(&name)
        };
        if stale {
            drop_database(conn, &name).await;
        }
    }
    Ok(())
}

fn process_alive(pid: i32) -> bool {
    pid > 0 && std::path::Path::new(&format!("/proc/{pid}")).exists()
}

async fn drop_database(conn: &mut PgConnection, name: &str) {
    let sql = format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)");
    if let Err(e) = sqlx::raw_sql(sqlx::AssertSqlSafe(sql)).execute(conn).await {
        tracing::debug!(error = %e, "dropping a test database failed");
    }
}

/// A verified account with the password `correct horse battery`.
pub async fn create_user(pool: &PgPool, email: &str) -> crate::account::UserId {
    use crate::account::{Email, FullName, Password, sign_up};
    sign_up(
        pool,
        &Email::parse(email).expect("a valid test email"),
        &Password::parse("correct horse battery", "password").expect("a valid test password"),
        &FullName::default(),
        false,
    )
    .await
    .expect("sign-up in a test database")
    .user
    .id
}

/// The personal workspace of `user` (where their devices, keys and messages go by default).
pub async fn personal_workspace(
    pool: &PgPool,
    user: crate::account::UserId,
) -> crate::workspace::WorkspaceId {
    crate::workspace::repo::personal(&mut pool.acquire().await.expect("a connection"), user)
        .await
        .expect("reading the personal workspace")
        .expect("every account has a personal workspace")
        .id
}

/// A verified account (as [`create_user`]) and its personal workspace.
pub async fn create_owner(
    pool: &PgPool,
    email: &str,
) -> (crate::account::UserId, crate::workspace::WorkspaceId) {
    let user = create_user(pool, email).await;
    (user, personal_workspace(pool, user).await)
}

/// The personal workspace of a new verified account, for tests that only need an owner.
pub async fn create_workspace(pool: &PgPool, email: &str) -> crate::workspace::WorkspaceId {
    create_owner(pool, email).await.1
}

/// Every message as (direction, recipient, body), bodies opened, by recipient then age.
pub async fn message_texts(pool: &PgPool) -> Vec<(String, String, String)> {
    use crate::secret::at_rest::{Column, open_text};
    type Row = (uuid::Uuid, String, String, String, Option<Vec<u8>>);
    let rows: Vec<Row> = sqlx::query_as(
        "SELECT id, direction, recipient, body, body_sealed FROM messages ORDER BY recipient, created_at, id",
    )
    .fetch_all(pool)
    .await
    .expect("reading the messages");
    rows.into_iter()
        .map(|(id, direction, to, body, sealed)| {
            let body =
                open_text(Column::MessageBody, id, body, sealed.as_deref()).expect("a body that opens");
            (direction, to, body)
        })
        .collect()
}

/// Every webhook delivery as (event, payload), payloads opened, oldest first.
pub async fn webhook_payloads(pool: &PgPool) -> Vec<(String, Vec<u8>)> {
    let rows: Vec<(uuid::Uuid, String, Vec<u8>)> =
        sqlx::query_as("SELECT id, event, body FROM webhook_deliveries ORDER BY created_at, id")
            .fetch_all(pool)
            .await
            .expect("reading the webhook deliveries");
    rows.into_iter()
        .map(|(id, event, body)| {
            let body = crate::secret::at_rest::open_payload(id, body).expect("a payload that opens");
            (event, body)
        })
        .collect()
}
