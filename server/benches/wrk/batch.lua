-- wrk script for batch ingest (docs/performance.md): every request carries `BENCH_BATCH`
-- (default 100) new messages with two new events each, and every reply is checked for
-- `"accepted":BENCH_BATCH`.
--
--   wrk -t2 -c8 -d20s -s server/benches/wrk/batch.lua http://127.0.0.1:PORT/ingest/bench-dispenser/batch

local threads = {}
local counter = 0

function setup(thread)
  thread:set("id", #threads)
  table.insert(threads, thread)
end

function init(args)
  token = os.getenv("BENCH_TOKEN")
  prefix = os.getenv("BENCH_PREFIX") or tostring(os.time())
  size = tonumber(os.getenv("BENCH_BATCH") or "100")
  failed = 0
  accepted = 0
  example = nil
end

local function message(ref, serial)
  -- The message's own JSON, as a JSON string inside the batch.
  return '{"contentType":"application/json","body":"{\\"serial\\":\\"' .. serial .. '\\",\\"events\\":[' ..
    '{\\"id\\":\\"' .. ref .. '-a\\",\\"type\\":\\"dose_available\\",\\"at\\":\\"2026-11-22T07:00:00Z\\",\\"dose\\":{\\"id\\":\\"d-' .. ref .. '\\",\\"scheduled\\":\\"2026-11-22T07:00:00Z\\"}},' ..
    '{\\"id\\":\\"' .. ref .. '-t\\",\\"type\\":\\"dose_taken\\",\\"at\\":\\"2026-11-22T07:04:12Z\\",\\"dose\\":{\\"id\\":\\"d-' .. ref .. '\\",\\"scheduled\\":\\"2026-11-22T07:00:00Z\\",\\"assisted\\":false}}]}"}'
end

function request()
  counter = counter + 1
  local parts = {}
  for i = 1, size do
    local n = counter * size + i
    local serial = string.format("RD-B%05d", (n * 7 + id) % 200)
    parts[i] = message(prefix .. "-b" .. id .. "-" .. n, serial)
  end
  local body = '{"messages":[' .. table.concat(parts, ",") .. ']}'
  return wrk.format("POST", nil, { ["Authorization"] = "Bearer " .. token, ["Content-Type"] = "application/json" }, body)
end

function response(status, headers, body)
  if status == 200 and string.find(body, '"accepted":' .. size .. ',', 1, true) then
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
  local size = tonumber(os.getenv("BENCH_BATCH") or "100")
  io.write(string.format("checked replies: %d batches all accepted, %d not\n", ok, bad))
  io.write(string.format("accepted messages/s: %.0f  p50 %.2f ms  p99 %.2f ms\n",
    ok * size / (summary.duration / 1e6), latency:percentile(50) / 1000, latency:percentile(99) / 1000))
end
