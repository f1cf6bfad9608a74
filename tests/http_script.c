#include "tests/http_script.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static void s_write_all(int fd, const char *data, size_t len)
{
    while (len > 0) {
        ssize_t n = send(fd, data, len, MSG_NOSIGNAL); /* the client may hang up first */
        if (n <= 0)
            return;
        data += n;
        len -= (size_t)n;
    }
}

static void *s_serve(void *arg)
{
    http_script_t *s = arg;
    for (;;) {
        int conn = accept(s->fd, NULL, NULL);
        if (conn < 0)
            return NULL;
        char request[8192];
        size_t n = 0;
        ssize_t got;
        while (n < sizeof(request) - 1 && (got = read(conn, request + n, sizeof(request) - 1 - n)) > 0) {
            n += (size_t)got;
            request[n] = '\0';
            char *end = strstr(request, "\r\n\r\n");
            char *length = strcasestr(request, "content-length:");
            if (end && (!length || n - (size_t)(end + 4 - request) >= (size_t)strtol(length + 15, NULL, 10)))
                break;
        }
        pthread_mutex_lock(&s->lock);
        int index = s->served++;
        if (index < HTTP_SCRIPT_MAX)
            sscanf(request, "%*s %255s", s->paths[index]);
        http_answer_t answer = index < s->n_answers ? s->answers[index] : s->otherwise;
        pthread_mutex_unlock(&s->lock);
        if (answer.delay_ms)
            usleep((useconds_t)answer.delay_ms * 1000);
        char *big = NULL;
        size_t len;
        if (answer.padding && (big = malloc(answer.padding)) != NULL) {
            len = answer.padding;
            memset(big, ' ', len);
        } else
            len = answer.body ? strlen(answer.body) : 0;
        char head[256];
        int head_len =
            snprintf(head, sizeof(head),
                     "HTTP/1.1 %d X\r\nContent-Type: application/json\r\nContent-Length: %zu\r\nConnection: close\r\n\r\n",
                     answer.status, len);
        s_write_all(conn, head, (size_t)head_len);
        s_write_all(conn, big ? big : answer.body, len);
        free(big);
        close(conn);
    }
}

http_script_t *http_script_start(const http_answer_t *answers, int n, http_answer_t otherwise)
{
    http_script_t *s = calloc(1, sizeof *s);
    if (s == NULL || n > HTTP_SCRIPT_MAX)
        goto Error;
    pthread_mutex_init(&s->lock, NULL);
    memcpy(s->answers, answers, (size_t)n * sizeof(*answers));
    s->n_answers = n;
    s->otherwise = otherwise;
    s->fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof(addr);
    if (s->fd < 0 || bind(s->fd, (struct sockaddr *)&addr, sizeof(addr)) != 0 || listen(s->fd, 16) != 0 ||
        getsockname(s->fd, (struct sockaddr *)&addr, &len) != 0)
        goto Error;
    s->port = ntohs(addr.sin_port);
    if (pthread_create(&s->thread, NULL, s_serve, s) != 0)
        goto Error;
    return s;
Error:
    if (s && s->fd > 0)
        close(s->fd);
    free(s);
    return NULL;
}

int http_script_served(http_script_t *s)
{
    pthread_mutex_lock(&s->lock);
    int served = s->served;
    pthread_mutex_unlock(&s->lock);
    return served;
}

void http_script_stop(http_script_t **s_p)
{
    http_script_t *s = *s_p;
    if (s == NULL)
        return;
    shutdown(s->fd, SHUT_RDWR);
    close(s->fd);
    pthread_join(s->thread, NULL);
    pthread_mutex_destroy(&s->lock);
    free(s);
    *s_p = NULL;
}
