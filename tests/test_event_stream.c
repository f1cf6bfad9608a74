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

#include <cmocka.h>

#include "tests/dialing.h"
#include "tests/server.h"
#include "tests/sse_client.h"

static test_dialing_t g;
static CURLM *g_multi;
static char g_other_key[256], g_other_auth[256];

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
    test_sse_t *account = test_sse_open_account(g_multi, g.server, g.server->key, g.server->auth, "", -1, false, false);
    test_sse_t *h2 = test_sse_open_account(g_multi, g.server, g.server->key, g.server->auth, "", -1, true, false);
    assert_int_equal(h2->http_version, CURL_HTTP_VERSION_2_0);

    g_campaign = test_campaign_create(&g, "Streamed", "Power");
    char filter[128];
    snprintf(filter, sizeof(filter), "?campaign_id=%" PRId64 "&type=campaign.paused,campaign.stopped", g_campaign);
    test_sse_t *filtered = test_sse_open_account(g_multi, g.server, g.server->key, g.server->auth, filter, -1, false, false);
    test_sse_t *other = test_sse_open_account(g_multi, g.server, g_other_key, g_other_auth, "", -1, false, false);

    test_campaign_import(&g, g_campaign, 0, 6);
    test_move_into_calling_hours(g.db, g_campaign);
    test_campaign_action(&g, g_campaign, "start");
    char sql[256];
    snprintf(sql, sizeof(sql), "SELECT count(*) FROM events WHERE campaign_id = %" PRId64 " AND type = 'call.ended'", g_campaign);
    test_db_wait_at_least(&g, sql, 2, TEST_SSE_WAIT_S);
    test_campaign_action(&g, g_campaign, "pause");
    test_campaign_action(&g, g_campaign, "start");
    test_campaign_action(&g, g_campaign, "stop");
    snprintf(sql, sizeof(sql), "SELECT count(*) FROM call_attempts WHERE campaign_id = %" PRId64 " AND ended_at IS NULL",
             g_campaign);
    test_db_wait_equal(&g, sql, 0, TEST_SSE_WAIT_S);
    test_db_wait_equal(&g, "SELECT count(*) FROM event_inbox", 0, 60);

    test_sse_assert_same_as_api(account, g.server, g_first_id, "");
    test_sse_assert_same_as_api(h2, g.server, g_first_id, "");
    bool calls = false;
    for (size_t i = 0; i < account->n; i++)
        calls |= strncmp(account->types[i], "call.", 5) == 0;
    assert_true(calls);
    char api_filter[160];
    snprintf(api_filter, sizeof(api_filter), "&campaign_id=%" PRId64 "&type=campaign.paused,campaign.stopped", g_campaign);
    test_sse_assert_same_as_api(filtered, g.server, g_first_id, api_filter);
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
    test_sse_wait_events(other, g.server, 2);
    for (int i = 0; i < 20; i++)
        test_sse_pump(g_multi, 50);
    assert_int_equal(other->n, 2);
    assert_string_equal(other->types[0], "campaign.started");
    assert_string_equal(other->types[1], "campaign.stopped");
    for (size_t i = 0; i < account->n; i++)
        assert_true(account->ids[i] != other->ids[0] && account->ids[i] != other->ids[1]);

    test_sse_close(&account);
    test_sse_close(&h2);
    test_sse_close(&filtered);
    test_sse_close(&other);
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
    test_sse_t *s = test_sse_open_account(g_multi, g.server, g.server->key, g.server->auth, query, ids[2], true, false);
    test_sse_assert_same_as_api(s, g.server, ids[2], filter);
    assert_int_equal(s->n, n - 3);
    test_sse_close(&s);

    snprintf(query, sizeof(query), "?campaign_id=%" PRId64 "&after=%" PRId64, g_campaign, ids[n - 2]);
    s = test_sse_open_account(g_multi, g.server, g.server->key, g.server->auth, query, -1, false, false);
    test_sse_assert_same_as_api(s, g.server, ids[n - 2], filter);
    assert_int_equal(s->n, 1);
    test_sse_close(&s);
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
    test_sse_t *mine =
        test_sse_open(g_multi, g.server, "/v1/caller_session/events/stream", (const char *[]){bearer, NULL}, before, false, false);
    s_desk(desk, bearer, "start", NULL, 200);
    snprintf(sql, sizeof(sql), "SELECT count(*) FROM events WHERE caller_id = %" PRId64 " AND type = 'call.bridged'", caller_id);
    test_db_wait_at_least(&g, sql, 1, TEST_SSE_WAIT_S);
    test_sse_wait_events(mine, g.server, 3); /* on hold, on the call, and the call's bridge */
    int64_t last = mine->ids[mine->n - 1];
    test_sse_close(&mine);
    /* meanwhile the person hangs up (the scenario's calls are short) and the caller stops */
    snprintf(sql, sizeof(sql), "SELECT count(*) FROM events WHERE caller_id = %" PRId64 " AND type = 'caller.wrap_up'", caller_id);
    test_db_wait_at_least(&g, sql, 1, TEST_SSE_WAIT_S);
    s_desk(desk, bearer, "results", "{\"then\": \"stop\"}", 200);
    snprintf(sql, sizeof(sql), "SELECT count(*) FROM events WHERE caller_id = %" PRId64 " AND type = 'survey.submitted'",
             caller_id);
    test_db_wait_at_least(&g, sql, 1, TEST_SSE_WAIT_S);
    test_sse_t *again =
        test_sse_open(g_multi, g.server, "/v1/caller_session/events/stream", (const char *[]){bearer, NULL}, last, true, false);
    snprintf(sql, sizeof(sql), "SELECT count(*) FROM events WHERE caller_id = %" PRId64 " AND id > %" PRId64, caller_id, last);
    test_sse_wait_events(again, g.server, (size_t)test_db_count(g.db, sql));
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
    for (int wait = 0; wait < TEST_SSE_WAIT_S * 10 && !again->done; wait++)
        test_sse_pump(g_multi, 100);
    assert_true(again->done);
    test_sse_close(&again);
    test_request_t reopen = {.method = "GET", .path = "/v1/caller_session/events/stream", .header = bearer};
    assert_int_equal(test_http(g.server, &reopen, &reply), CURLE_OK);
    assert_int_equal(reply.status, 401);
    test_reply_free(&reply);
    test_campaign_action(&g, campaign, "stop");
}

