-- Setup for (b): the resource server asks for permission tickets; each ticket is appended to
-- TICKETS_FILE. Env: PAT, RESOURCE_ID.
package.path = package.path .. ';' .. (os.getenv('BENCH_DIR') or '.') .. '/?.lua'
local c = require('common')
local out
wrk.method = 'POST'
wrk.path = '/permission'
wrk.headers['Content-Type'] = 'application/json'
wrk.headers['Authorization'] = 'Bearer ' .. os.getenv('PAT')
wrk.body = '{"resource_id":"' .. os.getenv('RESOURCE_ID') .. '","resource_scopes":["view"]}'
function response(status, headers, body)
  if status == 201 then
    out = out or io.open(os.getenv('TICKETS_FILE'), 'a')
    out:write(c.json_field(body, 'ticket'), '\n')
  end
end
done = c.done('collect-tickets')
