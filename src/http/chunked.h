/*
 * Incremental decoder for HTTP/1.1 chunked bodies, on evbuffers.
 *
 * Shared by the server (request bodies) and the upstream client (response
 * bodies): decoded bytes are moved, not copied, from the connection's input
 * to the caller's buffer; chunk extensions and trailers are read and
 * dropped. Size lines go through sr_http_parse_chunk_size (strict, fuzzed).
 */
#ifndef SR_HTTP_CHUNKED_H
#define SR_HTTP_CHUNKED_H

#include <stdint.h>

#include <event2/buffer.h>

#define SR_CHUNKED_DONE     1
#define SR_CHUNKED_MORE     0
#define SR_CHUNKED_BAD      (-1)
#define SR_CHUNKED_TOOLARGE (-2)

struct sr_chunked {
    int phase;     /* 0 size line, 1 data, 2 CRLF after data, 3 trailers */
    uint64_t left; /* data bytes left in the current chunk */
    uint64_t total;
};

void sr_chunked_init(struct sr_chunked *c);

/*
 * Decode what `in` holds into `out`. Returns SR_CHUNKED_DONE after the last
 * chunk and its trailers, SR_CHUNKED_MORE when `in` ran dry, SR_CHUNKED_BAD
 * on malformed framing, SR_CHUNKED_TOOLARGE as soon as a chunk would take
 * the decoded total above `limit`.
 */
int sr_chunked_decode(struct sr_chunked *c, struct evbuffer *in, struct evbuffer *out,
                      uint64_t limit);

#endif
