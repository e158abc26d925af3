/*
 * `serena-remote snapshot | restore | snapshots`: take, restore and list
 * snapshots of a SERENA_HOME-like directory by hand, from the same settings
 * as `serve`.
 *
 * One resolution, not two: the store, the prefix, the retention and the
 * excluded names come from config.c's settings table (environment,
 * --env-file, and this command's options in place of flags), exactly as
 * `serve` reads them, including its default store, file:<state-dir>/snapshots.
 * Partitions follow sr_route_partition, the rule the instance manager uses:
 * by default the listing covers every token's route of the current
 * generation, shown by token name; --route NAME picks one token, --partition
 * names a partition outright (the container role, SERENA_INSTANCE_ID, has
 * exactly one). Token values are read only to learn the names; nothing here
 * prints one.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/stat.h>

#include "cmd/cmd.h"
#include "cmd/config.h"
#include "core/json.h"
#include "core/route.h"
#include "snapshot/manifest.h"
#include "snapshot/snapshot.h"
#include "store/store.h"

enum snap_cmd { CMD_TAKE, CMD_RESTORE, CMD_LIST };

struct snap_args {
    const char *state;
    const char *store;
    const char *prefix;
    const char *partition;
    const char *retention;
    const char *exclude;
    const char *key;
    const char *route;
    const char *workspace;
    const char *cache;
    const char *state_dir;
    const char *env_file;
    const char *tokens_file;
    bool force;
    bool json;
};

/* This command's options that stand for a setting of the gateway. */
static const struct {
    const char *flag;
    enum sr_setting setting;
    size_t slot; /* offset in struct snap_args */
} k_setting_flags[] = {
    {"--store", SR_SET_STORE, offsetof(struct snap_args, store)},
    {"--prefix", SR_SET_R2_PREFIX, offsetof(struct snap_args, prefix)},
    {"--retention", SR_SET_R2_RETENTION, offsetof(struct snap_args, retention)},
    {"--exclude", SR_SET_SNAPSHOT_EXCLUDE, offsetof(struct snap_args, exclude)},
    {"--state-dir", SR_SET_STATE_DIR, offsetof(struct snap_args, state_dir)},
    {"--env-file", SR_SET_ENV_FILE, offsetof(struct snap_args, env_file)},
    {"--tokens-file", SR_SET_API_TOKENS_FILE, offsetof(struct snap_args, tokens_file)},
};
#define N_SETTING_FLAGS (sizeof(k_setting_flags) / sizeof(k_setting_flags[0]))

/* Where a command works: a route (its token name) and the partition the gateway gives it. */
struct target {
    char name[SR_TOKEN_NAME_MAX + 1]; /* "" when the partition was named outright */
    char route[SR_ROUTE_MAX + 1];
    char partition[SR_PARTITION_MAX + 1];
};

static const char *cmd_name(enum snap_cmd c)
{
    return c == CMD_TAKE ? "snapshot" : c == CMD_RESTORE ? "restore" : "snapshots";
}

