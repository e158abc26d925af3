/*
 * Subcommands of the serena-remote binary. Each returns the process exit
 * status: 0 success, 1 runtime failure, 2 invalid usage or configuration.
 */
#ifndef SR_CMD_CMD_H
#define SR_CMD_CMD_H

int sr_cmd_serve(int argc, char **argv);
int sr_cmd_run(int argc, char **argv);
int sr_cmd_check(int argc, char **argv);
int sr_cmd_token(int argc, char **argv);
int sr_cmd_snapshot(int argc, char **argv);
int sr_cmd_restore(int argc, char **argv);
int sr_cmd_snapshots(int argc, char **argv);
int sr_cmd_status(int argc, char **argv);

#endif
