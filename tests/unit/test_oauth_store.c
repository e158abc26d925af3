/*
 * Unit tests for the OAuth records and their file (src/http/oauth_store.c):
 * a save/open round trip keeps every record (and only digests), the file is
 * 0600, a damaged file is refused naming its line, expired records are
 * swept, full arrays make room, families are revoked together, and a grant
 * ends when its static token is removed or changed.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <cmocka.h>

#include "core/sha256.h"
#include "core/tokens.h"
#include "http/oauth_store.h"

static char dir[64];

static int setup(void **state)
{
    (void)state;
    snprintf(dir, sizeof(dir), "/tmp/sr-oauth-store-XXXXXX");
    return mkdtemp(dir) ? 0 : -1;
}

static int teardown(void **state)
{
    char p[128];
    (void)state;
    snprintf(p, sizeof(p), "%s/oauth.state", dir);
    unlink(p);
    rmdir(dir);
    return 0;
}

static void write_file(const char *text)
{
    char p[128];
    snprintf(p, sizeof(p), "%s/oauth.state", dir);
    FILE *f = fopen(p, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

static void fill_binding(struct sr_oauth_binding *b, const char *client, const char *name,
                         const uint8_t token_digest[32])
{
    snprintf(b->client_id, sizeof(b->client_id), "%s", client);
    snprintf(b->name, sizeof(b->name), "%s", name);
    sr_oauth_bind_of(token_digest, b->bind);
}

static void test_round_trip(void **state)
{
    char err[256];
    uint8_t tok[32], d[32];
    (void)state;
    memset(tok, 7, sizeof(tok));
    struct sr_oauth_store *s = sr_oauth_store_open(dir, err, sizeof(err));
    assert_non_null(s);
    struct sr_oauth_client *c = sr_oauth_store_new_client(s);
    snprintf(c->id, sizeof(c->id), "%s", "abcdefghijklmnopqrstuv");
    snprintf(c->name, sizeof(c->name), "%s", "A name with spaces, % and é");
    snprintf(c->redirect[0], sizeof(c->redirect[0]), "%s", "http://localhost:1/cb?x=1&y=2");
    snprintf(c->redirect[1], sizeof(c->redirect[1]), "%s", "https://a.example/cb");
    c->nredirect = 2;
    c->created = c->last_used = 1000000;
    c->used = true;
    struct sr_oauth_code *o = sr_oauth_store_new_code(s);
    memset(o->digest, 1, 32);
    fill_binding(&o->b, c->id, "alice", tok);
    snprintf(o->redirect, sizeof(o->redirect), "%s", "http://localhost:1/cb?x=1&y=2");
    snprintf(o->challenge, sizeof(o->challenge), "%s",
             "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM");
    o->expires = 2000000000;
    o->used = true;
    o->redeemed = true;
    memset(o->family, 4, 16);
    struct sr_oauth_grant *g = sr_oauth_store_new_grant(s);
    g->kind = SR_OAUTH_REFRESH;
    g->rotated = true;
    memset(g->digest, 2, 32);
    memset(g->family, 3, 16);
    fill_binding(&g->b, c->id, "alice", tok);
    g->expires = 2000000000;
    assert_int_equal(sr_oauth_store_save(s, 1000000), 0);
    sr_oauth_store_free(s);

    char p[128];
    struct stat st;
    snprintf(p, sizeof(p), "%s/oauth.state", dir);
    assert_int_equal(stat(p, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600);

    s = sr_oauth_store_open(dir, err, sizeof(err));
    assert_non_null(s);
    c = sr_oauth_store_client(s, "abcdefghijklmnopqrstuv");
    assert_non_null(c);
    assert_string_equal(c->name, "A name with spaces, % and é");
    assert_int_equal(c->nredirect, 2);
    assert_string_equal(c->redirect[0], "http://localhost:1/cb?x=1&y=2");
    memset(d, 1, 32);
    o = sr_oauth_store_code(s, d);
    assert_non_null(o);
    assert_string_equal(o->b.name, "alice");
    assert_string_equal(o->redirect, "http://localhost:1/cb?x=1&y=2");
    assert_true(o->redeemed);
    assert_int_equal(o->family[15], 4);
    memset(d, 2, 32);
    g = sr_oauth_store_grant(s, d);
    assert_non_null(g);
    assert_int_equal(g->kind, SR_OAUTH_REFRESH);
    assert_true(g->rotated);
    assert_int_equal(g->expires, 2000000000);

    /* A binding lives while a token of that name and value is configured. */
    struct sr_tokens *t = calloc(1, sizeof(*t));
    sr_tokens_init(t);
    t->count = 1;
    snprintf(t->e[0].name, sizeof(t->e[0].name), "%s", "alice");
    memcpy(t->e[0].digest, tok, 32);
    int32_t idx = -1;
    assert_true(sr_oauth_binding_live(&g->b, t, &idx));
    assert_int_equal(idx, 0);
    assert_int_equal(sr_oauth_store_prune(s, t), 0);
    t->e[0].digest[0] ^= 1; /* same name, another value */
    assert_false(sr_oauth_binding_live(&g->b, t, NULL));
    assert_int_equal(sr_oauth_store_prune(s, t), 2);
    assert_null(sr_oauth_store_grant(s, d));
    free(t);

    /* Sweeping: expired records go, clients unused for too long too. */
    g = sr_oauth_store_new_grant(s);
    g->kind = SR_OAUTH_ACCESS;
    memset(g->digest, 9, 32);
    g->expires = 5;
    sr_oauth_store_sweep(s, 10);
    memset(d, 9, 32);
    assert_null(sr_oauth_store_grant(s, d));
    assert_non_null(sr_oauth_store_client(s, "abcdefghijklmnopqrstuv"));
    sr_oauth_store_sweep(s, 1000000 + (int64_t)SR_OAUTH_CLIENT_IDLE_TTL);
    assert_null(sr_oauth_store_client(s, "abcdefghijklmnopqrstuv"));
    sr_oauth_store_free(s);
}

