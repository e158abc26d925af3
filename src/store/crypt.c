/*
 * Encryption at rest (see crypt.h for the format).
 *
 * Why segments and not one GCM tag per object: a pack is read a frame at a
 * time when only part of it is missing on disk, and GCM can only vouch for a
 * whole message. 64 KiB segments, each with its own tag and a nonce that
 * encodes its position and whether it is the last, make any range
 * verifiable on its own while keeping the overhead at 16 bytes per 64 KiB.
 * This is the construction of age's STREAM and Tink's streaming AEAD.
 *
 * Why HKDF per object: 96-bit random nonces under one key are safe for
 * about 2^32 messages; deriving a fresh subkey from 32 random bytes per
 * object removes that budget altogether, and the segment counter then
 * suffices as the nonce.
 */
#include "store/crypt.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/kdf.h>
#include <openssl/rand.h>

#include "core/keylist.h"
#include "core/mem.h"
#include "store/store.h"

#define AAD_LABEL "serena-remote object v1"
#define KDF_INFO  "serena-remote object v1"
#define ID_LABEL  "serena-remote key id v1"
#define AAD_MAX   (sizeof(AAD_LABEL) + 1100)

struct sr_crypt {
    struct sr_keylist keys;
    uint8_t ids[SR_KEYLIST_MAX][SR_CRYPT_KEYID_LEN];
    EVP_CIPHER_CTX *ctx;
    /* The last subkey derived, for range reads of one object in a row. */
    bool sub_ok;
    uint32_t sub_key;
    uint8_t sub_salt[SR_CRYPT_SALT_LEN];
    uint8_t sub[32];
};

__attribute__((format(printf, 4, 5))) static int fail(char *err, size_t errlen, int code,
                                                      const char *fmt, ...)
{
    va_list ap;
    if (err && errlen) {
        va_start(ap, fmt);
        vsnprintf(err, errlen, fmt, ap);
        va_end(ap);
    }
    return code;
}

int sr_crypt_new(const char *keys, struct sr_crypt **out, char *err, size_t errlen)
{
    *out = NULL;
    struct sr_crypt *c = calloc(1, sizeof(*c));
    if (!c)
        return fail(err, errlen, SR_STORE_E_IO, "out of memory");
    c->ctx = EVP_CIPHER_CTX_new();
    if (!c->ctx || EVP_CipherInit_ex(c->ctx, EVP_aes_256_gcm(), NULL, NULL, NULL, 1) != 1) {
        sr_crypt_free(c);
        return fail(err, errlen, SR_STORE_E_IO, "cannot set up AES-256-GCM (OpenSSL)");
    }
    if (keys && *keys) {
        if (sr_keylist_parse(&c->keys, keys, strlen(keys), "SERENA_SNAPSHOT_KEY", err, errlen) <
            0) {
            sr_crypt_free(c);
            return SR_STORE_E_CONFIG;
        }
        for (uint32_t i = 0; i < c->keys.n; i++) {
            uint8_t d[32];
            unsigned int dl = 0;
            EVP_MD_CTX *m = EVP_MD_CTX_new();
            if (!m || EVP_DigestInit_ex(m, EVP_sha256(), NULL) != 1 ||
                EVP_DigestUpdate(m, ID_LABEL, sizeof(ID_LABEL)) != 1 ||
                EVP_DigestUpdate(m, c->keys.key[i], SR_KEY_LEN) != 1 ||
                EVP_DigestFinal_ex(m, d, &dl) != 1) {
                EVP_MD_CTX_free(m);
                sr_crypt_free(c);
                return fail(err, errlen, SR_STORE_E_IO, "cannot hash a key (OpenSSL)");
            }
            EVP_MD_CTX_free(m);
            memcpy(c->ids[i], d, SR_CRYPT_KEYID_LEN);
        }
    }
    *out = c;
    return 0;
}

