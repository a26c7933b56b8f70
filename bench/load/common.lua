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
