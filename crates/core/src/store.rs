//! Object storage for exports, backups and media: an S3-compatible bucket when one is
//! configured (AWS, MinIO, Garage, R2…), otherwise the folder `<data dir>/objects`.
//!
//! Objects are written whole or not at all: a local object is written under a hidden
//! name and renamed into place, and S3 makes an object visible only when its upload
//! completes. So a reader never sees half a file, whatever happens to the writer.

use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::time::Duration;

use aws_sdk_s3::Client;
use aws_sdk_s3::config::{Credentials, Region, RequestChecksumCalculation, ResponseChecksumValidation};
use aws_sdk_s3::error::DisplayErrorContext;
use aws_sdk_s3::presigning::PresigningConfig;
use aws_sdk_s3::primitives::ByteStream;
use chrono::{DateTime, Utc};
use secrecy::ExposeSecret;
use tokio::io::AsyncRead;

use crate::config::StorageConfig;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("there is no object {0}")]
    NotFound(String),
    #[error("{0:?} is not a valid object key")]
    BadKey(String),
    #[error("the disk holding the object folder is full")]
    DiskFull,
    #[error("the object folder failed: {0}")]
    Io(std::io::Error),
    #[error("the object store failed: {0}")]
    S3(String),
}

impl From<std::io::Error> for StoreError {
    fn from(e: std::io::Error) -> Self {
        if e.raw_os_error() == Some(libc::ENOSPC) {
            Self::DiskFull
        } else {
            Self::Io(e)
        }
    }
}

fn s3_error(e: impl std::error::Error) -> StoreError {
    StoreError::S3(DisplayErrorContext(e).to_string())
}

/// An object being read: its size and its bytes as a stream.
pub struct Object {
    pub size: u64,
    pub reader: Pin<Box<dyn AsyncRead + Send>>,
}

/// An object in a listing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Info {
    pub key: String,
    pub size: u64,
    pub modified: DateTime<Utc>,
}

#[derive(Clone)]
enum Backend {
    Local {
        root: PathBuf,
    },
    S3 {
        client: Client,
        bucket: String,
        prefix: String,
    },
}

/// The object store this server is configured with.
#[derive(Clone)]
pub struct Store {
    backend: Backend,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.backend {
            Backend::Local { root } => write!(f, "Store::Local({})", root.display()),
            Backend::S3 { bucket, prefix, .. } => write!(f, "Store::S3({bucket}/{prefix})"),
        }
    }
}

/// Keys are paths of `A-Z a-z 0-9 . _ -` segments joined by `/`, at most 512 bytes: no
/// empty segment, no `.` or `..`, no leading dot (hidden names are the store's own).
pub fn valid_key(key: &str) -> bool {
    !key.is_empty()
        && key.len() <= 512
        && key.split('/').all(|seg| {
            !seg.is_empty()
                && !seg.starts_with('.')
                && seg
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
        })
}

fn checked(key: &str) -> Result<&str, StoreError> {
    if valid_key(key) {
        Ok(key)
    } else {
        Err(StoreError::BadKey(key.to_owned()))
    }
}

/// A `Content-Disposition` value that makes a browser save the download as `filename`
/// (reduced to characters that need no quoting).
pub fn attachment(filename: &str) -> String {
    let name: String = filename
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') {
                c
            } else {
                '_'
            }
        })
        .take(120)
        .collect();
    format!("attachment; filename=\"{name}\"")
}

/// What a put stores.
enum Source<'a> {
    File(&'a Path),
    Bytes(Vec<u8>),
}

/// The hidden folder under a local root where objects are written before they are moved
/// into place.
const PARTIAL: &str = ".partial";

impl Store {
    /// Objects in the folder `root`.
    pub fn local(root: impl Into<PathBuf>) -> Self {
        Self {
            backend: Backend::Local { root: root.into() },
        }
    }

