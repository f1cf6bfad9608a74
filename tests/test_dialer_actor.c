/*
 * The dialer process end to end: the real impactd with a list imported through the API, a
 * campaign started, its dialer supervised, dialing with the simulated carrier and callers at a
 * high --sim-speed, and every attempt in PostgreSQL. The dialer is killed with SIGKILL in the
 * middle of the campaign; it must be restarted, close what its predecessor left open, never dial
 * a number twice inside its recycle window, and carry on. A whole impactd restart brings the
 * dialer back, and stopping the campaign ends it for good. A Preview campaign follows pause and
 * resume and gives back what its callers were previewing when it stops. A Predictive campaign
 * with machine detection dials ahead of its callers, leaves voicemail, never puts an abandoned
 * call through, and finds numbers whose calling hours open after its first pass over the list.
 * A campaign that runs out of numbers publishes campaign.numbers_needed once per dry spell.
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
#include <math.h>
#include <libpq-fe.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "tests/dialing.h"
#include "tests/support.h"

#define LIST_SIZE 400
#define BLOCKED   5

static test_dialing_t g;

static json_t *s_call(const char *method, const char *path, const char *content_type, const char *body, size_t len, long want)
{
    return test_call(g.server, g.server->key, g.server->auth, method, path, content_type, body, len, want);
}

/* The campaign's dialer in /v1/health: its pid (0 when there is none), restarts and state. */
static void s_dialer_process(int64_t campaign, int *pid, int *restarts, char *state, size_t state_size)
{
    char name[48];
    snprintf(name, sizeof(name), "dialer:%" PRId64, campaign);
    test_process(&g, name, pid, restarts, state, state_size);
}

static int s_wait_dialer(int64_t campaign, int not_pid)
{
    char name[48];
    snprintf(name, sizeof(name), "dialer:%" PRId64, campaign);
    return test_wait_process(&g, name, not_pid);
}

/* The invariants that must hold whatever happened to the dialer. */
static void s_check_attempts(int64_t campaign)
{
    char sql[512];
    /* never twice inside the recycle window (1 hour) */
    snprintf(sql, sizeof(sql),
             "SELECT count(*) FROM call_attempts a JOIN call_attempts b ON a.number_id = b.number_id AND a.call_id <> b.call_id "
             "AND b.dialed_at >= a.dialed_at AND b.dialed_at < a.dialed_at + interval '1 hour' WHERE a.campaign_id = %" PRId64,
             campaign);
    assert_int_equal(test_db_count(g.db, sql), 0);
    /* every dial was claimed: a number's attempt count covers its attempts */
    snprintf(sql, sizeof(sql),
             "SELECT count(*) FROM numbers n WHERE n.campaign_id = %" PRId64
             " AND n.attempts < (SELECT count(*) FROM call_attempts a WHERE a.number_id = n.id)",
             campaign);
    assert_int_equal(test_db_count(g.db, sql), 0);
    /* blocked numbers were never dialed */
    snprintf(
        sql, sizeof(sql),
        "SELECT count(*) FROM call_attempts a JOIN numbers n ON n.id = a.number_id WHERE n.blocked AND a.campaign_id = %" PRId64,
        campaign);
    assert_int_equal(test_db_count(g.db, sql), 0);
}

