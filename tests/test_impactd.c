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

#include "tests/support.h"

typedef struct {
    char *data_dir;
    char *db; /* NULL: embedded PostgreSQL */
    char run_dir[64];
    int port, tls_port;
    pid_t pid;
    char key[256], auth[256];
} server_t;

typedef struct {
    long status;
    long http_version;
    char content_type[128];
    char *body;
    size_t body_len;
} reply_t;

static size_t s_collect(char *data, size_t size, size_t n, void *arg)
{
    reply_t *r = arg;
    char *grown = realloc(r->body, r->body_len + size * n + 1);
    assert_non_null(grown);
    r->body = grown;
    memcpy(r->body + r->body_len, data, size * n);
    r->body_len += size * n;
    r->body[r->body_len] = '\0';
    return size * n;
}

typedef enum { PROTO_HTTP1, PROTO_H2C, PROTO_H2_TLS } proto_t;

/* One request. Returns the curl result; the reply is filled on success. */
static CURLcode s_http(server_t *s, proto_t proto, const char *method, const char *path, const char *body, size_t body_len,
                       bool with_auth, long timeout_ms, reply_t *r)
{
    char url[512], key_header[300], auth_header[300];
    memset(r, 0, sizeof(*r));
    snprintf(url, sizeof(url), "%s://127.0.0.1:%d%s", proto == PROTO_H2_TLS ? "https" : "http",
             proto == PROTO_H2_TLS ? s->tls_port : s->port, path);
    CURL *curl = curl_easy_init();
    struct curl_slist *headers = NULL;
    if (with_auth) {
        snprintf(key_header, sizeof(key_header), "Api-Key: %s", s->key);
        snprintf(auth_header, sizeof(auth_header), "Api-Auth: %s", s->auth);
        headers = curl_slist_append(headers, key_header);
        headers = curl_slist_append(headers, auth_header);
    }
    headers = curl_slist_append(headers, "Expect:");
    curl_easy_setopt(curl, CURLOPT_URL, url);
    curl_easy_setopt(curl, CURLOPT_HTTPHEADER, headers);
    curl_easy_setopt(curl, CURLOPT_CUSTOMREQUEST, method);
    curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, s_collect);
    curl_easy_setopt(curl, CURLOPT_WRITEDATA, r);
    curl_easy_setopt(curl, CURLOPT_TIMEOUT_MS, timeout_ms);
    curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
    if (body) {
        curl_easy_setopt(curl, CURLOPT_POSTFIELDS, body);
        curl_easy_setopt(curl, CURLOPT_POSTFIELDSIZE, (long)body_len);
    }
    if (proto == PROTO_H2C)
        curl_easy_setopt(curl, CURLOPT_HTTP_VERSION, CURL_HTTP_VERSION_2_PRIOR_KNOWLEDGE);
    else if (proto == PROTO_H2_TLS) {
        curl_easy_setopt(curl, CURLOPT_HTTP_VERSION, CURL_HTTP_VERSION_2TLS);
        curl_easy_setopt(curl, CURLOPT_SSL_VERIFYPEER, 0L);
        curl_easy_setopt(curl, CURLOPT_SSL_VERIFYHOST, 0L);
    } else
        curl_easy_setopt(curl, CURLOPT_HTTP_VERSION, CURL_HTTP_VERSION_1_1);
    CURLcode rc = curl_easy_perform(curl);
    if (rc == CURLE_OK) {
        char *type = NULL;
        curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &r->status);
        curl_easy_getinfo(curl, CURLINFO_HTTP_VERSION, &r->http_version);
        curl_easy_getinfo(curl, CURLINFO_CONTENT_TYPE, &type);
        if (type)
            snprintf(r->content_type, sizeof(r->content_type), "%s", type);
    }
    curl_slist_free_all(headers);
    curl_easy_cleanup(curl);
    return rc;
}

static void s_reply_free(reply_t *r)
{
    free(r->body);
    r->body = NULL;
}

static long s_get_status(server_t *s, const char *path, bool with_auth)
{
    reply_t r;
    long status = s_http(s, PROTO_HTTP1, "GET", path, NULL, 0, with_auth, 2000, &r) == CURLE_OK ? r.status : 0;
    s_reply_free(&r);
    return status;
}

/* Prints the last lines of the server's log, so a failure in CI explains itself. */
static void s_dump_log(server_t *s)
{
    char cmd[PATH_MAX + 64];
    snprintf(cmd, sizeof(cmd), "tail -n 40 '%s/impactd.log' >&2", s->data_dir);
    int ignored = system(cmd);
    (void)ignored;
}

