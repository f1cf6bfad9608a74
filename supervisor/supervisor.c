#include "supervisor/supervisor.h"

#include <errno.h>
#include <limits.h>
#include <netdb.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "actors/dialer/dialer.h"
#include "actors/store/db.h"
#include "common/log.h"
#include "http/http.h"
#include "shm/stats.h"
#include "supervisor/children.h"
#include "supervisor/credentials.h"
#include "supervisor/files.h"
#include "supervisor/instance.h"
#include "supervisor/pgembed.h"

#define SUPERVISOR_READY_PROBE_MS   50
#define SUPERVISOR_READY_TIMEOUT_MS 500 /* a probe that takes longer is tried again */
#define SUPERVISOR_SELF_EXE         "/proc/self/exe"
#define SUPERVISOR_RECONCILE_MS     10000 /* dialers are checked against campaigns this often, besides notifications */

typedef struct {
    impact_config_t *config;
    int sfd;              /* signalfd for SIGCHLD and the stop signals, which stay blocked */
    instance_t *instance; /* the data directory lock */
    pgembed_t *pg;        /* the embedded cluster, when we run it */
    shm_region_t *shm;    /* the stats region; we are the only writer of its process table */
    bool have_run_dir;    /* config->run_dir is ours to clean at exit (not merely named by IMPACT_RUN_DIR) */
    bool own_run_dir;     /* the run dir was made by us: remove it, not only its contents */
    children_t *children; /* broker, store.*, fanout, importer, http */
    int http_index;       /* the http entry, whose port decides readiness */
    bool ready;           /* the ready line was printed */
    char creds_path[PATH_MAX + 32];
    PGconn *db;             /* LISTEN campaign_status: which campaigns need a dialer */
    bool reconcile;         /* check dialers against campaigns on the next turn */
    int64_t next_reconcile; /* monotonic ms of the periodic check */
} supervisor_t;

/* ---- signals ------------------------------------------------------------------------------- */

/* The signals arrive through a signalfd and stay blocked, so they can only be read where the
 * loop polls for them: no handler runs in the middle of fork, waitpid or a libpq call, and a
 * SIGCHLD can never be lost between checking the children and going to sleep. */
static int s_signals_open(supervisor_t *self)
{
    sigset_t mask;
    sigemptyset(&mask);
    sigaddset(&mask, SIGCHLD);
    sigaddset(&mask, SIGTERM);
    sigaddset(&mask, SIGINT);
    sigaddset(&mask, SIGHUP);
    if (sigprocmask(SIG_BLOCK, &mask, NULL) != 0)
        return -1;
    signal(SIGPIPE, SIG_IGN);
    self->sfd = signalfd(-1, &mask, SFD_NONBLOCK | SFD_CLOEXEC);
    return self->sfd < 0 ? -1 : 0;
}

/* Drains the signalfd. Returns true when a stop signal was among them; *child_exited tells SIGCHLD. */
static bool s_signals_read(supervisor_t *self, bool *child_exited)
{
    bool stop = false;
    struct signalfd_siginfo info;
    while (read(self->sfd, &info, sizeof(info)) == sizeof(info)) {
        if (info.ssi_signo == SIGCHLD) {
            *child_exited = true;
        } else {
            log_info("received signal %u (%s) from pid %u, shutting down", info.ssi_signo, strsignal((int)info.ssi_signo),
                     info.ssi_pid);
            stop = true;
        }
    }
    return stop;
}

/* Startup steps take seconds (initdb); a stop signal that came meanwhile is honoured between them. */
static bool s_stop_requested(supervisor_t *self)
{
    bool ignored = false;
    return s_signals_read(self, &ignored);
}

/* ---- startup ------------------------------------------------------------------------------- */

/* config_parse derived the certificate paths from the data dir as given; keep them inside it. */
static void s_rebase(char *path, size_t size, const char *old_prefix, const char *new_prefix)
{
    size_t n = strlen(old_prefix);
    if (strcmp(old_prefix, new_prefix) == 0 || strncmp(path, old_prefix, n) != 0 || path[n] != '/')
        return;
    char rest[PATH_MAX];
    snprintf(rest, sizeof(rest), "%s", path + n);
    snprintf(path, size, "%s%s", new_prefix, rest);
}

