/*
 * Authorization header parsing (see auth.h).
 *
 * The grammar is deliberately narrow: "Bearer" (any case), one or more
 * spaces, one token68, optional trailing whitespace. A lenient parser that
 * accepted commas, several credentials or stray bytes would let a proxy and
 * the gateway disagree about which token was presented; refusing is safer
 * and every real client sends exactly this shape.
 */
#include "core/auth.h"

#include <stdbool.h>

#include "core/limits.h"
#include "core/mem.h"

static bool is_token68_char(char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' ||
           c == '.' || c == '_' || c == '~' || c == '+' || c == '/';
}

int sr_auth_parse_bearer(const char *hdr, size_t n, const char **tok, size_t *toklen)
{
    static const char scheme[] = "Bearer";
    const size_t slen = sizeof(scheme) - 1;
    size_t i, start, end;

    if (hdr == NULL || tok == NULL || toklen == NULL)
        return -1;
    if (n <= slen || !sr_ascii_ieq(hdr, slen, scheme, slen))
        return -1;
    i = slen;
    /* RFC 7235: the scheme and the credentials are separated by 1*SP. */
    if (hdr[i] != ' ')
        return -1;
    while (i < n && hdr[i] == ' ')
        i++;
    start = i;
    while (i < n && is_token68_char(hdr[i]))
        i++;
    if (i == start)
        return -1;
    /* token68 may end in '=' padding, but nothing may follow the padding. */
    while (i < n && hdr[i] == '=')
        i++;
    end = i;
    while (i < n && (hdr[i] == ' ' || hdr[i] == '\t'))
        i++;
    if (i != n)
        return -1;
    if (end - start > SR_TOKEN_MAX_LEN)
        return -1;
    *tok = hdr + start;
    *toklen = end - start;
    return 0;
}
