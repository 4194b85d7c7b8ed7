//! The migration that moves ownership from accounts to workspaces
//! (`20261207000300_workspace_ownership`): every owned table is seeded for two accounts,
//! one from before workspaces (its personal workspace has the account's id) and one from
//! after (its personal workspace has an id of its own); the migration must keep every row
//! as it was, in its owner's personal workspace, and the way down must give it back.

use std::collections::BTreeMap;

use ender_core::db::MIGRATOR;
use ender_core::testing::{TestDb, test_db};
use sqlx::AssertSqlSafe;
use uuid::Uuid;

/// The migration before the one under test.
const BEFORE: i64 = 20261207000200;

/// Every table a workspace owns, directly or through another owned row.
const OWNED: [&str; 19] = [
    "api_keys",
    "devices",
    "messages",
    "message_events",
    "idempotency_keys",
    "sms_usage",
    "dispatch_rotation",
    "contacts",
    "contact_groups",
    "contact_group_members",
    "contact_imports",
    "message_templates",
    "scheduled_sends",
    "schedule_runs",
    "webhook_endpoints",
    "webhook_secrets",
    "webhook_deliveries",
    "webhook_attempts",
    "webhook_endpoint_stats",
];

/// The tables with an owner column (the others hang off one of these).
const WITH_OWNER: [&str; 13] = [
    "api_keys",
    "devices",
    "messages",
    "idempotency_keys",
    "sms_usage",
    "dispatch_rotation",
    "contacts",
    "contact_groups",
    "contact_imports",
    "message_templates",
    "scheduled_sends",
    "webhook_endpoints",
    "webhook_deliveries",
];

async fn exec(db: &TestDb, sql: String) {
    sqlx::raw_sql(AssertSqlSafe(sql)).execute(&db.pool).await.unwrap();
}

/// An account as the schema before the migration knows it, with its personal workspace
/// (of id `workspace`, or the account's own id).
async fn account(db: &TestDb, email: &str, workspace: Option<Uuid>) -> Uuid {
    let user = Uuid::now_v7();
    let workspace = workspace.unwrap_or(user);
    exec(
        db,
        format!(
            "INSERT INTO users (id, email, email_normalized, full_name) VALUES ('{user}', '{email}', '{email}', '');
             INSERT INTO workspaces (id, name, personal_user_id) VALUES ('{workspace}', '{email}''s workspace', '{user}');
             INSERT INTO workspace_members (workspace_id, user_id, role) VALUES ('{workspace}', '{user}', 'owner');"
        ),
    )
    .await;
    user
}

/// One row in every owned table for `user`, each pointing at the others where it can.
async fn seed(db: &TestDb, user: Uuid, n: u32) {
    let [dev, msg, contact, group, tpl, sched, ep, del] = [(); 8].map(|()| Uuid::now_v7());
    exec(
        db,
        format!(
            r#"
INSERT INTO devices (id, user_id, name, kind, key_prefix, key_hash, per_minute_limit, per_day_limit)
    VALUES ('{dev}', '{user}', 'Phone {n}', 'android', 'dk_{n}', decode(md5('{dev}'), 'hex'), 10, 100);
INSERT INTO api_keys (id, user_id, name, prefix, key_hash)
    VALUES (gen_random_uuid(), '{user}', 'Key {n}', 'vk_{n}', decode(md5('key {user}'), 'hex'));
INSERT INTO messages (id, user_id, direction, recipient, body, encoding, segments, status, device_id, requested_device_id)
    VALUES ('{msg}', '{user}', 'outgoing', '+1555000000{n}', 'Hello {n}', 'gsm7', 1, 'sent', '{dev}', '{dev}');
INSERT INTO message_events (message_id, status) VALUES ('{msg}', 'sent');
INSERT INTO idempotency_keys (user_id, key, request_hash, status_code, response)
    VALUES ('{user}', 'k-{n}', '\x00', 200, '{{}}');
INSERT INTO sms_usage (user_id, month, sent) VALUES ('{user}', '2026-12-01', {n});
INSERT INTO dispatch_rotation (user_id, last_device_id) VALUES ('{user}', '{dev}');
INSERT INTO contacts (id, user_id, name, phone_number) VALUES ('{contact}', '{user}', 'Ana {n}', '+1555111111{n}');
INSERT INTO contact_groups (id, user_id, name) VALUES ('{group}', '{user}', 'Staff {n}');
INSERT INTO contact_group_members (group_id, contact_id) VALUES ('{group}', '{contact}');
INSERT INTO contact_imports (id, user_id, file_name, format, content, group_id)
    VALUES (gen_random_uuid(), '{user}', 'staff.csv', 'csv', 'name,phone', '{group}');
INSERT INTO message_templates (id, user_id, name, body) VALUES ('{tpl}', '{user}', 'Reminder {n}', 'Hi {{{{name}}}}');
INSERT INTO scheduled_sends (id, user_id, kind, cron_expr, template_id, device_id, group_ids, body)
    VALUES ('{sched}', '{user}', 'recurring', '0 9 * * *', '{tpl}', '{dev}', ARRAY['{group}']::uuid[], '');
INSERT INTO schedule_runs (schedule_id, due_at) VALUES ('{sched}', '2026-12-01T09:00:00Z');
INSERT INTO webhook_endpoints (id, user_id, url, events, device_id)
    VALUES ('{ep}', '{user}', 'https://example.com/{n}', '{{sms_sent}}', '{dev}');
INSERT INTO webhook_secrets (id, endpoint_id, key_version, nonce, ciphertext)
    VALUES (gen_random_uuid(), '{ep}', 1, '\x00', '\x01');
INSERT INTO webhook_deliveries (id, endpoint_id, user_id, event, body) VALUES ('{del}', '{ep}', '{user}', 'sms_sent', '\x02');
INSERT INTO webhook_attempts (delivery_id, endpoint_id) VALUES ('{del}', '{ep}');
INSERT INTO webhook_endpoint_stats (endpoint_id, hour) VALUES ('{ep}', '2026-12-01T09:00:00Z');
"#
        ),
    )
    .await;
}

