#include "supervisor/files.h"

#include <dirent.h>
#include <errno.h>
#include <ftw.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

int files_mkdir_p(const char *path, mode_t mode)
{
    char buf[PATH_MAX];
    if (snprintf(buf, sizeof(buf), "%s", path) >= (int)sizeof(buf)) {
        errno = ENAMETOOLONG;
        return -1;
    }
    size_t len = strlen(buf);
    while (len > 1 && buf[len - 1] == '/')
        buf[--len] = '\0';
    for (char *p = buf + 1; *p; p++) {
        if (*p != '/')
            continue;
        *p = '\0';
        if (mkdir(buf, 0755) != 0 && errno != EEXIST)
            return -1;
        *p = '/';
    }
    /* A new leaf gets exactly `mode`, whatever the umask (the data dir must stay traversable). */
    if (mkdir(buf, mode) == 0) {
        if (chmod(buf, mode) != 0)
            return -1;
    } else if (errno != EEXIST) {
        return -1;
    }
    struct stat st;
    if (stat(buf, &st) != 0)
        return -1;
    if (!S_ISDIR(st.st_mode)) {
        errno = ENOTDIR;
        return -1;
    }
    return 0;
}

static int s_remove_entry(const char *path, const struct stat *st, int type, struct FTW *ftw)
{
    if (remove(path) != 0 && errno != ENOENT)
        return -1;
    return 0;
}

int files_rmtree(const char *path)
{
    if (!files_exists(path))
        return 0;
    /* FTW_DEPTH visits a directory after its contents, so each remove() sees an empty directory;
     * FTW_PHYS makes a symlink into somewhere else get removed as a link, never followed. */
    return nftw(path, s_remove_entry, 16, FTW_DEPTH | FTW_PHYS);
}

int files_rmtree_contents(const char *path)
{
    DIR *dir = opendir(path);
    if (dir == NULL)
        return errno == ENOENT ? 0 : -1;
    int rc = 0;
    struct dirent *entry;
    while ((entry = readdir(dir)) != NULL) {
        if (strcmp(entry->d_name, ".") == 0 || strcmp(entry->d_name, "..") == 0)
            continue;
        char child[PATH_MAX];
        if (snprintf(child, sizeof(child), "%s/%s", path, entry->d_name) >= (int)sizeof(child) || files_rmtree(child) != 0)
            rc = -1;
    }
    closedir(dir);
    return rc;
}

bool files_exists(const char *path)
{
    struct stat st;
    return lstat(path, &st) == 0;
}
