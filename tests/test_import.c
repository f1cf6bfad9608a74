/*
 * List imports end to end: a CSV uploaded in parts through the API is imported by the real
 * importer process into numbers and leads (normalised, de-duplicated within the campaign, blocked
 * numbers flagged, time zones derived), bad rows are reported by row, the list's webhook is
 * called, prune lists remove what they name, and an importer killed mid-import resumes without
 * losing or doubling a row.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "tests/server.h"
#include "tests/webhook_receiver.h"

static test_server_t *g_server;

static json_t *s_call(const char *method, const char *path, const char *content_type, const char *body, size_t len, long want)
{
    return test_call(g_server, g_server->key, g_server->auth, method, path, content_type, body, len, want);
}

static int64_t s_id(const json_t *doc)
{
    return json_integer_value(json_object_get(doc, "id"));
}

static int64_t s_int(const json_t *doc, const char *key)
{
    return json_integer_value(json_object_get(doc, key));
}

static int64_t s_total(const char *path)
{
    json_t *list = s_call("GET", path, NULL, NULL, 0, 200);
    int64_t total = s_int(list, "total");
    json_decref(list);
    return total;
}

/* Polls the list until its import ends (completed or failed) and returns it. */
static json_t *s_wait_import(int64_t list_id)
{
    char path[64];
    snprintf(path, sizeof(path), "/v1/lists/%" PRId64, list_id);
    for (int i = 0; i < 1200; i++) {
        json_t *list = s_call("GET", path, NULL, NULL, 0, 200);
        const char *status = json_string_value(json_object_get(list, "status"));
        if (strcmp(status, "completed") == 0 || strcmp(status, "failed") == 0)
            return list;
        json_decref(list);
        usleep(100000);
    }
    test_server_dump_log(g_server);
    fail_msg("list %" PRId64 " still importing after 120 s", list_id);
    return NULL;
}

static int64_t s_campaign(const char *name)
{
    char body[128];
    snprintf(body, sizeof(body), "{\"name\": \"%s\"}", name);
    json_t *c = s_call("POST", "/v1/campaigns", "application/json", body, 0, 201);
    int64_t id = s_id(c);
    json_decref(c);
    return id;
}

static int64_t s_list(int64_t campaign, const char *name, const char *purpose, const char *map, const char *extra)
{
    char body[1024];
    snprintf(body, sizeof(body), "{\"name\": \"%s\", \"campaign_id\": %" PRId64 ", \"purpose\": \"%s\", \"column_map\": %s%s}",
             name, campaign, purpose, map, extra ? extra : "");
    json_t *l = s_call("POST", "/v1/lists", "application/json", body, 0, 201);
    int64_t id = s_id(l);
    json_decref(l);
    return id;
}

static void s_upload(int64_t list, int part, const char *csv, size_t len)
{
    char path[96];
    snprintf(path, sizeof(path), "/v1/lists/%" PRId64 "/upload?part=%d", list, part);
    json_decref(s_call("POST", path, "text/csv", csv, len, 200));
}

static void s_import(int64_t list)
{
    char path[64];
    snprintf(path, sizeof(path), "/v1/lists/%" PRId64 "/import", list);
    json_decref(s_call("POST", path, NULL, NULL, 0, 202));
}

/* ---- the list's notification ---------------------------------------------------------------- */

static int s_answer_no_content(void *arg, const char *path, int nth, int *delay_ms)
{
    (void)arg, (void)path, (void)nth, (void)delay_ms;
    return 204;
}

/* The first request the receiver got, once it has come. */
static void s_first_request(webhook_receiver_t *hook, webhook_received_t *out)
{
    for (int i = 0; i < 200 && webhook_receiver_received(hook, out, 1) < 1; i++)
        usleep(50000);
    assert_int_equal(webhook_receiver_received(hook, out, 1), 1);
}

/* ---- setup ---------------------------------------------------------------------------------- */

static int s_setup(void **state)
{
    /* The webhook receiver runs on this machine; the default refuses private addresses. */
    setenv("IMPACT_ALLOW_PRIVATE_URLS", "1", 1);
    g_server = test_server_new(false);
    test_server_start(g_server);
    return 0;
}

