#include "supervisor/pgembed.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <limits.h>
#include <pwd.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/log.h"
#include "shm/stats.h"
#include "supervisor/files.h"

#define PGEMBED_LIB_DIR "/usr/lib/postgresql"
/* Every supervised process may hold a connection (a dialer per running campaign holds one for its
 * whole life), plus the supervisor's, psql sessions and PostgreSQL's own reserve: PostgreSQL's
 * default of 100 would refuse the dialers of an instance running a hundred campaigns. */
#define PGEMBED_MAX_CONNECTIONS (SHM_PROC_SLOTS + 64)

struct pgembed_t {
    char bin[PATH_MAX]; /* /usr/lib/postgresql/<major>/bin */
    int major;
    char base[PATH_MAX]; /* DATA_DIR/pg: owned by the cluster's user, mode 0700 */
    char data[PATH_MAX]; /* DATA_DIR/pg/data: the cluster */
    char commands_log[PATH_MAX];
    char server_log[PATH_MAX];
    char socket_dir[PATH_MAX];
    char url[PATH_MAX * 2 + 64]; /* room for the quoted socket dir */
    bool tmp_socket_dir;         /* the socket lives in /tmp because DATA_DIR/pg was too long */
    bool as_postgres;            /* we are root: commands run as the postgres user */
    uid_t uid;                   /* owner of the cluster's directories */
    gid_t gid;
};

static int s_path(char *buf, size_t size, const char *a, const char *b)
{
    int n = snprintf(buf, size, "%s%s", a, b);
    return n < 0 || (size_t)n >= size ? -1 : 0;
}

/* The major version a cluster was made with, from DATA/PG_VERSION; 0 if there is no cluster. */
static int s_cluster_major(const pgembed_t *self)
{
    char path[PATH_MAX + 16];
    snprintf(path, sizeof(path), "%s/PG_VERSION", self->data);
    FILE *f = fopen(path, "re");
    if (f == NULL)
        return 0;
    int major = 0;
    if (fscanf(f, "%d", &major) != 1)
        major = 0;
    fclose(f);
    return major;
}

static bool s_has_binaries(int major, char *bin, size_t size)
{
    char pg_ctl[PATH_MAX];
    int n = snprintf(bin, size, "%s/%d/bin", PGEMBED_LIB_DIR, major);
    return n > 0 && (size_t)n < size && (size_t)snprintf(pg_ctl, sizeof(pg_ctl), "%.*s/pg_ctl", n, bin) < sizeof(pg_ctl) &&
           access(pg_ctl, X_OK) == 0;
}

/* A cluster can only be run by the major version that made it; a new one gets the highest installed. */
static int s_find_bin(pgembed_t *self, char *err, size_t errlen)
{
    int major = s_cluster_major(self);
    if (major > 0) {
        self->major = major;
        if (s_has_binaries(major, self->bin, sizeof(self->bin)))
            return 0;
        snprintf(err, errlen, "%s was made by PostgreSQL %d, whose server binaries are not installed", self->data, major);
        return -1;
    }
    DIR *dir = opendir(PGEMBED_LIB_DIR);
    int best = 0;
    struct dirent *entry;
    while (dir && (entry = readdir(dir)) != NULL) {
        char *end;
        long v = strtol(entry->d_name, &end, 10);
        char bin[PATH_MAX];
        if (*end == '\0' && v > best && v < 1000 && s_has_binaries((int)v, bin, sizeof(bin)))
            best = (int)v;
    }
    if (dir)
        closedir(dir);
    if (best == 0) {
        snprintf(err, errlen, "no PostgreSQL server in %s/<version>/bin (apt-get install postgresql, or use --database-url)",
                 PGEMBED_LIB_DIR);
        return -1;
    }
    self->major = best;
    s_has_binaries(best, self->bin, sizeof(self->bin));
    return 0;
}

/* FNV-1a: a stable short name for the /tmp socket directory of one data directory. */
static uint64_t s_hash(const char *s)
{
    uint64_t h = 1469598103934665603ULL;
    for (; *s; s++) {
        h ^= (unsigned char)*s;
        h *= 1099511628211ULL;
    }
    return h;
}

/* Builds a libpq conninfo value in single quotes, escaping ' and \ as libpq expects. */
static void s_conninfo_quote(const char *value, char *out, size_t size)
{
    size_t n = 0;
    if (size < 3)
        return;
    out[n++] = '\'';
    for (; *value && n + 3 < size; value++) {
        if (*value == '\'' || *value == '\\')
            out[n++] = '\\';
        out[n++] = *value;
    }
    out[n++] = '\'';
    out[n] = '\0';
}