/* The http process killed mid-stream: a reconnect with the last id received misses nothing. */
static void test_a_killed_http_process_loses_nothing(void **state)
{
    test_sse_t *s = test_sse_open_account(g_multi, g.server, g.server->key, g.server->auth, "", -1, false, false);
    char sql[256];
    snprintf(sql, sizeof(sql), "UPDATE campaigns SET status = 'paused' WHERE id = %" PRId64, g_campaign);
    test_db_exec(g.db, sql);
    test_sse_wait_events(s, g.server, 1);
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
    for (int i = 0; i < TEST_SSE_WAIT_S * 10 && !s->done; i++)
        test_sse_pump(g_multi, 100);
    assert_true(s->done);
    test_sse_close(&s);
    test_wait_process(&g, "http", pid);
    assert_int_equal(test_wait_status(g.server, "/v1", true, 200, TEST_SSE_WAIT_S), 0);
    s = test_sse_open_account(g_multi, g.server, g.server->key, g.server->auth, "", last, false, false);
    test_sse_assert_same_as_api(s, g.server, last, "");
    assert_true(s->n >= 2);
    test_sse_close(&s);
}

/* A consumer that stops reading gets the overflow event and is closed; another on the same
 * server receives everything; the overflowed one resumes from resume_after without a gap. */
static void test_a_slow_consumer_overflows_alone(void **state)
{
    int64_t start = s_last_event_id();
    test_sse_t *slow = test_sse_open_account(g_multi, g.server, g.server->key, g.server->auth, "", -1, false, true);
    test_sse_t *fast = test_sse_open_account(g_multi, g.server, g.server->key, g.server->auth, "", -1, true, false);
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
        test_sse_wait_events(fast, g.server, (size_t)round * 500);
    }
    test_sse_assert_same_as_api(fast, g.server, start, "");
    assert_int_equal(fast->n, 12000);

    slow->paused = false;
    curl_easy_pause(slow->easy, CURLPAUSE_CONT);
    for (int i = 0; i < TEST_SSE_WAIT_S * 10 && !slow->done; i++)
        test_sse_pump(g_multi, 100);
    assert_true(slow->done);
    assert_true(slow->overflow);
    assert_true(slow->n < 12000);
    /* what it got is the start of the sequence, up to resume_after */
    for (size_t i = 0; i < slow->n; i++)
        assert_int_equal(slow->ids[i], start + 1 + (int64_t)i);
    assert_int_equal(slow->resume_after, slow->n ? slow->ids[slow->n - 1] : start);
    int64_t resume = slow->resume_after;
    test_sse_close(&slow);
    slow = test_sse_open_account(g_multi, g.server, g.server->key, g.server->auth, "", resume, false, false);
    test_sse_assert_same_as_api(slow, g.server, resume, "");
    test_sse_close(&slow);
    test_sse_close(&fast);
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