void sr_crypt_free(struct sr_crypt *c)
{
    if (!c)
        return;
    EVP_CIPHER_CTX_free(c->ctx);
    OPENSSL_cleanse(c, sizeof(*c));
    free(c);
}

bool sr_crypt_enabled(const struct sr_crypt *c)
{
    return c && c->keys.n > 0;
}

bool sr_crypt_plaintext_ok(const struct sr_crypt *c)
{
    return !c || c->keys.n == 0 || c->keys.plaintext;
}

void sr_crypt_primary_id(const struct sr_crypt *c, uint8_t id[SR_CRYPT_KEYID_LEN])
{
    if (sr_crypt_enabled(c))
        memcpy(id, c->ids[0], SR_CRYPT_KEYID_LEN);
    else
        memset(id, 0, SR_CRYPT_KEYID_LEN);
}

static uint64_t segments_of(uint64_t n)
{
    return n == 0 ? 1 : (n + SR_CRYPT_SEG - 1) / SR_CRYPT_SEG;
}

uint64_t sr_crypt_sealed_size(uint64_t n)
{
    return SR_CRYPT_HEADER + n + SR_CRYPT_TAG * segments_of(n);
}

int sr_crypt_plain_size(uint64_t stored, uint64_t *n)
{
    if (stored < SR_CRYPT_HEADER + SR_CRYPT_TAG)
        return -1;
    uint64_t body = stored - SR_CRYPT_HEADER;
    uint64_t k = (body + SR_CRYPT_SEG_STORED - 1) / SR_CRYPT_SEG_STORED;
    uint64_t last = body - (k - 1) * SR_CRYPT_SEG_STORED;
    if (last < SR_CRYPT_TAG || (last == SR_CRYPT_TAG && k > 1))
        return -1;
    *n = body - SR_CRYPT_TAG * k;
    return 0;
}

bool sr_crypt_is_sealed(const void *p, size_t n)
{
    return n >= SR_CRYPT_MAGIC_LEN && memcmp(p, SR_CRYPT_MAGIC, SR_CRYPT_MAGIC_LEN) == 0;
}

static int derive(struct sr_crypt *c, uint32_t ki, const uint8_t salt[SR_CRYPT_SALT_LEN])
{
    if (c->sub_ok && c->sub_key == ki && memcmp(c->sub_salt, salt, SR_CRYPT_SALT_LEN) == 0)
        return 0;
    c->sub_ok = false;
    size_t len = sizeof(c->sub);
    EVP_PKEY_CTX *k = EVP_PKEY_CTX_new_id(EVP_PKEY_HKDF, NULL);
    int ok = k && EVP_PKEY_derive_init(k) == 1 && EVP_PKEY_CTX_set_hkdf_md(k, EVP_sha256()) == 1 &&
             EVP_PKEY_CTX_set1_hkdf_salt(k, salt, SR_CRYPT_SALT_LEN) == 1 &&
             EVP_PKEY_CTX_set1_hkdf_key(k, c->keys.key[ki], SR_KEY_LEN) == 1 &&
             EVP_PKEY_CTX_add1_hkdf_info(k, (const unsigned char *)KDF_INFO,
                                         (int)strlen(KDF_INFO)) == 1 &&
             EVP_PKEY_derive(k, c->sub, &len) == 1 && len == sizeof(c->sub);
    EVP_PKEY_CTX_free(k);
    if (!ok)
        return -1;
    c->sub_ok = true;
    c->sub_key = ki;
    memcpy(c->sub_salt, salt, SR_CRYPT_SALT_LEN);
    return 0;
}

static size_t build_aad(const char *key, uint8_t *aad)
{
    size_t kl = strnlen(key, 1100 - 1);
    memcpy(aad, AAD_LABEL, sizeof(AAD_LABEL)); /* with its NUL */
    memcpy(aad + sizeof(AAD_LABEL), key, kl);
    return sizeof(AAD_LABEL) + kl;
}

