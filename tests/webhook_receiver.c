#include "tests/webhook_receiver.h"

#include <arpa/inet.h>
#include <jansson.h>
#include <netinet/in.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

typedef struct {
    unsigned char key[48];
    int key_len;
} secret_t;

struct webhook_receiver {
    int fd, port;
    pthread_t acceptor;
    pthread_mutex_t lock;
    pthread_cond_t changed;
    int threads; /* connection threads still running */
    webhook_answer_fn *answer;
    void *arg;
    secret_t known[WEBHOOK_SECRETS_KNOWN];
    int n_known;
    webhook_received_t got[WEBHOOK_RECEIVED_MAX];
    int n_got;
    char paths[WEBHOOK_RECEIVED_MAX][64]; /* the path of every request, for counting per path */
    int n_paths;
};

/* Whether one of the header's v1 signatures is the HMAC of id.timestamp.body under a known secret. */
static bool s_verify(const webhook_receiver_t *r, const char *id, const char *timestamp, const char *body, const char *header)
{
    size_t size = strlen(id) + strlen(timestamp) + strlen(body) + 3;
    char *content = malloc(size);
    if (content == NULL)
        return false;
    int len = snprintf(content, size, "%s.%s.%s", id, timestamp, body);
    bool ok = false;
    for (int k = 0; k < r->n_known && !ok; k++) {
        unsigned char mac[32];
        unsigned int mac_len;
        char expected[64];
        HMAC(EVP_sha256(), r->known[k].key, r->known[k].key_len, (const unsigned char *)content, (size_t)len, mac, &mac_len);
        int e = snprintf(expected, sizeof(expected), "v1,");
        EVP_EncodeBlock((unsigned char *)expected + e, mac, (int)mac_len);
        for (const char *p = header; *p && !ok;) {
            size_t n = strcspn(p, " ");
            ok = strlen(expected) == n && strncmp(p, expected, n) == 0;
            p += n;
            while (*p == ' ')
                p++;
        }
    }
    free(content);
    return ok;
}

static void s_header(const char *head, const char *name, char *out, size_t size)
{
    out[0] = '\0';
    const char *at = strcasestr(head, name);
    if (at == NULL)
        return;
    at += strlen(name);
    while (*at == ' ')
        at++;
    size_t n = strcspn(at, "\r\n");
    snprintf(out, size, "%.*s", (int)(n < size ? n : size - 1), at);
}

static void s_serve(webhook_receiver_t *r, int conn)
{
    char buf[16384];
    size_t n = 0;
    ssize_t got;
    const char *body = NULL;
    long length = -1;
    while (n < sizeof(buf) - 1 && (got = read(conn, buf + n, sizeof(buf) - 1 - n)) > 0) {
        n += (size_t)got;
        buf[n] = '\0';
        char *end = strstr(buf, "\r\n\r\n");
        char *cl = strcasestr(buf, "content-length:");
        if (end && cl)
            length = strtol(cl + 15, NULL, 10), body = end + 4;
        if (body && (long)(n - (size_t)(body - buf)) >= length)
            break;
    }
    if (body == NULL)
        return;
    char path[64] = "", id[32], timestamp[24], signature[1024];
    sscanf(buf, "%*s %63s", path);
    s_header(buf, "\r\nwebhook-id:", id, sizeof(id));
    s_header(buf, "\r\nwebhook-timestamp:", timestamp, sizeof(timestamp));
    s_header(buf, "\r\nwebhook-signature:", signature, sizeof(signature));
    json_t *event = json_loads(body, 0, NULL);

    pthread_mutex_lock(&r->lock);
    int nth = 1;
    for (int i = 0; i < r->n_paths; i++)
        nth += strcmp(r->paths[i], path) == 0;
    if (r->n_paths < WEBHOOK_RECEIVED_MAX)
        snprintf(r->paths[r->n_paths++], sizeof(r->paths[0]), "%s", path);
    int delay_ms = 0;
    int status = r->answer(r->arg, path, nth, &delay_ms);
    webhook_received_t *rec = r->n_got < WEBHOOK_RECEIVED_MAX ? &r->got[r->n_got++] : NULL;
    if (rec) {
        snprintf(rec->path, sizeof(rec->path), "%s", path);
        rec->id = strtoll(id, NULL, 10);
        if (event == NULL || json_integer_value(json_object_get(event, "id")) != rec->id)
            rec->id = -1;
        const char *type = json_string_value(json_object_get(event, "type"));
        snprintf(rec->type, sizeof(rec->type), "%s", type ? type : "");
        rec->campaign = json_integer_value(json_object_get(event, "campaign_id"));
        rec->signed_ok = s_verify(r, id, timestamp, body, signature);
        rec->status = status;
        rec->timestamp = strtol(timestamp, NULL, 10);
        snprintf(rec->body, sizeof(rec->body), "%s", body);
    }
    pthread_mutex_unlock(&r->lock);
    json_decref(event);
    if (delay_ms > 0)
        usleep((useconds_t)delay_ms * 1000);
    if (status == 0)
        return;
    char reply[256];
    int len = snprintf(reply, sizeof(reply), "HTTP/1.1 %d X\r\nContent-Length: 0\r\nConnection: close\r\n\r\n", status);
    ssize_t ignored = write(conn, reply, (size_t)len);
    (void)ignored;
}

