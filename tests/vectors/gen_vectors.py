#!/usr/bin/env python3
"""Writes the shared test vectors (auth.json, classify.json, policy.json, tokens.json, health.json).

The vectors are the contract between the native core and core.wasm: run_vectors (C) and
run_wasm.mjs (Node) read the same files and must reach the same decisions. This script is the
readable source of the cases; rerun it after editing and commit both it and the JSON.
"""
import hashlib
import json
import os

HERE = os.path.dirname(os.path.abspath(__file__))

TOK_S = "singleton-secret-0123456789"
TOK_A = "alpha-token-0123456789abcdef"
TOK_B = "bravoTOKEN0123456789+/=="
TOK_C = "charlie~token.0123456789_xyz"  # configured only as sha256:
TOK_X = "unknown-token-0123456789abcd"  # configured nowhere
SECRETS = [TOK_S, TOK_A, TOK_B, TOK_C, TOK_X]
NAMES = ["alice", "bob", "carol"]


def sha(s):
    return hashlib.sha256(s.encode()).hexdigest()


def tname(s):
    return "t-" + sha(s)[:16]


BASE = {
    "api_token": TOK_S,
    "tokens_json": {"alice": TOK_A, "bob": TOK_B, "carol": "sha256:" + sha(TOK_C)},
}
ACC = "application/json, text/event-stream"
INIT = {"jsonrpc": "2.0", "id": 1, "method": "initialize",
        "params": {"protocolVersion": "2025-06-18", "capabilities": {},
                   "clientInfo": {"name": "vectors", "version": "1"}}}
LIST = {"jsonrpc": "2.0", "id": 7, "method": "tools/list"}
INITIALIZED = {"jsonrpc": "2.0", "method": "notifications/initialized"}

# MCP 2026-07-28: every request carries its envelope in params._meta (docs/mcp-2026-07-28.md).
V26 = "2026-07-28"
META_PV = "io.modelcontextprotocol/protocolVersion"


def envelope(version=V26):
    return {META_PV: version, "io.modelcontextprotocol/clientInfo": {"name": "vectors", "version": "1"},
            "io.modelcontextprotocol/clientCapabilities": {}}


def rpc26(method, params=None, rid=11, version=V26):
    p = dict(params or {})
    p["_meta"] = envelope(version)
    m = {"jsonrpc": "2.0", "method": method, "params": p}
    if rid is not None:
        m["id"] = rid
    return m


def sreq(method, params=None, rid=11, version=V26, mm="same", mn=None, pv=V26, session=None,
         **kw):
    """A 2026-07-28 POST: MCP-Protocol-Version pv, Mcp-Method mm ("same": the body's), Mcp-Name mn."""
    extra = {}
    if pv is not None:
        extra["pv"] = pv
    if mm is not None:
        extra["mm"] = method if mm == "same" else mm
    if mn is not None:
        extra["mn"] = mn
    body = kw.pop("body", None)
    return req("POST", session=session, body=body if body is not None else rpc26(method, params, rid, version),
               **extra, **kw)


def b64(s):
    import base64
    return "=?base64?" + base64.b64encode(s.encode()).decode() + "?="


def stateless(**kw):
    return fwd(stateless=True, protocol_version=V26, is_initialize=False, shim=None, **kw)


def mismatch(**kw):
    kw.setdefault("body_json", {"error": {"code": -32020}})
    return reject(400, stateless=False, **kw)


def req(method="POST", path="/mcp", token=TOK_A, session="s-1", body=None, accept=ACC,
        auth=None, **extra):
    headers = {}
    if auth is not None:
        headers["authorization"] = auth
    elif token is not None:
        headers["authorization"] = "Bearer " + token
    if session is not None:
        headers["mcp-session-id"] = session
    if accept is not None:
        headers["accept"] = accept
    for k in ("origin",):
        if k in extra:
            headers[k] = extra.pop(k)
    # MCP 2026-07-28 headers, given as pv= (MCP-Protocol-Version), mm= (Mcp-Method), mn= (Mcp-Name).
    for k, h in (("pv", "mcp-protocol-version"), ("mm", "mcp-method"), ("mn", "mcp-name")):
        if k in extra:
            headers[h] = extra.pop(k)
    r = {"method": method, "path": path, "headers": headers}
    if body is not None:
        r["body"] = body if isinstance(body, str) else json.dumps(body)
    r.update(extra)
    return r


def case(name, request, forbid_names=None, **expect):
    c = {"name": name, "request": request, "expect": expect}
    forbid = list(SECRETS)
    # Refusals never name a token entry; forwards carry the route, which does.
    if forbid_names or (forbid_names is None and expect.get("action") == "reject"):
        forbid += NAMES
    c["forbid"] = forbid
    return c


def reject(status, **kw):
    return dict(action="reject", status=status, **kw)


def fwd(route="gen-1:alice", index=1, **kw):
    return dict(action="forward", route=route, token_index=index, **kw)


def write(name, doc):
    with open(os.path.join(HERE, name), "w") as f:
        json.dump(doc, f, indent=1, ensure_ascii=False)
        f.write("\n")
    return len(doc["cases"])


# ---------------------------------------------------------------- auth.json
A = []
ok_auth = [
    ("scheme in lower case", "bearer " + TOK_A),
    ("scheme in upper case", "BEARER " + TOK_A),
    ("several spaces after the scheme", "Bearer    " + TOK_A),
    ("trailing spaces and tabs", "Bearer " + TOK_A + " \t "),
    ("token68 with padding", "Bearer " + TOK_B),
]
for n, h in ok_auth:
    idx = 2 if h.strip().endswith(TOK_B) else 1
    A.append(case("accepted: " + n, req("POST", auth=h, body=LIST),
                  **fwd("gen-1:bob" if idx == 2 else "gen-1:alice", idx)))
bad_auth = [
    ("no Authorization header", None, "had none"),
    ("Basic scheme", "Basic YWxpY2U6c2VjcmV0", "not a usable Bearer"),
    ("scheme only", "Bearer", "not a usable Bearer"),
    ("scheme and spaces only", "Bearer   ", "not a usable Bearer"),
    ("tab instead of space", "Bearer\t" + TOK_A, "not a usable Bearer"),
    ("no separator", "Bearer" + TOK_A, "not a usable Bearer"),
    ("two credentials", "Bearer " + TOK_A + ", Bearer " + TOK_B, "not a usable Bearer"),
    ("two tokens", "Bearer " + TOK_A + " " + TOK_B, "not a usable Bearer"),
    ("quoted token", "Bearer \"" + TOK_A + "\"", "not a usable Bearer"),
    ("leading space", " Bearer " + TOK_A, "not a usable Bearer"),
    ("padding in the middle", "Bearer abc=def0123456789abcdef", "not a usable Bearer"),
    ("Bearer sha256: form presented", "Bearer sha256:" + sha(TOK_C), "not a usable Bearer"),
    ("token longer than 4096", "Bearer " + "a" * 4097, "not a usable Bearer"),
    ("unknown token", "Bearer " + TOK_X, "matches no configured token"),
    ("known token plus one byte", "Bearer " + TOK_A + "x", "matches no configured token"),
    ("known token minus one byte", "Bearer " + TOK_A[:-1], "matches no configured token"),
    ("known token in another case", "Bearer " + TOK_A.upper(), "matches no configured token"),
    ("the configured sha256 digest as a token", "Bearer " + sha(TOK_C),
     "matches no configured token"),
]
for n, h, msg in bad_auth:
    r = req("POST", body=LIST, token=None, auth=h)
    if h is None:
        r["headers"].pop("authorization", None)
    A.append(case("refused: " + n, r, **reject(401, www_authenticate=True, body_contains=msg,
                                               body_json={"error": {"code": -32001}, "id": None})))
