/*
 * Route names (see route.h).
 *
 * The name charset is the same for generations and token names so that a
 * route "<gen>:<name>" contains exactly one ':' and nothing a log reader, a
 * file system or a Durable Object id could misinterpret.
 */
#include "core/route.h"

#include "core/mem.h"

static bool is_name_char(char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '.' ||
           c == '_' || c == '-';
}

bool sr_route_valid_name(const char *s, size_t n, size_t max)
{
    size_t i;

    if (s == NULL || n == 0 || n > max)
        return false;
    for (i = 0; i < n; i++) {
        if (!is_name_char(s[i]))
            return false;
    }
    return true;
}

int sr_route_name(const char *gen, const char *name, char *out, size_t cap)
{
    size_t gl, nl;

    if (gen == NULL || name == NULL || out == NULL)
        return -1;
    gl = sr_str_len(gen);
    nl = sr_str_len(name);
    if (!sr_route_valid_name(gen, gl, SR_GENERATION_MAX) ||
        !sr_route_valid_name(name, nl, SR_TOKEN_NAME_MAX))
        return -1;
    if (gl + 1 + nl + 1 > cap)
        return -1;
    sr_mem_copy(out, gen, gl);
    out[gl] = ':';
    sr_mem_copy(out + gl + 1, name, nl);
    out[gl + 1 + nl] = '\0';
    return (int)(gl + 1 + nl);
}
