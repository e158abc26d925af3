/*
 * The packer (see pack.h).
 *
 * Why threads here when everything else in persistence is a process: the
 * work is one pipeline over one tree (read, hash, compress, hash the pack,
 * encrypt, upload), and its stages must overlap to keep up with
 * `tar | zstd | curl`, which overlaps them with processes. The threads
 * share only the queues, the tree's pack table (under the mutex) and each
 * ref they own; the store is used by the uploader alone.
 */
#include "snapshot/pack.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>
#include <zstd.h>

#include "core/mem.h"

struct slot {
    uint32_t ri, off, len;
};

struct frame {
    uint8_t *raw;
    size_t n;
    struct slot *slots;
    uint32_t nslots, scap;
    struct frame *next;
};

struct packbuf {
    uint8_t *b;
    size_t n, cap;
    uint32_t idx; /* in the tree's pack table */
    struct packbuf *next;
};

struct worker {
    pthread_t th;
    struct sr_packer *p;
    ZSTD_CCtx *cctx;
    uint8_t *cbuf;
    size_t ccap;
    struct packbuf *cur;
};

struct sr_packer {
    struct sr_store *s;
    char prefix[1024];
    struct sr_tree *t;
    uint8_t keyid[8];
    pthread_mutex_t mu;
    pthread_cond_t cv;
    struct frame *fq, *fq_tail;
    uint32_t nfq;
    struct packbuf *uq, *uq_tail;
    uint32_t nuq;
    bool closing;
    uint32_t active; /* workers still running */
    struct frame *cur;
    struct worker w[SR_PACK_THREADS];
    uint32_t nw;
    pthread_t up;
    bool up_started;
    bool failed;
    int rc;
    char err[512];
    uint32_t packs;
    uint64_t bytes;
};

void sr_pack_key(const char *packs_prefix, const uint8_t id[32], char *out, size_t cap)
{
    char hex[65];
    sr_hex_encode(id, 32, hex);
    hex[64] = '\0';
    snprintf(out, cap, "%s%s", packs_prefix, hex);
}

/* Record the first failure (under p->mu). */
__attribute__((format(printf, 3, 4))) static void failf(struct sr_packer *p, int rc,
                                                        const char *fmt, ...)
{
    if (p->failed)
        return;
    p->failed = true;
    p->rc = rc;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(p->err, sizeof(p->err), fmt, ap);
    va_end(ap);
    pthread_cond_broadcast(&p->cv);
}

static void frame_free(struct frame *f)
{
    if (f) {
        free(f->raw);
        free(f->slots);
        free(f);
    }
}

static struct frame *frame_new(void)
{
    struct frame *f = calloc(1, sizeof(*f));
    if (f && !(f->raw = malloc(SR_PACK_FRAME_TARGET))) {
        free(f);
        f = NULL;
    }
    return f;
}

/* ---------------------------------------------------------------- uploader */

static void *uploader(void *arg)
{
    struct sr_packer *p = arg;
    for (;;) {
        pthread_mutex_lock(&p->mu);
        while (!p->uq && p->active > 0)
            pthread_cond_wait(&p->cv, &p->mu);
        struct packbuf *pb = p->uq;
        if (!pb) {
            pthread_mutex_unlock(&p->mu);
            return NULL;
        }
        p->uq = pb->next;
        if (!p->uq)
            p->uq_tail = NULL;
        p->nuq--;
        pthread_cond_broadcast(&p->cv);
        bool skip = p->failed;
        char key[1200];
        sr_pack_key(p->prefix, p->t->p[pb->idx].id, key, sizeof(key));
        pthread_mutex_unlock(&p->mu);
        if (!skip) {
            char err[512];
            int rc = sr_store_put_bytes(p->s, key, pb->b, pb->n, err, sizeof(err));
            pthread_mutex_lock(&p->mu);
            if (rc < 0)
                failf(p, rc, "%s", err);
            else {
                p->packs++;
                p->bytes += pb->n;
            }
            pthread_mutex_unlock(&p->mu);
        }
        free(pb->b);
        free(pb);
    }
}

/* ----------------------------------------------------------------- workers */

