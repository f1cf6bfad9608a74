/*
 * The caller's desk through the real impactd (docs/caller-api.md): people logged in to a Power
 * campaign worked by nobody else (simulated_callers 0), served by the campaign's dialer over the
 * sim carrier. A caller starts dialing, is connected to a contact with its leads, hangs up,
 * submits a survey (refused first for every kind of bad input, with nothing changed) and goes
 * on; transfers a call cold and another warm and leaves the three-way call; stops. Every action
 * in the wrong state is a 409 naming the state; another caller's session is a 404; an ended one
 * a 401. A session not seen for its timeout is ended: on hold at once, mid-call only once the
 * person has finished talking.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <inttypes.h>
#include <libpq-fe.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "tests/dialing.h"
#include "tests/support.h"

/* People pick up at once, talk long enough for a caller to act (20 s real at 20x). */
#define SCENARIO                                                                                                                   \
    "agents = 1\np_human = 0.95\np_machine = 0.0\np_noans = 0.05\nring_h_mean = 2\nring_h_cv = 0.1\nring_timeout = 20\n"           \
    "talk_mean = 400\ntalk_cv = 0.1\n"
#define WAIT_S 120

static test_dialing_t g;
static int64_t g_account, g_campaign, g_script, g_question, g_yes, g_call_back, g_other_response, g_note, g_cold, g_warm;

typedef struct {
    int64_t id;
    char bearer[128];
    char desk[160]; /* the desk's path */
} caller_t;

static json_t *s_admin(const char *method, const char *path, const char *body, long want)
{
    return test_call(g.server, g.server->key, g.server->auth, method, path, body ? "application/json" : NULL, body, 0, want);
}

static int64_t s_id(json_t *doc)
{
    int64_t id = json_integer_value(json_object_get(doc, "id"));
    json_decref(doc);
    return id;
}

/* A request of the caller's session; the answer's JSON (NULL for none). */
static json_t *s_as(const caller_t *c, const char *method, const char *action, const char *body, long want)
{
    char path[224];
    snprintf(path, sizeof(path), "%s%s%s", c->desk, action[0] ? "/" : "", action);
    test_request_t req = {
        .method = method, .path = path, .header = c->bearer, .body = body, .content_type = body ? "application/json" : NULL};
    test_reply_t r;
    assert_int_equal(test_http(g.server, &req, &r), CURLE_OK);
    if (r.status != want) {
        print_error("%s %s %s -> %ld (wanted %ld): %.*s\n", method, path, body ? body : "", r.status, want, (int)r.body_len,
                    r.body);
        fail();
    }
    json_t *doc = r.body_len ? test_reply_json(&r) : NULL;
    test_reply_free(&r);
    return doc;
}

static const char *s_str(json_t *doc, const char *name)
{
    const char *v = json_string_value(json_object_get(doc, name));
    return v ? v : "";
}

static void s_assert_state(const caller_t *c, const char *state)
{
    json_t *desk = s_as(c, "GET", "", NULL, 200);
    if (strcmp(s_str(desk, "state"), state) != 0) {
        print_error("desk state %s, wanted %s\n", s_str(desk, "state"), state);
        fail();
    }
    json_decref(desk);
}

/* Polls the desk until its state is `state` (a bound that only turns a hang into a failure). */
static json_t *s_wait_state(const caller_t *c, const char *state)
{
    for (int i = 0; i < WAIT_S * 10; i++) {
        json_t *desk = s_as(c, "GET", "", NULL, 200);
        if (strcmp(s_str(desk, "state"), state) == 0)
            return desk;
        json_decref(desk);
        nanosleep(&(struct timespec){.tv_nsec = 100000000}, NULL);
    }
    print_error("the desk never became %s\n", state);
    fail();
    return NULL;
}

/* Polls the desk until it answers 401: the dialer hears of an ended session by notification. */
static void s_wait_logged_out(const caller_t *c)
{
    char path[224];
    snprintf(path, sizeof(path), "%s", c->desk);
    for (int i = 0; i < WAIT_S * 10; i++) {
        test_request_t req = {.method = "GET", .path = path, .header = c->bearer};
        test_reply_t r;
        assert_int_equal(test_http(g.server, &req, &r), CURLE_OK);
        long status = r.status;
        test_reply_free(&r);
        if (status == 401)
            return;
        assert_int_equal(status, 200);
        nanosleep(&(struct timespec){.tv_nsec = 100000000}, NULL);
    }
    fail_msg("the desk of an ended session still answers");
}

