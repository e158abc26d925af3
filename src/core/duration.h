/*
 * Durations as written in configuration: "90", "90s", "15m", "2h" (and "0").
 * A bare number means seconds. Shared by serve, run and the Worker so that
 * SLEEP_AFTER means the same thing everywhere.
 */
#ifndef SR_CORE_DURATION_H
#define SR_CORE_DURATION_H

#include <stddef.h>
#include <stdint.h>

/* 0 and *seconds, or -1 for anything else (negative, overflow past 30 days, junk). */
int sr_duration_parse(const char *s, size_t n, uint32_t *seconds);

#endif
