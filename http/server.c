/*
 * The front end process: listeners, event-loop threads, accept, routing table, shutdown.
 *
 * Listeners are shared by dup(): http_main binds each listening socket once and gives every
 * thread its own descriptor of it (thread 0 the original). All threads then accept from one
 * kernel queue, the same model as h2o's own server: a busy thread never strands connections
 * that the kernel assigned to it (SO_REUSEPORT hashes connections to a fixed socket whatever
 * its thread is doing), and once every thread has closed its descriptor the port is closed for
 * good, so stopping needs no coordination beyond each thread closing its own.
 *
 * Shutdown (SIGTERM): every thread notices the flag within HTTP_LOOP_WAIT_MS, closes its
 * listeners and asks h2o to wind down (HTTP/1 stops keep-alive, HTTP/2 sends GOAWAY). It then
 * waits up to the grace period for relayed requests still pending, answers what is left with
 * 503, lets responses finish writing, and shuts down connections that are idle (keep-alive
 * ones would otherwise linger until h2o's idle timeout). Only when no connection is left are
 * the h2o context and loop freed; threads are joined before http_main returns.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "broker/wire.h"
#include "common/log.h"
#include "common/signals.h"
#include "http/bridge.h"
#include "http/http.h"
#include "http/problem.h"
#include "http/server.h"
#include "actors/fanout/sequencer.h"
#include "http/tls.h"

#define HTTP_LOOP_WAIT_MS           50 /* bounds how late a thread sees the stop flag or a missed ZMQ edge */
#define HTTP_ACCEPT_BATCH           16
#define HTTP_FDS_RESERVED           256 /* descriptors kept for ZeroMQ, logs and files, out of the connection budget */
#define HTTP_MIN_CONNS_PER_THREAD   64
#define HTTP_MAX_CONNS_PER_THREAD   65536
#define HTTP_MAX_PENDING_PER_THREAD 8192
#define HTTP_CLOSE_WAIT_MS          2000 /* after the grace: for responses to finish writing */
#define HTTP_REQUEST_SEQ_MASK       ((UINT64_C(1) << 56) - 1)

typedef struct st_http_server_t {
    const impact_config_t *config;
    http_settings_t settings;
    h2o_globalconf_t globalconf;
    SSL_CTX *ssl_ctx;
    char broker_endpoint[256];
    char events_endpoint[256]; /* the fan-out's event publisher (stream.c) */
    int listen_fds[2];
    size_t num_listeners;
    http_thread_t *threads;
    int num_threads;
    size_t max_conns_per_thread; /* the descriptor limit shared out between the threads */
    atomic_int stop;             /* a thread failed: everyone stops */
    atomic_int failed;           /* exit code 1 */
} http_server_t;

/* One accepted connection, tracked so shutdown can close the idle ones. */
typedef struct {
    h2o_linklist_t link;
    http_thread_t *thread;
    h2o_socket_t *sock; /* owned by h2o; valid until on_conn_close */
    int shut;           /* shutdown(2) already called */
} http_conn_t;

#if defined(__SANITIZE_ADDRESS__)
/*
 * LeakSanitizer reads this hook at exit. Two allocations inside h2o 2.2.5 outlive every thread
 * by design or by bug, and no API reaches them: the per-thread recycle bins behind
 * h2o_mem_alloc_recycle (memory pools, socket and HTTP/2 write buffers keep freed chunks for
 * reuse and never release them), and the queue object that h2o_multithread_destroy_queue forgets
 * to free in the evloop build. Everything else, h2o's included, is still checked.
 */
const char *__lsan_default_suppressions(void);
const char *__lsan_default_suppressions(void)
{
    return "leak:h2o_mem_alloc_recycle\nleak:h2o_multithread_create_queue\n";
}
#endif

/* ---- request ids and the small local handlers ------------------------------------------------- */

