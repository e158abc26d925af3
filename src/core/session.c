/*
 * Edge session ids (see session.h): building and reading the plaintext,
 * framing the sealed bytes, and judging the claims against a request.
 *
 * Everything that decides whether a session id is honoured lives here, so
 * the gateway and the Worker refuse the same ids with the same words; the
 * hosts only add the AEAD seal around the plaintext.
 */
#include "core/session.h"

#include "core/errors.h"
#include "core/mem.h"
#include "core/text.h"

/* Raw JSON span of value idx (strings with their quotes). */
static void raw_span(const struct sr_json_doc *doc, uint32_t idx, const char **p, size_t *n)
{
    const struct sr_json_tok *t = &doc->toks[idx];

    if (t->type == SR_JSON_STRING) {
        *p = doc->buf + t->start - 1;
        *n = (size_t)t->len + 2;
    } else {
        *p = doc->buf + t->start;
        *n = t->len;
    }
}

static int write_plain(const char *name, int64_t now, const struct sr_json_doc *doc, int32_t pv,
                       int32_t caps, int32_t info, char *out, size_t cap)
{
    struct sr_jw w;
    const char *p;
    size_t n = 0;

    sr_jw_init(&w, out, cap);
    sr_jw_obj_begin(&w);
    sr_jw_key(&w, "v");
    sr_jw_int(&w, 1);
    sr_jw_key(&w, "n");
    sr_jw_cstr(&w, name);
    sr_jw_key(&w, "t");
    sr_jw_int(&w, now);
    sr_jw_key(&w, "i");
    sr_jw_obj_begin(&w);
    if (pv >= 0) {
        raw_span(doc, (uint32_t)pv, &p, &n);
        sr_jw_key(&w, "protocolVersion");
        sr_jw_raw(&w, p, n);
    }
    if (caps >= 0) {
        raw_span(doc, (uint32_t)caps, &p, &n);
        sr_jw_key(&w, "capabilities");
        sr_jw_raw(&w, p, n);
    }
    if (info >= 0) {
        raw_span(doc, (uint32_t)info, &p, &n);
        sr_jw_key(&w, "clientInfo");
        sr_jw_raw(&w, p, n);
    }
    sr_jw_obj_end(&w);
    sr_jw_obj_end(&w);
    if (sr_jw_finish(&w, &n) != 0)
        return -1;
    return (int)n;
}

int sr_session_plain_new(const char *name, int64_t now, const char *body, size_t body_len,
                         struct sr_json_tok *toks, uint32_t cap, char *out, size_t out_cap)
{
    struct sr_json_doc doc;
    int32_t m, params, pv, caps, info;
    int n;

    if (name == NULL || body == NULL || out == NULL || out_cap == 0)
        return -1;
    if (sr_json_parse(&doc, body, body_len, toks, cap, NULL) != 0 ||
        doc.toks[0].type != SR_JSON_OBJECT)
        return -1;
    m = sr_json_obj_get(&doc, 0, "method", 6);
    if (m < 0 || !sr_json_str_eq(&doc, (uint32_t)m, "initialize", 10))
        return -1;
    params = sr_json_obj_get(&doc, 0, "params", 6);
    pv = caps = info = -1;
    if (params >= 0 && doc.toks[params].type == SR_JSON_OBJECT) {
        pv = sr_json_obj_get(&doc, (uint32_t)params, "protocolVersion", 15);
        caps = sr_json_obj_get(&doc, (uint32_t)params, "capabilities", 12);
        info = sr_json_obj_get(&doc, (uint32_t)params, "clientInfo", 10);
        if (pv >= 0 && doc.toks[pv].type != SR_JSON_STRING)
            pv = -1;
        if (caps >= 0 && doc.toks[caps].type != SR_JSON_OBJECT)
            caps = -1;
        if (info >= 0 && doc.toks[info].type != SR_JSON_OBJECT)
            info = -1;
    }
    /* Bounded by the id's size: a client with huge capabilities keeps its version and name. */
    n = write_plain(name, now, &doc, pv, caps, info, out,
                    out_cap < SR_SESSION_PLAIN_MAX ? out_cap : SR_SESSION_PLAIN_MAX);
    if (n < 0)
        n = write_plain(name, now, &doc, pv, -1, info, out,
                        out_cap < SR_SESSION_PLAIN_MAX ? out_cap : SR_SESSION_PLAIN_MAX);
    if (n < 0)
        n = write_plain(name, now, &doc, pv, -1, -1, out,
                        out_cap < SR_SESSION_PLAIN_MAX ? out_cap : SR_SESSION_PLAIN_MAX);
    return n;
}

int sr_session_plain_parse(const char *plain, size_t n, struct sr_json_tok *toks, uint32_t cap,
                           struct sr_session_claims *c)
{
    struct sr_json_doc doc;
    int32_t v, name, t, init;
    int64_t ver = 0;
    size_t nl = 0;

