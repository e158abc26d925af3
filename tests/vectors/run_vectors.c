/*
 * Native runner for the shared test vectors (tests/vectors/ *.json).
 *
 * Each file is {"config": {...}, "cases": [...]} (see README.md here). The
 * runner builds the token table and the policy from the config, feeds every
 * request through sr_describe_request and sr_classify exactly as core.wasm
 * does, and compares the decision with the expectation. run_wasm.mjs runs the
 * same files against core.wasm, so both builds must give the same answers.
 * It reads the vectors with the core's own JSON reader (the project's only
 * JSON code); stdio and malloc are fine here because this is a test program.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/classify.h"
#include "core/describe.h"
#include "core/json.h"
#include "core/mem.h"
#include "core/session.h"
#include "core/tokens.h"

#define VEC_FILE_MAX (16u * 1024u * 1024u)
#define VEC_TOKS     (1u << 20)

static struct sr_json_tok *vec_toks;  /* the vector file's parse */
static struct sr_json_tok *work_toks; /* tokens JSON and request bodies */
static struct sr_json_tok desc_toks[1024];
static struct sr_json_tok out_toks[4096];
static int failures, passes;

/* A string member decoded into a malloc'd NUL-terminated buffer, or NULL when absent. */
static char *get_str(const struct sr_json_doc *doc, int32_t obj, const char *key, size_t *len)
{
    int32_t vi;
    size_t cap, n = 0;
    char *s;

    if (obj < 0)
        return NULL;
    vi = sr_json_obj_get(doc, (uint32_t)obj, key, strlen(key));
    if (vi < 0 || doc->toks[vi].type != SR_JSON_STRING)
        return NULL;
    cap = doc->toks[vi].len + 1;
    s = malloc(cap);
    if (s == NULL || sr_json_str_decode(doc, (uint32_t)vi, s, cap, &n) != 0) {
        free(s);
        return NULL;
    }
    s[n] = '\0';
    if (len != NULL)
        *len = n;
    return s;
}

static int32_t get(const struct sr_json_doc *doc, int32_t obj, const char *key)
{
    if (obj < 0 || doc->toks[obj].type != SR_JSON_OBJECT)
        return -1;
    return sr_json_obj_get(doc, (uint32_t)obj, key, strlen(key));
}

/* Raw text of value idx (containers and scalars; strings include their quotes). */
static void raw_of(const struct sr_json_doc *doc, uint32_t idx, const char **s, size_t *n)
{
    const struct sr_json_tok *t = &doc->toks[idx];

    if (t->type == SR_JSON_STRING) {
        *s = doc->buf + t->start - 1;
        *n = t->len + 2;
    } else {
        *s = doc->buf + t->start;
        *n = t->len;
    }
}

/* True when expected value e (in doc a) is a subset of actual value x (in doc b). */
static bool subset(const struct sr_json_doc *a, uint32_t e, const struct sr_json_doc *b, uint32_t x)
{
    const struct sr_json_tok *te = &a->toks[e], *tx = &b->toks[x];
    uint32_t i, j, k;

    if (te->type != tx->type)
        return false;
    switch (te->type) {
    case SR_JSON_OBJECT:
        i = e + 1;
        for (k = 0; k < te->count; k++) {
            size_t kn = 0;
            char key[256];
            int32_t xi;

            if (sr_json_str_decode(a, i, key, sizeof(key), &kn) != 0)
                return false;
            xi = sr_json_obj_get(b, x, key, kn);
            if (xi < 0 || !subset(a, i + 1, b, (uint32_t)xi))
                return false;
            i = a->toks[i + 1].end;
        }
        return true;
    case SR_JSON_ARRAY:
        if (te->count != tx->count)
            return false;
        for (i = e + 1, j = x + 1, k = 0; k < te->count; k++) {
            if (!subset(a, i, b, j))
                return false;
            i = a->toks[i].end;
            j = b->toks[j].end;
        }
        return true;
    case SR_JSON_STRING: {
        char *s = malloc(te->len + 1);
        size_t n = 0;
        bool eq;

        if (s == NULL || sr_json_str_decode(a, e, s, te->len + 1, &n) != 0) {
            free(s);
            return false;
        }
        eq = sr_json_str_eq(b, x, s, n);
        free(s);
        return eq;
    }
    case SR_JSON_NUMBER: {
        int64_t va, vb;

        if (sr_json_int64(a, e, &va) == 0 && sr_json_int64(b, x, &vb) == 0)
            return va == vb;
        return te->len == tx->len && memcmp(a->buf + te->start, b->buf + tx->start, te->len) == 0;
    }
    default:
        return true;
    }
}

