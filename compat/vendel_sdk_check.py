#!/usr/bin/env python3
"""Acceptance check: the published Vendel Python SDK against a running Ender server.

Drives the real `vendel_sdk` package (the official Vendel client, pinned in
requirements.txt) through its public methods, and plays the Vendel Android app with
plain `requests` for the device API, then checks every answer against the wire
contract (compat/vendel-api.md in the shared design notes).

Environment:
    ENDER_URL          base URL of the server, e.g. http://127.0.0.1:8080
    ENDER_API_KEY      an integration key (vk_...) of a user
    ENDER_DEVICE_ID    the id of one of that user's devices
    ENDER_DEVICE_KEY   optional: that device's key (dk_...); enables the device checks
    ENDER_CHECK_WAIT   optional: seconds to wait for messages to reach the device (20)

Prints one line per check ("ok   <name>" or "FAIL <name>: <detail>"), goes on after a
failure, and ends with "N passed, M failed". Exits 1 if any check failed, else 0.
The messages it sends go to reserved +1555000xxxx numbers and count against the user's
monthly quota (four per run).
"""

from __future__ import annotations

import math
import os
import re
import secrets
import sys
import time
import traceback
from contextlib import contextmanager
from datetime import datetime, timedelta, timezone
from importlib import metadata

import requests
from vendel_sdk import VendelAPIError, VendelClient, VendelQuotaError

NUMBER_A = "+15550001111"
NUMBER_B = "+15550002222"
NUMBER_C = "+15550003333"
INCOMING_FROM = "+15550009999"

# Every status a message can have (outgoing, then incoming).
KNOWN_STATUSES = {
    "pending",
    "assigned",
    "sending",
    "sent",
    "delivered",
    "failed",
    "canceled",
    "expired",
    "received",
}
DEVICE_TYPES = {"android", "modem", "smsgate"}
SECRET_FIELDS = {"api_key", "key", "key_hash", "device_key", "fcm_token", "token"}

RFC3339_UTC = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|\+00:00)$")
RESET_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")

MESSAGE_STR_FIELDS = (
    "id",
    "batch_id",
    "recipient",
    "status",
    "error_message",
    "device_id",
    "created",
    "updated",
    "from_number",
    "message_type",
    "body",
    "sent_at",
    "delivered_at",
)
DEVICE_STR_FIELDS = ("id", "name", "device_type", "phone_number", "created", "updated")

HTTP_TIMEOUT = 30


class Failure(Exception):
    """A check found something that does not match the contract."""


def expect(condition: bool, detail: str) -> None:
    if not condition:
        raise Failure(detail)


def expect_eq(actual, expected, what: str) -> None:
    if actual != expected:
        raise Failure(f"{what}: expected {expected!r}, got {actual!r}")


def expect_int(value, what: str) -> None:
    # bool is a subclass of int, and 50.0 is not an int: both are contract violations.
    if type(value) is not int:
        raise Failure(f"{what}: expected a JSON integer, got {value!r} ({type(value).__name__})")


def expect_str(value, what: str) -> None:
    if not isinstance(value, str):
        raise Failure(f"{what}: expected a string, got {value!r} ({type(value).__name__})")


def expect_date(value, what: str, required: bool = True) -> None:
    expect_str(value, what)
    if value == "" and not required:
        return
    expect(bool(RFC3339_UTC.match(value)), f"{what}: not an RFC 3339 UTC date: {value!r}")


def need(state: dict, key: str):
    """A value an earlier check produced; fails this check when that one did not."""
    if state.get(key) is None:
        raise Failure(f"needs {key!r} from an earlier check, which did not produce it")
    return state[key]


class Runner:
    def __init__(self) -> None:
        self.passed = 0
        self.failed = 0

    @contextmanager
    def check(self, name: str):
        try:
            yield
        except Failure as e:
            self.fail(name, str(e))
        except VendelAPIError as e:
            self.fail(name, f"unexpected API error {e.status_code} {e.message!r} {e.detail!r}")
        except Exception as e:  # noqa: BLE001 - any crash is a failed check, not a stop
            here = [f for f in traceback.extract_tb(e.__traceback__) if f.filename == __file__]
            line = f" (line {here[-1].lineno})" if here else ""
            self.fail(name, f"{type(e).__name__}: {e}{line}")
        else:
            self.passed += 1
            print(f"ok   {name}", flush=True)

    def fail(self, name: str, detail: str) -> None:
        self.failed += 1
        detail = " ".join(detail.split())
        print(f"FAIL {name}: {detail}", flush=True)