/* Creates the data dir and makes its path absolute (children run with the same cwd, but the
 * embedded cluster and the crash record need a path that means the same thing anywhere).
 * 0711: the postgres user must be able to pass through to pg/, nobody needs to list it. */
static int s_resolve_data_dir(impact_config_t *config, char *err, size_t errlen)
{
    char real[PATH_MAX];
    if (files_mkdir_p(config->data_dir, 0711) != 0 || realpath(config->data_dir, real) == NULL) {
        snprintf(err, errlen, "cannot create the data directory %s: %s", config->data_dir, strerror(errno));
        return -1;
    }
    s_rebase(config->tls_cert, sizeof(config->tls_cert), config->data_dir, real);
    s_rebase(config->tls_key, sizeof(config->tls_key), config->data_dir, real);
    snprintf(config->data_dir, sizeof(config->data_dir), "%s", real);
    return 0;
}

static int s_start_postgres(supervisor_t *self, char *err, size_t errlen)
{
    self->pg = pgembed_new(self->config->data_dir, err, errlen);
    if (self->pg == NULL || pgembed_start(self->pg, err, errlen) != 0)
        return -1;
    snprintf(self->config->database_url, sizeof(self->config->database_url), "%s", pgembed_url(self->pg));
    return 0;
}

static int s_prepare_database(supervisor_t *self, char *err, size_t errlen)
{
    PGconn *conn = db_connect(self->config->database_url, err, errlen);
    if (conn == NULL)
        return -1;
    int rc = -1;
    int applied = db_migrate(conn, err, errlen);
    if (applied < 0)
        goto Exit;
    log_info("database schema at version %d (%d migrations applied now)", db_schema_version(), applied);
    if (credentials_bootstrap(conn, self->config->data_dir, stdout, err, errlen) != 0)
        goto Exit;
    rc = 0;
Exit:
    PQfinish(conn);
    return rc;
}

/* The run dir holds the ipc:// socket files. IMPACT_RUN_DIR may name one (it may exist already,
 * then only its contents are ours); otherwise a fresh short one under /tmp keeps the socket
 * paths far below the 107-byte limit whatever the data dir is. */
static int s_make_run_dir(supervisor_t *self, char *err, size_t errlen)
{
    impact_config_t *config = self->config;
    if (config->run_dir[0] == '\0') {
        snprintf(config->run_dir, sizeof(config->run_dir), "/tmp/impactd-XXXXXX");
        if (mkdtemp(config->run_dir) == NULL) {
            snprintf(err, errlen, "mkdtemp /tmp/impactd-XXXXXX: %s", strerror(errno));
            return -1;
        }
        self->own_run_dir = true;
    } else if (mkdir(config->run_dir, 0700) == 0) {
        self->own_run_dir = true;
    } else if (errno != EEXIST) {
        snprintf(err, errlen, "cannot create the run directory %s: %s", config->run_dir, strerror(errno));
        return -1;
    }
    self->have_run_dir = true;
    log_info("run directory %s", config->run_dir);
    return 0;
}

static int s_make_shm(supervisor_t *self, char *err, size_t errlen)
{
    impact_config_t *config = self->config;
    snprintf(config->shm_name, sizeof(config->shm_name), "/impactd-%d", (int)getpid());
    self->shm = shm_region_create(config->shm_name);
    if (self->shm == NULL && errno == EEXIST) {
        /* Our pid was a dead supervisor's too, and its region survived; nobody else uses the name. */
        shm_region_unlink(config->shm_name);
        self->shm = shm_region_create(config->shm_name);
    }
    if (self->shm == NULL) {
        snprintf(err, errlen, "cannot create shared memory %s: %s", config->shm_name, strerror(errno));
        config->shm_name[0] = '\0';
        return -1;
    }
    return 0;
}

