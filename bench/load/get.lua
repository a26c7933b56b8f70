-- (e) A plain GET (discovery): the machine's HTTP baseline.
package.path = package.path .. ';' .. (os.getenv('BENCH_DIR') or '.') .. '/?.lua'
local c = require('common')
done = c.done(os.getenv('SCENARIO') or 'discovery')
