/*
 * `serena-remote snapshot | restore | snapshots`: take, restore and list
 * snapshots of a SERENA_HOME-like directory by hand, with the same store
 * settings as `serve`.
 *
 * Why not config.c's table: these commands need a dozen store settings and
 * none of the gateway's, and they must not require tokens or a listen
 * address. A small flag-or-environment helper keeps the names identical
 * (flags win over the environment) without dragging the gateway's
 * validation in.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cmd/cmd.h"
#include "core/json.h"
#include "snapshot/snapshot.h"
#include "store/store.h"

#define DEFAULT_PREFIX    "serena-mcp/default/serena-home-snapshots-v1"
#define DEFAULT_RETENTION 5
#define MAX_RETENTION     256

enum snap_cmd { CMD_TAKE, CMD_RESTORE, CMD_LIST };

struct snap_args {
    const char *state;
    const char *store;
    const char *prefix;
    const char *partition;
    const char *retention;
    const char *exclude;
    const char *key;
    bool force;
    bool json;
};

static const char *cmd_name(enum snap_cmd c)
{
    return c == CMD_TAKE ? "snapshot" : c == CMD_RESTORE ? "restore" : "snapshots";
}

static void usage(enum snap_cmd c, FILE *f)
{
    if (c == CMD_TAKE)
        fprintf(f, "Usage: serena-remote snapshot --state DIR [--force] [options]\n\n"
                   "Archive DIR (a SERENA_HOME) as tar.zst and upload it, unless its content is\n"
                   "unchanged since the newest snapshot (--force takes one anyway).\n\n");
    else if (c == CMD_RESTORE)
        fprintf(f,
                "Usage: serena-remote restore --state DIR [--snapshot KEY] [options]\n\n"
                "Replace DIR with the newest snapshot (or KEY), verified and extracted beside\n"
                "it, then swapped in. A corrupt newest snapshot falls back to the previous.\n\n");
    else
        fprintf(f, "Usage: serena-remote snapshots [--json] [options]\n\n"
                   "List the partition's snapshots, newest first, with size and age.\n\n");
    fprintf(f,
            "Options (flags win over the environment):\n"
            "  --store file:/abs/dir   a local directory store; without it, "
            "SERENA_R2_STATE_ENABLED=1\n"
            "                          uses S3/R2 from R2_ACCOUNT_ID or S3_ENDPOINT (+S3_REGION),\n"
            "                          R2_BUCKET_NAME, AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY\n"
            "  --prefix P              SERENA_R2_STATE_PREFIX (" DEFAULT_PREFIX ")\n"
            "  --partition NAME        SERENA_INSTANCE_ID, else CLOUDFLARE_DURABLE_OBJECT_ID, "
            "else shared\n"
            "  --retention N           SERENA_R2_SNAPSHOT_RETENTION_COUNT (5)\n"
            "  --exclude LIST          SERENA_SNAPSHOT_EXCLUDE: top-level names (language_servers,"
            "logs)\n"
            "  --json                  print the result as JSON\n"
            "Environment only: SERENA_SNAPSHOT_KEY (base64 key(s), comma separated) encrypts\n"
            "every object written and opens what was written with any listed key.\n");
}

/* An environment value, or NULL when unset or empty. */
static const char *env(const char *name)
{
    const char *v = getenv(name);
    return v && *v ? v : NULL;
}

static bool is_placeholder_do_id(const char *v)
{
    size_t n = strlen(v);
    if (n != 64)
        return false;
    for (size_t i = 0; i < n; i++)
        if (v[i] != 'x')
            return false;
    return true;
}

