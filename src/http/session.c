/*
 * Edge sessions on the native host (see session.h): keys, AES-256-GCM and
 * the edge-to-backend session table.
 *
 * One cipher context is reused for every seal and open (single-threaded
 * loop); an open costs one AES-GCM pass over about 300 bytes. Table entries
 * are found by a hash of the id's SHA-256 and chained; when the table is
 * full the least recently used entry goes (it costs one re-initialization
 * if that client comes back).
 */
#include "http/session.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/random.h>
#include <sys/stat.h>

#include <openssl/evp.h>
#include <openssl/sha.h>

#include "core/mem.h"
#include "http/log.h"

#define KEYS_MAX        8
#define BUCKETS         8192u /* a power of two, twice SR_SESSION_TABLE_MAX */
#define PLAIN_TOKENS    1024u
#define KEY_FILE_NAME   "session.key"
#define ENDED_FILE_NAME "sessions.ended"

struct entry {
    uint8_t digest[SHA256_DIGEST_LENGTH];
    char backend[SR_SESSION_BACKEND_ID_MAX + 1];
    uint64_t inc;
    uint64_t used;
    int32_t next; /* chain in its bucket, -1 ends */
    bool live;
    bool ended;
    /* The claims of an id that opened under the key once: judged again without decrypting (the
     * digest matched, so the id is byte for byte the one that was opened). */
    bool verified;
    int64_t issued;
    char name[SR_TOKEN_NAME_MAX + 1];
};

static struct entry *lookup(struct sr_sessions *s, const char *id, size_t n, uint8_t *d);
static struct entry *insert(struct sr_sessions *s, const uint8_t *d);

struct sr_sessions {
    uint8_t keys[KEYS_MAX][SR_SESSION_KEY_LEN];
    unsigned nkeys;
    uint32_t max_age;
    EVP_CIPHER_CTX *ctx;
    /* Fetched once: OpenSSL 3 looks an algorithm up on every init otherwise (microseconds a
     * request). */
    EVP_CIPHER *aes;
    EVP_MD *sha256;
    EVP_MD_CTX *mdctx;
    /* The last id hashed and its digest: a request opens its id, then looks it up. */
    char memo_id[SR_SESSION_ID_MAX];
    size_t memo_len;
    uint8_t memo_digest[SHA256_DIGEST_LENGTH];
    uint64_t clock; /* LRU counter */
    uint32_t count;
    int32_t bucket[BUCKETS];
    struct entry e[SR_SESSION_TABLE_MAX];
    struct sr_json_tok toks[PLAIN_TOKENS];
    char plain[SR_SESSION_PLAIN_MAX + 1];
    uint8_t sealed[SR_SESSION_SEALED_MAX];
    /* Ended (DELETE'd) ids by digest, sorted, with the time each expires anyway; appended to
     * <state-dir>/sessions.ended so that a restart keeps them ended. */
    struct ended_id *ended;
    uint32_t nended, ended_cap;
    int ended_fd; /* -1: remembered in memory only (no state directory) */
};

struct ended_id {
    uint8_t d[SHA256_DIGEST_LENGTH];
    int64_t until;
};

/* Standard or URL-safe base64, padded or not, into exactly 32 bytes. */
static int decode_key(const char *s, size_t n, uint8_t out[SR_SESSION_KEY_LEN])
{
    char norm[64];
    size_t k = 0, len = 0;
    uint8_t buf[48];
    while (n > 0 && (s[n - 1] == '=' || s[n - 1] == '\n' || s[n - 1] == '\r' || s[n - 1] == ' '))
        n--;
    while (n > 0 && s[0] == ' ')
        s++, n--;
    if (n >= sizeof(norm))
        return -1;
    for (size_t i = 0; i < n; i++)
        norm[k++] = s[i] == '+' ? '-' : s[i] == '/' ? '_' : s[i];
    if (sr_base64url_decode(norm, k, buf, sizeof(buf), &len) != 0 || len != SR_SESSION_KEY_LEN)
        return -1;
    memcpy(out, buf, SR_SESSION_KEY_LEN);
    return 0;
}

