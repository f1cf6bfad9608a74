/*
 * Events (schemas/sql/0009_events.sql, actors/fanout/sequencer.c, actors/store/res_events.c).
 *
 * In SQL, on a fresh database: two producers that commit in the opposite order of their inserts
 * still give a cursor reader every event, because ids follow commits, not inserts; sequencers
 * running concurrently from several connections, under producers on several more, leave ids
 * without a gap or a repeat, each producer's events in its order, and a cursor reader that never
 * finds an id below one it has seen. Every producer (call attempts of any campaign, campaign
 * status, list imports) writes payloads that match the catalog (schemas/events.json), whose types
 * are exactly the database's and each documented in docs/events.md.
 *
 * End to end, with the real impactd (its fan-out process numbering events): a running campaign's
 * call events match its call_attempts one for one; start, pause, resume and stop are events; a
 * list imported by the importer ends in one event with its counts; the events API filters, pages
 * with `after` and `before`, hides other accounts' events (404) and refuses bad filters (422).
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
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "actors/store/db.h"
#include "tests/dialing.h"
#include "tests/support.h"

/* ---- the catalog ------------------------------------------------------------------------------ */

static json_t *s_catalog(void)
{
    const char *dir = getenv("IMPACT_SOURCE_DIR");
    assert_non_null(dir);
    char path[1024];
    snprintf(path, sizeof(path), "%s/schemas/events.json", dir);
    json_error_t error;
    json_t *catalog = json_load_file(path, 0, &error);
    if (catalog == NULL)
        fail_msg("%s:%d: %s", path, error.line, error.text);
    return catalog;
}

static char *s_read_file(const char *relative)
{
    char path[1024];
    snprintf(path, sizeof(path), "%s/%s", getenv("IMPACT_SOURCE_DIR"), relative);
    FILE *f = fopen(path, "r");
    assert_non_null(f);
    fseek(f, 0, SEEK_END);
    long size = ftell(f);
    rewind(f);
    char *text = calloc(1, (size_t)size + 1);
    assert_int_equal(fread(text, 1, (size_t)size, f), (size_t)size);
    fclose(f);
    return text;
}

static bool s_type_is(const json_t *value, const char *type)
{
    if (strcmp(type, "integer") == 0)
        return json_is_integer(value);
    if (strcmp(type, "string") == 0)
        return json_is_string(value);
    if (strcmp(type, "boolean") == 0)
        return json_is_boolean(value);
    if (strcmp(type, "null") == 0)
        return json_is_null(value);
    if (strcmp(type, "object") == 0)
        return json_is_object(value);
    if (strcmp(type, "array") == 0)
        return json_is_array(value);
    fail_msg("the catalog uses type %s, which this check does not know", type);
    return false;
}

/* The part of JSON Schema the catalog uses ($ref, type, enum, required, properties,
 * additionalProperties: false, items). NULL when `value` matches, or what is wrong. */
static const char *s_mismatch(const json_t *catalog, const json_t *schema, const json_t *value, char *why, size_t size)
{
    const char *ref = json_string_value(json_object_get(schema, "$ref"));
    if (ref) {
        assert_true(strncmp(ref, "#/definitions/", 14) == 0);
        schema = json_object_get(json_object_get(catalog, "definitions"), ref + 14);
        assert_non_null(schema);
    }
    json_t *type = json_object_get(schema, "type");
    if (type) {
        bool ok = false;
        size_t i;
        json_t *t;
        if (json_is_string(type))
            ok = s_type_is(value, json_string_value(type));
        json_array_foreach(type, i, t) ok = ok || s_type_is(value, json_string_value(t));
        if (!ok)
            return "has the wrong type";
    }
    json_t *choices = json_object_get(schema, "enum");
    if (choices) {
        bool ok = false;
        size_t i;
        json_t *c;
        json_array_foreach(choices, i, c) ok = ok || json_equal(c, value);
        if (!ok)
            return "is not one of its enum";
    }
    size_t i;
    json_t *name, *item, *items = json_object_get(schema, "items");
    json_array_foreach(items ? value : NULL, i, item)
    {
        if (s_mismatch(catalog, items, item, why, size)) {
            char inner[256];
            snprintf(inner, sizeof(inner), "%s", why);
            snprintf(why, size, "[%zu] %s", i, inner);
            return why;
        }
    }
    json_array_foreach(json_object_get(schema, "required"), i, name)
    {
        if (json_object_get(value, json_string_value(name)) == NULL) {
            snprintf(why, size, "lacks required %s", json_string_value(name));
            return why;
        }
    }
    const char *key;
    json_t *member;
    json_t *properties = json_object_get(schema, "properties");
    json_object_foreach((json_t *)value, key, member)
    {
        json_t *property = json_object_get(properties, key);
        if (property == NULL && json_is_false(json_object_get(schema, "additionalProperties"))) {
            snprintf(why, size, "has %s, which the catalog does not describe", key);
            return why;
        }
        if (property && s_mismatch(catalog, property, member, why, size)) {
            char inner[256];
            snprintf(inner, sizeof(inner), "%s", why);
            snprintf(why, size, "%s %s", key, inner);
            return why;
        }
    }
    return NULL;
}

static bool s_in_streams(const json_t *catalog, const char *type, const char *stream)
{
    size_t i;
    json_t *s;
    json_array_foreach(json_object_get(json_object_get(json_object_get(catalog, "types"), type), "streams"), i, s)
    {
        if (strcmp(json_string_value(s), stream) == 0)
            return true;
    }
    return false;
}

/* Every event of the database: its payload matches its type's schema, and its stream columns
 * agree with the streams the catalog gives the type. Returns how many events were checked. */
static int64_t s_check_events_against_catalog(PGconn *db, const json_t *catalog, json_t *seen_types)
{
    PGresult *res =
        PQexec(db, "SELECT type, payload::text, campaign_id IS NOT NULL, caller_id IS NOT NULL FROM events ORDER BY id");
    assert_int_equal(PQresultStatus(res), PGRES_TUPLES_OK);
    for (int row = 0; row < PQntuples(res); row++) {
        const char *type = PQgetvalue(res, row, 0);
        json_t *entry = json_object_get(json_object_get(catalog, "types"), type);
        assert_non_null(entry);
        json_t *payload = json_loads(PQgetvalue(res, row, 1), 0, NULL);
        assert_non_null(payload);
        char why[512];
        const char *wrong = s_mismatch(catalog, json_object_get(entry, "payload"), payload, why, sizeof(why));
        if (wrong)
            fail_msg("a %s payload %s: %s", type, wrong, PQgetvalue(res, row, 1));
        assert_true(s_in_streams(catalog, type, "account"));
        /* campaign_id is set exactly for types in the campaign stream; caller_id only for types in
         * the caller stream (and there only once a caller took the call) */
        assert_int_equal(PQgetvalue(res, row, 2)[0] == 't', s_in_streams(catalog, type, "campaign"));
        if (PQgetvalue(res, row, 3)[0] == 't')
            assert_true(s_in_streams(catalog, type, "caller"));
        json_object_set_new(seen_types, type, json_true());
        json_decref(payload);
    }
    int64_t n = PQntuples(res);
    PQclear(res);
    return n;
}

