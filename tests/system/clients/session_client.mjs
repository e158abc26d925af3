// A long-lived MCP client (@modelcontextprotocol/sdk 1.32.2, StreamableHTTPClientTransport) that
// connects ONCE and then runs commands read line by line from stdin, so a test can drive one
// client session across backend sleeps, crashes and gateway restarts.
//
//   node session_client.mjs URL TOKEN
//
// stdout: one JSON document per line.
//   after connecting   {"event":"connected","sessionId","protocolVersion","serverInfo",...state}
//   if that fails      {"event":"connect-failed","error","code"} and exit 1
//   per command        {"tag","ok":true,"isError","text",...state}
//                      {"tag","ok":false,"error","errorClass","code","rpcError","timedOut",...state}
// stdin commands (one JSON object per line; every field but the command is optional):
//   {"tool": NAME, "args": {...}, "tag": any, "timeout_ms": N}   tools/call; runs concurrently
//                                                                with other commands
//   {"op": "state", "tag": any}                                  just the state
//   {"op": "close"} (or EOF)                                      client.close(), exit 0
// "state" is what a test needs to prove the session never changed:
//   sessionId          transport.sessionId now (the SDK adopts any mcp-session-id a response carries)
//   initialSessionId   the one initialize returned
//   sessionIdsSent / sessionIdsReceived   every distinct mcp-session-id in requests / responses
//   initializes        POSTs carrying an initialize request (the SDK never re-initializes by
//                      itself; anything but 1 means the session was re-established)
//   reinitialized      initializes != 1, or a second session id was seen or sent
//   notOk              every non-2xx exchange: {method, rpc, status}
//   gets               every GET (the standalone SSE stream): {status, open, end}
//   transportErrors    the last few transport.onerror messages
//
// Hang guards: each tool call uses the SDK's request timeout (timeout_ms, default
// SR_CLIENT_GUARD_MS = 120 s) and a second timer 5 s later that reports {"code":"hang"};
// the whole process exits 3 after SR_CLIENT_LIFETIME_MS (default 15 min).
import { createInterface } from 'node:readline';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';

const [url, token] = process.argv.slice(2);
if (!url || !token) {
  process.stderr.write('usage: session_client.mjs URL TOKEN\n');
  process.exit(2);
}
const GUARD_MS = Number(process.env.SR_CLIENT_GUARD_MS || 120000);
const LIFETIME_MS = Number(process.env.SR_CLIENT_LIFETIME_MS || 900000);

const rec = {
  initialSessionId: null,
  sent: new Set(),
  received: new Set(),
  initializes: 0,
  notOk: [],
  gets: [],
  transportErrors: [],
};
let transport;

function emit(obj) {
  process.stdout.write(JSON.stringify(obj) + '\n');
}

function state() {
  const sessionId = transport?.sessionId ?? null;
  return {
    sessionId,
    initialSessionId: rec.initialSessionId,
    sessionIdsSent: [...rec.sent],
    sessionIdsReceived: [...rec.received],
    initializes: rec.initializes,
    reinitialized: rec.initializes !== 1 || rec.received.size > 1 || rec.sent.size > 1
      || (rec.initialSessionId !== null && sessionId !== rec.initialSessionId),
    notOk: rec.notOk,
    gets: rec.gets,
    transportErrors: rec.transportErrors.slice(-10),
  };
}

function headerOf(h, name) {
  if (!h) return null;
  if (h instanceof Headers) return h.get(name);
  if (Array.isArray(h)) { const e = h.find(([k]) => k.toLowerCase() === name); return e ? e[1] : null; }
  for (const [k, v] of Object.entries(h)) if (k.toLowerCase() === name) return v;
  return null;
}

// Wraps a GET response body so the test can see whether the standalone stream is still open.
function watchBody(body, entry) {
  if (!body) { entry.open = false; entry.end = 'no body'; return body; }
  const reader = body.getReader();
  return new ReadableStream({
    async pull(ctrl) {
      try {
        const { value, done } = await reader.read();
        if (done) { entry.open = false; entry.end = 'closed by server'; ctrl.close(); return; }
        ctrl.enqueue(value);
      } catch (e) {
        entry.open = false; entry.end = `error: ${e?.message ?? e}`; ctrl.error(e);
      }
    },
    cancel(reason) { entry.open = false; entry.end = 'cancelled by client'; return reader.cancel(reason); },
  });
}

