"""An external identity provider (SERENA_REMOTE_OAUTH_ISSUER, docs/oauth.md), over real HTTP.

The provider is the npm package oidc-provider (tests/system/oidc_provider.mjs) on 127.0.0.1: it
publishes its discovery document and JWKS (one RSA and one P-256 key) and issues JWT access
tokens with the client_credentials grant and a resource indicator, so aud is what the test asks
for and sub is the client's id. The gateway maps sub to its static tokens' names with
SERENA_REMOTE_OAUTH_CLAIM_MAP. Every refusal is a 401 with error="invalid_token" whose reason is
in the gateway's log, never the token.
"""

from __future__ import annotations

import base64
import json
import os
import signal
import time
from pathlib import Path

import pytest

import peers
from peers import HOST, request

PROVIDER = peers.HERE / "oidc_provider.mjs"
MAP = {"alice": "alice", "alice-es": "alice", "short": "alice", "bob": "bob"}


def b64d(s: str) -> bytes:
    return base64.urlsafe_b64decode(s + "=" * (-len(s) % 4))


def b64e(b: bytes) -> str:
    return base64.urlsafe_b64encode(b).rstrip(b"=").decode()


def parts(jwt: str) -> tuple[dict, dict, str]:
    h, p, s = jwt.split(".")
    return json.loads(b64d(h)), json.loads(b64d(p)), s


class Provider:
    def __init__(self, proc: peers.Proc, port: int):
        self.proc, self.port = proc, port
        self.issuer = f"http://{HOST}:{port}"

    def token(self, client: str, resource: str) -> str:
        body = f"grant_type=client_credentials&client_id={client}&client_secret=secret-{client}&resource={resource}"
        r = request(self.port, "POST", "/token", body, {"Content-Type": "application/x-www-form-urlencoded"})
        assert r.status == 200, r
        return r.json()["access_token"]

    def fetches(self) -> int:
        return request(self.port, "GET", "/test/jwks-fetches").json()["fetches"]

    def stop(self):
        self.proc.stop()


def start_provider(run_dir: Path, name: str = "oidc") -> Provider:
    port = peers.free_port()
    proc = peers.Proc(name, ["node", PROVIDER, port, run_dir / "oidc-keys.json", f"http://{HOST}:1/mcp"],
                      run_dir / f"{name}-{port}.log")
    try:
        peers.wait_until(lambda: request(port, "GET", "/.well-known/openid-configuration").status == 200,
                         f"{name} discovery on {port}", proc)
    except BaseException:
        proc.stop()
        raise
    return Provider(proc, port)


@pytest.fixture(scope="module")
def idp(run_dir):
    p = start_provider(run_dir)
    yield p
    p.stop()


@pytest.fixture(scope="module")
def other_idp(run_dir, idp):
    """Another issuer with the same keys: its tokens differ from idp's only in iss."""
    p = start_provider(run_dir, "oidc-other")
    yield p
    p.stop()


def start_idp_gateway(run_dir, upstream_port, idp, tokens, extra_env=None, args=(), name="oidc-gw"):
    port = peers.free_port()
    env = {"API_TOKENS_JSON": json.dumps(tokens), "SERENA_REMOTE_PUBLIC_URL": f"http://{HOST}:{port}",
           "SERENA_REMOTE_OAUTH_ISSUER": idp.issuer, "SERENA_REMOTE_OAUTH_CLAIM_MAP": json.dumps(MAP),
           "OAUTH_ENABLED": None}
    env.update(extra_env or {})
    g = peers.start_gateway(run_dir, upstream_port, env=env, args=list(args), name=name, port=port)
    try:
        # The JWKS is fetched at start; tests begin once it is in.
        g.wait_log(lambda t: "usable key(s)" in t, "the JWKS loaded")
    except BaseException:
        g.stop()
        raise
    return g


@pytest.fixture(scope="module")
def ogw(run_dir, everything, idp, tokens):
    # No clock skew, so a one-second token is refused as soon as it expired.
    g = start_idp_gateway(run_dir, everything.port, idp, tokens, args=["--oauth-clock-skew", "0s"])
    yield g
    g.stop()


