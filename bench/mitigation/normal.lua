-- wrk script of bench/mitigation/run.sh: normal shop traffic from many clients, each request
-- a fresh visitor (its own session cookie and forwarded address; the demo shop trusts
-- 127.0.0.1 as its proxy), paced by DELAY_MS per request and connection so that
-- connections * 1000 / DELAY_MS is the offered rate.
-- The requests are the lines of REQUESTS ("METHOD<TAB>PATH?QUERY<TAB>BODY", written by
-- requests.py from CSIC 2010's normal test requests, or from the replayer's generated ones),
-- cycled through: the kind of traffic the models learnt and the bystander plays. A handful of
-- fixed URLs repeated at thousands a second would teach the models, which keep learning, that
-- the rest of normal traffic is unusual (the bystander's POSTs then raised alarms).
-- One request per visitor as in CSIC 2010, whose normal sessions are one request each: the
-- models learnt that, so thousands of sessions making a request every 0.4 s would themselves
-- be unusual behaviour.
local delay_ms = tonumber(os.getenv("DELAY_MS") or "10")
local list = {}
local n = 0
local thread_tag = nil

function init(args)
  local path = os.getenv("REQUESTS")
  local f = path and io.open(path, "r")
  if not f then error("normal.lua: REQUESTS must name the request list (requests.py)") end
  for line in f:lines() do
    local method, target, body = line:match("^(%u+)\t([^\t]*)\t(.*)$")
    if method then list[#list + 1] = {method, target, body} end
  end
  f:close()
  if #list == 0 then error("normal.lua: no request in " .. path) end
  thread_tag = math.random(0, 0x7fffffff)
  n = math.random(0, #list - 1)  -- threads start at different places in the list
end

function delay() return delay_ms end

function request()
  n = n + 1
  local r = list[1 + n % #list]
  local headers = {
    ["Cookie"] = string.format("JSESSIONID=%08X%08X%016X", thread_tag, math.random(0, 0x7fffffff), n),
    ["X-Forwarded-For"] = string.format("10.%d.%d.%d", math.random(0, 255), math.random(0, 255), math.random(1, 254)),
    -- CSIC 2010's header set as the replayer sends it (without Host and Connection, which
    -- the HTTP client sets): headers are recorded arguments, so a client without them is a
    -- different client.
    ["User-Agent"] = "Mozilla/5.0 (compatible; Konqueror/3.5; Linux) KHTML/3.5.8 (like Gecko)",
    ["Pragma"] = "no-cache",
    ["Cache-control"] = "no-cache",
    ["Accept"] = "text/xml,application/xml,application/xhtml+xml,text/html;q=0.9,text/plain;q=0.8,image/png,*/*;q=0.5",
    ["Accept-Encoding"] = "x-gzip, x-deflate, gzip, deflate",
    ["Accept-Charset"] = "utf-8, utf-8;q=0.5, *;q=0.5",
    ["Accept-Language"] = "en",
  }
  local body = nil
  if r[3] ~= "" then
    headers["Content-Type"] = "application/x-www-form-urlencoded"
    body = r[3]
  end
  return wrk.format(r[1], r[2], headers, body)
end
