// The Serena flow a coding agent runs first, with the real TypeScript MCP SDK client
// (@modelcontextprotocol/sdk StreamableHTTPClientTransport), printing one JSON document on stdout
// so the pytest side asserts on results instead of scraping logs.
//
//   node serena_flow.mjs URL TOKEN PROJECT_DIR [--no-refs] [--keep-session]
//
// initialize (+ notifications/initialized, sent by the SDK) → tools/call activate_project
// {project: PROJECT_DIR, session} → find_symbol {name_path_pattern: "greet", include_body: true}
// → find_referencing_symbols {name_path: "greet", relative_path: "lib.py"} (unless --no-refs) →
// DELETE (terminateSession, unless --keep-session). Each tool answer is reported as
// {isError, text} where text is the concatenated text content (Serena puts its JSON there).
//
// Exit 0 and {"ok":true,...} when every call got an answer (tool errors are reported, not
// thrown: the test decides); exit 1 and {"ok":false,"error":...} on a transport or protocol
// failure. A guard timer (SR_CLIENT_GUARD_MS, default 120 s: the first semantic call of a cold
// Serena can take long on a loaded machine) turns a hang into a failure.
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';

const [url, token, project, ...rest] = process.argv.slice(2);
const opts = { refs: true, del: true };
for (const a of rest) {
  if (a === '--no-refs') opts.refs = false;
  else if (a === '--keep-session') opts.del = false;
  else { process.stderr.write(`unknown argument ${a}\n`); process.exit(2); }
}
if (!url || !token || !project) {
  process.stderr.write('usage: serena_flow.mjs URL TOKEN PROJECT_DIR [--no-refs] [--keep-session]\n');
  process.exit(2);
}

const out = { ok: false, steps: [] };

function finish(code) {
  process.stdout.write(JSON.stringify(out) + '\n');
  process.exit(code);
}

const guard = setTimeout(() => {
  out.ok = false; out.error = `guard timeout: the client hung (after steps ${out.steps.join(',')})`; out.code = 'hang';
  finish(1);
}, Number(process.env.SR_CLIENT_GUARD_MS || 120000));

async function call(client, name, args) {
  const r = await client.callTool({ name, arguments: args });
  out.steps.push(name);
  const text = (r.content || []).filter((c) => c.type === 'text').map((c) => c.text).join('');
  return { isError: r.isError ?? false, text };
}

async function main() {
  const transport = new StreamableHTTPClientTransport(new URL(url), {
    requestInit: { headers: { Authorization: `Bearer ${token}` } },
  });
  const client = new Client({ name: 'sr-system-test-serena-flow', version: '0.0.1' });
  await client.connect(transport);
  out.steps.push('initialize');
  out.sessionId = transport.sessionId;
  out.serverInfo = client.getServerVersion();
  out.activate = await call(client, 'activate_project', { project, session: 'sr-system-test' });
  out.find = await call(client, 'find_symbol', { name_path_pattern: 'greet', include_body: true });
  if (opts.refs)
    out.refs = await call(client, 'find_referencing_symbols', { name_path: 'greet', relative_path: 'lib.py' });
  if (opts.del) {
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
