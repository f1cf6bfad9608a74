/*
 * A local HTTP/1.1 server that plays a script: the n-th request gets the n-th scripted answer
 * (status, body, delay), requests past the script get `otherwise`. Each request's target is
 * recorded. For testing clients of customer servers: number feeds, webhooks.
 */
#ifndef IMPACT_TESTS_HTTP_SCRIPT_H
#define IMPACT_TESTS_HTTP_SCRIPT_H

#include <pthread.h>
#include <stdbool.h>

#define HTTP_SCRIPT_MAX 32

typedef struct {
    int status;
    const char *body;
    int delay_ms;
    size_t padding; /* when set: a body of this many spaces instead of `body` */
} http_answer_t;

typedef struct {
    int fd, port;
    pthread_t thread;
    http_answer_t answers[HTTP_SCRIPT_MAX];
    int n_answers;
    http_answer_t otherwise;
    int served;                       /* requests answered so far (read under lock) */
    char paths[HTTP_SCRIPT_MAX][256]; /* request targets, in order */
    pthread_mutex_t lock;
} http_script_t;

/* Starts serving on 127.0.0.1 (a free port, in ->port). n is at most HTTP_SCRIPT_MAX. */
http_script_t *http_script_start(const http_answer_t *answers, int n, http_answer_t otherwise);

/* Requests answered so far. */
int http_script_served(http_script_t *s);

void http_script_stop(http_script_t **s_p);

#endif
