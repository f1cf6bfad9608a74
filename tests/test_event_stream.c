/*
 * GET /v1/events/stream against the real impactd (its fan-out publishing, its http process
 * subscribing) and PostgreSQL, read by libcurl as a Server-Sent Events client, several streams at
 * once on one multi handle, incrementally.
 *
 * Every check compares a stream with the events API (the database's record): the events a
 * stream delivers are exactly those the API lists for the same filter after its cursor, in id
 * order, each once, whatever happened between (a reconnect, a killed http process, a consumer
 * that stopped reading).
 */
#include <inttypes.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/types.h>

#include <cmocka.h>

#include "tests/dialing.h"
#include "tests/server.h"

#define SSE_MAX_EVENTS 20000
#define SSE_WAIT_S     120

typedef struct {
    CURL *easy;
    struct curl_slist *headers;
    char *raw; /* bytes not yet parsed into events */
    size_t raw_len, raw_cap;
    int64_t *ids;
    char (*types)[40];
    size_t n;
    bool retry_seen, overflow, done, paused;
    int64_t resume_after;
    long http_version;
    CURLcode result; /* once done */
} sse_t;

static test_dialing_t g;
static CURLM *g_multi;
static char g_other_key[256], g_other_auth[256];

/* Parses complete events (blank-line terminated) out of raw. */
static void s_parse(sse_t *s)
{
    char *start = s->raw, *end;
    while ((end = memmem(start, s->raw_len - (size_t)(start - s->raw), "\n\n", 2)) != NULL) {
        *end = '\0';
        int64_t id = -1;
        char type[40] = "";
        const char *data = NULL;
        for (char *line = start, *next; line && *line; line = next) {
            next = strchr(line, '\n');
            if (next)
                *next++ = '\0';
            if (strncmp(line, "retry: ", 7) == 0)
                s->retry_seen = true;
            else if (strncmp(line, "id: ", 4) == 0)
                id = strtoll(line + 4, NULL, 10);
            else if (strncmp(line, "event: ", 7) == 0)
                snprintf(type, sizeof(type), "%s", line + 7);
            else if (strncmp(line, "data: ", 6) == 0)
                data = line + 6;
        }
        if (strcmp(type, "overflow") == 0) {
            json_t *d = json_loads(data, 0, NULL);
            assert_non_null(d);
            s->overflow = true;
            s->resume_after = json_integer_value(json_object_get(d, "resume_after"));
            json_decref(d);
        } else if (id >= 0) {
            assert_true(s->n < SSE_MAX_EVENTS);
            /* each event's document is the events API's, with its id and type */
            json_t *doc = json_loads(data, 0, NULL);
            assert_non_null(doc);
            assert_int_equal(json_integer_value(json_object_get(doc, "id")), id);
            assert_string_equal(json_string_value(json_object_get(doc, "type")), type);
            json_decref(doc);
            s->ids[s->n] = id;
            snprintf(s->types[s->n], sizeof(s->types[0]), "%s", type);
            s->n++;
        }
        start = end + 2;
    }
    size_t left = s->raw_len - (size_t)(start - s->raw);
    memmove(s->raw, start, left);
    s->raw_len = left;
}

static size_t on_write(char *ptr, size_t size, size_t nmemb, void *userdata)
{
    sse_t *s = userdata;
    size_t len = size * nmemb;
    if (s->paused)
        return CURL_WRITEFUNC_PAUSE;
    if (s->raw_len + len + 1 > s->raw_cap) {
        s->raw_cap = (s->raw_len + len + 1) * 2;
        s->raw = realloc(s->raw, s->raw_cap);
        assert_non_null(s->raw);
    }
    memcpy(s->raw + s->raw_len, ptr, len);
    s->raw_len += len;
    s_parse(s);
    return len;
}

/* A small receive buffer, so a consumer that stops reading stops the server's writes soon. */
static int on_sockopt(void *clientp, curl_socket_t fd, curlsocktype purpose)
{
    int size = 4096;
    setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &size, sizeof(size));
    return CURL_SOCKOPT_OK;
}

