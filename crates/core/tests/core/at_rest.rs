//! Bodies at rest (review L7): message, template and webhook-payload bodies are sealed,
//! bound to their row; received messages are de-duplicated by a keyed blind index; rows
//! from before sealing are sealed by the conversion, and opened again when sealing is off.

use chrono::Utc;
use ender_core::config::SmsConfig;
use ender_core::device::{Device, DeviceInput, create as create_device};
use ender_core::schedule::{Content, ScheduleForm, ScheduleInput, repo as schedules};
use ender_core::secret::at_rest::{self, Column};
use ender_core::sms::MessageId;
use ender_core::sms::dispatch::{claim, dispatch_workspace, incoming, incoming_key};
use ender_core::sms::repo;
use ender_core::sms::send::{SendRequest, Sent, send};
use ender_core::template::{TemplateInput, repo as templates};
use ender_core::testing::{TestDb, create_workspace, test_db};
use sha2::{Digest, Sha256};
use uuid::Uuid;

async fn phone(db: &TestDb, owner: ender_core::workspace::WorkspaceId) -> Device {
    let device = create_device(
        &db.pool,
        owner,
        &DeviceInput::parse("Phone", "android", "+15550009999").unwrap(),
        10,
    )
    .await
    .unwrap()
    .device;
    sqlx::query("UPDATE devices SET per_minute_limit = 100, last_seen_at = now()")
        .execute(&db.pool)
        .await
        .unwrap();
    device
}

async fn stored(db: &TestDb, id: Uuid) -> (String, Option<Vec<u8>>) {
    sqlx::query_as("SELECT body, body_sealed FROM messages WHERE id = $1")
        .bind(id)
        .fetch_one(&db.pool)
        .await
        .unwrap()
}

/// Sends `body` to two numbers through `device`; the new messages' ids.
async fn send_two(
    db: &TestDb,
    owner: ender_core::workspace::WorkspaceId,
    device: &Device,
    body: &str,
) -> Vec<Uuid> {
    let req = SendRequest {
        recipients: vec!["+15550001111".into(), "+15550002222".into()],
        body: body.into(),
        device_id: Some(device.id.to_string()),
        ..Default::default()
    };
    let Sent::Accepted(sent) = send(&db.pool, &SmsConfig::default(), owner, &req, None)
        .await
        .unwrap()
    else {
        panic!("accepted")
    };
    sent.message_ids.iter().map(|i| i.parse().unwrap()).collect()
}

fn contains(haystack: &[u8], needle: &str) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle.as_bytes())
}

#[tokio::test]
async fn a_sent_body_is_sealed_for_its_row_and_reads_back_everywhere() {
    let db = test_db().await;
    let owner = create_workspace(&db.pool, "seal@example.org").await;
    let device = phone(&db, owner).await;
    let cfg = SmsConfig::default();
    let ids = send_two(&db, owner, &device, "Your code is 4821").await;
    for id in &ids {
        let (body, sealed) = stored(&db, *id).await;
        assert_eq!(body, "", "no plaintext in the row");
        let sealed = sealed.expect("sealed");
        assert!(!contains(&sealed, "4821"));
        assert_eq!(
            at_rest::open(Column::MessageBody, *id, &sealed).unwrap(),
            b"Your code is 4821"
        );
    }
    let found = repo::find(&db.pool, owner, MessageId(ids[0]))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(found.body, "Your code is 4821");
    dispatch_workspace(&db.pool, &cfg, owner).await.unwrap();
    let claimed = claim(&db.pool, &cfg, &device).await.unwrap();
    assert_eq!(claimed.len(), 2);
    assert!(
        claimed.iter().all(|c| c.body == "Your code is 4821"),
        "the device gets the text"
    );

    // A sealed body copied onto another row does not open there.
    sqlx::query(
        "UPDATE messages SET body_sealed = (SELECT body_sealed FROM messages WHERE id = $1) WHERE id = $2",
    )
    .bind(ids[0])
    .bind(ids[1])
    .execute(&db.pool)
    .await
    .unwrap();
    let moved = repo::find(&db.pool, owner, MessageId(ids[1])).await;
    assert!(matches!(moved, Err(sqlx::Error::Decode(_))), "{moved:?}");
}

