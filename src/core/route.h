/*
 * Route names: "<MCP_CONTAINER_ROUTE_GENERATION>:<token name>".
 *
 * A route is the unit of isolation (one instance, one Durable Object). A new
 * generation string gives every token a fresh route, hence fresh instances.
 * Generations match [A-Za-z0-9._-]{1,64} so route names are safe in logs,
 * file names (after hashing) and Durable Object names.
 */
#ifndef SR_CORE_ROUTE_H
#define SR_CORE_ROUTE_H

#include <stddef.h>
#include <stdbool.h>

#include "core/limits.h"

#define SR_GENERATION_DEFAULT "gen-1"

/* True when s[0..n) matches [A-Za-z0-9._-]{1,max}. */
bool sr_route_valid_name(const char *s, size_t n, size_t max);

/* Writes "<gen>:<name>" NUL-terminated into out (cap >= SR_ROUTE_MAX + 1); returns its length or
 * -1. */
int sr_route_name(const char *gen, const char *name, char *out, size_t cap);

/* "r-" + 16 hex digits: the part of a route's SHA-256 that names its directory and, in mode
 * durable-object, its snapshot partition. */
#define SR_ROUTE_HASH_HEX 16
#define SR_PARTITION_MAX  96

/* The first SR_ROUTE_HASH_HEX hex digits of SHA-256(route), NUL-terminated (out holds 17). */
void sr_route_hash_hex(const char *route, char *out);

/*
 * A route's snapshot partition, the one rule `serve`, `run` and the
 * snapshot commands share: mode "shared" -> "shared"; "token" -> the token
 * name (stable across generations); otherwise (durable-object) the
 * instance id when one is given (run: the Durable Object's), else "r-" + the
 * route's hash. Returns the length written, or -1 (unknown input, no room).
 */
int sr_route_partition(const char *mode, const char *instance_id, const char *route,
                       const char *token_name, char *out, size_t cap);

#endif
