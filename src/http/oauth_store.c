/*
 * OAuth records and their file (see oauth_store.h).
 *
 * The file is line based so that it is easy to inspect and cheap to parse
 * without a JSON token array: a header line, then one line a record with
 * space-separated fields; free text (names, URIs) is percent-encoded behind
 * a '=' so that an empty value is still a field. Only digests of codes and
 * tokens are written, never a code or a token.
 */
#include "http/oauth_store.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <openssl/sha.h>

#include "core/mem.h"
#include "core/oauth.h"
#include "http/log.h"

#define HEADER     "serena-remote-oauth 1"
#define FIELDS_MAX (8 + SR_OAUTH_REDIRECTS_MAX)

/* "=<percent-encoded>" into out; false when malformed or too long. */
static bool text_field(const char *f, char *out, size_t cap)
{
    return f[0] == '=' && sr_form_decode(f + 1, strlen(f + 1), out, cap, NULL) == 0;
}

static bool hex_field(const char *f, uint8_t *out, size_t n)
{
    return strlen(f) == 2 * n && sr_hex_decode(f, n, out) == 0;
}

static bool name_field(const char *f, char *out, size_t cap)
{
    size_t n = strlen(f);
    if (n == 0 || n >= cap)
        return false;
    memcpy(out, f, n + 1);
    return true;
}

static bool binding_fields(char **fld, struct sr_oauth_binding *b)
{
    return strlen(fld[0]) == SR_OAUTH_CLIENT_ID_LEN &&
           name_field(fld[0], b->client_id, sizeof(b->client_id)) &&
           name_field(fld[1], b->name, sizeof(b->name)) && hex_field(fld[2], b->bind, 32);
}

/* One record line (split into fields); false when it does not parse. */
static bool load_line(struct sr_oauth_store *s, char **fld, int nf, uint32_t *nc, uint32_t *no,
                      uint32_t *ng)
{
    if (strcmp(fld[0], "c") == 0 && nf >= 7) {
        struct sr_oauth_client *c = &s->clients[*nc];
        unsigned long k = strtoul(fld[4], NULL, 10);
        if (*nc >= SR_OAUTH_CLIENTS_MAX || strlen(fld[1]) != SR_OAUTH_CLIENT_ID_LEN || k == 0 ||
            k > SR_OAUTH_REDIRECTS_MAX || nf != 6 + (int)k ||
            !text_field(fld[5], c->name, sizeof(c->name)))
            return false;
        memcpy(c->id, fld[1], SR_OAUTH_CLIENT_ID_LEN + 1);
        c->created = strtoll(fld[2], NULL, 10);
        c->last_used = strtoll(fld[3], NULL, 10);
        for (unsigned long i = 0; i < k; i++)
            if (!text_field(fld[6 + i], c->redirect[i], sizeof(c->redirect[i])))
                return false;
        c->nredirect = (uint32_t)k;
        c->used = true;
        (*nc)++;
        return true;
    }
    if (strcmp(fld[0], "m") == 0 && nf >= 9) { /* a client from its metadata document (CIMD) */
        struct sr_oauth_client *c = &s->clients[*nc];
        unsigned long k = strtoul(fld[5], NULL, 10);
        char id[SR_OAUTH_CLIENT_ID_LEN + 1];
        if (*nc >= SR_OAUTH_CLIENTS_MAX || k == 0 || k > SR_OAUTH_REDIRECTS_MAX ||
            nf != 8 + (int)k || !text_field(fld[6], c->url, sizeof(c->url)) ||
            !sr_oauth_is_url_client(c->url, strlen(c->url)) ||
            !text_field(fld[7], c->name, sizeof(c->name)))
            return false;
        sr_oauth_store_url_id(c->url, id);
        if (strcmp(id, fld[1]) != 0)
            return false;
        memcpy(c->id, id, sizeof(id));
        c->created = strtoll(fld[2], NULL, 10);
        c->last_used = strtoll(fld[3], NULL, 10);
        c->fresh_until = strtoll(fld[4], NULL, 10);
        for (unsigned long i = 0; i < k; i++)
            if (!text_field(fld[8 + i], c->redirect[i], sizeof(c->redirect[i])))
                return false;
        c->nredirect = (uint32_t)k;
        c->used = true;
        (*nc)++;
        return true;
    }
    if (strcmp(fld[0], "o") == 0 && nf == 10) {
        struct sr_oauth_code *o = &s->codes[*no];
        if (*no >= SR_OAUTH_CODES_MAX || !hex_field(fld[1], o->digest, 32) ||
            !binding_fields(fld + 2, &o->b) ||
            !text_field(fld[6], o->redirect, sizeof(o->redirect)) ||
            strlen(fld[7]) != SR_OAUTH_CHALLENGE_LEN || !hex_field(fld[9], o->family, 16))
            return false;
        o->redeemed = strcmp(fld[8], "1") == 0;
        o->expires = strtoll(fld[5], NULL, 10);
        memcpy(o->challenge, fld[7], SR_OAUTH_CHALLENGE_LEN + 1);
        o->used = true;
        (*no)++;
        return true;
    }
    if (strcmp(fld[0], "g") == 0 && nf == 9) {
        struct sr_oauth_grant *g = &s->grants[*ng];
        if (*ng >= SR_OAUTH_GRANTS_MAX || (strcmp(fld[1], "a") != 0 && strcmp(fld[1], "r") != 0) ||
            !hex_field(fld[3], g->digest, 32) || !hex_field(fld[4], g->family, 16) ||
            !binding_fields(fld + 5, &g->b))
            return false;
        g->kind = fld[1][0] == 'a' ? SR_OAUTH_ACCESS : SR_OAUTH_REFRESH;
        g->rotated = strcmp(fld[2], "1") == 0;
        g->expires = strtoll(fld[8], NULL, 10);
        (*ng)++;
        return true;
    }
    return false;
}

