/*
 * The metrics registry (see metrics.h) and its Prometheus text exposition.
 *
 * Storage is static and dense: per route, a counter for every (JSON-RPC
 * method, status) pair and a duration histogram. Only the pages of routes
 * that saw traffic are ever touched, so the bound costs address space, not
 * resident memory. A request costs one hash of its route name, a short
 * method lookup, a switch on its status and a bucket search: no allocation,
 * no system call.
 *
 * Exposition follows the text format 0.0.4: one HELP and TYPE line per
 * family, counters named *_total, histograms as cumulative *_bucket{le}
 * plus *_sum and *_count, base units (seconds, bytes).
 */
#include "metrics/metrics.h"

#include <stdio.h>
#include <string.h>

#include "core/auth.h"
#include "core/limits.h"
#include "metrics/procfs.h"

bool sr_metrics_on;
static bool g_run;

/* ---- label sets ------------------------------------------------------------ */

/* JSON-RPC methods with a label of their own (MCP 2025-06-18 and 2025-11-25, client to
 * server); index 0 is a request without one (GET, DELETE, /health), the last "other". */
static const char *const k_methods[] = {
    "none",
    "initialize",
    "ping",
    "tools/list",
    "tools/call",
    "resources/list",
    "resources/read",
    "resources/templates/list",
    "resources/subscribe",
    "resources/unsubscribe",
    "prompts/list",
    "prompts/get",
    "completion/complete",
    "logging/setLevel",
    "notifications/initialized",
    "notifications/cancelled",
    "notifications/progress",
    "notifications/roots/list_changed",
    "tasks/get",
    "tasks/result",
    "tasks/list",
    "tasks/cancel",
    "(batch)",
    "other",
};
#define N_METHODS (sizeof(k_methods) / sizeof(k_methods[0]))

/* HTTP statuses with a label of their own; the last slot is "other". */
static const int k_statuses[] = {200, 202, 204, 400, 401, 403, 404, 405, 406, 408, 409, 413,
                                 415, 421, 429, 431, 499, 500, 502, 503, 504, 505, 0};
#define N_STATUSES (sizeof(k_statuses) / sizeof(k_statuses[0]))

/* Request duration buckets (seconds, as microseconds): a relayed call is milliseconds, a
 * first semantic call up to a minute, an SSE stream as long as the client keeps it. */
static const uint64_t k_req_buckets[] = {1000,    5000,    10000,    50000,    100000,   500000,
                                         1000000, 5000000, 10000000, 30000000, 60000000, 300000000};
#define N_REQ_BUCKETS (sizeof(k_req_buckets) / sizeof(k_req_buckets[0]))

/* Cold start buckets: server-everything is ready in a fraction of a second, Serena in 1-4 s,
 * a restore of a large state adds more. */
static const uint64_t k_start_buckets[] = {50000,   100000,   250000,   500000,   1000000,  2500000,
                                           5000000, 10000000, 30000000, 60000000, 120000000};
#define N_START_BUCKETS (sizeof(k_start_buckets) / sizeof(k_start_buckets[0]))

static const uint64_t k_snap_buckets[] = {10000,   50000,    100000,   500000,   1000000,
                                          5000000, 10000000, 30000000, 60000000, 300000000};
#define N_SNAP_BUCKETS (sizeof(k_snap_buckets) / sizeof(k_snap_buckets[0]))

#define MIB (1024u * 1024u)
static const uint64_t k_size_buckets[] = {64u * 1024u, 256u * 1024u, MIB,       4 * MIB,
                                          16 * MIB,    64 * MIB,     256 * MIB, 1024 * MIB};
#define N_SIZE_BUCKETS (sizeof(k_size_buckets) / sizeof(k_size_buckets[0]))

static const char *const k_events[SR_MI_EVENT_COUNT] = {"starts", "crashes", "evictions", "sleeps"};
static const char *const k_event_help[SR_MI_EVENT_COUNT] = {
    "Backend processes started (first starts, wakes and restarts).",
    "Backends that exited without being asked to, or did not answer within the start timeout.",
    "Backends stopped to make room for another route (MAX_INSTANCES).",
    "Backends put to sleep after SLEEP_AFTER without a POST."};
