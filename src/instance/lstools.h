/*
 * Preinstalled language servers (SERENA_TOOLS_DIR/language_servers/static/<Class>) linked into
 * an instance's SERENA_HOME, where Serena looks for the servers it would otherwise download
 * (solidlsp's ls_resources_dir: SERENA_HOME/language_servers/static/<Class>). The image bakes
 * TypeScript's there (deploy/install-language-servers.sh); any other server installed in the
 * same layout is picked up the same way.
 */
#ifndef SR_INSTANCE_LSTOOLS_H
#define SR_INSTANCE_LSTOOLS_H

#include <stddef.h>

/*
 * For each entry E of <tools_dir>/language_servers/static, makes
 * <home>/language_servers/static/E a symbolic link to it: created when missing, re-pointed when
 * it is a link to somewhere else, left alone when it is a real directory (Serena installed that
 * one itself). Returns the number of links made or re-pointed, 0 when tools_dir has no such
 * directory, -1 with err on a failure (the backend still starts; Serena would download).
 */
int sr_inst_link_tools(const char *home, const char *tools_dir, char *err, size_t errlen);

#endif
