#!/usr/bin/env bash
# Accept -> `message` event on a device's stream: one device holds GET /api/device/events
# open while bench/stream_latency.py sends RATE messages/s for SECONDS through
# POST /api/sms/send (dispatch runs in the same process, woken by NOTIFY).
#
# Target: p99 <= 100 ms at 200 messages/s.
#
#   bench/stream-latency.sh                 # 200/s for 20 s
#   RATE=400 SECONDS_RUN=30 bench/stream-latency.sh
set -euo pipefail
source "$(dirname "$0")/lib.sh"

need psql "apt-get install -y postgresql-client"

RATE="${RATE:-200}"
SECONDS_RUN="${SECONDS_RUN:-20}"
name="stream-latency"

start_server "$name"
seed_user
# Pacing must not be what limits the test: RATE/s is RATE*60 per minute.
seed_device 100000 1000000
wait_quiet

start_sampler "$RESULTS_DIR/$name.procstat.txt"
python3 "$BENCH_DIR/stream_latency.py" --url "$BASE_URL" --api-key "$API_KEY" \
  --device-key "$DEVICE_KEY" --rate "$RATE" --seconds "$SECONDS_RUN" | tee "$RESULTS_DIR/$name.txt"
stop_sampler
cat "$RESULTS_DIR/$name.procstat.txt" >&2
bench_psql -c "SELECT status, count(*) FROM messages GROUP BY 1 ORDER BY 1" >&2
stat() { sed -n "s/^$1=//p" "$RESULTS_DIR/$name.procstat.txt"; }
echo "$(machine_line)"
echo "RESULT stream-latency-resources: web_rss_max=$(stat web_rss_max_mib)MiB ender-web=$(stat web_cpu_cores)" \
  "postgres=$(stat postgres_cpu_cores) other=$(stat other_cpu_cores) idle=$(stat idle_cores) cores background=${BACKGROUND_BUSY}cores"
