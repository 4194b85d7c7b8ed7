#!/usr/bin/env python3
"""Drives one contact import through the pages (sign in, upload, preview, start, wait for
the end) and reports the web process's memory: resident size before the upload and the
peak (VmHWM) after, from /proc/<pid>/status. Standard library only."""

import argparse
import http.cookiejar
import re
import time
import urllib.parse
import urllib.request
import uuid

CSRF = re.compile(r'name="_csrf" value="([^"]+)"')


def kib(pid, field):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise SystemExit(f"no {field} for pid {pid}")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--url", required=True)
    ap.add_argument("--pid", type=int, required=True)
    ap.add_argument("--email", required=True)
    ap.add_argument("--password", required=True)
    ap.add_argument("--file", required=True)
    ap.add_argument("--previews", type=int, default=3, help="preview page loads before the start")
    args = ap.parse_args()

    jar = http.cookiejar.CookieJar()
    opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar))

    def get(path):
        with opener.open(args.url + path, timeout=600) as r:
            return r.geturl(), r.read().decode()

    def post(path, fields=None, body=None, content_type=None):
        data = body if body is not None else urllib.parse.urlencode(fields).encode()
        req = urllib.request.Request(args.url + path, data=data, method="POST")
        req.add_header("Content-Type", content_type or "application/x-www-form-urlencoded")
        with opener.open(req, timeout=600) as r:
            return r.geturl(), r.read().decode()

    _, page = get("/login")
    token = CSRF.search(page).group(1)
    where, _ = post("/login", {"_csrf": token, "email": args.email, "password": args.password})
    if "/login" in where:
        raise SystemExit("sign-in failed")
    _, page = get("/contacts/import")
    token = CSRF.search(page).group(1)

    with open(args.file, "rb") as f:
        content = f.read()
    boundary = uuid.uuid4().hex
    body = (
        f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"bench.csv\"\r\n"
        f"Content-Type: text/csv\r\n\r\n"
    ).encode() + content + f"\r\n--{boundary}--\r\n".encode()

    idle = kib(args.pid, "VmRSS")
    t0 = time.monotonic()
    where, page = post(
        "/contacts/import?_csrf=" + urllib.parse.quote(token),
        body=body,
        content_type=f"multipart/form-data; boundary={boundary}",
    )
    upload_s = time.monotonic() - t0
    phases = [("upload", kib(args.pid, "VmHWM"))]
    if "/contacts/import/" not in where:
        raise SystemExit("upload refused: " + (re.search(r'field-error[^>]*>([^<]+)', page) or [None, page[:300]])[1])
    path = urllib.parse.urlparse(where).path
    t0 = time.monotonic()
    for _ in range(args.previews):
        _, page = get(path)
    preview_s = (time.monotonic() - t0) / max(args.previews, 1)
    phases.append(("preview", kib(args.pid, "VmHWM")))
    token = CSRF.search(page).group(1)
    fields = {"_csrf": token, "action": "start"}
    for name in re.findall(r'<select[^>]*name="([^"]+)"', page):
        m = re.search(r'<select[^>]*name="%s"[^>]*>(.*?)</select>' % re.escape(name), page, re.S)
        sel = re.search(r'<option value="([^"]*)"[^>]*selected', m.group(1)) if m else None
        fields[name] = sel.group(1) if sel else ""
    for name, value in re.findall(r'<input[^>]*type="hidden"[^>]*name="([^"]+)"[^>]*value="([^"]*)"', page):
        fields.setdefault(name, value)
    for m in re.finditer(r'<input[^>]*type="(?:radio|checkbox)"[^>]*>', page):
        tag = m.group(0)
        if "checked" in tag:
            fields[re.search(r'name="([^"]+)"', tag).group(1)] = re.search(r'value="([^"]*)"', tag).group(1)
    t0 = time.monotonic()
    post(path, fields)
    status = "running"
    while status == "running":
        time.sleep(0.5)
        _, page = get(path)
        if "Import preview" in page:
            raise SystemExit("the import did not start: " + (re.search(r'field-error[^>]*>([^<]+)', page) or [None, "?"])[1])
        status = re.search(r'data-status="([a-z]+)"', page).group(1)
    count = re.search(r'id="result-created">(\d+)<', page)
    run_s = time.monotonic() - t0
    peak = kib(args.pid, "VmHWM")
    phases.append(("run", peak))
    print(f"idle_rss_kib={idle}")
    print(f"peak_rss_kib={peak}")
    print(f"peak_above_idle_mib={(peak - idle) / 1024:.1f}")
    print("peak_after_mib=" + ",".join(f"{name}:{(v - idle) / 1024:.0f}" for name, v in phases))
    print(f"status={status} created={count.group(1) if count else '?'}")
    print(f"upload_s={upload_s:.2f} preview_s={preview_s:.2f} run_s={run_s:.1f}")


if __name__ == "__main__":
    main()