static void usage(enum snap_cmd c, FILE *f)
{
    if (c == CMD_TAKE)
        fprintf(f,
                "Usage: serena-remote snapshot --state DIR [--route NAME] [--force] [options]\n\n"
                "Snapshot DIR (a SERENA_HOME): upload what is new to NAME's partition,\n"
                "unless its content is unchanged since the newest snapshot (--force takes one\n"
                "anyway).\n\n");
    else if (c == CMD_RESTORE)
        fprintf(f,
                "Usage: serena-remote restore --state DIR [--route NAME] [--snapshot KEY] "
                "[options]\n\n"
                "Replace DIR with NAME's newest snapshot (or KEY), verified and extracted beside\n"
                "it, then swapped in. A corrupt newest snapshot falls back to the previous.\n\n");
    else
        fprintf(f, "Usage: serena-remote snapshots [--route NAME] [--json] [options]\n\n"
                   "List the snapshots of every token's route (or NAME's), newest first, with\n"
                   "size and age: the partitions `serve` writes with the same settings.\n\n");
    fprintf(
        f,
        "Settings are read as `serve` reads them (environment, --env-file; see\n"
        "`serena-remote serve --help`); these options take a flag's place:\n"
        "  --store file:/abs/dir|none  SERENA_REMOTE_STORE (default file:<state-dir>/snapshots;\n"
        "                          SERENA_R2_STATE_ENABLED=1 selects S3/R2 from R2_ACCOUNT_ID\n"
        "                          or S3_ENDPOINT, R2_BUCKET_NAME, AWS_ACCESS_KEY_ID, "
        "AWS_SECRET_ACCESS_KEY)\n"
        "  --state-dir DIR         SERENA_REMOTE_STATE_DIR (./.serena-remote)\n"
        "  --env-file FILE         SERENA_REMOTE_ENV_FILE\n"
        "  --tokens-file FILE      API_TOKENS_FILE (token names; API_TOKEN and API_TOKENS_JSON\n"
        "                          are read too)\n"
        "  --prefix P              SERENA_R2_STATE_PREFIX\n"
        "  --retention N           SERENA_R2_SNAPSHOT_RETENTION_COUNT\n"
        "  --exclude LIST          SERENA_SNAPSHOT_EXCLUDE\n"
        "Which partition (SERENA_R2_STATE_PARTITION_MODE decides, as for serve):\n"
        "  --route NAME            the route of token NAME in the current generation\n"
        "                          (MCP_CONTAINER_ROUTE_GENERATION); the default is every\n"
        "                          token (snapshots), or the only one (snapshot, restore)\n"
        "  --partition NAME        this partition, whatever the mode (SERENA_INSTANCE_ID,\n"
        "                          the container role's, is used when set)\n"
        "  --workspace DIR         snapshot (restore) DIR as the route's work/ beside --state's\n"
        "                          home/ (a snapshot taken by serve holds both)\n"
        "  --cache DIR             remember file states here between runs: unchanged files are\n"
        "                          not read again, a restore downloads only what DIR's files lack\n"
        "  --json                  print the result as JSON\n"
        "SERENA_SNAPSHOT_KEY (environment only: base64 key(s), comma separated) encrypts\n"
        "every object written and opens what was written with any listed key.\n");
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
        static const char *names[] = {"--state", "--partition", "--snapshot",
                                      "--route", "--workspace", "--cache"};
        const char **slots[] = {&a->state, &a->partition, &a->key,
                                &a->route, &a->workspace, &a->cache};
        const char *name = NULL;
        const char **slot = NULL;
        for (size_t k = 0; k < sizeof(names) / sizeof(names[0]); k++)
            if (!(k == 2 && c != CMD_RESTORE)) {
                size_t nl = strlen(names[k]);
                if (strncmp(arg, names[k], nl) == 0 && (arg[nl] == '\0' || arg[nl] == '=')) {
                    name = names[k];
                    slot = slots[k];
                }
            }
        for (size_t k = 0; !slot && k < N_SETTING_FLAGS; k++) {
            size_t nl = strlen(k_setting_flags[k].flag);
            if (strncmp(arg, k_setting_flags[k].flag, nl) == 0 &&
                (arg[nl] == '\0' || arg[nl] == '=')) {
                name = k_setting_flags[k].flag;
                slot = (const char **)((char *)a + k_setting_flags[k].slot);
            }
        }
        if (!slot) {
            fprintf(stderr, "serena-remote %s: unknown option '%s' (try --help)\n", me, arg);
            return 2;
        }
        size_t nl = strlen(name);
        if (arg[nl] == '=') {
            *slot = arg + nl + 1;
        } else if (i + 1 < argc) {
            *slot = argv[++i];
        } else {
            fprintf(stderr, "serena-remote %s: %s needs a value\n", me, name);
            return 2;
        }
    }
    if (c != CMD_LIST && !a->state) {
        fprintf(stderr, "serena-remote %s: --state DIR is required (the SERENA_HOME to %s)\n", me,
                c == CMD_TAKE ? "archive" : "restore into");
        return 2;
    }
    if (a->route && !sr_route_valid_name(a->route, strlen(a->route), SR_TOKEN_NAME_MAX)) {
        fprintf(stderr,
                "serena-remote %s: --route %s is not a token name: 1 to 64 characters from "
                "A-Z a-z 0-9 . _ -\n",
                me, a->route);
        return 2;
    }
    return 0;
}

