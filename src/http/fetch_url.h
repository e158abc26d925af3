/*
 * The pure parts of outbound fetches (fetch.h): the URL a fetch may take, and which kind of
 * address a host resolved to (the SSRF rule: client-chosen URLs reach public addresses only).
 */
#ifndef SR_HTTP_FETCH_URL_H
#define SR_HTTP_FETCH_URL_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>

#define SR_FETCH_HOST_MAX 253
#define SR_FETCH_PATH_MAX 1024

struct sr_fetch_url {
    bool https;
    char host[SR_FETCH_HOST_MAX + 1]; /* lowercased name, or an IP literal without brackets */
    char host_header[SR_FETCH_HOST_MAX +
                     9]; /* as sent in Host: brackets, ":port" when not default */
    uint16_t port;
    char path[SR_FETCH_PATH_MAX + 1]; /* path and query; "/" when the URL has none */
    bool host_is_ip;
    bool host_is_loopback; /* localhost, 127.0.0.0/8 or ::1 */
};

/*
 * Parse an absolute http(s) URL: no user information, no fragment, printable ASCII only, a
 * registered name of letters, digits, '-' and '.', or an IPv4 / bracketed IPv6 literal, an
 * optional port 1..65535. 0, or -1 with a reason in *why.
 */
int sr_fetch_url_parse(const char *url, struct sr_fetch_url *out, const char **why);

enum sr_addr_kind {
    SR_ADDR_PUBLIC = 0,
    SR_ADDR_LOOPBACK,
    SR_ADDR_OTHER, /* private, link-local, CGNAT, multicast, documentation, reserved... */
};

/* The kind of an AF_INET or AF_INET6 address (IPv4-mapped and NAT64 forms judged by their IPv4). */
enum sr_addr_kind sr_fetch_addr_kind(const struct sockaddr *sa);

#endif
