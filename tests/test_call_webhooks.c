/*
 * Call-state webhooks of POST /v1/call. In SQL: the call_events trigger turns every committed
 * transition of a call's attempt into one event, in state order with its own time, however many
 * transitions one statement carries, and none for admin campaigns. End to end: the real impactd
 * dials a call's numbers with the simulated carrier, and its fan-out process posts every event
 * to the call's call_state_url on a local receiver that answers 500 at first: every event still
 * arrives, in order, its webhook-id stable across retries, and each retry is in the delivery log;
 * an event refused for a day is marked failed, kept, and no longer holds back its call's next one.
 *
 * Every wait polls for a state with a generous bound that only turns a hang into a failure.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <inttypes.h>
#include <jansson.h>
#include <libpq-fe.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "actors/store/db.h"
#include "tests/dialing.h"
#include "tests/support.h"
#include "tests/webhook_receiver.h"

/* ---- queries ---------------------------------------------------------------------------------- */

/* The events of an attempt as "type@occurred_at" joined by spaces, in id order. */
static void s_events_of(PGconn *db, int64_t attempt, char *out, size_t size)
{
    char sql[512];
    snprintf(
        sql, sizeof(sql),
        "SELECT coalesce(string_agg(type || '@' || to_char(occurred_at AT TIME ZONE 'UTC', 'HH24:MI:SS'), ' ' ORDER BY id), '') "
        "FROM call_events WHERE attempt_id = %" PRId64,
        attempt);
    PGresult *res = PQexec(db, sql);
    assert_int_equal(PQresultStatus(res), PGRES_TUPLES_OK);
    snprintf(out, size, "%s", PQgetvalue(res, 0, 0));
    PQclear(res);
}

/* ---- the trigger, in SQL ---------------------------------------------------------------------- */