#[tokio::test]
async fn a_received_message_is_sealed_and_de_duplicated_by_a_keyed_index() {
    let db = test_db().await;
    let owner = create_workspace(&db.pool, "inbox@example.org").await;
    let device = phone(&db, owner).await;
    let at = Utc::now();
    let first = incoming(&db.pool, &device, "+15557770000", "YES", at)
        .await
        .unwrap();
    let again = incoming(&db.pool, &device, "+15557770000", "YES", at)
        .await
        .unwrap();
    assert_eq!(first, again, "the same report twice is one message");
    let (body, sealed) = stored(&db, first.0).await;
    assert_eq!(body, "");
    assert!(sealed.is_some());
    let key: String = sqlx::query_scalar("SELECT dedupe_key FROM messages WHERE id = $1")
        .bind(first.0)
        .fetch_one(&db.pool)
        .await
        .unwrap();
    assert_eq!(key, incoming_key(device.id, "+15557770000", "YES", at));
    // The plain digest of the same parts (what the key used to be) would let anyone with
    // the row try short bodies; the keyed one differs from it.
    let mut plain = Sha256::new();
    for part in [
        device.id.to_string(),
        "+15557770000".into(),
        "YES".into(),
        at.timestamp().to_string(),
    ] {
        plain.update(part.as_bytes());
        plain.update([0]);
    }
    assert_ne!(key, hex::encode(plain.finalize()));
}

