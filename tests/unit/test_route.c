/*
 * Unit tests for route names (src/core/route.c) and durations
 * (src/core/duration.c): the name charset and bounds, the "<gen>:<name>"
 * shape, and every accepted and refused duration form.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "core/duration.h"
#include "core/route.h"

static void test_valid_name(void **state)
{
    char n65[66];

    (void)state;
    assert_true(sr_route_valid_name("gen-1", 5, SR_GENERATION_MAX));
    assert_true(sr_route_valid_name("a.b_c-D9", 8, 64));
    assert_false(sr_route_valid_name("", 0, 64));
    assert_false(sr_route_valid_name(NULL, 3, 64));
    assert_false(sr_route_valid_name("a b", 3, 64));
    assert_false(sr_route_valid_name("a:b", 3, 64));
    assert_false(sr_route_valid_name("a/b", 3, 64));
    assert_false(sr_route_valid_name("caf\xc3\xa9", 5, 64));
    memset(n65, 'n', sizeof(n65));
    assert_true(sr_route_valid_name(n65, 64, 64));
    assert_false(sr_route_valid_name(n65, 65, 64));
}

static void test_route_name(void **state)
{
    char out[SR_ROUTE_MAX + 1];
    char gen[SR_GENERATION_MAX + 1], name[SR_TOKEN_NAME_MAX + 1];

    (void)state;
    assert_int_equal(sr_route_name("gen-1", "alice", out, sizeof(out)), 11);
    assert_string_equal(out, "gen-1:alice");
    assert_int_equal(sr_route_name("gen-1", "a:b", out, sizeof(out)), -1);
    assert_int_equal(sr_route_name("", "alice", out, sizeof(out)), -1);
    assert_int_equal(sr_route_name("gen 1", "alice", out, sizeof(out)), -1);
    assert_int_equal(sr_route_name("gen-1", "alice", out, 11), -1);
    assert_int_equal(sr_route_name("gen-1", "alice", out, 12), 11);
    /* The longest route fits SR_ROUTE_MAX exactly. */
    memset(gen, 'g', SR_GENERATION_MAX);
    gen[SR_GENERATION_MAX] = '\0';
    memset(name, 'n', SR_TOKEN_NAME_MAX);
    name[SR_TOKEN_NAME_MAX] = '\0';
    assert_int_equal(sr_route_name(gen, name, out, sizeof(out)), SR_ROUTE_MAX);
    assert_int_equal(out[SR_GENERATION_MAX], ':');
}

static int dur(const char *s, uint32_t *v)
{
    return sr_duration_parse(s, strlen(s), v);
}

static void test_duration(void **state)
{
    uint32_t v = 0;

    (void)state;
    assert_int_equal(dur("0", &v), 0);
    assert_int_equal(v, 0);
    assert_int_equal(dur("90", &v), 0);
    assert_int_equal(v, 90);
    assert_int_equal(dur("90s", &v), 0);
    assert_int_equal(v, 90);
    assert_int_equal(dur("15m", &v), 0);
    assert_int_equal(v, 900);
    assert_int_equal(dur("2h", &v), 0);
    assert_int_equal(v, 7200);
    assert_int_equal(dur("720h", &v), 0);
    assert_int_equal(v, 2592000);
    assert_int_equal(dur("2592000", &v), 0);
    v = 7;
    assert_int_equal(dur("721h", &v), -1);
    assert_int_equal(dur("2592001", &v), -1);
    assert_int_equal(dur("99999999999999999999999", &v), -1);
    assert_int_equal(v, 7);
}

static void test_duration_junk(void **state)
{
    static const char *const bad[] = {"",   "s",  "m",  "-1",  "+1",   "1.5h", "1h30m", " 1",
                                      "1 ", "1d", "1S", "1ms", "0x10", "1e3",  "15mm"};
    uint32_t v = 0;
    size_t i;

    (void)state;
    for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        if (dur(bad[i], &v) != -1)
            fail_msg("accepted duration \"%s\"", bad[i]);
    }
    assert_int_equal(sr_duration_parse(NULL, 1, &v), -1);
    assert_int_equal(sr_duration_parse("1", 1, NULL), -1);
    /* Only n bytes are read. */
    assert_int_equal(sr_duration_parse("15mXX", 3, &v), 0);
    assert_int_equal(v, 900);
}

/* The partition rule serve and the snapshot commands share: r- + 16 hex of SHA-256(route). */
static void test_partition(void **state)
{
    char out[SR_PARTITION_MAX + 1], hex[SR_ROUTE_HASH_HEX + 1];
    (void)state;
    /* sha256("gen-1:alice") begins db9c3b13fdeb8582 (the gateway's route directory too). */
    sr_route_hash_hex("gen-1:alice", hex);
    assert_string_equal(hex, "db9c3b13fdeb8582");
    assert_int_equal(
        sr_route_partition("durable-object", NULL, "gen-1:alice", "alice", out, sizeof(out)), 18);
    assert_string_equal(out, "r-db9c3b13fdeb8582");
    assert_int_equal(sr_route_partition(NULL, "", "gen-1:alice", "alice", out, sizeof(out)), 18);
    assert_string_equal(out, "r-db9c3b13fdeb8582");
    /* run: the Durable Object's id wins in that mode only. */
    assert_true(
        sr_route_partition("durable-object", "do-123", "gen-1:run", "run", out, sizeof(out)) > 0);
    assert_string_equal(out, "do-123");
    assert_true(sr_route_partition("token", "do-123", "gen-2:alice", "alice", out, sizeof(out)) >
                0);
    assert_string_equal(out, "alice");
    assert_true(sr_route_partition("shared", "do-123", "gen-2:alice", "alice", out, sizeof(out)) >
                0);
    assert_string_equal(out, "shared");
    assert_int_equal(sr_route_partition("bogus", NULL, "gen-1:alice", "alice", out, sizeof(out)),
                     -1);
    assert_int_equal(sr_route_partition("token", NULL, "gen-1:alice", "", out, sizeof(out)), -1);
    assert_int_equal(sr_route_partition("durable-object", NULL, "gen-1:alice", "alice", out, 10),
                     -1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_valid_name), cmocka_unit_test(test_route_name),
        cmocka_unit_test(test_duration),   cmocka_unit_test(test_duration_junk),
        cmocka_unit_test(test_partition),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
