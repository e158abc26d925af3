/*
 * `serena-remote status`: the admin listener's instance listing as a table
 * (or its JSON with --json), for a person at a terminal on the gateway's
 * machine.
 *
 * A plain blocking HTTP/1.1 GET with Connection: close: this is a one-shot
 * command, so no event loop; the answer is bounded (SR_ADMIN_REPLY_MAX) and
 * parsed with the project's own HTTP head parser and strict JSON reader.
 * ADMIN_TOKEN, when set in the environment, is sent as a Bearer token.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include "cmd/cmd.h"
#include "core/json.h"
#include "core/limits.h"
#include "http/parse.h"
#include "http/util.h"

#define DEFAULT_ADMIN "127.0.0.1:8788"
#define IO_TIMEOUT_S  10
/* Columns of the table: at most this many rows are shown; the JSON has them all. */
#define ROWS_MAX 1024

static void usage(FILE *f)
{
    fprintf(f, "Usage: serena-remote status [--admin URL] [--json]\n\n"
               "Lists every route of a running gateway (state, pid, port, memory, times,\n"
               "restarts, project, last snapshot, last error) from its admin listener.\n\n"
               "  --admin URL   the admin listener, http://HOST:PORT (default: from\n"
               "                SERENA_REMOTE_ADMIN_LISTEN, else http://" DEFAULT_ADMIN ")\n"
               "  --json        print the listing as the gateway sends it (GET /instances)\n\n"
               "ADMIN_TOKEN in the environment is sent as a Bearer token (the plaintext\n"
               "token: a sha256: value cannot be sent).\n");
}

/* "http://host:port[/...]" or "host:port" -> "host:port". */
static int admin_hostport(const char *url, char *out, size_t cap)
{
    if (strncmp(url, "https://", 8) == 0)
        return -1;
    if (strncmp(url, "http://", 7) == 0)
        url += 7;
    size_t n = strcspn(url, "/");
    if (n == 0 || n >= cap)
        return -1;
    memcpy(out, url, n);
    out[n] = '\0';
    return 0;
}

