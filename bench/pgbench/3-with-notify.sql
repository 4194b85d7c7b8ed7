-- As 2, plus the NOTIFY that wakes the dispatcher.
BEGIN;
SELECT gen_random_uuid() AS mid \gset
INSERT INTO messages (id, workspace_id, direction, recipient, body, encoding, segments, status)
VALUES (:mid, :uid, 'outgoing', '+15550001111', 'pgbench message', 'gsm7', 1, 'pending');
INSERT INTO message_events (message_id, status, detail) VALUES (:mid, 'pending', 'Accepted.');
SELECT pg_notify('ender_bench', :uid);
COMMIT;
