# Shared by the benchmark scripts (sourced, not run): finds or builds the release binary,
# starts ender-web on a free loopback port with a fresh data folder (so its private
# PostgreSQL is fresh too), seeds a user, an integration key and optionally a device with
# SQL, and stops everything on exit.

set -euo pipefail

BENCH_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO_DIR="$(cd "$BENCH_DIR/.." && pwd)"
RESULTS_DIR="${BENCH_RESULTS_DIR:-$BENCH_DIR/results}"
mkdir -p "$RESULTS_DIR"

export SQLX_OFFLINE=true
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/ender/bench-target}"

log() { echo "[bench $(date +%H:%M:%S)] $*" >&2; }
die() { log "error: $*"; exit 1; }

need() {
  command -v "$1" >/dev/null || die "$1 is missing (${2:-install it})"
}

# The release binary, built (at low priority) unless ENDER_WEB_BIN names one.
ender_web_bin() {
  if [ -n "${ENDER_WEB_BIN:-}" ]; then
    echo "$ENDER_WEB_BIN"
    return
  fi
  if [ "${BENCH_SKIP_BUILD:-0}" != 1 ]; then
    log "building ender-web (release) into $CARGO_TARGET_DIR"
    (cd "$REPO_DIR" && nice -n 19 cargo build --release -q -p ender-web) >&2
  fi
  echo "$CARGO_TARGET_DIR/release/ender-web"
}

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'
}

rand_alnum() {
  LC_ALL=C tr -dc 'A-Za-z0-9' </dev/urandom | head -c "$1" || true
}

# psql on the private cluster of the running server.
bench_psql() {
  psql -X -q -v ON_ERROR_STOP=1 -At "host=$BENCH_DATA/postgres port=5432 user=ender dbname=ender" "$@"
}

SERVER_PID=""
BENCH_DATA=""

stop_server() {
  if [ -n "$SERVER_PID" ] && kill -0 "$SERVER_PID" 2>/dev/null; then
    kill -TERM "$SERVER_PID" 2>/dev/null || true
    for _ in $(seq 1 100); do
      kill -0 "$SERVER_PID" 2>/dev/null || break
      sleep 0.1
    done
    kill -0 "$SERVER_PID" 2>/dev/null && kill -KILL "$SERVER_PID" 2>/dev/null || true
  fi
  SERVER_PID=""
  # The server stops the cluster it started; make sure, whatever happened to it.
  if [ -n "$BENCH_DATA" ] && [ -f "$BENCH_DATA/postgres/postmaster.pid" ]; then
    "$ENDER_WEB" dev-db stop --data-dir "$BENCH_DATA" >/dev/null 2>&1 || true
  fi
}

cleanup() {
  local rc=$?
  stop_server
  if [ -n "$BENCH_DATA" ] && [ "${BENCH_KEEP_DATA:-0}" != 1 ]; then
    rm -rf "$BENCH_DATA"
  fi
  exit "$rc"
}

# start_server NAME [VAR=VALUE...]: serves on a free port with a fresh data folder; sets
# BASE_URL, SERVER_PID, BENCH_DATA, SERVER_LOG. Extra settings override the defaults.
start_server() {
  local name="$1"
  shift
  ENDER_WEB="$(ender_web_bin)"
  [ -x "$ENDER_WEB" ] || die "no binary at $ENDER_WEB"
  BENCH_DATA="$(mktemp -d /tmp/ender-bench.XXXXXX)"
  chmod 755 "$BENCH_DATA" # the postgres user must reach it when running as root
  trap cleanup EXIT INT TERM
  local port
  port="$(free_port)"
  BASE_URL="http://127.0.0.1:$port"
  SERVER_LOG="$RESULTS_DIR/$name.server.log"
  if [ "${BENCH_PG_STATEMENTS:-0}" = 1 ]; then
    # Create the cluster first and load pg_stat_statements into it (diagnostics only).
    "$ENDER_WEB" dev-db start --data-dir "$BENCH_DATA" >/dev/null
    echo "shared_preload_libraries = 'pg_stat_statements'" >>"$BENCH_DATA/postgres/postgresql.conf"
    "$ENDER_WEB" dev-db stop --data-dir "$BENCH_DATA" >/dev/null
  fi
  log "starting ender-web on $BASE_URL (data: $BENCH_DATA)"
  env ENDER_BIND="127.0.0.1:$port" \
    ENDER_PUBLIC_URL="$BASE_URL" \
    ENDER_DATA_DIR="$BENCH_DATA" \
    ENDER_API_RATE_PER_MINUTE=100000000 \
    ENDER_MAX_SMS_PER_MONTH=2000000000 \
    ENDER_MAX_RECIPIENTS=10000 \
    RUST_LOG="${RUST_LOG:-warn}" \
    "$@" \
    "$ENDER_WEB" >"$SERVER_LOG" 2>&1 &
  SERVER_PID=$!
  for _ in $(seq 1 600); do
    if curl -fsS "$BASE_URL/healthz" >/dev/null 2>&1; then
      log "ender-web is up (pid $SERVER_PID)"
      return
    fi
    kill -0 "$SERVER_PID" 2>/dev/null || { cat "$SERVER_LOG" >&2; die "ender-web exited"; }
    sleep 0.1
  done
  die "ender-web did not answer /healthz within 60 s"
}

