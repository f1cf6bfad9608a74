#include "tests/server.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "tests/support.h"

test_server_t *test_server_new(bool embedded)
{
    test_server_t *s = calloc(1, sizeof(*s));
    assert_non_null(s);
    s->data_dir = support_tmpdir("impact-it-data");
    s->db = embedded ? NULL : support_db_create("test_impactd");
    s->port = support_free_port();
    s->tls_port = support_free_port();
    return s;
}

static size_t s_collect(char *data, size_t size, size_t n, void *arg)
{
    test_reply_t *r = arg;
    char *grown = realloc(r->body, r->body_len + size * n + 1);
    assert_non_null(grown);
    r->body = grown;
    memcpy(r->body + r->body_len, data, size * n);
    r->body_len += size * n;
    r->body[r->body_len] = '\0';
    return size * n;
}

/* Keeps the few response headers tests look at. */
static size_t s_header(char *data, size_t size, size_t n, void *arg)
{
    test_reply_t *r = arg;
    size_t len = size * n;
    if (len >= 5 && strncmp(data, "HTTP/", 5) == 0)
        r->headers_len = 0; /* a new response (after a 100 Continue, say): only the last one counts */
    if (r->headers_len + len < sizeof(r->headers)) {
        memcpy(r->headers + r->headers_len, data, len);
        r->headers_len += len;
        r->headers[r->headers_len] = '\0';
    }
    const struct {
        const char *name;
        char *out;
        size_t size;
    } wanted[] = {
        {"location:", r->location, sizeof(r->location)},
        {"link:", r->link, sizeof(r->link)},
        {"allow:", r->allow, sizeof(r->allow)},
        {"idempotent-replayed:", r->replayed, sizeof(r->replayed)},
    };
    for (size_t i = 0; i < sizeof(wanted) / sizeof(wanted[0]); i++) {
        size_t nlen = strlen(wanted[i].name);
        if (len > nlen && strncasecmp(data, wanted[i].name, nlen) == 0) {
            const char *v = data + nlen;
            size_t vlen = len - nlen;
            while (vlen && (*v == ' '))
                v++, vlen--;
            while (vlen && (v[vlen - 1] == '\r' || v[vlen - 1] == '\n'))
                vlen--;
            snprintf(wanted[i].out, wanted[i].size, "%.*s", (int)vlen, v);
        }
    }
    return len;
}

CURLcode test_http(test_server_t *s, const test_request_t *req, test_reply_t *r)
{
    char url[4096], header[600];
    memset(r, 0, sizeof(*r));
    snprintf(url, sizeof(url), "%s://127.0.0.1:%d%s", req->proto == PROTO_H2_TLS ? "https" : "http",
             req->proto == PROTO_H2_TLS ? s->tls_port : s->port, req->path);
    CURL *curl = curl_easy_init();
    curl_easy_setopt(curl, CURLOPT_PROXY, ""); /* the server under test, whatever the environment says */
    struct curl_slist *headers = NULL;
    if (req->key) {
        snprintf(header, sizeof(header), "Api-Key: %s", req->key);
        headers = curl_slist_append(headers, header);
    }
    if (req->auth) {
        snprintf(header, sizeof(header), "Api-Auth: %s", req->auth);
        headers = curl_slist_append(headers, header);
    }
    if (req->content_type) {
        snprintf(header, sizeof(header), "Content-Type: %s", req->content_type);
        headers = curl_slist_append(headers, header);
    }
    if (req->header)
        headers = curl_slist_append(headers, req->header);
    headers = curl_slist_append(headers, "Expect:");
    curl_easy_setopt(curl, CURLOPT_URL, url);
    curl_easy_setopt(curl, CURLOPT_HTTPHEADER, headers);
    curl_easy_setopt(curl, CURLOPT_CUSTOMREQUEST, req->method);
    curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, s_collect);
    curl_easy_setopt(curl, CURLOPT_WRITEDATA, r);
    curl_easy_setopt(curl, CURLOPT_HEADERFUNCTION, s_header);
    curl_easy_setopt(curl, CURLOPT_HEADERDATA, r);
    curl_easy_setopt(curl, CURLOPT_TIMEOUT_MS, req->timeout_ms ? req->timeout_ms : 10000L);
    curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
    if (strcmp(req->method, "HEAD") == 0)
        curl_easy_setopt(curl, CURLOPT_NOBODY, 1L);
    if (req->body) {
        curl_easy_setopt(curl, CURLOPT_POSTFIELDS, req->body);
        curl_easy_setopt(curl, CURLOPT_POSTFIELDSIZE, (long)(req->body_len ? req->body_len : strlen(req->body)));
    }
    if (req->proto == PROTO_H2C) {
        curl_easy_setopt(curl, CURLOPT_HTTP_VERSION, CURL_HTTP_VERSION_2_PRIOR_KNOWLEDGE);
    } else if (req->proto == PROTO_H2_TLS) {
        curl_easy_setopt(curl, CURLOPT_HTTP_VERSION, CURL_HTTP_VERSION_2TLS);
        curl_easy_setopt(curl, CURLOPT_SSL_VERIFYPEER, 0L);
        curl_easy_setopt(curl, CURLOPT_SSL_VERIFYHOST, 0L);
    } else {
        curl_easy_setopt(curl, CURLOPT_HTTP_VERSION, CURL_HTTP_VERSION_1_1);
    }
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

