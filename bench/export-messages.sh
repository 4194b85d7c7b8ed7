#!/usr/bin/env bash
# A message history export at a million rows: one workspace with 1,000,000 messages
# (seeded with SQL), one CSV and one JSON Lines export through POST /api/exports, made by
# the worker embedded in ender-web into the local object store. Reports each export's time
# from request to `done`, the file's size, and the web process's peak resident memory
# (VmHWM) above its resident size before the first export.
#
# Target: bounded memory (the exporter reads 5,000 rows at a time).
#
#   bench/export-messages.sh
#   MESSAGES=1000000 ENDER_WEB_BIN=/path/to/ender-web bench/export-messages.sh
set -euo pipefail
source "$(dirname "$0")/lib.sh"

need psql "apt-get install -y postgresql-client"
MESSAGES="${MESSAGES:-1000000}"
name="export-messages"

start_server "$name"
seed_user
log "seeding $MESSAGES messages"
bench_psql <<SQL
-- Exports need a key that holds every scope.
UPDATE api_keys SET scopes = '{send,read,contacts,webhooks,keys}' WHERE $OWNER = '$USER_ID';
INSERT INTO messages (id, workspace_id, direction, recipient, from_number, body, encoding, segments, status, created_at, sent_at)
SELECT gen_random_uuid(), '$USER_ID', 'outgoing', '+1555' || lpad(g::text, 7, '0'), '',
       'Your appointment is on ' || (g % 28 + 1) || ' March at ' || (g % 12 + 8) || ':00. Reply STOP to opt out.',
       'gsm7', 1, (ARRAY['sent','delivered','failed'])[1 + g % 3],
       now() - make_interval(secs => g), now() - make_interval(secs => g)
FROM generate_series(1, $MESSAGES) g;
ANALYZE messages;
SQL
wait_quiet

kib() { sed -n "s/^$1:[[:space:]]*\([0-9]*\) kB/\1/p" "/proc/$SERVER_PID/status"; }
idle="$(kib VmRSS)"
out="$RESULTS_DIR/$name.txt"
: >"$out"
for format in csv jsonl; do
  t0="$(date +%s.%N)"
  id="$(curl -fsS -X POST "$BASE_URL/api/exports" -H "x-api-key: $API_KEY" -H 'content-type: application/json' \
    -d "{\"format\":\"$format\"}" | python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])')"
  while :; do
    body="$(curl -fsS "$BASE_URL/api/exports/$id" -H "x-api-key: $API_KEY")"
    status="$(echo "$body" | python3 -c 'import json,sys; print(json.load(sys.stdin)["status"])')"
    [ "$status" = done ] && break
    [ "$status" = failed ] && die "export failed: $body"
    sleep 0.2
  done
  t1="$(date +%s.%N)"
  size="$(echo "$body" | python3 -c 'import json,sys; print(json.load(sys.stdin)["size_bytes"])')"
  rows="$(echo "$body" | python3 -c 'import json,sys; print(json.load(sys.stdin)["rows_done"])')"
  # The download, streamed through the web process.
  got="$(curl -fsS "$BASE_URL/api/exports/$id/download" -H "x-api-key: $API_KEY" | wc -c)"
  [ "$got" = "$size" ] || die "downloaded $got bytes, expected $size"
  secs="$(python3 -c "print(f'{$t1 - $t0:.1f}')")"
  echo "$format rows=$rows bytes=$size seconds=$secs" | tee -a "$out"
done
peak="$(kib VmHWM)"
echo "idle_rss_kib=$idle peak_kib=$peak" | tee -a "$out"
echo "$(machine_line)"
for format in csv jsonl; do
  line="$(grep "^$format " "$out")"
  echo "RESULT export-messages-$format: messages=$MESSAGES $(echo "$line" | cut -d' ' -f3-) peak_above_idle=$(( (peak - idle) / 1024 ))MiB background=${BACKGROUND_BUSY}cores"
done
