/*
 * The token table (see tokens.h).
 *
 * Only SHA-256 digests are stored: a plaintext token is hashed as soon as it
 * is validated and its buffer is wiped. Validation is strict so that every
 * configured token can actually be presented in an "Authorization: Bearer"
 * header (token68) and is long enough to resist guessing. Errors name the
 * entry (by name or by index) and never quote a value, because error text
 * ends up in logs and terminals.
 *
 * Adding is all-or-nothing: new entries are written after the current ones
 * and only counted once the whole input has been accepted; on failure the
 * tentative slots are wiped again.
 */
#include "core/tokens.h"

#include "core/mem.h"
#include "core/project.h"
#include "core/route.h"
#include "core/text.h"

#define SR_SHA256_PREFIX "sha256:"

void sr_tokens_init(struct sr_tokens *t)
{
    if (t != NULL)
        sr_mem_set(t, 0, sizeof(*t));
}

static bool is_token68_char(char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' ||
           c == '.' || c == '_' || c == '~' || c == '+' || c == '/';
}

/* True when v[0..n) is a token68, exactly what sr_auth_parse_bearer accepts. */
static bool is_token68(const char *v, size_t n)
{
    size_t i = 0;

    while (i < n && is_token68_char(v[i]))
        i++;
    if (i == 0)
        return false;
    while (i < n && v[i] == '=')
        i++;
    return i == n;
}

/*
 * Turn a configured value (plaintext or "sha256:<hex>") into a digest. On
 * failure *why is a static explanation that does not quote the value.
 */
static int value_digest(const char *v, size_t n, uint8_t digest[SR_SHA256_LEN], const char **why)
{
    const size_t plen = sizeof(SR_SHA256_PREFIX) - 1;

    if (n == 0) {
        *why = "token is empty";
        return -1;
    }
    if (n >= plen && sr_mem_eq(v, SR_SHA256_PREFIX, plen)) {
        if (n - plen != 2 * SR_SHA256_LEN || sr_hex_decode(v + plen, SR_SHA256_LEN, digest) != 0) {
            *why = "a sha256: value needs exactly 64 hex digits after \"sha256:\"";
            return -1;
        }
        return 0;
    }
    if (n < SR_TOKEN_MIN_LEN) {
        *why = "token is shorter than 16 characters (generate one with `serena-remote token`)";
        return -1;
    }
    if (n > SR_TOKEN_MAX_LEN) {
        *why = "token is longer than 4096 characters";
        return -1;
    }
    if (!is_token68(v, n)) {
        *why = "token contains a character that cannot be sent in a Bearer header (allowed: "
               "A-Z a-z 0-9 - . _ ~ + / and trailing =; no spaces, quotes or newlines)";
        return -1;
    }
    sr_sha256(v, n, digest);
    return 0;
}

/* Error prefixes: "API_TOKEN", "<source> entry \"name\"", "<source>[i]", "<source> member i". */
static void err_entry(struct sr_core_err *err, const char *source, const char *name, int64_t index,
                      const char *what, const char *why)
{
    struct sr_text t;

    if (err == NULL)
        return;
    sr_text_init(&t, err->msg, sizeof(err->msg));
    sr_text_put(&t, source);
    if (name != NULL) {
        sr_text_put(&t, " entry \"");
        sr_text_put(&t, name);
        sr_text_put(&t, "\"");
    } else if (index >= 0) {
        sr_text_put(&t, what);
        sr_text_u64(&t, (uint64_t)index);
        if (what[0] == '[')
            sr_text_put(&t, "]");
    }
    sr_text_put(&t, ": ");
    sr_text_put(&t, why);
}

/*
 * Validate and place a new entry at slot `slot` (>= t->count): the name and
 * the digest must be unique among every entry before it, committed or
 * tentative. Returns 0 or -1 with *why set.
 */
