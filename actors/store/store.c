/*
 * The store actor loop: one PostgreSQL connection, one broker worker, requests served one at a
 * time. Parallelism comes from the pool (several store processes), not from threads, so a
 * handler can use its connection freely and a crash takes down one member only.
 */
#include "actors/store/store.h"

#include <openssl/crypto.h>
#include <string.h>

#include "actors/api/api.h"
#include "actors/store/auth.h"
#include "actors/store/db.h"
#include "actors/store/routes.h"
#include "broker/worker.h"
#include "common/log.h"
#include "common/signals.h"

typedef struct {
    zsock_t *pipe;
    brk_worker_t *worker;
    PGconn *conn;
    auth_cache_t *auth;
    stmt_cache_t *stmts;
    route_limits_t limits; /* a copy: the caller's config need not outlive the start */
    bool have_limits;
} store_t;

static void s_store_destroy(store_t **self_p)
{
    store_t *self = *self_p;
    if (self == NULL)
        return;
    brk_worker_destroy(&self->worker);
    auth_cache_destroy(&self->auth);
    stmt_cache_destroy(&self->stmts);
    PQfinish(self->conn);
    free(self);
    *self_p = NULL;
}

static store_t *s_store_new(zsock_t *pipe, const store_config_t *config)
{
    char err[512], identity[32];
    store_t *self = calloc(1, sizeof(*self));
    if (self == NULL)
        return NULL;
    self->pipe = pipe;
    if (config->limits) {
        self->limits = *config->limits;
        self->have_limits = true;
    }
    self->conn = db_connect(config->database_url, err, sizeof(err));
    if (self->conn == NULL) {
        log_error("%s", err);
        goto Error;
    }
    self->auth = auth_cache_new();
    self->stmts = stmt_cache_new();
    snprintf(identity, sizeof(identity), "store.%d", config->index);
    /* Register only once the database is reachable: a member in the registry can serve. */
    self->worker = brk_worker_new(config->broker_endpoint, "store", identity);
    if (self->auth == NULL || self->stmts == NULL || self->worker == NULL)
        goto Error;
    return self;
Error:
    s_store_destroy(&self);
    return NULL;
}

static void s_handle(void *ctx, const api_request_t *req, api_reply_t *reply)
{
    store_t *self = ctx;
    /* A connection lost while idle is re-established here, once, before it is needed. */
    if (PQstatus(self->conn) != CONNECTION_OK) {
        PQreset(self->conn);
        stmt_cache_clear(self->stmts);
    }
    routes_dispatch(
        &(route_ctx_t){
            .conn = self->conn, .limits = self->have_limits ? &self->limits : NULL, .auth = self->auth, .stmts = self->stmts},
        req, reply);
}

void store_actor(zsock_t *pipe, void *args)
{
    store_t *self = s_store_new(pipe, args);
    zsock_signal(pipe, self ? 0 : 1);
    if (self == NULL)
        return;
    zsock_t *sock = brk_worker_sock(self->worker);
    zpoller_t *poller = zpoller_new(pipe, sock, NULL);
    while (poller) {
        int timeout = brk_worker_tick(self->worker);
        void *which = zpoller_wait(poller, brk_worker_busy(self->worker) ? 0 : timeout);
        if (which == pipe)
            break; /* $TERM is the only command */
        if (which == NULL && zpoller_terminated(poller))
            break;
        /* Serve everything already queued before polling again (see the broker's s_drain); the
         * budget keeps $TERM and heartbeats from waiting behind a flood. */
        brk_request_t *request;
        for (int budget = 256; budget > 0 && (request = brk_worker_recv(self->worker)) != NULL; budget--)
            api_serve(self->worker, &request, s_handle, self);
    }
    zpoller_destroy(&poller);
    s_store_destroy(&self);
    /* OpenSSL keeps per-thread state (from hashing secrets) that only this call frees. */
    OPENSSL_thread_stop();
}

int store_main(const impact_config_t *config, int index)
{
    char role[32], back[128];
    snprintf(role, sizeof(role), "store.%d", index);
    log_init(role);
    signals_install();
    if (config_endpoint(config, BRK_BACK_ENDPOINT, back, sizeof(back)) != 0) {
        log_error("run directory path too long: %s", config->run_dir);
        return 1;
    }
    route_limits_t limits = {.max_body_bytes = config->max_body,
                             .rate_limit = config->rate_limit,
                             .rate_burst = config->rate_burst,
                             .allow_private_urls = config->allow_private_urls};
    store_config_t store = {.broker_endpoint = back, .database_url = config->database_url, .index = index, .limits = &limits};
    return signals_run_actor(store_actor, &store);
}