/* ---- SQL helpers ------------------------------------------------------------------------------ */

static PGconn *s_connect(const char *url)
{
    char err[512];
    PGconn *db = db_connect(url, err, sizeof(err));
    if (db == NULL)
        fail_msg("%s", err);
    return db;
}

static int64_t s_sequence(PGconn *db)
{
    return test_db_count(db, "SELECT events_sequence(1000)");
}

static int64_t s_value(PGconn *db, const char *sql)
{
    return test_db_count(db, sql);
}

/* ---- ordering --------------------------------------------------------------------------------- */

static void test_ids_follow_commits_not_inserts(void **state)
{
    char *url = support_db_create("test_events_order");
    PGconn *a = s_connect(url), *b = s_connect(url), *reader = s_connect(url);
    char err[256];
    assert_true(db_migrate(a, err, sizeof(err)) >= 1);
    int64_t account;
    assert_int_equal(db_account_create(a, "Events", &account, err, sizeof(err)), 0);
    char sql[512];
    const char *publish = "SELECT event_publish(%" PRId64 ", NULL, NULL, 'campaign.started', now(), '{\"who\": \"%s\"}')";

    /* A inserts first, B second; B commits first */
    test_db_exec(a, "BEGIN");
    test_db_exec(b, "BEGIN");
    snprintf(sql, sizeof(sql), publish, account, "A");
    test_db_exec(a, sql);
    snprintf(sql, sizeof(sql), publish, account, "B");
    test_db_exec(b, sql);
    test_db_exec(b, "COMMIT");

    /* the sequencer can see only B: B is event 1, and a cursor reader takes it */
    assert_int_equal(s_sequence(reader), 1);
    int64_t cursor = s_value(reader, "SELECT max(id) FROM events WHERE payload->>'who' = 'B'");
    assert_int_equal(cursor, 1);
    assert_int_equal(s_value(reader, "SELECT count(*) FROM event_inbox"), 0);

    /* A commits now: it is numbered above everything already readable, so the reader, asking
     * for what follows its cursor, gets it */
    test_db_exec(a, "COMMIT");
    assert_int_equal(s_sequence(reader), 1);
    snprintf(sql, sizeof(sql), "SELECT count(*) FROM events WHERE id > %" PRId64 " AND payload->>'who' = 'A'", cursor);
    assert_int_equal(s_value(reader, sql), 1);
    assert_int_equal(s_value(reader, "SELECT count(*) FROM events WHERE id <= 1 AND payload->>'who' = 'A'"), 0);
    /* the public record keeps no trace of insertion order: numbering is the sequencer's alone */
    assert_int_equal(s_value(reader, "SELECT last_id FROM events_sequencer"), 2);

    /* events committed together keep their insertion order (a dial before its answer) */
    test_db_exec(a, "BEGIN");
    for (int i = 0; i < 3; i++) {
        char who[8];
        snprintf(who, sizeof(who), "T%d", i);
        snprintf(sql, sizeof(sql), publish, account, who);
        test_db_exec(a, sql);
    }
    test_db_exec(a, "COMMIT");
    assert_int_equal(s_sequence(reader), 3);
    PGresult *res = PQexec(reader, "SELECT string_agg(payload->>'who', ' ' ORDER BY id) FROM events WHERE id > 2");
    assert_string_equal(PQgetvalue(res, 0, 0), "T0 T1 T2");
    PQclear(res);

    /* nothing may bypass the catalog: an unknown type fails its producer, not the sequencer */
    snprintf(sql, sizeof(sql), "SELECT event_publish(%" PRId64 ", NULL, NULL, 'call.teleported', now(), '{}')", account);
    res = PQexec(a, sql);
    assert_int_equal(PQresultStatus(res), PGRES_FATAL_ERROR);
    assert_string_equal(PQresultErrorField(res, PG_DIAG_SQLSTATE), "23514");
    PQclear(res);
    assert_int_equal(s_sequence(reader), 0);

    PQfinish(a);
    PQfinish(b);
    PQfinish(reader);
    support_db_drop(&url);
}

/* While one sequencer holds the numbering lock, another waits for it and then numbers from
 * where the first ended. */
static void test_a_second_sequencer_waits_for_the_first(void **state)
{
    char *url = support_db_create("test_events_lock");
    PGconn *first = s_connect(url), *second = s_connect(url), *producer = s_connect(url), *watch = s_connect(url);
    char err[256], sql[512];
    assert_true(db_migrate(first, err, sizeof(err)) >= 1);
    int64_t account;
    assert_int_equal(db_account_create(first, "Events", &account, err, sizeof(err)), 0);
    snprintf(sql, sizeof(sql),
             "SELECT event_publish(%" PRId64 ", NULL, NULL, 'campaign.paused', now(), jsonb_build_object('n', n)) "
             "FROM generate_series(1, 5) AS n",
             account);
    test_db_exec(producer, sql);

    test_db_exec(first, "BEGIN");
    assert_int_equal(s_sequence(first), 5);
    int pid = PQbackendPID(second);
    assert_int_equal(PQsendQuery(second, "SELECT events_sequence(1000)"), 1);
    /* the second is blocked on the advisory lock, not finished */
    snprintf(sql, sizeof(sql),
             "SELECT count(*) FROM pg_locks WHERE pid = %d AND locktype = 'advisory' AND NOT granted AND objid = 1702260340", pid);
    for (int i = 0; i < 300 && s_value(watch, sql) == 0; i++)
        usleep(100000);
    assert_int_equal(s_value(watch, sql), 1);
    /* more events arrive meanwhile */
    snprintf(sql, sizeof(sql),
             "SELECT event_publish(%" PRId64 ", NULL, NULL, 'campaign.paused', now(), jsonb_build_object('n', n)) "
             "FROM generate_series(6, 8) AS n",
             account);
    test_db_exec(producer, sql);
    test_db_exec(first, "COMMIT");

    PGresult *res = PQgetResult(second);
    assert_int_equal(PQresultStatus(res), PGRES_TUPLES_OK);
    assert_string_equal(PQgetvalue(res, 0, 0), "3");
    PQclear(res);
    assert_null(PQgetResult(second));
    res = PQexec(watch, "SELECT string_agg(id || ':' || (payload->>'n'), ' ' ORDER BY id) FROM events");
    assert_string_equal(PQgetvalue(res, 0, 0), "1:1 2:2 3:3 4:4 5:5 6:6 7:7 8:8");
    PQclear(res);

    PQfinish(first);
    PQfinish(second);
    PQfinish(producer);
    PQfinish(watch);
    support_db_drop(&url);
}

