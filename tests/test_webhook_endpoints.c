/*
 * Webhook endpoints (actors/store/res_webhook_endpoints.c, schemas/sql/0014_webhook_endpoints.sql) delivered by the
 * real impactd's fan-out process (actors/fanout/webhooks.c) to a local receiver
 * (tests/webhook_receiver.h):
 *
 * - through a receiver that drops connections, then answers 500, then times out, then recovers,
 *   every event reaches each endpoint answered 2xx exactly once, in id order per stream, signed;
 *   a webhook-id repeats only for attempts that were not answered 2xx, and the delivery log
 *   lists every attempt the receiver saw;
 * - type and campaign filters select what each endpoint gets;
 * - bad input is refused with 422 and changes nothing;
 * - 410 Gone disables the endpoint with a reason, its deliveries stay pending, and an enable
 *   (after the URL is fixed) resumes them; so does failing an event for 3 days (that delivery
 *   fails); either way the account's other endpoints get webhook_endpoint.disabled;
 * - a replay of one event and of a range sends the same webhook-ids again, in order.
 *
 * Events enter the inbox as producers' triggers put them (event_publish) and are numbered by the
 * server's own sequencer. Waiting for back-off is replaced by time travel on the rows: a settled
 * pending delivery's next_attempt_at is moved to now (never one under a claim's lease, whose
 * attempt count is ahead of its log). Every wait polls with a bound that only turns a hang into
 * a failure.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <curl/curl.h>
#include <inttypes.h>
#include <jansson.h>
#include <libpq-fe.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tests/dialing.h"
#include "tests/support.h"
#include "tests/webhook_receiver.h"

#define WAIT_SECONDS 90
#define TIMEOUT_MS   7000 /* longer than WEBHOOKS_TIMEOUT_MS: the deliverer gives up first */

static test_dialing_t g;
static webhook_receiver_t *g_hook;
static char g_account[24];
static webhook_received_t g_got[WEBHOOK_RECEIVED_MAX];

/* /flaky: two dropped connections, two 500s, one timeout (never answered), then 204. /gone: 410.
 * /down: 503. Others: 204. */
static int s_answer(void *arg, const char *path, int nth, int *delay_ms)
{
    if (strcmp(path, "/gone") == 0)
        return 410;
    if (strcmp(path, "/down") == 0)
        return 503;
    if (strcmp(path, "/flaky") == 0) {
        if (nth <= 2)
            return 0;
        if (nth <= 4)
            return 500;
        if (nth == 5) {
            *delay_ms = TIMEOUT_MS;
            return 0;
        }
    }
    return 204;
}

static json_t *s_api(const char *method, const char *path, const char *body, long want)
{
    return test_call(g.server, g.server->key, g.server->auth, method, path, body ? "application/json" : NULL, body, 0, want);
}

static int64_t s_endpoint(const char *body)
{
    json_t *e = s_api("POST", "/v1/webhook_endpoints", body, 201);
    int64_t id = json_integer_value(json_object_get(e, "id"));
    json_decref(e);
    return id;
}

/* One event into the inbox (campaign 0: an account-level event); the server numbers it. */
static void s_publish(int64_t campaign, const char *type)
{
    char sql[512], c[24];
    snprintf(c, sizeof(c), "%" PRId64, campaign);
    snprintf(sql, sizeof(sql), "SELECT event_publish(%s, %s, NULL, '%s', now(), '{\"test\": true}')", g_account,
             campaign ? c : "NULL", type);
    test_db_exec(g.db, sql);
}

/* Waits until the server's sequencer has numbered everything published: the delivery rows are
 * made in the same transaction. */
static void s_wait_numbered(void)
{
    test_db_wait_equal(&g, "SELECT count(*) FROM event_inbox", 0, WAIT_SECONDS);
}

/* Settled pending deliveries are due now instead of after their back-off. */
static void s_hurry(void)
{
    test_db_exec(g.db, "UPDATE webhook_deliveries d SET next_attempt_at = now() WHERE state = 'pending' AND attempts = "
                       "(SELECT count(*) FROM webhook_delivery_attempts a WHERE a.delivery_id = d.id)");
    test_db_exec(g.db, "NOTIFY webhook_deliveries");
}

