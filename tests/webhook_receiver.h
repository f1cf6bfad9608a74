/*
 * A local webhook receiver for end-to-end tests: an HTTP/1.1 listener on 127.0.0.1 serving each
 * connection on its own thread, recording every request (path, webhook-id, timestamp, whether its
 * Standard Webhooks signature verifies under the known secrets, computed here independently of
 * common/webhook_signature.c) and answering as the test's `answer` function decides.
 */
#ifndef IMPACT_TESTS_WEBHOOK_RECEIVER_H
#define IMPACT_TESTS_WEBHOOK_RECEIVER_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#define WEBHOOK_RECEIVED_MAX  4096
#define WEBHOOK_SECRETS_KNOWN 8

typedef struct {
    char path[64];
    int64_t id;       /* webhook-id; -1 when the body's id disagrees with it */
    char type[64];    /* the body's type */
    int64_t campaign; /* the body's campaign_id, 0 when null */
    bool signed_ok;   /* at least one signature verified under a known secret */
    int status;       /* what it was answered; 0: the connection was dropped unanswered */
    long timestamp;   /* webhook-timestamp */
    char body[2048];  /* the body as received (cut at the size) */
} webhook_received_t;

/* What to answer the nth (from 1) request to `path`: an HTTP status, or 0 to close the connection
 * without answering, after sleeping *delay_ms (a timeout when longer than the deliverer's). */
typedef int(webhook_answer_fn)(void *arg, const char *path, int nth, int *delay_ms);

typedef struct webhook_receiver webhook_receiver_t;

webhook_receiver_t *webhook_receiver_new(webhook_answer_fn *answer, void *arg);
void webhook_receiver_destroy(webhook_receiver_t **self_p);
int webhook_receiver_port(const webhook_receiver_t *self);

/** Replaces the known secrets with the "whsec_..." texts given. */
void webhook_receiver_secrets(webhook_receiver_t *self, const char *const *secrets, int n);

/** Copies up to max requests received so far, in arrival order; returns how many. */
int webhook_receiver_received(webhook_receiver_t *self, webhook_received_t *out, int max);

#endif