/* The gateway's settings with this command's options in place of flags. 0, or 2. */
static int load_settings(const char *me, const struct snap_args *a, struct sr_config *cfg)
{
    const char *values[SR_SET_COUNT] = {0};
    for (size_t k = 0; k < N_SETTING_FLAGS; k++)
        values[k_setting_flags[k].setting] =
            *(const char *const *)((const char *)a + k_setting_flags[k].slot);
    char err[1024];
    if (sr_config_load_values(cfg, values, err, sizeof(err)) == 0)
        return 0;
    /* The message names the setting; say which of our options gave it. */
    const char *flag = NULL;
    for (size_t k = 0; k < N_SETTING_FLAGS; k++)
        if (values[k_setting_flags[k].setting] &&
            strstr(err, sr_settings[k_setting_flags[k].setting].env))
            flag = k_setting_flags[k].flag;
    fprintf(stderr, "serena-remote %s: %s%s%s%s\n", me, err, flag ? " (given as " : "",
            flag ? flag : "", flag ? ")" : "");
    sr_config_free(cfg);
    return 2;
}

/* The store `serve` would use. 0, or 2 with a message. */
static int resolve_store(const char *me, enum snap_cmd c, const struct snap_args *a,
                         const struct sr_config *cfg, struct sr_store_config *sc, char *buf,
                         size_t cap)
{
    char err[512];
    int hs = sr_config_store(cfg, sc, buf, cap, err, sizeof(err));
    if (hs < 0) {
        fprintf(stderr, "serena-remote %s: %s\n", me, err);
        return 2;
    }
    if (hs == 0) {
        fprintf(stderr,
                "serena-remote %s: persistence is off (--store none / SERENA_REMOTE_STORE=none): "
                "there is no store; give --store file:/abs/dir, or set SERENA_R2_STATE_ENABLED=1 "
                "with its S3/R2 settings\n",
                me);
        return 2;
    }
    /* A listing of a store directory that is not there: most likely the wrong state directory
     * (serve's default store is inside it), not an empty store. */
    struct stat st;
    if (c == CMD_LIST && strcmp(sc->kind, "file") == 0 && stat(sc->dir, &st) < 0) {
        fprintf(stderr,
                "serena-remote %s: no snapshot store at %s (%s): nothing was ever snapshotted "
                "there. A gateway keeps its snapshots in <state-dir>/snapshots unless --store "
                "says otherwise: pass the gateway's --state-dir (or --store file:/abs/dir), or "
                "set SERENA_R2_STATE_ENABLED=1 for S3/R2\n",
                me, sc->dir,
                a->store ? "--store"
                         : "the default, file:<state-dir>/snapshots, with --state-dir "
                           "or SERENA_REMOTE_STATE_DIR");
        return 2;
    }
    return 0;
}

/*
 * The partitions to work on, as `serve` (or `run`) names them. Returns how
 * many (at least one), or -2 with a message.
 */
