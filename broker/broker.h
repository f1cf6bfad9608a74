/*
 * brk_actor: routes requests from requesters to actors by service name.
 *
 * A service is served by one or more actors. "store" is a pool (requests are spread round-robin
 * over its live members); "dialer:<campaign>" and "fanout" have one member each. An actor is a
 * member while its heartbeats keep arriving; it expires BRK_EXPIRY_MS after the last one, and at
 * once when a send to it fails. A request for a service with no live member is answered at once
 * with BRK_STATUS_NO_SERVICE: the broker never queues or drops silently.
 *
 * Run it in a thread with zactor_new(brk_actor, &config) or as a process (supervisor/main.c).
 * The config must stay valid until the actor has signalled readiness.
 */
#ifndef IMPACT_BROKER_BROKER_H
#define IMPACT_BROKER_BROKER_H

#include <czmq.h>
#include <stdint.h>

#include "broker/wire.h"
#include "common/config.h"

typedef struct {
    const char *front_endpoint; /* e.g. "ipc:///run/dir/broker-front.ipc" */
    const char *back_endpoint;
    int expiry_ms; /* 0 selects BRK_EXPIRY_MS */
} brk_config_t;

/** The actor function. Answers "$TERM" on its pipe; "STATS" answers with a msgpack-free text line. */
void brk_actor(zsock_t *pipe, void *args);

/** The broker process (impactd --role broker): binds in config->run_dir and runs until SIGTERM. */
int broker_main(const impact_config_t *config);

#endif
