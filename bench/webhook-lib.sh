# Shared by the webhook benchmarks (sourced, not run): builds the load generator (the
# `webhook_load` example of ender-worker), starts ender-web with the settings webhooks
# need (loopback receivers allowed, secret keys shared with the generator), and runs one
# load with the CPU split sampled over exactly its measured window.

source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

need psql "apt-get install -y postgresql-client"

# The generator binary, built (at low priority) unless WEBHOOK_LOAD_BIN names one.
webhook_load_bin() {
  if [ -n "${WEBHOOK_LOAD_BIN:-}" ]; then
    echo "$WEBHOOK_LOAD_BIN"
    return
  fi
  if [ "${BENCH_SKIP_BUILD:-0}" != 1 ]; then
    log "building the webhook_load example (release) into $CARGO_TARGET_DIR"
    (cd "$REPO_DIR" && nice -n 19 cargo build --release -q --example webhook_load -p ender-worker) >&2
  fi
  echo "$CARGO_TARGET_DIR/release/examples/webhook_load"
}

# Built (or found) once: the scripts start several servers.
ENDER_WEB_BIN="$(ender_web_bin)"
export ENDER_WEB_BIN
WEBHOOK_LOAD="$(webhook_load_bin)"
[ -x "$WEBHOOK_LOAD" ] || die "no load generator at $WEBHOOK_LOAD"
# Both processes seal and open endpoint secrets with the same random, bench-only key.
ENDER_SECRET_KEYS="1:$(head -c 32 /dev/urandom | base64)"
export ENDER_SECRET_KEYS

# start_webhook_server NAME [VAR=VALUE...]: a fresh ender-web (and private PostgreSQL) that
# may deliver to 127.0.0.1; sets WEBHOOK_DB_URL for the generator. Stops a previous one.
start_webhook_server() {
  local name="$1"
  shift
  stop_server
  unset DATABASE_URL # ender-web must start its own private cluster
  if [ -n "$BENCH_DATA" ] && [ "${BENCH_KEEP_DATA:-0}" != 1 ]; then
    rm -rf "$BENCH_DATA"
  fi
  start_server "$name" ENDER_WEBHOOK_ALLOW=127.0.0.1/32 ENDER_SECRET_KEYS="$ENDER_SECRET_KEYS" "$@"
  WEBHOOK_DB_URL="postgres://ender@localhost/ender?host=$BENCH_DATA/postgres&port=5432"
  if [ "${BENCH_PG_STATEMENTS:-0}" = 1 ]; then
    bench_psql -c "CREATE EXTENSION IF NOT EXISTS pg_stat_statements" >/dev/null
  fi
  # BENCH_SQL: statements run on the fresh server before the load (settings to try).
  if [ -n "${BENCH_SQL:-}" ]; then
    bench_psql <<<"$BENCH_SQL" >/dev/null
    bench_psql -c "SELECT pg_reload_conf()" >/dev/null
  fi
}

# seed_history N: N delivered webhooks of another (paused) endpoint, as a server that keeps
# 30 days of delivery history has; then VACUUM ANALYZE.
seed_history() {
  [ "${1:-0}" -gt 0 ] || return 0
  seed_account 00000000-0000-0000-0000-00000000a000 history@example.com
  bench_psql <<SQL
INSERT INTO webhook_endpoints (id, $OWNER, url, events, active)
VALUES ('00000000-0000-0000-0000-00000000a001', '00000000-0000-0000-0000-00000000a000', 'http://127.0.0.1:9/hook', '{sms_sent}', false);
INSERT INTO webhook_deliveries (id, endpoint_id, $OWNER, event, message_id, body, status, attempts, delivered_at, created_at)
SELECT gen_random_uuid(), '00000000-0000-0000-0000-00000000a001', '00000000-0000-0000-0000-00000000a000', 'sms_sent',
       'h' || i, convert_to('{"event":"sms_sent","message_id":"h' || i || '","to":"+15550001111"}', 'UTF8'),
       'succeeded', 1, now() - i * interval '1 ms', now() - i * interval '1 ms'
FROM generate_series(1, $1) i;
VACUUM ANALYZE webhook_deliveries;
SQL
  log "seeded $1 delivered webhooks of another endpoint (history)"
}