static void test_the_trigger_writes_one_event_per_transition(void **state)
{
    char err[512], sql[1024];
    char *url = support_db_create("test_call_events");
    PGconn *db = db_connect(url, err, sizeof(err));
    assert_non_null(db);
    assert_true(db_migrate(db, err, sizeof(err)) >= 1);
    PGconn *listener = db_connect(url, err, sizeof(err));
    assert_non_null(listener);
    test_db_exec(listener, "LISTEN call_events");
    int64_t account;
    assert_int_equal(db_account_create(db, "Webhooks", &account, err, sizeof(err)), 0);
    snprintf(sql, sizeof(sql),
             "INSERT INTO campaigns (id, account_id, name, origin) OVERRIDING SYSTEM VALUE VALUES (501, %" PRId64
             ", 'a call', 'call'), (502, %" PRId64 ", 'admin', 'admin')",
             account, account);
    test_db_exec(db, sql);
    snprintf(sql, sizeof(sql),
             "INSERT INTO calls (id, account_id, campaign_id, call_state_url, numbers_given) OVERRIDING SYSTEM VALUE "
             "VALUES (77, %" PRId64 ", 501, 'http://127.0.0.1:9/state', 3)",
             account);
    test_db_exec(db, sql);
#define ATTEMPT(id, campaign, dialed, answered, bridged, ended, outcome)                                                           \
    "(" #id ", " #campaign ", " dialed ", " answered ", " bridged ", " ended ", " outcome ")"
    const char *insert_head =
        "INSERT INTO call_attempts AS t (call_id, account_id, campaign_id, number_id, phone, from_number, caller_id, dialed_at, "
        "answered_at, bridged_at, ended_at, outcome, abandoned) SELECT id, (SELECT min(id) FROM accounts), campaign, id, "
        "'+12025550100', '+12125550142', NULL, d::timestamptz, a::timestamptz, b::timestamptz, e::timestamptz, o, coalesce(o = "
        "'abandoned', false) "
        "FROM (VALUES ";
    const char *upsert_tail =
        ") AS v(id, campaign, d, a, b, e, o) ON CONFLICT (call_id) DO UPDATE SET "
        "caller_id = 9, answered_at = coalesce(EXCLUDED.answered_at, t.answered_at), "
        "bridged_at = coalesce(EXCLUDED.bridged_at, t.bridged_at), "
        "ended_at = coalesce(EXCLUDED.ended_at, t.ended_at), outcome = coalesce(EXCLUDED.outcome, t.outcome), "
        "abandoned = EXCLUDED.abandoned OR t.abandoned";
    /* one batch: a dial alone, a whole call in one row, and an admin campaign's dial */
    snprintf(sql, sizeof(sql), "%s%s, %s, %s%s", insert_head,
             ATTEMPT(1, 501, "'2026-01-01 10:00:00Z'", "NULL", "NULL", "NULL", "NULL"),
             ATTEMPT(2, 501, "'2026-01-01 10:00:01Z'", "'2026-01-01 10:00:05Z'", "NULL", "'2026-01-01 10:00:09Z'", "'machine'"),
             ATTEMPT(3, 502, "'2026-01-01 10:00:02Z'", "NULL", "NULL", "NULL", "NULL"), upsert_tail);
    test_db_exec(db, sql);
    /* the next batch: answer, bridge and end of attempt 1 in one row, as the group commit does */
    snprintf(sql, sizeof(sql), "%s%s, %s%s", insert_head,
             ATTEMPT(1, 501, "'2026-01-01 10:00:00Z'", "'2026-01-01 10:00:03Z'", "'2026-01-01 10:00:04Z'", "'2026-01-01 10:00:20Z'",
                     "'talked'"),
             ATTEMPT(3, 502, "'2026-01-01 10:00:02Z'", "'2026-01-01 10:00:04Z'", "NULL", "'2026-01-01 10:00:06Z'", "'abandoned'"),
             upsert_tail);
    test_db_exec(db, sql);
    /* a write without a transition (the caller changes, say) makes no event */
    test_db_exec(db, "UPDATE call_attempts SET caller_id = 10 WHERE call_id IN (1, 2)");

    char events[512];
    s_events_of(db, 1, events, sizeof(events));
    assert_string_equal(events, "call.dialing@10:00:00 call.answered@10:00:03 call.bridged@10:00:04 call.ended@10:00:20");
    s_events_of(db, 2, events, sizeof(events));
    assert_string_equal(events, "call.dialing@10:00:01 call.answered@10:00:05 call.ended@10:00:09");
    s_events_of(db, 3, events, sizeof(events));
    assert_string_equal(events, "");
    /* within an attempt, ids follow the states; the rows say which call they belong to */
    assert_int_equal(test_db_count(db, "SELECT count(*) FROM call_events WHERE call_id = 77 AND campaign_id = 501 AND account_id = "
                                       "(SELECT min(id) FROM accounts) AND attempts = 0 AND delivered_at IS NULL"),
                     7);

    /* each payload is the attempt as it stood at its transition */
    PGresult *res = PQexec(db, "SELECT type, payload::text FROM call_events WHERE attempt_id = 1 ORDER BY id");
    assert_int_equal(PQntuples(res), 4);
    for (int i = 0; i < 4; i++) {
        json_t *data = json_loads(PQgetvalue(res, i, 1), 0, NULL);
        assert_non_null(data);
        assert_int_equal(json_integer_value(json_object_get(data, "call_id")), 77);
        assert_string_equal(json_string_value(json_object_get(data, "uri")), "/v1/calls/77");
        assert_int_equal(json_integer_value(json_object_get(data, "attempt_id")), 1);
        assert_string_equal(json_string_value(json_object_get(data, "phone")), "+12025550100");
        assert_string_equal(json_string_value(json_object_get(data, "dialed_at")), "2026-01-01T10:00:00.000Z");
        assert_int_equal(json_object_get(data, "answered_at") != NULL, i >= 1);
        assert_int_equal(json_object_get(data, "bridged_at") != NULL, i >= 2);
        assert_int_equal(json_object_get(data, "outcome") != NULL, i == 3);
        if (i == 3) {
            assert_string_equal(json_string_value(json_object_get(data, "outcome")), "talked");
            assert_true(json_is_false(json_object_get(data, "abandoned")));
            assert_int_equal(json_integer_value(json_object_get(data, "caller_id")), 9);
            assert_string_equal(json_string_value(json_object_get(data, "ended_at")), "2026-01-01T10:00:20.000Z");
        }
        json_decref(data);
    }
    PQclear(res);

    /* the deliverer is woken */
    assert_int_equal(PQconsumeInput(listener), 1);
    PGnotify *n = PQnotifies(listener);
    assert_non_null(n);
    assert_string_equal(n->relname, "call_events");
    PQfreemem(n);

    PQfinish(listener);
    PQfinish(db);
    support_db_drop(&url);
}

