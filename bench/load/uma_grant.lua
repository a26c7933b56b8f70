-- (b) The UMA grant with pre-issued tickets (one Wasm policy bound to the resource).
-- Env: CLIENT_ID, CLIENT_SECRET, TICKETS_FILE.
package.path = package.path .. ';' .. (os.getenv('BENCH_DIR') or '.') .. '/?.lua'
local c = require('common')
local threads, counter = {}, 1
function setup(thread)
  thread:set('id', counter)
  table.insert(threads, thread)
  counter = counter + 1
end
-- Env TICKETS_OFFSET skips tickets an earlier run consumed. RATE (requests/s) sends on a fixed
-- schedule, for latency at a given fraction of the peak rate; DELAY_MS instead makes each
-- connection wait that long before each request (the co-tenant scenario's fixed load).
local tickets, next_ticket = {}, 1
local offset = tonumber(os.getenv('TICKETS_OFFSET') or '0')
local rate = tonumber(os.getenv('RATE') or '0')
local pause = tonumber(os.getenv('DELAY_MS') or '0')
if rate > 0 then
  delay = c.paced(rate)
elseif pause > 0 then
  function delay() return pause end
end
function init(args)
  local i = 0
  for line in io.lines(os.getenv('TICKETS_FILE')) do
    if i >= offset and i % (tonumber(os.getenv('WRK_THREADS') or '1')) == (id or 1) - 1 then
      tickets[#tickets + 1] = line
    end
    i = i + 1
  end
end
local auth = c.basic(os.getenv('CLIENT_ID'), os.getenv('CLIENT_SECRET'))
function request()
  local t = tickets[next_ticket] or 'exhausted'
  next_ticket = next_ticket + 1
  return wrk.format('POST', '/token', {
    ['Content-Type'] = 'application/x-www-form-urlencoded',
    ['Authorization'] = auth,
  }, 'grant_type=urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Auma-ticket&ticket=' .. t)
end
-- Env EXPECT_STATUS: the status every answer must have (403 for an attacker whose policy fails
-- closed); any other counts as an error. Without it, any non-2xx answer is an error.
local expect = tonumber(os.getenv('EXPECT_STATUS') or '0')
unexpected = 0
if expect > 0 then
  function response(status)
    if status ~= expect then unexpected = unexpected + 1 end
  end
end
done = c.done(os.getenv('SCENARIO') or 'uma-grant', 1, expect > 0 and function()
  local n = 0
  for _, t in ipairs(threads) do n = n + t:get('unexpected') end
  return n
end or nil)