typedef struct {
    webhook_receiver_t *r;
    int conn;
} connection_t;

static void *s_connection(void *arg)
{
    connection_t *c = arg;
    webhook_receiver_t *r = c->r;
    s_serve(r, c->conn);
    close(c->conn);
    free(c);
    pthread_mutex_lock(&r->lock);
    r->threads--;
    pthread_cond_broadcast(&r->changed);
    pthread_mutex_unlock(&r->lock);
    return NULL;
}

static void *s_accept(void *arg)
{
    webhook_receiver_t *r = arg;
    int conn;
    while ((conn = accept(r->fd, NULL, NULL)) >= 0) {
        connection_t *c = malloc(sizeof(*c));
        if (c == NULL) {
            close(conn);
            continue;
        }
        pthread_t thread;
        *c = (connection_t){r, conn};
        pthread_mutex_lock(&r->lock);
        r->threads++;
        pthread_mutex_unlock(&r->lock);
        if (pthread_create(&thread, NULL, s_connection, c) != 0) {
            s_connection(c);
            continue;
        }
        pthread_detach(thread);
    }
    return NULL;
}

webhook_receiver_t *webhook_receiver_new(webhook_answer_fn *answer, void *arg)
{
    webhook_receiver_t *r = calloc(1, sizeof(*r));
    if (r == NULL)
        return NULL;
    r->answer = answer;
    r->arg = arg;
    pthread_mutex_init(&r->lock, NULL);
    pthread_cond_init(&r->changed, NULL);
    r->fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof(addr);
    if (r->fd < 0 || bind(r->fd, (struct sockaddr *)&addr, sizeof(addr)) != 0 || listen(r->fd, 64) != 0 ||
        getsockname(r->fd, (struct sockaddr *)&addr, &len) != 0 || pthread_create(&r->acceptor, NULL, s_accept, r) != 0) {
        if (r->fd >= 0)
            close(r->fd);
        free(r);
        return NULL;
    }
    r->port = ntohs(addr.sin_port);
    return r;
}

void webhook_receiver_destroy(webhook_receiver_t **self_p)
{
    webhook_receiver_t *r = *self_p;
    if (r == NULL)
        return;
    shutdown(r->fd, SHUT_RDWR); /* wakes accept() */
    pthread_join(r->acceptor, NULL);
    close(r->fd);
    pthread_mutex_lock(&r->lock);
    while (r->threads > 0)
        pthread_cond_wait(&r->changed, &r->lock);
    pthread_mutex_unlock(&r->lock);
    pthread_cond_destroy(&r->changed);
    pthread_mutex_destroy(&r->lock);
    free(r);
    *self_p = NULL;
}

int webhook_receiver_port(const webhook_receiver_t *self)
{
    return self->port;
}

void webhook_receiver_secrets(webhook_receiver_t *self, const char *const *secrets, int n)
{
    pthread_mutex_lock(&self->lock);
    self->n_known = 0;
    for (int i = 0; i < n && i < WEBHOOK_SECRETS_KNOWN; i++) {
        const char *b64 = secrets[i] + 6; /* after whsec_: 24 bytes, 32 characters, no padding */
        if (strncmp(secrets[i], "whsec_", 6) != 0 || strlen(b64) != 32)
            continue;
        secret_t *s = &self->known[self->n_known];
        s->key_len = EVP_DecodeBlock(s->key, (const unsigned char *)b64, 32);
        self->n_known += s->key_len == 24;
    }
    pthread_mutex_unlock(&self->lock);
}

int webhook_receiver_received(webhook_receiver_t *self, webhook_received_t *out, int max)
{
    pthread_mutex_lock(&self->lock);
    int n = self->n_got < max ? self->n_got : max;
    memcpy(out, self->got, (size_t)n * sizeof(*out));
    pthread_mutex_unlock(&self->lock);
    return n;
}
