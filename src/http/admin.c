/*
 * The admin listener (see admin.h): metrics, the instance listing and the
 * status page, each built at request time from the edge, the instance
 * manager and the client listener. Answers are small (a few KiB per route)
 * and built into one evbuffer; nothing is cached, so what an operator sees
 * is the state of that moment.
 */
#include "http/admin.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <arpa/inet.h>
#include <netinet/in.h>

#include <openssl/crypto.h>
#include <openssl/sha.h>

#include "core/auth.h"
#include "core/errors.h"
#include "core/json.h"
#include "core/route.h"
#include "http/util.h"
#include "metrics/metrics.h"

/* Refresh period of the status page, seconds. */
#define PAGE_REFRESH 5

/* ---- access ----------------------------------------------------------------- */

static int hexval(char c)
{
    return c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

int sr_admin_set_token(struct sr_admin *a, const char *v, char *err, size_t errlen)
{
    size_t n = strlen(v);
    if (n == 71 && strncmp(v, "sha256:", 7) == 0) {
        for (size_t i = 0; i < 32; i++) {
            int hi = hexval(v[7 + 2 * i]), lo = hexval(v[8 + 2 * i]);
            if (hi < 0 || lo < 0) {
                snprintf(err, errlen,
                         "ADMIN_TOKEN is invalid: a sha256: value needs 64 lower-case hex digits");
                return -1;
            }
            a->token_digest[i] = (uint8_t)(hi << 4 | lo);
        }
        a->has_token = true;
        return 0;
    }
    /* The token must be sendable as a Bearer credential: the same rule as the client tokens. */
    char hdr[SR_TOKEN_MAX_LEN + 16];
    const char *tok;
    size_t toklen;
    int w = snprintf(hdr, sizeof(hdr), "Bearer %s", v);
    if (n < SR_TOKEN_MIN_LEN || w < 0 || (size_t)w >= sizeof(hdr) ||
        sr_auth_parse_bearer(hdr, (size_t)w, &tok, &toklen) < 0 || toklen != n) {
        OPENSSL_cleanse(hdr, sizeof(hdr));
        snprintf(err, errlen,
                 "ADMIN_TOKEN is invalid: use at least %d characters from A-Z a-z 0-9 - . _ ~ + / "
                 "(`serena-remote token` makes one), or its sha256:<hex> form",
                 SR_TOKEN_MIN_LEN);
        return -1;
    }
    SHA256((const unsigned char *)v, n, a->token_digest);
    OPENSSL_cleanse(hdr, sizeof(hdr));
    a->has_token = true;
    return 0;
}

/* A Host header naming loopback: localhost, 127.x.y.z or [::1], with or without a port. */
static bool host_is_loopback(const char *h, size_t n)
{
    char buf[80];
    if (n == 0 || n >= sizeof(buf) - 8)
        return false;
    memcpy(buf, h, n);
    buf[n] = '\0';
    /* sr_parse_hostport wants a port: give it one when the header has none. */
    bool has_port =
        buf[n - 1] != ']' && strrchr(buf, ':') && (buf[0] != '[' || strstr(buf, "]:") != NULL);
    if (!has_port)
        snprintf(buf + n, sizeof(buf) - n, ":80");
    return sr_hostport_is_loopback(buf);
}

static void refuse(struct sr_req *r, int status, const char *extra, const char *msg)
{
    char body[SR_ERROR_BODY_MAX];
    int n = sr_error_body(body, sizeof(body), status == 401 ? SR_RPC_UNAUTHORIZED : -32600, msg,
                          NULL, 0);
    sr_resp_json(r, status, extra, body, n < 0 ? 0 : (size_t)n);
}

static bool allowed(struct sr_admin *a, struct sr_req *r)
{
    size_t n;
    if (a->has_token) {
        const char *v = sr_req_header(r, "authorization", &n);
        const char *tok;
        size_t toklen;
        uint8_t d[SHA256_DIGEST_LENGTH];
        if (!v || sr_auth_parse_bearer(v, n, &tok, &toklen) < 0) {
            refuse(r, 401, "WWW-Authenticate: Bearer realm=\"serena-remote admin\"\r\n",
                   "This admin listener requires its ADMIN_TOKEN: send Authorization: Bearer "
                   "<ADMIN_TOKEN> (serena-remote status reads it from the environment).");
            return false;
        }
        SHA256((const unsigned char *)tok, toklen, d);
        if (CRYPTO_memcmp(d, a->token_digest, sizeof(d)) != 0) {
            refuse(r, 401, "WWW-Authenticate: Bearer realm=\"serena-remote admin\"\r\n",
                   "The admin token is wrong: send the gateway's ADMIN_TOKEN as a Bearer token.");
            return false;
        }
        return true;
    }
    const char *host = sr_req_header(r, "host", &n);
    if (!host || !host_is_loopback(host, n)) {
        refuse(r, 403, NULL,
               "This admin listener answers only requests addressed to a loopback name "
               "(127.0.0.1, localhost, [::1]); set ADMIN_TOKEN to reach it by another name.");
        return false;
    }
    return true;
}

/* ---- what every view shows --------------------------------------------------- */

/* One route of the listing: an instance record, or a token whose route never started. */
struct row {
    struct sr_inst_info info;
};

static int row_cmp(const void *x, const void *y)
{
    const struct sr_inst_info *a = &((const struct row *)x)->info;
    const struct sr_inst_info *b = &((const struct row *)y)->info;
    int c = strcmp(a->token_name, b->token_name);
    return c ? c : strcmp(a->route, b->route);
}

/*
 * Every route: each token of the current generation (with its instance
 * record, or a "not-started" one), then instance records of other routes (an
 * old generation still draining, a token removed by SIGHUP). Heap array in
 * *out (caller frees), route strings of synthesized rows in `names`.
 */
static size_t collect(struct sr_admin *a, struct row **out, char (**names)[SR_ROUTE_MAX + 1])
{
    struct sr_edge *e = a->edge;
    size_t ntok = e->tokens ? e->tokens->count : 0;
    size_t ninst = e->instances ? sr_instances_count(e->instances) : 0;
    struct sr_inst_info *infos = calloc(ninst ? ninst : 1, sizeof(*infos));
    struct row *rows = calloc(ntok + ninst + 1, sizeof(*rows));
    *names = calloc(ntok + 1, sizeof(**names));
    *out = rows;
    if (!infos || !rows || !*names) {
        free(infos);
        return 0;
    }
    ninst = e->instances ? sr_instances_list(e->instances, infos, ninst, true) : 0;
    bool *used = calloc(ninst + 1, sizeof(*used));
    size_t n = 0;
    for (size_t t = 0; t < ntok; t++) {
        const char *name = e->tokens->e[t].name;
        char *route = (*names)[t];
        if (sr_route_name(e->policy.generation, name, route, SR_ROUTE_MAX + 1) < 0)
            continue;
        size_t k = 0;
        while (k < ninst && strcmp(infos[k].route, route) != 0)
            k++;
        if (k < ninst) {
            rows[n++].info = infos[k];
            if (used)
                used[k] = true;
            continue;
        }
        struct sr_inst_info *i = &rows[n++].info;
        i->route = route;
        i->token_name = name;
        i->generation = e->policy.generation;
        i->state = e->instances ? "not-started" : "upstream";
        i->project = i->last_error = i->persistence = i->snap_key = "";
        i->log_path = "";
        i->sleep_in = -1;
    }
    size_t first_other = n;
    for (size_t k = 0; k < ninst; k++)
        if (!used || !used[k])
            rows[n++].info = infos[k];
    qsort(rows, first_other, sizeof(*rows), row_cmp);
    qsort(rows + first_other, n - first_other, sizeof(*rows), row_cmp);
    free(used);
    free(infos);
    return n;
}

static void respond(struct sr_req *r, const char *ctype, const char *extra, struct evbuffer *body)
{
    struct evbuffer *hl = evbuffer_new();
    if (hl) {
        evbuffer_add_printf(hl,
                            "Content-Type: %s\r\nCache-Control: no-store\r\n"
                            "X-Content-Type-Options: nosniff\r\n%s",
                            ctype, extra ? extra : "");
    }
    sr_resp_start(r, 200, NULL, 0, hl, (int64_t)evbuffer_get_length(body));
    if (hl)
        evbuffer_free(hl);
    sr_resp_body(r, body);
    sr_resp_end(r);
}

/* ---- GET /metrics ------------------------------------------------------------ */

static void answer_metrics(struct sr_admin *a, struct sr_req *r, struct evbuffer *b)
{
    struct sr_edge *e = a->edge;
    struct sr_metrics_gauges g = {.version = SR_VERSION, .role = a->role};
    g.oauth = e->oauth != NULL || e->idp != NULL;
    g.connections = sr_server_connections(a->client);
    g.open_streams = sr_server_idle_streams(a->client);
    g.in_flight = sr_server_active_requests(a->client);
    g.tokens = e->tokens ? e->tokens->count : 0;
    size_t ninst = e->instances ? sr_instances_count(e->instances) : 0;
    struct sr_inst_info *infos = calloc(ninst ? ninst : 1, sizeof(*infos));
    const char **names = calloc(ninst ? ninst : 1, sizeof(*names));
    uint64_t *rss = calloc(ninst ? ninst : 1, sizeof(*rss));
    if (e->instances && infos && names && rss) {
        struct sr_inst_counts c;
        sr_instances_counts(e->instances, &c);
        g.have_instances = true;
        g.starting = c.starting;
        g.ready = c.ready;
        g.idle = c.idle;
        g.stopping = c.stopping;
        g.failed = c.failed;
        g.asleep = c.asleep;
        ninst = sr_instances_list(e->instances, infos, ninst, true);
        for (size_t i = 0; i < ninst; i++) {
            g.held += infos[i].held;
            if (infos[i].pid) {
                names[g.nbackends] = infos[i].token_name;
                rss[g.nbackends++] = infos[i].rss_bytes;
            }
        }
        g.backend_name = names;
        g.backend_rss = rss;
    }
    sr_metrics_write(b, &g);
    free(infos);
    free(names);
    free(rss);
    respond(r, "text/plain; version=0.0.4; charset=utf-8", NULL, b);
}

/* ---- GET /instances ---------------------------------------------------------- */

static void gateway_members(struct sr_admin *a, struct sr_jw *w)
{
    struct sr_edge *e = a->edge;
    sr_jw_key(w, "version");
    sr_jw_cstr(w, SR_VERSION);
    sr_jw_key(w, "role");
    sr_jw_cstr(w, a->role);
    sr_jw_key(w, "mode");
    sr_jw_cstr(w, e->upstream ? "upstream" : "instances");
    sr_jw_key(w, "listen");
    sr_jw_cstr(w, a->listen ? a->listen : "");
    sr_jw_key(w, "generation");
    sr_jw_cstr(w, e->policy.generation);
    sr_jw_key(w, "tokens");
    sr_jw_int(w, e->tokens ? e->tokens->count : 0);
    sr_jw_key(w, "max_instances");
    sr_jw_int(w, e->health.max_instances);
    sr_jw_key(w, "uptime_seconds");
    sr_jw_int(w, (int64_t)((sr_now_us() - e->started_us) / 1000000u));
    sr_jw_key(w, "persistence");
    sr_jw_cstr(w, e->instances ? sr_instances_store_state(e->instances) : "disabled");
}

/*
 * One entry's JSON: in buf; past it (long paths or errors), in a larger heap buffer (*big, kept
 * for the next entries); past that, the route and why the rest is missing, so that no instance
 * is left out silently. NULL only when even that cannot be written.
 */
static const char *entry_json(const struct sr_inst_info *info, char *buf, size_t cap, char **big,
                              size_t *len)
{
    struct sr_jw w;
    sr_jw_init(&w, buf, cap);
    sr_inst_info_json(&w, info);
    if (sr_jw_finish(&w, len) == 0)
        return buf;
    if (!*big && !(*big = malloc(SR_STATUS_ENTRY_BIG)))
        return NULL;
    sr_jw_init(&w, *big, SR_STATUS_ENTRY_BIG);
    sr_inst_info_json(&w, info);
    if (sr_jw_finish(&w, len) == 0)
        return *big;
    sr_jw_init(&w, *big, SR_STATUS_ENTRY_BIG);
    sr_jw_obj_begin(&w);
    sr_jw_key(&w, "route");
    sr_jw_cstr(&w, info->route);
    sr_jw_key(&w, "error");
    sr_jw_cstr(&w, "this entry is larger than the listing allows");
    sr_jw_obj_end(&w);
    return sr_jw_finish(&w, len) == 0 ? *big : NULL;
}

static void answer_instances(struct sr_admin *a, struct sr_req *r, struct evbuffer *b)
{
    char doc[SR_STATUS_DOC_MAX];
    struct sr_jw w;
    size_t len = 0;
    sr_jw_init(&w, doc, sizeof(doc));
    sr_jw_obj_begin(&w);
    gateway_members(a, &w);
    sr_jw_obj_end(&w);
    if (sr_jw_finish(&w, &len) < 0 || len < 2) {
        refuse(r, 500, NULL, "The gateway could not write its listing.");
        return;
    }
    /* The gateway's members, then the entries one by one (each bounded, the list is not). */
    evbuffer_add(b, doc, len - 1);
    evbuffer_add(b, ",\"instances\":[", 14);
    struct row *rows;
    char(*names)[SR_ROUTE_MAX + 1];
    size_t n = collect(a, &rows, &names);
    char *big = NULL;
    size_t written = 0;
    for (size_t i = 0; i < n; i++) {
        const char *out = entry_json(&rows[i].info, doc, sizeof(doc), &big, &len);
        if (!out)
            continue;
        if (written++)
            evbuffer_add(b, ",", 1);
        evbuffer_add(b, out, len);
    }
    free(big);
    free(rows);
    free(names);
    evbuffer_add(b, "]}\n", 3);
    respond(r, "application/json", NULL, b);
}

/* ---- GET / (the status page) ---------------------------------------------------- */

static void html(struct evbuffer *b, const char *s)
{
    for (; s && *s; s++) {
        switch (*s) {
        case '&':
            evbuffer_add(b, "&amp;", 5);
            break;
        case '<':
            evbuffer_add(b, "&lt;", 4);
            break;
        case '>':
            evbuffer_add(b, "&gt;", 4);
            break;
        case '"':
            evbuffer_add(b, "&quot;", 6);
            break;
        case '\'':
            evbuffer_add(b, "&#39;", 5);
            break;
        default:
            evbuffer_add(b, s, 1);
        }
    }
}

static void cell(struct evbuffer *b, const char *s)
{
    evbuffer_add(b, "<td>", 4);
    if (s && *s)
        html(b, s);
    else
        evbuffer_add(b, "&ndash;", 7);
    evbuffer_add(b, "</td>", 5);
}

/* A time cell: the time of day (the full ISO 8601 time in its title, the date too when it
 * is not today) and how long ago. */
static void time_cell(struct evbuffer *b, int64_t t, int64_t now)
{
    if (t <= 0) {
        cell(b, NULL);
        return;
    }
    char iso[32], ago[32];
    sr_time_iso8601(t, iso, sizeof(iso));
    int64_t d = now - t;
    if (d < 120)
        snprintf(ago, sizeof(ago), "%llds ago", (long long)d);
    else if (d < 7200)
        snprintf(ago, sizeof(ago), "%lldm ago", (long long)(d / 60));
    else if (d < 2 * 86400)
        snprintf(ago, sizeof(ago), "%lldh ago", (long long)(d / 3600));
    else
        snprintf(ago, sizeof(ago), "%lldd ago", (long long)(d / 86400));
    evbuffer_add(b, "<td class=\"t\" title=\"", 21);
    html(b, iso);
    evbuffer_add(b, "\">", 2);
    /* "2026-11-30T02:35:12Z": the time of day is bytes 11..18. */
    char today[32];
    sr_time_iso8601(now, today, sizeof(today));
    if (strlen(iso) >= 20) {
        if (strncmp(iso, today, 10) != 0) {
            evbuffer_add(b, iso, 10);
            evbuffer_add(b, " ", 1);
        }
        evbuffer_add(b, iso + 11, 8);
    }
    evbuffer_add(b, "<br><small>", 11);
    html(b, ago);
    evbuffer_add(b, "</small></td>", 13);
}

static void size_text(uint64_t n, char *out, size_t cap)
{
    if (n >= 1024u * 1024u)
        snprintf(out, cap, "%.1f MiB", (double)n / (1024.0 * 1024.0));
    else if (n >= 1024u)
        snprintf(out, cap, "%.1f KiB", (double)n / 1024.0);
    else
        snprintf(out, cap, "%llu B", (unsigned long long)n);
}

static const char k_style[] =
    "body{font:14px system-ui,sans-serif;margin:1.5em;color:#222}"
    "h1{font-size:1.3em;margin:0 0 .3em}p.meta{color:#555;margin:.2em 0 1em}"
    "table{border-collapse:collapse;width:100%}th,td{border-bottom:1px solid #ddd;"
    "padding:.35em .5em;text-align:left;vertical-align:top}th{background:#f4f4f4}"
    "td.num{text-align:right}small{color:#666}.s-ready,.s-idle{color:#06702a;font-weight:600}"
    ".s-starting,.s-stopping{color:#8a5a00;font-weight:600}.s-failed{color:#b00020;"
    "font-weight:600}.err{color:#b00020}code{font-size:.85em;word-break:break-all}"
    "td.t,td.n{white-space:nowrap}";

static void answer_page(struct sr_admin *a, struct sr_req *r, struct evbuffer *b)
{
    struct sr_edge *e = a->edge;
    time_t now = time(NULL);
    char buf[256];
    evbuffer_add_printf(b,
                        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
                        "<meta http-equiv=\"refresh\" content=\"%d\">"
                        "<title>serena-remote: instances</title><style>%s</style></head><body>\n"
                        "<h1>serena-remote</h1>\n<p class=\"meta\">",
                        PAGE_REFRESH, k_style);
    snprintf(buf, sizeof(buf), "version %s, %s, %s mode, generation ", SR_VERSION, a->role,
             e->upstream ? "upstream" : "per-token instances");
    html(b, buf);
    html(b, e->policy.generation);
    html(b, ", clients on ");
    html(b, a->listen ? a->listen : "");
    snprintf(buf, sizeof(buf), ", up %llus, %u token(s), %u connection(s), %u open stream(s)",
             (unsigned long long)((sr_now_us() - e->started_us) / 1000000u),
             e->tokens ? e->tokens->count : 0, sr_server_connections(a->client),
             sr_server_idle_streams(a->client));
    html(b, buf);
    if (e->instances) {
        html(b, ", snapshots ");
        html(b, sr_instances_store_state(e->instances));
    }
    evbuffer_add_printf(b,
                        ". This page reloads every %d s; also <a href=\"/instances\">JSON</a> "
                        "and <a href=\"/metrics\">metrics</a>.</p>\n",
                        PAGE_REFRESH);
    evbuffer_add_printf(
        b, "<table><thead><tr><th>Name</th><th>State</th><th>PID</th><th>Port</th>"
           "<th>Memory</th><th>Project</th><th>Started</th><th>Ready</th><th>Last activity</th>"
           "<th>Sleeps in</th><th>Restarts</th><th>Last snapshot</th><th>Last error</th>"
           "<th>Log</th></tr></thead>\n<tbody>\n");
    struct row *rows;
    char(*names)[SR_ROUTE_MAX + 1];
    size_t n = collect(a, &rows, &names);
    for (size_t k = 0; k < n; k++) {
        const struct sr_inst_info *i = &rows[k].info;
        evbuffer_add(b, "<tr><td class=\"n\">", 18);
        html(b, i->token_name);
        evbuffer_add(b, "<br><small>", 11);
        html(b, i->route);
        evbuffer_add(b, "</small></td><td class=\"s-", 26);
        html(b, i->state);
        evbuffer_add(b, "\">", 2);
        html(b, i->state);
        evbuffer_add(b, "</td>", 5);
        snprintf(buf, sizeof(buf), "%d", i->pid);
        cell(b, i->pid ? buf : NULL);
        snprintf(buf, sizeof(buf), "%u", i->port);
        cell(b, i->port ? buf : NULL);
        size_text(i->rss_bytes, buf, sizeof(buf));
        cell(b, i->pid ? buf : NULL);
        cell(b, i->project);
        time_cell(b, i->started, now);
        time_cell(b, i->ready, now);
        time_cell(b, i->last_activity, now);
        if (i->sleep_in >= 0)
            snprintf(buf, sizeof(buf), "%llds", (long long)i->sleep_in);
        cell(b, i->sleep_in >= 0 ? buf : NULL);
        snprintf(buf, sizeof(buf), "%u", i->restarts);
        cell(b, buf);
        if (i->snap_time) {
            char iso[32], sz[32];
            sr_time_iso8601(i->snap_time, iso, sizeof(iso));
            size_text(i->snap_size, sz, sizeof(sz));
            evbuffer_add(b, "<td>", 4);
            html(b, iso);
            evbuffer_add(b, ", ", 2);
            html(b, sz);
            evbuffer_add(b, "<br><small>", 11);
            html(b, i->snap_key);
            evbuffer_add(b, "</small></td>", 13);
        } else {
            cell(b, i->persistence);
        }
        evbuffer_add(b, "<td class=\"err\">", 16);
        html(b, i->last_error);
        evbuffer_add(b, "</td><td><code>", 15);
        html(b, i->log_path);
        evbuffer_add(b, "</code></td></tr>\n", 18);
    }
    if (n == 0)
        evbuffer_add_printf(
            b, "<tr><td colspan=\"14\">No routes: no token is configured.</td></tr>\n");
    free(rows);
    free(names);
    evbuffer_add_printf(b, "</tbody></table>\n</body></html>\n");
    respond(r, "text/html; charset=utf-8",
            "Content-Security-Policy: default-src 'none'; style-src 'unsafe-inline'\r\n"
            "X-Frame-Options: DENY\r\n",
            b);
}

/* ---- dispatch ----------------------------------------------------------------- */

static bool path_is(const struct sr_http_head *h, const char *p)
{
    size_t n = strlen(p);
    return h->path.n == n && memcmp(h->path.p, p, n) == 0;
}

void sr_admin_handle(struct sr_req *r, void *arg)
{
    struct sr_admin *a = arg;
    const struct sr_http_head *h = sr_req_head(r);
    bool get = h->method.n == 3 && memcmp(h->method.p, "GET", 3) == 0;
    bool head = h->method.n == 4 && memcmp(h->method.p, "HEAD", 4) == 0;
    if (!allowed(a, r))
        return;
    if (!get && !head) {
        refuse(r, 405, "Allow: GET, HEAD\r\n",
               "Method not allowed: the admin listener only answers GET and HEAD.");
        return;
    }
    struct evbuffer *b = evbuffer_new();
    if (!b) {
        refuse(r, 503, "Retry-After: 1\r\n", "The gateway is out of memory.");
        return;
    }
    if (path_is(h, "/metrics"))
        answer_metrics(a, r, b);
    else if (path_is(h, "/instances"))
        answer_instances(a, r, b);
    else if (path_is(h, "/"))
        answer_page(a, r, b);
    else
        refuse(r, 404, NULL,
               "Not found: the admin listener serves /metrics (Prometheus), /instances (JSON) "
               "and / (the status page).");
    evbuffer_free(b);
}