def check_message(m, what: str) -> None:
    """Field types of a MessageStatus the SDK built (it copies JSON values as they are)."""
    for field in MESSAGE_STR_FIELDS:
        expect_str(getattr(m, field), f"{what}.{field}")
    expect(m.status in KNOWN_STATUSES, f"{what}.status: unknown status {m.status!r}")
    expect_date(m.created, f"{what}.created")
    expect_date(m.updated, f"{what}.updated")
    expect_date(m.sent_at, f"{what}.sent_at", required=False)
    expect_date(m.delivered_at, f"{what}.delivered_at", required=False)


def check_page(p, what: str, page: int, per_page: int) -> None:
    expect_int(p.page, f"{what}.page")
    expect_int(p.per_page, f"{what}.per_page")
    expect_int(p.total_items, f"{what}.total_items")
    expect_int(p.total_pages, f"{what}.total_pages")
    expect_eq(p.page, page, f"{what}.page")
    expect_eq(p.per_page, per_page, f"{what}.per_page")
    expect(isinstance(p.items, list), f"{what}.items is not a list")
    expect(p.total_items >= 0, f"{what}.total_items is negative")
    pages = math.ceil(p.total_items / per_page)
    expect(
        p.total_pages == pages or (p.total_items == 0 and p.total_pages in (0, 1)),
        f"{what}.total_pages {p.total_pages} does not fit total_items {p.total_items}"
        f" at per_page {per_page}",
    )
    if page == 1:
        expect_eq(len(p.items), min(per_page, p.total_items), f"{what}: items on page 1")


def check_send(r, what: str, count: int) -> None:
    expect_str(r.batch_id, f"{what}.batch_id")
    expect_int(r.recipients_count, f"{what}.recipients_count")
    expect_eq(r.recipients_count, count, f"{what}.recipients_count")
    expect_eq(r.status, "accepted", f"{what}.status")
    expect(isinstance(r.message_ids, list), f"{what}.message_ids is not a list")
    expect_eq(len(r.message_ids), count, f"{what}: number of message_ids")
    for i, mid in enumerate(r.message_ids):
        expect_str(mid, f"{what}.message_ids[{i}]")
        expect(mid != "", f"{what}.message_ids[{i}] is empty")
    expect_eq(len(set(r.message_ids)), count, f"{what}: distinct message_ids")


def expect_api_error(call, status: int, message: str) -> None:
    """`call` must raise the SDK's VendelAPIError with this status, message and envelope."""
    try:
        result = call()
    except VendelQuotaError as e:
        raise Failure(f"got a quota error (429) instead of {status}: {e.detail!r}") from None
    except VendelAPIError as e:
        expect_eq(e.status_code, status, "status code")
        expect_eq(e.message, message, "message")
        expect_eq(e.detail.get("status"), status, "envelope 'status'")
        expect_eq(e.detail.get("data"), {}, "envelope 'data'")
        return
    raise Failure(f"expected a {status} error, the call succeeded with {result!r}")


def ids_of(items) -> list[str]:
    return [m.id for m in items]