/* GET /v1/campaigns/{id}/stats: from shared memory, for the campaign's own account only. */
static void s_check_stats(int64_t campaign)
{
    char path[96];
    snprintf(path, sizeof(path), "/v1/campaigns/%" PRId64 "/stats", campaign);
    json_t *stats = NULL;
    for (int i = 0; i < 300; i++) {
        stats = s_call("GET", path, NULL, NULL, 0, 200);
        json_t *bridges = json_object_get(json_object_get(stats, "bridge_decision_us"), "count");
        if (json_integer_value(json_object_get(stats, "dials")) > 0 && json_integer_value(bridges) > 0)
            break;
        json_decref(stats);
        stats = NULL;
        usleep(100000);
    }
    assert_non_null(stats);
    assert_int_equal(json_integer_value(json_object_get(stats, "campaign_id")), campaign);
    assert_string_equal(json_string_value(json_object_get(stats, "status")), "running");
    json_t *callers = json_object_get(stats, "callers");
    int64_t present = json_integer_value(json_object_get(callers, "on_hold")) +
                      json_integer_value(json_object_get(callers, "on_call")) +
                      json_integer_value(json_object_get(callers, "wrap_up"));
    assert_int_equal(present, 5);
    /* every call put through was bridged first, and the percentiles are ordered */
    json_t *decisions = json_object_get(stats, "bridge_decision_us");
    assert_true(json_integer_value(json_object_get(decisions, "count")) >= json_integer_value(json_object_get(stats, "talked")));
    json_int_t p50 = json_integer_value(json_object_get(decisions, "p50"));
    json_int_t p99 = json_integer_value(json_object_get(decisions, "p99"));
    assert_true(p50 <= p99 && p99 <= json_integer_value(json_object_get(decisions, "max")));
    json_decref(stats);

    /* no key: the store's 401; a wrong secret: 401; another account's key: as if not running */
    json_decref(test_call(g.server, NULL, NULL, "GET", path, NULL, NULL, 0, 401));
    json_decref(test_call(g.server, g.server->key, "ia_wrong", "GET", path, NULL, NULL, 0, 401));
    const char *args[] = {"accounts", "create", "Other", NULL};
    char *out = test_server_cli(g.server, args);
    assert_non_null(out);
    char key[128] = "", auth[128] = "";
    for (char *line = strtok(out, "\n"); line; line = strtok(NULL, "\n")) {
        if (strncmp(line, "IMPACT_API_KEY=", 15) == 0)
            snprintf(key, sizeof(key), "%s", line + 15);
        if (strncmp(line, "IMPACT_API_AUTH=", 16) == 0)
            snprintf(auth, sizeof(auth), "%s", line + 16);
    }
    free(out);
    json_t *problem = test_call(g.server, key, auth, "GET", path, NULL, NULL, 0, 404);
    assert_string_equal(json_string_value(json_object_get(problem, "type")), "/problems/no-live-stats");
    json_decref(problem);
    json_decref(test_call(g.server, g.server->key, g.server->auth, "POST", path, NULL, NULL, 0, 405));
    json_decref(test_call(g.server, g.server->key, g.server->auth, "GET", "/v1/campaigns/999999/stats", NULL, NULL, 0, 404));
}

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

