/*
 * Unit tests for the settings of `serena-remote run` (src/core/runcfg.c): each kind of rule,
 * messages that name the setting and hide a secret's value, the persistence completeness check,
 * and the Worker's JSON check (what is forwarded, what is refused).
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "core/runcfg.h"

static struct sr_core_err err;

static int check(const char *name, const char *v)
{
    err.msg[0] = '\0';
    return sr_rc_check(name, strlen(name), v, strlen(v), &err);
}

static void test_rules(void **state)
{
    (void)state;
    assert_int_equal(check("SERENA_R2_SNAPSHOT_INTERVAL_SECONDS", "0"), 0);
    assert_int_equal(check("SERENA_R2_SNAPSHOT_INTERVAL_SECONDS", "604800"), 0);
    assert_int_equal(check("SERENA_R2_SNAPSHOT_INTERVAL_SECONDS", "604801"), -1);
    assert_string_equal(err.msg, "SERENA_R2_SNAPSHOT_INTERVAL_SECONDS=604801 is invalid: expected "
                                 "seconds from 0 to 604800");
    assert_int_equal(check("SERENA_R2_SNAPSHOT_RETENTION_COUNT", "0"), -1);
    assert_int_equal(check("SERENA_R2_STATE_ENABLED", "yes"), -1);
    assert_int_equal(check("SERENA_R2_STATE_ENABLED", "1"), 0);
    assert_int_equal(check("SERENA_R2_STATE_ENABLED", "true"), 0);
    assert_int_equal(check("SERENA_R2_STATE_ENABLED", ""), 0); /* unset: the default */
    assert_int_equal(check("SERENA_R2_STATE_PARTITION_MODE", "token"), 0);
    assert_int_equal(check("SERENA_R2_STATE_PARTITION_MODE", "tok"), -1);
    assert_int_equal(check("SERENA_START_TIMEOUT", "5m"), 0);
    assert_int_equal(check("SERENA_START_TIMEOUT", "0"), -1);
    assert_int_equal(check("SERENA_STOP_GRACE", "0"), 0);
    assert_int_equal(check("SERENA_CONTEXT", "desktop-app"), 0);
    assert_int_equal(check("SERENA_CONTEXT", "a b"), -1);
    assert_int_equal(check("MCP_CONTAINER_ROUTE_GENERATION", "gen:2"), -1);
    assert_int_equal(check("SERENA_REMOTE_LOG_FORMAT", "json"), 0);
    assert_int_equal(check("SERENA_REMOTE_LOG_FORMAT", "xml"), -1);
    assert_int_equal(check("SERENA_BACKEND_CMD", "anything at all"), 0);
    /* Not a run setting: not this table's business. */
    assert_int_equal(check("API_TOKENS_JSON", "{"), 0);
    /* A secret's value is never quoted. */
    assert_int_equal(check("SERENA_SNAPSHOT_KEY", "not-a-key-0123456789"), -1);
    assert_null(strstr(err.msg, "not-a-key"));
    assert_non_null(strstr(err.msg, "SERENA_SNAPSHOT_KEY"));
}

struct kv {
    const char *k, *v;
};

static const char *get(void *arg, const char *name)
{
    for (const struct kv *p = arg; p->k; p++)
        if (strcmp(p->k, name) == 0)
            return p->v;
    return NULL;
}

static void test_persistence_missing(void **state)
{
    (void)state;
    struct kv off[] = {{"AWS_ACCESS_KEY_ID", "k"}, {NULL, NULL}};
    assert_null(sr_rc_persistence_missing(get, off));
    struct kv none[] = {{"SERENA_R2_STATE_ENABLED", "1"}, {"R2_ACCOUNT_ID", ""}, {NULL, NULL}};
    assert_string_equal(sr_rc_persistence_missing(get, none), "R2_ACCOUNT_ID or S3_ENDPOINT");
    struct kv nokey[] = {
        {"SERENA_R2_STATE_ENABLED", "1"}, {"S3_ENDPOINT", "http://x"}, {NULL, NULL}};
    assert_string_equal(sr_rc_persistence_missing(get, nokey), "AWS_ACCESS_KEY_ID");
    struct kv ok[] = {{"SERENA_R2_STATE_ENABLED", "1"},
                      {"R2_ACCOUNT_ID", "acct"},
                      {"AWS_ACCESS_KEY_ID", "k"},
                      {"AWS_SECRET_ACCESS_KEY", "s"},
                      {NULL, NULL}};
    assert_null(sr_rc_persistence_missing(get, ok));
}

static void test_json(void **state)
{
    (void)state;
    static struct sr_json_tok toks[256];
    static char scratch[1024], out[4096];
    const char *in =
        "{\"SERENA_R2_STATE_ENABLED\":\"1\",\"R2_BUCKET_NAME\":\"b\",\"S3_ENDPOINT\":"
        "\"http://127.0.0.1:9\",\"SERENA_CONTEXT\":\"agent\",\"API_TOKEN\":\"t\","
        "\"SERENA_R2_SNAPSHOT_INTERVAL_SECONDS\":\"soon\",\"SERENA_INSTANCE_ID\":\"x\","
        "\"AWS_SECRET_ACCESS_KEY\":\"\"}";
    int n = sr_rc_check_json(in, strlen(in), toks, 256, scratch, sizeof(scratch), out, sizeof(out),
                             &err);
    assert_true(n > 0);
    assert_string_equal(
        out, "{\"forward\":[\"SERENA_CONTEXT\",\"SERENA_R2_STATE_ENABLED\","
             "\"SERENA_R2_SNAPSHOT_INTERVAL_SECONDS\",\"R2_BUCKET_NAME\",\"S3_ENDPOINT\"],"
             "\"errors\":[\"SERENA_R2_SNAPSHOT_INTERVAL_SECONDS=soon is invalid: expected seconds "
             "from 0 to 604800\"],\"persistence\":\"degraded\",\"persistence_missing\":"
             "\"AWS_ACCESS_KEY_ID\"}");
    assert_int_equal(
        sr_rc_check_json("[1]", 3, toks, 256, scratch, sizeof(scratch), out, sizeof(out), &err),
        -1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rules),
        cmocka_unit_test(test_persistence_missing),
        cmocka_unit_test(test_json),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
