/*
 * Unit tests for src/snapshot/job.c against the local-directory store: a
 * take job reports its key over the pipe, an unchanged tree is skipped, a
 * restore job brings the tree back, a worker killed with SIGKILL reports an
 * error (never a success), and a cancelled job calls nothing and leaves no
 * zombie.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <errno.h>
#include <signal.h>
#include <unistd.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <cmocka.h>

#include <event2/event.h>

#include "snapshot/archive.h"
#include "snapshot/snapshot.h"

static char root[256], home[300], store[300];

struct got {
    int calls;
    int status;
    struct sr_snapshot_result r;
    char err[512];
};

static void on_done(void *arg, int status, const struct sr_snapshot_result *r, const char *err)
{
    struct got *g = arg;
    g->calls++;
    g->status = status;
    g->r = *r;
    snprintf(g->err, sizeof(g->err), "%s", err);
}

static int setup(void **state)
{
    (void)state;
    snprintf(root, sizeof(root), "/tmp/sr-test-job-XXXXXX");
    assert_non_null(mkdtemp(root));
    snprintf(home, sizeof(home), "%s/home", root);
    snprintf(store, sizeof(store), "%s/store", root);
    assert_int_equal(mkdir(home, 0755), 0);
    assert_int_equal(mkdir(store, 0755), 0);
    char p[400];
    snprintf(p, sizeof(p), "%s/memories.md", home);
    FILE *f = fopen(p, "w");
    fputs("remember me", f);
    fclose(f);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    sr_archive_rmtree(root);
    return 0;
}

static void run_job(enum sr_snapshot_op op, bool force, struct got *g, bool kill_it)
{
    struct event_base *base = event_base_new();
    struct sr_store_config c = {.kind = "file", .dir = store};
    struct sr_snapshot_opts o = {
        .prefix = "t/v1", .partition = "p1", .retention = 2, .force = force};
    struct sr_snapshot_job *j = NULL;
    memset(g, 0, sizeof(*g));
    assert_int_equal(sr_snapshot_job_start(base, op, &c, &o, home, on_done, g, &j), 0);
    assert_true(sr_snapshot_job_pid(j) > 0);
    if (kill_it)
        kill(sr_snapshot_job_pid(j), SIGKILL);
    event_base_dispatch(base);
    event_base_free(base);
    assert_int_equal(g->calls, 1);
}

static void test_take_skip_restore(void **state)
{
    (void)state;
    struct got g;
    run_job(SR_SNAP_TAKE, false, &g, false);
    assert_int_equal(g.status, 0);
    assert_false(g.r.skipped);
    assert_non_null(strstr(g.r.key, "t/v1/p1/"));
    assert_int_equal(strlen(g.r.sha256), 64);
    run_job(SR_SNAP_TAKE, false, &g, false);
    assert_int_equal(g.status, 0);
    assert_true(g.r.skipped);
    sr_archive_rmtree(home);
    run_job(SR_SNAP_RESTORE, false, &g, false);
    assert_int_equal(g.status, 0);
    assert_false(g.r.nothing);
    char p[400];
    struct stat st;
    snprintf(p, sizeof(p), "%s/memories.md", home);
    assert_int_equal(stat(p, &st), 0);
    assert_int_equal(st.st_size, 11);
}

static void test_killed_worker(void **state)
{
    (void)state;
    struct got g;
    run_job(SR_SNAP_TAKE, true, &g, true);
    assert_int_not_equal(g.status, 0);
    assert_non_null(strstr(g.err, "signal 9"));
}

static void test_cancel(void **state)
{
    (void)state;
    struct event_base *base = event_base_new();
    struct sr_store_config c = {.kind = "file", .dir = store};
    struct sr_snapshot_opts o = {
        .prefix = "t/v1", .partition = "p1", .retention = 2, .force = true};
    struct sr_snapshot_job *j = NULL;
    struct got g = {0};
    assert_int_equal(sr_snapshot_job_start(base, SR_SNAP_TAKE, &c, &o, home, on_done, &g, &j), 0);
    pid_t pid = sr_snapshot_job_pid(j);
    sr_snapshot_job_cancel(j);
    event_base_loop(base, EVLOOP_NONBLOCK);
    event_base_free(base);
    assert_int_equal(g.calls, 0);
    /* Reaped: the pid is no longer our child. */
    assert_int_equal(waitpid(pid, NULL, WNOHANG), -1);
    assert_int_equal(errno, ECHILD);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_take_skip_restore),
        cmocka_unit_test(test_killed_worker),
        cmocka_unit_test(test_cancel),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