static void s_wrong_state(const caller_t *c, const char *action, const char *body, const char *state)
{
    json_t *p = s_as(c, "POST", action, body, 409);
    assert_string_equal(s_str(p, "type"), "/problems/wrong-state");
    assert_string_equal(s_str(p, "state"), state);
    assert_true(json_is_array(json_object_get(p, "actions")));
    json_decref(p);
}

static caller_t s_log_in_to(const char *username, int64_t campaign)
{
    char body[256];
    snprintf(body, sizeof(body), "{\"username\": \"%s\", \"password\": \"desk password 1\", \"campaign_id\": %" PRId64 "}",
             username, campaign);
    caller_t c = {.id = s_id(s_admin("POST", "/v1/callers", body, 201))};
    snprintf(body, sizeof(body), "{\"account_id\": %" PRId64 ", \"username\": \"%s\", \"password\": \"desk password 1\"}",
             g_account, username);
    test_request_t req = {.method = "POST", .path = "/v1/caller_sessions", .content_type = "application/json", .body = body};
    test_reply_t r;
    assert_int_equal(test_http(g.server, &req, &r), CURLE_OK);
    assert_int_equal(r.status, 201);
    json_t *session = test_reply_json(&r);
    test_reply_free(&r);
    snprintf(c.bearer, sizeof(c.bearer), "Authorization: Bearer %s", s_str(session, "token"));
    const char *desk = strstr(s_str(session, "desk_uri"), "/v1/campaigns/");
    assert_non_null(desk);
    snprintf(c.desk, sizeof(c.desk), "%s", desk);
    char want[96];
    snprintf(want, sizeof(want), "/v1/campaigns/%" PRId64 "/caller_sessions/%" PRId64, campaign,
             (int64_t)json_integer_value(json_object_get(session, "id")));
    assert_string_equal(c.desk, want);
    json_decref(session);
    return c;
}

static caller_t s_log_in(const char *username)
{
    return s_log_in_to(username, g_campaign);
}

/* Numbers with leads whose names the desk shows (the script selects first_name). */
static void s_import(int64_t campaign, int first, int count)
{
    char body[256], path[96];
    snprintf(body, sizeof(body),
             "{\"name\": \"Desk list %d\", \"campaign_id\": %" PRId64
             ", \"column_map\": {\"phone\": \"phone\", \"first_name\": \"first_name\", \"last_name\": \"last_name\"}}",
             first, campaign);
    int64_t list = s_id(s_admin("POST", "/v1/lists", body, 201));
    char *csv = malloc(64 + (size_t)count * 48), *p = csv;
    p += sprintf(p, "phone,first_name,last_name\n");
    for (int i = 0; i < count; i++)
        p += sprintf(p, "+1212556%04d,Ann%d,Lee%d\n", first + i, i, i);
    snprintf(path, sizeof(path), "/v1/lists/%" PRId64 "/upload?part=1", list);
    json_decref(test_call(g.server, g.server->key, g.server->auth, "POST", path, "text/csv", csv, (size_t)(p - csv), 200));
    free(csv);
    snprintf(path, sizeof(path), "/v1/lists/%" PRId64 "/import", list);
    json_decref(s_admin("POST", path, NULL, 202));
    char sql[160];
    snprintf(sql, sizeof(sql), "SELECT count(*) FROM lists WHERE id = %" PRId64 " AND status = 'completed'", list);
    test_db_wait_equal(&g, sql, 1, WAIT_S);
}

