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

int brk_client_recv(zsock_t *dealer, brk_reply_fn *on_reply, void *arg)
{
    zmsg_t *msg = NULL;
    if ((zsock_events(dealer) & ZMQ_POLLIN) == 0 || (msg = zmsg_recv(dealer)) == NULL) {
        errno = EAGAIN;
        return -1;
    }
    size_t count = zmsg_size(msg);
    bool well_formed = count >= 3 && count % 3 == 0 && count / 3 <= BRK_BATCH_MAX;
    size_t index = 0;
    for (zframe_t *f = zmsg_first(msg); well_formed && f; f = zmsg_next(msg), index++)
        well_formed = (index % 3 != 0 || zframe_size(f) == BRK_CORR_SIZE) && (index % 3 != 1 || zframe_size(f) == 1);
    if (!well_formed) {
        zmsg_destroy(&msg);
        errno = EPROTO;
        return -1;
    }
    int delivered = 0;
    for (zframe_t *corr_frame = zmsg_first(msg); corr_frame; corr_frame = zmsg_next(msg)) {
        zframe_t *status = zmsg_next(msg);
        zframe_t *body = zmsg_next(msg);
        uint64_t corr;
        memcpy(&corr, zframe_data(corr_frame), BRK_CORR_SIZE);
        on_reply(arg, corr, (brk_status_t)*zframe_data(status), zframe_data(body), zframe_size(body));
        delivered++;
    }
    zmsg_destroy(&msg);
    return delivered;
}
