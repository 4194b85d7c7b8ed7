//! Webhook signatures as receivers check them: the Standard Webhooks library and Vendel's
//! hex HMAC, through a secret rotation.

use chrono::Utc;
use ender_core::webhook::{Event, Payload, new_secret, sign};
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

fn headers(id: &str, ts: i64, signature: &str) -> http::HeaderMap {
    let mut h = http::HeaderMap::new();
    h.insert("webhook-id", id.parse().unwrap());
    h.insert("webhook-timestamp", ts.to_string().parse().unwrap());
    h.insert("webhook-signature", signature.parse().unwrap());
    h
}

#[test]
fn both_signatures_verify_and_a_rotation_keeps_old_receivers_working() {
    let (old, new) = (new_secret(), new_secret());
    assert!(old.starts_with("whsec_") && old != new);
    let body = Payload::new(Event::SmsDelivered, "m-1", Utc::now())
        .with("to", "+15551234567")
        .with("status", "delivered")
        .to_bytes();
    let ts = Utc::now().timestamp();
    let sigs = sign(&[new.clone(), old.clone()], "msg_1", ts, &body);

    // Standard Webhooks: a receiver with either secret accepts during the overlap.
    for secret in [&new, &old] {
        let wh = standardwebhooks::Webhook::new(secret).unwrap();
        wh.verify(&body, &headers("msg_1", ts, &sigs.standard)).unwrap();
    }
    let stranger = standardwebhooks::Webhook::new(&new_secret()).unwrap();
    assert!(
        stranger
            .verify(&body, &headers("msg_1", ts, &sigs.standard))
            .is_err()
    );
    // Tampering with the body or the id breaks it.
    let wh = standardwebhooks::Webhook::new(&new).unwrap();
    assert!(wh.verify(b"{}", &headers("msg_1", ts, &sigs.standard)).is_err());
    assert!(wh.verify(&body, &headers("msg_2", ts, &sigs.standard)).is_err());

    // Vendel: lowercase hex HMAC-SHA256 of the body keyed with the secret string (newest).
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(new.as_bytes()).unwrap();
    mac.update(&body);
    assert_eq!(sigs.vendel, hex::encode(mac.finalize().into_bytes()));
}

mod endpoints {

    use ender_core::config::SmsConfig;
    use ender_core::device::{DeviceInput, create as create_device};
    use ender_core::secret::Keyring;
    use ender_core::secret::at_rest;
    use ender_core::sms::dispatch::{Report, claim, dispatch_workspace, incoming, report};
    use ender_core::sms::send::{SendRequest, send};
    use ender_core::testing::test_db;
    use ender_core::webhook::endpoint::{self, EndpointError, EndpointInput};

    fn input(events: &[&str], device: Option<&str>, include_body: bool) -> EndpointInput {
        let events: Vec<String> = events.iter().map(|e| (*e).to_owned()).collect();
        EndpointInput::parse(
            "https://hooks.example.com/ender",
            &events,
            "CRM",
            device,
            include_body,
            &[],
        )
        .unwrap()
    }

