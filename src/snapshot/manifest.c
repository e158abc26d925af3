/*
 * The snapshot manifest (see manifest.h): strict parse and write through
 * the core's JSON reader and writer, the only JSON code in the project.
 *
 * Why so strict: the manifest decides what a restore downloads and what
 * retention deletes. A manifest we cannot fully trust is treated as absent
 * (the caller lists the store instead), which can only ever restore an
 * object that exists, rather than acting on half of an index.
 */
#include "snapshot/manifest.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/json.h"

static void fail(struct sr_manifest *m, char *err, size_t errlen, const char *why)
{
    memset(m, 0, sizeof(*m));
    if (err && errlen)
        snprintf(err, errlen, "the manifest is corrupt: %s", why);
}

bool sr_manifest_hex_ok(const char *hex)
{
    for (size_t i = 0; i < 64; i++) {
        char c = hex[i];
        if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f')))
            return false;
    }
    return hex[64] == '\0';
}

bool sr_manifest_name_ok(const char *name, bool slashes)
{
    size_t n = strlen(name);
    if (n == 0 || n >= (slashes ? SR_MANIFEST_KEY_MAX : SR_MANIFEST_NAME_MAX))
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = name[i];
        bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                  c == '.' || c == '_' || c == '-' || (slashes && c == '/');
        if (!ok)
            return false;
    }
    /* No empty, "." or ".." component: keys must map onto a directory store safely. */
    const char *p = name;
    for (;;) {
        const char *s = strchr(p, '/');
        size_t len = s ? (size_t)(s - p) : strlen(p);
        if (len == 0 || (len == 1 && p[0] == '.') || (len == 2 && p[0] == '.' && p[1] == '.'))
            return false;
        if (!s)
            break;
        p = s + 1;
    }
    return true;
}

bool sr_manifest_key_ok(const char *key)
{
    return sr_manifest_name_ok(key, true);
}

/* Decode string member `name` of object obj into out; false when missing, not a string, too
 * long or holding a NUL. */
static bool get_str(const struct sr_json_doc *d, uint32_t obj, const char *name, char *out,
                    size_t cap)
{
    int32_t v = sr_json_obj_get(d, obj, name, strlen(name));
    size_t n;
    if (v < 0 || d->toks[v].type != SR_JSON_STRING ||
        sr_json_str_decode(d, (uint32_t)v, out, cap, &n) != 0 || n >= cap)
        return false;
    out[n] = '\0';
    return strlen(out) == n;
}

static bool get_int(const struct sr_json_doc *d, uint32_t obj, const char *name, int64_t *out)
{
    int32_t v = sr_json_obj_get(d, obj, name, strlen(name));
    if (v < 0 || d->toks[v].type != SR_JSON_NUMBER || sr_json_int64(d, (uint32_t)v, out) != 0)
        return false;
    return *out >= 0;
}

int sr_manifest_parse(struct sr_manifest *m, const char *buf, size_t len, char *err, size_t errlen)
{
    int rc = SR_MANIFEST_E_CORRUPT;
    struct sr_json_doc d;
    struct sr_json_error je = {0};
    struct sr_json_tok *toks = NULL;
    memset(m, 0, sizeof(*m));
    if (len > SR_MANIFEST_MAX_BYTES) {
        fail(m, err, errlen, "larger than 256 KiB");
        goto out;
    }
    toks = malloc(SR_MANIFEST_MAX_TOKS * sizeof(*toks));
    if (!toks) {
        fail(m, err, errlen, "out of memory");
        goto out;
    }
    if (sr_json_parse(&d, buf, len, toks, SR_MANIFEST_MAX_TOKS, &je) != 0) {
        char why[160];
        snprintf(why, sizeof(why), "%s at byte %zu", je.msg ? je.msg : "invalid JSON", je.offset);
        fail(m, err, errlen, why);
        goto out;
    }
    if (toks[0].type != SR_JSON_OBJECT) {
        fail(m, err, errlen, "not a JSON object");
        goto out;
    }
    int64_t format;
    if (!get_int(&d, 0, "format", &format) || format < 1 || format > SR_MANIFEST_FORMAT) {
        fail(m, err, errlen, "missing or unknown \"format\" (this build reads formats 1 and 2)");
        goto out;
    }
    if (!get_str(&d, 0, "partition", m->partition, sizeof(m->partition)) ||
        !sr_manifest_name_ok(m->partition, false)) {
        fail(m, err, errlen, "missing or invalid \"partition\"");
        goto out;
    }
    int32_t arr = sr_json_obj_get(&d, 0, "snapshots", 9);
    if (arr < 0 || toks[arr].type != SR_JSON_ARRAY) {
        fail(m, err, errlen, "\"snapshots\" is missing or not an array");
        goto out;
    }
    if (toks[arr].count > SR_MANIFEST_MAX) {
        fail(m, err, errlen, "more than 256 snapshots");
        goto out;
    }
    uint32_t i = (uint32_t)arr + 1;
    for (uint32_t k = 0; k < toks[arr].count; k++, i = toks[i].end) {
        struct sr_manifest_entry *e = &m->e[k];
        int64_t size, files, created;
        if (toks[i].type != SR_JSON_OBJECT || !get_str(&d, i, "key", e->key, sizeof(e->key)) ||
            !sr_manifest_key_ok(e->key) ||
            !get_str(&d, i, "sha256", e->sha256, sizeof(e->sha256)) ||
            !sr_manifest_hex_ok(e->sha256) ||
            !get_str(&d, i, "fingerprint", e->fingerprint, sizeof(e->fingerprint)) ||
            !sr_manifest_hex_ok(e->fingerprint) || !get_int(&d, i, "size", &size) ||
            !get_int(&d, i, "files", &files) || !get_int(&d, i, "created", &created)) {
            char why[96];
            snprintf(why, sizeof(why), "snapshot entry %u is malformed", k);
            fail(m, err, errlen, why);
            goto out;
        }
        /* Two entries naming one object would let retention delete a live snapshot. */
        for (uint32_t j = 0; j < k; j++) {
            if (strcmp(m->e[j].key, e->key) == 0) {
                fail(m, err, errlen, "a key appears twice");
                goto out;
            }
        }
        /* Format 2 (tree snapshots): what the snapshot added to the store and what it uses. */
        int64_t added = 0, total = 0;
        if ((sr_json_obj_get(&d, i, "added", 5) >= 0 && (!get_int(&d, i, "added", &added))) ||
            (sr_json_obj_get(&d, i, "total", 5) >= 0 && (!get_int(&d, i, "total", &total)))) {
            fail(m, err, errlen, "a snapshot entry has a malformed \"added\" or \"total\"");
            goto out;
        }
        e->size = (uint64_t)size;
        e->files = (uint64_t)files;
        e->created = created;
        e->added = (uint64_t)added;
        e->total = (uint64_t)total;
        m->n = k + 1;
    }
    rc = 0;
out:
    free(toks);
    return rc;
}

