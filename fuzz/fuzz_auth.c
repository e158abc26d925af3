/*
 * libFuzzer harness for the Authorization parser (src/core/auth.c).
 *
 * The input is an exact-size copy of a header value, so AddressSanitizer
 * sees any read past the end. An accepted token must lie inside the header,
 * be a token68 within the length limit, and be accepted by the token table
 * as a plaintext API_TOKEN whenever it is long enough: the two validators
 * must agree, or a configured token could never be presented.
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/auth.h"
#include "core/sha256.h"
#include "core/tokens.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct sr_tokens table;

static void check(bool ok)
{
    if (!ok)
        abort();
}

static bool token68(char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
           strchr("-._~+/=", c) != NULL;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *hdr = malloc(size ? size : 1);
    const char *tok = NULL;
    size_t len = 0, i;
    struct sr_core_err err;
    uint8_t digest[SR_SHA256_LEN];

    if (hdr == NULL)
        return 0;
    memcpy(hdr, data, size);
    if (sr_auth_parse_bearer(hdr, size, &tok, &len) == 0) {
        check(tok >= hdr + 7 && tok + len <= hdr + size);
        check(len >= 1 && len <= SR_TOKEN_MAX_LEN);
        check(tok[0] != '=');
        for (i = 0; i < len; i++)
            check(token68(tok[i]) && tok[i] != '\0');
        if (len >= SR_TOKEN_MIN_LEN) {
            sr_tokens_init(&table);
            check(sr_tokens_add_singleton(&table, tok, len, &err) == 0);
            sr_sha256(tok, len, digest);
            check(sr_tokens_match(&table, digest) == 0);
        }
    }
    free(hdr);
    return 0;
}
