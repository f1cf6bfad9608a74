/*
 * The store actor: a pool of processes (store.0 .. store.N-1) serving the "store" service. Each
 * holds one PostgreSQL connection and answers API requests for the hosted resources:
 * authentication, the root resource and (later) every admin resource.
 */
#ifndef IMPACT_STORE_STORE_H
#define IMPACT_STORE_STORE_H

#include <czmq.h>

#include "actors/store/routes.h"
#include "common/config.h"

typedef struct {
    const char *broker_endpoint; /* the broker's back socket */
    const char *database_url;
    int index;                    /* pool member number; the routing id is "store.<index>" */
    const route_limits_t *limits; /* announced in the root resource */
} store_config_t;

/** The actor function (zactor_new(store_actor, &config)); signals 0 when connected and registered. */
void store_actor(zsock_t *pipe, void *args);

/** The store process (impactd --role store --index N). */
int store_main(const impact_config_t *config, int index);

#endif
