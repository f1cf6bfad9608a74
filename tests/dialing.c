#include "tests/dialing.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "tests/support.h"

void test_dialing_start(test_dialing_t *t, const char *scenario, bool allow_private)
{
    t->dir = support_tmpdir("impact-dialing");
    char path[512];
    snprintf(path, sizeof(path), "%s/fast.scn", t->dir);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(scenario, f);
    fclose(f);
    setenv("IMPACT_SCENARIO", path, 1);
    setenv("IMPACT_SIM_SPEED", "20", 1);
    setenv("IMPACT_RATE_LIMIT", "0", 1);
    if (allow_private)
        setenv("IMPACT_ALLOW_PRIVATE_URLS", "1", 1);
    t->server = test_server_new(false);
    test_server_start(t->server);
    t->db = PQconnectdb(t->server->db);
    assert_int_equal(PQstatus(t->db), CONNECTION_OK);
}

void test_dialing_stop(test_dialing_t *t)
{
    PQfinish(t->db);
    t->db = NULL;
    test_server_destroy(&t->server);
    support_rmtree(&t->dir);
    unsetenv("IMPACT_SCENARIO");
    unsetenv("IMPACT_SIM_SPEED");
    unsetenv("IMPACT_ALLOW_PRIVATE_URLS");
}

int64_t test_db_count(PGconn *db, const char *sql)
{
    PGresult *res = PQexec(db, sql);
    if (PQresultStatus(res) != PGRES_TUPLES_OK || PQntuples(res) != 1) {
        print_error("%s: %s\n", sql, PQresultErrorMessage(res));
        PQclear(res);
        fail();
    }
    int64_t v = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
    PQclear(res);
    return v;
}

void test_db_exec(PGconn *db, const char *sql)
{
    PGresult *res = PQexec(db, sql);
    if (PQresultStatus(res) != PGRES_COMMAND_OK && PQresultStatus(res) != PGRES_TUPLES_OK) {
        print_error("%s: %s\n", sql, PQresultErrorMessage(res));
        PQclear(res);
        fail();
    }
    PQclear(res);
}

static int64_t s_wait(test_dialing_t *t, const char *sql, int64_t want, bool exact, int seconds)
{
    int64_t got = 0;
    for (int i = 0; i < seconds * 10; i++) {
        got = test_db_count(t->db, sql);
        if (exact ? got == want : got >= want)
            return got;
        usleep(100000);
    }
    test_server_dump_log(t->server);
    fail_msg("%s gave %" PRId64 " after %d s, wanted %s%" PRId64, sql, got, seconds, exact ? "" : "at least ", want);
    return got;
}

int64_t test_db_wait_at_least(test_dialing_t *t, const char *sql, int64_t want, int seconds)
{
    return s_wait(t, sql, want, false, seconds);
}

void test_db_wait_equal(test_dialing_t *t, const char *sql, int64_t want, int seconds)
{
    s_wait(t, sql, want, true, seconds);
}

void test_move_into_calling_hours(PGconn *db, int64_t campaign)
{
    time_t now = time(NULL);
    struct tm utc;
    gmtime_r(&now, &utc);
    int offset = 14 - utc.tm_hour; /* hours east of UTC, -9 .. +14 */
    char zone[32], sql[256];
    if (offset == 0)
        snprintf(zone, sizeof(zone), "Etc/GMT");
    else
        snprintf(zone, sizeof(zone), "Etc/GMT%+d", -offset); /* POSIX sign: Etc/GMT-3 is UTC+3 */
    snprintf(sql, sizeof(sql), "UPDATE numbers SET time_zones = ARRAY['%s'] WHERE campaign_id = %" PRId64, zone, campaign);
    test_db_exec(db, sql);
}

void test_process(test_dialing_t *t, const char *name, int *pid, int *restarts, char *state, size_t state_size)
{
    test_request_t req = {.method = "GET", .path = "/v1/health"};
    test_reply_t reply;
    *pid = 0;
    *restarts = 0;
    state[0] = '\0';
    if (test_http(t->server, &req, &reply) != CURLE_OK)
        return;
    json_t *doc = test_reply_json(&reply);
    test_reply_free(&reply);
    json_t *process;
    size_t i;
    json_array_foreach(json_object_get(doc, "processes"), i, process)
    {
        const char *n = json_string_value(json_object_get(process, "name"));
        if (n && strcmp(n, name) == 0) {
            *pid = (int)json_integer_value(json_object_get(process, "pid"));
            *restarts = (int)json_integer_value(json_object_get(process, "restarts"));
            snprintf(state, state_size, "%s", json_string_value(json_object_get(process, "state")));
        }
    }
    json_decref(doc);
}

int test_wait_process(test_dialing_t *t, const char *name, int not_pid)
{
    for (int i = 0; i < 600; i++) {
        int pid, restarts;
        char state[32];
        test_process(t, name, &pid, &restarts, state, sizeof(state));
        if (pid > 0 && pid != not_pid && strcmp(state, "running") == 0)
            return pid;
        usleep(100000);
    }
    test_server_dump_log(t->server);
    fail_msg("process %s never came up", name);
    return 0;
}

int64_t test_campaign_create(test_dialing_t *t, const char *name, const char *dialer_type)
{
    char body[256];
    snprintf(body, sizeof(body), "{\"name\": \"%s\", \"dialer_type\": \"%s\", \"from\": \"(212) 555-0142\"}", name, dialer_type);
    json_t *c = test_call(t->server, t->server->key, t->server->auth, "POST", "/v1/campaigns", "application/json", body, 0, 201);
    int64_t id = json_integer_value(json_object_get(c, "id"));
    json_decref(c);
    return id;
}

void test_campaign_action(test_dialing_t *t, int64_t campaign, const char *action)
{
    char path[128];
    snprintf(path, sizeof(path), "/v1/campaigns/%" PRId64 "/%s", campaign, action);
    json_decref(test_call(t->server, t->server->key, t->server->auth, "POST", path, NULL, NULL, 0, 200));
}

void test_campaign_import(test_dialing_t *t, int64_t campaign, int first, int count)
{
    char body[256], path[96];
    snprintf(body, sizeof(body),
             "{\"name\": \"Dialer list %" PRId64 " from %d\", \"campaign_id\": %" PRId64
             ", \"column_map\": {\"phone\": \"phone\"}}",
             campaign, first, campaign);
    json_t *list = test_call(t->server, t->server->key, t->server->auth, "POST", "/v1/lists", "application/json", body, 0, 201);
    int64_t id = json_integer_value(json_object_get(list, "id"));
    json_decref(list);
    size_t size = 16 + count * 16;
    char *csv = malloc(size), *p = csv;
    p += sprintf(p, "phone\n");
    for (int i = 0; i < count; i++)
        p += sprintf(p, "+1212555%04d\n", 1000 + first + i);
    snprintf(path, sizeof(path), "/v1/lists/%" PRId64 "/upload?part=1", id);
    json_decref(test_call(t->server, t->server->key, t->server->auth, "POST", path, "text/csv", csv, (size_t)(p - csv), 200));
    free(csv);
    snprintf(path, sizeof(path), "/v1/lists/%" PRId64 "/import", id);
    json_decref(test_call(t->server, t->server->key, t->server->auth, "POST", path, NULL, NULL, 0, 202));
    char sql[160];
    snprintf(sql, sizeof(sql), "SELECT count(*) FROM lists WHERE id = %" PRId64 " AND status = 'completed'", id);
    test_db_wait_equal(t, sql, 1, 120);
}