static void test_dialer_survives_kill_9_and_restarts(void **state)
{
    int64_t campaign = test_campaign_create(&g, "Dialer actor", "Power");
    test_campaign_import(&g, campaign, 0, LIST_SIZE);
    test_move_into_calling_hours(g.db, campaign);
    char sql[512];
    snprintf(sql, sizeof(sql),
             "INSERT INTO blocked_numbers (account_id, number, campaign_id) SELECT account_id, phone, campaign_id FROM numbers "
             "WHERE campaign_id = %" PRId64 " ORDER BY id LIMIT %d",
             campaign, BLOCKED);
    test_db_exec(g.db, sql);

    test_campaign_action(&g, campaign, "start");
    int first = s_wait_dialer(campaign, 0);
    snprintf(sql, sizeof(sql), "SELECT count(*) FROM call_attempts WHERE campaign_id = %" PRId64 " AND ended_at IS NOT NULL",
             campaign);
    test_db_wait_at_least(&g, sql, 20, 60);

    /* kill -9 mid-campaign: calls are in flight (5 callers, Power) */
    assert_int_equal(kill(first, SIGKILL), 0);
    int64_t attempts_at_kill = test_db_count(g.db, "SELECT count(*) FROM call_attempts");
    int second = s_wait_dialer(campaign, first);
    int pid, restarts;
    char state_name[32];
    s_dialer_process(campaign, &pid, &restarts, state_name, sizeof(state_name));
    assert_true(restarts >= 1);
    assert_int_equal(pid, second);

    /* nothing the dead dialer left open stays open, and the campaign goes on */
    snprintf(sql, sizeof(sql),
             "SELECT count(*) FROM call_attempts WHERE campaign_id = %" PRId64 " AND ended_at IS NULL AND call_id <= 1000000000",
             campaign);
    test_db_wait_equal(&g, sql, 0, 60); /* the successor ends them before it dials */
    test_db_wait_at_least(&g, "SELECT count(*) FROM call_attempts", attempts_at_kill + 20, 60);
    snprintf(sql, sizeof(sql), "SELECT count(DISTINCT (call_id - 1) / 1000000000) FROM call_attempts WHERE campaign_id = %" PRId64,
             campaign);
    assert_int_equal(test_db_count(g.db, sql), 2); /* two dialers, two blocks of call ids */
    s_check_attempts(campaign);

    /* impactd itself restarts: the running campaign gets its dialer back at startup */
    assert_int_equal(test_server_stop(g.server), 0);
    snprintf(sql, sizeof(sql), "SELECT count(*) FROM call_attempts WHERE campaign_id = %" PRId64 " AND ended_at IS NULL", campaign);
    assert_int_equal(test_db_count(g.db, sql), 0); /* a clean stop ends its calls (canceled) */
    snprintf(sql, sizeof(sql), "SELECT count(*) FROM numbers WHERE campaign_id = %" PRId64 " AND status = 'dialing'", campaign);
    assert_int_equal(test_db_count(g.db, sql), 0); /* and gives its claimed numbers back */
    int64_t attempts_at_stop = test_db_count(g.db, "SELECT count(*) FROM call_attempts");
    test_server_start(g.server);
    s_wait_dialer(campaign, 0);
    test_db_wait_at_least(&g, "SELECT count(*) FROM call_attempts", attempts_at_stop + 10, 60);
    s_check_attempts(campaign);

    s_check_stats(campaign);

    /* stopping the campaign ends the dialer for good: it exits 0 and is not restarted */
    test_campaign_action(&g, campaign, "stop");
    for (int i = 0; i < 600; i++) {
        s_dialer_process(campaign, &pid, &restarts, state_name, sizeof(state_name));
        if (pid == 0 && state_name[0] == '\0')
            break;
        usleep(100000);
    }
    assert_int_equal(pid, 0);
    snprintf(sql, sizeof(sql), "SELECT count(*) FROM call_attempts WHERE campaign_id = %" PRId64 " AND ended_at IS NULL", campaign);
    assert_int_equal(test_db_count(g.db, sql), 0);
    snprintf(sql, sizeof(sql), "SELECT count(*) FROM numbers WHERE campaign_id = %" PRId64 " AND status = 'dialing'", campaign);
    assert_int_equal(test_db_count(g.db, sql), 0);
    s_check_attempts(campaign);
}

/* The stats' status of a campaign, polled until it is `want`. */
static void s_wait_stats_status(int64_t campaign, const char *want)
{
    char path[96];
    snprintf(path, sizeof(path), "/v1/campaigns/%" PRId64 "/stats", campaign);
    for (int i = 0; i < 300; i++) {
        json_t *stats = s_call("GET", path, NULL, NULL, 0, 200);
        bool done = strcmp(json_string_value(json_object_get(stats, "status")), want) == 0;
        json_decref(stats);
        if (done)
            return;
        usleep(100000);
    }
    fail_msg("campaign %" PRId64 " never showed %s", campaign, want);
}

/* Preview: the simulated callers look at each number, then dial it; pause and resume reach the
 * dialer; a stop gives back what the callers were previewing. */