/* GET path from hostport: the whole answer in *resp (heap). 0, or -1 with errno. */
static int fetch(const char *hostport, const char *path, char **resp, size_t *len)
{
    struct sockaddr_storage ss;
    socklen_t sslen;
    if (sr_parse_hostport(hostport, &ss, &sslen) < 0) {
        errno = EINVAL;
        return -1;
    }
    int fd = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    struct timeval tv = {IO_TIMEOUT_S, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
    if (connect(fd, (struct sockaddr *)&ss, sslen) < 0) {
        int e = errno;
        close(fd);
        errno = e;
        return -1;
    }
    const char *tok = getenv("ADMIN_TOKEN");
    bool send_tok = tok && *tok && strncmp(tok, "sha256:", 7) != 0;
    char req[SR_TOKEN_MAX_LEN + 512];
    int n = snprintf(req, sizeof(req),
                     "GET %s HTTP/1.1\r\nHost: %s\r\nAccept: application/json\r\n%s%s%s"
                     "Connection: close\r\n\r\n",
                     path, hostport, send_tok ? "Authorization: Bearer " : "", send_tok ? tok : "",
                     send_tok ? "\r\n" : "");
    if (n < 0 || (size_t)n >= sizeof(req) || write(fd, req, (size_t)n) != n) {
        int e = errno ? errno : EMSGSIZE;
        close(fd);
        errno = e;
        return -1;
    }
    char *buf = malloc(SR_ADMIN_REPLY_MAX + 1);
    size_t got = 0;
    while (buf && got < SR_ADMIN_REPLY_MAX) {
        ssize_t r = read(fd, buf + got, SR_ADMIN_REPLY_MAX - got);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            break;
        got += (size_t)r;
    }
    close(fd);
    if (!buf) {
        errno = ENOMEM;
        return -1;
    }
    buf[got] = '\0';
    *resp = buf;
    *len = got;
    return 0;
}

/* Unix seconds of "YYYY-MM-DDTHH:MM:SSZ", 0 when it is not one. */
static int64_t iso_time(const char *s)
{
    struct tm tm;
    memset(&tm, 0, sizeof(tm));
    if (!s || sscanf(s, "%4d-%2d-%2dT%2d:%2d:%2dZ", &tm.tm_year, &tm.tm_mon, &tm.tm_mday,
                     &tm.tm_hour, &tm.tm_min, &tm.tm_sec) != 6)
        return 0;
    tm.tm_year -= 1900;
    tm.tm_mon -= 1;
    return (int64_t)timegm(&tm);
}

static void ago(int64_t secs, char *out, size_t cap)
{
    if (secs < 0)
        secs = 0;
    if (secs < 120)
        snprintf(out, cap, "%llds", (long long)secs);
    else if (secs < 7200)
        snprintf(out, cap, "%lldm", (long long)(secs / 60));
    else if (secs < 2 * 86400)
        snprintf(out, cap, "%lldh", (long long)(secs / 3600));
    else
        snprintf(out, cap, "%lldd", (long long)(secs / 86400));
}

static void size_text(int64_t n, char *out, size_t cap)
{
    if (n >= 1024 * 1024)
        snprintf(out, cap, "%.1f MiB", (double)n / (1024.0 * 1024.0));
    else if (n >= 1024)
        snprintf(out, cap, "%.1f KiB", (double)n / 1024.0);
    else
        snprintf(out, cap, "%lld B", (long long)n);
}

enum col {
    C_NAME,
    C_STATE,
    C_PID,
    C_PORT,
    C_MEM,
    C_UP,
    C_IDLE,
    C_SLEEP,
    C_RESTARTS,
    C_PROJECT,
    C_SNAP,
    C_ERROR,
    C_COUNT
};
static const char *const k_head[C_COUNT] = {"NAME",     "STATE",   "PID",           "PORT",
                                            "MEMORY",   "UP",      "IDLE",          "SLEEPS IN",
                                            "RESTARTS", "PROJECT", "LAST SNAPSHOT", "LAST ERROR"};
#define CELL_MAX 160

/* A string member of object obj, decoded into out ("" when absent or null). */
static void member_str(const struct sr_json_doc *d, uint32_t obj, const char *key, char *out,
                       size_t cap)
{
    int32_t v = sr_json_obj_get(d, obj, key, strlen(key));
    size_t n = 0;
    out[0] = '\0';
    if (v < 0 || d->toks[v].type != SR_JSON_STRING ||
        sr_json_str_decode(d, (uint32_t)v, out, cap - 1, &n) != 0) {
        out[0] = '\0';
        return;
    }
    out[n] = '\0';
    /* A table cell is one line. */
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)out[i] < 0x20)
            out[i] = ' ';
}

static int64_t member_int(const struct sr_json_doc *d, uint32_t obj, const char *key, bool *set)
{
    int32_t v = sr_json_obj_get(d, obj, key, strlen(key));
    int64_t x = 0;
    *set = v >= 0 && d->toks[v].type == SR_JSON_NUMBER && sr_json_int64(d, (uint32_t)v, &x) == 0;
    return *set ? x : 0;
}

