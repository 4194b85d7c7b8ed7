//! Message, template and scheduled-send bodies and webhook payloads at rest: sealed with the keyring,
//! bound to the row that holds them, and a keyed blind index for the one equality Ender
//! needs on a body (the same incoming SMS reported twice).
//!
//! The keyring is process configuration: each binary installs it once at start, before it
//! serves or works, and every read or write of a body uses it. (Bodies are read in many
//! places that take only a pool; the keyring is the same for all of them.)

use std::sync::OnceLock;

use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;
use sqlx::PgPool;
use uuid::Uuid;

use super::{Keyring, Sealed, SecretError};

struct AtRest {
    keyring: Keyring,
    index_key: [u8; 32],
    seal: bool,
}

static AT_REST: OnceLock<AtRest> = OnceLock::new();

/// Makes `keyring` the one bodies are sealed and opened with in this process, and says
/// whether new bodies are sealed (`ENDER_SEAL_BODIES`; sealed ones open either way). The
/// first call wins: a process has one keyring.
pub fn install(keyring: &Keyring, seal: bool) {
    AT_REST.get_or_init(|| AtRest {
        index_key: index_key(keyring),
        keyring: keyring.clone(),
        seal,
    });
}

/// Whether new bodies are sealed in this process.
pub fn sealing() -> bool {
    at_rest().seal
}

fn at_rest() -> &'static AtRest {
    AT_REST
        .get()
        .expect("the keyring for bodies at rest is installed at start (secret::at_rest::install)")
}

/// The blind-index key is derived from the oldest configured key, so it stays the same
/// when a newer key is added for sealing (an index must not change under rotation).
fn index_key(keyring: &Keyring) -> [u8; 32] {
    let oldest = keyring.keys.first().map(|k| k.1).unwrap_or_default();
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(&oldest).expect("HMAC takes keys of any length");
    mac.update(b"ender blind index v1");
    mac.finalize().into_bytes().into()
}

/// What a sealed body belongs to; part of the associated data, with the row's id.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Column {
    MessageBody,
    TemplateBody,
    ScheduleBody,
    WebhookPayload,
}

impl Column {
    fn context(self, id: Uuid) -> Vec<u8> {
        let name: &[u8] = match self {
            Self::MessageBody => b"messages.body:",
            Self::TemplateBody => b"message_templates.body:",
            Self::ScheduleBody => b"scheduled_sends.body:",
            Self::WebhookPayload => b"webhook_deliveries.body:",
        };
        [name, id.as_bytes()].concat()
    }
}

/// The first byte of a sealed webhook payload: a stored JSON payload never starts with it.
const SEALED_MARK: u8 = 0;

/// Seals `plaintext` for the row `id` of `column`: key version (4 bytes, big-endian), the
/// 12-byte nonce, then the ciphertext with its tag.
pub fn seal(column: Column, id: Uuid, plaintext: &[u8]) -> Result<Vec<u8>, SecretError> {
    Ok(join_sealed(
        at_rest().keyring.seal_bound(plaintext, &column.context(id))?,
    ))
}

fn join_sealed(sealed: Sealed) -> Vec<u8> {
    let mut out = Vec::with_capacity(4 + 12 + sealed.ciphertext.len());
    out.extend_from_slice(&sealed.key_version.to_be_bytes());
    out.extend_from_slice(&sealed.nonce);
    out.extend_from_slice(&sealed.ciphertext);
    out
}

/// Opens what [`seal`] sealed for the same row.
pub fn open(column: Column, id: Uuid, stored: &[u8]) -> Result<Vec<u8>, SecretError> {
    let sealed = split_sealed(stored)?;
    at_rest().keyring.open_bound(&sealed, &column.context(id))
}

