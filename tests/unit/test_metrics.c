/*
 * Unit tests for the metrics registry (src/metrics/metrics.c) and the /proc
 * stat parser (src/metrics/procfs.c): what a request, an instance event and
 * a snapshot add to the exposition; that client-chosen method names and an
 * unbounded number of routes cannot grow it; why a 401 was counted; and the
 * stat line's odd command names.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include <event2/buffer.h>

#include "core/limits.h"
#include "metrics/metrics.h"
#include "metrics/procfs.h"

static bool g_oauth_configured;

/* The exposition as a NUL-terminated heap string. */
static char *expose(void)
{
    struct evbuffer *b = evbuffer_new();
    struct sr_metrics_gauges g = {.version = "0.1.0", .role = "serve", .have_instances = true};
    g.oauth = g_oauth_configured;
    const char *names[] = {"alice"};
    uint64_t rss[] = {4096};
    g.nbackends = 1;
    g.backend_name = names;
    g.backend_rss = rss;
    sr_metrics_write(b, &g);
    size_t n = evbuffer_get_length(b);
    char *s = malloc(n + 1);
    evbuffer_remove(b, s, n);
    s[n] = '\0';
    evbuffer_free(b);
    return s;
}

static int setup(void **state)
{
    (void)state;
    sr_metrics_reset();
    sr_metrics_enable(true, false);
    return 0;
}

static void test_requests(void **state)
{
    (void)state;
    sr_metrics_request("gen-1:alice", "tools/call", 200, 100, 2000, 1500, NULL, 0);
    sr_metrics_request("gen-1:alice", "tools/call", 200, 100, 2000, 2000000, NULL, 0);
    sr_metrics_request("gen-2:alice", "initialize", 200, 10, 20, 100, NULL, 0);
    sr_metrics_request("-", "-", 404, 0, 50, 10, NULL, 0);
    char *s = expose();
    assert_non_null(strstr(s, "serena_remote_requests_total{route=\"alice\",rpc_method=\"tools/"
                              "call\",status=\"200\"} 2\n"));
    assert_non_null(strstr(s, "serena_remote_requests_total{route=\"alice\",rpc_method="
                              "\"initialize\",status=\"200\"} 1\n"));
    assert_non_null(strstr(
        s, "serena_remote_requests_total{route=\"-\",rpc_method=\"none\",status=\"404\"} 1\n"));
    assert_non_null(strstr(s, "serena_remote_request_body_bytes_total{route=\"alice\"} 210\n"));
    assert_non_null(strstr(s, "serena_remote_response_body_bytes_total{route=\"alice\"} 4020\n"));
    /* Buckets are cumulative: 100 us and 1.5 ms under 5 ms, 2 s under 5 s. */
    assert_non_null(strstr(
        s, "serena_remote_request_duration_seconds_bucket{route=\"alice\",le=\"0.005\"} 2\n"));
    assert_non_null(
        strstr(s, "serena_remote_request_duration_seconds_bucket{route=\"alice\",le=\"5\"} 3\n"));
    assert_non_null(strstr(
        s, "serena_remote_request_duration_seconds_bucket{route=\"alice\",le=\"+Inf\"} 3\n"));
    assert_non_null(strstr(s, "serena_remote_request_duration_seconds_sum{route=\"alice\"} "
                              "2.001600\n"));
    assert_non_null(strstr(s, "serena_remote_request_duration_seconds_count{route=\"alice\"} 3\n"));
    assert_non_null(strstr(s, "# TYPE serena_remote_requests_total counter\n"));
    assert_non_null(
        strstr(s, "serena_remote_instance_resident_memory_bytes{route=\"alice\"} 4096\n"));
    assert_non_null(strstr(s, "serena_remote_build_info{version=\"0.1.0\",role=\"serve\"} 1\n"));
    free(s);
}

