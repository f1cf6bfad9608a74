/*
 * The relay: every request under /v1 that no local handler takes becomes one msg_api_request
 * to the service its path maps to, and the actor's msg_api_response is written back verbatim.
 * The front end owns no API semantics (authentication included); it only enforces the sizes
 * the message schema allows and answers for the broker's failures.
 *
 * Paths are relayed raw (minus the query), exactly as the client sent them, and routed on that
 * same raw form, so the route decision and what the actor sees can never disagree. Paths with
 * dot segments are refused rather than normalised: h2o's normalisation also percent-decodes
 * (%2F becomes a separator), which would change what an API path means.
 *
 * The one change made to a response is the browser view (html.h): a JSON answer to a client that
 * prefers text/html is written as an HTML page, so actors never deal with HTML.
 *
 * Rate limiting (ratelimit.h) happens here, the last step before relaying, so a refused request
 * costs no hop and only requests that would reach an actor are counted. The credentials it keys
 * on are read from the very header list the actor receives.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "actors/dialer/dialer.h"
#include "common/log.h"
#include "common/urlform.h"
#include "http/bridge.h"
#include "http/html.h"
#include "http/problem.h"
#include "http/ratelimit.h"
#include "http/server.h"
#include "schemas/msg.h"

/* The schema's limits, taken from messages.def itself so the two cannot drift apart. */
#define HTTP_LIMIT_ENUM(num, name, type, limit, presence) HTTP_REQUEST_LIMIT_##name = (limit),
enum { MSG_API_REQUEST_FIELDS(HTTP_LIMIT_ENUM) };
#undef HTTP_LIMIT_ENUM

/*
 * Path prefix -> broker service. A prefix matches itself and everything below it ("/v1"
 * matches "/v1" and "/v1/x", not "/v1x"); the first match wins, so longer prefixes go first.
 */
typedef struct {
    const char *prefix;
    const char *service;
} http_route_t;

static const http_route_t s_routes[] = {
    {"/v1", "store"},
};

#define DESK_PREFIX "/v1/campaigns/"
#define DESK_INFIX  "/caller_sessions/"
#define SERVICE_MAX 48
/* Request headers an actor may need; everything else (hop-by-hop, proxies' headers) stays at
 * the edge. Cookies go through for the caller app's session cookie (HttpOnly, SameSite=Strict),
 * which the store reads and no actor sets otherwise. */
static const char *const s_forwarded_headers[] = {
    "content-type",    "accept",   "authorization", "api-key",       "api-auth",   "x-api-key", "x-api-auth",
    "idempotency-key", "if-match", "if-none-match", "last-event-id", "user-agent", "origin",    "cookie",
};

/* Response headers the actor may not set: h2o frames the message itself, and the request id is ours. */
static const char *const s_reserved_response_headers[] = {
    "content-length", "transfer-encoding", "connection", "keep-alive", "upgrade",      "te",
    "trailer",        "proxy-connection",  "date",       "server",     "x-request-id",
};

/*
 * A caller's desk, /v1/campaigns/{id}/caller_sessions/{session}[/...], is served by the campaign's
 * dialer, which owns the caller's live state (docs/adr/0006-caller-sessions.md): "dialer:{id}".
 * 1 with the service written, 0 when the path is not a desk's.
 */
static int s_desk_route(h2o_iovec_t path, char *service, size_t size)
{
    size_t prefix = sizeof(DESK_PREFIX) - 1, infix = sizeof(DESK_INFIX) - 1;
    if (path.len <= prefix || memcmp(path.base, DESK_PREFIX, prefix) != 0)
        return 0;
    size_t digits = 0;
    while (prefix + digits < path.len && digits < 19 && path.base[prefix + digits] >= '0' && path.base[prefix + digits] <= '9')
        digits++;
    size_t at = prefix + digits;
    if (digits == 0 || path.base[prefix] == '0' || path.len <= at + infix || memcmp(path.base + at, DESK_INFIX, infix) != 0)
        return 0;
    return snprintf(service, size, DIALER_SERVICE_PREFIX "%.*s", (int)digits, path.base + prefix) < (int)size;
}

