//! An S3 server on loopback for tests (s3s over a temporary folder), with one bucket and
//! one key pair.

use std::net::SocketAddr;

use hyper_util::rt::TokioIo;
use s3s::auth::SimpleAuth;
use s3s::service::S3ServiceBuilder;

use crate::config::StorageConfig;

pub const ACCESS_KEY: &str = "ender-test-access";
pub const SECRET_KEY: &str = "ender-test-secret-key";
pub const BUCKET: &str = "ender-test";

pub struct S3Server {
    pub addr: SocketAddr,
    /// The folder behind the server (each bucket is a folder in it).
    pub dir: tempfile::TempDir,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for S3Server {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl S3Server {
    /// Starts the server with the bucket [`BUCKET`].
    pub async fn start() -> Self {
        let dir = tempfile::tempdir().expect("a temporary folder");
        std::fs::create_dir(dir.path().join(BUCKET)).expect("the bucket's folder");
        let fs = s3s_fs::FileSystem::new(dir.path()).expect("the S3 server's folder");
        let mut builder = S3ServiceBuilder::new(fs);
        builder.set_auth(SimpleAuth::from_single(ACCESS_KEY, SECRET_KEY));
        let service = builder.build();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("a loopback port");
        let addr = listener.local_addr().expect("the bound address");
        let task = tokio::spawn(async move {
            while let Ok((sock, _)) = listener.accept().await {
                let service = service.clone();
                tokio::spawn(async move {
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(sock), service)
                        .await;
                });
            }
        });
        Self { addr, dir, task }
    }

    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Storage settings for this server (path-style, with its keys).
    pub fn config(&self) -> StorageConfig {
        StorageConfig {
            s3_bucket: Some(BUCKET.to_owned()),
            s3_endpoint: Some(self.endpoint().parse().expect("a URL")),
            s3_region: "us-east-1".to_owned(),
            s3_access_key_id: Some(ACCESS_KEY.to_owned()),
            s3_secret_access_key: Some(SECRET_KEY.to_owned().into()),
            s3_path_style: true,
            s3_prefix: "ender".to_owned(),
        }
    }
}
