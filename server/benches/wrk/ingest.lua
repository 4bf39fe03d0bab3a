-- wrk script for single-message ingest (docs/performance.md): every request carries a new
-- message with two new events for one of the bench's 200 devices, and every reply is checked
-- for `"accepted":1`; anything else is counted and printed at the end.
--
--   wrk -t2 -c64 -d20s -s server/benches/wrk/ingest.lua http://127.0.0.1:PORT/ingest/bench-dispenser
--
-- The integration token comes from the environment (`BENCH_TOKEN`), as the bench prints it;
-- `BENCH_PREFIX` keeps event ids of separate runs apart.

local threads = {}
local counter = 0

function setup(thread)
  thread:set("id", #threads)
  table.insert(threads, thread)
end

function init(args)
  token = os.getenv("BENCH_TOKEN")
  prefix = os.getenv("BENCH_PREFIX") or tostring(os.time())
  failed = 0
  accepted = 0
  example = nil
end

function request()
  counter = counter + 1
  local n = counter
  local serial = string.format("RD-B%05d", (n * 7 + id) % 200)
  local ref = prefix .. "-" .. id .. "-" .. n
  local body = '{"serial":"' .. serial .. '","events":[' ..
    '{"id":"' .. ref .. '-a","type":"dose_available","at":"2026-11-22T07:00:00Z","dose":{"id":"d-' .. ref .. '","scheduled":"2026-11-22T07:00:00Z"}},' ..
    '{"id":"' .. ref .. '-t","type":"dose_taken","at":"2026-11-22T07:04:12Z","dose":{"id":"d-' .. ref .. '","scheduled":"2026-11-22T07:00:00Z","assisted":false}}]}'
  return wrk.format("POST", nil, { ["Authorization"] = "Bearer " .. token, ["Content-Type"] = "application/json" }, body)
end

function response(status, headers, body)
  if status == 200 and string.find(body, '"accepted":1,', 1, true) and string.find(body, '"eventsStored":2', 1, true) then
    accepted = accepted + 1
  else
    failed = failed + 1
    if example == nil then example = status .. " " .. body end
  end
end

function done(summary, latency, requests)
  local ok, bad = 0, 0
  for _, thread in ipairs(threads) do
    ok = ok + thread:get("accepted")
    bad = bad + thread:get("failed")
    local e = thread:get("example")
    if e ~= nil then io.write("first failure: " .. e .. "\n") end
  end
  io.write(string.format("checked replies: %d accepted with 2 new events, %d not\n", ok, bad))
  io.write(string.format("accepted/s: %.0f  p50 %.2f ms  p99 %.2f ms\n",
    ok / (summary.duration / 1e6), latency:percentile(50) / 1000, latency:percentile(99) / 1000))
end
