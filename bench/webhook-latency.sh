#!/usr/bin/env bash
# Event -> webhook delivery to one endpoint, open loop, at stepped rates. For each offered
# rate a fresh ender-web (fresh private PostgreSQL) runs with loopback receivers allowed;
# the generator (crates/worker/examples/webhook_load.rs) commits RATE sms_sent events/s,
# each one call of endpoint::enqueue (a read of the endpoints, then one insert, which
# notifies ender_webhooks when the endpoint is idle) committed on its own — in Ender it runs inside the transaction of the
# change that raised the event; EVENT_TRANSACTION=1 gives each event a BEGIN … COMMIT of
# its own instead — for SECONDS_RUN after a WARMUP, and times commit -> request at its
# receiver (answers 200 at once) per message id, overall and per 5 s of the window. The
# CPU split (ender-web, PostgreSQL, the rest) is sampled over the measured window. Last,
# BACKLOG deliveries are queued behind the endpoint's breaker and released at once: how
# fast the engine drains them is its ceiling without the cost of producing events.
#
# Targets: >= 1,800 deliveries/s sustained before p99 exceeds 50 ms; at 1,000/s p50 <= 5 ms
# and p99 <= 15 ms; <= 1.0 ms of CPU (ender-web + PostgreSQL) per delivery at 1,000/s.
#
#   bench/webhook-latency.sh       # 250 500 750 1000 1500 1800 2100 2500 /s, 20 s each; steps
#                                  # from 1,000/s on they stop at the first that is not sustained
#   STEPS="1000" SECONDS_RUN=30 bench/webhook-latency.sh
#   BENCH_PG_STATEMENTS=1 STEPS=2100 bench/webhook-latency.sh   # + top statements
#   HISTORY=200000 STEPS=200 BACKLOG=0 bench/webhook-latency.sh # with 200,000 past deliveries
#   SERVER_ENV="ENDER_WEBHOOK_CONCURRENCY=16" bench/webhook-latency.sh  # server settings
#   EVENT_TRANSACTION=1 bench/webhook-latency.sh   # each event BEGIN, enqueue, COMMIT
set -euo pipefail
source "$(dirname "$0")/webhook-lib.sh"

STEPS="${STEPS-250 500 750 1000 1500 1800 2100 2500}"
SECONDS_RUN="${SECONDS_RUN:-20}"
WARMUP="${WARMUP:-3}"
BACKLOG="${BACKLOG:-20000}"
HISTORY="${HISTORY:-0}"

knee=0
summary=()
for rate in $STEPS; do
  name="webhook-latency-r$rate"
  if [ "${EVENT_TRANSACTION:-0}" = 1 ]; then
    measure "$name" --rate "$rate" --seconds "$SECONDS_RUN" --warmup "$WARMUP" --transaction
  else
    measure "$name" --rate "$rate" --seconds "$SECONDS_RUN" --warmup "$WARMUP"
  fi
  cat "$RESULTS_DIR/$name.procstat.txt" >&2
  grep '^RESULT' "$RESULTS_DIR/$name.txt" >&2
  read -r cpu cpu_delivery delivered_rate <<<"$(cpu_per_delivery "$name")"
  p50="$(field "$name" p50_ms)"
  p95="$(field "$name" p95_ms)"
  p99="$(field "$name" p99_ms)"
  max="$(field "$name" max_ms)"
  lost="$(field "$name" lost)"
  dup="$(field "$name" duplicates)"
  committed="$(field "$name" commit_rate)"
  lag99="$(field "$name" commit_lag_p99_ms)"
  line="RESULT webhook-rate: history=$HISTORY event_transaction=${EVENT_TRANSACTION:-0}${SERVER_ENV:+ server_env=${SERVER_ENV// /,}} offered=${rate}/s committed=${committed} delivered=${delivered_rate}/s p50=${p50}ms p95=${p95}ms p99=${p99}ms max=${max}ms"
  line+=" lost=$lost duplicates=$dup commit_lag_p99=${lag99}ms cpu_per_delivery=${cpu}ms (delivery side only: ${cpu_delivery}ms)"
  line+=" ender-web=$(pstat "$name" web_cpu_cores) postgres=$(pstat "$name" postgres_cpu_cores)"
  line+=" generator=$(field "$name" generator_cpu_cores window)+pg:$(field "$name" generator_pg_backend_cpu_cores window)"
  line+=" other=$(pstat "$name" other_cpu_cores) idle=$(pstat "$name" idle_cores) cores background=${BACKGROUND_BUSY}cores"
  summary+=("$line" "RESULT webhook-rate-backends: offered=${rate}/s $("$BENCH_DIR/pgwaits.sh" --summary "$RESULTS_DIR/$name.pgwaits.txt")")
  note="$(disturbed_note "$name")"
  [ -n "$note" ] && summary+=("$note")
  # Sustained: deliveries kept up with the offered rate (within 3%), none missing after the
  # drain, p99 <= 50 ms.
  sustained=no
  if python3 -c "import sys; sys.exit(0 if $p99 <= 50 and $lost == 0 and $delivered_rate >= 0.97 * $rate else 1)"; then
    sustained=yes
    knee="$rate"
  fi
  summary+=("RESULT webhook-rate-verdict: offered=${rate}/s sustained=$sustained (p99 <= 50 ms, all delivered, >= 97% of the offered rate)")
  stop_early=0
  [ "$sustained" = no ] && [ "$rate" -ge 1000 ] && stop_early=1
  if [ "$rate" = 1000 ]; then
    summary+=("RESULT webhook-1000: p50=${p50}ms ($(verdict "$p50 <= 5") target <= 5 ms) p99=${p99}ms ($(verdict "$p99 <= 15") target <= 15 ms)"
      "RESULT webhook-cpu-1000: ${cpu}ms per delivery, ender-web + PostgreSQL ($(verdict "$cpu <= 1.0") target <= 1.0 ms); ${cpu_delivery}ms without the generator's enqueue transactions")
  fi
  if [ "$stop_early" = 1 ]; then
    log "$rate/s is not sustained: skipping the higher steps"
    break
  fi
done
if [ "$BACKLOG" -gt 0 ]; then
  name="webhook-latency-backlog"
  measure "$name" --backlog "$BACKLOG"
  cat "$RESULTS_DIR/$name.procstat.txt" >&2
  grep '^RESULT' "$RESULTS_DIR/$name.txt" >&2
  read -r cpu _ delivered_rate <<<"$(cpu_per_delivery "$name")"
  summary+=("$(grep '^RESULT webhook-backlog:' "$RESULTS_DIR/$name.txt")${SERVER_ENV:+ server_env=${SERVER_ENV// /,}} cpu_per_delivery=${cpu}ms"
    "ender-web=$(pstat "$name" web_cpu_cores) postgres=$(pstat "$name" postgres_cpu_cores) other=$(pstat "$name" other_cpu_cores)"
    "idle=$(pstat "$name" idle_cores) cores background=${BACKGROUND_BUSY}cores")
  summary+=("RESULT webhook-backlog-backends: $("$BENCH_DIR/pgwaits.sh" --summary "$RESULTS_DIR/$name.pgwaits.txt")")
  note="$(disturbed_note "$name")"
  [ -n "$note" ] && summary+=("$note")
fi
echo "$(machine_line)"
printf '%s\n' "${summary[@]}"
echo "RESULT webhook-knee: highest sustained step ${knee}/s of steps [$STEPS]${SERVER_ENV:+ server_env=${SERVER_ENV// /,}} history=$HISTORY" \
  "($(verdict "$knee >= 1800") target >= 1800/s)"
