-- wrk script for bench/outbox.sh: the outbox's own requests, sent raw. REQUESTS names a file
-- of "path<TAB>token<TAB>body" lines (written by `wharf-bench-outbox prepare`); requests
-- cycle through its lines. CLOSE=1 adds "Connection: close" (a new connection per request).
-- The requests are built in init(): only then does wrk know the Host header, which
-- wrk.format copies into each request (a server answers an HTTP/1.1 request without one 400).
local reqs = {}
local close = os.getenv("CLOSE") == "1"
init = function(args)
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
end
local i = 0
request = function()
  i = i % #reqs + 1
  return reqs[i]
end