static int s_teardown(void **state)
{
    test_server_destroy(&g_server);
    return 0;
}

/* ---- tests ---------------------------------------------------------------------------------- */

static void test_import_normalises_dedupes_blocks_and_reports(void **state)
{
    int64_t campaign = s_campaign("Import target");
    json_decref(s_call("POST", "/v1/custom_fields", "application/json", "{\"name\": \"precinct\"}", 0, 201));
    json_decref(s_call("POST", "/v1/blocked_numbers", "application/json", "{\"number\": \"+1 312 555 0177\"}", 0, 201));
    webhook_receiver_t *hook = webhook_receiver_new(s_answer_no_content, NULL);
    assert_non_null(hook);
    char extra[96];
    snprintf(extra, sizeof(extra), ", \"webhook_url\": \"http://127.0.0.1:%d/done\"", webhook_receiver_port(hook));
    int64_t list = s_list(campaign, "Precinct 7", "import",
                          "{\"Phone\": \"phone\", \"First\": \"first_name\", \"Last\": \"last_name\", \"Ward\": \"precinct\", "
                          "\"Voter ID\": \"custom_id\"}",
                          extra);

    /* Two parts, split inside a row; CRLF endings; a BOM; quoted fields with separators. */
    static const char part1[] = "\xef\xbb\xbfVoter ID,Phone,First,Last,Ward,Ignored\r\n"
                                "v1,(212) 555-0101,Ada,Lovelace,7,x\r\n"
                                "v2,212.555.0101,Charles,Babbage,7,x\r\n" /* same phone: a duplicate number, a second lead */
                                "v3,not a phone,Bad,Row,7,x\r\n"          /* record 3: invalid phone */
                                "v4,+1 312 555 0177,Blocked,Person,\"7, north\",x\r\n"
                                "v5,+1 808 555 01";
    static const char part2[] = "00,\"Grace \"\"Amazing\"\"\",Hopper,8,x\r\n"
                                "v1,(212) 555-0101,Ada,King,7,x\r\n" /* v1 again: updates the lead, no new one */
                                ",+44 20 7946 0958,No,Id,9,x\r\n"
                                "v8,\"unterminated,x\r\n";
    s_upload(list, 2, part2, sizeof(part2) - 1);
    s_upload(list, 1, part1, sizeof(part1) - 1);
    s_import(list);
    json_t *done = s_wait_import(list);
    assert_string_equal(json_string_value(json_object_get(done, "status")), "completed");
    assert_int_equal(s_int(done, "rows_total"), 8);
    assert_int_equal(s_int(done, "rows_invalid"), 2);
    assert_int_equal(s_int(done, "rows_imported"), 6);
    assert_int_equal(s_int(done, "rows_duplicate"), 2); /* 212.555.0101 and v1's second row */
    assert_int_equal(s_int(done, "rows_blocked"), 1);
    json_decref(done);

    char path[160];
    snprintf(path, sizeof(path), "/v1/lists/%" PRId64 "/import_errors", list);
    json_t *errors = s_call("GET", path, NULL, NULL, 0, 200);
    assert_int_equal(s_int(errors, "total"), 2);
    json_t *first = json_array_get(json_object_get(errors, "items"), 0);
    assert_int_equal(s_int(first, "record"), 3);
    assert_int_equal(s_int(first, "line"), 4);
    assert_non_null(strstr(json_string_value(json_object_get(first, "message")), "phone"));
    assert_int_equal(s_int(json_array_get(json_object_get(errors, "items"), 1), "record"), 8);
    json_decref(errors);

    snprintf(path, sizeof(path), "/v1/numbers?campaign_id=%" PRId64, campaign);
    assert_int_equal(s_total(path), 4);
    snprintf(path, sizeof(path), "/v1/numbers?campaign_id=%" PRId64 "&blocked=true", campaign);
    assert_int_equal(s_total(path), 1);
    snprintf(path, sizeof(path), "/v1/numbers?campaign_id=%" PRId64 "&phone=%%2B18085550100", campaign);
    json_t *numbers = s_call("GET", path, NULL, NULL, 0, 200);
    json_t *hawaii = json_array_get(json_object_get(numbers, "items"), 0);
    assert_string_equal(json_string_value(json_array_get(json_object_get(hawaii, "time_zones"), 0)), "Pacific/Honolulu");
    json_decref(numbers);

    snprintf(path, sizeof(path), "/v1/leads?campaign_id=%" PRId64, campaign);
    assert_int_equal(s_total(path), 5); /* v1 (updated), v2, v4, v5, and the row without an id */
    snprintf(path, sizeof(path), "/v1/leads?campaign_id=%" PRId64 "&custom_id=v1", campaign);
    json_t *leads = s_call("GET", path, NULL, NULL, 0, 200);
    json_t *ada = json_array_get(json_object_get(leads, "items"), 0);
    assert_string_equal(json_string_value(json_object_get(ada, "last_name")), "King");
    assert_string_equal(json_string_value(json_object_get(ada, "phone")), "+12125550101");
    assert_string_equal(json_string_value(json_object_get(json_object_get(ada, "custom"), "precinct")), "7");
    json_decref(leads);
    snprintf(path, sizeof(path), "/v1/leads?campaign_id=%" PRId64 "&custom_id=v5", campaign);
    leads = s_call("GET", path, NULL, NULL, 0, 200);
    assert_string_equal(json_string_value(json_object_get(json_array_get(json_object_get(leads, "items"), 0), "first_name")),
                        "Grace \"Amazing\"");
    json_decref(leads);

    /* The webhook got the outcome, and the list says so. */
    webhook_received_t notification;
    s_first_request(hook, &notification);
    assert_string_equal(notification.path, "/done");
    json_t *event = json_loads(notification.body, 0, NULL);
    assert_non_null(event);
    assert_string_equal(json_string_value(json_object_get(event, "type")), "list.import.completed");
    assert_int_equal(s_int(json_object_get(event, "data"), "rows_invalid"), 2);
    json_t *inline_errors = json_object_get(json_object_get(event, "data"), "errors");
    assert_int_equal(json_array_size(inline_errors), 2);
    assert_int_equal(s_int(json_array_get(inline_errors, 0), "record"), 3);
    json_decref(event);
    snprintf(path, sizeof(path), "/v1/lists/%" PRId64, list);
    json_t *notified = NULL;
    for (int i = 0; i < 100; i++) {
        json_decref(notified);
        notified = s_call("GET", path, NULL, NULL, 0, 200);
        if (json_is_string(json_object_get(notified, "notify_status")))
            break;
        usleep(50000);
    }
    assert_string_equal(json_string_value(json_object_get(notified, "notify_status")), "delivered: HTTP 204");
    json_decref(notified);
    webhook_receiver_destroy(&hook);

    /* A list whose leads exist cannot be deleted out from under them. */
    snprintf(path, sizeof(path), "/v1/lists/%" PRId64, list);
    json_decref(s_call("DELETE", path, NULL, NULL, 0, 409));

    /* Blocking a number afterwards blocks the imported one too. */
    json_decref(s_call("POST", "/v1/blocked_numbers", "application/json", "{\"number\": \"+44 20 7946 0958\"}", 0, 201));
    snprintf(path, sizeof(path), "/v1/numbers?campaign_id=%" PRId64 "&blocked=true", campaign);
    assert_int_equal(s_total(path), 2);
}