# run_load NAME ARGS...: runs the generator with ARGS; samples the CPU split (ender-web,
# PostgreSQL, the rest) between its start and stop marks. Output: $RESULTS_DIR/NAME.txt
# (RESULT lines), NAME.procstat.txt, NAME.err, NAME.statements.txt (BENCH_PG_STATEMENTS=1).
run_load() {
  local name="$1"
  shift
  local markf="$RESULTS_DIR/$name.mark"
  rm -f "$markf"
  if [ "${BENCH_PG_STATEMENTS:-0}" = 1 ]; then
    bench_psql -c "SELECT pg_stat_statements_reset()" >/dev/null
  fi
  # GEN_PGOPTIONS: server settings for the generator's sessions only (diagnostics, e.g.
  # "-c plan_cache_mode=force_generic_plan" to see what planning costs the enqueue).
  DATABASE_URL="$WEBHOOK_DB_URL" PGOPTIONS="${GEN_PGOPTIONS:-}" "$WEBHOOK_LOAD" --label "$name" --mark-file "$markf" "$@" >"$RESULTS_DIR/$name.txt" 2>"$RESULTS_DIR/$name.err" &
  local pid=$!
  until grep -qs start "$markf"; do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.02
  done
  cpu_snapshot "$RESULTS_DIR/$name.cpu0.json"
  start_sampler "$RESULTS_DIR/$name.procstat.txt"
  "$BENCH_DIR/pgwaits.sh" "host=$BENCH_DATA/postgres port=5432 user=ender dbname=ender" "$RESULTS_DIR/$name.pgwaits.txt" &
  local waits_pid=$!
  until grep -qs stop "$markf"; do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.05
  done
  stop_sampler
  cpu_snapshot "$RESULTS_DIR/$name.cpu1.json"
  foreign_cpu "$RESULTS_DIR/$name.cpu0.json" "$RESULTS_DIR/$name.cpu1.json" "$$" "$(postmaster_pid)" \
    >"$RESULTS_DIR/$name.foreign.txt"
  kill -TERM "$waits_pid" 2>/dev/null || true
  wait "$waits_pid" 2>/dev/null || true
  local rc=0
  wait "$pid" || rc=$?
  cat "$RESULTS_DIR/$name.err" >&2
  [ "$rc" = 0 ] || die "webhook_load failed ($rc)"
  if [ "${BENCH_PG_STATEMENTS:-0}" = 1 ]; then
    bench_psql -F ' | ' -c "SELECT calls, round(mean_exec_time::numeric, 3) AS mean_ms,
             round(total_exec_time::numeric) AS total_ms, left(regexp_replace(query, '\s+', ' ', 'g'), 140)
      FROM pg_stat_statements WHERE dbid = (SELECT oid FROM pg_database WHERE datname = 'ender')
        AND query NOT LIKE '%pg_stat_activity%' AND query NOT LIKE '%pg_stat_statements%'
      ORDER BY total_exec_time DESC LIMIT 20" >"$RESULTS_DIR/$name.statements.txt"
    echo "statements by total execution time (calls | mean ms | total ms | query):" >&2
    cat "$RESULTS_DIR/$name.statements.txt" >&2
  fi
}

# field NAME KEY [ENDPOINT]: a value from NAME's RESULT lines (of one endpoint, or the
# window line when ENDPOINT is "window").
field() {
  local file="$RESULTS_DIR/$1.txt" key="$2" ep="${3:-healthy0}" line
  if [ "$ep" = window ]; then
    line="$(grep '^RESULT webhook-load-window:' "$file")"
  else
    line="$(grep "^RESULT webhook-load: .* endpoint=$ep " "$file")"
  fi
  sed -n "s/.* $key=\([^ ]*\).*/\1/p" <<<" ${line#RESULT }"
}

# procstat value of a run.
pstat() { sed -n "s/^$2=//p" "$RESULTS_DIR/$1.procstat.txt"; }

# CPU of ender-web and PostgreSQL per delivered message (ms), over the measured window;
# the second figure leaves out the generator's own PostgreSQL backends (the enqueue
# transactions, which in Ender are part of the change that raises the event).
cpu_per_delivery() {
  local name="$1" web pg gen delivered secs
  web="$(pstat "$name" web_cpu_cores)"
  pg="$(pstat "$name" postgres_cpu_cores)"
  gen="$(field "$name" generator_pg_backend_cpu_cores window)"
  delivered="$(field "$name" delivered_in_window window)"
  secs="$(field "$name" seconds window)"
  python3 -c "
d = $delivered / $secs
print(f'{($web + $pg) * 1000 / max(d, 1):.3f} {max(0.0, $web + $pg - $gen) * 1000 / max(d, 1):.3f} {d:.0f}')"
}