/// Seals an instance setting's secret (a payment provider's key), bound to its key.
pub fn seal_setting(key: &str, plaintext: &[u8]) -> Result<Vec<u8>, SecretError> {
    Ok(join_sealed(at_rest().keyring.seal_bound(
        plaintext,
        &[b"instance_settings.sealed:", key.as_bytes()].concat(),
    )?))
}

/// Opens what [`seal_setting`] sealed for the same key.
pub fn open_setting(key: &str, stored: &[u8]) -> Result<Vec<u8>, SecretError> {
    let sealed = split_sealed(stored)?;
    at_rest()
        .keyring
        .open_bound(&sealed, &[b"instance_settings.sealed:", key.as_bytes()].concat())
}

fn split_sealed(stored: &[u8]) -> Result<Sealed, SecretError> {
    if stored.len() < 4 + 12 + 16 {
        return Err(SecretError::Damaged);
    }
    let (version, rest) = stored.split_at(4);
    let (nonce, ciphertext) = rest.split_at(12);
    Ok(Sealed {
        key_version: i32::from_be_bytes(version.try_into().map_err(|_| SecretError::Damaged)?),
        nonce: nonce.to_vec(),
        ciphertext: ciphertext.to_vec(),
    })
}

/// A text body for a `text` column pair: the sealed bytes, or the plaintext of a row
/// written before bodies were sealed (its `sealed` is NULL).
pub fn open_text(column: Column, id: Uuid, legacy: String, sealed: Option<&[u8]>) -> sqlx::Result<String> {
    let Some(sealed) = sealed else {
        return Ok(legacy);
    };
    let plain = open(column, id, sealed).map_err(decode_error)?;
    String::from_utf8(plain).map_err(|e| decode_error(e.utf8_error()))
}

/// A text body as its row stores it: `('', sealed)` when bodies are sealed, else
/// `(text, empty)`. An empty `Vec` stands for NULL (`NULLIF($n, ''::bytea)` in SQL), so
/// bulk inserts can pass plain `bytea[]`.
pub fn store_text(column: Column, id: Uuid, text: &str) -> sqlx::Result<(String, Vec<u8>)> {
    store_text_as(sealing(), column, id, text)
}

fn store_text_as(sealing_on: bool, column: Column, id: Uuid, text: &str) -> sqlx::Result<(String, Vec<u8>)> {
    if !sealing_on {
        return Ok((text.to_owned(), Vec::new()));
    }
    let sealed = seal(column, id, text.as_bytes()).map_err(encode_error)?;
    Ok((String::new(), sealed))
}

/// A webhook payload as it is stored: the mark then the sealed payload, or the JSON itself
/// when bodies are not sealed.
pub fn store_payload(id: Uuid, payload: &[u8]) -> sqlx::Result<Vec<u8>> {
    store_payload_as(sealing(), id, payload)
}

fn store_payload_as(sealing_on: bool, id: Uuid, payload: &[u8]) -> sqlx::Result<Vec<u8>> {
    if !sealing_on {
        return Ok(payload.to_vec());
    }
    let sealed = seal(Column::WebhookPayload, id, payload).map_err(encode_error)?;
    Ok([&[SEALED_MARK][..], &sealed].concat())
}

/// A stored webhook payload, opened (one stored before payloads were sealed is its JSON).
pub fn open_payload(id: Uuid, stored: Vec<u8>) -> Result<Vec<u8>, SecretError> {
    match stored.split_first() {
        Some((&SEALED_MARK, sealed)) => open(Column::WebhookPayload, id, sealed),
        _ => Ok(stored),
    }
}

/// Whether a stored webhook payload is sealed.
pub fn payload_is_sealed(stored: &[u8]) -> bool {
    stored.first() == Some(&SEALED_MARK)
}

/// A keyed digest of `parts` (hex): equal inputs give equal digests, and without the key a
/// digest says nothing about a short body (unlike a plain hash, which a dictionary opens).
pub fn blind_index(parts: &[&[u8]]) -> String {
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(&at_rest().index_key)
        .expect("HMAC takes keys of any length");
    for part in parts {
        mac.update(part);
        mac.update(&[0]);
    }
    hex::encode(mac.finalize().into_bytes())
}