static int place_entry(struct sr_tokens *t, uint32_t slot, const char *name, size_t name_len,
                       const uint8_t digest[SR_SHA256_LEN], uint8_t singleton, const char **why)
{
    uint32_t i;
    bool dup_digest = false;

    if (slot >= SR_TOKENS_MAX) {
        *why = "the token table is full (at most 256 tokens)";
        return -1;
    }
    for (i = 0; i < slot; i++) {
        /* Digests are secret-derived: compare them in constant time. */
        dup_digest |= sr_mem_eq_ct(t->e[i].digest, digest, SR_SHA256_LEN);
    }
    if (dup_digest) {
        *why = "token is the same as another entry's; every entry needs its own token";
        return -1;
    }
    for (i = 0; i < slot; i++) {
        /* Names differing only in case would be confusing in logs and on disk. */
        if (sr_ascii_ieq(t->e[i].name, sr_str_len(t->e[i].name), name, name_len)) {
            *why = "name is already used by another entry (names are compared ignoring case)";
            return -1;
        }
    }
    sr_mem_copy(t->e[slot].name, name, name_len);
    t->e[slot].name[name_len] = '\0';
    sr_mem_copy(t->e[slot].digest, digest, SR_SHA256_LEN);
    t->e[slot].singleton = singleton;
    return 0;
}

int sr_tokens_add_singleton(struct sr_tokens *t, const char *value, size_t n,
                            struct sr_core_err *err)
{
    uint8_t digest[SR_SHA256_LEN];
    const char *why = "";

    if (t == NULL || value == NULL) {
        err_entry(err, "API_TOKEN", NULL, -1, "", "missing argument");
        return -1;
    }
    if (value_digest(value, n, digest, &why) != 0 ||
        place_entry(t, t->count, SR_SINGLETON_NAME, sizeof(SR_SINGLETON_NAME) - 1, digest, 1,
                    &why) != 0) {
        err_entry(err, "API_TOKEN", NULL, -1, "", why);
        sr_mem_set(digest, 0, sizeof(digest));
        return -1;
    }
    t->count++;
    sr_mem_set(digest, 0, sizeof(digest));
    return 0;
}

/* Decode a JSON string value into buf and digest it; *why on failure. */
static int json_value_digest(const struct sr_json_doc *doc, uint32_t vi, char *buf, size_t cap,
                             uint8_t digest[SR_SHA256_LEN], const char **why)
{
    size_t len = 0;
    int rc;

    if (doc->toks[vi].type != SR_JSON_STRING) {
        *why = "value must be a string (the token, or sha256:<64 hex digits>)";
        return -1;
    }
    rc = sr_json_str_decode(doc, vi, buf, cap, &len);
    if (rc == SR_JSON_E_NOSPACE) {
        *why = "token is longer than 4096 characters";
        return -1;
    }
    if (rc != 0) {
        *why = "value could not be decoded";
        return -1;
    }
    rc = value_digest(buf, len, digest, why);
    sr_mem_set(buf, 0, len);
    return rc;
}

/* True when JSON string token vi is exactly `word`. */
static bool key_is(const struct sr_json_doc *doc, uint32_t vi, const char *word)
{
    char buf[16];
    size_t len = 0;
    size_t wl = sr_str_len(word);

    return sr_json_str_decode(doc, vi, buf, sizeof(buf), &len) == 0 && len == wl &&
           sr_mem_eq(buf, word, wl);
}

/*
 * An entry written as an object: {"token": ..., "project": ..., "context": ..., "read_only": ...}.
 * Places it at `slot` like a plain entry, then its settings. *why on failure (static text that
 * names no value).
 */
