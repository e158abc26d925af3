/*
 * What every store backend provides, and the bounds the store layer keeps.
 *
 * Private to src/store/: store.c checks arguments (keys, prefixes) once and
 * then calls the backend through this table, so backends see only valid
 * keys. A backend embeds struct sr_store as its first member and owns
 * everything it allocates; close frees it all.
 */
#ifndef SR_STORE_IMPL_H
#define SR_STORE_IMPL_H

#include "store/store.h"

#include <stdint.h>

/* Longest key or prefix (struct sr_store_object.key holds it with its NUL). */
#define SR_STORE_KEY_MAX 1023
/* Longest description ("s3://bucket@endpoint"). */
#define SR_STORE_DESC_MAX 600
/* Entries one directory of the file store may hold before listing refuses it. */
#define SR_STORE_DIR_ENTRIES_MAX (1u << 20)
/* Depth of the file store's directory tree that list will walk. */
#define SR_STORE_DEPTH_MAX 64
/* Default per-request timeout (seconds) and attempts for transient failures. */
#define SR_STORE_TIMEOUT_DEFAULT 60
#define SR_STORE_RETRIES_DEFAULT 4
#define SR_STORE_RETRIES_MAX     16

struct sr_store_ops {
    int (*create)(struct sr_store *s, char *err, size_t errlen);
    int (*put_file)(struct sr_store *s, const char *key, const char *path, const char *sha256_hex,
                    char *err, size_t errlen);
    int (*put_bytes)(struct sr_store *s, const char *key, const void *data, size_t n, char *err,
                     size_t errlen);
    int (*get_file)(struct sr_store *s, const char *key, const char *path, char *err,
                    size_t errlen);
    int (*get_bytes)(struct sr_store *s, const char *key, size_t max, char **data, size_t *n,
                     char *err, size_t errlen);
    int (*get_range)(struct sr_store *s, const char *key, uint64_t off, size_t n, void *buf,
                     size_t *got, char *err, size_t errlen);
    int (*head)(struct sr_store *s, const char *key, uint64_t *size, char *err, size_t errlen);
    int (*list)(struct sr_store *s, const char *prefix, sr_store_list_cb cb, void *arg, char *err,
                size_t errlen);
    int (*del)(struct sr_store *s, const char *key, char *err, size_t errlen);
    void (*close)(struct sr_store *s);
};

struct sr_crypt;

struct sr_store {
    const struct sr_store_ops *ops;
    char desc[SR_STORE_DESC_MAX];
    struct sr_crypt *crypt; /* set by sr_store_open, after the backend's open (store.c) */
    /* The first bytes of the last object read by range (store.c), and whether it is sealed. */
    char hdr_key[SR_STORE_KEY_MAX + 1];
    uint8_t hdr[48];
    bool hdr_sealed;
};

/* Backends: validate their part of the configuration, allocate, no I/O beyond a stat. */
int sr_store_file_open(const struct sr_store_config *c, struct sr_store **out, char *err,
                       size_t errlen);
int sr_store_s3_open(const struct sr_store_config *c, struct sr_store **out, char *err,
                     size_t errlen);

/* Formats a message into err (when err is non-NULL) and returns code. */
int sr_store_fail(char *err, size_t errlen, int code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

#endif
