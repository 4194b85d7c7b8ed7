//! Exports through the real queue: two running workers (each with its exports queue)
//! against one S3 server; each export is made once and lands whole in the bucket.

use std::time::Duration;

use ender_core::export::{self, Format, MessageFilter};
use ender_core::testing::s3::S3Server;
use ender_core::testing::test_db;
use ender_worker::WorkerConfig;
use tokio_util::sync::CancellationToken;

#[tokio::test]
async fn running_workers_make_each_export_once_into_the_store() {
    ender_core::install_crypto_provider();
    let db = test_db().await;
    let s3 = S3Server::start().await;
    let ws = ender_core::testing::create_workspace(&db.pool, "owner@example.org").await;
    sqlx::query(
        "INSERT INTO messages (id, workspace_id, direction, recipient, body, encoding, segments, status, created_at)
         SELECT gen_random_uuid(), $1, 'outgoing', '+1555' || lpad(g::text, 7, '0'), 'body ' || g, 'gsm7', 1,
                'sent', now() - make_interval(secs => g)
         FROM generate_series(1, 12000) g",
    )
    .bind(ws.0)
    .execute(&db.pool)
    .await
    .unwrap();
    let data = tempfile::tempdir().unwrap();
    let shutdown = CancellationToken::new();
    let keyring = std::sync::Arc::new(
        ender_core::secret::Keyring::parse(&ender_core::secret::Keyring::generate_entry(1)).unwrap(),
    );
    let cfg = |name: &str| WorkerConfig {
        storage: s3.config(),
        export_keep_days: 3,
        ..crate::config(name)
    };
    let workers: Vec<_> = ["one", "two"]
        .into_iter()
        .map(|name| {
            tokio::spawn(ender_worker::run(
                db.pool.clone(),
                cfg(name),
                keyring.clone(),
                None,
                data.path().to_owned(),
                shutdown.clone(),
            ))
        })
        .collect();
    let mut ids = Vec::new();
    for format in [Format::Csv, Format::Jsonl] {
        let e = export::request(&db.pool, ws, None, format, &MessageFilter::default())
            .await
            .unwrap();
        ids.push(e.id);
    }
    let mut done = false;
    for _ in 0..300 {
        let finished: i64 = sqlx::query_scalar("SELECT count(*) FROM exports WHERE status = 'done'")
            .fetch_one(&db.pool)
            .await
            .unwrap();
        if finished == 2 {
            done = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(done, "both exports were made");
    let store = ender_core::store::Store::from_config(&s3.config(), data.path()).unwrap();
    for id in ids {
        let (attempts, rows, size, kept): (i32, i64, i64, bool) = sqlx::query_as(
            "SELECT attempts, rows_done, size_bytes, expires_at > now() + interval '2 days' FROM exports WHERE id = $1",
        )
        .bind(id)
        .fetch_one(&db.pool)
        .await
        .unwrap();
        assert_eq!(attempts, 1, "made once");
        assert_eq!(rows, 12_000);
        assert!(kept);
        let e = export::get(&mut db.pool.acquire().await.unwrap(), ws, id)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            store.size(&e.key()).await.unwrap(),
            Some(u64::try_from(size).unwrap())
        );
        let mut obj = store.get(&e.key()).await.unwrap();
        let mut text = String::new();
        tokio::io::AsyncReadExt::read_to_string(&mut obj.reader, &mut text)
            .await
            .unwrap();
        let lines = text.lines().count();
        assert_eq!(lines, if e.format == Format::Csv { 12_001 } else { 12_000 });
        assert!(text.contains("body 12000") && text.contains("body 1"));
    }
    // Nothing is left in the temporary folder.
    let tmp = data.path().join("tmp");
    assert_eq!(std::fs::read_dir(&tmp).map(|d| d.count()).unwrap_or(0), 0);
    shutdown.cancel();
    for w in workers {
        w.await.unwrap().unwrap();
    }
}
