/*
 * A token's project spec: what a token entry's "project" (and SERENA_PROJECT)
 * may name.
 *
 *   https://host[:port]/path[.git][#ref]      cloned into the route's work/
 *   ssh://[user@]host[:port]/path[#ref]       (the same)
 *   file:///abs/path/repo.git[#ref]           (the same; a repository on this machine)
 *   /abs/path                                 a directory on the gateway's machine, used as is
 *
 * Strict, because the URL and the ref end up on git's command line (after
 * "--", under protocol.allow) and the path on Serena's: no leading '-' in
 * any part (no "-oProxyCommand=" host, no "--upload-pack=" anything), no
 * "::" (git's transport syntax, "ext::sh -c ..."), no ".." or "."
 * component, no credentials in a URL (they would show in logs and `check`:
 * use a credential helper or an ssh key), no spaces, quotes, '%' or other
 * shell or URL metacharacters in a URL, no control character anywhere. A
 * ref is [A-Za-z0-9._/-], not starting with '-', without "..", "//" or a
 * trailing '/' or ".lock".
 *
 * Freestanding (core.wasm validates the Worker's token table with it).
 * Messages are static text and never quote the spec.
 */
#ifndef SR_CORE_PROJECT_H
#define SR_CORE_PROJECT_H

#include <stddef.h>
#include <stdint.h>
#include <stdbool.h>

#include "core/limits.h"

enum sr_project_kind { SR_PROJECT_PATH = 1, SR_PROJECT_GIT = 2 };

struct sr_project_spec {
    enum sr_project_kind kind;
    size_t url_len; /* git: the URL before '#'; path: the whole path */
    size_t ref_off; /* git: the ref after '#' (ref_len 0: the default branch) */
    size_t ref_len;
    /* git: the directory it is cloned into, under the route's work/ (the URL's last path
     * component without ".git", reduced to [A-Za-z0-9._-]) */
    char name[SR_TOKEN_NAME_MAX + 1];
};

/* 0, or -1 with *why (static text) when s[0..n) is not a valid spec. */
int sr_project_spec_parse(const char *s, size_t n, struct sr_project_spec *out, const char **why);

#endif