static void test_preview_campaign_pauses_resumes_and_stops_clean(void **state)
{
    int64_t campaign = test_campaign_create(&g, "Preview actor", "Preview");
    test_campaign_import(&g, campaign, 0, LIST_SIZE);
    test_move_into_calling_hours(g.db, campaign);
    char sql[256];
    test_campaign_action(&g, campaign, "start");
    s_wait_dialer(campaign, 0);
    snprintf(sql, sizeof(sql), "SELECT count(*) FROM call_attempts WHERE campaign_id = %" PRId64 " AND ended_at IS NOT NULL",
             campaign);
    test_db_wait_at_least(&g, sql, 10, 60);

    test_campaign_action(&g, campaign, "pause");
    s_wait_stats_status(campaign, "paused");
    test_campaign_action(&g, campaign, "start");
    s_wait_stats_status(campaign, "running");
    int64_t before = test_db_count(g.db, sql);
    test_db_wait_at_least(&g, sql, before + 5, 60);

    test_campaign_action(&g, campaign, "stop");
    int pid = 1, restarts;
    char state_name[32];
    for (int i = 0; i < 600 && pid != 0; i++) {
        s_dialer_process(campaign, &pid, &restarts, state_name, sizeof(state_name));
        if (pid != 0)
            usleep(100000);
    }
    assert_int_equal(pid, 0);
    snprintf(sql, sizeof(sql), "SELECT count(*) FROM numbers WHERE campaign_id = %" PRId64 " AND status = 'dialing'", campaign);
    assert_int_equal(test_db_count(g.db, sql), 0);
    snprintf(sql, sizeof(sql), "SELECT count(*) FROM call_attempts WHERE campaign_id = %" PRId64 " AND ended_at IS NULL", campaign);
    assert_int_equal(test_db_count(g.db, sql), 0);
    s_check_attempts(campaign);
}

static int64_t s_upload_message(const char *name)
{
    size_t len;
    unsigned char *wav = test_wav(800, &len);
    char path[96];
    snprintf(path, sizeof(path), "/v1/messages?name=%s", name);
    json_t *m = s_call("POST", path, "audio/wav", (const char *)wav, len, 201);
    int64_t id = json_integer_value(json_object_get(m, "id"));
    json_decref(m);
    free(wav);
    return id;
}

/* Gives the campaign's first `count` numbers the fixed-offset zone where it is `hour`:00 now. */
static void s_set_local_hour(int64_t campaign, int count, int hour)
{
    time_t now = time(NULL);
    struct tm utc;
    gmtime_r(&now, &utc);
    int offset = hour - utc.tm_hour;
    if (offset < -12)
        offset += 24;
    if (offset > 14)
        offset -= 24;
    char zone[32], sql[320];
    if (offset == 0)
        snprintf(zone, sizeof(zone), "Etc/GMT");
    else
        snprintf(zone, sizeof(zone), "Etc/GMT%+d", -offset); /* POSIX sign: Etc/GMT-3 is UTC+3 */
    snprintf(sql, sizeof(sql),
             "UPDATE numbers SET time_zones = ARRAY['%s'] WHERE id IN (SELECT id FROM numbers WHERE campaign_id = %" PRId64
             " ORDER BY id LIMIT %d)",
             zone, campaign, count);
    test_db_exec(g.db, sql);
}

/*
 * A machine verdict ends an answer without a caller, and a person was behind it with the chance
 * of machine detection's false positives (the scenario's 3%): that share of a person counts as a
 * live answer and as an abandon, in the record and so in the abandon rate a restarted dialer
 * starts from. The campaign is paused and its calls ended, so that the restarted dialer (whose
 * own counts start from nothing) reports exactly what it read from the record; it stays paused.
 */