pgembed_t *pgembed_new(const char *data_dir, char *err, size_t errlen)
{
    pgembed_t *self = calloc(1, sizeof(*self));
    if (self == NULL) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    if (data_dir[0] != '/' || strpbrk(data_dir, "'\"\\") != NULL) {
        snprintf(err, errlen, "the data directory must be an absolute path without quotes or backslashes: %s", data_dir);
        goto Error;
    }
    if (s_path(self->base, sizeof(self->base), data_dir, "/pg") != 0 ||
        s_path(self->data, sizeof(self->data), self->base, "/data") != 0 ||
        s_path(self->commands_log, sizeof(self->commands_log), self->base, "/commands.log") != 0 ||
        s_path(self->server_log, sizeof(self->server_log), self->base, "/server.log") != 0) {
        snprintf(err, errlen, "data directory path too long: %s", data_dir);
        goto Error;
    }
    if (s_find_bin(self, err, errlen) != 0)
        goto Error;

    if (geteuid() == 0) {
        struct passwd *pw = getpwnam("postgres");
        if (pw == NULL) {
            snprintf(err, errlen, "running as root needs the postgres user for the embedded cluster (apt-get install postgresql)");
            goto Error;
        }
        self->as_postgres = true;
        self->uid = pw->pw_uid;
        self->gid = pw->pw_gid;
    } else {
        self->uid = geteuid();
        self->gid = getegid();
    }

    /* The server binds "<dir>/.s.PGSQL.<port>", which must fit in sun_path with its NUL. */
    struct sockaddr_un un;
    if (strlen(self->base) + strlen("/.s.PGSQL.5432") < sizeof(un.sun_path)) {
        snprintf(self->socket_dir, sizeof(self->socket_dir), "%s", self->base);
    } else {
        snprintf(self->socket_dir, sizeof(self->socket_dir), "/tmp/impactd-pg-%016llx", (unsigned long long)s_hash(data_dir));
        self->tmp_socket_dir = true;
    }
    char quoted[PATH_MAX * 2 + 3];
    s_conninfo_quote(self->socket_dir, quoted, sizeof(quoted));
    snprintf(self->url, sizeof(self->url), "host=%s port=%d user=postgres dbname=postgres", quoted, PGEMBED_PORT);
    return self;

Error:
    pgembed_destroy(&self);
    return NULL;
}

void pgembed_destroy(pgembed_t **self_p)
{
    free(*self_p);
    *self_p = NULL;
}

const char *pgembed_url(const pgembed_t *self)
{
    return self->url;
}

const char *pgembed_socket_dir(const pgembed_t *self)
{
    return self->socket_dir;
}

/* Runs a binary of the cluster's PostgreSQL version (argv[0] is its name) as the cluster's user,
 * with output appended to DATA_DIR/pg/commands.log. Returns its exit code, 128+signal, or -1. */
