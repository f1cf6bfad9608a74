/*
 * End-to-end: the real impactd binary (supervisor, broker, store pool, fan-out, http) against real
 * PostgreSQL, spoken to over HTTP/1.1, h2c and HTTP/2 over TLS with libcurl. Kills each child
 * role with SIGKILL under load and expects service to come back; shuts down with SIGTERM and
 * expects nothing left behind; feeds bad input to every entry point.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <curl/curl.h>
#include <czmq.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "tests/server.h"
#include "tests/support.h"

typedef test_server_t server_t;
typedef test_reply_t reply_t;

static CURLcode s_http(server_t *s, test_proto_t proto, const char *method, const char *path, const char *body, size_t body_len,
                       bool with_auth, long timeout_ms, reply_t *r)
{
    test_request_t req = {.proto = proto,
                          .method = method,
                          .path = path,
                          .body = body,
                          .body_len = body_len,
                          .key = with_auth ? s->key : NULL,
                          .auth = with_auth ? s->auth : NULL,
                          .timeout_ms = timeout_ms};
    return test_http(s, &req, r);
}

/* The health document's process list: name -> pid. */
static json_t *s_health(server_t *s, long *status)
{
    reply_t r;
    if (s_http(s, PROTO_HTTP1, "GET", "/v1/health", NULL, 0, false, 2000, &r) != CURLE_OK)
        return NULL;
    *status = r.status;
    json_t *doc = json_loadb(r.body ? r.body : "", r.body_len, 0, NULL);
    test_reply_free(&r);
    return doc;
}

static pid_t s_pid_of(server_t *s, const char *name)
{
    long status;
    json_t *doc = s_health(s, &status);
    pid_t pid = 0;
    json_t *proc;
    size_t i;
    json_array_foreach(json_object_get(doc, "processes"), i, proc)
    {
        if (strcmp(json_string_value(json_object_get(proc, "name")), name) == 0)
            pid = (pid_t)json_integer_value(json_object_get(proc, "pid"));
    }
    json_decref(doc);
    return pid;
}

/* ---- tests ------------------------------------------------------------------------------------------------- */

static void test_serves_every_protocol(void **state)
{
    server_t *s = *state = test_server_new(false);
    test_server_start(s);
    const test_proto_t protos[] = {PROTO_HTTP1, PROTO_H2C, PROTO_H2_TLS};
    const long versions[] = {CURL_HTTP_VERSION_1_1, CURL_HTTP_VERSION_2_0, CURL_HTTP_VERSION_2_0};
    for (int i = 0; i < 3; i++) {
        reply_t r;
        assert_int_equal(s_http(s, protos[i], "GET", "/v1", NULL, 0, true, 5000, &r), CURLE_OK);
        assert_int_equal(r.status, 200);
        assert_int_equal(r.http_version, versions[i]);
        assert_string_equal(r.content_type, "application/json");
        json_t *doc = json_loadb(r.body, r.body_len, 0, NULL);
        assert_non_null(doc);
        assert_non_null(strstr(json_string_value(json_object_get(doc, "uri")), "/v1"));
        assert_string_equal(json_string_value(json_object_get(json_object_get(doc, "account"), "name")), "Development");
        json_decref(doc);
        test_reply_free(&r);
    }
}

static void test_health_lists_every_process(void **state)
{
    server_t *s = *state = test_server_new(false);
    test_server_start(s);
    assert_int_equal(test_wait_status(s, "/v1/health", false, 200, 30), 0);
    long status;
    json_t *doc = s_health(s, &status);
    assert_int_equal(status, 200);
    assert_string_equal(json_string_value(json_object_get(doc, "status")), "ok");
    const char *names[] = {"broker", "store.0", "store.1", "fanout", "importer", "http"};
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
        assert_true(s_pid_of(s, names[i]) > 0);
    json_decref(doc);
}