/* The receiver fails the first FAIL_FIRST requests, then accepts. */
static int s_fail_first(void *arg, const char *path, int nth, int *delay_ms)
{
    return nth <= *(const int *)arg ? 500 : 204;
}

/* ---- end to end ------------------------------------------------------------------------------- */

#define FAIL_FIRST 3
#define NUMBERS    4

static const int s_failures = FAIL_FIRST;

static test_dialing_t g;

static int s_setup(void **state)
{
    /* the receiver runs on this machine */
    test_dialing_start(&g, "agents = 3\ntalk_mean = 5\nwrap_mean = 1\nring_h_mean = 3\nring_m_mean = 5\nring_timeout = 8\n", true);
    return 0;
}

static int s_teardown(void **state)
{
    test_dialing_stop(&g);
    return 0;
}

/* The types an attempt's row says it went through, in state order. */
static void s_expected_types(int64_t attempt, char *out, size_t size)
{
    char sql[512];
    snprintf(sql, sizeof(sql),
             "SELECT concat_ws(' ', 'call.dialing', CASE WHEN answered_at IS NOT NULL THEN 'call.answered' END, "
             "CASE WHEN bridged_at IS NOT NULL THEN 'call.bridged' END, CASE WHEN ended_at IS NOT NULL THEN 'call.ended' END) "
             "FROM call_attempts WHERE call_id = %" PRId64,
             attempt);
    PGresult *res = PQexec(g.db, sql);
    assert_int_equal(PQntuples(res), 1);
    snprintf(out, size, "%s", PQgetvalue(res, 0, 0));
    PQclear(res);
}

