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
#define SR_TOKENS_MAX      256
#define SR_TOKEN_NAME_MAX  64
#define SR_TOKEN_MIN_LEN   16
#define SR_TOKEN_MAX_LEN   4096
#define SR_TOKENS_JSON_MAX (256u * 1024u)

/* Route names: "<generation>:<name>". */
#define SR_GENERATION_MAX 64
#define SR_ROUTE_MAX      (SR_GENERATION_MAX + 1 + SR_TOKEN_NAME_MAX)

/* Origins accepted on /mcp (ALLOWED_ORIGINS, comma separated). */
#define SR_ORIGINS_MAX    32
#define SR_ORIGIN_LEN_MAX 256

/* HTTP limits enforced at the edge. */
#define SR_MAX_BODY_DEFAULT (4u * 1024u * 1024u)
#define SR_MAX_HEADERS      (16u * 1024u)

/* Edge connections: timeouts in seconds, buffer marks in bytes. */
#define SR_HEAD_TIMEOUT      30  /* a request head and body must arrive within this */
#define SR_KEEPALIVE_TIMEOUT 75  /* idle keep-alive connection */
#define SR_WRITE_STALL       300 /* a client that reads nothing for this long is dropped */
#define SR_RELAY_HIGH_WATER  (64u * 1024u) /* pause the upstream above this much unsent output */
#define SR_RELAY_LOW_WATER   (16u * 1024u) /* resume it below this */
#define SR_RESEND_DELAY_MS   100 /* a request whose backend had just died waits this long, once */
#define SR_STREAM_KEEPALIVE  15  /* seconds between comments on a parked GET stream */
#define SR_RELAY_TAP_MAX     (64u * 1024u) /* response bytes the edge may read (activate_project) */
#define SR_PIPELINE_MAX      (64u * 1024u) /* bytes read ahead while a response is in progress */
#define SR_MAX_CONNECTIONS   10000
#define SR_LINGER_TIMEOUT    2  /* seconds to discard input after a final response */
#define SR_DRAIN_TIMEOUT     10 /* SIGTERM: seconds to let in-flight requests finish */

/* Upstream pool. */
#define SR_POOL_MAX_IDLE            64 /* idle keep-alive connections kept per upstream */
#define SR_POOL_IDLE_TIMEOUT        4  /* below Node's 5 s keepAliveTimeout */
#define SR_UPSTREAM_CONNECT_TIMEOUT 10
#define SR_UPSTREAM_HEAD_TIMEOUT                                                                   \
    300 /* first response byte; Serena's first call can take a minute */
#define SR_UPSTREAM_MAX_HEAD (64u * 1024u)
#define SR_BACKGROUND_MAX    256 /* shim deliveries in flight */

/* Edge I/O: access-log batching, reads per call, per-connection token cache. */
#define SR_LOG_BUF_MAX     (16u * 1024u)
#define SR_LOG_FLUSH_MS    50
#define SR_SOCKIO_READ_MAX (16u * 1024u)
#define SR_TOKEN_CACHE_MAX 128

/* Peeked JSON-RPC fields kept by request classification. */
#define SR_RPC_METHOD_MAX 128
#define SR_RPC_ID_MAX     256

/*
 * MCP 2026-07-28 request headers: the longest MCP-Protocol-Version value the
 * edge echoes in an UnsupportedProtocolVersionError, and the longest decoded
 * Mcp-Name it compares with the body when the header is Base64-encoded (a
 * plain header is compared in place, whatever its length).
 */
#define SR_PROTOCOL_VERSION_MAX 64
#define SR_MCP_NAME_MAX         4096

/* Edge sessions: plaintext of an id, default maximum age, tolerated clock skew, entries the
 * native edge keeps (id -> backend session; more are re-initialized when used again), ended
 * (DELETE'd) ids remembered across restarts until they expire (beyond, the soonest to expire
 * is forgotten). */
#define SR_SESSION_PLAIN_MAX      1536
#define SR_SESSION_MAX_AGE        (30u * 24u * 3600u)
#define SR_SESSION_SKEW           300
#define SR_SESSION_TABLE_MAX      4096
#define SR_SESSION_BACKEND_ID_MAX 128
#define SR_SESSION_ENDED_MAX      16384

/* A route's remembered project (a path or a registered project name). */
#define SR_PROJECT_MAX 1024

/* Snapshot encryption: keys in SERENA_SNAPSHOT_KEY (the first encrypts, all decrypt). */
#define SR_KEYLIST_MAX 8

/* Token entries' project specs, all together (a spec is at most SR_PROJECT_MAX). */
#define SR_TOKENS_PROJECTS_MAX (64u * 1024u)