    if (plain == NULL || c == NULL)
        return SR_SESSION_E_FORGED;
    sr_mem_set(c, 0, sizeof(*c));
    if (sr_json_parse(&doc, plain, n, toks, cap, NULL) != 0 || doc.toks[0].type != SR_JSON_OBJECT)
        return SR_SESSION_E_FORGED;
    v = sr_json_obj_get(&doc, 0, "v", 1);
    name = sr_json_obj_get(&doc, 0, "n", 1);
    t = sr_json_obj_get(&doc, 0, "t", 1);
    init = sr_json_obj_get(&doc, 0, "i", 1);
    if (v < 0 || sr_json_int64(&doc, (uint32_t)v, &ver) != 0 || ver != 1)
        return SR_SESSION_E_FORGED;
    if (name < 0 || doc.toks[name].type != SR_JSON_STRING ||
        sr_json_str_decode(&doc, (uint32_t)name, c->name, sizeof(c->name) - 1, &nl) != 0 || nl == 0)
        return SR_SESSION_E_FORGED;
    c->name[nl] = '\0';
    if (t < 0 || sr_json_int64(&doc, (uint32_t)t, &c->issued) != 0)
        return SR_SESSION_E_FORGED;
    if (init < 0 || doc.toks[init].type != SR_JSON_OBJECT)
        return SR_SESSION_E_FORGED;
    raw_span(&doc, (uint32_t)init, &c->init, &c->init_len);
    return SR_SESSION_OK;
}

int sr_session_check(const struct sr_session_claims *c, const char *name, int64_t now,
                     uint32_t max_age)
{
    size_t a, b;

    if (c == NULL || name == NULL)
        return SR_SESSION_E_FORGED;
    a = sr_str_len(c->name);
    b = sr_str_len(name);
    /* Names are not secret; an ordinary comparison is enough. */
    if (a != b || !sr_mem_eq(c->name, name, a))
        return SR_SESSION_E_FOREIGN;
    if (c->issued > now + SR_SESSION_SKEW || now - c->issued > (int64_t)max_age)
        return SR_SESSION_E_EXPIRED;
    return SR_SESSION_OK;
}

int sr_session_id_encode(const uint8_t *sealed, size_t n, char *out, size_t cap)
{
    size_t need = SR_SESSION_PREFIX_LEN + (n + 2) / 3 * 4 + 1;
    size_t len;

    if (sealed == NULL || out == NULL || need > cap)
        return -1;
    sr_mem_copy(out, SR_SESSION_PREFIX, SR_SESSION_PREFIX_LEN);
    len = SR_SESSION_PREFIX_LEN + sr_base64url_encode(sealed, n, out + SR_SESSION_PREFIX_LEN);
    out[len] = '\0';
    return (int)len;
}

int sr_session_id_decode(const char *id, size_t n, uint8_t *out, size_t cap, size_t *outlen)
{
    if (id == NULL || out == NULL || outlen == NULL || n < SR_SESSION_PREFIX_LEN ||
        !sr_mem_eq(id, SR_SESSION_PREFIX, SR_SESSION_PREFIX_LEN))
        return SR_SESSION_E_FORMAT;
    if (sr_base64url_decode(id + SR_SESSION_PREFIX_LEN, n - SR_SESSION_PREFIX_LEN, out, cap,
                            outlen) != 0)
        return SR_SESSION_E_FORMAT;
    /* A nonce, a tag and at least the smallest plaintext ({}). */
    if (*outlen < SR_SESSION_NONCE_LEN + SR_SESSION_TAG_LEN + 2 || *outlen > SR_SESSION_SEALED_MAX)
        return SR_SESSION_E_FORMAT;
    return SR_SESSION_OK;
}

int sr_session_reinit_body(const struct sr_session_claims *c, char *out, size_t cap)
{
    struct sr_text t;

    if (c == NULL || out == NULL || c->init == NULL)
        return -1;
    sr_text_init(&t, out, cap);
    sr_text_put(&t, "{\"jsonrpc\":\"2.0\",\"id\":" SR_SESSION_REINIT_ID
                    ",\"method\":\"initialize\",\"params\":");
    sr_text_putn(&t, c->init, c->init_len);
    sr_text_put(&t, "}");
    if (t.truncated)
        return -1;
    return (int)t.len;
}

void sr_session_protocol(const struct sr_session_claims *c, struct sr_json_tok *toks, uint32_t cap,
                         char *out, size_t out_cap)
{
    struct sr_json_doc doc;
    int32_t pv;
    size_t n = 0;

    if (out == NULL || out_cap == 0)
        return;
    out[0] = '\0';
    if (c == NULL || c->init == NULL ||
        sr_json_parse(&doc, c->init, c->init_len, toks, cap, NULL) != 0)
        return;
    pv = sr_json_obj_get(&doc, 0, "protocolVersion", 15);
    if (pv < 0 || doc.toks[pv].type != SR_JSON_STRING ||
        sr_json_str_decode(&doc, (uint32_t)pv, out, out_cap - 1, &n) != 0) {
        out[0] = '\0';
        return;
    }
    out[n] = '\0';
}

