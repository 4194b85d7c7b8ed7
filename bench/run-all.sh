#!/usr/bin/env bash
# Builds ender-web (release) once, then runs every benchmark in turn, each with its own
# server, data folder and private PostgreSQL, and prints the RESULT lines together at the
# end (full output: bench/results/run-all.log). Takes about 25 minutes after the builds
# (ender-web, and the webhook load generator: the webhook_load example of ender-worker).
#
#   nice -n 19 bench/run-all.sh
set -euo pipefail
BENCH_DIR="$(cd "$(dirname "$0")" && pwd)"
source "$BENCH_DIR/lib.sh"

bin="$(ender_web_bin)"
export ENDER_WEB_BIN="$bin"
if [ -z "${WEBHOOK_LOAD_BIN:-}" ] && [ "${BENCH_SKIP_BUILD:-0}" != 1 ]; then
  log "building the webhook_load example (release)"
  (cd "$REPO_DIR" && nice -n 19 cargo build --release -q --example webhook_load -p ender-worker) >&2
fi
export WEBHOOK_LOAD_BIN="${WEBHOOK_LOAD_BIN:-$CARGO_TARGET_DIR/release/examples/webhook_load}"
all="$RESULTS_DIR/run-all.log"
: >"$all"

status=0
for script in pg-baseline.sh send-sustained.sh send-bulk.sh stream-latency.sh messages-keyset.sh \
  webhook-latency.sh webhook-isolation.sh webhook-idle.sh; do
  log "== $script"
  if ! "$BENCH_DIR/$script" 2>&1 | tee -a "$all"; then
    log "$script failed"
    status=1
  fi
  sleep 2
done

echo
echo "== Summary ($(date -u +%Y-%m-%dT%H:%MZ), commit $(git -C "$REPO_DIR" rev-parse --short HEAD 2>/dev/null || echo '?'))"
grep -m1 '^machine:' "$all" || true
grep '^RESULT' "$all"
exit "$status"