/* Name the worker's pack and hand it to the uploader (blocks while the uploader is behind). */
static void seal(struct worker *w)
{
    struct sr_packer *p = w->p;
    struct packbuf *pb = w->cur;
    uint8_t id[32];
    unsigned int dl = 0;
    w->cur = NULL;
    if (!pb)
        return;
    int ok = EVP_Digest(pb->b, pb->n, id, &dl, EVP_sha256(), NULL) == 1;
    pthread_mutex_lock(&p->mu);
    if (!ok)
        failf(p, SR_STORE_E_IO, "cannot hash a pack (OpenSSL)");
    while (!p->failed && p->nuq >= SR_PACK_UPLOADS)
        pthread_cond_wait(&p->cv, &p->mu);
    if (p->failed) {
        pthread_mutex_unlock(&p->mu);
        free(pb->b);
        free(pb);
        return;
    }
    memcpy(p->t->p[pb->idx].id, id, 32);
    p->t->p[pb->idx].size = pb->n;
    if (p->uq_tail)
        p->uq_tail->next = pb;
    else
        p->uq = pb;
    p->uq_tail = pb;
    p->nuq++;
    pthread_cond_broadcast(&p->cv);
    pthread_mutex_unlock(&p->mu);
}

static int compress_frame(struct worker *w, struct frame *f)
{
    struct sr_packer *p = w->p;
    size_t c = ZSTD_compressCCtx(w->cctx, w->cbuf, w->ccap, f->raw, f->n, SR_PACK_ZSTD_LEVEL);
    if (ZSTD_isError(c))
        return -1;
    if (!w->cur) {
        struct packbuf *pb = calloc(1, sizeof(*pb));
        if (!pb)
            return -1;
        pb->cap = SR_PACK_TARGET + w->ccap;
        if (!(pb->b = malloc(pb->cap))) {
            free(pb);
            return -1;
        }
        static const uint8_t zero[32];
        pthread_mutex_lock(&p->mu);
        int64_t idx = sr_tree_add_pack(p->t, zero, 0, p->keyid);
        pthread_mutex_unlock(&p->mu);
        if (idx < 0) {
            free(pb->b);
            free(pb);
            return -1;
        }
        pb->idx = (uint32_t)idx;
        w->cur = pb;
    }
    struct packbuf *pb = w->cur;
    uint64_t at = pb->n;
    memcpy(pb->b + pb->n, w->cbuf, c);
    pb->n += c;
    for (uint32_t i = 0; i < f->nslots; i++) {
        struct sr_tree_ref *r = &p->t->r[f->slots[i].ri];
        r->pack = pb->idx;
        r->frame_off = at;
        r->frame_len = (uint32_t)c;
        r->frame_raw = (uint32_t)f->n;
        r->off = f->slots[i].off;
    }
    if (pb->n >= SR_PACK_TARGET)
        seal(w);
    return 0;
}

static void *worker_main(void *arg)
{
    struct worker *w = arg;
    struct sr_packer *p = w->p;
    for (;;) {
        pthread_mutex_lock(&p->mu);
        while (!p->fq && !p->closing)
            pthread_cond_wait(&p->cv, &p->mu);
        struct frame *f = p->fq;
        if (!f) {
            pthread_mutex_unlock(&p->mu);
            break;
        }
        p->fq = f->next;
        if (!p->fq)
            p->fq_tail = NULL;
        p->nfq--;
        pthread_cond_broadcast(&p->cv);
        bool skip = p->failed;
        pthread_mutex_unlock(&p->mu);
        if (!skip && compress_frame(w, f) < 0) {
            pthread_mutex_lock(&p->mu);
            failf(p, SR_STORE_E_IO, "cannot compress or pack a frame (out of memory?)");
            pthread_mutex_unlock(&p->mu);
        }
        frame_free(f);
    }
    seal(w);
    pthread_mutex_lock(&p->mu);
    p->active--;
    pthread_cond_broadcast(&p->cv);
    pthread_mutex_unlock(&p->mu);
    return NULL;
}

/* -------------------------------------------------------------------- API */