h2o_iovec_t http_request_id(h2o_req_t *req)
{
    h2o_iovec_t *slot = h2o_req_getenv(req, H2O_STRLIT("impact.request_id"), 1);
    if (slot->base == NULL) {
        http_thread_t *thread = http_thread_of(req);
        enum { ID_LEN = 24 };
        char *buf = h2o_mem_alloc_pool(&req->pool, ID_LEN + 1);
        uint64_t seq = ((uint64_t)(thread->index & 0xff) << 56) | (++thread->request_seq & HTTP_REQUEST_SEQ_MASK);
        snprintf(buf, ID_LEN + 1, "%08" PRIx32 "%016" PRIx64, thread->settings->boot_tag, seq);
        *slot = h2o_iovec_init(buf, ID_LEN);
    }
    return *slot;
}

static int on_bench_req(h2o_handler_t *self, h2o_req_t *req)
{
    static h2o_generator_t generator = {NULL, NULL};
    h2o_iovec_t body = http_thread_of(req)->settings->bench_body;
    if (body.base == NULL || !h2o_memis(req->path_normalized.base, req->path_normalized.len, H2O_STRLIT("/bench/bare"))) {
        http_problem_send(req, 404, "not-found", "Not Found", "no such resource");
        return 0;
    }
    http_response_init(req, 200);
    h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_CONTENT_TYPE, NULL, H2O_STRLIT("application/json"));
    req->res.content_length = body.len;
    h2o_start_response(req, &generator);
    /* The bytes live as long as the process, so h2o writes straight from them: no copy. */
    if (h2o_memis(req->method.base, req->method.len, H2O_STRLIT("HEAD")))
        h2o_send(req, NULL, 0, H2O_SEND_STATE_FINAL);
    else
        h2o_send(req, &body, 1, H2O_SEND_STATE_FINAL);
    return 0;
}

void http_bench_register(h2o_pathconf_t *pathconf)
{
    h2o_handler_t *handler = h2o_create_handler(pathconf, sizeof(*handler));
    handler->on_req = on_bench_req;
}

static int on_notfound_req(h2o_handler_t *self, h2o_req_t *req)
{
    http_problem_send(req, 404, "not-found", "Not Found", "no such resource");
    return 0;
}

void http_notfound_register(h2o_pathconf_t *pathconf)
{
    h2o_handler_t *handler = h2o_create_handler(pathconf, sizeof(*handler));
    handler->on_req = on_notfound_req;
}

/* ---- settings ------------------------------------------------------------------------------- */

static uint64_t s_env_ms(const char *name, uint64_t fallback, uint64_t max)
{
    const char *value = getenv(name);
    if (value == NULL || *value == '\0')
        return fallback;
    char *end;
    errno = 0;
    unsigned long long v = strtoull(value, &end, 10);
    if (errno != 0 || *end != '\0' || v == 0 || v > max) {
        log_warn("%s=%s is not a number of milliseconds from 1 to %" PRIu64 "; using %" PRIu64, name, value, max, fallback);
        return fallback;
    }
    return v;
}

/* Reads the bench body once; a missing or oversized file leaves /bench/bare answering 404. */
static void s_load_bench_body(h2o_iovec_t *out)
{
    const char *path = getenv("IMPACT_BENCH_BARE_FILE");
    *out = h2o_iovec_init(NULL, 0);
    if (path == NULL || *path == '\0')
        return;
    char *buf = NULL;
    struct stat st;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd == -1 || fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) || st.st_size > HTTP_BENCH_BODY_MAX) {
        log_warn("IMPACT_BENCH_BARE_FILE %s is not a readable file of at most %d bytes", path, HTTP_BENCH_BODY_MAX);
        goto Exit;
    }
    size_t size = (size_t)st.st_size, got = 0;
    if ((buf = malloc(size + 1)) == NULL)
        goto Exit;
    while (got < size) {
        ssize_t n = read(fd, buf + got, size - got);
        if (n <= 0) {
            log_warn("IMPACT_BENCH_BARE_FILE %s: short read", path);
            free(buf);
            goto Exit;
        }
        got += (size_t)n;
    }
    *out = h2o_iovec_init(buf, size);
    log_info("/bench/bare serves %zu bytes from %s", size, path);
Exit:
    if (fd != -1)
        close(fd);
}