    #[tokio::test]
    async fn state_changes_write_deliveries_for_matching_endpoints_in_the_same_transaction() {
        let db = test_db().await;
        let keyring = Keyring::parse(&Keyring::generate_entry(1)).unwrap();
        let owner = ender_core::testing::create_workspace(&db.pool, "hooks@example.org").await;
        let phone = create_device(
            &db.pool,
            owner,
            &DeviceInput::parse("Phone", "android", "").unwrap(),
            10,
        )
        .await
        .unwrap()
        .device;
        let other_phone = create_device(
            &db.pool,
            owner,
            &DeviceInput::parse("Other", "android", "").unwrap(),
            10,
        )
        .await
        .unwrap()
        .device;
        sqlx::query("UPDATE devices SET per_minute_limit = 100, last_seen_at = now()")
            .execute(&db.pool)
            .await
            .unwrap();
        let (all, secret) = endpoint::create(
            &db.pool,
            &keyring,
            owner,
            &input(&["sms_sent", "sms_delivered", "sms_received"], None, true),
            20,
        )
        .await
        .unwrap();
        assert!(secret.starts_with("whsec_"));
        let (_, _) = endpoint::create(
            &db.pool,
            &keyring,
            owner,
            &input(&["sms_sent"], Some(&other_phone.id.to_string()), false),
            20,
        )
        .await
        .unwrap();

        let cfg = SmsConfig::default();
        let req = SendRequest {
            recipients: vec!["+15550001111".into()],
            body: "Hello hooks".into(),
            device_id: Some(phone.id.to_string()),
            ..Default::default()
        };
        send(&db.pool, &cfg, owner, &req, None).await.unwrap();
        dispatch_workspace(&db.pool, &cfg, owner).await.unwrap();
        let claimed = claim(&db.pool, &cfg, &phone).await.unwrap();
        let id = claimed[0].id.to_string();
        report(&db.pool, &cfg, &phone, &id, Report::Sent, "")
            .await
            .unwrap();
        report(&db.pool, &cfg, &phone, &id, Report::Delivered, "")
            .await
            .unwrap();
        report(&db.pool, &cfg, &phone, &id, Report::Delivered, "")
            .await
            .unwrap();
        incoming(&db.pool, &phone, "+15557770000", "Reply", chrono::Utc::now())
            .await
            .unwrap();

        let rows: Vec<(uuid::Uuid, String, Vec<u8>, uuid::Uuid)> = sqlx::query_as(
            "SELECT endpoint_id, event, body, id FROM webhook_deliveries ORDER BY created_at, event",
        )
        .fetch_all(&db.pool)
        .await
        .unwrap();
        assert!(
            rows.iter()
                .all(|r| at_rest::payload_is_sealed(&r.2) && !r.2.windows(5).any(|w| w == b"Hello")),
            "payloads are sealed at rest"
        );
        let rows: Vec<_> = rows
            .into_iter()
            .map(|(endpoint, event, body, id)| (endpoint, event, at_rest::open_payload(id, body).unwrap()))
            .collect();
        let events: Vec<&str> = rows.iter().map(|r| r.1.as_str()).collect();
        // The device-filtered endpoint hears nothing of the other phone; a repeated
        // "delivered" adds nothing.
        assert_eq!(events, ["sms_sent", "sms_delivered", "sms_received"]);
        assert!(rows.iter().all(|r| r.0 == all.id));
        let sent: serde_json::Value = serde_json::from_slice(&rows[0].2).unwrap();
        assert_eq!(sent["to"], "+15550001111");
        assert_eq!(sent["status"], "sent");
        assert_eq!(sent["body"], "Hello hooks", "include_body");
        assert_eq!(sent["message_id"], id.as_str());
        let received: serde_json::Value = serde_json::from_slice(&rows[2].2).unwrap();
        assert_eq!(
            (received["from"].as_str(), received["body"].as_str()),
            (Some("+15557770000"), Some("Reply"))
        );
    }

    /// One event for `user` in its own transaction, as a device's report writes it.
    async fn one_event(pool: &sqlx::PgPool, user: ender_core::workspace::WorkspaceId, n: u32) {
        let payload = super::Payload::new(super::Event::SmsSent, &format!("m{n}"), super::Utc::now());
        let mut tx = pool.begin().await.unwrap();
        endpoint::enqueue(&mut tx, user, super::Event::SmsSent, None, &payload, None)
            .await
            .unwrap();
        tx.commit().await.unwrap();
    }

    /// Whether the last event woke the workers: notifications arrive in commit order, so
    /// a marker sent after it comes first exactly when the event sent none.
    async fn woke(pool: &sqlx::PgPool, listener: &mut sqlx::postgres::PgListener, n: u32) -> bool {
        let marker = format!("marker-{n}");
        sqlx::query("SELECT pg_notify($1, $2)")
            .bind(ender_core::bus::WEBHOOKS)
            .bind(&marker)
            .execute(pool)
            .await
            .unwrap();
        let first = listener.recv().await.unwrap();
        if first.payload() == marker {
            return false;
        }
        assert_eq!(listener.recv().await.unwrap().payload(), marker);
        true
    }

