/*
 * serena-remote-snapshot: the half of serena-remote that links libcurl and
 * libarchive. It serves the snapshot, restore and snapshots commands
 * (serena-remote hands them over with exec) and the gateway's snapshot
 * workers (`__job`, see snapshot/job_worker.c). Keeping these libraries out
 * of the gateway keeps its resident memory small: their dependency trees
 * (GnuTLS, Kerberos, LDAP, ICU) map several MiB into every process.
 */
#include <stdio.h>
#include <string.h>

#include "cmd/cmd.h"
#include "snapshot/snapshot.h"

int main(int argc, char **argv)
{
    const char *cmd = argc > 1 ? argv[1] : "";
    if (strcmp(cmd, "__job") == 0)
        return sr_snapshot_worker_main();
    if (strcmp(cmd, "snapshot") == 0)
        return sr_cmd_snapshot(argc - 2, argv + 2);
    if (strcmp(cmd, "restore") == 0)
        return sr_cmd_restore(argc - 2, argv + 2);
    if (strcmp(cmd, "snapshots") == 0)
        return sr_cmd_snapshots(argc - 2, argv + 2);
    if (strcmp(cmd, "--version") == 0 || strcmp(cmd, "version") == 0) {
        printf("serena-remote-snapshot %s\n", SR_VERSION);
        return 0;
    }
    fprintf(stderr, "Usage: serena-remote snapshot|restore|snapshots [options] (see "
                    "serena-remote snapshot --help)\n");
    return 2;
}