static void s_settings_init(http_settings_t *settings, const impact_config_t *config)
{
    snprintf(settings->shm_name, sizeof(settings->shm_name), "%s", config->shm_name);
    settings->request_timeout_ms = s_env_ms("IMPACT_REQUEST_TIMEOUT_MS", 10000, 600000);
    settings->shutdown_grace_ms = s_env_ms("IMPACT_SHUTDOWN_GRACE_MS", 5000, 600000);
    if (getrandom(&settings->boot_tag, sizeof(settings->boot_tag), GRND_NONBLOCK) != sizeof(settings->boot_tag))
        settings->boot_tag = (uint32_t)time(NULL) ^ ((uint32_t)getpid() << 16);
    s_load_bench_body(&settings->bench_body);
}

/* One table for every thread: a key's requests are spread over all of them, and the limit is
 * the key's, not a thread's share of it. */
static int s_ratelimit_init(http_settings_t *settings, const impact_config_t *config)
{
    if (config->rate_limit <= 0) {
        log_info("rate limiting is off");
        return 0;
    }
    http_rl_config_t rl = {.rate = (uint32_t)config->rate_limit, .burst = (uint32_t)config->rate_burst};
    if ((settings->ratelimit = http_rl_new(&rl)) == NULL) {
        log_error("cannot make the rate limiter's table (--rate-limit %d, --rate-burst %d)", config->rate_limit,
                  config->rate_burst);
        return -1;
    }
    settings->ratelimit_rate = (uint32_t)config->rate_limit;
    settings->ratelimit_burst = (uint32_t)config->rate_burst;
    snprintf(settings->ratelimit_policy, sizeof(settings->ratelimit_policy), "%d;w=1;burst=%d", config->rate_limit,
             config->rate_burst);
    log_info("rate limit: %d requests per second in bursts of up to %d, per API key or client address", config->rate_limit,
             config->rate_burst);
    return 0;
}

static void s_ratelimit_dispose(http_settings_t *settings)
{
    if (settings->ratelimit == NULL)
        return;
    http_rl_stats_t st;
    http_rl_stats(settings->ratelimit, &st);
    log_info("rate limiter: %zu of %zu identities tracked, refused=%" PRIu64 " evicted_full=%" PRIu64 " evicted_active=%" PRIu64,
             st.tracked, st.capacity, st.refused, st.evicted_full, st.evicted_active);
    http_rl_destroy(&settings->ratelimit);
}

/* ---- listeners ------------------------------------------------------------------------------ */

static int s_listen(const char *hostport, char *err, size_t errlen)
{
    char host[128], service[16];
    int port;
    if (config_split_hostport(hostport, host, sizeof(host), &port) != 0) {
        snprintf(err, errlen, "bad listen address %s", hostport);
        return -1;
    }
    snprintf(service, sizeof(service), "%d", port);
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM, .ai_flags = AI_PASSIVE | AI_NUMERICSERV};
    struct addrinfo *res = NULL;
    int gai = getaddrinfo(host[0] ? host : NULL, service, &hints, &res);
    if (gai != 0) {
        snprintf(err, errlen, "%s: %s", hostport, gai_strerror(gai));
        return -1;
    }
    int fd = -1;
    snprintf(err, errlen, "%s: no usable address", hostport);
    for (struct addrinfo *ai = res; ai != NULL && fd == -1; ai = ai->ai_next) {
        int one = 1;
        fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC | SOCK_NONBLOCK, ai->ai_protocol);
        if (fd == -1)
            continue;
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
        /* Inherited by every accepted socket (Linux). Without it a small write that follows one
         * not yet acknowledged (an event stream's next event, an HTTP/2 frame after the one
         * before) waits for the client's delayed ACK, up to 40 ms. */
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
        if (bind(fd, ai->ai_addr, ai->ai_addrlen) != 0 || listen(fd, SOMAXCONN) != 0) {
            snprintf(err, errlen, "%s: %s", hostport, strerror(errno));
            close(fd);
            fd = -1;
        }
    }
    freeaddrinfo(res);
    return fd;
}

/* ---- connections ---------------------------------------------------------------------------- */

