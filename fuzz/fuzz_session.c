/*
 * libFuzzer harness for edge session ids (src/core/session.c and the native
 * host's src/http/session.c) on arbitrary bytes, used four ways:
 *
 * - as an id: framing and opening must refuse anything not sealed under the
 *   key (the harness never seals it), without crashing;
 * - as a plaintext: a parse that succeeds gives a NUL-terminated non-empty
 *   name and an init span inside the input, and its re-initialize body is
 *   valid JSON;
 * - as an initialize body: a plaintext built from it parses back with the
 *   same name, within SR_SESSION_PLAIN_MAX;
 * - sealed and opened again: the round trip gives the same claims.
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/session.h"
#include "http/session.h"

#define FUZZ_TOKS 4096u

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct sr_json_tok toks[FUZZ_TOKS];
static struct sr_sessions *table;

static void check(bool ok)
{
    if (!ok)
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static char plain[SR_SESSION_PLAIN_MAX + 1], body[SR_SESSION_PLAIN_MAX + 256];
    static uint8_t sealed[SR_SESSION_SEALED_MAX];
    static char id[SR_SESSION_ID_MAX];
    const char *in = (const char *)data;
    struct sr_session_claims c;
    size_t n = 0;
    char err[256];

    if (!table && sr_sessions_new(NULL, "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8", 3600, &table,
                                  err, sizeof(err)) != 0)
        abort();
    if (sr_session_id_decode(in, size, sealed, sizeof(sealed), &n) == SR_SESSION_OK)
        check(n <= SR_SESSION_SEALED_MAX && size > SR_SESSION_PREFIX_LEN);
    check(sr_sessions_open(table, in, size, "alice") != SR_SESSION_OK);
    check(sr_sessions_reinit(table, in, size, body, sizeof(body), plain, 64) < 0);
    if (sr_session_plain_parse(in, size, toks, FUZZ_TOKS, &c) == SR_SESSION_OK) {
        struct sr_json_doc doc;
        check(c.name[0] != '\0' && strlen(c.name) <= SR_TOKEN_NAME_MAX);
        check(c.init >= in && c.init + c.init_len <= in + size);
        int bl = sr_session_reinit_body(&c, body, sizeof(body));
        if (bl > 0)
            check(sr_json_parse(&doc, body, (size_t)bl, toks, FUZZ_TOKS, NULL) == 0);
    }
    int pn =
        sr_session_plain_new("alice", 1700000000, in, size, toks, FUZZ_TOKS, plain, sizeof(plain));
    if (pn >= 0) {
        check(pn <= SR_SESSION_PLAIN_MAX);
        check(sr_session_plain_parse(plain, (size_t)pn, toks, FUZZ_TOKS, &c) == SR_SESSION_OK);
        check(strcmp(c.name, "alice") == 0 && c.issued == 1700000000);
        int il = sr_sessions_issue(table, "alice", in, size, id, sizeof(id));
        check(il > 0);
        check(sr_sessions_open(table, id, (size_t)il, "alice") == SR_SESSION_OK);
        check(sr_sessions_open(table, id, (size_t)il, "bob") == SR_SESSION_E_FOREIGN);
        check(sr_sessions_open(table, id, (size_t)il, "alice") == SR_SESSION_OK);
        check(sr_sessions_reinit(table, id, (size_t)il, body, sizeof(body), plain, 64) > 0);
    }
    return 0;
}
