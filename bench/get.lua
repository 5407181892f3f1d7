-- wrk script: authenticated GET of the URL's path. Needs BENCH_TOKEN in the environment.
local token = assert(os.getenv("BENCH_TOKEN"), "BENCH_TOKEN not set")
wrk.method = "GET"
wrk.headers["Authorization"] = "Bearer " .. token
