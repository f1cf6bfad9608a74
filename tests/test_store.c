/*
 * The store actor against a real PostgreSQL database, reached through the real broker:
 * migrations, accounts and keys, every way of presenting credentials, and the root resource.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <jansson.h>
#include <openssl/evp.h>
#include <stdlib.h>
#include <string.h>

#include "actors/store/db.h"
#include "actors/store/store.h"
#include "broker/broker.h"
#include "broker/client.h"
#include "schemas/msg.h"
#include "tests/support.h"

typedef struct {
    char *db;
    char dir[64], front[128], back[128];
    zactor_t *broker;
    zactor_t *store;
    zsock_t *client;
    PGconn *conn;
    char key[DB_API_KEY_LEN + 1], auth[DB_API_AUTH_LEN + 1];
    int64_t account_id;
    uint64_t corr;
} fixture_t;

static int s_setup(void **state)
{
    fixture_t *f = calloc(1, sizeof(*f));
    char err[512];
    f->db = support_db_create("test_store");
    f->conn = db_connect(f->db, err, sizeof(err));
    assert_non_null(f->conn);
    assert_true(db_migrate(f->conn, err, sizeof(err)) >= 1);
    assert_int_equal(db_account_create(f->conn, "Acme Calls", &f->account_id, err, sizeof(err)), 0);
    assert_int_equal(db_api_key_create(f->conn, f->account_id, "test", f->key, f->auth, err, sizeof(err)), 0);

    snprintf(f->dir, sizeof(f->dir), "/tmp/impact-store.XXXXXX");
    assert_non_null(mkdtemp(f->dir));
    snprintf(f->front, sizeof(f->front), "ipc://%s/front.ipc", f->dir);
    snprintf(f->back, sizeof(f->back), "ipc://%s/back.ipc", f->dir);
    brk_config_t broker = {.front_endpoint = f->front, .back_endpoint = f->back};
    f->broker = zactor_new(brk_actor, &broker);
    store_config_t store = {.broker_endpoint = f->back, .database_url = f->db, .index = 0};
    f->store = zactor_new(store_actor, &store);
    f->client = zsock_new_dealer(f->front);
    *state = f;
    return 0;
}

static int s_teardown(void **state)
{
    fixture_t *f = *state;
    zsock_destroy(&f->client);
    zactor_destroy(&f->store);
    zactor_destroy(&f->broker);
    PQfinish(f->conn);
    support_db_drop(&f->db);
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", f->dir);
    assert_int_equal(system(cmd), 0);
    free(f);
    return 0;
}

typedef struct {
    int status;
    char content_type[128];
    json_t *json;
    char www_authenticate[128];
} response_t;

/* Sends one API request through the broker and waits for the store's answer. The store
 * registers asynchronously, so a NO_SERVICE answer right after start-up is retried. */
static void s_request(fixture_t *f, const char *method, const char *path, const char *query, const char **headers, const char *body,
                      response_t *out)
{
    msg_api_request_t m = {.method = msg_str(method), .path = msg_str(path), .request_id = msg_str("test-req")};
    m.base_url = msg_str("http://127.0.0.1:8080");
    m.has_base_url = true;
    if (query) {
        m.query = msg_str(query);
        m.has_query = true;
    }
    for (int i = 0; headers && headers[i]; i += 2)
        msg_pairs_add(&m.headers, msg_str(headers[i]), msg_str(headers[i + 1]));
    m.has_headers = m.headers.count > 0;
    if (body) {
        m.body = msg_str(body);
        m.has_body = true;
    }
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    assert_int_equal(msg_api_request_encode(&m, &sb), 0);

    memset(out, 0, sizeof(*out));
    for (int attempt = 0; attempt < 500; attempt++) {
        uint64_t corr = ++f->corr, got;
        brk_status_t status = BRK_STATUS_OK;
        zframe_t *frame = NULL;
        assert_int_equal(brk_client_send(f->client, "store", corr, sb.data, sb.size), 0);
        zpoller_t *p = zpoller_new(f->client, NULL);
        assert_ptr_equal(zpoller_wait(p, 10000), f->client);
        zpoller_destroy(&p);
        assert_int_equal(support_recv_one(f->client, &got, &status, &frame), 0);
        assert_int_equal(got, corr);
        if (status == BRK_STATUS_NO_SERVICE) {
            zframe_destroy(&frame);
            zclock_sleep(10);
            continue;
        }
        assert_int_equal(status, BRK_STATUS_OK);
        msg_api_response_t r;
        assert_int_equal(msg_api_response_decode(zframe_data(frame), zframe_size(frame), &r, NULL, 0), 0);
        out->status = (int)r.status;
        msg_str_copy(r.content_type, out->content_type, sizeof(out->content_type));
        msg_str_t www = msg_pairs_get(&r.headers, "www-authenticate");
        if (www.ptr)
            msg_str_copy(www, out->www_authenticate, sizeof(out->www_authenticate));
        if (r.has_body)
            out->json = json_loadb(r.body.ptr, r.body.len, 0, NULL);
        zframe_destroy(&frame);
        break;
    }
    msgpack_sbuffer_destroy(&sb);
    assert_int_not_equal(out->status, 0);
}

