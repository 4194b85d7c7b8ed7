# syntax=docker/dockerfile:1
#
# Ender container image: ender-web, ender-worker and ender-modem-agent in one image.
#
#   docker build -t ender .
#   docker run --rm -p 8080:8080 -e DATABASE_URL=postgres://... ender
#
# The image has no PostgreSQL server: give it DATABASE_URL (compose.yaml runs a
# postgres service). Templates are compiled into the binaries; only static/ is
# copied next to them.

# ---------- build ----------
FROM rust:1-bookworm AS builder

WORKDIR /src
COPY . .

# Queries are checked against the prepared query data in .sqlx/, not a live
# database.
ENV SQLX_OFFLINE=true

# The cache mounts keep the registry and target/ between builds; the binaries
# are copied out of target/ because a cache mount is not part of the image.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/usr/local/cargo/git \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked -p ender-web -p ender-worker -p ender-modem-agent \
    && mkdir -p /out \
    && cp target/release/ender-web target/release/ender-worker target/release/ender-modem-agent /out/

# ---------- runtime ----------
FROM debian:bookworm-slim

RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/*

RUN groupadd --system --gid 10001 ender \
    && useradd --system --uid 10001 --gid ender --home-dir /app --no-create-home --shell /usr/sbin/nologin ender \
    && mkdir -p /app/data /var/lib/ender-modem-agent \
    && chown ender:ender /app/data /var/lib/ender-modem-agent

COPY --from=builder /out/ender-web /out/ender-worker /out/ender-modem-agent /usr/local/bin/
COPY static/ /app/static/

WORKDIR /app
USER ender:ender

ENV ENDER_BIND=0.0.0.0:8080 \
    ENDER_DATA_DIR=/app/data \
    ENDER_LOG_FORMAT=json

EXPOSE 8080

# `ender-web healthcheck` GETs /healthz on the local server and exits non-zero
# unless it answers 200. (The worker service turns this off in compose.yaml.)
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
    CMD ["ender-web", "healthcheck"]

CMD ["ender-web", "serve"]
