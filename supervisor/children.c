#include "supervisor/children.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "common/log.h"

const children_policy_t children_default_policy = {
    .backoff_initial_ms = 100,
    .backoff_max_ms = 10000,
    .backoff_reset_ms = 30000,
    .running_after_ms = 1000,
    .stop_timeout_ms = 5000,
};

typedef struct {
    shm_proc_t proc;       /* what the process table shows; proc.pid is 0 while nothing runs */
    char *path;            /* program to exec */
    char **argv;           /* its arguments, NULL-terminated */
    char ctx[64];          /* "child=<name>", the log context of every line about this child */
    bool added_only;       /* not started by children_start_all yet */
    int64_t started_ms;    /* monotonic time of the last spawn */
    int64_t restart_at_ms; /* BACKOFF: when to spawn again */
    int64_t delay_ms;      /* the delay of the pending (or last) restart */
    int64_t backoff_ms;    /* the delay the next quick death will get */
    bool dynamic;          /* added by children_spawn: a clean exit (status 0) ends the entry */
    bool removing;         /* children_remove: the entry goes once the process is gone */
    int64_t kill_at_ms;    /* removing: SIGKILL if still alive then */
} child_t;

struct children_t {
    children_policy_t policy;
    children_event_fn *on_event;
    void *arg;
    bool stopping; /* children_stop_all ran: nothing is restarted any more */
    int count;     /* entries 0..count-1 have been used; removed ones are free (path NULL) */
    child_t children[CHILDREN_MAX];
};

static int64_t s_monotonic_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int64_t s_unix_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void s_set_state(children_t *self, int index, shm_proc_state_t state, pid_t died)
{
    child_t *child = &self->children[index];
    child->proc.state = state;
    child->proc.updated_unix_ms = s_unix_ms();
    if (self->on_event)
        self->on_event((uint32_t)index, &child->proc, died, self->arg);
}

static void s_describe_status(int status, char *buf, size_t size)
{
    if (WIFEXITED(status))
        snprintf(buf, size, "exit status %d", WEXITSTATUS(status));
    else if (WIFSIGNALED(status))
        snprintf(buf, size, "signal %d (%s)%s", WTERMSIG(status), strsignal(WTERMSIG(status)),
                 WCOREDUMP(status) ? ", core dumped" : "");
    else
        snprintf(buf, size, "wait status %#x", (unsigned)status);
}

children_t *children_new(const children_policy_t *policy, children_event_fn *on_event, void *arg)
{
    children_t *self = calloc(1, sizeof(*self));
    if (self == NULL)
        return NULL;
    self->policy = policy ? *policy : children_default_policy;
    self->on_event = on_event;
    self->arg = arg;
    return self;
}

static void s_free_child(child_t *child)
{
    for (char **a = child->argv; a && *a; a++)
        free(*a);
    free(child->argv);
    free(child->path);
    child->argv = NULL;
    child->path = NULL;
}

void children_destroy(children_t **self_p)
{
    children_t *self = *self_p;
    if (self == NULL)
        return;
    /* Only reached with live children on an error path; they must not outlive the table. */
    for (int i = 0; i < self->count; i++) {
        child_t *child = &self->children[i];
        if (child->proc.pid > 0) {
            kill(child->proc.pid, SIGKILL);
            while (waitpid(child->proc.pid, NULL, 0) < 0 && errno == EINTR)
                ;
        }
        s_free_child(child);
    }
    free(self);
    *self_p = NULL;
}

static bool s_in_use(const child_t *child)
{
    return child->path != NULL;
}

/* Fills entry `index` (free) with copies of everything. 0 or -1 with the entry left free. */
static int s_fill(children_t *self, int index, const char *role, const char *name, const char *path, char *const argv[])
{
    child_t *child = &self->children[index];
    memset(child, 0, sizeof(*child));
    size_t argc = 0;
    while (argv[argc])
        argc++;
    child->path = strdup(path);
    child->argv = calloc(argc + 1, sizeof(char *));
    if (child->path == NULL || child->argv == NULL)
        goto Error;
    for (size_t i = 0; i < argc; i++)
        if ((child->argv[i] = strdup(argv[i])) == NULL)
            goto Error;
    snprintf(child->proc.role, sizeof(child->proc.role), "%s", role);
    snprintf(child->proc.name, sizeof(child->proc.name), "%s", name);
    snprintf(child->ctx, sizeof(child->ctx), "child=%s", name);
    child->proc.last_exit = -1;
    child->backoff_ms = self->policy.backoff_initial_ms;
    return 0;

Error:
    s_free_child(child);
    return -1;
}

static bool s_names_fit(const children_t *self, const char *role, const char *name)
{
    return strlen(role) < sizeof(self->children[0].proc.role) && strlen(name) < sizeof(self->children[0].proc.name);
}

