/*
 * Frame layout on every broker hop. Correlation ids are 8 bytes, opaque to the broker; the
 * requester picks them and matches replies with them. Bodies are one msgpack object each
 * (schemas/msg.h) that only the two ends decode.
 *
 * One message carries a batch of one or more requests (or replies), so that under load a whole
 * event-loop iteration's worth of requests crosses each hop in one message: every hop costs
 * system calls and thread wake-ups, and a batch pays them once.
 *
 *   requester DEALER -> broker front ROUTER   [service]([corr][body])+
 *   broker front -> requester                 ([corr][status][body])+
 *   actor DEALER -> broker back ROUTER        ["HB"][msg_actor_heartbeat]
 *                                             ["REP"][requester id]([corr][status][body])+
 *   broker back -> actor                      ["REQ"][requester id]([corr][body])+
 *
 * A batch holds at most BRK_BATCH_MAX entries and all its requests go to the same service.
 *
 * The back ROUTER sets ROUTER_MANDATORY, so a send to an actor that has gone away fails with
 * EHOSTUNREACH instead of vanishing, and ROUTER_HANDOVER, so an actor restarted under the same
 * routing id ("store.1", "dialer:42") takes its identity over from the dead connection.
 */
#ifndef IMPACT_BROKER_WIRE_H
#define IMPACT_BROKER_WIRE_H

#include <stdint.h>

#define BRK_CORR_SIZE      8
#define BRK_SERVICE_MAX    64
#define BRK_FRONT_ENDPOINT "broker-front.ipc"
#define BRK_BACK_ENDPOINT  "broker-back.ipc"
#define BRK_HEARTBEAT_MS   1000
#define BRK_EXPIRY_MS      3500
#define BRK_BATCH_MAX      256

typedef enum {
    BRK_STATUS_OK = 0,
    BRK_STATUS_NO_SERVICE = 1,  /* no live actor serves the service: answer 503 */
    BRK_STATUS_OVERLOADED = 2,  /* queues to the actor are full: answer 503 with Retry-After */
    BRK_STATUS_BAD_FRAME = 3,   /* the request frames were malformed */
    BRK_STATUS_ACTOR_ERROR = 4, /* the actor could not decode or process the body */
} brk_status_t;

#endif