static bool s_is_desk(h2o_req_t *req)
{
    char service[SERVICE_MAX];
    size_t len = req->query_at < req->path.len ? req->query_at : req->path.len;
    return s_desk_route(h2o_iovec_init(req->path.base, len), service, sizeof(service)) == 1;
}

/* The broker service for `path` into `service`: 0, or -1 when no service serves it. */
static int s_route(h2o_iovec_t path, char *service, size_t size)
{
    if (s_desk_route(path, service, size))
        return 0;
    for (size_t i = 0; i < sizeof(s_routes) / sizeof(s_routes[0]); i++) {
        size_t n = strlen(s_routes[i].prefix);
        if (path.len >= n && memcmp(path.base, s_routes[i].prefix, n) == 0 && (path.len == n || path.base[n] == '/'))
            return snprintf(service, size, "%s", s_routes[i].service) < (int)size ? 0 : -1;
    }
    return -1;
}

/* "." or ".." as a whole segment, also percent-encoded ("%2e", ".%2E", ...). */
static int s_is_dot_segment(const char *s, size_t len)
{
    size_t dots = 0;
    for (size_t i = 0; i < len;) {
        if (s[i] == '.') {
            i++;
        } else if (i + 2 < len && s[i] == '%' && s[i + 1] == '2' && (s[i + 2] == 'e' || s[i + 2] == 'E')) {
            i += 3;
        } else {
            return 0;
        }
        dots++;
    }
    return dots == 1 || dots == 2;
}

static int s_has_dot_segment(h2o_iovec_t path)
{
    size_t start = 0;
    for (size_t i = 0; i <= path.len; i++) {
        if (i == path.len || path.base[i] == '/') {
            if (i > start && s_is_dot_segment(path.base + start, i - start))
                return 1;
            start = i + 1;
        }
    }
    return 0;
}

static int s_is_forwarded(const h2o_iovec_t *name)
{
    for (size_t i = 0; i < sizeof(s_forwarded_headers) / sizeof(s_forwarded_headers[0]); i++)
        if (h2o_lcstris(name->base, name->len, s_forwarded_headers[i], strlen(s_forwarded_headers[i])))
            return 1;
    return 0;
}

static int s_is_reserved(const char *name, size_t len)
{
    for (size_t i = 0; i < sizeof(s_reserved_response_headers) / sizeof(s_reserved_response_headers[0]); i++)
        if (h2o_lcstris(name, len, s_reserved_response_headers[i], strlen(s_reserved_response_headers[i])))
            return 1;
    return 0;
}

/* RFC 9110 token characters. */
static int s_is_token(const char *s, size_t len)
{
    static const char extra[] = "!#$%&'*+-.^_`|~";
    if (len == 0)
        return 0;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || memchr(extra, c, sizeof(extra) - 1)))
            return 0;
    }
    return 1;
}

/* A field value without control characters (HTAB allowed): the actor is trusted, but a value it
 * copied from user input must not be able to split the response. */
static int s_is_field_value(const char *s, size_t len)
{
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if ((c < 0x20 && c != '\t') || c == 0x7f)
            return 0;
    }
    return 1;
}

