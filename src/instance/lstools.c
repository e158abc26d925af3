/* Links preinstalled language servers into SERENA_HOME (see lstools.h). */
#include "instance/lstools.h"

#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include <sys/stat.h>

static int mkdir_if(const char *path)
{
    return mkdir(path, 0700) == 0 || errno == EEXIST ? 0 : -1;
}

int sr_inst_link_tools(const char *home, const char *tools_dir, char *err, size_t errlen)
{
    if (!tools_dir || !*tools_dir)
        return 0;
    char src[PATH_MAX], dst[PATH_MAX];
    snprintf(src, sizeof(src), "%s/language_servers/static", tools_dir);
    DIR *d = opendir(src);
    if (!d)
        return 0;
    char ls[PATH_MAX];
    snprintf(ls, sizeof(ls), "%s/language_servers", home);
    snprintf(dst, sizeof(dst), "%s/language_servers/static", home);
    if (mkdir_if(ls) < 0 || mkdir_if(dst) < 0) {
        snprintf(err, errlen, "cannot create %s: %s", dst, strerror(errno));
        closedir(d);
        return -1;
    }
    int made = 0, rc = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.')
            continue;
        char target[PATH_MAX], link[PATH_MAX], tmp[PATH_MAX], cur[PATH_MAX];
        if (snprintf(target, sizeof(target), "%s/%s", src, e->d_name) >= (int)sizeof(target) ||
            snprintf(link, sizeof(link), "%s/%s", dst, e->d_name) >= (int)sizeof(link) ||
            snprintf(tmp, sizeof(tmp), "%s/.%s.link", dst, e->d_name) >= (int)sizeof(tmp))
            continue;
        struct stat st;
        if (lstat(link, &st) == 0) {
            if (!S_ISLNK(st.st_mode))
                continue; /* installed by Serena itself: keep it */
            ssize_t n = readlink(link, cur, sizeof(cur) - 1);
            if (n >= 0 && (cur[n] = '\0', strcmp(cur, target) == 0))
                continue;
        }
        /* A new link beside it, renamed over: never a moment without one. */
        unlink(tmp);
        if (symlink(target, tmp) < 0 || rename(tmp, link) < 0) {
            snprintf(err, errlen, "cannot link %s to %s: %s", link, target, strerror(errno));
            unlink(tmp);
            rc = -1;
            continue;
        }
        made++;
    }
    closedir(d);
    return rc < 0 ? -1 : made;
}
