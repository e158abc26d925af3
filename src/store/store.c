/*
 * The object-store interface: configuration checks and dispatch.
 *
 * Callers (snapshot jobs, the CLI) talk to one struct sr_store whatever sits
 * behind it. Everything that is the same for every backend happens here, once:
 * the configuration is checked with messages that name the setting to fix,
 * and every key and prefix is checked against the project's key alphabet
 * before a backend sees it, so that no backend ever has to encode, escape or
 * defend against path traversal on its own.
 */
#include "store/store_impl.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int sr_store_fail(char *err, size_t errlen, int code, const char *fmt, ...)
{
    va_list ap;

    if (err != NULL && errlen > 0) {
        va_start(ap, fmt);
        vsnprintf(err, errlen, fmt, ap);
        va_end(ap);
    }
    return code;
}

static bool key_char_ok(char ch)
{
    return (ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') ||
           ch == '.' || ch == '_' || ch == '/' || ch == '-';
}

/*
 * The shared rules for keys and prefixes: the alphabet [A-Za-z0-9._/-], no
 * leading '/', no "..", no empty path component ("//") and no component that is
 * exactly ".". A prefix may be empty and may end in '/'; a key may do neither.
 */
static int name_check(const char *name, bool is_prefix, char *err, size_t errlen)
{
    const char *what = is_prefix ? "prefix" : "key";
    size_t n;

    if (name == NULL)
        return sr_store_fail(err, errlen, SR_STORE_E_CONFIG, "the object %s is missing", what);
    n = strlen(name);
    if (n == 0 && !is_prefix)
        return sr_store_fail(err, errlen, SR_STORE_E_CONFIG, "the object key is empty");
    if (n > SR_STORE_KEY_MAX)
        return sr_store_fail(err, errlen, SR_STORE_E_CONFIG,
                             "the object %s is %zu bytes long; at most %d are allowed", what, n,
                             SR_STORE_KEY_MAX);
    for (size_t i = 0; i < n; i++) {
        if (!key_char_ok(name[i]))
            return sr_store_fail(err, errlen, SR_STORE_E_CONFIG,
                                 "the object %s has a character outside [A-Za-z0-9._/-] at "
                                 "offset %zu",
                                 what, i);
    }
    if (name[0] == '/')
        return sr_store_fail(err, errlen, SR_STORE_E_CONFIG, "the object %s \"%s\" starts with '/'",
                             what, name);
    if (strstr(name, "..") != NULL)
        return sr_store_fail(err, errlen, SR_STORE_E_CONFIG, "the object %s \"%s\" contains \"..\"",
                             what, name);
    if (strstr(name, "//") != NULL)
        return sr_store_fail(err, errlen, SR_STORE_E_CONFIG,
                             "the object %s \"%s\" has an empty path component", what, name);
    if (!is_prefix && name[n - 1] == '/')
        return sr_store_fail(err, errlen, SR_STORE_E_CONFIG, "the object key \"%s\" ends in '/'",
                             name);
    /* A component that is exactly "." would alias its directory in the file store. */
    for (const char *c = name; *c != '\0';) {
        const char *slash = strchr(c, '/');
        size_t len = slash != NULL ? (size_t)(slash - c) : strlen(c);

        if (len == 1 && c[0] == '.' && (slash != NULL || !is_prefix))
            return sr_store_fail(err, errlen, SR_STORE_E_CONFIG,
                                 "the object %s \"%s\" has a \".\" path component", what, name);
        if (slash == NULL)
            break;
        c = slash + 1;
    }
    return 0;
}

int sr_store_key_check(const char *key, char *err, size_t errlen)
{
    return name_check(key, false, err, errlen);
}

int sr_store_prefix_check(const char *prefix, char *err, size_t errlen)
{
    return name_check(prefix, true, err, errlen);
}

int sr_store_open(const struct sr_store_config *c, struct sr_store **out, char *err, size_t errlen)
{
    *out = NULL;
    if (c == NULL || c->kind == NULL || c->kind[0] == '\0')
        return sr_store_fail(err, errlen, SR_STORE_E_CONFIG,
                             "no object store kind was given: use \"file\" or \"s3\"");
    if (strcmp(c->kind, "file") == 0)
        return sr_store_file_open(c, out, err, errlen);
    if (strcmp(c->kind, "s3") == 0)
        return sr_store_s3_open(c, out, err, errlen);
    return sr_store_fail(err, errlen, SR_STORE_E_CONFIG,
                         "unknown object store kind \"%.40s\": use \"file\" or \"s3\"", c->kind);
}

void sr_store_close(struct sr_store *s)
{
    if (s != NULL)
        s->ops->close(s);
}

const char *sr_store_describe(const struct sr_store *s)
{
    return s != NULL ? s->desc : "none";
}

int sr_store_put_file(struct sr_store *s, const char *key, const char *path, const char *sha256_hex,
                      char *err, size_t errlen)
{
    int rc = sr_store_key_check(key, err, errlen);

    if (rc != 0)
        return rc;
    if (path == NULL)
        return sr_store_fail(err, errlen, SR_STORE_E_CONFIG, "no local file to upload was given");
    if (sha256_hex != NULL && strlen(sha256_hex) != 64)
        return sr_store_fail(err, errlen, SR_STORE_E_CONFIG,
                             "the SHA-256 given for %s is not 64 hex digits", key);
    return s->ops->put_file(s, key, path, sha256_hex, err, errlen);
}

int sr_store_put_bytes(struct sr_store *s, const char *key, const void *data, size_t n, char *err,
                       size_t errlen)
{
    int rc = sr_store_key_check(key, err, errlen);

    if (rc != 0)
        return rc;
    if (data == NULL && n > 0)
        return sr_store_fail(err, errlen, SR_STORE_E_CONFIG, "no data to upload was given");
    return s->ops->put_bytes(s, key, data != NULL ? data : "", n, err, errlen);
}

int sr_store_get_file(struct sr_store *s, const char *key, const char *path, char *err,
                      size_t errlen)
{
    int rc = sr_store_key_check(key, err, errlen);

    if (rc != 0)
        return rc;
    if (path == NULL)
        return sr_store_fail(err, errlen, SR_STORE_E_CONFIG, "no local file to download to");
    return s->ops->get_file(s, key, path, err, errlen);
}

int sr_store_get_bytes(struct sr_store *s, const char *key, size_t max, char **data, size_t *n,
                       char *err, size_t errlen)
{
    int rc = sr_store_key_check(key, err, errlen);

    *data = NULL;
    *n = 0;
    if (rc != 0)
        return rc;
    return s->ops->get_bytes(s, key, max, data, n, err, errlen);
}

int sr_store_head(struct sr_store *s, const char *key, uint64_t *size, char *err, size_t errlen)
{
    int rc = sr_store_key_check(key, err, errlen);

    *size = 0;
    if (rc != 0)
        return rc;
    return s->ops->head(s, key, size, err, errlen);
}

int sr_store_list(struct sr_store *s, const char *prefix, sr_store_list_cb cb, void *arg, char *err,
                  size_t errlen)
{
    int rc;

    if (prefix == NULL)
        prefix = "";
    rc = sr_store_prefix_check(prefix, err, errlen);
    if (rc != 0)
        return rc;
    return s->ops->list(s, prefix, cb, arg, err, errlen);
}

int sr_store_delete(struct sr_store *s, const char *key, char *err, size_t errlen)
{
    int rc = sr_store_key_check(key, err, errlen);

    if (rc != 0)
        return rc;
    return s->ops->del(s, key, err, errlen);
}

int sr_store_create(struct sr_store *s, char *err, size_t errlen)
{
    return s->ops->create(s, err, errlen);
}

/* Stops a listing at its first object: one page is enough to prove the store answers. */
static int probe_cb(void *arg, const struct sr_store_object *o)
{
    (void)arg;
    (void)o;
    return 1;
}

int sr_store_probe(struct sr_store *s, char *err, size_t errlen)
{
    int rc = s->ops->list(s, "", probe_cb, NULL, err, errlen);

    return rc == 1 ? 0 : rc;
}