static void s_pump(int ms)
{
    int running;
    curl_multi_perform(g_multi, &running);
    curl_multi_poll(g_multi, NULL, 0, ms, NULL);
    curl_multi_perform(g_multi, &running);
    CURLMsg *msg;
    int left;
    while ((msg = curl_multi_info_read(g_multi, &left)) != NULL) {
        if (msg->msg != CURLMSG_DONE)
            continue;
        sse_t *s;
        curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **)&s);
        s->done = true;
        s->result = msg->data.result;
    }
}

/* Opens the stream at `path` with `credentials` (header lines; Last-Event-ID when not -1) and
 * waits until it is registered (its retry line arrived): events committed from then on are its
 * to deliver. */
static sse_t *s_open_path(const char *path, const char *const credentials[2], int64_t last_event_id, bool h2, bool small_buffer)
{
    sse_t *s = calloc(1, sizeof(*s));
    assert_non_null(s);
    s->ids = calloc(SSE_MAX_EVENTS, sizeof(*s->ids));
    s->types = calloc(SSE_MAX_EVENTS, sizeof(*s->types));
    char url[512], h[300];
    snprintf(url, sizeof(url), "http://127.0.0.1:%d%s", g.server->port, path);
    s->easy = curl_easy_init();
    curl_easy_setopt(s->easy, CURLOPT_URL, url);
    for (int i = 0; i < 2 && credentials[i]; i++)
        s->headers = curl_slist_append(s->headers, credentials[i]);
    s->headers = curl_slist_append(s->headers, "Accept: text/event-stream");
    if (last_event_id >= 0) {
        snprintf(h, sizeof(h), "Last-Event-ID: %" PRId64, last_event_id);
        s->headers = curl_slist_append(s->headers, h);
    }
    curl_easy_setopt(s->easy, CURLOPT_HTTPHEADER, s->headers);
    curl_easy_setopt(s->easy, CURLOPT_WRITEFUNCTION, on_write);
    curl_easy_setopt(s->easy, CURLOPT_WRITEDATA, s);
    curl_easy_setopt(s->easy, CURLOPT_PRIVATE, s);
    /* One connection per stream, as a browser's EventSource has: closing one closes its connection. */
    curl_easy_setopt(s->easy, CURLOPT_FRESH_CONNECT, 1L);
    curl_easy_setopt(s->easy, CURLOPT_FORBID_REUSE, 1L);
    curl_easy_setopt(s->easy, CURLOPT_HTTP_VERSION, h2 ? CURL_HTTP_VERSION_2_PRIOR_KNOWLEDGE : CURL_HTTP_VERSION_1_1);
    if (small_buffer) {
        curl_easy_setopt(s->easy, CURLOPT_SOCKOPTFUNCTION, on_sockopt);
        curl_easy_setopt(s->easy, CURLOPT_BUFFERSIZE, 1024L);
    }
    curl_multi_add_handle(g_multi, s->easy);
    for (int i = 0; i < SSE_WAIT_S * 10 && !s->retry_seen && !s->done; i++)
        s_pump(100);
    long code = 0;
    curl_easy_getinfo(s->easy, CURLINFO_RESPONSE_CODE, &code);
    if (!s->retry_seen)
        fprintf(stderr, "stream %s answered %ld (%s): %.*s\n", url, code, curl_easy_strerror(s->result), (int)s->raw_len,
                s->raw ? s->raw : "");
    assert_true(s->retry_seen);
    assert_int_equal(code, 200);
    curl_easy_getinfo(s->easy, CURLINFO_HTTP_VERSION, &s->http_version);
    return s;
}

/* An account's stream: `query` after /v1/events/stream. */
static sse_t *s_open(const char *key, const char *auth, const char *query, int64_t last_event_id, bool h2, bool small_buffer)
{
    char path[512], key_line[300], auth_line[300];
    snprintf(path, sizeof(path), "/v1/events/stream%s", query);
    snprintf(key_line, sizeof(key_line), "Api-Key: %s", key);
    snprintf(auth_line, sizeof(auth_line), "Api-Auth: %s", auth);
    return s_open_path(path, (const char *[]){key_line, auth_line}, last_event_id, h2, small_buffer);
}