/* Error and status documents written by the core. */
#define SR_ERROR_BODY_MAX 1024
#define SR_HEALTH_MAX     4096
#define SR_ERRMSG_MAX     256

/*
 * The operator's view: /status (one route's record: a project path, a last
 * error, a log path and a snapshot key fit with room to spare), a tools/call
 * tool name as the access log keeps it, distinct route names the metrics
 * registry keeps (a power of two; later ones count as "_other"), processes
 * one /proc scan reads when it sums a backend's process tree, and the
 * largest answer `serena-remote status` reads from the admin listener.
 */
#define SR_STATUS_DOC_MAX     8192
#define SR_STATUS_ENTRY_BIG   (64u * 1024u) /* an /instances entry past SR_STATUS_DOC_MAX */
#define SR_TOOL_NAME_MAX      128
#define SR_METRICS_ROUTES_MAX 512
#define SR_PROCFS_SCAN_MAX    16384
#define SR_ADMIN_REPLY_MAX    (4u * 1024u * 1024u)

/*
 * OAuth (OAUTH_ENABLED, docs/oauth.md): sizes of what a client may register
 * and send, how many records the authorization server keeps (registrations,
 * pending codes, issued tokens; the oldest are dropped beyond them), their
 * lifetimes in seconds, and how many wrong tokens the consent page takes per
 * client address and in total per SR_OAUTH_FAIL_WINDOW before it answers 429.
 */
#define SR_OAUTH_URI_MAX         512
#define SR_OAUTH_REDIRECTS_MAX   4
#define SR_OAUTH_CLIENT_NAME_MAX 128
#define SR_OAUTH_REGISTER_MAX    (16u * 1024u) /* registration request body */
#define SR_OAUTH_CIMD_MAX        5120u         /* a client metadata document */
#define SR_OAUTH_CIMD_TTL_MAX    86400         /* its cache lifetime at most (default 3600) */
#define SR_OAUTH_FORM_MAX        (16u * 1024u) /* form body or query string */
#define SR_OAUTH_PARAM_MAX       1024          /* one decoded form value */
#define SR_OAUTH_PUBLIC_URL_MAX  256
#define SR_OAUTH_CLIENTS_MAX     256
#define SR_OAUTH_CODES_MAX       64
#define SR_OAUTH_GRANTS_MAX      4096
#define SR_OAUTH_CODE_TTL        60
#define SR_OAUTH_ACCESS_TTL      3600
#define SR_OAUTH_REFRESH_TTL     (30u * 24u * 3600u)
#define SR_OAUTH_CLIENT_IDLE_TTL (30u * 24u * 3600u)
#define SR_OAUTH_FAIL_WINDOW     60
#define SR_OAUTH_FAILS_PER_ADDR  5
#define SR_OAUTH_FAILS_TOTAL     30
#define SR_OAUTH_FAIL_ADDRS      256
/* Registrations (an open endpoint) accepted per client address and in total per window. */
#define SR_OAUTH_REGISTER_PER_ADDR 10
#define SR_OAUTH_REGISTER_TOTAL    60

/*
 * An external identity provider (SERENA_REMOTE_OAUTH_ISSUER, docs/oauth.md): the largest JWT
 * access token, its signature (RSA-4096), kid and one claim string, audiences and claim values
 * kept, the JWKS document, keys kept from it, an RSA modulus, claim-map entries, JSON tokens
 * for a JWT's parts and for a JWKS; clock skew (default and most), seconds between periodic
 * JWKS refreshes, between refreshes an unknown kid may cause, requests held for one, and how
 * long a JWKS fetch may take.
 */
#define SR_JWT_MAX                  8192
#define SR_JWT_SIG_MAX              512
#define SR_JWT_KID_MAX              128
#define SR_JWT_CLAIM_MAX            256
#define SR_JWT_AUD_MAX              8
#define SR_JWT_CLAIM_VALUES         32
#define SR_JWKS_MAX                 (64u * 1024u)
#define SR_JWKS_KEYS_MAX            32
#define SR_JWK_RSA_N_MAX            512
#define SR_CLAIM_MAP_MAX            256
#define SR_JWT_TOKS                 2048
#define SR_JWKS_TOKS                8192
#define SR_IDP_SKEW_DEFAULT         60
#define SR_IDP_SKEW_MAX             300
#define SR_IDP_JWKS_REFRESH         600
#define SR_IDP_UNKNOWN_KID_INTERVAL 30
#define SR_IDP_WAITERS_MAX          256
#define SR_IDP_FETCH_TIMEOUT_MS     10000

#endif
