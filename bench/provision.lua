-- wrk script: Provision Resource with a fresh ADMIN user token per request (each pays a full
-- signature verification), a new flag set each time (the `flags` product keeps its data in the
-- state store, so the run measures auth + the store backend). NAME_PREFIX keeps the names of two
-- wrk processes apart.
local tokens = {}
for line in io.lines(os.getenv("TOKENS")) do tokens[#tokens + 1] = line end
local target = os.getenv("TARGET_PATH")
local prefix = os.getenv("NAME_PREFIX") or "p"
local offset = tonumber(os.getenv("TOKEN_OFFSET") or "0")
local i = 0
request = function()
  i = i + 1
  local body = '{"productId":"flags","name":"' .. prefix .. '-' .. i ..
               '","metadata":{},"billingPlanId":"flags-free"}'
  local t = tokens[(offset + i - 1) % #tokens + 1]
  return wrk.format("POST", target, { ["Authorization"] = "Bearer " .. t,
                                      ["Content-Type"] = "application/json" }, body)
end
