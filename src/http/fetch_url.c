/* The URL and address rules of outbound fetches (see fetch_url.h). */
#include "http/fetch_url.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <arpa/inet.h>
#include <netinet/in.h>

static bool name_char(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
           c == '.';
}

int sr_fetch_url_parse(const char *url, struct sr_fetch_url *out, const char **why)
{
    const char *dummy;
    if (!why)
        why = &dummy;
    memset(out, 0, sizeof(*out));
    if (!url) {
        *why = "no URL";
        return -1;
    }
    for (const char *c = url; *c; c++)
        if ((unsigned char)*c <= 0x20 || (unsigned char)*c >= 0x7f) {
            *why = "the URL has spaces, control or non-ASCII characters";
            return -1;
        }
    const char *p;
    if (strncasecmp(url, "https://", 8) == 0) {
        out->https = true;
        out->port = 443;
        p = url + 8;
    } else if (strncasecmp(url, "http://", 7) == 0) {
        out->port = 80;
        p = url + 7;
    } else {
        *why = "the URL is not an absolute http(s) URL";
        return -1;
    }
    if (strchr(url, '#')) {
        *why = "the URL has a fragment";
        return -1;
    }
    size_t alen = strcspn(p, "/?");
    const char *a = p, *aend = p + alen;
    if (memchr(a, '@', alen)) {
        *why = "the URL has user information";
        return -1;
    }
    const char *hend;
    if (*a == '[') {
        const char *close = memchr(a, ']', alen);
        if (!close || close - a - 1 > 45 || close == a + 1) {
            *why = "the URL's IPv6 address is malformed";
            return -1;
        }
        memcpy(out->host, a + 1, (size_t)(close - a - 1));
        struct in6_addr v6;
        if (inet_pton(AF_INET6, out->host, &v6) != 1) {
            *why = "the URL's IPv6 address is malformed";
            return -1;
        }
        out->host_is_ip = true;
        out->host_is_loopback = IN6_IS_ADDR_LOOPBACK(&v6);
        hend = close + 1;
        if (hend != aend && *hend != ':') {
            *why = "the URL's IPv6 address is malformed";
            return -1;
        }
    } else {
        hend = memchr(a, ':', alen);
        if (!hend)
            hend = aend;
        size_t hlen = (size_t)(hend - a);
        if (hlen == 0 || hlen > SR_FETCH_HOST_MAX) {
            *why = "the URL has no host, or a host name longer than 253 characters";
            return -1;
        }
        for (size_t i = 0; i < hlen; i++) {
            if (!name_char(a[i])) {
                *why = "the URL's host has characters other than letters, digits, '-' and '.'";
                return -1;
            }
            out->host[i] = (char)((a[i] >= 'A' && a[i] <= 'Z') ? a[i] + 32 : a[i]);
        }
        struct in_addr v4;
        if (inet_pton(AF_INET, out->host, &v4) == 1) {
            out->host_is_ip = true;
            out->host_is_loopback = (ntohl(v4.s_addr) >> 24) == 127;
        } else {
            out->host_is_loopback = strcmp(out->host, "localhost") == 0;
        }
    }
    if (hend < aend) { /* ":port" */
        const char *d = hend + 1;
        unsigned long port = 0;
        if (d == aend) {
            *why = "the URL's port is empty";
            return -1;
        }
        for (; d < aend; d++) {
            if (*d < '0' || *d > '9' || port > 65535) {
                *why = "the URL's port is not a number from 1 to 65535";
                return -1;
            }
            port = port * 10 + (unsigned long)(*d - '0');
        }
        if (port == 0 || port > 65535) {
            *why = "the URL's port is not a number from 1 to 65535";
            return -1;
        }
        out->port = (uint16_t)port;
    }
    bool v6 = strchr(out->host, ':') != NULL;
    bool dflt = out->port == (out->https ? 443 : 80);
    char portbuf[8] = "";
    if (!dflt)
        snprintf(portbuf, sizeof(portbuf), ":%u", (unsigned)out->port);
    snprintf(out->host_header, sizeof(out->host_header), "%s%s%s%s", v6 ? "[" : "", out->host,
             v6 ? "]" : "", portbuf);
    const char *path = aend;
    size_t plen = strlen(path);
    if (plen > SR_FETCH_PATH_MAX - 1) {
        *why = "the URL's path is too long";
        return -1;
    }
    if (plen == 0)
        memcpy(out->path, "/", 2);
    else if (*path == '?') {
        out->path[0] = '/';
        memcpy(out->path + 1, path, plen + 1);
    } else
        memcpy(out->path, path, plen + 1);
    return 0;
}

