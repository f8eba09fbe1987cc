-- KV v2 durable writes spread over 1,000 keys (each write is a new version).
dofile(os.getenv("BENCH_DIR") .. "/common.lua")
wrk.headers["Content-Type"] = "application/json"
local n = 0
local body = '{"data":{"user":"bench","password":"' .. string.rep("x", 32) .. '"}}'
request = function()
  n = n + 1
  return wrk.format("POST", "/v1/secret/data/bench/w" .. (n % 1000), nil, body)
end
