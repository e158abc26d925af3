/*
 * libFuzzer harness for the token table loader (src/core/tokens.c) on
 * arbitrary API_TOKENS_JSON text.
 *
 * The table starts with an API_TOKEN entry. After every call it must hold
 * only valid, unique names and unique digests; a refused input must leave
 * it byte-for-byte unchanged and produce a NUL-terminated message; every
 * entry that was added must be found again by sr_tokens_match. Entries
 * written as objects: every project stored is a valid spec inside the pool,
 * every context a valid name, read_only 0 or 1. The first argument of
 * sr_project_spec_parse is fuzzed on its own too (the input as a spec).
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/mem.h"
#include "core/project.h"
#include "core/route.h"
#include "core/tokens.h"

#define FUZZ_TOKS SR_TOKENS_SCRATCH

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct sr_tokens table, before;
static struct sr_json_tok toks[FUZZ_TOKS];

static void check(bool ok)
{
    if (!ok)
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const char api[] = "singleton-secret-0123456789";
    char *json = malloc(size ? size : 1);
    struct sr_core_err err;
    uint32_t i, j;
    int rc;

    if (json == NULL)
        return 0;
    memcpy(json, data, size);
    sr_tokens_init(&table);
    check(sr_tokens_add_singleton(&table, api, sizeof(api) - 1, &err) == 0);
    memcpy(&before, &table, sizeof(table));
    memset(err.msg, 'x', sizeof(err.msg));
    rc = sr_tokens_add_json(&table, json, size, "API_TOKENS_JSON", toks, FUZZ_TOKS, &err);
    if (rc != 0) {
        check(memchr(err.msg, '\0', sizeof(err.msg)) != NULL);
        check(sr_mem_eq_ct(&table, &before, sizeof(table)));
    } else {
        check(table.count > 1 && table.count <= SR_TOKENS_MAX);
        for (i = 0; i < table.count; i++) {
            const char *n = table.e[i].name;

            check(sr_route_valid_name(n, strlen(n), SR_TOKEN_NAME_MAX));
            check(sr_tokens_match(&table, table.e[i].digest) == (int32_t)i);
            for (j = 0; j < i; j++)
                check(!sr_ascii_ieq(n, strlen(n), table.e[j].name, strlen(table.e[j].name)));
        }
        for (i = table.count; i < SR_TOKENS_MAX; i++)
            check(table.e[i].name[0] == '\0');
        check(table.projects_len <= SR_TOKENS_PROJECTS_MAX);
        for (i = 0; i < table.count; i++) {
            const struct sr_token_entry *e = &table.e[i];
            size_t pn = 0;
            const char *p = sr_tokens_project(&table, i, &pn);
            struct sr_project_spec spec;
            const char *why;
            check(e->read_only <= 1);
            check(e->context[0] == '\0' ||
                  sr_route_valid_name(e->context, strlen(e->context), SR_TOKEN_NAME_MAX));
            if (p != NULL) {
                check(e->project_off + (uint64_t)pn <= table.projects_len);
                check(sr_project_spec_parse(p, pn, &spec, &why) == 0);
            }
        }
    }
    /* The input as a project spec: accepted ones hold no control byte, no "::", no "..". */
    {
        struct sr_project_spec spec;
        const char *why = NULL;
        if (sr_project_spec_parse(json, size, &spec, &why) == 0) {
            check(size > 0 && json[0] != '-');
            for (i = 0; i < size; i++)
                check((unsigned char)json[i] >= 0x20 && json[i] != 0x7f);
            check(spec.url_len <= size && spec.ref_off + spec.ref_len <= size);
            check(spec.kind == SR_PROJECT_PATH || memmem(json, spec.url_len, "::", 2) == NULL);
            check(memmem(json, size, "/../", 4) == NULL);
        } else {
            check(why != NULL);
        }
    }
    free(json);
    return 0;
}
