#include "actors/store/routes.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "actors/store/idempotency.h"
#include "actors/store/resource.h"
#include "actors/store/resources.h"

#define SEGMENTS_MAX 12

typedef enum { MATCH_COLLECTION, MATCH_ITEM, MATCH_ACTION, MATCH_COLLECTION_ACTION, MATCH_CREATE_ALIAS } match_kind_t;

typedef struct {
    const resource_def_t *def;
    match_kind_t kind;
    const action_def_t *action; /* NULL for the generic restore */
    int64_t ids[RESOURCE_DEPTH_MAX + 1];
    int id_count;
} match_t;

static void s_unauthorized(const api_request_t *req, api_reply_t *reply, const char *detail)
{
    api_reply_problem(reply, req, 401, "unauthorized", "Authentication required", detail);
    api_reply_header(reply, "WWW-Authenticate", "Basic realm=\"impactd\"");
}

/* Ids are positive decimal integers without sign or leading zeros; anything else is no id. */
static bool s_parse_id(const char *s, size_t len, int64_t *out)
{
    if (len == 0 || len > 18 || s[0] == '0')
        return false;
    int64_t v = 0;
    for (size_t i = 0; i < len; i++) {
        if (s[i] < '0' || s[i] > '9')
            return false;
        v = v * 10 + (s[i] - '0');
    }
    *out = v;
    return true;
}

typedef struct {
    const char *ptr;
    size_t len;
} segment_t;

static bool s_segment_is(segment_t s, const char *text)
{
    return strlen(text) == s.len && memcmp(s.ptr, text, s.len) == 0;
}

/* Matches segments (after /v1) against def's chain: coll/{id}/coll/{id}/.../coll[/{id}[/action]]. */
static bool s_match_def(const resource_def_t *def, const segment_t *seg, int nseg, match_t *m)
{
    const resource_def_t *chain[RESOURCE_DEPTH_MAX + 1];
    int depth = resource_depth(def);
    const resource_def_t *d = def;
    for (int i = depth; i >= 0; i--, d = d->parent)
        chain[i] = d;
    int base = 2 * depth + 1; /* segments of the collection path */
    if (nseg < base || nseg > base + 2)
        return false;
    for (int i = 0; i <= depth; i++) {
        if (!s_segment_is(seg[2 * i], chain[i]->collection))
            return false;
        if (i < depth && !s_parse_id(seg[2 * i + 1].ptr, seg[2 * i + 1].len, &m->ids[i]))
            return false;
    }
    m->def = def;
    m->id_count = depth;
    m->action = NULL;
    if (nseg == base) {
        m->kind = MATCH_COLLECTION;
        return true;
    }
    if (!s_parse_id(seg[base].ptr, seg[base].len, &m->ids[depth])) {
        for (size_t i = 0; nseg == base + 1 && i < def->collection_action_count; i++) {
            if (s_segment_is(seg[base], def->collection_actions[i].name)) {
                m->kind = MATCH_COLLECTION_ACTION;
                m->action = &def->collection_actions[i];
                return true;
            }
        }
        return false;
    }
    m->id_count = depth + 1;
    if (nseg == base + 1) {
        m->kind = MATCH_ITEM;
        return true;
    }
    m->kind = MATCH_ACTION;
    if (def->archivable && s_segment_is(seg[base + 1], "restore"))
        return true;
    for (size_t i = 0; i < def->action_count; i++) {
        if (s_segment_is(seg[base + 1], def->actions[i].name)) {
            m->action = &def->actions[i];
            return true;
        }
    }
    return false;
}

static bool s_match(const char *path, size_t len, match_t *m)
{
    static const char prefix[] = "/v1/";
    if (len < sizeof(prefix) || strncmp(path, prefix, sizeof(prefix) - 1) != 0)
        return false;
    segment_t seg[SEGMENTS_MAX];
    int nseg = 0;
    const char *p = path + sizeof(prefix) - 1, *end = path + len;
    while (p < end) {
        const char *slash = memchr(p, '/', (size_t)(end - p));
        const char *seg_end = slash ? slash : end;
        if (seg_end == p || nseg == SEGMENTS_MAX)
            return false;
        seg[nseg++] = (segment_t){p, (size_t)(seg_end - p)};
        p = seg_end + 1;
    }
    for (const resource_def_t *const *d = resource_defs; *d; d++) {
        if (s_match_def(*d, seg, nseg, m))
            return true;
        if (nseg == 1 && (*d)->create_alias && s_segment_is(seg[0], (*d)->create_alias)) {
            *m = (match_t){.def = *d, .kind = MATCH_CREATE_ALIAS};
            return true;
        }
    }
    return false;
}

