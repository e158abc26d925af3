/*
 * The object-store interface: configuration checks and dispatch.
 *
 * Callers (snapshot jobs, the CLI) talk to one struct sr_store whatever sits
 * behind it. Everything that is the same for every backend happens here, once:
 * the configuration is checked with messages that name the setting to fix,
 * and every key and prefix is checked against the project's key alphabet
 * before a backend sees it, so that no backend ever has to encode, escape or
 * defend against path traversal on its own.
 *
 * Encryption at rest (crypt.h) sits here too, between those checks and the
 * backend, so that no object reaches any store in the clear when a key is
 * set, whoever writes it: uploads are sealed under their own key, downloads
 * are opened and verified before the caller sees a byte. A sealed object
 * read without a key, an unsealed one read with a key (unless "plaintext"
 * is listed), and one that does not open all fail with a message that says
 * which, and leave the store as it was.
 */
#include "store/store_impl.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "store/crypt.h"

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
    int rc;
    struct sr_crypt *crypt = NULL;

    *out = NULL;
    if (c == NULL || c->kind == NULL || c->kind[0] == '\0')
        return sr_store_fail(err, errlen, SR_STORE_E_CONFIG,
                             "no object store kind was given: use \"file\" or \"s3\"");
    if (!c->raw) {
        rc = sr_crypt_new(c->keys, &crypt, err, errlen);
        if (rc != 0)
            return rc;
    }
    if (strcmp(c->kind, "file") == 0)
        rc = sr_store_file_open(c, out, err, errlen);
    else if (strcmp(c->kind, "s3") == 0)
        rc = sr_store_s3_open(c, out, err, errlen);
    else
        rc = sr_store_fail(err, errlen, SR_STORE_E_CONFIG,
                           "unknown object store kind \"%.40s\": use \"file\" or \"s3\"", c->kind);
    if (rc != 0) {
        sr_crypt_free(crypt);
        return rc;
    }
    (*out)->crypt = crypt;
    return 0;
}

void sr_store_close(struct sr_store *s)
{
    if (s != NULL) {
        sr_crypt_free(s->crypt);
        s->crypt = NULL;
        s->ops->close(s);
    }
}

const char *sr_store_describe(const struct sr_store *s)
{
    return s != NULL ? s->desc : "none";
}

bool sr_store_encrypted(const struct sr_store *s)
{
    return s != NULL && sr_crypt_enabled(s->crypt);
}

void sr_store_key_id(const struct sr_store *s, uint8_t id[8])
{
    sr_crypt_primary_id(s != NULL ? s->crypt : NULL, id);
}

/* ---- encryption between the checks and the backend ---- */

static const char *tmpdir(void)
{
    const char *t = getenv("TMPDIR");

    return t != NULL && t[0] == '/' ? t : "/tmp";
}

static int refuse_plain(const char *key, char *err, size_t errlen)
{
    return sr_store_fail(err, errlen, SR_STORE_E_KEY,
                         "%s is stored without encryption, but SERENA_SNAPSHOT_KEY is set: it is "
                         "refused as unauthenticated. If the store predates the key, list "
                         "\"plaintext\" after the key (SERENA_SNAPSHOT_KEY=<key>,plaintext) until "
                         "the next snapshot has been taken; nothing was changed in the store",
                         key);
}

static void forget_header(struct sr_store *s, const char *key)
{
    if (strcmp(s->hdr_key, key) == 0)
        s->hdr_key[0] = '\0';
}