static int resolve_targets(const char *me, const struct snap_args *a, const struct sr_config *cfg,
                           struct target *t, size_t cap)
{
    const char *mode = sr_config_get(cfg, SR_SET_R2_PARTITION);
    const char *gen = sr_config_get(cfg, SR_SET_GENERATION);
    if (a->partition) {
        memset(&t[0], 0, sizeof(t[0]));
        snprintf(t[0].partition, sizeof(t[0].partition), "%s", a->partition);
        return 1;
    }
    const char *iid = sr_config_instance_id(cfg);
    const char *one = a->route ? a->route : iid ? "run" : NULL;
    if (one) {
        memset(&t[0], 0, sizeof(t[0]));
        snprintf(t[0].name, sizeof(t[0].name), "%s", one);
        if (sr_route_name(gen, one, t[0].route, sizeof(t[0].route)) < 0 ||
            sr_route_partition(mode, iid, t[0].route, one, t[0].partition, sizeof(t[0].partition)) <
                0) {
            fprintf(stderr, "serena-remote %s: cannot name the partition of %s\n", me, one);
            return -2;
        }
        return 1;
    }
    char err[512];
    struct sr_tokens *tok = sr_config_tokens(cfg, err, sizeof(err));
    if (!tok) {
        fprintf(stderr,
                "serena-remote %s: %s. The snapshots are kept per route: give --route NAME (a "
                "token name) or --partition NAME, or the gateway's token settings (--tokens-file, "
                "--env-file)\n",
                me, err);
        return -2;
    }
    size_t n = 0;
    for (uint32_t i = 0; i < tok->count && n < cap; i++) {
        struct target *x = &t[n];
        memset(x, 0, sizeof(*x));
        snprintf(x->name, sizeof(x->name), "%s", tok->e[i].name);
        if (sr_route_name(gen, x->name, x->route, sizeof(x->route)) < 0 ||
            sr_route_partition(mode, NULL, x->route, x->name, x->partition, sizeof(x->partition)) <
                0)
            continue;
        /* Mode shared: every route writes the same partition; list it once. */
        bool dup = false;
        for (size_t k = 0; k < n; k++)
            dup = dup || strcmp(t[k].partition, x->partition) == 0;
        if (!dup)
            n++;
    }
    free(tok);
    return (int)n;
}

/* ---- the listing of several routes --------------------------------------- */

static void human_size(uint64_t n, char *out, size_t cap)
{
    if (n >= 1024u * 1024u)
        snprintf(out, cap, "%.1f MiB", (double)n / (1024.0 * 1024.0));
    else if (n >= 1024u)
        snprintf(out, cap, "%.1f KiB", (double)n / 1024.0);
    else
        snprintf(out, cap, "%llu B", (unsigned long long)n);
}

static void human_age(int64_t created, int64_t now, char *out, size_t cap)
{
    int64_t d = created ? now - created : -1;
    if (d < 0)
        snprintf(out, cap, "?");
    else if (d < 120)
        snprintf(out, cap, "%llds", (long long)d);
    else if (d < 7200)
        snprintf(out, cap, "%lldm", (long long)(d / 60));
    else if (d < 2 * 86400)
        snprintf(out, cap, "%lldh", (long long)(d / 3600));
    else
        snprintf(out, cap, "%lldd", (long long)(d / 86400));
}

/* The time in an archive's name, "<yyyymmddThhmmssZ>-<seq>.tar.zst"; 0 when it has none. */
static int64_t key_time(const char *key)
{
    const char *base = strrchr(key, '/');
    base = base ? base + 1 : key;
    struct tm tm;
    memset(&tm, 0, sizeof(tm));
    if (sscanf(base, "%4d%2d%2dT%2d%2d%2dZ", &tm.tm_year, &tm.tm_mon, &tm.tm_mday, &tm.tm_hour,
               &tm.tm_min, &tm.tm_sec) != 6)
        return 0;
    tm.tm_year -= 1900;
    tm.tm_mon -= 1;
    return (int64_t)timegm(&tm);
}

struct listing {
    struct sr_manifest *m;
    char prefix[SR_MANIFEST_KEY_MAX + 8];
};