static void test_every_call_event_reaches_the_call_state_url(void **state)
{
    webhook_receiver_t *hook = webhook_receiver_new(s_fail_first, (void *)&s_failures);
    assert_non_null(hook);
    char body[1024], sql[512];

    /* an admin campaign's attempts are nobody's call states */
    json_t *admin = test_call(g.server, g.server->key, g.server->auth, "POST", "/v1/campaigns", "application/json",
                              "{\"name\": \"Admin\", \"dialer_type\": \"Power\", \"from\": \"2125550142\"}", 0, 201);
    int64_t admin_campaign = json_integer_value(json_object_get(admin, "id"));
    json_decref(admin);
    snprintf(sql, sizeof(sql),
             "INSERT INTO call_attempts (call_id, account_id, campaign_id, number_id, phone, from_number, dialed_at, ended_at, "
             "outcome) SELECT 900000000001, account_id, id, 1, '+12025550199', '+12125550142', now(), now(), 'busy' "
             "FROM campaigns WHERE id = %" PRId64,
             admin_campaign);
    test_db_exec(g.db, sql);

    snprintf(body, sizeof(body),
             "{\"dialer_type\": \"Power\", \"from\": \"2125550142\", \"call_state_url\": \"http://127.0.0.1:%d/state?c=1\","
             " \"phone_number\": [\"202-555-0120\", \"202-555-0121\", \"202-555-0122\", \"202-555-0123\"]}",
             webhook_receiver_port(hook));
    json_t *call = test_call(g.server, g.server->key, g.server->auth, "POST", "/v1/call", "application/json", body, 0, 201);
    int64_t id = json_integer_value(json_object_get(call, "id"));
    int64_t campaign = json_integer_value(json_object_get(call, "campaign_id"));
    json_decref(call);
    test_move_into_calling_hours(g.db, campaign);

    /* every number dialed and every attempt ended; then the call is stopped so no more start */
    snprintf(sql, sizeof(sql), "SELECT count(DISTINCT number_id) FROM call_attempts WHERE campaign_id = %" PRId64, campaign);
    test_db_wait_equal(&g, sql, NUMBERS, 120);
    char path[96];
    snprintf(path, sizeof(path), "/v1/calls/%" PRId64 "/stop", id);
    json_decref(test_call(g.server, g.server->key, g.server->auth, "POST", path, NULL, NULL, 0, 200));
    snprintf(sql, sizeof(sql), "SELECT count(*) FROM call_attempts WHERE campaign_id = %" PRId64 " AND ended_at IS NULL", campaign);
    test_db_wait_equal(&g, sql, 0, 120);
    /* every event delivered, none failed */
    snprintf(sql, sizeof(sql), "SELECT count(*) FROM call_events WHERE call_id = %" PRId64 " AND delivered_at IS NULL", id);
    test_db_wait_equal(&g, sql, 0, 120);

    snprintf(sql, sizeof(sql), "SELECT count(*) FROM call_events WHERE campaign_id = %" PRId64, admin_campaign);
    assert_int_equal(test_db_count(g.db, sql), 0);
    snprintf(sql, sizeof(sql), "SELECT count(*) FROM call_events WHERE call_id = %" PRId64, id);
    int64_t n_events = test_db_count(g.db, sql);
    snprintf(sql, sizeof(sql), "SELECT count(*) FROM call_attempts WHERE campaign_id = %" PRId64, campaign);
    int64_t n_attempts = test_db_count(g.db, sql);
    assert_true(n_attempts >= NUMBERS && n_events >= 2 * n_attempts);

    /* the receiver's view: ids as headers and in bodies, first receipts in id order (a call's next
     * event waits for the one before), each event delivered once its 500s were retried */
    static webhook_received_t got[WEBHOOK_RECEIVED_MAX];
    int n_got = webhook_receiver_received(hook, got, WEBHOOK_RECEIVED_MAX);
    assert_true(n_got >= n_events + FAIL_FIRST);
    int64_t last_first = 0, delivered = 0;
    json_t *by_attempt = json_object(); /* attempt id -> types in order of first receipt */
    time_t now = time(NULL);
    for (int i = 0; i < n_got; i++) {
        const webhook_received_t *rec = &got[i];
        json_t *event = json_loads(rec->body, 0, NULL);
        assert_non_null(event);
        int64_t event_id = json_integer_value(json_object_get(event, "id"));
        assert_true(event_id > 0);
        assert_int_equal(rec->id, event_id);
        assert_true(rec->timestamp > now - 600 && rec->timestamp <= now + 5);
        json_t *data = json_object_get(event, "data");
        assert_int_equal(json_integer_value(json_object_get(data, "call_id")), id);
        snprintf(path, sizeof(path), "/v1/calls/%" PRId64, id);
        assert_string_equal(json_string_value(json_object_get(data, "uri")), path);
        assert_non_null(json_string_value(json_object_get(event, "occurred_at")));
        bool first = event_id > last_first;
        if (!first) {
            /* only a retry repeats an id: of an event not yet delivered, and the latest one */
            assert_int_equal(event_id, last_first);
            assert_int_equal(got[i - 1].status, 500);
        } else {
            last_first = event_id;
            char key[32];
            snprintf(key, sizeof(key), "%lld", (long long)json_integer_value(json_object_get(data, "attempt_id")));
            json_t *types = json_object_get(by_attempt, key);
            if (types == NULL)
                json_object_set_new(by_attempt, key, types = json_array());
            json_array_append(types, json_object_get(event, "type"));
        }
        if (rec->status == 204)
            delivered++;
        json_decref(event);
    }
    assert_int_equal(delivered, n_events); /* exactly once each, as the receiver saw it */
    assert_int_equal((int64_t)json_object_size(by_attempt), n_attempts);

    /* per attempt: every state its row went through, in order */
    const char *key;
    json_t *types;
    json_object_foreach(by_attempt, key, types)
    {
        char want[128], got[128] = "";
        s_expected_types(strtoll(key, NULL, 10), want, sizeof(want));
        size_t i;
        json_t *type;
        json_array_foreach(types, i, type)
        {
            size_t used = strlen(got);
            snprintf(got + used, sizeof(got) - used, "%s%s", i ? " " : "", json_string_value(type));
        }
        assert_string_equal(got, want);
    }
    json_decref(by_attempt);

    /* the delivery log has every attempt, the 500s with their status */
    snprintf(sql, sizeof(sql),
             "SELECT count(*) FROM call_event_deliveries d JOIN call_events e ON e.id = d.event_id WHERE e.call_id = %" PRId64
             " AND d.http_status = 500 AND d.error = 'HTTP 500'",
             id);
    assert_int_equal(test_db_count(g.db, sql), FAIL_FIRST);
    snprintf(sql, sizeof(sql),
             "SELECT count(*) FROM call_event_deliveries d JOIN call_events e ON e.id = d.event_id WHERE e.call_id = %" PRId64, id);
    assert_int_equal(test_db_count(g.db, sql), n_got);
    webhook_receiver_destroy(&hook);
}

