-- Message and its first event in one transaction (no NOTIFY, no usage row).
BEGIN;
SELECT gen_random_uuid() AS mid \gset
INSERT INTO messages (id, workspace_id, direction, recipient, body, encoding, segments, status)
VALUES (:mid, :uid, 'outgoing', '+15550001111', 'pgbench message', 'gsm7', 1, 'pending');
INSERT INTO message_events (message_id, status, detail) VALUES (:mid, 'pending', 'Accepted.');
COMMIT;