def resource(g) -> str:
    return f"http://{HOST}:{g.port}/mcp"


def status(g, token) -> peers.Resp:
    return request(g.port, "GET", "/status", None, {"Authorization": f"Bearer {token}"})


def route_of(g, token) -> str:
    r = status(g, token)
    assert r.status == 200, r
    return r.json()["route"]


def full_log(g) -> str:
    out = g.proc.stdout_path.read_text(errors="replace") if g.proc.stdout_path else ""
    return g.log_text() + out


def assert_refused(g, token, reason: str):
    """A 401 naming invalid_token, and one more log line with this reason (never the token)."""
    line = f"JWT refused: {reason}"
    seen = g.log_text().count(line)
    r = status(g, token)
    assert r.status == 401, r
    assert 'error="invalid_token"' in r.header("WWW-Authenticate"), r
    assert f'resource_metadata="http://{HOST}:{g.port}/.well-known/oauth-protected-resource/mcp"' in \
        r.header("WWW-Authenticate")
    g.wait_log(lambda t: t.count(line) > seen, f"the refusal's reason ({reason})")
    sig = token.split(".")[2]
    assert token not in full_log(g) and (not sig or sig not in full_log(g))
    assert token.encode() not in r.body


# ---------------------------------------------------------------------------------------------


def test_metadata_names_the_issuer(ogw, idp):
    for path in ("/.well-known/oauth-protected-resource", "/.well-known/oauth-protected-resource/mcp"):
        r = request(ogw.port, "GET", path)
        assert r.status == 200, r
        doc = r.json()
        assert doc["resource"] == resource(ogw)
        assert doc["authorization_servers"] == [idp.issuer]
    # Without OAUTH_ENABLED the built-in authorization server is not there.
    assert request(ogw.port, "GET", "/.well-known/oauth-authorization-server").status != 200
    assert request(ogw.port, "POST", "/oauth/register", "{}", {"Content-Type": "application/json"}).status != 201
    r = request(ogw.port, "POST", "/mcp", peers.init_body(), peers.mcp_headers(None))
    assert r.status == 401
    assert "resource_metadata=" in r.header("WWW-Authenticate") and "error=" not in r.header("WWW-Authenticate")


def test_rs256_and_es256_tokens_take_the_mapped_tokens_route(ogw, idp, tokens):
    alice, bob = tokens["alice"], tokens["bob"]
    rs = idp.token("alice", resource(ogw))
    es = idp.token("alice-es", resource(ogw))
    assert parts(rs)[0]["alg"] == "RS256" and parts(es)[0]["alg"] == "ES256"
    assert parts(rs)[1]["sub"] == "alice" and parts(es)[1]["sub"] == "alice-es"
    assert route_of(ogw, rs) == route_of(ogw, es) == route_of(ogw, alice) == "gen-1:alice"
    assert route_of(ogw, idp.token("bob", resource(ogw))) == route_of(ogw, bob) == "gen-1:bob"
    # MCP itself, and one identity: a session opened with the static token is the JWT's too,
    # and bob's is not.
    r = request(ogw.port, "POST", "/mcp", peers.init_body(), peers.mcp_headers(es))
    assert r.status == 200, r
    sid = peers.open_session(ogw.port, alice)
    r = request(ogw.port, "POST", "/mcp", peers.rpc(2, "tools/list"), peers.mcp_headers(rs, sid=sid))
    assert r.status == 200, r
    assert peers.body_messages(r)[0]["result"]["tools"]
    bob_sid = peers.open_session(ogw.port, bob)
    r = request(ogw.port, "POST", "/mcp", peers.rpc(3, "tools/list"), peers.mcp_headers(rs, sid=bob_sid))
    assert r.status == 404, r
    # Static tokens keep working beside JWTs; a wrong one is still refused.
    r = request(ogw.port, "POST", "/mcp", peers.init_body(), peers.mcp_headers(alice))
    assert r.status == 200, r
    assert status(ogw, "not-a-token-0123456789").status == 401
    assert rs not in full_log(ogw) and es not in full_log(ogw)


