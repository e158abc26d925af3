/*
 * Direct writes on a socket bufferevent's output (see sockio.h).
 *
 * The bufferevent keeps the start of its output frozen so that only its own
 * write callback drains it; the write here unfreezes it for the call, as that
 * callback does.
 */
#include "http/sockio.h"

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