#define PRODUCERS         3
#define SEQUENCERS        3
#define TRANSACTIONS      40
#define EVENTS_PER_COMMIT 5

typedef struct {
    const char *url;
    int64_t account;
    int index;
    atomic_int *stop; /* set when the workers this one waits for are done */
    char error[256];  /* empty: fine */
    int64_t count;
} worker_t;

static void *s_produce(void *arg)
{
    worker_t *w = arg;
    PGconn *db = PQconnectdb(w->url);
    char sql[512];
    for (int t = 0; t < TRANSACTIONS && !w->error[0]; t++) {
        /* producer, then its running count: each producer's events must keep its order */
        snprintf(sql, sizeof(sql),
                 "BEGIN; SELECT event_publish(%" PRId64 ", %d, NULL, 'campaign.resumed', now(), "
                 "jsonb_build_object('producer', %d, 'seq', %d * %d + n)) FROM generate_series(0, %d) AS n; COMMIT",
                 w->account, w->index + 1, w->index, t, EVENTS_PER_COMMIT, EVENTS_PER_COMMIT - 1);
        PGresult *res = PQexec(db, sql);
        if (PQresultStatus(res) != PGRES_COMMAND_OK)
            snprintf(w->error, sizeof(w->error), "producer: %s", PQresultErrorMessage(res));
        PQclear(res);
    }
    PQfinish(db);
    return NULL;
}

static void *s_sequence_loop(void *arg)
{
    worker_t *w = arg;
    PGconn *db = PQconnectdb(w->url);
    while (!w->error[0]) {
        /* Read before the call: a call that starts after the producers finished and moves
         * nothing proves the inbox empty. */
        bool stopping = *w->stop;
        /* small batches, so the sequencers interleave */
        PGresult *res = PQexec(db, "SELECT events_sequence(3)");
        int moved = PQresultStatus(res) == PGRES_TUPLES_OK ? atoi(PQgetvalue(res, 0, 0)) : -1;
        if (moved < 0)
            snprintf(w->error, sizeof(w->error), "sequencer: %s", PQresultErrorMessage(res));
        PQclear(res);
        w->count += moved > 0 ? moved : 0;
        if (stopping && moved == 0)
            break;
    }
    PQfinish(db);
    return NULL;
}

/* Reads with a cursor as a client would: every page must start right after the cursor, since
 * ids are given without gaps in commit order. */
static void *s_read_loop(void *arg)
{
    worker_t *w = arg;
    PGconn *db = PQconnectdb(w->url);
    int64_t cursor = 0;
    while (!w->error[0]) {
        bool finished = *w->stop; /* before the read: once every sequencer is done, nothing new comes */
        char sql[256];
        snprintf(sql, sizeof(sql), "SELECT id FROM events WHERE id > %" PRId64 " ORDER BY id LIMIT 50", cursor);
        PGresult *res = PQexec(db, sql);
        if (PQresultStatus(res) != PGRES_TUPLES_OK)
            snprintf(w->error, sizeof(w->error), "reader: %s", PQresultErrorMessage(res));
        for (int i = 0; !w->error[0] && i < PQntuples(res); i++) {
            int64_t id = strtoll(PQgetvalue(res, i, 0), NULL, 10);
            if (id != cursor + 1)
                snprintf(w->error, sizeof(w->error), "reader: after %" PRId64 " came %" PRId64, cursor, id);
            cursor = id;
        }
        int rows = PQntuples(res);
        PQclear(res);
        if (rows == 0 && finished)
            break;
    }
    w->count = cursor;
    PQfinish(db);
    return NULL;
}

static void test_concurrent_sequencers_keep_commit_order(void **state)
{
    char *url = support_db_create("test_events_concurrent");
    PGconn *db = s_connect(url);
    char err[256];
    assert_true(db_migrate(db, err, sizeof(err)) >= 1);
    int64_t account;
    assert_int_equal(db_account_create(db, "Events", &account, err, sizeof(err)), 0);

    atomic_int producers_done = 0, sequencers_done = 0;
    worker_t producers[PRODUCERS], sequencers[SEQUENCERS], reader = {.url = url, .stop = &sequencers_done};
    pthread_t producer_threads[PRODUCERS], sequencer_threads[SEQUENCERS], reader_thread;
    for (int i = 0; i < SEQUENCERS; i++) {
        sequencers[i] = (worker_t){.url = url, .stop = &producers_done};
        assert_int_equal(pthread_create(&sequencer_threads[i], NULL, s_sequence_loop, &sequencers[i]), 0);
    }
    assert_int_equal(pthread_create(&reader_thread, NULL, s_read_loop, &reader), 0);
    for (int i = 0; i < PRODUCERS; i++) {
        producers[i] = (worker_t){.url = url, .account = account, .index = i};
        assert_int_equal(pthread_create(&producer_threads[i], NULL, s_produce, &producers[i]), 0);
    }
    for (int i = 0; i < PRODUCERS; i++) {
        pthread_join(producer_threads[i], NULL);
        assert_string_equal(producers[i].error, "");
    }
    producers_done = 1;
    int64_t moved = 0;
    for (int i = 0; i < SEQUENCERS; i++) {
        pthread_join(sequencer_threads[i], NULL);
        assert_string_equal(sequencers[i].error, "");
        moved += sequencers[i].count;
    }
    sequencers_done = 1;
    pthread_join(reader_thread, NULL);
    assert_string_equal(reader.error, "");

    const int64_t total = PRODUCERS * TRANSACTIONS * EVENTS_PER_COMMIT;
    assert_int_equal(moved, total);
    assert_int_equal(reader.count, total); /* the reader saw every id, in order, none skipped */
    assert_int_equal(s_value(db, "SELECT count(*) FROM event_inbox"), 0);
    assert_int_equal(s_value(db, "SELECT count(*) FROM events"), total);
    assert_int_equal(s_value(db, "SELECT max(id) FROM events"), total);
    /* each producer's events in its own order */
    assert_int_equal(s_value(db, "SELECT count(*) FROM (SELECT (payload->>'seq')::int - lag((payload->>'seq')::int) OVER "
                                 "(PARTITION BY payload->>'producer' ORDER BY id) AS step FROM events) AS s WHERE step <> 1"),
                     0);
    PQfinish(db);
    support_db_drop(&url);
}

