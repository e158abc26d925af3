/*
 * Writes the access log and gateway events to stderr, one line each, in the
 * format chosen with --log-format. JSON lines are built with the core's JSON
 * writer (the project's only JSON code), so every field is escaped properly
 * even when a client sends odd bytes in a method name.
 */
#include "http/log.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "core/json.h"

static enum sr_log_format g_format = SR_LOG_TEXT;

void sr_log_set_format(enum sr_log_format f)
{
    g_format = f;
}

static void now_iso(char *out, size_t cap)
{
    struct timespec ts;
    struct tm tm;
    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    size_t n = strftime(out, cap, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(out + n, cap - n, ".%03ldZ", ts.tv_nsec / 1000000L);
}

/* Copy a span for the text format, replacing bytes that would break the line. */
static void clean(const char *s, size_t n, char *out, size_t cap)
{
    size_t j = 0;
    for (size_t i = 0; i < n && j + 1 < cap; i++) {
        unsigned char ch = (unsigned char)s[i];
        out[j++] = (ch < 0x21 || ch > 0x7e) ? '?' : (char)ch;
    }
    out[j] = '\0';
}

static void emit(const char *line, size_t n)
{
    /* One write per line so concurrent writers do not interleave. */
    ssize_t w = write(2, line, n);
    (void)w;
}

void sr_log_request(const struct sr_log_entry *e)
{
    char ts[40], method[24], path[128], rpc[136], route[136];
    char line[1024];
    now_iso(ts, sizeof(ts));
    clean(e->method, e->method_len, method, sizeof(method));
    clean(e->path, e->path_len, path, sizeof(path));
    clean(e->rpc_method, strlen(e->rpc_method), rpc, sizeof(rpc));
    clean(e->route, strlen(e->route), route, sizeof(route));
    double ms = (double)e->duration_us / 1000.0;
    if (g_format == SR_LOG_JSON) {
        struct sr_jw w;
        char dur[32];
        sr_jw_init(&w, line, sizeof(line) - 1);
        sr_jw_obj_begin(&w);
        sr_jw_key(&w, "time");
        sr_jw_cstr(&w, ts);
        sr_jw_key(&w, "peer");
        sr_jw_cstr(&w, e->peer);
        sr_jw_key(&w, "route");
        sr_jw_cstr(&w, route);
        sr_jw_key(&w, "method");
        sr_jw_cstr(&w, method);
        sr_jw_key(&w, "path");
        sr_jw_cstr(&w, path);
        sr_jw_key(&w, "rpc_method");
        sr_jw_cstr(&w, rpc);
        sr_jw_key(&w, "status");
        sr_jw_int(&w, e->status);
        sr_jw_key(&w, "bytes");
        sr_jw_int(&w, (int64_t)e->bytes);
        sr_jw_key(&w, "duration_ms");
        snprintf(dur, sizeof(dur), "%.3f", ms);
        sr_jw_raw(&w, dur, strlen(dur));
        sr_jw_obj_end(&w);
        size_t n = 0;
        if (sr_jw_finish(&w, &n) == 0) {
            line[n++] = '\n';
            emit(line, n);
        }
        return;
    }
    int n = snprintf(line, sizeof(line),
                     "%s %s route=%s %s %s rpc=%s status=%d bytes=%llu ms=%.3f\n", ts, e->peer,
                     route, method, path, rpc, e->status, (unsigned long long)e->bytes, ms);
    if (n > 0)
        emit(line, (size_t)n < sizeof(line) ? (size_t)n : sizeof(line) - 1);
}

void sr_log_event(const char *level, const char *fmt, ...)
{
    char msg[768], ts[40], line[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    now_iso(ts, sizeof(ts));
    if (g_format == SR_LOG_JSON) {
        struct sr_jw w;
        sr_jw_init(&w, line, sizeof(line) - 1);
        sr_jw_obj_begin(&w);
        sr_jw_key(&w, "time");
        sr_jw_cstr(&w, ts);
        sr_jw_key(&w, "level");
        sr_jw_cstr(&w, level);
        sr_jw_key(&w, "event");
        sr_jw_cstr(&w, msg);
        sr_jw_obj_end(&w);
        size_t n = 0;
        if (sr_jw_finish(&w, &n) == 0) {
            line[n++] = '\n';
            emit(line, n);
        }
        return;
    }
    int n = snprintf(line, sizeof(line), "%s %s %s\n", ts, level, msg);
    if (n > 0)
        emit(line, (size_t)n < sizeof(line) ? (size_t)n : sizeof(line) - 1);
}