struct sr_oauth_store *sr_oauth_store_open(const char *state_dir, char *err, size_t errlen)
{
    struct sr_oauth_store *s = calloc(1, sizeof(*s));
    if (!s) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    if (snprintf(s->path, sizeof(s->path), "%s/oauth.state", state_dir) >= (int)sizeof(s->path)) {
        snprintf(err, errlen, "the state directory path is too long for OAuth's file");
        free(s);
        return NULL;
    }
    FILE *f = fopen(s->path, "r");
    if (!f) {
        if (errno == ENOENT)
            return s;
        snprintf(err, errlen,
                 "cannot read %s: %s (fix its permissions, or remove it to forget every OAuth "
                 "client and grant)",
                 s->path, strerror(errno));
        free(s);
        return NULL;
    }
    char *line = NULL;
    size_t cap = 0;
    ssize_t n;
    uint32_t nc = 0, no = 0, ng = 0, lineno = 0;
    bool bad = false;
    while (!bad && (n = getline(&line, &cap, f)) > 0) {
        lineno++;
        if (line[n - 1] == '\n')
            line[--n] = '\0';
        if (lineno == 1) {
            bad = strcmp(line, HEADER) != 0;
            continue;
        }
        char *fld[FIELDS_MAX + 1];
        int nf = 0;
        char *p = line;
        while (nf <= FIELDS_MAX) {
            fld[nf++] = p;
            char *sp = strchr(p, ' ');
            if (!sp)
                break;
            *sp = '\0';
            p = sp + 1;
        }
        bad = nf > FIELDS_MAX || !load_line(s, fld, nf, &nc, &no, &ng);
    }
    free(line);
    fclose(f);
    if (bad) {
        snprintf(err, errlen,
                 "%s is damaged (line %u): remove it to forget every OAuth client and grant "
                 "(clients then register again and people sign in again)",
                 s->path, lineno);
        free(s);
        return NULL;
    }
    return s;
}

void sr_oauth_store_url_id(const char *url, char out[SR_OAUTH_CLIENT_ID_LEN + 1])
{
    uint8_t d[SHA256_DIGEST_LENGTH];
    SHA256((const unsigned char *)url, strlen(url), d);
    sr_base64url_encode(d, 16, out);
    out[SR_OAUTH_CLIENT_ID_LEN] = '\0';
}

void sr_oauth_store_free(struct sr_oauth_store *s)
{
    if (!s)
        return;
    OPENSSL_cleanse(s, sizeof(*s));
    free(s);
}

void sr_oauth_store_sweep(struct sr_oauth_store *s, int64_t now)
{
    for (uint32_t i = 0; i < SR_OAUTH_CODES_MAX; i++)
        if (s->codes[i].used && s->codes[i].expires <= now)
            memset(&s->codes[i], 0, sizeof(s->codes[i]));
    for (uint32_t i = 0; i < SR_OAUTH_GRANTS_MAX; i++)
        if (s->grants[i].kind && s->grants[i].expires <= now)
            memset(&s->grants[i], 0, sizeof(s->grants[i]));
    for (uint32_t i = 0; i < SR_OAUTH_CLIENTS_MAX; i++)
        if (s->clients[i].used &&
            s->clients[i].last_used + (int64_t)SR_OAUTH_CLIENT_IDLE_TTL <= now)
            memset(&s->clients[i], 0, sizeof(s->clients[i]));
}

static void put_text(FILE *f, const char *t)
{
    char enc[3 * SR_OAUTH_URI_MAX + 1];
    size_t n = 0;
    if (sr_form_encode(t, strlen(t), enc, sizeof(enc), &n) != 0)
        enc[0] = '\0';
    fprintf(f, " =%s", enc);
}

