/*
 * What /proc says about a process: its memory, CPU time and parent, for the
 * gateway's own process metrics and for the memory of each backend's process
 * tree (Serena and the language servers it starts).
 *
 * Why a tree walk: a language server runs in its own session (Serena starts
 * it that way), so a process group or session says nothing; its parent does.
 * One scan of /proc gives every process's parent, and each root's
 * descendants follow from that. The scan is bounded (SR_PROCFS_SCAN_MAX
 * processes) and reads a few hundred small files: it runs at scrape time,
 * not per request.
 */
#ifndef SR_METRICS_PROCFS_H
#define SR_METRICS_PROCFS_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* Fields of /proc/PID/stat this project reads. */
struct sr_procfs_stat {
    int pid;
    char state;
    int ppid;
    uint64_t utime, stime; /* clock ticks */
    uint64_t starttime;    /* clock ticks since boot */
    uint64_t vsize;        /* bytes */
    int64_t rss_pages;
};

/*
 * Parses the text of /proc/PID/stat. The command name (field 2) may hold
 * spaces and parentheses: fields resume after its last ')'. 0, or -1 when
 * the text does not have the shape.
 */
int sr_procfs_parse_stat(const char *buf, size_t n, struct sr_procfs_stat *st);

/* Reads and parses /proc/PID/stat; 0 or -1 (no such process). */
int sr_procfs_read_stat(pid_t pid, struct sr_procfs_stat *st);

/*
 * RSS in bytes of each root's process tree (the root and every descendant):
 * out[i] for roots[i], 0 for a root that is gone. One /proc scan for all.
 */
void sr_procfs_tree_rss(const pid_t *roots, uint64_t *out, size_t n);

struct sr_procfs_self {
    uint64_t rss_bytes, vsize_bytes;
    double cpu_seconds; /* user + system */
    double start_time;  /* unix seconds */
    uint32_t open_fds;
};
/* This process's figures; 0 or -1 when /proc is unreadable. */
int sr_procfs_self(struct sr_procfs_self *out);

#endif
