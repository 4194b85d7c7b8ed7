#!/usr/bin/env bash
# What the private PostgreSQL cluster itself can do on this machine, without ender-web:
# pgbench runs the send path's statements (bench/pgbench/*.sql) on Ender's migrated schema,
# from a bare INSERT up to everything sms::send::send does for one recipient. The gap
# between the lines shows what each part of the accept transaction costs.
#
#   bench/pg-baseline.sh                 # 15 s per script, 16 clients
#   SECONDS_RUN=30 CLIENTS=32 bench/pg-baseline.sh
set -euo pipefail
source "$(dirname "$0")/lib.sh"

need psql "apt-get install -y postgresql-client"
PGBENCH="$(command -v pgbench || ls /usr/lib/postgresql/*/bin/pgbench 2>/dev/null | sort -V | tail -n1)"
[ -x "$PGBENCH" ] || die "pgbench is missing (apt-get install -y postgresql-contrib or postgresql)"

SECONDS_RUN="${SECONDS_RUN:-15}"
CLIENTS="${CLIENTS:-16}"
name="pg-baseline"

ENDER_WEB="$(ender_web_bin)"
BENCH_DATA="$(mktemp -d /tmp/ender-bench.XXXXXX)"
chmod 755 "$BENCH_DATA"
trap cleanup EXIT INT TERM
url="$("$ENDER_WEB" dev-db start --data-dir "$BENCH_DATA")"
"$ENDER_WEB" migrate --database-url "$url" >/dev/null 2>&1
seed_user >/dev/null 2>&1
wait_quiet

echo "$(machine_line)"
echo "PostgreSQL: $(bench_psql -c 'SHOW server_version')," \
  "synchronous_commit=$(bench_psql -c 'SHOW synchronous_commit')," \
  "shared_buffers=$(bench_psql -c 'SHOW shared_buffers'); $CLIENTS clients, ${SECONDS_RUN}s each"
for script in "$BENCH_DIR"/pgbench/*.sql; do
  label="$(basename "$script" .sql)"
  bench_psql -c "TRUNCATE messages, message_events, sms_usage" >/dev/null
  out="$RESULTS_DIR/$name.$label.txt"
  python3 "$BENCH_DIR/procstat.py" --postmaster "$(postmaster_pid)" >"$out.procstat" &
  SAMPLER_PID=$!
  "$PGBENCH" -n -M prepared -c "$CLIENTS" -j 2 -T "$SECONDS_RUN" -D uid="$USER_ID" \
    -f "$script" "host=$BENCH_DATA/postgres port=5432 user=ender dbname=ender" >"$out" 2>&1 ||
    { cat "$out" >&2; die "pgbench failed on $label"; }
  stop_sampler
  tps="$(sed -n 's/^tps = \([0-9.]*\).*/\1/p' "$out" | head -n1)"
  lat="$(sed -n 's/^latency average = \([0-9.]*\) ms/\1/p' "$out")"
  printf 'RESULT pg-baseline: %-18s tps=%8.0f latency_avg=%6.2fms cpu: postgres=%s other(pgbench etc.)=%s idle=%s\n' \
    "$label" "$tps" "$lat" "$(sed -n 's/^postgres_cpu_cores=//p' "$out.procstat")" \
    "$(sed -n 's/^other_cpu_cores=//p' "$out.procstat")" "$(sed -n 's/^idle_cores=//p' "$out.procstat")"
done