A.append(case("token stored as sha256: matches its plaintext",
              req("POST", token=TOK_C, body=LIST), **fwd("gen-1:carol", 3)))
A.append(case("API_TOKEN is the singleton route", req("POST", token=TOK_S, body=LIST),
              **fwd("gen-1:singleton", 0)))
A.append(case("host-computed digest is used when given",
              req("POST", auth="Bearer whatever-the-host-hashed-0123", digest=sha(TOK_B), body=LIST),
              **fwd("gen-1:bob", 2)))
A.append(case("host digest is ignored when the header is not Bearer",
              req("POST", auth="Basic Zm9vOmJhcg==", digest=sha(TOK_B), body=LIST),
              **reject(401, www_authenticate=True)))
A.append(case("auth is checked before the body is parsed",
              req("POST", token=TOK_X, body="{not json"),
              **reject(401, body_json={"error": {"code": -32001}, "id": None})))
A.append(case("401 carries no id even when the body has one",
              req("POST", token=None, body={"jsonrpc": "2.0", "id": "req-9", "method": "tools/list"}),
              **reject(401, rpc_id="", body_json={"id": None})))
n_auth = write("auth.json", {"config": BASE, "cases": A})

# ---------------------------------------------------------------- classify.json
C = []
C += [
    case("GET /health needs no token", req("GET", "/health", token=None, session=None),
         **dict(action="health", status=200)),
    case("HEAD /health", req("HEAD", "/health", token=None, session=None),
         **dict(action="health", status=200)),
    case("GET /health with a wrong token is still answered",
         req("GET", "/health", token=TOK_X, session=None), **dict(action="health")),
    case("POST /health is 405", req("POST", "/health", session=None, body=LIST),
         **reject(405, allow="GET, HEAD")),
    case("DELETE /health is 405", req("DELETE", "/health", token=None, session=None),
         **reject(405, allow="GET, HEAD")),
    case("OAuth authorization server metadata probe",
         req("GET", "/.well-known/oauth-authorization-server", token=None, session=None),
         **reject(404, body_contains="OAuth discovery", body_json={"id": None})),
    case("OAuth protected resource probe with a path",
         req("GET", "/.well-known/oauth-protected-resource/mcp", token=None, session=None),
         **reject(404, body_contains="Bearer")),
    case("well-known with a valid token is still 404 and not forwarded",
         req("POST", "/.well-known/openid-configuration", session=None),
         **reject(404, route="")),
    case("bare /.well-known", req("GET", "/.well-known", token=None, session=None),
         **reject(404, body_contains="OAuth")),
    case("unknown path", req("GET", "/sse", token=None, session=None),
         **reject(404, body_contains="<this gateway's URL>/mcp")),
    case("root path", req("GET", "/", session=None), **reject(404)),
    case("trailing slash is not /mcp", req("POST", "/mcp/", body=LIST), **reject(404)),
    case("path is case-sensitive", req("POST", "/MCP", body=LIST), **reject(404)),
    case("GET /status with a valid token", req("GET", "/status", session=None),
         **dict(action="status", status=200, token_index=1, route="gen-1:alice")),
    case("GET /status as the singleton", req("GET", "/status", token=TOK_S, session=None),
         **dict(action="status", token_index=0, route="gen-1:singleton")),
    case("GET /status without a token", req("GET", "/status", token=None, session=None),
         **reject(401, www_authenticate=True)),
    case("GET /status with an unknown token", req("GET", "/status", token=TOK_X, session=None),
         **reject(401, www_authenticate=True)),
    case("POST /status is 405", req("POST", "/status", session=None), **reject(405, allow="GET")),
    # Origin.
    case("an Origin is refused when ALLOWED_ORIGINS is unset",
         req("POST", body=INIT, session=None, origin="https://evil.example"),
         **reject(403, body_contains="ALLOWED_ORIGINS")),
    case("Origin is checked before the token",
         req("POST", body=INIT, session=None, token=None, origin="http://localhost:6274"),
         **reject(403, www_authenticate=False)),
    case("an empty Origin header is still an Origin",
         req("POST", body=LIST, origin=""), **reject(403)),
    # Methods.
    case("PUT /mcp is 405", req("PUT", body=LIST), **reject(405, allow="GET, POST, DELETE")),
    case("OPTIONS /mcp is 405 before auth", req("OPTIONS", token=None),
         **reject(405, allow="GET, POST, DELETE", www_authenticate=False)),
    case("PATCH /mcp is 405", req("PATCH"), **reject(405)),
    case("methods are case-sensitive", req("post", body=LIST), **reject(405)),
    # Size.
    case("body over the limit is 413", req("POST", body=LIST, body_too_large=True),
         **reject(413, body_contains="limit of 4194304 bytes")),
    case("token is checked before the size", req("POST", token=None, body_too_large=True),
         **reject(401)),
    # Parsing.
    case("truncated JSON", req("POST", body="{\"jsonrpc\":\"2.0\","),
         **reject(400, body_contains="Parse error", body_json={"error": {"code": -32700}})),
    case("empty POST body", req("POST", body=""),
         **reject(400, body_json={"error": {"code": -32700}})),
    case("trailing comma", req("POST", body="{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"x\",}"),
         **reject(400, body_json={"error": {"code": -32700}})),
    case("duplicate keys are refused",
         req("POST", body="{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/list\",\"method\":\"initialize\"}"),
         **reject(400, body_json={"error": {"code": -32700}})),
    case("invalid UTF-8 in the body",
         req("POST", body_hex=("{\"method\":\"a\xff\"}".encode("latin-1")).hex()),
         **reject(400, body_json={"error": {"code": -32700}})),
    case("trailing garbage after the value", req("POST", body=json.dumps(LIST) + " x"),
         **reject(400, body_json={"error": {"code": -32700}})),
    case("a JSON string is not a message", req("POST", body="\"hi\""),
         **reject(400, body_json={"error": {"code": -32600}})),
    case("an empty batch is not a message", req("POST", body="[]"),
         **reject(400, body_json={"error": {"code": -32600}})),
    case("a number is not a message", req("POST", body="42"),
         **reject(400, body_json={"error": {"code": -32600}})),
    # Sessions.
    case("tools/list without a session",
         req("POST", session=None, body=LIST),
         **reject(400, body_contains="initialize", rpc_method="tools/list", rpc_id="7",
                  body_json={"id": 7, "error": {"code": -32000}})),
    case("GET without a session", req("GET", session=None), **reject(400)),
    case("DELETE without a session", req("DELETE", session=None), **reject(400)),
    case("an empty mcp-session-id counts as none", req("POST", session="", body=LIST),
         **reject(400)),
    case("initialize without a session is forwarded",
         req("POST", session=None, body=INIT),
         **fwd(is_initialize=True, rpc_method="initialize", rpc_id="1", shim=None, status=0)),
    case("initialize with a string id",
         req("POST", session=None, body=dict(INIT, id="init-1")),
         **fwd(is_initialize=True, rpc_id="\"init-1\"")),
    case("initialize sent as a notification is refused without a session",
         req("POST", session=None, body={"jsonrpc": "2.0", "method": "initialize"}),
         **reject(400)),
    case("initialize inside a batch is refused without a session",
         req("POST", session=None, body=[INIT]), **reject(400, rpc_method="(batch)")),
    case("initialize with a session is forwarded but not flagged",
         req("POST", body=INIT), **fwd(is_initialize=False, rpc_method="initialize")),
    case("tools/list with a session",
         req("POST", body=LIST), **fwd(rpc_method="tools/list", rpc_id="7", fix_accept=False)),
    case("string id is kept as raw JSON",
         req("POST", body={"jsonrpc": "2.0", "id": "abc", "method": "tools/call"}),
         **fwd(rpc_id="\"abc\"", rpc_method="tools/call")),
    case("null id is kept", req("POST", body={"jsonrpc": "2.0", "id": None, "method": "ping"}),
         **fwd(rpc_id="null")),
    case("an object id is not peeked",
         req("POST", body={"jsonrpc": "2.0", "id": {"x": 1}, "method": "ping"}),
         **fwd(rpc_id="")),
    case("a batch with a session", req("POST", body=[LIST, LIST]), **fwd(rpc_method="(batch)")),
    case("GET stream with a session", req("GET"), **fwd(rpc_method="")),
    case("DELETE with a session", req("DELETE"), **fwd()),
    case("the session error echoes a string id",
         req("POST", session=None, body={"jsonrpc": "2.0", "id": "q-1", "method": "tools/list"}),
         **reject(400, body_json={"id": "q-1"})),
    # Accept.
    case("complete Accept is left alone", req("POST", body=LIST), **fwd(fix_accept=False)),
    case("missing Accept is fixed", req("POST", body=LIST, accept=None), **fwd(fix_accept=True)),
    case("*/* is fixed", req("POST", body=LIST, accept="*/*"), **fwd(fix_accept=True)),
    case("JSON only is fixed", req("POST", body=LIST, accept="application/json"),
         **fwd(fix_accept=True)),
    case("event stream only is fixed", req("GET", accept="text/event-stream"),
         **fwd(fix_accept=True)),
    case("case, parameters and spacing are ignored",
         req("POST", body=LIST, accept="Application/JSON;q=0.9 , TEXT/EVENT-STREAM; charset=utf-8"),
         **fwd(fix_accept=False)),
    case("a prefix of a media type does not count",
         req("POST", body=LIST, accept="application/jsonx, text/event-stream"),
         **fwd(fix_accept=True)),
    # The initialized shim.
    case("notifications/initialized with a session is answered 202",
         req("POST", body=INITIALIZED),
         **fwd(shim="initialized", status=202, rpc_method="notifications/initialized", rpc_id="")),
    case("notifications/initialized with empty params",
         req("POST", body=dict(INITIALIZED, params={})), **fwd(shim="initialized", status=202)),
    case("notifications/initialized without a session is refused",
         req("POST", session=None, body=INITIALIZED), **reject(400, shim=None)),
    case("notifications/initialized with an id is not the notification",
         req("POST", body=dict(INITIALIZED, id=3)), **fwd(shim=None, status=0)),
    case("notifications/initialized with an extra member",
         req("POST", body=dict(INITIALIZED, extra=True)), **fwd(shim=None)),
    case("notifications/initialized with jsonrpc 1.0",
         req("POST", body=dict(INITIALIZED, jsonrpc="1.0")), **fwd(shim=None)),
    case("notifications/initialized with array params",
         req("POST", body=dict(INITIALIZED, params=[])), **fwd(shim=None)),
    case("notifications/initialized inside a batch", req("POST", body=[INITIALIZED]),
         **fwd(shim=None)),
    case("another notification is forwarded normally",
         req("POST", body={"jsonrpc": "2.0", "method": "notifications/cancelled",
                           "params": {"requestId": 1}}), **fwd(shim=None)),
    case("the shim applies to the singleton too", req("POST", token=TOK_S, body=INITIALIZED),
         **fwd("gen-1:singleton", 0, shim="initialized")),
    case("escaped method names are compared unescaped",
         req("POST", body="{\"jsonrpc\":\"2.0\",\"method\":\"notifications\\/initialized\"}"),
         **fwd(shim="initialized", rpc_method="notifications/initialized")),
]
C += [
    # MCP 2026-07-28: the stateless era (MCP-Protocol-Version: 2026-07-28).
    case("2026-07-28: server/discover without a session is forwarded",
         sreq("server/discover", rid=1),
         **stateless(rpc_method="server/discover", rpc_id="1", status=0, body="")),
    case("2026-07-28: an Mcp-Session-Id is ignored, not required",
         sreq("tools/list", session="s-1"), **stateless(rpc_method="tools/list")),
    case("2026-07-28: a missing Accept is still fixed upstream",
         sreq("tools/list", accept=None), **stateless(fix_accept=True)),
    case("2026-07-28: the header's surrounding whitespace is not part of the version",
         sreq("tools/list", pv="  2026-07-28 "), **stateless()),
    case("2026-07-28: initialize is the backend's to refuse (no handshake, no session rule)",
         sreq("initialize", {"protocolVersion": "2025-11-25", "capabilities": {},
                             "clientInfo": {"name": "v", "version": "1"}}, rid=1),
         **stateless(rpc_method="initialize")),
    case("2026-07-28: notifications/initialized gets no shim",
         sreq("notifications/initialized", rid=None, session="s-1"),
         **stateless(status=0, rpc_id="")),
    case("2026-07-28: a notification needs no Mcp-Method",
         sreq("notifications/cancelled", {"requestId": 1}, rid=None, mm=None), **stateless()),
    case("2026-07-28: a notification's Mcp-Method must still match",
         sreq("notifications/cancelled", {"requestId": 1}, rid=None, mm="notifications/progress"),
         **mismatch(rpc_id="", body_contains="Mcp-Method")),
    case("2026-07-28: tools/call with a matching Mcp-Name",
         sreq("tools/call", {"name": "find_symbol", "arguments": {}}, mn="find_symbol"),
         **stateless(rpc_method="tools/call")),
    case("2026-07-28: whitespace around Mcp-Name is not part of the value",
         sreq("tools/call", {"name": "find_symbol", "arguments": {}}, mn="  find_symbol\t"),
         **stateless()),
    case("2026-07-28: prompts/get with a matching Mcp-Name",
         sreq("prompts/get", {"name": "onboarding"}, mn="onboarding"), **stateless()),
    case("2026-07-28: resources/read compares Mcp-Name with params.uri",
         sreq("resources/read", {"uri": "file:///projects/app/config.json"},
              mn="file:///projects/app/config.json"), **stateless()),
    case("2026-07-28: a Base64 Mcp-Name is decoded before the comparison",
         sreq("resources/read", {"uri": "file:///tmp/caf\u00e9 \u4e16\u754c.txt"},
              mn=b64("file:///tmp/caf\u00e9 \u4e16\u754c.txt")), **stateless()),
    case("2026-07-28: a plain name may be sent Base64-encoded too",
         sreq("tools/call", {"name": "find_symbol"}, mn=b64("find_symbol")), **stateless()),
    case("2026-07-28: a name that looks like the sentinel, sent encoded",
         sreq("tools/call", {"name": "=?base64?literal?="}, mn=b64("=?base64?literal?=")),
         **stateless()),
    case("2026-07-28: an escaped name in the body equals its plain header",
         sreq("tools/call", body="{\"jsonrpc\":\"2.0\",\"id\":5,\"method\":\"tools/call\","
              "\"params\":{\"name\":\"find\\u005fsymbol\",\"_meta\":{\"" + META_PV
              + "\":\"2026-07-28\"}}}", mn="find_symbol"), **stateless(rpc_id="5")),
    case("2026-07-28: tools/call without params.name needs no Mcp-Name (the backend refuses it)",
         sreq("tools/call", {"arguments": {}}), **stateless()),
    case("2026-07-28: a null params.name needs no Mcp-Name either",
         sreq("tools/call", {"name": None}), **stateless()),
    case("2026-07-28: Mcp-Name is not checked on other methods",
         sreq("tools/list", mn="anything"), **stateless()),
    case("2026-07-28: the request's own envelope may omit the version (the backend refuses it)",
         sreq("server/discover", body={"jsonrpc": "2.0", "id": 3, "method": "server/discover",
                                        "params": {}}), **stateless()),
    # 2026-07-28 header mismatches: 400, JSON-RPC -32020, the request's id kept.
    case("2026-07-28: a request without Mcp-Method",
         sreq("tools/list", mm=None),
         **mismatch(rpc_id="11", body_json={"id": 11, "error": {"code": -32020}},
                    body_contains="no Mcp-Method")),
    case("2026-07-28: Mcp-Method naming another method",
         sreq("tools/list", mm="prompts/list"), **mismatch(body_contains="does not match")),
    case("2026-07-28: Mcp-Method values are case-sensitive",
         sreq("tools/list", mm="TOOLS/LIST"), **mismatch()),
    case("2026-07-28: an empty Mcp-Method", sreq("tools/list", mm=""), **mismatch()),
    case("2026-07-28: Mcp-Method with a non-ASCII byte",
         sreq("caf\u00e9", mm="caf\u00e9"), **mismatch()),
    case("2026-07-28: tools/call without Mcp-Name",
         sreq("tools/call", {"name": "find_symbol", "arguments": {}}),
         **mismatch(body_contains="params.name")),
    case("2026-07-28: resources/read without Mcp-Name",
         sreq("resources/read", {"uri": "file:///a"}), **mismatch(body_contains="params.uri")),
    case("2026-07-28: tools/call with another Mcp-Name",
         sreq("tools/call", {"name": "find_symbol", "arguments": {}}, mn="wrong_tool_name"),
         **mismatch(body_contains="does not match")),
    case("2026-07-28: Mcp-Name values are case-sensitive",
         sreq("prompts/get", {"name": "onboarding"}, mn="Onboarding"), **mismatch()),
    case("2026-07-28: Base64 with missing padding is malformed",
         sreq("tools/call", {"name": "Hello"}, mn="=?base64?SGVsbG8?="),
         **mismatch(body_contains="malformed")),
    case("2026-07-28: Base64 with characters outside the alphabet is malformed",
         sreq("tools/call", {"name": "Hello"}, mn="=?base64?SGVs!!!bG8=?="),
         **mismatch(body_contains="malformed")),
    case("2026-07-28: non-canonical Base64 (unused bits set) is malformed",
         sreq("tools/call", {"name": "Hello"}, mn="=?base64?SGVsbG9=?="),
         **mismatch(body_contains="malformed")),
    case("2026-07-28: the sentinel markers are case-sensitive (upper case is a literal)",
         sreq("tools/call", {"name": "Hello"}, mn="=?BASE64?SGVsbG8=?="), **mismatch()),
    case("2026-07-28: a value without the ?= suffix is compared literally",
         sreq("tools/call", {"name": "=?base64?SGVsbG8="}, mn="=?base64?SGVsbG8="), **stateless()),
    case("2026-07-28: a one-character Base64 payload is malformed",
         sreq("tools/call", {"name": "Hello"}, mn="=?base64?=?="), **mismatch(body_contains="malformed")),
    case("2026-07-28: an empty Base64 payload is the empty name",
         sreq("tools/call", {"name": ""}, mn="=?base64??="), **stateless()),
    case("2026-07-28: a Base64 value decoding to another name",
         sreq("tools/call", {"name": "Hello"}, mn=b64("Hellp")), **mismatch()),
    case("2026-07-28: a raw UTF-8 Mcp-Name must be Base64-encoded",
         sreq("tools/call", {"name": "caf\u00e9"}, mn="caf\u00e9"),
         **mismatch(body_contains="malformed")),
    case("2026-07-28: a Base64 Mcp-Name over 4096 decoded bytes is not compared",
         sreq("tools/call", {"name": "n" * 4200}, mn=b64("n" * 4200)),
         **mismatch(body_contains="4096")),
    case("2026-07-28: a plain Mcp-Name has no length limit of its own",
         sreq("tools/call", {"name": "n" * 4200}, mn="n" * 4200), **stateless()),
    case("2026-07-28: a non-string params.name never matches",
         sreq("tools/call", {"name": 5}, mn="5"), **mismatch()),
    case("2026-07-28: the header and the envelope name different versions",
         sreq("server/discover", version="v999.0.0"),
         **mismatch(body_contains="params._meta", protocol_version="")),
    case("2026-07-28: a non-string envelope version is a mismatch",
         sreq("server/discover", body={"jsonrpc": "2.0", "id": 4, "method": "server/discover",
                                        "params": {"_meta": {META_PV: 20260728}}}),
         **mismatch()),
    case("2026-07-28: a routing header given twice",
         sreq("tools/list", mcp_header_repeated=True), **mismatch(body_contains="more than once")),
    case("a repeated routing header is refused in the session era too",
         req("POST", body=LIST, mcp_header_repeated=True), **mismatch()),
    case("a 2026-07-28 envelope without MCP-Protocol-Version",
         sreq("tools/list", pv=None, session="s-1"),
         **mismatch(body_contains="no MCP-Protocol-Version header")),
    # 2026-07-28 shape rules.
    case("2026-07-28: a batch is not a request",
         sreq("tools/list", body=[rpc26("tools/list")]),
         **reject(400, body_json={"error": {"code": -32600}}, rpc_method="(batch)")),
    case("2026-07-28: a posted response is not a request",
         sreq("tools/list", mm=None, body={"jsonrpc": "2.0", "id": 3, "result": {}}),
         **reject(400, body_json={"id": 3, "error": {"code": -32600}})),
    case("2026-07-28: GET has no stream in this revision",
         req("GET", session=None, pv=V26), **reject(405, allow="POST", stateless=False)),
    case("2026-07-28: DELETE has no session to end",
         req("DELETE", pv=V26), **reject(405, allow="POST")),
    # Versions the edge does not serve: 400 UnsupportedProtocolVersionError (-32022).
    case("an unknown protocol version is refused with the supported list",
         sreq("server/discover", version="v999.0.0", pv="v999.0.0", rid=301),
         **reject(400, protocol_version="", body_contains="2026-07-28",
                  body_json={"id": 301, "error": {"code": -32022, "data": {
                      "supported": ["2026-07-28"], "requested": "v999.0.0"}}})),
    case("an unknown header version with a 2026-07-28 envelope is a mismatch first",
         sreq("server/discover", pv="v999.0.0"), **mismatch()),
    case("an unknown protocol version on GET",
         req("GET", pv="2025-13-01"),
         **reject(400, body_json={"error": {"code": -32022, "data": {"requested": "2025-13-01"}}})),
    case("a repeated version header joined by a Headers object is unknown",
         req("POST", body=LIST, pv="2026-07-28, 2026-07-28"),
         **reject(400, body_json={"error": {"code": -32022, "data": {
             "requested": "2026-07-28, 2026-07-28"}}})),
    case("an empty protocol version", req("POST", body=LIST, pv=""),
         **reject(400, body_json={"error": {"code": -32022, "data": {"requested": ""}}})),
    case("a version over 64 bytes is not echoed",
         req("POST", body=LIST, pv="9" * 65),
         **reject(400, body_json={"error": {"code": -32022, "data": {"supported": ["2026-07-28"]}}})),
    case("a version with a quote is echoed escaped",
         req("POST", body=LIST, pv="2026\"07"),
         **reject(400, body_json={"error": {"code": -32022, "data": {"requested": "2026\"07"}}})),
    case("protocol versions are case-sensitive",
         req("POST", body=LIST, pv="2026-07-28".upper() + "x"),
         **reject(400, body_json={"error": {"code": -32022}})),
    # The session era keeps its rules when it names its version.
    case("2025-06-18: tools/list with a session is forwarded",
         req("POST", body=LIST, pv="2025-06-18"),
         **fwd(stateless=False, protocol_version="2025-06-18", rpc_method="tools/list")),
    case("2025-11-25: tools/list without a session is refused",
         req("POST", session=None, body=LIST, pv="2025-11-25"),
         **reject(400, body_json={"error": {"code": -32000}}, stateless=False)),
    case("2025-11-25: initialize without a session is forwarded",
         req("POST", session=None, body=INIT, pv="2025-11-25"), **fwd(is_initialize=True)),
    case("2025-03-26: the initialized shim still applies",
         req("POST", body=INITIALIZED, pv="2025-03-26"), **fwd(shim="initialized", status=202)),
    case("2024-11-05: GET with a session is forwarded",
         req("GET", pv="2024-11-05"), **fwd(protocol_version="2024-11-05", stateless=False)),
    case("session era: Mcp-Method is not checked (the spec defines it for 2026-07-28)",
         req("POST", body=LIST, pv="2025-11-25", mm="prompts/list"), **fwd(stateless=False)),
    case("no version header: the session era", req("POST", body=LIST),
         **fwd(stateless=False, protocol_version="")),
    # The earlier checks come first.
    case("2026-07-28: the token is checked before the headers",
         sreq("tools/list", token=None, mm="wrong"), **reject(401, www_authenticate=True)),
    case("2026-07-28: the Origin is checked before the headers",
         sreq("tools/list", origin="https://evil.example", mm="wrong"), **reject(403)),
    case("2026-07-28: a body that is not JSON is a parse error first",
         sreq("tools/list", body="{nope"), **reject(400, body_json={"error": {"code": -32700}})),
    case("a loopback Origin is foreign when the gateway does not listen on loopback",
         req("POST", body=LIST, origin="http://127.0.0.1:8787"), **reject(403)),
]
n_classify = write("classify.json", {"config": BASE, "cases": C})

