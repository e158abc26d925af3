/*
 * Project specs (see project.h).
 *
 * The checks are an allow-list on purpose: every byte a URL may hold is
 * named here, and anything git or a shell could read as something other
 * than a plain location is refused before it is stored, so that no later
 * step has to quote its way around it.
 */
#include "core/project.h"

#include "core/mem.h"

#define SPEC_MAX SR_PROJECT_MAX
#define REF_MAX  200

static bool alnum(char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
}

static bool starts(const char *s, size_t n, const char *p)
{
    size_t k = sr_str_len(p);
    return n >= k && sr_mem_eq(s, p, k);
}

/* Path components from s[0..n) (after a '/'): none empty, "." or ".."; allowed bytes only. */
static bool path_ok(const char *s, size_t n, bool url)
{
    size_t start = 0;
    if (n == 0)
        return false;
    for (size_t i = 0; i <= n; i++) {
        if (i < n && s[i] != '/') {
            char c = s[i];
            if ((unsigned char)c < 0x20 || c == 0x7f)
                return false;
            if (url && !(alnum(c) || c == '.' || c == '_' || c == '-' || c == '~' || c == '+' ||
                         c == '@' || c == ':'))
                return false;
            continue;
        }
        size_t len = i - start;
        /* A trailing '/' is tolerated (an empty last component), nothing else empty. */
        if (len == 0 && i != n)
            return false;
        if ((len == 1 && s[start] == '.') || (len == 2 && s[start] == '.' && s[start + 1] == '.'))
            return false;
        if (len && s[start] == '-')
            return false;
        start = i + 1;
    }
    return true;
}

/* host[:port], host of [A-Za-z0-9.-] not starting with '-' or '.'. */
static bool host_ok(const char *s, size_t n)
{
    size_t i = 0;
    if (n == 0 || s[0] == '-' || s[0] == '.')
        return false;
    while (i < n && (alnum(s[i]) || s[i] == '.' || s[i] == '-'))
        i++;
    if (i == 0)
        return false;
    if (i == n)
        return true;
    if (s[i] != ':' || i + 1 == n)
        return false;
    for (i++; i < n; i++)
        if (s[i] < '0' || s[i] > '9')
            return false;
    return true;
}

static bool ref_ok(const char *s, size_t n)
{
    if (n == 0 || n > REF_MAX || s[0] == '-' || s[0] == '/' || s[n - 1] == '/' ||
        (n >= 5 && sr_mem_eq(s + n - 5, ".lock", 5)))
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (!(alnum(c) || c == '.' || c == '_' || c == '-' || c == '/'))
            return false;
        if (i + 1 < n && ((c == '.' && s[i + 1] == '.') || (c == '/' && s[i + 1] == '/')))
            return false;
    }
    return true;
}

/* The checkout's directory name from the URL's last path component. */
static void make_name(const char *path, size_t n, char *out)
{
    while (n && path[n - 1] == '/')
        n--;
    size_t b = n;
    while (b && path[b - 1] != '/')
        b--;
    const char *c = path + b;
    size_t len = n - b;
    if (len > 4 && sr_mem_eq(c + len - 4, ".git", 4))
        len -= 4;
    size_t k = 0;
    for (size_t i = 0; i < len && k < SR_TOKEN_NAME_MAX; i++)
        out[k++] = alnum(c[i]) || c[i] == '.' || c[i] == '_' || c[i] == '-' ? c[i] : '-';
    out[k] = '\0';
    if (k == 0 || out[0] == '.' || out[0] == '-') {
        sr_mem_copy(out, "project", 8);
    }
}

int sr_project_spec_parse(const char *s, size_t n, struct sr_project_spec *out, const char **why)
{
    sr_mem_set(out, 0, sizeof(*out));
    if (s == NULL || n == 0) {
        *why = "project is empty";
        return -1;
    }
    if (n > SPEC_MAX) {
        *why = "project is longer than 1024 characters";
        return -1;
    }
    for (size_t i = 0; i < n; i++) {
        if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f) {
            *why = "project contains a control character";
            return -1;
        }
    }
    if (s[0] == '/') {
        if (!path_ok(s + 1, n - 1, false)) {
            *why = "project path has an empty, '.', '..' or '-'-led component";
            return -1;
        }
        out->kind = SR_PROJECT_PATH;
        out->url_len = n;
        return 0;
    }
    /* A git URL: its ref first. */
    size_t u = n;
    for (size_t i = 0; i < n; i++)
        if (s[i] == '#') {
            u = i;
            break;
        }
    if (u < n) {
        if (!ref_ok(s + u + 1, n - u - 1)) {
            *why = "project ref (after '#') must be [A-Za-z0-9._/-], not start with '-', and "
                   "hold no '..' or '//'";
            return -1;
        }
        out->ref_off = u + 1;
        out->ref_len = n - u - 1;
    }
    for (size_t i = 0; i + 1 < u; i++) {
        if (s[i] == ':' && s[i + 1] == ':') {
            *why = "project URL uses git's transport syntax (\"::\"), which runs commands";
            return -1;
        }
    }
    size_t at, end;
    if (starts(s, u, "https://") || starts(s, u, "ssh://")) {
        at = starts(s, u, "https://") ? 8 : 6;
        end = at;
        while (end < u && s[end] != '/')
            end++;
        size_t host = at;
        for (size_t i = at; i < end; i++) {
            if (s[i] == '@') {
                if (at == 8) {
                    *why = "project URL holds credentials: use a git credential helper or an "
                           "ssh:// URL with a key instead";
                    return -1;
                }
                host = i + 1;
            }
        }
        if (host > at) {
            /* ssh user: [A-Za-z0-9._-], not starting with '-' */
            if (s[at] == '-')
                goto bad_host;
            for (size_t i = at; i < host - 1; i++)
                if (!(alnum(s[i]) || s[i] == '.' || s[i] == '_' || s[i] == '-'))
                    goto bad_host;
            if (host - 1 == at)
                goto bad_host;
        }
        if (!host_ok(s + host, end - host))
            goto bad_host;
        if (end >= u || !path_ok(s + end + 1, u - end - 1, true)) {
            *why = "project URL needs a repository path without empty, '.', '..' or '-'-led "
                   "components, of [A-Za-z0-9._~+@:-]";
            return -1;
        }
    } else if (starts(s, u, "file:///")) {
        end = 7;
        if (!path_ok(s + 8, u - 8, true)) {
            *why = "project file:/// URL needs an absolute path without empty, '.', '..' or "
                   "'-'-led components, of [A-Za-z0-9._~+@:-]";
            return -1;
        }
    } else {
        *why = "project must be a git URL (https://..., ssh://..., file:///..., optional #ref) "
               "or an absolute path";
        return -1;
    }
    out->kind = SR_PROJECT_GIT;
    out->url_len = u;
    make_name(s + end, u - end, out->name);
    return 0;
bad_host:
    *why = "project URL has an invalid host or user (a '-' first, or a character outside "
           "[A-Za-z0-9._-])";
    return -1;
}
