-- wrk script: POST /api/sms/send, one recipient and a distinct body per request, with the
-- integration key from ENDER_API_KEY. Counts HTTP 200 answers (accepted messages) per
-- thread and prints one WRK_RESULT line at the end.

local threads = {}
local next_id = 0

function setup(thread)
  thread:set("tid", next_id)
  next_id = next_id + 1
  table.insert(threads, thread)
end

function init(args)
  ok = 0
  non200 = 0
  n = 0
  wrk.method = "POST"
  wrk.headers["Content-Type"] = "application/json"
  wrk.headers["X-API-Key"] = os.getenv("ENDER_API_KEY")
end

function request()
  n = n + 1
  local body = string.format(
    '{"recipients":["+1555%07d"],"body":"Bench message %d-%d: your code is %06d"}',
    (tid * 1000003 + n) % 10000000, tid, n, n % 1000000)
  return wrk.format(nil, "/api/sms/send", nil, body)
end

function response(status, headers, body)
  if status == 200 then
    ok = ok + 1
  else
    non200 = non200 + 1
    if non200 <= 3 then
      io.stderr:write(string.format("non-200 answer %d: %s\n", status, body))
    end
  end
end

function done(summary, latency, requests)
  local total_ok, total_bad = 0, 0
  for _, t in ipairs(threads) do
    total_ok = total_ok + t:get("ok")
    total_bad = total_bad + t:get("non200")
  end
  local e = summary.errors
  io.write(string.format(
    "WRK_RESULT ok=%d non200=%d duration_s=%.3f p50_ms=%.2f p90_ms=%.2f p99_ms=%.2f max_ms=%.2f " ..
    "err_connect=%d err_read=%d err_write=%d err_timeout=%d\n",
    total_ok, total_bad, summary.duration / 1e6,
    latency:percentile(50) / 1000, latency:percentile(90) / 1000, latency:percentile(99) / 1000,
    latency.max / 1000, e.connect, e.read, e.write, e.timeout))
end