static int object_entry(struct sr_tokens *t, uint32_t slot, const struct sr_json_doc *doc,
                        uint32_t vi, const char *name, size_t nlen, char *buf, size_t cap,
                        const char **why)
{
    int32_t tok = -1, proj = -1, ctx = -1, ro = -1;
    uint32_t i = vi + 1;
    uint8_t digest[SR_SHA256_LEN];
    size_t len = 0;
    int rc;

    for (uint32_t k = 0; k < doc->toks[vi].count; k++) {
        uint32_t val = i + 1;

        if (key_is(doc, i, "token"))
            tok = (int32_t)val;
        else if (key_is(doc, i, "project"))
            proj = (int32_t)val;
        else if (key_is(doc, i, "context"))
            ctx = (int32_t)val;
        else if (key_is(doc, i, "read_only"))
            ro = (int32_t)val;
        else {
            *why = "has a member other than token, project, context and read_only";
            return -1;
        }
        i = doc->toks[val].end;
    }
    if (tok < 0) {
        *why = "has no \"token\" member (the token, or sha256:<64 hex digits>)";
        return -1;
    }
    rc = json_value_digest(doc, (uint32_t)tok, buf, cap, digest, why);
    if (rc == 0)
        rc = place_entry(t, slot, name, nlen, digest, 0, why);
    sr_mem_set(digest, 0, sizeof(digest));
    if (rc != 0)
        return -1;
    struct sr_token_entry *e = &t->e[slot];
    if (ro >= 0) {
        if (doc->toks[ro].type != SR_JSON_TRUE && doc->toks[ro].type != SR_JSON_FALSE) {
            *why = "\"read_only\" must be true or false";
            return -1;
        }
        e->read_only = doc->toks[ro].type == SR_JSON_TRUE;
    }
    if (ctx >= 0) {
        if (doc->toks[ctx].type != SR_JSON_STRING ||
            sr_json_str_decode(doc, (uint32_t)ctx, e->context, sizeof(e->context), &len) != 0 ||
            len >= sizeof(e->context) || !sr_route_valid_name(e->context, len, SR_TOKEN_NAME_MAX)) {
            sr_mem_set(e->context, 0, sizeof(e->context));
            *why = "\"context\" must be a Serena context name of [A-Za-z0-9._-]{1,64}";
            return -1;
        }
        e->context[len] = '\0';
    }
    if (proj >= 0) {
        struct sr_project_spec spec;

        if (doc->toks[proj].type != SR_JSON_STRING ||
            sr_json_str_decode(doc, (uint32_t)proj, buf, cap, &len) != 0) {
            *why = "\"project\" must be a string: a git URL or an absolute path";
            return -1;
        }
        if (sr_project_spec_parse(buf, len, &spec, why) != 0)
            return -1;
        if (len > SR_TOKENS_PROJECTS_MAX - t->projects_len) {
            *why = "the projects of all entries together are longer than 64 KiB";
            return -1;
        }
        sr_mem_copy(t->projects + t->projects_len, buf, len);
        e->project_off = t->projects_len;
        e->project_len = (uint32_t)len;
        t->projects_len += (uint32_t)len;
    }
    return 0;
}

const char *sr_tokens_project(const struct sr_tokens *t, uint32_t i, size_t *n)
{
    if (t == NULL || i >= t->count || t->e[i].project_len == 0) {
        *n = 0;
        return NULL;
    }
    *n = t->e[i].project_len;
    return t->projects + t->e[i].project_off;
}

/* Array entries are named after their digest so that the name is stable and reveals nothing. */
static void digest_name(const uint8_t digest[SR_SHA256_LEN], char name[SR_TOKEN_NAME_MAX + 1])
{
    name[0] = 't';
    name[1] = '-';
    sr_hex_encode(digest, 8, name + 2);
    name[18] = '\0';
}

int sr_tokens_add_json(struct sr_tokens *t, const char *json, size_t n, const char *source,
                       struct sr_json_tok *scratch, uint32_t scratch_cap, struct sr_core_err *err)
{
    struct sr_json_doc doc;
    struct sr_json_error jerr;
    uint32_t base, slot, i, k;
    char value[SR_TOKEN_MAX_LEN + 1];
    char name[SR_TOKEN_NAME_MAX + 1];
    uint8_t digest[SR_SHA256_LEN];
    const char *why = "";
    int rc = -1;

    if (source == NULL)
        source = "API_TOKENS_JSON";
    if (t == NULL || json == NULL || scratch == NULL) {
        err_entry(err, source, NULL, -1, "", "missing argument");
        return -1;
    }
    if (n > SR_TOKENS_JSON_MAX) {
        err_entry(err, source, NULL, -1, "", "is larger than 256 KiB");
        return -1;
    }
    if (sr_json_parse(&doc, json, n, scratch, scratch_cap, &jerr) != 0) {
        struct sr_text tx;

        if (err != NULL) {
            /* The reader's message is static text; the offset locates the problem without quoting.
             */
            sr_text_init(&tx, err->msg, sizeof(err->msg));
            sr_text_put(&tx, source);
            sr_text_put(&tx, ": not valid JSON (");
            sr_text_put(&tx, jerr.msg != NULL ? jerr.msg : "syntax error");
            sr_text_put(&tx, " at byte ");
            sr_text_u64(&tx, jerr.offset);
            sr_text_put(&tx, "); expected {\"name\": \"token\", ...} or [\"token\", ...]");
        }
        return -1;
    }
    if (doc.toks[0].type != SR_JSON_OBJECT && doc.toks[0].type != SR_JSON_ARRAY) {
        err_entry(err, source, NULL, -1, "",
                  "must be a JSON object {\"name\": \"token\", ...} or an array [\"token\", ...]");
        return -1;
    }
    if (doc.toks[0].count == 0) {
        err_entry(err, source, NULL, -1, "", "holds no tokens; add at least one or unset it");
        return -1;
    }