static void on_accept(h2o_socket_t *listener, const char *err);

static void s_set_accepting(http_thread_t *thread, int on)
{
    if (thread->accepting == on)
        return;
    thread->accepting = on;
    for (size_t i = 0; i < thread->num_listeners; i++) {
        if (thread->listeners[i].sock == NULL)
            continue;
        if (on)
            h2o_socket_read_start(thread->listeners[i].sock, on_accept);
        else
            h2o_socket_read_stop(thread->listeners[i].sock);
    }
}

static void on_conn_close(void *data)
{
    http_conn_t *conn = data;
    http_thread_t *thread = conn->thread;
    h2o_linklist_unlink(&conn->link);
    thread->num_conns--;
    free(conn);
    if (!thread->stopping && !h2o_timeout_is_linked(&thread->accept_retry) &&
        thread->num_conns < thread->server->max_conns_per_thread)
        s_set_accepting(thread, 1);
}

static void on_accept_retry(h2o_timeout_entry_t *entry)
{
    http_thread_t *thread = H2O_STRUCT_FROM_MEMBER(http_thread_t, accept_retry, entry);
    if (!thread->stopping && thread->num_conns < thread->server->max_conns_per_thread)
        s_set_accepting(thread, 1);
}

static void on_accept(h2o_socket_t *listener, const char *err)
{
    http_listener_t *l = listener->data;
    http_thread_t *thread = l->thread;
    if (err != NULL)
        return;
    for (int i = 0; i < HTTP_ACCEPT_BATCH; i++) {
        if (thread->num_conns >= thread->server->max_conns_per_thread) {
            /* Leave the rest in the kernel's queue for threads with room; resumed by on_conn_close. */
            s_set_accepting(thread, 0);
            return;
        }
        h2o_socket_t *sock = h2o_evloop_socket_accept(listener);
        if (sock == NULL) {
            /* Out of descriptors or memory the listener stays readable, and retrying at once would
             * spin; pause for a second instead. */
            if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
                log_warn("thread %u: accept: %s; pausing for a second", thread->index, strerror(errno));
                s_set_accepting(thread, 0);
                if (!h2o_timeout_is_linked(&thread->accept_retry))
                    h2o_timeout_link(thread->ctx.loop, &thread->ctx.one_sec_timeout, &thread->accept_retry);
            }
            return;
        }
        http_conn_t *conn = calloc(1, sizeof(*conn));
        if (conn == NULL) {
            h2o_socket_close(sock);
            continue;
        }
        conn->thread = thread;
        conn->sock = sock;
        h2o_linklist_insert(&thread->conns, &conn->link);
        thread->num_conns++;
        sock->on_close.cb = on_conn_close;
        sock->on_close.data = conn;
        h2o_accept(&l->accept_ctx, sock);
    }
}

/* Shuts down connections that have nothing left to write (all of them with `force`). h2o then
 * reads EOF and closes each one through its normal path, which is what frees its memory. */
static void s_shutdown_conns(http_thread_t *thread, int force)
{
    for (h2o_linklist_t *node = thread->conns.next; node != &thread->conns; node = node->next) {
        http_conn_t *conn = H2O_STRUCT_FROM_MEMBER(http_conn_t, link, node);
        if (conn->shut || (!force && h2o_socket_is_writing(conn->sock)))
            continue;
        shutdown(h2o_socket_get_fd(conn->sock), SHUT_RDWR);
        conn->shut = 1;
    }
}

/* ---- threads -------------------------------------------------------------------------------- */

static int s_should_stop(http_server_t *server)
{
    return signals_stop_requested() || atomic_load(&server->stop);
}

static void s_run_once(http_thread_t *thread)
{
    h2o_evloop_run(thread->ctx.loop, HTTP_LOOP_WAIT_MS);
    /* The safety net for ZMQ_FD's edge triggering: a reply may be waiting without a new edge. */
    http_bridge_drain(thread->bridge);
    http_stream_thread_run();
}

