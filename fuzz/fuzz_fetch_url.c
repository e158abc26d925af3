/*
 * libFuzzer harness for the URL parser of outbound fetches (src/http/fetch_url.c).
 *
 * Invariants: an accepted URL has a host, a path starting with '/', a port from 1 to 65535, a
 * Host header that starts with the host (bracketed for IPv6), and a loopback flag only for
 * localhost or loopback literals; no fragment and no user information ('@' may be in the path).
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "http/fetch_url.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check(bool ok)
{
    if (!ok)
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *in = malloc(size + 1);
    if (!in)
        return 0;
    memcpy(in, data, size);
    in[size] = '\0';
    struct sr_fetch_url u;
    const char *why = NULL;
    if (sr_fetch_url_parse(in, &u, &why) == 0) {
        check(u.host[0] != '\0' && u.path[0] == '/' && u.port != 0);
        bool v6 = strchr(u.host, ':') != NULL;
        check(v6 ? u.host_header[0] == '[' : strncmp(u.host_header, u.host, strlen(u.host)) == 0);
        check(!u.host_is_loopback || u.host_is_ip || strcmp(u.host, "localhost") == 0);
        /* No fragment anywhere; no user information before the path. */
        const char *auth = strstr(in, "//") + 2;
        size_t alen = strcspn(auth, "/?");
        check(strchr(in, '#') == NULL && memchr(auth, '@', alen) == NULL);
    } else {
        check(why != NULL);
    }
    free(in);
    return 0;
}
