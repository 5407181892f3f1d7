-- wrk script: POST /api/token/ with a JSON body, rotating over the demo tenants john1..john10.
local users = {}
for i = 1, 10 do
  users[i] = string.format('{"username":"john%d","password":"test"}', i)
end
local n = 0

function request()
  n = n + 1
  return wrk.format("POST", "/api/token/",
    { ["Content-Type"] = "application/json" }, users[(n % 10) + 1])
end