def test_refusals(ogw, idp, other_idp):
    good = idp.token("alice", resource(ogw))
    h, p, sig = parts(good)
    hb, pb = good.split(".")[:2]

    assert_refused(ogw, idp.token("alice", f"http://{HOST}:1/mcp"), "aud does not name")
    # Same keys, same claims but iss: only the issuer differs.
    foreign = other_idp.token("alice", resource(ogw))
    assert parts(foreign)[0]["kid"] == h["kid"]
    assert_refused(ogw, foreign, "iss is not the configured issuer")
    assert_refused(ogw, b64e(json.dumps({"alg": "none", "typ": "at+jwt"}).encode()) + "." + pb + ".",
                   "alg none")
    import hashlib
    import hmac
    hs_in = b64e(json.dumps({"alg": "HS256", "kid": h["kid"]}).encode()) + "." + pb
    hs = hs_in + "." + b64e(hmac.new(b"secret", hs_in.encode(), hashlib.sha256).digest())
    assert_refused(ogw, hs, "alg HS*")
    # A changed signature, and a payload changed to name bob under alice's signature.
    flipped = sig[:10] + ("A" if sig[10] != "A" else "B") + sig[11:]
    assert_refused(ogw, f"{hb}.{pb}.{flipped}", "the signature does not verify")
    p2 = dict(p, sub="bob")
    assert_refused(ogw, f"{hb}.{b64e(json.dumps(p2).encode())}.{sig}", "the signature does not verify")
    assert_refused(ogw, idp.token("nobody", resource(ogw)), "the mapped claim names no configured token")
    # A token that lives one second (mapped to alice like the others), once its exp has passed.
    # Nothing is asserted before: whether it is still valid at a given moment is a race.
    short = idp.token("short", resource(ogw))
    exp = parts(short)[1]["exp"]
    while time.time() < exp + 1:
        time.sleep(0.1)
    assert_refused(ogw, short, "expired (exp)")
    # In the query string: refused even though it is valid.
    r = request(ogw.port, "POST", "/mcp?access_token=" + good, peers.init_body(), peers.mcp_headers(None))
    assert r.status == 400, r
    assert good not in full_log(ogw)
    # ...and the valid token in its header still works after all that.
    assert route_of(ogw, good) == "gen-1:alice"


def test_unknown_kid_refreshes_the_jwks_once(run_dir, everything, idp, tokens):
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa, utils

    g = start_idp_gateway(run_dir, everything.port, idp, tokens, name="oidc-kid")
    try:
        _, p, _ = parts(idp.token("alice", resource(g)))
        rogue = rsa.generate_private_key(public_exponent=65537, key_size=2048)

        def signed(kid: str, alg: str = "RS256", key=rogue) -> str:
            si = b64e(json.dumps({"alg": alg, "typ": "at+jwt", "kid": kid}).encode()) + "." + \
                b64e(json.dumps(p).encode())
            if alg == "RS256":
                s = key.sign(si.encode(), padding.PKCS1v15(), hashes.SHA256())
            else:
                r_, s_ = utils.decode_dss_signature(key.sign(si.encode(), ec.ECDSA(hashes.SHA256())))
                s = r_.to_bytes(32, "big") + s_.to_bytes(32, "big")
            return si + "." + b64e(s)

        # A key type that does not match alg: ES256 under the RSA key's kid fits no key. It is
        # judged as an unknown kid: one refresh, still refused.
        before = idp.fetches()
        eck = ec.generate_private_key(ec.SECP256R1())
        assert_refused(g, signed("rsa-1", "ES256", eck), "no key of the JWKS fits")
        assert idp.fetches() == before + 1
        g.wait_log(lambda t: "refreshing it" in t, "the refresh for an unknown kid")
        # Signed with a key the issuer never published, under a kid it does not have: the
        # refresh just made is not made again, whatever the kids.
        for i in range(5):
            assert_refused(g, signed(f"rogue-{i}"), "no key of the JWKS fits")
        assert idp.fetches() == before + 1
        # ...and under the issuer's own kid, the signature fails.
        assert_refused(g, signed("rsa-1"), "the signature does not verify")
        assert route_of(g, idp.token("alice-es", resource(g))) == "gen-1:alice"
    finally:
        g.stop()