/* ---- producers and the catalog ---------------------------------------------------------------- */

static void test_every_producer_matches_the_catalog(void **state)
{
    char *url = support_db_create("test_events_catalog");
    PGconn *db = s_connect(url);
    char err[256], sql[2048];
    assert_true(db_migrate(db, err, sizeof(err)) >= 1);
    int64_t account;
    assert_int_equal(db_account_create(db, "Events", &account, err, sizeof(err)), 0);
    json_t *catalog = s_catalog();

    /* the catalog's types are exactly those the database accepts */
    PGresult *res = PQexec(db, "SELECT pg_get_constraintdef(oid) FROM pg_constraint WHERE conname = 'event_type_check' AND "
                               "contypid = 'event_type'::regtype");
    assert_int_equal(PQntuples(res), 1);
    json_t *in_database = json_object();
    for (const char *p = PQgetvalue(res, 0, 0); (p = strchr(p, '\'')) != NULL; p++) {
        const char *end = strchr(p + 1, '\'');
        assert_non_null(end);
        char type[64];
        snprintf(type, sizeof(type), "%.*s", (int)(end - p - 1), p + 1);
        json_object_set_new(in_database, type, json_true());
        p = end;
    }
    PQclear(res);
    json_t *types = json_object_get(catalog, "types");
    assert_int_equal(json_object_size(in_database), json_object_size(types));
    const char *type;
    json_t *entry;
    char *doc = s_read_file("docs/events.md");
    json_object_foreach(types, type, entry)
    {
        if (json_object_get(in_database, type) == NULL)
            fail_msg("%s is in the catalog but not in the event_type domain", type);
        assert_non_null(json_string_value(json_object_get(entry, "description")));
        assert_true(json_array_size(json_object_get(entry, "streams")) >= 1);
        char heading[96];
        snprintf(heading, sizeof(heading), "\n### `%s`\n", type);
        if (strstr(doc, heading) == NULL)
            fail_msg("docs/events.md has no section %s", heading + 1);
    }
    free(doc);
    json_decref(in_database);
    /* both tables take their type from the domain */
    assert_int_equal(s_value(db, "SELECT count(*) FROM information_schema.columns WHERE column_name = 'type' AND "
                                 "table_name IN ('events', 'event_inbox') AND domain_name = 'event_type'"),
                     2);

    /* every producer, by the statements the server runs: a campaign started, paused, resumed
     * and stopped; a v1 call's campaign created running; dials of both, group-committed as the
     * dialer does (several transitions in one row); a list import that completes and one that
     * fails */
    snprintf(sql, sizeof(sql),
             "INSERT INTO campaigns (id, account_id, name, origin) OVERRIDING SYSTEM VALUE VALUES (601, %" PRId64
             ", 'Admin', 'admin'); "
             "INSERT INTO campaigns (id, account_id, name, origin, status) OVERRIDING SYSTEM VALUE VALUES (602, %" PRId64
             ", 'A call', 'call', 'running'); "
             "INSERT INTO calls (id, account_id, campaign_id, call_state_url, numbers_given) OVERRIDING SYSTEM VALUE "
             "VALUES (88, %" PRId64 ", 602, 'http://127.0.0.1:9/state', 2)",
             account, account, account);
    test_db_exec(db, sql);
    test_db_exec(db, "UPDATE campaigns SET status = 'running' WHERE id = 601");
    test_db_exec(db, "UPDATE campaigns SET status = 'paused' WHERE id = 601");
    test_db_exec(db, "UPDATE campaigns SET name = 'Renamed' WHERE id = 601"); /* no status change: no event */
    test_db_exec(db, "UPDATE campaigns SET status = 'running' WHERE id = 601");
    const char *upsert =
        "INSERT INTO call_attempts AS t (call_id, account_id, campaign_id, number_id, phone, from_number, caller_id, dialed_at, "
        "answered_at, bridged_at, ended_at, outcome, abandoned) SELECT id, %" PRId64 ", campaign, id, '+12025550100', "
        "'+12125550142', caller, d::timestamptz, a::timestamptz, b::timestamptz, e::timestamptz, o, coalesce(o = 'abandoned', "
        "false) "
        "FROM (VALUES %s) AS v(id, campaign, caller, d, a, b, e, o) ON CONFLICT (call_id) DO UPDATE SET "
        "caller_id = coalesce(EXCLUDED.caller_id, t.caller_id), answered_at = coalesce(EXCLUDED.answered_at, t.answered_at), "
        "bridged_at = coalesce(EXCLUDED.bridged_at, t.bridged_at), ended_at = coalesce(EXCLUDED.ended_at, t.ended_at), "
        "outcome = coalesce(EXCLUDED.outcome, t.outcome), abandoned = EXCLUDED.abandoned OR t.abandoned";
    snprintf(sql, sizeof(sql), upsert, account,
             "(1, 601, NULL::bigint, '2026-01-01 10:00:00Z', NULL, NULL, NULL, NULL), "
             "(2, 602, NULL, '2026-01-01 10:00:01Z', '2026-01-01 10:00:05Z', NULL, '2026-01-01 10:00:07Z', 'abandoned'), "
             "(3, 602, NULL, '2026-01-01 10:00:02Z', NULL, NULL, '2026-01-01 10:00:30Z', 'no_answer')");
    test_db_exec(db, sql);
    snprintf(sql, sizeof(sql), upsert, account,
             "(1, 601, 7::bigint, '2026-01-01 10:00:00Z', '2026-01-01 10:00:03Z', '2026-01-01 10:00:04Z', "
             "'2026-01-01 10:00:20Z', 'talked')");
    test_db_exec(db, sql);
    /* what the dialer publishes for a person at their desk, and a survey they submit */
    const char *desk_events[] = {"caller.ready", "caller.preview", "caller.on_call", "caller.wrap_up", "caller.left"};
    for (size_t i = 0; i < sizeof(desk_events) / sizeof(desk_events[0]); i++) {
        snprintf(sql, sizeof(sql), "SELECT caller_publish(%" PRId64 ", 601, 7, 70, '%s', now(), %s, %s)", account, desk_events[i],
                 i >= 2 && i <= 3 ? "1" : "NULL", i >= 1 && i <= 3 ? "1" : "NULL");
        test_db_exec(db, sql);
    }
    snprintf(sql, sizeof(sql),
             "SELECT call_results_submit(1, %" PRId64 ", 601, 7, 70, 1, NULL, false, true, '[]', "
             "'[{\"note_id\": 3, \"text\": \"Call after six\"}]', 24, 3)",
             account);
    test_db_exec(db, sql);
    /* the deliverer disabling an endpoint (the account disabling one is no event) */
    snprintf(sql, sizeof(sql),
             "INSERT INTO webhook_endpoints (id, account_id, url) OVERRIDING SYSTEM VALUE VALUES (41, %" PRId64
             ", 'https://example.com/a'), (42, %" PRId64 ", 'https://example.com/b'); "
             "UPDATE webhook_endpoints SET enabled = false WHERE id = 41; "
             "UPDATE webhook_endpoints SET enabled = false, disabled_reason = 'the receiver answered 410 Gone' WHERE id = 42",
             account, account);
    test_db_exec(db, sql);
    /* what the dialer publishes when a running campaign runs dry (not for a stopped one) */
    test_db_exec(db, "SELECT campaign_publish_numbers_needed(601)");
    test_db_exec(db, "UPDATE campaigns SET status = 'stopped' WHERE id IN (601, 602)");
    test_db_exec(db, "SELECT campaign_publish_numbers_needed(602)");
    snprintf(sql, sizeof(sql),
             "INSERT INTO lists (id, account_id, campaign_id, name, column_map) OVERRIDING SYSTEM VALUE VALUES "
             "(31, %" PRId64 ", 601, 'Good', '{\"phone\": \"phone\"}'), (32, %" PRId64 ", 601, 'Bad', '{\"phone\": \"phone\"}'); "
             "UPDATE lists SET status = 'queued' WHERE id IN (31, 32); UPDATE lists SET status = 'importing' WHERE id IN (31, 32); "
             "UPDATE lists SET status = 'completed', rows_total = 10, rows_imported = 7, rows_invalid = 2, rows_duplicate = 1, "
             "finished_at = now() WHERE id = 31; "
             "UPDATE lists SET status = 'failed', failure = 'the file is not UTF-8', finished_at = now() WHERE id = 32",
             account, account);
    test_db_exec(db, sql);
    while (s_sequence(db) > 0)
        ;

    json_t *seen = json_object();
    int64_t checked = s_check_events_against_catalog(db, catalog, seen);
    json_object_foreach(types, type, entry)
    {
        if (json_object_get(seen, type) == NULL)
            fail_msg("no producer wrote a %s event", type);
    }
    json_decref(seen);
    /* the call events are those of call_attempts, for every campaign, in state order */
    res = PQexec(db, "SELECT string_agg(type || '@' || (payload->>'attempt_id'), ' ' ORDER BY id) FROM events "
                     "WHERE type LIKE 'call.%'");
    assert_string_equal(PQgetvalue(res, 0, 0), "call.dialing@1 call.dialing@2 call.answered@2 call.ended@2 call.dialing@3 "
                                               "call.ended@3 call.answered@1 call.bridged@1 call.ended@1");
    PQclear(res);
    assert_int_equal(s_value(db, "SELECT count(*) FROM events WHERE type LIKE 'call.%' AND (payload->>'call_id')::int = 88 "
                                 "AND campaign_id = 602"),
                     5);
    assert_int_equal(s_value(db, "SELECT count(*) FROM events WHERE caller_id = 7 AND type IN ('call.bridged', 'call.ended')"), 2);
    /* the campaigns' status changes in order */
    res = PQexec(db, "SELECT string_agg(type, ' ' ORDER BY id) FROM events WHERE campaign_id = 601 AND type LIKE 'campaign.%'");
    assert_string_equal(PQgetvalue(res, 0, 0),
                        "campaign.started campaign.paused campaign.resumed campaign.numbers_needed campaign.stopped");
    PQclear(res);
    res = PQexec(db, "SELECT string_agg(type || ':' || coalesce(payload->>'previous_status', '-'), ' ' ORDER BY id) FROM events "
                     "WHERE campaign_id = 602 AND type LIKE 'campaign.%'");
    assert_string_equal(PQgetvalue(res, 0, 0), "campaign.started:- campaign.stopped:running");
    PQclear(res);
    /* the imports' ends with their counts */
    assert_int_equal(s_value(db, "SELECT count(*) FROM events WHERE type = 'list.import_completed' AND campaign_id = 601 AND "
                                 "(payload->>'rows_imported')::int = 7 AND (payload->>'rows_invalid')::int = 2"),
                     1);
    assert_int_equal(s_value(db, "SELECT count(*) FROM events WHERE type = 'list.import_failed' AND "
                                 "payload->>'failure' = 'the file is not UTF-8'"),
                     1);
    assert_int_equal(s_value(db, "SELECT count(*) FROM events WHERE type = 'webhook_endpoint.disabled' AND "
                                 "(payload->>'webhook_endpoint_id')::int = 42"),
                     1);
    assert_int_equal(s_value(db, "SELECT count(*) FROM events WHERE type = 'webhook_endpoint.disabled'"), 1);
    assert_int_equal(checked, s_value(db, "SELECT count(*) FROM events"));
    /* 0008's outbox for v1 calls is untouched: only the call's dials are there */
    assert_int_equal(s_value(db, "SELECT count(*) FROM call_events"), 5);

    json_decref(catalog);
    PQfinish(db);
    support_db_drop(&url);
}

