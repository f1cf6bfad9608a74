/*
 * No event is lost or repeated when processes die: a busy Power campaign runs on the real
 * impactd while the fan-out process (which numbers events and posts webhooks) is killed with
 * SIGKILL twice, the campaign's dialer once and the http process (which serves event streams)
 * once. Afterwards the events API, read from the start with its cursor, must hold for every call
 * attempt exactly the events its committed state implies (dialing; answered, bridged, ended when
 * it got there), each once, and the ids must have no gap. The same events, in the same order,
 * must have reached a webhook endpoint of the campaign (each answered 2xx, signed, a repeat only
 * of an event already posted, with its webhook-id) and a Server-Sent Events stream of the
 * campaign that reconnected with Last-Event-ID after the http process died (each once).
 *
 * Nothing here depends on how fast anything runs: every wait polls for a state with a generous
 * bound that only turns a hang into a failure.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <inttypes.h>
#include <libpq-fe.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tests/dialing.h"
#include "tests/sse_client.h"
#include "tests/support.h"
#include "tests/webhook_receiver.h"

#define WAIT_S 120

static test_dialing_t g;
static webhook_receiver_t *g_hook;
static CURLM *g_multi;
static webhook_received_t g_got[WEBHOOK_RECEIVED_MAX];

/* The receiver never fails: what is tested is what the server's deaths do, not the receiver's. */
static int s_answer(void *arg, const char *path, int nth, int *delay_ms)
{
    return 204;
}

static int s_setup(void **state)
{
    g_hook = webhook_receiver_new(s_answer, NULL);
    assert_non_null(g_hook);
    test_dialing_start(&g, TEST_SCENARIO_SHORT_CALLS, true); /* the receiver runs on this machine */
    json_t *list = test_call(g.server, g.server->key, g.server->auth, "GET", "/v1/webhook_secrets", NULL, NULL, 0, 200);
    const char *secret = json_string_value(json_object_get(json_array_get(json_object_get(list, "items"), 0), "secret"));
    assert_non_null(secret);
    webhook_receiver_secrets(g_hook, &secret, 1);
    json_decref(list);
    g_multi = curl_multi_init();
    return 0;
}

static int s_teardown(void **state)
{
    curl_multi_cleanup(g_multi);
    test_dialing_stop(&g);
    webhook_receiver_destroy(&g_hook);
    return 0;
}

static int64_t s_ended(int64_t campaign)
{
    char sql[160];
    snprintf(sql, sizeof(sql), "SELECT count(*) FROM call_attempts WHERE campaign_id = %" PRId64 " AND ended_at IS NOT NULL",
             campaign);
    return test_db_count(g.db, sql);
}

/* Waits for `more` attempts to end, reading the event streams meanwhile as a client would. */
static void s_wait_more_calls(int64_t campaign, int64_t more)
{
    int64_t want = s_ended(campaign) + more;
    for (int i = 0; i < WAIT_S * 10; i++) {
        if (s_ended(campaign) >= want)
            return;
        test_sse_pump(g_multi, 100);
    }
    test_server_dump_log(g.server);
    fail_msg("fewer than %" PRId64 " attempts ended", want);
}

static int s_kill(const char *name, int not_pid)
{
    int pid = test_wait_process(&g, name, not_pid);
    assert_int_equal(kill(pid, SIGKILL), 0);
    return pid;
}

/* Reads the campaign's events through the API, oldest first with the `after` cursor, into the
 * temporary table seen(event_id, attempt_id, type); checks that ids only go up. */
static int64_t s_read_events(int64_t campaign)
{
    test_db_exec(g.db, "CREATE TEMP TABLE seen (event_id bigint, attempt_id bigint, type text)");
    int64_t last = 0, count = 0;
    for (int pages = 0; pages < 10000; pages++) {
        char path[160];
        snprintf(path, sizeof(path), "/v1/events?campaign_id=%" PRId64 "&after=%" PRId64 "&limit=100", campaign, last);
        json_t *page = test_call(g.server, g.server->key, g.server->auth, "GET", path, NULL, NULL, 0, 200);
        json_t *items = json_object_get(page, "items");
        if (json_array_size(items) == 0) {
            json_decref(page);
            return count;
        }
        size_t i;
        json_t *item;
        json_array_foreach(items, i, item)
        {
            int64_t id = json_integer_value(json_object_get(item, "id"));
            assert_true(id > last);
            last = id;
            count++;
            json_t *attempt = json_object_get(json_object_get(item, "data"), "attempt_id");
            char attempt_id[24], sql[256];
            snprintf(attempt_id, sizeof(attempt_id), json_is_integer(attempt) ? "%" PRId64 : "NULL",
                     (int64_t)json_integer_value(attempt));
            snprintf(sql, sizeof(sql), "INSERT INTO seen VALUES (%" PRId64 ", %s, '%s')", id, attempt_id,
                     json_string_value(json_object_get(item, "type")));
            test_db_exec(g.db, sql);
        }
        json_decref(page);
    }
    fail_msg("the events never ended");
    return count;
}