static void s_check_restarted_abandon_rate(int64_t campaign)
{
    char sql[512];
    /* every machine verdict, whatever ended its call then, carries the share; nothing else does */
    snprintf(sql, sizeof(sql),
             "SELECT count(*) FROM call_attempts WHERE campaign_id = %" PRId64 " AND outcome = 'voicemail' AND person_share > 0",
             campaign);
    assert_true(test_db_count(g.db, sql) > 0);
    snprintf(sql, sizeof(sql),
             "SELECT count(*) FROM call_attempts WHERE campaign_id = %" PRId64
             " AND (person_share > 0 AND (abs(person_share - 0.03) > 1e-6 OR bridged_at IS NOT NULL OR abandoned) "
             "OR outcome = 'voicemail' AND person_share = 0)",
             campaign);
    assert_int_equal(test_db_count(g.db, sql), 0);

    test_campaign_action(&g, campaign, "pause");
    snprintf(sql, sizeof(sql), "SELECT count(*) FROM call_attempts WHERE campaign_id = %" PRId64 " AND ended_at IS NULL", campaign);
    test_db_wait_equal(&g, sql, 0, 120);
    int pid, restarts;
    char state_name[32];
    s_dialer_process(campaign, &pid, &restarts, state_name, sizeof(state_name));
    assert_int_equal(kill(pid, SIGKILL), 0);
    s_wait_dialer(campaign, pid);

    char path[96];
    snprintf(path, sizeof(path), "/v1/campaigns/%" PRId64 "/stats", campaign);
    json_t *stats = NULL;
    for (int i = 0; i < 600 && stats == NULL; i++) {
        stats = s_call("GET", path, NULL, NULL, 0, 200);
        if (json_integer_value(json_object_get(stats, "dials")) != 0) {
            json_decref(stats);
            stats = NULL;
            usleep(100000);
        }
    }
    assert_non_null(stats);
    snprintf(sql, sizeof(sql),
             "SELECT (1e6 * sum(CASE WHEN abandoned THEN 1 ELSE person_share::float8 END) / "
             "sum(CASE WHEN outcome IN ('talked', 'abandoned') OR abandoned THEN 1 ELSE person_share::float8 END))::bigint "
             "FROM call_attempts WHERE campaign_id = %" PRId64,
             campaign);
    int64_t expected_ppm = test_db_count(g.db, sql);
    assert_true(expected_ppm > 0);
    double reported = json_real_value(json_object_get(stats, "abandon_rate_30d"));
    assert_true(fabs(reported * 1e6 - (double)expected_ppm) <= 1.0);
    json_decref(stats);
}

static void test_predictive_campaign_dials_ahead_leaves_voicemail_and_keeps_calling_hours(void **state)
{
    char body[512], sql[640];
    int64_t abandonment = s_upload_message("Identification");
    int64_t voicemail = s_upload_message("Voicemail");
    snprintf(body, sizeof(body),
             "{\"name\": \"Predictive actor\", \"dialer_type\": \"Predictive\", \"from\": \"(212) 555-0142\", "
             "\"abandonment_message_id\": %" PRId64 ", \"answering_machine_detection\": true, \"voicemail_message_id\": %" PRId64
             ", \"drop_voicemail_automatically\": true}",
             abandonment, voicemail);
    json_t *c = s_call("POST", "/v1/campaigns", "application/json", body, 0, 201);
    int64_t campaign = json_integer_value(json_object_get(c, "id"));
    json_decref(c);
    test_campaign_import(&g, campaign, 0, LIST_SIZE);
    test_move_into_calling_hours(g.db, campaign);
    const int night = 100; /* the list's first numbers are where it is the middle of the night */
    s_set_local_hour(campaign, night, 2);

    test_campaign_action(&g, campaign, "start");
    s_wait_dialer(campaign, 0);
    snprintf(sql, sizeof(sql), "SELECT count(*) FROM call_attempts WHERE campaign_id = %" PRId64 " AND ended_at IS NOT NULL",
             campaign);
    test_db_wait_at_least(&g, sql, 60, 120);
    snprintf(sql, sizeof(sql), "SELECT count(*) FROM call_attempts WHERE campaign_id = %" PRId64 " AND outcome = 'voicemail'",
             campaign);
    test_db_wait_at_least(&g, sql, 1, 120);

    /* more lines at once than the 5 callers: Power never does that, Predictive must */
    snprintf(sql, sizeof(sql),
             "SELECT max(n) FROM (SELECT count(*) AS n FROM call_attempts a JOIN call_attempts b ON b.campaign_id = a.campaign_id "
             "AND b.dialed_at <= a.dialed_at AND coalesce(b.ended_at, 'infinity') > a.dialed_at WHERE a.campaign_id = %" PRId64
             " GROUP BY a.call_id) AS lines",
             campaign);
    assert_true(test_db_count(g.db, sql) > 5);
    /* an abandoned call was never put through, and a number with a message left is done */
    snprintf(sql, sizeof(sql),
             "SELECT count(*) FROM call_attempts WHERE campaign_id = %" PRId64
             " AND (abandoned AND bridged_at IS NOT NULL OR outcome = 'abandoned' AND NOT abandoned)",
             campaign);
    assert_int_equal(test_db_count(g.db, sql), 0);
    snprintf(sql, sizeof(sql),
             "SELECT count(*) FROM call_attempts a JOIN numbers n ON n.id = a.number_id WHERE a.campaign_id = %" PRId64
             " AND a.outcome = 'voicemail' AND n.status <> 'done'",
             campaign);
    assert_int_equal(test_db_count(g.db, sql), 0);

    /* nobody was called in the middle of their night; once their morning comes, they are */
    snprintf(sql, sizeof(sql),
             "SELECT count(*) FROM call_attempts WHERE number_id IN (SELECT id FROM numbers WHERE campaign_id = %" PRId64
             " ORDER BY id LIMIT %d)",
             campaign, night);
    assert_int_equal(test_db_count(g.db, sql), 0);
    s_set_local_hour(campaign, night, 10);
    test_db_wait_at_least(&g, sql, 1, 120);
    s_check_attempts(campaign);

    s_check_restarted_abandon_rate(campaign);
    test_campaign_action(&g, campaign, "stop");
}