/* "scheme://authority" for links the actor builds; left out when the authority looks odd. */
int http_base_url(h2o_req_t *req, char *buf, size_t size)
{
    h2o_iovec_t authority = req->authority;
    if (req->scheme == NULL || authority.len == 0 || authority.len > 200)
        return -1;
    for (size_t i = 0; i < authority.len; i++) {
        unsigned char c = (unsigned char)authority.base[i];
        if (c == '\0' ||
            !((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || strchr(".-_:[]~", c) != NULL))
            return -1;
    }
    int n =
        snprintf(buf, size, "%.*s://%.*s", (int)req->scheme->name.len, req->scheme->name.base, (int)authority.len, authority.base);
    return n > 0 && (size_t)n < size ? 0 : -1;
}

static void s_ctx(h2o_req_t *req, char *buf, size_t size)
{
    h2o_iovec_t id = http_request_id(req);
    snprintf(buf, size, "req=%.*s", (int)id.len, id.base);
}

/* The request's Accept header; several are one list (RFC 9110 5.3). base NULL when absent. */
static h2o_iovec_t s_accept(h2o_req_t *req)
{
    ssize_t first = h2o_find_header(&req->headers, H2O_TOKEN_ACCEPT, -1);
    if (first == -1)
        return h2o_iovec_init(NULL, 0);
    h2o_iovec_t accept = req->headers.entries[first].value;
    for (ssize_t i = h2o_find_header(&req->headers, H2O_TOKEN_ACCEPT, first); i != -1;
         i = h2o_find_header(&req->headers, H2O_TOKEN_ACCEPT, i))
        accept = h2o_concat(&req->pool, accept, h2o_iovec_init(H2O_STRLIT(", ")), req->headers.entries[i].value);
    return accept;
}

char *http_negotiate(h2o_req_t *req, h2o_iovec_t *body)
{
    ssize_t ct = h2o_find_header(&req->res.headers, H2O_TOKEN_CONTENT_TYPE, -1);
    if (ct == -1)
        return NULL;
    h2o_iovec_t type = req->res.headers.entries[ct].value;
    if (!html_is_renderable_type(type.base, type.len))
        return NULL;
    /* The representation now depends on Accept, whichever is chosen: caches must know. */
    h2o_set_header_token(&req->pool, &req->res.headers, H2O_TOKEN_VARY, H2O_STRLIT("accept"));
    h2o_iovec_t accept = s_accept(req);
    h2o_iovec_t query = req->query_at < req->path.len
                            ? h2o_iovec_init(req->path.base + req->query_at + 1, req->path.len - req->query_at - 1)
                            : h2o_iovec_init(NULL, 0);
    if (!html_wanted(accept.base, accept.len, query.base, query.len, type.base, type.len))
        return NULL;

    char origin[HTTP_REQUEST_LIMIT_base_url + 1], key[HTML_CREDENTIAL_MAX + 1], auth[HTML_CREDENTIAL_MAX + 1];
    size_t path_len = req->query_at < req->path.len ? req->query_at : req->path.len;
    html_page_t page = {
        .path = req->path.base, .path_len = path_len, .query = query.base, .query_len = query.len, .status = req->res.status};
    if (http_base_url(req, origin, sizeof(origin)) == 0)
        page.origin = origin;
    /* Only credentials from the query: those from headers or Basic are sent again by whoever
     * sent them, and those from a form body were never in the address bar. */
    if (urlform_param(query.base, query.len, "api_key", key, sizeof(key)) == 0 &&
        urlform_param(query.base, query.len, "api_auth", auth, sizeof(auth)) == 0) {
        page.api_key = key;
        page.api_auth = auth;
    }
    size_t len = 0;
    const char *why = NULL;
    char *html = html_render(body->base, body->len, &page, &len, &why);
    if (html == NULL) {
        char ctx[48];
        s_ctx(req, ctx, sizeof(ctx));
        log_line(LOG_LEVEL_DEBUG, ctx, "serving JSON to a client that prefers HTML: %s", why);
        return NULL;
    }
    *body = h2o_iovec_init(html, len);

    req->res.headers.entries[ct].value = h2o_iovec_init(H2O_STRLIT(HTML_CONTENT_TYPE));
    /* The actor's validator names the JSON representation and must not validate this one. */
    for (ssize_t etag; (etag = h2o_find_header(&req->res.headers, H2O_TOKEN_ETAG, -1)) != -1;)
        h2o_delete_header(&req->res.headers, etag);
    const char *csp = html_csp();
    h2o_set_header_by_str(&req->pool, &req->res.headers, H2O_STRLIT("content-security-policy"), 0, csp, strlen(csp), 1);
    h2o_set_header_by_str(&req->pool, &req->res.headers, H2O_STRLIT("x-content-type-options"), 0, H2O_STRLIT("nosniff"), 1);
    /* The address bar may hold api_auth: no Referer may carry it anywhere. */
    h2o_set_header_by_str(&req->pool, &req->res.headers, H2O_STRLIT("referrer-policy"), 0, H2O_STRLIT("no-referrer"), 1);
    return html;
}

static void s_send_response(h2o_req_t *req, const msg_api_response_t *res)
{
    http_response_init(req, (int)res->status);
    if (res->has_content_type && res->content_type.len > 0 && s_is_field_value(res->content_type.ptr, res->content_type.len)) {
        h2o_iovec_t v = h2o_strdup(&req->pool, res->content_type.ptr, res->content_type.len);
        h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_CONTENT_TYPE, NULL, v.base, v.len);
    }
    unsigned dropped = 0;
    for (uint32_t i = 0; res->has_headers && i < res->headers.count; i++) {
        msg_str_t name = res->headers.name[i], value = res->headers.value[i];
        if (!s_is_token(name.ptr, name.len) || !s_is_field_value(value.ptr, value.len) || s_is_reserved(name.ptr, name.len) ||
            (res->has_content_type && h2o_lcstris(name.ptr, name.len, H2O_STRLIT("content-type")))) {
            dropped++;
            continue;
        }
        /* HTTP/2 requires lower-case names, and h2o matches its tokens in lower case. */
        h2o_iovec_t n = h2o_strdup(&req->pool, name.ptr, name.len);
        h2o_strtolower(n.base, n.len);
        h2o_iovec_t v = h2o_strdup(&req->pool, value.len ? value.ptr : "", value.len);
        h2o_add_header_by_str(&req->pool, &req->res.headers, n.base, n.len, 1, NULL, v.base, v.len);
    }
    if (dropped != 0) {
        char ctx[48];
        s_ctx(req, ctx, sizeof(ctx));
        log_line(LOG_LEVEL_WARN, ctx, "dropped %u response headers from the actor (reserved or malformed)", dropped);
    }
    if (res->status == 204 || res->status == 304) {
        h2o_send_inline(req, "", 0);
        return;
    }
    h2o_iovec_t body = res->has_body && res->body.len ? h2o_iovec_init(res->body.ptr, res->body.len) : h2o_iovec_init("", 0);
    char *page = http_negotiate(req, &body);
    req->res.content_length = body.len;
    /* Copies the body into the pool: the reply frame is freed when the callback returns. */
    h2o_send_inline(req, body.base, body.len);
    free(page);
}

