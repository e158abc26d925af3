/*
 * Direct writes on a socket bufferevent's output (see sockio.h).
 *
 * The bufferevent keeps the start of its output frozen so that only its own
 * write callback drains it, and the end of its input frozen so that only its
 * read callback fills it; the calls here unfreeze them for the moment, as
 * those callbacks do.
 */
#include "http/sockio.h"

#include <errno.h>
#include <sys/socket.h>

#include <event2/buffer.h>
#include <event2/event.h>

size_t sr_sockio_write(struct bufferevent *bev)
{
    struct evbuffer *out = bufferevent_get_output(bev);
    if (bufferevent_get_enabled(bev) & EV_WRITE)
        return evbuffer_get_length(out);
    if (evbuffer_get_length(out) == 0)
        return 0;
    evbuffer_unfreeze(out, 1);
    /* A failure (EAGAIN or a dead peer) leaves the bytes queued: the bufferevent
     * retries them, or meets the error again and reports it through its event callback. */
    evbuffer_write(out, bufferevent_getfd(bev));
    evbuffer_freeze(out, 1);
    size_t left = evbuffer_get_length(out);
    if (left > 0)
        bufferevent_enable(bev, EV_WRITE);
    return left;
}

ssize_t sr_sockio_read(struct bufferevent *bev)
{
    /* Copied from a stack buffer rather than read into reserved space: a small read
     * then takes a small chain, which matters for thousands of idle connections. */
    char buf[SR_SOCKIO_READ_MAX];
    ssize_t n;
    do {
        n = recv(bufferevent_getfd(bev), buf, sizeof(buf), 0);
    } while (n < 0 && errno == EINTR);
    if (n > 0) {
        struct evbuffer *in = bufferevent_get_input(bev);
        evbuffer_unfreeze(in, 0);
        int rc = evbuffer_add(in, buf, (size_t)n);
        evbuffer_freeze(in, 0);
        if (rc < 0) {
            errno = ENOMEM;
            return -1;
        }
    }
    return n;
}