/* The supervisor is the only writer of the process table: every state change lands there, and
 * the campaign slots a dead child owned are freed before its successor can exist. */
static void s_on_child_event(uint32_t index, const shm_proc_t *proc, pid_t died, void *arg)
{
    supervisor_t *self = arg;
    if (died > 0) {
        int freed = shm_region_recover_pid(self->shm, died);
        if (freed > 0)
            log_info("freed %d campaign slots of dead pid %d", freed, (int)died);
    }
    if (shm_proc_write(self->shm, index, proc) != 0)
        log_warn("cannot write process slot %u (%s)", index, proc->name);
    /* A dialer that finished may have raced a restart of its campaign. */
    if (proc->state == SHM_PROC_EMPTY)
        self->reconcile = true;
}

static int s_add_child(supervisor_t *self, const char *role, int index)
{
    char name[32], index_arg[16];
    snprintf(index_arg, sizeof(index_arg), "%d", index);
    if (index >= 0)
        snprintf(name, sizeof(name), "%s.%d", role, index);
    else
        snprintf(name, sizeof(name), "%s", role);
    char *with_index[] = {"impactd", "--role", (char *)role, "--index", index_arg, NULL};
    char *without_index[] = {"impactd", "--role", (char *)role, NULL};
    /* /proc/self/exe is the binary this supervisor runs, even if the file was replaced since. */
    return children_add(self->children, role, name, SUPERVISOR_SELF_EXE, index >= 0 ? with_index : without_index);
}

static int s_add_children(supervisor_t *self)
{
    self->children = children_new(NULL, s_on_child_event, self);
    if (self->children == NULL || s_add_child(self, "broker", -1) < 0)
        return -1;
    for (int i = 0; i < self->config->store_workers; i++)
        if (s_add_child(self, "store", i) < 0)
            return -1;
    if (s_add_child(self, "fanout", -1) < 0 || s_add_child(self, "importer", -1) < 0)
        return -1;
    self->http_index = s_add_child(self, "http", -1);
    return self->http_index < 0 ? -1 : 0;
}

/* ---- dialers ------------------------------------------------------------------------------- */

static int64_t s_mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* The connection that hears campaigns start and stop. A failure is logged and retried at the
 * next periodic check: dialers already running carry on meanwhile. */
static void s_dialers_connect(supervisor_t *self)
{
    char err[512];
    if (self->db && PQstatus(self->db) == CONNECTION_OK)
        return;
    PQfinish(self->db);
    self->db = db_connect(self->config->database_url, err, sizeof(err));
    if (self->db == NULL) {
        log_warn("dialers: %s", err);
        return;
    }
    PGresult *res = PQexec(self->db, "LISTEN campaign_status");
    if (PQresultStatus(res) != PGRES_COMMAND_OK) {
        log_warn("dialers: LISTEN: %s", PQresultErrorMessage(res));
        PQfinish(self->db);
        self->db = NULL;
    }
    PQclear(res);
}

static bool s_wanted(PGresult *res, int64_t campaign)
{
    for (int i = 0; i < PQntuples(res); i++)
        if (strtoll(PQgetvalue(res, i, 0), NULL, 10) == campaign)
            return true;
    return false;
}

/* One dialer per running or paused campaign: start the missing ones, remove those whose
 * campaign stopped (they usually exit by themselves first; this covers one in backoff). */
