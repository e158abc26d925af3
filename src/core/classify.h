/*
 * Request classification: every security decision about an HTTP request is
 * made here, once, and compiled both natively and into core.wasm.
 *
 * Input: the method, path, the few headers that matter, the presented token's
 * digest (the host hashes the span sr_auth_parse_bearer returned) and the
 * body. Output: reject (status + JSON-RPC error body), answer at the edge
 * (health, well-known, status), or forward to a route, with the shims that
 * apply. The body is parsed strictly; only the top-level JSON-RPC `method`
 * and `id` are peeked, nothing else is trusted or rewritten.
 *
 * Order of checks for /mcp: Origin (403) -> HTTP method (405) -> bearer
 * (401) -> body size (413) -> body JSON (400) -> era and MCP headers (400,
 * 405) -> session rule (400) -> shims.
 *
 * Era: the MCP-Protocol-Version header decides it (docs/mcp-2026-07-28.md).
 * 2026-07-28 is the stateless era: no initialize, no session; the edge checks
 * that Mcp-Method and Mcp-Name agree with the body (400, JSON-RPC -32020) and
 * forwards with `stateless` set, so the session rule and the shims never
 * apply. 2024-11-05 ... 2025-11-25, or no header at all, is the session era
 * with its session rule and shims. Any other version is answered 400 with an
 * UnsupportedProtocolVersionError (-32022). A routing header given twice, or
 * a body that carries the 2026-07-28 envelope without the version header, is
 * a -32020 in either era.
 */
#ifndef SR_CORE_CLASSIFY_H
#define SR_CORE_CLASSIFY_H

#include <stddef.h>
#include <stdint.h>
#include <stdbool.h>

#include "core/json.h"
#include "core/limits.h"
#include "core/sha256.h"
#include "core/tokens.h"

struct sr_policy {
    const struct sr_tokens *tokens; /* borrowed */
    char generation[SR_GENERATION_MAX + 1];
    /* ALLOWED_ORIGINS: exact, case-insensitive matches of the Origin header; "*" allows any. */
    char origins[SR_ORIGINS_MAX][SR_ORIGIN_LEN_MAX + 1];
    uint32_t origin_count;
    uint32_t max_body; /* bytes; SR_MAX_BODY_DEFAULT */
    bool check_bearer; /* false in `run` behind the Worker (the Worker authenticated) */
    bool bare_get_405; /* Worker: a GET /mcp is refused (an open stream keeps a container awake) */
    /*
     * The host listens on a loopback address (127.0.0.0/8, ::1, localhost):
     * an Origin of http://localhost, http://127.0.0.1 or http://[::1], with
     * an optional port, is then a local page and allowed besides
     * ALLOWED_ORIGINS, as the MCP SDKs allow it for local servers.
     */
    bool loopback_listener;
};

/* The MCP revision without sessions, and the one version a -32022 lists as supported. */
#define SR_MCP_STATELESS_VERSION "2026-07-28"

/* Fill defaults: generation "gen-1", no origins, 4 MiB, bearer checked, GET allowed, not loopback.
 */
void sr_policy_init(struct sr_policy *p, const struct sr_tokens *tokens);

/* Set MCP_CONTAINER_ROUTE_GENERATION ([A-Za-z0-9._-]{1,64}; empty: the default); -1 with err. */
int sr_policy_set_generation(struct sr_policy *p, const char *s, size_t n, struct sr_core_err *err);

/* Parse ALLOWED_ORIGINS ("https://a.example, https://b.example" or "*"); -1 with err on junk. */
int sr_policy_set_origins(struct sr_policy *p, const char *list, size_t n, struct sr_core_err *err);

struct sr_request {
    const char *method; /* HTTP method, e.g. "POST" */
    size_t method_len;
    const char *path; /* path without the query string */
    size_t path_len;
    /* Optional headers: NULL when absent. */
    const char *origin;
    size_t origin_len;
    const char *accept;
    size_t accept_len;
    const char *session_id; /* mcp-session-id */
    size_t session_id_len;
    const char *protocol_version; /* mcp-protocol-version */
    size_t protocol_version_len;
    const char *mcp_method; /* mcp-method (2026-07-28) */
    size_t mcp_method_len;
    const char *mcp_name; /* mcp-name (2026-07-28) */
    size_t mcp_name_len;
    /* One of mcp-protocol-version, mcp-method, mcp-name came more than once (the
     * spans above are the first copy); peers reading another copy would disagree. */
    bool mcp_header_repeated;
    /* Bearer: has_bearer is true when sr_auth_parse_bearer accepted the header;
     * digest is then the SHA-256 of the token. */
    bool has_authorization; /* an Authorization header was present at all */
    bool has_bearer;
    uint8_t digest[SR_SHA256_LEN];
    const char *body;
    size_t body_len;
    bool body_too_large; /* the host saw Content-Length (or bytes) above max_body */
};

enum sr_action {
    SR_ACT_REJECT = 1, /* answer `status` with `body` */
    SR_ACT_HEALTH,     /* GET /health: the host writes the health document */
    SR_ACT_STATUS,     /* GET /status with a valid token: the token's own instance */
    SR_ACT_FORWARD,    /* relay to `route` */
};

enum sr_shim {
    SR_SHIM_NONE = 0,
    SR_SHIM_INITIALIZED = 1, /* answer 202 now, deliver upstream in the background */
};

struct sr_decision {
    enum sr_action action;
    int status;            /* HTTP status for REJECT (and 202 for the shim) */
    const char *allow;     /* non-NULL: send "Allow: <allow>" (405) */
    bool www_authenticate; /* send "WWW-Authenticate: Bearer ..." (401) */
    int32_t token_index;   /* the matched entry (FORWARD, STATUS), else -1 */
    char route[SR_ROUTE_MAX + 1];
    enum sr_shim shim;
    bool fix_accept;    /* send "Accept: application/json, text/event-stream" upstream */
    bool is_initialize; /* POST initialize without a session */
    /* A 2026-07-28 request: forwarded without a session, no session rule and no shims. */
    bool stateless;
    /* The MCP-Protocol-Version the edge recognised (OWS trimmed), "" when absent or refused. */
    char protocol_version[SR_PROTOCOL_VERSION_MAX + 1];
    /* Peeked JSON-RPC fields (POST bodies), for logs and error bodies. */
    char rpc_method[SR_RPC_METHOD_MAX + 1]; /* "" when absent; "(batch)" for arrays */
    char rpc_id[SR_RPC_ID_MAX + 1];         /* raw JSON of the id, "" when absent */
    /* REJECT: the JSON-RPC error body (application/json), NUL-terminated. */
    char body[SR_ERROR_BODY_MAX];
    size_t body_len;
};

/*
 * Decide what to do with `req`. `scratch`/`scratch_cap` are JSON tokens for
 * parsing the body (SR_JSON_MAX_TOKENS covers any body under max_body that
 * is not pathological; more gives a 400 naming the limit). Always fills *d
 * and returns 0; -1 only for a NULL argument.
 */
int sr_classify(const struct sr_policy *p, const struct sr_request *req,
                struct sr_json_tok *scratch, uint32_t scratch_cap, struct sr_decision *d);

#endif