int sr_packer_new(struct sr_store *s, const char *packs_prefix, struct sr_tree *t,
                  struct sr_packer **out, char *err, size_t errlen)
{
    struct sr_packer *p = calloc(1, sizeof(*p));
    *out = NULL;
    if (!p) {
        snprintf(err, errlen, "out of memory");
        return SR_STORE_E_IO;
    }
    p->s = s;
    p->t = t;
    snprintf(p->prefix, sizeof(p->prefix), "%s", packs_prefix);
    sr_store_key_id(s, p->keyid);
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->cv, NULL);
    size_t ccap = ZSTD_compressBound(SR_PACK_FRAME_TARGET);
    for (uint32_t i = 0; i < SR_PACK_THREADS; i++) {
        struct worker *w = &p->w[i];
        w->p = p;
        w->ccap = ccap;
        w->cctx = ZSTD_createCCtx();
        w->cbuf = malloc(ccap);
        if (!w->cctx || !w->cbuf)
            goto fail;
    }
    p->active = SR_PACK_THREADS;
    for (uint32_t i = 0; i < SR_PACK_THREADS; i++) {
        if (pthread_create(&p->w[i].th, NULL, worker_main, &p->w[i]) != 0) {
            p->active = i;
            break;
        }
        p->nw++;
    }
    if (p->nw == 0 || pthread_create(&p->up, NULL, uploader, p) != 0) {
        p->up_started = false;
        uint32_t pk;
        uint64_t by;
        sr_packer_finish(p, &pk, &by, err, errlen);
        snprintf(err, errlen, "cannot start the packing threads");
        return SR_STORE_E_IO;
    }
    p->up_started = true;
    *out = p;
    return 0;
fail:
    for (uint32_t i = 0; i < SR_PACK_THREADS; i++) {
        ZSTD_freeCCtx(p->w[i].cctx);
        free(p->w[i].cbuf);
    }
    pthread_mutex_destroy(&p->mu);
    pthread_cond_destroy(&p->cv);
    free(p);
    snprintf(err, errlen, "out of memory");
    return SR_STORE_E_IO;
}

/* Hand the current frame to the workers (blocks while the queue is full). */
static int submit(struct sr_packer *p)
{
    struct frame *f = p->cur;
    p->cur = NULL;
    if (!f)
        return 0;
    pthread_mutex_lock(&p->mu);
    while (!p->failed && p->nfq >= SR_PACK_QUEUE)
        pthread_cond_wait(&p->cv, &p->mu);
    if (p->failed) {
        pthread_mutex_unlock(&p->mu);
        frame_free(f);
        return -1;
    }
    if (p->fq_tail)
        p->fq_tail->next = f;
    else
        p->fq = f;
    p->fq_tail = f;
    p->nfq++;
    pthread_cond_broadcast(&p->cv);
    pthread_mutex_unlock(&p->mu);
    return 0;
}

int sr_packer_add(struct sr_packer *p, uint32_t ri, const uint8_t *data, size_t n)
{
    if (n > SR_PACK_FRAME_TARGET)
        return -1;
    if (p->cur && p->cur->n + n > SR_PACK_FRAME_TARGET && submit(p) < 0)
        return -1;
    if (!p->cur && !(p->cur = frame_new()))
        return -1;
    struct frame *f = p->cur;
    if (f->nslots == f->scap) {
        uint32_t nc = f->scap ? f->scap * 2 : 64;
        struct slot *ns = realloc(f->slots, nc * sizeof(*ns));
        if (!ns)
            return -1;
        f->slots = ns;
        f->scap = nc;
    }
    f->slots[f->nslots++] = (struct slot){ri, (uint32_t)f->n, (uint32_t)n};
    memcpy(f->raw + f->n, data, n);
    f->n += n;
    return 0;
}

int sr_packer_finish(struct sr_packer *p, uint32_t *packs, uint64_t *bytes, char *err,
                     size_t errlen)
{
    submit(p);
    pthread_mutex_lock(&p->mu);
    p->closing = true;
    pthread_cond_broadcast(&p->cv);
    pthread_mutex_unlock(&p->mu);
    for (uint32_t i = 0; i < p->nw; i++)
        pthread_join(p->w[i].th, NULL);
    if (p->up_started)
        pthread_join(p->up, NULL);
    int rc = p->failed ? (p->rc ? p->rc : SR_STORE_E_IO) : 0;
    if (rc)
        snprintf(err, errlen, "%s", p->err);
    *packs = p->packs;
    *bytes = p->bytes;
    for (uint32_t i = 0; i < SR_PACK_THREADS; i++) {
        ZSTD_freeCCtx(p->w[i].cctx);
        free(p->w[i].cbuf);
        if (p->w[i].cur) {
            free(p->w[i].cur->b);
            free(p->w[i].cur);
        }
    }
    while (p->fq) {
        struct frame *f = p->fq;
        p->fq = f->next;
        frame_free(f);
    }
    while (p->uq) {
        struct packbuf *pb = p->uq;
        p->uq = pb->next;
        free(pb->b);
        free(pb);
    }
    pthread_mutex_destroy(&p->mu);
    pthread_cond_destroy(&p->cv);
    free(p);
    return rc;
}
