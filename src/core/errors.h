/*
 * JSON-RPC error bodies for answers the edge gives itself.
 *
 * Shape: {"jsonrpc":"2.0","error":{"code":C,"message":"M"[,"data":D]},"id":ID} where ID is
 * the request's raw id when it was peeked, else null. Messages say what
 * happened, why and what to do; they never hold a token or a token name.
 */
#ifndef SR_CORE_ERRORS_H
#define SR_CORE_ERRORS_H

#include <stddef.h>

/* JSON-RPC codes used by the edge. */
#define SR_RPC_PARSE_ERROR     (-32700)
#define SR_RPC_INVALID_REQUEST (-32600)
#define SR_RPC_SERVER_ERROR    (-32000) /* transport-level refusals, as the MCP SDKs use */
#define SR_RPC_UNAUTHORIZED    (-32001)
/* MCP 2026-07-28: HTTP headers contradict the body, or a required one is missing (HTTP 400). */
#define SR_RPC_HEADER_MISMATCH (-32020)
/* MCP 2026-07-28: UnsupportedProtocolVersionError, data {supported, requested} (HTTP 400). */
#define SR_RPC_UNSUPPORTED_VERSION (-32022)

/* Writes the body NUL-terminated into out; returns its length, or -1 when cap is too small. */
int sr_error_body(char *out, size_t cap, int code, const char *message, const char *id_json,
                  size_t id_len);

/* The same with an error "data" member: data_json is valid JSON the caller wrote (NULL: none). */
int sr_error_body_data(char *out, size_t cap, int code, const char *message, const char *data_json,
                       size_t data_len, const char *id_json, size_t id_len);

#endif
