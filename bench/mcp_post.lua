-- wrk script: the same MCP JSON-RPC POST, with the same headers, for every target.
-- The token comes from the environment so it is never written into a file.
wrk.method = "POST"
wrk.body = '{"jsonrpc":"2.0","id":1,"method":"tools/list"}'
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Accept"] = "application/json, text/event-stream"
wrk.headers["Authorization"] = "Bearer " .. (os.getenv("BENCH_TOKEN") or "")
-- The session id the gateway issued (its edge session, mapped to the backend's on every request);
-- the other targets get the same bytes.
wrk.headers["mcp-session-id"] = os.getenv("BENCH_SID") or "bench"

-- One machine-readable line after wrk's own report; latencies in microseconds.
function done(summary, latency, requests)
   local e = summary.errors
   io.write(string.format(
      "BENCH_RESULT rps=%.1f p50=%d p99=%d requests=%d non2xx=%d sockerr=%d\n",
      summary.requests / (summary.duration / 1e6),
      latency:percentile(50), latency:percentile(99), summary.requests,
      e.status, e.connect + e.read + e.write + e.timeout))
end
