#include "broker/client.h"

#include <errno.h>
#include <string.h>

int brk_client_send(zsock_t *dealer, const char *service, uint64_t corr, const void *body, size_t size)
{
    void *handle = zsock_resolve(dealer);
    size_t service_len = strlen(service);
    if (service_len == 0 || service_len > BRK_SERVICE_MAX) {
        errno = EINVAL;
        return -1;
    }
    /* The first frame decides: DEALER queues whole messages, so if it is accepted the rest are. */
    if (zmq_send(handle, service, service_len, ZMQ_SNDMORE | ZMQ_DONTWAIT) < 0)
        return -1;
    zmq_send(handle, &corr, sizeof(corr), ZMQ_SNDMORE);
    zmq_send(handle, body, size, 0);
    return 0;
}

int brk_client_recv(zsock_t *dealer, uint64_t *corr, brk_status_t *status, zframe_t **body)
{
    void *handle = zsock_resolve(dealer);
    zmq_msg_t part;
    zframe_t *frames[3] = {NULL, NULL, NULL};
    int count = 0, more = 1, rc = -1;

    while (more) {
        zmq_msg_init(&part);
        if (zmq_msg_recv(&part, handle, count == 0 ? ZMQ_DONTWAIT : 0) < 0) {
            zmq_msg_close(&part);
            goto Exit;
        }
        more = zmq_msg_more(&part);
        if (count < 3)
            frames[count] = zframe_new(zmq_msg_data(&part), zmq_msg_size(&part));
        count++;
        zmq_msg_close(&part);
    }
    if (count != 3 || zframe_size(frames[0]) != BRK_CORR_SIZE || zframe_size(frames[1]) != 1) {
        errno = EPROTO;
        goto Exit;
    }
    memcpy(corr, zframe_data(frames[0]), BRK_CORR_SIZE);
    *status = (brk_status_t)*zframe_data(frames[1]);
    *body = frames[2];
    frames[2] = NULL;
    rc = 0;
Exit:
    for (int i = 0; i < 3; i++)
        zframe_destroy(&frames[i]);
    return rc;
}
