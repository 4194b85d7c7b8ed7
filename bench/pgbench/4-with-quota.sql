-- As 2, plus the per-user monthly usage upsert (quota::consume), no NOTIFY.
BEGIN;
SELECT gen_random_uuid() AS mid \gset
INSERT INTO messages (id, workspace_id, direction, recipient, body, encoding, segments, status)
VALUES (:mid, :uid, 'outgoing', '+15550001111', 'pgbench message', 'gsm7', 1, 'pending');
INSERT INTO message_events (message_id, status, detail) VALUES (:mid, 'pending', 'Accepted.');
INSERT INTO sms_usage (workspace_id, month, sent) VALUES (:uid, date_trunc('month', now())::date, 1)
ON CONFLICT (workspace_id, month) DO UPDATE SET sent = sms_usage.sent + excluded.sent
WHERE sms_usage.sent + excluded.sent <= 2000000000 RETURNING sent;
COMMIT;