# PID of the private cluster's postmaster.
postmaster_pid() {
  head -n1 "$BENCH_DATA/postgres/postmaster.pid"
}

# The owner column of owned tables: workspace_id since workspaces own rows, user_id in
# builds from before (so one script seeds both sides of a before/after comparison).
owner_col() {
  if [ -n "$(bench_psql -tAc "SELECT 1 FROM information_schema.columns WHERE table_name = 'api_keys' AND column_name = 'workspace_id'")" ]; then
    echo workspace_id
  else
    echo user_id
  fi
}

# seed_account ID EMAIL: a verified user with its personal workspace of the same id (where
# the schema has workspaces); sets OWNER to the owner column's name.
seed_account() {
  OWNER="$(owner_col)"
  bench_psql <<SQL
INSERT INTO users (id, email, email_normalized, full_name, password_hash, email_verified_at)
VALUES ('$1', '$2', '$2', 'Bench', NULL, now());
SQL
  if [ -n "$(bench_psql -tAc "SELECT 1 FROM information_schema.tables WHERE table_name = 'workspaces'")" ]; then
    bench_psql <<SQL
INSERT INTO workspaces (id, name, personal_user_id) VALUES ('$1', 'Bench', '$1');
INSERT INTO workspace_members (workspace_id, user_id, role) VALUES ('$1', '$1', 'owner');
SQL
  fi
}

# seed_user: creates a verified user (its workspace has its id) and an integration key;
# sets USER_ID and API_KEY.
seed_user() {
  USER_ID="$(python3 -c 'import uuid; print(uuid.uuid4())')"
  API_KEY="vk_$(rand_alnum 32)"
  seed_account "$USER_ID" bench@example.com
  bench_psql <<SQL
INSERT INTO api_keys (id, $OWNER, name, prefix, key_hash)
VALUES (gen_random_uuid(), '$USER_ID', 'bench', left('$API_KEY', 7), sha256(convert_to('$API_KEY', 'UTF8')));
SQL
  log "seeded user $USER_ID with key ${API_KEY:0:7}…"
}

# seed_device PER_MINUTE PER_DAY: a modem-kind device of USER_ID; sets DEVICE_ID, DEVICE_KEY.
seed_device() {
  DEVICE_ID="$(python3 -c 'import uuid; print(uuid.uuid4())')"
  DEVICE_KEY="dk_$(rand_alnum 32)"
  bench_psql <<SQL
INSERT INTO devices (id, $(owner_col), name, kind, key_prefix, key_hash, per_minute_limit, per_day_limit)
VALUES ('$DEVICE_ID', '$USER_ID', 'bench modem', 'modem', left('$DEVICE_KEY', 7),
        sha256(convert_to('$DEVICE_KEY', 'UTF8')), $1, $2);
SQL
  log "seeded device $DEVICE_ID (limits $1/min, $2/day)"
}

# Starts the resource sampler (bench/procstat.py) in the background; sets SAMPLER_PID.
# stop_sampler prints its summary (key=value lines) to stdout.
start_sampler() {
  local out="$1"
  shift
  python3 "$BENCH_DIR/procstat.py" --web "$SERVER_PID" --postmaster "$(postmaster_pid)" "$@" >"$out" &
  SAMPLER_PID=$!
}

stop_sampler() {
  kill -INT "$SAMPLER_PID" 2>/dev/null || true
  wait "$SAMPLER_PID" 2>/dev/null || true
}

# CPU cores busy over the last 2 s (everything on the machine).
busy_cores() {
  python3 - <<'PY'
import time
def read():
    v = [int(x) for x in open("/proc/stat").readline().split()[1:9]]
    return sum(v), v[3] + v[4]
t0, i0 = read(); time.sleep(2); t1, i1 = read()
import os
print(f"{((t1 - t0) - (i1 - i0)) / (t1 - t0) * (os.cpu_count() or 1):.2f}")
PY
}

# With BENCH_QUIET_WAIT=N, waits up to N seconds for the machine to be nearly idle (under
# 0.3 busy cores) before a measurement; always logs what it saw in BACKGROUND_BUSY.
wait_quiet() {
  local waited=0 limit="${BENCH_QUIET_WAIT:-0}"
  BACKGROUND_BUSY="$(busy_cores)"
  while python3 -c "import sys; sys.exit(0 if $BACKGROUND_BUSY > 0.3 else 1)" && [ "$waited" -lt "$limit" ]; do
    sleep 3
    waited=$((waited + 5))
    BACKGROUND_BUSY="$(busy_cores)"
  done
  log "background load before measuring: $BACKGROUND_BUSY busy cores (waited ${waited}s)"
}

machine_line() {
  local mem
  mem="$(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo)"
  echo "machine: $(nproc) cores, $mem, $(uname -r); load generator on the same machine;" \
    "background before measuring: ${BACKGROUND_BUSY:-?} busy cores"
}