static void test_prune_lists_remove_numbers_and_leads(void **state)
{
    int64_t campaign = s_campaign("Prune target");
    int64_t list = s_list(campaign, "To prune", "import", "{\"phone\": \"phone\", \"id\": \"custom_id\"}", NULL);
    static const char csv[] = "phone,id\n2125550111,a\n2125550112,b\n2125550113,c\n";
    s_upload(list, 1, csv, sizeof(csv) - 1);
    s_import(list);
    json_decref(s_wait_import(list));

    int64_t numbers = s_list(campaign, "Prune numbers", "prune_numbers", "{\"Phone\": \"phone\"}", NULL);
    static const char by_phone[] = "Phone\n(212) 555-0111\n+1 999\n";
    s_upload(numbers, 1, by_phone, sizeof(by_phone) - 1);
    s_import(numbers);
    json_t *done = s_wait_import(numbers);
    assert_int_equal(s_int(done, "rows_removed"), 1);
    assert_int_equal(s_int(done, "rows_invalid"), 1);
    json_decref(done);

    int64_t leads = s_list(campaign, "Prune leads", "prune_leads", "{\"Voter\": \"custom_id\"}", NULL);
    static const char by_id[] = "Voter\nb\nzzz\n";
    s_upload(leads, 1, by_id, sizeof(by_id) - 1);
    s_import(leads);
    done = s_wait_import(leads);
    assert_int_equal(s_int(done, "rows_removed"), 1);
    json_decref(done);

    char path[160];
    snprintf(path, sizeof(path), "/v1/leads?campaign_id=%" PRId64, campaign);
    json_t *all = s_call("GET", path, NULL, NULL, 0, 200);
    int removed = 0;
    size_t i;
    json_t *lead;
    json_array_foreach(json_object_get(all, "items"), i, lead) removed += !json_is_null(json_object_get(lead, "removed_at"));
    assert_int_equal(removed, 2); /* a's lead went with its number, b by its id */
    json_decref(all);
}

