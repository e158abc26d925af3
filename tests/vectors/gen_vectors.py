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
         **reject(404, body_contains="/mcp")),
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
n_classify = write("classify.json", {"config": BASE, "cases": C})

# ---------------------------------------------------------------- policy.json
PCFG = {"tokens_json": {"alice": TOK_A},
        "policy": {"generation": "gen-7", "origins": "https://app.example, http://localhost:6274"}}
WORKER = {"tokens_json": {"alice": TOK_A}, "policy": {"bare_get_405": True}}
RUN = {"policy": {"check_bearer": False}}
SMALL = {"tokens_json": {"alice": TOK_A}, "policy": {"max_body": 64}}
STAR = {"tokens_json": {"alice": TOK_A}, "policy": {"origins": "*"}}
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
n_tokens = write("tokens.json", {"config": {}, "cases": T})

# ---------------------------------------------------------------- health.json
HIN = {"status": "ok", "role": "serve", "mode": "instances",
       "instances": {"max": 8, "starting": 1, "ready": 2, "idle": 3, "stopping": 1, "failed": 4},
       "persistence": {"enabled": True, "store": "s3", "bucket": "serena-state", "prefix": "p/",
                       "partition_mode": "token", "interval_seconds": 180, "retention_count": 5,
                       "strict": False, "state": "ok"},
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
                                       "strict": False, "state": "ok"},
                       "uptime_seconds": 42},
     "forbid": SECRETS + NAMES + ["singleton\""]},
    {"name": "singleton strategy", "config": {"api_token": TOK_S}, "health": {},
     "expect_health": {"route_strategy": "singleton", "token_count": 1, "status": "ok",
                       "persistence": {"enabled": False, "store": "none", "state": "disabled"}},
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

total = n_auth + n_classify + n_policy + n_tokens + n_health
print(f"auth {n_auth}, classify {n_classify}, policy {n_policy}, tokens {n_tokens}, "
      f"health {n_health}: {total} cases")