static int load_env_keys(struct sr_sessions *s, const char *env, char *err, size_t errlen)
{
    const char *p = env;
    for (unsigned idx = 1;; idx++) {
        const char *end = strchr(p, ',');
        size_t n = end ? (size_t)(end - p) : strlen(p);
        if (s->nkeys >= KEYS_MAX) {
            snprintf(err, errlen, "SERENA_SESSION_KEY holds more than %d keys", KEYS_MAX);
            return -1;
        }
        if (decode_key(p, n, s->keys[s->nkeys]) < 0) {
            snprintf(err, errlen,
                     "SERENA_SESSION_KEY: key %u is not 32 bytes of base64 (make one with "
                     "`serena-remote token --session-key`; several keys are separated by commas, "
                     "the first seals new session ids)",
                     idx);
            return -1;
        }
        s->nkeys++;
        if (!end)
            return 0;
        p = end + 1;
    }
}

static int read_key_file(struct sr_sessions *s, const char *path, char *err, size_t errlen)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0)
        return -1;
    char text[128];
    ssize_t n = read(fd, text, sizeof(text) - 1);
    close(fd);
    if (n <= 0 || decode_key(text, (size_t)n, s->keys[0]) < 0) {
        snprintf(err, errlen,
                 "%s does not hold a base64 session key of 32 bytes; restore it from a backup "
                 "or delete it (clients then start new sessions)",
                 path);
        return -2;
    }
    s->nkeys = 1;
    return 0;
}

/*
 * <state-dir>/session.key: read it, or create it (0600) with a fresh random key. Two gateways
 * may start at once on a fresh directory (--upstream mode takes no lock): each writes its own
 * temporary file and link()s it into place, which fails for the second; that one then reads the
 * winner's key, so both seal with the key that is on disk.
 */
static int load_file_key(struct sr_sessions *s, const char *state_dir, char *err, size_t errlen)
{
    char path[4096];
    snprintf(path, sizeof(path), "%s/%s", state_dir, KEY_FILE_NAME);
    int rc = read_key_file(s, path, err, errlen);
    if (rc != -1)
        return rc == 0 ? 0 : -1;
    if (errno != ENOENT) {
        snprintf(err, errlen, "cannot read %s: %s", path, strerror(errno));
        return -1;
    }
    mkdir(state_dir, 0700);
    if (getrandom(s->keys[0], SR_SESSION_KEY_LEN, 0) != SR_SESSION_KEY_LEN) {
        snprintf(err, errlen, "no random bytes for a session key: %s", strerror(errno));
        return -1;
    }
    char tmp[4200];
    snprintf(tmp, sizeof(tmp), "%s.XXXXXX", path);
    char text[64];
    size_t n = sr_base64url_encode(s->keys[0], SR_SESSION_KEY_LEN, text);
    text[n++] = '\n';
    int fd = mkostemp(tmp, O_CLOEXEC); /* mode 0600 */
    if (fd < 0 || write(fd, text, n) != (ssize_t)n || fsync(fd) < 0) {
        snprintf(err, errlen, "cannot write a session key beside %s: %s", path, strerror(errno));
        if (fd >= 0) {
            close(fd);
            unlink(tmp);
        }
        return -1;
    }
    close(fd);
    int lrc = link(tmp, path);
    int lerr = errno;
    unlink(tmp);
    if (lrc == 0) {
        s->nkeys = 1;
        return 0;
    }
    if (lerr == EEXIST && read_key_file(s, path, err, errlen) == 0)
        return 0;
    if (lerr != EEXIST)
        snprintf(err, errlen, "cannot create %s: %s", path, strerror(lerr));
    return -1;
}

