/*
 * The fan-out process. It registers the "fanout" service with the broker, takes its place in
 * supervision and health reporting, and delivers the call-state webhooks of POST /v1/call from
 * the call_events outbox (webhooks.c), woken by PostgreSQL notifications and its retry timer.
 * General event intake, account webhooks and streams are built on this loop (issue 5); until
 * then it answers every request with 404 so a misrouted request is visible instead of timing out.
 */
#include "actors/fanout/fanout.h"

#include <curl/curl.h>

#include "actors/api/api.h"
#include "actors/fanout/webhooks.h"
#include "broker/worker.h"
#include "common/log.h"
#include "common/signals.h"

typedef struct {
    const char *broker_endpoint;
    const char *database_url;
    bool allow_private_urls;
} fanout_config_t;

static void s_not_found(void *ctx, const api_request_t *req, api_reply_t *reply)
{
    api_reply_problem(reply, req, 404, "not-found", "Not found", "The event service has no resource here.");
}

static void s_fanout_actor(zsock_t *pipe, void *args)
{
    const fanout_config_t *config = args;
    brk_worker_t *worker = brk_worker_new(config->broker_endpoint, "fanout", "fanout");
    webhooks_t *webhooks = worker ? webhooks_new(config->database_url, config->allow_private_urls) : NULL;
    zsock_signal(pipe, webhooks ? 0 : 1);
    if (webhooks == NULL) {
        brk_worker_destroy(&worker);
        return;
    }
    zsock_t *sock = brk_worker_sock(worker);
    while (true) {
        int timeout = brk_worker_tick(worker);
        int due = webhooks_run(webhooks, pipe);
        if (due < timeout)
            timeout = due;
        int fd = webhooks_socket(webhooks);
        /* The PostgreSQL socket changes when the connection is re-established: polled afresh each turn. */
        zmq_pollitem_t items[] = {
            {zsock_resolve(pipe), 0, ZMQ_POLLIN, 0}, {zsock_resolve(sock), 0, ZMQ_POLLIN, 0}, {NULL, fd, ZMQ_POLLIN, 0}};
        if (zmq_poll(items, fd >= 0 ? 3 : 2, brk_worker_busy(worker) ? 0 : timeout) < 0 && errno != EINTR)
            break;
        if (items[0].revents & ZMQ_POLLIN)
            break; /* $TERM */
        if (fd >= 0 && (items[2].revents & ZMQ_POLLIN))
            webhooks_readable(webhooks);
        brk_request_t *request;
        for (int budget = 256; budget > 0 && (request = brk_worker_recv(worker)) != NULL; budget--)
            api_serve(worker, &request, s_not_found, NULL);
    }
    webhooks_destroy(&webhooks);
    brk_worker_destroy(&worker);
}

int fanout_main(const impact_config_t *config)
{
    char back[128];
    log_init("fanout");
    signals_install();
    if (config_endpoint(config, BRK_BACK_ENDPOINT, back, sizeof(back)) != 0) {
        log_error("run directory path too long: %s", config->run_dir);
        return 1;
    }
    /* Before any thread exists: libcurl's global set-up is not thread-safe. */
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
        log_error("libcurl initialisation failed");
        return 1;
    }
    fanout_config_t fanout = {
        .broker_endpoint = back, .database_url = config->database_url, .allow_private_urls = config->allow_private_urls};
    int rc = signals_run_actor(s_fanout_actor, &fanout);
    curl_global_cleanup();
    return rc;
}