# ---------------------------------------------------------------- policy.json
PCFG = {"tokens_json": {"alice": TOK_A},
        "policy": {"generation": "gen-7", "origins": "https://app.example, http://localhost:6274"}}
WORKER = {"tokens_json": {"alice": TOK_A}, "policy": {"bare_get_405": True}}
RUN = {"policy": {"check_bearer": False}}
SMALL = {"tokens_json": {"alice": TOK_A}, "policy": {"max_body": 64}}
STAR = {"tokens_json": {"alice": TOK_A}, "policy": {"origins": "*"}}
LOOP = {"tokens_json": {"alice": TOK_A}, "policy": {"loopback_listener": True}}
LOOPLIST = {"tokens_json": {"alice": TOK_A},
            "policy": {"loopback_listener": True, "origins": "https://app.example"}}
P = [
    case("listed origin passes", req("POST", body=LIST, origin="https://app.example"),
         **fwd("gen-7:alice", 0)),
    case("origins compare without case", req("POST", body=LIST, origin="HTTPS://APP.EXAMPLE"),
         **fwd("gen-7:alice", 0)),
    case("second listed origin passes", req("POST", body=LIST, origin="http://localhost:6274"),
         **fwd("gen-7:alice", 0)),
    case("an explicit port is another origin",
         req("POST", body=LIST, origin="https://app.example:443"),
         **reject(403, body_contains="not in ALLOWED_ORIGINS")),
    case("unlisted origin", req("POST", body=LIST, origin="https://evil.example"), **reject(403)),
    case("the null origin", req("POST", body=LIST, origin="null"), **reject(403)),
    case("no Origin passes", req("POST", body=LIST), **fwd("gen-7:alice", 0)),
    case("generation names the route", req("GET", "/status", session=None),
         **dict(action="status", route="gen-7:alice")),
    case("* allows any origin", req("POST", body=LIST, origin="https://any.example"),
         config=None, **fwd("gen-1:alice", 0)),
    case("Worker: GET /mcp is 405", req("GET"), **reject(405, allow="POST, DELETE")),
    case("Worker: GET /mcp without a token is 405 too", req("GET", token=None),
         **reject(405, allow="POST, DELETE")),
    case("Worker: PUT lists POST and DELETE", req("PUT"), **reject(405, allow="POST, DELETE")),
    case("Worker: POST is forwarded", req("POST", body=LIST), **fwd("gen-1:alice", 0)),
    case("Worker: DELETE is forwarded", req("DELETE"), **fwd("gen-1:alice", 0)),
    case("run: no token needed, route is run", req("POST", token=None, body=LIST),
         **fwd("gen-1:run", -1)),
    case("run: initialize without a session", req("POST", token=None, session=None, body=INIT),
         **fwd("gen-1:run", -1, is_initialize=True)),
    case("run: a junk Authorization is ignored", req("POST", auth="Basic x", body=LIST),
         **fwd("gen-1:run", -1)),
    case("run: the session rule still applies", req("POST", token=None, session=None, body=LIST),
         **reject(400)),
    case("run: /status", req("GET", "/status", token=None, session=None),
         **dict(action="status", route="gen-1:run", token_index=-1)),
    case("max_body: a body over the limit is 413 even without the host's flag",
         req("POST", body=" " * 60 + "{}  x"), **reject(413, body_contains="limit of 64 bytes")),
    case("max_body: a body at the limit is parsed", req("POST", body=" " * 62 + "{}"),
         **fwd("gen-1:alice", 0)),
]
LOOP_OK = ["http://localhost", "http://localhost:6274", "http://127.0.0.1", "http://127.0.0.1:8787",
           "http://[::1]", "http://[::1]:8787", "HTTP://LOCALHOST:1", "http://localhost:0",
           "http://localhost:65535"]