/* A second list meets what the first brought: its numbers (read back from the database, not
 * from the first import's memory) and its leads by custom_id. */
static void test_a_second_list_meets_the_campaigns_numbers_and_leads(void **state)
{
    int64_t campaign = s_campaign("Second list");
    static const char map[] = "{\"phone\": \"phone\", \"id\": \"custom_id\", \"name\": \"first_name\"}";
    int64_t first = s_list(campaign, "First", "import", map, NULL);
    static const char csv1[] = "phone,id,name\n2125550111,a,Ann\n2125550112,b,Bob\n";
    s_upload(first, 1, csv1, sizeof(csv1) - 1);
    s_import(first);
    json_decref(s_wait_import(first));

    int64_t second = s_list(campaign, "Second", "import", map, NULL);
    static const char csv2[] = "phone,id,name\n"
                               "2125550112,a,Ann\n" /* a known number; lead a moves to it */
                               "2125550113,,Yves\n" /* a new number */
                               "2125550112,,Zoe\n"  /* a known number gains a lead */
                               "2125550112,,Zoe\n"; /* the same lead again: nothing new */
    s_upload(second, 1, csv2, sizeof(csv2) - 1);
    s_import(second);
    json_t *done = s_wait_import(second);
    assert_int_equal(s_int(done, "rows_imported"), 4);
    assert_int_equal(s_int(done, "rows_duplicate"), 3);
    json_decref(done);

    char path[160];
    snprintf(path, sizeof(path), "/v1/numbers?campaign_id=%" PRId64, campaign);
    assert_int_equal(s_total(path), 3);
    snprintf(path, sizeof(path), "/v1/leads?campaign_id=%" PRId64, campaign);
    assert_int_equal(s_total(path), 4); /* a, b, Yves, Zoe */
    snprintf(path, sizeof(path), "/v1/leads?campaign_id=%" PRId64 "&custom_id=a", campaign);
    json_t *leads = s_call("GET", path, NULL, NULL, 0, 200);
    assert_int_equal(s_int(leads, "total"), 1);
    json_t *a = json_array_get(json_object_get(leads, "items"), 0);
    assert_string_equal(json_string_value(json_object_get(a, "phone")), "+12125550112");
    assert_int_equal(s_int(a, "list_id"), second);
    json_decref(leads);
}

static void test_a_bad_header_fails_the_list_with_a_reason(void **state)
{
    int64_t campaign = s_campaign("Header check");
    int64_t list = s_list(campaign, "Misspelt", "import", "{\"Telephone\": \"phone\"}", NULL);
    static const char csv[] = "Phone,Name\n2125550111,A\n";
    s_upload(list, 1, csv, sizeof(csv) - 1);
    s_import(list);
    json_t *done = s_wait_import(list);
    assert_string_equal(json_string_value(json_object_get(done, "status")), "failed");
    assert_non_null(strstr(json_string_value(json_object_get(done, "failure")), "Telephone"));
    json_decref(done);
}