static int s_setup(void **state)
{
    test_dialing_start(&g, SCENARIO, false);
    json_t *root = s_admin("GET", "/v1", NULL, 200);
    g_account = json_integer_value(json_object_get(json_object_get(root, "account"), "id"));
    json_decref(root);

    char path[128], body[256];
    g_script = s_id(s_admin("POST", "/v1/scripts", "{\"name\": \"Desk\", \"selected_fields\": [\"first_name\"]}", 201));
    snprintf(path, sizeof(path), "/v1/scripts/%" PRId64 "/questions", g_script);
    g_question = s_id(s_admin("POST", path, "{\"text\": \"Can we count on your vote?\"}", 201));
    int64_t other = s_id(s_admin("POST", path, "{\"text\": \"Volunteer?\"}", 201));
    snprintf(path, sizeof(path), "/v1/scripts/%" PRId64 "/questions/%" PRId64 "/possible_responses", g_script, g_question);
    g_yes = s_id(s_admin("POST", path, "{\"value\": \"Yes\", \"keypad\": 1}", 201));
    g_call_back = s_id(s_admin("POST", path, "{\"value\": \"Call back\", \"keypad\": 2, \"retry\": true}", 201));
    snprintf(path, sizeof(path), "/v1/scripts/%" PRId64 "/questions/%" PRId64 "/possible_responses", g_script, other);
    g_other_response = s_id(s_admin("POST", path, "{\"value\": \"Sure\"}", 201));
    snprintf(path, sizeof(path), "/v1/scripts/%" PRId64 "/notes", g_script);
    g_note = s_id(s_admin("POST", path, "{\"label\": \"Comments\"}", 201));
    snprintf(path, sizeof(path), "/v1/scripts/%" PRId64 "/transfers", g_script);
    g_cold = s_id(s_admin("POST", path,
                          "{\"label\": \"Field office\", \"phone_number\": \"+12125550100\", \"transfer_type\": \"cold\"}", 201));
    g_warm = s_id(
        s_admin("POST", path, "{\"label\": \"Supervisor\", \"phone_number\": \"+12125550101\", \"transfer_type\": \"warm\"}", 201));

    g_campaign = test_campaign_create(&g, "Desk", "Power");
    snprintf(path, sizeof(path), "/v1/campaigns/%" PRId64, g_campaign);
    snprintf(body, sizeof(body), "{\"script_id\": %" PRId64 ", \"simulated_callers\": 0}", g_script);
    json_decref(s_admin("PATCH", path, body, 200));
    s_import(g_campaign, 0, 60);
    test_move_into_calling_hours(g.db, g_campaign);
    test_campaign_action(&g, g_campaign, "start");
    char dialer[48];
    snprintf(dialer, sizeof(dialer), "dialer:%" PRId64, g_campaign);
    test_wait_process(&g, dialer, 0);
    return 0;
}

static int s_teardown(void **state)
{
    test_dialing_stop(&g);
    return 0;
}

static int64_t s_count(const char *fmt, int64_t a)
{
    char sql[512];
    snprintf(sql, sizeof(sql), fmt, a);
    return test_db_count(g.db, sql);
}

static void s_wait_count(const char *fmt, int64_t a, int64_t want)
{
    char sql[512];
    snprintf(sql, sizeof(sql), fmt, a);
    test_db_wait_equal(&g, sql, want, WAIT_S);
}

