"""Client ID metadata documents (CIMD) in the built-in OAuth server (docs/oauth.md).

A client identifies itself with an https URL; the gateway fetches the JSON document there
(bounded, no redirects, certificate checked, public addresses only unless
SERENA_REMOTE_OAUTH_CIMD=loopback) and uses it as the registration. The document is served by a
real HTTPS server on 127.0.0.1 (tests/system/stubs/https_docs.py) with a certificate from a CA
made for the test, which the gateway trusts through SSL_CERT_FILE.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

import peers
from peers import HOST, request
from test_oauth import (FORM, REDIRECT, authz_params, consent_page, consent_post, exchange, form,
                        location_params, mcp_init, pkce, pub, refresh, start_oauth_gateway)

STUB = Path(__file__).parent / "stubs" / "https_docs.py"


def make_ca(d: Path) -> tuple[Path, Path, Path]:
    """A CA and a server certificate for localhost / 127.0.0.1 (openssl CLI)."""
    def ossl(*a):
        subprocess.run(["openssl", *a], check=True, capture_output=True, cwd=d)
    ossl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
         "-keyout", "ca.key", "-out", "ca.pem", "-days", "2", "-subj", "/CN=serena-remote test CA")
    ossl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout",
         "srv.key", "-out", "srv.csr", "-subj", "/CN=localhost")
    (d / "ext.cnf").write_text("subjectAltName=DNS:localhost,IP:127.0.0.1\n")
    ossl("x509", "-req", "-in", "srv.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial",
         "-out", "srv.pem", "-days", "2", "-extfile", "ext.cnf")
    return d / "ca.pem", d / "srv.pem", d / "srv.key"


class Docs:
    def __init__(self, run_dir: Path, tmp_dir: Path):
        self.dir = tmp_dir / "docs"
        self.dir.mkdir()
        certs = tmp_dir / "certs"
        certs.mkdir()
        self.ca, cert, key = make_ca(certs)
        self.port = peers.free_port()
        self.out = run_dir / f"https-docs-{self.port}.stdout"
        self.proc = peers.Proc("https-docs", [sys.executable, STUB, self.port, cert, key, self.dir],
                               run_dir / f"https-docs-{self.port}.log", stdout_path=self.out)
        self.put("ready.json", {"ready": True})
        import ssl
        import urllib.request
        ctx = ssl.create_default_context(cafile=str(self.ca))

        def ready():
            try:
                with urllib.request.urlopen(f"https://localhost:{self.port}/ready.json", context=ctx,
                                            timeout=2) as r:
                    return r.status == 200
            except OSError:
                return False
        try:
            peers.wait_until(ready, "https_docs answering", self.proc)
        except BaseException:
            self.proc.stop()
            raise

    def url(self, name: str, host: str = "localhost") -> str:
        return f"https://{host}:{self.port}/{name}"

    def put(self, name: str, doc, cache_control: str | None = None) -> str:
        (self.dir / name).write_text(doc if isinstance(doc, str) else json.dumps(doc))
        if cache_control:
            (self.dir / (name + ".cache-control")).write_text(cache_control)
        return self.url(name)

    def client(self, name: str, **over) -> str:
        """Publish a valid client document under name; returns its client_id URL."""
        url = self.url(name)
        doc = {"client_id": url, "client_name": "CIMD app", "redirect_uris": [REDIRECT],
               "grant_types": ["authorization_code", "refresh_token"],
               "token_endpoint_auth_method": "none"}
        doc.update(over)
        self.put(name, {k: v for k, v in doc.items() if v is not None})
        return url

    def fetches(self, name: str) -> int:
        return sum(1 for line in self.out.read_text().splitlines() if line == "/" + name)


@pytest.fixture
def docs(run_dir, tmp_dir):
    d = Docs(run_dir, tmp_dir)
    yield d
    d.proc.stop()


def cimd_gateway(run_dir, tmp_dir, everything, tokens, docs, mode="loopback", trust=True, name="cimd"):
    env = {"API_TOKENS_JSON": json.dumps(tokens), "SERENA_REMOTE_OAUTH_CIMD": mode}
    env["SSL_CERT_FILE"] = str(docs.ca) if trust else str(tmp_dir / "no-such-bundle.pem")
    return start_oauth_gateway(run_dir, everything.port, tmp_dir / f"state-{name}", env, name=name)


def authorize(g, client_id: str):
    verifier, challenge = pkce()
    r, fields, cookie = consent_page(g, authz_params(g, client_id, challenge))
    return r, fields, cookie, verifier


def test_metadata_document_client_signs_in(run_dir, tmp_dir, everything, tokens, docs):
    alice = tokens["alice"]
    cid = docs.client("client.json", client_name="CIMD <b>app</b>")
    docs.put("client.json.cache-control", "max-age=600")
    g = cimd_gateway(run_dir, tmp_dir, everything, tokens, docs)
    port = g.port
    try:
        meta = request(g.port, "GET", "/.well-known/oauth-authorization-server").json()
        assert meta["client_id_metadata_document_supported"] is True

        r, fields, cookie, verifier = authorize(g, cid)
        assert r.status == 200, r
        page = r.body.decode()
        assert "CIMD &lt;b&gt;app&lt;/b&gt;" in page and "unverified" in page
        assert f"published at <strong>localhost:{docs.port}</strong>" in page
        assert "different host" in page  # the redirect goes to localhost:33418, not the publisher
        assert fields["client_id"] == cid
        q = location_params(consent_post(g, fields, cookie, alice))
        tok = exchange(g, {"client_id": cid, "code": q["code"], "verifier": verifier})
        assert tok.status == 200, tok
        at, rt = tok.json()["access_token"], tok.json()["refresh_token"]
        assert mcp_init(g, at).status == 200
        assert docs.fetches("client.json") == 1

        # Fresh for its max-age: a second sign-in does not fetch again.
        r, fields, cookie, verifier = authorize(g, cid)
        assert r.status == 200, r
        assert docs.fetches("client.json") == 1

        # The token endpoint knows the client by its URL; another client's id is refused.
        r2 = refresh(g, cid, rt)
        assert r2.status == 200, r2
        rt2 = r2.json()["refresh_token"]
        other = docs.client("other.json")
        assert refresh(g, other, rt2).status == 401  # never fetched: unknown client
    finally:
        g.stop()
    assert "m " in (tmp_dir / "state-cimd" / "oauth.state").read_text()

    # A restart keeps the client and its grants (oauth.state), without fetching again.
    g = peers.start_gateway(run_dir, everything.port, name="cimd-again", port=port,
                            env={"OAUTH_ENABLED": "1", "SERENA_REMOTE_PUBLIC_URL": f"http://{HOST}:{port}",
                                 "API_TOKENS_JSON": json.dumps(tokens), "SERENA_REMOTE_OAUTH_CIMD": "loopback",
                                 "SSL_CERT_FILE": str(docs.ca)},
                            args=["--state-dir", str(tmp_dir / "state-cimd")])
    try:
        r3 = refresh(g, cid, rt2)
        assert r3.status == 200, r3
        at3 = r3.json()["access_token"]
        assert mcp_init(g, at3).status == 200
        r = request(g.port, "POST", "/oauth/revoke", form({"token": r3.json()["refresh_token"], "client_id": cid}), FORM)
        assert r.status == 200
        assert mcp_init(g, at3).status == 401
        assert docs.fetches("client.json") == 1
    finally:
        g.stop()


def test_document_refusals(run_dir, tmp_dir, everything, tokens, docs):
    g = cimd_gateway(run_dir, tmp_dir, everything, tokens, docs)
    try:
        def page_for(cid: str, redirect: str = REDIRECT):
            verifier, challenge = pkce()
            r = request(g.port, "GET", "/oauth/authorize?" + form(authz_params(g, cid, challenge,
                                                                                redirect_uri=redirect)))
            assert r.header("Location") is None  # never redirected to an unverified client
            return r.status, r.body.decode()

        cases = {
            "mismatch.json": ({"client_id": docs.url("elsewhere.json")}, "not exactly the URL"),
            "secret.json": ({"client_secret": "s3cret"}, "client_secret"),
            "auth.json": ({"token_endpoint_auth_method": "client_secret_basic"}, "public clients"),
            "noredirect.json": ({"redirect_uris": None}, "redirect_uris"),
            "badredirect.json": ({"redirect_uris": ["http://evil.example/cb"]}, "redirect URI"),
        }
        for name, (over, want) in cases.items():
            cid = docs.client(name, **over)
            status, body = page_for(cid)
            assert status == 400 and want in body, (name, status, body)
        big = docs.client("big.json", client_name="x" * 100, logo_uri="https://x/" + "y" * 6000)
        status, body = page_for(big)
        assert status == 400 and "larger than" in body
        docs.put("notjson.json", "<html>not json</html>")
        status, body = page_for(docs.url("notjson.json"))
        assert status == 400 and "not a JSON object" in body
        status, body = page_for(docs.url("missing.json"))
        assert status == 400 and "answered 404" in body
        status, body = page_for(docs.url("redirect"))
        assert status == 400 and "redirects are not followed" in body
        # A redirect URI the document does not list: the page, never a redirect.
        ok = docs.client("ok.json")
        status, body = page_for(ok, redirect="http://localhost:1234/elsewhere")
        assert status == 400 and "not one the application registered" in body
        # URL rules, before any fetch.
        for cid, want in ((f"https://localhost:{docs.port}/", "must have a path"),
                          (f"https://localhost:{docs.port}/a/../ok.json", "'..'"),
                          (f"https://u@localhost:{docs.port}/ok.json", "user information")):
            status, body = page_for(cid)
            assert status == 400 and want in html_unescape(body), (cid, body)
        assert docs.fetches("ok.json") == 1  # only the redirect_uri case above fetched it
    finally:
        g.stop()


def html_unescape(s: str) -> str:
    import html
    return html.unescape(s)


def test_public_only_untrusted_and_off(run_dir, tmp_dir, everything, tokens, docs):
    cid = docs.client("client.json")
    verifier, challenge = pkce()
    q = "/oauth/authorize?"
    # on (the default): a client_id URL that resolves to loopback is never fetched.
    g = cimd_gateway(run_dir, tmp_dir, everything, tokens, docs, mode="on", name="cimd-on")
    try:
        r = request(g.port, "GET", q + form(authz_params(g, cid, challenge)))
        assert r.status == 400 and b"not public" in r.body, r
        r = request(g.port, "GET", q + form(authz_params(g, docs.url("client.json", host="127.0.0.1"), challenge)))
        assert r.status == 400 and b"not a public address" in r.body, r
    finally:
        g.stop()
    # A certificate the gateway does not trust.
    g = cimd_gateway(run_dir, tmp_dir, everything, tokens, docs, trust=False, name="cimd-untrusted")
    try:
        r = request(g.port, "GET", q + form(authz_params(g, cid, challenge)))
        assert r.status == 400 and b"certificate" in r.body, r
    finally:
        g.stop()
    # off: the metadata says so and the page explains.
    g = cimd_gateway(run_dir, tmp_dir, everything, tokens, docs, mode="off", name="cimd-off")
    try:
        meta = request(g.port, "GET", "/.well-known/oauth-authorization-server").json()
        assert meta["client_id_metadata_document_supported"] is False
        r = request(g.port, "GET", q + form(authz_params(g, cid, challenge)))
        assert r.status == 400 and b"SERENA_REMOTE_OAUTH_CIMD=off" in r.body, r
    finally:
        g.stop()
    assert docs.fetches("client.json") == 0


def test_typescript_sdk_with_a_metadata_document(run_dir, tmp_dir, everything, tokens, docs):
    """The TypeScript SDK given clientMetadataUrl: it sees client_id_metadata_document_supported
    and uses the URL as its client_id instead of registering; the gateway fetches the document."""
    cid = docs.client("ts-client.json", client_name="sr-system-test typescript",
                      redirect_uris=["http://localhost:3031/callback"])
    g = cimd_gateway(run_dir, tmp_dir, everything, tokens, docs)
    try:
        r = peers.run_cmd(["node", peers.HERE / "clients" / "ts_oauth_client.mjs", g.url,
                           "--client-metadata-url", cid],
                          env={"SR_CONSENT_TOKEN": tokens["alice"]}, guard=60)
        out = json.loads(r.stdout.decode().strip().splitlines()[-1])
        assert out["ok"], (out, r.stderr.decode()[-2000:])
        assert out["client_id"] == cid and out["tools"] and out["rotated"]
        assert docs.fetches("ts-client.json") == 1
        assert f"client metadata document {cid} read" in g.log_text()
    finally:
        g.stop()