static void fail_case(const char *file, const char *name, const char *why, const char *detail)
{
    failures++;
    fprintf(stderr, "FAIL %s: %s: %s%s%s\n", file, name, why, detail ? "\n     got: " : "",
            detail ? detail : "");
}

/* Strings in "forbid" must not occur in text. */
static bool check_forbid(const struct sr_json_doc *doc, int32_t c, const char *text)
{
    int32_t fi = get(doc, c, "forbid");
    uint32_t i, k;

    if (fi < 0 || doc->toks[fi].type != SR_JSON_ARRAY)
        return true;
    for (i = (uint32_t)fi + 1, k = 0; k < doc->toks[fi].count; k++, i = doc->toks[i].end) {
        char buf[8192];
        size_t n = 0;

        if (sr_json_str_decode(doc, i, buf, sizeof(buf), &n) == 0 && n > 0 &&
            strstr(text, buf) != NULL)
            return false;
    }
    return true;
}

/* Build tokens and policy from a config object; 0, or -1 with msg. */
static int load_config(const struct sr_json_doc *doc, int32_t cfg, struct sr_tokens *t,
                       struct sr_policy *p, struct sr_core_err *err)
{
    char *api;
    size_t api_len = 0;
    int32_t tj, po, v;
    int rc = 0;

    sr_tokens_init(t);
    sr_policy_init(p, t);
    err->msg[0] = '\0';
    api = get_str(doc, cfg, "api_token", &api_len);
    if (api != NULL && api_len > 0)
        rc = sr_tokens_add_singleton(t, api, api_len, err);
    free(api);
    if (rc != 0)
        return -1;
    tj = get(doc, cfg, "tokens_json");
    if (tj >= 0) {
        const char *s;
        size_t n;
        char *dec = NULL;

        if (doc->toks[tj].type == SR_JSON_STRING) {
            dec = get_str(doc, cfg, "tokens_json", &n);
            s = dec;
        } else {
            raw_of(doc, (uint32_t)tj, &s, &n);
        }
        if (s != NULL && n > 0)
            rc = sr_tokens_add_json(t, s, n, "API_TOKENS_JSON", work_toks, SR_JSON_MAX_TOKENS, err);
        free(dec);
        if (rc != 0)
            return -1;
    }
    po = get(doc, cfg, "policy");
    if (po >= 0) {
        char *g = get_str(doc, po, "generation", NULL);
        char *o = get_str(doc, po, "origins", NULL);

        if (g != NULL)
            rc = sr_policy_set_generation(p, g, strlen(g), err);
        if (rc == 0 && o != NULL)
            rc = sr_policy_set_origins(p, o, strlen(o), err);
        free(g);
        free(o);
        if (rc != 0)
            return -1;
        v = get(doc, po, "check_bearer");
        if (v >= 0)
            p->check_bearer = doc->toks[v].type == SR_JSON_TRUE;
        v = get(doc, po, "bare_get_405");
        if (v >= 0)
            p->bare_get_405 = doc->toks[v].type == SR_JSON_TRUE;
        v = get(doc, po, "loopback_listener");
        if (v >= 0)
            p->loopback_listener = doc->toks[v].type == SR_JSON_TRUE;
        v = get(doc, po, "max_body");
        if (v >= 0) {
            int64_t mb = 0;

            if (sr_json_int64(doc, (uint32_t)v, &mb) != 0 || mb < 0 ||
                mb > (int64_t)SR_MAX_BODY_DEFAULT) {
                snprintf(err->msg, sizeof(err->msg), "max_body: out of range");
                return -1;
            }
            p->max_body = mb == 0 ? SR_MAX_BODY_DEFAULT : (uint32_t)mb;
        }
    }
    return 0;
}

static unsigned char *hex_body(const char *hex, size_t *n)
{
    size_t len = strlen(hex);
    unsigned char *out;

    if (len % 2 != 0)
        return NULL;
    out = malloc(len / 2 + 1);
    if (out == NULL || sr_hex_decode(hex, len / 2, out) != 0) {
        free(out);
        return NULL;
    }
    *n = len / 2;
    return out;
}