static pid_t s_importer_pid(void)
{
    json_t *health = s_call("GET", "/v1/health", NULL, NULL, 0, 200);
    pid_t pid = 0;
    size_t i;
    json_t *proc;
    json_array_foreach(json_object_get(health, "processes"), i, proc)
    {
        if (strcmp(json_string_value(json_object_get(proc, "name")), "importer") == 0)
            pid = (pid_t)json_integer_value(json_object_get(proc, "pid"));
    }
    json_decref(health);
    return pid;
}

/* A kill -9 between batches loses the batch in flight only; the restarted importer resumes
 * after the last committed one, and every row lands exactly once. */
static void test_an_importer_killed_mid_import_resumes(void **state)
{
    enum { ROWS = 60000, PART_BYTES = 900000 };
    int64_t campaign = s_campaign("Resumable");
    int64_t list =
        s_list(campaign, "Large", "import", "{\"phone\": \"phone\", \"id\": \"custom_id\", \"name\": \"first_name\"}", NULL);
    size_t cap = (size_t)ROWS * 48 + 64, len = 0;
    char *csv = malloc(cap);
    assert_non_null(csv);
    len += (size_t)snprintf(csv, cap, "phone,id,name\n");
    for (int i = 0; i < ROWS; i++) /* +1 212 2xx xxxx: valid New York numbers, all distinct */
        len += (size_t)snprintf(csv + len, cap - len, "+1212%07d,id%d,Person %d\n", 2000000 + i, i, i);
    int parts = 0;
    for (size_t off = 0; off < len; off += PART_BYTES)
        s_upload(list, ++parts, csv + off, len - off < PART_BYTES ? len - off : PART_BYTES);
    free(csv);
    s_import(list);

    /* Kill once at least one batch has committed and before the end. */
    char path[64];
    snprintf(path, sizeof(path), "/v1/lists/%" PRId64, list);
    bool killed = false;
    for (int i = 0; i < 6000 && !killed; i++) {
        json_t *l = s_call("GET", path, NULL, NULL, 0, 200);
        int64_t total = s_int(l, "rows_total");
        bool importing = strcmp(json_string_value(json_object_get(l, "status")), "importing") == 0;
        json_decref(l);
        if (importing && total > 0 && total < ROWS) {
            pid_t pid = s_importer_pid();
            assert_true(pid > 0);
            assert_int_equal(kill(pid, SIGKILL), 0);
            killed = true;
        }
        usleep(10000);
    }
    assert_true(killed);
    json_t *done = s_wait_import(list);
    assert_string_equal(json_string_value(json_object_get(done, "status")), "completed");
    assert_int_equal(s_int(done, "rows_total"), ROWS);
    assert_int_equal(s_int(done, "rows_imported"), ROWS);
    assert_int_equal(s_int(done, "rows_invalid"), 0);
    assert_int_equal(s_int(done, "rows_duplicate"), 0);
    json_decref(done);
    char query[96];
    snprintf(query, sizeof(query), "/v1/numbers?campaign_id=%" PRId64, campaign);
    assert_int_equal(s_total(query), ROWS);
    snprintf(query, sizeof(query), "/v1/leads?campaign_id=%" PRId64, campaign);
    assert_int_equal(s_total(query), ROWS);
}

int main(void)
{
    curl_global_init(CURL_GLOBAL_ALL);
    /* These tests are not about rate limits: their bursts of requests with one key must not meet
     * the default limit (tests/test_ratelimit_http.c covers it). */
    setenv("IMPACT_RATE_LIMIT", "0", 1);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_import_normalises_dedupes_blocks_and_reports),
        cmocka_unit_test(test_prune_lists_remove_numbers_and_leads),
        cmocka_unit_test(test_a_second_list_meets_the_campaigns_numbers_and_leads),
        cmocka_unit_test(test_a_bad_header_fails_the_list_with_a_reason),
        cmocka_unit_test(test_an_importer_killed_mid_import_resumes),
    };
    int rc = cmocka_run_group_tests(tests, s_setup, s_teardown);
    curl_global_cleanup();
    return rc;
}