/// How many stored bodies one [`convert_stored`] pass changed.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Converted {
    pub messages: u64,
    pub templates: u64,
    pub schedules: u64,
    pub webhook_payloads: u64,
    /// Rows that could not be opened (wrong or missing key), left as they were.
    pub unreadable: u64,
}

/// Rows converted per transaction.
const CONVERT_BATCH: i64 = 500;

/// Brings stored bodies to `seal` (the process's [`sealing`] when a worker starts): with
/// it on, the plaintext rows written before are sealed (and a received message's
/// de-duplication key becomes the blind index); with it off, sealed rows are opened back
/// to plaintext. Idempotent and safe from several processes at once (rows are claimed
/// with `SKIP LOCKED`).
pub async fn convert_stored(pool: &PgPool, seal: bool) -> sqlx::Result<Converted> {
    let mut done = Converted::default();
    convert_messages(pool, seal, &mut done).await?;
    convert_templates(pool, seal, &mut done).await?;
    convert_schedules(pool, seal, &mut done).await?;
    convert_payloads(pool, seal, &mut done).await?;
    Ok(done)
}

async fn convert_messages(pool: &PgPool, seal: bool, done: &mut Converted) -> sqlx::Result<()> {
    let mut after = Uuid::nil();
    loop {
        let mut tx = pool.begin().await?;
        let rows = sqlx::query!(
            "SELECT id, body, body_sealed, device_id, from_number, received_at, dedupe_key IS NOT NULL AS \"keyed!\"
             FROM messages WHERE id > $1 AND (body_sealed IS NULL) = $2
             ORDER BY id LIMIT $3 FOR UPDATE SKIP LOCKED",
            after,
            seal,
            CONVERT_BATCH
        )
        .fetch_all(&mut *tx)
        .await?;
        let Some(last) = rows.last() else { break };
        after = last.id;
        let (mut ids, mut bodies, mut sealed, mut keys) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        for r in rows {
            let text = match open_text(Column::MessageBody, r.id, r.body, r.body_sealed.as_deref()) {
                Ok(text) => text,
                Err(e) => {
                    tracing::error!(message.id = %r.id, error = %e, "a message body could not be opened");
                    done.unreadable += 1;
                    continue;
                }
            };
            // The blind index replaces the plain digest a received message was stored with.
            keys.push(match (r.keyed, r.device_id, r.received_at) {
                (true, Some(device), Some(at)) => Some(crate::sms::dispatch::incoming_key(
                    crate::device::DeviceId(device),
                    &r.from_number,
                    &text,
                    at,
                )),
                _ => None,
            });
            let (body, seal_bytes) = store_text_as(seal, Column::MessageBody, r.id, &text)?;
            ids.push(r.id);
            bodies.push(body);
            sealed.push(seal_bytes);
        }
        let n = sqlx::query!(
            "UPDATE messages m SET body = t.body, body_sealed = NULLIF(t.sealed, ''::bytea),
                    dedupe_key = CASE WHEN t.key IS NULL OR EXISTS (SELECT 1 FROM messages o
                                                                    WHERE o.dedupe_key = t.key AND o.id <> m.id)
                                      THEN m.dedupe_key ELSE t.key END
             FROM unnest($1::uuid[], $2::text[], $3::bytea[], $4::text[]) AS t(id, body, sealed, key)
             WHERE m.id = t.id",
            &ids,
            &bodies,
            &sealed,
            &keys as &[Option<String>]
        )
        .execute(&mut *tx)
        .await?
        .rows_affected();
        tx.commit().await?;
        done.messages += n;
    }
    Ok(())
}

