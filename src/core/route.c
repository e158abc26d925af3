/*
 * Route names (see route.h).
 *
 * The name charset is the same for generations and token names so that a
 * route "<gen>:<name>" contains exactly one ':' and nothing a log reader, a
 * file system or a Durable Object id could misinterpret.
 */
#include "core/route.h"

#include "core/mem.h"
#include "core/sha256.h"

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

void sr_route_hash_hex(const char *route, char *out)
{
    uint8_t d[SR_SHA256_LEN];
    char hex[SR_SHA256_LEN * 2 + 1];
    sr_sha256(route, sr_str_len(route), d);
    sr_hex_encode(d, sizeof(d), hex);
    sr_mem_copy(out, hex, SR_ROUTE_HASH_HEX);
    out[SR_ROUTE_HASH_HEX] = '\0';
}

static int put(char *out, size_t cap, const char *a, const char *b)
{
    size_t al = sr_str_len(a), bl = sr_str_len(b);
    if (al + bl + 1 > cap)
        return -1;
    sr_mem_copy(out, a, al);
    sr_mem_copy(out + al, b, bl);
    out[al + bl] = '\0';
    return (int)(al + bl);
}

static bool str_is(const char *a, const char *b)
{
    size_t n = sr_str_len(b);
    return sr_str_len(a) == n && sr_mem_eq(a, b, n);
}

int sr_route_partition(const char *mode, const char *instance_id, const char *route,
                       const char *token_name, char *out, size_t cap)
{
    if (out == NULL || cap == 0)
        return -1;
    if (mode == NULL)
        mode = "durable-object";
    if (str_is(mode, "shared"))
        return put(out, cap, "shared", "");
    if (str_is(mode, "token"))
        return token_name && *token_name ? put(out, cap, token_name, "") : -1;
    if (!str_is(mode, "durable-object"))
        return -1;
    if (instance_id && *instance_id)
        return put(out, cap, instance_id, "");
    if (route == NULL || *route == '\0')
        return -1;
    char hex[SR_ROUTE_HASH_HEX + 1];
    sr_route_hash_hex(route, hex);
    return put(out, cap, "r-", hex);
}
