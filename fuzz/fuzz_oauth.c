/*
 * libFuzzer harness for the OAuth parsers (src/core/oauth.c): form bodies
 * and query strings, redirect URIs, public URLs, registration bodies, client_id
 * URLs and client metadata documents (CIMD).
 *
 * The input is an exact-size copy, so AddressSanitizer sees any read past
 * the end. Invariants: a decoded value is NUL-terminated and never holds a
 * NUL; encoding then decoding gives the value back; an accepted redirect URI
 * matches itself; a registration's URIs all pass the redirect check; an
 * accepted client_id URL is https and fragment-free; an accepted metadata
 * document is also an accepted registration.
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/oauth.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct sr_json_tok toks[4096];
static struct sr_oauth_reg reg;

static void check(bool ok)
{
    if (!ok)
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *in = malloc(size ? size : 1);
    static char out[SR_OAUTH_PARAM_MAX + 1], enc[3 * SR_OAUTH_PARAM_MAX + 1],
        back[SR_OAUTH_PARAM_MAX + 1];
    static const char *const keys[] = {"client_id", "redirect_uri", "state", "code", "a", ""};
    const char *why = NULL, *error = NULL;
    size_t n = 0, en = 0, bn = 0;

    if (!in)
        return 0;
    memcpy(in, data, size);
    for (size_t k = 0; k < sizeof(keys) / sizeof(keys[0]); k++) {
        int rc = sr_form_get(in, size, keys[k], out, sizeof(out), &n);
        check(rc >= -1 && rc <= 1);
        if (rc == 1) {
            check(n < sizeof(out) && out[n] == '\0' && strlen(out) == n);
            check(sr_form_encode(out, n, enc, sizeof(enc), &en) == 0);
            check(sr_form_decode(enc, en, back, sizeof(back), &bn) == 0);
            check(bn == n && memcmp(back, out, n) == 0);
        }
        (void)sr_form_has(in, size, keys[k]);
    }
    if (sr_oauth_redirect_check(in, size, &why) == 0) {
        const char *host;
        size_t hl;
        check(sr_oauth_redirect_match(in, size, in, size));
        check(sr_oauth_uri_host(in, size, &host, &hl) == 0 && host >= in && host + hl <= in + size);
        check(memchr(in, '#', size) == NULL);
    }
    (void)sr_oauth_public_url_check(in, size, &why);
    if (size > 8)
        (void)sr_oauth_redirect_match(in, size / 2, in + size / 2, size - size / 2);
    if (sr_oauth_registration_parse(in, size, toks, 4096, &reg, &error, &why) == 0) {
        check(reg.nredirect >= 1 && reg.nredirect <= SR_OAUTH_REDIRECTS_MAX);
        for (uint32_t i = 0; i < reg.nredirect; i++)
            check(sr_oauth_redirect_check(reg.redirect[i], strlen(reg.redirect[i]), &why) == 0);
    }
    if (sr_oauth_cimd_url_check(in, size, &why) == 0)
        check(size >= 8 && memcmp(in, "https://", 8) == 0 && memchr(in, '#', size) == NULL);
    /* A document for the URL it names, or for a fixed one. */
    static const char url[] = "https://app.example/client.json";
    if (sr_oauth_cimd_parse(in, size, url, sizeof(url) - 1, toks, 4096, &reg, &why) == 0) {
        check(memmem(in, size, "client.json", 11) != NULL);
        check(sr_oauth_registration_parse(in, size, toks, 4096, &reg, &error, &why) == 0);
    }
    free(in);
    return 0;
}
