-- wrk script: ThriveCart purchases (the fixture 01 shape as JSON), each a new order, so
-- every request is a distinct delivery that creates a member and a grant.
--   wrk -t2 -c16 -d20s -s load-tests/intake.lua "$WEBHOOK_URL"
-- Set SECRET to the app's secret word (the fixtures use K7QX2M9PLD4R).
local counter = 0
local secret = os.getenv("SECRET") or "K7QX2M9PLD4R"
local thread_id = 0

function setup(thread)
  thread_id = thread_id + 1
  thread:set("tid", thread_id)
end

function init(args)
  math.randomseed(os.time() + (tid or 0))
  prefix = tostring(math.random(1, 1000000000))
end

function request()
  counter = counter + 1
  local order = prefix .. "-" .. counter
  local body = '{"event":"order.success","mode":"live","mode_int":"2",'
    .. '"thrivecart_account":"larderdemo","thrivecart_secret":"' .. secret .. '",'
    .. '"order_id":"' .. order .. '","invoice_id":"' .. order .. '",'
    .. '"order_timestamp":"1772460311","customer_id":"42",'
    .. '"customer":{"email":"buyer' .. order .. '@example.com","name":"Load Test"},'
    .. '"purchase_map":["product-12"],"purchase_map_flat":"product-12"}'
  return wrk.format("POST", nil, {["Content-Type"] = "application/json"}, body)
end

local statuses = {}
function response(status, headers, body)
  statuses[status] = (statuses[status] or 0) + 1
end

function done(summary, latency, requests)
  io.write(string.format("requests: %d, errors: %d, p50 %.2f ms, p99 %.2f ms\n",
    summary.requests, summary.errors.status + summary.errors.connect + summary.errors.timeout,
    latency:percentile(50) / 1000, latency:percentile(99) / 1000))
end
