/*
 * libFuzzer harness for the snapshot manifest parser (src/snapshot/manifest.c).
 *
 * Each input is parsed from an exact-size copy so AddressSanitizer sees any
 * read past the end. An accepted manifest must hold only valid keys and
 * digests, never a key twice, and must survive a write and re-parse
 * unchanged; a rejected one must come back empty.
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "snapshot/manifest.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct sr_manifest m, m2;
static char out[SR_MANIFEST_MAX_BYTES];

static void check(bool ok)
{
    if (!ok)
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char err[256];
    char *copy = malloc(size ? size : 1);
    if (!copy)
        return 0;
    memcpy(copy, data, size);
    int rc = sr_manifest_parse(&m, copy, size, err, sizeof(err));
    free(copy);
    if (rc != 0) {
        check(rc == SR_MANIFEST_E_CORRUPT && m.n == 0);
        return 0;
    }
    check(m.n <= SR_MANIFEST_MAX && sr_manifest_name_ok(m.partition, false));
    for (uint32_t i = 0; i < m.n; i++) {
        check(sr_manifest_key_ok(m.e[i].key) && sr_manifest_hex_ok(m.e[i].sha256) &&
              sr_manifest_hex_ok(m.e[i].fingerprint));
        check(sr_manifest_find(&m, m.e[i].key) == (int)i);
    }
    size_t len = 0;
    check(sr_manifest_write(&m, out, sizeof(out), &len) == 0);
    check(sr_manifest_parse(&m2, out, len, err, sizeof(err)) == 0);
    check(m2.n == m.n && strcmp(m2.partition, m.partition) == 0);
    for (uint32_t i = 0; i < m.n; i++)
        check(memcmp(&m.e[i], &m2.e[i], sizeof(m.e[i])) == 0 ||
              (strcmp(m.e[i].key, m2.e[i].key) == 0 && m.e[i].size == m2.e[i].size &&
               m.e[i].created == m2.e[i].created && m.e[i].files == m2.e[i].files));
    return 0;
}
