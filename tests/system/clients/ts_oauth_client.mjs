// The TypeScript MCP SDK (@modelcontextprotocol/sdk) signing in with OAuth: an
// OAuthClientProvider given to StreamableHTTPClientTransport, as an application would write it.
//
//   SR_CONSENT_TOKEN=<token> node ts_oauth_client.mjs URL [--client-metadata-url URL]
//
// The SDK discovers the server from the 401 (RFC 9728, RFC 8414), registers (RFC 7591) or, given
// --client-metadata-url and a server that supports it, uses that URL as its client_id (CIMD),
// then hands the authorization URL to redirectToAuthorization. That method plays the person's
// browser on the consent page (GET with a cookie jar, POST the form with SR_CONSENT_TOKEN, read
// the code from the 302); finishAuth exchanges it. Then a session (initialize, tools/list); then
// the SDK's own refresh (auth() with stored tokens), and a session with the refreshed token.
// Prints one JSON document; exit 0 when "ok". A guard (SR_CLIENT_GUARD_MS, default 30 s) turns a
// hang into a failure.
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { UnauthorizedError, auth } from '@modelcontextprotocol/sdk/client/auth.js';

const url = process.argv[2];
const cimdAt = process.argv.indexOf('--client-metadata-url');
const clientMetadataUrl = cimdAt > 0 ? process.argv[cimdAt + 1] : undefined;
const REDIRECT = 'http://localhost:3031/callback';
const out = { ok: false };
const guard = setTimeout(() => {
  out.error = 'guard: no result in time';
  console.log(JSON.stringify(out));
  process.exit(1);
}, Number(process.env.SR_CLIENT_GUARD_MS || 30000));

class Provider {
  constructor() {
    this.saved = { client: undefined, tokens: undefined, verifier: undefined };
    this.code = undefined;
    this.iss = undefined;
    if (clientMetadataUrl) this.clientMetadataUrl = clientMetadataUrl;
  }
  get redirectUrl() { return REDIRECT; }
  get clientMetadata() {
    return { client_name: 'sr-system-test typescript', redirect_uris: [REDIRECT],
             grant_types: ['authorization_code', 'refresh_token'], response_types: ['code'],
             token_endpoint_auth_method: 'none' };
  }
  clientInformation() { return this.saved.client; }
  saveClientInformation(c) { this.saved.client = c; }
  tokens() { return this.saved.tokens; }
  saveTokens(t) { this.saved.tokens = t; }
  saveCodeVerifier(v) { this.saved.verifier = v; }
  codeVerifier() { return this.saved.verifier; }
  // The person's browser: the consent page, then the form (the CSRF cookie carried by hand).
  async redirectToAuthorization(authUrl) {
    const page = await fetch(authUrl, { redirect: 'manual' });
    if (page.status !== 200) throw new Error(`consent page: HTTP ${page.status}`);
    const cookie = (page.headers.get('set-cookie') || '').split(';')[0];
    const html = await page.text();
    const fields = new URLSearchParams();
    for (const m of html.matchAll(/<input type="hidden" name="([^"]+)" value="([^"]*)">/g))
      fields.set(m[1], m[2].replace(/&quot;/g, '"').replace(/&#39;/g, "'").replace(/&lt;/g, '<')
        .replace(/&gt;/g, '>').replace(/&amp;/g, '&'));
    fields.set('token', process.env.SR_CONSENT_TOKEN);
    fields.set('action', 'allow');
    const r = await fetch(new URL('/oauth/authorize', authUrl), {
      method: 'POST', redirect: 'manual', body: fields,
      headers: { 'content-type': 'application/x-www-form-urlencoded', cookie, origin: authUrl.origin },
    });
    if (r.status !== 302) throw new Error(`consent form: HTTP ${r.status}`);
    const back = new URL(r.headers.get('location'));
    this.code = back.searchParams.get('code');
    this.iss = back.searchParams.get('iss');
  }
}

async function session(provider, label) {
  const client = new Client({ name: `sr-oauth-${label}`, version: '1.0.0' });
  const transport = new StreamableHTTPClientTransport(new URL(url), { authProvider: provider });
  try {
    await client.connect(transport);
  } catch (e) {
    if (!(e instanceof UnauthorizedError)) throw e;
    // The SDK sent the person to the consent page; finish with the code it came back with.
    await transport.finishAuth(provider.code);
    return session(provider, label);
  }
  const tools = (await client.listTools()).tools.map((t) => t.name);
  await client.close();
  return tools;
}

try {
  const p = new Provider();
  out.tools = await session(p, 'first');
  out.client_id = p.saved.client?.client_id;
  out.iss = p.iss;
  const first = p.saved.tokens;
  // The SDK's refresh: auth() with a refresh token in store exchanges it.
  out.refresh = await auth(p, { serverUrl: url });
  out.rotated = p.saved.tokens.refresh_token !== first.refresh_token &&
                p.saved.tokens.access_token !== first.access_token;
  out.tools_after_refresh = (await session(p, 'refreshed')).length;
  out.ok = true;
} catch (e) {
  out.error = `${e?.name}: ${e?.message}`;
}
clearTimeout(guard);
console.log(JSON.stringify(out));
process.exit(out.ok ? 0 : 1);
