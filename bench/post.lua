-- wrk script: POST the file named by $WRK_BODY_FILE as JSON to the URL on wrk's command line,
-- and print one machine-readable summary line (prefix WRK_JSON) when the run is done.
--
-- Streaming ($WRK_STREAM_MODULES set): the file is a template holding the placeholders
-- @MODULE@ and @TIMESTAMP@; request k goes to module k mod N (named $WRK_STREAM_PREFIX
-- followed by the number, 4 digits), stamped $WRK_STREAM_BASE + 10 s x (k div N), so every
-- module posts one reading every 10 s of its own clock and no (module, timestamp) repeats.
-- The benchmark moves the base past each run's last round (bench/workload.py).
local file = assert(io.open(os.getenv("WRK_BODY_FILE"), "rb"))
local body = file:read("*a")
file:close()
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"

local modules = tonumber(os.getenv("WRK_STREAM_MODULES") or "")
if modules then
  local base = tonumber(os.getenv("WRK_STREAM_BASE"))
  local step = tonumber(os.getenv("WRK_STREAM_STEP_S") or "10")
  local prefix = os.getenv("WRK_STREAM_PREFIX") or "S-"
  local module_at = assert(body:find("@MODULE@", 1, true))
  local time_at = assert(body:find("@TIMESTAMP@", 1, true))
  assert(module_at < time_at, "the template names the module before the timestamp")
  local head = body:sub(1, module_at - 1)
  local middle = body:sub(module_at + 8, time_at - 1)
  local tail = body:sub(time_at + 11)
  local sent = 0
  function request()
    local module = sent % modules
    local stamp = base + step * math.floor(sent / modules)
    sent = sent + 1
    local text = head .. prefix .. string.format("%04d", module) .. middle
      .. os.date("!%Y-%m-%dT%H:%M:%SZ", stamp) .. tail
    return wrk.format(nil, nil, nil, text)
  end
else
  wrk.body = body
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'WRK_JSON {"requests": %d, "duration_us": %d, "bytes": %d, "connect_errors": %d, ' ..
    '"read_errors": %d, "write_errors": %d, "status_errors": %d, "timeouts": %d, ' ..
    '"p50_us": %d, "p90_us": %d, "p99_us": %d, "max_us": %d, "mean_us": %.1f}\n',
    summary.requests, summary.duration, summary.bytes, e.connect, e.read, e.write, e.status,
    e.timeout, latency:percentile(50), latency:percentile(90), latency:percentile(99),
    latency.max, latency.mean))
end