void http_api_on_reply(h2o_req_t *req, const http_reply_t *reply)
{
    char ctx[48];
    s_ctx(req, ctx, sizeof(ctx));
    switch (reply->kind) {
    case HTTP_REPLY_TIMEOUT:
        log_line(LOG_LEVEL_WARN, ctx, "corr=%016" PRIx64 " no reply within %" PRIu64 " ms", reply->corr,
                 http_thread_of(req)->settings->request_timeout_ms);
        http_problem_send(req, 504, "gateway-timeout", "Gateway Timeout", "the service did not answer in time");
        return;
    case HTTP_REPLY_SHUTDOWN:
        http_problem_send(req, 503, "shutting-down", "Service Unavailable", "the server is restarting");
        return;
    case HTTP_REPLY_BROKER:
        break;
    }

    switch (reply->status) {
    case BRK_STATUS_OK:
        break;
    case BRK_STATUS_NO_SERVICE:
        log_line(LOG_LEVEL_WARN, ctx, "no live actor for the request's service");
        if (s_is_desk(req))
            http_problem_send(req, 503, "campaign-not-dialing", "Campaign not dialing",
                              "the campaign's dialer is not running: the campaign must be running or paused");
        else
            http_problem_send(req, 503, "service-unavailable", "Service Unavailable", "no instance of the service is running");
        return;
    case BRK_STATUS_OVERLOADED:
        log_line(LOG_LEVEL_WARN, ctx, "the service is overloaded");
        http_problem_send(req, 503, "overloaded", "Service Unavailable", "the service is overloaded");
        return;
    case BRK_STATUS_BAD_FRAME:
    case BRK_STATUS_ACTOR_ERROR:
    default:
        log_line(LOG_LEVEL_ERROR, ctx, "broker status %d", (int)reply->status);
        http_problem_send(req, 502, "bad-gateway", "Bad Gateway", "the service failed to process the request");
        return;
    }

    msg_api_response_t res = {0};
    char err[160];
    if (msg_api_response_decode(reply->body, reply->size, &res, err, sizeof(err)) != 0) {
        log_line(LOG_LEVEL_ERROR, ctx, "undecodable reply: %s", err);
        http_problem_send(req, 502, "bad-gateway", "Bad Gateway", "the service sent an invalid reply");
        return;
    }
    if (res.status < 200 || res.status > 599) {
        log_line(LOG_LEVEL_ERROR, ctx, "reply with status %" PRIu64, res.status);
        http_problem_send(req, 502, "bad-gateway", "Bad Gateway", "the service sent an invalid reply");
        return;
    }
    s_send_response(req, &res);
}