static int on_object(void *arg, const struct sr_store_object *o)
{
    struct listing *l = arg;
    size_t n = strlen(o->key), pl = strlen(l->prefix);
    /* Archives directly in the partition; newer keys sort later, the ring keeps the newest. */
    if (n <= pl + 8 || strcmp(o->key + n - 8, ".tar.zst") != 0 || strchr(o->key + pl, '/'))
        return 0;
    struct sr_manifest *m = l->m;
    if (m->n == SR_MANIFEST_MAX)
        memmove(&m->e[0], &m->e[1], sizeof(m->e[0]) * (SR_MANIFEST_MAX - 1));
    else
        m->n++;
    struct sr_manifest_entry *e = &m->e[m->n - 1];
    memset(e, 0, sizeof(*e));
    snprintf(e->key, sizeof(e->key), "%s", o->key);
    e->size = o->size;
    e->created = key_time(o->key);
    if (!e->created)
        e->created = o->mtime;
    return 0;
}

/*
 * One partition's snapshots, newest first: from its manifest, or (missing or
 * unreadable) from a listing of its archives. *source says which. 0, or a
 * store error with err.
 */
static int partition_snapshots(struct sr_store *s, const char *prefix, const char *partition,
                               struct sr_manifest *m, const char **source, char *err, size_t errlen)
{
    char key[SR_MANIFEST_KEY_MAX + 32], why[256];
    char *data = NULL;
    size_t n = 0;
    memset(m, 0, sizeof(*m));
    snprintf(key, sizeof(key), "%s/%s/manifest.json", prefix, partition);
    int rc = sr_store_get_bytes(s, key, SR_MANIFEST_MAX_BYTES, &data, &n, err, errlen);
    if (rc == 0 && sr_manifest_parse(m, data, n, why, sizeof(why)) == 0) {
        free(data);
        *source = "manifest";
        return 0;
    }
    free(data);
    if (rc < 0 && rc != SR_STORE_E_NOTFOUND && rc != SR_STORE_E_CORRUPT)
        return rc;
    struct listing l = {.m = m};
    memset(m, 0, sizeof(*m));
    snprintf(l.prefix, sizeof(l.prefix), "%s/%s/", prefix, partition);
    rc = sr_store_list(s, l.prefix, on_object, &l, err, errlen);
    if (rc < 0 && rc != SR_STORE_E_NOTFOUND)
        return rc;
    /* The listing came oldest first. */
    for (uint32_t i = 0; i < m->n / 2; i++) {
        struct sr_manifest_entry tmp = m->e[i];
        m->e[i] = m->e[m->n - 1 - i];
        m->e[m->n - 1 - i] = tmp;
    }
    *source = m->n ? "listing" : "none";
    return 0;
}

#define COLS 5