static const char *const k_ops[SR_MS_OP_COUNT] = {"snapshot", "restore"};
static const char *const k_results[SR_MS_RESULT_COUNT] = {"ok", "skipped", "nothing", "failed"};

enum auth_reason { AUTH_MISSING, AUTH_MALFORMED, AUTH_UNKNOWN, AUTH_SECRET, AUTH_COUNT };
static const char *const k_auth[AUTH_COUNT] = {"missing", "malformed", "unknown_token",
                                               "internal_secret"};

static const char *const k_oauth[SR_MO_EVENT_COUNT] = {"registered",
                                                       "metadata_document_read",
                                                       "metadata_document_refused",
                                                       "wrong_token",
                                                       "rate_limited",
                                                       "authorized",
                                                       "denied",
                                                       "tokens_issued",
                                                       "refreshed",
                                                       "reuse_revoked",
                                                       "grant_refused",
                                                       "revoked",
                                                       "jwt_accepted",
                                                       "jwt_refused"};

/* ---- storage --------------------------------------------------------------- */

/* Bounds per histogram, +Inf excluded. */
#define HIST_BOUNDS_MAX 15
_Static_assert(N_REQ_BUCKETS <= HIST_BOUNDS_MAX && N_START_BUCKETS <= HIST_BOUNDS_MAX &&
                   N_SNAP_BUCKETS <= HIST_BOUNDS_MAX && N_SIZE_BUCKETS <= HIST_BOUNDS_MAX,
               "a histogram has more bounds than struct hist holds");

struct hist {
    uint64_t bucket[HIST_BOUNDS_MAX + 1];
    uint64_t count;
    uint64_t sum; /* microseconds, or bytes */
};

struct route_stats {
    char name[SR_TOKEN_NAME_MAX + 1]; /* "" for a free slot */
    uint32_t hash;
    uint64_t requests[N_METHODS][N_STATUSES];
    uint64_t bytes_in, bytes_out;
    struct hist duration;
    uint64_t events[SR_MI_EVENT_COUNT];
};

/* Open addressing over SR_METRICS_ROUTES_MAX slots; slot order is insertion-independent, so
 * the exposition walks `order` (insertion order) instead. */
static struct route_stats g_routes[SR_METRICS_ROUTES_MAX];
static uint16_t g_order[SR_METRICS_ROUTES_MAX];
static uint32_t g_nroutes;
static struct route_stats g_other; /* everything past the bound, as route "_other" */

static struct hist g_start;
static struct hist g_snap_seconds[SR_MS_OP_COUNT];
static struct hist g_snap_bytes[SR_MS_OP_COUNT];
static uint64_t g_snap_results[SR_MS_OP_COUNT][SR_MS_RESULT_COUNT];
static uint64_t g_auth[AUTH_COUNT];
static uint64_t g_oauth[SR_MO_EVENT_COUNT];

void sr_metrics_enable(bool on, bool run)
{
    sr_metrics_on = on;
    g_run = run;
}

void sr_metrics_reset(void)
{
    memset(g_routes, 0, sizeof(g_routes));
    memset(g_order, 0, sizeof(g_order));
    g_nroutes = 0;
    memset(&g_other, 0, sizeof(g_other));
    memset(&g_start, 0, sizeof(g_start));
    memset(g_snap_seconds, 0, sizeof(g_snap_seconds));
    memset(g_snap_bytes, 0, sizeof(g_snap_bytes));
    memset(g_snap_results, 0, sizeof(g_snap_results));
    memset(g_auth, 0, sizeof(g_auth));
    memset(g_oauth, 0, sizeof(g_oauth));
}

void sr_metrics_oauth_(enum sr_metrics_oauth_event ev)
{
    if ((unsigned)ev < SR_MO_EVENT_COUNT)
        g_oauth[ev]++;
}

/* The token name of a route ("<generation>:<name>" -> "name"); "-" when there is none. */
static const char *route_label(const char *route, size_t *n)
{
    if (!route || !*route || (route[0] == '-' && route[1] == '\0')) {
        *n = 1;
        return "-";
    }
    const char *colon = strchr(route, ':');
    const char *name = colon ? colon + 1 : route;
    *n = strnlen(name, SR_TOKEN_NAME_MAX + 1);
    if (*n == 0 || *n > SR_TOKEN_NAME_MAX) {
        *n = 1;
        return "-";
    }
    return name;
}