static void test_bounded_labels(void **state)
{
    (void)state;
    /* A client's own method names and statuses nobody listed are "other". */
    sr_metrics_request("g:bob", "evil\"}\nname", 299, 0, 0, 1, NULL, 0);
    char *s = expose();
    assert_non_null(strstr(
        s,
        "serena_remote_requests_total{route=\"bob\",rpc_method=\"other\",status=\"other\"} 1\n"));
    assert_null(strstr(s, "evil"));
    free(s);
    /* More routes than the registry keeps: the rest count as "_other". */
    for (int i = 0; i < SR_METRICS_ROUTES_MAX + 50; i++) {
        char route[64];
        snprintf(route, sizeof(route), "g:r%d", i);
        sr_metrics_request(route, "ping", 200, 0, 0, 1, NULL, 0);
    }
    s = expose();
    assert_non_null(strstr(
        s, "serena_remote_requests_total{route=\"_other\",rpc_method=\"ping\",status=\"200\"}"));
    free(s);
}

static void test_auth_reasons(void **state)
{
    (void)state;
    sr_metrics_request("", "initialize", 401, 0, 0, 1, NULL, 0);
    const char *basic = "Basic dXNlcjpwYXNz";
    sr_metrics_request("", "initialize", 401, 0, 0, 1, basic, strlen(basic));
    const char *bearer = "Bearer not-a-known-token-1234";
    sr_metrics_request("", "initialize", 401, 0, 0, 1, bearer, strlen(bearer));
    sr_metrics_request("", "initialize", 401, 0, 0, 1, bearer, strlen(bearer));
    char *s = expose();
    assert_non_null(strstr(s, "serena_remote_auth_failures_total{reason=\"missing\"} 1\n"));
    assert_non_null(strstr(s, "serena_remote_auth_failures_total{reason=\"malformed\"} 1\n"));
    assert_non_null(strstr(s, "serena_remote_auth_failures_total{reason=\"unknown_token\"} 2\n"));
    /* The token itself is never kept. */
    assert_null(strstr(s, "not-a-known-token"));
    free(s);
    sr_metrics_enable(true, true);
    sr_metrics_request("", "initialize", 401, 0, 0, 1, NULL, 0);
    s = expose();
    assert_non_null(strstr(s, "serena_remote_auth_failures_total{reason=\"internal_secret\"} 1\n"));
    free(s);
}

static void test_oauth_events(void **state)
{
    (void)state;
    g_oauth_configured = false;
    sr_metrics_oauth(SR_MO_REGISTERED);
    char *s = expose();
    assert_null(strstr(s, "serena_remote_oauth_events_total")); /* sign-in not configured */
    free(s);
    g_oauth_configured = true;
    sr_metrics_oauth(SR_MO_REGISTERED);
    sr_metrics_oauth(SR_MO_JWT_REFUSED);
    sr_metrics_oauth((enum sr_metrics_oauth_event)99); /* out of range: ignored */
    s = expose();
    assert_non_null(strstr(s, "# TYPE serena_remote_oauth_events_total counter\n"));
    assert_non_null(strstr(s, "serena_remote_oauth_events_total{event=\"registered\"} 2\n"));
    assert_non_null(strstr(s, "serena_remote_oauth_events_total{event=\"jwt_refused\"} 1\n"));
    assert_non_null(strstr(s, "serena_remote_oauth_events_total{event=\"revoked\"} 0\n"));
    free(s);
    g_oauth_configured = false;
}

