/*
 * Fills in the embedded Serena configuration template (see seed.h). The
 * substitution is plain text on purpose: the template documents its two
 * placeholders, and the values are checked so that they cannot break out of
 * the YAML they land in.
 */
#include "instance/seed.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "seed_config.h"

static bool yaml_quotable(const char *s)
{
    for (; *s; s++)
        if (*s == '"' || *s == '\\' || (unsigned char)*s < 0x20 || *s == 0x7f)
            return false;
    return true;
}

char *sr_seed_serena_config(const char *tools_dir, bool allow_shell, char *err, size_t errlen)
{
    if (!yaml_quotable(tools_dir)) {
        snprintf(err, errlen,
                 "SERENA_TOOLS_DIR %s contains a quote, a backslash or a control character",
                 tools_dir);
        return NULL;
    }
    const char *excluded = allow_shell ? "[]" : "[execute_shell_command]";
    const char *t = sr_seed_config_template;
    size_t cap = strlen(t) + strlen(tools_dir) + strlen(excluded) + 1;
    char *out = malloc(cap);
    if (!out) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    size_t n = 0;
    while (*t) {
        const char *val = NULL;
        size_t skip = 0;
        if (strncmp(t, "{tools_dir}", 11) == 0)
            val = tools_dir, skip = 11;
        else if (strncmp(t, "{excluded_tools}", 16) == 0)
            val = excluded, skip = 16;
        if (val) {
            size_t vl = strlen(val);
            if (n + vl >= cap)
                break;
            memcpy(out + n, val, vl);
            n += vl;
            t += skip;
        } else {
            if (n + 1 >= cap)
                break;
            out[n++] = *t++;
        }
    }
    out[n] = '\0';
    return out;
}