static void run_request(const char *file, const char *name, const struct sr_json_doc *doc,
                        int32_t c, const struct sr_policy *p)
{
    static struct sr_request_desc rd;
    static struct sr_decision d;
    static char out[SR_DECISION_JSON_MAX];
    struct sr_core_err err;
    struct sr_json_doc od, bd;
    struct sr_json_error je;
    int32_t rq = get(doc, c, "request"), ex = get(doc, c, "expect"), v;
    const char *raw;
    size_t rawn, body_len = 0;
    char *body_str, *body_hex, *contains;
    unsigned char *body = NULL;
    int len;
    bool ok = true;

    raw_of(doc, (uint32_t)rq, &raw, &rawn);
    if (sr_describe_request(&rd, raw, rawn, desc_toks, 1024, &err) != 0) {
        fail_case(file, name, "request description refused", err.msg);
        return;
    }
    body_str = get_str(doc, rq, "body", &body_len);
    body_hex = get_str(doc, rq, "body_hex", NULL);
    if (body_hex != NULL) {
        body = hex_body(body_hex, &body_len);
    } else {
        body = (unsigned char *)body_str;
        body_str = NULL;
    }
    rd.req.body = body != NULL ? (const char *)body : "";
    rd.req.body_len = body != NULL ? body_len : 0;
    sr_classify(p, &rd.req, work_toks, SR_JSON_MAX_TOKENS, &d);
    len = sr_describe_decision(&d, out, sizeof(out));
    free(body);
    free(body_str);
    free(body_hex);
    if (len < 0 || sr_json_parse(&od, out, (size_t)len, out_toks, 4096, &je) != 0) {
        fail_case(file, name, "decision could not be written or read back", NULL);
        return;
    }
    if (ex >= 0) {
        uint32_t i, k;

        /* Plain keys compare against the decision; body_* keys look inside the body. */
        for (i = (uint32_t)ex + 1, k = 0; k < doc->toks[ex].count; k++) {
            char key[64];
            size_t kn = 0;
            int32_t xi;

            sr_json_str_decode(doc, i, key, sizeof(key), &kn);
            key[kn] = '\0';
            if (strcmp(key, "body_contains") == 0 || strcmp(key, "body_json") == 0) {
                /* handled below */
            } else {
                xi = sr_json_obj_get(&od, 0, key, kn);
                if (xi < 0 || !subset(doc, i + 1, &od, (uint32_t)xi)) {
                    char why[128];

                    snprintf(why, sizeof(why), "field \"%s\" differs", key);
                    fail_case(file, name, why, out);
                    return;
                }
            }
            i = doc->toks[i + 1].end;
        }
        contains = get_str(doc, ex, "body_contains", NULL);
        if (contains != NULL && strstr(d.body, contains) == NULL)
            ok = false;
        free(contains);
        if (!ok) {
            fail_case(file, name, "body lacks body_contains", out);
            return;
        }
        v = get(doc, ex, "body_json");
        if (v >= 0) {
            if (sr_json_parse(&bd, d.body, d.body_len, out_toks, 4096, &je) != 0 ||
                !subset(doc, (uint32_t)v, &bd, 0)) {
                fail_case(file, name, "body differs from body_json", out);
                return;
            }
        }
    }
    if (!check_forbid(doc, c, out)) {
        fail_case(file, name, "decision contains a forbidden string", out);
        return;
    }
    passes++;
}

static void run_health(const char *file, const char *name, const struct sr_json_doc *doc, int32_t c,
                       const struct sr_policy *p, const struct sr_tokens *t)
{
    static struct sr_health_desc hd;
    static char out[SR_HEALTH_MAX];
    struct sr_core_err err;
    struct sr_json_doc od;
    struct sr_json_error je;
    int32_t hi = get(doc, c, "health"), ex = get(doc, c, "expect_health");
    const char *raw;
    size_t rawn;
    int len;

    raw_of(doc, (uint32_t)hi, &raw, &rawn);
    if (sr_describe_health(&hd, raw, rawn, desc_toks, 1024, &err) != 0) {
        fail_case(file, name, "health input refused", err.msg);
        return;
    }
    hd.h.version = SR_VERSION;
    hd.h.generation = p->generation;
    hd.h.strategy = sr_tokens_strategy(t);
    hd.h.token_count = t->count;
    len = sr_health_write(&hd.h, out, sizeof(out));
    if (len < 0 || sr_json_parse(&od, out, (size_t)len, out_toks, 4096, &je) != 0) {
        fail_case(file, name, "health document could not be written or read back", NULL);
        return;
    }
    if (ex >= 0 && !subset(doc, (uint32_t)ex, &od, 0)) {
        fail_case(file, name, "health document differs", out);
        return;
    }
    if (!check_forbid(doc, c, out)) {
        fail_case(file, name, "health document contains a forbidden string", out);
        return;
    }
    passes++;
}