/* Attempts of the campaign that reached a state (`condition` on call_attempts a) but lack its
 * event `type`. */
static int64_t s_missing(int64_t campaign, const char *type, const char *condition)
{
    char sql[512];
    snprintf(sql, sizeof(sql),
             "SELECT count(*) FROM call_attempts a WHERE a.campaign_id = %" PRId64
             " AND %s AND NOT EXISTS (SELECT 1 FROM seen s WHERE s.attempt_id = a.call_id AND s.type = '%s')",
             campaign, condition, type);
    return test_db_count(g.db, sql);
}

/* Events of `type` for attempts that never reached its state. */
static int64_t s_invented(int64_t campaign, const char *type, const char *condition)
{
    char sql[512];
    snprintf(sql, sizeof(sql),
             "SELECT count(*) FROM seen s WHERE s.type = '%s' AND NOT EXISTS (SELECT 1 FROM call_attempts a WHERE "
             "a.campaign_id = %" PRId64 " AND a.call_id = s.attempt_id AND %s)",
             type, campaign, condition);
    return test_db_count(g.db, sql);
}

/* The 2xx answers the receiver gave to `path`, as first posted: each event's first delivery must
 * follow the one before it, and a repeat (a post whose outcome a killed fan-out never recorded)
 * must carry the webhook-id of an event already posted. Returns how many events, ids in `ids`. */
static size_t s_webhook_events(const char *path, int64_t campaign, int64_t *ids, size_t max, int *repeats)
{
    int n = webhook_receiver_received(g_hook, g_got, WEBHOOK_RECEIVED_MAX);
    assert_true(n < WEBHOOK_RECEIVED_MAX);
    size_t count = 0;
    *repeats = 0;
    for (int i = 0; i < n; i++) {
        const webhook_received_t *r = &g_got[i];
        if (strcmp(r->path, path) != 0)
            continue;
        assert_int_equal(r->status, 204);
        assert_true(r->id > 0); /* the body's id is the webhook-id */
        assert_true(r->signed_ok);
        assert_int_equal(r->campaign, campaign);
        if (count > 0 && r->id <= ids[count - 1]) {
            bool posted = false;
            for (size_t k = 0; k < count && !posted; k++)
                posted = ids[k] == r->id;
            assert_true(posted);
            (*repeats)++;
            continue;
        }
        assert_true(count < max);
        ids[count++] = r->id;
    }
    return count;
}

