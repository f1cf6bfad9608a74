/*
 * One event as a JSON document: the same rendering for the events API (actors/store/res_events.c)
 * and for what the fan-out process publishes to streams (actors/fanout/sequencer.c), so an event
 * read by a cursor and one received live are byte for byte the same document.
 */
#ifndef IMPACT_COMMON_EVENT_JSON_H
#define IMPACT_COMMON_EVENT_JSON_H

#include "common/json_writer.h"

/* Columns to select from events, in the order of event_fields_t, with times as the API shows them. */
#define EVENT_JSON_TS(col) "to_char(" col " AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"')"
#define EVENT_JSON_COLUMNS                                                                                                         \
    "id, type, " EVENT_JSON_TS("occurred_at") ", " EVENT_JSON_TS("created_at") ", campaign_id, caller_id, payload::text"

/* One row of EVENT_JSON_COLUMNS as text; campaign_id and caller_id NULL when the row's are. */
typedef struct {
    const char *id;
    const char *type;
    const char *occurred_at;
    const char *created_at;
    const char *campaign_id;
    const char *caller_id;
    const char *payload; /* JSON text, as PostgreSQL wrote it */
    size_t payload_len;
} event_fields_t;

/**
 * Writes the event as a resource: uri, name, id, type, occurred_at, created_at, campaign_id,
 * caller_id, data, actions, resources. Links are `base_url` followed by the path ("" gives
 * relative links).
 */
void event_json_render(json_writer_t *w, const char *base_url, const event_fields_t *e);

#endif
