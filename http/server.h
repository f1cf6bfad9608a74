/*
 * Internal to http/: the per-thread state every handler reaches from its request, and the
 * registration functions of the handlers (one file each).
 *
 * Threads: http_main runs config->http_threads event loops. Each owns one h2o_context_t and
 * h2o_evloop_t, one DEALER to the broker (http_bridge_t) and its own accepting sockets (dups of
 * the shared listeners). Nothing in this struct is touched from another thread, so handlers
 * need no locks; the only shared state is the read-only settings and h2o_globalconf_t, and the
 * rate limiter's table the settings point to, which does its own locking.
 */
#ifndef IMPACT_HTTP_SERVER_H
#define IMPACT_HTTP_SERVER_H

#include <h2o.h>
#include <pthread.h>
#include <stdint.h>

#include "http/bridge.h"
#include "http/ratelimit.h"
#include "schemas/msg.h"

#define HTTP_BENCH_BODY_MAX (1024 * 1024)

/* Read-only after http_main's start-up; shared by all threads. */
typedef struct {
    char shm_name[64];
    h2o_iovec_t bench_body;      /* IMPACT_BENCH_BARE_FILE's bytes; base NULL: /bench/bare is 404 */
    uint64_t request_timeout_ms; /* broker round trip deadline (IMPACT_REQUEST_TIMEOUT_MS) */
    uint64_t shutdown_grace_ms;  /* how long SIGTERM waits for in-flight relays (IMPACT_SHUTDOWN_GRACE_MS) */
    uint32_t boot_tag;           /* makes request ids unique across restarts of the process */
    http_rl_t *ratelimit;        /* shared by every thread (it locks inside); NULL: --rate-limit 0 */
    uint32_t ratelimit_rate;     /* --rate-limit: requests per second */
    uint32_t ratelimit_burst;    /* --rate-burst: the RateLimit-Limit */
    char ratelimit_policy[48];   /* the RateLimit-Policy value, "RATE;w=1;burst=BURST" */
} http_settings_t;

typedef struct st_http_thread_t http_thread_t;

typedef struct {
    http_thread_t *thread;
    h2o_socket_t *sock; /* this thread's dup of a shared listening socket; NULL once closed */
    h2o_accept_ctx_t accept_ctx;
} http_listener_t;

struct st_http_thread_t {
    h2o_context_t ctx;
    const http_settings_t *settings;
    struct st_http_server_t *server;
    unsigned index;
    pthread_t tid;
    uint64_t request_seq;
    http_bridge_t *bridge;
    http_listener_t listeners[2];
    size_t num_listeners;
    int listen_fds[2];    /* handed to h2o (and owned by it) once the thread runs */
    h2o_linklist_t conns; /* http_conn_t (server.c), so shutdown can close idle keep-alive connections */
    size_t num_conns;
    int accepting;                    /* listeners are being read: off at the connection limit, out of descriptors, or stopping */
    h2o_timeout_entry_t accept_retry; /* resumes accepting a second after running out of descriptors */
    int stopping;
};

/** The thread whose event loop runs `req`. */
static http_thread_t *http_thread_of(h2o_req_t *req);

/**
 * The request's id (24 hex digits: boot tag, thread index, per-thread counter), made on first
 * use and kept in the request's env so every response and log line of the request agrees.
 */
h2o_iovec_t http_request_id(h2o_req_t *req);

/** Registers the relay handler (api.c): everything under /v1 that no other handler takes. */
void http_api_register(h2o_pathconf_t *pathconf);

/** Fills m's forwarded headers and query from `req` (views into it). 0, or -1 (too many or too long). */
int http_api_collect(h2o_req_t *req, msg_api_request_t *m);

/**
 * Relays `m` (method, path, headers, query and body set; request id and base URL are added) to the
 * service its path routes to, `cb` answering. Failures to send are answered here. 0 or -1.
 */