static void test_no_event_lost_when_processes_are_killed(void **state)
{
    int64_t campaign = test_campaign_create(&g, "Durability", "Power");
    test_campaign_import(&g, campaign, 0, 600);
    test_move_into_calling_hours(g.db, campaign);
    /* A webhook endpoint and an event stream of the campaign, from what is numbered so far on. */
    test_db_wait_equal(&g, "SELECT count(*) FROM event_inbox", 0, WAIT_S);
    int64_t before = test_db_count(g.db, "SELECT coalesce(max(id), 0) FROM events");
    char body[256], query[64], filter[64];
    snprintf(body, sizeof(body), "{\"url\": \"http://127.0.0.1:%d/durable\", \"campaign_id\": %" PRId64 "}",
             webhook_receiver_port(g_hook), campaign);
    json_t *endpoint =
        test_call(g.server, g.server->key, g.server->auth, "POST", "/v1/webhook_endpoints", "application/json", body, 0, 201);
    int64_t endpoint_id = json_integer_value(json_object_get(endpoint, "id"));
    json_decref(endpoint);
    snprintf(query, sizeof(query), "?campaign_id=%" PRId64, campaign);
    snprintf(filter, sizeof(filter), "&campaign_id=%" PRId64, campaign);
    test_sse_t *first = test_sse_open_account(g_multi, g.server, g.server->key, g.server->auth, query, before, false, false);

    char dialer[48];
    test_campaign_action(&g, campaign, "start");
    snprintf(dialer, sizeof(dialer), "dialer:%" PRId64, campaign);
    test_wait_process(&g, dialer, 0);
    s_wait_more_calls(campaign, 20);

    /* the numbering and posting process dies; the campaign goes on, its events wait in the inbox */
    int fanout = s_kill("fanout", 0);
    s_wait_more_calls(campaign, 20);
    /* the dialer dies mid-call: its successor ends what it left open, and those ends are events too */
    int first_dialer = s_kill(dialer, 0);
    test_wait_process(&g, dialer, first_dialer);
    s_wait_more_calls(campaign, 20);
    /* the http process dies: the stream ends, and its client reconnects from the last id it got */
    int http = s_kill("http", 0);
    for (int i = 0; i < WAIT_S * 10 && !first->done; i++)
        test_sse_pump(g_multi, 100);
    assert_true(first->done);
    assert_true(first->n > 0);
    test_wait_process(&g, "http", http);
    assert_int_equal(test_wait_status(g.server, "/v1", true, 200, WAIT_S), 0);
    test_sse_t *second =
        test_sse_open_account(g_multi, g.server, g.server->key, g.server->auth, query, first->ids[first->n - 1], false, false);
    s_wait_more_calls(campaign, 20);
    s_kill("fanout", fanout);
    s_wait_more_calls(campaign, 10);

    test_campaign_action(&g, campaign, "stop");
    char sql[256];
    snprintf(sql, sizeof(sql), "SELECT count(*) FROM call_attempts WHERE campaign_id = %" PRId64 " AND ended_at IS NULL", campaign);
    test_db_wait_equal(&g, sql, 0, WAIT_S);
    test_wait_process(&g, "fanout", 0);
    test_db_wait_equal(&g, "SELECT count(*) FROM event_inbox", 0, WAIT_S);

    int64_t read = s_read_events(campaign);
    snprintf(sql, sizeof(sql), "SELECT count(*) FROM events WHERE campaign_id = %" PRId64, campaign);
    assert_int_equal(read, test_db_count(g.db, sql));
    /* every state the attempts committed has its event, none twice, none invented */
    assert_int_equal(s_missing(campaign, "call.dialing", "true"), 0);
    assert_int_equal(s_missing(campaign, "call.answered", "a.answered_at IS NOT NULL"), 0);
    assert_int_equal(s_missing(campaign, "call.bridged", "a.bridged_at IS NOT NULL"), 0);
    assert_int_equal(s_missing(campaign, "call.ended", "a.ended_at IS NOT NULL"), 0);
    assert_int_equal(s_invented(campaign, "call.answered", "a.answered_at IS NOT NULL"), 0);
    assert_int_equal(s_invented(campaign, "call.bridged", "a.bridged_at IS NOT NULL"), 0);
    assert_int_equal(test_db_count(g.db, "SELECT count(*) FROM (SELECT attempt_id, type FROM seen WHERE attempt_id IS NOT NULL "
                                         "GROUP BY 1, 2 HAVING count(*) > 1) AS twice"),
                     0);
    assert_int_equal(test_db_count(g.db, "SELECT count(*) FROM seen WHERE type = 'campaign.started'"), 1);
    assert_int_equal(test_db_count(g.db, "SELECT count(*) FROM seen WHERE type = 'campaign.stopped'"), 1);
    /* and across every stream, the numbering left no hole */
    assert_int_equal(test_db_count(g.db, "SELECT max(id) - min(id) + 1 - count(*) FROM events"), 0);

    int64_t *ids = calloc(TEST_SSE_MAX_EVENTS, sizeof(*ids));
    assert_non_null(ids);
    size_t n = test_event_ids(g.server, g.server->key, g.server->auth, before, filter, ids, TEST_SSE_MAX_EVENTS);
    assert_true(n > 100);
    assert_true(n < TEST_SSE_MAX_EVENTS);

    /* the stream, across its reconnect: every event once, in order */
    test_sse_wait_events(second, g.server, n - first->n);
    for (int i = 0; i < 10; i++)
        test_sse_pump(g_multi, 100); /* anything beyond would be a duplicate or a stranger */
    assert_int_equal(first->n + second->n, n);
    for (size_t i = 0; i < n; i++)
        assert_int_equal(i < first->n ? first->ids[i] : second->ids[i - first->n], ids[i]);
    test_sse_close(&first);
    test_sse_close(&second);

    /* the webhooks: every event answered 2xx, first posted in order */
    snprintf(sql, sizeof(sql), "SELECT count(*) FROM webhook_deliveries WHERE endpoint_id = %" PRId64 " AND state <> 'delivered'",
             endpoint_id);
    test_db_wait_equal(&g, sql, 0, WAIT_S);
    int64_t *posted = calloc(TEST_SSE_MAX_EVENTS, sizeof(*posted));
    assert_non_null(posted);
    int repeats;
    size_t n_posted = s_webhook_events("/durable", campaign, posted, TEST_SSE_MAX_EVENTS, &repeats);
    assert_int_equal(n_posted, n);
    for (size_t i = 0; i < n; i++)
        assert_int_equal(posted[i], ids[i]);
    free(posted);
    free(ids);

    /* the kills happened: two fan-out restarts, one dialer restart and one http restart */
    int pid, restarts;
    char state_name[32];
    test_process(&g, "fanout", &pid, &restarts, state_name, sizeof(state_name));
    assert_true(restarts >= 2);
    test_process(&g, "http", &pid, &restarts, state_name, sizeof(state_name));
    assert_true(restarts >= 1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_no_event_lost_when_processes_are_killed),
    };
    return cmocka_run_group_tests(tests, s_setup, s_teardown);
}
