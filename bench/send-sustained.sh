#!/usr/bin/env bash
# Sustained POST /api/sms/send, one recipient per request, one integration key, no device
# (messages stay pending, as when every phone is away). wrk keeps CONNECTIONS requests in
# flight for SECONDS after a short warm-up; meanwhile bench/procstat.py samples the
# ender-web process's VmRSS and the CPU split between ender-web, PostgreSQL and the rest.
#
# Targets: >= 4,000 accepted messages/s, p99 <= 50 ms; ender-web RSS <= 60 MiB.
#
#   bench/send-sustained.sh                      # 30 s at 32 connections
#   SECONDS_RUN=60 CONNECTIONS=64 bench/send-sustained.sh
set -euo pipefail
source "$(dirname "$0")/lib.sh"

need wrk "apt-get install -y wrk"
need psql "apt-get install -y postgresql-client"

SECONDS_RUN="${SECONDS_RUN:-30}"
WARMUP="${WARMUP:-5}"
CONNECTIONS="${CONNECTIONS:-32}"
THREADS="${THREADS:-2}"
name="send-sustained-c$CONNECTIONS"

start_server "$name"
seed_user
# BENCH_SQL: statements run on the fresh server before the load (e.g. with ENDER_BILLING=true,
# a default plan whose allowance the run cannot exhaust).
if [ -n "${BENCH_SQL:-}" ]; then
  bench_psql <<<"$BENCH_SQL" >/dev/null
fi
export ENDER_API_KEY="$API_KEY"
wait_quiet

log "warm-up: ${WARMUP}s"
wrk -t"$THREADS" -c"$CONNECTIONS" -d"${WARMUP}s" -s "$BENCH_DIR/send.lua" "$BASE_URL" >"$RESULTS_DIR/$name.warmup.txt" 2>&1 || true
pg_counters() {
  bench_psql -F ' ' -c "SELECT (SELECT count(*) FROM messages), (SELECT xact_commit FROM pg_stat_database WHERE datname = 'ender'),
                               wal_sync, wal_records FROM pg_stat_wal"
}
if [ "${BENCH_PG_STATEMENTS:-0}" = 1 ]; then
  bench_psql -c "CREATE EXTENSION IF NOT EXISTS pg_stat_statements" -c "SELECT pg_stat_statements_reset()" >/dev/null
fi
read -r before commits0 syncs0 records0 <<<"$(pg_counters)"

log "measuring: ${SECONDS_RUN}s, $CONNECTIONS connections, $THREADS wrk threads"
start_sampler "$RESULTS_DIR/$name.procstat.txt" --trace "$RESULTS_DIR/$name.rss.txt"
"$BENCH_DIR/pgwaits.sh" "host=$BENCH_DATA/postgres port=5432 user=ender dbname=ender" "$RESULTS_DIR/$name.pgwaits.txt" &
waits_pid=$!
(sleep $((SECONDS_RUN / 2)); top -b -n1 -w 200 | head -25 >"$RESULTS_DIR/$name.top.txt") &
top_pid=$!
wrk -t"$THREADS" -c"$CONNECTIONS" -d"${SECONDS_RUN}s" --timeout 10s --latency \
  -s "$BENCH_DIR/send.lua" "$BASE_URL" >"$RESULTS_DIR/$name.wrk.txt" 2>&1
stop_sampler
kill -TERM "$waits_pid" 2>/dev/null || true
wait "$top_pid" "$waits_pid" || true

read -r after commits1 syncs1 records1 <<<"$(pg_counters)"
cat "$RESULTS_DIR/$name.wrk.txt" >&2
cat "$RESULTS_DIR/$name.procstat.txt" >&2

line="$(grep '^WRK_RESULT' "$RESULTS_DIR/$name.wrk.txt")" || die "wrk printed no result"
val() { sed -n "s/.* $1=\([^ ]*\).*/\1/p" <<<" ${2#WRK_RESULT}"; }
stat() { sed -n "s/^$1=//p" "$RESULTS_DIR/$name.procstat.txt"; }
ok="$(val ok "$line")"
non200="$(val non200 "$line")"
dur="$(val duration_s "$line")"
p50="$(val p50_ms "$line")"
p99="$(val p99_ms "$line")"
rate="$(python3 -c "print(f'{$ok / $dur:.0f}')")"
stored="$((after - before))"
rss_max="$(stat web_rss_max_mib)"

verdict() { python3 -c "print('PASS' if $1 else 'MISS')"; }
echo "$(machine_line)"
echo "RESULT send-sustained: connections=$CONNECTIONS seconds=$dur accepted=$ok non200=$non200 stored_in_db=$stored" \
  "rate=${rate}/s ($(verdict "$rate >= 4000") target >= 4000/s) p50=${p50}ms p99=${p99}ms ($(verdict "$p99 <= 50") target <= 50 ms)" \
  "background=${BACKGROUND_BUSY}cores"
echo "RESULT web-rss: max=${rss_max}MiB avg=$(stat web_rss_avg_mib)MiB vmhwm=$(stat web_vmhwm_mib)MiB" \
  "($(verdict "$rss_max <= 60") target <= 60 MiB)"
echo "RESULT cpu-split: ender-web=$(stat web_cpu_cores) postgres=$(stat postgres_cpu_cores)" \
  "other(load generator etc.)=$(stat other_cpu_cores) idle=$(stat idle_cores) cores (of $(stat cpu_cores))"
if [ "${BENCH_PG_STATEMENTS:-0}" = 1 ]; then
  msgs=$((after - before))
  bench_psql -F ' | ' -c "SELECT round(calls::numeric / $msgs, 2) AS per_msg, round(mean_exec_time::numeric, 3) AS mean_ms,
           round((total_exec_time / $msgs * 1000)::numeric, 1) AS us_per_msg, left(regexp_replace(query, '\s+', ' ', 'g'), 110)
    FROM pg_stat_statements WHERE dbid = (SELECT oid FROM pg_database WHERE datname = 'ender')
      AND query NOT LIKE '%pg_stat_activity%' AND query NOT LIKE '%pg_stat_statements%'
    ORDER BY calls DESC LIMIT 25" >"$RESULTS_DIR/$name.statements.txt"
  echo "statements per accepted message (per_msg | mean ms | exec us per msg | query):" >&2
  cat "$RESULTS_DIR/$name.statements.txt" >&2
  echo "RESULT pg-statements: $(bench_psql -c "SELECT round(sum(calls)::numeric / $msgs, 1) || ' statements per message, ' ||
    round((sum(total_exec_time) / $msgs * 1000)::numeric) || ' us server execution per message'
    FROM pg_stat_statements WHERE dbid = (SELECT oid FROM pg_database WHERE datname = 'ender')
      AND query NOT LIKE '%pg_stat_activity%' AND query NOT LIKE '%pg_stat_statements%'")"
fi
if python3 -c "import sys; sys.exit(0 if $(stat other_cpu_cores) > 0.4 else 1)"; then
  echo "NOTE: other processes used $(stat other_cpu_cores) cores during the run (wrk alone uses about 0.15-0.2): numbers disturbed, run again"
fi
per_msg() { python3 -c "print(f'{($2 - $1) / max(1, $after - $before):.2f}')"; }
echo "RESULT pg-work-per-message: commits=$(per_msg "$commits0" "$commits1") wal_flushes=$(per_msg "$syncs0" "$syncs1")" \
  "wal_records=$(per_msg "$records0" "$records1") (transactions incl. single statements, counted by PostgreSQL)"
echo "RESULT pg-backends: $("$BENCH_DIR/pgwaits.sh" --summary "$RESULTS_DIR/$name.pgwaits.txt")"