/* Waits, hurrying retries along, until endpoint `id` has no pending delivery. */
static void s_wait_delivered(int64_t id)
{
    char sql[256];
    snprintf(sql, sizeof(sql), "SELECT count(*) FROM webhook_deliveries WHERE endpoint_id = %" PRId64 " AND state = 'pending'", id);
    for (int i = 0; i < WAIT_SECONDS * 4; i++) {
        if (test_db_count(g.db, sql) == 0)
            return;
        s_hurry();
        usleep(250 * 1000);
    }
    fail_msg("endpoint %" PRId64 " still has pending deliveries", id);
}

/* The ids of the events of the account (campaign > 0: of that campaign; < 0: account-level
 * ones), optionally of one type, in order, as one comma-separated string. */
static void s_expected(int64_t campaign, const char *type, char *out, size_t size)
{
    char where[64], sql[512];
    if (campaign > 0)
        snprintf(where, sizeof(where), "campaign_id = %" PRId64, campaign);
    else
        snprintf(where, sizeof(where), "%s", campaign < 0 ? "campaign_id IS NULL" : "true");
    snprintf(sql, sizeof(sql),
             "SELECT coalesce(string_agg(id::text, ',' ORDER BY id), '') FROM events WHERE account_id = %s AND %s %s%s%s",
             g_account, where, type ? "AND type = '" : "", type ? type : "", type ? "'" : "");
    PGresult *res = PQexec(g.db, sql);
    assert_int_equal(PQresultStatus(res), PGRES_TUPLES_OK);
    snprintf(out, size, "%s", PQgetvalue(res, 0, 0));
    PQclear(res);
}

/* The ids answered 2xx on `path` (of one campaign's stream when campaign > 0, of account-level
 * events when < 0), in arrival order; also checks every request on the path was signed. */
static void s_delivered(const char *path, int64_t campaign, char *out, size_t size)
{
    int n = webhook_receiver_received(g_hook, g_got, WEBHOOK_RECEIVED_MAX);
    size_t used = 0;
    out[0] = '\0';
    for (int i = 0; i < n; i++) {
        const webhook_received_t *r = &g_got[i];
        if (strcmp(r->path, path) != 0)
            continue;
        assert_true(r->signed_ok);
        assert_true(r->id > 0);
        if (r->status < 200 || r->status >= 300 || (campaign > 0 && r->campaign != campaign) || (campaign < 0 && r->campaign != 0))
            continue;
        used += (size_t)snprintf(out + used, size - used, "%s%" PRId64, used ? "," : "", r->id);
    }
}

static int s_requests(const char *path)
{
    int n = webhook_receiver_received(g_hook, g_got, WEBHOOK_RECEIVED_MAX), count = 0;
    for (int i = 0; i < n; i++)
        count += strcmp(g_got[i].path, path) == 0;
    return count;
}

static int s_setup(void **state)
{
    g_hook = webhook_receiver_new(s_answer, NULL);
    assert_non_null(g_hook);
    test_dialing_start(&g, "agents = 1\n", true); /* the receiver runs on this machine */
    json_t *root = s_api("GET", "/v1", NULL, 200);
    snprintf(g_account, sizeof(g_account), "%" JSON_INTEGER_FORMAT,
             json_integer_value(json_object_get(json_object_get(root, "account"), "id")));
    json_decref(root);
    json_t *list = s_api("GET", "/v1/webhook_secrets", NULL, 200);
    const char *secret = json_string_value(json_object_get(json_array_get(json_object_get(list, "items"), 0), "secret"));
    assert_non_null(secret);
    webhook_receiver_secrets(g_hook, &secret, 1);
    json_decref(list);
    return 0;
}

static int s_teardown(void **state)
{
    test_dialing_stop(&g);
    webhook_receiver_destroy(&g_hook);
    return 0;
}

