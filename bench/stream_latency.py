#!/usr/bin/env python3
"""Accept-to-device latency: holds a device's event stream (GET /api/device/events, SSE)
open, sends messages through POST /api/sms/send at a fixed rate for a fixed time (each
with a distinct body, one recipient), and for every message id measures the time from
the moment the send was accepted (its HTTP 200 answer read) until the `message` event for
that id arrived on the stream. Prints p50/p95/p99 and one RESULT line.

Standard library only (asyncio): a tiny HTTP/1.1 client with keep-alive connections.

    stream_latency.py --url http://127.0.0.1:8080 --api-key vk_... --device-key dk_... \
        --rate 200 --seconds 20
"""

import argparse
import asyncio
import json
import statistics
import sys
import time
from urllib.parse import urlsplit

now = time.monotonic


async def read_head(reader):
    status_line = await reader.readline()
    if not status_line:
        raise ConnectionError("connection closed")
    status = int(status_line.split()[1])
    headers = {}
    while True:
        line = await reader.readline()
        if line in (b"\r\n", b"\n", b""):
            break
        k, _, v = line.decode("latin-1").partition(":")
        headers[k.strip().lower()] = v.strip()
    return status, headers


async def read_body(reader, headers):
    if "content-length" in headers:
        return await reader.readexactly(int(headers["content-length"]))
    if headers.get("transfer-encoding", "").lower() == "chunked":
        out = bytearray()
        async for chunk in chunks(reader):
            out += chunk
        return bytes(out)
    return await reader.read()


async def chunks(reader):
    """Decodes a chunked body, yielding each chunk as it arrives."""
    while True:
        size_line = await reader.readline()
        if not size_line:
            return
        size = int(size_line.split(b";")[0].strip() or b"0", 16)
        if size == 0:
            await reader.readline()
            return
        data = await reader.readexactly(size)
        await reader.readexactly(2)
        yield data


class Stream:
    """Holds the device stream open and stamps each `message` event on arrival."""

    def __init__(self):
        self.arrivals = {}  # message id -> monotonic arrival time
        self.duplicates = 0
        self.hello = asyncio.Event()

    async def run(self, host, port, device_key):
        reader, writer = await asyncio.open_connection(host, port)
        writer.write(
            (
                f"GET /api/device/events HTTP/1.1\r\nHost: {host}:{port}\r\n"
                f"X-API-Key: {device_key}\r\nAccept: text/event-stream\r\n\r\n"
            ).encode()
        )
        await writer.drain()
        status, headers = await read_head(reader)
        if status != 200:
            body = await read_body(reader, headers)
            raise RuntimeError(f"stream answered {status}: {body[:300]!r}")
        buf = ""
        source = (
            chunks(reader)
            if headers.get("transfer-encoding", "").lower() == "chunked"
            else raw(reader)
        )
        async for data in source:
            t = now()
            buf += data.decode()
            buf = buf.replace("\r\n", "\n")
            while "\n\n" in buf:
                block, buf = buf.split("\n\n", 1)
                self.on_event(block, t)

    def on_event(self, block, t):
        event, data = "message", []
        for line in block.split("\n"):
            if line.startswith(":"):
                continue
            field, _, value = line.partition(":")
            value = value[1:] if value.startswith(" ") else value
            if field == "event":
                event = value
            elif field == "data":
                data.append(value)
        if event == "hello":
            self.hello.set()
        elif event == "message":
            mid = json.loads("\n".join(data))["message_id"]
            if mid in self.arrivals:
                self.duplicates += 1
            else:
                self.arrivals[mid] = t


async def raw(reader):
    while True:
        data = await reader.read(65536)
        if not data:
            return
        yield data


class Sender:
    """Keep-alive connections for POST /api/sms/send."""

    def __init__(self, host, port, api_key, connections):
        self.host, self.port, self.api_key = host, port, api_key
        self.pool = asyncio.Queue()
        self.connections = connections
        self.results = []  # (request start, accepted at, message id)
        self.failures = []

    async def open(self):
        for _ in range(self.connections):
            self.pool.put_nowait(await asyncio.open_connection(self.host, self.port))

    async def send(self, i, scheduled):
        body = json.dumps(
            {
                "recipients": [f"+1555{i % 10_000_000:07d}"],
                "body": f"Latency bench {i}: your code is {i * 7919 % 1_000_000:06d}",
            }
        ).encode()
        head = (
            f"POST /api/sms/send HTTP/1.1\r\nHost: {self.host}:{self.port}\r\n"
            f"X-API-Key: {self.api_key}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n\r\n"
        ).encode()
        reader, writer = await self.pool.get()
        try:
            started = now()
            writer.write(head + body)
            await writer.drain()
            status, headers = await read_head(reader)
            answer = await read_body(reader, headers)
            accepted = now()
            if status != 200:
                self.failures.append((status, answer[:200]))
                return
            mid = json.loads(answer)["message_ids"][0]
            self.results.append((scheduled, started, accepted, mid))
        except Exception as e:  # noqa: BLE001 - recorded and reported
            self.failures.append(("error", repr(e)))
            reader, writer = await asyncio.open_connection(self.host, self.port)
        finally:
            self.pool.put_nowait((reader, writer))