/* Polls until `path` answers `want`: the deadline is generous because ASan builds start slowly,
 * and it only bounds a failure; no assertion depends on how fast it happens. On failure the
 * server's log is printed. */
static int s_wait_status(server_t *s, const char *path, bool with_auth, long want, int seconds)
{
    long last = 0;
    for (int i = 0; i < seconds * 20; i++) {
        if ((last = s_get_status(s, path, with_auth)) == want)
            return 0;
        usleep(50000);
    }
    print_error("%s still answered %ld after %d s (wanted %ld)\n", path, last, seconds, want);
    s_dump_log(s);
    return -1;
}

static void s_read_credentials(server_t *s)
{
    char path[PATH_MAX], line[256];
    snprintf(path, sizeof(path), "%s/dev-credentials.env", s->data_dir);
    FILE *f = NULL;
    for (int i = 0; i < 600 && (f = fopen(path, "r")) == NULL; i++)
        usleep(50000);
    assert_non_null(f);
    while (fgets(line, sizeof(line), f)) {
        line[strcspn(line, "\r\n")] = '\0';
        if (strncmp(line, "IMPACT_API_KEY=", 15) == 0)
            snprintf(s->key, sizeof(s->key), "%s", line + 15);
        if (strncmp(line, "IMPACT_API_AUTH=", 16) == 0)
            snprintf(s->auth, sizeof(s->auth), "%s", line + 16);
    }
    fclose(f);
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_mode & 0077, 0);
}

static void s_start(server_t *s)
{
    const char *bin = getenv("IMPACTD_BIN");
    assert_non_null(bin);
    snprintf(s->run_dir, sizeof(s->run_dir), "/tmp/impact-it.XXXXXX");
    assert_non_null(mkdtemp(s->run_dir));
    rmdir(s->run_dir); /* impactd creates it; the name only has to be unique and short */
    s->pid = fork();
    assert_true(s->pid >= 0);
    if (s->pid == 0) {
        char listen[64], tls_listen[64], log[PATH_MAX];
        snprintf(listen, sizeof(listen), "127.0.0.1:%d", s->port);
        snprintf(tls_listen, sizeof(tls_listen), "127.0.0.1:%d", s->tls_port);
        snprintf(log, sizeof(log), "%s/impactd.log", s->data_dir);
        int fd = open(log, O_WRONLY | O_CREAT | O_APPEND, 0644);
        dup2(fd, STDOUT_FILENO);
        dup2(fd, STDERR_FILENO);
        setenv("IMPACT_RUN_DIR", s->run_dir, 1);
        setenv("IMPACT_STORE_WORKERS", "2", 1);
        setenv("IMPACT_HTTP_THREADS", "2", 1);
        if (s->db)
            execl(bin, bin, "--data-dir", s->data_dir, "--listen", listen, "--tls-listen", tls_listen, "--database-url", s->db,
                  (char *)NULL);
        else
            execl(bin, bin, "--data-dir", s->data_dir, "--listen", listen, "--tls-listen", tls_listen, (char *)NULL);
        _exit(127);
    }
    s_read_credentials(s);
    assert_int_equal(s_wait_status(s, "/v1", true, 200, 60), 0);
}

static server_t *s_server_new(bool embedded)
{
    server_t *s = calloc(1, sizeof(*s));
    s->data_dir = support_tmpdir("impact-it-data");
    s->db = embedded ? NULL : support_db_create("test_impactd");
    s->port = support_free_port();
    s->tls_port = support_free_port();
    return s;
}

/* SIGTERM and wait; returns the exit status. */
static int s_stop(server_t *s)
{
    int status = -1;
    if (s->pid > 0) {
        kill(s->pid, SIGTERM);
        for (int i = 0; i < 600; i++) {
            if (waitpid(s->pid, &status, WNOHANG) == s->pid) {
                s->pid = 0;
                return status;
            }
            usleep(50000);
        }
        kill(s->pid, SIGKILL);
        waitpid(s->pid, &status, 0);
        s->pid = 0;
        fail_msg("impactd did not stop within 30 s of SIGTERM");
    }
    return status;
}

