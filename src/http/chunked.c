/*
 * Chunked transfer decoding (see chunked.h). Lines are bounded at 4 KiB: a
 * size line or trailer longer than that is malformed, so a peer cannot make
 * us buffer an endless line.
 */
#include "http/chunked.h"

#include "http/parse.h"

#define LINE_MAX_BYTES 4096

void sr_chunked_init(struct sr_chunked *c)
{
    c->phase = 0;
    c->left = 0;
    c->total = 0;
}

int sr_chunked_decode(struct sr_chunked *c, struct evbuffer *in, struct evbuffer *out,
                      uint64_t limit)
{
    for (;;) {
        if (c->phase == 0 || c->phase == 3) {
            struct evbuffer_ptr p = evbuffer_search_eol(in, NULL, NULL, EVBUFFER_EOL_CRLF_STRICT);
            if (p.pos < 0)
                return evbuffer_get_length(in) > LINE_MAX_BYTES ? SR_CHUNKED_BAD : SR_CHUNKED_MORE;
            size_t n = (size_t)p.pos;
            char line[LINE_MAX_BYTES];
            if (n >= sizeof(line))
                return SR_CHUNKED_BAD;
            evbuffer_remove(in, line, n);
            evbuffer_drain(in, 2);
            if (c->phase == 3) {
                if (n == 0)
                    return SR_CHUNKED_DONE;
                continue; /* a trailer field: dropped */
            }
            uint64_t size;
            if (sr_http_parse_chunk_size(line, n, &size) < 0)
                return SR_CHUNKED_BAD;
            if (size == 0) {
                c->phase = 3;
                continue;
            }
            if (size > limit || c->total > limit - size)
                return SR_CHUNKED_TOOLARGE;
            c->left = size;
            c->phase = 1;
        }
        if (c->phase == 1) {
            size_t avail = evbuffer_get_length(in);
            if (avail == 0)
                return SR_CHUNKED_MORE;
            size_t take = c->left < avail ? (size_t)c->left : avail;
            evbuffer_remove_buffer(in, out, take);
            c->left -= take;
            c->total += take;
            if (c->left)
                return SR_CHUNKED_MORE;
            c->phase = 2;
        }
        if (c->phase == 2) {
            if (evbuffer_get_length(in) < 2)
                return SR_CHUNKED_MORE;
            char crlf[2];
            evbuffer_remove(in, crlf, 2);
            if (crlf[0] != '\r' || crlf[1] != '\n')
                return SR_CHUNKED_BAD;
            c->phase = 0;
        }
    }
}
