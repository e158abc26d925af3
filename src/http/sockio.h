/*
 * Direct writes on a plain socket bufferevent's output buffer.
 *
 * A socket bufferevent adds its write event whenever output is queued and
 * deletes it once drained: two epoll_ctl calls and a loop turn per message.
 * Callers that keep EV_WRITE disabled write with sr_sockio_write instead and
 * enable EV_WRITE only for what the kernel did not take; the bufferevent then
 * carries on as usual (and reports a failed write itself).
 */
#ifndef SR_HTTP_SOCKIO_H
#define SR_HTTP_SOCKIO_H

#include <event2/bufferevent.h>

/*
 * Write as much of bev's output as the socket takes now, without blocking.
 * Returns the bytes still queued: when not 0, EV_WRITE has been enabled.
 * Does nothing while EV_WRITE is enabled (the bufferevent is writing).
 */
size_t sr_sockio_write(struct bufferevent *bev);

#endif
