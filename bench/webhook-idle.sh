#!/usr/bin/env bash
# The first event after an idle period: after a few events (connections open, as on a
# server that has been running), ROUNDS times the generator waits IDLE seconds without any
# event, commits one sms_sent event and times commit -> request at its receiver.
#
# Target: the first event after 10 s idle is delivered <= 10 ms.
#
#   bench/webhook-idle.sh                  # 5 rounds of 10 s
#   ROUNDS=10 IDLE=30 bench/webhook-idle.sh
set -euo pipefail
source "$(dirname "$0")/webhook-lib.sh"

ROUNDS="${ROUNDS:-5}"
IDLE="${IDLE:-10}"
name="webhook-idle"

start_webhook_server "$name" ${SERVER_ENV:-}
seed_history "${HISTORY:-0}"
wait_quiet
log "measuring: $ROUNDS rounds of ${IDLE}s idle, then one event"
DATABASE_URL="$WEBHOOK_DB_URL" "$WEBHOOK_LOAD" --label "$name" --idle-first "$ROUNDS" --idle-secs "$IDLE" --connections 2 \
  >"$RESULTS_DIR/$name.txt" 2>"$RESULTS_DIR/$name.err" || { cat "$RESULTS_DIR/$name.err" >&2; die "webhook_load failed"; }
stop_server
line="$(grep '^RESULT webhook-idle:' "$RESULTS_DIR/$name.txt")"
max="$(sed -n 's/.* max_ms=\([^ ]*\).*/\1/p' <<<"$line")"
delivered="$(sed -n 's/.* delivered=\([^ ]*\).*/\1/p' <<<"$line")"
echo "$(machine_line)"
grep '^RESULT webhook-idle-round:' "$RESULTS_DIR/$name.txt"
echo "$line ($(verdict "$delivered == $ROUNDS and $max <= 10") target: every first event <= 10 ms)" \
  "background=${BACKGROUND_BUSY}cores"
