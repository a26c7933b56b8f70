-- (a) PAT issuance by client credentials. Env: CLIENT_ID, CLIENT_SECRET, SCOPE.
package.path = package.path .. ';' .. (os.getenv('BENCH_DIR') or '.') .. '/?.lua'
local c = require('common')
wrk.method = 'POST'
wrk.path = os.getenv('TOKEN_PATH') or '/token'
wrk.headers['Content-Type'] = 'application/x-www-form-urlencoded'
wrk.headers['Authorization'] = c.basic(os.getenv('CLIENT_ID'), os.getenv('CLIENT_SECRET'))
wrk.body = 'grant_type=client_credentials&scope=' .. (os.getenv('SCOPE') or 'uma_protection')
done = c.done(os.getenv('SCENARIO') or 'pat')
