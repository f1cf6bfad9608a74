/*
 * Status lines and problem documents written by the front end itself.
 *
 * Bodies are rendered with jansson into a malloc'd string and copied into the request's pool
 * before sending, so nothing outlives the request and nothing needs freeing afterwards.
 */
#include "http/problem.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/problem.h"
#include "http/server.h"

typedef struct {
    int status;
    const char *reason;
    const char *slug; /* for errors h2o raises on its own (fallback filter) */
} http_status_t;

static const http_status_t s_statuses[] = {
    {200, "OK", NULL},
    {201, "Created", NULL},
    {202, "Accepted", NULL},
    {204, "No Content", NULL},
    {301, "Moved Permanently", NULL},
    {302, "Found", NULL},
    {303, "See Other", NULL},
    {304, "Not Modified", NULL},
    {307, "Temporary Redirect", NULL},
    {308, "Permanent Redirect", NULL},
    {400, "Bad Request", "bad-request"},
    {401, "Unauthorized", "unauthorized"},
    {402, "Payment Required", "payment-required"},
    {403, "Forbidden", "forbidden"},
    {404, "Not Found", "not-found"},
    {405, "Method Not Allowed", "method-not-allowed"},
    {406, "Not Acceptable", "not-acceptable"},
    {408, "Request Timeout", "request-timeout"},
    {409, "Conflict", "conflict"},
    {410, "Gone", "gone"},
    {411, "Length Required", "length-required"},
    {412, "Precondition Failed", "precondition-failed"},
    {413, "Payload Too Large", "payload-too-large"},
    {414, "URI Too Long", "uri-too-long"},
    {415, "Unsupported Media Type", "unsupported-media-type"},
    {416, "Range Not Satisfiable", "range-not-satisfiable"},
    {417, "Expectation Failed", "expectation-failed"},
    {422, "Unprocessable Content", "unprocessable-content"},
    {428, "Precondition Required", "precondition-required"},
    {429, "Too Many Requests", "too-many-requests"},
    {431, "Request Header Fields Too Large", "header-fields-too-large"},
    {500, "Internal Server Error", "internal-error"},
    {501, "Not Implemented", "not-implemented"},
    {502, "Bad Gateway", "bad-gateway"},
    {503, "Service Unavailable", "service-unavailable"},
    {504, "Gateway Timeout", "gateway-timeout"},
};

static const http_status_t *s_status_find(int status)
{
    for (size_t i = 0; i < sizeof(s_statuses) / sizeof(s_statuses[0]); i++)
        if (s_statuses[i].status == status)
            return &s_statuses[i];
    return NULL;
}

const char *http_reason(int status)
{
    const http_status_t *s = s_status_find(status);
    return s ? s->reason : "Unknown";
}

void http_response_init(h2o_req_t *req, int status)
{
    h2o_iovec_t id = http_request_id(req);
    req->res.status = status;
    req->res.reason = http_reason(status);
    h2o_add_header_by_str(&req->pool, &req->res.headers, H2O_STRLIT("x-request-id"), 0, NULL, id.base, id.len);
}

/* The problem document for `req` in pool memory. `instance` is the path without the query: the
 * query may carry tokens that have no business in an error body that clients log. */
static h2o_iovec_t s_render(h2o_req_t *req, int status, const char *slug, const char *title, const char *detail)
{
    static const char fallback[] = "{\"type\":\"/problems/internal-error\",\"title\":\"Internal Server Error\",\"status\":500}";
    const char *instance = NULL;
    if (req->path.base != NULL) {
        size_t len = req->query_at < req->path.len ? req->query_at : req->path.len;
        instance = h2o_strdup(&req->pool, req->path.base, len).base;
    }
    h2o_iovec_t id = http_request_id(req);

    h2o_iovec_t out = h2o_iovec_init(fallback, sizeof(fallback) - 1);
    json_t *problem = problem_new(status, slug, title, detail, instance);
    if (problem == NULL)
        return out;
    json_object_set_new(problem, "request_id", json_stringn(id.base, id.len));
    size_t len = 0;
    char *text = problem_render(problem, &len);
    if (text != NULL)
        out = h2o_strdup(&req->pool, text, len);
    free(text);
    json_decref(problem);
    return out;
}

void http_problem_send(h2o_req_t *req, int status, const char *slug, const char *title, const char *detail)
{
    h2o_iovec_t body = s_render(req, status, slug, title, detail);
    http_response_init(req, status);
    h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_CONTENT_TYPE, NULL, H2O_STRLIT(PROBLEM_CONTENT_TYPE));
    h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_CACHE_CONTROL, NULL, H2O_STRLIT("no-store"));
    if (status == 503)
        h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_RETRY_AFTER, NULL, H2O_STRLIT("1"));
    req->res.content_length = body.len;
    h2o_send_inline(req, body.base, body.len);
}

/* ---- the fallback filter ------------------------------------------------------------------- */

typedef struct {
    h2o_ostream_t super;
    h2o_iovec_t body; /* in the request's pool */
} http_problem_ostream_t;

/* h2o's error path (h2o_send_error_generic -> h2o_send_inline) sends its text in one final call;
 * the document replaces it whole. A HEAD request arrives with no buffers and gets none. */
static void on_problem_send(h2o_ostream_t *_self, h2o_req_t *req, h2o_iovec_t *inbufs, size_t inbufcnt, h2o_send_state_t state)
{
    http_problem_ostream_t *self = (void *)_self;
    h2o_iovec_t body = self->body;
    self->body = h2o_iovec_init(NULL, 0);
    h2o_ostream_send_next(&self->super, req, &body, inbufcnt != 0 && body.len != 0 ? 1 : 0, state);
}

static void on_setup_ostream(h2o_filter_t *self, h2o_req_t *req, h2o_ostream_t **slot)
{
    if (req->res.status >= 400) {
        const http_status_t *s = s_status_find(req->res.status);
        const char *detail = NULL;
        char limit[96];
        if (req->res.status == 413) {
            snprintf(limit, sizeof(limit), "the request body exceeds the limit of %zu bytes",
                     req->conn->ctx->globalconf->max_request_entity_size);
            detail = limit;
        }
        h2o_iovec_t body = s_render(req, req->res.status, s ? s->slug : "http-error", s ? s->reason : "Error", detail);
        ssize_t ct = h2o_find_header(&req->res.headers, H2O_TOKEN_CONTENT_TYPE, -1);
        if (ct != -1)
            req->res.headers.entries[ct].value = h2o_iovec_init(H2O_STRLIT(PROBLEM_CONTENT_TYPE));
        else
            h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_CONTENT_TYPE, NULL, H2O_STRLIT(PROBLEM_CONTENT_TYPE));
        h2o_iovec_t id = http_request_id(req);
        h2o_add_header_by_str(&req->pool, &req->res.headers, H2O_STRLIT("x-request-id"), 0, NULL, id.base, id.len);
        req->res.content_length = body.len;

        http_problem_ostream_t *ostr = (void *)h2o_add_ostream(req, sizeof(*ostr), slot);
        ostr->super.do_send = on_problem_send;
        ostr->body = body;
        slot = &ostr->super.next;
    }
    h2o_setup_next_ostream(req, slot);
}

void http_problem_register_fallback(h2o_pathconf_t *fallback)
{
    h2o_filter_t *filter = h2o_create_filter(fallback, sizeof(*filter));
    filter->on_setup_ostream = on_setup_ostream;
}
