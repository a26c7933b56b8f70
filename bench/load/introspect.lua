-- (d) Introspection of one RPT by the resource server. Env: PAT, RPT.
package.path = package.path .. ';' .. (os.getenv('BENCH_DIR') or '.') .. '/?.lua'
local c = require('common')
wrk.method = 'POST'
wrk.path = '/introspect'
wrk.headers['Content-Type'] = 'application/x-www-form-urlencoded'
wrk.headers['Authorization'] = 'Bearer ' .. os.getenv('PAT')
wrk.body = 'token=' .. os.getenv('RPT')
done = c.done('introspection')