static void s_close(sse_t **s_p)
{
    sse_t *s = *s_p;
    curl_multi_remove_handle(g_multi, s->easy);
    curl_easy_cleanup(s->easy);
    curl_slist_free_all(s->headers);
    free(s->raw);
    free(s->ids);
    free(s->types);
    free(s);
    *s_p = NULL;
}

/* Waits until the stream holds at least `n` events (or ended). */
static void s_wait_events(sse_t *s, size_t n)
{
    for (int i = 0; i < SSE_WAIT_S * 10 && s->n < n && !s->done; i++)
        s_pump(100);
    if (s->n < n)
        test_server_dump_log(g.server);
    if (s->n < n)
        fprintf(stderr, "stream: %zu events of %zu, done %d (%s), overflow %d\n", s->n, n, s->done, curl_easy_strerror(s->result),
                s->overflow);
    assert_true(s->n >= n);
}

/* The stream delivered exactly what the API lists after `after` for `filter`, in order. */
static void s_assert_same_as_api(sse_t *s, int64_t after, const char *filter)
{
    int64_t *ids = calloc(SSE_MAX_EVENTS, sizeof(*ids));
    size_t n = test_event_ids(g.server, g.server->key, g.server->auth, after, filter, ids, SSE_MAX_EVENTS);
    s_wait_events(s, n);
    for (int i = 0; i < 20; i++)
        s_pump(50); /* anything beyond would be a duplicate or a stranger */
    assert_int_equal(s->n, n);
    for (size_t i = 0; i < n; i++)
        assert_int_equal(s->ids[i], ids[i]);
    free(ids);
}

static int64_t s_last_event_id(void)
{
    return test_db_count(g.db, "SELECT coalesce(max(id), 0) FROM events");
}

static int s_setup(void **state)
{
    test_dialing_start(&g, "agents = 3\ntalk_mean = 5\nwrap_mean = 1\nring_h_mean = 3\nring_m_mean = 5\nring_timeout = 8\n", true);
    char *out = test_server_cli(g.server, (const char *[]){"accounts", "create", "Other tenant", NULL});
    assert_non_null(out);
    const char *k = strstr(out, "IMPACT_API_KEY="), *v = strstr(out, "IMPACT_API_AUTH=");
    assert_non_null(k);
    assert_non_null(v);
    sscanf(k + 15, "%255s", g_other_key);
    sscanf(v + 16, "%255s", g_other_auth);
    free(out);
    g_multi = curl_multi_init();
    return 0;
}

static int s_teardown(void **state)
{
    curl_multi_cleanup(g_multi);
    test_dialing_stop(&g);
    return 0;
}

static int64_t g_campaign;
static int64_t g_first_id; /* the last event before the first test's */

/* Campaign start, pause, start, stop and a Power campaign's calls reach an account stream over
 * HTTP/1.1 and one over HTTP/2, in id order, each once; filters narrow; another account sees none. */
