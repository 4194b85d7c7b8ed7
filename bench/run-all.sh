#!/usr/bin/env bash
# Builds ender-web (release) once, then runs every benchmark in turn, each with its own
# server, data folder and private PostgreSQL, and prints the RESULT lines together at the
# end (full output: bench/results/run-all.log). Takes about 4 minutes after the build.
#
#   nice -n 19 bench/run-all.sh
set -euo pipefail
BENCH_DIR="$(cd "$(dirname "$0")" && pwd)"
source "$BENCH_DIR/lib.sh"

bin="$(ender_web_bin)"
export ENDER_WEB_BIN="$bin"
all="$RESULTS_DIR/run-all.log"
: >"$all"

status=0
for script in pg-baseline.sh send-sustained.sh send-bulk.sh stream-latency.sh messages-keyset.sh; do
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