int children_add(children_t *self, const char *role, const char *name, const char *path, char *const argv[])
{
    if (self->count >= CHILDREN_MAX || !s_names_fit(self, role, name))
        return -1;
    int index = self->count;
    if (s_fill(self, index, role, name, path, argv) != 0)
        return -1;
    self->children[index].added_only = true;
    self->count++;
    return index;
}

int children_find(const children_t *self, const char *name)
{
    for (int i = 0; i < self->count; i++)
        if (s_in_use(&self->children[i]) && strcmp(self->children[i].proc.name, name) == 0)
            return i;
    return -1;
}

/* Runs in the forked child until exec: only async-signal-safe calls from here on. */
static _Noreturn void s_exec_child(const child_t *child, pid_t supervisor, int errfd)
{
    /* A process group of its own keeps a terminal's Ctrl-C away from the children: only the
     * supervisor gets SIGINT and then stops them in order. */
    setpgid(0, 0);
    /* PDEATHSIG set before exec survives the exec, so there is no window in which the
     * supervisor can die unnoticed; if it already died, we were reparented and getppid() says so. */
    prctl(PR_SET_PDEATHSIG, SIGTERM);
    if (getppid() != supervisor)
        _exit(1);
    /* The supervisor blocks the signals it reads through a signalfd, and a blocked mask survives
     * exec: a child left with SIGTERM blocked could never be stopped politely. */
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
    signal(SIGPIPE, SIG_DFL);
    int devnull = open("/dev/null", O_RDONLY);
    if (devnull > STDIN_FILENO) {
        dup2(devnull, STDIN_FILENO);
        close(devnull);
    }
    execv(child->path, child->argv);
    int e = errno;
    ssize_t ignored = write(errfd, &e, sizeof(e));
    (void)ignored;
    _exit(127);
}

/* Forks and execs; 0 once the exec has succeeded, -1 (logged) when fork or exec failed. */
static int s_spawn(children_t *self, int index)
{
    child_t *child = &self->children[index];
    /* The exec either succeeds, closing the close-on-exec pipe (we read 0 bytes), or fails and the
     * child writes its errno into it: a missing program is a spawn error, not a mysterious exit. */
    int pipefd[2];
    if (pipe2(pipefd, O_CLOEXEC) != 0) {
        log_line(LOG_LEVEL_ERROR, child->ctx, "pipe: %s", strerror(errno));
        return -1;
    }
    pid_t supervisor = getpid();
    pid_t pid = fork();
    if (pid == 0)
        s_exec_child(child, supervisor, pipefd[1]);
    close(pipefd[1]);
    if (pid < 0) {
        log_line(LOG_LEVEL_ERROR, child->ctx, "fork: %s", strerror(errno));
        close(pipefd[0]);
        return -1;
    }
    int child_errno = 0;
    ssize_t n;
    while ((n = read(pipefd[0], &child_errno, sizeof(child_errno))) < 0 && errno == EINTR)
        ;
    close(pipefd[0]);
    if (n > 0) {
        while (waitpid(pid, NULL, 0) < 0 && errno == EINTR)
            ;
        log_line(LOG_LEVEL_ERROR, child->ctx, "cannot run %s: %s", child->path, strerror(child_errno));
        return -1;
    }
    child->proc.pid = pid;
    child->proc.started_unix_ms = s_unix_ms();
    child->started_ms = s_monotonic_ms();
    log_line(LOG_LEVEL_INFO, child->ctx, "started pid %d", (int)pid);
    s_set_state(self, index, SHM_PROC_STARTING, 0);
    return 0;
}

/* A quick death doubles the next delay; a child that ran for backoff_reset_ms was healthy, so its
 * next failure is treated as a first one. */
static void s_schedule_restart(children_t *self, int index, int64_t lived_ms, pid_t died)
{
    child_t *child = &self->children[index];
    if (lived_ms >= self->policy.backoff_reset_ms)
        child->backoff_ms = self->policy.backoff_initial_ms;
    child->delay_ms = child->backoff_ms;
    child->backoff_ms = child->backoff_ms * 2 > self->policy.backoff_max_ms ? self->policy.backoff_max_ms : child->backoff_ms * 2;
    child->restart_at_ms = s_monotonic_ms() + child->delay_ms;
    log_line(LOG_LEVEL_INFO, child->ctx, "restarting in %lld ms", (long long)child->delay_ms);
    s_set_state(self, index, SHM_PROC_BACKOFF, died);
}

static int s_start(children_t *self, int index)
{
    if (s_spawn(self, index) == 0)
        return 0;
    s_schedule_restart(self, index, 0, 0);
    return -1;
}