async fn convert_templates(pool: &PgPool, seal: bool, done: &mut Converted) -> sqlx::Result<()> {
    let mut after = Uuid::nil();
    loop {
        let mut tx = pool.begin().await?;
        let rows = sqlx::query_as!(
            TextRow,
            r#"SELECT id AS "id!", body AS "body!", body_sealed FROM message_templates
               WHERE id > $1 AND (body_sealed IS NULL) = $2 ORDER BY id LIMIT $3 FOR UPDATE SKIP LOCKED"#,
            after,
            seal,
            CONVERT_BATCH
        )
        .fetch_all(&mut *tx)
        .await?;
        let Some(last) = rows.last() else { break };
        after = last.id;
        let r = restore(seal, Column::TemplateBody, rows, done)?;
        done.templates += sqlx::query!(
            "UPDATE message_templates m SET body = t.body, body_sealed = NULLIF(t.sealed, ''::bytea)
             FROM unnest($1::uuid[], $2::text[], $3::bytea[]) AS t(id, body, sealed) WHERE m.id = t.id",
            &r.ids,
            &r.bodies,
            &r.sealed
        )
        .execute(&mut *tx)
        .await?
        .rows_affected();
        tx.commit().await?;
    }
    Ok(())
}

async fn convert_schedules(pool: &PgPool, seal: bool, done: &mut Converted) -> sqlx::Result<()> {
    let mut after = Uuid::nil();
    loop {
        let mut tx = pool.begin().await?;
        // A schedule that uses a template has no text of its own.
        let rows = sqlx::query_as!(
            TextRow,
            r#"SELECT id AS "id!", body AS "body!", body_sealed FROM scheduled_sends
               WHERE id > $1 AND template_id IS NULL AND (body_sealed IS NULL) = $2
               ORDER BY id LIMIT $3 FOR UPDATE SKIP LOCKED"#,
            after,
            seal,
            CONVERT_BATCH
        )
        .fetch_all(&mut *tx)
        .await?;
        let Some(last) = rows.last() else { break };
        after = last.id;
        let r = restore(seal, Column::ScheduleBody, rows, done)?;
        done.schedules += sqlx::query!(
            "UPDATE scheduled_sends m SET body = t.body, body_sealed = NULLIF(t.sealed, ''::bytea)
             FROM unnest($1::uuid[], $2::text[], $3::bytea[]) AS t(id, body, sealed) WHERE m.id = t.id",
            &r.ids,
            &r.bodies,
            &r.sealed
        )
        .execute(&mut *tx)
        .await?
        .rows_affected();
        tx.commit().await?;
    }
    Ok(())
}

/// A row's text columns.
struct TextRow {
    id: Uuid,
    body: String,
    body_sealed: Option<Vec<u8>>,
}

/// Update arrays: each row's id, `body` and `body_sealed` (empty for NULL).
#[derive(Default)]
struct Restored {
    ids: Vec<Uuid>,
    bodies: Vec<String>,
    sealed: Vec<Vec<u8>>,
}

/// The rows' bodies opened and stored again as `seal` says; rows that do not open are
/// counted and left out.
fn restore(seal: bool, column: Column, rows: Vec<TextRow>, done: &mut Converted) -> sqlx::Result<Restored> {
    let mut out = Restored::default();
    for r in rows {
        match open_text(column, r.id, r.body, r.body_sealed.as_deref()) {
            Ok(text) => {
                let (body, seal_bytes) = store_text_as(seal, column, r.id, &text)?;
                out.ids.push(r.id);
                out.bodies.push(body);
                out.sealed.push(seal_bytes);
            }
            Err(e) => {
                tracing::error!(row.id = %r.id, column = ?column, error = %e, "a stored body could not be opened");
                done.unreadable += 1;
            }
        }
    }
    Ok(out)
}