static void s_server_destroy(server_t **s_p)
{
    server_t *s = *s_p;
    s_stop(s);
    if (getenv("IMPACT_TEST_KEEP") == NULL)
        support_rmtree(&s->data_dir);
    free(s->data_dir);
    support_db_drop(&s->db);
    free(s);
    *s_p = NULL;
}

/* The health document's process list: name -> pid. */
static json_t *s_health(server_t *s, long *status)
{
    reply_t r;
    if (s_http(s, PROTO_HTTP1, "GET", "/v1/health", NULL, 0, false, 2000, &r) != CURLE_OK)
        return NULL;
    *status = r.status;
    json_t *doc = json_loadb(r.body ? r.body : "", r.body_len, 0, NULL);
    s_reply_free(&r);
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
    server_t *s = *state = s_server_new(false);
    s_start(s);
    const proto_t protos[] = {PROTO_HTTP1, PROTO_H2C, PROTO_H2_TLS};
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
        s_reply_free(&r);
    }
}

static void test_health_lists_every_process(void **state)
{
    server_t *s = *state = s_server_new(false);
    s_start(s);
    assert_int_equal(s_wait_status(s, "/v1/health", false, 200, 30), 0);
    long status;
    json_t *doc = s_health(s, &status);
    assert_int_equal(status, 200);
    assert_string_equal(json_string_value(json_object_get(doc, "status")), "ok");
    const char *names[] = {"broker", "store.0", "store.1", "fanout", "http"};
    for (int i = 0; i < 5; i++)
        assert_true(s_pid_of(s, names[i]) > 0);
    json_decref(doc);
}

static void test_bad_input_gets_errors(void **state)
{
    server_t *s = *state = s_server_new(false);
    s_start(s);
    reply_t r;

    assert_int_equal(s_http(s, PROTO_H2C, "GET", "/v1", NULL, 0, false, 5000, &r), CURLE_OK);
    assert_int_equal(r.status, 401);
    assert_string_equal(r.content_type, "application/problem+json");
    s_reply_free(&r);

    size_t big = 2 * 1024 * 1024;
    char *body = malloc(big);
    memset(body, 'x', big);
    assert_int_equal(s_http(s, PROTO_HTTP1, "POST", "/v1", body, big, true, 10000, &r), CURLE_OK);
    assert_int_equal(r.status, 413);
    s_reply_free(&r);
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
    assert_int_equal(s_get_status(s, "/v1", true), 200);
    long status;
    json_t *doc = s_health(s, &status);
    json_t *proc;
    size_t i;
    json_array_foreach(json_object_get(doc, "processes"), i, proc)
    {
        if (json_integer_value(json_object_get(proc, "restarts")) != 0)
            s_dump_log(s);
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
        s_reply_free(&r);
    }
    return NULL;
}

static void test_kill9_each_role_under_load(void **state)
{
    server_t *s = *state = s_server_new(false);
    s_start(s);
    const char *roles[] = {"store.0", "broker", "fanout", "store.1", "http"};
    for (int k = 0; k < 5; k++) {
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
        assert_int_equal(s_wait_status(s, "/v1", true, 200, 60), 0);
        pid_t replacement = 0;
        for (int i = 0; i < 600 && (replacement == 0 || replacement == victim); i++) {
            replacement = s_pid_of(s, roles[k]);
            usleep(50000);
        }
        if (replacement <= 0 || replacement == victim)
            s_dump_log(s);
        assert_true(replacement > 0 && replacement != victim);
        assert_int_equal(s_wait_status(s, "/v1/health", false, 200, 60), 0);
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
    server_t *s = *state = s_server_new(true); /* embedded PostgreSQL: its shutdown is part of the contract */
    s_start(s);
    const char *names[] = {"broker", "store.0", "store.1", "fanout", "http"};
    pid_t pids[5];
    for (int i = 0; i < 5; i++)
        assert_true((pids[i] = s_pid_of(s, names[i])) > 0);
    pid_t supervisor = s->pid;
    assert_true(s_shm_left(supervisor));

    int status = s_stop(s);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);
    for (int i = 0; i < 5; i++)
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
    s_start(s);
    assert_string_equal(key, s->key);
    assert_string_equal(auth, s->auth);
}

/* Runs after every test, passed or failed: a failing assertion jumps out of the test body, and
 * the server it started must not outlive it. */
static int s_teardown(void **state)
{
    server_t *s = *state;
    if (s != NULL)
        s_server_destroy(&s);
    *state = NULL;
    return 0;
}

int main(void)
{
    curl_global_init(CURL_GLOBAL_ALL);
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