static bool s_method_is(const api_request_t *req, const char *method)
{
    return strcmp(req->method, method) == 0 || (strcmp(method, "GET") == 0 && strcmp(req->method, "HEAD") == 0);
}

static void s_not_allowed(const api_request_t *req, api_reply_t *reply, const char *allow)
{
    api_reply_problem(reply, req, 405, "method-not-allowed", "Method not allowed", NULL);
    api_reply_header(reply, "Allow", allow);
}

static void s_dispatch_resource(resource_call_t *call, const match_t *m)
{
    const api_request_t *req = call->req;
    switch (m->kind) {
    case MATCH_COLLECTION:
        if (s_method_is(req, "GET"))
            m->def->list ? m->def->list(call) : resource_list(call);
        else if (m->def->read_only)
            s_not_allowed(req, call->reply, "GET, HEAD");
        else if (s_method_is(req, "POST") && m->def->create)
            m->def->create(call);
        else if (s_method_is(req, "POST"))
            resource_create(call);
        else
            s_not_allowed(req, call->reply, "GET, HEAD, POST");
        return;
    case MATCH_CREATE_ALIAS:
        if (s_method_is(req, "POST"))
            m->def->create ? m->def->create(call) : resource_create(call);
        else
            s_not_allowed(req, call->reply, "POST");
        return;
    case MATCH_ITEM:
        if (s_method_is(req, "GET"))
            m->def->read ? m->def->read(call) : resource_read(call);
        else if (m->def->read_only || m->def->append_only)
            s_not_allowed(req, call->reply, "GET, HEAD");
        else if (!m->def->no_update && (s_method_is(req, "PATCH") || s_method_is(req, "PUT")))
            resource_update(call);
        else if (s_method_is(req, "DELETE"))
            resource_delete(call);
        else
            s_not_allowed(req, call->reply, m->def->no_update ? "GET, HEAD, DELETE" : "GET, HEAD, PATCH, PUT, DELETE");
        return;
    case MATCH_COLLECTION_ACTION:
    case MATCH_ACTION: {
        const char *method = m->action ? m->action->method : "POST";
        if (!s_method_is(req, method))
            s_not_allowed(req, call->reply, strcmp(method, "GET") == 0 ? "GET, HEAD" : method);
        else if (m->action)
            m->action->handler(call);
        else
            resource_restore(call);
        return;
    }
    }
}

typedef struct {
    resource_call_t *call;
    const match_t *match;
} dispatch_t;

static void s_dispatch(void *arg)
{
    dispatch_t *d = arg;
    s_dispatch_resource(d->call, d->match);
}

static bool s_key_valid(const char *key)
{
    size_t len = strlen(key);
    for (size_t i = 0; i < len; i++)
        if (key[i] < 0x21 || key[i] > 0x7e)
            return false;
    return len >= 1 && len <= IDEMPOTENCY_KEY_MAX;
}

/* POST /v1/caller_sessions (a trailing slash names the same): a caller logging in has no API key. */
static bool s_is_caller_login(const api_request_t *req)
{
    static const char path[] = "/v1/caller_sessions";
    size_t n = strlen(req->path);
    if (n == sizeof(path) && req->path[n - 1] == '/')
        n--;
    return s_method_is(req, "POST") && n == sizeof(path) - 1 && strncmp(req->path, path, n) == 0;
}

/* /v1/caller_session, and its heartbeat, logout and events: the caller's own session,
 * authenticated by its token. The action ("" for the session itself), or NULL. */
static const char *s_caller_session_action(const api_request_t *req)
{
    static const char base[] = "/v1/caller_session";
    static const char *const actions[] = {"", "heartbeat", "logout", "events"};
    size_t n = strlen(req->path);
    if (n > 1 && req->path[n - 1] == '/')
        n--;
    if (n < sizeof(base) - 1 || strncmp(req->path, base, sizeof(base) - 1) != 0)
        return NULL;
    const char *rest = req->path + sizeof(base) - 1;
    size_t rest_len = n - (sizeof(base) - 1);
    for (size_t i = 0; i < sizeof(actions) / sizeof(actions[0]); i++) {
        size_t a = strlen(actions[i]);
        if (a == 0 ? rest_len == 0 : rest_len == a + 1 && rest[0] == '/' && strncmp(rest + 1, actions[i], a) == 0)
            return actions[i];
    }
    return NULL;
}