static void test_bad_input_gets_errors(void **state)
{
    server_t *s = *state = test_server_new(false);
    test_server_start(s);
    reply_t r;

    assert_int_equal(s_http(s, PROTO_H2C, "GET", "/v1", NULL, 0, false, 5000, &r), CURLE_OK);
    assert_int_equal(r.status, 401);
    assert_string_equal(r.content_type, "application/problem+json");
    test_reply_free(&r);

    size_t big = 2 * 1024 * 1024;
    char *body = malloc(big);
    memset(body, 'x', big);
    assert_int_equal(s_http(s, PROTO_HTTP1, "POST", "/v1", body, big, true, 10000, &r), CURLE_OK);
    assert_int_equal(r.status, 413);
    test_reply_free(&r);
    free(body);

    /* Malformed HTTP on a raw connection. */
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons((uint16_t)s->port)};
    addr.sin_addr.s_addr = htonl(0x7f000001);
    assert_int_equal(connect(fd, (struct sockaddr *)&addr, sizeof(addr)), 0);
    const char junk[] = "GARBAGE \x01\x02 nonsense\r\n\r\n";
    assert_true(write(fd, junk, sizeof(junk) - 1) > 0);
    char answer[256] = {0};
    ssize_t n = read(fd, answer, sizeof(answer) - 1);
    close(fd);
    assert_true(n > 0);
    assert_non_null(strstr(answer, " 400 "));

    /* Garbage frames straight to the broker's front and back sockets. */
    char endpoint[128];
    const char *sockets[] = {"broker-front.ipc", "broker-back.ipc"};
    srand(11);
    for (int k = 0; k < 2; k++) {
        snprintf(endpoint, sizeof(endpoint), "ipc://%s/%s", s->run_dir, sockets[k]);
        zsock_t *raw = zsock_new_dealer(endpoint);
        assert_non_null(raw);
        for (int i = 0; i < 300; i++) {
            zmsg_t *msg = zmsg_new();
            int frames = 1 + rand() % 6;
            for (int f = 0; f < frames; f++) {
                char bytes[32];
                for (size_t j = 0; j < sizeof(bytes); j++)
                    bytes[j] = (char)rand();
                zmsg_addmem(msg, bytes, (size_t)(rand() % 32));
            }
            zmsg_send(&msg, raw);
        }
        zmsg_t *msg = zmsg_new(); /* a well-framed request whose body is a hostile msgpack frame */
        zmsg_addstr(msg, "store");
        zmsg_addmem(msg, "12345678", 8);
        zmsg_addmem(msg, "\xdf\xff\xff\xff\xff", 5);
        zmsg_send(&msg, raw);
        zclock_sleep(200);
        zsock_destroy(&raw);
    }

    /* Everything still serves, and nothing restarted. */
    assert_int_equal(test_get_status(s, "/v1", true), 200);
    long status;
    json_t *doc = s_health(s, &status);
    json_t *proc;
    size_t i;
    json_array_foreach(json_object_get(doc, "processes"), i, proc)
    {
        if (json_integer_value(json_object_get(proc, "restarts")) != 0)
            test_server_dump_log(s);
        assert_int_equal(json_integer_value(json_object_get(proc, "restarts")), 0);
    }
    json_decref(doc);
}

typedef struct {
    server_t *s;
    volatile int stop;
    int ok, failed;
} load_t;

static void *s_load(void *arg)
{
    load_t *load = arg;
    while (!load->stop) {
        reply_t r;
        if (s_http(load->s, PROTO_H2C, "GET", "/v1", NULL, 0, true, 3000, &r) == CURLE_OK && r.status == 200)
            load->ok++;
        else
            load->failed++;
        test_reply_free(&r);
    }
    return NULL;
}

