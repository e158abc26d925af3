/*
 * Every bound in serena-remote, in one place (DESIGN.md rule 4).
 *
 * Buffers, queues and counts are all sized from these names so that a reader
 * can see at a glance how much memory any input can make the gateway use.
 * Freestanding: no includes, usable from the core and from core.wasm.
 */
#ifndef SR_CORE_LIMITS_H
#define SR_CORE_LIMITS_H

/* JSON reader: nesting depth, and the token array the edge gives it. */
#define SR_JSON_MAX_DEPTH  64
#define SR_JSON_MAX_TOKENS (1u << 18)

/* Tokens: how many entries a table holds, name length, minimum token length. */
#define SR_TOKENS_MAX       256
#define SR_TOKEN_NAME_MAX   64
#define SR_TOKEN_MIN_LEN    16
#define SR_TOKEN_MAX_LEN    4096
#define SR_TOKENS_JSON_MAX  (256u * 1024u)

/* Route names: "<generation>:<name>". */
#define SR_GENERATION_MAX 64
#define SR_ROUTE_MAX      (SR_GENERATION_MAX + 1 + SR_TOKEN_NAME_MAX)

/* Origins accepted on /mcp (ALLOWED_ORIGINS, comma separated). */
#define SR_ORIGINS_MAX    32
#define SR_ORIGIN_LEN_MAX 256

/* HTTP limits enforced at the edge. */
#define SR_MAX_BODY_DEFAULT (4u * 1024u * 1024u)
#define SR_MAX_HEADERS      (16u * 1024u)

/* Peeked JSON-RPC fields kept by request classification. */
#define SR_RPC_METHOD_MAX 128
#define SR_RPC_ID_MAX     256

/* Error and status documents written by the core. */
#define SR_ERROR_BODY_MAX 1024
#define SR_HEALTH_MAX     4096
#define SR_ERRMSG_MAX     256

#endif
