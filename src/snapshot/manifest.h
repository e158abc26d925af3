/*
 * The snapshot manifest: <prefix>/<partition>/manifest.json.
 *
 *   {"format":2,"partition":"p","snapshots":[
 *     {"key":"..","sha256":"<64 hex>","size":N,"created":unix,"files":N,
 *      "fingerprint":"<64 hex>","added":N,"total":N}, ...]}   newest first
 *
 * A key ending in ".tree" is a tree snapshot (format 2: sha256 and size are
 * the tree object's, "added" what the snapshot added to the store, "total"
 * the bytes of the tree and every pack it uses); one ending in ".tar.zst"
 * is an archive (format 1, which a format 2 manifest may still list).
 *
 * Parsed with the core's strict JSON reader. Anything malformed (bad JSON,
 * a wrong type, a key outside [A-Za-z0-9._/-], a digest that is not 64
 * lower-case hex digits, more than SR_MANIFEST_MAX entries, a key named
 * twice) makes the whole manifest corrupt: the caller then falls back to
 * listing the store, never to a half-read index. Unknown members are
 * ignored so that a newer writer can add fields.
 *
 * Ownership: struct sr_manifest is a plain value (no pointers); callers own
 * the buffers they pass.
 */
#ifndef SR_SNAPSHOT_MANIFEST_H
#define SR_SNAPSHOT_MANIFEST_H

#include <stddef.h>
#include <stdint.h>
#include <stdbool.h>

#define SR_MANIFEST_FORMAT    2
#define SR_MANIFEST_MAX       256            /* entries; also the highest retention */
#define SR_MANIFEST_MAX_BYTES (256u * 1024u) /* a larger manifest is refused as corrupt */
#define SR_MANIFEST_KEY_MAX   512
#define SR_MANIFEST_NAME_MAX  128 /* partition names */
#define SR_MANIFEST_MAX_TOKS  (SR_MANIFEST_MAX * 32u + 64u)

#define SR_MANIFEST_E_CORRUPT (-5) /* same value as SR_STORE_E_CORRUPT */
#define SR_MANIFEST_E_SPACE   (-7) /* the output buffer is too small */

struct sr_manifest_entry {
    char key[SR_MANIFEST_KEY_MAX];
    char sha256[65];
    char fingerprint[65];
    uint64_t size;
    uint64_t files;
    int64_t created;
    uint64_t added; /* tree snapshots: bytes this snapshot added to the store */
    uint64_t total; /* tree snapshots: bytes of its tree and of every pack it uses */
};

struct sr_manifest {
    char partition[SR_MANIFEST_NAME_MAX];
    uint32_t n;
    struct sr_manifest_entry e[SR_MANIFEST_MAX]; /* newest first */
};

/* Parse; on failure returns SR_MANIFEST_E_CORRUPT with the reason in err and m emptied. */
int sr_manifest_parse(struct sr_manifest *m, const char *buf, size_t len, char *err, size_t errlen);

/* Serialise into buf[0..cap); *len gets the length (a NUL follows when room remains). */
int sr_manifest_write(const struct sr_manifest *m, char *buf, size_t cap, size_t *len);

/* Insert e as the newest entry, then keep at most `keep` entries (at least 1). The entries
 * dropped are copied to dropped[0..*ndropped) (dropped must hold SR_MANIFEST_MAX). */
void sr_manifest_push(struct sr_manifest *m, const struct sr_manifest_entry *e, uint32_t keep,
                      struct sr_manifest_entry *dropped, uint32_t *ndropped);

/* Index of key in m, or -1. */
int sr_manifest_find(const struct sr_manifest *m, const char *key);

/* True for a store key the snapshot layer may name: [A-Za-z0-9._/-], no empty, "." or ".."
 * component, bounded. */
bool sr_manifest_key_ok(const char *key);
/* True for a partition name [A-Za-z0-9._-] (slashes: a prefix, '/' between components). */
bool sr_manifest_name_ok(const char *name, bool slashes);
/* True for exactly 64 lower-case hex digits. */
bool sr_manifest_hex_ok(const char *hex);

#endif
