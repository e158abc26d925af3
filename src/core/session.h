/*
 * Edge session ids: what a client's Mcp-Session-Id says, in one place for
 * the gateway (serve, run) and the Worker (core.wasm).
 *
 * The edge, not the backend, owns a client's MCP session (2025 protocol
 * era). The id it hands out is self-contained, so that any replica, a
 * restarted gateway or a container that slept can verify it and resume the
 * session without shared storage:
 *
 *   id        = "sr1." base64url(nonce[12] || ciphertext || tag[16])
 *   plaintext = {"v":1,"n":"<token name>","t":<issued, unix seconds>,
 *                "i":{"protocolVersion":…,"capabilities":…,"clientInfo":…}}
 *
 * sealed with AES-256-GCM under the session key, the associated data being
 * SR_SESSION_AAD. The plaintext carries client data (clientInfo), so it is
 * encrypted, not only authenticated. The core builds and reads plaintexts
 * and frames ids; the host seals and opens them (OpenSSL natively,
 * WebCrypto in the Worker), as with every other primitive.
 *
 * "i" holds the client's own initialize parameters (only the three members
 * a server reads), so a lost backend session can be re-initialized exactly
 * as the client initialized it. Parameters too large for an id are cut to
 * protocolVersion and clientInfo (capabilities then read as {}).
 */
#ifndef SR_CORE_SESSION_H
#define SR_CORE_SESSION_H

#include <stddef.h>
#include <stdint.h>
#include <stdbool.h>

#include "core/json.h"
#include "core/limits.h"
#include "core/tokens.h"

#define SR_SESSION_PREFIX     "sr1."
#define SR_SESSION_PREFIX_LEN 4
#define SR_SESSION_NONCE_LEN  12
#define SR_SESSION_TAG_LEN    16
#define SR_SESSION_KEY_LEN    32
#define SR_SESSION_AAD        "serena-remote edge session v1"
/* Sealed bytes: nonce + ciphertext (as long as the plaintext) + tag. */
#define SR_SESSION_SEALED_MAX (SR_SESSION_NONCE_LEN + SR_SESSION_PLAIN_MAX + SR_SESSION_TAG_LEN)
/* The id as text: prefix + base64url of the sealed bytes, plus a NUL. */
#define SR_SESSION_ID_MAX (SR_SESSION_PREFIX_LEN + (SR_SESSION_SEALED_MAX + 2) / 3 * 4 + 1)

enum sr_session_err {
    SR_SESSION_OK = 0,
    SR_SESSION_E_FORMAT = -1,  /* not an id this edge issues (no prefix, bad base64url, size) */
    SR_SESSION_E_FORGED = -2,  /* does not open under the key (host), or a malformed plaintext */
    SR_SESSION_E_FOREIGN = -3, /* issued to another token */
    SR_SESSION_E_EXPIRED = -4, /* older than the maximum age, or issued in the future */
    SR_SESSION_E_ENDED = -5,   /* the client ended it with DELETE (host) */
};

struct sr_session_claims {
    char name[SR_TOKEN_NAME_MAX + 1]; /* the token name the session was issued to */
    int64_t issued;                   /* unix seconds */
    const char *init;                 /* raw JSON object of initialize params (in the plaintext) */
    size_t init_len;
};

/*
 * The plaintext for a new session of token `name`, from the client's
 * initialize request body (a JSON-RPC object). Returns its length, or -1
 * when the body is no initialize request or the output does not fit.
 * toks/cap: scratch for parsing the body.
 */
int sr_session_plain_new(const char *name, int64_t now, const char *body, size_t body_len,
                         struct sr_json_tok *toks, uint32_t cap, char *out, size_t out_cap);

/* Read a plaintext back; the claims point into `plain`. 0 or SR_SESSION_E_FORGED. */
int sr_session_plain_parse(const char *plain, size_t n, struct sr_json_tok *toks, uint32_t cap,
                           struct sr_session_claims *c);

/*
 * Whether claims admit a request of token `name` at `now` (max_age seconds;
 * a session issued more than SR_SESSION_SKEW seconds in the future is refused
 * too). 0, SR_SESSION_E_FOREIGN or SR_SESSION_E_EXPIRED.
 */
int sr_session_check(const struct sr_session_claims *c, const char *name, int64_t now,
                     uint32_t max_age);

/* Frame sealed bytes as an id (NUL-terminated); returns its length, or -1 when cap is small. */
int sr_session_id_encode(const uint8_t *sealed, size_t n, char *out, size_t cap);

/* The sealed bytes of an id; SR_SESSION_E_FORMAT when it is not one this edge issues. */
int sr_session_id_decode(const char *id, size_t n, uint8_t *out, size_t cap, size_t *outlen);

/* The body that re-initializes a backend session: an initialize request with the recorded
 * params and the id SR_SESSION_REINIT_ID. Returns its length or -1. */
#define SR_SESSION_REINIT_ID "\"serena-remote-reinit\""
int sr_session_reinit_body(const struct sr_session_claims *c, char *out, size_t cap);

/* The recorded protocol version (for the MCP-Protocol-Version header), NUL-terminated into out;
 * "" when absent. */
void sr_session_protocol(const struct sr_session_claims *c, struct sr_json_tok *toks, uint32_t cap,
                         char *out, size_t out_cap);

/*
 * The JSON-RPC error body for a refused session id (404: the client should
 * start a new session), with a message that says why. Returns its length or -1.
 */
int sr_session_error_body(int err, const char *rpc_id, size_t rpc_id_len, char *out, size_t cap);

/*
 * The judgement of one opened plaintext, described in JSON (shared vectors and core.wasm):
 * input {"plain": "<plaintext>", "name": "<token name>", "now": N, "max_age": N}; output
 * {"result": "ok"|"forged"|"foreign"|"expired", "reinit": "<body>"|null, "protocol": "…"}.
 * Returns the output's length, or -1 when the input is not such a description.
 */
int sr_session_judge_json(const char *in, size_t n, struct sr_json_tok *toks, uint32_t cap,
                          char *out, size_t out_cap);

#endif
