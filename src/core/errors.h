/*
 * JSON-RPC error bodies for answers the edge gives itself.
 *
 * Shape: {"jsonrpc":"2.0","error":{"code":C,"message":"M"},"id":ID} where ID is
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

/* Writes the body NUL-terminated into out; returns its length, or -1 when cap is too small. */
int sr_error_body(char *out, size_t cap, int code, const char *message, const char *id_json,
                  size_t id_len);

#endif