static void s_dialers_reconcile(supervisor_t *self)
{
    self->reconcile = false;
    self->next_reconcile = s_mono_ms() + SUPERVISOR_RECONCILE_MS;
    s_dialers_connect(self);
    if (self->db == NULL)
        return;
    PGresult *res = PQexec(self->db, "SELECT id FROM campaigns WHERE status IN ('running', 'paused') AND archived_at IS NULL");
    if (PQresultStatus(res) != PGRES_TUPLES_OK) {
        log_warn("dialers: %s", PQresultErrorMessage(res));
        PQclear(res);
        return;
    }
    for (int i = 0; i < PQntuples(res); i++) {
        char name[SHM_NAME_MAX], *campaign = PQgetvalue(res, i, 0);
        snprintf(name, sizeof(name), DIALER_SERVICE_PREFIX "%s", campaign);
        if (children_find(self->children, name) >= 0)
            continue;
        char *argv[] = {"impactd", "--role", "dialer", "--campaign", campaign, NULL};
        if (children_spawn(self->children, "dialer", name, SUPERVISOR_SELF_EXE, argv) < 0 && errno != EEXIST)
            log_error("cannot start %s: %s", name, strerror(errno));
    }
    for (int i = 0; i < children_count(self->children); i++) {
        shm_proc_t proc;
        if (children_get(self->children, i, &proc) != 0 || proc.state == SHM_PROC_EMPTY || proc.state == SHM_PROC_STOPPING ||
            strcmp(proc.role, "dialer") != 0)
            continue;
        int64_t campaign = strtoll(proc.name + strlen(DIALER_SERVICE_PREFIX), NULL, 10);
        if (!s_wanted(res, campaign))
            children_remove(self->children, proc.name);
    }
    PQclear(res);
}

/* Notifications only say "look again": the reconcile reads the truth from the table. */
static void s_dialers_notified(supervisor_t *self)
{
    if (self->db == NULL)
        return;
    if (!PQconsumeInput(self->db)) {
        log_warn("dialers: connection lost: %s", PQerrorMessage(self->db));
        PQfinish(self->db);
        self->db = NULL;
        return;
    }
    PGnotify *n;
    while ((n = PQnotifies(self->db)) != NULL) {
        self->reconcile = true;
        PQfreemem(n);
    }
}

/* ---- watching ------------------------------------------------------------------------------ */

static bool s_tls_enabled(const impact_config_t *config)
{
    return strcmp(config->tls_listen, "off") != 0;
}

/* Connects to hostport; -1 if nothing accepts. Sends and receives time out after `timeout_ms`. */
static int s_connect(const char *hostport, int timeout_ms)
{
    char host[128], service[16];
    int port;
    if (config_split_hostport(hostport, host, sizeof(host), &port) != 0)
        return -1;
    snprintf(service, sizeof(service), "%d", port);
    struct addrinfo hints = {.ai_socktype = SOCK_STREAM, .ai_flags = AI_NUMERICSERV}, *res;
    if (getaddrinfo(host, service, &hints, &res) != 0)
        return -1;
    int fd = -1;
    for (struct addrinfo *ai = res; ai && fd < 0; ai = ai->ai_next) {
        fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC, ai->ai_protocol);
        if (fd < 0)
            continue;
        struct timeval tv = {.tv_sec = timeout_ms / 1000, .tv_usec = (timeout_ms % 1000) * 1000};
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
        if (connect(fd, ai->ai_addr, ai->ai_addrlen) != 0) {
            close(fd);
            fd = -1;
        }
    }
    freeaddrinfo(res);
    return fd;
}

/*
 * True when an unauthenticated GET /v1 on the cleartext listener is answered 401. Only the store
 * answers that, so it proves the whole request path (http, broker, a registered store member and
 * its database) rather than just an open port; before the store has registered the answer is 503.
 */
static bool s_api_answers(const char *hostport)
{
    static const char probe[] = "GET /v1 HTTP/1.1\r\nHost: impactd\r\nConnection: close\r\n\r\n";
    int fd = s_connect(hostport, SUPERVISOR_READY_TIMEOUT_MS);
    if (fd < 0)
        return false;
    char answer[64] = {0};
    bool ok = write(fd, probe, sizeof(probe) - 1) == (ssize_t)(sizeof(probe) - 1) && read(fd, answer, sizeof(answer) - 1) > 12 &&
              strncmp(answer, "HTTP/1.1 401", 12) == 0;
    close(fd);
    return ok;
}

static bool s_accepts_connections(const char *hostport)
{
    int fd = s_connect(hostport, SUPERVISOR_READY_TIMEOUT_MS);
    if (fd < 0)
        return false;
    close(fd);
    return true;
}

