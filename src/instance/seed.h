/*
 * Serena's seed configuration (deploy/serena_config.template.yml, embedded
 * at build time): written into an instance's SERENA_HOME before its first
 * start so that Serena runs with the dashboard off, the shell tool excluded
 * unless allowed, no project trusted, and pyright preinstalled (no download
 * at run time).
 */
#ifndef SR_INSTANCE_SEED_H
#define SR_INSTANCE_SEED_H

#include <stddef.h>
#include <stdbool.h>

/*
 * The template with {tools_dir} and {excluded_tools} filled in. NULL with a
 * message when tools_dir cannot sit in a double-quoted YAML string. Caller frees.
 */
char *sr_seed_serena_config(const char *tools_dir, bool allow_shell, char *err, size_t errlen);

#endif
