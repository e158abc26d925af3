/*
 * libFuzzer harness for request classification (src/core/classify.c).
 *
 * The input is cut at 0x00 bytes into method, path, Origin, Accept,
 * mcp-session-id, Authorization and body; the first byte chooses which
 * headers are present and the policy variant. When its top bit is set, a
 * second byte follows it and three more fields follow Authorization:
 * MCP-Protocol-Version, Mcp-Method and Mcp-Name (MCP 2026-07-28), with the
 * second byte choosing which are present, whether a routing header counts as
 * repeated and whether the gateway listens on loopback (older seeds, whose
 * top bit is clear, keep their meaning). The request goes through the
 * real Authorization parser and SHA-256, as a host would send it, against a
 * fixed token table. Every decision must be coherent: a refusal has a valid
 * JSON-RPC body that names no token or token name, 401 comes with
 * WWW-Authenticate and 405 with Allow, a forward has a route under the
 * policy's generation and (with bearer checking) the entry whose digest was
 * presented. A stateless forward carries MCP-Protocol-Version 2026-07-28 and,
 * for a request with an Mcp-Method, the body's method; a forward of the
 * session era obeys the session rule; a forwarded Origin is listed or, on a
 * loopback listener, a local page. The decision must also survive
 * sr_describe_decision.
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/auth.h"
#include "core/classify.h"
#include "core/describe.h"
#include "core/mem.h"
#include "core/sha256.h"

#define FUZZ_TOKS 65536
#define NAME_A    "alice-fuzz-name"
#define TOK_A     "alpha-token-0123456789abcdef"
#define TOK_S     "singleton-secret-0123456789"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct sr_tokens table;
static struct sr_policy policies[8];
static struct sr_json_tok toks[FUZZ_TOKS];
static struct sr_json_tok check_toks[256];
static struct sr_decision d;
static char out[SR_DECISION_JSON_MAX];
static bool ready;

static void check(bool ok)
{
    if (!ok)
        abort();
}

static void setup(void)
{
    struct sr_core_err err;
    static const char json[] = "{\"" NAME_A "\":\"" TOK_A "\",\"bob\":\"sha256:"
                               "0000000000000000000000000000000000000000000000000000000000000000"
                               "\"}";
    int i;

    sr_tokens_init(&table);
    check(sr_tokens_add_singleton(&table, TOK_S, sizeof(TOK_S) - 1, &err) == 0);
    check(sr_tokens_add_json(&table, json, sizeof(json) - 1, NULL, toks, FUZZ_TOKS, &err) == 0);
    for (i = 0; i < 8; i++)
        sr_policy_init(&policies[i], &table);
    /* 0: serve defaults; 1: origins and a generation; 2: Worker; 3: run behind the Worker. */
    check(sr_policy_set_origins(&policies[1], "https://app.example, http://localhost:6274", 42,
                                &err) == 0);
    check(sr_policy_set_generation(&policies[1], "gen-9", 5, &err) == 0);
    policies[1].max_body = 64;
    policies[2].bare_get_405 = true;
    policies[3].check_bearer = false;
    /* 4..7: the same four on a loopback listener. */
    for (i = 4; i < 8; i++) {
        memcpy(&policies[i], &policies[i - 4], sizeof(policies[i]));
        policies[i].loopback_listener = true;
    }
    ready = true;
}

static bool span_eq(const char *s, size_t n, const char *lit)
{
    return s != NULL && n == strlen(lit) && memcmp(s, lit, n) == 0;
}

/* A span without the optional whitespace around it. */
static void trimmed(const char **s, size_t *n)
{
    while (*n > 0 && (**s == ' ' || **s == '\t')) {
        (*s)++;
        (*n)--;
    }
    while (*n > 0 && ((*s)[*n - 1] == ' ' || (*s)[*n - 1] == '\t'))
        (*n)--;
}

/* The Origin forms a loopback listener accepts besides the list (checked loosely here). */
static bool local_page(const char *o, size_t n)
{
    static const char *const pre[] = {"http://localhost", "http://127.0.0.1", "http://[::1]"};
    size_t i;

    for (i = 0; i < 3; i++) {
        size_t pl = strlen(pre[i]);

        if (n >= pl && strncasecmp(o, pre[i], pl) == 0 && (n == pl || o[pl] == ':'))
            return true;
    }
    return false;
}

/* True when `body` shows the secret `s` and the input did not carry it itself. */
static bool leaks(const char *body, const char *s, const char *in, size_t n)
{
    return strstr(body, s) != NULL && memmem(in, n, s, strlen(s)) == NULL;
}

