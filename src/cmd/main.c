/*
 * serena-remote: entry point. Wiring only: pick the subcommand and run it.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cmd/cmd.h"
#include "instance/spawn.h"
#include "snapshot/snapshot.h"

static void usage(FILE *f)
{
    fprintf(f,
            "serena-remote %s: a remote, authenticated, per-token gateway for Serena and any "
            "Streamable HTTP MCP server\n\n"
            "Usage: serena-remote <command> [options]\n\n"
            "Commands:\n"
            "  serve     run the gateway (--help for its options)\n"
            "  run       the Cloudflare Container's PID 1: one backend behind the Worker\n"
            "  check     print the effective configuration (secrets masked) and validate it\n"
            "  status    list a running gateway's routes from its admin listener\n"
            "  token     print a new random token and its sha256: form\n"
            "  snapshot  archive a state directory to the store (unless unchanged)\n"
            "  restore   replace a state directory with a verified snapshot\n"
            "  snapshots list the snapshots in the store, newest first\n"
            "  version   print the version\n\n"
            "Run 'serena-remote <command> --help' for details. Documentation: README.md.\n",
            SR_VERSION);
}

/*
 * The snapshot commands live in serena-remote-snapshot (beside this binary,
 * or SERENA_REMOTE_SNAPSHOT_BIN), which links libcurl and libarchive; the
 * gateway does not.
 */
static int exec_snapshot_tool(int argc, char **argv)
{
    char path[4096];
    if (sr_snapshot_bin(path, sizeof(path)) < 0) {
        fprintf(stderr, "serena-remote: cannot locate serena-remote-snapshot (set "
                        "SERENA_REMOTE_SNAPSHOT_BIN)\n");
        return 1;
    }
    (void)argc;
    argv[0] = "serena-remote-snapshot";
    execv(path, argv);
    fprintf(stderr,
            "serena-remote: cannot run %s (%s): it is built and installed with serena-remote; "
            "set SERENA_REMOTE_SNAPSHOT_BIN if it lives elsewhere\n",
            path, strerror(errno));
    return 1;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    const char *cmd = argv[1];
    if (strcmp(cmd, "__exec") == 0) /* internal: the backend wrapper (instance/spawn.c) */
        return sr_child_exec_main(argc, argv);
    if (strcmp(cmd, "serve") == 0)
        return sr_cmd_serve(argc - 2, argv + 2);
    if (strcmp(cmd, "run") == 0)
        return sr_cmd_run(argc - 2, argv + 2);
    if (strcmp(cmd, "check") == 0)
        return sr_cmd_check(argc - 2, argv + 2);
    if (strcmp(cmd, "status") == 0)
        return sr_cmd_status(argc - 2, argv + 2);
    if (strcmp(cmd, "token") == 0)
        return sr_cmd_token(argc - 2, argv + 2);
    if (strcmp(cmd, "snapshot") == 0 || strcmp(cmd, "restore") == 0 ||
        strcmp(cmd, "snapshots") == 0)
        return exec_snapshot_tool(argc, argv);
    if (strcmp(cmd, "version") == 0 || strcmp(cmd, "--version") == 0 || strcmp(cmd, "-V") == 0) {
        printf("serena-remote %s\n", SR_VERSION);
        return 0;
    }
    if (strcmp(cmd, "help") == 0 || strcmp(cmd, "--help") == 0 || strcmp(cmd, "-h") == 0) {
        usage(stdout);
        return 0;
    }
    fprintf(stderr, "serena-remote: unknown command '%s'\n\n", cmd);
    usage(stderr);
    return 2;
}
