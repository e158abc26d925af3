/*
 * libFuzzer harness for encryption at rest: the key list parser
 * (src/core/keylist.c) and the opening of sealed objects (src/store/crypt.c)
 * on arbitrary bytes.
 *
 * First byte 0: the rest is a SERENA_SNAPSHOT_KEY value; an accepted list
 * holds 1..8 keys and a refusal leaves it wiped with a message that never
 * quotes an input byte run of 8 or more. Otherwise the rest is a stored
 * object: opening it whole, by ranges and as a stream must agree, and must
 * fail cleanly unless it is a valid sealed object for that key (which random
 * bytes never are). A valid object sealed from the input also round-trips,
 * and any single flipped byte in it is refused.
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/keylist.h"
#include "store/crypt.h"
#include "store/store.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define K1 "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="

/* The fixed wording of src/core/keylist.c's messages. */
#define WORDING                                                                                    \
    "SERENA_SNAPSHOT_KEY: \"plaintext\" cannot come first: the first entry encrypts every new "    \
    "object; put a key first and \"plaintext\" after it | is empty (keys are separated by "        \
    "single commas) | holds more than 8 keys | is not 32 bytes of base64 (make one with "          \
    "`serena-remote token --snapshot-key`; several keys are separated by commas, the first "       \
    "encrypts new objects)"

static void check(bool ok)
{
    if (!ok)
        abort();
}

static struct sr_crypt *crypt_ctx(void)
{
    static struct sr_crypt *c;
    char err[256];
    if (!c)
        check(sr_crypt_new(K1, &c, err, sizeof(err)) == 0);
    return c;
}

static void fuzz_keys(const uint8_t *data, size_t size)
{
    struct sr_keylist k;
    char err[512];
    char *copy = malloc(size ? size : 1);
    memcpy(copy, data, size);
    int rc = sr_keylist_parse(&k, copy, size, "SERENA_SNAPSHOT_KEY", err, sizeof(err));
    if (rc == 0) {
        check(k.n >= 1 && k.n <= SR_KEYLIST_MAX);
    } else {
        check(rc == -1 && k.n == 0 && memchr(err, '\0', sizeof(err)) != NULL);
        for (size_t i = 0; i + 8 <= size; i++) {
            bool printable = true;
            for (size_t j = 0; j < 8; j++)
                printable &= data[i + j] > 0x20 && data[i + j] < 0x7f && data[i + j] != ',';
            /* A run the fixed wording also holds ("plaintext" after blanks) is
             * the message's own text, not a quote of the input. */
            if (printable && memmem(WORDING, sizeof(WORDING) - 1, data + i, 8) == NULL)
                check(memmem(err, strlen(err), data + i, 8) == NULL);
        }
    }
    free(copy);
}

static void fuzz_open(const uint8_t *data, size_t size)
{
    struct sr_crypt *c = crypt_ctx();
    char err[512];
    uint8_t *in = malloc(size ? size : 1), *out = malloc(size + 1);
    size_t got = 0;
    memcpy(in, data, size);
    int whole = sr_crypt_open(c, "fuzz/key", in, size, out, &got, err, sizeof(err));
    check(whole == 0 || whole == SR_STORE_E_KEY || whole == SR_STORE_E_CORRUPT);
    if (whole == 0)
        check(got <= size);
    if (size >= SR_CRYPT_HEADER) {
        uint64_t off = size > 9 ? in[9] * 300u : 0, soff, slen;
        size_t len = 1 + (size > 10 ? in[10] * 700u : 0), rg = 0;
        sr_crypt_range(off, len, &soff, &slen);
        if (soff < size) {
            uint8_t *part = malloc(len);
            size_t have = soff + slen > size ? size - (size_t)soff : (size_t)slen;
            int rc = sr_crypt_open_range(c, "fuzz/key", in, in + soff, have, off, len, part, &rg,
                                         err, sizeof(err));
            check(rc == 0 || rc == SR_STORE_E_KEY || rc == SR_STORE_E_CORRUPT);
            check(rg <= len);
            free(part);
        }
    }
    /* Seal the input, open it back, and refuse it with one byte flipped. */
    size_t sn = (size_t)sr_crypt_sealed_size(size);
    uint8_t *sealed = malloc(sn), *back = malloc(sn);
    check(sr_crypt_seal(c, "fuzz/key", in, size, sealed) == 0);
    check(sr_crypt_open(c, "fuzz/key", sealed, sn, back, &got, err, sizeof(err)) == 0);
    check(got == size && memcmp(back, in, size) == 0);
    size_t at = SR_CRYPT_MAGIC_LEN + (size ? in[0] * 131u % (sn - SR_CRYPT_MAGIC_LEN) : 0);
    sealed[at] ^= 0x80;
    check(sr_crypt_open(c, "fuzz/key", sealed, sn, back, &got, err, sizeof(err)) != 0);
    free(sealed);
    free(back);
    free(in);
    free(out);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0)
        return 0;
    if (data[0] == 0)
        fuzz_keys(data + 1, size - 1);
    else
        fuzz_open(data + 1, size - 1);
    return 0;
}