static int parse_args(enum snap_cmd c, int argc, char **argv, struct snap_args *a)
{
    const char *me = cmd_name(c);
    for (int i = 0; i < argc; i++) {
        const char *arg = argv[i];
        if (strcmp(arg, "--help") == 0 || strcmp(arg, "-h") == 0) {
            usage(c, stdout);
            return 1;
        }
        if (strcmp(arg, "--force") == 0 && c == CMD_TAKE) {
            a->force = true;
            continue;
        }
        if (strcmp(arg, "--json") == 0) {
            a->json = true;
            continue;
        }
        static const char *names[] = {"--state",     "--store",   "--prefix",  "--partition",
                                      "--retention", "--exclude", "--snapshot"};
        const char **slots[] = {&a->state,     &a->store,   &a->prefix, &a->partition,
                                &a->retention, &a->exclude, &a->key};
        bool matched = false;
        for (size_t k = 0; k < sizeof(names) / sizeof(names[0]); k++) {
            size_t nl = strlen(names[k]);
            if (strncmp(arg, names[k], nl) != 0 || (arg[nl] != '\0' && arg[nl] != '='))
                continue;
            if (k == 6 && c != CMD_RESTORE)
                break;
            if (arg[nl] == '=') {
                *slots[k] = arg + nl + 1;
            } else if (i + 1 < argc) {
                *slots[k] = argv[++i];
            } else {
                fprintf(stderr, "serena-remote %s: %s needs a value\n", me, names[k]);
                return 2;
            }
            matched = true;
            break;
        }
        if (!matched) {
            fprintf(stderr, "serena-remote %s: unknown option '%s' (try --help)\n", me, arg);
            return 2;
        }
    }
    if (c != CMD_LIST && !a->state) {
        fprintf(stderr, "serena-remote %s: --state DIR is required (the SERENA_HOME to %s)\n", me,
                c == CMD_TAKE ? "archive" : "restore into");
        return 2;
    }
    return 0;
}

/* Fill the store configuration from --store or the environment. 0, or 2 with a message. */
static int store_config(const char *me, const struct snap_args *a, struct sr_store_config *sc,
                        char *endpoint, size_t eplen)
{
    memset(sc, 0, sizeof(*sc));
    sc->keys = env("SERENA_SNAPSHOT_KEY");
    if (a->store) {
        if (strncmp(a->store, "file:", 5) != 0 || a->store[5] != '/') {
            fprintf(stderr,
                    "serena-remote %s: --store must be file:/absolute/dir (got '%s'); S3/R2 is "
                    "configured through SERENA_R2_STATE_ENABLED=1 and its variables\n",
                    me, a->store);
            return 2;
        }
        sc->kind = "file";
        sc->dir = a->store + 5;
        return 0;
    }
    const char *en = env("SERENA_R2_STATE_ENABLED");
    if (!en || strcmp(en, "1") != 0) {
        fprintf(stderr,
                "serena-remote %s: no store configured: pass --store file:/abs/dir, or set "
                "SERENA_R2_STATE_ENABLED=1 with R2_BUCKET_NAME, R2_ACCOUNT_ID (or S3_ENDPOINT), "
                "AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY\n",
                me);
        return 2;
    }
    sc->kind = "s3";
    const char *acct = env("R2_ACCOUNT_ID");
    if (env("S3_ENDPOINT")) {
        sc->endpoint = env("S3_ENDPOINT");
        sc->region = env("S3_REGION") ? env("S3_REGION") : "us-east-1";
    } else if (acct) {
        snprintf(endpoint, eplen, "https://%s.r2.cloudflarestorage.com", acct);
        sc->endpoint = endpoint;
        sc->region = "auto";
    }
    sc->bucket = env("R2_BUCKET_NAME");
    sc->access_key = env("AWS_ACCESS_KEY_ID");
    sc->secret_key = env("AWS_SECRET_ACCESS_KEY");
    const char *missing = !sc->endpoint     ? "R2_ACCOUNT_ID (Cloudflare R2) or S3_ENDPOINT"
                          : !sc->bucket     ? "R2_BUCKET_NAME"
                          : !sc->access_key ? "AWS_ACCESS_KEY_ID"
                          : !sc->secret_key ? "AWS_SECRET_ACCESS_KEY"
                                            : NULL;
    if (missing) {
        fprintf(stderr, "serena-remote %s: SERENA_R2_STATE_ENABLED=1 but %s is not set\n", me,
                missing);
        return 2;
    }
    return 0;
}