static int s_run(const pgembed_t *self, char *const argv[])
{
    char path[PATH_MAX + 64];
    snprintf(path, sizeof(path), "%s/%s", self->bin, argv[0]);
    int log = open(self->commands_log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
    if (log < 0) {
        log_error("cannot open %s: %s", self->commands_log, strerror(errno));
        return -1;
    }
    pid_t pid = fork();
    if (pid == 0) {
        /* Same hygiene as for the children (children.c): no inherited blocked signals, since
         * pg_ctl's postmaster would inherit them too, and no terminal Ctrl-C mid-initdb. */
        sigset_t none;
        sigemptyset(&none);
        sigprocmask(SIG_SETMASK, &none, NULL);
        signal(SIGPIPE, SIG_DFL);
        setpgid(0, 0);
        int devnull = open("/dev/null", O_RDONLY);
        if (devnull >= 0 && devnull != STDIN_FILENO) {
            dup2(devnull, STDIN_FILENO);
            close(devnull);
        }
        dup2(log, STDOUT_FILENO);
        dup2(log, STDERR_FILENO);
        /* initdb refuses root; switching here is what runuser -u postgres would do, without PAM. */
        if (self->as_postgres && (setgroups(1, &self->gid) != 0 || setgid(self->gid) != 0 || setuid(self->uid) != 0))
            _exit(126);
        /* The postgres user may not be allowed into our working directory (e.g. /root). */
        if (chdir(self->base) != 0)
            _exit(126);
        execv(path, argv);
        _exit(127);
    }
    close(log);
    if (pid < 0) {
        log_error("fork: %s", strerror(errno));
        return -1;
    }
    int status;
    while (waitpid(pid, &status, 0) < 0) {
        if (errno != EINTR)
            return -1;
    }
    if (WIFEXITED(status))
        return WEXITSTATUS(status);
    return 128 + WTERMSIG(status);
}

static int s_chown(const pgembed_t *self, const char *path, char *err, size_t errlen)
{
    if (self->as_postgres && chown(path, self->uid, self->gid) != 0) {
        snprintf(err, errlen, "chown %s: %s", path, strerror(errno));
        return -1;
    }
    return 0;
}

static bool s_searchable(const pgembed_t *self, const struct stat *st)
{
    if (st->st_uid == self->uid)
        return st->st_mode & S_IXUSR;
    if (st->st_gid == self->gid)
        return st->st_mode & S_IXGRP;
    return st->st_mode & S_IXOTH;
}

/* Root can create DATA_DIR anywhere, but the server runs as postgres and must walk down to it. */
static int s_check_reachable(const pgembed_t *self, const char *dir, char *err, size_t errlen)
{
    char path[PATH_MAX];
    snprintf(path, sizeof(path), "%s", dir);
    for (;;) {
        struct stat st;
        if (stat(path[0] ? path : "/", &st) != 0) {
            snprintf(err, errlen, "stat %s: %s", path[0] ? path : "/", strerror(errno));
            return -1;
        }
        if (!s_searchable(self, &st)) {
            snprintf(err, errlen,
                     "the postgres user cannot reach %s: %s is not searchable by it (chmod o+x it, choose another "
                     "--data-dir, or use --database-url)",
                     dir, path[0] ? path : "/");
            return -1;
        }
        char *slash = strrchr(path, '/');
        if (slash == NULL || path[0] == '\0')
            return 0;
        *slash = '\0';
    }
}

static int s_prepare_socket_dir(const pgembed_t *self, char *err, size_t errlen)
{
    if (mkdir(self->socket_dir, 0700) != 0 && errno != EEXIST) {
        snprintf(err, errlen, "mkdir %s: %s", self->socket_dir, strerror(errno));
        return -1;
    }
    /* /tmp is shared: a directory someone else planted under our name must not receive the socket. */
    struct stat st;
    if (lstat(self->socket_dir, &st) != 0 || !S_ISDIR(st.st_mode) || (st.st_uid != self->uid && st.st_uid != geteuid())) {
        snprintf(err, errlen, "refusing to use %s for the PostgreSQL socket: not a directory of ours", self->socket_dir);
        return -1;
    }
    if (chmod(self->socket_dir, 0700) != 0) {
        snprintf(err, errlen, "chmod %s: %s", self->socket_dir, strerror(errno));
        return -1;
    }
    return s_chown(self, self->socket_dir, err, errlen);
}

static int s_prepare_dirs(const pgembed_t *self, char *err, size_t errlen)
{
    if (files_mkdir_p(self->base, 0700) != 0) {
        snprintf(err, errlen, "mkdir %s: %s", self->base, strerror(errno));
        return -1;
    }
    if (chmod(self->base, 0700) != 0) {
        snprintf(err, errlen, "chmod %s: %s", self->base, strerror(errno));
        return -1;
    }
    if (s_chown(self, self->base, err, errlen) != 0)
        return -1;
    if (self->as_postgres && s_check_reachable(self, self->base, err, errlen) != 0)
        return -1;
    if (self->tmp_socket_dir) {
        log_info("PostgreSQL socket path under %s would exceed %zu bytes; using %s instead", self->base,
                 sizeof(((struct sockaddr_un *)0)->sun_path) - 1, self->socket_dir);
        return s_prepare_socket_dir(self, err, errlen);
    }
    return 0;
}

/* initdb writes into a scratch directory renamed into place at the end, so a run interrupted half
 * way (Ctrl-C, power loss) leaves no half-made cluster that the next start would mistake for one. */
static int s_initdb(const pgembed_t *self, char *err, size_t errlen)
{
    char scratch[PATH_MAX + 16];
    snprintf(scratch, sizeof(scratch), "%s.initdb", self->data);
    if (files_exists(self->data)) {
        snprintf(err, errlen, "%s exists but holds no PostgreSQL cluster (no PG_VERSION); move it away", self->data);
        return -1;
    }
    if (files_rmtree(scratch) != 0) {
        snprintf(err, errlen, "cannot remove %s: %s", scratch, strerror(errno));
        return -1;
    }
    log_info("creating a PostgreSQL cluster in %s", self->data);
    char *argv[] = {"initdb", "-D", scratch, "-U", "postgres", "-A", "trust", "-E", "UTF8", "--locale=C.UTF-8", NULL};
    int rc = s_run(self, argv);
    if (rc != 0) {
        snprintf(err, errlen, "initdb failed (exit %d); see %s", rc, self->commands_log);
        return -1;
    }
    if (rename(scratch, self->data) != 0) {
        snprintf(err, errlen, "rename %s: %s", scratch, strerror(errno));
        return -1;
    }
    return 0;
}

/* postmaster.pid: line 1 pid, 4 port, 5 first socket directory (PostgreSQL's documented layout). */
static bool s_running_as_configured(const pgembed_t *self, long *pid)
{
    char path[PATH_MAX + 32], line[PATH_MAX];
    snprintf(path, sizeof(path), "%s/postmaster.pid", self->data);
    FILE *f = fopen(path, "re");
    if (f == NULL)
        return false;
    bool match = false;
    long port = 0;
    for (int n = 1; n <= 5 && fgets(line, sizeof(line), f); n++) {
        line[strcspn(line, "\n")] = '\0';
        if (n == 1)
            *pid = strtol(line, NULL, 10);
        else if (n == 4)
            port = strtol(line, NULL, 10);
        else if (n == 5)
            match = port == PGEMBED_PORT && strcmp(line, self->socket_dir) == 0;
    }
    fclose(f);
    return match;
}

bool pgembed_running(pgembed_t *self)
{
    char *argv[] = {"pg_ctl", "status", "-D", self->data, NULL};
    return s_cluster_major(self) > 0 && s_run(self, argv) == 0;
}

static int s_pg_ctl_stop(const pgembed_t *self, const char *mode)
{
    char *argv[] = {"pg_ctl", "stop", "-D", (char *)self->data, "-m", (char *)mode, "-w", "-t", "60", NULL};
    return s_run(self, argv);
}

int pgembed_start(pgembed_t *self, char *err, size_t errlen)
{
    if (s_prepare_dirs(self, err, errlen) != 0)
        return -1;
    if (s_cluster_major(self) == 0 && s_initdb(self, err, errlen) != 0)
        return -1;
    if (pgembed_running(self)) {
        long pid = 0;
        if (s_running_as_configured(self, &pid)) {
            log_info("adopting the PostgreSQL cluster already running as pid %ld", pid);
            return 0;
        }
        log_info("restarting the PostgreSQL cluster already running as pid %ld with other settings", pid);
        if (s_pg_ctl_stop(self, "fast") != 0) {
            snprintf(err, errlen, "cannot stop the running cluster; see %s", self->commands_log);
            return -1;
        }
    }
    /* pg_ctl hands -o to the server through /bin/sh: the quotes keep the path one argument and
     * make listen_addresses empty (no TCP at all). pgembed_new rejected paths with quotes. */
    char options[PATH_MAX + 128];
    snprintf(options, sizeof(options), "-k '%s' -p %d -c listen_addresses='' -c max_connections=%d", self->socket_dir, PGEMBED_PORT,
             PGEMBED_MAX_CONNECTIONS);
    char *argv[] = {"pg_ctl", "start", "-D", self->data, "-l", self->server_log, "-o", options, "-w", "-t", "60", NULL};
    int rc = s_run(self, argv);
    if (rc != 0) {
        snprintf(err, errlen, "pg_ctl start failed (exit %d); see %s and %s", rc, self->server_log, self->commands_log);
        return -1;
    }
    log_info("PostgreSQL %d started, socket in %s", self->major, self->socket_dir);
    return 0;
}

int pgembed_stop(pgembed_t *self, char *err, size_t errlen)
{
    if (pgembed_running(self)) {
        /* Fast shutdown ends sessions and checkpoints; immediate is the fallback for a server
         * that did not finish in time (it recovers from WAL on the next start). */
        if (s_pg_ctl_stop(self, "fast") != 0 && s_pg_ctl_stop(self, "immediate") != 0) {
            snprintf(err, errlen, "pg_ctl stop failed; see %s", self->commands_log);
            return -1;
        }
        log_info("PostgreSQL stopped");
    }
    if (self->tmp_socket_dir && rmdir(self->socket_dir) != 0 && errno != ENOENT) {
        snprintf(err, errlen, "rmdir %s: %s", self->socket_dir, strerror(errno));
        return -1;
    }
    return 0;
}
