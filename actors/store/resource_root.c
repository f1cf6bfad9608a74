#include "actors/store/resources.h"

#include <stdio.h>

static json_t *s_link(const api_request_t *req, const char *name, const char *path)
{
    char uri[512];
    snprintf(uri, sizeof(uri), "%s%s", req->base_url, path);
    return json_pack("{s:s, s:s}", "name", name, "uri", uri);
}

void resource_root(const route_ctx_t *ctx, const auth_account_t *account, const api_request_t *req, api_reply_t *reply)
{
    char uri[512];
    snprintf(uri, sizeof(uri), "%s/v1", req->base_url);
    json_t *root = json_pack("{s:s, s:s, s:s, s:{s:I, s:s}, s:[], s:[o]}", "uri", uri, "name", "Impact Dialing API", "version",
                             IMPACT_VERSION, "account", "id", (json_int_t)account->account_id, "name", account->account_name,
                             "actions", "resources", s_link(req, "health", "/v1/health"));
    if (root == NULL || api_reply_json(reply, 200, root) != 0)
        api_reply_problem(reply, req, 500, "internal", "Internal error", NULL);
}