json_t *test_call(test_server_t *s, const char *key, const char *auth, const char *method, const char *path,
                  const char *content_type, const char *body, size_t body_len, long want)
{
    test_request_t req = {.proto = PROTO_H2C,
                          .method = method,
                          .path = path,
                          .content_type = content_type,
                          .body = body,
                          .body_len = body_len,
                          .key = key,
                          .auth = auth};
    test_reply_t r;
    assert_int_equal(test_http(s, &req, &r), CURLE_OK);
    if (r.status != want) {
        print_error("%s %s -> %ld (wanted %ld): %s\n", method, path, r.status, want, r.body ? r.body : "");
        test_reply_free(&r);
        fail();
    }
    json_t *doc = r.body_len ? test_reply_json(&r) : NULL;
    bool parsed = doc != NULL || r.body_len == 0;
    test_reply_free(&r);
    assert_true(parsed);
    return doc;
}

size_t test_event_ids(test_server_t *s, const char *key, const char *auth, int64_t after, const char *filter, int64_t *ids,
                      size_t max)
{
    size_t n = 0;
    while (true) {
        char path[512];
        snprintf(path, sizeof(path), "/v1/events?after=%" PRId64 "&limit=100%s", after, filter);
        json_t *page = test_call(s, key, auth, "GET", path, NULL, NULL, 0, 200);
        json_t *items = json_object_get(page, "items");
        size_t i;
        json_t *item;
        json_array_foreach(items, i, item)
        {
            assert_true(n < max);
            ids[n++] = after = json_integer_value(json_object_get(item, "id"));
        }
        size_t count = json_array_size(items);
        json_decref(page);
        if (count < 100)
            return n;
    }
}

void test_reply_free(test_reply_t *r)
{
    free(r->body);
    r->body = NULL;
    r->body_len = 0;
}

int test_reply_header(const test_reply_t *r, const char *name, char *buf, size_t size)
{
    size_t n = strlen(name);
    for (const char *line = r->headers; line < r->headers + r->headers_len;) {
        const char *eol = memchr(line, '\n', (size_t)(r->headers + r->headers_len - line));
        size_t len = eol ? (size_t)(eol - line) : (size_t)(r->headers + r->headers_len - line);
        if (len > n && strncasecmp(line, name, n) == 0 && line[n] == ':') {
            const char *v = line + n + 1;
            size_t vlen = len - n - 1;
            while (vlen && (*v == ' ' || *v == '\t'))
                v++, vlen--;
            while (vlen && (v[vlen - 1] == '\r' || v[vlen - 1] == ' '))
                vlen--;
            snprintf(buf, size, "%.*s", (int)vlen, v);
            return 0;
        }
        line += len + 1;
    }
    return -1;
}

json_t *test_reply_json(const test_reply_t *r)
{
    return r->body ? json_loadb(r->body, r->body_len, 0, NULL) : NULL;
}

long test_get_status(test_server_t *s, const char *path, bool with_auth)
{
    test_reply_t r;
    test_request_t req = {.method = "GET", .path = path, .timeout_ms = 2000};
    if (with_auth) {
        req.key = s->key;
        req.auth = s->auth;
    }
    long status = test_http(s, &req, &r) == CURLE_OK ? r.status : 0;
    test_reply_free(&r);
    return status;
}