#[tokio::test]
async fn a_template_body_is_sealed_and_still_renders_a_send() {
    let db = test_db().await;
    let owner = create_workspace(&db.pool, "tpl@example.org").await;
    let input = TemplateInput::parse("Visit", "Hi {{name}}, your visit is today.").unwrap();
    let template = templates::create(&db.pool, owner, &input, 10).await.unwrap();
    assert_eq!(template.body, "Hi {{name}}, your visit is today.");
    let (body, sealed): (String, Option<Vec<u8>>) =
        sqlx::query_as("SELECT body, body_sealed FROM message_templates WHERE id = $1")
            .bind(template.id.0)
            .fetch_one(&db.pool)
            .await
            .unwrap();
    assert_eq!(body, "");
    assert!(!contains(&sealed.unwrap(), "visit"));
    let edited = TemplateInput::parse("Visit", "Hi {{name}}, see you soon.").unwrap();
    let updated = templates::update(&db.pool, owner, template.id, &edited)
        .await
        .unwrap();
    assert_eq!(updated.body, "Hi {{name}}, see you soon.");
    let found = templates::find(&db.pool, owner, template.id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(found.body, "Hi {{name}}, see you soon.");
    let (listed, _) = templates::list(&db.pool, owner, 0, 10).await.unwrap();
    assert_eq!(listed[0].body, "Hi {{name}}, see you soon.");
    let text = templates::for_send(&db.pool, owner, &template.id.to_string())
        .await
        .unwrap();
    assert_eq!(text.variables(), ["name"]);
}

#[tokio::test]
async fn a_scheduled_send_s_text_is_sealed() {
    let db = test_db().await;
    let owner = create_workspace(&db.pool, "later@example.org").await;
    let form = ScheduleForm {
        kind: "recurring".into(),
        cron_expression: "0 9 * * *".into(),
        timezone: "UTC".into(),
        recipients: vec!["+15550001111".into()],
        body: "Bins go out tonight".into(),
        ..ScheduleForm::default()
    };
    let now = Utc::now();
    let input = ScheduleInput::parse(&form, now).unwrap();
    let created = schedules::create(&db.pool, owner, &input, 10, now).await.unwrap();
    let (body, sealed): (String, Option<Vec<u8>>) =
        sqlx::query_as("SELECT body, body_sealed FROM scheduled_sends WHERE id = $1")
            .bind(created.id.0)
            .fetch_one(&db.pool)
            .await
            .unwrap();
    assert_eq!(body, "");
    assert!(!contains(&sealed.unwrap(), "Bins"));
    let found = schedules::find(&db.pool, owner, created.id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(found.content, Content::Body("Bins go out tonight".into()));
}

/// Rows as a version before sealing wrote them.
async fn seed_plaintext(
    db: &TestDb,
    owner: ender_core::workspace::WorkspaceId,
    device: &Device,
) -> (Uuid, Uuid, Uuid, Uuid) {
    sqlx::query(
        "INSERT INTO scheduled_sends (id, workspace_id, name, kind, cron_expr, recipients, body, next_run_at)
         VALUES (gen_random_uuid(), $1, 'Old', 'recurring', '0 9 * * *', '{+15550001111}', 'Old weekly', now())",
    )
    .bind(owner.0)
    .execute(&db.pool)
    .await
    .unwrap();
    let (out, inbox, template, delivery) = (Uuid::now_v7(), Uuid::now_v7(), Uuid::now_v7(), Uuid::now_v7());
    let at = chrono::DateTime::from_timestamp(1_790_000_000, 0).unwrap();
    let mut legacy = Sha256::new();
    for part in [
        device.id.to_string(),
        "+15557770000".into(),
        "STOP".into(),
        at.timestamp().to_string(),
    ] {
        legacy.update(part.as_bytes());
        legacy.update([0]);
    }
    sqlx::query(
        "INSERT INTO messages (id, workspace_id, direction, recipient, body, encoding, segments, status)
         VALUES ($1, $2, 'outgoing', '+15550001111', 'Old reminder', 'gsm7', 1, 'sent')",
    )
    .bind(out)
    .bind(owner.0)
    .execute(&db.pool)
    .await
    .unwrap();
    sqlx::query(
        "INSERT INTO messages (id, workspace_id, direction, recipient, from_number, body, encoding, segments, status,
                               device_id, received_at, dedupe_key)
         VALUES ($1, $2, 'incoming', '+15550009999', '+15557770000', 'STOP', 'gsm7', 1, 'received', $3, $4, $5)",
    )
    .bind(inbox)
    .bind(owner.0)
    .bind(device.id.0)
    .bind(at)
    .bind(hex::encode(legacy.finalize()))
    .execute(&db.pool)
    .await
    .unwrap();
    sqlx::query(
        "INSERT INTO message_templates (id, workspace_id, name, body) VALUES ($1, $2, 'Old', 'Old {{name}}')",
    )
    .bind(template)
    .bind(owner.0)
    .execute(&db.pool)
    .await
    .unwrap();
    let endpoint: Uuid = sqlx::query_scalar(
        "INSERT INTO webhook_endpoints (id, workspace_id, url, description, events)
         VALUES (gen_random_uuid(), $1, 'https://hooks.example.com/x', 'Old', '{sms_received}') RETURNING id",
    )
    .bind(owner.0)
    .fetch_one(&db.pool)
    .await
    .unwrap();
    sqlx::query(
        "INSERT INTO webhook_deliveries (id, endpoint_id, workspace_id, event, body, status)
         VALUES ($1, $2, $3, 'sms_received', convert_to('{\"body\":\"STOP\"}', 'UTF8'), 'succeeded')",
    )
    .bind(delivery)
    .bind(endpoint)
    .bind(owner.0)
    .execute(&db.pool)
    .await
    .unwrap();
    (out, inbox, template, delivery)
}

#[tokio::test]
async fn rows_from_before_sealing_are_sealed_once_and_opened_again_when_sealing_is_off() {
    let db = test_db().await;
    let owner = create_workspace(&db.pool, "legacy@example.org").await;
    let device = phone(&db, owner).await;
    let (out, inbox, template, delivery) = seed_plaintext(&db, owner, &device).await;
    assert_eq!(
        repo::find(&db.pool, owner, MessageId(out))
            .await
            .unwrap()
            .unwrap()
            .body,
        "Old reminder"
    );

    let done = at_rest::convert_stored(&db.pool, true).await.unwrap();
    assert_eq!(
        (
            done.messages,
            done.templates,
            done.schedules,
            done.webhook_payloads,
            done.unreadable
        ),
        (2, 1, 1, 1, 0)
    );
    let (old_schedules, _) = schedules::list(&db.pool, owner, 0, 10).await.unwrap();
    assert_eq!(old_schedules[0].content, Content::Body("Old weekly".into()));
    assert_eq!(
        at_rest::convert_stored(&db.pool, true).await.unwrap(),
        at_rest::Converted::default(),
        "a second pass finds nothing to do"
    );
    for id in [out, inbox] {
        let (body, sealed) = stored(&db, id).await;
        assert_eq!(body, "");
        assert!(sealed.is_some());
    }
    assert_eq!(
        repo::find(&db.pool, owner, MessageId(out))
            .await
            .unwrap()
            .unwrap()
            .body,
        "Old reminder"
    );
    assert_eq!(
        repo::find(&db.pool, owner, MessageId(inbox))
            .await
            .unwrap()
            .unwrap()
            .body,
        "STOP"
    );
    let found = templates::find(&db.pool, owner, ender_core::template::TemplateId(template))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(found.body, "Old {{name}}");
    let payload: Vec<u8> = sqlx::query_scalar("SELECT body FROM webhook_deliveries WHERE id = $1")
        .bind(delivery)
        .fetch_one(&db.pool)
        .await
        .unwrap();
    assert!(at_rest::payload_is_sealed(&payload) && !contains(&payload, "STOP"));
    assert_eq!(
        at_rest::open_payload(delivery, payload).unwrap(),
        br#"{"body":"STOP"}"#
    );
    // The received message's plain digest became the blind index: the phone reporting it
    // again after the upgrade still finds it.
    let at = chrono::DateTime::from_timestamp(1_790_000_000, 0).unwrap();
    assert_eq!(
        incoming(&db.pool, &device, "+15557770000", "STOP", at)
            .await
            .unwrap()
            .0,
        inbox
    );

    // Going back down needs the bodies opened first: the down migration says so.
    let down = include_str!("../../../../migrations/20261207000100_sealed_bodies.down.sql");
    let refused = sqlx::raw_sql(down).execute(&db.pool).await.unwrap_err();
    assert!(
        refused.to_string().contains("ENDER_SEAL_BODIES=false"),
        "{refused}"
    );

    let opened = at_rest::convert_stored(&db.pool, false).await.unwrap();
    assert_eq!(
        (
            opened.messages,
            opened.templates,
            opened.schedules,
            opened.webhook_payloads
        ),
        (2, 1, 1, 1)
    );
    assert_eq!(stored(&db, out).await, ("Old reminder".to_owned(), None));
    let payload: Vec<u8> = sqlx::query_scalar("SELECT body FROM webhook_deliveries WHERE id = $1")
        .bind(delivery)
        .fetch_one(&db.pool)
        .await
        .unwrap();
    assert_eq!(payload, br#"{"body":"STOP"}"#);
    sqlx::raw_sql(down).execute(&db.pool).await.unwrap();
}

#[tokio::test]
async fn a_body_that_does_not_open_is_counted_and_left_as_it_was() {
    let db = test_db().await;
    let owner = create_workspace(&db.pool, "damaged@example.org").await;
    let device = phone(&db, owner).await;
    let ids = send_two(&db, owner, &device, "Pick-up at 4").await;
    // The first row's envelope names key 1 but its ciphertext is not one that key made
    // (damaged on disk, or sealed under a key that has since been lost).
    let damaged: Vec<u8> = [&1i32.to_be_bytes()[..], &[0; 12], &[0xde; 32]].concat();
    sqlx::query("UPDATE messages SET body_sealed = $1 WHERE id = $2")
        .bind(&damaged)
        .bind(ids[0])
        .execute(&db.pool)
        .await
        .unwrap();

    // Opening everything (sealing turned off) opens the readable row and leaves the other.
    let opened = at_rest::convert_stored(&db.pool, false).await.unwrap();
    assert_eq!((opened.messages, opened.unreadable), (1, 1));
    assert_eq!(stored(&db, ids[1]).await, ("Pick-up at 4".to_owned(), None));
    assert_eq!(stored(&db, ids[0]).await, (String::new(), Some(damaged)));
    // A second pass ends too, and still reports the row it cannot read.
    let again = at_rest::convert_stored(&db.pool, false).await.unwrap();
    assert_eq!((again.messages, again.unreadable), (0, 1));
    let read = repo::find(&db.pool, owner, MessageId(ids[0])).await;
    assert!(matches!(read, Err(sqlx::Error::Decode(_))), "{read:?}");
}
