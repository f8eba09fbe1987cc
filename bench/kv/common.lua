-- Shared by the wrk scripts: token header and a machine-readable summary line.
local token = os.getenv("COFFER_BENCH_TOKEN")
if token then
  wrk.headers["X-Vault-Token"] = token
end

function done(summary, latency, requests)
  local secs = summary.duration / 1e6
  local bad = summary.errors.status + summary.errors.connect + summary.errors.read
            + summary.errors.write + summary.errors.timeout
  io.write(string.format("RESULT rps=%.1f p50_us=%d p99_us=%d requests=%d errors=%d\n",
    summary.requests / secs, latency:percentile(50), latency:percentile(99),
    summary.requests, bad))
end
