-- Transit encrypt of a 1 KiB payload (random bytes, base64) with the key
-- "bench"; the same body on every request, a fresh nonce on each answer.
local token = os.getenv("BENCH_TOKEN")
wrk.method = "POST"
wrk.headers["X-Vault-Token"] = token
wrk.headers["Content-Type"] = "application/json"
wrk.body = '{"plaintext":"' .. os.getenv("BENCH_PLAINTEXT") .. '"}'

function done(summary, latency, requests)
  local secs = summary.duration / 1e6
  local bad = summary.errors.status + summary.errors.connect + summary.errors.read
            + summary.errors.write + summary.errors.timeout
  io.write(string.format("RESULT rps=%.1f p50_us=%d p99_us=%d requests=%d errors=%d\n",
    summary.requests / secs, latency:percentile(50), latency:percentile(99),
    summary.requests, bad))
end
