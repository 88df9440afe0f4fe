-- wrk script: data-plane point queries with one database token (the data plane is not an
-- OIDC path: a project reuses its DATABASE_TOKEN), a different key each request.
local token = os.getenv("DB_TOKEN")
local target = os.getenv("TARGET_PATH")
local i = 0
request = function()
  i = i % 1000 + 1
  local body = '{"sql":"select v from kv where k = ?","params":[' .. i .. ']}'
  return wrk.format("POST", target, { ["Authorization"] = "Bearer " .. token,
                                      ["Content-Type"] = "application/json" }, body)
end