static void test_migrations_are_idempotent(void **state)
{
    fixture_t *f = *state;
    char err[256];
    assert_int_equal(db_migrate(f->conn, err, sizeof(err)), 0);
    PGresult *res = PQexec(f->conn, "SELECT max(version) FROM schema_migrations");
    assert_int_equal(atoi(PQgetvalue(res, 0, 0)), db_schema_version());
    PQclear(res);
}

static void test_secret_is_stored_hashed(void **state)
{
    fixture_t *f = *state;
    assert_int_equal(strlen(f->key), DB_API_KEY_LEN);
    assert_int_equal(strlen(f->auth), DB_API_AUTH_LEN);
    const char *params[] = {f->auth + 3};
    PGresult *res = PQexecParams(f->conn,
                                 "SELECT count(*) FROM api_keys WHERE position(convert_to($1, 'UTF8') in secret_sha256) > 0 "
                                 "OR encode(secret_sha256, 'hex') LIKE '%' || $1 || '%'",
                                 1, NULL, params, NULL, NULL, 0);
    assert_string_equal(PQgetvalue(res, 0, 0), "0");
    PQclear(res);
}

static void s_assert_root(response_t *r, const char *account_name)
{
    assert_int_equal(r->status, 200);
    assert_string_equal(r->content_type, "application/json");
    assert_string_equal(json_string_value(json_object_get(r->json, "uri")), "http://127.0.0.1:8080/v1");
    assert_non_null(json_string_value(json_object_get(r->json, "name")));
    assert_true(json_is_array(json_object_get(r->json, "actions")));
    assert_true(json_is_array(json_object_get(r->json, "resources")));
    assert_string_equal(json_string_value(json_object_get(json_object_get(r->json, "account"), "name")), account_name);
    json_decref(r->json);
}

static void test_root_with_every_credential_form(void **state)
{
    fixture_t *f = *state;
    response_t r;

    const char *headers[] = {"Api-Key", f->key, "Api-Auth", f->auth, NULL};
    s_request(f, "GET", "/v1", NULL, headers, NULL, &r);
    s_assert_root(&r, "Acme Calls");

    const char *x_headers[] = {"X-Api-Key", f->key, "X-Api-Auth", f->auth, NULL};
    s_request(f, "GET", "/v1/", NULL, x_headers, NULL, &r);
    s_assert_root(&r, "Acme Calls");

    char query[256];
    snprintf(query, sizeof(query), "api_key=%s&api_auth=%s", f->key, f->auth);
    s_request(f, "GET", "/v1", query, NULL, NULL, &r);
    s_assert_root(&r, "Acme Calls");

    char pair[128], basic[256];
    snprintf(pair, sizeof(pair), "%s:%s", f->key, f->auth);
    unsigned char b64[200];
    EVP_EncodeBlock(b64, (const unsigned char *)pair, (int)strlen(pair));
    snprintf(basic, sizeof(basic), "Basic %s", b64);
    const char *basic_headers[] = {"Authorization", basic, NULL};
    s_request(f, "GET", "/v1", NULL, basic_headers, NULL, &r);
    s_assert_root(&r, "Acme Calls");

    const char *form_headers[] = {"Content-Type", "application/x-www-form-urlencoded", NULL};
    char form[256];
    snprintf(form, sizeof(form), "api_key=%s&api_auth=%s", f->key, f->auth);
    s_request(f, "GET", "/v1", NULL, form_headers, form, &r);
    s_assert_root(&r, "Acme Calls");
}

