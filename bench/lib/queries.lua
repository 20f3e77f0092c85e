-- wrk script: GET /query cycling through the queries in the file $WRK_QUERIES (one
-- URL-encoded query per line), so that no request repeats one the resident answered
-- recently; prints the latency distribution like percentiles.lua.
dofile(os.getenv("WRK_PCTL"))
local queries = {}
for line in io.lines(os.getenv("WRK_QUERIES")) do
  table.insert(queries, line)
end
local i = 0
request = function()
  i = i % #queries + 1
  return wrk.format("GET", "/query?limit=10&q=" .. queries[i])
end
