/*
 * The dialer process (impactd --role dialer --campaign ID): one per running or paused campaign,
 * started and restarted by the supervisor. It runs the campaign engine on the real clock (times
 * --sim-speed) with the simulated carrier and the scenario's simulated callers, takes its numbers
 * from PostgreSQL (numbers.h), writes every attempt ahead of its dial and group-commits outcomes
 * (call_log.h), publishes live figures in its shared-memory campaign slot every second, and
 * follows the campaign's status: paused stops new dials, stopped ends the process with status 0.
 *
 * Started after a crash it first ends the attempts its predecessor left open (as timed out) and
 * releases the numbers it had claimed but never dialed.
 */
#ifndef IMPACT_DIALER_DIALER_H
#define IMPACT_DIALER_DIALER_H

#include <stdint.h>

#include "common/config.h"

#define DIALER_SERVICE_PREFIX "dialer:" /* broker service and process name: "dialer:<campaign id>" */

/** The dialer process's main: 0 when the campaign stopped or SIGTERM came, 1 on failure. */
int dialer_main(const impact_config_t *config, int64_t campaign_id);

#endif