static void test_kill9_each_role_under_load(void **state)
{
    server_t *s = *state = test_server_new(false);
    test_server_start(s);
    const char *roles[] = {"store.0", "broker", "fanout", "importer", "store.1", "http"};
    for (size_t k = 0; k < sizeof(roles) / sizeof(roles[0]); k++) {
        pid_t victim = s_pid_of(s, roles[k]);
        assert_true(victim > 0);
        load_t load = {.s = s};
        pthread_t thread;
        pthread_create(&thread, NULL, s_load, &load);
        usleep(300000);
        assert_int_equal(kill(victim, SIGKILL), 0);
        usleep(300000);
        load.stop = 1;
        pthread_join(thread, NULL);
        /* Served again, by a new process under the same name. */
        assert_int_equal(test_wait_status(s, "/v1", true, 200, 60), 0);
        pid_t replacement = 0;
        for (int i = 0; i < 600 && (replacement == 0 || replacement == victim); i++) {
            replacement = s_pid_of(s, roles[k]);
            usleep(50000);
        }
        if (replacement <= 0 || replacement == victim)
            test_server_dump_log(s);
        assert_true(replacement > 0 && replacement != victim);
        assert_int_equal(test_wait_status(s, "/v1/health", false, 200, 60), 0);
        print_message("killed %s (pid %d): %d ok, %d failed during the kill; replaced by pid %d\n", roles[k], victim, load.ok,
                      load.failed, replacement);
    }
}

static bool s_shm_left(pid_t supervisor)
{
    char prefix[64];
    snprintf(prefix, sizeof(prefix), "impactd-%d", supervisor);
    DIR *dir = opendir("/dev/shm");
    bool found = false;
    struct dirent *e;
    while (dir && (e = readdir(dir)))
        if (strncmp(e->d_name, prefix, strlen(prefix)) == 0)
            found = true;
    if (dir)
        closedir(dir);
    return found;
}

static void test_sigterm_leaves_nothing_behind(void **state)
{
    server_t *s = *state = test_server_new(true); /* embedded PostgreSQL: its shutdown is part of the contract */
    test_server_start(s);
    const char *names[] = {"broker", "store.0", "store.1", "fanout", "importer", "http"};
    enum { PROCESSES = sizeof(names) / sizeof(names[0]) };
    pid_t pids[PROCESSES];
    for (int i = 0; i < PROCESSES; i++)
        assert_true((pids[i] = s_pid_of(s, names[i])) > 0);
    pid_t supervisor = s->pid;
    assert_true(s_shm_left(supervisor));

    int status = test_server_stop(s);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);
    for (int i = 0; i < PROCESSES; i++)
        assert_true(kill(pids[i], 0) == -1 && errno == ESRCH);
    struct stat st;
    assert_int_equal(stat(s->run_dir, &st), -1);
    assert_false(s_shm_left(supervisor));
    char pidfile[PATH_MAX];
    snprintf(pidfile, sizeof(pidfile), "%s/pg/data/postmaster.pid", s->data_dir);
    assert_int_equal(stat(pidfile, &st), -1);

    /* A second start on the same data dir keeps the account and its key. */
    char key[256], auth[256];
    snprintf(key, sizeof(key), "%s", s->key);
    snprintf(auth, sizeof(auth), "%s", s->auth);
    test_server_start(s);
    assert_string_equal(key, s->key);
    assert_string_equal(auth, s->auth);
}

/* Runs after every test, passed or failed: a failing assertion jumps out of the test body, and
 * the server it started must not outlive it. */
static int s_teardown(void **state)
{
    server_t *s = *state;
    if (s != NULL)
        test_server_destroy(&s);
    *state = NULL;
    return 0;
}

int main(void)
{
    curl_global_init(CURL_GLOBAL_ALL);
    /* These tests are not about rate limits: their bursts of requests with one key must not meet
     * the default limit (tests/test_ratelimit_http.c covers it). */
    setenv("IMPACT_RATE_LIMIT", "0", 1);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(test_serves_every_protocol, s_teardown),
        cmocka_unit_test_teardown(test_health_lists_every_process, s_teardown),
        cmocka_unit_test_teardown(test_bad_input_gets_errors, s_teardown),
        cmocka_unit_test_teardown(test_kill9_each_role_under_load, s_teardown),
        cmocka_unit_test_teardown(test_sigterm_leaves_nothing_behind, s_teardown),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    curl_global_cleanup();
    return rc;
}
