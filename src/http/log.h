/*
 * Access and event log on stderr: one line per request, text or JSON.
 *
 * Lines never carry a token: the entry holds only the route name, HTTP and
 * JSON-RPC methods, status, byte count and duration. Route names contain
 * token *names*, which operators chose to be shown; never values.
 */
#ifndef SR_HTTP_LOG_H
#define SR_HTTP_LOG_H

#include <stddef.h>
#include <stdint.h>

enum sr_log_format { SR_LOG_TEXT = 0, SR_LOG_JSON = 1 };

struct sr_log_entry {
    const char *peer;
    const char *route;
    const char *method; /* HTTP method span */
    size_t method_len;
    const char *path;
    size_t path_len;
    const char *rpc_method;
    int status;
    uint64_t bytes;
    uint64_t duration_us;
};

void sr_log_set_format(enum sr_log_format f);
void sr_log_request(const struct sr_log_entry *e);
/* A free-form event ("listening on ...", "reloaded tokens"): level is "info", "warn" or "error". */
void sr_log_event(const char *level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#endif
