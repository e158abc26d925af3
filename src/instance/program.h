/*
 * The program a backend command runs: which word of the command line it is,
 * and where PATH finds it. `check` refuses a configuration whose program is
 * not found, `serve` warns about it at start, a backend that exits 127
 * before it was ready is reported as "not found" by name, and a program
 * inside a Python venv gets that venv as a git ceiling (see command.c).
 *
 * The command line is the template of --backend-cmd (or the default Serena
 * command): words separated by blanks, optionally quoted with ' or ".
 * Leading `env` (with its -i/-u NAME options) and VAR=value words are
 * skipped: "env PORT={port} node server.js" runs `node`.
 */
#ifndef SR_INSTANCE_PROGRAM_H
#define SR_INSTANCE_PROGRAM_H

#include <stddef.h>

/* The program word of cmd into out; 0, or -1 when there is none or it does not fit. */
int sr_program_of(const char *cmd, size_t n, char *out, size_t cap);

/*
 * Resolves prog as the shell would: a name with a '/' as it is, else the
 * first executable regular file of that name in path (a PATH value; NULL
 * means the environment's). 0 with the full path in out, or -1.
 */
int sr_program_find(const char *prog, const char *path, char *out, size_t cap);

#endif
