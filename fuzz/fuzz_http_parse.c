/*
 * libFuzzer harness for the HTTP/1.1 head parser (src/http/parse.c).
 *
 * Each input is parsed as a request and as a response with the edge's
 * usual 16 KiB limit, and the results are checked for the properties the
 * server and the upstream client rely on: the head length never exceeds the
 * input, every span lies inside the head, the header count stays within its
 * bound, and the framing facts are coherent. Prefixes of the input are
 * parsed too, from exact-size copies so that AddressSanitizer sees any read
 * past the end: a prefix of a complete head must ask for more bytes, and a
 * prefix of a bad head must ask for more or report the same error. The
 * chunk-size reader and the header helpers get the same bytes.
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "http/parse.h"

#define FUZZ_MAX_HEAD 16384

/* Prefixes checked per input and parser: enough to cover short heads whole. */
#define FUZZ_PREFIXES 48

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

typedef int (*parse_fn)(const char *, size_t, size_t, struct sr_http_head *);

static struct sr_http_head head;
static struct sr_http_head scratch;

static void check_span(struct sr_span s, const char *base, size_t len)
{
    if (s.n == 0)
        return;
    if (s.p < base || s.p > base + len || s.n > (size_t)(base + len - s.p))
        abort();
}

static void check_head(const char *buf, int rc, bool request)
{
    uint32_t i;

    if (rc <= 0)
        return;
    if (head.head_len != (size_t)rc || head.nh > SR_HTTP_MAX_HEADER_COUNT)
        abort();
    if (head.minor != 0 && head.minor != 1)
        abort();
    if (head.content_length < -1 || head.content_length > (INT64_C(1) << 53))
        abort();
    if (head.chunked && head.content_length != -1)
        abort();
    if (head.head_len < 4 || memcmp(buf + head.head_len - 4, "\r\n\r\n", 4) != 0)
        abort();
    if (request) {
        if (head.method.n == 0 || head.target.n == 0 || head.path.n > head.target.n)
            abort();
        if (head.path.p != head.target.p)
            abort();
        check_span(head.method, buf, head.head_len);
        check_span(head.target, buf, head.head_len);
    } else {
        if (head.status < 100 || head.status > 599)
            abort();
        check_span(head.reason, buf, head.head_len);
    }
    for (i = 0; i < head.nh; i++) {
        const struct sr_http_header *f = &head.h[i];
        size_t n;
        const char *v;

        if (f->name.n == 0)
            abort();
        check_span(f->name, buf, head.head_len);
        check_span(f->value, buf, head.head_len);
        if (f->value.n > 0 &&
            (f->value.p[0] == ' ' || f->value.p[0] == '\t' || f->value.p[f->value.n - 1] == ' ' ||
             f->value.p[f->value.n - 1] == '\t'))
            abort();
        /* Lookup by a header's own name finds that header or an earlier one. */
        if (f->name.n < 64) {
            char name[64];

            memcpy(name, f->name.p, f->name.n);
            name[f->name.n] = '\0';
            v = sr_http_header_get(&head, name, &n);
            if (v == NULL || v > f->value.p)
                abort();
        }
        (void)sr_http_is_hop_header(f->name.p, f->name.n);
    }
}

/* Parse exact-size copies of some prefixes and compare with the whole. */
static void check_prefixes(parse_fn parse, const uint8_t *data, size_t size, int whole)
{
    size_t step = size / FUZZ_PREFIXES + 1;
    size_t k;

    for (k = 0; k < size; k += step) {
        char *copy = malloc(k ? k : 1);
        int rc;

        if (copy == NULL)
            return;
        memcpy(copy, data, k);
        rc = parse(copy, k, FUZZ_MAX_HEAD, &scratch);
        free(copy);
        if (whole > 0 && (size_t)whole > k && rc != SR_HTTP_E_MORE)
            abort();
        if (whole > 0 && (size_t)whole <= k && rc != whole)
            abort();
        if (whole <= 0 && rc != SR_HTTP_E_MORE && rc != whole)
            abort();
    }
    if (whole > 1) {
        /* The byte before the end of the head matters most. */
        k = (size_t)whole - 1;
        if (parse((const char *)data, k, FUZZ_MAX_HEAD, &scratch) != SR_HTTP_E_MORE)
            abort();
    }
}

static void run(parse_fn parse, const uint8_t *data, size_t size, bool request)
{
    int rc = parse((const char *)data, size, FUZZ_MAX_HEAD, &head);

    if (rc > 0 && (size_t)rc > size)
        abort();
    if (rc < SR_HTTP_E_COUNT)
        abort();
    if (rc == SR_HTTP_E_MORE && size >= FUZZ_MAX_HEAD)
        abort();
    check_head((const char *)data, rc, request);
    check_prefixes(parse, data, size, rc);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    uint64_t chunk;

    run(sr_http_parse_request, data, size, true);
    run(sr_http_parse_response, data, size, false);
    if (sr_http_parse_chunk_size((const char *)data, size < 64 ? size : 64, &chunk) == 0 &&
        chunk >= (UINT64_C(1) << 40))
        abort();
    return 0;
}