LOOP_BAD = ["https://localhost:6274", "http://localhost.evil.example", "http://localhost.",
            "http://127.0.0.2", "http://127.1", "http://localhost:", "http://localhost:65536",
            "http://localhost:123456", "http://localhost:80a", "http://localhost/",
            "http://localhost:80/x", "http://user@localhost", "http://[::1", "http://[0:0:0:0:0:0:0:1]",
            "http://0.0.0.0", "http://evil.example.com", "null", "http://localhost :80",
            "ws://localhost", "http://localhost, http://evil.example", ""]
for o in LOOP_OK:
    P.append(case("loopback: origin %s passes" % o, sreq("tools/list", origin=o),
                  **fwd("gen-1:alice", 0, stateless=True)))
for o in LOOP_BAD:
    P.append(case("loopback: origin %r is foreign" % o, req("POST", body=LIST, origin=o),
                  **reject(403)))
P += [
    case("loopback: the DNS-rebinding probe (a foreign Origin) is refused before the token",
         sreq("server/discover", origin="http://evil.example.com", token=None), **reject(403)),
    case("loopback and list: a listed origin passes", req("POST", body=LIST, origin="https://app.example"),
         **fwd("gen-1:alice", 0)),
    case("loopback and list: a local page passes too", req("POST", body=LIST, origin="http://localhost:3000"),
         **fwd("gen-1:alice", 0)),
    case("loopback and list: others are foreign", req("POST", body=LIST, origin="https://b.example"),
         **reject(403, body_contains="not in ALLOWED_ORIGINS")),
    case("Worker: GET /mcp in 2026-07-28 is 405 at the method check", req("GET", pv=V26),
         **reject(405, allow="POST, DELETE")),
    case("Worker: 2026-07-28 POST is forwarded", sreq("tools/list"),
         **fwd("gen-1:alice", 0, stateless=True)),
    case("run: 2026-07-28 needs no token and no session", sreq("tools/list", token=None),
         **fwd("gen-1:run", -1, stateless=True)),
    case("run: 2026-07-28 headers are still checked", sreq("tools/list", token=None, mm="x"),
         **reject(400, body_json={"error": {"code": -32020}})),
]
# Attach the per-case configs (the file config is PCFG).
for c in P:
    n = c["name"]
    if n.startswith("* "):
        c["config"] = STAR
    elif n.startswith("Worker"):
        c["config"] = WORKER
    elif n.startswith("run:"):
        c["config"] = RUN
    elif n.startswith("max_body"):
        c["config"] = SMALL
    elif n.startswith("loopback and list"):
        c["config"] = LOOPLIST
    elif n.startswith("loopback:"):
        c["config"] = LOOP
    c["request"].pop("config", None)
    c["expect"].pop("config", None)


