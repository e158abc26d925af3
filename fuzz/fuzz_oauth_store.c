/*
 * libFuzzer harness for the OAuth state file reader (src/http/oauth_store.c).
 *
 * The input is written as <dir>/oauth.state and opened: the reader must
 * either refuse it or load records that survive a save and a second open
 * unchanged in number (what it accepts, it writes back readably).
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "http/oauth_store.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static char dir[64];

static void check(bool ok)
{
    if (!ok)
        abort();
}

static uint32_t count(const struct sr_oauth_store *s)
{
    uint32_t n = 0;
    for (uint32_t i = 0; i < SR_OAUTH_CLIENTS_MAX; i++)
        n += s->clients[i].used;
    for (uint32_t i = 0; i < SR_OAUTH_CODES_MAX; i++)
        n += s->codes[i].used;
    for (uint32_t i = 0; i < SR_OAUTH_GRANTS_MAX; i++)
        n += s->grants[i].kind != 0;
    return n;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char path[128], err[512];
    if (!dir[0]) {
        snprintf(dir, sizeof(dir), "/tmp/sr-fuzz-oauth-XXXXXX");
        if (!mkdtemp(dir))
            abort();
    }
    snprintf(path, sizeof(path), "%s/oauth.state", dir);
    FILE *f = fopen(path, "w");
    if (!f)
        return 0;
    fwrite(data, 1, size, f);
    fclose(f);
    struct sr_oauth_store *s = sr_oauth_store_open(dir, err, sizeof(err));
    if (s) {
        /* Records that expired are swept by save; keep them by saving at time 0. */
        uint32_t before = count(s);
        for (uint32_t i = 0; i < SR_OAUTH_CLIENTS_MAX; i++)
            if (s->clients[i].used)
                s->clients[i].last_used = INT32_MAX;
        for (uint32_t i = 0; i < SR_OAUTH_CODES_MAX; i++)
            if (s->codes[i].used)
                s->codes[i].expires = INT32_MAX;
        for (uint32_t i = 0; i < SR_OAUTH_GRANTS_MAX; i++)
            if (s->grants[i].kind)
                s->grants[i].expires = INT32_MAX;
        check(sr_oauth_store_save(s, 0) == 0);
        sr_oauth_store_free(s);
        s = sr_oauth_store_open(dir, err, sizeof(err));
        check(s != NULL);
        check(count(s) == before);
        sr_oauth_store_free(s);
    }
    unlink(path);
    return 0;
}