static void s_thread_shutdown(http_thread_t *thread)
{
    h2o_evloop_t *loop = thread->ctx.loop;
    log_info("thread %u stopping: %zu relayed requests pending, %zu connections open", thread->index,
             http_bridge_pending(thread->bridge), thread->num_conns);
    thread->stopping = 1;
    s_set_accepting(thread, 0);
    if (h2o_timeout_is_linked(&thread->accept_retry))
        h2o_timeout_unlink(&thread->accept_retry);
    for (size_t i = 0; i < thread->num_listeners; i++) {
        h2o_socket_close(thread->listeners[i].sock);
        thread->listeners[i].sock = NULL;
    }
    h2o_context_request_shutdown(&thread->ctx);
    http_stream_thread_shutdown();

    uint64_t grace_end = h2o_now(loop) + thread->settings->shutdown_grace_ms;
    while (http_bridge_pending(thread->bridge) != 0 && h2o_now(loop) < grace_end)
        s_run_once(thread);
    if (http_bridge_pending(thread->bridge) != 0) {
        log_warn("thread %u: %zu relayed requests still pending after the grace period; answering 503", thread->index,
                 http_bridge_pending(thread->bridge));
        http_bridge_abort_all(thread->bridge);
    }

    uint64_t close_end = h2o_now(loop) + HTTP_CLOSE_WAIT_MS;
    while (thread->num_conns != 0 && h2o_now(loop) < close_end) {
        s_shutdown_conns(thread, 0);
        s_run_once(thread);
    }
    if (thread->num_conns != 0) {
        s_shutdown_conns(thread, 1);
        for (int i = 0; i < 10 && thread->num_conns != 0; i++)
            s_run_once(thread);
    }
}

static void s_thread_dispose(http_thread_t *thread)
{
    h2o_evloop_t *loop = thread->ctx.loop;
    if (thread->bridge != NULL)
        http_bridge_log_stats(thread->bridge);
    http_stream_thread_dispose();
    http_bridge_destroy(&thread->bridge);
    if (thread->num_conns != 0) {
        /* Freeing the context under live connections would free timers they still hold. */
        log_warn("thread %u: %zu connections would not close; leaving them to exit", thread->index, thread->num_conns);
        return;
    }
    /* HTTP/2's graceful shutdown re-sends GOAWAY after a second; if that timer has not fired yet it
     * is still linked, and h2o_context_dispose insists every timer list is empty. */
    if (h2o_timeout_is_linked(&thread->ctx.http2._graceful_shutdown_timeout))
        h2o_timeout_unlink(&thread->ctx.http2._graceful_shutdown_timeout);
    h2o_context_dispose(&thread->ctx);
    h2o_evloop_destroy(loop);
}

static void *s_thread_main(void *arg)
{
    http_thread_t *thread = arg;
    http_server_t *server = thread->server;
    h2o_evloop_t *loop = h2o_evloop_create();
    h2o_context_init(&thread->ctx, loop, &server->globalconf);
    h2o_linklist_init_anchor(&thread->conns);
    thread->accept_retry.cb = on_accept_retry;

    thread->bridge = http_bridge_new(&thread->ctx, server->broker_endpoint, thread->index, thread->settings->request_timeout_ms,
                                     HTTP_MAX_PENDING_PER_THREAD);
    if (thread->bridge == NULL) {
        log_error("thread %u: cannot reach the broker at %s", thread->index, server->broker_endpoint);
        atomic_store(&server->failed, 1);
        atomic_store(&server->stop, 1);
    } else if (http_stream_thread_init(&thread->ctx, server->events_endpoint) != 0) {
        http_bridge_destroy(&thread->bridge);
        atomic_store(&server->failed, 1);
        atomic_store(&server->stop, 1);
    }
    for (size_t i = 0; i < thread->num_listeners; i++) {
        http_listener_t *l = &thread->listeners[i];
        l->thread = thread;
        l->sock = h2o_evloop_socket_create(loop, thread->listen_fds[i], H2O_SOCKET_FLAG_DONT_READ);
        l->sock->data = l;
        thread->listen_fds[i] = -1;
        l->accept_ctx.ctx = &thread->ctx;
        l->accept_ctx.hosts = server->globalconf.hosts;
        l->accept_ctx.ssl_ctx = i == 1 ? server->ssl_ctx : NULL;
    }
    if (thread->bridge == NULL) {
        for (size_t i = 0; i < thread->num_listeners; i++)
            h2o_socket_close(thread->listeners[i].sock);
        thread->num_listeners = 0;
        h2o_context_dispose(&thread->ctx);
        h2o_evloop_destroy(loop);
        return NULL;
    }

    s_set_accepting(thread, 1);
    while (!s_should_stop(server))
        s_run_once(thread);
    s_thread_shutdown(thread);
    s_thread_dispose(thread);
    return NULL;
}