static void nonce_of(uint64_t i, bool last, uint8_t nonce[12])
{
    memset(nonce, 0, 12);
    for (int b = 0; b < 8; b++)
        nonce[3 + b] = (uint8_t)(i >> (56 - 8 * b));
    nonce[11] = last ? 1 : 0;
}

/* One segment: n plaintext bytes -> n + 16 bytes at out. */
static int seal_seg(struct sr_crypt *c, uint64_t i, bool last, const uint8_t *aad, size_t aadlen,
                    const uint8_t *in, size_t n, uint8_t *out)
{
    uint8_t nonce[12];
    int len = 0;
    nonce_of(i, last, nonce);
    if (EVP_CipherInit_ex(c->ctx, NULL, NULL, c->sub, nonce, 1) != 1 ||
        EVP_CipherUpdate(c->ctx, NULL, &len, aad, (int)aadlen) != 1 ||
        (n && EVP_CipherUpdate(c->ctx, out, &len, in, (int)n) != 1) ||
        EVP_CipherFinal_ex(c->ctx, out + n, &len) != 1 ||
        EVP_CIPHER_CTX_ctrl(c->ctx, EVP_CTRL_GCM_GET_TAG, SR_CRYPT_TAG, out + n) != 1)
        return -1;
    return 0;
}

/* One stored segment of n bytes (>= 16) -> n - 16 plaintext bytes. */
static int open_seg(struct sr_crypt *c, uint64_t i, bool last, const uint8_t *aad, size_t aadlen,
                    const uint8_t *in, size_t n, uint8_t *out)
{
    uint8_t nonce[12], tag[SR_CRYPT_TAG];
    int len = 0;
    size_t pn = n - SR_CRYPT_TAG;
    nonce_of(i, last, nonce);
    memcpy(tag, in + pn, SR_CRYPT_TAG);
    if (EVP_CipherInit_ex(c->ctx, NULL, NULL, c->sub, nonce, 0) != 1 ||
        EVP_CipherUpdate(c->ctx, NULL, &len, aad, (int)aadlen) != 1 ||
        (pn && EVP_CipherUpdate(c->ctx, out, &len, in, (int)pn) != 1) ||
        EVP_CIPHER_CTX_ctrl(c->ctx, EVP_CTRL_GCM_SET_TAG, SR_CRYPT_TAG, tag) != 1 ||
        EVP_CipherFinal_ex(c->ctx, out + pn, &len) != 1)
        return -1;
    return 0;
}

static int make_header(struct sr_crypt *c, uint8_t hdr[SR_CRYPT_HEADER])
{
    memcpy(hdr, SR_CRYPT_MAGIC, SR_CRYPT_MAGIC_LEN);
    memcpy(hdr + SR_CRYPT_MAGIC_LEN, c->ids[0], SR_CRYPT_KEYID_LEN);
    uint8_t *salt = hdr + SR_CRYPT_MAGIC_LEN + SR_CRYPT_KEYID_LEN;
    if (RAND_bytes(salt, SR_CRYPT_SALT_LEN) != 1)
        return -1;
    return derive(c, 0, salt);
}

