// A scriptable upstream for the gateway's relay tests, where the real MCP peers cannot show
// what arrived (request headers) or cannot produce the bytes we need (CRLF framing, comments,
// empty data, an event held until the test releases it). 127.0.0.1 only; env PORT.
//
// Direct-only control endpoints (the tests call them on the stub's own port):
//   GET  /__log            every request received on /mcp so far (method, url, raw headers, body,
//                          remotePort: which upstream connection carried it)
//   GET  /__status         {aborted: keys of held streams whose client went away, flood: {...}}
//   POST /__release?k=KEY  lets a held "stub/sse-held" stream with that key finish
// /mcp, chosen by the JSON-RPC method of a POST body:
//   initialize       200 application/json + mcp-session-id
//   notifications/*  202, empty
//   stub/echo        200 JSON: the request's raw headers and body length; response header X-Stub: kept
//   stub/sse-exact   200 text/event-stream, chunked: the fixed bytes in SSE_EXACT, written in pieces
//   stub/sse-held    200 SSE: one event, then waits for /__release?k=<params.key>, then the final event
//   stub/status      responds with params.code and a small JSON body
//   stub/flood       200 SSE: params.total bytes of events as fast as the reader takes them,
//                    honouring backpressure; /__status shows flood.written and flood.done
// GET /mcp -> 200 SSE, one comment, then stays open; DELETE /mcp -> 200.
import http from 'node:http';

export const SSE_EXACT = [
  ': ping\r\n\r\n',
  'id: e1\r\ndata:\r\n\r\n',
  'event: message\r\nid: e2\r\ndata: {"jsonrpc":"2.0","method":"notifications/message","params":{"level":"info","data":"x"}}\r\n\r\n',
  'data: line one\ndata: line two\n\n',
  'event: message\nid: e3\ndata: {"jsonrpc":"2.0","id":7,"result":{"ok":true,"text":"caf\u00e9 \u2713"}}\n\n',
];

const log = [];
const held = new Map(); // key -> resolve
const released = new Set();
const aborted = [];
const flood = { written: 0, done: false, total: 0 };

function waitRelease(key) {
  if (released.has(key)) return Promise.resolve();
  return new Promise((r) => held.set(key, r));
}

function json(res, code, obj, extra = {}) {
  const b = Buffer.from(JSON.stringify(obj));
  res.writeHead(code, { 'content-type': 'application/json', 'content-length': b.length, ...extra });
  res.end(b);
}

http.createServer((req, res) => {
  const chunks = [];
  req.on('data', (c) => chunks.push(c));
  req.on('end', async () => {
    const body = Buffer.concat(chunks);
    const url = new URL(req.url, 'http://stub');
    if (url.pathname === '/__log') return json(res, 200, log);
    if (url.pathname === '/__status') return json(res, 200, { aborted, flood });
    if (url.pathname === '/__release') {
      const k = url.searchParams.get('k');
      released.add(k);
      held.get(k)?.();
      return json(res, 200, { released: k });
    }
    log.push({ method: req.method, url: req.url, headers: req.rawHeaders, body: body.toString('utf8'),
               remotePort: req.socket.remotePort });
    if (url.pathname !== '/mcp') return json(res, 404, { error: 'not found' });
    if (req.method === 'DELETE') { res.writeHead(200); return res.end(); }
    if (req.method === 'GET') {
      res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache' });
      res.flushHeaders();
      res.write(': stream open\n\n');
      return; // stays open until the client goes away
    }
    let msg;
    try { msg = JSON.parse(body.toString('utf8')); } catch {
      return json(res, 400, { jsonrpc: '2.0', error: { code: -32700, message: 'stub: parse error' }, id: null });
    }
    const m = msg.method || '';
    const id = msg.id ?? null;
    if (m === 'initialize') {
      return json(res, 200, { jsonrpc: '2.0', id, result: { protocolVersion: msg.params?.protocolVersion || '2025-06-18', capabilities: {}, serverInfo: { name: 'echo-upstream', version: '0' } } },
        { 'mcp-session-id': 'stub-session-1' });
    }
    if (m.startsWith('notifications/') || !m) { res.writeHead(202); return res.end(); }
    if (m === 'stub/echo') {
      return json(res, 200, { jsonrpc: '2.0', id, result: { headers: req.rawHeaders, bodyLength: body.length } }, { 'x-stub': 'kept' });
    }
    if (m === 'stub/status') {
      return json(res, msg.params?.code || 500, { jsonrpc: '2.0', id, error: { code: -32000, message: `stub status ${msg.params?.code}` } });
    }
    if (m === 'stub/sse-exact') {
      res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache' });
      res.flushHeaders();
      for (const piece of SSE_EXACT) {
        // Split each piece so frames straddle writes (and so chunks).
        const b = Buffer.from(piece, 'utf8');
        const cut = Math.max(1, Math.floor(b.length / 2));
        res.write(b.subarray(0, cut));
        await new Promise((r) => setImmediate(r));
        res.write(b.subarray(cut));
      }
      return res.end();
    }
    if (m === 'stub/sse-held') {
      const key = String(msg.params?.key);
      res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache' });
      res.flushHeaders();
      res.write(`event: message\ndata: {"jsonrpc":"2.0","method":"notifications/progress","params":{"progressToken":"${key}","progress":1}}\n\n`);
      res.on('close', () => { if (!res.writableFinished) aborted.push(key); });
      await waitRelease(key);
      res.write(`event: message\ndata: {"jsonrpc":"2.0","id":${JSON.stringify(id)},"result":{"released":"${key}"}}\n\n`);
      return res.end();
    }
    if (m === 'stub/flood') {
      flood.total = msg.params?.total || 0; flood.written = 0; flood.done = false;
      res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache' });
      const line = Buffer.from(`data: ${'x'.repeat(65536 - 8)}\n\n`);
      let gone = false;
      res.on('close', () => { gone = true; });
      while (flood.written < flood.total && !gone) {
        const ok = res.write(line);
        flood.written += line.length;
        if (!ok) await new Promise((r) => { res.once('drain', r); res.once('close', r); });
      }
      flood.done = !gone;
      return res.end();
    }
    return json(res, 200, { jsonrpc: '2.0', id, result: {} });
  });
}).listen(Number(process.env.PORT), '127.0.0.1', () => {
  process.stderr.write(`echo-upstream listening on 127.0.0.1:${process.env.PORT}\n`);
});