/* "Ready" means what a client cares about: its ports accept and an API request is answered by
 * the store, not refused for want of one. */
static void s_check_ready(supervisor_t *self)
{
    shm_proc_t http;
    if (children_get(self->children, self->http_index, &http) != 0 || http.pid <= 0)
        return;
    const impact_config_t *config = self->config;
    if (!s_api_answers(config->listen) || (s_tls_enabled(config) && !s_accepts_connections(config->tls_listen)))
        return;
    self->ready = true;
    log_info("ready");
    printf("impactd ready: http://%s", config->listen);
    if (s_tls_enabled(config))
        printf(" https://%s", config->tls_listen);
    if (files_exists(self->creds_path))
        printf(" (api key in %s)", self->creds_path);
    printf("\n");
    fflush(stdout);
}

static void s_watch(supervisor_t *self)
{
    s_dialers_reconcile(self);
    for (;;) {
        int timeout = children_timeout_ms(self->children);
        if (!self->ready && (timeout < 0 || timeout > SUPERVISOR_READY_PROBE_MS))
            timeout = SUPERVISOR_READY_PROBE_MS;
        int64_t until_reconcile = self->reconcile ? 0 : self->next_reconcile - s_mono_ms();
        if (timeout < 0 || until_reconcile < timeout)
            timeout = until_reconcile < 0 ? 0 : (int)until_reconcile;
        struct pollfd pfd[2] = {{.fd = self->sfd, .events = POLLIN}, {.fd = self->db ? PQsocket(self->db) : -1, .events = POLLIN}};
        if (poll(pfd, 2, timeout) < 0 && errno != EINTR) {
            log_error("poll: %s; shutting down", strerror(errno));
            return;
        }
        bool child_exited = false;
        bool stop = s_signals_read(self, &child_exited);
        if (child_exited)
            children_reap(self->children);
        if (stop)
            return;
        if (pfd[1].revents)
            s_dialers_notified(self);
        children_tick(self->children);
        if (self->reconcile || s_mono_ms() >= self->next_reconcile)
            s_dialers_reconcile(self);
        if (!self->ready)
            s_check_ready(self);
    }
}

/* ---- shutdown ------------------------------------------------------------------------------ */

/* Children first (http, fanout, store, broker: requests stop arriving before their backends go),
 * then the database they used, then the shared resources nobody uses any more. */
static void s_shutdown(supervisor_t *self)
{
    impact_config_t *config = self->config;
    char err[512];
    PQfinish(self->db);
    self->db = NULL;
    if (self->children) {
        children_stop_all(self->children);
        children_destroy(&self->children);
    }
    if (self->pg && pgembed_stop(self->pg, err, sizeof(err)) != 0)
        log_error("%s", err);
    pgembed_destroy(&self->pg);
    if (self->shm) {
        shm_region_destroy(&self->shm);
        if (shm_region_unlink(config->shm_name) != 0)
            log_error("cannot unlink shared memory %s: %s", config->shm_name, strerror(errno));
    }
    if (self->have_run_dir) {
        int rc = self->own_run_dir ? files_rmtree(config->run_dir) : files_rmtree_contents(config->run_dir);
        if (rc != 0)
            log_error("cannot remove %s: %s", config->run_dir, strerror(errno));
    }
    instance_destroy(&self->instance);
    if (self->sfd >= 0)
        close(self->sfd);
}