/* Next field up to a 0x00 separator (or the end). */
static const char *field(const uint8_t **p, const uint8_t *end, size_t *n)
{
    const uint8_t *s = *p, *e = s;

    while (e < end && *e != 0)
        e++;
    *n = (size_t)(e - s);
    *p = e < end ? e + 1 : e;
    return (const char *)s;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const struct sr_policy *p;
    struct sr_request r;
    const uint8_t *cur, *end;
    uint8_t flags, flags2 = 0;
    char *copy;
    const char *auth, *tok = NULL;
    size_t auth_len, tl = 0;
    int len;

    if (!ready)
        setup();
    if (size < 1)
        return 0;
    /* An exact-size copy lets AddressSanitizer catch reads past any field. */
    copy = malloc(size);
    if (copy == NULL)
        return 0;
    memcpy(copy, data, size);
    flags = (uint8_t)copy[0];
    cur = (const uint8_t *)copy + 1;
    end = (const uint8_t *)copy + size;
    if ((flags & 0x80) && cur < end)
        flags2 = *cur++;
    p = &policies[(flags & 3) + ((flags2 & 0x08) ? 4 : 0)];
    memset(&r, 0, sizeof(r));
    r.method = field(&cur, end, &r.method_len);
    r.path = field(&cur, end, &r.path_len);
    r.origin = field(&cur, end, &r.origin_len);
    r.accept = field(&cur, end, &r.accept_len);
    r.session_id = field(&cur, end, &r.session_id_len);
    auth = field(&cur, end, &auth_len);
    if (flags & 0x80) {
        r.protocol_version = field(&cur, end, &r.protocol_version_len);
        r.mcp_method = field(&cur, end, &r.mcp_method_len);
        r.mcp_name = field(&cur, end, &r.mcp_name_len);
    }
    if (!(flags2 & 0x01)) {
        r.protocol_version = NULL;
        r.protocol_version_len = 0;
    }
    if (!(flags2 & 0x02)) {
        r.mcp_method = NULL;
        r.mcp_method_len = 0;
    }
    if (!(flags2 & 0x04)) {
        r.mcp_name = NULL;
        r.mcp_name_len = 0;
    }
    r.mcp_header_repeated = (flags2 & 0x10) != 0;
    r.body = (const char *)cur;
    r.body_len = (size_t)(end - cur);
    if (!(flags & 0x04)) {
        r.origin = NULL;
        r.origin_len = 0;
    }
    if (!(flags & 0x08)) {
        r.accept = NULL;
        r.accept_len = 0;
    }
    if (!(flags & 0x10)) {
        r.session_id = NULL;
        r.session_id_len = 0;
    }
    r.body_too_large = (flags & 0x20) != 0;
    if (flags & 0x40) {
        r.has_authorization = true;
        if (sr_auth_parse_bearer(auth, auth_len, &tok, &tl) == 0) {
            r.has_bearer = true;
            sr_sha256(tok, tl, r.digest);
        }
    }

    check(sr_classify(p, &r, toks, FUZZ_TOKS, &d) == 0);
    switch (d.action) {
    case SR_ACT_REJECT: {
        struct sr_json_doc doc;

        check(d.status >= 400 && d.status <= 599);
        check(d.body_len == strlen(d.body) && d.body_len > 0);
        check(sr_json_parse(&doc, d.body, d.body_len, check_toks, 256, NULL) == 0);
        /* An unsupported MCP-Protocol-Version is echoed, so only text the client sent may show. */
        check(!leaks(d.body, NAME_A, copy, size) && !leaks(d.body, TOK_A, copy, size) &&
              !leaks(d.body, TOK_S, copy, size) && !leaks(d.body, "singleton", copy, size));
        check((d.status == 401) == d.www_authenticate);
        check((d.status == 405) == (d.allow != NULL));
        check(d.route[0] == '\0' && d.shim == SR_SHIM_NONE);
        check(!d.stateless);
        /* A repeated routing header stops at the era step: never the later 400s. */
        check(!r.mcp_header_repeated || d.status != 400 ||
              (strstr(d.body, "-32022") == NULL && strstr(d.body, "-32000") == NULL));
        break;
    }
    case SR_ACT_FORWARD:
    case SR_ACT_STATUS: {
        size_t gl = strlen(p->generation);

        check(strncmp(d.route, p->generation, gl) == 0 && d.route[gl] == ':');
        check(d.body_len == 0);
        if (p->check_bearer) {
            check(d.token_index >= 0 && (uint32_t)d.token_index < table.count);
            check(r.has_bearer &&
                  sr_mem_eq_ct(table.e[d.token_index].digest, r.digest, SR_SHA256_LEN));
            check(strcmp(d.route + gl + 1, table.e[d.token_index].name) == 0);
        } else {
            check(d.token_index == -1 && strcmp(d.route + gl + 1, "run") == 0);
        }
        if (d.action == SR_ACT_FORWARD) {
            check(r.path_len == 4 && memcmp(r.path, "/mcp", 4) == 0);
            check(!r.body_too_large && r.body_len <= p->max_body);
            check(d.shim == SR_SHIM_NONE || d.status == 202);
            check(!r.mcp_header_repeated);
            /* Origin: listed (the policies list none or a few), or a local page on loopback. */
            if (r.origin != NULL && p->origin_count == 0)
                check(p->loopback_listener && local_page(r.origin, r.origin_len));
            if (d.stateless) {
                const char *pv = r.protocol_version, *mm = r.mcp_method;
                size_t pvn = r.protocol_version_len, mmn = r.mcp_method_len;

                check(pv != NULL);
                trimmed(&pv, &pvn);
                check(span_eq(pv, pvn, SR_MCP_STATELESS_VERSION));
                check(strcmp(d.protocol_version, SR_MCP_STATELESS_VERSION) == 0);
                check(r.method_len == 4 && memcmp(r.method, "POST", 4) == 0);
                check(d.shim == SR_SHIM_NONE && !d.is_initialize);
                /* A present Mcp-Method equals the body's method (when that was kept). */
                if (mm != NULL && d.rpc_method[0] != '\0') {
                    trimmed(&mm, &mmn);
                    check(span_eq(mm, mmn, d.rpc_method));
                }
            } else {
                /* The session rule: only an initialize may arrive without a session. */
                check(r.session_id_len > 0 || d.is_initialize);
            }
            check(!d.is_initialize || (r.method_len == 4 && memcmp(r.method, "POST", 4) == 0));
        }
        break;
    }
    case SR_ACT_HEALTH:
        check(r.path_len == 7 && memcmp(r.path, "/health", 7) == 0);
        break;
    default:
        check(false);
    }
    len = sr_describe_decision(&d, out, sizeof(out));
    check(len > 0);
    free(copy);
    return 0;
}
