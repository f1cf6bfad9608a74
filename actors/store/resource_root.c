#include "actors/store/resources.h"

#include <stdio.h>

#include "actors/store/resource.h"
#include "common/json_writer.h"

const resource_def_t *const resource_defs[] = {
    &res_campaigns,
    &res_messages,
    &res_scripts,
    &res_script_texts,
    &res_questions,
    &res_possible_responses,
    &res_notes,
    &res_transfers,
    &res_custom_fields,
    &res_caller_groups,
    &res_callers,
    &res_blocked_numbers,
    &res_lists,
    &res_list_import_errors,
    &res_numbers,
    &res_leads,
    &res_calls,
    &res_call_deliveries,
    &res_events,
    &res_webhook_secrets,
    &res_webhook_endpoints,
    &res_webhook_deliveries,
    &res_caller_sessions,
    NULL,
};

static void s_link(json_writer_t *w, const api_request_t *req, const char *name, const char *path)
{
    char uri[512];
    snprintf(uri, sizeof(uri), "%s%s", req->base_url, path);
    json_writer_object_begin(w);
    json_writer_kv_string(w, "name", name);
    json_writer_kv_string(w, "uri", uri);
    json_writer_object_end(w);
}

void resource_root(const route_ctx_t *ctx, const auth_account_t *account, const api_request_t *req, api_reply_t *reply)
{
    char uri[512];
    size_t len;
    json_writer_t w;
    snprintf(uri, sizeof(uri), "%s/v1", req->base_url);
    json_writer_init(&w);
    json_writer_object_begin(&w);
    json_writer_kv_string(&w, "uri", uri);
    json_writer_kv_string(&w, "name", "Impact Dialing API");
    json_writer_kv_string(&w, "version", IMPACT_VERSION);
    json_writer_key(&w, "account");
    json_writer_object_begin(&w);
    json_writer_kv_int(&w, "id", account->account_id);
    json_writer_kv_string(&w, "name", account->account_name);
    json_writer_object_end(&w);
    /* Limits, so clients size their requests from here rather than from errors. */
    json_writer_key(&w, "limits");
    json_writer_object_begin(&w);
    if (ctx->limits) {
        json_writer_kv_int(&w, "max_body_bytes", (int64_t)ctx->limits->max_body_bytes);
        json_writer_kv_int(&w, "requests_per_second", ctx->limits->rate_limit);
        json_writer_kv_int(&w, "request_burst", ctx->limits->rate_burst);
    }
    json_writer_kv_int(&w, "page_size_default", RESOURCE_PAGE_DEFAULT);
    json_writer_kv_int(&w, "page_size_max", RESOURCE_PAGE_MAX);
    json_writer_kv_int(&w, "bulk_numbers_max", BLOCKED_BULK_MAX);
    json_writer_kv_int(&w, "upload_parts_max", LIST_UPLOAD_PARTS_MAX);
    json_writer_object_end(&w);
    json_writer_key(&w, "actions");
    json_writer_array_begin(&w);
    json_writer_array_end(&w);
    json_writer_key(&w, "resources");
    json_writer_array_begin(&w);
    for (const resource_def_t *const *d = resource_defs; *d; d++) {
        if ((*d)->parent == NULL) {
            char path[128];
            snprintf(path, sizeof(path), "/v1/%s", (*d)->collection);
            s_link(&w, req, (*d)->collection, path);
        }
    }
    s_link(&w, req, "health", "/v1/health");
    s_link(&w, req, "openapi", "/v1/openapi.json");
    json_writer_array_end(&w);
    json_writer_object_end(&w);
    char *body = json_writer_finish(&w, &len);
    if (api_reply_take(reply, 200, "application/json", body, len) != 0)
        api_reply_problem(reply, req, 500, "internal", "Internal error", NULL);
}