    #[tokio::test]
    async fn an_event_wakes_the_workers_only_when_its_endpoint_is_idle() {
        let db = test_db().await;
        let keyring = Keyring::parse(&Keyring::generate_entry(1)).unwrap();
        let owner = ender_core::testing::create_workspace(&db.pool, "wake@example.org").await;
        let (ep, _) = endpoint::create(&db.pool, &keyring, owner, &input(&["sms_sent"], None, false), 20)
            .await
            .unwrap();
        let mut listener = sqlx::postgres::PgListener::connect_with(&db.pool).await.unwrap();
        listener.listen(ender_core::bus::WEBHOOKS).await.unwrap();
        let set_all = |status: &'static str| {
            let pool = db.pool.clone();
            async move {
                sqlx::query("UPDATE webhook_deliveries SET status = $1")
                    .bind(status)
                    .execute(&pool)
                    .await
                    .unwrap();
            }
        };

        one_event(&db.pool, owner, 1).await;
        assert!(woke(&db.pool, &mut listener, 1).await, "nothing queued: wake");
        one_event(&db.pool, owner, 2).await;
        assert!(
            !woke(&db.pool, &mut listener, 2).await,
            "one already due: no wake"
        );
        set_all("delivering").await;
        one_event(&db.pool, owner, 3).await;
        assert!(
            !woke(&db.pool, &mut listener, 3).await,
            "requests in flight: no wake"
        );
        set_all("succeeded").await;
        sqlx::query(
            "UPDATE webhook_deliveries SET status = 'pending', next_attempt_at = now() + interval '1 hour'
             WHERE message_id = 'm1'",
        )
        .execute(&db.pool)
        .await
        .unwrap();
        one_event(&db.pool, owner, 4).await;
        assert!(
            woke(&db.pool, &mut listener, 4).await,
            "only a later retry queued: wake"
        );
        sqlx::query("UPDATE webhook_endpoints SET active = false, disabled_at = now() WHERE id = $1")
            .bind(ep.id)
            .execute(&db.pool)
            .await
            .unwrap();
        set_all("succeeded").await;
        one_event(&db.pool, owner, 5).await;
        assert!(
            !woke(&db.pool, &mut listener, 5).await,
            "held for a disabled endpoint: no wake"
        );
        let held: i64 = sqlx::query_scalar("SELECT count(*) FROM webhook_deliveries WHERE status = 'held'")
            .fetch_one(&db.pool)
            .await
            .unwrap();
        assert_eq!(held, 1);
    }

    #[tokio::test]
    async fn a_secret_is_bound_to_its_endpoint_and_old_ones_are_re_sealed_bound() {
        let db = test_db().await;
        let keyring = Keyring::parse(&Keyring::generate_entry(1)).unwrap();
        let owner = ender_core::testing::create_workspace(&db.pool, "bound@example.org").await;
        let (a, secret_a) = endpoint::create(
            &db.pool,
            &keyring,
            owner,
            &input(&["sms_failed"], None, false),
            20,
        )
        .await
        .unwrap();
        let (b, _) = endpoint::create(
            &db.pool,
            &keyring,
            owner,
            &input(&["sms_failed"], None, false),
            20,
        )
        .await
        .unwrap();
        // Someone with write access to the database copies a's sealed secret onto b.
        sqlx::query(
            "UPDATE webhook_secrets SET (key_version, nonce, ciphertext) =
                 (SELECT key_version, nonce, ciphertext FROM webhook_secrets WHERE endpoint_id = $1)
             WHERE endpoint_id = $2",
        )
        .bind(a.id)
        .bind(b.id)
        .execute(&db.pool)
        .await
        .unwrap();
        assert!(matches!(
            endpoint::reveal_secret(&db.pool, &keyring, owner, b.id).await,
            Err(EndpointError::Secret(_))
        ));
        assert_eq!(
            endpoint::reveal_secret(&db.pool, &keyring, owner, a.id)
                .await
                .unwrap(),
            secret_a
        );

        // A secret sealed before binding (no context) still opens, and is re-sealed bound.
        let legacy = keyring.seal(b"whsec_legacy").unwrap();
        sqlx::query(
            "UPDATE webhook_secrets SET key_version = $2, nonce = $3, ciphertext = $4, bound = false
             WHERE endpoint_id = $1",
        )
        .bind(b.id)
        .bind(legacy.key_version)
        .bind(&legacy.nonce)
        .bind(&legacy.ciphertext)
        .execute(&db.pool)
        .await
        .unwrap();
        assert_eq!(
            endpoint::reveal_secret(&db.pool, &keyring, owner, b.id)
                .await
                .unwrap(),
            "whsec_legacy"
        );
        assert_eq!(
            endpoint::bind_legacy_secrets(&db.pool, &keyring).await.unwrap(),
            1
        );
        assert_eq!(
            endpoint::bind_legacy_secrets(&db.pool, &keyring).await.unwrap(),
            0,
            "idempotent"
        );
        let (bound, ciphertext): (bool, Vec<u8>) =
            sqlx::query_as("SELECT bound, ciphertext FROM webhook_secrets WHERE endpoint_id = $1")
                .bind(b.id)
                .fetch_one(&db.pool)
                .await
                .unwrap();
        assert!(bound);
        assert_ne!(ciphertext, legacy.ciphertext);
        assert_eq!(
            endpoint::reveal_secret(&db.pool, &keyring, owner, b.id)
                .await
                .unwrap(),
            "whsec_legacy"
        );
    }

    #[tokio::test]
    async fn secrets_are_sealed_rotated_with_overlap_and_private_to_their_owner() {
        let db = test_db().await;
        let keyring = Keyring::parse(&Keyring::generate_entry(1)).unwrap();
        let owner = ender_core::testing::create_workspace(&db.pool, "own@example.org").await;
        let stranger = ender_core::testing::create_workspace(&db.pool, "str@example.org").await;
        let (ep, first) = endpoint::create(
            &db.pool,
            &keyring,
            owner,
            &input(&["sms_failed"], None, false),
            20,
        )
        .await
        .unwrap();
        let stored: Vec<u8> = sqlx::query_scalar("SELECT ciphertext FROM webhook_secrets")
            .fetch_one(&db.pool)
            .await
            .unwrap();
        assert!(
            !String::from_utf8_lossy(&stored).contains(&first[6..]),
            "sealed at rest"
        );
        assert_eq!(
            endpoint::reveal_secret(&db.pool, &keyring, owner, ep.id)
                .await
                .unwrap(),
            first
        );
        assert!(matches!(
            endpoint::reveal_secret(&db.pool, &keyring, stranger, ep.id).await,
            Err(EndpointError::NotFound)
        ));
        assert!(matches!(
            endpoint::delete(&db.pool, stranger, ep.id).await,
            Err(EndpointError::NotFound)
        ));

        let second = endpoint::rotate_secret(&db.pool, &keyring, owner, ep.id, chrono::Duration::hours(24))
            .await
            .unwrap();
        let mut conn = db.pool.acquire().await.unwrap();
        assert_eq!(
            endpoint::live_secrets(&mut conn, &keyring, ep.id).await.unwrap(),
            [second.clone(), first]
        );
        let third = endpoint::rotate_secret(&db.pool, &keyring, owner, ep.id, chrono::Duration::zero())
            .await
            .unwrap();
        assert_eq!(
            endpoint::live_secrets(&mut conn, &keyring, ep.id).await.unwrap(),
            [third],
            "revoked at once"
        );
    }

    /// Writes a delivery of `endpoint` created `minutes_ago`, with one attempt.
    async fn delivery(
        pool: &sqlx::PgPool,
        endpoint: uuid::Uuid,
        status: &str,
        minutes_ago: i64,
    ) -> uuid::Uuid {
        let id = uuid::Uuid::new_v4();
        sqlx::query(
            "INSERT INTO webhook_deliveries (id, endpoint_id, workspace_id, event, body, status, created_at)
             SELECT $1, id, workspace_id, 'sms_sent', '{\"event\":\"sms_sent\"}', $3,
                    now() - make_interval(mins => $4::int)
             FROM webhook_endpoints WHERE id = $2",
        )
        .bind(id)
        .bind(endpoint)
        .bind(status)
        .bind(minutes_ago as i32)
        .execute(pool)
        .await
        .unwrap();
        sqlx::query(
            "INSERT INTO webhook_attempts (delivery_id, endpoint_id, request_headers, response_status, error)
             VALUES ($1, $2, '{\"webhook-id\":\"msg_1\"}', 500, 'HTTP 500')",
        )
        .bind(id)
        .bind(endpoint)
        .execute(pool)
        .await
        .unwrap();
        id
    }

    #[tokio::test]
    async fn the_delivery_log_pages_newest_first_filters_and_stays_with_its_owner() {
        use ender_core::webhook::log::{self, DeliveryStatus, PageQuery};

        let db = test_db().await;
        let keyring = Keyring::parse(&Keyring::generate_entry(1)).unwrap();
        let owner = ender_core::testing::create_workspace(&db.pool, "log@example.org").await;
        let stranger = ender_core::testing::create_workspace(&db.pool, "nosy@example.org").await;
        let (ep, _) = endpoint::create(&db.pool, &keyring, owner, &input(&["sms_sent"], None, false), 20)
            .await
            .unwrap();
        let (theirs, _) = endpoint::create(
            &db.pool,
            &keyring,
            stranger,
            &input(&["sms_sent"], None, false),
            20,
        )
        .await
        .unwrap();
        let oldest = delivery(&db.pool, ep.id, "failed", 30).await;
        let middle = delivery(&db.pool, ep.id, "succeeded", 20).await;
        let newest = delivery(&db.pool, ep.id, "failed", 10).await;
        delivery(&db.pool, theirs.id, "failed", 5).await;

        let all = |before, status, limit| PageQuery {
            status,
            before,
            limit,
        };
        let ids = |rows: Vec<log::Delivery>| rows.into_iter().map(|d| d.id).collect::<Vec<_>>();
        let first = log::page(&db.pool, owner, ep.id, all(None, None, 2))
            .await
            .unwrap();
        assert_eq!(ids(first), [newest, middle]);
        let rest = log::page(&db.pool, owner, ep.id, all(Some(middle), None, 2))
            .await
            .unwrap();
        assert_eq!(ids(rest), [oldest]);
        let failed = log::page(
            &db.pool,
            owner,
            ep.id,
            all(None, Some(DeliveryStatus::Failed), 10),
        )
        .await
        .unwrap();
        assert_eq!(ids(failed), [newest, oldest]);
        assert_eq!(DeliveryStatus::parse("held"), Some(DeliveryStatus::Held));
        assert_eq!(DeliveryStatus::parse("everything"), None);

        let detail = log::find(&db.pool, owner, ep.id, newest).await.unwrap();
        assert_eq!(detail.body, br#"{"event":"sms_sent"}"#);
        assert_eq!(detail.attempts.len(), 1);
        assert_eq!(
            (
                detail.attempts[0].response_status,
                detail.attempts[0].request_headers["webhook-id"].as_str()
            ),
            (Some(500), Some("msg_1"))
        );

        // Another user's endpoint, or the owner's delivery under another endpoint, is not found.
        assert!(matches!(
            log::page(&db.pool, stranger, ep.id, all(None, None, 10)).await,
            Err(EndpointError::NotFound)
        ));
        assert!(matches!(
            log::find(&db.pool, stranger, ep.id, newest).await,
            Err(EndpointError::NotFound)
        ));
        assert!(matches!(
            log::find(&db.pool, stranger, theirs.id, newest).await,
            Err(EndpointError::NotFound)
        ));
    }

    #[test]
    fn endpoint_input_is_validated() {
        let events = vec!["sms_sent".to_owned()];
        assert!(
            EndpointInput::parse("https://x.example/h", &["nope".to_owned()], "", None, false, &[]).is_err()
        );
        assert!(EndpointInput::parse("https://x.example/h", &[], "", None, false, &[]).is_err());
        assert!(EndpointInput::parse("http://10.0.0.5/h", &events, "", None, false, &[]).is_err());
        assert!(
            EndpointInput::parse(
                "https://x.example/h",
                &events,
                "",
                Some("not-a-device"),
                false,
                &[]
            )
            .is_err()
        );
        let ok = EndpointInput::parse(
            "https://x.example/h",
            &["sms_sent".into(), "sms_sent".into()],
            " d ",
            None,
            true,
            &[],
        )
        .unwrap();
        assert_eq!((ok.events.len(), ok.description.as_str()), (1, "d"));
    }
}
