/*
 * Authorization header parsing (RFC 7235 / RFC 6750), strict.
 *
 * Accepts exactly: scheme "Bearer" in any case, one or more spaces, then a
 * token68 ([A-Za-z0-9-._~+/]+ followed by optional '='), then optional
 * trailing spaces/tabs. Anything else (other schemes, commas, several
 * credentials, control bytes, an empty or over-long token) is refused. The
 * returned span points into the header; the caller hashes it.
 */
#ifndef SR_CORE_AUTH_H
#define SR_CORE_AUTH_H

#include <stddef.h>

/* 0 and (*tok, *toklen) on success; -1 when the header is not a usable Bearer credential. */
int sr_auth_parse_bearer(const char *hdr, size_t n, const char **tok, size_t *toklen);

#endif