int children_start_all(children_t *self)
{
    int rc = 0;
    for (int i = 0; i < self->count && !self->stopping; i++) {
        if (!self->children[i].added_only)
            continue;
        self->children[i].added_only = false;
        if (s_start(self, i) != 0)
            rc = -1;
    }
    return rc;
}

int children_spawn(children_t *self, const char *role, const char *name, const char *path, char *const argv[])
{
    if (self->stopping || !s_names_fit(self, role, name)) {
        errno = EINVAL;
        return -1;
    }
    if (children_find(self, name) >= 0) {
        errno = EEXIST;
        return -1;
    }
    /* A removed entry's slot is reused first: the process table has a fixed number of slots. */
    int index = 0;
    while (index < self->count && s_in_use(&self->children[index]))
        index++;
    if (index >= CHILDREN_MAX) {
        errno = ENOSPC;
        return -1;
    }
    if (s_fill(self, index, role, name, path, argv) != 0) {
        errno = ENOMEM;
        return -1;
    }
    self->children[index].dynamic = true;
    if (index == self->count)
        self->count++;
    s_start(self, index);
    return index;
}

/* The entry's process is gone for good: its slot becomes free and the process table shows it empty. */
static void s_release(children_t *self, int index, pid_t died)
{
    child_t *child = &self->children[index];
    log_line(LOG_LEVEL_INFO, child->ctx, "removed");
    shm_proc_t empty = {.last_exit = child->proc.last_exit, .restarts = child->proc.restarts};
    snprintf(empty.role, sizeof(empty.role), "%s", child->proc.role);
    snprintf(empty.name, sizeof(empty.name), "%s", child->proc.name);
    s_free_child(child);
    memset(child, 0, sizeof(*child));
    child->proc = empty;
    s_set_state(self, index, SHM_PROC_EMPTY, died);
    child->proc = (shm_proc_t){.last_exit = -1};
}

int children_remove(children_t *self, const char *name)
{
    int index = children_find(self, name);
    if (index < 0) {
        errno = ENOENT;
        return -1;
    }
    child_t *child = &self->children[index];
    if (child->removing)
        return 0;
    if (child->proc.pid <= 0) {
        s_release(self, index, 0);
        return 0;
    }
    log_line(LOG_LEVEL_INFO, child->ctx, "stopping pid %d for removal", (int)child->proc.pid);
    kill(child->proc.pid, SIGTERM);
    child->removing = true;
    child->kill_at_ms = s_monotonic_ms() + self->policy.stop_timeout_ms;
    s_set_state(self, index, SHM_PROC_STOPPING, 0);
    return 0;
}

static void s_on_exit(children_t *self, int index, int status)
{
    child_t *child = &self->children[index];
    pid_t died = child->proc.pid;
    int64_t lived_ms = s_monotonic_ms() - child->started_ms;
    char how[96];
    s_describe_status(status, how, sizeof(how));
    child->proc.pid = 0;
    child->proc.last_exit = status;
    if (child->proc.state == SHM_PROC_STOPPING) {
        log_line(LOG_LEVEL_INFO, child->ctx, "pid %d stopped (%s)", (int)died, how);
        if (child->removing && !self->stopping)
            s_release(self, index, died);
        else
            s_set_state(self, index, SHM_PROC_STOPPED, died);
        return;
    }
    if (child->dynamic && !self->stopping && WIFEXITED(status) && WEXITSTATUS(status) == 0) {
        log_line(LOG_LEVEL_INFO, child->ctx, "pid %d finished after %lld ms", (int)died, (long long)lived_ms);
        s_release(self, index, died);
        return;
    }
    log_line(LOG_LEVEL_WARN, child->ctx, "pid %d exited after %lld ms (%s)", (int)died, (long long)lived_ms, how);
    if (self->stopping)
        s_set_state(self, index, SHM_PROC_STOPPED, died);
    else
        s_schedule_restart(self, index, lived_ms, died);
}

/* True if entry `index` was running and has now been collected. */
static bool s_reap_one(children_t *self, int index)
{
    pid_t pid = self->children[index].proc.pid;
    if (pid <= 0)
        return false;
    int status = 0;
    pid_t r = waitpid(pid, &status, WNOHANG);
    if (r == 0 || (r < 0 && errno == EINTR))
        return false;
    if (r < 0) {
        /* ECHILD: someone else reaped it (only possible if the caller waits on -1 itself). */
        log_line(LOG_LEVEL_WARN, self->children[index].ctx, "pid %d vanished: %s", (int)pid, strerror(errno));
        status = -1;
    }
    s_on_exit(self, index, status);
    return true;
}

int children_reap(children_t *self)
{
    /* SIGCHLD does not queue: one notification may stand for several exits, so every child is
     * polled, each by its own pid so that commands the caller runs itself are never stolen. */
    int reaped = 0;
    for (int i = 0; i < self->count; i++)
        if (s_reap_one(self, i))
            reaped++;
    return reaped;
}