static void test_streams_deliver_what_the_api_lists(void **state)
{
    g_first_id = s_last_event_id();
    sse_t *account = s_open(g.server->key, g.server->auth, "", -1, false, false);
    sse_t *h2 = s_open(g.server->key, g.server->auth, "", -1, true, false);
    assert_int_equal(h2->http_version, CURL_HTTP_VERSION_2_0);

    g_campaign = test_campaign_create(&g, "Streamed", "Power");
    char filter[128];
    snprintf(filter, sizeof(filter), "?campaign_id=%" PRId64 "&type=campaign.paused,campaign.stopped", g_campaign);
    sse_t *filtered = s_open(g.server->key, g.server->auth, filter, -1, false, false);
    sse_t *other = s_open(g_other_key, g_other_auth, "", -1, false, false);

    test_campaign_import(&g, g_campaign, 0, 6);
    test_move_into_calling_hours(g.db, g_campaign);
    test_campaign_action(&g, g_campaign, "start");
    char sql[256];
    snprintf(sql, sizeof(sql), "SELECT count(*) FROM events WHERE campaign_id = %" PRId64 " AND type = 'call.ended'", g_campaign);
    test_db_wait_at_least(&g, sql, 2, SSE_WAIT_S);
    test_campaign_action(&g, g_campaign, "pause");
    test_campaign_action(&g, g_campaign, "start");
    test_campaign_action(&g, g_campaign, "stop");
    snprintf(sql, sizeof(sql), "SELECT count(*) FROM call_attempts WHERE campaign_id = %" PRId64 " AND ended_at IS NULL",
             g_campaign);
    test_db_wait_equal(&g, sql, 0, SSE_WAIT_S);
    test_db_wait_equal(&g, "SELECT count(*) FROM event_inbox", 0, 60);

    s_assert_same_as_api(account, g_first_id, "");
    s_assert_same_as_api(h2, g_first_id, "");
    bool calls = false;
    for (size_t i = 0; i < account->n; i++)
        calls |= strncmp(account->types[i], "call.", 5) == 0;
    assert_true(calls);
    char api_filter[160];
    snprintf(api_filter, sizeof(api_filter), "&campaign_id=%" PRId64 "&type=campaign.paused,campaign.stopped", g_campaign);
    s_assert_same_as_api(filtered, g_first_id, api_filter);
    assert_int_equal(filtered->n, 2);
    assert_string_equal(filtered->types[0], "campaign.paused");
    assert_string_equal(filtered->types[1], "campaign.stopped");

    /* the other account's stream is live, and holds only its own campaign's events */
    json_t *c = test_call(g.server, g_other_key, g_other_auth, "POST", "/v1/campaigns", "application/json",
                          "{\"name\": \"Theirs\", \"dialer_type\": \"Power\", \"from\": \"2125550142\"}", 0, 201);
    int64_t theirs = json_integer_value(json_object_get(c, "id"));
    json_decref(c);
    char path[128];
    snprintf(path, sizeof(path), "/v1/campaigns/%" PRId64 "/start", theirs);
    json_decref(test_call(g.server, g_other_key, g_other_auth, "POST", path, NULL, NULL, 0, 200));
    snprintf(path, sizeof(path), "/v1/campaigns/%" PRId64 "/stop", theirs);
    json_decref(test_call(g.server, g_other_key, g_other_auth, "POST", path, NULL, NULL, 0, 200));
    s_wait_events(other, 2);
    for (int i = 0; i < 20; i++)
        s_pump(50);
    assert_int_equal(other->n, 2);
    assert_string_equal(other->types[0], "campaign.started");
    assert_string_equal(other->types[1], "campaign.stopped");
    for (size_t i = 0; i < account->n; i++)
        assert_true(account->ids[i] != other->ids[0] && account->ids[i] != other->ids[1]);

    s_close(&account);
    s_close(&h2);
    s_close(&filtered);
    s_close(&other);
}

/* A reconnect with Last-Event-ID (or ?after= for a first connect) gets exactly what followed. */
static void test_a_reconnect_resumes_after_its_last_event(void **state)
{
    int64_t ids[64];
    char filter[64];
    snprintf(filter, sizeof(filter), "&campaign_id=%" PRId64, g_campaign);
    size_t n = test_event_ids(g.server, g.server->key, g.server->auth, g_first_id, filter, ids, 64);
    assert_true(n >= 6);
    char query[64];
    snprintf(query, sizeof(query), "?campaign_id=%" PRId64, g_campaign);
    sse_t *s = s_open(g.server->key, g.server->auth, query, ids[2], true, false);
    s_assert_same_as_api(s, ids[2], filter);
    assert_int_equal(s->n, n - 3);
    s_close(&s);

    snprintf(query, sizeof(query), "?campaign_id=%" PRId64 "&after=%" PRId64, g_campaign, ids[n - 2]);
    s = s_open(g.server->key, g.server->auth, query, -1, false, false);
    s_assert_same_as_api(s, ids[n - 2], filter);
    assert_int_equal(s->n, 1);
    s_close(&s);
}