static enum sr_addr_kind v4_kind(uint32_t a)
{
    uint8_t b0 = (uint8_t)(a >> 24), b1 = (uint8_t)(a >> 16), b2 = (uint8_t)(a >> 8);
    if (b0 == 127)
        return SR_ADDR_LOOPBACK;
    if (b0 == 0 || b0 == 10 || b0 >= 224 || /* this network, private, multicast, reserved */
        (b0 == 100 && (b1 & 0xc0) == 64) || /* 100.64.0.0/10 shared (CGNAT) */
        (b0 == 169 && b1 == 254) ||         /* link-local (cloud metadata) */
        (b0 == 172 && (b1 & 0xf0) == 16) || /* 172.16.0.0/12 */
        (b0 == 192 && b1 == 168) ||         /* 192.168.0.0/16 */
        (b0 == 192 && b1 == 0 && (b2 == 0 || b2 == 2)) || /* protocol assignments, TEST-NET-1 */
        (b0 == 192 && b1 == 88 && b2 == 99) ||            /* 6to4 relay anycast */
        (b0 == 198 && (b1 & 0xfe) == 18) ||               /* benchmarking */
        (b0 == 198 && b1 == 51 && b2 == 100) ||           /* TEST-NET-2 */
        (b0 == 203 && b1 == 0 && b2 == 113))              /* TEST-NET-3 */
        return SR_ADDR_OTHER;
    return SR_ADDR_PUBLIC;
}

enum sr_addr_kind sr_fetch_addr_kind(const struct sockaddr *sa)
{
    if (sa->sa_family == AF_INET)
        return v4_kind(ntohl(((const struct sockaddr_in *)sa)->sin_addr.s_addr));
    if (sa->sa_family != AF_INET6)
        return SR_ADDR_OTHER;
    const uint8_t *b = ((const struct sockaddr_in6 *)sa)->sin6_addr.s6_addr;
    static const uint8_t mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
    static const uint8_t nat64[12] = {0, 0x64, 0xff, 0x9b, 0, 0, 0, 0, 0, 0, 0, 0};
    static const uint8_t loop[16] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1};
    if (memcmp(b, loop, 16) == 0)
        return SR_ADDR_LOOPBACK;
    if (memcmp(b, mapped, 12) == 0 || memcmp(b, nat64, 12) == 0)
        return v4_kind((uint32_t)b[12] << 24 | (uint32_t)b[13] << 16 | (uint32_t)b[14] << 8 |
                       b[15]);
    if ((b[0] & 0xe0) != 0x20) /* only 2000::/3 is global unicast */
        return SR_ADDR_OTHER;
    if (b[0] == 0x20 && b[1] == 0x01 &&
        b[2] < 0x02) /* 2001::/23 IETF protocol assignments (Teredo...) */
        return SR_ADDR_OTHER;
    if (b[0] == 0x20 && b[1] == 0x01 && b[2] == 0x0d &&
        b[3] == 0xb8) /* 2001:db8::/32 documentation */
        return SR_ADDR_OTHER;
    if (b[0] == 0x20 && b[1] == 0x02) /* 2002::/16 6to4: an IPv4 address inside */
        return SR_ADDR_OTHER;
    return SR_ADDR_PUBLIC;
}