static void test_bad_input_changes_nothing(void **state)
{
    char body[256];
    int64_t before = test_db_count(g.db, "SELECT count(*) FROM webhook_endpoints");
    snprintf(body, sizeof(body), "{\"url\": \"http://127.0.0.1:%d/x\", \"event_types\": [\"call.ended\", \"no.such\"]}",
             webhook_receiver_port(g_hook));
    json_t *p = s_api("POST", "/v1/webhook_endpoints", body, 422);
    assert_string_equal(json_string_value(json_object_get(json_array_get(json_object_get(p, "errors"), 0), "field")),
                        "event_types");
    json_decref(p);
    json_decref(s_api("POST", "/v1/webhook_endpoints", "{\"url\": \"ftp://example.com/\"}", 422));
    json_decref(s_api("POST", "/v1/webhook_endpoints", "{\"url\": \"https://example.com/\", \"campaign_id\": 999999999}", 422));
    assert_int_equal(test_db_count(g.db, "SELECT count(*) FROM webhook_endpoints"), before);

    int64_t id = s_endpoint("{\"url\": \"https://example.com/hook\", \"enabled\": false}");
    char path[128];
    snprintf(path, sizeof(path), "/v1/webhook_endpoints/%" PRId64 "/replay", id);
    json_decref(s_api("POST", path, "{}", 422));
    json_decref(s_api("POST", path, "{\"event_id\": 1, \"after\": 0}", 422));
    json_decref(s_api("POST", path, "{\"since\": \"yesterday\"}", 422));
    json_decref(s_api("POST", path, "{\"after\": 0, \"until\": \"2026-01-01T00:00:00Z\"}", 422));
    json_decref(s_api("POST", path, "{\"event_id\": 1, \"extra\": 1}", 422));
    assert_int_equal(test_db_count(g.db, "SELECT count(*) FROM webhook_deliveries WHERE replay"), 0);
    snprintf(path, sizeof(path), "/v1/webhook_endpoints/%" PRId64, id);
    json_decref(s_api("DELETE", path, NULL, 204));
}

static void test_ordered_through_failures_and_filtered(void **state)
{
    int port = webhook_receiver_port(g_hook);
    int64_t campaign = test_campaign_create(&g, "hooks", "preview");
    int64_t other = test_campaign_create(&g, "other", "preview");
    char body[512];
    snprintf(body, sizeof(body), "{\"url\": \"http://127.0.0.1:%d/flaky\", \"description\": \"everything\"}", port);
    int64_t all = s_endpoint(body);
    snprintf(body, sizeof(body), "{\"url\": \"http://127.0.0.1:%d/typed\", \"event_types\": [\"campaign.paused\"]}", port);
    int64_t typed = s_endpoint(body);
    snprintf(body, sizeof(body), "{\"url\": \"http://127.0.0.1:%d/campaign\", \"campaign_id\": %" PRId64 "}", port, campaign);
    int64_t one_campaign = s_endpoint(body);

    for (int i = 0; i < 4; i++) {
        s_publish(campaign, i % 2 ? "campaign.paused" : "campaign.resumed");
        s_publish(other, "campaign.paused");
        s_publish(0, "list.import_completed");
    }
    s_wait_numbered();
    s_wait_delivered(all);
    s_wait_delivered(typed);
    s_wait_delivered(one_campaign);

    char want[1024], got[1024];
    /* every stream in order, each event answered 2xx exactly once */
    s_expected(campaign, NULL, want, sizeof(want));
    s_delivered("/flaky", campaign, got, sizeof(got));
    assert_string_equal(got, want);
    s_expected(other, NULL, want, sizeof(want));
    s_delivered("/flaky", other, got, sizeof(got));
    assert_string_equal(got, want);
    s_expected(-1, NULL, want, sizeof(want));
    s_delivered("/flaky", -1, got, sizeof(got));
    assert_string_equal(got, want);
    /* the filters; a type spans streams, ordered within each */
    s_expected(campaign, "campaign.paused", want, sizeof(want));
    s_delivered("/typed", campaign, got, sizeof(got));
    assert_string_equal(got, want);
    s_expected(other, "campaign.paused", want, sizeof(want));
    s_delivered("/typed", other, got, sizeof(got));
    assert_string_equal(got, want);
    assert_int_equal(s_requests("/typed"), 6);
    s_expected(campaign, NULL, want, sizeof(want));
    s_delivered("/campaign", 0, got, sizeof(got));
    assert_string_equal(got, want);

    /* the failures happened, and the log shows every attempt the receiver saw (a timed-out one
     * included); 12 events, 5 failed attempts */
    assert_int_equal(s_requests("/flaky"), 12 + 5);
    char path[160];
    snprintf(path, sizeof(path), "/v1/webhook_endpoints/%" PRId64 "/deliveries?per_page=100", all);
    json_t *log = s_api("GET", path, NULL, 200);
    size_t i, attempts = 0, failed = 0;
    json_t *d;
    json_array_foreach(json_object_get(log, "items"), i, d)
    {
        assert_string_equal(json_string_value(json_object_get(d, "state")), "delivered");
        size_t k;
        json_t *a;
        json_array_foreach(json_object_get(d, "attempts"), k, a)
        {
            attempts++;
            failed += json_is_string(json_object_get(a, "error"));
            assert_true(json_is_integer(json_object_get(a, "duration_ms")));
        }
    }
    assert_int_equal(json_array_size(json_object_get(log, "items")), 12);
    assert_int_equal(attempts, 12 + 5);
    assert_int_equal(failed, 5);
    json_decref(log);
    snprintf(path, sizeof(path), "/v1/webhook_endpoints/%" PRId64 "/deliveries?state=pending", all);
    log = s_api("GET", path, NULL, 200);
    assert_int_equal(json_array_size(json_object_get(log, "items")), 0);
    json_decref(log);
}