def cfg_err(name, config, msg, extra_forbid=()):
    return {"name": name, "config": config, "expect_config_error": msg,
            "forbid": SECRETS + list(extra_forbid)}


P += [
    cfg_err("generation with a space", {"policy": {"generation": "gen 1"}},
            "MCP_CONTAINER_ROUTE_GENERATION must match"),
    cfg_err("generation with a colon", {"policy": {"generation": "a:b"}},
            "MCP_CONTAINER_ROUTE_GENERATION"),
    cfg_err("generation of 65 characters", {"policy": {"generation": "g" * 65}},
            "MCP_CONTAINER_ROUTE_GENERATION"),
    cfg_err("origin with a path", {"policy": {"origins": "https://a.example/"}},
            "ALLOWED_ORIGINS entry 1"),
    cfg_err("origin without a scheme", {"policy": {"origins": "https://a.example, b.example"}},
            "ALLOWED_ORIGINS entry 2"),
    cfg_err("empty origin between commas", {"policy": {"origins": "https://a.example,,"}},
            "is empty"),
    cfg_err("too many origins",
            {"policy": {"origins": ",".join("https://h%d.example" % i for i in range(33))}},
            "too many origins"),
]
P.append({"name": "whitespace-only origins mean none",
          "config": {"tokens_json": {"alice": TOK_A}, "policy": {"origins": "  "}},
          "request": req("POST", body=LIST, origin="https://a.example"),
          "expect": reject(403), "forbid": SECRETS})
