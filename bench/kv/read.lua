-- KV v2 read of one seeded secret.
dofile(os.getenv("BENCH_DIR") .. "/common.lua")
wrk.method = "GET"