int http_api_send(h2o_req_t *req, msg_api_request_t *m, http_bridge_reply_cb cb);

/** Answers `req` with the problem for a relay that failed with `err` (errno of http_api_call). */
void http_api_refuse(h2o_req_t *req, int err);

/**
 * Relays `m` (method, path, headers, query, body, request id and base URL all set: there may be no
 * request any more, as for an event stream that became a WebSocket) on `thread`'s bridge; the
 * answer goes to cb(arg). The call, or NULL with errno (logged).
 */
http_bridge_call_t *http_api_call(http_thread_t *thread, msg_api_request_t *m, http_bridge_call_cb cb, void *arg);

/** The relay's answer: the actor's response written out, or the problem for a broker failure. */
void http_api_on_reply(h2o_req_t *req, const http_reply_t *reply);

/** "scheme://authority" of the request, for absolute links. 0, or -1 when the authority looks odd. */
int http_base_url(h2o_req_t *req, char *buf, size_t size);

/** 1 with *campaign_id set when `path` is /v1/campaigns/{id}/stats (stats.c). */
int http_stats_match(h2o_iovec_t path, int64_t *campaign_id);

/** Answers the live stats of a campaign from shared memory (stats.c); m holds the collected headers and query. */
void http_stats_serve(h2o_req_t *req, int64_t campaign_id, msg_api_request_t *m);

/**
 * The browser view (html.h, api.c) of a JSON response a handler is about to send: status and
 * Content-Type must be set. A renderable type gets Vary: Accept; when the client prefers
 * text/html, *body becomes the page, the page's headers are set and the page's malloc'd buffer
 * is returned, to be freed once h2o_send_inline has copied it. NULL: send *body as it is.
 */
char *http_negotiate(h2o_req_t *req, h2o_iovec_t *body);

/** Serves the caller app (apps/caller) from `app_dir` at /app/ (static.c); /app redirects there.
 *  A missing directory is logged and leaves /app/ unserved. */
void http_app_register(h2o_hostconf_t *host, const char *app_dir);

/** Serves GET /v1/events/stream, or with `of_caller` GET /v1/caller_session/events/stream (a
 *  caller's own events, by their session's token or cookie), as Server-Sent Events or, to an
 *  HTTP/1.1 WebSocket handshake, as a WebSocket (stream.c); m holds the collected headers and query. */
void http_stream_serve(h2o_req_t *req, msg_api_request_t *m, int of_caller);

/**
 * The calling thread's subscriber to the fan-out's event publisher at `endpoint`, watched from
 * ctx's loop, and its streams (stream.c). 0, or -1 (logged).
 */
int http_stream_thread_init(h2o_context_t *ctx, const char *endpoint);

/** Reads what waits on the subscriber: the safety net for ZMQ_FD's edge, like http_bridge_drain. */
void http_stream_thread_run(void);

/** The server is stopping: WebSocket streams are closed with 1001 (going away); SSE streams are
 *  left to the connections' shutdown. */
void http_stream_thread_shutdown(void);

/** Closes the calling thread's subscriber and frees its streams (their requests are gone or going). */
void http_stream_thread_dispose(void);

/** Registers GET /v1/health (health.c). */
void http_health_register(h2o_pathconf_t *pathconf);

/** Registers GET /v1/openapi.json (openapi.c): the build's copy of schemas/openapi.yaml as JSON. */
void http_openapi_register(h2o_pathconf_t *pathconf);

/** Registers GET /bench/bare (server.c): the settings' bench body, or 404 without one. */
void http_bench_register(h2o_pathconf_t *pathconf);

/** Registers the catch-all that answers 404 problem documents (server.c). */
void http_notfound_register(h2o_pathconf_t *pathconf);

/* inline defs */

inline http_thread_t *http_thread_of(h2o_req_t *req)
{
    return H2O_STRUCT_FROM_MEMBER(http_thread_t, ctx, req->conn->ctx);
}

#endif