n_policy = write("policy.json", {"config": PCFG, "cases": P})

# ---------------------------------------------------------------- tokens.json
T = []
SHORT = "abc123XYZ"
T += [
    cfg_err("API_TOKEN too short", {"api_token": SHORT},
            "API_TOKEN: token is shorter than 16 characters", [SHORT]),
    cfg_err("API_TOKEN with a space", {"api_token": "has space 0123456789"},
            "API_TOKEN: token contains a character", ["has space"]),
    cfg_err("API_TOKEN with a trailing newline", {"api_token": TOK_A + "\n"},
            "API_TOKEN: token contains a character"),
    cfg_err("object entry too short", {"tokens_json": {"ci": SHORT}},
            "API_TOKENS_JSON entry \"ci\": token is shorter than 16 characters", [SHORT]),
    cfg_err("array entry too short", {"tokens_json": [TOK_A, SHORT]},
            "API_TOKENS_JSON[1]: token is shorter than 16 characters", [SHORT]),
    cfg_err("empty value", {"tokens_json": {"ci": ""}}, "API_TOKENS_JSON entry \"ci\": token is empty"),
    cfg_err("same token under two names", {"tokens_json": {"a": TOK_A, "b": TOK_A}},
            "API_TOKENS_JSON entry \"b\": token is the same as another entry's"),
    cfg_err("same token as plaintext and sha256:",
            {"tokens_json": {"a": TOK_A, "b": "sha256:" + sha(TOK_A)}}, "entry \"b\": token is the same"),
    cfg_err("same token twice in an array", {"tokens_json": [TOK_A, TOK_B, TOK_A]},
            "API_TOKENS_JSON[2]: token is the same"),
    cfg_err("API_TOKEN repeated in the JSON", {"api_token": TOK_A, "tokens_json": {"ci": TOK_A}},
            "entry \"ci\": token is the same"),
    cfg_err("name singleton clashes with API_TOKEN",
            {"api_token": TOK_S, "tokens_json": {"singleton": TOK_A}},
            "entry \"singleton\": name is already used"),
    cfg_err("names differing only in case", {"tokens_json": {"CI": TOK_A, "ci": TOK_B}},
            "entry \"ci\": name is already used"),
    cfg_err("duplicate JSON keys", {"tokens_json": "{\"ci\": \"" + TOK_A + "\", \"ci\": \"" + TOK_B + "\"}"},
            "API_TOKENS_JSON: not valid JSON"),
    cfg_err("name with a space", {"tokens_json": {"bad name": TOK_A}},
            "API_TOKENS_JSON member 0: name must match"),
    cfg_err("empty name", {"tokens_json": {"ok": TOK_B, "": TOK_A}}, "member 1: name must match"),
    cfg_err("name of 65 characters", {"tokens_json": {"n" * 65: TOK_A}}, "name must match"),
    cfg_err("non-ASCII name", {"tokens_json": {"caf\u00e9": TOK_A}}, "name must match"),
    cfg_err("number value", {"tokens_json": {"ci": 12345678901234567890}},
            "entry \"ci\": value must be a string"),
    cfg_err("null value in an array", {"tokens_json": [TOK_A, None]}, "API_TOKENS_JSON[1]: value must be a string"),
    cfg_err("top-level string", {"tokens_json": "\"" + TOK_A + "\""}, "must be a JSON object"),
    cfg_err("empty object", {"tokens_json": {}}, "holds no tokens"),
    cfg_err("empty array", {"tokens_json": []}, "holds no tokens"),
    cfg_err("sha256: with 63 hex digits", {"tokens_json": {"ci": "sha256:" + sha(TOK_A)[:63]}},
            "needs exactly 64 hex digits"),
    cfg_err("sha256: with a non-hex digit", {"tokens_json": {"ci": "sha256:" + "g" + sha(TOK_A)[1:]}},
            "needs exactly 64 hex digits"),
    cfg_err("truncated JSON text", {"tokens_json": "{\"ci\": \"" + TOK_A + "\""},
            "API_TOKENS_JSON: not valid JSON", [TOK_A]),
    cfg_err("control character in a token", {"tokens_json": {"ci": TOK_A + "\u0001"}},
            "token contains a character"),
    cfg_err("quote in a token", {"tokens_json": {"ci": "abc\"def0123456789xyz"}},
            "token contains a character", ["abc\"def"]),
    cfg_err("padding in the middle", {"tokens_json": {"ci": "abc=def0123456789xyz"}},
            "token contains a character", ["abc=def"]),
    cfg_err("only padding", {"tokens_json": {"ci": "=" * 20}}, "token contains a character"),
    cfg_err("token of 4097 characters", {"tokens_json": {"ci": "a" * 4097}}, "longer than 4096",
            ["a" * 40]),
    cfg_err("257 entries fill the table",
            {"tokens_json": ["sha256:" + sha("filler-token-%06d" % i) for i in range(257)]},
            "API_TOKENS_JSON[256]: the token table is full"),
    cfg_err("API_TOKEN plus 256 entries fill the table",
            {"api_token": TOK_S,
             "tokens_json": ["sha256:" + sha("filler-token-%06d" % i) for i in range(256)]},
            "API_TOKENS_JSON[255]: the token table is full"),
]
T += [
    case("array entries are named t- plus 16 hex digits", req("POST", token=TOK_B, body=LIST),
         **fwd("gen-1:" + tname(TOK_B), 1)),
    case("a sha256: array entry gets the same name as its plaintext",
         req("POST", token=TOK_C, body=LIST), **fwd("gen-1:" + tname(TOK_C), 2)),
    case("upper-case hex in sha256: is accepted", req("POST", token=TOK_A, body=LIST),
         **fwd("gen-1:" + tname(TOK_A), 0)),
]
for c in T[-3:]:
    c["config"] = {"tokens_json": ["sha256:" + sha(TOK_A).upper(), TOK_B, "sha256:" + sha(TOK_C)]}