/* An event still refused after a day is marked failed and kept, and the call's next event is
 * then posted: a receiver gone for good does not hold a call's later events forever. */
static void test_a_day_old_event_fails_and_is_kept(void **state)
{
    char sql[1024];
    /* a call reporting to a port nothing listens on, with events written as the trigger would */
    test_db_exec(g.db, "INSERT INTO campaigns (account_id, name, origin) SELECT min(id), 'Unreachable', 'call' FROM accounts");
    test_db_exec(g.db, "INSERT INTO calls (account_id, campaign_id, call_state_url, numbers_given) SELECT account_id, id, "
                       "'http://127.0.0.1:9/state', 1 FROM campaigns WHERE name = 'Unreachable'");
    const char *event = "INSERT INTO call_events (account_id, call_id, campaign_id, attempt_id, type, payload, occurred_at, "
                        "created_at) SELECT account_id, id, campaign_id, 800000000001, '%s', '{}', now() - interval '%s', "
                        "now() - interval '%s' FROM calls WHERE call_state_url = 'http://127.0.0.1:9/state'";
    snprintf(sql, sizeof(sql), event, "call.dialing", "25 hours", "25 hours");
    test_db_exec(g.db, sql);
    snprintf(sql, sizeof(sql), event, "call.ended", "1 second", "1 second");
    test_db_exec(g.db, sql);
    test_db_exec(g.db, "NOTIFY call_events");

    test_db_wait_equal(
        &g,
        "SELECT count(*) FROM call_events WHERE attempt_id = 800000000001 AND type = 'call.dialing' AND failed_at IS "
        "NOT NULL AND delivered_at IS NULL AND attempts = 1 AND last_error IS NOT NULL",
        1, 30);
    /* the next one is tried, and only scheduled again: it is not a day old */
    test_db_wait_equal(&g,
                       "SELECT count(*) FROM call_events WHERE attempt_id = 800000000001 AND type = 'call.ended' AND attempts >= 1 "
                       "AND failed_at IS NULL AND delivered_at IS NULL",
                       1, 30);
    assert_int_equal(test_db_count(g.db, "SELECT count(*) FROM call_event_deliveries d JOIN call_events e ON e.id = d.event_id "
                                         "WHERE e.attempt_id = 800000000001 AND e.type = 'call.dialing' AND d.http_status IS NULL "
                                         "AND d.error IS NOT NULL"),
                     1);
}

int main(void)
{
    curl_global_init(CURL_GLOBAL_ALL);
    const struct CMUnitTest sql[] = {
        cmocka_unit_test(test_the_trigger_writes_one_event_per_transition),
    };
    const struct CMUnitTest end_to_end[] = {
        cmocka_unit_test(test_every_call_event_reaches_the_call_state_url),
        cmocka_unit_test(test_a_day_old_event_fails_and_is_kept),
    };
    int failed = cmocka_run_group_tests_name("call_events trigger", sql, NULL, NULL);
    failed += cmocka_run_group_tests_name("call-state webhooks", end_to_end, s_setup, s_teardown);
    return failed;
}
