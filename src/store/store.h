/*
 * Object stores behind one interface: a local directory, or any
 * S3-compatible service (Cloudflare R2, AWS S3, Swift's s3api, ...).
 *
 * Every call blocks: stores are used only from a forked worker process
 * (snapshot jobs, the CLI), never from the gateway's event loop. Keys are
 * '/'-separated paths of [A-Za-z0-9._/-] (the snapshot layer names them),
 * so they never need more than trivial encoding.
 *
 * Errors: a negative SR_STORE_E_* and a message for people in err ("the
 * store rejected our signature: check AWS_SECRET_ACCESS_KEY and the
 * clock"); never a secret in it.
 */
#ifndef SR_STORE_STORE_H
#define SR_STORE_STORE_H

#include <stddef.h>
#include <stdint.h>
#include <stdbool.h>

#define SR_STORE_E_IO       (-1) /* transport, timeout, disk: worth a retry later */
#define SR_STORE_E_NOTFOUND (-2) /* the key (or bucket) does not exist */
#define SR_STORE_E_AUTH     (-3) /* credentials or signature refused */
#define SR_STORE_E_CONFIG   (-4) /* settings incomplete or invalid */
#define SR_STORE_E_CORRUPT  (-5) /* content does not match its digest */
#define SR_STORE_E_KEY      (-8) /* encrypted with no key, or with a key that is not listed */

struct sr_store_config {
    const char *kind;     /* "file" or "s3" */
    const char *dir;      /* file: absolute directory */
    const char *endpoint; /* s3: "https://<acct>.r2.cloudflarestorage.com" or S3_ENDPOINT */
    const char *region;   /* s3: "auto" for R2, else S3_REGION (default us-east-1) */
    const char *bucket;
    const char *access_key;
    const char *secret_key;
    /* SERENA_SNAPSHOT_KEY: NULL or "" stores in the clear; else every object written is
     * encrypted with the first key and every listed key may open one (crypt.h). */
    const char *keys;
    bool raw;         /* objects exactly as stored, no encryption layer at all (tools, tests) */
    uint32_t timeout; /* seconds per request (default 60) */
    uint32_t retries; /* attempts on 5xx / timeouts (default 4), with backoff */
};

struct sr_store_object {
    char key[1024];
    uint64_t size;
    int64_t mtime; /* unix seconds, 0 when unknown */
};

typedef int (*sr_store_list_cb)(void *arg, const struct sr_store_object *o);

struct sr_store;

/* Opens (no network traffic). 0 or SR_STORE_E_CONFIG with err. */
int sr_store_open(const struct sr_store_config *c, struct sr_store **out, char *err, size_t errlen);
void sr_store_close(struct sr_store *s);
/* "file:/abs/dir" or "s3://bucket@endpoint" for logs and /health (no secret). */
const char *sr_store_describe(const struct sr_store *s);
/* True when objects written are encrypted (SERENA_SNAPSHOT_KEY is set). */
bool sr_store_encrypted(const struct sr_store *s);
/* The id of the key new objects are encrypted with (8 bytes; zeros when not encrypted). */
void sr_store_key_id(const struct sr_store *s, uint8_t id[8]);

/* Upload a local file; sha256_hex (64 chars) is sent as x-amz-content-sha256 and checked by
 * stores that can. Atomic for readers: the object appears whole or not at all. */
int sr_store_put_file(struct sr_store *s, const char *key, const char *path, const char *sha256_hex,
                      char *err, size_t errlen);
/* Upload a small in-memory object (manifests). */
int sr_store_put_bytes(struct sr_store *s, const char *key, const void *data, size_t n, char *err,
                       size_t errlen);
/* Download into a local file (streamed, created 0600). */
int sr_store_get_file(struct sr_store *s, const char *key, const char *path, char *err,
                      size_t errlen);
/* Download a small object (at most max bytes) into a malloc'd buffer that the caller frees; the
 * buffer carries one extra NUL after the n bytes. An object larger than max is refused with
 * SR_STORE_E_CORRUPT (it is not what the caller expected there). */
int sr_store_get_bytes(struct sr_store *s, const char *key, size_t max, char **data, size_t *n,
                       char *err, size_t errlen);
/* Read up to n bytes at offset off into buf; *got is less than n only at the end of the object
 * (0 past it). */
int sr_store_get_range(struct sr_store *s, const char *key, uint64_t off, size_t n, void *buf,
                       size_t *got, char *err, size_t errlen);
/* Size of an object (of its content: an encrypted object's plaintext size);
 * SR_STORE_E_NOTFOUND when absent. */
int sr_store_head(struct sr_store *s, const char *key, uint64_t *size, char *err, size_t errlen);
/* Every object under prefix, in key order, across all pages. The callback may stop the
 * listing by returning non-zero (that value is returned). */
int sr_store_list(struct sr_store *s, const char *prefix, sr_store_list_cb cb, void *arg, char *err,
                  size_t errlen);
/* Delete; deleting a missing key succeeds. */
int sr_store_delete(struct sr_store *s, const char *key, char *err, size_t errlen);

/* Added: the key rules every call enforces ([A-Za-z0-9._/-], at most 1023 bytes, no leading
 * '/', no "..", no "//", no "." component, no trailing '/'), so callers can check a name before
 * doing any work. A prefix follows the same rules but may be empty and may end in '/'. 0 or
 * SR_STORE_E_CONFIG with err. */
int sr_store_key_check(const char *key, char *err, size_t errlen);
int sr_store_prefix_check(const char *prefix, char *err, size_t errlen);
/* Added: creates the directory, or the bucket (PUT Bucket; "already yours" counts as success),
 * when missing. For first setup and tests; R2 tokens usually may not create buckets. */
int sr_store_create(struct sr_store *s, char *err, size_t errlen);
/* Added: proves the store answers and our credentials work (one listing page), for strict mode
 * and /health. 0, or the same codes and messages as any other call. */
int sr_store_probe(struct sr_store *s, char *err, size_t errlen);

#endif
