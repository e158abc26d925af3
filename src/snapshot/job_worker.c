/*
 * The snapshot worker: `serena-remote-snapshot __job`, started by a job
 * (job.c) with the request document on fd 4 and the result pipe on fd 3.
 * It opens the store, takes or restores one snapshot and reports one JSON
 * line, so the gateway's event loop never blocks on archives or transfers.
 *
 * Request: {"op":"take"|"restore","home":"..","store":{"kind","dir",
 * "endpoint","region","bucket","access_key","secret_key","keys","timeout",
 * "retries"},"opts":{"prefix","partition","work","cache","excludes","retention","force"}}
 */
#include "snapshot/snapshot.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/json.h"
#include "snapshot/clone.h"

#define RESULT_FD  SR_SNAPSHOT_JOB_RESULT_FD
#define REQUEST_FD SR_SNAPSHOT_JOB_REQUEST_FD
#define REQ_TOKENS 64

static void write_result(int fd, int status, const struct sr_snapshot_result *r, const char *err)
{
    char buf[SR_SNAPSHOT_JOB_LINE_MAX];
    struct sr_jw w;
    size_t len = 0;
    sr_jw_init(&w, buf, sizeof(buf) - 1);
    sr_jw_obj_begin(&w);
    sr_jw_key(&w, "status");
    sr_jw_int(&w, status);
    sr_jw_key(&w, "err");
    sr_snapshot_jw_ascii(&w, status ? err : "");
    sr_snapshot_result_members(&w, r);
    sr_jw_obj_end(&w);
    if (sr_jw_finish(&w, &len) != 0)
        return; /* cannot happen with these bounds; the parent then reports a dead worker */
    buf[len++] = '\n';
    const char *p = buf;
    while (len) {
        ssize_t n = write(fd, p, len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return;
        p += n;
        len -= (size_t)n;
    }
}

/* Decoded string member `k` of object `obj` into out; "" when absent. */
static const char *member(const struct sr_json_doc *d, uint32_t obj, const char *k, char *out,
                          size_t cap)
{
    size_t n = 0;
    int32_t v = sr_json_obj_get(d, obj, k, strlen(k));
    if (v < 0 || sr_json_str_decode(d, (uint32_t)v, out, cap, &n) != 0 || n >= cap)
        return NULL;
    out[n] = '\0';
    return out;
}

static int64_t member_int(const struct sr_json_doc *d, uint32_t obj, const char *k)
{
    int64_t x = 0;
    int32_t v = sr_json_obj_get(d, obj, k, strlen(k));
    if (v < 0 || sr_json_int64(d, (uint32_t)v, &x) != 0)
        return 0;
    return x;
}

int sr_snapshot_worker_main(void)
{
    static char req[SR_SNAPSHOT_JOB_REQUEST_MAX + 1];
    static char sv[8][1024], ov[3][1024], home[4096], work[4096], cache[4096], spec[1100], op[16];
    struct sr_json_tok toks[REQ_TOKENS];
    struct sr_json_doc d;
    struct sr_snapshot_result r;
    struct sr_store_config c;
    struct sr_snapshot_opts o;
    struct sr_store *s = NULL;
    char err[512] = "";
    size_t len = 0;
    int rc = SR_STORE_E_CONFIG;
    memset(&r, 0, sizeof(r));
    memset(&c, 0, sizeof(c));
    memset(&o, 0, sizeof(o));
    signal(SIGPIPE, SIG_IGN);
    for (;;) {
        ssize_t n = read(REQUEST_FD, req + len, sizeof(req) - 1 - len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        len += (size_t)n;
        if (len == sizeof(req) - 1)
            break;
    }
    close(REQUEST_FD);
    int32_t so, oo;
    if (sr_json_parse(&d, req, len, toks, REQ_TOKENS, NULL) != 0 ||
        toks[0].type != SR_JSON_OBJECT || (so = sr_json_obj_get(&d, 0, "store", 5)) < 0 ||
        (oo = sr_json_obj_get(&d, 0, "opts", 4)) < 0 || !member(&d, 0, "op", op, sizeof(op)) ||
        !member(&d, 0, "home", home, sizeof(home))) {
        snprintf(err, sizeof(err), "the snapshot worker got a malformed request");
        goto out;
    }
    static const char *const skeys[] = {"kind",   "dir",        "endpoint",   "region",
                                        "bucket", "access_key", "secret_key", "keys"};
    const char **sdst[] = {&c.kind,   &c.dir,        &c.endpoint,   &c.region,
                           &c.bucket, &c.access_key, &c.secret_key, &c.keys};
    for (size_t i = 0; i < 8; i++)
        *sdst[i] = member(&d, (uint32_t)so, skeys[i], sv[i], sizeof(sv[i]));
    c.timeout = (uint32_t)member_int(&d, (uint32_t)so, "timeout");
    c.retries = (uint32_t)member_int(&d, (uint32_t)so, "retries");
    o.prefix = member(&d, (uint32_t)oo, "prefix", ov[0], sizeof(ov[0]));
    o.partition = member(&d, (uint32_t)oo, "partition", ov[1], sizeof(ov[1]));
    o.excludes = member(&d, (uint32_t)oo, "excludes", ov[2], sizeof(ov[2]));
    o.work = member(&d, (uint32_t)oo, "work", work, sizeof(work));
    o.cache = member(&d, (uint32_t)oo, "cache", cache, sizeof(cache));
    o.spec = member(&d, (uint32_t)oo, "spec", spec, sizeof(spec));
    o.retention = (uint32_t)member_int(&d, (uint32_t)oo, "retention");
    int32_t fv = sr_json_obj_get(&d, (uint32_t)oo, "force", 5);
    o.force = fv >= 0 && toks[fv].type == SR_JSON_TRUE;
    o.progress = false;
    /* The secret has served its purpose once parsed into c. */
    memset(req, 0, len);
    if (strcmp(op, "clone") == 0) {
        char commit[41];
        rc =
            o.spec && sr_clone_run(o.spec, home, commit, err, sizeof(err)) == 0 ? 0 : SR_STORE_E_IO;
        if (!o.spec)
            snprintf(err, sizeof(err), "the clone job got no project");
        if (rc == 0)
            snprintf(r.key, sizeof(r.key), "%s", commit);
        goto out;
    }
    rc = sr_store_open(&c, &s, err, sizeof(err));
    if (rc == 0) {
        if (strcmp(op, "take") == 0)
            rc = sr_snapshot_take(s, &o, home, &r, err, sizeof(err));
        else
            rc = sr_snapshot_restore(s, &o, home, NULL, &r, err, sizeof(err));
        sr_store_close(s);
    }
    /* The secrets have served their purpose. */
    memset(sv, 0, sizeof(sv));
out:
    write_result(RESULT_FD, rc, &r, err);
    return rc == 0 ? 0 : 1;
}