/* Bad parameters are refused with a problem document before any stream starts. */
static void test_bad_parameters_are_refused(void **state)
{
    test_reply_t reply;
    const char *paths[] = {"/v1/events/stream?campaign_id=abc", "/v1/events/stream?before=3", "/v1/events/stream?type=nope"};
    long want[] = {422, 422, 422};
    for (int i = 0; i < 3; i++) {
        test_request_t req = {.method = "GET", .path = paths[i], .key = g.server->key, .auth = g.server->auth};
        assert_int_equal(test_http(g.server, &req, &reply), CURLE_OK);
        assert_int_equal(reply.status, want[i]);
        assert_string_equal(reply.content_type, "application/problem+json");
        test_reply_free(&reply);
    }
    test_request_t req = {.method = "GET", .path = "/v1/events/stream"};
    assert_int_equal(test_http(g.server, &req, &reply), CURLE_OK);
    assert_int_equal(reply.status, 401);
    test_reply_free(&reply);
}

/* A caller's desk request as `bearer`; its answer must be `want`. */
static void s_desk(const char *desk, const char *bearer, const char *action, const char *body, long want)
{
    char path[256];
    snprintf(path, sizeof(path), "%s%s%s", desk, action[0] ? "/" : "", action);
    test_request_t req = {.method = action[0] ? "POST" : "GET",
                          .path = path,
                          .header = bearer,
                          .body = body,
                          .content_type = body ? "application/json" : NULL};
    test_reply_t reply;
    assert_int_equal(test_http(g.server, &req, &reply), CURLE_OK);
    if (reply.status != want)
        fprintf(stderr, "%s -> %ld: %.*s\n", path, reply.status, (int)reply.body_len, reply.body);
    assert_int_equal(reply.status, want);
    test_reply_free(&reply);
}

/* A caller follows their own events with their session's token: their desk's transitions and
 * calls, nobody else's; a reconnect from the last id misses nothing; a stream with the wrong
 * parameters, or without a session, is refused; logging out ends it. */