/* ---- end to end ------------------------------------------------------------------------------- */

static test_dialing_t g;
static char g_other_key[256], g_other_auth[256];

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
    return 0;
}

static int s_teardown(void **state)
{
    test_dialing_stop(&g);
    return 0;
}

static json_t *s_get(const char *path, long want)
{
    return test_call(g.server, g.server->key, g.server->auth, "GET", path, NULL, NULL, 0, want);
}

static json_t *s_post(const char *path, const char *body, long want)
{
    return test_call(g.server, g.server->key, g.server->auth, "POST", path, body ? "application/json" : NULL, body, 0, want);
}

/* The path and query of an absolute uri the server rendered. */
static const char *s_path_of(const char *uri)
{
    const char *p = strstr(uri, "://");
    assert_non_null(p);
    p = strchr(p + 3, '/');
    assert_non_null(p);
    return p;
}

static int64_t g_call_campaign, g_admin_campaign;

static void test_a_running_campaign_publishes_its_calls(void **state)
{
    char sql[512], path[128];
    json_t *call = s_post("/v1/call",
                          "{\"dialer_type\": \"Power\", \"from\": \"2125550142\", \"call_state_url\": \"http://127.0.0.1:9/state\","
                          " \"phone_number\": [\"202-555-0130\", \"202-555-0131\", \"202-555-0132\", \"202-555-0133\"]}",
                          201);
    int64_t id = json_integer_value(json_object_get(call, "id"));
    g_call_campaign = json_integer_value(json_object_get(call, "campaign_id"));
    json_decref(call);
    test_move_into_calling_hours(g.db, g_call_campaign);
    snprintf(sql, sizeof(sql), "SELECT count(DISTINCT number_id) FROM call_attempts WHERE campaign_id = %" PRId64, g_call_campaign);
    test_db_wait_equal(&g, sql, 4, 120);
    snprintf(path, sizeof(path), "/v1/calls/%" PRId64 "/stop", id);
    json_decref(s_post(path, NULL, 200));
    snprintf(sql, sizeof(sql), "SELECT count(*) FROM call_attempts WHERE campaign_id = %" PRId64 " AND ended_at IS NULL",
             g_call_campaign);
    test_db_wait_equal(&g, sql, 0, 120);

    /* nothing but the fan-out process numbers events here: wait until it has numbered all */
    test_db_wait_equal(&g, "SELECT count(*) FROM event_inbox", 0, 60);
    const char *types[] = {"call.dialing", "call.answered", "call.bridged", "call.ended"};
    const char *columns[] = {"dialed_at", "answered_at", "bridged_at", "ended_at"};
    for (int i = 0; i < 4; i++) {
        snprintf(sql, sizeof(sql), "SELECT count(*) FROM call_attempts WHERE campaign_id = %" PRId64 " AND %s IS NOT NULL",
                 g_call_campaign, columns[i]);
        int64_t attempts = test_db_count(g.db, sql);
        snprintf(sql, sizeof(sql), "SELECT count(*) FROM events WHERE campaign_id = %" PRId64 " AND type = '%s'", g_call_campaign,
                 types[i]);
        assert_int_equal(test_db_count(g.db, sql), attempts);
        if (i == 0 || i == 3)
            assert_true(attempts >= 4);
    }
    /* one event per attempt and type */
    snprintf(sql, sizeof(sql),
             "SELECT count(*) FROM (SELECT 1 FROM events WHERE campaign_id = %" PRId64
             " AND type LIKE 'call.%%' GROUP BY payload->>'attempt_id', type HAVING count(*) > 1) AS d",
             g_call_campaign);
    assert_int_equal(test_db_count(g.db, sql), 0);
    /* the call's start and stop */
    snprintf(sql, sizeof(sql),
             "SELECT count(*) FROM events WHERE campaign_id = %" PRId64 " AND type IN ('campaign.started', 'campaign.stopped')",
             g_call_campaign);
    assert_int_equal(test_db_count(g.db, sql), 2);
    /* ids are gapless: nothing else writes events, and none is lost */
    assert_int_equal(test_db_count(g.db, "SELECT max(id) - count(*) FROM events"), 0);
}