static struct route_stats *route_get(const char *name, size_t n)
{
    uint32_t h = 2166136261u; /* FNV-1a */
    for (size_t i = 0; i < n; i++)
        h = (h ^ (uint8_t)name[i]) * 16777619u;
    uint32_t mask = SR_METRICS_ROUTES_MAX - 1;
    for (uint32_t probe = 0; probe < SR_METRICS_ROUTES_MAX; probe++) {
        struct route_stats *r = &g_routes[(h + probe) & mask];
        if (r->name[0] == '\0') {
            /* Keep the last slot free so that every probe sequence ends. */
            if (g_nroutes + 1 >= SR_METRICS_ROUTES_MAX)
                break;
            memcpy(r->name, name, n);
            r->name[n] = '\0';
            r->hash = h;
            g_order[g_nroutes++] = (uint16_t)(r - g_routes);
            return r;
        }
        if (r->hash == h && strncmp(r->name, name, n) == 0 && r->name[n] == '\0')
            return r;
    }
    if (g_other.name[0] == '\0')
        memcpy(g_other.name, "_other", 7);
    return &g_other;
}

static size_t method_index(const char *m)
{
    if (!m || !*m || (m[0] == '-' && m[1] == '\0'))
        return 0;
    for (size_t i = 1; i + 1 < N_METHODS; i++)
        if (k_methods[i][0] == m[0] && strcmp(k_methods[i], m) == 0)
            return i;
    return N_METHODS - 1;
}

static size_t status_index(int status)
{
    for (size_t i = 0; i + 1 < N_STATUSES; i++)
        if (k_statuses[i] == status)
            return i;
    return N_STATUSES - 1;
}

static void observe(struct hist *h, const uint64_t *bounds, size_t nb, uint64_t v)
{
    size_t i = 0;
    while (i < nb && v > bounds[i])
        i++;
    h->bucket[i]++;
    h->count++;
    h->sum += v;
}

void sr_metrics_request_(const char *route, const char *rpc_method, int status, uint64_t bytes_in,
                         uint64_t bytes_out, uint64_t duration_us, const char *authorization,
                         size_t authorization_len)
{
    size_t n;
    const char *name = route_label(route, &n);
    struct route_stats *r = route_get(name, n);
    r->requests[method_index(rpc_method)][status_index(status)]++;
    r->bytes_in += bytes_in;
    r->bytes_out += bytes_out;
    observe(&r->duration, k_req_buckets, N_REQ_BUCKETS, duration_us);
    /* A refusal before any route was found: why the caller was not let in. */
    if (status == 401 && name[0] == '-') {
        const char *tok;
        size_t toklen;
        enum auth_reason why =
            g_run            ? AUTH_SECRET
            : !authorization ? AUTH_MISSING
            : sr_auth_parse_bearer(authorization, authorization_len, &tok, &toklen) < 0
                ? AUTH_MALFORMED
                : AUTH_UNKNOWN;
        g_auth[why]++;
    }
}

void sr_metrics_instance_(const char *token_name, enum sr_metrics_inst_event ev)
{
    size_t n = token_name ? strnlen(token_name, SR_TOKEN_NAME_MAX + 1) : 0;
    if ((unsigned)ev >= SR_MI_EVENT_COUNT || n == 0 || n > SR_TOKEN_NAME_MAX)
        return;
    route_get(token_name, n)->events[ev]++;
}

void sr_metrics_instance_ready_(uint64_t start_us)
{
    observe(&g_start, k_start_buckets, N_START_BUCKETS, start_us);
}

void sr_metrics_snapshot_(enum sr_metrics_snap_op op, enum sr_metrics_snap_result result,
                          uint64_t bytes, uint64_t duration_us)
{
    if ((unsigned)op >= SR_MS_OP_COUNT || (unsigned)result >= SR_MS_RESULT_COUNT)
        return;
    g_snap_results[op][result]++;
    observe(&g_snap_seconds[op], k_snap_buckets, N_SNAP_BUCKETS, duration_us);
    if (result == SR_MS_OK)
        observe(&g_snap_bytes[op], k_size_buckets, N_SIZE_BUCKETS, bytes);
}