int sr_session_error_body(int err, const char *rpc_id, size_t rpc_id_len, char *out, size_t cap)
{
    const char *msg;

    switch (err) {
    case SR_SESSION_E_FOREIGN:
        msg = "Session not found: this mcp-session-id was issued to another token. Start a new "
              "session (send initialize) with your own token.";
        break;
    case SR_SESSION_E_EXPIRED:
        msg = "Session not found: this mcp-session-id has expired (sessions last 30 days unless "
              "the operator set SERENA_SESSION_MAX_AGE). Start a new session by sending "
              "initialize.";
        break;
    case SR_SESSION_E_ENDED:
        msg = "Session not found: this session was ended with DELETE. Start a new session by "
              "sending initialize.";
        break;
    case SR_SESSION_E_FORGED:
        msg = "Session not found: this mcp-session-id does not verify under this gateway's "
              "session key (it was altered, or issued under another key). Start a new session "
              "by sending initialize.";
        break;
    default:
        msg = "Session not found: this gateway issues its own session ids and this is not one "
              "of them. Start a new session by sending initialize, then send the "
              "mcp-session-id from its response.";
        break;
    }
    return sr_error_body(out, cap, SR_RPC_INVALID_REQUEST, msg, rpc_id, rpc_id_len);
}

static const char *result_name(int rc)
{
    switch (rc) {
    case SR_SESSION_OK:
        return "ok";
    case SR_SESSION_E_FOREIGN:
        return "foreign";
    case SR_SESSION_E_EXPIRED:
        return "expired";
    default:
        return "forged";
    }
}

int sr_session_judge_json(const char *in, size_t n, struct sr_json_tok *toks, uint32_t cap,
                          char *out, size_t out_cap)
{
    static char plain[SR_SESSION_PLAIN_MAX + 1], body[SR_SESSION_PLAIN_MAX + 128];
    char name[SR_TOKEN_NAME_MAX + 1], proto[64];
    struct sr_json_doc doc;
    struct sr_session_claims c;
    struct sr_jw w;
    int32_t pi, ni, ti, ai;
    int64_t now = 0, max_age = 0;
    size_t pl = 0, nl = 0, len = 0;
    int rc, bl = -1;

    if (in == NULL || out == NULL || sr_json_parse(&doc, in, n, toks, cap, NULL) != 0 ||
        doc.toks[0].type != SR_JSON_OBJECT)
        return -1;
    pi = sr_json_obj_get(&doc, 0, "plain", 5);
    ni = sr_json_obj_get(&doc, 0, "name", 4);
    ti = sr_json_obj_get(&doc, 0, "now", 3);
    ai = sr_json_obj_get(&doc, 0, "max_age", 7);
    if (pi < 0 || ni < 0 || ti < 0 || ai < 0 ||
        sr_json_str_decode(&doc, (uint32_t)pi, plain, sizeof(plain) - 1, &pl) != 0 ||
        sr_json_str_decode(&doc, (uint32_t)ni, name, sizeof(name) - 1, &nl) != 0 ||
        sr_json_int64(&doc, (uint32_t)ti, &now) != 0 ||
        sr_json_int64(&doc, (uint32_t)ai, &max_age) != 0 || max_age < 0 ||
        max_age > (int64_t)UINT32_MAX)
        return -1;
    name[nl] = '\0';
    /* The plaintext is parsed with the same tokens: the description is not needed after this. */
    rc = sr_session_plain_parse(plain, pl, toks, cap, &c);
    if (rc == SR_SESSION_OK)
        rc = sr_session_check(&c, name, now, (uint32_t)max_age);
    proto[0] = '\0';
    if (rc == SR_SESSION_OK) {
        bl = sr_session_reinit_body(&c, body, sizeof(body));
        sr_session_protocol(&c, toks, cap, proto, sizeof(proto));
    }
    sr_jw_init(&w, out, out_cap);
    sr_jw_obj_begin(&w);
    sr_jw_key(&w, "result");
    sr_jw_cstr(&w, result_name(rc));
    sr_jw_key(&w, "reinit");
    if (bl >= 0)
        sr_jw_str(&w, body, (size_t)bl);
    else
        sr_jw_null(&w);
    sr_jw_key(&w, "protocol");
    sr_jw_cstr(&w, proto);
    sr_jw_obj_end(&w);
    if (sr_jw_finish(&w, &len) != 0)
        return -1;
    return (int)len;
}
