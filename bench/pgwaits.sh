#!/usr/bin/env bash
# pgwaits.sh CONNINFO OUT: every 0.2 s, until killed, records what each busy backend of
# the `ender` database is doing (running on CPU, waiting on a lock, on WAL flush, or idle
# inside a transaction waiting for ender-web's next statement). One psql session does it.
# Summarise with: pgwaits.sh --summary OUT
set -euo pipefail
if [ "$1" = --summary ]; then
  python3 - "$2" <<'PY'
import collections, sys
counts, samples = collections.Counter(), 0
for line in open(sys.argv[1]):
    line = line.strip()
    if line == "--":
        samples += 1
    elif "|" in line:
        what, n = line.rsplit("|", 1)
        counts[what] += int(n)
samples = max(samples, 1)
total = sum(counts.values()) / samples
top = ", ".join(f"{w}={n / samples:.1f}" for w, n in counts.most_common(8))
print(f"samples={samples} busy_backends_avg={total:.1f} by_state_avg: {top}")
PY
  exit 0
fi
conninfo="$1"
out="$2"
query="SELECT CASE WHEN state = 'idle in transaction' THEN 'idle-in-transaction(waiting for ender-web)'
              WHEN wait_event IS NULL THEN 'CPU(running)'
              ELSE wait_event_type || ':' || wait_event END, count(*)
       FROM pg_stat_activity
       WHERE datname = 'ender' AND pid <> pg_backend_pid() AND backend_type = 'client backend'
         AND state IN ('active', 'idle in transaction')
       GROUP BY 1;"
query="$(tr '\n' ' ' <<<"$query")"
feed() {
  while true; do
    echo "$query"
    echo "\\echo --"
    sleep 0.2
  done
}
psql -X -q -At "$conninfo" >"$out" 2>/dev/null < <(feed) &
psql_pid=$!
trap 'kill "$psql_pid" 2>/dev/null; exit 0' TERM INT
wait "$psql_pid"
