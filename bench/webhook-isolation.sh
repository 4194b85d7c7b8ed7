#!/usr/bin/env bash
# One slow receiver must not hold up another: a healthy endpoint's event -> delivery p99
# alone, then (fresh server each time) next to a second healthy endpoint (the control: as
# much work, nobody slow), then next to a "flaky" endpoint whose receiver never answers
# FLAKY_FRACTION of its requests (Ender's default 15 s timeout ends them). Every endpoint
# belongs to its own user and gets RATE events/s (FLAKY_RATE for the flaky one).
#
# Each server first gets HISTORY delivered webhooks of another endpoint (default 200,000: a
# server that keeps 30 days of history), so that the claim query has its steady-state plan
# (on a nearly empty table it scans the whole table; webhook-latency.sh shows that).
#
# Target: the healthy endpoint's p99 stays <= 2x its solo p99 while the other endpoint times
# out on 10% of its traffic.
#
#   bench/webhook-isolation.sh                  # 250/s each, 30 s each run
#   RATE=500 HISTORY=0 bench/webhook-isolation.sh
set -euo pipefail
source "$(dirname "$0")/webhook-lib.sh"

RATE="${RATE:-250}"
HISTORY="${HISTORY:-200000}"
FLAKY_RATE="${FLAKY_RATE:-$RATE}"
FLAKY_FRACTION="${FLAKY_FRACTION:-0.1}"
SECONDS_RUN="${SECONDS_RUN:-30}"
WARMUP="${WARMUP:-3}"

runs=(
  "solo|--endpoints 1"
  "control|--endpoints 2"
  "flaky|--endpoints 1 --flaky-endpoints 1 --flaky-fraction $FLAKY_FRACTION --flaky-rate $FLAKY_RATE"
)
# What became of each endpoint's deliveries, and its breaker, before the server stops.
after_load() {
  bench_psql -c "SELECT e.description, d.status, count(*) FROM webhook_deliveries d
                 JOIN webhook_endpoints e ON e.id = d.endpoint_id GROUP BY 1, 2 ORDER BY 1, 2" >&2
  bench_psql -c "SELECT description, consecutive_failures, breaker_open_until > now() AS breaker_open,
                 left(last_failure, 60) FROM webhook_endpoints ORDER BY 1" >&2
}
summary=()
for run in "${runs[@]}"; do
  kind="${run%%|*}"
  name="webhook-isolation-$kind"
  # shellcheck disable=SC2086
  measure "$name" --rate "$RATE" --seconds "$SECONDS_RUN" --warmup "$WARMUP" ${run#*|}
  cat "$RESULTS_DIR/$name.procstat.txt" >&2
  grep '^RESULT' "$RESULTS_DIR/$name.txt" >&2
  while read -r result; do
    summary+=("RESULT webhook-isolation-$kind: ${result#RESULT webhook-load: label=$name }")
  done < <(grep '^RESULT webhook-load:' "$RESULTS_DIR/$name.txt")
  summary+=("RESULT webhook-isolation-$kind-cpu: ender-web=$(pstat "$name" web_cpu_cores) postgres=$(pstat "$name" postgres_cpu_cores)"
    "other=$(pstat "$name" other_cpu_cores) idle=$(pstat "$name" idle_cores) cores background=${BACKGROUND_BUSY}cores")
  note="$(disturbed_note "$name")"
  [ -n "$note" ] && summary+=("$note")
done
solo="$(field webhook-isolation-solo p99_ms)"
control="$(field webhook-isolation-control p99_ms)"
mixed="$(field webhook-isolation-flaky p99_ms)"
echo "$(machine_line)"
printf '%s\n' "${summary[@]}"
echo "RESULT webhook-isolation: healthy p99 solo=${solo}ms with-second-healthy=${control}ms" \
  "with-flaky(${FLAKY_FRACTION} unanswered)=${mixed}ms ratio=$(python3 -c "print(f'{$mixed / $solo:.2f}')")x" \
  "($(verdict "$mixed <= 2 * $solo") target <= 2x solo) rate=${RATE}/s per endpoint history=$HISTORY"
