#include "supervisor/instance.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <unistd.h>

#include "common/log.h"
#include "shm/stats.h"
#include "supervisor/files.h"

struct instance_t {
    int fd;        /* the locked file; close-on-exec so no child (nor the postmaster) inherits the lock */
    bool recorded; /* we wrote a record: clear it on a clean exit */
};

instance_t *instance_lock(const char *data_dir, bool *busy, char *err, size_t errlen)
{
    *busy = false;
    char path[PATH_MAX];
    if (snprintf(path, sizeof(path), "%s/%s", data_dir, INSTANCE_LOCK_FILE) >= (int)sizeof(path)) {
        snprintf(err, errlen, "data directory path too long");
        return NULL;
    }
    instance_t *self = calloc(1, sizeof(*self));
    if (self == NULL) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    self->fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (self->fd < 0) {
        snprintf(err, errlen, "cannot open %s: %s", path, strerror(errno));
        goto Error;
    }
    if (flock(self->fd, LOCK_EX | LOCK_NB) != 0) {
        *busy = errno == EWOULDBLOCK;
        char text[32] = "";
        ssize_t n = pread(self->fd, text, sizeof(text) - 1, 0);
        long pid = n > 4 && strncmp(text, "pid=", 4) == 0 ? strtol(text + 4, NULL, 10) : 0;
        if (*busy)
            snprintf(err, errlen, "another impactd (pid %ld) is running on %s", pid, data_dir);
        else
            snprintf(err, errlen, "cannot lock %s: %s", path, strerror(errno));
        goto Error;
    }
    return self;

Error:
    instance_destroy(&self);
    return NULL;
}

/* `text` is the record of a predecessor that held the lock and died without clearing it. */
static void s_clean_stale(char *text)
{
    char run_dir[PATH_MAX] = "", shm_name[SHM_NAME_MAX + 16] = "";
    long pid = 0;
    int own = 0;
    for (char *line = strtok(text, "\n"); line; line = strtok(NULL, "\n")) {
        if (strncmp(line, "pid=", 4) == 0)
            pid = strtol(line + 4, NULL, 10);
        else if (strncmp(line, "run_dir=", 8) == 0)
            snprintf(run_dir, sizeof(run_dir), "%s", line + 8);
        else if (strncmp(line, "own_run_dir=", 12) == 0)
            own = atoi(line + 12);
        else if (strncmp(line, "shm_name=", 9) == 0)
            snprintf(shm_name, sizeof(shm_name), "%s", line + 9);
    }
    log_warn("impactd pid %ld did not shut down cleanly; removing what it left behind", pid);
    if (own && run_dir[0] == '/' && run_dir[1] != '\0' && files_rmtree(run_dir) != 0)
        log_warn("cannot remove %s: %s", run_dir, strerror(errno));
    if (shm_name[0] == '/' && shm_region_unlink(shm_name) != 0)
        log_warn("cannot unlink shared memory %s: %s", shm_name, strerror(errno));
}

int instance_claim(instance_t *self)
{
    char text[PATH_MAX + 128];
    ssize_t n = pread(self->fd, text, sizeof(text) - 1, 0);
    if (n > 0) {
        text[n] = '\0';
        s_clean_stale(text);
    }
    return instance_record(self, "", false, "");
}

int instance_record(instance_t *self, const char *run_dir, bool own_run_dir, const char *shm_name)
{
    char text[PATH_MAX + 128];
    int n = snprintf(text, sizeof(text), "pid=%d\nrun_dir=%s\nown_run_dir=%d\nshm_name=%s\n", (int)getpid(), run_dir,
                     own_run_dir ? 1 : 0, shm_name);
    if (n < 0 || (size_t)n >= sizeof(text) || ftruncate(self->fd, 0) != 0 || pwrite(self->fd, text, (size_t)n, 0) != n)
        return -1;
    self->recorded = true;
    return 0;
}

void instance_destroy(instance_t **self_p)
{
    instance_t *self = *self_p;
    if (self == NULL)
        return;
    if (self->fd >= 0) {
        if (self->recorded && ftruncate(self->fd, 0) != 0)
            log_warn("cannot clear the instance record: %s", strerror(errno));
        close(self->fd);
    }
    free(self);
    *self_p = NULL;
}