/* Fills the whitelisted headers; -1 when there are too many or one is too long. */
static int s_collect_headers(h2o_req_t *req, msg_pairs_t *pairs)
{
    pairs->count = 0;
    for (size_t i = 0; i < req->headers.size; i++) {
        const h2o_header_t *h = &req->headers.entries[i];
        if (!s_is_forwarded(h->name))
            continue;
        if (h->value.len > MSG_PAIR_ITEM_MAX)
            return -1;
        msg_str_t name = {h->name->base, (uint32_t)h->name->len};
        msg_str_t value = {h->value.base, (uint32_t)h->value.len};
        if (msg_pairs_add(pairs, name, value) != 0)
            return -1;
    }
    return 0;
}

int http_api_collect(h2o_req_t *req, msg_api_request_t *m)
{
    if (s_collect_headers(req, &m->headers) != 0)
        return -1;
    m->has_headers = m->headers.count > 0;
    h2o_iovec_t query = req->query_at < req->path.len
                            ? h2o_iovec_init(req->path.base + req->query_at + 1, req->path.len - req->query_at - 1)
                            : h2o_iovec_init(NULL, 0);
    m->query = (msg_str_t){query.base, (uint32_t)query.len};
    m->has_query = query.base != NULL;
    return 0;
}

static http_rl_view_t s_rl_view(msg_str_t s)
{
    return (http_rl_view_t){s.ptr, s.len};
}

/* A decimal header value in the request's pool. */
static h2o_iovec_t s_decimal(h2o_mem_pool_t *pool, uint32_t v)
{
    char digits[10];
    size_t n = 0;
    do
        digits[n++] = (char)('0' + v % 10);
    while ((v /= 10) != 0);
    char *out = h2o_mem_alloc_pool(pool, n);
    for (size_t i = 0; i < n; i++)
        out[i] = digits[n - 1 - i];
    return h2o_iovec_init(out, n);
}

static void s_add_header(h2o_req_t *req, const char *name, size_t name_len, h2o_iovec_t value)
{
    h2o_add_header_by_str(&req->pool, &req->res.headers, name, name_len, 0, NULL, value.base, value.len);
}

/*
 * Charges the request to its client's bucket and adds the RateLimit headers, which go out with
 * whatever then answers the request. An empty bucket is answered here with 429.
 * @return 0 to relay, -1 when answered
 */
