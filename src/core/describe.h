/*
 * Requests, decisions and health inputs described as JSON.
 *
 * This is the wire format between core.wasm and its JavaScript host (the
 * Cloudflare Worker) and the format of the shared test vectors in
 * tests/vectors/, so that the native runner and the wasm runner feed the
 * core through the very same conversion.
 *
 * Request description (unknown keys are ignored; absent headers are absent):
 *   {"method":"POST","path":"/mcp",
 *    "headers":{"origin":"..","accept":"..","mcp-session-id":"..","authorization":"..",
 *               "mcp-protocol-version":"..","mcp-method":"..","mcp-name":".."},
 *    "digest":"<64 hex>",          optional: SHA-256 of the bearer token, computed here if absent
 *    "body_too_large":false,       optional
 *    "mcp_header_repeated":false}  optional: a routing header (the last three) came twice
 * The body itself is not part of the description: the caller sets
 * req.body/body_len (core.wasm takes the raw bytes that follow the JSON).
 *
 * Decision:
 *   {"action":"reject|health|status|forward","status":N,"allow":"..."|null,
 *    "www_authenticate":B,"token_index":N,"route":"..","shim":"initialized"|null,
 *    "fix_accept":B,"is_initialize":B,"stateless":B,"protocol_version":"..",
 *    "rpc_method":"..","rpc_id":"<raw JSON>","body":".."}
 *
 * Health input: the host-owned fields of the /health document, in the
 * document's own shape (see health.c): status, reason, role, mode, instances{max,
 * unknown (true: the counts are written as null), starting, ready, idle, stopping, failed},
 * persistence{enabled, store,
 * bucket, prefix, partition_mode, interval_seconds, retention_count, strict,
 * state}, uptime_seconds. Missing keys take neutral defaults.
 */
#ifndef SR_CORE_DESCRIBE_H
#define SR_CORE_DESCRIBE_H

#include <stddef.h>

#include "core/classify.h"
#include "core/health.h"
#include "core/json.h"
#include "core/tokens.h"

/* Decoded strings of one request description (headers are bounded by SR_MAX_HEADERS). */
#define SR_REQUEST_DESC_MAX (SR_MAX_HEADERS + SR_TOKEN_MAX_LEN + 1024u)
/* Decoded strings of one health input. */
#define SR_HEALTH_DESC_MAX 2048u
/* A decision document always fits in this many bytes. */
#define SR_DECISION_JSON_MAX (8u * 1024u)

struct sr_request_desc {
    struct sr_request req; /* strings point into store */
    char store[SR_REQUEST_DESC_MAX];
    size_t used;
};

struct sr_health_desc {
    struct sr_health h; /* strings point into store or at static defaults */
    char store[SR_HEALTH_DESC_MAX];
    size_t used;
};

/*
 * Fill rd->req from a request description (body left empty). `toks` holds
 * the parse (64 tokens are plenty). 0, or -1 with err naming the bad field.
 */
int sr_describe_request(struct sr_request_desc *rd, const char *json, size_t n,
                        struct sr_json_tok *toks, uint32_t cap, struct sr_core_err *err);

/* Write the decision document NUL-terminated; returns its length or -1 when cap is too small. */
int sr_describe_decision(const struct sr_decision *d, char *out, size_t cap);

/* Fill hd->h from a health input; generation, strategy, token count and version are left for the
 * caller. */
int sr_describe_health(struct sr_health_desc *hd, const char *json, size_t n,
                       struct sr_json_tok *toks, uint32_t cap, struct sr_core_err *err);

#endif
