-- Shared by every scenario: print one JSON line of results when wrk finishes, so run.sh can
-- build the report table. Latencies are wrk's (microseconds), reported in milliseconds.
local M = {}

-- `unexpected`, when given, replaces wrk's count of non-2xx answers: a function returning how
-- many answers had another status than the scenario expects (an attacker's grants are denied).
function M.done(name, per_op, unexpected)
  return function(summary, latency, requests)
    per_op = per_op or 1
    local secs = summary.duration / 1e6
    local status = unexpected and unexpected() or summary.errors.status
    local errors = summary.errors.connect + summary.errors.read + summary.errors.write
      + summary.errors.timeout + status
    io.write(string.format(
      '{"scenario":"%s","requests":%d,"rps":%.1f,"ops_per_s":%.1f,"p50_ms":%.3f,"p99_ms":%.3f,"p999_ms":%.3f,"errors":%d,"bad_status":%d}\n',
      name, summary.requests, summary.requests / secs, summary.requests / secs / per_op,
      latency:percentile(50) / 1000, latency:percentile(99) / 1000, latency:percentile(99.9) / 1000,
      errors, status))
  end
end

-- A send schedule for a fixed request rate, like wrk2's: `M.paced(rate)` returns a function for
-- wrk's `delay()` that gives the thread's requests evenly spaced send times, 1/rate seconds
-- apart, whichever connection sends them. Waiting a fixed time after each answer instead (what
-- `DELAY_MS` does) lets the rate drift up as answers get faster and keeps connections that
-- started together sending together, in bursts. A send slot already past is used at once, so a
-- slow answer delays only its own connection and the average rate holds. wrk waits in whole
-- milliseconds: a fractional wait is rounded up or down at random, in proportion, so the
-- average stays exact. Latency is wrk's (from the actual send), as for every scenario.
local ffi = require('ffi')
ffi.cdef [[
  typedef struct { long tv_sec; long tv_nsec; } bench_timespec;
  int clock_gettime(int clock, bench_timespec *tp);
]]
local timespec = ffi.new('bench_timespec')
local function now_ms()
  ffi.C.clock_gettime(1, timespec) -- CLOCK_MONOTONIC
  return tonumber(timespec.tv_sec) * 1000 + tonumber(timespec.tv_nsec) / 1e6
end

function M.paced(rate)
  local interval, next_slot = 1000 / rate, nil
  math.randomseed(os.time())
  return function()
    local now = now_ms()
    next_slot = next_slot or now
    local wait = next_slot - now
    next_slot = next_slot + interval
    if wait <= 0 then return 0 end
    local whole = math.floor(wait)
    if math.random() < wait - whole then whole = whole + 1 end
    return whole
  end
end

function M.basic(user, pass)
  -- wrk's LuaJIT has no base64: a small encoder.
  local b = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/'
  local data = user .. ':' .. pass
  return 'Basic ' .. ((data:gsub('.', function(x)
    local r, byte = '', x:byte()
    for i = 8, 1, -1 do r = r .. (byte % 2 ^ i - byte % 2 ^ (i - 1) > 0 and '1' or '0') end
    return r
  end) .. '0000'):gsub('%d%d%d?%d?%d?%d?', function(x)
    if #x < 6 then return '' end
    local c = 0
    for i = 1, 6 do c = c + (x:sub(i, i) == '1' and 2 ^ (6 - i) or 0) end
    return b:sub(c + 1, c + 1)
  end) .. ({ '', '==', '=' })[#data % 3 + 1])
end

function M.json_field(body, name)
  return body:match('"' .. name .. '"%s*:%s*"([^"]+)"')
end

return M