/* The types of a campaign's events as the API gives them, oldest first, as one string. */
static void s_campaign_types(int64_t campaign, const char *type_filter, char *out, size_t size)
{
    char path[256];
    snprintf(path, sizeof(path), "/v1/events?after=0&limit=100&campaign_id=%" PRId64 "%s%s", campaign, type_filter ? "&type=" : "",
             type_filter ? type_filter : "");
    json_t *page = s_get(path, 200);
    out[0] = '\0';
    size_t i;
    json_t *item;
    json_array_foreach(json_object_get(page, "items"), i, item)
    {
        size_t used = strlen(out);
        snprintf(out + used, size - used, "%s%s", i ? " " : "", json_string_value(json_object_get(item, "type")));
    }
    json_decref(page);
}

static void test_campaign_status_changes_are_events(void **state)
{
    char path[128], types[512];
    json_t *campaign =
        s_post("/v1/campaigns", "{\"name\": \"Statuses\", \"dialer_type\": \"Power\", \"from\": \"2125550142\"}", 201);
    g_admin_campaign = json_integer_value(json_object_get(campaign, "id"));
    json_decref(campaign);
    const char *steps[] = {"start", "pause", "start", "stop"};
    for (int i = 0; i < 4; i++) {
        snprintf(path, sizeof(path), "/v1/campaigns/%" PRId64 "/%s", g_admin_campaign, steps[i]);
        json_decref(s_post(path, NULL, 200));
    }
    char sql[256];
    snprintf(sql, sizeof(sql), "SELECT count(*) FROM events WHERE campaign_id = %" PRId64, g_admin_campaign);
    test_db_wait_equal(&g, sql, 4, 60);
    s_campaign_types(g_admin_campaign, NULL, types, sizeof(types));
    assert_string_equal(types, "campaign.started campaign.paused campaign.resumed campaign.stopped");
    /* a stop of a stopped campaign changes nothing, so it is no event */
    snprintf(path, sizeof(path), "/v1/campaigns/%" PRId64 "/stop", g_admin_campaign);
    json_decref(s_post(path, NULL, 200));
    test_db_wait_equal(&g, "SELECT count(*) FROM event_inbox", 0, 60);
    assert_int_equal(test_db_count(g.db, sql), 4);
}

