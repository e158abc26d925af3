/*
 * Small host-side helpers shared by the edge: clocks and socket addresses.
 */
#ifndef SR_HTTP_UTIL_H
#define SR_HTTP_UTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

/* Monotonic microseconds. */
uint64_t sr_now_us(void);
/* "2026-11-30T02:35:12Z": unix seconds as ISO 8601 UTC (out holds at least 21 bytes). */
void sr_time_iso8601(int64_t t, char *out, size_t cap);
/* "host:port" or "[v6]:port" (numeric hosts, or "localhost") into a sockaddr; -1 on junk. */
int sr_parse_hostport(const char *s, struct sockaddr_storage *ss, socklen_t *len);
/* True when "host:port" is a loopback address (127.0.0.0/8, [::1], [::ffff:127.x.y.z], localhost).
 */
bool sr_hostport_is_loopback(const char *hostport);
/* "1.2.3.4:5" / "[::1]:5" of a sockaddr. */
void sr_format_peer(const struct sockaddr *sa, char *out, size_t cap);

#endif