/* Whether an object is sealed, from its first bytes (remembered for the last key asked). */
static int peek_header(struct sr_store *s, const char *key, char *err, size_t errlen)
{
    size_t got = 0;
    int rc;

    if (strcmp(s->hdr_key, key) == 0)
        return 0;
    s->hdr_key[0] = '\0';
    rc = s->ops->get_range(s, key, 0, SR_CRYPT_HEADER, s->hdr, &got, err, errlen);
    if (rc != 0)
        return rc;
    s->hdr_sealed = sr_crypt_is_sealed(s->hdr, got);
    if (s->hdr_sealed && got < SR_CRYPT_HEADER)
        return sr_crypt_check_header(s->crypt, key, s->hdr, got, err, errlen);
    snprintf(s->hdr_key, sizeof(s->hdr_key), "%s", key);
    return 0;
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
    forget_header(s, key);
    if (!sr_crypt_enabled(s->crypt))
        return s->ops->put_file(s, key, path, sha256_hex, err, errlen);
    /* Sealed into a private temporary file first: the upload needs the digest of what it sends. */
    char tmp[4096], hex[65];
    uint64_t size = 0;
    int in = open(path, O_RDONLY | O_CLOEXEC);
    if (in < 0)
        return sr_store_fail(err, errlen, SR_STORE_E_IO, "cannot open %s to upload it: %s", path,
                             strerror(errno));
    snprintf(tmp, sizeof(tmp), "%s/serena-remote-seal-XXXXXX", tmpdir());
    int out = mkostemp(tmp, O_CLOEXEC);
    if (out < 0) {
        close(in);
        return sr_store_fail(err, errlen, SR_STORE_E_IO,
                             "cannot create a temporary file in %s: %s (set TMPDIR to a writable "
                             "directory)",
                             tmpdir(), strerror(errno));
    }
    rc = sr_crypt_seal_fd(s->crypt, key, in, out, hex, &size, err, errlen);
    close(in);
    if (close(out) != 0 && rc == 0)
        rc = sr_store_fail(err, errlen, SR_STORE_E_IO, "cannot write %s: %s", tmp, strerror(errno));
    if (rc == 0)
        rc = s->ops->put_file(s, key, tmp, hex, err, errlen);
    unlink(tmp);
    return rc;
}

int sr_store_put_bytes(struct sr_store *s, const char *key, const void *data, size_t n, char *err,
                       size_t errlen)
{
    int rc = sr_store_key_check(key, err, errlen);

    if (rc != 0)
        return rc;
    if (data == NULL && n > 0)
        return sr_store_fail(err, errlen, SR_STORE_E_CONFIG, "no data to upload was given");
    forget_header(s, key);
    if (!sr_crypt_enabled(s->crypt))
        return s->ops->put_bytes(s, key, data != NULL ? data : "", n, err, errlen);
    size_t sn = (size_t)sr_crypt_sealed_size(n);
    uint8_t *sealed = malloc(sn);
    if (sealed == NULL)
        return sr_store_fail(err, errlen, SR_STORE_E_IO, "out of memory");
    if (sr_crypt_seal(s->crypt, key, data != NULL ? data : "", n, sealed) != 0)
        rc = sr_store_fail(err, errlen, SR_STORE_E_IO, "cannot encrypt %s (OpenSSL)", key);
    else
        rc = s->ops->put_bytes(s, key, sealed, sn, err, errlen);
    free(sealed);
    return rc;
}

int sr_store_get_file(struct sr_store *s, const char *key, const char *path, char *err,
                      size_t errlen)
{
    int rc = sr_store_key_check(key, err, errlen);

    if (rc != 0)
        return rc;
    if (path == NULL)
        return sr_store_fail(err, errlen, SR_STORE_E_CONFIG, "no local file to download to");
    rc = s->ops->get_file(s, key, path, err, errlen);
    if (rc != 0 || s->crypt == NULL)
        return rc;
    /* Opened beside the download, then renamed over it: the caller sees plaintext or nothing. */
    uint8_t head[SR_CRYPT_MAGIC_LEN];
    int in = open(path, O_RDONLY | O_CLOEXEC);
    ssize_t hn = in >= 0 ? pread(in, head, sizeof(head), 0) : -1;
    if (hn < 0) {
        rc = sr_store_fail(err, errlen, SR_STORE_E_IO, "cannot read the download %s: %s", path,
                           strerror(errno));
    } else if (!sr_crypt_is_sealed(head, (size_t)hn)) {
        if (!sr_crypt_plaintext_ok(s->crypt))
            rc = refuse_plain(key, err, errlen);
    } else {
        char tmp[4200];
        snprintf(tmp, sizeof(tmp), "%s.#dec", path);
        int out = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
        if (out < 0) {
            rc = sr_store_fail(err, errlen, SR_STORE_E_IO, "cannot create %s: %s", tmp,
                               strerror(errno));
        } else {
            rc = sr_crypt_open_fd(s->crypt, key, in, out, err, errlen);
            if (close(out) != 0 && rc == 0)
                rc = sr_store_fail(err, errlen, SR_STORE_E_IO, "cannot write %s: %s", tmp,
                                   strerror(errno));
            if (rc == 0 && rename(tmp, path) != 0)
                rc = sr_store_fail(err, errlen, SR_STORE_E_IO, "cannot rename %s: %s", tmp,
                                   strerror(errno));
            if (rc != 0)
                unlink(tmp);
        }
    }
    if (in >= 0)
        close(in);
    if (rc != 0)
        unlink(path);
    return rc;
}