static void test_gone_disables_and_enable_resumes(void **state)
{
    char body[256], path[160];
    snprintf(body, sizeof(body), "{\"url\": \"http://127.0.0.1:%d/gone\"}", webhook_receiver_port(g_hook));
    int64_t id = s_endpoint(body);
    /* One transaction, so one numbering batch makes both deliveries: an event numbered after the
     * endpoint is disabled gets no delivery, and the test would race the first attempt. */
    test_db_exec(g.db, "BEGIN");
    s_publish(0, "list.import_completed");
    s_publish(0, "list.import_failed");
    test_db_exec(g.db, "COMMIT");
    s_wait_numbered();
    char sql[256];
    snprintf(sql, sizeof(sql), "SELECT count(*) FROM webhook_endpoints WHERE id = %" PRId64 " AND NOT enabled", id);
    test_db_wait_equal(&g, sql, 1, WAIT_SECONDS);
    snprintf(path, sizeof(path), "/v1/webhook_endpoints/%" PRId64, id);
    json_t *e = s_api("GET", path, NULL, 200);
    assert_false(json_is_true(json_object_get(e, "enabled")));
    assert_non_null(strstr(json_string_value(json_object_get(e, "disabled_reason")), "410"));
    json_decref(e);
    /* nothing failed: both wait for the endpoint, and only the first was tried */
    snprintf(sql, sizeof(sql), "SELECT count(*) FROM webhook_deliveries WHERE endpoint_id = %" PRId64 " AND state = 'pending'", id);
    assert_int_equal(test_db_count(g.db, sql), 2);
    assert_int_equal(s_requests("/gone"), 1);

    snprintf(body, sizeof(body), "{\"url\": \"http://127.0.0.1:%d/back\"}", webhook_receiver_port(g_hook));
    json_decref(s_api("PATCH", path, body, 200));
    snprintf(path, sizeof(path), "/v1/webhook_endpoints/%" PRId64 "/enable", id);
    e = s_api("POST", path, NULL, 200);
    assert_true(json_is_true(json_object_get(e, "enabled")));
    assert_true(json_is_null(json_object_get(e, "disabled_reason")));
    json_decref(e);
    s_wait_delivered(id);
    char want[256], got[256];
    snprintf(sql, sizeof(sql),
             "SELECT string_agg(event_id::text, ',' ORDER BY event_id) FROM webhook_deliveries WHERE endpoint_id = %" PRId64, id);
    PGresult *res = PQexec(g.db, sql);
    snprintf(want, sizeof(want), "%s", PQgetvalue(res, 0, 0));
    PQclear(res);
    s_delivered("/back", 0, got, sizeof(got));
    assert_string_equal(got, want);
}

/* An event failing since longer than the give-up age (its delivery's age moved back): the
 * delivery fails, the endpoint is disabled with the reason, and a watching endpoint is told. */
