-- wrk script used for every load run of bench/run.
--
-- The request is set once from the environment, so wrk keeps sending one
-- prebuilt request (no per-request Lua): BENCH_METHOD, BENCH_BODY and
-- BENCH_HEADERS ("Name: value" lines). done() prints one machine-readable
-- line that bench/run parses instead of wrk's human summary.

wrk.method = os.getenv("BENCH_METHOD") or "GET"
local body = os.getenv("BENCH_BODY")
if body and body ~= "" then
   wrk.body = body
end
local headers = os.getenv("BENCH_HEADERS")
if headers then
   for line in headers:gmatch("[^\n]+") do
      local name, value = line:match("^([^:]+):%s*(.*)$")
      if name then
         wrk.headers[name] = value
      end
   end
end

function done(summary, latency, requests)
   local e = summary.errors
   io.write(string.format(
      "BENCH-RESULT requests=%d duration_us=%d bytes=%d p50_us=%d p90_us=%d p99_us=%d max_us=%d " ..
      "err_connect=%d err_read=%d err_write=%d err_status=%d err_timeout=%d\n",
      summary.requests, summary.duration, summary.bytes,
      latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max,
      e.connect, e.read, e.write, e.status, e.timeout))
end
