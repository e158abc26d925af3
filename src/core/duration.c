/*
 * Duration parsing (see duration.h).
 *
 * One grammar for every host: digits, then at most one unit among s, m, h.
 * Anything more elaborate ("1h30m", "1.5h", spaces) is refused rather than
 * guessed at, so that a typo in SLEEP_AFTER is an error at start and not a
 * surprising idle timeout later.
 */
#include "core/duration.h"

/* Thirty days: longer sleeps or intervals are almost certainly mistakes. */
#define SR_DURATION_MAX_SECONDS (30u * 24u * 3600u)

int sr_duration_parse(const char *s, size_t n, uint32_t *seconds)
{
    uint64_t v = 0, mult = 1;
    size_t i = 0;

    if (s == NULL || seconds == NULL || n == 0)
        return -1;
    while (i < n && s[i] >= '0' && s[i] <= '9') {
        v = v * 10 + (uint64_t)(s[i] - '0');
        /* Stop early so that the accumulator cannot overflow. */
        if (v > SR_DURATION_MAX_SECONDS)
            return -1;
        i++;
    }
    if (i == 0)
        return -1;
    if (i < n) {
        if (i + 1 != n)
            return -1;
        switch (s[i]) {
        case 's':
            mult = 1;
            break;
        case 'm':
            mult = 60;
            break;
        case 'h':
            mult = 3600;
            break;
        default:
            return -1;
        }
    }
    v *= mult;
    if (v > SR_DURATION_MAX_SECONDS)
        return -1;
    *seconds = (uint32_t)v;
    return 0;
}