void children_tick(children_t *self)
{
    if (self->stopping)
        return;
    int64_t now = s_monotonic_ms();
    for (int i = 0; i < self->count; i++) {
        child_t *child = &self->children[i];
        if (child->removing && child->proc.pid > 0 && child->kill_at_ms > 0 && now >= child->kill_at_ms) {
            log_line(LOG_LEVEL_WARN, child->ctx, "pid %d still running after %lld ms, sending SIGKILL", (int)child->proc.pid,
                     (long long)self->policy.stop_timeout_ms);
            kill(child->proc.pid, SIGKILL);
            child->kill_at_ms = 0;
        } else if (child->proc.state == SHM_PROC_STARTING && child->proc.pid > 0 &&
                   now - child->started_ms >= self->policy.running_after_ms) {
            s_set_state(self, i, SHM_PROC_RUNNING, 0);
        } else if (child->proc.state == SHM_PROC_BACKOFF && now >= child->restart_at_ms) {
            child->proc.restarts++;
            s_start(self, i);
        }
    }
}

int children_timeout_ms(const children_t *self)
{
    if (self->stopping)
        return -1;
    int64_t now = s_monotonic_ms();
    int64_t next = -1;
    for (int i = 0; i < self->count; i++) {
        const child_t *child = &self->children[i];
        int64_t at;
        if (child->removing && child->proc.pid > 0 && child->kill_at_ms > 0)
            at = child->kill_at_ms;
        else if (child->proc.state == SHM_PROC_STARTING && child->proc.pid > 0)
            at = child->started_ms + self->policy.running_after_ms;
        else if (child->proc.state == SHM_PROC_BACKOFF)
            at = child->restart_at_ms;
        else
            continue;
        int64_t wait = at > now ? at - now : 0;
        if (next < 0 || wait < next)
            next = wait;
    }
    return next > INT_MAX ? INT_MAX : (int)next;
}

static bool s_group_alive(const children_t *self, int first, int last)
{
    for (int i = first; i <= last; i++)
        if (self->children[i].proc.pid > 0)
            return true;
    return false;
}

static void s_stop_group(children_t *self, int first, int last)
{
    for (int i = first; i <= last; i++) {
        child_t *child = &self->children[i];
        if (child->proc.pid > 0) {
            log_line(LOG_LEVEL_INFO, child->ctx, "stopping pid %d", (int)child->proc.pid);
            kill(child->proc.pid, SIGTERM);
            s_set_state(self, i, SHM_PROC_STOPPING, 0);
        } else if (child->proc.state != SHM_PROC_STOPPED && child->proc.state != SHM_PROC_EMPTY) {
            s_set_state(self, i, SHM_PROC_STOPPED, 0);
        }
    }
    /* Waiting by polling keeps this independent of how the caller receives SIGCHLD; shutdown is
     * the only place that waits, and a 10 ms step costs nothing there. */
    int64_t deadline = s_monotonic_ms() + self->policy.stop_timeout_ms;
    bool killed = false;
    const struct timespec step = {0, 10 * 1000 * 1000};
    for (;;) {
        for (int i = first; i <= last; i++)
            s_reap_one(self, i);
        if (!s_group_alive(self, first, last))
            return;
        if (!killed && s_monotonic_ms() >= deadline) {
            for (int i = first; i <= last; i++) {
                child_t *child = &self->children[i];
                if (child->proc.pid > 0) {
                    log_line(LOG_LEVEL_WARN, child->ctx, "pid %d still running after %lld ms, sending SIGKILL",
                             (int)child->proc.pid, (long long)self->policy.stop_timeout_ms);
                    kill(child->proc.pid, SIGKILL);
                }
            }
            killed = true;
        }
        nanosleep(&step, NULL);
    }
}

void children_stop_all(children_t *self)
{
    self->stopping = true;
    /* Free slots between members of a pool (removed dynamic entries) do not split it. */
    for (int last = self->count - 1; last >= 0;) {
        if (!s_in_use(&self->children[last])) {
            last--;
            continue;
        }
        int first = last;
        for (int i = last - 1; i >= 0; i--) {
            if (!s_in_use(&self->children[i]))
                continue;
            if (strcmp(self->children[i].proc.role, self->children[last].proc.role) != 0)
                break;
            first = i;
        }
        s_stop_group(self, first, last);
        last = first - 1;
    }
}

int children_count(const children_t *self)
{
    return self->count;
}

int children_get(const children_t *self, int index, shm_proc_t *out)
{
    if (index < 0 || index >= self->count)
        return -1;
    *out = self->children[index].proc;
    return 0;
}

int64_t children_backoff_ms(const children_t *self, int index)
{
    if (index < 0 || index >= self->count)
        return -1;
    return self->children[index].delay_ms;
}