int sr_crypt_check_header(struct sr_crypt *c, const char *key, const uint8_t *hdr, size_t n,
                          char *err, size_t errlen)
{
    if (n < SR_CRYPT_HEADER || !sr_crypt_is_sealed(hdr, n))
        return fail(err, errlen, SR_STORE_E_CORRUPT,
                    "%s is damaged: its encryption header is missing or cut short", key);
    const uint8_t *id = hdr + SR_CRYPT_MAGIC_LEN;
    if (c->keys.n == 0)
        return fail(err, errlen, SR_STORE_E_KEY,
                    "%s is encrypted, and no SERENA_SNAPSHOT_KEY is set: give the gateway the "
                    "key the snapshots were written with (nothing was changed in the store)",
                    key);
    for (uint32_t i = 0; i < c->keys.n; i++)
        if (memcmp(c->ids[i], id, SR_CRYPT_KEYID_LEN) == 0) {
            if (derive(c, i, hdr + SR_CRYPT_MAGIC_LEN + SR_CRYPT_KEYID_LEN) < 0)
                return fail(err, errlen, SR_STORE_E_IO, "cannot derive a key (OpenSSL)");
            return 0;
        }
    return fail(err, errlen, SR_STORE_E_KEY,
                "%s is encrypted with a key that is not in SERENA_SNAPSHOT_KEY (key id "
                "%02x%02x%02x%02x): add that key to the list (after the current one) to read it; "
                "nothing was changed in the store",
                key, id[0], id[1], id[2], id[3]);
}

int sr_crypt_seal(struct sr_crypt *c, const char *key, const void *in, size_t n, uint8_t *out)
{
    uint8_t aad[AAD_MAX];
    size_t aadlen = build_aad(key, aad);
    if (!sr_crypt_enabled(c) || make_header(c, out) < 0)
        return -1;
    uint64_t k = segments_of(n);
    const uint8_t *p = in;
    uint8_t *o = out + SR_CRYPT_HEADER;
    for (uint64_t i = 0; i < k; i++) {
        size_t len = i + 1 < k ? SR_CRYPT_SEG : n - (size_t)i * SR_CRYPT_SEG;
        if (seal_seg(c, i, i + 1 == k, aad, aadlen, p, len, o) < 0)
            return -1;
        p += len;
        o += len + SR_CRYPT_TAG;
    }
    return 0;
}

static int damaged(const char *key, char *err, size_t errlen)
{
    return fail(err, errlen, SR_STORE_E_CORRUPT,
                "%s does not decrypt: it is damaged or was tampered with (or copied from another "
                "key); it was left in the store as it is",
                key);
}

int sr_crypt_open(struct sr_crypt *c, const char *key, const uint8_t *in, size_t n, uint8_t *out,
                  size_t *outlen, char *err, size_t errlen)
{
    uint8_t aad[AAD_MAX];
    uint64_t plain;
    int rc = sr_crypt_check_header(c, key, in, n, err, errlen);
    if (rc < 0)
        return rc;
    if (sr_crypt_plain_size(n, &plain) < 0)
        return damaged(key, err, errlen);
    size_t aadlen = build_aad(key, aad);
    uint64_t k = segments_of(plain);
    const uint8_t *p = in + SR_CRYPT_HEADER;
    uint8_t *o = out;
    for (uint64_t i = 0; i < k; i++) {
        size_t len = i + 1 < k ? SR_CRYPT_SEG : (size_t)(plain - i * SR_CRYPT_SEG);
        if (open_seg(c, i, i + 1 == k, aad, aadlen, p, len + SR_CRYPT_TAG, o) < 0)
            return damaged(key, err, errlen);
        p += len + SR_CRYPT_TAG;
        o += len;
    }
    *outlen = (size_t)plain;
    return 0;
}

/* Read up to n bytes (fewer only at the end of the file). */
static ssize_t read_full(int fd, uint8_t *buf, size_t n)
{
    size_t got = 0;
    while (got < n) {
        ssize_t r = read(fd, buf + got, n - got);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0)
            return -1;
        if (r == 0)
            break;
        got += (size_t)r;
    }
    return (ssize_t)got;
}