static void test_days_of_failures_disable_and_tell(void **state)
{
    char body[256], sql[512];
    snprintf(body, sizeof(body), "{\"url\": \"http://127.0.0.1:%d/watch\", \"event_types\": [\"webhook_endpoint.disabled\"]}",
             webhook_receiver_port(g_hook));
    int64_t watch = s_endpoint(body);
    snprintf(body, sizeof(body), "{\"url\": \"http://127.0.0.1:%d/down\"}", webhook_receiver_port(g_hook));
    int64_t down = s_endpoint(body);
    s_publish(0, "list.import_completed");
    s_publish(0, "list.import_failed");
    s_wait_numbered();
    snprintf(sql, sizeof(sql),
             "SELECT count(*) FROM webhook_delivery_attempts a JOIN webhook_deliveries d ON d.id = a.delivery_id "
             "WHERE d.endpoint_id = %" PRId64,
             down);
    test_db_wait_at_least(&g, sql, 1, WAIT_SECONDS);
    /* still enabled after failures younger than the give-up age */
    snprintf(sql, sizeof(sql), "SELECT count(*) FROM webhook_endpoints WHERE id = %" PRId64 " AND enabled", down);
    assert_int_equal(test_db_count(g.db, sql), 1);
    snprintf(sql, sizeof(sql), "UPDATE webhook_deliveries SET created_at = now() - interval '4 days' WHERE endpoint_id = %" PRId64,
             down);
    test_db_exec(g.db, sql);
    snprintf(sql, sizeof(sql), "SELECT count(*) FROM webhook_endpoints WHERE id = %" PRId64 " AND NOT enabled", down);
    for (int i = 0; i < WAIT_SECONDS * 4 && test_db_count(g.db, sql) == 0; i++) {
        s_hurry();
        usleep(250 * 1000);
    }
    assert_int_equal(test_db_count(g.db, sql), 1);
    char path[96];
    snprintf(path, sizeof(path), "/v1/webhook_endpoints/%" PRId64, down);
    json_t *e = s_api("GET", path, NULL, 200);
    assert_non_null(strstr(json_string_value(json_object_get(e, "disabled_reason")), "HTTP 503"));
    json_decref(e);
    /* the head failed for good; the one behind it waits for an enable */
    snprintf(sql, sizeof(sql),
             "SELECT string_agg(state, ',' ORDER BY event_id) FROM webhook_deliveries WHERE endpoint_id = %" PRId64, down);
    PGresult *res = PQexec(g.db, sql);
    assert_string_equal(PQgetvalue(res, 0, 0), "failed,pending");
    PQclear(res);
    s_wait_delivered(watch);
    snprintf(sql, sizeof(sql),
             "SELECT count(*) FROM events WHERE type = 'webhook_endpoint.disabled' AND (payload->>'webhook_endpoint_id')::bigint = "
             "%" PRId64,
             down);
    assert_int_equal(test_db_count(g.db, sql), 1);
    char want[64], got[256];
    snprintf(sql, sizeof(sql),
             "SELECT id FROM events WHERE type = 'webhook_endpoint.disabled' AND (payload->>'webhook_endpoint_id')::bigint = "
             "%" PRId64,
             down);
    res = PQexec(g.db, sql);
    snprintf(want, sizeof(want), "%s", PQgetvalue(res, 0, 0));
    PQclear(res);
    s_delivered("/watch", -1, got, sizeof(got));
    assert_non_null(strstr(got, want));
}

static void test_replay(void **state)
{
    char body[256], path[160];
    snprintf(body, sizeof(body), "{\"url\": \"http://127.0.0.1:%d/replayed\", \"event_types\": [\"list.import_completed\"]}",
             webhook_receiver_port(g_hook));
    int64_t id = s_endpoint(body);
    snprintf(path, sizeof(path), "/v1/webhook_endpoints/%" PRId64 "/replay", id);
    char want[1024], got[1024];
    s_expected(0, "list.import_completed", want, sizeof(want));
    int64_t first = strtoll(want, NULL, 10);
    assert_true(first > 0);

    /* one event: the same webhook-id as its first delivery would have had */
    snprintf(body, sizeof(body), "{\"event_id\": %" PRId64 "}", first);
    json_t *r = s_api("POST", path, body, 202);
    assert_int_equal(json_integer_value(json_object_get(r, "replayed")), 1);
    json_decref(r);
    s_wait_delivered(id);
    char one[32];
    snprintf(one, sizeof(one), "%" PRId64, first);
    s_delivered("/replayed", 0, got, sizeof(got));
    assert_string_equal(got, one);

    /* a range from the start: every matching event, in order, after the one above */
    r = s_api("POST", path, "{\"after\": 0}", 202);
    json_decref(r);
    s_wait_delivered(id);
    char both[1100];
    snprintf(both, sizeof(both), "%s,%s", one, want);
    s_delivered("/replayed", 0, got, sizeof(got));
    assert_string_equal(got, both);

    /* an event of a type the endpoint does not receive is refused */
    s_expected(0, "list.import_failed", want, sizeof(want));
    snprintf(body, sizeof(body), "{\"event_id\": %" PRId64 "}", (int64_t)strtoll(want, NULL, 10));
    json_decref(s_api("POST", path, body, 422));
}

int main(void)
{
    curl_global_init(CURL_GLOBAL_ALL);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_bad_input_changes_nothing),
        cmocka_unit_test(test_ordered_through_failures_and_filtered),
        cmocka_unit_test(test_gone_disables_and_enable_resumes),
        cmocka_unit_test(test_days_of_failures_disable_and_tell),
        cmocka_unit_test(test_replay),
    };
    return cmocka_run_group_tests_name("webhook endpoints", tests, s_setup, s_teardown);
}