/* The importer's real path: the end of an import is one event with the list's final counts. */
static void test_a_list_import_publishes_its_end(void **state)
{
    char body[256], path[128], sql[256];
    snprintf(body, sizeof(body),
             "{\"name\": \"Evening list\", \"campaign_id\": %" PRId64 ", \"column_map\": {\"Phone\": \"phone\"}}",
             g_admin_campaign);
    json_t *list = s_post("/v1/lists", body, 201);
    int64_t id = json_integer_value(json_object_get(list, "id"));
    json_decref(list);
    snprintf(path, sizeof(path), "/v1/lists/%" PRId64 "/upload", id);
    const char *csv = "Phone\n212-555-0101\n212-555-0102\nnot a phone\n(212) 555-0101\n";
    json_decref(test_call(g.server, g.server->key, g.server->auth, "POST", path, "text/csv", csv, 0, 200));
    snprintf(path, sizeof(path), "/v1/lists/%" PRId64 "/import", id);
    json_decref(s_post(path, NULL, 202));

    snprintf(sql, sizeof(sql),
             "SELECT count(*) FROM events WHERE type = 'list.import_completed' AND (payload->>'list_id')::bigint = %" PRId64, id);
    test_db_wait_equal(&g, sql, 1, 120);
    snprintf(path, sizeof(path), "/v1/events?type=list.import_completed,list.import_failed&campaign_id=%" PRId64, g_admin_campaign);
    json_t *page = s_get(path, 200);
    assert_int_equal(json_array_size(json_object_get(page, "items")), 1);
    json_t *data = json_object_get(json_array_get(json_object_get(page, "items"), 0), "data");
    snprintf(path, sizeof(path), "/v1/lists/%" PRId64, id);
    list = s_get(path, 200);
    assert_string_equal(json_string_value(json_object_get(list, "status")), "completed");
    const char *counts[] = {"rows_total", "rows_imported", "rows_invalid", "rows_duplicate", "rows_blocked", "rows_removed"};
    for (size_t i = 0; i < sizeof(counts) / sizeof(counts[0]); i++)
        assert_int_equal(json_integer_value(json_object_get(data, counts[i])),
                         json_integer_value(json_object_get(list, counts[i])));
    assert_int_equal(json_integer_value(json_object_get(data, "rows_total")), 4);
    assert_int_equal(json_integer_value(json_object_get(data, "rows_invalid")), 1);
    assert_true(json_is_null(json_object_get(data, "failure")));
    json_decref(list);
    json_decref(page);
}

static void test_the_events_api_pages_and_filters(void **state)
{
    int64_t total = test_db_count(g.db, "SELECT count(*) FROM events WHERE account_id = (SELECT min(id) FROM accounts)");
    assert_true(total > 10);

    /* oldest first from a cursor, page by page through next_page: every event once, ascending */
    char path[1024];
    snprintf(path, sizeof(path), "/v1/events?after=0&limit=7");
    int64_t seen = 0, last = 0;
    for (int pages = 0; pages < 1000; pages++) {
        json_t *page = s_get(path, 200);
        assert_string_equal(json_string_value(json_object_get(page, "order")), "oldest_first");
        json_t *items = json_object_get(page, "items");
        size_t i;
        json_t *item;
        json_array_foreach(items, i, item)
        {
            int64_t id = json_integer_value(json_object_get(item, "id"));
            assert_true(id > last);
            last = id;
            seen++;
        }
        /* a feed always says where to ask next */
        const char *next = json_string_value(json_object_get(page, "next_page"));
        assert_non_null(next);
        snprintf(path, sizeof(path), "%s", s_path_of(next));
        bool empty = json_array_size(items) == 0;
        json_decref(page);
        if (empty)
            break;
    }
    assert_int_equal(seen, total);

    /* newest first by default, paged with before */
    json_t *page = s_get("/v1/events?limit=5", 200);
    assert_string_equal(json_string_value(json_object_get(page, "order")), "newest_first");
    json_t *items = json_object_get(page, "items");
    assert_int_equal(json_array_size(items), 5);
    int64_t newest = json_integer_value(json_object_get(json_array_get(items, 0), "id"));
    int64_t fifth = json_integer_value(json_object_get(json_array_get(items, 4), "id"));
    assert_int_equal(newest, last);
    assert_true(fifth < newest);
    snprintf(path, sizeof(path), "%s", s_path_of(json_string_value(json_object_get(page, "next_page"))));
    assert_non_null(strstr(path, "before="));
    json_decref(page);
    page = s_get(path, 200);
    assert_true(json_integer_value(json_object_get(json_array_get(json_object_get(page, "items"), 0), "id")) < fifth);
    json_decref(page);
    /* the last page of a newest-first walk says so */
    page = s_get("/v1/events?before=2&limit=5", 200);
    assert_int_equal(json_array_size(json_object_get(page, "items")), 1);
    assert_true(json_is_null(json_object_get(page, "next_page")));
    json_decref(page);

    /* filters: types, campaign, caller, time */
    char types[512];
    s_campaign_types(g_admin_campaign, "campaign.paused,campaign.stopped", types, sizeof(types));
    assert_string_equal(types, "campaign.paused campaign.stopped");
    char sql[512];
    snprintf(sql, sizeof(sql), "SELECT count(*) FROM events WHERE campaign_id = %" PRId64 " AND type = 'call.ended'",
             g_call_campaign);
    int64_t ended = test_db_count(g.db, sql);
    snprintf(path, sizeof(path), "/v1/events?after=0&limit=100&type=call.ended&campaign_id=%" PRId64, g_call_campaign);
    page = s_get(path, 200);
    assert_int_equal((int64_t)json_array_size(json_object_get(page, "items")), ended);
    json_decref(page);
    int64_t caller = test_db_count(g.db, "SELECT coalesce(min(caller_id), 0) FROM events");
    if (caller > 0) {
        snprintf(sql, sizeof(sql), "SELECT count(*) FROM events WHERE caller_id = %" PRId64, caller);
        int64_t of_caller = test_db_count(g.db, sql);
        snprintf(path, sizeof(path), "/v1/events?after=0&limit=100&caller_id=%" PRId64, caller);
        page = s_get(path, 200);
        assert_int_equal((int64_t)json_array_size(json_object_get(page, "items")), of_caller);
        size_t i;
        json_t *item;
        json_array_foreach(json_object_get(page, "items"), i, item)
        {
            const char *type = json_string_value(json_object_get(item, "type"));
            assert_true(strcmp(type, "call.bridged") == 0 || strcmp(type, "call.ended") == 0);
            assert_int_equal(json_integer_value(json_object_get(item, "caller_id")), caller);
        }
        json_decref(page);
    }
    /* since is inclusive, until exclusive: one event's own time selects it */
    PGresult *res =
        PQexec(g.db, "SELECT id, to_char(occurred_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"'), "
                     "to_char((occurred_at + interval '1 microsecond') AT TIME ZONE 'UTC', "
                     "'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"') FROM events WHERE type = 'campaign.paused' AND campaign_id = "
                     "(SELECT max(campaign_id) FROM events WHERE type = 'campaign.paused')");
    assert_int_equal(PQntuples(res), 1);
    snprintf(path, sizeof(path), "/v1/events?type=campaign.paused&since=%s&until=%s", PQgetvalue(res, 0, 1), PQgetvalue(res, 0, 2));
    page = s_get(path, 200);
    assert_int_equal(json_array_size(json_object_get(page, "items")), 1);
    json_t *event = json_array_get(json_object_get(page, "items"), 0);
    assert_int_equal(json_integer_value(json_object_get(event, "id")), strtoll(PQgetvalue(res, 0, 0), NULL, 10));
    json_decref(page);
    snprintf(path, sizeof(path), "/v1/events?type=campaign.paused&since=%s&until=%s", PQgetvalue(res, 0, 2), PQgetvalue(res, 0, 2));
    page = s_get(path, 200);
    assert_int_equal(json_array_size(json_object_get(page, "items")), 0);
    json_decref(page);

    /* one event, as the list shows it */
    snprintf(path, sizeof(path), "/v1/events/%s", PQgetvalue(res, 0, 0));
    event = s_get(path, 200);
    assert_string_equal(json_string_value(json_object_get(event, "type")), "campaign.paused");
    assert_string_equal(json_string_value(json_object_get(event, "name")), "campaign.paused");
    assert_string_equal(s_path_of(json_string_value(json_object_get(event, "uri"))), path);
    assert_true(json_is_object(json_object_get(event, "data")));
    assert_non_null(json_string_value(json_object_get(event, "occurred_at")));
    assert_int_equal(json_integer_value(json_object_get(json_object_get(event, "data"), "campaign_id")),
                     json_integer_value(json_object_get(event, "campaign_id")));
    json_decref(event);

    /* another account sees none of it */
    json_decref(test_call(g.server, g_other_key, g_other_auth, "GET", path, NULL, NULL, 0, 404));
    page = test_call(g.server, g_other_key, g_other_auth, "GET", "/v1/events?after=0", NULL, NULL, 0, 200);
    assert_int_equal(json_array_size(json_object_get(page, "items")), 0);
    json_decref(page);
    PQclear(res);
    json_decref(s_get("/v1/events/999999999", 404));
    json_decref(test_call(g.server, g.server->key, g.server->auth, "POST", "/v1/events", "application/json", "{}", 0, 405));
}