def pct(values, p):
    if not values:
        return float("nan")
    s = sorted(values)
    k = max(0, min(len(s) - 1, int(round(p / 100 * len(s) + 0.5)) - 1))
    return s[k]


async def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--url", required=True)
    ap.add_argument("--api-key", required=True)
    ap.add_argument("--device-key", required=True)
    ap.add_argument("--rate", type=float, default=200)
    ap.add_argument("--seconds", type=float, default=20)
    ap.add_argument("--connections", type=int, default=16)
    ap.add_argument("--drain-seconds", type=float, default=10)
    ap.add_argument("--target-p99-ms", type=float, default=100)
    args = ap.parse_args()

    u = urlsplit(args.url)
    host, port = u.hostname, u.port or 80

    stream = Stream()
    stream_task = asyncio.create_task(stream.run(host, port, args.device_key))
    try:
        await asyncio.wait_for(stream.hello.wait(), 10)
    except asyncio.TimeoutError:
        if stream_task.done():
            stream_task.result()
        raise SystemExit("no hello event on the device stream within 10 s")
    await asyncio.sleep(0.5)  # let the server mark the device online

    sender = Sender(host, port, args.api_key, args.connections)
    await sender.open()
    total = int(args.rate * args.seconds)
    t0 = now() + 0.1
    tasks = []
    for i in range(total):
        scheduled = t0 + i / args.rate
        delay = scheduled - now()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(sender.send(i, scheduled)))
    await asyncio.gather(*tasks)
    send_end = now()

    deadline = now() + args.drain_seconds
    wanted = {r[3] for r in sender.results}
    while now() < deadline and not wanted <= stream.arrivals.keys():
        await asyncio.sleep(0.05)
    stream_task.cancel()

    accept_lat, e2e_lat, http_lat, sched_lag = [], [], [], []
    missing = 0
    for scheduled, started, accepted, mid in sender.results:
        http_lat.append((accepted - started) * 1000)
        sched_lag.append((started - scheduled) * 1000)
        arrived = stream.arrivals.get(mid)
        if arrived is None:
            missing += 1
            continue
        accept_lat.append((arrived - accepted) * 1000)
        e2e_lat.append((arrived - started) * 1000)

    achieved = len(sender.results) / max(1e-9, send_end - t0)
    print(f"sent={total} accepted={len(sender.results)} failed={len(sender.failures)} "
          f"achieved_rate={achieved:.1f}/s events={len(accept_lat)} missing={missing} "
          f"duplicates={stream.duplicates}")
    if sender.failures:
        print(f"first failures: {sender.failures[:3]}")
    for name, values in [
        ("accept->event", accept_lat),
        ("request start->event", e2e_lat),
        ("send request (HTTP)", http_lat),
        ("client scheduling lag", sched_lag),
    ]:
        if values:
            print(f"{name:>22}: p50={pct(values, 50):7.1f} ms  p95={pct(values, 95):7.1f} ms  "
                  f"p99={pct(values, 99):7.1f} ms  max={max(values):7.1f} ms  "
                  f"mean={statistics.fmean(values):7.1f} ms")
    p99 = pct(accept_lat, 99)
    ok = bool(accept_lat) and missing == 0 and not sender.failures and p99 <= args.target_p99_ms
    print(f"RESULT stream-latency: rate={args.rate:.0f}/s achieved={achieved:.1f}/s seconds={args.seconds:.0f} "
          f"messages={len(sender.results)} missing={missing} accept->event p50={pct(accept_lat, 50):.1f}ms "
          f"p95={pct(accept_lat, 95):.1f}ms p99={p99:.1f}ms max={max(accept_lat, default=float('nan')):.1f}ms "
          f"({'PASS' if ok else 'MISS'} target p99 <= {args.target_p99_ms:.0f} ms); "
          f"request start->event p99={pct(e2e_lat, 99):.1f}ms")
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