int sr_store_get_bytes(struct sr_store *s, const char *key, size_t max, char **data, size_t *n,
                       char *err, size_t errlen)
{
    int rc = sr_store_key_check(key, err, errlen);

    *data = NULL;
    *n = 0;
    if (rc != 0)
        return rc;
    if (s->crypt == NULL)
        return s->ops->get_bytes(s, key, max, data, n, err, errlen);
    char *raw = NULL;
    size_t rn = 0;
    uint64_t smax = sr_crypt_sealed_size(max);
    rc = s->ops->get_bytes(s, key, smax > SIZE_MAX - 1 ? SIZE_MAX - 1 : (size_t)smax, &raw, &rn,
                           err, errlen);
    if (rc != 0)
        return rc;
    if (!sr_crypt_is_sealed(raw, rn)) {
        if (!sr_crypt_plaintext_ok(s->crypt))
            rc = refuse_plain(key, err, errlen);
        else if (rn > max)
            rc = sr_store_fail(err, errlen, SR_STORE_E_CORRUPT,
                               "%s is larger than the %zu bytes expected there", key, max);
        if (rc != 0) {
            free(raw);
            return rc;
        }
        *data = raw;
        *n = rn;
        return 0;
    }
    char *plain = malloc(rn + 1);
    size_t pn = 0;
    if (plain == NULL)
        rc = sr_store_fail(err, errlen, SR_STORE_E_IO, "out of memory");
    else
        rc = sr_crypt_open(s->crypt, key, (const uint8_t *)raw, rn, (uint8_t *)plain, &pn, err,
                           errlen);
    if (rc == 0 && pn > max)
        rc = sr_store_fail(err, errlen, SR_STORE_E_CORRUPT,
                           "%s is larger than the %zu bytes expected there", key, max);
    free(raw);
    if (rc != 0) {
        free(plain);
        return rc;
    }
    plain[pn] = '\0';
    *data = plain;
    *n = pn;
    return 0;
}

int sr_store_get_range(struct sr_store *s, const char *key, uint64_t off, size_t n, void *buf,
                       size_t *got, char *err, size_t errlen)
{
    int rc = sr_store_key_check(key, err, errlen);

    *got = 0;
    if (rc != 0)
        return rc;
    if (n == 0)
        return 0;
    if (s->crypt == NULL)
        return s->ops->get_range(s, key, off, n, buf, got, err, errlen);
    rc = peek_header(s, key, err, errlen);
    if (rc != 0)
        return rc;
    if (!s->hdr_sealed) {
        if (!sr_crypt_plaintext_ok(s->crypt))
            return refuse_plain(key, err, errlen);
        return s->ops->get_range(s, key, off, n, buf, got, err, errlen);
    }
    uint64_t soff, slen;
    size_t sgot = 0;
    sr_crypt_range(off, n, &soff, &slen);
    uint8_t *sealed = malloc((size_t)slen);
    if (sealed == NULL)
        return sr_store_fail(err, errlen, SR_STORE_E_IO, "out of memory");
    rc = s->ops->get_range(s, key, soff, (size_t)slen, sealed, &sgot, err, errlen);
    if (rc == 0)
        rc =
            sr_crypt_open_range(s->crypt, key, s->hdr, sealed, sgot, off, n, buf, got, err, errlen);
    free(sealed);
    return rc;
}

int sr_store_head(struct sr_store *s, const char *key, uint64_t *size, char *err, size_t errlen)
{
    int rc = sr_store_key_check(key, err, errlen);

    *size = 0;
    if (rc != 0)
        return rc;
    rc = s->ops->head(s, key, size, err, errlen);
    if (rc != 0 || !sr_crypt_enabled(s->crypt) || *size < SR_CRYPT_HEADER)
        return rc;
    /* The content's size: a sealed object is larger than what was put. */
    rc = peek_header(s, key, err, errlen);
    if (rc == 0 && s->hdr_sealed && sr_crypt_plain_size(*size, size) != 0)
        rc = sr_store_fail(err, errlen, SR_STORE_E_CORRUPT,
                           "%s is damaged: no encrypted object has its size", key);
    return rc;
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
    forget_header(s, key);
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
