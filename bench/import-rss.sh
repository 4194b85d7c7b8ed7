#!/usr/bin/env bash
# Peak memory of the web process importing a 20 MiB CSV of tiny fields (the review's M4):
# 64 one-character columns per row plus a name and a number, about 160,000 rows. The file is
# uploaded, its preview page loaded PREVIEWS times, then the import is started and awaited.
# Reports VmHWM (peak resident set) minus the resident set just before the upload.
#
# Target: under 64 MiB above idle.
#
#   bench/import-rss.sh
#   ENDER_WEB_BIN=/path/to/ender-web PREVIEWS=5 bench/import-rss.sh
set -euo pipefail
source "$(dirname "$0")/lib.sh"

need psql "apt-get install -y postgresql-client"

PREVIEWS="${PREVIEWS:-3}"
name="import-rss"
file="$RESULTS_DIR/$name.csv"

python3 - "$file" <<'PY'
import sys
limit = 20 * 1024 * 1024 - 4096
head = "name,phone," + ",".join(f"c{i}" for i in range(62)) + "\n"
tail = "," + ",".join("a" for _ in range(62)) + "\n"
with open(sys.argv[1], "w") as f:
    size = f.write(head)
    i = 0
    while True:
        row = f"a,+1555{i:07}{tail}"
        if size + len(row) > limit:
            break
        size += f.write(row)
        i += 1
print(f"{i} rows, {size} bytes", file=sys.stderr)
PY

start_server "$name"
email="import-bench@example.com"
password="bench-$(rand_alnum 16)"
echo "$password" | DATABASE_URL="postgres://ender@localhost/ender?host=$BENCH_DATA/postgres" \
  "$ENDER_WEB" admin create --email "$email" --password-stdin --public-url "$BASE_URL" >/dev/null
wait_quiet

python3 "$BENCH_DIR/import_rss.py" --url "$BASE_URL" --pid "$SERVER_PID" --email "$email" \
  --password "$password" --file "$file" --previews "$PREVIEWS" | tee "$RESULTS_DIR/$name.txt"
rm -f "$file"
val() { sed -n "s/^$1=\([^ ]*\).*/\1/p" "$RESULTS_DIR/$name.txt"; }
echo "$(machine_line)"
echo "RESULT import-rss: peak_above_idle=$(val peak_above_idle_mib)MiB idle=$(( $(val idle_rss_kib) / 1024 ))MiB" \
  "$(grep '^upload_s' "$RESULTS_DIR/$name.txt") background=${BACKGROUND_BUSY}cores"