static void test_a_caller_follows_their_own_events(void **state)
{
    int64_t campaign = test_campaign_create(&g, "Desk stream", "Power");
    char path[256], body[256], sql[256];
    snprintf(path, sizeof(path), "/v1/campaigns/%" PRId64, campaign);
    json_decref(test_call(g.server, g.server->key, g.server->auth, "PATCH", path, "application/json", "{\"simulated_callers\": 0}",
                          0, 200));
    test_campaign_import(&g, campaign, 2000, 20);
    test_move_into_calling_hours(g.db, campaign);
    test_campaign_action(&g, campaign, "start");
    snprintf(body, sizeof(body), "{\"username\": \"streamer\", \"password\": \"stream password\", \"campaign_id\": %" PRId64 "}",
             campaign);
    json_t *caller = test_call(g.server, g.server->key, g.server->auth, "POST", "/v1/callers", "application/json", body, 0, 201);
    int64_t caller_id = json_integer_value(json_object_get(caller, "id"));
    json_decref(caller);
    json_t *root = test_call(g.server, g.server->key, g.server->auth, "GET", "/v1", NULL, NULL, 0, 200);
    snprintf(body, sizeof(body), "{\"account_id\": %" PRId64 ", \"username\": \"streamer\", \"password\": \"stream password\"}",
             (int64_t)json_integer_value(json_object_get(json_object_get(root, "account"), "id")));
    json_decref(root);
    json_t *session = test_call(g.server, NULL, NULL, "POST", "/v1/caller_sessions", "application/json", body, 0, 201);
    char bearer[128], desk[160];
    snprintf(bearer, sizeof(bearer), "Authorization: Bearer %s", json_string_value(json_object_get(session, "token")));
    snprintf(desk, sizeof(desk), "%s", strstr(json_string_value(json_object_get(session, "desk_uri")), "/v1/"));
    assert_non_null(strstr(json_string_value(json_object_get(session, "events_uri")), "/v1/caller_session/events/stream"));
    json_decref(session);

    /* refused: an account's filters, no session */
    const char *refused[] = {"/v1/caller_session/events/stream?campaign_id=1", "/v1/caller_session/events/stream?caller_id=1"};
    for (int i = 0; i < 2; i++) {
        test_request_t req = {.method = "GET", .path = refused[i], .header = bearer};
        test_reply_t reply;
        assert_int_equal(test_http(g.server, &req, &reply), CURLE_OK);
        assert_int_equal(reply.status, 422);
        test_reply_free(&reply);
    }
    test_request_t anonymous = {.method = "GET", .path = "/v1/caller_session/events/stream"};
    test_reply_t reply;
    assert_int_equal(test_http(g.server, &anonymous, &reply), CURLE_OK);
    assert_int_equal(reply.status, 401);
    test_reply_free(&reply);

    int64_t before = s_last_event_id();
    sse_t *mine = s_open_path("/v1/caller_session/events/stream", (const char *[]){bearer, NULL}, before, false, false);
    s_desk(desk, bearer, "start", NULL, 200);
    snprintf(sql, sizeof(sql), "SELECT count(*) FROM events WHERE caller_id = %" PRId64 " AND type = 'call.bridged'", caller_id);
    test_db_wait_at_least(&g, sql, 1, SSE_WAIT_S);
    s_wait_events(mine, 3); /* on hold, on the call, and the call's bridge */
    int64_t last = mine->ids[mine->n - 1];
    s_close(&mine);
    /* meanwhile the person hangs up (the scenario's calls are short) and the caller stops */
    snprintf(sql, sizeof(sql), "SELECT count(*) FROM events WHERE caller_id = %" PRId64 " AND type = 'caller.wrap_up'", caller_id);
    test_db_wait_at_least(&g, sql, 1, SSE_WAIT_S);
    s_desk(desk, bearer, "results", "{\"then\": \"stop\"}", 200);
    snprintf(sql, sizeof(sql), "SELECT count(*) FROM events WHERE caller_id = %" PRId64 " AND type = 'survey.submitted'",
             caller_id);
    test_db_wait_at_least(&g, sql, 1, SSE_WAIT_S);
    sse_t *again = s_open_path("/v1/caller_session/events/stream", (const char *[]){bearer, NULL}, last, true, false);
    snprintf(sql, sizeof(sql), "SELECT count(*) FROM events WHERE caller_id = %" PRId64 " AND id > %" PRId64, caller_id, last);
    s_wait_events(again, (size_t)test_db_count(g.db, sql));
    /* exactly the caller's events, in order, as their list gives them */
    snprintf(path, sizeof(path), "/v1/caller_session/events?after=%" PRId64, before);
    test_request_t list = {.method = "GET", .path = path, .header = bearer};
    assert_int_equal(test_http(g.server, &list, &reply), CURLE_OK);
    assert_int_equal(reply.status, 200);
    json_t *page = test_reply_json(&reply);
    test_reply_free(&reply);
    json_t *items = json_object_get(page, "items");
    size_t i;
    json_t *item;
    size_t at = 0;
    json_array_foreach(items, i, item)
    {
        assert_int_equal(json_integer_value(json_object_get(item, "caller_id")), caller_id);
        int64_t id = json_integer_value(json_object_get(item, "id"));
        if (id > last) {
            assert_true(at < again->n);
            assert_int_equal(again->ids[at++], id);
        }
    }
    assert_int_equal(at, again->n);
    assert_true(json_array_size(items) >= 5);
    json_decref(page);

    /* logging out ends the stream at its next keep-alive, and it cannot be reopened */
    test_request_t logout = {.method = "POST", .path = "/v1/caller_session/logout", .header = bearer};
    assert_int_equal(test_http(g.server, &logout, &reply), CURLE_OK);
    assert_int_equal(reply.status, 204);
    test_reply_free(&reply);
    for (int wait = 0; wait < SSE_WAIT_S * 10 && !again->done; wait++)
        s_pump(100);
    assert_true(again->done);
    s_close(&again);
    test_request_t reopen = {.method = "GET", .path = "/v1/caller_session/events/stream", .header = bearer};
    assert_int_equal(test_http(g.server, &reopen, &reply), CURLE_OK);
    assert_int_equal(reply.status, 401);
    test_reply_free(&reply);
    test_campaign_action(&g, campaign, "stop");
}