T += [
    {"name": "tokens_json given as text with whitespace",
     "config": {"tokens_json": " {\n  \"ci\" : \"" + TOK_A + "\"\n} "},
     "request": req("POST", body=LIST), "expect": fwd("gen-1:ci", 0), "forbid": SECRETS},
    {"name": "names may use . _ - and digits",
     "config": {"tokens_json": {"a.b_c-D9": TOK_A}},
     "request": req("POST", body=LIST), "expect": fwd("gen-1:a.b_c-D9", 0), "forbid": SECRETS},
    {"name": "a name of 64 characters", "config": {"tokens_json": {"n" * 64: TOK_A}},
     "request": req("POST", body=LIST), "expect": fwd("gen-1:" + "n" * 64, 0), "forbid": SECRETS},
    {"name": "a token of exactly 16 characters", "config": {"tokens_json": {"ci": "0123456789abcdef"}},
     "request": req("POST", token="0123456789abcdef", body=LIST), "expect": fwd("gen-1:ci", 0)},
    {"name": "a token of exactly 4096 characters", "config": {"tokens_json": {"ci": "z" * 4096}},
     "request": req("POST", token="z" * 4096, body=LIST), "expect": fwd("gen-1:ci", 0)},
    {"name": "the escaped form of a token is decoded before hashing",
     "config": {"tokens_json": "{\"ci\": \"alpha\\u002dtoken-0123456789abcdef\"}"},
     "request": req("POST", token=TOK_A, body=LIST), "expect": fwd("gen-1:ci", 0)},
    {"name": "a failed table never routes", "config": {"tokens_json": {"a": TOK_A, "b": SHORT}},
     "expect_config_error": "entry \"b\"", "forbid": SECRETS + [SHORT]},
]
# Entries written as objects: the token's project, Serena context and read-only mode beside it.
OBJ = {"alice": {"token": TOK_A, "project": "https://github.com/oraios/serena.git#main",
                 "context": "ide", "read_only": True},
       "bob": TOK_B,
       "carol": {"token": "sha256:" + sha(TOK_C), "project": "/srv/projects/carol"}}
