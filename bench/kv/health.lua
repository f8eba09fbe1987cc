-- sys/health baseline (no token needed).
dofile(os.getenv("BENCH_DIR") .. "/common.lua")