/* The http process killed mid-stream: a reconnect with the last id received misses nothing. */
static void test_a_killed_http_process_loses_nothing(void **state)
{
    sse_t *s = s_open(g.server->key, g.server->auth, "", -1, false, false);
    char sql[256];
    snprintf(sql, sizeof(sql), "UPDATE campaigns SET status = 'paused' WHERE id = %" PRId64, g_campaign);
    test_db_exec(g.db, sql);
    s_wait_events(s, 1);
    int64_t last = s->ids[s->n - 1];
    int pid, restarts;
    char st[32];
    test_process(&g, "http", &pid, &restarts, st, sizeof(st));
    assert_true(pid > 0);
    assert_int_equal(kill(pid, SIGKILL), 0);
    /* events committed while no http process runs */
    snprintf(sql, sizeof(sql), "UPDATE campaigns SET status = 'stopped' WHERE id = %" PRId64, g_campaign);
    test_db_exec(g.db, sql);
    snprintf(sql, sizeof(sql), "UPDATE campaigns SET status = 'paused' WHERE id = %" PRId64, g_campaign);
    test_db_exec(g.db, sql);
    for (int i = 0; i < SSE_WAIT_S * 10 && !s->done; i++)
        s_pump(100);
    assert_true(s->done);
    s_close(&s);
    test_wait_process(&g, "http", pid);
    assert_int_equal(test_wait_status(g.server, "/v1", true, 200, SSE_WAIT_S), 0);
    s = s_open(g.server->key, g.server->auth, "", last, false, false);
    s_assert_same_as_api(s, last, "");
    assert_true(s->n >= 2);
    s_close(&s);
}

/* A consumer that stops reading gets the overflow event and is closed; another on the same
 * server receives everything; the overflowed one resumes from resume_after without a gap. */
static void test_a_slow_consumer_overflows_alone(void **state)
{
    int64_t start = s_last_event_id();
    sse_t *slow = s_open(g.server->key, g.server->auth, "", -1, false, true);
    sse_t *fast = s_open(g.server->key, g.server->auth, "", -1, true, false);
    slow->paused = true;
    char sql[256];
    int64_t account = test_db_count(g.db, "SELECT min(id) FROM accounts");
    /* the producers' own function (the triggers' path), in rounds the reading consumer keeps up
     * with, until the other has far more waiting than its queue and the sockets hold */
    for (int round = 1; round <= 24; round++) {
        snprintf(sql, sizeof(sql),
                 "SELECT event_publish(%" PRId64 ", %" PRId64 ", NULL, 'campaign.paused', now(), "
                 "jsonb_build_object('pad', repeat('x', 300), 'n', n)) FROM generate_series(1, 500) AS n",
                 account, g_campaign);
        test_db_exec(g.db, sql);
        s_wait_events(fast, (size_t)round * 500);
    }
    s_assert_same_as_api(fast, start, "");
    assert_int_equal(fast->n, 12000);

    slow->paused = false;
    curl_easy_pause(slow->easy, CURLPAUSE_CONT);
    for (int i = 0; i < SSE_WAIT_S * 10 && !slow->done; i++)
        s_pump(100);
    assert_true(slow->done);
    assert_true(slow->overflow);
    assert_true(slow->n < 12000);
    /* what it got is the start of the sequence, up to resume_after */
    for (size_t i = 0; i < slow->n; i++)
        assert_int_equal(slow->ids[i], start + 1 + (int64_t)i);
    assert_int_equal(slow->resume_after, slow->n ? slow->ids[slow->n - 1] : start);
    int64_t resume = slow->resume_after;
    s_close(&slow);
    slow = s_open(g.server->key, g.server->auth, "", resume, false, false);
    s_assert_same_as_api(slow, resume, "");
    s_close(&slow);
    s_close(&fast);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_streams_deliver_what_the_api_lists),  cmocka_unit_test(test_a_reconnect_resumes_after_its_last_event),
        cmocka_unit_test(test_bad_parameters_are_refused),          cmocka_unit_test(test_a_slow_consumer_overflows_alone),
        cmocka_unit_test(test_a_killed_http_process_loses_nothing), cmocka_unit_test(test_a_caller_follows_their_own_events),
    };
    return cmocka_run_group_tests(tests, s_setup, s_teardown);
}