int supervisor_run(impact_config_t *config)
{
    log_init("supervisor");
    supervisor_t self = {.config = config, .sfd = -1, .http_index = -1};
    char err[1024] = "";
    bool busy;
    int rc = 1;
    if (s_signals_open(&self) != 0) {
        snprintf(err, sizeof(err), "cannot set up signals: %s", strerror(errno));
        goto Exit;
    }
    if (s_resolve_data_dir(config, err, sizeof(err)) != 0)
        goto Exit;
    log_info("impactd %s starting, data in %s", IMPACT_VERSION, config->data_dir);
    if ((self.instance = instance_lock(config->data_dir, &busy, err, sizeof(err))) == NULL)
        goto Exit;
    if (instance_claim(self.instance) != 0) {
        snprintf(err, sizeof(err), "cannot write %s in the data directory: %s", INSTANCE_LOCK_FILE, strerror(errno));
        goto Exit;
    }
    snprintf(self.creds_path, sizeof(self.creds_path), "%s/%s", config->data_dir, CREDENTIALS_DEV_FILE);

    if (config->database_url[0] == '\0' && s_start_postgres(&self, err, sizeof(err)) != 0)
        goto Exit;
    if (s_stop_requested(&self))
        goto Stopped;
    if (s_prepare_database(&self, err, sizeof(err)) != 0)
        goto Exit;
    if (s_tls_enabled(config) && http_tls_ensure_cert(config->tls_cert, config->tls_key, err, sizeof(err)) != 0)
        goto Exit;
    if (s_make_run_dir(&self, err, sizeof(err)) != 0 || s_make_shm(&self, err, sizeof(err)) != 0)
        goto Exit;
    if (instance_record(self.instance, config->run_dir, self.own_run_dir, config->shm_name) != 0) {
        snprintf(err, sizeof(err), "cannot write %s in the data directory: %s", INSTANCE_LOCK_FILE, strerror(errno));
        goto Exit;
    }
    if (config_export(config) != 0) {
        snprintf(err, sizeof(err), "cannot export the configuration: %s", strerror(errno));
        goto Exit;
    }
    if (s_add_children(&self) != 0) {
        snprintf(err, sizeof(err), "cannot set up the child table");
        goto Exit;
    }
    if (s_stop_requested(&self))
        goto Stopped;
    children_start_all(self.children);
    s_watch(&self);

Stopped:
    rc = 0;
Exit:
    if (rc != 0)
        log_error("%s", err);
    s_shutdown(&self);
    log_info("stopped");
    return rc;
}

/* ---- database access for the command-line tools -------------------------------------------- */

struct supervisor_database_t {
    instance_t *instance; /* held while we run the cluster, so no supervisor starts meanwhile */
    pgembed_t *pg;
    bool stop_pg; /* we started (or adopted) the cluster, so we stop it */
};

supervisor_database_t *supervisor_database_acquire(impact_config_t *config, char *err, size_t errlen)
{
    supervisor_database_t *self = calloc(1, sizeof(*self));
    if (self == NULL) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    if (s_resolve_data_dir(config, err, errlen) != 0)
        goto Error;
    if (config->database_url[0] != '\0')
        return self;
    bool busy;
    self->instance = instance_lock(config->data_dir, &busy, err, errlen);
    if (self->instance == NULL && !busy)
        goto Error;
    if (self->instance && instance_claim(self->instance) != 0) {
        snprintf(err, errlen, "cannot write %s in the data directory: %s", INSTANCE_LOCK_FILE, strerror(errno));
        goto Error;
    }
    if ((self->pg = pgembed_new(config->data_dir, err, errlen)) == NULL)
        goto Error;
    /* A running supervisor owns the cluster: use it as it is and leave it running. */
    if (busy) {
        log_info("using the PostgreSQL cluster of the running impactd");
    } else {
        if (pgembed_start(self->pg, err, errlen) != 0)
            goto Error;
        self->stop_pg = true;
    }
    snprintf(config->database_url, sizeof(config->database_url), "%s", pgembed_url(self->pg));
    return self;

Error:
    supervisor_database_release(&self);
    return NULL;
}

void supervisor_database_release(supervisor_database_t **self_p)
{
    supervisor_database_t *self = *self_p;
    if (self == NULL)
        return;
    char err[512];
    if (self->stop_pg && pgembed_stop(self->pg, err, sizeof(err)) != 0)
        log_error("%s", err);
    pgembed_destroy(&self->pg);
    instance_destroy(&self->instance);
    free(self);
    *self_p = NULL;
}
