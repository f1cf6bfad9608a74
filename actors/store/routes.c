#include "actors/store/routes.h"

#include <string.h>

#include "actors/store/resources.h"

typedef void route_fn(const route_ctx_t *ctx, const auth_account_t *account, const api_request_t *req, api_reply_t *reply);

typedef struct {
    const char *method;
    const char *path;
    route_fn *handler;
} route_t;

static const route_t s_routes[] = {
    {"GET", "/v1", resource_root},
};

static void s_unauthorized(const api_request_t *req, api_reply_t *reply, const char *detail)
{
    api_reply_problem(reply, req, 401, "unauthorized", "Authentication required", detail);
    api_reply_header(reply, "WWW-Authenticate", "Basic realm=\"impactd\"");
}

void routes_dispatch(const route_ctx_t *ctx, const api_request_t *req, api_reply_t *reply)
{
    auth_account_t account;
    switch (auth_check(ctx->auth, ctx->conn, req, &account)) {
    case AUTH_OK:
        break;
    case AUTH_MISSING:
        s_unauthorized(req, reply,
                       "Send api_key and api_auth as query or form parameters, as Api-Key and Api-Auth headers, or as "
                       "HTTP Basic credentials.");
        return;
    case AUTH_INVALID:
        s_unauthorized(req, reply, "The api_key and api_auth pair is not valid.");
        return;
    case AUTH_DB_ERROR:
        api_reply_problem(reply, req, 503, "unavailable", "Service unavailable", "The database could not be reached.");
        api_reply_header(reply, "Retry-After", "1");
        return;
    }

    /* A trailing slash names the same resource. */
    size_t path_len = strlen(req->path);
    if (path_len > 1 && req->path[path_len - 1] == '/')
        path_len--;
    bool path_known = false;
    for (size_t i = 0; i < sizeof(s_routes) / sizeof(s_routes[0]); i++) {
        const route_t *r = &s_routes[i];
        if (strlen(r->path) != path_len || strncmp(r->path, req->path, path_len) != 0)
            continue;
        path_known = true;
        if (strcmp(r->method, req->method) == 0 || (strcmp(req->method, "HEAD") == 0 && strcmp(r->method, "GET") == 0)) {
            r->handler(ctx, &account, req, reply);
            return;
        }
    }
    if (path_known)
        api_reply_problem(reply, req, 405, "method-not-allowed", "Method not allowed", NULL);
    else
        api_reply_problem(reply, req, 404, "not-found", "Not found", "No resource at this path.");
}