/* ---- exposition ------------------------------------------------------------ */

static void family(struct evbuffer *o, const char *name, const char *type, const char *help)
{
    evbuffer_add_printf(o, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

/* A label value with \, " and newline escaped as the text format requires. */
static void label_value(struct evbuffer *o, const char *v)
{
    for (; *v; v++) {
        if (*v == '\\')
            evbuffer_add(o, "\\\\", 2);
        else if (*v == '"')
            evbuffer_add(o, "\\\"", 2);
        else if (*v == '\n')
            evbuffer_add(o, "\\n", 2);
        else
            evbuffer_add(o, v, 1);
    }
}

static void sample_u64(struct evbuffer *o, const char *name, const char *label, const char *value,
                       uint64_t v)
{
    evbuffer_add_printf(o, "%s", name);
    if (label) {
        evbuffer_add_printf(o, "{%s=\"", label);
        label_value(o, value);
        evbuffer_add(o, "\"}", 2);
    }
    evbuffer_add_printf(o, " %llu\n", (unsigned long long)v);
}

/* A bucket bound in seconds, as short as it is exact: 0.005, 1, 300. */
static void seconds_le(struct evbuffer *o, uint64_t us)
{
    char frac[8];
    int n = snprintf(frac, sizeof(frac), "%06llu", (unsigned long long)(us % 1000000));
    while (n > 0 && frac[n - 1] == '0')
        frac[--n] = '\0';
    evbuffer_add_printf(o, "%llu%s%s", (unsigned long long)(us / 1000000), n ? "." : "", frac);
}

static void seconds(struct evbuffer *o, uint64_t us)
{
    evbuffer_add_printf(o, "%llu.%06llu", (unsigned long long)(us / 1000000),
                        (unsigned long long)(us % 1000000));
}

/* One histogram's series; `labels` is the pre-rendered label set (without braces) or "". */
static void histogram(struct evbuffer *o, const char *name, const char *labels,
                      const struct hist *h, const uint64_t *bounds, size_t nb, bool in_seconds)
{
    uint64_t cum = 0;
    const char *sep = labels[0] ? "," : "";
    for (size_t i = 0; i <= nb; i++) {
        cum += h->bucket[i];
        evbuffer_add_printf(o, "%s_bucket{%s%sle=\"", name, labels, sep);
        if (i == nb)
            evbuffer_add(o, "+Inf", 4);
        else if (in_seconds)
            seconds_le(o, bounds[i]);
        else
            evbuffer_add_printf(o, "%llu", (unsigned long long)bounds[i]);
        evbuffer_add_printf(o, "\"} %llu\n", (unsigned long long)cum);
    }
    evbuffer_add_printf(o, "%s_sum%s%s%s ", name, labels[0] ? "{" : "", labels,
                        labels[0] ? "}" : "");
    if (in_seconds)
        seconds(o, h->sum);
    else
        evbuffer_add_printf(o, "%llu", (unsigned long long)h->sum);
    evbuffer_add_printf(o, "\n%s_count%s%s%s %llu\n", name, labels[0] ? "{" : "", labels,
                        labels[0] ? "}" : "", (unsigned long long)h->count);
}

/* Every route with data, in the order first seen, then "_other" when it was used. */
static const struct route_stats *route_at(uint32_t i)
{
    if (i < g_nroutes)
        return &g_routes[g_order[i]];
    return i == g_nroutes && g_other.name[0] ? &g_other : NULL;
}

static void write_requests(struct evbuffer *o)
{
    family(o, "serena_remote_requests_total", "counter",
           "Requests answered, by route (token name; - before authentication), JSON-RPC method "
           "and HTTP status.");
    const struct route_stats *r;
    for (uint32_t i = 0; (r = route_at(i)); i++)
        for (size_t m = 0; m < N_METHODS; m++)
            for (size_t s = 0; s < N_STATUSES; s++) {
                uint64_t v = r->requests[m][s];
                if (!v)
                    continue;
                evbuffer_add(o, "serena_remote_requests_total{route=\"", 36);
                label_value(o, r->name);
                evbuffer_add_printf(o, "\",rpc_method=\"%s\",status=\"", k_methods[m]);
                if (k_statuses[s])
                    evbuffer_add_printf(o, "%d", k_statuses[s]);
                else
                    evbuffer_add(o, "other", 5);
                evbuffer_add_printf(o, "\"} %llu\n", (unsigned long long)v);
            }
    family(o, "serena_remote_request_duration_seconds", "histogram",
           "Time from a request's arrival to the end of its response (streams included), by "
           "route.");
    for (uint32_t i = 0; (r = route_at(i)); i++) {
        if (!r->duration.count)
            continue;
        char labels[SR_TOKEN_NAME_MAX + 16];
        snprintf(labels, sizeof(labels), "route=\"%s\"", r->name);
        histogram(o, "serena_remote_request_duration_seconds", labels, &r->duration, k_req_buckets,
                  N_REQ_BUCKETS, true);
    }
    family(o, "serena_remote_request_body_bytes_total", "counter",
           "Request body bytes received, by route.");
    for (uint32_t i = 0; (r = route_at(i)); i++)
        if (r->duration.count)
            sample_u64(o, "serena_remote_request_body_bytes_total", "route", r->name, r->bytes_in);
    family(o, "serena_remote_response_body_bytes_total", "counter",
           "Response body bytes sent, by route.");
    for (uint32_t i = 0; (r = route_at(i)); i++)
        if (r->duration.count)
            sample_u64(o, "serena_remote_response_body_bytes_total", "route", r->name,
                       r->bytes_out);
    family(o, "serena_remote_auth_failures_total", "counter",
           "Requests refused with 401, by reason (no Authorization header, not one Bearer "
           "credential, a token that matches no entry, or run's internal secret missing or "
           "wrong).");
    for (int a = 0; a < AUTH_COUNT; a++)
        sample_u64(o, "serena_remote_auth_failures_total", "reason", k_auth[a], g_auth[a]);
}

static void write_oauth(struct evbuffer *o)
{
    family(o, "serena_remote_oauth_events_total", "counter",
           "Sign-in events (docs/oauth.md): registrations, client metadata documents, consent "
           "outcomes, token exchanges and revocations, and JWTs of the external issuer.");
    for (int e = 0; e < SR_MO_EVENT_COUNT; e++)
        sample_u64(o, "serena_remote_oauth_events_total", "event", k_oauth[e], g_oauth[e]);
}

static void write_instances(struct evbuffer *o, const struct sr_metrics_gauges *g)
{
    family(o, "serena_remote_instances", "gauge",
           "Per-route backend instances by state (idle: ready with no POST in flight).");
    const char *states[] = {"starting", "ready", "idle", "stopping", "failed", "asleep"};
    uint32_t counts[] = {g->starting, g->ready, g->idle, g->stopping, g->failed, g->asleep};
    for (size_t i = 0; i < sizeof(states) / sizeof(states[0]); i++)
        sample_u64(o, "serena_remote_instances", "state", states[i], counts[i]);
    for (int ev = 0; ev < SR_MI_EVENT_COUNT; ev++) {
        char name[64];
        snprintf(name, sizeof(name), "serena_remote_instance_%s_total", k_events[ev]);
        family(o, name, "counter", k_event_help[ev]);
        const struct route_stats *r;
        for (uint32_t i = 0; (r = route_at(i)); i++)
            if (r->name[0] != '-')
                sample_u64(o, name, "route", r->name, r->events[ev]);
    }
    family(o, "serena_remote_instance_start_seconds", "histogram",
           "Cold starts: from the start of a backend (its restore included) to its first answer.");
    histogram(o, "serena_remote_instance_start_seconds", "", &g_start, k_start_buckets,
              N_START_BUCKETS, true);
    family(o, "serena_remote_instance_resident_memory_bytes", "gauge",
           "Resident memory of each running backend's process tree (the backend and the "
           "language servers it started), by route.");
    for (uint32_t i = 0; i < g->nbackends; i++)
        sample_u64(o, "serena_remote_instance_resident_memory_bytes", "route", g->backend_name[i],
                   g->backend_rss[i]);
    family(o, "serena_remote_held_requests", "gauge",
           "Requests held until their route's backend is ready.");
    sample_u64(o, "serena_remote_held_requests", NULL, NULL, g->held);
    family(o, "serena_remote_snapshot_seconds", "histogram",
           "Duration of snapshot jobs (archive and upload) and restores (download and extract).");
    for (int op = 0; op < SR_MS_OP_COUNT; op++) {
        char labels[32];
        snprintf(labels, sizeof(labels), "op=\"%s\"", k_ops[op]);
        histogram(o, "serena_remote_snapshot_seconds", labels, &g_snap_seconds[op], k_snap_buckets,
                  N_SNAP_BUCKETS, true);
    }
    family(o, "serena_remote_snapshot_bytes", "histogram",
           "Size of the archives uploaded (snapshot) or restored.");
    for (int op = 0; op < SR_MS_OP_COUNT; op++) {
        char labels[32];
        snprintf(labels, sizeof(labels), "op=\"%s\"", k_ops[op]);
        histogram(o, "serena_remote_snapshot_bytes", labels, &g_snap_bytes[op], k_size_buckets,
                  N_SIZE_BUCKETS, false);
    }
    family(o, "serena_remote_snapshots_total", "counter",
           "Snapshot and restore jobs by outcome (skipped: unchanged, nothing uploaded; "
           "nothing: no snapshot to restore).");
    for (int op = 0; op < SR_MS_OP_COUNT; op++)
        for (int res = 0; res < SR_MS_RESULT_COUNT; res++)
            if (!(op == SR_MS_SNAPSHOT && res == SR_MS_NOTHING) &&
                !(op == SR_MS_RESTORE && res == SR_MS_SKIPPED))
                evbuffer_add_printf(
                    o, "serena_remote_snapshots_total{op=\"%s\",result=\"%s\"} %llu\n", k_ops[op],
                    k_results[res], (unsigned long long)g_snap_results[op][res]);
}

static void gauge(struct evbuffer *o, const char *name, const char *help, uint64_t v)
{
    family(o, name, "gauge", help);
    sample_u64(o, name, NULL, NULL, v);
}

void sr_metrics_write(struct evbuffer *o, const struct sr_metrics_gauges *g)
{
    family(o, "serena_remote_build_info", "gauge",
           "Always 1: the gateway's version and role (serve or run).");
    evbuffer_add(o, "serena_remote_build_info{version=\"", 34);
    label_value(o, g->version ? g->version : "");
    evbuffer_add(o, "\",role=\"", 8);
    label_value(o, g->role ? g->role : "");
    evbuffer_add(o, "\"} 1\n", 5);
    gauge(o, "serena_remote_tokens", "Entries in the token table.", g->tokens);
    gauge(o, "serena_remote_client_connections", "Open connections on the client listener.",
          g->connections);
    gauge(o, "serena_remote_requests_in_flight",
          "Requests being handled now on the client listener (idle streams excluded).",
          g->in_flight);
    gauge(o, "serena_remote_open_streams",
          "Open GET /mcp event streams (server-to-client notifications).", g->open_streams);
    write_requests(o);
    if (g->oauth)
        write_oauth(o);
    if (g->have_instances)
        write_instances(o, g);
    struct sr_procfs_self self;
    if (sr_procfs_self(&self) == 0) {
        gauge(o, "process_resident_memory_bytes", "Resident memory of the gateway process.",
              self.rss_bytes);
        gauge(o, "process_virtual_memory_bytes", "Virtual memory of the gateway process.",
              self.vsize_bytes);
        gauge(o, "process_open_fds", "Open file descriptors of the gateway process.",
              self.open_fds);
        family(o, "process_cpu_seconds_total", "counter",
               "User and system CPU time of the gateway process.");
        evbuffer_add_printf(o, "process_cpu_seconds_total %.2f\n", self.cpu_seconds);
        family(o, "process_start_time_seconds", "gauge",
               "Start of the gateway process, seconds since the epoch.");
        evbuffer_add_printf(o, "process_start_time_seconds %.2f\n", self.start_time);
    }
}