def test_a_new_kid_is_held_until_the_refresh_then_accepted(run_dir, everything, idp, tokens):
    """The JWKS the gateway reads (the provider's /test/jwks-view) holds only the RSA key at
    start; the EC key is published later. A token under it waits for the refresh and passes."""
    g = start_idp_gateway(run_dir, everything.port, idp, tokens, name="oidc-held",
                          extra_env={"SERENA_REMOTE_OAUTH_JWKS_URL": f"{idp.issuer}/test/jwks-view"})
    try:
        assert "1 usable key(s)" in g.log_text()
        assert route_of(g, idp.token("alice", resource(g))) == "gen-1:alice"
        assert request(idp.port, "POST", "/test/publish-all").status == 200
        before = idp.fetches()
        es = idp.token("alice-es", resource(g))
        r = request(g.port, "POST", "/mcp", peers.init_body(), peers.mcp_headers(es))
        assert r.status == 200, r
        assert idp.fetches() == before + 1
        assert "2 usable key(s)" in g.log_text()
    finally:
        g.stop()


def test_a_group_claim_and_the_built_in_server_beside(run_dir, tmp_dir, everything, idp, tokens):
    """--oauth-claim groups (an array): the one group the map knows names the token; two
    groups naming two tokens are ambiguous; a map entry naming no token is warned of at start.
    With OAUTH_ENABLED=1 too, the built-in server stays and is listed after the issuer."""
    toks = dict(tokens, shared=peers.new_token("shared"))
    g = start_idp_gateway(run_dir, everything.port, idp, toks, name="oidc-groups", extra_env={
        "SERENA_REMOTE_OAUTH_CLAIM": "groups", "OAUTH_ENABLED": "1",
        "SERENA_REMOTE_OAUTH_CLAIM_MAP": json.dumps({"team-a": "shared", "team-b": "bob", "team-c": "carol"})},
        args=["--state-dir", str(tmp_dir / "state")])
    try:
        # The operator hears of a map entry whose token is not configured.
        assert "CLAIM_MAP names 1 token(s) that are not configured (carol)" in g.log_text()
        grouped = idp.token("grouped", resource(g))
        assert parts(grouped)[1]["groups"] == ["unrelated", "team-a"]
        assert route_of(g, grouped) == route_of(g, toks["shared"]) == "gen-1:shared"
        assert_refused(g, idp.token("two-groups", resource(g)), "the mapped claim names more than one token")
        assert_refused(g, idp.token("alice", resource(g)), "the token lacks the mapped claim")
        doc = request(g.port, "GET", "/.well-known/oauth-protected-resource").json()
        assert doc["authorization_servers"] == [idp.issuer, f"http://{HOST}:{g.port}"]
        assert request(g.port, "GET", "/.well-known/oauth-authorization-server").json()["issuer"] == \
            f"http://{HOST}:{g.port}"
    finally:
        g.stop()


def test_a_token_removed_by_sighup_refuses_its_jwts(run_dir, tmp_dir, everything, idp):
    """The token table is read at each request: bob's JWTs end with bob's token, and the map
    entry naming bob is warned of."""
    alice, bob = peers.new_token("alice"), peers.new_token("bob")
    tf = tmp_dir / "tokens.json"
    tf.write_text(json.dumps({"alice": alice, "bob": bob}))
    g = start_idp_gateway(run_dir, everything.port, idp, {}, name="oidc-hup",
                          extra_env={"API_TOKENS_JSON": None, "API_TOKENS_FILE": str(tf)})
    try:
        jwt = idp.token("bob", resource(g))
        assert route_of(g, jwt) == "gen-1:bob"
        assert "not configured" not in g.log_text()
        tf.write_text(json.dumps({"alice": alice}))
        os.kill(g.proc.pid, signal.SIGHUP)
        g.wait_log(lambda t: "SIGHUP: reloaded 1 token(s)" in t, "the reload")
        assert "CLAIM_MAP names 1 token(s) that are not configured (bob)" in g.log_text()
        assert_refused(g, jwt, "the mapped claim names no configured token")
        assert route_of(g, idp.token("alice", resource(g))) == "gen-1:alice"
    finally:
        g.stop()