static void test_families_and_room(void **state)
{
    char err[256];
    uint8_t d[32];
    (void)state;
    struct sr_oauth_store *s = sr_oauth_store_open(dir, err, sizeof(err));
    assert_non_null(s);
    for (uint32_t i = 0; i < SR_OAUTH_GRANTS_MAX + 3; i++) {
        struct sr_oauth_grant *g = sr_oauth_store_new_grant(s);
        g->kind = SR_OAUTH_ACCESS;
        memset(g->digest, 0, 32);
        memcpy(g->digest, &i, sizeof(i));
        memset(g->family, i % 2 ? 0xaa : 0xbb, 16);
        g->expires = 100000 + i;
    }
    /* The three closest to their end made room: the first three are gone. */
    uint32_t first = 0, last = SR_OAUTH_GRANTS_MAX + 2;
    memset(d, 0, 32);
    memcpy(d, &first, sizeof(first));
    assert_null(sr_oauth_store_grant(s, d));
    memset(d, 0, 32);
    memcpy(d, &last, sizeof(last));
    assert_non_null(sr_oauth_store_grant(s, d));
    uint8_t fam[16];
    memset(fam, 0xaa, 16);
    assert_int_equal(sr_oauth_store_revoke_family(s, fam), SR_OAUTH_GRANTS_MAX / 2);
    assert_int_equal(sr_oauth_store_revoke_family(s, fam), 0);
    sr_oauth_store_free(s);
}

static void test_full_clients(void **state)
{
    char err[256];
    (void)state;
    struct sr_oauth_store *s = sr_oauth_store_open(dir, err, sizeof(err));
    assert_non_null(s);
    for (uint32_t i = 0; i < SR_OAUTH_CLIENTS_MAX; i++) {
        struct sr_oauth_client *c = sr_oauth_store_new_client(s);
        snprintf(c->id, sizeof(c->id), "client%016u", i);
        c->last_used = 100 + i;
        c->used = true;
    }
    /* The oldest two have a token; the third oldest has none and is the one dropped. */
    for (uint32_t i = 0; i < 2; i++) {
        struct sr_oauth_grant *g = sr_oauth_store_new_grant(s);
        g->kind = SR_OAUTH_REFRESH;
        memset(g->digest, (int)i + 1, 32);
        snprintf(g->b.client_id, sizeof(g->b.client_id), "client%016u", i);
        g->expires = 1000;
    }
    struct sr_oauth_client *c = sr_oauth_store_new_client(s);
    assert_string_equal(c->id, "");
    snprintf(c->id, sizeof(c->id), "%s", "newclient0000000000000");
    c->used = true;
    c->last_used = 5000;
    assert_non_null(sr_oauth_store_client(s, "client0000000000000000"));
    assert_non_null(sr_oauth_store_client(s, "client0000000000000001"));
    assert_null(sr_oauth_store_client(s, "client0000000000000002"));
    sr_oauth_store_free(s);
}