T += [
    {"name": "an object entry routes like a string entry", "config": {"tokens_json": OBJ},
     "request": req("POST", token=TOK_A, body=LIST), "expect": fwd("gen-1:alice", 0), "forbid": SECRETS},
    {"name": "a sha256: token in an object entry", "config": {"tokens_json": OBJ},
     "request": req("POST", token=TOK_C, body=LIST), "expect": fwd("gen-1:carol", 2), "forbid": SECRETS},
    {"name": "string entries beside object entries", "config": {"tokens_json": OBJ},
     "request": req("POST", token=TOK_B, body=LIST), "expect": fwd("gen-1:bob", 1), "forbid": SECRETS},
    cfg_err("object entry without a token", {"tokens_json": {"ci": {"project": "/srv/x"}}},
            "API_TOKENS_JSON entry \"ci\": has no \"token\" member"),
    cfg_err("object entry with an unknown member", {"tokens_json": {"ci": {"token": TOK_A, "owner": "me"}}},
            "entry \"ci\": has a member other than token, project, context and read_only"),
    cfg_err("a token written as a member name", {"tokens_json": {"ci": {TOK_A: True}}},
            "entry \"ci\": has a member other than"),
    cfg_err("object entry too short", {"tokens_json": {"ci": {"token": SHORT}}},
            "entry \"ci\": token is shorter than 16 characters", [SHORT]),
    cfg_err("project with options injection in an ssh host",
            {"tokens_json": {"ci": {"token": TOK_A, "project": "ssh://-oProxyCommand=touch%20x/y"}}},
            "entry \"ci\": project URL has an invalid host", ["ProxyCommand"]),
    cfg_err("project with --upload-pack in its ref",
            {"tokens_json": {"ci": {"token": TOK_A, "project": "https://h/r.git#--upload-pack=x"}}},
            "entry \"ci\": project ref", ["upload-pack"]),
    cfg_err("project through git's ext:: transport",
            {"tokens_json": {"ci": {"token": TOK_A, "project": "ext::sh -c id"}}},
            "entry \"ci\": project URL uses git's transport syntax"),
    cfg_err("project path with ..",
            {"tokens_json": {"ci": {"token": TOK_A, "project": "/srv/../etc"}}},
            "entry \"ci\": project path has an empty, '.', '..'"),
    cfg_err("project URL with credentials",
            {"tokens_json": {"ci": {"token": TOK_B, "project": "https://u:" + TOK_A + "@h/r.git"}}},
            "entry \"ci\": project URL holds credentials", [TOK_A]),
    cfg_err("context with a space", {"tokens_json": {"ci": {"token": TOK_A, "context": "a b"}}},
            "entry \"ci\": \"context\" must be"),
    cfg_err("read_only as a string", {"tokens_json": {"ci": {"token": TOK_A, "read_only": "yes"}}},
            "entry \"ci\": \"read_only\" must be true or false"),
    cfg_err("an object in the array form", {"tokens_json": [{"token": TOK_A}]},
            "API_TOKENS_JSON[0]: value must be a string"),
]
n_tokens = write("tokens.json", {"config": {}, "cases": T})

# ---------------------------------------------------------------- health.json
HIN = {"status": "ok", "role": "serve", "mode": "instances",
       "instances": {"max": 8, "starting": 1, "ready": 2, "idle": 3, "stopping": 1, "failed": 4},
       "persistence": {"enabled": True, "store": "s3", "bucket": "serena-state", "prefix": "p/",
                       "partition_mode": "token", "interval_seconds": 180, "retention_count": 5,
                       "strict": False, "encrypted": True, "state": "ok"},
       "uptime_seconds": 42}
H = [
    {"name": "mixed strategy and every field", "health": HIN,
     "expect_health": {"status": "ok", "version": "0.1.0", "role": "serve", "route_generation": "gen-1",
                       "route_strategy": "mixed", "token_count": 4, "mode": "instances",
                       "instances": {"max": 8, "starting": 1, "ready": 2, "idle": 3, "stopping": 1,
                                     "failed": 4, "running": 7},
                       "persistence": {"enabled": True, "store": "s3", "bucket": "serena-state",
                                       "prefix": "p/", "partition_mode": "token",
                                       "interval_seconds": 180, "retention_count": 5,
                                       "strict": False, "encrypted": True, "state": "ok"},
                       "uptime_seconds": 42},
     "forbid": SECRETS + NAMES + ["singleton\""]},
    {"name": "singleton strategy", "config": {"api_token": TOK_S}, "health": {},
     "expect_health": {"route_strategy": "singleton", "token_count": 1, "status": "ok",
                       "persistence": {"enabled": False, "store": "none", "encrypted": False,
                                       "state": "disabled"}},
     "forbid": SECRETS},
    {"name": "per-token strategy and generation",
     "config": {"tokens_json": [TOK_A, TOK_B], "policy": {"generation": "gen-9"}},
     "health": {"role": "worker", "mode": "upstream"},
     "expect_health": {"route_strategy": "per-token", "token_count": 2, "route_generation": "gen-9",
                       "role": "worker", "mode": "upstream", "instances": {"running": 0}},
     "forbid": SECRETS + [tname(TOK_A), tname(TOK_B)]},
    {"name": "no tokens", "config": {"policy": {"check_bearer": False}}, "health": {"status": "degraded"},
     "expect_health": {"route_strategy": "none", "token_count": 0, "status": "degraded"}},
    {"name": "strings are escaped", "config": {}, "health": {"persistence": {"prefix": "a\"b\\c"}},
     "expect_health": {"persistence": {"prefix": "a\"b\\c"}}},
]
n_health = write("health.json", {"config": BASE, "cases": H})

# ---------------------------------------------------------------- session.json
# The judgement of an opened edge-session plaintext (src/core/session.h): who it belongs to, its
# age, and the re-initialize body it yields. Sealing is the host's; what it opens is judged here.
INIT = {"protocolVersion": "2025-06-18", "capabilities": {"roots": {"listChanged": True}},
        "clientInfo": {"name": "claude-code", "version": "2.1"}}


def plain(name="alice", t=1_700_000_000, init=None, v=1):
    return json.dumps({"v": v, "n": name, "t": t, "i": INIT if init is None else init},
                      separators=(",", ":"))


def sess(name, p, who="alice", now=1_700_000_100, max_age=3600, **expect):
    return {"name": name, "session": {"plain": p, "name": who, "now": now, "max_age": max_age},
            "expect_session": expect}


REINIT = ('{"jsonrpc":"2.0","id":"serena-remote-reinit","method":"initialize","params":'
          + json.dumps(INIT, separators=(",", ":")) + "}")
S = [
    sess("own session", plain(), result="ok", reinit=REINIT, protocol="2025-06-18"),
    sess("another token's session", plain(name="bob"), result="foreign", reinit=None),
    sess("a name that is a prefix", plain(name="alic"), result="foreign"),
    sess("expired", plain(), now=1_700_000_000 + 3601, result="expired", reinit=None),
    sess("exactly at the maximum age", plain(), now=1_700_000_000 + 3600, result="ok"),
    sess("issued in the future beyond the skew", plain(t=1_700_000_000 + 301), now=1_700_000_000,
         result="expired"),
    sess("issued in the future within the skew", plain(t=1_700_000_000 + 300), now=1_700_000_000,
         result="ok"),
    sess("another format version", plain(v=2), result="forged"),
    sess("no init object", json.dumps({"v": 1, "n": "alice", "t": 1}), result="forged"),
    sess("init that is an array", plain(init=[]), result="forged"),
    sess("empty name", plain(name=""), result="forged"),
    sess("fractional time", '{"v":1,"n":"alice","t":1.5,"i":{}}', result="forged"),
    sess("duplicate member", '{"v":1,"n":"alice","n":"bob","t":1,"i":{}}', result="forged"),
    sess("not JSON", "sr1.garbage", result="forged"),
    sess("empty init: no protocol version", plain(init={}), result="ok", protocol="",
         reinit='{"jsonrpc":"2.0","id":"serena-remote-reinit","method":"initialize","params":{}}'),
]
n_session = write("session.json", {"cases": S})

total = n_auth + n_classify + n_policy + n_tokens + n_health + n_session
print(f"auth {n_auth}, classify {n_classify}, policy {n_policy}, tokens {n_tokens}, "
      f"health {n_health}, session {n_session}: {total} cases")
