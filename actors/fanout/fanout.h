/*
 * The fan-out actor: turns committed state events into webhook deliveries and stream feeds.
 * One process, serving the "fanout" service: it delivers the call-state webhooks of POST /v1/call
 * and the webhook endpoints' deliveries (webhooks.h), and numbers and publishes events for the
 * streams (sequencer.h).
 */
#ifndef IMPACT_FANOUT_FANOUT_H
#define IMPACT_FANOUT_FANOUT_H

#include <czmq.h>

#include "common/config.h"

/** The fan-out process (impactd --role fanout). */
int fanout_main(const impact_config_t *config);

#endif
