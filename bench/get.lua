-- GETs the paths of BENCH_PATHS (one per line) in turn.
-- Thread i of n takes lines i, i+n, i+2n, ... so consecutive requests hit different pages.
local counter = 0

function setup(thread)
  thread:set("id", counter)
  counter = counter + 1
end

function init(args)
  local total = tonumber(os.getenv("BENCH_THREADS"))
  paths = {}
  local n = 0
  for line in io.lines(os.getenv("BENCH_PATHS")) do
    if n % total == id then
      table.insert(paths, line)
    end
    n = n + 1
  end
  index = 0
end

function request()
  index = index + 1
  if index > #paths then index = 1 end
  return wrk.format("GET", paths[index])
end

function done(summary, latency, requests)
  io.write(string.format(
    "RESULT requests=%d duration_us=%d status_errors=%d socket_errors=%d p50_us=%d p99_us=%d\n",
    summary.requests, summary.duration, summary.errors.status,
    summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout,
    latency:percentile(50), latency:percentile(99)))
end
