/*
 * The carrier interface: everything the dialer asks of a phone network, and everything it hears.
 *
 * Shaped after Twilio's call model so a REST adapter fits without contortions: a call is created
 * with a destination, a caller id and a ring timeout; the network then reports status changes
 * asynchronously (Twilio's StatusCallbackEvent and AsyncAmd callbacks); an answered call can be
 * joined into a caller's conference, played a recording, transferred or hung up.
 *
 * The dialer names every call with its own 64-bit id; mapping that to a carrier's identifier
 * (a Twilio CallSid) is the adapter's business. Status events arrive through the sink given at
 * construction and may come late, twice or never: the engine treats them as untrusted, ignores
 * those that make no sense for the call's state, and times out calls whose status never comes.
 *
 * Built in: the simulated carrier (sim_carrier.h), the default, which draws outcomes from a
 * scenario. A Twilio adapter is future work.
 */
#ifndef IMPACT_DIALER_CARRIER_H
#define IMPACT_DIALER_CARRIER_H

#include <stdbool.h>
#include <stdint.h>

typedef enum {
    CARRIER_RINGING,
    CARRIER_ANSWERED,         /* picked up; without detection nobody knows whether by a person */
    CARRIER_ANSWERED_HUMAN,   /* answering-machine detection says: a person */
    CARRIER_ANSWERED_MACHINE, /* answering-machine detection says: a machine */
    CARRIER_GREETING_ENDED,   /* the person finished their greeting: the 2-second clock starts */
    CARRIER_BRIDGED,          /* joined the caller's conference */
    CARRIER_PLAYED,           /* a recording finished playing */
    CARRIER_COMPLETED,        /* an answered call ended (either side hung up) */
    CARRIER_BUSY,
    CARRIER_NO_ANSWER,
    CARRIER_FAILED,   /* invalid number, network error, SIT tone */
    CARRIER_CANCELED, /* hung up by us before it was answered */
} carrier_status_t;

typedef struct {
    uint64_t call_id;
    carrier_status_t status;
    int64_t at_us;
} carrier_event_t;

typedef void(carrier_sink_fn)(void *ctx, const carrier_event_t *event);

typedef struct {
    const char *to;   /* E.164 */
    const char *from; /* the campaign's caller id */
    double ring_timeout_seconds;
    bool detect_machine;
} carrier_dial_t;

/* Every operation returns 0 when the carrier accepted it, -1 when it refused at once (unknown
 * call, wrong state, over capacity); the outcome of an accepted operation arrives as events. */
typedef struct {
    int (*dial)(void *self, uint64_t call_id, const carrier_dial_t *request, int64_t now_us);
    int (*bridge)(void *self, uint64_t call_id, uint64_t caller_id, int64_t now_us);
    int (*play)(void *self, uint64_t call_id, const char *audio_uri, bool hang_up_after, int64_t now_us);
    /* Cold (`warm` false): the person is handed to `to` and the caller's leg leaves; the call's
     * end is still reported (CARRIER_COMPLETED when the person's leg ends). Warm: `to` joins the
     * call as a third party, and the caller stays until leave. */
    int (*transfer)(void *self, uint64_t call_id, const char *to, bool warm, int64_t now_us);
    /* The caller's leg leaves a warm transfer's three-way call; the others talk on. */
    int (*leave)(void *self, uint64_t call_id, int64_t now_us);
    int (*hang_up)(void *self, uint64_t call_id, int64_t now_us);
    void (*destroy)(void **self_p);
} carrier_ops_t;

typedef struct {
    const carrier_ops_t *ops;
    void *self;
} carrier_t;

const char *carrier_status_name(carrier_status_t status);

#endif
