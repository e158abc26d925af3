// A real MCP client (@modelcontextprotocol/sdk StreamableHTTPClientTransport) that runs one
// whole session against URL and prints a single JSON document on stdout, so the pytest side
// can assert on what happened instead of scraping logs.
//
//   node sdk_client.mjs URL [--token T] [--tool NAME] [--args JSON] [--long]
//                           [--get-push] [--no-delete] [--no-list]
//
// It does: initialize (+ notifications/initialized, sent by the SDK), tools/list, tools/call,
// optionally a long-running call with progress (--long, server-everything), optionally waits for
// a server-pushed message on the standalone GET stream (--get-push, server-everything's
// toggle-simulated-logging), then DELETE (terminateSession). Every HTTP exchange the SDK makes
// goes through a recording fetch, so the output lists method, status and content type of each,
// including the GET that opens the standalone SSE stream.
//
// Exit 0 and {"ok":true,...} on success; exit 1 and {"ok":false,"error":...,"code":...} on any
// failure. A guard timer (SR_CLIENT_GUARD_MS, default 30 s) turns a hang into a failure.
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { LoggingMessageNotificationSchema } from '@modelcontextprotocol/sdk/types.js';

function parseArgs(argv) {
  const o = { url: argv[0], token: undefined, tool: 'echo', args: '{"message":"via sdk"}',
              long: false, getPush: false, del: true, list: true };
  for (let i = 1; i < argv.length; i++) {
    const a = argv[i];
    if (a === '--token') o.token = argv[++i];
    else if (a === '--tool') o.tool = argv[++i];
    else if (a === '--args') o.args = argv[++i];
    else if (a === '--long') o.long = true;
    else if (a === '--get-push') o.getPush = true;
    else if (a === '--no-delete') o.del = false;
    else if (a === '--no-list') o.list = false;
    else throw new Error(`unknown argument ${a}`);
  }
  if (!o.url) throw new Error('usage: sdk_client.mjs URL [--token T] ...');
  return o;
}

const out = { ok: false, requests: [] };
let resolveGet;
const getOpened = new Promise((r) => { resolveGet = r; });

// Records every exchange; the body of a JSON-RPC POST is peeked for its method.
async function recordingFetch(url, init = {}) {
  const method = init.method || 'GET';
  let rpc;
  if (typeof init.body === 'string') {
    try { const b = JSON.parse(init.body); rpc = Array.isArray(b) ? b.map((m) => m.method) : b.method; } catch { rpc = undefined; }
  }
  const entry = { method, rpc, status: null, contentType: null };
  out.requests.push(entry);
  const res = await fetch(url, init);
  entry.status = res.status;
  entry.contentType = res.headers.get('content-type');
  if (method === 'GET') resolveGet(entry);
  return res;
}

function finish(code) {
  process.stdout.write(JSON.stringify(out) + '\n');
  process.exit(code);
}

const guard = setTimeout(() => {
  out.ok = false; out.error = 'guard timeout: the client hung'; out.code = 'hang';
  finish(1);
}, Number(process.env.SR_CLIENT_GUARD_MS || 30000));

async function main() {
  const o = parseArgs(process.argv.slice(2));
  const headers = {};
  if (o.token !== undefined) headers.Authorization = `Bearer ${o.token}`;
  const transport = new StreamableHTTPClientTransport(new URL(o.url), {
    requestInit: { headers }, fetch: recordingFetch,
  });
  const client = new Client({ name: 'sr-system-test-sdk', version: '0.0.1' });
  const pushed = [];
  let resolvePush;
  const firstPush = new Promise((r) => { resolvePush = r; });
  client.setNotificationHandler(LoggingMessageNotificationSchema, (n) => { pushed.push(n.params); resolvePush(n.params); });

  await client.connect(transport);
  out.sessionId = transport.sessionId;
  out.protocolVersion = transport.protocolVersion;
  out.serverInfo = client.getServerVersion();
  if (o.list) {
    const { tools } = await client.listTools();
    out.tools = tools.map((t) => t.name);
  }
  const r = await client.callTool({ name: o.tool, arguments: JSON.parse(o.args) });
  out.call = { content: r.content, isError: r.isError ?? false };
  if (o.long) {
    out.progress = [];
    const p = await client.callTool({ name: 'trigger-long-running-operation', arguments: { duration: 1, steps: 3 } },
      undefined, { onprogress: (pr) => out.progress.push(pr) });
    out.long = p.content;
  }
  // The SDK opens the standalone GET stream right after initialize, without awaiting it.
  out.get = await getOpened;
  if (o.getPush) {
    await client.callTool({ name: 'toggle-simulated-logging', arguments: {} });
    out.pushed = await firstPush;
    await client.callTool({ name: 'toggle-simulated-logging', arguments: {} });
  }
  if (o.del) {
    await transport.terminateSession();
    out.deleted = true;
  }
  await client.close();
  out.ok = true;
}

main().then(() => { clearTimeout(guard); finish(0); }).catch((e) => {
  clearTimeout(guard);
  out.ok = false;
  out.error = `${e?.constructor?.name}: ${e?.message}`;
  out.code = e?.code ?? null;
  finish(1);
});