def main() -> int:
    run = Runner()
    url = os.environ.get("ENDER_URL", "").rstrip("/")
    api_key = os.environ.get("ENDER_API_KEY", "")
    device_id = os.environ.get("ENDER_DEVICE_ID", "")
    device_key = os.environ.get("ENDER_DEVICE_KEY", "")
    wait = float(os.environ.get("ENDER_CHECK_WAIT", "20"))

    missing = [
        n
        for n, v in (("ENDER_URL", url), ("ENDER_API_KEY", api_key), ("ENDER_DEVICE_ID", device_id))
        if not v
    ]
    if missing:
        run.fail("configuration", f"set {', '.join(missing)}")
        print(f"{run.passed} passed, {run.failed} failed")
        return 1

    print(f"# vendel-sdk {metadata.version('vendel-sdk')} against {url}")
    client = VendelClient(url, api_key)
    token = f"{datetime.now(timezone.utc):%Y%m%dT%H%M%S}-{secrets.token_hex(4)}"
    body_single = f"ender compat single {token}"
    body_batch = f"ender compat batch {token}"
    body_device = f"ender compat device {token}"
    s: dict = {}  # values later checks need

    # ------------------------------------------------------------------ quota
    with run.check("get_quota: fields and integer types"):
        q = client.get_quota()
        if type(q.sms_sent_this_month) is int:
            s["sms_before"] = q.sms_sent_this_month
        expect_str(q.plan, "plan")
        expect(q.plan != "", "plan is empty")
        for field in ("sms_sent_this_month", "max_sms_per_month", "devices_registered", "max_devices"):
            expect_int(getattr(q, field), field)
            expect(getattr(q, field) >= 0, f"{field} is negative")
        expect_str(q.reset_date, "reset_date")
        expect(
            q.reset_date == "" or RESET_DATE.match(q.reset_date),
            f"reset_date is not YYYY-MM-DD or empty: {q.reset_date!r}",
        )
        expect(q.devices_registered >= 1, f"devices_registered {q.devices_registered}, the user has a device")

    with run.check("GET /api/plans/quota: keys the SDK does not expose are integers"):
        raw = requests.get(f"{url}/api/plans/quota", headers={"X-API-Key": api_key}, timeout=HTTP_TIMEOUT)
        expect_eq(raw.status_code, 200, "HTTP status")
        data = raw.json()
        for field in ("scheduled_sms_count", "max_scheduled_sms", "integrations_count", "max_integrations"):
            expect(field in data, f"missing {field!r}")
            expect_int(data[field], field)

    # ------------------------------------------------------------------ devices
    with run.check("list_devices: the device is listed with its fields"):
        p = client.list_devices()
        check_page(p, "devices", 1, 50)
        for i, d in enumerate(p.items):
            for field in DEVICE_STR_FIELDS:
                expect_str(getattr(d, field), f"items[{i}].{field}")
        mine = [d for d in p.items if d.id == device_id]
        expect_eq(len(mine), 1, f"devices with id {device_id!r}")
        d = mine[0]
        expect(d.device_type in DEVICE_TYPES, f"device_type {d.device_type!r}")
        expect_date(d.created, "created")
        expect_date(d.updated, "updated")
        s["device_type"] = d.device_type
        s["device_count"] = p.total_items

    with run.check("list_devices(device_type=...): filter keeps the device"):
        p = client.list_devices(page=1, per_page=200, device_type=need(s, "device_type"))
        check_page(p, "devices", 1, 200)
        expect(device_id in [d.id for d in p.items], "device missing under its own type")
        expect(all(d.device_type == s["device_type"] for d in p.items), "another type leaked in")
        expect(p.total_items <= need(s, "device_count"), "filtered total exceeds the unfiltered one")

    with run.check("GET /api/devices: no key or token in any item"):
        raw = requests.get(f"{url}/api/devices", headers={"X-API-Key": api_key}, timeout=HTTP_TIMEOUT)
        expect_eq(raw.status_code, 200, "HTTP status")
        for item in raw.json()["items"]:
            for k, v in item.items():
                expect(not (isinstance(v, str) and v.startswith(("dk_", "vk_", "ek_"))), f"secret in {k!r}")
                expect(k not in SECRET_FIELDS, f"item has a {k!r} field")

    # ------------------------------------------------------------------ send
    with run.check("send_sms one recipient: batch_id is empty, one message id"):
        r = client.send_sms([NUMBER_A], body_single)
        check_send(r, "send", 1)
        expect_eq(r.batch_id, "", "batch_id")
        s["single_id"] = r.message_ids[0]

    with run.check("send_sms with a duplicate recipient: two messages in a batch"):
        r = client.send_sms([NUMBER_A, NUMBER_B, NUMBER_A], body_batch)
        check_send(r, "send", 2)
        expect(r.batch_id != "", "batch_id is empty")
        s["batch_id"] = r.batch_id
        s["batch_ids"] = list(r.message_ids)

    with run.check("send_sms with device_id"):
        r = client.send_sms([NUMBER_C], body_device, device_id=device_id)
        check_send(r, "send", 1)
        expect_eq(r.batch_id, "", "batch_id")
        s["device_msg_id"] = r.message_ids[0]

    with run.check("get_quota: the four messages were counted"):
        q = client.get_quota()
        expect_int(q.sms_sent_this_month, "sms_sent_this_month")
        expect_eq(q.sms_sent_this_month, need(s, "sms_before") + 4, "sms_sent_this_month")

    # ------------------------------------------------------------------ status
    with run.check("get_message_status: single message"):
        mid = need(s, "single_id")
        m = client.get_message_status(mid)
        check_message(m, "status")
        expect_eq(m.id, mid, "id")
        expect_eq(m.recipient, NUMBER_A, "recipient")
        expect_eq(m.batch_id, "", "batch_id")
        expect(m.message_type in ("", "outgoing"), f"message_type {m.message_type!r}")
        expect(m.body in ("", body_single), f"body {m.body!r}")
        s["single_created"] = m.created

    with run.check("get_message_status: batch messages"):
        by_number = {}
        for mid in need(s, "batch_ids"):
            m = client.get_message_status(mid)
            check_message(m, "status")
            expect_eq(m.id, mid, "id")
            expect_eq(m.batch_id, s["batch_id"], "batch_id")
            by_number[m.recipient] = mid
            s["batch_status"] = m.status
        expect_eq(sorted(by_number), [NUMBER_A, NUMBER_B], "recipients")
        s["batch_by_number"] = by_number

    with run.check("send_sms: message_ids follow the first-seen recipient order"):
        by_number = need(s, "batch_by_number")
        expect_eq(s["batch_ids"], [by_number[NUMBER_A], by_number[NUMBER_B]], "message_ids")

    with run.check("get_message_status: message sent with device_id"):
        mid = need(s, "device_msg_id")
        m = client.get_message_status(mid)
        check_message(m, "status")
        expect_eq(m.recipient, NUMBER_C, "recipient")
        expect_eq(m.device_id, device_id, "device_id")

    with run.check("get_batch_status: two messages, integer counts"):
        bid = need(s, "batch_id")
        b = client.get_batch_status(bid)
        expect_eq(b.batch_id, bid, "batch_id")
        expect_int(b.total, "total")
        expect_eq(b.total, 2, "total")
        expect(isinstance(b.status_counts, dict), "status_counts is not an object")
        for k, v in b.status_counts.items():
            expect(k in KNOWN_STATUSES, f"status_counts: unknown status {k!r}")
            expect_int(v, f"status_counts[{k!r}]")
        expect_eq(sum(b.status_counts.values()), 2, "sum of status_counts")
        expect_eq(len(b.messages), 2, "number of messages")
        expect_eq(sorted(ids_of(b.messages)), sorted(s["batch_ids"]), "message ids")
        expect_eq(sorted(m.recipient for m in b.messages), [NUMBER_A, NUMBER_B], "recipients")
        for i, m in enumerate(b.messages):
            for field in ("id", "recipient", "status", "error_message", "created", "updated"):
                expect_str(getattr(m, field), f"messages[{i}].{field}")
            expect(m.status in KNOWN_STATUSES, f"messages[{i}].status {m.status!r}")
            expect_date(m.created, f"messages[{i}].created")

    # ------------------------------------------------------------------ list
    with run.check("list_messages: no filter"):
        p = client.list_messages(page=1, per_page=200)
        check_page(p, "messages", 1, 200)
        for i, m in enumerate(p.items):
            check_message(m, f"items[{i}]")
        listed = set(ids_of(p.items))
        ours = [need(s, "single_id"), *need(s, "batch_ids"), need(s, "device_msg_id")]
        expect(all(mid in listed for mid in ours), "a message sent above is not listed")
        s["total"] = p.total_items
        expect(p.total_items >= 4, f"total_items {p.total_items} < 4")

    with run.check("list_messages: default page size"):
        p = client.list_messages()
        check_page(p, "messages", 1, 50)
        expect_eq(p.total_items, need(s, "total"), "total_items")

    with run.check("list_messages(batch_id=...): exactly the batch"):
        p = client.list_messages(batch_id=need(s, "batch_id"), per_page=200)
        check_page(p, "messages", 1, 200)
        expect_eq(p.total_items, 2, "total_items")
        expect_eq(sorted(ids_of(p.items)), sorted(s["batch_ids"]), "message ids")
        expect(p.total_items <= need(s, "total"), "filtered total exceeds unfiltered")

    with run.check("list_messages(recipient=...): exact number"):
        p = client.list_messages(recipient=NUMBER_B, per_page=200)
        check_page(p, "messages", 1, 200)
        expect(all(m.recipient == NUMBER_B for m in p.items), "another recipient leaked in")
        expect(need(s, "batch_by_number")[NUMBER_B] in ids_of(p.items), "batch message to that number missing")
        expect(1 <= p.total_items <= need(s, "total"), f"total_items {p.total_items}")
        p2 = client.list_messages(recipient=NUMBER_A, per_page=200)
        check_page(p2, "messages", 1, 200)
        expect(all(m.recipient == NUMBER_A for m in p2.items), "another recipient leaked in")
        expect(2 <= p2.total_items <= s["total"], f"total_items {p2.total_items} for {NUMBER_A}")

    with run.check("list_messages(status=...): only that status"):
        # A status may move on between two requests (dispatch runs alongside), so read it
        # again and retry a few times before calling an empty answer wrong.
        status = need(s, "batch_status")
        for _ in range(4):
            p = client.list_messages(status=status, per_page=200)
            check_page(p, "messages", 1, 200)
            expect(all(m.status == status for m in p.items), f"another status leaked into {status!r}")
            expect(p.total_items <= need(s, "total"), "filtered total exceeds unfiltered")
            if p.total_items >= 1:
                break
            status = client.get_message_status(s["batch_ids"][0]).status
        else:
            raise Failure(f"no message with status {status!r}, though one was just read")

    with run.check("list_messages(device_id=...): the pinned message is there"):
        p = client.list_messages(device_id=device_id, per_page=200)
        check_page(p, "messages", 1, 200)
        expect(all(m.device_id == device_id for m in p.items), "another device leaked in")
        expect(need(s, "device_msg_id") in ids_of(p.items), "message sent with device_id missing")
        expect(p.total_items <= need(s, "total"), "filtered total exceeds unfiltered")

    with run.check("list_messages(from_date, to_date): bounds include this run"):
        later = (datetime.now(timezone.utc) + timedelta(days=1)).strftime("%Y-%m-%dT%H:%M:%S.000Z")
        p = client.list_messages(from_date=need(s, "single_created"), to_date=later, per_page=200)
        check_page(p, "messages", 1, 200)
        ours = [s["single_id"], *need(s, "batch_ids"), need(s, "device_msg_id")]
        expect(all(mid in ids_of(p.items) for mid in ours), "a message of this run is outside")
        expect(4 <= p.total_items <= need(s, "total"), f"total_items {p.total_items}")
        p = client.list_messages(from_date=later, per_page=200)
        expect_eq(p.total_items, 0, "total_items with from = tomorrow")

    # ------------------------------------------------------------------ errors
    with run.check("send_sms invalid number: 400"):
        expect_api_error(
            lambda: client.send_sms(["12345"], "hello"),
            400,
            "Invalid phone number: 12345. Must be E.164 format (e.g. +1234567890).",
        )

    with run.check("send_sms empty body: 400"):
        expect_api_error(lambda: client.send_sms([NUMBER_A], ""), 400, "Message body required.")

    with run.check("send_sms no recipient: 400"):
        expect_api_error(lambda: client.send_sms([], "hello"), 400, "At least one recipient required.")

    with run.check("send_sms body over 1600 characters: 400"):
        expect_api_error(
            lambda: client.send_sms([NUMBER_A], "x" * 1601),
            400,
            "Message body exceeds 1600 character limit.",
        )

    with run.check("send_sms unknown device: 400"):
        expect_api_error(
            lambda: client.send_sms([NUMBER_A], "hello", device_id="doesnotexist"),
            400,
            "Device not found: doesnotexist.",
        )

    with run.check("get_quota: rejected sends were not counted"):
        q = client.get_quota()
        expect_eq(q.sms_sent_this_month, need(s, "sms_before") + 4, "sms_sent_this_month")

    with run.check("get_message_status unknown id: 404"):
        expect_api_error(lambda: client.get_message_status("doesnotexist"), 404, "Message not found.")

    with run.check("get_batch_status unknown id: 404"):
        expect_api_error(lambda: client.get_batch_status("doesnotexist"), 404, "Batch not found.")

    with run.check("list_messages bad from: 400"):
        expect_api_error(
            lambda: client.list_messages(from_date="yesterday"),
            400,
            "Invalid 'from' timestamp; expected ISO8601 (RFC3339).",
        )

    with run.check("bad integration key: 401"):
        bad = VendelClient(url, "vk_" + "0" * 32)
        expect_api_error(bad.get_quota, 401, "Authentication required.")
        expect_api_error(lambda: bad.send_sms([NUMBER_A], "hello"), 401, "Authentication required.")

    # ------------------------------------------------------------------ device
    if not device_key:
        print("# ENDER_DEVICE_KEY not set: device API checks skipped")
    else:
        # What each message sent above should look like on the phone.
        bodies = {}
        if s.get("single_id"):
            bodies[s["single_id"]] = (NUMBER_A, body_single)
        for number, mid in (s.get("batch_by_number") or {}).items():
            bodies[mid] = (number, body_batch)
        if s.get("device_msg_id"):
            bodies[s["device_msg_id"]] = (NUMBER_C, body_device)
        device_checks(run, client, url, device_id, device_key, wait, s, token, bodies)

    print(f"{run.passed} passed, {run.failed} failed")
    return 1 if run.failed else 0


