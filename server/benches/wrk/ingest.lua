-- wrk script for ingest (docs/performance.md): every message carries two new events for one of
-- the bench's 200 devices, and every reply is checked; anything else is counted and printed.
--
--   single messages:  wrk -t2 -c64 -d30s -s server/benches/wrk/ingest.lua http://127.0.0.1:PORT/ingest/bench-dispenser
--   batches:          BENCH_BATCH=100 wrk -t2 -c8 -d30s -s server/benches/wrk/ingest.lua http://127.0.0.1:PORT/ingest/bench-dispenser/batch
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
  batch = tonumber(os.getenv("BENCH_BATCH") or "0")
  failed = 0
  accepted = 0
  example = nil
end

-- One dispenser message: a dose made available and taken, with new ids; one in a hundred
-- reports the dose missed instead, which raises an alert (and its webhook), closed again by the
-- device's next dispensed dose.
local function message(ref, serial, n)
  local second = (n % 100 == 0) and "dose_missed" or "dose_taken"
  return '{"serial":"' .. serial .. '","events":[' ..
    '{"id":"' .. ref .. '-a","type":"dose_available","at":"2026-11-22T07:00:00Z","dose":{"id":"d-' .. ref .. '","scheduled":"2026-11-22T07:00:00Z"}},' ..
    '{"id":"' .. ref .. '-t","type":"' .. second .. '","at":"2026-11-22T07:04:12Z","dose":{"id":"d-' .. ref .. '","scheduled":"2026-11-22T07:00:00Z","assisted":false}}]}'
end

local function serial(n)
  return string.format("RD-B%05d", (n * 7 + id) % 200)
end

function request()
  counter = counter + 1
  local headers = { ["Authorization"] = "Bearer " .. token, ["Content-Type"] = "application/json" }
  if batch == 0 then
    return wrk.format("POST", nil, headers, message(prefix .. "-" .. id .. "-" .. counter, serial(counter), counter))
  end
  local parts = {}
  for i = 1, batch do
    local n = counter * batch + i
    local body = string.gsub(message(prefix .. "-b" .. id .. "-" .. n, serial(n), n), '"', '\\"')
    parts[i] = '{"contentType":"application/json","body":"' .. body .. '"}'
  end
  return wrk.format("POST", nil, headers, '{"messages":[' .. table.concat(parts, ",") .. ']}')
end

function response(status, headers, body)
  local expected = batch == 0 and '"accepted":1,' or ('"accepted":' .. batch .. ',')
  local ok = status == 200 and string.find(body, expected, 1, true)
  if ok and batch == 0 then ok = string.find(body, '"eventsStored":2', 1, true) end
  if ok then
    accepted = accepted + 1
  else
    failed = failed + 1
    if example == nil then example = status .. " " .. string.sub(body, 1, 300) end
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
  local per = math.max(tonumber(os.getenv("BENCH_BATCH") or "0"), 1)
  io.write(string.format("checked replies: %d all accepted with their new events, %d not\n", ok, bad))
  io.write(string.format("accepted messages/s: %.0f  p50 %.2f ms  p99 %.2f ms\n",
    ok * per / (summary.duration / 1e6), latency:percentile(50) / 1000, latency:percentile(99) / 1000))
end
