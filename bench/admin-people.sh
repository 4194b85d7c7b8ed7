#!/usr/bin/env bash
# The admin console's people list at 100,000 accounts: seeds the accounts with SQL (1 % of
# them administrators, 10 % unconfirmed, 1 % suspended, sign-ups spread over two years),
# signs an administrator in through the login form, then loads /admin ROUNDS times for each
# of: the first page, a search by email fragment, a search by name, each filter, the
# filters together, and a page 90,000 accounts deep (keyset cursor). Reports p50/p95/max
# of each request's time at the client over a kept-alive loopback connection, which
# bounds the server's time from above.
#
# Target: p95 ≤ 20 ms for every list.
#
#   bench/admin-people.sh
#   ACCOUNTS=100000 ROUNDS=200 ENDER_WEB_BIN=/path/to/ender-web bench/admin-people.sh
set -euo pipefail
source "$(dirname "$0")/lib.sh"

need psql "apt-get install -y postgresql-client"

ACCOUNTS="${ACCOUNTS:-100000}"
ROUNDS="${ROUNDS:-200}"
name="admin-people"

start_server "$name"
email="operator@example.com"
password="bench-$(rand_alnum 16)"
echo "$password" | DATABASE_URL="postgres://ender@localhost/ender?host=$BENCH_DATA/postgres" \
  "$ENDER_WEB" admin create --email "$email" --password-stdin --public-url "$BASE_URL" >/dev/null

log "seeding $ACCOUNTS accounts"
bench_psql <<SQL
INSERT INTO users (id, email, email_normalized, full_name, password_hash, email_verified_at,
                   created_at, last_sign_in_at, is_admin, suspended_at)
SELECT gen_random_uuid(), 'person' || g || '@example' || (g % 97) || '.org',
       'person' || g || '@example' || (g % 97) || '.org',
       (ARRAY['Ada','Grace','Alan','Edsger','Barbara','Ken','Dennis','Frances'])[1 + g % 8]
         || ' ' || (ARRAY['Lovelace','Hopper','Turing','Dijkstra','Liskov','Thompson','Ritchie','Allen'])[1 + (g / 8) % 8]
         || ' ' || g,
       NULL,
       CASE WHEN g % 10 = 0 THEN NULL ELSE now() - make_interval(secs => g * 600) END,
       now() - make_interval(secs => g * 630),
       CASE WHEN g % 3 = 0 THEN now() - make_interval(secs => g * 60) END,
       g % 100 = 0,
       CASE WHEN g % 100 = 1 THEN now() - make_interval(secs => g) END
FROM generate_series(1, $ACCOUNTS) g;
ANALYZE users;
SQL
cursor="$(bench_psql -tAc "SELECT (extract(epoch FROM created_at) * 1000000)::bigint || '_' || id FROM users ORDER BY created_at DESC, id DESC OFFSET $((ACCOUNTS * 9 / 10)) LIMIT 1")"
since="$(date -u -d '-30 days' +%Y-%m-%d)"
wait_quiet

python3 "$BENCH_DIR/admin_people.py" --url "$BASE_URL" --email "$email" --password "$password" \
  --rounds "$ROUNDS" \
  "first-page=" \
  "search-email=q=person4242" \
  "search-name=q=grace+hopper" \
  "admins=admins=on" \
  "unconfirmed=unverified=on" \
  "suspended=suspended=on" \
  "since-30-days=since=$since" \
  "all-filters=q=example1&unverified=on&since=$since" \
  "deep-keyset=after=$cursor" | tee "$RESULTS_DIR/$name.txt"
echo "$(machine_line)"
echo "RESULT admin-people: accounts=$ACCOUNTS rounds=$ROUNDS worst_p95=$(sed -n 's/^worst_p95_ms=//p' "$RESULTS_DIR/$name.txt")ms background=${BACKGROUND_BUSY}cores"
