-- wrk script: POST /api/upload, a multipart form with a 10 KiB file.
-- Every request gets a distinct file name (run id + thread id + counter), so uploads create new
-- files instead of replacing one. Needs BENCH_TOKEN (an access token) in the environment;
-- BENCH_RUN_ID and BENCH_UPLOAD_RESOURCE are optional.
local token = assert(os.getenv("BENCH_TOKEN"), "BENCH_TOKEN not set")
local run_id = os.getenv("BENCH_RUN_ID") or tostring(os.time())
local resource = os.getenv("BENCH_UPLOAD_RESOURCE") or "bench"
local boundary = "----mtfubench0123456789abcdef"

local threads = {}
local next_tid = 0

function setup(thread)
  thread:set("tid", next_tid)
  next_tid = next_tid + 1
  table.insert(threads, thread)
end

local payload
local headers
local counter = 0

function init(args)
  -- 10 KiB of printable pseudo-random bytes (no CR/LF, so the boundary can't collide).
  math.randomseed(os.time() + (tid or 0))
  local chunk = {}
  for i = 1, 10240 do
    chunk[i] = string.char(math.random(33, 126))
  end
  payload = table.concat(chunk)
  headers = {
    ["Authorization"] = "Bearer " .. token,
    ["Content-Type"] = "multipart/form-data; boundary=" .. boundary,
  }
end

local function field(name, value)
  return "--" .. boundary .. "\r\n" ..
    'Content-Disposition: form-data; name="' .. name .. '"\r\n\r\n' ..
    value .. "\r\n"
end

function request()
  counter = counter + 1
  local fname = string.format("bench-%s-t%d-%d.bin", run_id, tid or 0, counter)
  local body = field("resource", resource) ..
    field("resource_id", "1") ..
    "--" .. boundary .. "\r\n" ..
    'Content-Disposition: form-data; name="file"; filename="' .. fname .. '"\r\n' ..
    "Content-Type: application/octet-stream\r\n\r\n" ..
    payload .. "\r\n" ..
    "--" .. boundary .. "--\r\n"
  return wrk.format("POST", "/api/upload", headers, body)
end
