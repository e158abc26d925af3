// A minimal stateful MCP server (Streamable HTTP) that records every request it receives, for
// tests that must prove what did or did not reach a per-route backend. Unlike echo_upstream.mjs
// it behaves like an SDK server towards unknown sessions, so the gateway's readiness probe (a
// GET with a random session id) gets its answer. 127.0.0.1 only; env PORT.
//
//   GET  /__log     every request received on /mcp so far: {method, headers (raw), body}
// /mcp:
//   POST initialize          200 JSON + a new mcp-session-id
//   any other request with an unknown or missing session id: 404 (400 when missing), JSON-RPC error
//   POST notifications/*     202
//   POST tools/list          one tool, "echo"
//   POST tools/call echo     200 JSON: "Echo: <message>"
//   GET                      200 SSE, a comment, then held open
//   DELETE                   200, the session is forgotten
import http from 'node:http';
import { randomUUID } from 'node:crypto';

const log = [];
const sessions = new Set();

function json(res, code, obj, extra = {}) {
  const b = Buffer.from(JSON.stringify(obj));
  res.writeHead(code, { 'content-type': 'application/json', 'content-length': b.length, ...extra });
  res.end(b);
}

const rpcError = (res, code, message, id = null) =>
  json(res, code, { jsonrpc: '2.0', error: { code: -32000, message }, id });

http.createServer((req, res) => {
  const chunks = [];
  req.on('data', (c) => chunks.push(c));
  req.on('end', () => {
    const body = Buffer.concat(chunks).toString('utf8');
    const url = new URL(req.url, 'http://stub');
    if (url.pathname === '/__log') return json(res, 200, log);
    log.push({ method: req.method, headers: req.rawHeaders, body });
    if (url.pathname !== '/mcp') return json(res, 404, { error: 'not found' });
    const sid = req.headers['mcp-session-id'];
    let msg = null;
    if (req.method === 'POST') {
      try { msg = JSON.parse(body); } catch { return rpcError(res, 400, 'parse error'); }
      if (msg.method === 'initialize') {
        const id = randomUUID();
        sessions.add(id);
        return json(res, 200, { jsonrpc: '2.0', id: msg.id ?? null,
          result: { protocolVersion: msg.params?.protocolVersion || '2025-06-18', capabilities: { tools: {} },
                    serverInfo: { name: 'recording-backend', version: '0' } } }, { 'mcp-session-id': id });
      }
    } else if (req.method !== 'GET' && req.method !== 'DELETE') {
      return rpcError(res, 405, 'method not allowed');
    }
    if (!sid) return rpcError(res, 400, 'Bad Request: no session id');
    if (!sessions.has(sid)) return rpcError(res, 404, 'Session not found', msg?.id ?? null);
    if (req.method === 'DELETE') { sessions.delete(sid); res.writeHead(200); return res.end(); }
    if (req.method === 'GET') {
      res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache' });
      res.write(': stream open\n\n');
      return;
    }
    const m = msg.method || '';
    if (!('id' in msg) || m.startsWith('notifications/')) { res.writeHead(202); return res.end(); }
    if (m === 'tools/list') {
      return json(res, 200, { jsonrpc: '2.0', id: msg.id, result: { tools: [
        { name: 'echo', inputSchema: { type: 'object', properties: { message: { type: 'string' } } } }] } });
    }
    if (m === 'tools/call' && msg.params?.name === 'echo') {
      return json(res, 200, { jsonrpc: '2.0', id: msg.id,
        result: { content: [{ type: 'text', text: `Echo: ${msg.params?.arguments?.message ?? ''}` }] } });
    }
    return json(res, 200, { jsonrpc: '2.0', id: msg.id, error: { code: -32601, message: `no method ${m}` } });
  });
}).listen(Number(process.env.PORT), '127.0.0.1', () => {
  process.stderr.write(`recording-backend listening on 127.0.0.1:${process.env.PORT}\n`);
});