    /// The bucket of `cfg` when it names one, else `<data dir>/objects`.
    pub fn from_config(cfg: &StorageConfig, data_dir: &Path) -> anyhow::Result<Self> {
        let Some(bucket) = cfg.s3_bucket.clone().filter(|b| !b.is_empty()) else {
            return Ok(Self::local(data_dir.join("objects")));
        };
        let mut conf = aws_sdk_s3::Config::builder()
            .region(Region::new(cfg.s3_region.clone()))
            .force_path_style(cfg.s3_path_style)
            // Checksums only where S3 requires them: not every compatible store takes the
            // newer trailing checksums.
            .request_checksum_calculation(RequestChecksumCalculation::WhenRequired)
            .response_checksum_validation(ResponseChecksumValidation::WhenRequired);
        match (&cfg.s3_access_key_id, &cfg.s3_secret_access_key) {
            (Some(id), Some(secret)) => {
                conf = conf.credentials_provider(Credentials::new(
                    id,
                    secret.expose_secret(),
                    None,
                    None,
                    "ender-config",
                ));
            }
            (None, None) => anyhow::bail!(
                "ENDER_S3_BUCKET is set: set ENDER_S3_ACCESS_KEY_ID and ENDER_S3_SECRET_ACCESS_KEY too"
            ),
            _ => anyhow::bail!("set both ENDER_S3_ACCESS_KEY_ID and ENDER_S3_SECRET_ACCESS_KEY"),
        }
        if let Some(endpoint) = &cfg.s3_endpoint {
            if !matches!(endpoint.scheme(), "http" | "https") {
                anyhow::bail!("ENDER_S3_ENDPOINT must be an http:// or https:// URL");
            }
            conf = conf.endpoint_url(endpoint.as_str().trim_end_matches('/'));
        }
        let prefix = cfg.s3_prefix.trim_matches('/');
        if !prefix.is_empty() && !valid_key(prefix) {
            anyhow::bail!("ENDER_S3_PREFIX {prefix:?} is not a valid key prefix");
        }
        Ok(Self {
            backend: Backend::S3 {
                client: Client::from_conf(conf.build()),
                bucket,
                prefix: if prefix.is_empty() {
                    String::new()
                } else {
                    format!("{prefix}/")
                },
            },
        })
    }

    pub fn is_s3(&self) -> bool {
        matches!(self.backend, Backend::S3 { .. })
    }

    /// Stores the file at `path` as `key` (replacing an object of that key), streaming it;
    /// returns its size.
    pub async fn put_file(&self, key: &str, path: &Path, content_type: &str) -> Result<u64, StoreError> {
        let size = tokio::fs::metadata(path).await?.len();
        self.put(key, Source::File(path), size, content_type).await?;
        Ok(size)
    }

    /// Stores `bytes` as `key`.
    pub async fn put_bytes(&self, key: &str, bytes: Vec<u8>, content_type: &str) -> Result<u64, StoreError> {
        let size = bytes.len() as u64;
        self.put(key, Source::Bytes(bytes), size, content_type).await?;
        Ok(size)
    }

    async fn put(
        &self,
        key: &str,
        source: Source<'_>,
        size: u64,
        content_type: &str,
    ) -> Result<(), StoreError> {
        let key = checked(key)?;
        match &self.backend {
            Backend::Local { root } => {
                let partial = root.join(PARTIAL);
                tokio::fs::create_dir_all(&partial).await?;
                let tmp = partial.join(crate::crypto::random_token(12));
                let result = async {
                    match source {
                        Source::File(path) => {
                            tokio::fs::copy(path, &tmp).await?;
                        }
                        Source::Bytes(bytes) => tokio::fs::write(&tmp, bytes).await?,
                    }
                    tokio::fs::File::open(&tmp).await?.sync_all().await?;
                    place(root, key, &tmp).await
                }
                .await;
                if result.is_err() {
                    let _ = tokio::fs::remove_file(&tmp).await;
                }
                result
            }
            Backend::S3 {
                client,
                bucket,
                prefix,
            } => {
                let body = match source {
                    Source::File(path) => ByteStream::from_path(path)
                        .await
                        .map_err(|e| StoreError::Io(std::io::Error::other(e)))?,
                    Source::Bytes(bytes) => ByteStream::from(bytes),
                };
                client
                    .put_object()
                    .bucket(bucket)
                    .key(format!("{prefix}{key}"))
                    .content_type(content_type)
                    .content_length(i64::try_from(size).unwrap_or(i64::MAX))
                    .body(body)
                    .send()
                    .await
                    .map_err(s3_error)?;
                Ok(())
            }
        }
    }

