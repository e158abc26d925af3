/*
 * Direct reads and writes on a plain socket bufferevent's buffers.
 *
 * A socket bufferevent adds its write event whenever output is queued and
 * deletes it once drained: two epoll_ctl calls and a loop turn per message.
 * Callers that keep EV_WRITE disabled write with sr_sockio_write instead and
 * enable EV_WRITE only for what the kernel did not take; the bufferevent then
 * carries on as usual (and reports a failed write itself).
 *
 * Reads: a socket bufferevent asks the kernel how much is readable
 * (ioctl FIONREAD) before every read. Callers that never enable its EV_READ
 * watch the descriptor with their own event and read with sr_sockio_read.
 */
#ifndef SR_HTTP_SOCKIO_H
#define SR_HTTP_SOCKIO_H

#include <sys/types.h>

#include "core/limits.h"
#include <event2/bufferevent.h>

/* Bytes one sr_sockio_read takes at most (a stack buffer). */

/*
 * Write as much of bev's output as the socket takes now, without blocking.
 * Returns the bytes still queued: when not 0, EV_WRITE has been enabled.
 * Does nothing while EV_WRITE is enabled (the bufferevent is writing).
 */
size_t sr_sockio_write(struct bufferevent *bev);
/*
 * Read once from bev's socket into its input buffer: the bytes read, 0 at
 * end of stream, or -1 with errno (EAGAIN: nothing to read now).
 */
ssize_t sr_sockio_read(struct bufferevent *bev);

#endif