static void s_assert_401(response_t *r)
{
    assert_int_equal(r->status, 401);
    assert_string_equal(r->content_type, "application/problem+json");
    assert_int_equal(json_integer_value(json_object_get(r->json, "status")), 401);
    assert_string_equal(json_string_value(json_object_get(r->json, "type")), "/problems/unauthorized");
    assert_string_equal(json_string_value(json_object_get(r->json, "instance")), "/v1");
    assert_non_null(strstr(r->www_authenticate, "Basic"));
    json_decref(r->json);
}

static void test_bad_credentials_answer_401(void **state)
{
    fixture_t *f = *state;
    response_t r;
    s_request(f, "GET", "/v1", NULL, NULL, NULL, &r);
    s_assert_401(&r);

    char wrong[DB_API_AUTH_LEN + 1];
    snprintf(wrong, sizeof(wrong), "%s", f->auth);
    wrong[DB_API_AUTH_LEN - 1] = wrong[DB_API_AUTH_LEN - 1] == '0' ? '1' : '0';
    const char *bad_secret[] = {"Api-Key", f->key, "Api-Auth", wrong, NULL};
    s_request(f, "GET", "/v1", NULL, bad_secret, NULL, &r);
    s_assert_401(&r);

    const char *unknown[] = {"Api-Key", "ik_000000000000000000000000", "Api-Auth", f->auth, NULL};
    s_request(f, "GET", "/v1", NULL, unknown, NULL, &r);
    s_assert_401(&r);

    const char *garbage_basic[] = {"Authorization", "Basic !!!not-base64!!!", NULL};
    s_request(f, "GET", "/v1", NULL, garbage_basic, NULL, &r);
    s_assert_401(&r);

    s_request(f, "GET", "/v1", "api_key=%zz&api_auth=%", NULL, NULL, &r);
    s_assert_401(&r);

    /* A key revoked before first use is refused at once. */
    char key2[DB_API_KEY_LEN + 1], auth2[DB_API_AUTH_LEN + 1], err[256];
    assert_int_equal(db_api_key_create(f->conn, f->account_id, "revoked", key2, auth2, err, sizeof(err)), 0);
    const char *params[] = {key2};
    PQclear(PQexecParams(f->conn, "UPDATE api_keys SET revoked_at = now() WHERE api_key = $1", 1, NULL, params, NULL, NULL, 0));
    const char *revoked[] = {"Api-Key", key2, "Api-Auth", auth2, NULL};
    s_request(f, "GET", "/v1", NULL, revoked, NULL, &r);
    s_assert_401(&r);
}

static void test_unknown_path_and_method(void **state)
{
    fixture_t *f = *state;
    response_t r;
    const char *headers[] = {"Api-Key", f->key, "Api-Auth", f->auth, NULL};
    s_request(f, "GET", "/v1/nothing-here", NULL, headers, NULL, &r);
    assert_int_equal(r.status, 404);
    assert_string_equal(r.content_type, "application/problem+json");
    json_decref(r.json);
    s_request(f, "DELETE", "/v1", NULL, headers, NULL, &r);
    assert_int_equal(r.status, 405);
    json_decref(r.json);
}

static void test_undecodable_request_is_an_actor_error(void **state)
{
    fixture_t *f = *state;
    response_t r;
    const char *headers[] = {"Api-Key", f->key, "Api-Auth", f->auth, NULL};
    s_request(f, "GET", "/v1", NULL, headers, NULL, &r); /* wait for registration */
    json_decref(r.json);
    assert_int_equal(brk_client_send(f->client, "store", 999, "\xdf\xff\xff\xff\xff", 5), 0);
    zpoller_t *p = zpoller_new(f->client, NULL);
    assert_ptr_equal(zpoller_wait(p, 10000), f->client);
    zpoller_destroy(&p);
    uint64_t corr;
    brk_status_t status = BRK_STATUS_OK;
    zframe_t *frame = NULL;
    assert_int_equal(support_recv_one(f->client, &corr, &status, &frame), 0);
    assert_int_equal(corr, 999);
    assert_int_equal(status, BRK_STATUS_ACTOR_ERROR);
    zframe_destroy(&frame);
    /* and the store keeps serving */
    s_request(f, "GET", "/v1", NULL, headers, NULL, &r);
    s_assert_root(&r, "Acme Calls");
}

int main(void)
{
    zsys_init();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_migrations_are_idempotent, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_secret_is_stored_hashed, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_root_with_every_credential_form, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_bad_credentials_answer_401, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_unknown_path_and_method, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_undecodable_request_is_an_actor_error, s_setup, s_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