static void test_a_caller_works_through_calls_and_surveys(void **state)
{
    caller_t ada = s_log_in("ada");
    json_t *desk = s_as(&ada, "GET", "", NULL, 200);
    assert_string_equal(s_str(desk, "state"), "idle");
    assert_string_equal(s_str(desk, "dialer_type"), "Power");
    assert_int_equal(json_array_size(json_object_get(desk, "actions")), 1);
    json_decref(desk);
    s_wrong_state(&ada, "hang_up", NULL, "idle");
    s_wrong_state(&ada, "results", "{\"then\": \"continue\"}", "idle");

    desk = s_as(&ada, "POST", "start", NULL, 200);
    char started[16];
    snprintf(started, sizeof(started), "%s", s_str(desk, "state"));
    json_decref(desk);
    assert_true(strcmp(started, "on_hold") == 0 || strcmp(started, "connected") == 0);
    if (strcmp(started, "on_hold") == 0)
        s_wrong_state(&ada, "start", NULL, "on_hold");

    /* connected to a contact: its lead shows the fields the script selects, and only those */
    desk = s_wait_state(&ada, "connected");
    json_t *call = json_object_get(desk, "call");
    int64_t first_call = json_integer_value(json_object_get(call, "id"));
    assert_true(first_call > 0);
    assert_string_equal(s_str(call, "state"), "connected");
    json_decref(desk);
    for (int i = 0; i < WAIT_S * 10; i++) {
        desk = s_as(&ada, "GET", "", NULL, 200);
        if (json_is_array(json_object_get(json_object_get(desk, "contact"), "leads")))
            break;
        json_decref(desk);
        desk = NULL;
        nanosleep(&(struct timespec){.tv_nsec = 100000000}, NULL);
    }
    assert_non_null(desk);
    json_t *contact = json_object_get(desk, "contact");
    json_t *lead = json_array_get(json_object_get(contact, "leads"), 0);
    int64_t lead_id = json_integer_value(json_object_get(lead, "id"));
    assert_true(strncmp(s_str(json_object_get(lead, "fields"), "first_name"), "Ann", 3) == 0);
    assert_null(json_object_get(json_object_get(lead, "fields"), "last_name"));
    assert_string_equal(s_str(contact, "phone"), s_str(json_object_get(desk, "call"), "phone"));
    int64_t number = json_integer_value(json_object_get(contact, "number_id"));
    json_decref(desk);
    s_wrong_state(&ada, "results", "{\"then\": \"continue\"}", "connected");
    s_wrong_state(&ada, "dial", NULL, "connected");

    /* hanging up: wrap-up, with the survey of that call due */
    json_decref(s_as(&ada, "POST", "hang_up", NULL, 200));
    desk = s_wait_state(&ada, "wrap_up");
    assert_int_equal(json_integer_value(json_object_get(desk, "survey_due_call_id")), first_call);
    json_decref(desk);

    /* bad surveys change nothing */
    const char *bad[] = {
        "{}",
        "{\"then\": \"later\"}",
        "{\"then\": \"continue\", \"colour\": \"blue\"}",
        "not json",
        "[1]",
        "{\"then\": \"continue\", \"answers\": {\"a\": 1}}",
        "{\"then\": \"continue\", \"answers\": [{\"question_id\": 1, \"possible_response_id\": 999999999}]}",
        "{\"then\": \"continue\", \"machine\": \"no\"}",
        "{\"then\": \"continue\", \"lead_id\": 999999999}",
        "{\"then\": \"continue\", \"notes\": [{\"note_id\": 999999999, \"text\": \"x\"}]}",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        char path[224];
        snprintf(path, sizeof(path), "%s/results", ada.desk);
        test_request_t req = {
            .method = "POST", .path = path, .header = ada.bearer, .body = bad[i], .content_type = "application/json"};
        test_reply_t r;
        assert_int_equal(test_http(g.server, &req, &r), CURLE_OK);
        if (r.status != 422 && r.status != 400) {
            print_error("%s -> %ld\n", bad[i], r.status);
            fail();
        }
        char type[64];
        assert_int_equal(test_reply_header(&r, "Content-Type", type, sizeof(type)), 0);
        assert_string_equal(type, "application/problem+json");
        test_reply_free(&r);
    }
    char body[512];
    snprintf(body, sizeof(body),
             "{\"then\": \"continue\", \"answers\": [{\"question_id\": %" PRId64 ", \"possible_response_id\": %" PRId64 "}]}",
             g_question, g_other_response);
    json_decref(s_as(&ada, "POST", "results", body, 422));
    snprintf(body, sizeof(body),
             "{\"then\": \"continue\", \"answers\": [{\"question_id\": %" PRId64 ", \"possible_response_id\": %" PRId64
             "}, {\"question_id\": %" PRId64 ", \"possible_response_id\": %" PRId64 "}]}",
             g_question, g_yes, g_question, g_call_back);
    json_decref(s_as(&ada, "POST", "results", body, 422));
    s_assert_state(&ada, "wrap_up");
    assert_int_equal(s_count("SELECT count(*) FROM call_results WHERE campaign_id = %" PRId64, g_campaign), 0);

    /* a good one: stored with its texts, published, and the number comes back (a retry response) */
    snprintf(body, sizeof(body),
             "{\"then\": \"continue\", \"lead_id\": %" PRId64 ", \"answers\": [{\"question_id\": %" PRId64
             ", \"possible_response_id\": %" PRId64 "}], \"notes\": [{\"note_id\": %" PRId64 ", \"text\": \"Busy tonight\"}]}",
             lead_id, g_question, g_call_back, g_note);
    desk = s_as(&ada, "POST", "results", body, 200);
    assert_string_not_equal(s_str(desk, "state"), "wrap_up");
    json_decref(desk);
    s_wrong_state(&ada, "results", body, "on_hold");
    s_wait_count("SELECT count(*) FROM call_results WHERE call_id = %" PRId64 " AND retry", first_call, 1);
    s_wait_count("SELECT count(*) FROM events WHERE type = 'survey.submitted' AND payload->>'call_id' = '%" PRId64 "' "
                 "AND payload->'answers'->0->>'response' = 'Call back' AND payload->'notes'->0->>'text' = 'Busy tonight'",
                 first_call, 1);
    assert_int_equal(
        s_count("SELECT count(*) FROM numbers WHERE id = %" PRId64 " AND status = 'retry' AND next_attempt_at > now()", number), 1);
    assert_int_equal(s_count("SELECT count(*) FROM events WHERE type IN ('caller.ready', 'caller.on_call', 'caller.wrap_up') "
                             "AND caller_id = %" PRId64,
                             ada.id) >= 3,
                     1);

    /* a cold transfer hands the person over: wrap-up at once, the call ends as transferred */
    desk = s_wait_state(&ada, "connected");
    int64_t cold_call = json_integer_value(json_object_get(json_object_get(desk, "call"), "id"));
    json_decref(desk);
    json_decref(s_as(&ada, "POST", "transfer", "{\"transfer_id\": 999999999}", 422));
    snprintf(body, sizeof(body), "{\"transfer_id\": %" PRId64 "}", g_cold);
    desk = s_as(&ada, "POST", "transfer", body, 200);
    assert_string_equal(s_str(desk, "state"), "wrap_up");
    json_decref(desk);
    json_decref(s_as(&ada, "POST", "results", "{\"then\": \"continue\"}", 200));

    /* a warm one keeps the caller on a three-way call until they leave it */
    desk = s_wait_state(&ada, "connected");
    int64_t warm_call = json_integer_value(json_object_get(json_object_get(desk, "call"), "id"));
    json_decref(desk);
    s_wrong_state(&ada, "leave_transfer", NULL, "connected");
    snprintf(body, sizeof(body), "{\"transfer_id\": %" PRId64 "}", g_warm);
    desk = s_as(&ada, "POST", "transfer", body, 200);
    assert_string_equal(s_str(json_object_get(desk, "call"), "state"), "three_way");
    json_decref(desk);
    s_wrong_state(&ada, "transfer", body, "connected");
    desk = s_as(&ada, "POST", "leave_transfer", NULL, 200);
    assert_string_equal(s_str(desk, "state"), "wrap_up");
    json_decref(desk);
    desk = s_as(&ada, "POST", "results", "{\"then\": \"stop\", \"machine\": false}", 200);
    assert_string_equal(s_str(desk, "state"), "idle");
    json_decref(desk);
    s_wait_count("SELECT count(*) FROM call_attempts WHERE call_id = %" PRId64 " AND outcome = 'transferred'", cold_call, 1);
    s_wait_count("SELECT count(*) FROM call_attempts WHERE call_id = %" PRId64 " AND outcome = 'transferred'", warm_call, 1);
    s_wait_count("SELECT count(*) FROM call_results WHERE campaign_id = %" PRId64, g_campaign, 3);
    s_wait_count("SELECT count(*) FROM events WHERE type = 'caller.left' AND caller_id = %" PRId64, ada.id, 1);
    assert_int_equal(s_count("SELECT count(*) FROM call_attempts WHERE call_id = %" PRId64 " AND outcome = 'talked'", first_call),
                     1);
}