static void row_cells(const struct sr_json_doc *d, uint32_t o, int64_t now,
                      char cells[C_COUNT][CELL_MAX])
{
    char tmp[CELL_MAX], when[32];
    bool set;
    member_str(d, o, "name", cells[C_NAME], CELL_MAX);
    member_str(d, o, "state", cells[C_STATE], CELL_MAX);
    int64_t v = member_int(d, o, "pid", &set);
    snprintf(cells[C_PID], CELL_MAX, set ? "%lld" : "-", (long long)v);
    v = member_int(d, o, "port", &set);
    snprintf(cells[C_PORT], CELL_MAX, set ? "%lld" : "-", (long long)v);
    v = member_int(d, o, "rss_bytes", &set);
    if (set)
        size_text(v, cells[C_MEM], CELL_MAX);
    else
        snprintf(cells[C_MEM], CELL_MAX, "-");
    member_str(d, o, "ready", tmp, sizeof(tmp));
    int64_t t = iso_time(tmp);
    bool running = cells[C_PID][0] != '-';
    if (t && running)
        ago(now - t, cells[C_UP], CELL_MAX);
    else
        snprintf(cells[C_UP], CELL_MAX, "-");
    member_str(d, o, "last_activity", tmp, sizeof(tmp));
    t = iso_time(tmp);
    if (t)
        ago(now - t, cells[C_IDLE], CELL_MAX);
    else
        snprintf(cells[C_IDLE], CELL_MAX, "-");
    v = member_int(d, o, "sleep_in_seconds", &set);
    if (set)
        ago(v, cells[C_SLEEP], CELL_MAX);
    else
        snprintf(cells[C_SLEEP], CELL_MAX, "-");
    v = member_int(d, o, "restarts", &set);
    snprintf(cells[C_RESTARTS], CELL_MAX, "%lld", (long long)v);
    member_str(d, o, "project", cells[C_PROJECT], CELL_MAX);
    if (!cells[C_PROJECT][0])
        snprintf(cells[C_PROJECT], CELL_MAX, "-");
    int32_t snap = sr_json_obj_get(d, o, "last_snapshot", 13);
    if (snap >= 0 && d->toks[snap].type == SR_JSON_OBJECT) {
        member_str(d, (uint32_t)snap, "time", tmp, sizeof(tmp));
        ago(now - iso_time(tmp), when, sizeof(when));
        v = member_int(d, (uint32_t)snap, "size", &set);
        size_text(v, tmp, sizeof(tmp));
        snprintf(cells[C_SNAP], CELL_MAX, "%s ago, %s", when, tmp);
    } else {
        snprintf(cells[C_SNAP], CELL_MAX, "-");
    }
    member_str(d, o, "last_error", cells[C_ERROR], CELL_MAX);
    if (!cells[C_ERROR][0])
        snprintf(cells[C_ERROR], CELL_MAX, "-");
}

static int print_table(const char *body, size_t n, const char *url)
{
    struct sr_json_tok *toks = malloc(sizeof(*toks) * SR_JSON_MAX_TOKENS);
    struct sr_json_doc d;
    char(*cells)[C_COUNT][CELL_MAX] = calloc(ROWS_MAX, sizeof(*cells));
    int rc = 1;
    if (!toks || !cells) {
        fprintf(stderr, "serena-remote status: out of memory\n");
        goto out;
    }
    if (sr_json_parse(&d, body, n, toks, SR_JSON_MAX_TOKENS, NULL) != 0 ||
        toks[0].type != SR_JSON_OBJECT) {
        fprintf(stderr,
                "serena-remote status: %s/instances did not answer with a JSON listing: is that "
                "a serena-remote admin listener?\n",
                url);
        goto out;
    }
    char role[32], version[32], gen[80], listen[96];
    bool set;
    member_str(&d, 0, "role", role, sizeof(role));
    member_str(&d, 0, "version", version, sizeof(version));
    member_str(&d, 0, "generation", gen, sizeof(gen));
    member_str(&d, 0, "listen", listen, sizeof(listen));
    int64_t up = member_int(&d, 0, "uptime_seconds", &set);
    int64_t ntok = member_int(&d, 0, "tokens", &set);
    char upt[32];
    ago(up, upt, sizeof(upt));
    printf("serena-remote %s (%s) on %s, generation %s, %lld token(s), up %s\n\n", version, role,
           listen, gen, (long long)ntok, upt);
    int32_t arr = sr_json_obj_get(&d, 0, "instances", 9);
    if (arr < 0 || toks[arr].type != SR_JSON_ARRAY) {
        fprintf(stderr, "serena-remote status: the listing has no instances array\n");
        goto out;
    }
    int64_t now = (int64_t)time(NULL);
    size_t rows = 0;
    for (uint32_t i = (uint32_t)arr + 1; i < toks[arr].end && rows < ROWS_MAX; i = toks[i].end)
        if (toks[i].type == SR_JSON_OBJECT)
            row_cells(&d, i, now, cells[rows++]);
    size_t width[C_COUNT];
    for (int c = 0; c < C_COUNT; c++) {
        width[c] = strlen(k_head[c]);
        for (size_t r = 0; r < rows; r++)
            if (strlen(cells[r][c]) > width[c])
                width[c] = strlen(cells[r][c]);
    }
    /* Every column padded to its widest cell, the last one (errors) left as long as it is. */
    for (int c = 0; c < C_COUNT; c++)
        printf("%-*s%s", c + 1 < C_COUNT ? (int)width[c] : 0, k_head[c],
               c + 1 < C_COUNT ? "  " : "\n");
    for (size_t r = 0; r < rows; r++)
        for (int c = 0; c < C_COUNT; c++)
            printf("%-*s%s", c + 1 < C_COUNT ? (int)width[c] : 0, cells[r][c],
                   c + 1 < C_COUNT ? "  " : "\n");
    if (rows == 0)
        printf("(no routes: no token is configured)\n");
    rc = 0;
out:
    free(toks);
    free(cells);
    return rc;
}