/* ---- the process ---------------------------------------------------------------------------- */

static void s_configure(http_server_t *server)
{
    h2o_globalconf_t *conf = &server->globalconf;
    h2o_config_init(conf);
    conf->server_name = h2o_iovec_init(H2O_STRLIT("impactd/" IMPACT_VERSION));
    /* h2o enforces this before any handler runs: an HTTP/1 body over it gets 413 (rewritten into a
     * problem document by the fallback filter); an HTTP/2 stream over it is reset with
     * REFUSED_STREAM, as h2o 2.2 offers no hook there. */
    conf->max_request_entity_size = server->config->max_body;

    h2o_hostconf_t *host = h2o_config_register_host(conf, h2o_iovec_init(H2O_STRLIT("default")), 65535);
    http_problem_register_fallback(&host->fallback_path);
    /* First match wins, in registration order: the specific paths before the prefixes that contain them. */
    http_health_register(h2o_config_register_path(host, "/v1/health", 0));
    http_openapi_register(h2o_config_register_path(host, "/v1/openapi.json", 0));
    http_api_register(h2o_config_register_path(host, "/v1", 0));
    http_bench_register(h2o_config_register_path(host, "/bench/bare", 0));
    http_app_register(host, server->config->app_dir);
    http_notfound_register(h2o_config_register_path(host, "/", 0));
}

static int s_open_listeners(http_server_t *server)
{
    const impact_config_t *config = server->config;
    char err[256];
    server->listen_fds[0] = server->listen_fds[1] = -1;
    if ((server->listen_fds[0] = s_listen(config->listen, err, sizeof(err))) == -1) {
        log_error("cannot listen: %s", err);
        return -1;
    }
    server->num_listeners = 1;
    log_info("listening on %s (HTTP/1.1, h2c)", config->listen);
    if (config->tls_listen[0] == '\0' || strcmp(config->tls_listen, "off") == 0)
        return 0;
    if ((server->ssl_ctx = http_tls_context_new(config->tls_cert, config->tls_key, err, sizeof(err))) == NULL) {
        log_error("TLS: %s", err);
        return -1;
    }
    if ((server->listen_fds[1] = s_listen(config->tls_listen, err, sizeof(err))) == -1) {
        log_error("cannot listen: %s", err);
        return -1;
    }
    server->num_listeners = 2;
    log_info("listening on %s (h2 and HTTP/1.1 over TLS)", config->tls_listen);
    return 0;
}

/* Gives every thread its own descriptor of each listener, all made before any thread starts so
 * a failed dup leaves nothing running. Thread 0 takes the originals. */
