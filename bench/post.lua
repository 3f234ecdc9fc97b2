-- Replays pre-signed requests: each line of BENCH_REQUESTS is "<sign>\t<body>".
-- Thread i of n takes lines i, i+n, i+2n, ... so no order_id is sent twice.
local threads = {}
local counter = 0

function setup(thread)
  thread:set("id", counter)
  counter = counter + 1
  table.insert(threads, thread)
end

function init(args)
  local total = tonumber(os.getenv("BENCH_THREADS"))
  local merchant = os.getenv("BENCH_MERCHANT")
  signs, bodies = {}, {}
  local n = 0
  for line in io.lines(os.getenv("BENCH_REQUESTS")) do
    if n % total == id then
      local tab = line:find("\t", 1, true)
      table.insert(signs, line:sub(1, tab - 1))
      table.insert(bodies, line:sub(tab + 1))
    end
    n = n + 1
  end
  index = 0
  headers = {["Content-Type"] = "application/json", ["merchant"] = merchant}
  path = os.getenv("BENCH_PATH") or "/v1/payment"
  bearer = os.getenv("BENCH_BEARER") or ""
  if bearer ~= "" then headers["Authorization"] = "Bearer " .. bearer end
end

function request()
  index = index + 1
  if index > #bodies then index = 1 end
  if bearer == "" then headers["sign"] = signs[index] end
  return wrk.format("POST", path, headers, bodies[index])
end

function done(summary, latency, requests)
  io.write(string.format(
    "RESULT requests=%d duration_us=%d status_errors=%d socket_errors=%d p50_us=%d p99_us=%d\n",
    summary.requests, summary.duration, summary.errors.status,
    summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout,
    latency:percentile(50), latency:percentile(99)))
end
