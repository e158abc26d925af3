/*
 * Unit tests for the /health document (src/core/health.c) and JSON-RPC
 * error bodies (src/core/errors.c): exact shapes, escaping, NULL strings,
 * the running count, and refusal of every buffer that is one byte short.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "core/errors.h"
#include "core/health.h"
#include "core/limits.h"

static void fill(struct sr_health *h)
{
    memset(h, 0, sizeof(*h));
    h->status = "ok";
    h->version = "0.1.0";
    h->role = "serve";
    h->generation = "gen-1";
    h->strategy = "per-token";
    h->token_count = 3;
    h->upstream_mode = "instances";
    h->max_instances = 8;
    h->inst_starting = 1;
    h->inst_ready = 2;
    h->inst_idle = 3;
    h->inst_stopping = 4;
    h->inst_failed = 5;
    h->p_enabled = true;
    h->p_store = "s3";
    h->p_bucket = "bucket";
    h->p_prefix = "pre/";
    h->p_partition = "token";
    h->p_interval = 180;
    h->p_retention = 5;
    h->p_strict = false;
    h->p_state = "ok";
    h->uptime_seconds = 12345;
}

static void test_health_exact(void **state)
{
    struct sr_health h;
    char out[SR_HEALTH_MAX];
    const char *want =
        "{\"status\":\"ok\",\"reason\":\"\",\"version\":\"0.1.0\",\"role\":\"serve\","
        "\"route_generation\":\"gen-1\","
        "\"route_strategy\":\"per-token\",\"token_count\":3,\"mode\":\"instances\","
        "\"instances\":{\"max\":8,\"counts_known\":true,\"starting\":1,\"ready\":2,\"idle\":3,"
        "\"stopping\":4,\"failed\":5,\"running\":10},\"persistence\":{\"enabled\":true,"
        "\"store\":\"s3\",\"bucket\":\"bucket\",\"prefix\":\"pre/\",\"partition_mode\":\"token\","
        "\"interval_seconds\":180,\"retention_count\":5,\"strict\":false,\"encrypted\":false,"
        "\"state\":\"ok\"},\"uptime_seconds\":12345}";

    (void)state;
    fill(&h);
    assert_int_equal(sr_health_write(&h, out, sizeof(out)), (int)strlen(want));
    assert_string_equal(out, want);
}

/* The Worker cannot see its containers: counts are null, the reason is said. */
static void test_health_unknown_counts(void **state)
{
    struct sr_health h;
    char out[SR_HEALTH_MAX];

    (void)state;
    fill(&h);
    h.inst_unknown = true;
    h.status = "degraded";
    h.reason = "no token configured";
    assert_true(sr_health_write(&h, out, sizeof(out)) > 0);
    assert_non_null(strstr(out, "\"status\":\"degraded\",\"reason\":\"no token configured\""));
    assert_non_null(strstr(out, "\"instances\":{\"max\":8,\"counts_known\":false,\"starting\":null,"
                                "\"ready\":null,\"idle\":null,\"stopping\":null,\"failed\":null,"
                                "\"running\":null}"));
}

static void test_health_nulls_and_escaping(void **state)
{
    struct sr_health h;
    char out[SR_HEALTH_MAX];

    (void)state;
    fill(&h);
    h.p_bucket = NULL;
    h.p_prefix = "a\"b\\c\n";
    assert_true(sr_health_write(&h, out, sizeof(out)) > 0);
    assert_non_null(strstr(out, "\"bucket\":\"\""));
    assert_non_null(strstr(out, "\"prefix\":\"a\\\"b\\\\c\\n\""));
    assert_int_equal(sr_health_write(NULL, out, sizeof(out)), -1);
    assert_int_equal(sr_health_write(&h, NULL, 10), -1);
}

static void test_health_short_buffers(void **state)
{
    struct sr_health h;
    char out[SR_HEALTH_MAX];
    int len, cap;

    (void)state;
    fill(&h);
    len = sr_health_write(&h, out, sizeof(out));
    assert_true(len > 0 && len < SR_HEALTH_MAX);
    for (cap = 0; cap <= len; cap++)
        assert_int_equal(sr_health_write(&h, out, (size_t)cap), -1);
    assert_int_equal(sr_health_write(&h, out, (size_t)len + 1), len);
}

static void test_error_body(void **state)
{
    char out[SR_ERROR_BODY_MAX];
    int len, cap;

    (void)state;
    len = sr_error_body(out, sizeof(out), SR_RPC_UNAUTHORIZED, "no \"token\"", NULL, 0);
    assert_string_equal(out, "{\"jsonrpc\":\"2.0\",\"error\":{\"code\":-32001,\"message\":\"no "
                             "\\\"token\\\"\"},\"id\":null}");
    assert_int_equal(len, (int)strlen(out));
    len = sr_error_body(out, sizeof(out), SR_RPC_PARSE_ERROR, "m", "\"a-1\"", 5);
    assert_string_equal(out, "{\"jsonrpc\":\"2.0\",\"error\":{\"code\":-32700,\"message\":\"m\"},"
                             "\"id\":\"a-1\"}");
    /* An empty id is "absent". */
    sr_error_body(out, sizeof(out), SR_RPC_SERVER_ERROR, "m", "7", 0);
    assert_non_null(strstr(out, "\"id\":null"));
    sr_error_body(out, sizeof(out), SR_RPC_INVALID_REQUEST, "m", "7", 1);
    assert_non_null(strstr(out, "\"code\":-32600"));
    assert_non_null(strstr(out, "\"id\":7"));
    for (cap = 0; cap <= len; cap++)
        assert_int_equal(sr_error_body(out, (size_t)cap, SR_RPC_PARSE_ERROR, "m", "\"a-1\"", 5),
                         -1);
    assert_int_equal(sr_error_body(NULL, 10, 1, "m", NULL, 0), -1);
    assert_int_equal(sr_error_body(out, sizeof(out), 1, NULL, NULL, 0), -1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_health_exact),
        cmocka_unit_test(test_health_unknown_counts),
        cmocka_unit_test(test_health_nulls_and_escaping),
        cmocka_unit_test(test_health_short_buffers),
        cmocka_unit_test(test_error_body),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