static void test_metadata_client(void **state)
{
    char err[256];
    (void)state;
    struct sr_oauth_store *s = sr_oauth_store_open(dir, err, sizeof(err));
    assert_non_null(s);
    struct sr_oauth_client *c = sr_oauth_store_new_client(s);
    snprintf(c->url, sizeof(c->url), "%s", "https://app.example/client.json?v=1 2");
    sr_oauth_store_url_id(c->url, c->id);
    assert_int_equal(strlen(c->id), SR_OAUTH_CLIENT_ID_LEN);
    snprintf(c->name, sizeof(c->name), "%s", "App");
    snprintf(c->redirect[0], sizeof(c->redirect[0]), "%s", "http://localhost:1/cb");
    c->nredirect = 1;
    c->created = c->last_used = 1000000;
    c->fresh_until = 1003600;
    c->used = true;
    char id[SR_OAUTH_CLIENT_ID_LEN + 1];
    snprintf(id, sizeof(id), "%s", c->id);
    assert_int_equal(sr_oauth_store_save(s, 1000000), 0);
    sr_oauth_store_free(s);
    s = sr_oauth_store_open(dir, err, sizeof(err));
    assert_non_null(s);
    c = sr_oauth_store_client(s, id);
    assert_non_null(c);
    assert_string_equal(c->url, "https://app.example/client.json?v=1 2");
    assert_string_equal(c->name, "App");
    assert_int_equal(c->fresh_until, 1003600);
    assert_int_equal(c->nredirect, 1);
    sr_oauth_store_free(s);
}

static void test_damaged(void **state)
{
    char err[256];
    (void)state;
    static const char *const bad[] = {
        "not the header\n",
        "serena-remote-oauth 1\nx y z\n",
        "serena-remote-oauth 1\nc short 1 1 1 = =https%3A%2F%2Fa\n",
        "serena-remote-oauth 1\nc abcdefghijklmnopqrstuv 1 1 2 = =https%3A%2F%2Fa\n",
        "serena-remote-oauth 1\ng a 0 zz 00 abcdefghijklmnopqrstuv alice 00 1\n",
        "serena-remote-oauth 1\nc abcdefghijklmnopqrstuv 1 1 1 =%zz =https%3A%2F%2Fa\n",
        /* a metadata-document client whose id is not its URL's */
        ("serena-remote-oauth 1\nm abcdefghijklmnopqrstuv 1 1 9 1 =https%3A%2F%2Fa.example%2Fc =n "
         "=https%3A%2F%2Fa\n"),
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        write_file(bad[i]);
        err[0] = '\0';
        assert_null(sr_oauth_store_open(dir, err, sizeof(err)));
        assert_non_null(strstr(err, "damaged"));
    }
    write_file(
        "serena-remote-oauth 1\nc abcdefghijklmnopqrstuv 1 2 1 =n =https%3A%2F%2Fa.example\n");
    struct sr_oauth_store *s = sr_oauth_store_open(dir, err, sizeof(err));
    assert_non_null(s);
    assert_non_null(sr_oauth_store_client(s, "abcdefghijklmnopqrstuv"));
    sr_oauth_store_free(s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_round_trip, setup, teardown),
        cmocka_unit_test_setup_teardown(test_families_and_room, setup, teardown),
        cmocka_unit_test_setup_teardown(test_full_clients, setup, teardown),
        cmocka_unit_test_setup_teardown(test_damaged, setup, teardown),
        cmocka_unit_test_setup_teardown(test_metadata_client, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
