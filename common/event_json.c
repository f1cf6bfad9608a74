#include "common/event_json.h"

#include <stdio.h>
#include <string.h>

#define EVENT_JSON_PATH_LEN 64

static void s_link(json_writer_t *w, const char *base_url, const char *name, const char *path)
{
    char uri[1024];
    snprintf(uri, sizeof(uri), "%s%s", base_url, path);
    json_writer_object_begin(w);
    json_writer_kv_string(w, "name", name);
    json_writer_kv_string(w, "uri", uri);
    json_writer_object_end(w);
}

static void s_raw_or_null(json_writer_t *w, const char *key, const char *raw, size_t len)
{
    json_writer_key(w, key);
    if (raw == NULL)
        json_writer_null(w);
    else
        json_writer_raw(w, raw, len);
}

void event_json_render(json_writer_t *w, const char *base_url, const event_fields_t *e)
{
    char path[EVENT_JSON_PATH_LEN], uri[1024];
    snprintf(path, sizeof(path), "/v1/events/%s", e->id);
    snprintf(uri, sizeof(uri), "%s%s", base_url, path);
    json_writer_object_begin(w);
    json_writer_kv_string(w, "uri", uri);
    json_writer_kv_string(w, "name", e->type);
    s_raw_or_null(w, "id", e->id, strlen(e->id));
    json_writer_kv_string(w, "type", e->type);
    json_writer_kv_string(w, "occurred_at", e->occurred_at);
    json_writer_kv_string(w, "created_at", e->created_at);
    s_raw_or_null(w, "campaign_id", e->campaign_id, e->campaign_id ? strlen(e->campaign_id) : 0);
    s_raw_or_null(w, "caller_id", e->caller_id, e->caller_id ? strlen(e->caller_id) : 0);
    s_raw_or_null(w, "data", e->payload, e->payload_len);
    json_writer_key(w, "actions");
    json_writer_array_begin(w);
    json_writer_array_end(w);
    json_writer_key(w, "resources");
    json_writer_array_begin(w);
    if (e->campaign_id) {
        snprintf(path, sizeof(path), "/v1/campaigns/%s", e->campaign_id);
        s_link(w, base_url, "campaign", path);
        snprintf(path, sizeof(path), "/v1/events?campaign_id=%s", e->campaign_id);
        s_link(w, base_url, "campaign_events", path);
    }
    json_writer_array_end(w);
    json_writer_object_end(w);
}
