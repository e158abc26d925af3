/*
 * Key lists: a setting that holds one or more 32-byte keys, base64 (standard
 * or URL-safe, padded or not), separated by commas: SERENA_SNAPSHOT_KEY.
 *
 * Rotation: the first key is used for every new write; every key in the list
 * is tried when reading, so a new key goes first and old ones stay behind it
 * until nothing written with them is left. The word "plaintext" in any
 * position after the first allows reading objects that were stored without
 * encryption (a store that predates the key); it is refused first, because
 * writes always use the first entry.
 *
 * Errors name the setting and the position ("SERENA_SNAPSHOT_KEY: key 2 is
 * not ..."), never the value. Freestanding: used by the gateway (validation,
 * `check`) and by the snapshot worker (encryption), and compiled into
 * core.wasm with the rest of the core.
 */
#ifndef SR_CORE_KEYLIST_H
#define SR_CORE_KEYLIST_H

#include <stddef.h>
#include <stdint.h>
#include <stdbool.h>

#include "core/limits.h"

#define SR_KEY_LEN 32

struct sr_keylist {
    uint8_t key[SR_KEYLIST_MAX][SR_KEY_LEN];
    uint32_t n;     /* keys, 1..SR_KEYLIST_MAX after a successful parse */
    bool plaintext; /* "plaintext" was listed: unencrypted objects may be read */
};

/*
 * Parse s[0..n). `setting` names it in messages. 0, or -1 with the reason in
 * err (NUL-terminated, never quoting a key); k is wiped on failure.
 */
int sr_keylist_parse(struct sr_keylist *k, const char *s, size_t n, const char *setting, char *err,
                     size_t errlen);

/* Wipe every key. */
void sr_keylist_wipe(struct sr_keylist *k);

#endif
