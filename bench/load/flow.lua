-- (c) The full flow, three requests in a row per flow: the resource server asks for a ticket,
-- the client redeems it for an RPT, the resource server introspects the RPT.
-- Env: PAT, RESOURCE_ID, CLIENT_ID, CLIENT_SECRET. Reports flows/s as ops_per_s.
package.path = package.path .. ';' .. (os.getenv('BENCH_DIR') or '.') .. '/?.lua'
local c = require('common')
local auth = c.basic(os.getenv('CLIENT_ID'), os.getenv('CLIENT_SECRET'))
local pat = 'Bearer ' .. os.getenv('PAT')
local perm_body = '{"resource_id":"' .. os.getenv('RESOURCE_ID') .. '","resource_scopes":["view"]}'
-- Work queued by responses, taken by the next request on any connection of this thread.
local queue, head, tail = {}, 1, 0
local function push(r) tail = tail + 1; queue[tail] = r end
function request()
  if head <= tail then
    local r = queue[head]
    queue[head] = nil
    head = head + 1
    return r
  end
  return wrk.format('POST', '/permission', { ['Content-Type'] = 'application/json', ['Authorization'] = pat }, perm_body)
end
function response(status, headers, body)
  local ticket = status == 201 and c.json_field(body, 'ticket')
  if ticket then
    push(wrk.format('POST', '/token', { ['Content-Type'] = 'application/x-www-form-urlencoded', ['Authorization'] = auth },
      'grant_type=urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Auma-ticket&ticket=' .. ticket))
    return
  end
  local rpt = status == 200 and body:find('"access_token"') and c.json_field(body, 'access_token')
  if rpt then
    push(wrk.format('POST', '/introspect', { ['Content-Type'] = 'application/x-www-form-urlencoded', ['Authorization'] = pat }, 'token=' .. rpt))
  end
end
done = c.done('full-flow', 3)