def device_checks(run, client, url, device_id, device_key, wait, s, token, bodies) -> None:
    """Act as the Vendel Android app: claim, report, receive."""
    dev = requests.Session()
    dev.headers.update({"X-API-Key": device_key})

    def post(path: str, payload: dict) -> requests.Response:
        return dev.post(f"{url}{path}", json=payload, timeout=HTTP_TIMEOUT)

    with run.check("device: bad key on /api/sms/pending is 401"):
        r = requests.get(f"{url}/api/sms/pending", headers={"X-API-Key": "dk_" + "0" * 32}, timeout=HTTP_TIMEOUT)
        expect_eq(r.status_code, 401, "HTTP status")
        data = r.json()
        expect_eq(data.get("message"), "Invalid API key.", "message")
        expect_eq(data.get("status"), 401, "envelope 'status'")

    with run.check("device: GET /api/sms/pending hands out the messages sent above"):
        # Pinned messages must come to this device; the others too when it is the user's
        # only device. Dispatch may run in a worker, so poll for a while.
        pinned = s.get("device_msg_id")
        expected = set(bodies) if s.get("device_count") == 1 else {pinned} - {None}
        expect(bool(expected), "no message was sent above")
        seen: dict[str, dict] = {}
        deadline = time.monotonic() + wait
        while True:
            r = dev.get(f"{url}/api/sms/pending", timeout=HTTP_TIMEOUT)
            expect_eq(r.status_code, 200, "HTTP status")
            data = r.json()
            expect_eq(data.get("device_id"), device_id, "device_id")
            expect(isinstance(data.get("messages"), list), "messages is not a list")
            for i, m in enumerate(data["messages"]):
                for field in ("message_id", "recipient", "body"):
                    expect_str(m.get(field), f"messages[{i}].{field}")
                seen[m["message_id"]] = m
            if expected <= seen.keys() or time.monotonic() > deadline:
                break
            time.sleep(0.5)
        missing = sorted(expected - seen.keys())
        expect(not missing, f"not handed out within {wait:g}s: {missing}")
        for mid in expected:
            number, body = bodies[mid]
            expect_eq(seen[mid]["recipient"], number, f"recipient of {mid}")
            expect_eq(seen[mid]["body"], body, f"body of {mid}")
        s["claimed"] = True

    def report(mid: str, status: str) -> dict:
        r = post("/api/sms/report", {"message_id": mid, "status": status})
        expect_eq(r.status_code, 200, f"HTTP status of report {status!r}")
        data = r.json()
        expect_eq(data.get("success"), True, "success")
        expect_eq(data.get("message_id"), mid, "message_id")
        expect_str(data.get("status"), "status")
        return data

    with run.check("device: report sent, then delivered"):
        need(s, "claimed")
        mid = need(s, "device_msg_id")
        expect_eq(report(mid, "sent")["status"], "sent", "status")
        expect_eq(report(mid, "delivered")["status"], "delivered", "status")
        s["delivered_id"] = mid

    with run.check("device: SDK status shows delivered"):
        m = client.get_message_status(need(s, "delivered_id"))
        check_message(m, "status")
        expect_eq(m.status, "delivered", "status")
        expect_eq(m.device_id, device_id, "device_id")

    with run.check("device: a late 'sent' answers 200 and changes nothing"):
        mid = need(s, "delivered_id")
        report(mid, "sent")
        expect_eq(client.get_message_status(mid).status, "delivered", "status after a late 'sent'")
        report(mid, "delivered")  # Android reports once per part of a multipart SMS
        expect_eq(client.get_message_status(mid).status, "delivered", "status after a second 'delivered'")

    with run.check("list_messages(status='delivered'): has the delivered message"):
        p = client.list_messages(status="delivered", per_page=200)
        check_page(p, "messages", 1, 200)
        expect(all(m.status == "delivered" for m in p.items), "another status leaked in")
        expect(need(s, "delivered_id") in ids_of(p.items), "delivered message missing")

    with run.check("device: report with an invalid status is 400"):
        mid = need(s, "delivered_id")
        r = post("/api/sms/report", {"message_id": mid, "status": "bogus"})
        expect_eq(r.status_code, 400, "HTTP status")
        expect_eq(r.json().get("message"), "Invalid status: must be sent, delivered, or failed.", "message")

    with run.check("device: report for an unknown message is 404"):
        r = post("/api/sms/report", {"message_id": "doesnotexist", "status": "sent"})
        expect_eq(r.status_code, 404, "HTTP status")
        expect_eq(r.json().get("message"), "Message not found: doesnotexist.", "message")

    incoming_body = f"ender compat incoming {token}"
    received_at = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.000Z")
    incoming = {"from_number": INCOMING_FROM, "body": incoming_body, "timestamp": received_at}

    with run.check("device: POST /api/sms/incoming"):
        r = post("/api/sms/incoming", incoming)
        expect_eq(r.status_code, 200, "HTTP status")
        data = r.json()
        expect_eq(data.get("success"), True, "success")
        expect_str(data.get("message_id"), "message_id")
        expect(data["message_id"] != "", "message_id is empty")
        s["incoming_id"] = data["message_id"]

    with run.check("device: the same incoming SMS again is the same message"):
        first = need(s, "incoming_id")
        r = post("/api/sms/incoming", incoming)
        expect_eq(r.status_code, 200, "HTTP status")
        expect_eq(r.json().get("message_id"), first, "message_id of the repeat")

    with run.check("list_messages: incoming message is listed as received"):
        mid = need(s, "incoming_id")
        p = client.list_messages(page=1, per_page=200)
        check_page(p, "messages", 1, 200)
        found = [m for m in p.items if m.id == mid]
        expect_eq(len(found), 1, f"items with id {mid!r}")
        m = found[0]
        check_message(m, "incoming")
        expect_eq(m.message_type, "incoming", "message_type")
        expect_eq(m.status, "received", "status")
        expect_eq(m.from_number, INCOMING_FROM, "from_number")
        expect_eq(m.body, incoming_body, "body")
        p = client.list_messages(status="received", per_page=200)
        expect(mid in ids_of(p.items), "missing under status 'received'")
        expect(all(m.message_type == "incoming" for m in p.items), "an outgoing message is 'received'")


if __name__ == "__main__":
    sys.exit(main())