static int snapshot_opts(const char *me, const struct snap_args *a, struct sr_snapshot_opts *o)
{
    memset(o, 0, sizeof(*o));
    o->prefix = a->prefix ? a->prefix : env("SERENA_R2_STATE_PREFIX");
    if (!o->prefix)
        o->prefix = DEFAULT_PREFIX;
    o->partition = a->partition;
    if (!o->partition)
        o->partition = env("SERENA_INSTANCE_ID");
    if (!o->partition) {
        const char *id = env("CLOUDFLARE_DURABLE_OBJECT_ID");
        if (id && !is_placeholder_do_id(id))
            o->partition = id;
    }
    if (!o->partition)
        o->partition = "shared";
    o->excludes = a->exclude ? a->exclude : getenv("SERENA_SNAPSHOT_EXCLUDE");
    const char *ret = a->retention ? a->retention : env("SERENA_R2_SNAPSHOT_RETENTION_COUNT");
    o->retention = DEFAULT_RETENTION;
    if (ret) {
        char *end;
        errno = 0;
        unsigned long v = strtoul(ret, &end, 10);
        if (errno || end == ret || *end || v < 1 || v > MAX_RETENTION || ret[0] == '-') {
            fprintf(stderr,
                    "serena-remote %s: the retention count '%s' is invalid: give a whole number "
                    "from 1 to %d (--retention or SERENA_R2_SNAPSHOT_RETENTION_COUNT)\n",
                    me, ret, MAX_RETENTION);
            return 2;
        }
        o->retention = (uint32_t)v;
    }
    o->force = a->force;
    o->progress = isatty(2) && !a->json;
    return 0;
}

static void print_json(const struct sr_snapshot_result *r, const char *store)
{
    char buf[4096];
    struct sr_jw w;
    size_t len = 0;
    sr_jw_init(&w, buf, sizeof(buf));
    sr_jw_obj_begin(&w);
    sr_jw_key(&w, "store");
    sr_jw_cstr(&w, store);
    sr_snapshot_result_members(&w, r);
    sr_jw_obj_end(&w);
    if (sr_jw_finish(&w, &len) == 0)
        printf("%.*s\n", (int)len, buf);
    else
        printf("{\"key\":\"\",\"note\":\"result not representable as JSON\"}\n");
}

static int run(enum snap_cmd c, int argc, char **argv)
{
    const char *me = cmd_name(c);
    struct snap_args a = {0};
    struct sr_store_config sc;
    struct sr_snapshot_opts o;
    struct sr_snapshot_result r;
    struct sr_store *s = NULL;
    char endpoint[512], err[1024] = "";
    int rc = parse_args(c, argc, argv, &a);
    if (rc)
        return rc == 1 ? 0 : rc;
    if (store_config(me, &a, &sc, endpoint, sizeof(endpoint)) || snapshot_opts(me, &a, &o))
        return 2;
    if (sr_store_open(&sc, &s, err, sizeof(err)) < 0) {
        fprintf(stderr, "serena-remote %s: %s\n", me, err);
        return 2;
    }
    memset(&r, 0, sizeof(r));
    if (c == CMD_TAKE)
        rc = sr_snapshot_take(s, &o, a.state, &r, err, sizeof(err));
    else if (c == CMD_RESTORE)
        rc = sr_snapshot_restore(s, &o, a.state, a.key, &r, err, sizeof(err));
    else
        rc = sr_snapshot_list(s, &o, a.json, err, sizeof(err));
    if (rc < 0) {
        fprintf(stderr, "serena-remote %s: %s\n", me, err);
        rc = rc == SR_STORE_E_CONFIG ? 2 : 1;
        goto out;
    }
    rc = 0;
    if (c == CMD_LIST)
        goto out;
    if (a.json) {
        print_json(&r, sr_store_describe(s));
    } else if (c == CMD_TAKE && r.skipped) {
        printf("unchanged since %s: nothing uploaded\n", r.key);
    } else if (c == CMD_TAKE) {
        printf("snapshot %s: %llu entries, %llu bytes, sha256 %s\n", r.key,
               (unsigned long long)r.files, (unsigned long long)r.size, r.sha256);
    } else if (r.nothing) {
        printf("nothing to restore: %s\n", r.note);
    } else {
        printf("restored %s into %s (%llu entries)\n", r.key, a.state, (unsigned long long)r.files);
    }
    if (!a.json && r.note[0] && !(c == CMD_TAKE && r.skipped) && !r.nothing)
        fprintf(stderr, "note: %s\n", r.note);
out:
    sr_store_close(s);
    return rc;
}

int sr_cmd_snapshot(int argc, char **argv)
{
    return run(CMD_TAKE, argc, argv);
}

int sr_cmd_restore(int argc, char **argv)
{
    return run(CMD_RESTORE, argc, argv);
}

int sr_cmd_snapshots(int argc, char **argv)
{
    return run(CMD_LIST, argc, argv);
}
