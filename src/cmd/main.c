/*
 * serena-remote: entry point. Wiring only: pick the subcommand and run it.
 */
#include <stdio.h>
#include <string.h>

#include "cmd/cmd.h"
#include "instance/spawn.h"

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
            "  token     print a new random token and its sha256: form\n"
            "  snapshot  archive a state directory to the store (unless unchanged)\n"
            "  restore   replace a state directory with a verified snapshot\n"
            "  snapshots list the snapshots in the store, newest first\n"
            "  version   print the version\n\n"
            "Run 'serena-remote <command> --help' for details. Documentation: README.md.\n",
            SR_VERSION);
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
    if (strcmp(cmd, "token") == 0)
        return sr_cmd_token(argc - 2, argv + 2);
    if (strcmp(cmd, "snapshot") == 0)
        return sr_cmd_snapshot(argc - 2, argv + 2);
    if (strcmp(cmd, "restore") == 0)
        return sr_cmd_restore(argc - 2, argv + 2);
    if (strcmp(cmd, "snapshots") == 0)
        return sr_cmd_snapshots(argc - 2, argv + 2);
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