    /// Opens `key` for reading.
    pub async fn get(&self, key: &str) -> Result<Object, StoreError> {
        let key = checked(key)?;
        match &self.backend {
            Backend::Local { root } => {
                let file = match tokio::fs::File::open(root.join(key)).await {
                    Ok(f) => f,
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                        return Err(StoreError::NotFound(key.to_owned()));
                    }
                    Err(e) => return Err(e.into()),
                };
                let meta = file.metadata().await?;
                if !meta.is_file() {
                    return Err(StoreError::NotFound(key.to_owned()));
                }
                Ok(Object {
                    size: meta.len(),
                    reader: Box::pin(file),
                })
            }
            Backend::S3 {
                client,
                bucket,
                prefix,
            } => {
                let out = client
                    .get_object()
                    .bucket(bucket)
                    .key(format!("{prefix}{key}"))
                    .send()
                    .await
                    .map_err(|e| {
                        if e.as_service_error().is_some_and(|s| s.is_no_such_key()) {
                            StoreError::NotFound(key.to_owned())
                        } else {
                            s3_error(e)
                        }
                    })?;
                Ok(Object {
                    size: out
                        .content_length()
                        .and_then(|n| u64::try_from(n).ok())
                        .unwrap_or(0),
                    reader: Box::pin(out.body.into_async_read()),
                })
            }
        }
    }

    /// The size of `key`, or `None` when there is no such object.
    pub async fn size(&self, key: &str) -> Result<Option<u64>, StoreError> {
        let key = checked(key)?;
        match &self.backend {
            Backend::Local { root } => match tokio::fs::metadata(root.join(key)).await {
                Ok(m) if m.is_file() => Ok(Some(m.len())),
                Ok(_) => Ok(None),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
                Err(e) => Err(e.into()),
            },
            Backend::S3 {
                client,
                bucket,
                prefix,
            } => match client
                .head_object()
                .bucket(bucket)
                .key(format!("{prefix}{key}"))
                .send()
                .await
            {
                Ok(out) => Ok(Some(
                    out.content_length()
                        .and_then(|n| u64::try_from(n).ok())
                        .unwrap_or(0),
                )),
                Err(e) if e.as_service_error().is_some_and(|s| s.is_not_found()) => Ok(None),
                Err(e) => Err(s3_error(e)),
            },
        }
    }

    /// Removes `key`; removing an object that is not there is not an error.
    pub async fn delete(&self, key: &str) -> Result<(), StoreError> {
        let key = checked(key)?;
        match &self.backend {
            Backend::Local { root } => match tokio::fs::remove_file(root.join(key)).await {
                Ok(()) => Ok(()),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
                Err(e) => Err(e.into()),
            },
            Backend::S3 {
                client,
                bucket,
                prefix,
            } => {
                client
                    .delete_object()
                    .bucket(bucket)
                    .key(format!("{prefix}{key}"))
                    .send()
                    .await
                    .map_err(s3_error)?;
                Ok(())
            }
        }
    }

    /// The objects whose keys start with `prefix` (a folder such as `backups/`), by key.
    pub async fn list(&self, prefix: &str) -> Result<Vec<Info>, StoreError> {
        let mut out = match &self.backend {
            Backend::Local { root } => {
                let root = root.clone();
                let prefix = prefix.to_owned();
                tokio::task::spawn_blocking(move || list_local(&root, &prefix))
                    .await
                    .map_err(|e| StoreError::Io(std::io::Error::other(e)))??
            }
            Backend::S3 {
                client,
                bucket,
                prefix: base,
            } => {
                let mut found = Vec::new();
                let mut token = None;
                loop {
                    let page = client
                        .list_objects_v2()
                        .bucket(bucket)
                        .prefix(format!("{base}{prefix}"))
                        .set_continuation_token(token)
                        .send()
                        .await
                        .map_err(s3_error)?;
                    for o in page.contents() {
                        let Some(key) = o.key().and_then(|k| k.strip_prefix(base.as_str())) else {
                            continue;
                        };
                        let modified = o
                            .last_modified()
                            .and_then(|t| DateTime::from_timestamp(t.secs(), t.subsec_nanos()))
                            .unwrap_or_default();
                        found.push(Info {
                            key: key.to_owned(),
                            size: o.size().and_then(|n| u64::try_from(n).ok()).unwrap_or(0),
                            modified,
                        });
                    }
                    token = page.next_continuation_token().map(str::to_owned);
                    if token.is_none() {
                        break;
                    }
                }
                found
            }
        };
        out.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(out)
    }

    /// A URL that downloads `key` as `filename` without credentials for `ttl`, when the
    /// store is S3 (`None` for the local folder: Ender serves those itself).
    pub async fn presigned_url(
        &self,
        key: &str,
        filename: &str,
        ttl: Duration,
    ) -> Result<Option<String>, StoreError> {
        let key = checked(key)?;
        let Backend::S3 {
            client,
            bucket,
            prefix,
        } = &self.backend
        else {
            return Ok(None);
        };
        let config = PresigningConfig::expires_in(ttl).map_err(s3_error)?;
        let req = client
            .get_object()
            .bucket(bucket)
            .key(format!("{prefix}{key}"))
            .response_content_disposition(attachment(filename))
            .presigned(config)
            .await
            .map_err(s3_error)?;
        Ok(Some(req.uri().to_owned()))
    }
}