int sr_cmd_status(int argc, char **argv)
{
    const char *url = NULL;
    bool json = false;
    for (int i = 0; i < argc; i++) {
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            usage(stdout);
            return 0;
        }
        if (strcmp(argv[i], "--json") == 0) {
            json = true;
        } else if (strcmp(argv[i], "--admin") == 0 && i + 1 < argc) {
            url = argv[++i];
        } else if (strncmp(argv[i], "--admin=", 8) == 0) {
            url = argv[i] + 8;
        } else {
            fprintf(stderr, "serena-remote status: unknown option '%s' (try --help)\n", argv[i]);
            return 2;
        }
    }
    const char *env = getenv("SERENA_REMOTE_ADMIN_LISTEN");
    if (!url && env && *env && strcmp(env, "off") != 0)
        url = env;
    if (!url)
        url = DEFAULT_ADMIN;
    char hostport[128], shown[160];
    if (admin_hostport(url, hostport, sizeof(hostport)) < 0) {
        fprintf(stderr,
                "serena-remote status: --admin %s is not an admin listener address: give "
                "http://HOST:PORT (plain HTTP, as --admin-listen serves)\n",
                url);
        return 2;
    }
    snprintf(shown, sizeof(shown), "http://%s", hostport);
    char *resp = NULL;
    size_t len = 0;
    if (fetch(hostport, "/instances", &resp, &len) < 0) {
        fprintf(stderr,
                "serena-remote status: no gateway answers on %s (%s). Is one running? Start it "
                "with `make run` or `serena-remote serve`; if it runs with another "
                "--admin-listen, pass --admin http://HOST:PORT (with --admin-listen off it has "
                "no listing).\n",
                shown, strerror(errno));
        return 1;
    }
    struct sr_http_head h;
    int hl = sr_http_parse_response(resp, len, SR_MAX_HEADERS, &h);
    int rc = 1;
    if (hl <= 0) {
        fprintf(stderr,
                "serena-remote status: %s did not answer with HTTP: is that the admin "
                "listener (--admin-listen), not the client listener?\n",
                shown);
        goto out;
    }
    const char *body = resp + hl;
    size_t blen = len - (size_t)hl;
    if (h.status == 401) {
        fprintf(stderr,
                "serena-remote status: %s requires the gateway's admin token: set ADMIN_TOKEN "
                "in the environment (the plaintext token)%s\n",
                shown, getenv("ADMIN_TOKEN") ? "; the one set was refused" : "");
        goto out;
    }
    if (h.status != 200) {
        fprintf(stderr, "serena-remote status: %s/instances answered HTTP %d: %.*s\n", shown,
                h.status, (int)(blen > 400 ? 400 : blen), body);
        goto out;
    }
    if (json) {
        fwrite(body, 1, blen, stdout);
        rc = 0;
        goto out;
    }
    rc = print_table(body, blen, shown);
out:
    free(resp);
    return rc;
}
