#include "broker/client.h"

#include <errno.h>
#include <string.h>

struct brk_batch_t {
    char service[BRK_SERVICE_MAX + 1];
    size_t count;
    uint64_t corr[BRK_BATCH_MAX];
    zframe_t *body[BRK_BATCH_MAX];
};

brk_batch_t *brk_batch_new(void)
{
    return calloc(1, sizeof(brk_batch_t));
}

void brk_batch_clear(brk_batch_t *self)
{
    for (size_t i = 0; i < self->count; i++)
        zframe_destroy(&self->body[i]);
    self->count = 0;
    self->service[0] = '\0';
}

void brk_batch_destroy(brk_batch_t **self_p)
{
    if (*self_p == NULL)
        return;
    brk_batch_clear(*self_p);
    free(*self_p);
    *self_p = NULL;
}

int brk_batch_add(brk_batch_t *self, const char *service, uint64_t corr, const void *body, size_t size)
{
    size_t service_len = strlen(service);
    if (service_len == 0 || service_len > BRK_SERVICE_MAX) {
        errno = EINVAL;
        return -1;
    }
    if (self->count > 0 && strcmp(self->service, service) != 0) {
        errno = EXDEV;
        return -1;
    }
    if (self->count == BRK_BATCH_MAX) {
        errno = ENOSPC;
        return -1;
    }
    zframe_t *frame = zframe_new(body, size);
    if (frame == NULL) {
        errno = ENOMEM;
        return -1;
    }
    memcpy(self->service, service, service_len + 1);
    self->corr[self->count] = corr;
    self->body[self->count] = frame;
    self->count++;
    return 0;
}

size_t brk_batch_count(const brk_batch_t *self)
{
    return self->count;
}

uint64_t brk_batch_corr(const brk_batch_t *self, size_t index)
{
    return index < self->count ? self->corr[index] : 0;
}

int brk_batch_send(brk_batch_t *self, zsock_t *dealer)
{
    if (self->count == 0)
        return 0;
    void *handle = zsock_resolve(dealer);
    /* The first frame decides: DEALER queues whole messages, so if it is accepted the rest are. */
    if (zmq_send(handle, self->service, strlen(self->service), ZMQ_SNDMORE | ZMQ_DONTWAIT) < 0)
        return -1;
    for (size_t i = 0; i < self->count; i++) {
        zmq_send(handle, &self->corr[i], sizeof(self->corr[i]), ZMQ_SNDMORE);
        zmq_send(handle, zframe_data(self->body[i]), zframe_size(self->body[i]), i + 1 < self->count ? ZMQ_SNDMORE : 0);
    }
    brk_batch_clear(self);
    return 0;
}

int brk_client_send(zsock_t *dealer, const char *service, uint64_t corr, const void *body, size_t size)
{
    brk_batch_t batch = {.count = 0};
    if (brk_batch_add(&batch, service, corr, body, size) != 0)
        return -1;
    int rc = brk_batch_send(&batch, dealer);
    int saved = errno;
    brk_batch_clear(&batch);
    errno = saved;
    return rc;
}

/* Receives the next part of the message being read; -1 at its end or on error. */
static int s_next_part(void *handle, zmq_msg_t *part, int *more, int flags)
{
    if (!*more)
        return -1;
    zmq_msg_init(part);
    if (zmq_msg_recv(part, handle, flags) < 0) {
        zmq_msg_close(part);
        *more = 0;
        return -1;
    }
    *more = zmq_msg_more(part);
    return 0;
}

/*
 * Replies are delivered as their triples arrive, straight from ZeroMQ's buffers (no copy): a
 * reply batch can be hundreds of frames and the body of each is only needed for the callback.
 * A malformed triple ends the message: its remaining parts are discarded.
 */
int brk_client_recv(zsock_t *dealer, brk_reply_fn *on_reply, void *arg)
{
    void *handle = zsock_resolve(dealer);
    zmq_msg_t corr, status, body;
    int more = 1, delivered = 0;
    bool malformed = false;

    if (s_next_part(handle, &corr, &more, ZMQ_DONTWAIT) != 0) {
        errno = EAGAIN;
        return -1;
    }
    for (;;) {
        if (s_next_part(handle, &status, &more, 0) != 0) {
            zmq_msg_close(&corr);
            malformed = true;
            break;
        }
        if (s_next_part(handle, &body, &more, 0) != 0) {
            zmq_msg_close(&corr);
            zmq_msg_close(&status);
            malformed = true;
            break;
        }
        if (zmq_msg_size(&corr) == BRK_CORR_SIZE && zmq_msg_size(&status) == 1 && delivered < BRK_BATCH_MAX) {
            uint64_t id;
            memcpy(&id, zmq_msg_data(&corr), BRK_CORR_SIZE);
            on_reply(arg, id, (brk_status_t) * (const byte *)zmq_msg_data(&status), zmq_msg_data(&body), zmq_msg_size(&body));
            delivered++;
        } else {
            malformed = true;
        }
        zmq_msg_close(&corr);
        zmq_msg_close(&status);
        zmq_msg_close(&body);
        if (malformed || s_next_part(handle, &corr, &more, 0) != 0)
            break;
    }
    /* Discard whatever is left of a malformed message so the next read starts at a boundary. */
    zmq_msg_t rest;
    while (s_next_part(handle, &rest, &more, 0) == 0)
        zmq_msg_close(&rest);
    if (delivered == 0 && malformed) {
        errno = EPROTO;
        return -1;
    }
    return delivered;
}