static int64_t s_numbers_needed_events(int64_t campaign)
{
    char path[128];
    snprintf(path, sizeof(path), "/v1/events?campaign_id=%" PRId64 "&type=campaign.numbers_needed&after=0", campaign);
    json_t *page = s_call("GET", path, NULL, NULL, 0, 200);
    int64_t n = (int64_t)json_array_size(json_object_get(page, "items"));
    json_decref(page);
    return n;
}

/* A campaign that runs out of numbers says so once per dry spell, and again after more numbers
 * came and were used up. */
static void test_a_dry_campaign_asks_for_numbers_once(void **state)
{
    int64_t campaign = test_campaign_create(&g, "Dry", "Power");
    test_campaign_import(&g, campaign, 0, 8);
    test_move_into_calling_hours(g.db, campaign);
    char sql[256];
    test_campaign_action(&g, campaign, "start");
    snprintf(sql, sizeof(sql), "SELECT count(*) FROM events WHERE campaign_id = %" PRId64 " AND type = 'campaign.numbers_needed'",
             campaign);
    test_db_wait_at_least(&g, sql, 1, 120);
    /* every number was claimed before it said so */
    snprintf(sql, sizeof(sql), "SELECT count(*) FROM numbers WHERE campaign_id = %" PRId64 " AND attempts = 0", campaign);
    assert_int_equal(test_db_count(g.db, sql), 0);
    /* it stays dry past several of its empty claims (one every 5 s): still one event */
    sleep(12);
    assert_int_equal(s_numbers_needed_events(campaign), 1);
    json_t *page = s_call("GET", "/v1/events?type=campaign.numbers_needed&limit=1", NULL, NULL, 0, 200);
    json_t *data = json_object_get(json_array_get(json_object_get(page, "items"), 0), "data");
    assert_int_equal(json_integer_value(json_object_get(data, "campaign_id")), campaign);
    assert_true(json_is_integer(json_object_get(data, "numbers_waiting")));
    json_decref(page);

    test_campaign_import(&g, campaign, 100, 8);
    /* the new numbers' own time zone (New York) may be outside calling hours at this hour */
    test_move_into_calling_hours(g.db, campaign);
    snprintf(sql, sizeof(sql), "SELECT count(*) FROM events WHERE campaign_id = %" PRId64 " AND type = 'campaign.numbers_needed'",
             campaign);
    test_db_wait_at_least(&g, sql, 2, 120);
    snprintf(sql, sizeof(sql), "SELECT count(*) FROM numbers WHERE campaign_id = %" PRId64 " AND attempts = 0", campaign);
    assert_int_equal(test_db_count(g.db, sql), 0);
    test_campaign_action(&g, campaign, "stop");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_dialer_survives_kill_9_and_restarts),
        cmocka_unit_test(test_preview_campaign_pauses_resumes_and_stops_clean),
        cmocka_unit_test(test_predictive_campaign_dials_ahead_leaves_voicemail_and_keeps_calling_hours),
        cmocka_unit_test(test_a_dry_campaign_asks_for_numbers_once),
    };
    return cmocka_run_group_tests(tests, s_setup, s_teardown);
}