static void put_hex(FILE *f, const uint8_t *b, size_t n)
{
    char hex[65];
    sr_hex_encode(b, n, hex);
    hex[2 * n] = '\0';
    fprintf(f, " %s", hex);
}

static void put_binding(FILE *f, const struct sr_oauth_binding *b)
{
    fprintf(f, " %s %s", b->client_id, b->name);
    put_hex(f, b->bind, 32);
}

int sr_oauth_store_save(struct sr_oauth_store *s, int64_t now)
{
    sr_oauth_store_sweep(s, now);
    char tmp[4200];
    snprintf(tmp, sizeof(tmp), "%s.%ld.tmp", s->path, (long)getpid());
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
    FILE *f = fd >= 0 ? fdopen(fd, "w") : NULL;
    if (!f) {
        sr_log_event("error", "OAuth: cannot write %s: %s; grants made now are lost at restart",
                     tmp, strerror(errno));
        if (fd >= 0)
            close(fd);
        return -1;
    }
    fprintf(f, "%s\n", HEADER);
    for (uint32_t i = 0; i < SR_OAUTH_CLIENTS_MAX; i++) {
        const struct sr_oauth_client *c = &s->clients[i];
        if (!c->used)
            continue;
        if (c->url[0]) {
            fprintf(f, "m %s %" PRId64 " %" PRId64 " %" PRId64 " %u", c->id, c->created,
                    c->last_used, c->fresh_until, c->nredirect);
            put_text(f, c->url);
        } else {
            fprintf(f, "c %s %" PRId64 " %" PRId64 " %u", c->id, c->created, c->last_used,
                    c->nredirect);
        }
        put_text(f, c->name);
        for (uint32_t k = 0; k < c->nredirect; k++)
            put_text(f, c->redirect[k]);
        fputc('\n', f);
    }
    for (uint32_t i = 0; i < SR_OAUTH_CODES_MAX; i++) {
        const struct sr_oauth_code *o = &s->codes[i];
        if (!o->used)
            continue;
        fputc('o', f);
        put_hex(f, o->digest, 32);
        put_binding(f, &o->b);
        fprintf(f, " %" PRId64, o->expires);
        put_text(f, o->redirect);
        fprintf(f, " %s %d", o->challenge, o->redeemed ? 1 : 0);
        put_hex(f, o->family, 16);
        fputc('\n', f);
    }
    for (uint32_t i = 0; i < SR_OAUTH_GRANTS_MAX; i++) {
        const struct sr_oauth_grant *g = &s->grants[i];
        if (!g->kind)
            continue;
        fprintf(f, "g %c %d", g->kind == SR_OAUTH_ACCESS ? 'a' : 'r', g->rotated ? 1 : 0);
        put_hex(f, g->digest, 32);
        put_hex(f, g->family, 16);
        put_binding(f, &g->b);
        fprintf(f, " %" PRId64 "\n", g->expires);
    }
    bool ok = fflush(f) == 0 && fsync(fileno(f)) == 0;
    ok = fclose(f) == 0 && ok;
    if (!ok || rename(tmp, s->path) != 0) {
        sr_log_event("error", "OAuth: cannot write %s: %s; grants made now are lost at restart",
                     s->path, strerror(errno));
        unlink(tmp);
        return -1;
    }
    return 0;
}

/* True when some code or token of client id is still kept. */
static bool client_has_grants(const struct sr_oauth_store *s, const char *id)
{
    for (uint32_t i = 0; i < SR_OAUTH_CODES_MAX; i++)
        if (s->codes[i].used && strcmp(s->codes[i].b.client_id, id) == 0)
            return true;
    for (uint32_t i = 0; i < SR_OAUTH_GRANTS_MAX; i++)
        if (s->grants[i].kind && strcmp(s->grants[i].b.client_id, id) == 0)
            return true;
    return false;
}

struct sr_oauth_client *sr_oauth_store_new_client(struct sr_oauth_store *s)
{
    struct sr_oauth_client *lru = NULL, *lru_idle = NULL;
    for (uint32_t i = 0; i < SR_OAUTH_CLIENTS_MAX; i++) {
        struct sr_oauth_client *c = &s->clients[i];
        if (!c->used)
            return memset(c, 0, sizeof(*c));
        if (!lru || c->last_used < lru->last_used)
            lru = c;
    }
    /* Full: a registration nobody signed in with goes first (a flood of registrations then
     * only churns itself), else the least recently used one. */
    for (uint32_t i = 0; i < SR_OAUTH_CLIENTS_MAX; i++) {
        struct sr_oauth_client *c = &s->clients[i];
        if ((!lru_idle || c->last_used < lru_idle->last_used) && !client_has_grants(s, c->id))
            lru_idle = c;
    }
    if (lru_idle)
        lru = lru_idle;
    sr_log_event("info", "OAuth: %u registrations kept; client %s (%s) is dropped to make room",
                 SR_OAUTH_CLIENTS_MAX, lru->id, lru_idle ? "no sign-in" : "least recently used");
    return memset(lru, 0, sizeof(*lru));
}

