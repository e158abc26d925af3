/*
 * libFuzzer harness for the /proc/PID/stat parser (src/metrics/procfs.c)
 * and the backend command's program word (src/instance/program.c), the two
 * small parsers of the operator's view.
 *
 * Inputs are exact-size copies, so AddressSanitizer sees any read past the
 * end. A parsed stat line must have named a state byte; a program word must
 * be non-empty, NUL-terminated within its buffer, and free of the blanks
 * that separate words (quotes may have carried them in, so only the
 * unquoted case is checked: an input with no quote character).
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "instance/program.h"
#include "metrics/procfs.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check(bool ok)
{
    if (!ok)
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *buf = malloc(size ? size : 1);
    if (!buf)
        return 0;
    memcpy(buf, data, size);
    struct sr_procfs_stat st;
    if (sr_procfs_parse_stat(buf, size, &st) == 0)
        check(st.pid >= 0 && st.ppid >= 0);
    char prog[64];
    if (sr_program_of(buf, size, prog, sizeof(prog)) == 0) {
        size_t n = strnlen(prog, sizeof(prog));
        check(n > 0 && n < sizeof(prog));
        if (!memchr(buf, '\'', size) && !memchr(buf, '"', size))
            check(!strchr(prog, ' ') && !strchr(prog, '\t') && !strchr(prog, '\n'));
    }
    free(buf);
    return 0;
}