static int s_rate_limit(h2o_req_t *req, const msg_api_request_t *m)
{
    const http_settings_t *settings = http_thread_of(req)->settings;
    if (settings->ratelimit == NULL)
        return 0;
    http_rl_presented_t presented = {
        .api_key = s_rl_view(msg_pairs_get(&m->headers, "api-key")),
        .api_auth = s_rl_view(msg_pairs_get(&m->headers, "api-auth")),
        .x_api_key = s_rl_view(msg_pairs_get(&m->headers, "x-api-key")),
        .x_api_auth = s_rl_view(msg_pairs_get(&m->headers, "x-api-auth")),
        .authorization = s_rl_view(msg_pairs_get(&m->headers, "authorization")),
        .query = m->has_query ? s_rl_view(m->query) : (http_rl_view_t){NULL, 0},
    };
    http_rl_credential_t cred;
    bool keyed = http_rl_credentials(&presented, &cred) == 0;
    struct sockaddr_storage peer;
    socklen_t peer_len = req->conn->callbacks->get_peername(req->conn, (struct sockaddr *)&peer);
    http_rl_verdict_t v;
    http_rl_take(settings->ratelimit, keyed ? cred.key : NULL, keyed ? strlen(cred.key) : 0, keyed ? cred.secret : NULL,
                 keyed ? strlen(cred.secret) : 0, peer_len != 0 ? (struct sockaddr *)&peer : NULL, peer_len, &v);

    s_add_header(req, H2O_STRLIT("ratelimit-limit"), s_decimal(&req->pool, settings->ratelimit_burst));
    s_add_header(req, H2O_STRLIT("ratelimit-remaining"), s_decimal(&req->pool, v.remaining));
    s_add_header(req, H2O_STRLIT("ratelimit-reset"), s_decimal(&req->pool, v.reset_s));
    s_add_header(req, H2O_STRLIT("ratelimit-policy"),
                 h2o_iovec_init(settings->ratelimit_policy, strlen(settings->ratelimit_policy)));
    if (v.allowed)
        return 0;

    h2o_iovec_t retry = s_decimal(&req->pool, v.retry_after_s);
    h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_RETRY_AFTER, NULL, retry.base, retry.len);
    const char *per = v.by_address ? "client address" : "API key";
    char ctx[48], detail[160];
    s_ctx(req, ctx, sizeof(ctx));
    log_line(LOG_LEVEL_DEBUG, ctx, "rate limited per %s; retry after %" PRIu32 " s", per, v.retry_after_s);
    snprintf(detail, sizeof(detail), "the limit is %" PRIu32 " requests per second, in bursts of up to %" PRIu32 ", per %s",
             settings->ratelimit_rate, settings->ratelimit_burst, per);
    http_problem_send(req, 429, "rate-limited", "Too many requests", detail);
    return -1;
}

static int on_req(h2o_handler_t *self, h2o_req_t *req)
{
    size_t path_len = req->query_at < req->path.len ? req->query_at : req->path.len;
    h2o_iovec_t path = h2o_iovec_init(req->path.base, path_len);
    h2o_iovec_t query = req->query_at < req->path.len
                            ? h2o_iovec_init(req->path.base + req->query_at + 1, req->path.len - req->query_at - 1)
                            : h2o_iovec_init(NULL, 0);

    char service[SERVICE_MAX];
    if (s_route(path, service, sizeof(service)) != 0) {
        http_problem_send(req, 404, "not-found", "Not Found", "no such resource");
        return 0;
    }
    if (s_has_dot_segment(path)) {
        http_problem_send(req, 400, "bad-path", "Bad Request", "the path has dot segments");
        return 0;
    }
    if (req->method.len == 0 || req->method.len > HTTP_REQUEST_LIMIT_method) {
        http_problem_send(req, 501, "not-implemented", "Not Implemented", "unknown method");
        return 0;
    }
    if (path.len > HTTP_REQUEST_LIMIT_path || query.len > HTTP_REQUEST_LIMIT_query) {
        http_problem_send(req, 414, "uri-too-long", "URI Too Long", "the path or query string is too long");
        return 0;
    }
    if (req->entity.len > HTTP_REQUEST_LIMIT_body) {
        http_problem_send(req, 413, "payload-too-large", "Payload Too Large", "the request body is too large to relay");
        return 0;
    }

    msg_api_request_t m = {0};
    if (http_api_collect(req, &m) != 0) {
        http_problem_send(req, 431, "header-fields-too-large", "Request Header Fields Too Large",
                          "too many or too long request headers");
        return 0;
    }
    if (s_rate_limit(req, &m) != 0)
        return 0;
    int64_t campaign_id;
    if (http_stats_match(path, &campaign_id)) {
        http_stats_serve(req, campaign_id, &m);
        return 0;
    }
    if (h2o_memis(path.base, path.len, H2O_STRLIT("/v1/events/stream"))) {
        http_stream_serve(req, &m, 0);
        return 0;
    }
    if (h2o_memis(path.base, path.len, H2O_STRLIT("/v1/caller_session/events/stream"))) {
        http_stream_serve(req, &m, 1);
        return 0;
    }
    m.method = (msg_str_t){req->method.base, (uint32_t)req->method.len};
    m.path = (msg_str_t){path.base, (uint32_t)path.len};
    m.body = (msg_str_t){req->entity.base, (uint32_t)req->entity.len};
    m.has_body = req->entity.base != NULL;
    http_api_send(req, &m, http_api_on_reply);
    return 0;
}

