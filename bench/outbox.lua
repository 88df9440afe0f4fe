-- wrk script for bench/outbox.sh: the outbox's own requests, sent raw. REQUESTS names a file
-- of "path<TAB>token<TAB>body" lines (written by `wharf-bench-outbox prepare`); requests
-- cycle through its lines. CLOSE=1 adds "Connection: close" (a new connection per request,
-- as the outbox's HTTP client makes).
local reqs = {}
local close = os.getenv("CLOSE") == "1"
for line in io.lines(os.getenv("REQUESTS")) do
  local path, token, body = line:match("^([^\t]*)\t([^\t]*)\t(.*)$")
  local headers = {
    ["Authorization"] = "Bearer " .. token,
    ["Content-Type"] = "application/json",
    ["Accept"] = "application/json",
  }
  if close then headers["Connection"] = "close" end
  reqs[#reqs + 1] = wrk.format("POST", path, headers, body)
end
local i = 0
request = function()
  i = i % #reqs + 1
  return reqs[i]
end
