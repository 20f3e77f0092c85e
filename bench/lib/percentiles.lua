-- wrk script: after the run, print the latency distribution (microseconds) from wrk's
-- own histogram, one "PCTL <percentile> <us>" line each, for bench/lib/plots.py.
done = function(summary, latency, requests)
  io.write(string.format("PCTL 0 %d\n", latency.min))
  for _, p in ipairs({1, 5, 10, 20, 30, 40, 50, 60, 70, 75, 80, 85, 90, 95, 97.5, 99, 99.5, 99.9, 99.99}) do
    io.write(string.format("PCTL %g %d\n", p, latency:percentile(p)))
  end
  io.write(string.format("PCTL 100 %d\n", latency.max))
end
