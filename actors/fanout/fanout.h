/*
 * The fan-out actor: turns committed state events into webhook deliveries and stream feeds.
 * One process, serving the "fanout" service. Today it delivers the call-state webhooks of
 * POST /v1/call from the call_events outbox (webhooks.h); streams and account webhooks follow.
 */
#ifndef IMPACT_FANOUT_FANOUT_H
#define IMPACT_FANOUT_FANOUT_H

#include <czmq.h>

#include "common/config.h"

/** The fan-out process (impactd --role fanout). */
int fanout_main(const impact_config_t *config);

#endif