/* Where digest d is (or would go) in the sorted ended list; *found when it is there. */
static uint32_t ended_pos(const struct sr_sessions *s, const uint8_t *d, bool *found)
{
    uint32_t lo = 0, hi = s->nended;
    while (lo < hi) {
        uint32_t mid = lo + (hi - lo) / 2;
        int c = memcmp(s->ended[mid].d, d, SHA256_DIGEST_LENGTH);
        if (c == 0) {
            *found = true;
            return mid;
        }
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    *found = false;
    return lo;
}

static bool ended_has(const struct sr_sessions *s, const uint8_t *d)
{
    bool found = false;
    if (s->nended)
        ended_pos(s, d, &found);
    return found;
}

/* Remember d as ended until `until`; full, the id that expires soonest is forgotten. */
static void ended_add(struct sr_sessions *s, const uint8_t *d, int64_t until)
{
    bool found;
    uint32_t at = ended_pos(s, d, &found);
    if (found) {
        if (until > s->ended[at].until)
            s->ended[at].until = until;
        return;
    }
    if (s->nended == s->ended_cap) {
        if (s->ended_cap == SR_SESSION_ENDED_MAX) {
            uint32_t soonest = 0;
            for (uint32_t i = 1; i < s->nended; i++)
                if (s->ended[i].until < s->ended[soonest].until)
                    soonest = i;
            memmove(&s->ended[soonest], &s->ended[soonest + 1],
                    (s->nended - soonest - 1) * sizeof(*s->ended));
            s->nended--;
            at = ended_pos(s, d, &found);
        } else {
            uint32_t cap = s->ended_cap ? 2 * s->ended_cap : 64;
            struct ended_id *n = realloc(s->ended, cap * sizeof(*n));
            if (!n)
                return; /* remembered in the table entry only */
            s->ended = n;
            s->ended_cap = cap;
        }
    }
    memmove(&s->ended[at + 1], &s->ended[at], (s->nended - at) * sizeof(*s->ended));
    memcpy(s->ended[at].d, d, SHA256_DIGEST_LENGTH);
    s->ended[at].until = until;
    s->nended++;
}

static void ended_line(const struct ended_id *e, char *line, size_t cap)
{
    char hex[2 * SHA256_DIGEST_LENGTH + 1];
    sr_hex_encode(e->d, SHA256_DIGEST_LENGTH, hex);
    hex[2 * SHA256_DIGEST_LENGTH] = '\0';
    snprintf(line, cap, "%s %lld\n", hex, (long long)e->until);
}

/*
 * Read <state_dir>/sessions.ended (lines "<sha256 hex of the id> <unix expiry>"), keep what has
 * not expired, write it back compacted and keep it open for appending. A damaged line is
 * skipped (and said); a file that cannot be written leaves ended ids in memory only (said).
 */
static void load_ended(struct sr_sessions *s, const char *state_dir)
{
    char path[4096], tmp[4120];
    snprintf(path, sizeof(path), "%s/%s", state_dir, ENDED_FILE_NAME);
    snprintf(tmp, sizeof(tmp), "%s.%ld.tmp", path, (long)getpid());
    int64_t now = (int64_t)time(NULL);
    uint32_t bad = 0;
    FILE *f = fopen(path, "re");
    if (f) {
        char line[160];
        while (fgets(line, sizeof(line), f)) {
            uint8_t d[SHA256_DIGEST_LENGTH];
            char *sp = strchr(line, ' ');
            char *end = NULL;
            long long until = sp ? strtoll(sp + 1, &end, 10) : 0;
            if (!sp || sp - line != 2 * SHA256_DIGEST_LENGTH ||
                sr_hex_decode(line, SHA256_DIGEST_LENGTH, d) != 0 || !end || *end != '\n') {
                bad++;
                continue;
            }
            if (until > now)
                ended_add(s, d, until);
        }
        fclose(f);
    }
    if (bad)
        sr_log_event("warn", "sessions: %u damaged line(s) in %s skipped", bad, path);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
    bool ok = fd >= 0;
    for (uint32_t i = 0; ok && i < s->nended; i++) {
        char line[160];
        ended_line(&s->ended[i], line, sizeof(line));
        ok = write(fd, line, strlen(line)) == (ssize_t)strlen(line);
    }
    if (fd >= 0)
        close(fd);
    if (ok && rename(tmp, path) == 0)
        s->ended_fd = open(path, O_WRONLY | O_APPEND | O_CLOEXEC | O_NOFOLLOW);
    else
        unlink(tmp);
    if (s->ended_fd < 0)
        sr_log_event("warn",
                     "sessions: cannot write %s (%s): ended session ids are remembered in "
                     "memory only, a restart forgets them",
                     path, strerror(errno));
}

int sr_sessions_new(const char *state_dir, const char *keys_env, uint32_t max_age,
                    struct sr_sessions **out, char *err, size_t errlen)
{
    *out = NULL;
    struct sr_sessions *s = calloc(1, sizeof(*s));
    if (!s) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    s->max_age = max_age ? max_age : SR_SESSION_MAX_AGE;
    s->ended_fd = -1;
    for (unsigned i = 0; i < BUCKETS; i++)
        s->bucket[i] = -1;
    int rc;
    if (keys_env && *keys_env)
        rc = load_env_keys(s, keys_env, err, errlen);
    else if (state_dir)
        rc = load_file_key(s, state_dir, err, errlen);
    else {
        snprintf(err, errlen, "no session key: set SERENA_SESSION_KEY");
        rc = -1;
    }
    if (rc == 0) {
        s->ctx = EVP_CIPHER_CTX_new();
        s->aes = EVP_CIPHER_fetch(NULL, "AES-256-GCM", NULL);
        s->sha256 = EVP_MD_fetch(NULL, "SHA256", NULL);
        s->mdctx = EVP_MD_CTX_new();
    }
    if (rc < 0 || !s->ctx || !s->aes || !s->sha256 || !s->mdctx) {
        if (rc == 0)
            snprintf(err, errlen,
                     "OpenSSL offers no AES-256-GCM or SHA-256 here (or memory ran out)");
        sr_sessions_free(s);
        return -1;
    }
    if (state_dir)
        load_ended(s, state_dir);
    *out = s;
    return 0;
}

void sr_sessions_free(struct sr_sessions *s)
{
    if (!s)
        return;
    if (s->ended_fd >= 0)
        close(s->ended_fd);
    free(s->ended);
    EVP_CIPHER_CTX_free(s->ctx);
    EVP_CIPHER_free(s->aes);
    EVP_MD_free(s->sha256);
    EVP_MD_CTX_free(s->mdctx);
    OPENSSL_cleanse(s->keys, sizeof(s->keys));
    free(s);
}

static int seal(struct sr_sessions *s, const char *plain, size_t n, uint8_t *out, size_t *outlen)
{
    uint8_t *nonce = out, *ct = out + SR_SESSION_NONCE_LEN, *tag = ct + n;
    int len = 0, fin = 0;
    if (getrandom(nonce, SR_SESSION_NONCE_LEN, 0) != SR_SESSION_NONCE_LEN)
        return -1;
    if (EVP_EncryptInit_ex(s->ctx, s->aes, NULL, s->keys[0], nonce) != 1 ||
        EVP_EncryptUpdate(s->ctx, NULL, &len, (const uint8_t *)SR_SESSION_AAD,
                          (int)strlen(SR_SESSION_AAD)) != 1 ||
        EVP_EncryptUpdate(s->ctx, ct, &len, (const uint8_t *)plain, (int)n) != 1 ||
        EVP_EncryptFinal_ex(s->ctx, ct + len, &fin) != 1 ||
        EVP_CIPHER_CTX_ctrl(s->ctx, EVP_CTRL_GCM_GET_TAG, SR_SESSION_TAG_LEN, tag) != 1)
        return -1;
    *outlen = SR_SESSION_NONCE_LEN + n + SR_SESSION_TAG_LEN;
    return 0;
}

/* Decrypt sealed[0..n) into s->plain under any key; the plaintext length, or -1. */
static int unseal(struct sr_sessions *s, const uint8_t *sealed, size_t n)
{
    size_t clen = n - SR_SESSION_NONCE_LEN - SR_SESSION_TAG_LEN;
    const uint8_t *nonce = sealed, *ct = sealed + SR_SESSION_NONCE_LEN, *tag = ct + clen;
    for (unsigned k = 0; k < s->nkeys; k++) {
        int len = 0, fin = 0;
        if (EVP_DecryptInit_ex(s->ctx, s->aes, NULL, s->keys[k], nonce) != 1 ||
            EVP_DecryptUpdate(s->ctx, NULL, &len, (const uint8_t *)SR_SESSION_AAD,
                              (int)strlen(SR_SESSION_AAD)) != 1 ||
            EVP_DecryptUpdate(s->ctx, (uint8_t *)s->plain, &len, ct, (int)clen) != 1 ||
            EVP_CIPHER_CTX_ctrl(s->ctx, EVP_CTRL_GCM_SET_TAG, SR_SESSION_TAG_LEN, (void *)tag) != 1)
            continue;
        if (EVP_DecryptFinal_ex(s->ctx, (uint8_t *)s->plain + len, &fin) == 1)
            return len + fin;
    }
    return -1;
}

int sr_sessions_issue(struct sr_sessions *s, const char *name, const char *body, size_t n, char *id,
                      size_t cap)
{
    int pn = sr_session_plain_new(name, (int64_t)time(NULL), body, n, s->toks, PLAIN_TOKENS,
                                  s->plain, sizeof(s->plain));
    size_t sl = 0;
    if (pn < 0 || seal(s, s->plain, (size_t)pn, s->sealed, &sl) < 0)
        return -1;
    return sr_session_id_encode(s->sealed, sl, id, cap);
}

/* Decode, decrypt and parse an id into claims (pointing into s->plain). */
static int unseal_claims(struct sr_sessions *s, const char *id, size_t n,
                         struct sr_session_claims *c)
{
    size_t sl = 0;
    int rc = sr_session_id_decode(id, n, s->sealed, sizeof(s->sealed), &sl);
    if (rc != SR_SESSION_OK)
        return rc;
    int pn = unseal(s, s->sealed, sl);
    if (pn < 0)
        return SR_SESSION_E_FORGED;
    return sr_session_plain_parse(s->plain, (size_t)pn, s->toks, PLAIN_TOKENS, c);
}

int sr_sessions_open(struct sr_sessions *s, const char *id, size_t n, const char *name)
{
    uint8_t d[SHA256_DIGEST_LENGTH];
    struct entry *e = lookup(s, id, n, d);
    struct sr_session_claims c;
    if (e && e->ended)
        return SR_SESSION_E_ENDED;
    if ((!e || !e->verified) && ended_has(s, d)) { /* ended before a restart or an eviction */
        if (!e)
            e = insert(s, d);
        e->ended = true;
        e->used = ++s->clock;
        return SR_SESSION_E_ENDED;
    }
    if (e && e->verified) {
        e->used = ++s->clock;
        memset(&c, 0, sizeof(c));
        memcpy(c.name, e->name, sizeof(c.name));
        c.issued = e->issued;
        return sr_session_check(&c, name, (int64_t)time(NULL), s->max_age);
    }
    int rc = unseal_claims(s, id, n, &c);
    if (rc == SR_SESSION_OK)
        rc = sr_session_check(&c, name, (int64_t)time(NULL), s->max_age);
    if (rc != SR_SESSION_OK)
        return rc;
    if (!e)
        e = insert(s, d);
    e->verified = true;
    e->issued = c.issued;
    memcpy(e->name, c.name, sizeof(e->name));
    e->used = ++s->clock;
    return SR_SESSION_OK;
}

int sr_sessions_reinit(struct sr_sessions *s, const char *id, size_t n, char *reinit,
                       size_t reinit_cap, char *proto, size_t proto_cap)
{
    struct sr_session_claims c;
    int rc = unseal_claims(s, id, n, &c);
    if (rc != SR_SESSION_OK)
        return rc;
    int len = sr_session_reinit_body(&c, reinit, reinit_cap);
    if (len < 0)
        return SR_SESSION_E_FORGED;
    sr_session_protocol(&c, s->toks, PLAIN_TOKENS, proto, proto_cap);
    return len;
}

static uint32_t bucket_of(const uint8_t *d)
{
    return ((uint32_t)d[0] | (uint32_t)d[1] << 8) & (BUCKETS - 1);
}

/* SHA-256 of an id (the table's key), remembered for the next call with the same id. */
static void digest_of(struct sr_sessions *s, const char *id, size_t n, uint8_t *d)
{
    if (n == s->memo_len && n <= sizeof(s->memo_id) && memcmp(id, s->memo_id, n) == 0) {
        memcpy(d, s->memo_digest, SHA256_DIGEST_LENGTH);
        return;
    }
    unsigned int dl = 0;
    if (EVP_DigestInit_ex(s->mdctx, s->sha256, NULL) != 1 ||
        EVP_DigestUpdate(s->mdctx, id, n) != 1 || EVP_DigestFinal_ex(s->mdctx, d, &dl) != 1)
        SHA256((const uint8_t *)id, n, d);
    if (n <= sizeof(s->memo_id)) {
        memcpy(s->memo_id, id, n);
        s->memo_len = n;
        memcpy(s->memo_digest, d, SHA256_DIGEST_LENGTH);
    }
}

static struct entry *lookup(struct sr_sessions *s, const char *id, size_t n, uint8_t *d)
{
    digest_of(s, id, n, d);
    for (int32_t i = s->bucket[bucket_of(d)]; i >= 0; i = s->e[i].next)
        if (memcmp(s->e[i].digest, d, SHA256_DIGEST_LENGTH) == 0)
            return &s->e[i];
    return NULL;
}

static void unlink_entry(struct sr_sessions *s, int32_t idx)
{
    int32_t *pp = &s->bucket[bucket_of(s->e[idx].digest)];
    while (*pp >= 0 && *pp != idx)
        pp = &s->e[*pp].next;
    if (*pp == idx)
        *pp = s->e[idx].next;
    s->e[idx].live = false;
    s->count--;
}

/* The entry for digest d, created (evicting the least recently used) when missing. */
static struct entry *insert(struct sr_sessions *s, const uint8_t *d)
{
    int32_t slot = -1;
    for (int32_t i = 0; i < (int32_t)SR_SESSION_TABLE_MAX; i++)
        if (!s->e[i].live) {
            slot = i;
            break;
        }
    if (slot < 0) {
        slot = 0;
        for (int32_t i = 1; i < (int32_t)SR_SESSION_TABLE_MAX; i++)
            if (s->e[i].used < s->e[slot].used)
                slot = i;
        unlink_entry(s, slot);
    }
    struct entry *e = &s->e[slot];
    memset(e, 0, sizeof(*e));
    memcpy(e->digest, d, SHA256_DIGEST_LENGTH);
    e->live = true;
    uint32_t b = bucket_of(d);
    e->next = s->bucket[b];
    s->bucket[b] = slot;
    s->count++;
    return e;
}

const char *sr_sessions_backend(struct sr_sessions *s, const char *id, size_t n, uint64_t inc)
{
    uint8_t d[SHA256_DIGEST_LENGTH];
    struct entry *e = lookup(s, id, n, d);
    if (!e || e->ended || !e->backend[0] || e->inc != inc)
        return NULL;
    e->used = ++s->clock;
    return e->backend;
}

void sr_sessions_bind(struct sr_sessions *s, const char *id, size_t n, const char *backend,
                      size_t bn, uint64_t inc)
{
    uint8_t d[SHA256_DIGEST_LENGTH];
    if (bn > SR_SESSION_BACKEND_ID_MAX)
        return; /* not kept: the next request re-initializes */
    struct entry *e = lookup(s, id, n, d);
    if (!e)
        e = insert(s, d);
    memcpy(e->backend, backend, bn);
    e->backend[bn] = '\0';
    e->inc = inc;
    e->used = ++s->clock;
}

void sr_sessions_unbind(struct sr_sessions *s, const char *id, size_t n)
{
    uint8_t d[SHA256_DIGEST_LENGTH];
    struct entry *e = lookup(s, id, n, d);
    if (e)
        e->backend[0] = '\0';
}

void sr_sessions_end(struct sr_sessions *s, const char *id, size_t n)
{
    uint8_t d[SHA256_DIGEST_LENGTH];
    struct entry *e = lookup(s, id, n, d);
    if (!e)
        e = insert(s, d);
    int64_t now = (int64_t)time(NULL);
    /* It would be refused anyway once its maximum age (plus skew) is over. */
    int64_t until = (e->verified ? e->issued : now) + (int64_t)s->max_age + SR_SESSION_SKEW;
    e->ended = true;
    e->backend[0] = '\0';
    e->used = ++s->clock;
    ended_add(s, d, until);
    if (s->ended_fd >= 0) {
        struct ended_id rec;
        char line[160];
        memcpy(rec.d, d, sizeof(rec.d));
        rec.until = until;
        ended_line(&rec, line, sizeof(line));
        if (write(s->ended_fd, line, strlen(line)) != (ssize_t)strlen(line))
            sr_log_event("warn", "sessions: cannot record an ended session id: %s",
                         strerror(errno));
    }
}

uint32_t sr_sessions_count(const struct sr_sessions *s)
{
    return s ? s->count : 0;
}