    base = t->count;
    uint32_t projects_base = t->projects_len;
    slot = base;
    i = 1;
    for (k = 0; k < doc.toks[0].count; k++, slot++) {
        if (doc.toks[0].type == SR_JSON_OBJECT) {
            uint32_t vi = i + 1;
            size_t nlen = 0;

            if (sr_json_str_decode(&doc, i, name, sizeof(name), &nlen) != 0 ||
                !sr_route_valid_name(name, nlen, SR_TOKEN_NAME_MAX)) {
                err_entry(err, source, NULL, k, " member ", "name must match [A-Za-z0-9._-]{1,64}");
                goto out;
            }
            if (doc.toks[vi].type == SR_JSON_OBJECT) {
                if (object_entry(t, slot, &doc, vi, name, nlen, value, sizeof(value), &why) != 0) {
                    err_entry(err, source, name, -1, "", why);
                    goto out;
                }
            } else if (json_value_digest(&doc, vi, value, sizeof(value), digest, &why) != 0 ||
                       place_entry(t, slot, name, nlen, digest, 0, &why) != 0) {
                err_entry(err, source, name, -1, "", why);
                goto out;
            }
            i = doc.toks[vi].end;
        } else {
            if (json_value_digest(&doc, i, value, sizeof(value), digest, &why) != 0) {
                err_entry(err, source, NULL, k, "[", why);
                goto out;
            }
            digest_name(digest, name);
            if (place_entry(t, slot, name, sr_str_len(name), digest, 0, &why) != 0) {
                err_entry(err, source, NULL, k, "[", why);
                goto out;
            }
            i = doc.toks[i].end;
        }
    }
    t->count = slot;
    rc = 0;
out:
    if (rc != 0) {
        /* Wipe the tentative entries so that t is exactly as it was. */
        for (k = base; k <= slot && k < SR_TOKENS_MAX; k++)
            sr_mem_set(&t->e[k], 0, sizeof(t->e[k]));
        sr_mem_set(t->projects + projects_base, 0, t->projects_len - projects_base);
        t->projects_len = projects_base;
    }
    sr_mem_set(digest, 0, sizeof(digest));
    return rc;
}

int32_t sr_tokens_match(const struct sr_tokens *t, const uint8_t digest[SR_SHA256_LEN])
{
    uint32_t i, idx = 0, found = 0;

    if (t == NULL || digest == NULL)
        return -1;
    /*
     * Every entry is compared and the index is selected with masks, so the
     * time taken depends only on the table size, not on which entry (if any)
     * matched.
     */
    for (i = 0; i < t->count && i < SR_TOKENS_MAX; i++) {
        uint32_t mask = 0u - (uint32_t)sr_mem_eq_ct(t->e[i].digest, digest, SR_SHA256_LEN);

        idx = (idx & ~mask) | (i & mask);
        found |= mask;
    }
    return found != 0 ? (int32_t)idx : -1;
}

const char *sr_tokens_strategy(const struct sr_tokens *t)
{
    uint32_t i, singles = 0, named = 0;

    if (t == NULL)
        return "none";
    for (i = 0; i < t->count && i < SR_TOKENS_MAX; i++) {
        if (t->e[i].singleton)
            singles++;
        else
            named++;
    }
    if (singles == 0 && named == 0)
        return "none";
    if (named == 0)
        return "singleton";
    if (singles == 0)
        return "per-token";
    return "mixed";
}

int32_t sr_tokens_find(const struct sr_tokens *t, const char *name)
{
    size_t n = sr_str_len(name);
    for (uint32_t i = 0; t && i < t->count; i++)
        if (sr_str_len(t->e[i].name) == n && sr_mem_eq(t->e[i].name, name, n))
            return (int32_t)i;
    return -1;
}