static void test_sessions_are_their_callers_own(void **state)
{
    caller_t bea = s_log_in("bea"), cy = s_log_in("cy");
    /* another caller's token on this desk: not found, and nothing learned about it */
    caller_t intruder = bea;
    snprintf(intruder.bearer, sizeof(intruder.bearer), "%s", cy.bearer);
    json_decref(s_as(&intruder, "GET", "", NULL, 404));
    json_decref(s_as(&intruder, "POST", "start", NULL, 404));
    /* another campaign's path for the right session: a dialer that is not running, or not found */
    caller_t elsewhere = bea;
    snprintf(elsewhere.desk, sizeof(elsewhere.desk), "/v1/campaigns/%" PRId64 "/caller_sessions/1", g_campaign);
    json_decref(s_as(&elsewhere, "GET", "", NULL, 404));
    snprintf(elsewhere.desk, sizeof(elsewhere.desk), "/v1/campaigns/%" PRId64 "/caller_sessions/x", g_campaign);
    json_decref(s_as(&elsewhere, "GET", "", NULL, 404));
    snprintf(elsewhere.desk, sizeof(elsewhere.desk), "/v1/campaigns/999999999/caller_sessions/1");
    json_t *p = s_as(&elsewhere, "GET", "", NULL, 503);
    assert_string_equal(s_str(p, "type"), "/problems/campaign-not-dialing");
    json_decref(p);
    /* no token, a malformed one */
    caller_t anonymous = bea;
    anonymous.bearer[0] = '\0';
    json_decref(s_as(&anonymous, "GET", "", NULL, 401));
    snprintf(anonymous.bearer, sizeof(anonymous.bearer), "Authorization: Bearer cs_nope");
    json_decref(s_as(&anonymous, "POST", "start", NULL, 401));
    /* methods and actions that do not exist */
    json_decref(s_as(&bea, "DELETE", "", NULL, 405));
    json_decref(s_as(&bea, "GET", "start", NULL, 405));
    json_decref(s_as(&bea, "POST", "fly", NULL, 404));
    json_decref(s_as(&bea, "POST", "heartbeat", NULL, 204));
    /* the cookie opens the desk as the bearer token does */
    caller_t cookie = bea;
    snprintf(cookie.bearer, sizeof(cookie.bearer), "Cookie: impact_caller_session=%.46s",
             bea.bearer + strlen("Authorization: Bearer "));
    s_assert_state(&cookie, "idle");

    /* a logged-out session opens nothing, at once */
    test_request_t req = {.method = "POST", .path = "/v1/caller_session/logout", .header = cy.bearer};
    test_reply_t r;
    assert_int_equal(test_http(g.server, &req, &r), CURLE_OK);
    assert_int_equal(r.status, 204);
    test_reply_free(&r);
    json_decref(s_as(&cy, "GET", "", NULL, 401));
    json_decref(s_as(&cy, "POST", "start", NULL, 401));
    s_assert_state(&bea, "idle");
}

