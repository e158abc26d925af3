// A real OpenID provider (the npm package oidc-provider) on 127.0.0.1 for test_oidc.py.
//
//   node oidc_provider.mjs <port> <keys.json> <resource>
//
// Issuer http://127.0.0.1:<port>. Signing keys: one RSA (RS256) and one P-256 (ES256) key,
// made on the first run and kept in keys.json so that a second provider (another issuer, same
// keys) can issue tokens that differ from ours only in iss. Tokens come from the
// client_credentials grant with a resource indicator (RFC 8707): JWT access tokens whose aud is
// the resource asked for and whose sub is the client's id; clients ending in "-es" get ES256
// tokens, the others RS256; "short" lives one second; "grouped" and "two-groups" carry a groups
// claim. Every client's secret is "secret-<client_id>".
//
// Besides the provider's own endpoints the script answers, for the test:
//   GET /test/jwks-fetches   how many times the JWKS was served
//   GET /test/jwks-view      the public JWKS with only the RSA key until /test/publish-all
//   POST /test/publish-all   from now on /test/jwks-view holds both keys
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as http from 'node:http';

import Provider from 'oidc-provider';

const [port, keysPath, resource] = process.argv.slice(2);
if (!port || !keysPath || !resource) {
  console.error('usage: node oidc_provider.mjs <port> <keys.json> <resource>');
  process.exit(2);
}

function makeKeys() {
  const rsa = crypto.generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey.export({ format: 'jwk' });
  const ec = crypto.generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey.export({ format: 'jwk' });
  return { keys: [{ ...rsa, kid: 'rsa-1', alg: 'RS256', use: 'sig' }, { ...ec, kid: 'ec-1', alg: 'ES256', use: 'sig' }] };
}

let jwks;
try {
  jwks = JSON.parse(fs.readFileSync(keysPath, 'utf8'));
} catch {
  jwks = makeKeys();
  fs.writeFileSync(keysPath, JSON.stringify(jwks), { mode: 0o600 });
}
const publicJwk = (k) => {
  const { d, p, q, dp, dq, qi, ...pub } = k; // eslint-disable-line no-unused-vars
  return pub;
};

const names = ['alice', 'alice-es', 'bob', 'short', 'nobody', 'grouped', 'two-groups'];
const clients = names.map((id) => ({
  client_id: id,
  client_secret: `secret-${id}`,
  grant_types: ['client_credentials'],
  redirect_uris: [],
  response_types: [],
  token_endpoint_auth_method: 'client_secret_post',
}));
const groups = { grouped: ['unrelated', 'team-a'], 'two-groups': ['team-a', 'team-b'] };

const provider = new Provider(`http://127.0.0.1:${port}`, {
  clients,
  jwks,
  features: {
    devInteractions: { enabled: false },
    clientCredentials: { enabled: true },
    resourceIndicators: {
      enabled: true,
      defaultResource: () => resource,
      useGrantedResource: () => true,
      getResourceServerInfo: (ctx, indicator, client) => ({
        scope: 'mcp',
        audience: indicator,
        accessTokenFormat: 'jwt',
        accessTokenTTL: client.clientId === 'short' ? 1 : 300,
        jwt: { sign: { alg: client.clientId.endsWith('-es') ? 'ES256' : 'RS256' } },
      }),
    },
  },
  extraTokenClaims: (ctx, token) => (groups[token.clientId] ? { groups: groups[token.clientId] } : undefined),
});
provider.proxy = false;

let fetches = 0;
let publishAll = false;
const callback = provider.callback();
const server = http.createServer((req, res) => {
  const path = req.url.split('?')[0];
  if (path === '/test/jwks-fetches') {
    res.setHeader('content-type', 'application/json');
    res.end(JSON.stringify({ fetches }));
    return;
  }
  if (path === '/test/publish-all' && req.method === 'POST') {
    publishAll = true;
    res.end('{}');
    return;
  }
  if (path === '/test/jwks-view') {
    fetches += 1;
    const keys = jwks.keys.filter((k) => publishAll || k.kty === 'RSA').map(publicJwk);
    res.setHeader('content-type', 'application/json');
    res.end(JSON.stringify({ keys }));
    return;
  }
  if (path === '/jwks') fetches += 1;
  callback(req, res);
});
server.listen(Number(port), '127.0.0.1', () => console.log(`oidc-provider on http://127.0.0.1:${port}`));
for (const sig of ['SIGTERM', 'SIGINT']) process.on(sig, () => server.close(() => process.exit(0)));
