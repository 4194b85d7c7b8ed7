//! The object store: the same checks against the local folder and a real S3 server on
//! loopback.

use std::time::Duration;

use ender_core::store::{Store, StoreError};
use ender_core::testing::s3::S3Server;
use tokio::io::AsyncReadExt;

async fn read_all(store: &Store, key: &str) -> Vec<u8> {
    let mut obj = store.get(key).await.unwrap();
    let mut out = Vec::new();
    obj.reader.read_to_end(&mut out).await.unwrap();
    assert_eq!(obj.size, out.len() as u64);
    out
}

/// What every store must do.
async fn behaves(store: &Store) {
    // Put, read back, size.
    assert_eq!(
        store
            .put_bytes("exports/a/one.csv", b"id,body\n1,hi\n".to_vec(), "text/csv")
            .await
            .unwrap(),
        13
    );
    assert_eq!(read_all(store, "exports/a/one.csv").await, b"id,body\n1,hi\n");
    assert_eq!(store.size("exports/a/one.csv").await.unwrap(), Some(13));
    assert_eq!(store.size("exports/a/none.csv").await.unwrap(), None);
    // Replacing an object.
    store
        .put_bytes("exports/a/one.csv", b"v2".to_vec(), "text/csv")
        .await
        .unwrap();
    assert_eq!(read_all(store, "exports/a/one.csv").await, b"v2");

    // A large file is streamed in and out intact.
    let dir = tempfile::tempdir().unwrap();
    let big: Vec<u8> = (0..6 * 1024 * 1024u32).map(|i| (i % 251) as u8).collect();
    let path = dir.path().join("big.bin");
    std::fs::write(&path, &big).unwrap();
    assert_eq!(
        store
            .put_file("backups/big.bin", &path, "application/octet-stream")
            .await
            .unwrap(),
        big.len() as u64
    );
    assert!(read_all(store, "backups/big.bin").await == big);

    // Listing by prefix, in key order.
    store
        .put_bytes("exports/a/two.csv", b"2".to_vec(), "text/csv")
        .await
        .unwrap();
    store
        .put_bytes("exports/b/three.csv", b"3".to_vec(), "text/csv")
        .await
        .unwrap();
    let keys: Vec<String> = store
        .list("exports/a/")
        .await
        .unwrap()
        .into_iter()
        .map(|i| i.key)
        .collect();
    assert_eq!(keys, ["exports/a/one.csv", "exports/a/two.csv"]);
    let all = store.list("").await.unwrap();
    assert_eq!(all.len(), 4, "{all:?}");
    let big_info = all.iter().find(|i| i.key == "backups/big.bin").unwrap();
    assert_eq!(big_info.size, big.len() as u64);
    assert!(big_info.modified > chrono::Utc::now() - chrono::Duration::minutes(5));

    // Deleting, twice.
    store.delete("exports/a/one.csv").await.unwrap();
    store.delete("exports/a/one.csv").await.unwrap();
    assert!(matches!(
        store.get("exports/a/one.csv").await,
        Err(StoreError::NotFound(_))
    ));
    assert_eq!(store.size("exports/a/one.csv").await.unwrap(), None);

    // Keys that are not plain paths never reach the store.
    for bad in ["../escape", "/etc/passwd", "a//b", ".partial/x", "with space"] {
        assert!(
            matches!(store.get(bad).await, Err(StoreError::BadKey(_))),
            "{bad}"
        );
        assert!(matches!(
            store.put_bytes(bad, b"x".to_vec(), "text/plain").await,
            Err(StoreError::BadKey(_))
        ));
        assert!(matches!(store.delete(bad).await, Err(StoreError::BadKey(_))));
    }
    // A missing source file is an error, and nothing is stored.
    assert!(
        store
            .put_file("exports/c/x.csv", &dir.path().join("missing"), "text/csv")
            .await
            .is_err()
    );
    assert_eq!(store.size("exports/c/x.csv").await.unwrap(), None);
}

#[tokio::test]
async fn the_local_folder_stores_objects() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::local(dir.path().join("objects"));
    assert!(!store.is_s3());
    behaves(&store).await;
    assert_eq!(
        store
            .presigned_url("backups/big.bin", "big.bin", Duration::from_secs(60))
            .await
            .unwrap(),
        None
    );
    // Nothing half-written is left behind, and the hidden folder is not listed.
    let partial = dir.path().join("objects/.partial");
    assert_eq!(std::fs::read_dir(&partial).unwrap().count(), 0);
}

#[tokio::test]
async fn an_s3_server_stores_objects_and_presigns_downloads() {
    ender_core::install_crypto_provider();
    let server = S3Server::start().await;
    let store = Store::from_config(&server.config(), std::path::Path::new("/nonexistent")).unwrap();
    assert!(store.is_s3());
    behaves(&store).await;
    // Everything went under the configured prefix, in the bucket.
    assert!(
        server
            .dir
            .path()
            .join("ender-test/ender/backups/big.bin")
            .exists()
    );

    // A presigned link downloads without credentials, under the name given.
    let url = store
        .presigned_url("exports/a/two.csv", "messages 2026.csv", Duration::from_secs(60))
        .await
        .unwrap()
        .unwrap();
    let res = reqwest::get(&url).await.unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(
        res.headers()["content-disposition"],
        "attachment; filename=\"messages_2026.csv\""
    );
    assert_eq!(res.bytes().await.unwrap().as_ref(), b"2");
    // A tampered link is refused.
    let res = reqwest::get(url.replace("two.csv", "three.csv")).await.unwrap();
    assert_eq!(res.status(), 403);
}

#[tokio::test]
async fn an_unreachable_or_misconfigured_store_fails_clearly() {
    ender_core::install_crypto_provider();
    let server = S3Server::start().await;
    let mut cfg = server.config();
    // Wrong secret: refused, with the store's reason.
    cfg.s3_secret_access_key = Some("wrong".to_owned().into());
    let store = Store::from_config(&cfg, std::path::Path::new("/nonexistent")).unwrap();
    let err = store
        .put_bytes("x/y", b"1".to_vec(), "text/plain")
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::S3(_)), "{err}");
    // Nobody listening.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut cfg = server.config();
    cfg.s3_endpoint = Some(format!("http://127.0.0.1:{port}").parse().unwrap());
    let store = Store::from_config(&cfg, std::path::Path::new("/nonexistent")).unwrap();
    let err = store.get("x/y").await.err().unwrap();
    assert!(matches!(err, StoreError::S3(_)), "{err}");
    // Half a key pair, or a bad endpoint, is a start-up error.
    let mut cfg = server.config();
    cfg.s3_secret_access_key = None;
    assert!(Store::from_config(&cfg, std::path::Path::new("/x")).is_err());
    let mut cfg = server.config();
    cfg.s3_endpoint = Some("ftp://127.0.0.1/".parse().unwrap());
    assert!(Store::from_config(&cfg, std::path::Path::new("/x")).is_err());
}
