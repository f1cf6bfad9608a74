#include "actors/api/api.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "common/log.h"
#include "common/urlform.h"
#include "common/problem.h"

int api_request_decode(api_request_t *req, const void *data, size_t size, char *err, size_t errlen)
{
    memset(req, 0, sizeof(*req));
    if (msg_api_request_decode(data, size, &req->msg, err, errlen) != 0)
        return -1;
    if (msg_str_copy(req->msg.method, req->method, sizeof(req->method)) != 0 ||
        msg_str_copy(req->msg.path, req->path, sizeof(req->path)) != 0 ||
        msg_str_copy(req->msg.request_id, req->request_id, sizeof(req->request_id)) != 0 ||
        (req->msg.has_base_url && msg_str_copy(req->msg.base_url, req->base_url, sizeof(req->base_url)) != 0)) {
        snprintf(err, errlen, "request line fields too long");
        return -1;
    }
    return 0;
}

int api_header(const api_request_t *req, const char *name, char *out, size_t size)
{
    msg_str_t v = msg_pairs_get(&req->msg.headers, name);
    if (v.ptr == NULL)
        return -1;
    return msg_str_copy(v, out, size);
}

int api_param(const api_request_t *req, const char *name, char *out, size_t size)
{
    if (req->msg.has_query && urlform_param(req->msg.query.ptr, req->msg.query.len, name, out, size) == 0)
        return 0;
    msg_str_t type = msg_pairs_get(&req->msg.headers, "content-type");
    static const char form[] = "application/x-www-form-urlencoded";
    if (req->msg.has_body && type.ptr && type.len >= sizeof(form) - 1 && strncasecmp(type.ptr, form, sizeof(form) - 1) == 0)
        return urlform_param(req->msg.body.ptr, req->msg.body.len, name, out, size);
    return -1;
}

void api_reply_init(api_reply_t *reply)
{
    /* Not a memset: the header table is tens of kilobytes and only header_count of it is ever
     * read, which made clearing it a visible share of every request. */
    reply->status = 0;
    reply->content_type = NULL;
    reply->body = NULL;
    reply->body_len = 0;
    reply->header_count = 0;
}

void api_reply_reset(api_reply_t *reply)
{
    free(reply->body);
    api_reply_init(reply);
}

int api_reply_json(api_reply_t *reply, int status, json_t *body)
{
    free(reply->body);
    reply->body = body ? json_dumps(body, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;
    json_decref(body);
    if (reply->body == NULL)
        return -1;
    reply->body_len = strlen(reply->body);
    reply->status = status;
    reply->content_type = "application/json";
    return 0;
}

int api_reply_take(api_reply_t *reply, int status, const char *content_type, char *body, size_t len)
{
    free(reply->body);
    reply->body = body;
    reply->body_len = body ? len : 0;
    reply->status = status;
    reply->content_type = content_type;
    return body ? 0 : -1;
}

int api_reply_problem(api_reply_t *reply, const api_request_t *req, int status, const char *slug, const char *title,
                      const char *detail)
{
    json_t *p = problem_new(status, slug, title, detail, req ? req->path : NULL);
    if (p == NULL)
        return -1;
    if (req && req->request_id[0])
        json_object_set_new(p, "request_id", json_string(req->request_id));
    int rc = api_reply_json(reply, status, p);
    reply->content_type = PROBLEM_CONTENT_TYPE;
    return rc;
}

int api_reply_problem_object(api_reply_t *reply, const api_request_t *req, json_t *problem)
{
    if (problem == NULL)
        return -1;
    if (req && req->request_id[0])
        json_object_set_new(problem, "request_id", json_string(req->request_id));
    int status = (int)json_integer_value(json_object_get(problem, "status"));
    int rc = api_reply_json(reply, status, problem);
    reply->content_type = PROBLEM_CONTENT_TYPE;
    return rc;
}

int api_reply_header(api_reply_t *reply, const char *name, const char *value)
{
    if (reply->header_count >= API_REPLY_HEADERS || strlen(name) >= sizeof(reply->header_name[0]) ||
        strlen(value) >= sizeof(reply->header_value[0]))
        return -1;
    snprintf(reply->header_name[reply->header_count], sizeof(reply->header_name[0]), "%s", name);
    snprintf(reply->header_value[reply->header_count], sizeof(reply->header_value[0]), "%s", value);
    reply->header_count++;
    return 0;
}

int api_reply_encode(const api_reply_t *reply, msgpack_sbuffer *out)
{
    msg_api_response_t m = {0};
    m.status = (uint64_t)reply->status;
    if (reply->content_type) {
        m.content_type = msg_str(reply->content_type);
        m.has_content_type = true;
    }
    for (int i = 0; i < reply->header_count; i++)
        msg_pairs_add(&m.headers, msg_str(reply->header_name[i]), msg_str(reply->header_value[i]));
    m.has_headers = reply->header_count > 0;
    if (reply->body) {
        m.body = (msg_str_t){reply->body, (uint32_t)reply->body_len};
        m.has_body = true;
    }
    return msg_api_response_encode(&m, out);
}

void api_serve(brk_worker_t *worker, brk_request_t **request_p, api_handler_fn *handler, void *ctx)
{
    brk_request_t *request = *request_p;
    api_request_t req;
    api_reply_t reply;
    char err[256], log_ctx[80];
    msgpack_sbuffer out;

    api_reply_init(&reply);
    msgpack_sbuffer_init(&out);
    if (api_request_decode(&req, zframe_data(request->body), zframe_size(request->body), err, sizeof(err)) != 0) {
        log_warn("undecodable request: %s", err);
        brk_worker_reply(worker, request_p, BRK_STATUS_ACTOR_ERROR, NULL, 0);
        goto Exit;
    }
    handler(ctx, &req, &reply);
    log_level_t level = reply.status >= 500 ? LOG_LEVEL_WARN : LOG_LEVEL_DEBUG;
    if (log_enabled(level)) {
        snprintf(log_ctx, sizeof(log_ctx), "req=%s", req.request_id);
        log_line(level, log_ctx, "%s %s -> %d", req.method, req.path, reply.status);
    }
    if (api_reply_encode(&reply, &out) != 0)
        brk_worker_reply(worker, request_p, BRK_STATUS_ACTOR_ERROR, NULL, 0);
    else
        brk_worker_reply(worker, request_p, BRK_STATUS_OK, out.data, out.size);
Exit:
    brk_request_destroy(request_p);
    msgpack_sbuffer_destroy(&out);
    api_reply_reset(&reply);
}