static int list_routes(struct sr_store *s, const struct sr_config *cfg, const struct target *t,
                       size_t nt, bool json, char *err, size_t errlen)
{
    const char *prefix = sr_config_get(cfg, SR_SET_R2_PREFIX);
    struct sr_manifest *m = calloc(nt ? nt : 1, sizeof(*m));
    const char **source = calloc(nt ? nt : 1, sizeof(*source));
    int rc = 0;
    if (!m || !source) {
        snprintf(err, errlen, "out of memory");
        rc = SR_STORE_E_IO;
        goto out;
    }
    for (size_t i = 0; i < nt; i++) {
        rc = partition_snapshots(s, prefix, t[i].partition, &m[i], &source[i], err, errlen);
        if (rc < 0)
            goto out;
    }
    int64_t now = (int64_t)time(NULL);
    if (json) {
        size_t cap = 4096 + nt * (size_t)SR_MANIFEST_MAX * 700u;
        char *buf = malloc(cap);
        struct sr_jw w;
        size_t len = 0;
        if (!buf) {
            snprintf(err, errlen, "out of memory");
            rc = SR_STORE_E_IO;
            goto out;
        }
        sr_jw_init(&w, buf, cap);
        sr_jw_obj_begin(&w);
        sr_jw_key(&w, "store");
        sr_jw_cstr(&w, sr_store_describe(s));
        sr_jw_key(&w, "prefix");
        sr_jw_cstr(&w, prefix);
        sr_jw_key(&w, "partition_mode");
        sr_jw_cstr(&w, sr_config_get(cfg, SR_SET_R2_PARTITION));
        sr_jw_key(&w, "routes");
        sr_jw_arr_begin(&w);
        for (size_t i = 0; i < nt; i++) {
            sr_jw_obj_begin(&w);
            sr_jw_key(&w, "name");
            sr_jw_cstr(&w, t[i].name);
            sr_jw_key(&w, "route");
            sr_jw_cstr(&w, t[i].route);
            sr_jw_key(&w, "partition");
            sr_jw_cstr(&w, t[i].partition);
            sr_jw_key(&w, "source");
            sr_jw_cstr(&w, source[i]);
            sr_jw_key(&w, "snapshots");
            sr_jw_arr_begin(&w);
            for (uint32_t k = 0; k < m[i].n; k++) {
                const struct sr_manifest_entry *e = &m[i].e[k];
                sr_jw_obj_begin(&w);
                sr_jw_key(&w, "key");
                sr_jw_cstr(&w, e->key);
                sr_jw_key(&w, "size");
                sr_jw_int(&w, (int64_t)e->size);
                sr_jw_key(&w, "created");
                sr_jw_int(&w, e->created);
                sr_jw_key(&w, "age_seconds");
                sr_jw_int(&w, e->created ? now - e->created : -1);
                if (e->sha256[0]) {
                    sr_jw_key(&w, "sha256");
                    sr_jw_cstr(&w, e->sha256);
                    sr_jw_key(&w, "files");
                    sr_jw_int(&w, (int64_t)e->files);
                }
                sr_jw_obj_end(&w);
            }
            sr_jw_arr_end(&w);
            sr_jw_obj_end(&w);
        }
        sr_jw_arr_end(&w);
        sr_jw_obj_end(&w);
        if (sr_jw_finish(&w, &len) == 0) {
            fwrite(buf, 1, len, stdout);
            fputc('\n', stdout);
        } else {
            snprintf(err, errlen, "the listing does not fit its buffer");
            rc = SR_STORE_E_IO;
        }
        free(buf);
        goto out;
    }
    printf("store %s, prefix %s, partition mode %s\n\n", sr_store_describe(s), prefix,
           sr_config_get(cfg, SR_SET_R2_PARTITION));
    /* Rows: every snapshot of every route; a route without any gets one row saying so. */
    static const char *head[COLS] = {"NAME", "PARTITION", "SNAPSHOT", "SIZE", "AGE"};
    size_t width[COLS];
    for (int c = 0; c < COLS; c++)
        width[c] = strlen(head[c]);
    for (int pass = 0; pass < 2; pass++) {
        if (pass == 1) {
            for (int c = 0; c < COLS; c++)
                printf("%-*s%s", c + 1 < COLS ? (int)width[c] : 0, head[c],
                       c + 1 < COLS ? "  " : "\n");
        }
        for (size_t i = 0; i < nt; i++)
            for (uint32_t k = 0; k < (m[i].n ? m[i].n : 1); k++) {
                char cells[COLS][SR_MANIFEST_KEY_MAX];
                const struct sr_manifest_entry *e = m[i].n ? &m[i].e[k] : NULL;
                snprintf(cells[0], sizeof(cells[0]), "%s", t[i].name[0] ? t[i].name : "-");
                snprintf(cells[1], sizeof(cells[1]), "%s", t[i].partition);
                if (e) {
                    const char *base = strrchr(e->key, '/');
                    snprintf(cells[2], sizeof(cells[2]), "%s", base ? base + 1 : e->key);
                    human_size(e->size, cells[3], sizeof(cells[3]));
                    human_age(e->created, now, cells[4], sizeof(cells[4]));
                } else {
                    snprintf(cells[2], sizeof(cells[2]), "(none)");
                    snprintf(cells[3], sizeof(cells[3]), "-");
                    snprintf(cells[4], sizeof(cells[4]), "-");
                }
                for (int c = 0; c < COLS; c++) {
                    if (pass == 0 && strlen(cells[c]) > width[c])
                        width[c] = strlen(cells[c]);
                    if (pass == 1)
                        printf("%-*s%s", c + 1 < COLS ? (int)width[c] : 0, cells[c],
                               c + 1 < COLS ? "  " : "\n");
                }
            }
    }
    for (size_t i = 0; i < nt; i++)
        if (strcmp(source[i], "listing") == 0)
            printf("(%s: from a listing of the store: its manifest is missing or unreadable)\n",
                   t[i].partition);
out:
    fflush(stdout);
    free(m);
    free(source);
    return rc;
}

