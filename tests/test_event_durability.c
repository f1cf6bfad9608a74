/*
 * No event is lost or repeated when processes die: a busy Power campaign runs on the real
 * impactd while the fan-out process (which numbers events) is killed with SIGKILL twice and the
 * campaign's dialer once. Afterwards the events API, read from the start with its cursor, must
 * hold for every call attempt exactly the events its committed state implies (dialing; answered,
 * bridged, ended when it got there), each once, and the ids must have no gap.
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
#include "tests/support.h"

static test_dialing_t g;

static int s_setup(void **state)
{
    test_dialing_start(&g, TEST_SCENARIO_SHORT_CALLS, false);
    return 0;
}

static int s_teardown(void **state)
{
    test_dialing_stop(&g);
    return 0;
}

static int64_t s_ended(int64_t campaign)
{
    char sql[160];
    snprintf(sql, sizeof(sql), "SELECT count(*) FROM call_attempts WHERE campaign_id = %" PRId64 " AND ended_at IS NOT NULL",
             campaign);
    return test_db_count(g.db, sql);
}

static void s_wait_more_calls(int64_t campaign, int64_t more)
{
    char sql[160];
    snprintf(sql, sizeof(sql), "SELECT count(*) FROM call_attempts WHERE campaign_id = %" PRId64 " AND ended_at IS NOT NULL",
             campaign);
    test_db_wait_at_least(&g, sql, s_ended(campaign) + more, 120);
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

static void test_no_event_lost_when_fanout_and_dialer_are_killed(void **state)
{
    int64_t campaign = test_campaign_create(&g, "Durability", "Power");
    test_campaign_import(&g, campaign, 0, 600);
    test_move_into_calling_hours(g.db, campaign);
    char dialer[48];
    test_campaign_action(&g, campaign, "start");
    snprintf(dialer, sizeof(dialer), "dialer:%" PRId64, campaign);
    test_wait_process(&g, dialer, 0);
    s_wait_more_calls(campaign, 20);

    /* the numbering process dies; the campaign goes on, its events wait in the inbox */
    int fanout = s_kill("fanout", 0);
    s_wait_more_calls(campaign, 20);
    /* the dialer dies mid-call: its successor ends what it left open, and those ends are events too */
    int first_dialer = s_kill(dialer, 0);
    test_wait_process(&g, dialer, first_dialer);
    s_wait_more_calls(campaign, 20);
    s_kill("fanout", fanout);
    s_wait_more_calls(campaign, 10);

    test_campaign_action(&g, campaign, "stop");
    char sql[256];
    snprintf(sql, sizeof(sql), "SELECT count(*) FROM call_attempts WHERE campaign_id = %" PRId64 " AND ended_at IS NULL", campaign);
    test_db_wait_equal(&g, sql, 0, 120);
    test_wait_process(&g, "fanout", 0);
    test_db_wait_equal(&g, "SELECT count(*) FROM event_inbox", 0, 120);

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
    /* the kills happened: two fan-out restarts and one dialer restart */
    int pid, restarts;
    char state_name[32];
    test_process(&g, "fanout", &pid, &restarts, state_name, sizeof(state_name));
    assert_true(restarts >= 2);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_no_event_lost_when_fanout_and_dialer_are_killed),
    };
    return cmocka_run_group_tests(tests, s_setup, s_teardown);
}