/// Every owned table's rows, without the owner columns, in a stable order.
async fn contents(db: &TestDb) -> BTreeMap<&'static str, serde_json::Value> {
    let mut out = BTreeMap::new();
    for table in OWNED {
        let rows: serde_json::Value = sqlx::query_scalar(AssertSqlSafe(format!(
            "SELECT coalesce(jsonb_agg(r ORDER BY r::text), '[]') FROM
                 (SELECT to_jsonb(t) - 'user_id' - 'workspace_id' - 'created_by' - {LATER} AS r FROM {table} t) s"
        )))
        .fetch_one(&db.pool)
        .await
        .unwrap();
        out.insert(table, rows);
    }
    out
}

/// Rows per owner and table: by `user_id` before the migration, by the account whose
/// personal workspace holds them after.
/// Columns that migrations after this one add (the rows are compared at the latest schema).
const LATER: &str = "'warned_percent' - 'mailed_percent'";

async fn owners(db: &TestDb, column: &str) -> BTreeMap<(&'static str, Uuid), i64> {
    let mut out = BTreeMap::new();
    for table in WITH_OWNER {
        let sql = if column == "user_id" {
            format!("SELECT user_id, count(*) FROM {table} GROUP BY 1")
        } else {
            format!(
                "SELECT w.personal_user_id, count(*) FROM {table} t
                 JOIN workspaces w ON w.id = t.workspace_id GROUP BY 1"
            )
        };
        let rows: Vec<(Uuid, i64)> = sqlx::query_as(AssertSqlSafe(sql))
            .fetch_all(&db.pool)
            .await
            .unwrap();
        for (owner, n) in rows {
            out.insert((table, owner), n);
        }
    }
    out
}

#[tokio::test]
async fn every_owned_row_moves_into_its_owners_personal_workspace_and_back() {
    let db = test_db().await;
    MIGRATOR.undo(&db.pool, BEFORE).await.unwrap();
    // From before workspaces: the first step gave its workspace the account's own id.
    let old = account(&db, "old@example.org", None).await;
    // From after the first step: a workspace with an id of its own.
    let new_workspace = Uuid::now_v7();
    let new = account(&db, "new@example.org", Some(new_workspace)).await;
    seed(&db, old, 1).await;
    seed(&db, new, 2).await;
    let before = contents(&db).await;
    let by_user = owners(&db, "user_id").await;
    assert_eq!(by_user.len(), 2 * WITH_OWNER.len(), "every table seeded for both");

    MIGRATOR.run(&db.pool).await.unwrap();
    assert_eq!(contents(&db).await, before, "no row lost or changed");
    assert_eq!(
        owners(&db, "workspace_id").await,
        by_user,
        "every row with its owner"
    );
    let moved: i64 = sqlx::query_scalar("SELECT count(*) FROM devices WHERE workspace_id = $1")
        .bind(new_workspace)
        .fetch_one(&db.pool)
        .await
        .unwrap();
    assert_eq!(moved, 1, "the newer account's rows are in its own workspace's id");
    let makers: Vec<(Uuid, Option<Uuid>)> =
        sqlx::query_as("SELECT workspace_id, created_by FROM api_keys ORDER BY name")
            .fetch_all(&db.pool)
            .await
            .unwrap();
    assert_eq!(makers, vec![(old, Some(old)), (new_workspace, Some(new))]);
    let members: Vec<(Uuid, Uuid)> =
        sqlx::query_as("SELECT workspace_id, group_id FROM contact_group_members ORDER BY workspace_id")
            .fetch_all(&db.pool)
            .await
            .unwrap();
    assert!(members.iter().any(|(w, _)| *w == new_workspace) && members.iter().any(|(w, _)| *w == old));

    // A shared workspace with one member: on the way down its rows go to that member.
    let shared = Uuid::now_v7();
    exec(
        &db,
        format!(
            "INSERT INTO workspaces (id, name) VALUES ('{shared}', 'Front desk');
             INSERT INTO workspace_members (workspace_id, user_id, role) VALUES ('{shared}', '{new}', 'owner');
             INSERT INTO devices (id, workspace_id, name, kind, key_prefix, key_hash, per_minute_limit, per_day_limit)
                 VALUES (gen_random_uuid(), '{shared}', 'Desk phone', 'android', 'dk_s', '\\x0102', 10, 100);"
        ),
    )
    .await;
    MIGRATOR.undo(&db.pool, BEFORE).await.unwrap();
    let devices: Vec<(String, Uuid)> = sqlx::query_as("SELECT name, user_id FROM devices ORDER BY name")
        .fetch_all(&db.pool)
        .await
        .unwrap();
    assert_eq!(
        devices,
        vec![
            ("Desk phone".to_owned(), new),
            ("Phone 1".to_owned(), old),
            ("Phone 2".to_owned(), new)
        ]
    );
    exec(&db, "DELETE FROM devices WHERE name = 'Desk phone'".to_owned()).await;
    assert_eq!(contents(&db).await, before, "the way down keeps every row");
    assert_eq!(
        owners(&db, "user_id").await,
        by_user,
        "and gives each back to its account"
    );
    MIGRATOR.run(&db.pool).await.unwrap();
}

