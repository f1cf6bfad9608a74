/*
 * GET /v1/openapi.json: the API description. schemas/openapi.yaml is converted to JSON when the
 * binary is built (schemas/openapi_to_json.py, run by http/CMakeLists.txt), so the description
 * served is the one the binary was built with and nothing is read at run time. Public: a client
 * needs it before it has credentials.
 */
#include <string.h>

#include "http/problem.h"
#include "http/server.h"

/* Defined by the generated openapi_json.c. */
extern const char http_openapi_json[];
extern const size_t http_openapi_json_len;
extern const char http_openapi_etag[];

/* Whether an If-None-Match value ("*" or a list of entity tags, compared weakly: RFC 9110
 * 13.1.2) names `etag`. A malformed list matches nothing, which only costs a full answer. */
static int s_etag_matches(h2o_iovec_t value, const char *etag)
{
    size_t etag_len = strlen(etag);
    const char *p = value.base, *end = value.base + value.len;
    for (;;) {
        while (p < end && (*p == ' ' || *p == '\t' || *p == ','))
            p++;
        if (p == end)
            return 0;
        if (*p == '*')
            return 1;
        if (end - p >= 2 && p[0] == 'W' && p[1] == '/')
            p += 2;
        if (p == end || *p != '"')
            return 0;
        const char *tag = p;
        const char *close = memchr(p + 1, '"', (size_t)(end - p - 1));
        if (close == NULL)
            return 0;
        p = close + 1;
        if ((size_t)(p - tag) == etag_len && memcmp(tag, etag, etag_len) == 0)
            return 1;
    }
}

static int on_req(h2o_handler_t *self, h2o_req_t *req)
{
    static h2o_generator_t generator = {NULL, NULL};
    /* The path matches "/v1/openapi.json" and everything below it; only the exact path exists. */
    if (!h2o_memis(req->path_normalized.base, req->path_normalized.len, H2O_STRLIT("/v1/openapi.json"))) {
        http_problem_send(req, 404, "not-found", "Not Found", "no such resource");
        return 0;
    }
    int head = h2o_memis(req->method.base, req->method.len, H2O_STRLIT("HEAD"));
    if (!head && !h2o_memis(req->method.base, req->method.len, H2O_STRLIT("GET"))) {
        h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_ALLOW, NULL, H2O_STRLIT("GET, HEAD"));
        http_problem_send(req, 405, "method-not-allowed", "Method Not Allowed", "the API description is read-only");
        return 0;
    }
    int not_modified = 0;
    for (ssize_t i = -1; !not_modified && (i = h2o_find_header(&req->headers, H2O_TOKEN_IF_NONE_MATCH, i)) != -1;)
        not_modified = s_etag_matches(req->headers.entries[i].value, http_openapi_etag);

    http_response_init(req, not_modified ? 304 : 200);
    h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_ETAG, NULL, http_openapi_etag, strlen(http_openapi_etag));
    /* It changes only with a new build: caches may keep it a while, then revalidate by ETag. */
    h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_CACHE_CONTROL, NULL, H2O_STRLIT("public, max-age=300"));
    if (not_modified) {
        h2o_send_inline(req, "", 0);
        return 0;
    }
    h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_CONTENT_TYPE, NULL, H2O_STRLIT("application/json"));
    req->res.content_length = http_openapi_json_len;
    h2o_start_response(req, &generator);
    /* Static bytes: h2o writes straight from them. */
    h2o_iovec_t body = h2o_iovec_init(http_openapi_json, http_openapi_json_len);
    h2o_send(req, head ? NULL : &body, head ? 0 : 1, H2O_SEND_STATE_FINAL);
    return 0;
}

void http_openapi_register(h2o_pathconf_t *pathconf)
{
    h2o_handler_t *handler = h2o_create_handler(pathconf, sizeof(*handler));
    handler->on_req = on_req;
}