static int write_full(int fd, const uint8_t *p, size_t n)
{
    while (n) {
        ssize_t w = write(fd, p, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return -1;
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

int sr_crypt_seal_fd(struct sr_crypt *c, const char *key, int in, int out, char sha256_hex[65],
                     uint64_t *size, char *err, size_t errlen)
{
    int rc = SR_STORE_E_IO;
    uint8_t aad[AAD_MAX], hdr[SR_CRYPT_HEADER], md[32];
    size_t aadlen = build_aad(key, aad);
    uint8_t *cur = malloc(SR_CRYPT_SEG), *next = malloc(SR_CRYPT_SEG);
    uint8_t *sealed = malloc(SR_CRYPT_SEG_STORED);
    EVP_MD_CTX *h = EVP_MD_CTX_new();
    unsigned int ml = 0;
    uint64_t total = SR_CRYPT_HEADER;
    if (!cur || !next || !sealed || !h || EVP_DigestInit_ex(h, EVP_sha256(), NULL) != 1) {
        fail(err, errlen, SR_STORE_E_IO, "out of memory");
        goto out;
    }
    if (!sr_crypt_enabled(c) || make_header(c, hdr) < 0) {
        fail(err, errlen, SR_STORE_E_IO, "cannot start encrypting %s", key);
        goto out;
    }
    if (write_full(out, hdr, sizeof(hdr)) < 0)
        goto wfail;
    EVP_DigestUpdate(h, hdr, sizeof(hdr));
    ssize_t n = read_full(in, cur, SR_CRYPT_SEG);
    if (n < 0)
        goto rfail;
    for (uint64_t i = 0;; i++) {
        ssize_t m = 0;
        if ((size_t)n == SR_CRYPT_SEG) {
            m = read_full(in, next, SR_CRYPT_SEG);
            if (m < 0)
                goto rfail;
        }
        bool last = m == 0;
        if (seal_seg(c, i, last, aad, aadlen, cur, (size_t)n, sealed) < 0) {
            fail(err, errlen, SR_STORE_E_IO, "cannot encrypt %s (OpenSSL)", key);
            goto out;
        }
        if (write_full(out, sealed, (size_t)n + SR_CRYPT_TAG) < 0)
            goto wfail;
        EVP_DigestUpdate(h, sealed, (size_t)n + SR_CRYPT_TAG);
        total += (uint64_t)n + SR_CRYPT_TAG;
        if (last)
            break;
        uint8_t *t = cur;
        cur = next;
        next = t;
        n = m;
    }
    EVP_DigestFinal_ex(h, md, &ml);
    sr_hex_encode(md, 32, sha256_hex);
    sha256_hex[64] = '\0';
    *size = total;
    rc = 0;
    goto out;
rfail:
    fail(err, errlen, SR_STORE_E_IO, "cannot read the data for %s: %s", key, strerror(errno));
    goto out;
wfail:
    fail(err, errlen, SR_STORE_E_IO, "cannot write the encrypted copy of %s: %s", key,
         strerror(errno));
out:
    EVP_MD_CTX_free(h);
    if (cur)
        OPENSSL_cleanse(cur, SR_CRYPT_SEG);
    if (next)
        OPENSSL_cleanse(next, SR_CRYPT_SEG);
    free(cur);
    free(next);
    free(sealed);
    return rc;
}

int sr_crypt_open_fd(struct sr_crypt *c, const char *key, int in, int out, char *err, size_t errlen)
{
    int rc = SR_STORE_E_IO;
    uint8_t aad[AAD_MAX], hdr[SR_CRYPT_HEADER];
    size_t aadlen = build_aad(key, aad);
    uint8_t *cur = malloc(SR_CRYPT_SEG_STORED), *next = malloc(SR_CRYPT_SEG_STORED);
    uint8_t *plain = malloc(SR_CRYPT_SEG);
    if (!cur || !next || !plain) {
        fail(err, errlen, SR_STORE_E_IO, "out of memory");
        goto out;
    }
    ssize_t hn = read_full(in, hdr, sizeof(hdr));
    if (hn < 0)
        goto rfail;
    rc = sr_crypt_check_header(c, key, hdr, (size_t)hn, err, errlen);
    if (rc < 0)
        goto out;
    rc = SR_STORE_E_IO;
    ssize_t n = read_full(in, cur, SR_CRYPT_SEG_STORED);
    if (n < 0)
        goto rfail;
    for (uint64_t i = 0;; i++) {
        ssize_t m = 0;
        if ((size_t)n == SR_CRYPT_SEG_STORED) {
            m = read_full(in, next, SR_CRYPT_SEG_STORED);
            if (m < 0)
                goto rfail;
        }
        bool last = m == 0;
        if (n < SR_CRYPT_TAG || (last && i > 0 && n == SR_CRYPT_TAG) ||
            open_seg(c, i, last, aad, aadlen, cur, (size_t)n, plain) < 0) {
            rc = damaged(key, err, errlen);
            goto out;
        }
        if (write_full(out, plain, (size_t)n - SR_CRYPT_TAG) < 0) {
            fail(err, errlen, SR_STORE_E_IO, "cannot write the decrypted %s: %s", key,
                 strerror(errno));
            goto out;
        }
        if (last)
            break;
        uint8_t *t = cur;
        cur = next;
        next = t;
        n = m;
    }
    rc = 0;
    goto out;
rfail:
    fail(err, errlen, SR_STORE_E_IO, "cannot read the download of %s: %s", key, strerror(errno));
out:
    if (plain)
        OPENSSL_cleanse(plain, SR_CRYPT_SEG);
    free(cur);
    free(next);
    free(plain);
    return rc;
}

void sr_crypt_range(uint64_t off, uint64_t len, uint64_t *soff, uint64_t *slen)
{
    uint64_t i0 = off / SR_CRYPT_SEG, i1 = (off + (len ? len : 1) - 1) / SR_CRYPT_SEG;
    *soff = SR_CRYPT_HEADER + i0 * SR_CRYPT_SEG_STORED;
    *slen = (i1 - i0 + 1) * SR_CRYPT_SEG_STORED;
}

int sr_crypt_open_range(struct sr_crypt *c, const char *key, const uint8_t *hdr, const uint8_t *seg,
                        size_t seglen, uint64_t off, size_t len, uint8_t *out, size_t *got,
                        char *err, size_t errlen)
{
    uint8_t aad[AAD_MAX];
    int rc = sr_crypt_check_header(c, key, hdr, SR_CRYPT_HEADER, err, errlen);
    *got = 0;
    if (rc < 0)
        return rc;
    size_t aadlen = build_aad(key, aad);
    uint8_t *plain = malloc(SR_CRYPT_SEG);
    if (!plain)
        return fail(err, errlen, SR_STORE_E_IO, "out of memory");
    uint64_t i = off / SR_CRYPT_SEG;
    uint64_t pos = i * SR_CRYPT_SEG; /* plaintext offset of segment i */
    uint64_t end = off + len;
    size_t at = 0;
    rc = 0;
    while (at < seglen && pos < end) {
        size_t sn = seglen - at < SR_CRYPT_SEG_STORED ? seglen - at : SR_CRYPT_SEG_STORED;
        bool last;
        if (sn < SR_CRYPT_TAG) {
            rc = damaged(key, err, errlen);
            break;
        }
        if (sn == SR_CRYPT_SEG_STORED &&
            open_seg(c, i, false, aad, aadlen, seg + at, sn, plain) == 0)
            last = false;
        else if (open_seg(c, i, true, aad, aadlen, seg + at, sn, plain) == 0)
            last = true;
        else {
            rc = damaged(key, err, errlen);
            break;
        }
        size_t pn = sn - SR_CRYPT_TAG;
        uint64_t a = off > pos ? off - pos : 0;
        uint64_t b = end - pos < pn ? end - pos : pn;
        if (b > a) {
            memcpy(out + *got, plain + a, (size_t)(b - a));
            *got += (size_t)(b - a);
        }
        if (last)
            break;
        at += sn;
        pos += pn;
        i++;
    }
    OPENSSL_cleanse(plain, SR_CRYPT_SEG);
    free(plain);
    return rc;
}