void test_server_dump_log(test_server_t *s)
{
    char cmd[PATH_MAX + 64];
    snprintf(cmd, sizeof(cmd), "tail -n 40 '%s/impactd.log' >&2", s->data_dir);
    int ignored = system(cmd);
    (void)ignored;
}

/* The deadline is generous because ASan builds start slowly; it only bounds a failure and no
 * assertion depends on how fast the server answers. */
int test_wait_status(test_server_t *s, const char *path, bool with_auth, long want, int seconds)
{
    long last = 0;
    for (int i = 0; i < seconds * 20; i++) {
        if ((last = test_get_status(s, path, with_auth)) == want)
            return 0;
        usleep(50000);
    }
    print_error("%s still answered %ld after %d s (wanted %ld)\n", path, last, seconds, want);
    test_server_dump_log(s);
    return -1;
}

static void s_read_credentials(test_server_t *s)
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

void test_server_start(test_server_t *s)
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
    assert_int_equal(test_wait_status(s, "/v1", true, 200, 60), 0);
}

int test_server_stop(test_server_t *s)
{
    int status = -1;
    if (s->pid <= 0)
        return status;
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
    return status;
}

void test_server_destroy(test_server_t **s_p)
{
    test_server_t *s = *s_p;
    if (s == NULL)
        return;
    test_server_stop(s);
    if (getenv("IMPACT_TEST_KEEP") == NULL)
        support_rmtree(&s->data_dir);
    free(s->data_dir);
    support_db_drop(&s->db);
    free(s);
    *s_p = NULL;
}

int test_impactd_run(const char *const *args, char *out, size_t size)
{
    const char *bin = getenv("IMPACTD_BIN");
    assert_non_null(bin);
    assert_true(size > 0);
    char *argv[32] = {"impactd"};
    int argc = 1;
    for (int i = 0; args[i]; i++) {
        assert_true(argc < 31);
        argv[argc++] = (char *)args[i];
    }
    int fds[2];
    assert_int_equal(pipe(fds), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        dup2(fds[1], STDOUT_FILENO);
        close(fds[0]);
        close(fds[1]);
        execv(bin, argv);
        _exit(127);
    }
    close(fds[1]);
    size_t n = 0;
    ssize_t r;
    while (n + 1 < size && (r = read(fds[0], out + n, size - 1 - n)) > 0)
        n += (size_t)r;
    out[n] = '\0';
    close(fds[0]);
    int status;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    return status;
}

char *test_server_cli(test_server_t *s, const char *const *args)
{
    const char *argv[24] = {"--data-dir", s->data_dir};
    int argc = 2;
    if (s->db) {
        argv[argc++] = "--database-url";
        argv[argc++] = s->db;
    }
    for (int i = 0; args[i]; i++) {
        assert_true(argc < 23);
        argv[argc++] = args[i];
    }
    char out[65536];
    int status = test_impactd_run(argv, out, sizeof(out));
    return WIFEXITED(status) && WEXITSTATUS(status) == 0 ? strdup(out) : NULL;
}

unsigned char *test_wav(int ms, size_t *len)
{
    uint32_t data = (uint32_t)ms * 16, rate = 8000;
    *len = 44 + data;
    unsigned char *b = calloc(1, *len);
    assert_non_null(b);
    memcpy(b, "RIFF", 4);
    uint32_t riff = (uint32_t)*len - 8;
    memcpy(b + 4, &riff, 4);
    memcpy(b + 8, "WAVEfmt ", 8);
    const uint32_t fmt_size = 16, byte_rate = rate * 2;
    const uint16_t pcm = 1, channels = 1, align = 2, bits = 16;
    memcpy(b + 16, &fmt_size, 4);
    memcpy(b + 20, &pcm, 2);
    memcpy(b + 22, &channels, 2);
    memcpy(b + 24, &rate, 4);
    memcpy(b + 28, &byte_rate, 4);
    memcpy(b + 32, &align, 2);
    memcpy(b + 34, &bits, 2);
    memcpy(b + 36, "data", 4);
    memcpy(b + 40, &data, 4);
    for (uint32_t i = 0; i < data / 2; i++) {
        int16_t sample = (int16_t)((i % 20) < 10 ? 800 : -800);
        memcpy(b + 44 + 2 * i, &sample, 2);
    }
    return b;
}