/* ---- the commands ---------------------------------------------------------- */

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
    struct sr_config cfg;
    struct sr_store_config sc;
    struct sr_snapshot_opts o;
    struct sr_snapshot_result r;
    struct sr_store *s = NULL;
    struct target *t = NULL;
    char storebuf[4096], err[1024] = "";
    int rc = parse_args(c, argc, argv, &a);
    if (rc)
        return rc == 1 ? 0 : rc;
    if (load_settings(me, &a, &cfg))
        return 2;
    rc = 2;
    if (resolve_store(me, c, &a, &cfg, &sc, storebuf, sizeof(storebuf)))
        goto out;
    t = calloc(SR_TOKENS_MAX + 1, sizeof(*t));
    if (!t) {
        fprintf(stderr, "serena-remote %s: out of memory\n", me);
        goto out;
    }
    int nt = resolve_targets(me, &a, &cfg, t, SR_TOKENS_MAX + 1);
    if (nt < 0)
        goto out;
    if (c != CMD_LIST && nt != 1) {
        fprintf(stderr, "serena-remote %s: the configuration has %d routes (", me, nt);
        for (int i = 0; i < nt; i++)
            fprintf(stderr, "%s%s", i ? ", " : "", t[i].name);
        fprintf(stderr, "): choose one with --route NAME\n");
        goto out;
    }
    memset(&o, 0, sizeof(o));
    o.prefix = sr_config_get(&cfg, SR_SET_R2_PREFIX);
    o.partition = t[0].partition;
    o.excludes = sr_config_get(&cfg, SR_SET_SNAPSHOT_EXCLUDE);
    o.work = a.workspace;
    o.cache = a.cache;
    o.retention = cfg.r2_retention;
    o.force = a.force;
    o.progress = isatty(2) && !a.json;
    if (sr_store_open(&sc, &s, err, sizeof(err)) < 0) {
        fprintf(stderr, "serena-remote %s: %s\n", me, err);
        goto out;
    }
    memset(&r, 0, sizeof(r));
    if (c == CMD_TAKE)
        rc = sr_snapshot_take(s, &o, a.state, &r, err, sizeof(err));
    else if (c == CMD_RESTORE)
        rc = sr_snapshot_restore(s, &o, a.state, a.key, &r, err, sizeof(err));
    else if (a.partition)
        rc = sr_snapshot_list(s, &o, a.json, err, sizeof(err));
    else
        rc = list_routes(s, &cfg, t, (size_t)nt, a.json, err, sizeof(err));
    if (rc < 0) {
        fprintf(stderr, "serena-remote %s: %s\n", me, err);
        rc = rc == SR_STORE_E_CONFIG ? 2 : 1;
        goto out;
    }
    rc = 0;
    if (c == CMD_LIST)
        goto out;
    if (t[0].name[0] && !a.json)
        fprintf(stderr, "%s: partition %s\n", t[0].name, t[0].partition);
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
    free(t);
    sr_config_free(&cfg);
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
