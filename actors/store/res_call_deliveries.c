/*
 * GET /v1/calls/{id}/deliveries: the status callbacks of a call (to POST /v1/call's
 * `call_state_url`), one per event posted to it, with its state and every attempt, oldest first.
 * Read only: the fan-out process's deliverer makes and settles them (actors/fanout/webhooks.c).
 * A table-driven resource over the view call_deliveries (schemas/sql/0021) of the call_events
 * outbox; the attempts come from the call_event_deliveries view (0018), the same log the
 * deliverer writes.
 */
#include "actors/store/resource.h"

#define COUNT(a) (sizeof(a) / sizeof((a)[0]))

static const char *const s_types[] = {"call.dialing", "call.answered", "call.bridged", "call.ended", NULL};
static const char *const s_states[] = {"pending", "delivered", "failed", NULL};

static const field_def_t s_fields[] = {
    {.name = "type", .type = FIELD_ENUM, .flags = F_READONLY | F_FILTER, .choices = s_types, .doc = "The event's type"},
    {.name = "occurred_at", .type = FIELD_TIMESTAMP, .flags = F_READONLY, .doc = "When the call did what the event says"},
    {.name = "state",
     .type = FIELD_ENUM,
     .flags = F_READONLY | F_FILTER,
     .choices = s_states,
     .doc = "pending, delivered (answered 2xx) or failed (given up, or the receiver answered 410)"},
    RESOURCE_DELIVERY_FIELDS("call_event_deliveries a WHERE a.event_id = call_deliveries.id"),
};

const resource_def_t res_call_deliveries = {
    .collection = "deliveries",
    .singular = "call_delivery",
    .table = "call_deliveries",
    .parent = &res_calls,
    .parent_column = "call_id",
    .name_column = "type || ' ' || id",
    .fields = s_fields,
    .field_count = COUNT(s_fields),
    .read_only = true,
};
