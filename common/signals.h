/*
 * Signal ownership for every impactd process.
 *
 * czmq installs its own SIGINT/SIGTERM handlers on first use unless told otherwise, and those
 * would swallow the supervisor's shutdown request; signals_install() turns that off before any
 * socket exists and installs one handler that only sets a flag (no SA_RESTART, so blocking calls
 * return EINTR and loops look at the flag). SIGPIPE is ignored: a peer closing a socket is an
 * error return, not a death.
 */
#ifndef IMPACT_COMMON_SIGNALS_H
#define IMPACT_COMMON_SIGNALS_H

#include <czmq.h>
#include <stdbool.h>

/** Installs the handlers and initialises czmq. Call first thing in main, before any thread starts. */
void signals_install(void);

/** True once SIGTERM or SIGINT arrived. */
bool signals_stop_requested(void);

/**
 * Runs a czmq actor in this process until SIGTERM/SIGINT (returns 0) or until the actor ends on
 * its own (returns 1, so the supervisor restarts the process). Returns 1 if it fails to start.
 */
int signals_run_actor(zactor_fn *actor, void *args);

#endif