static void test_instances_and_snapshots(void **state)
{
    (void)state;
    sr_metrics_instance("alice", SR_MI_START);
    sr_metrics_instance("alice", SR_MI_START);
    sr_metrics_instance("alice", SR_MI_CRASH);
    sr_metrics_instance("bob", SR_MI_SLEEP);
    sr_metrics_instance("bob", SR_MI_EVICTION);
    sr_metrics_instance_ready(1200000);
    sr_metrics_snapshot(SR_MS_SNAPSHOT, SR_MS_OK, 300000, 250000);
    sr_metrics_snapshot(SR_MS_SNAPSHOT, SR_MS_SKIPPED, 0, 1000);
    sr_metrics_snapshot(SR_MS_RESTORE, SR_MS_NOTHING, 0, 1000);
    char *s = expose();
    assert_non_null(strstr(s, "serena_remote_instance_starts_total{route=\"alice\"} 2\n"));
    assert_non_null(strstr(s, "serena_remote_instance_crashes_total{route=\"alice\"} 1\n"));
    assert_non_null(strstr(s, "serena_remote_instance_sleeps_total{route=\"bob\"} 1\n"));
    assert_non_null(strstr(s, "serena_remote_instance_evictions_total{route=\"bob\"} 1\n"));
    assert_non_null(strstr(s, "serena_remote_instance_start_seconds_bucket{le=\"2.5\"} 1\n"));
    assert_non_null(strstr(s, "serena_remote_instance_start_seconds_bucket{le=\"1\"} 0\n"));
    assert_non_null(strstr(s, "serena_remote_instance_start_seconds_count 1\n"));
    assert_non_null(strstr(s, "serena_remote_snapshots_total{op=\"snapshot\",result=\"ok\"} 1\n"));
    assert_non_null(
        strstr(s, "serena_remote_snapshots_total{op=\"snapshot\",result=\"skipped\"} 1\n"));
    assert_non_null(
        strstr(s, "serena_remote_snapshots_total{op=\"restore\",result=\"nothing\"} 1\n"));
    /* Only an archive that moved has a size. */
    assert_non_null(strstr(s, "serena_remote_snapshot_bytes_count{op=\"snapshot\"} 1\n"));
    assert_non_null(strstr(s, "serena_remote_snapshot_bytes_sum{op=\"snapshot\"} 300000\n"));
    assert_non_null(strstr(s, "serena_remote_snapshot_seconds_count{op=\"snapshot\"} 2\n"));
    free(s);
}

static void test_off(void **state)
{
    (void)state;
    sr_metrics_enable(false, false);
    sr_metrics_request("g:carol", "ping", 200, 0, 0, 1, NULL, 0);
    sr_metrics_instance("carol", SR_MI_START);
    char *s = expose();
    assert_null(strstr(s, "carol"));
    free(s);
}

static void test_procfs_stat(void **state)
{
    (void)state;
    struct sr_procfs_stat st;
    const char *line = "4242 (a) b (c)) S 17 4242 4242 0 -1 4194560 100 0 0 0 7 3 0 0 20 0 1 0 "
                       "123456 10485760 2560 18446744073709551615 1 1 0 0 0 0 0 0 0 0 0 0 17 1 "
                       "0 0 0 0 0\n";
    assert_int_equal(sr_procfs_parse_stat(line, strlen(line), &st), 0);
    assert_int_equal(st.pid, 4242);
    assert_int_equal(st.state, 'S');
    assert_int_equal(st.ppid, 17);
    assert_int_equal(st.utime, 7);
    assert_int_equal(st.stime, 3);
    assert_int_equal(st.starttime, 123456);
    assert_int_equal(st.vsize, 10485760);
    assert_int_equal(st.rss_pages, 2560);
    const char *bad[] = {"",         "42",        "42 (x",
                         "42 (x) S", "x (y) S 1", "42 (x) S 1 2 3 4 5 6 7 8 9 10 a"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        assert_int_equal(sr_procfs_parse_stat(bad[i], strlen(bad[i]), &st), -1);
    /* Our own process reads back. */
    struct sr_procfs_self self;
    assert_int_equal(sr_procfs_self(&self), 0);
    assert_true(self.rss_bytes > 0 && self.open_fds > 0 && self.start_time > 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(test_requests, setup),
        cmocka_unit_test_setup(test_bounded_labels, setup),
        cmocka_unit_test_setup(test_auth_reasons, setup),
        cmocka_unit_test_setup(test_oauth_events, setup),
        cmocka_unit_test_setup(test_instances_and_snapshots, setup),
        cmocka_unit_test_setup(test_off, setup),
        cmocka_unit_test(test_procfs_stat),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
