/*
 * A one-line progress bar on stderr for the CLI ("uploading  [#####    ]
 * 12.3/50.0 MB"), redrawn at most ten times a second. Disabled instances
 * cost one branch per update, so library code can call it unconditionally.
 *
 * Ownership: a plain value on the caller's stack; label is borrowed.
 */
#ifndef SR_SNAPSHOT_PROGRESS_H
#define SR_SNAPSHOT_PROGRESS_H

#include <stdint.h>
#include <stdbool.h>

struct sr_progress {
    bool on;
    bool drawn;
    const char *label;
    uint64_t total; /* 0: unknown, only bytes done are shown */
    int64_t last_ms;
};

void sr_progress_begin(struct sr_progress *p, bool on, const char *label, uint64_t total);
void sr_progress_update(struct sr_progress *p, uint64_t done);
/* Draw the final state and end the line. */
void sr_progress_end(struct sr_progress *p, uint64_t done);

#endif