static int s_threads_init(http_server_t *server)
{
    int n = server->config->http_threads;
    server->num_threads = n < 1 ? 1 : n > 255 ? 255 : n;
    if ((server->threads = calloc((size_t)server->num_threads, sizeof(*server->threads))) == NULL)
        return -1;
    /* Every connection is a descriptor, and event streams keep thousands open for hours: the soft
     * limit (often 1,024) is raised to the hard one, and connections past each thread's share
     * wait in the kernel's accept queue instead of failing accept() with EMFILE. */
    struct rlimit nofile;
    long budget = 1024;
    if (getrlimit(RLIMIT_NOFILE, &nofile) == 0) {
        nofile.rlim_cur = nofile.rlim_max;
        if (setrlimit(RLIMIT_NOFILE, &nofile) != 0)
            getrlimit(RLIMIT_NOFILE, &nofile);
        budget = nofile.rlim_cur == RLIM_INFINITY || nofile.rlim_cur > (rlim_t)LONG_MAX ? LONG_MAX : (long)nofile.rlim_cur;
    }
    long share = (budget - HTTP_FDS_RESERVED) / server->num_threads;
    server->max_conns_per_thread = share < HTTP_MIN_CONNS_PER_THREAD   ? HTTP_MIN_CONNS_PER_THREAD
                                   : share > HTTP_MAX_CONNS_PER_THREAD ? HTTP_MAX_CONNS_PER_THREAD
                                                                       : (size_t)share;
    log_info("%d threads, up to %zu connections each (descriptor limit %ld)", server->num_threads, server->max_conns_per_thread,
             budget);
    for (int i = 0; i < server->num_threads; i++) {
        http_thread_t *thread = &server->threads[i];
        thread->server = server;
        thread->settings = &server->settings;
        thread->index = (unsigned)i;
        thread->num_listeners = server->num_listeners;
        thread->listen_fds[0] = thread->listen_fds[1] = -1;
    }
    for (int i = server->num_threads - 1; i >= 0; i--) {
        for (size_t j = 0; j < server->num_listeners; j++) {
            int fd = i == 0 ? server->listen_fds[j] : fcntl(server->listen_fds[j], F_DUPFD_CLOEXEC, 0);
            if (fd == -1) {
                log_error("dup(listener): %s", strerror(errno));
                return -1;
            }
            server->threads[i].listen_fds[j] = fd;
        }
    }
    server->listen_fds[0] = server->listen_fds[1] = -1;
    return 0;
}

static void s_server_dispose(http_server_t *server)
{
    for (int i = 0; server->threads != NULL && i < server->num_threads; i++)
        for (size_t j = 0; j < 2; j++)
            if (server->threads[i].listen_fds[j] != -1)
                close(server->threads[i].listen_fds[j]);
    for (size_t j = 0; j < 2; j++)
        if (server->listen_fds[j] != -1)
            close(server->listen_fds[j]);
    free(server->threads);
    h2o_config_dispose(&server->globalconf);
    SSL_CTX_free(server->ssl_ctx);
    free(server->settings.bench_body.base);
    s_ratelimit_dispose(&server->settings);
    free(server);
}

int http_main(const impact_config_t *config)
{
    log_init("http");
    signals_install();

    http_server_t *server = calloc(1, sizeof(*server));
    if (server == NULL)
        return 1;
    server->config = config;
    server->listen_fds[0] = server->listen_fds[1] = -1;
    s_settings_init(&server->settings, config);
    s_configure(server);
    if (s_ratelimit_init(&server->settings, config) != 0)
        goto Error;
    if (config_endpoint(config, BRK_FRONT_ENDPOINT, server->broker_endpoint, sizeof(server->broker_endpoint)) != 0 ||
        config_endpoint(config, EVENTS_PUB_ENDPOINT, server->events_endpoint, sizeof(server->events_endpoint)) != 0) {
        log_error("run dir %s gives no usable broker endpoint", config->run_dir);
        goto Error;
    }
    if (s_open_listeners(server) != 0 || s_threads_init(server) != 0)
        goto Error;

    int started = 0;
    for (; started < server->num_threads; started++) {
        http_thread_t *thread = &server->threads[started];
        if ((errno = pthread_create(&thread->tid, NULL, s_thread_main, thread)) != 0) {
            log_error("cannot start thread %d: %s", started, strerror(errno));
            atomic_store(&server->failed, 1);
            atomic_store(&server->stop, 1);
            break;
        }
    }
    log_info("serving with %d event-loop threads; broker at %s; request timeout %" PRIu64 " ms", started, server->broker_endpoint,
             server->settings.request_timeout_ms);
    for (int i = 0; i < started; i++)
        pthread_join(server->threads[i].tid, NULL);

    int rc = atomic_load(&server->failed) ? 1 : 0;
    log_info("stopped (exit %d)", rc);
    s_server_dispose(server);
    return rc;

Error:
    s_server_dispose(server);
    return 1;
}