void routes_dispatch(const route_ctx_t *ctx, const api_request_t *req, api_reply_t *reply)
{
    if (s_is_caller_login(req)) {
        caller_sessions_login(ctx, req, reply);
        return;
    }
    const char *session_action = s_caller_session_action(req);
    if (session_action) {
        caller_session_serve(ctx, req, reply, session_action);
        return;
    }
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
    if (path_len == 3 && strncmp(req->path, "/v1", 3) == 0) {
        if (s_method_is(req, "GET"))
            resource_root(ctx, &account, req, reply);
        else
            s_not_allowed(req, reply, "GET, HEAD");
        return;
    }
    match_t m;
    if (!s_match(req->path, path_len, &m)) {
        api_reply_problem(reply, req, 404, "not-found", "Not found", "No resource at this path.");
        return;
    }
    route_ctx_t request_ctx = *ctx;
    resource_call_t call = {
        .route = &request_ctx, .account = &account, .req = req, .reply = reply, .def = m.def, .id_count = m.id_count};
    memcpy(call.ids, m.ids, sizeof(call.ids));
    dispatch_t dispatch = {&call, &m};
    bool keyed_method = strcmp(req->method, "POST") == 0 || strcmp(req->method, "PATCH") == 0;
    if (!keyed_method || msg_pairs_get(&req->msg.headers, "idempotency-key").ptr == NULL) {
        s_dispatch(&dispatch);
        return;
    }
    char key[IDEMPOTENCY_KEY_MAX + 2];
    if (api_header(req, "idempotency-key", key, sizeof(key)) != 0 || !s_key_valid(key)) {
        api_reply_problem(reply, req, 400, "bad-request", "Bad Idempotency-Key",
                          "An Idempotency-Key is 1 to 255 visible ASCII characters.");
        return;
    }
    idempotency_run(&request_ctx, &account, req, reply, key, s_dispatch, &dispatch);
}

/* The path pattern of a def, with ancestors' ids named {<singular>_id}. */
static void s_pattern(const resource_def_t *def, char *out, size_t size)
{
    const resource_def_t *chain[RESOURCE_DEPTH_MAX + 1];
    int depth = resource_depth(def);
    const resource_def_t *d = def;
    for (int i = depth; i >= 0; i--, d = d->parent)
        chain[i] = d;
    int n = snprintf(out, size, "/v1");
    for (int i = 0; i <= depth && n > 0 && (size_t)n < size; i++) {
        if (i < depth)
            n += snprintf(out + n, size - (size_t)n, "/%s/{%s_id}", chain[i]->collection, chain[i]->singular);
        else
            n += snprintf(out + n, size - (size_t)n, "/%s", chain[i]->collection);
    }
}

void routes_describe(routes_describe_fn *fn, void *arg)
{
    char collection[256], path[320];
    fn(arg, "GET", "/v1");
    for (const resource_def_t *const *d = resource_defs; *d; d++) {
        const resource_def_t *def = *d;
        s_pattern(def, collection, sizeof(collection));
        fn(arg, "GET", collection);
        if (!def->read_only)
            fn(arg, "POST", collection);
        for (size_t i = 0; i < def->collection_action_count; i++) {
            snprintf(path, sizeof(path), "%s/%s", collection, def->collection_actions[i].name);
            fn(arg, def->collection_actions[i].method, path);
        }
        if (def->create_alias) {
            snprintf(path, sizeof(path), "/v1/%s", def->create_alias);
            fn(arg, "POST", path);
        }
        snprintf(path, sizeof(path), "%s/{id}", collection);
        fn(arg, "GET", path);
        if (!def->no_update && !def->read_only && !def->append_only) {
            fn(arg, "PATCH", path);
            fn(arg, "PUT", path);
        }
        if (!def->read_only && !def->append_only)
            fn(arg, "DELETE", path);
        if (def->archivable) {
            snprintf(path, sizeof(path), "%s/{id}/restore", collection);
            fn(arg, "POST", path);
        }
        for (size_t i = 0; i < def->action_count; i++) {
            snprintf(path, sizeof(path), "%s/{id}/%s", collection, def->actions[i].name);
            fn(arg, def->actions[i].method, path);
        }
    }
}
