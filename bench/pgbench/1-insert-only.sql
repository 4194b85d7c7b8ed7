-- One message row per transaction (autocommit): the cheapest possible accept.
INSERT INTO messages (id, workspace_id, direction, recipient, body, encoding, segments, status)
VALUES (gen_random_uuid(), :uid, 'outgoing', '+15550001111', 'pgbench message', 'gsm7', 1, 'pending');