verdict() { python3 -c "print('PASS' if $1 else 'MISS')"; }

# cpu_snapshot FILE: /proc/stat and every process's CPU ticks (its own and its reaped
# children's), for foreign_cpu.
cpu_snapshot() {
  python3 - "$1" <<'PY'
import json, os, sys, time
procs = {}
for p in os.listdir("/proc"):
    if not p.isdigit():
        continue
    try:
        raw = open(f"/proc/{p}/stat").read()
    except OSError:
        continue
    name = raw[raw.index("(") + 1 : raw.rindex(")")]
    f = raw[raw.rindex(")") + 2 :].split()
    # ppid, flags, utime+stime, cutime+cstime
    procs[p] = [name, int(f[1]), int(f[6]), int(f[11]) + int(f[12]), int(f[13]) + int(f[14])]
stat = [int(x) for x in open("/proc/stat").readline().split()[1:9]]
json.dump({"t": time.monotonic(), "procs": procs, "stat": stat}, open(sys.argv[1], "w"))
PY
}

# foreign_cpu BEFORE AFTER ROOT_PID...: cores used between two snapshots by everything that
# is not ours (the ROOT_PIDs and their descendants: this script with ender-web, the
# generator and the samplers; the postmaster with its backends) nor a kernel thread, and
# the biggest of those processes. Processes that started and ended in between count as
# foreign unless one of ours reaped them. (Kernel threads are left out: most of their work
# here is the disk and network I/O of the processes under test.)
foreign_cpu() {
  python3 - "$@" <<'PY'
import json, sys
a, b = (json.load(open(f)) for f in sys.argv[1:3])
roots = {r for r in sys.argv[3:] if r}
secs = b["t"] - a["t"]
pa, pb = a["procs"], b["procs"]
def ours(pid):
    seen = set()
    while pid in pb and pid not in seen:
        if pid in roots:
            return True
        seen.add(pid)
        pid = str(pb[pid][1])
    return pid in roots
busy = lambda s: sum(s) - s[3] - s[4]
total = (busy(b["stat"]) - busy(a["stat"])) / 100
irq = (sum(b["stat"][5:7]) - sum(a["stat"][5:7])) / 100
mine = kernel = 0.0
named = {}
for pid, (name, _ppid, flags, t, c) in pb.items():
    t0, c0 = (pa[pid][3], pa[pid][4]) if pid in pa else (0, 0)
    d = (t - t0) / 100
    if ours(pid):
        mine += d + (c - c0) / 100
    elif flags & 0x00200000:
        kernel += d
    else:
        named[name] = named.get(name, 0) + d
# The processes seen, or what is left of the machine's busy time when ours are taken out
# (which also holds the processes that came and went), whichever is more.
foreign = max(sum(named.values()), total - mine - kernel - irq) / secs
top = ",".join(f"{n}:{v / secs:.2f}" for n, v in sorted(named.items(), key=lambda x: -x[1])[:3] if v / secs >= 0.01)
print(f"{foreign:.2f} {top or '-'}")
PY
}

# disturbed_note NAME: a NOTE when foreign processes used more than 0.15 cores during the
# measured window of NAME.
disturbed_note() {
  local name="$1" foreign top
  read -r foreign top <"$RESULTS_DIR/$name.foreign.txt" || return 0
  if python3 -c "import sys; sys.exit(0 if $foreign > 0.15 else 1)"; then
    echo "NOTE: $name: other processes used $foreign cores during the run ($top): disturbed, run again"
  fi
}

# measure NAME ARGS...: a fresh server (with HISTORY past deliveries), a quiet machine,
# then run_load NAME ARGS; repeated (up to BENCH_RETRIES times, default 3) while another
# process disturbed it. Calls after_load NAME, if defined, before stopping the server.
measure() {
  local name="$1" attempt retries="${BENCH_RETRIES:-3}"
  shift
  for attempt in $(seq 1 "$retries"); do
    start_webhook_server "$name" ${SERVER_ENV:-}
    seed_history "${HISTORY:-0}"
    wait_quiet
    log "measuring $name: $*"
    run_load "$name" "$@"
    if declare -F after_load >/dev/null; then after_load "$name"; fi
    stop_server
    [ -z "$(disturbed_note "$name")" ] && return 0
    log "$name was disturbed by other processes (attempt $attempt of $retries)"
  done
}
