/*
 * Access and event log on stderr: one line per request, text or JSON.
 *
 * Access lines are batched once a loop is attached: they collect in a buffer
 * of SR_LOG_BUF_MAX bytes that is written when it fills, SR_LOG_FLUSH_MS
 * after its first line, before any event line, when the loop is detached and
 * at exit. Without a loop every line is written at once.
 *
 * Lines never carry a token: the entry holds only the route name, HTTP and
 * JSON-RPC methods, the tool a tools/call names (an audit trail: who called
 * which tool, with what outcome), status, byte count and duration. Route
 * names contain token *names*, which operators chose to be shown; never
 * values.
 */
#ifndef SR_HTTP_LOG_H
#define SR_HTTP_LOG_H

#include <stddef.h>

#include "core/limits.h"
#include <stdint.h>

#include <event2/event.h>

/* Batched access lines: at most this many bytes wait, for at most this long. */

enum sr_log_format { SR_LOG_TEXT = 0, SR_LOG_JSON = 1 };

struct sr_log_entry {
    const char *peer;
    const char *route;
    const char *method; /* HTTP method span */
    size_t method_len;
    const char *path;
    size_t path_len;
    const char *rpc_method;
    const char *tool; /* the tool a tools/call names, or NULL */
    int status;
    uint64_t bytes;
    uint64_t duration_us;
};

void sr_log_set_format(enum sr_log_format f);
/*
 * Batch access lines on base's loop (counted: every attach needs a detach).
 * The last detach writes what waits and frees the timer; call it before
 * event_base_free. Falls back to a write per line when the timer cannot be made.
 */
void sr_log_attach(struct event_base *base);
void sr_log_detach(void);
/* Write the waiting access lines now. */
void sr_log_flush(void);
void sr_log_request(const struct sr_log_entry *e);
/* A free-form event ("listening on ...", "reloaded tokens"): level is "info", "warn" or "error". */
void sr_log_event(const char *level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#endif