int sr_manifest_write(const struct sr_manifest *m, char *buf, size_t cap, size_t *len)
{
    struct sr_jw w;
    sr_jw_init(&w, buf, cap);
    sr_jw_obj_begin(&w);
    sr_jw_key(&w, "format");
    sr_jw_int(&w, SR_MANIFEST_FORMAT);
    sr_jw_key(&w, "partition");
    sr_jw_cstr(&w, m->partition);
    sr_jw_key(&w, "snapshots");
    sr_jw_arr_begin(&w);
    for (uint32_t i = 0; i < m->n && i < SR_MANIFEST_MAX; i++) {
        const struct sr_manifest_entry *e = &m->e[i];
        sr_jw_obj_begin(&w);
        sr_jw_key(&w, "key");
        sr_jw_cstr(&w, e->key);
        sr_jw_key(&w, "sha256");
        sr_jw_cstr(&w, e->sha256);
        sr_jw_key(&w, "size");
        sr_jw_int(&w, (int64_t)e->size);
        sr_jw_key(&w, "created");
        sr_jw_int(&w, e->created);
        sr_jw_key(&w, "files");
        sr_jw_int(&w, (int64_t)e->files);
        sr_jw_key(&w, "fingerprint");
        sr_jw_cstr(&w, e->fingerprint);
        if (e->added || e->total) {
            sr_jw_key(&w, "added");
            sr_jw_int(&w, (int64_t)e->added);
            sr_jw_key(&w, "total");
            sr_jw_int(&w, (int64_t)e->total);
        }
        sr_jw_obj_end(&w);
    }
    sr_jw_arr_end(&w);
    sr_jw_obj_end(&w);
    return sr_jw_finish(&w, len) == 0 ? 0 : SR_MANIFEST_E_SPACE;
}

void sr_manifest_push(struct sr_manifest *m, const struct sr_manifest_entry *e, uint32_t keep,
                      struct sr_manifest_entry *dropped, uint32_t *ndropped)
{
    *ndropped = 0;
    if (keep < 1)
        keep = 1;
    if (keep > SR_MANIFEST_MAX)
        keep = SR_MANIFEST_MAX;
    uint32_t n = m->n;
    /* A full array drops its oldest entry to make room. */
    if (n == SR_MANIFEST_MAX) {
        dropped[(*ndropped)++] = m->e[n - 1];
        n--;
    }
    memmove(&m->e[1], &m->e[0], n * sizeof(m->e[0]));
    m->e[0] = *e;
    n++;
    while (n > keep) {
        dropped[(*ndropped)++] = m->e[n - 1];
        n--;
    }
    m->n = n;
}

int sr_manifest_find(const struct sr_manifest *m, const char *key)
{
    for (uint32_t i = 0; i < m->n; i++)
        if (strcmp(m->e[i].key, key) == 0)
            return (int)i;
    return -1;
}
