/*
 * The fan-out process. It registers the "fanout" service with the broker and takes its place in
 * supervision and health reporting; event intake, the outbox, webhooks and streams are built on
 * this loop (issue 5). Until then it answers every request with 404 so a misrouted request is
 * visible instead of timing out.
 */
#include "actors/fanout/fanout.h"

#include "actors/api/api.h"
#include "broker/worker.h"
#include "common/log.h"
#include "common/signals.h"

typedef struct {
    const char *broker_endpoint;
} fanout_config_t;

static void s_not_found(void *ctx, const api_request_t *req, api_reply_t *reply)
{
    api_reply_problem(reply, req, 404, "not-found", "Not found", "The event service has no resource here.");
}

static void s_fanout_actor(zsock_t *pipe, void *args)
{
    const fanout_config_t *config = args;
    brk_worker_t *worker = brk_worker_new(config->broker_endpoint, "fanout", "fanout");
    zsock_signal(pipe, worker ? 0 : 1);
    if (worker == NULL)
        return;
    zsock_t *sock = brk_worker_sock(worker);
    zpoller_t *poller = zpoller_new(pipe, sock, NULL);
    while (poller) {
        int timeout = brk_worker_tick(worker);
        void *which = zpoller_wait(poller, brk_worker_busy(worker) ? 0 : timeout);
        if (which == pipe || (which == NULL && zpoller_terminated(poller)))
            break;
        brk_request_t *request;
        for (int budget = 256; budget > 0 && (request = brk_worker_recv(worker)) != NULL; budget--)
            api_serve(worker, &request, s_not_found, NULL);
    }
    zpoller_destroy(&poller);
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
    fanout_config_t fanout = {.broker_endpoint = back};
    return signals_run_actor(s_fanout_actor, &fanout);
}