static void run_session(const char *file, const char *name, const struct sr_json_doc *doc,
                        int32_t c)
{
    static char out[SR_SESSION_PLAIN_MAX * 2 + 256];
    struct sr_json_doc od;
    struct sr_json_error je;
    int32_t si = get(doc, c, "session"), ex = get(doc, c, "expect_session");
    const char *raw;
    size_t rawn;
    int len;

    raw_of(doc, (uint32_t)si, &raw, &rawn);
    len = sr_session_judge_json(raw, rawn, work_toks, SR_JSON_MAX_TOKENS, out, sizeof(out));
    if (len < 0 || sr_json_parse(&od, out, (size_t)len, out_toks, 4096, &je) != 0) {
        fail_case(file, name, "session description refused", NULL);
        return;
    }
    if (ex >= 0 && !subset(doc, (uint32_t)ex, &od, 0)) {
        fail_case(file, name, "session judgement differs", out);
        return;
    }
    passes++;
}

static void run_file(const char *file)
{
    static struct sr_tokens tokens;
    static struct sr_policy policy;
    struct sr_core_err err;
    struct sr_json_doc doc;
    struct sr_json_error je;
    char *buf;
    size_t n;
    int32_t fcfg, cases;
    uint32_t i, k;
    FILE *f = fopen(file, "rb");

    if (f == NULL) {
        fail_case(file, "(file)", "cannot open", NULL);
        return;
    }
    buf = malloc(VEC_FILE_MAX);
    n = buf != NULL ? fread(buf, 1, VEC_FILE_MAX, f) : 0;
    fclose(f);
    if (buf == NULL || sr_json_parse(&doc, buf, n, vec_toks, VEC_TOKS, &je) != 0) {
        fail_case(file, "(file)", "not valid JSON", je.msg);
        free(buf);
        return;
    }
    fcfg = get(&doc, 0, "config");
    cases = get(&doc, 0, "cases");
    if (cases < 0 || doc.toks[cases].type != SR_JSON_ARRAY) {
        fail_case(file, "(file)", "no \"cases\" array", NULL);
        free(buf);
        return;
    }
    for (i = (uint32_t)cases + 1, k = 0; k < doc.toks[cases].count; k++, i = doc.toks[i].end) {
        int32_t c = (int32_t)i, cfg = get(&doc, c, "config");
        char *name = get_str(&doc, c, "name", NULL);
        char *want_err = get_str(&doc, c, "expect_config_error", NULL);
        const char *nm = name != NULL ? name : "(unnamed)";
        int rc = load_config(&doc, cfg >= 0 ? cfg : fcfg, &tokens, &policy, &err);

        if (want_err != NULL) {
            if (rc == 0)
                fail_case(file, nm, "config loaded but an error was expected", want_err);
            else if (strstr(err.msg, want_err) == NULL)
                fail_case(file, nm, "config error lacks the expected text", err.msg);
            else if (!check_forbid(&doc, c, err.msg))
                fail_case(file, nm, "config error contains a forbidden string", err.msg);
            else
                passes++;
        } else if (rc != 0) {
            fail_case(file, nm, "config refused", err.msg);
        } else if (get(&doc, c, "request") >= 0) {
            run_request(file, nm, &doc, c, &policy);
        } else if (get(&doc, c, "health") >= 0) {
            run_health(file, nm, &doc, c, &policy, &tokens);
        } else if (get(&doc, c, "session") >= 0) {
            run_session(file, nm, &doc, c);
        } else {
            fail_case(file, nm, "case has no request, health, session or expect_config_error",
                      NULL);
        }
        free(name);
        free(want_err);
    }
    free(buf);
}

int main(int argc, char **argv)
{
    int i;

    vec_toks = calloc(VEC_TOKS, sizeof(*vec_toks));
    work_toks = calloc(SR_JSON_MAX_TOKENS, sizeof(*work_toks));
    if (vec_toks == NULL || work_toks == NULL)
        return 2;
    if (argc < 2) {
        fprintf(stderr, "usage: run_vectors FILE.json...\n");
        return 2;
    }
    for (i = 1; i < argc; i++)
        run_file(argv[i]);
    printf("vectors: %d passed, %d failed\n", passes, failures);
    free(vec_toks);
    free(work_toks);
    return failures == 0 && passes > 0 ? 0 : 1;
}
