# Ender's development recipes. `just --list` shows them.
#
# Run:  just run     (serves http://127.0.0.1:8080 on a private PostgreSQL under .data/)
# Test: just test    (every test, browser tests included)

set shell := ["bash", "-euo", "pipefail", "-c"]

# Build and query-check against .sqlx/ instead of a live database.
export SQLX_OFFLINE := "true"

default:
    @just --list

# Start Ender: web, worker and an embedded PostgreSQL, no configuration needed.
run *ARGS:
    cargo run -p ender-web -- {{ARGS}}

# Run the worker on its own (with DATABASE_URL pointing at the same database as the web process).
worker *ARGS:
    cargo run -p ender-worker -- {{ARGS}}

# Every test: unit, integration (real PostgreSQL) and browser tests (headless Chromium).
test *ARGS:
    cargo test --workspace {{ARGS}}

fmt:
    cargo fmt --all

fmt-check:
    cargo fmt --all --check

clippy:
    cargo clippy --workspace --all-targets -- -D warnings

# Start the private development database and print its URL (leave it running).
db-start:
    @cargo run -q -p ender-web -- dev-db start --data-dir .data/dev

db-stop:
    @cargo run -q -p ender-web -- dev-db stop --data-dir .data/dev

# Refresh .sqlx/ after changing a query or a migration.
sqlx-prepare:
    #!/usr/bin/env bash
    set -euo pipefail
    url=$(cargo run -q -p ender-web -- dev-db start --data-dir .data/dev)
    cargo run -q -p ender-web -- migrate --database-url "$url"
    SQLX_OFFLINE=false DATABASE_URL="$url" cargo sqlx prepare --workspace -- --all-targets

# Fails when .sqlx/ does not match the queries and the migrated schema.
sqlx-check:
    #!/usr/bin/env bash
    set -euo pipefail
    url=$(cargo run -q -p ender-web -- dev-db start --data-dir .data/ci)
    cargo run -q -p ender-web -- migrate --database-url "$url"
    SQLX_OFFLINE=false DATABASE_URL="$url" cargo sqlx prepare --workspace --check -- --all-targets

# Migrations up, down and up again on a fresh private database.
migrations-roundtrip:
    #!/usr/bin/env bash
    set -euo pipefail
    dir=$(mktemp -d /tmp/ender-migrations.XXXXXX)
    chmod 755 "$dir"
    trap 'cargo run -q -p ender-web -- dev-db stop --data-dir "$dir" >/dev/null 2>&1 || true; rm -rf "$dir"' EXIT
    url=$(cargo run -q -p ender-web -- dev-db start --data-dir "$dir")
    cargo run -q -p ender-web -- migrate --database-url "$url"
    cargo run -q -p ender-web -- migrate --revert-all --database-url "$url"
    cargo run -q -p ender-web -- migrate --database-url "$url"

# Runs every fuzz target for SECS seconds each (cargo-fuzz; nightly when installed, else
# the stable compiler with RUSTC_BOOTSTRAP). New inputs go to a scratch folder; the seeds
# in <crate>/fuzz/corpus/<target> are read, never written. A crash fails the recipe and
# leaves its input under <crate>/fuzz/artifacts.
fuzz SECS="30":
    #!/usr/bin/env bash
    set -euo pipefail
    if rustup toolchain list 2>/dev/null | grep -q '^nightly'; then tc=(+nightly); else tc=(); export RUSTC_BOOTSTRAP=1; fi
    target="${CARGO_TARGET_DIR:-$PWD/target}/fuzz"
    scratch=$(mktemp -d /tmp/ender-fuzz.XXXXXX)
    trap 'rm -rf "$scratch"' EXIT
    for crate in core modem-agent; do
      dir="crates/$crate"
      for t in $(cd "$dir" && cargo "${tc[@]}" fuzz list); do
        mkdir -p "$scratch/$crate-$t"
        seeds=()
        [ -d "$dir/fuzz/corpus/$t" ] && seeds=("$PWD/$dir/fuzz/corpus/$t")
        echo "fuzzing $crate/$t for {{SECS}} s"
        log="$scratch/$crate-$t.log"
        if ! (cd "$dir" && SQLX_OFFLINE=true cargo "${tc[@]}" fuzz run --target-dir "$target" "$t" "$scratch/$crate-$t" "${seeds[@]}" -- \
            -max_total_time={{SECS}} -rss_limit_mb=2048 -max_len=65536 -print_final_stats=1) >"$log" 2>&1; then
          tail -60 "$log"
          echo "fuzz target $crate/$t failed"
          exit 1
        fi
        grep -E '^stat::number_of_executed_units|^Done' "$log" || true
      done
    done

# What CI runs (.ci/run installs the tools first).
ci: fmt-check clippy sqlx-check migrations-roundtrip test fuzz
    cargo run -q -p ender-web -- dev-db stop --data-dir .data/ci