struct sr_oauth_code *sr_oauth_store_new_code(struct sr_oauth_store *s)
{
    struct sr_oauth_code *old = &s->codes[0];
    for (uint32_t i = 0; i < SR_OAUTH_CODES_MAX; i++) {
        if (!s->codes[i].used)
            return memset(&s->codes[i], 0, sizeof(s->codes[i]));
        if (s->codes[i].expires < old->expires)
            old = &s->codes[i];
    }
    return memset(old, 0, sizeof(*old));
}

struct sr_oauth_grant *sr_oauth_store_new_grant(struct sr_oauth_store *s)
{
    struct sr_oauth_grant *old = &s->grants[0];
    for (uint32_t i = 0; i < SR_OAUTH_GRANTS_MAX; i++) {
        if (!s->grants[i].kind)
            return memset(&s->grants[i], 0, sizeof(s->grants[i]));
        if (s->grants[i].expires < old->expires)
            old = &s->grants[i];
    }
    return memset(old, 0, sizeof(*old));
}

struct sr_oauth_client *sr_oauth_store_client(struct sr_oauth_store *s, const char *id)
{
    if (strlen(id) != SR_OAUTH_CLIENT_ID_LEN)
        return NULL;
    for (uint32_t i = 0; i < SR_OAUTH_CLIENTS_MAX; i++)
        if (s->clients[i].used && strcmp(s->clients[i].id, id) == 0)
            return &s->clients[i];
    return NULL;
}

struct sr_oauth_code *sr_oauth_store_code(struct sr_oauth_store *s, const uint8_t digest[32])
{
    struct sr_oauth_code *hit = NULL;
    for (uint32_t i = 0; i < SR_OAUTH_CODES_MAX; i++)
        if (s->codes[i].used && CRYPTO_memcmp(s->codes[i].digest, digest, 32) == 0)
            hit = &s->codes[i];
    return hit;
}

struct sr_oauth_grant *sr_oauth_store_grant(struct sr_oauth_store *s, const uint8_t digest[32])
{
    struct sr_oauth_grant *hit = NULL;
    for (uint32_t i = 0; i < SR_OAUTH_GRANTS_MAX; i++)
        if (s->grants[i].kind && CRYPTO_memcmp(s->grants[i].digest, digest, 32) == 0)
            hit = &s->grants[i];
    return hit;
}

uint32_t sr_oauth_store_revoke_family(struct sr_oauth_store *s, const uint8_t family[16])
{
    uint32_t n = 0;
    for (uint32_t i = 0; i < SR_OAUTH_GRANTS_MAX; i++)
        if (s->grants[i].kind && memcmp(s->grants[i].family, family, 16) == 0) {
            memset(&s->grants[i], 0, sizeof(s->grants[i]));
            n++;
        }
    return n;
}

void sr_oauth_bind_of(const uint8_t token_digest[32], uint8_t out[32])
{
    /* A fingerprint, not the digest: the state file then holds nothing a static token's
     * digest could be compared with. */
    static const char label[] = "serena-remote oauth binding v1";
    uint8_t in[sizeof(label) - 1 + 32];
    memcpy(in, label, sizeof(label) - 1);
    memcpy(in + sizeof(label) - 1, token_digest, 32);
    SHA256(in, sizeof(in), out);
}

bool sr_oauth_binding_live(const struct sr_oauth_binding *b, const struct sr_tokens *t,
                           int32_t *index)
{
    int32_t i = sr_tokens_find(t, b->name);
    if (i < 0)
        return false;
    uint8_t fp[32];
    sr_oauth_bind_of(t->e[i].digest, fp);
    if (CRYPTO_memcmp(fp, b->bind, 32) != 0)
        return false;
    if (index)
        *index = i;
    return true;
}

uint32_t sr_oauth_store_prune(struct sr_oauth_store *s, const struct sr_tokens *t)
{
    uint32_t n = 0;
    for (uint32_t i = 0; i < SR_OAUTH_CODES_MAX; i++)
        if (s->codes[i].used && !sr_oauth_binding_live(&s->codes[i].b, t, NULL)) {
            memset(&s->codes[i], 0, sizeof(s->codes[i]));
            n++;
        }
    for (uint32_t i = 0; i < SR_OAUTH_GRANTS_MAX; i++)
        if (s->grants[i].kind && !sr_oauth_binding_live(&s->grants[i].b, t, NULL)) {
            memset(&s->grants[i], 0, sizeof(s->grants[i]));
            n++;
        }
    return n;
}
