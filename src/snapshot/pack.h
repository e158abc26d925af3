/*
 * Packs: how chunks of new content travel to the store.
 *
 * The caller hands chunks (a file's bytes in SR_TREE_CHUNK pieces) to a
 * packer. Small chunks are gathered into frames of up to
 * SR_PACK_FRAME_TARGET bytes; each frame is compressed (zstd level 3) on
 * one of SR_PACK_THREADS worker threads and appended to that thread's
 * current pack; a pack holding SR_PACK_TARGET bytes or more is named by
 * the SHA-256 of its bytes and uploaded to <packs prefix><64 hex> by one
 * uploader thread (the only user of the store while the packer runs). The
 * tree's refs and pack table are filled in as frames and packs are done.
 *
 * Memory is bounded: at most SR_PACK_QUEUE frames wait for a worker and
 * SR_PACK_UPLOADS packs for the uploader; add() blocks when they are full.
 */
#ifndef SR_SNAPSHOT_PACK_H
#define SR_SNAPSHOT_PACK_H

#include <stddef.h>
#include <stdint.h>

#include "snapshot/tree.h"
#include "store/store.h"

#define SR_PACK_TARGET       (8u * 1024u * 1024u)
#define SR_PACK_FRAME_TARGET SR_TREE_CHUNK
#define SR_PACK_THREADS      2
#define SR_PACK_QUEUE        4
#define SR_PACK_UPLOADS      2
#define SR_PACK_ZSTD_LEVEL   3

struct sr_packer;

/*
 * Start a packer writing into tree t (whose entries and refs must all
 * exist already: the refs array is not reallocated while the packer runs)
 * and uploading through s. packs_prefix: "<prefix>/<partition>/packs/".
 */
int sr_packer_new(struct sr_store *s, const char *packs_prefix, struct sr_tree *t,
                  struct sr_packer **out, char *err, size_t errlen);
/* Queue ref ri's n bytes (copied). -1 once the packer has failed (finish says why). */
int sr_packer_add(struct sr_packer *p, uint32_t ri, const uint8_t *data, size_t n);
/* Flush and wait; *packs and *bytes: what was uploaded. Frees p. 0 or SR_STORE_E_* with err. */
int sr_packer_finish(struct sr_packer *p, uint32_t *packs, uint64_t *bytes, char *err,
                     size_t errlen);

/* The store key of a pack: <packs_prefix><64 hex>. */
void sr_pack_key(const char *packs_prefix, const uint8_t id[32], char *out, size_t cap);

#endif
