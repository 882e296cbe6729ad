-- Cycles through the requests listed in $BENCH_REQUESTS (one a line: METHOD<TAB>PATH[<TAB>JSON body]), each
-- thread from its own offset; $BENCH_TOKEN, if set, goes out as a bearer token; $BENCH_DELAY_MS, if above 0,
-- waits that long before each request of a connection. done() prints one JSON line.
local requests = {}
local index = 0
local counter = 1

local function split(line)
  local fields = {}
  for field in string.gmatch(line, "([^\t]+)") do fields[#fields + 1] = field end
  return fields
end

function setup(thread)
  thread:set("thread_index", counter)
  counter = counter + 1
end

function init(args)
  local headers = { ["Content-Type"] = "application/json", ["Accept"] = "application/json" }
  local token = os.getenv("BENCH_TOKEN")
  if token and token ~= "" then headers["Authorization"] = "Bearer " .. token end
  for line in io.lines(os.getenv("BENCH_REQUESTS")) do
    local f = split(line)
    if #f >= 2 then requests[#requests + 1] = wrk.format(f[1], f[2], headers, f[3]) end
  end
  index = ((thread_index or 1) * 7919) % #requests
end

local delay_ms = tonumber(os.getenv("BENCH_DELAY_MS") or "0") or 0
if delay_ms > 0 then
  function delay() return delay_ms end
end

function request()
  index = index % #requests + 1
  return requests[index]
end

function done(summary, latency, _)
  local e = summary.errors
  io.write(string.format(
    '{"requests":%d,"duration_us":%d,"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d,' ..
    '"p50_us":%d,"p90_us":%d,"p95_us":%d,"p99_us":%d,"max_us":%d,"mean_us":%.1f}\n',
    summary.requests, summary.duration, e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(95), latency:percentile(99),
    latency.max, latency.mean))
end
