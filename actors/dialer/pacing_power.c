#include "actors/dialer/pacing.h"

#include <stdlib.h>

/* Power dialing keeps exactly one line in flight per caller on hold. An answered call always
 * finds the caller it was dialed for, so Power cannot abandon (unless a caller walks away
 * while their line rings). */

static int power_lines(pacing_policy_t *self, const pacing_view_t *view, pacing_reason_t reason)
{
    return (int)view->ready - (int)view->n_unresolved - (int)view->waiting;
}

static void power_destroy(pacing_policy_t **self_p)
{
    free(*self_p);
    *self_p = NULL;
}

static const pacing_ops_t power_ops = {.name = "power", .lines = power_lines, .destroy = power_destroy};

pacing_policy_t *pacing_power_new(void)
{
    pacing_policy_t *self = calloc(1, sizeof *self);
    if (self)
        self->ops = &power_ops;
    return self;
}