/* m (request id and base URL set) as the message for the service its path routes to. 0, or -1
 * (EINVAL) when no service serves the path or the message cannot be encoded. */
static int s_encode(msg_api_request_t *m, char *service, size_t size, msgpack_sbuffer *sb)
{
    if (s_route(h2o_iovec_init(m->path.ptr, m->path.len), service, size) != 0 || msg_api_request_encode(m, sb) != 0) {
        errno = EINVAL;
        return -1;
    }
    return 0;
}

void http_api_refuse(h2o_req_t *req, int err)
{
    if (err == EINVAL)
        http_problem_send(req, 400, "bad-request", "Bad Request", "the request cannot be relayed");
    else if (err == EAGAIN || err == ENOSPC)
        http_problem_send(req, 503, "overloaded", "Service Unavailable", "too many requests in flight");
    else
        http_problem_send(req, 500, "internal-error", "Internal Server Error", "the request could not be relayed");
}

int http_api_send(h2o_req_t *req, msg_api_request_t *m, http_bridge_reply_cb cb)
{
    http_thread_t *thread = http_thread_of(req);
    char service[SERVICE_MAX], base_url[HTTP_REQUEST_LIMIT_base_url + 1];
    h2o_iovec_t id = http_request_id(req);
    m->request_id = (msg_str_t){id.base, (uint32_t)id.len};
    if (http_base_url(req, base_url, sizeof(base_url)) == 0) {
        m->base_url = msg_str(base_url);
        m->has_base_url = true;
    }
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    int rc = s_encode(m, service, sizeof(service), &sb), err = errno;
    if (rc == 0 && (rc = http_bridge_send(thread->bridge, req, service, sb.data, sb.size, cb)) != 0) {
        err = errno;
        char ctx[48];
        s_ctx(req, ctx, sizeof(ctx));
        log_line(LOG_LEVEL_WARN, ctx, "cannot relay to %s: %s", service, strerror(err));
    }
    msgpack_sbuffer_destroy(&sb);
    if (rc != 0)
        http_api_refuse(req, err);
    return rc;
}

http_bridge_call_t *http_api_call(http_thread_t *thread, msg_api_request_t *m, http_bridge_call_cb cb, void *arg)
{
    char service[SERVICE_MAX];
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    http_bridge_call_t *call = NULL;
    int err = 0;
    if (s_encode(m, service, sizeof(service), &sb) != 0) {
        err = errno;
    } else if ((call = http_bridge_call(thread->bridge, service, sb.data, sb.size, cb, arg)) == NULL) {
        err = errno;
        char ctx[48];
        snprintf(ctx, sizeof(ctx), "req=%.*s", (int)m->request_id.len, m->request_id.ptr);
        log_line(LOG_LEVEL_WARN, ctx, "cannot relay to %s: %s", service, strerror(err));
    }
    msgpack_sbuffer_destroy(&sb);
    errno = err;
    return call;
}

void http_api_register(h2o_pathconf_t *pathconf)
{
    h2o_handler_t *handler = h2o_create_handler(pathconf, sizeof(*handler));
    handler->on_req = on_req;
}
