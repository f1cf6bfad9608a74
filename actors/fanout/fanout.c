/*
 * The fan-out process. It registers the "fanout" service with the broker, takes its place in
 * supervision and health reporting, and delivers webhooks (webhooks.c): the call-state webhooks
 * of POST /v1/call from the call_events outbox and the webhook endpoints' deliveries, woken by
 * PostgreSQL notifications and its retry timer. It also numbers every event producers commit and
 * publishes it for the http process's streams (sequencer.c). It serves no request: it answers
 * every one with 404 so a misrouted request is visible instead of timing out.
 */
#include "actors/fanout/fanout.h"

#include <curl/curl.h>
#include <limits.h>
#include <openssl/crypto.h>
#include <stdio.h>
#include <string.h>
#include <sys/random.h>
#include <unistd.h>

#include "actors/api/api.h"
#include "actors/fanout/sequencer.h"
#include "actors/fanout/webhooks.h"
#include "broker/worker.h"
#include "common/log.h"
#include "common/signals.h"

typedef struct {
    const char *broker_endpoint;
    const char *database_url;
    const char *events_endpoint; /* where the sequencer publishes events (sequencer.h) */
    const char *holder;          /* this instance, in webhook leases (webhooks.h) */
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
    webhooks_t *webhooks = worker ? webhooks_new(config->database_url, config->holder, config->allow_private_urls) : NULL;
    zsock_t *pub = webhooks ? zsock_new_pub(config->events_endpoint) : NULL;
    sequencer_t *sequencer = pub ? sequencer_new(config->database_url, pub) : NULL;
    zsock_signal(pipe, sequencer ? 0 : 1);
    if (sequencer == NULL) {
        if (webhooks && pub == NULL)
            log_error("cannot bind %s", config->events_endpoint);
        zsock_destroy(&pub);
        webhooks_destroy(&webhooks);
        brk_worker_destroy(&worker);
        return;
    }
    zsock_t *sock = brk_worker_sock(worker);
    while (true) {
        int timeout = brk_worker_tick(worker);
        int due = webhooks_run(webhooks);
        if (due < timeout)
            timeout = due;
        due = sequencer_run(sequencer);
        if (due < timeout)
            timeout = due;
        int sequencer_fd = sequencer_socket(sequencer);
        /* The PostgreSQL sockets change when a connection is re-established, and the deliveries'
         * sockets with every delivery: polled afresh each turn. */
        zmq_pollitem_t items[3 + WEBHOOKS_POLL_MAX] = {{zsock_resolve(pipe), 0, ZMQ_POLLIN, 0},
                                                       {zsock_resolve(sock), 0, ZMQ_POLLIN, 0}};
        int n_items = 2, sequencer_item = -1;
        if (sequencer_fd >= 0)
            items[sequencer_item = n_items++] = (zmq_pollitem_t){NULL, sequencer_fd, ZMQ_POLLIN, 0};
        int webhooks_first = n_items;
        n_items += webhooks_poll_items(webhooks, items + webhooks_first, WEBHOOKS_POLL_MAX);
        if (zmq_poll(items, n_items, brk_worker_busy(worker) ? 0 : timeout) < 0 && errno != EINTR)
            break;
        if (items[0].revents & ZMQ_POLLIN)
            break; /* $TERM */
        webhooks_poll_ready(webhooks, items + webhooks_first, n_items - webhooks_first);
        if (sequencer_item >= 0 && (items[sequencer_item].revents & ZMQ_POLLIN))
            sequencer_readable(sequencer);
        brk_request_t *request;
        for (int budget = 256; budget > 0 && (request = brk_worker_recv(worker)) != NULL; budget--)
            api_serve(worker, &request, s_not_found, NULL);
    }
    sequencer_destroy(&sequencer);
    zsock_destroy(&pub);
    webhooks_destroy(&webhooks);
    brk_worker_destroy(&worker);
    /* Signing gave this thread OpenSSL state (its error queue) that OpenSSL frees when the thread
     * ends, which may come after the process has exited: freed here instead. */
    OPENSSL_thread_stop();
}

/* This instance's name in webhook leases: what a fan-out process restarted by the same supervisor
 * shares with the one before it (which the supervisor saw exit), and no other process does. The
 * host and the supervisor's pid for people reading the leases; a random token, kept in the run
 * directory for the supervisor's lifetime, for uniqueness (containers share pids and host names). */
static void s_holder(const impact_config_t *config, char *out, size_t size)
{
    char path[PATH_MAX], token[33] = "", host[256] = "localhost";
    snprintf(path, sizeof(path), "%s/webhooks.holder", config->run_dir);
    FILE *f = fopen(path, "r");
    if (f) {
        if (fscanf(f, "%32s", token) != 1)
            token[0] = '\0';
        fclose(f);
    }
    if (strlen(token) != 32) {
        unsigned char bytes[16] = {0};
        if (getrandom(bytes, sizeof(bytes), 0) != (ssize_t)sizeof(bytes))
            log_warn("webhooks: no random bytes for the lease holder's name");
        for (size_t i = 0; i < sizeof(bytes); i++)
            snprintf(token + 2 * i, 3, "%02x", bytes[i]);
        /* Not kept: a restart then waits for the leases to end instead of taking them over. */
        f = fopen(path, "w");
        if (f == NULL || fprintf(f, "%s\n", token) < 0)
            log_warn("webhooks: cannot keep the lease holder's name in %s", path);
        if (f)
            fclose(f);
    }
    gethostname(host, sizeof(host) - 1);
    snprintf(out, size, "%s:%d:%s", host, (int)getppid(), token);
}

int fanout_main(const impact_config_t *config)
{
    char back[128], events[128], holder[384];
    log_init("fanout");
    signals_install();
    if (config_endpoint(config, BRK_BACK_ENDPOINT, back, sizeof(back)) != 0 ||
        config_endpoint(config, EVENTS_PUB_ENDPOINT, events, sizeof(events)) != 0) {
        log_error("run directory path too long: %s", config->run_dir);
        return 1;
    }
    /* Before any thread exists: libcurl's global set-up is not thread-safe. */
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
        log_error("libcurl initialisation failed");
        return 1;
    }
    s_holder(config, holder, sizeof(holder));
    fanout_config_t fanout = {.broker_endpoint = back,
                              .database_url = config->database_url,
                              .events_endpoint = events,
                              .holder = holder,
                              .allow_private_urls = config->allow_private_urls};
    int rc = signals_run_actor(s_fanout_actor, &fanout);
    curl_global_cleanup();
    return rc;
}