async fn convert_payloads(pool: &PgPool, seal: bool, done: &mut Converted) -> sqlx::Result<()> {
    let mut after = Uuid::nil();
    loop {
        let mut tx = pool.begin().await?;
        let rows = sqlx::query!(
            "SELECT id, body FROM webhook_deliveries
             WHERE id > $1 AND (substring(body FROM 1 FOR 1) = '\\x00'::bytea) <> $2
             ORDER BY id LIMIT $3 FOR UPDATE SKIP LOCKED",
            after,
            seal,
            CONVERT_BATCH
        )
        .fetch_all(&mut *tx)
        .await?;
        let Some(last) = rows.last() else { break };
        after = last.id;
        let (mut ids, mut bodies) = (Vec::new(), Vec::new());
        for r in rows {
            match open_payload(r.id, r.body) {
                Ok(payload) => {
                    bodies.push(store_payload_as(seal, r.id, &payload)?);
                    ids.push(r.id);
                }
                Err(e) => {
                    tracing::error!(webhook.delivery = %r.id, error = %e, "a webhook payload could not be opened");
                    done.unreadable += 1;
                }
            }
        }
        done.webhook_payloads += sqlx::query!(
            "UPDATE webhook_deliveries d SET body = t.body
             FROM unnest($1::uuid[], $2::bytea[]) AS t(id, body) WHERE d.id = t.id",
            &ids,
            &bodies
        )
        .execute(&mut *tx)
        .await?
        .rows_affected();
        tx.commit().await?;
    }
    Ok(())
}

fn encode_error(e: SecretError) -> sqlx::Error {
    sqlx::Error::Encode(Box::new(e))
}

fn decode_error(e: impl std::error::Error + Send + Sync + 'static) -> sqlx::Error {
    sqlx::Error::Decode(Box::new(e))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn installed() {
        install(&Keyring::parse(&Keyring::generate_entry(1)).unwrap(), true);
    }

    #[test]
    fn a_body_opens_only_for_its_row_and_column() {
        installed();
        let (a, b) = (Uuid::now_v7(), Uuid::now_v7());
        let sealed = seal(Column::MessageBody, a, b"Your code is 4821").unwrap();
        assert!(
            !sealed.windows(4).any(|w| w == b"4821"),
            "the text is not in the sealed bytes"
        );
        assert_eq!(
            open(Column::MessageBody, a, &sealed).unwrap(),
            b"Your code is 4821"
        );
        assert_eq!(open(Column::MessageBody, b, &sealed), Err(SecretError::Damaged));
        assert_eq!(open(Column::TemplateBody, a, &sealed), Err(SecretError::Damaged));
        assert_eq!(
            open(Column::MessageBody, a, &sealed[..20]),
            Err(SecretError::Damaged)
        );
        assert_eq!(
            open_text(Column::MessageBody, a, "old".into(), None).unwrap(),
            "old",
            "a row from before sealing reads its plaintext"
        );
    }

    #[test]
    fn payloads_keep_reading_from_before_sealing() {
        installed();
        let id = Uuid::now_v7();
        let stored = store_payload(id, br#"{"event":"sms.sent"}"#).unwrap();
        assert!(payload_is_sealed(&stored));
        assert_eq!(open_payload(id, stored).unwrap(), br#"{"event":"sms.sent"}"#);
        let legacy = br#"{"event":"sms.sent"}"#.to_vec();
        assert!(!payload_is_sealed(&legacy));
        assert_eq!(open_payload(id, legacy.clone()).unwrap(), legacy);
    }

    #[test]
    fn the_blind_index_is_keyed_and_separates_its_parts() {
        installed();
        let digest = blind_index(&[b"a", b"bc"]);
        assert_eq!(digest, blind_index(&[b"a", b"bc"]));
        assert_ne!(digest, blind_index(&[b"ab", b"c"]));
        let plain = {
            use sha2::Digest;
            let mut h = Sha256::new();
            h.update(b"a\0bc\0");
            hex::encode(h.finalize())
        };
        assert_ne!(digest, plain, "not a plain hash");
    }
}