static void test_bad_filters_are_refused(void **state)
{
    const struct {
        const char *query, *field;
    } bad[] = {
        {"type=call.teleported", "type"},
        {"type=Call.Ended", "type"},
        {"type=call.ended,,call.dialing", "type"},
        {"type=", "type"},
        {"limit=0", "limit"},
        {"limit=101", "limit"},
        {"limit=ten", "limit"},
        {"after=-1", "after"},
        {"after=1e3", "after"},
        {"before=0", "before"},
        {"campaign_id=0", "campaign_id"},
        {"caller_id=x", "caller_id"},
        {"since=yesterday", "since"},
        {"since=2026-02-29T00:00:00Z", "since"},
        {"until=2026-11-28T25:00:00Z", "until"},
        {"until=2026-11-28T10:00:00", "until"},
    };
    char path[256];
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        snprintf(path, sizeof(path), "/v1/events?%s", bad[i].query);
        json_t *problem = s_get(path, 422);
        json_t *error = json_array_get(json_object_get(problem, "errors"), 0);
        if (error == NULL || strcmp(json_string_value(json_object_get(error, "field")), bad[i].field) != 0)
            fail_msg("%s: the problem does not name %s", bad[i].query, bad[i].field);
        json_decref(problem);
    }
    /* every bad filter is named at once */
    json_t *problem = s_get("/v1/events?limit=0&after=x&since=now&campaign_id=-2", 422);
    assert_int_equal(json_array_size(json_object_get(problem, "errors")), 4);
    json_decref(problem);
    /* a filter too long to be anything is refused, not ignored */
    char *longer = malloc(4096);
    int n = snprintf(longer, 4096, "/v1/events?since=");
    memset(longer + n, '9', 3000);
    longer[n + 3000] = '\0';
    json_decref(s_get(longer, 422));
    free(longer);
    /* every type of the catalog is a valid filter, with an offset time too, and in the OpenAPI
     * description's enum, which has no other type */
    json_t *catalog = s_catalog();
    json_t *openapi = test_call(g.server, NULL, NULL, "GET", "/v1/openapi.json", NULL, NULL, 0, 200);
    json_t *event_schema = json_object_get(json_object_get(json_object_get(openapi, "components"), "schemas"), "Event");
    json_t *documented = json_object_get(
        json_object_get(json_object_get(json_array_get(json_object_get(event_schema, "allOf"), 1), "properties"), "type"), "enum");
    assert_int_equal(json_array_size(documented), json_object_size(json_object_get(catalog, "types")));
    size_t i;
    json_t *name;
    json_array_foreach(documented, i, name)
        assert_non_null(json_object_get(json_object_get(catalog, "types"), json_string_value(name)));
    json_decref(openapi);
    const char *type;
    json_t *entry;
    json_object_foreach(json_object_get(catalog, "types"), type, entry)
    {
        snprintf(path, sizeof(path), "/v1/events?type=%s&since=2026-01-01T00:00:00.5%%2B02:00", type);
        json_decref(s_get(path, 200));
    }
    json_decref(catalog);
}

int main(void)
{
    curl_global_init(CURL_GLOBAL_ALL);
    const struct CMUnitTest sql[] = {
        cmocka_unit_test(test_ids_follow_commits_not_inserts),
        cmocka_unit_test(test_a_second_sequencer_waits_for_the_first),
        cmocka_unit_test(test_concurrent_sequencers_keep_commit_order),
        cmocka_unit_test(test_every_producer_matches_the_catalog),
    };
    const struct CMUnitTest end_to_end[] = {
        cmocka_unit_test(test_a_running_campaign_publishes_its_calls),
        cmocka_unit_test(test_campaign_status_changes_are_events),
        cmocka_unit_test(test_a_list_import_publishes_its_end),
        cmocka_unit_test(test_the_events_api_pages_and_filters),
        cmocka_unit_test(test_bad_filters_are_refused),
    };
    int failed = cmocka_run_group_tests_name("events in SQL", sql, NULL, NULL);
    failed += cmocka_run_group_tests_name("events end to end", end_to_end, s_setup, s_teardown);
    curl_global_cleanup();
    return failed;
}