/// Moves the written file `tmp` to `key` under `root`.
async fn place(root: &Path, key: &str, tmp: &Path) -> Result<(), StoreError> {
    let dest = root.join(key);
    if let Some(parent) = dest.parent() {
        tokio::fs::create_dir_all(parent).await?;
    }
    tokio::fs::rename(tmp, &dest).await?;
    Ok(())
}

fn list_local(root: &Path, prefix: &str) -> Result<Vec<Info>, StoreError> {
    fn walk(root: &Path, dir: &Path, prefix: &str, out: &mut Vec<Info>) -> std::io::Result<()> {
        let entries = match std::fs::read_dir(dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(e),
        };
        for entry in entries {
            let entry = entry?;
            let name = entry.file_name();
            let Some(name) = name.to_str() else { continue };
            if name.starts_with('.') {
                continue;
            }
            let path = entry.path();
            let meta = entry.metadata()?;
            if meta.is_dir() {
                walk(root, &path, prefix, out)?;
            } else if meta.is_file() {
                let Ok(rel) = path.strip_prefix(root) else {
                    continue;
                };
                let key = rel
                    .components()
                    .filter_map(|c| c.as_os_str().to_str())
                    .collect::<Vec<_>>()
                    .join("/");
                if key.starts_with(prefix) {
                    let modified = meta.modified().map(DateTime::<Utc>::from).unwrap_or_default();
                    out.push(Info {
                        key,
                        size: meta.len(),
                        modified,
                    });
                }
            }
        }
        Ok(())
    }
    let mut out = Vec::new();
    walk(root, root, prefix, &mut out)?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_plain_paths() {
        for good in [
            "exports/ws/1.csv",
            "backups/2026-12-08T10-00-00Z.ender-backup",
            "a",
        ] {
            assert!(valid_key(good), "{good}");
        }
        for bad in [
            "",
            "/abs",
            "a//b",
            "a/../b",
            "..",
            ".hidden",
            "a/.partial/x",
            "sp ace",
            "a\\b",
            "ü",
            &"x".repeat(513),
        ] {
            assert!(!valid_key(bad), "{bad}");
        }
    }

    #[test]
    fn attachment_names_need_no_quoting() {
        assert_eq!(
            attachment("messages 2026.csv"),
            "attachment; filename=\"messages_2026.csv\""
        );
        assert_eq!(attachment("a\"b\r\n.csv"), "attachment; filename=\"a_b__.csv\"");
    }
}
