#!/usr/bin/env python3
"""Signs an administrator in through the login form, then times GET /admin?<query> ROUNDS
times for each NAME=QUERY argument over one kept-alive connection (after 5 warm-up loads),
and prints one line per list and the worst p95. Checks each answer is the people page
with rows. Standard library only."""

import argparse
import http.client
import re
import statistics
import time
import urllib.parse

CSRF = re.compile(r'name="_csrf" value="([^"]+)"')


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--url", required=True)
    ap.add_argument("--email", required=True)
    ap.add_argument("--password", required=True)
    ap.add_argument("--rounds", type=int, default=200)
    ap.add_argument("lists", nargs="+", help="NAME=QUERY")
    args = ap.parse_args()

    base = urllib.parse.urlparse(args.url)
    conn = http.client.HTTPConnection(base.hostname, base.port, timeout=60)
    cookies = {}

    def request(method, path, body=None):
        headers = {"Cookie": "; ".join(f"{k}={v}" for k, v in cookies.items())}
        if body is not None:
            headers["Content-Type"] = "application/x-www-form-urlencoded"
        conn.request(method, path, body=body, headers=headers)
        res = conn.getresponse()
        data = res.read().decode()
        for k, v in res.getheaders():
            if k.lower() == "set-cookie":
                pair = v.split(";", 1)[0]
                name, _, value = pair.partition("=")
                cookies[name] = value
        return res.status, res.getheader("location"), data

    _, _, page = request("GET", "/login")
    token = CSRF.search(page).group(1)
    status, where, _ = request(
        "POST",
        "/login",
        urllib.parse.urlencode({"_csrf": token, "email": args.email, "password": args.password}),
    )
    if status != 303 or (where or "").startswith("/login"):
        raise SystemExit(f"sign-in failed: {status} {where}")

    worst = 0.0
    for item in args.lists:
        name, _, query = item.partition("=")
        path = "/admin" + ("?" + query if query else "")
        for _ in range(5):
            status, _, page = request("GET", path)
        if status != 200 or 'id="users"' not in page:
            raise SystemExit(f"{name}: {status}, no people table")
        rows = page.count('class="person-link"')
        times = []
        for _ in range(args.rounds):
            t0 = time.perf_counter()
            status, _, _ = request("GET", path)
            times.append((time.perf_counter() - t0) * 1000)
            if status != 200:
                raise SystemExit(f"{name}: {status}")
        times.sort()
        p50 = statistics.median(times)
        p95 = times[int(len(times) * 0.95) - 1]
        worst = max(worst, p95)
        print(f"{name}: rows={rows} p50={p50:.2f}ms p95={p95:.2f}ms max={times[-1]:.2f}ms")
    print(f"worst_p95_ms={worst:.2f}")


if __name__ == "__main__":
    main()