async function recordingFetch(input, init = {}) {
  const method = (init.method || 'GET').toUpperCase();
  let rpc;
  if (typeof init.body === 'string') {
    try {
      const b = JSON.parse(init.body);
      const msgs = Array.isArray(b) ? b : [b];
      rpc = msgs.map((m) => m.method).filter(Boolean).join(',') || 'response';
      if (msgs.some((m) => m.method === 'initialize')) rec.initializes++;
    } catch { rpc = undefined; }
  }
  const sid = headerOf(init.headers, 'mcp-session-id');
  if (sid) rec.sent.add(sid);
  const res = await fetch(input, init);
  const got = res.headers.get('mcp-session-id');
  if (got) rec.received.add(got);
  if (!res.ok) rec.notOk.push({ method, rpc, status: res.status });
  if (method === 'GET') {
    const entry = { status: res.status, open: res.ok, end: null };
    rec.gets.push(entry);
    if (res.ok) {
      return new Response(watchBody(res.body, entry), { status: res.status, statusText: res.statusText, headers: res.headers });
    }
  }
  return res;
}

function errorInfo(e) {
  const code = e?.code ?? null;
  const message = `${e?.message ?? e}`;
  const timedOut = code === -32001 && /timed out/i.test(message);
  // McpError is how the SDK surfaces a JSON-RPC error response (and its own request timeout).
  const rpcError = e?.constructor?.name === 'McpError' && !timedOut;
  return { error: `${e?.constructor?.name}: ${message}`, errorClass: e?.constructor?.name ?? null, code, rpcError, timedOut };
}

async function runTool(client, cmd) {
  const t0 = Date.now();
  const timeout = Number(cmd.timeout_ms || GUARD_MS);
  let guard;
  const hang = new Promise((resolve) => {
    guard = setTimeout(() => resolve({ ok: false, error: 'guard: the call hung', code: 'hang', rpcError: false, timedOut: true }),
      timeout + 5000);
  });
  const call = client.callTool({ name: cmd.tool, arguments: cmd.args || {} }, undefined, { timeout })
    .then((r) => ({
      ok: true,
      isError: r.isError ?? false,
      text: (r.content || []).filter((c) => c.type === 'text').map((c) => c.text).join(''),
    }), (e) => ({ ok: false, ...errorInfo(e) }));
  const out = await Promise.race([call, hang]);
  clearTimeout(guard);
  emit({ tag: cmd.tag ?? null, tool: cmd.tool, elapsed_ms: Date.now() - t0, ...out, ...state() });
}

async function main() {
  const lifetime = setTimeout(() => {
    emit({ event: 'lifetime-guard', error: `no close after ${LIFETIME_MS} ms`, ...state() });
    process.exit(3);
  }, LIFETIME_MS);
  transport = new StreamableHTTPClientTransport(new URL(url), {
    requestInit: { headers: { Authorization: `Bearer ${token}` } },
    fetch: recordingFetch,
  });
  const client = new Client({ name: 'sr-session-client-ts', version: '0.0.1' });
  try {
    const guard = setTimeout(() => { emit({ event: 'connect-failed', error: 'guard: connect hung', code: 'hang' }); process.exit(1); },
      GUARD_MS);
    await client.connect(transport, { timeout: GUARD_MS });
    clearTimeout(guard);
  } catch (e) {
    emit({ event: 'connect-failed', ...errorInfo(e), ...state() });
    process.exit(1);
  }
  // Installed after connect: Client.connect sets its own onerror chain on the transport.
  const prevOnError = transport.onerror;
  transport.onerror = (e) => { rec.transportErrors.push(`${e?.message ?? e}`); prevOnError?.(e); };
  rec.initialSessionId = transport.sessionId ?? null;
  emit({ event: 'connected', protocolVersion: transport.protocolVersion ?? null,
         serverInfo: client.getServerVersion() ?? null, ...state() });

  const pending = new Set();
  const rl = createInterface({ input: process.stdin, crlfDelay: Infinity });
  let closing = false;
  const finish = async () => {
    if (closing) return;
    closing = true;
    await Promise.allSettled([...pending]);
    try { await client.close(); } catch { /* closing anyway */ }
    clearTimeout(lifetime);
    emit({ event: 'closed', ...state() });
    process.exit(0);
  };
  rl.on('line', (line) => {
    if (!line.trim()) return;
    let cmd;
    try { cmd = JSON.parse(line); } catch (e) { emit({ ok: false, error: `bad command: ${e.message}` }); return; }
    if (cmd.op === 'close') { finish(); return; }
    if (cmd.op === 'state') { emit({ tag: cmd.tag ?? null, ok: true, ...state() }); return; }
    if (!cmd.tool) { emit({ tag: cmd.tag ?? null, ok: false, error: 'unknown command' }); return; }
    const p = runTool(client, cmd).finally(() => pending.delete(p));
    pending.add(p);
  });
  rl.on('close', finish);
}

main().catch((e) => {
  emit({ event: 'fatal', ...errorInfo(e), ...state() });
  process.exit(1);
});
