#!/usr/bin/env bash
# The Messages page and the watchdog at a million rows: one user with 1,000,000 outgoing
# messages (a quarter pending) on a fresh private cluster; times the first page, a page
# 900,000 rows deep (keyset), the same with a status filter, the API's total count, and
# the watchdog's "users with due messages" query. Prints RESULT lines.
set -euo pipefail
cd "$(dirname "$0")/.."
export SQLX_OFFLINE=true
bin=${ENDER_WEB_BIN:-}
if [ -z "$bin" ]; then
  cargo build --release -q -p ender-web
  bin="${CARGO_TARGET_DIR:-target}/release/ender-web"
fi
dir=$(mktemp -d /tmp/ender-keyset.XXXXXX)
chmod 755 "$dir"
trap '"$bin" dev-db stop --data-dir "$dir" >/dev/null 2>&1 || true; rm -rf "$dir"' EXIT
url=$("$bin" dev-db start --data-dir "$dir")
"$bin" migrate --database-url "$url" >/dev/null 2>&1
user=00000000-0000-7000-8000-000000000001
psql "$url" -q <<SQL
INSERT INTO users (id, email, email_normalized) VALUES ('$user', 'bench@example.org', 'bench@example.org');
INSERT INTO workspaces (id, name, personal_workspace_id) VALUES ('$user', 'Bench', '$user');
INSERT INTO messages (id, workspace_id, direction, recipient, body, encoding, segments, status, created_at)
SELECT gen_random_uuid(), '$user', 'outgoing', '+1555' || lpad(g::text, 7, '0'), 'Bench body', 'gsm7', 1,
       (ARRAY['sent','delivered','failed','pending'])[1 + g % 4], now() - make_interval(secs => g)
FROM generate_series(1, 1000000) g;
ANALYZE messages;
SQL
cursor=$(psql "$url" -tAc "SELECT created_at || '|' || id FROM messages ORDER BY created_at DESC, id DESC OFFSET 900000 LIMIT 1")
at=${cursor%|*}
id=${cursor#*|}
time_of() { psql "$url" -tAc "EXPLAIN (ANALYZE, FORMAT JSON) $1" | python3 -c 'import json,sys; print(json.load(sys.stdin)[0]["Execution Time"])'; }
page="SELECT id FROM messages WHERE workspace_id = '$user' AND direction = 'outgoing'"
order="ORDER BY created_at DESC, id DESC LIMIT 50"
echo "RESULT keyset-first-page: $(time_of "$page $order") ms"
echo "RESULT keyset-900000-deep: $(time_of "$page AND (created_at, id) < ('$at'::timestamptz, '$id'::uuid) $order") ms"
echo "RESULT keyset-900000-deep-status-failed: $(time_of "$page AND status = 'failed' AND (created_at, id) < ('$at'::timestamptz, '$id'::uuid) $order") ms"
echo "RESULT api-total-count: $(time_of "SELECT count(*) FROM messages WHERE workspace_id = '$user'") ms"
echo "RESULT watchdog-due-users: $(time_of "WITH RECURSIVE u AS ((SELECT workspace_id FROM messages WHERE status = 'pending' AND next_attempt_at <= now() ORDER BY workspace_id LIMIT 1) UNION ALL SELECT (SELECT m.workspace_id FROM messages m WHERE m.status = 'pending' AND m.next_attempt_at <= now() AND m.workspace_id > u.workspace_id ORDER BY m.workspace_id LIMIT 1) FROM u WHERE u.workspace_id IS NOT NULL) SELECT workspace_id FROM u WHERE workspace_id IS NOT NULL") ms"
