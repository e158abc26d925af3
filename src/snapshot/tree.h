/*
 * The tree of a snapshot: every entry of the route's home/ and work/ with
 * where its content lives in the store (docs/snapshots.md).
 *
 * Content is addressed in chunks: a file of n bytes has ceil(n / CHUNK)
 * chunks, each named by the SHA-256 of its bytes. A chunk lives in a
 * frame (a zstd frame holding one or several chunks back to back) at some
 * offset of a pack (an object holding frames back to back, named by the
 * SHA-256 of its bytes). A ref says all of that: which pack, where the
 * frame is in it, how long it is compressed and decompressed, and where the
 * chunk is inside the decompressed frame.
 *
 * Encoding (before zstd and the store's encryption):
 *   "SRTREE1\n"
 *   varint npacks, per pack: id[32] | varint stored size | key id[8]
 *   varint nentries, per entry:
 *     varint shared prefix length with the previous path | varint suffix length | suffix
 *     type byte ('d', 'f', 'l') | varint mode (0777 bits) | varint zigzag(mtime s) | varint ns
 *     'f': varint size, then per chunk: id[32] | varint pack | varint frame offset |
 *          varint frame length | varint frame raw length | varint offset in the frame
 *     'l': varint target length | target
 * Varints are LEB128 (unsigned, at most 10 bytes).
 *
 * Decoding validates everything a restore relies on, so that a tree that
 * parses can be extracted without further checks: paths are relative, made
 * of non-empty components other than "." and "..", each starts with a member
 * ("home" or "work", whose own entry is a directory), entries come in strict
 * component order (so no path appears twice) and each entry's parent is a
 * directory listed before it (so no path goes through a symlink); link
 * targets stay inside their member; every ref points into the pack table
 * and inside its frame; bounds below hold.
 *
 * Ownership: struct sr_tree owns its arrays (sr_tree_free).
 */
#ifndef SR_SNAPSHOT_TREE_H
#define SR_SNAPSHOT_TREE_H

#include <stddef.h>
#include <stdint.h>
#include <stdbool.h>

#define SR_TREE_MAGIC       "SRTREE1\n"
#define SR_TREE_CHUNK       (1024u * 1024u)         /* content chunk size */
#define SR_TREE_FRAME_MAX   (4u * 1024u * 1024u)    /* a frame, decompressed */
#define SR_TREE_MAX_BYTES   (1024u * 1024u * 1024u) /* an encoded tree */
#define SR_TREE_MAX_ENTRIES (4u * 1000u * 1000u)
#define SR_TREE_MAX_PACKS   (1u << 20)
#define SR_TREE_PACK_MAX    (256ull * 1024u * 1024u)         /* one pack's stored bytes */
#define SR_TREE_MAX_CONTENT (256ull * 1024u * 1024u * 1024u) /* all files' bytes */
#define SR_TREE_PATH_MAX    4096
#define SR_TREE_DEPTH_MAX   256

#define SR_TREE_E_CORRUPT (-5) /* same value as SR_STORE_E_CORRUPT */
#define SR_TREE_E_NOMEM   (-1)

struct sr_tree_ref {
    uint8_t id[32];     /* SHA-256 of the chunk */
    uint32_t pack;      /* index into the pack table */
    uint32_t frame_len; /* compressed */
    uint32_t frame_raw; /* decompressed */
    uint32_t off;       /* of the chunk in the decompressed frame */
    uint32_t len;       /* of the chunk: CHUNK, or less for a file's last one */
    uint64_t frame_off; /* of the frame in the pack */
};

struct sr_tree_entry {
    uint32_t path;   /* offset in the name pool */
    uint32_t plen;   /* path length */
    uint32_t target; /* symlink: offset of the target in the pool */
    uint32_t tlen;
    char type; /* 'd', 'f', 'l' */
    uint32_t mode;
    int64_t mtime_s;
    uint32_t mtime_ns;
    uint64_t size;  /* file */
    uint32_t ref0;  /* file: its chunks are refs[ref0 .. ref0 + nrefs) */
    uint32_t nrefs; /* = sr_tree_nchunks(size) */
    bool gone;      /* vanished while a snapshot read it: left out of the encoding */
};

struct sr_tree_pack {
    uint8_t id[32];   /* SHA-256 of the pack's bytes: its name in the store */
    uint64_t size;    /* its bytes (before encryption) */
    uint8_t keyid[8]; /* the key it was sealed with, zeros when stored in the clear */
};

struct sr_tree {
    struct sr_tree_entry *e;
    uint32_t n, ecap;
    struct sr_tree_ref *r;
    uint32_t nr, rcap;
    struct sr_tree_pack *p;
    uint32_t np, pcap;
    char *pool;
    size_t plen, pcap_bytes;
};

void sr_tree_init(struct sr_tree *t);
void sr_tree_free(struct sr_tree *t);

static inline uint32_t sr_tree_nchunks(uint64_t size)
{
    return (uint32_t)((size + SR_TREE_CHUNK - 1) / SR_TREE_CHUNK);
}

/* The path of entry i (not NUL-terminated: plen bytes) and a link's target. */
static inline const char *sr_tree_path(const struct sr_tree *t, uint32_t i)
{
    return t->pool + t->e[i].path;
}
static inline const char *sr_tree_target(const struct sr_tree *t, uint32_t i)
{
    return t->pool + t->e[i].target;
}

/* Append an entry (its refs, for a file, are allocated zeroed: nchunks(size) of them). Returns
 * its index, or -1 when out of memory. No validation: the walk produces valid entries. */
int64_t sr_tree_add(struct sr_tree *t, const char *path, size_t plen, char type, uint32_t mode,
                    int64_t mtime_s, uint32_t mtime_ns, uint64_t size, const char *target,
                    size_t tlen);
/* Append a pack; its index, or -1. */
int64_t sr_tree_add_pack(struct sr_tree *t, const uint8_t id[32], uint64_t size,
                         const uint8_t keyid[8]);

/* Encode into a malloc'd buffer (*out, *outlen). 0 or SR_TREE_E_NOMEM. */
int sr_tree_encode(const struct sr_tree *t, uint8_t **out, size_t *outlen);
/* Decode and validate (t must be freshly initialised); on failure t is emptied and err says why. */
int sr_tree_decode(struct sr_tree *t, const uint8_t *in, size_t n, char *err, size_t errlen);

/* The pack table at the start of an encoded tree: 0 with *ids (malloc'd) and *np, 1 when in[0..n)
 * ends before the table does, -1 when it is not a tree. */
int sr_tree_decode_packs(const uint8_t *in, size_t n, uint8_t (**ids)[32], uint32_t *np);

/* SHA-256 (hex) over every entry's path, type, mode, size, chunk ids and link target: the same
 * for the same content whatever the times and the packs. */
void sr_tree_fingerprint(const struct sr_tree *t, char hex[65]);

/* Component order: 0 when equal, <0 when a sorts first ('/' sorts before every byte). */
int sr_tree_path_cmp(const char *a, size_t an, const char *b, size_t bn);

/* True for a member name: "home" or "work". */
bool sr_tree_member(const char *name, size_t n);

#endif