/* A session nobody has seen for the timeout: made so by moving last_seen_at back, which is
 * what the dialer's sweep reads (the timeout itself is 30 s), until the sweep has ended it. It is
 * moved back again while waiting because the desk's last request may still have a touch of the
 * row on its way, which would otherwise make the session look fresh for another 30 s. */
static void s_wait_timed_out(const caller_t *c)
{
    char forget[256], ended[256];
    snprintf(forget, sizeof(forget),
             "UPDATE caller_sessions SET last_seen_at = now() - interval '5 minutes' WHERE caller_id = %" PRId64
             " AND ended_at IS NULL",
             c->id);
    snprintf(ended, sizeof(ended),
             "SELECT count(*) FROM caller_sessions WHERE caller_id = %" PRId64 " AND end_reason = 'timed_out'", c->id);
    for (int i = 0; i < WAIT_S * 4; i++) {
        test_db_exec(g.db, forget);
        if (test_db_count(g.db, ended) == 1)
            return;
        nanosleep(&(struct timespec){.tv_nsec = 250000000}, NULL);
    }
    fail_msg("caller %" PRId64 "'s session was never ended", c->id);
}

static void test_sessions_not_seen_are_ended_without_hanging_up(void **state)
{
    /* on hold: ended and out of dialing at once */
    caller_t dee = s_log_in("dee");
    json_decref(s_as(&dee, "POST", "start", NULL, 200));
    s_wait_timed_out(&dee);
    s_wait_count("SELECT count(*) FROM events WHERE type = 'caller.left' AND caller_id = %" PRId64, dee.id, 1);
    s_wait_logged_out(&dee);

    /* past its absolute expiry: ended as expired, whatever its heartbeats */
    caller_t gus = s_log_in("gus");
    s_assert_state(&gus, "idle");
    char expire[256];
    snprintf(expire, sizeof(expire), "UPDATE caller_sessions SET expires_at = now() WHERE caller_id = %" PRId64, gus.id);
    test_db_exec(g.db, expire);
    s_wait_count("SELECT count(*) FROM caller_sessions WHERE caller_id = %" PRId64 " AND end_reason = 'expired'", gus.id, 1);
    s_wait_logged_out(&gus);

    /* mid-call: the person talks on to the end of the call, then the caller is gone */
    caller_t eve = s_log_in("eve");
    json_decref(s_as(&eve, "POST", "start", NULL, 200));
    json_t *desk = s_wait_state(&eve, "connected");
    int64_t call = json_integer_value(json_object_get(json_object_get(desk, "call"), "id"));
    json_decref(desk);
    s_wait_timed_out(&eve);
    s_wait_count("SELECT count(*) FROM events WHERE type = 'caller.left' AND caller_id = %" PRId64, eve.id, 1);
    assert_int_equal(s_count("SELECT count(*) FROM call_attempts WHERE call_id = %" PRId64 " AND outcome = 'talked'", call), 1);
    /* the call ended by itself before the caller left: its end is not earlier than the timeout */
    char sql[512];
    snprintf(sql, sizeof(sql),
             "SELECT count(*) FROM call_attempts a, caller_sessions s WHERE a.call_id = %" PRId64 " AND s.caller_id = %" PRId64
             " AND a.ended_at >= s.ended_at",
             call, eve.id);
    assert_int_equal(test_db_count(g.db, sql), 1);
}

