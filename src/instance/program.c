/*
 * Finding a backend command's program (see program.h). A small word
 * splitter, not a shell: it only needs to find the first word that names a
 * program, and a template that is more than "[env] [VAR=value ...] program
 * args" (a pipeline, a subshell) is still run by /bin/sh as it is.
 */
#include "instance/program.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/stat.h>

/* The next word of s[*at..n) without its quotes into out; 0, 1 at the end, -1 when too long
 * or a quote is not closed. */
static int next_word(const char *s, size_t n, size_t *at, char *out, size_t cap)
{
    size_t i = *at, k = 0;
    while (i < n && (s[i] == ' ' || s[i] == '\t' || s[i] == '\n'))
        i++;
    if (i >= n) {
        *at = i;
        return 1;
    }
    char quote = 0;
    for (; i < n; i++) {
        char c = s[i];
        if (quote) {
            if (c == quote) {
                quote = 0;
                continue;
            }
        } else if (c == '\'' || c == '"') {
            quote = c;
            continue;
        } else if (c == ' ' || c == '\t' || c == '\n') {
            break;
        }
        if (k + 1 >= cap)
            return -1;
        out[k++] = c;
    }
    if (quote)
        return -1;
    out[k] = '\0';
    *at = i;
    return 0;
}

static bool is_assignment(const char *w)
{
    const char *eq = strchr(w, '=');
    if (!eq || eq == w)
        return false;
    for (const char *p = w; p < eq; p++)
        if (!(*p == '_' || (*p >= 'A' && *p <= 'Z') || (*p >= 'a' && *p <= 'z') ||
              (p > w && *p >= '0' && *p <= '9')))
            return false;
    return true;
}

int sr_program_of(const char *cmd, size_t n, char *out, size_t cap)
{
    size_t at = 0;
    bool after_env = false;
    for (;;) {
        int rc = next_word(cmd, n, &at, out, cap);
        if (rc != 0 || cap == 0)
            return -1;
        if (out[0] == '\0')
            continue;
        if (is_assignment(out))
            continue;
        if (!after_env && strcmp(out, "env") == 0) {
            after_env = true;
            continue;
        }
        if (after_env && out[0] == '-') {
            /* env's own options; -u NAME / --unset NAME take the next word. */
            if (strcmp(out, "-u") == 0 || strcmp(out, "--unset") == 0) {
                char skip[256];
                if (next_word(cmd, n, &at, skip, sizeof(skip)) != 0)
                    return -1;
            }
            continue;
        }
        return 0;
    }
}

static bool executable_file(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 && S_ISREG(st.st_mode) && access(path, X_OK) == 0;
}

int sr_program_find(const char *prog, const char *path, char *out, size_t cap)
{
    if (!prog || !*prog)
        return -1;
    if (strchr(prog, '/')) {
        if (!executable_file(prog) || (size_t)snprintf(out, cap, "%s", prog) >= cap)
            return -1;
        return 0;
    }
    if (!path)
        path = getenv("PATH");
    if (!path)
        path = "/usr/local/bin:/usr/bin:/bin";
    const char *p = path;
    for (;;) {
        const char *colon = strchr(p, ':');
        size_t len = colon ? (size_t)(colon - p) : strlen(p);
        int w = len ? snprintf(out, cap, "%.*s/%s", (int)len, p, prog)
                    : snprintf(out, cap, "./%s", prog);
        if (w > 0 && (size_t)w < cap && executable_file(out))
            return 0;
        if (!colon)
            break;
        p = colon + 1;
    }
    return -1;
}