/// After the migration the schema itself keeps tenancy: a message cannot name another
/// workspace's device, a delivery another workspace's endpoint, an import another's group.
#[tokio::test]
async fn owned_rows_cannot_name_another_workspaces_rows() {
    let db = test_db().await;
    let a = ender_core::testing::create_workspace(&db.pool, "a@example.org")
        .await
        .0;
    let b = ender_core::testing::create_workspace(&db.pool, "b@example.org")
        .await
        .0;
    let (dev_b, ep_b, group_b) = (Uuid::now_v7(), Uuid::now_v7(), Uuid::now_v7());
    exec(
        &db,
        format!(
            "INSERT INTO devices (id, workspace_id, name, kind, key_prefix, key_hash, per_minute_limit, per_day_limit)
                 VALUES ('{dev_b}', '{b}', 'B', 'android', 'dk_b', '\\x01', 10, 100);
             INSERT INTO webhook_endpoints (id, workspace_id, url, events) VALUES ('{ep_b}', '{b}', 'https://b.example', '{{sms_sent}}');
             INSERT INTO contact_groups (id, workspace_id, name) VALUES ('{group_b}', '{b}', 'B');"
        ),
    )
    .await;
    let refused = [
        (
            format!(
                "INSERT INTO messages (id, workspace_id, direction, body, encoding, segments, status, device_id)
                 VALUES (gen_random_uuid(), '{a}', 'outgoing', 'x', 'gsm7', 1, 'pending', '{dev_b}')"
            ),
            "messages_device_fkey",
        ),
        (
            format!(
                "INSERT INTO messages (id, workspace_id, direction, body, encoding, segments, status, requested_device_id)
                 VALUES (gen_random_uuid(), '{a}', 'outgoing', 'x', 'gsm7', 1, 'pending', '{dev_b}')"
            ),
            "messages_requested_device_fkey",
        ),
        (
            format!(
                "INSERT INTO webhook_deliveries (id, endpoint_id, workspace_id, event, body)
                 VALUES (gen_random_uuid(), '{ep_b}', '{a}', 'sms_sent', '\\x00')"
            ),
            "webhook_deliveries_endpoint_fkey",
        ),
        (
            format!(
                "INSERT INTO contact_imports (id, workspace_id, file_name, format, content, group_id)
                 VALUES (gen_random_uuid(), '{a}', 'f.csv', 'csv', '', '{group_b}')"
            ),
            "contact_imports_group_fkey",
        ),
        (
            format!(
                "INSERT INTO scheduled_sends (id, workspace_id, kind, cron_expr, device_id, body)
                 VALUES (gen_random_uuid(), '{a}', 'recurring', '0 9 * * *', '{dev_b}', 'hi')"
            ),
            "scheduled_sends_device_fkey",
        ),
    ];
    for (sql, constraint) in refused {
        let e = sqlx::raw_sql(AssertSqlSafe(sql))
            .execute(&db.pool)
            .await
            .unwrap_err();
        assert!(e.to_string().contains(constraint), "{constraint}: {e}");
    }
    // Deleting the device clears only the device column of its workspace's messages.
    let msg = Uuid::now_v7();
    exec(
        &db,
        format!(
            "INSERT INTO messages (id, workspace_id, direction, body, encoding, segments, status, device_id)
                 VALUES ('{msg}', '{b}', 'outgoing', 'x', 'gsm7', 1, 'sent', '{dev_b}');
             DELETE FROM devices WHERE id = '{dev_b}';"
        ),
    )
    .await;
    let row: (Uuid, Option<Uuid>) =
        sqlx::query_as("SELECT workspace_id, device_id FROM messages WHERE id = $1")
            .bind(msg)
            .fetch_one(&db.pool)
            .await
            .unwrap();
    assert_eq!(row, (b, None));
}