/* Preview: the caller sees each contact before dialing it, skips one, dials the next, finds a
 * machine and leaves the campaign's voicemail message on it. */
static void test_preview_dial_skip_and_drop_a_voicemail(void **state)
{
    size_t len;
    unsigned char *wav = test_wav(1000, &len);
    json_t *message = test_call(g.server, g.server->key, g.server->auth, "POST", "/v1/messages?name=Desk%20voicemail",
                                "audio/x-wav", (const char *)wav, len, 201);
    free(wav);
    int64_t campaign = test_campaign_create(&g, "Desk preview", "Preview");
    char path[128], body[256];
    snprintf(path, sizeof(path), "/v1/campaigns/%" PRId64, campaign);
    snprintf(body, sizeof(body),
             "{\"script_id\": %" PRId64 ", \"simulated_callers\": 0, \"voicemail_message_id\": %" PRId64
             ", \"callers_can_drop_voicemail\": true}",
             g_script, (int64_t)json_integer_value(json_object_get(message, "id")));
    json_decref(message);
    json_decref(s_admin("PATCH", path, body, 200));
    s_import(campaign, 100, 20);
    test_move_into_calling_hours(g.db, campaign);
    test_campaign_action(&g, campaign, "start");
    char dialer[48];
    snprintf(dialer, sizeof(dialer), "dialer:%" PRId64, campaign);
    test_wait_process(&g, dialer, 0);

    caller_t fay = s_log_in_to("fay", campaign);
    json_t *desk = s_as(&fay, "POST", "start", NULL, 200);
    assert_string_equal(s_str(desk, "state"), "preview");
    int64_t first = json_integer_value(json_object_get(json_object_get(desk, "contact"), "number_id"));
    assert_true(first > 0);
    json_decref(desk);
    s_wrong_state(&fay, "hang_up", NULL, "preview");
    desk = s_as(&fay, "POST", "skip", NULL, 200);
    int64_t second = json_integer_value(json_object_get(json_object_get(desk, "contact"), "number_id"));
    assert_true(second > 0 && second != first);
    json_decref(desk);
    desk = s_as(&fay, "POST", "dial", NULL, 200);
    assert_true(strcmp(s_str(desk, "state"), "dialing") == 0 || strcmp(s_str(desk, "state"), "connected") == 0);
    json_decref(desk);
    desk = s_wait_state(&fay, "connected");
    int64_t call = json_integer_value(json_object_get(json_object_get(desk, "call"), "id"));
    assert_int_equal(json_integer_value(json_object_get(json_object_get(desk, "contact"), "number_id")), second);
    json_decref(desk);
    desk = s_as(&fay, "POST", "drop_voicemail", NULL, 200);
    json_decref(desk);
    desk = s_wait_state(&fay, "wrap_up");
    json_decref(desk);
    s_wait_count("SELECT count(*) FROM call_attempts WHERE call_id = %" PRId64 " AND outcome = 'voicemail'", call, 1);
    desk = s_as(&fay, "POST", "results", "{\"then\": \"continue\", \"machine\": true}", 200);
    assert_string_equal(s_str(desk, "state"), "preview");
    json_decref(desk);
    /* stopping while looking at a contact gives it back */
    desk = s_as(&fay, "POST", "stop", NULL, 200);
    assert_string_equal(s_str(desk, "state"), "idle");
    json_decref(desk);
    test_campaign_action(&g, campaign, "stop");
}

int main(void)
{
    curl_global_init(CURL_GLOBAL_ALL);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_a_caller_works_through_calls_and_surveys),
        cmocka_unit_test(test_sessions_are_their_callers_own),
        cmocka_unit_test(test_sessions_not_seen_are_ended_without_hanging_up),
        cmocka_unit_test(test_preview_dial_skip_and_drop_a_voicemail),
    };
    int failed = cmocka_run_group_tests(tests, s_setup, s_teardown);
    curl_global_cleanup();
    return failed;
}