def test_same_instance_as_the_static_token(instance_gateway_factory, tmp_dir, idp):
    """`serve` with per-token instances: a JWT mapped to alice reaches alice's instance."""
    alice, bob = peers.new_token("alice"), peers.new_token("bob")
    port = peers.free_port()
    g = instance_gateway_factory(tmp_dir / "state", env={
        "API_TOKENS_JSON": json.dumps({"alice": alice, "bob": bob}),
        "SERENA_REMOTE_PUBLIC_URL": f"http://{HOST}:{port}", "SERENA_REMOTE_OAUTH_ISSUER": idp.issuer,
        "SERENA_REMOTE_OAUTH_CLAIM_MAP": json.dumps(MAP)}, name="oidc-inst", port=port)
    g.wait_log(lambda t: "usable key(s)" in t, "the JWKS loaded")
    jwt = idp.token("alice-es", resource(g))
    peers.assert_one_identity(g, jwt, alice, bob)
    assert g.status(jwt)["route"] == "gen-1:alice"


@pytest.mark.parametrize("env,message", [
    ({"SERENA_REMOTE_OAUTH_ISSUER": "http://idp.example.com"}, "http is allowed only on a loopback host"),
    ({"SERENA_REMOTE_OAUTH_ISSUER": "https://idp.example.com", "SERENA_REMOTE_PUBLIC_URL": ""},
     "needs SERENA_REMOTE_PUBLIC_URL"),
    ({"SERENA_REMOTE_OAUTH_ISSUER": "https://idp.example.com", "SERENA_REMOTE_OAUTH_CLAIM_MAP": '{"a":"no spaces"}'},
     "SERENA_REMOTE_OAUTH_CLAIM_MAP is invalid"),
    ({"SERENA_REMOTE_OAUTH_ISSUER": "https://idp.example.com", "SERENA_REMOTE_OAUTH_CLOCK_SKEW": "10m"},
     "expected a duration from 0s to 5m"),
])
def test_settings_refused(gateway_bin, tmp_dir, env, message):
    full = {"API_TOKEN": peers.new_token("x"), "SERENA_REMOTE_PUBLIC_URL": "https://mcp.example.com",
            "SERENA_REMOTE_ADMIN_LISTEN": "off"}
    full.update(env)
    r = peers.run_cmd([gateway_bin, "serve", "--listen", f"{HOST}:{peers.free_port()}",
                       "--upstream", f"http://{HOST}:1/mcp", "--state-dir", tmp_dir / "st"], env=full, guard=20)
    assert r.returncode == 2, r
    assert message in r.stderr.decode()


def test_jwt_verdicts_in_metrics(run_dir, everything, idp, tokens):
    """The admin listener's /metrics counts JWTs accepted and refused (one request each)."""
    admin = peers.free_port()
    g = start_idp_gateway(run_dir, everything.port, idp, tokens, name="oidc-metrics",
                          extra_env={"SERENA_REMOTE_ADMIN_LISTEN": f"{HOST}:{admin}"})
    try:
        good = idp.token("alice", resource(g))
        wrong_aud = idp.token("alice", "http://127.0.0.1:1/mcp")
        assert status(g, good).status == 200
        assert status(g, wrong_aud).status == 401
        text = request(admin, "GET", "/metrics").body.decode()
        assert 'serena_remote_oauth_events_total{event="jwt_accepted"} 1\n' in text, text
        assert 'serena_remote_oauth_events_total{event="jwt_refused"} 1\n' in text, text
        assert good not in text and wrong_aud not in text
    finally:
        g.stop()
