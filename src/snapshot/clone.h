/*
 * Cloning a token's project (a git spec, core/project.h) into its route's
 * workspace, in a worker process (the snapshot worker's "clone" job), never
 * on the gateway's event loop.
 *
 * The spec is checked again here (the worker trusts nothing it is handed),
 * then git runs with its arguments after "--", every protocol but the
 * spec's own refused (protocol.allow=never, protocol.<scheme>.allow=always:
 * no ext::, no fd::, no surprise file:// from a submodule or a redirect),
 * no hooks, no terminal prompt (GIT_TERMINAL_PROMPT=0, ssh in batch mode),
 * and a deadline (SR_CLONE_TIMEOUT). The clone is made in a temporary
 * sibling of the destination and renamed into place only once checked out,
 * so a failed or killed clone leaves no half project behind (and the next
 * attempt removes the leftovers).
 */
#ifndef SR_SNAPSHOT_CLONE_H
#define SR_SNAPSHOT_CLONE_H

#include <stddef.h>

#define SR_CLONE_TIMEOUT 600 /* seconds for the whole clone and checkout */

/*
 * Clone spec into dest (which must not exist; its parent must). On success commit (41 bytes)
 * gets the checked-out commit. 0, or -1 with a sentence in err saying why (git's own last
 * line of output when git failed), never a credential (specs hold none).
 */
int sr_clone_run(const char *spec, const char *dest, char commit[41], char *err, size_t errlen);

#endif
