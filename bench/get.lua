-- wrk script: authenticated GET of the URL's path. Needs MTFU_TOKEN in the environment.
local token = assert(os.getenv("MTFU_TOKEN"), "MTFU_TOKEN not set")
wrk.method = "GET"
wrk.headers["Authorization"] = "Bearer " .. token
