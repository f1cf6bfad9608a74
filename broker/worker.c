#include "broker/worker.h"

#include <unistd.h>

#include "schemas/msg.h"

struct brk_worker_t {
    zsock_t *dealer;
    char service[BRK_SERVICE_MAX + 1];
    int64_t next_heartbeat;
};

brk_worker_t *brk_worker_new(const char *endpoint, const char *service, const char *identity)
{
    if (strlen(service) > BRK_SERVICE_MAX || strlen(identity) > BRK_SERVICE_MAX || identity[0] == '\0')
        return NULL;
    brk_worker_t *self = calloc(1, sizeof(*self));
    if (self == NULL)
        return NULL;
    snprintf(self->service, sizeof(self->service), "%s", service);
    self->dealer = zsock_new(ZMQ_DEALER);
    if (self->dealer == NULL)
        goto Error;
    zsock_set_identity(self->dealer, identity);
    zsock_set_sndhwm(self->dealer, 100000);
    zsock_set_rcvhwm(self->dealer, 100000);
    /* Replies are the last thing an actor sends before it exits on $TERM; give them a moment. */
    zsock_set_linger(self->dealer, 200);
    if (zsock_connect(self->dealer, "%s", endpoint) != 0)
        goto Error;
    brk_worker_tick(self);
    return self;
Error:
    zsock_destroy(&self->dealer);
    free(self);
    return NULL;
}

void brk_worker_destroy(brk_worker_t **self_p)
{
    brk_worker_t *self = *self_p;
    if (self == NULL)
        return;
    zsock_destroy(&self->dealer);
    free(self);
    *self_p = NULL;
}

zsock_t *brk_worker_sock(brk_worker_t *self)
{
    return self->dealer;
}

int brk_worker_tick(brk_worker_t *self)
{
    int64_t now = zclock_mono();
    if (now >= self->next_heartbeat) {
        msg_actor_heartbeat_t hb = {.service = msg_str(self->service), .pid = (uint64_t)getpid()};
        msgpack_sbuffer sb;
        msgpack_sbuffer_init(&sb);
        if (msg_actor_heartbeat_encode(&hb, &sb) == 0) {
            zmsg_t *msg = zmsg_new();
            zmsg_addstr(msg, "HB");
            zmsg_addmem(msg, sb.data, sb.size);
            zmsg_send(&msg, self->dealer);
        }
        msgpack_sbuffer_destroy(&sb);
        self->next_heartbeat = now + BRK_HEARTBEAT_MS;
    }
    return (int)(self->next_heartbeat - now);
}

void brk_request_destroy(brk_request_t **request_p)
{
    brk_request_t *request = *request_p;
    if (request == NULL)
        return;
    zframe_destroy(&request->requester);
    zframe_destroy(&request->corr);
    zframe_destroy(&request->body);
    free(request);
    *request_p = NULL;
}

brk_request_t *brk_worker_recv(brk_worker_t *self)
{
    zmsg_t *msg = zmsg_recv(self->dealer);
    if (msg == NULL)
        return NULL;
    brk_request_t *request = NULL;
    zframe_t *command = zmsg_pop(msg);
    if (command && zframe_streq(command, "REQ") && zmsg_size(msg) == 3) {
        request = calloc(1, sizeof(*request));
        if (request) {
            request->requester = zmsg_pop(msg);
            request->corr = zmsg_pop(msg);
            request->body = zmsg_pop(msg);
        }
    }
    zframe_destroy(&command);
    zmsg_destroy(&msg);
    return request;
}

int brk_worker_reply(brk_worker_t *self, brk_request_t **request_p, brk_status_t status, const void *body, size_t size)
{
    brk_request_t *request = *request_p;
    byte code = (byte)status;
    zmsg_t *msg = zmsg_new();
    zmsg_addstr(msg, "REP");
    zmsg_append(msg, &request->requester);
    zmsg_append(msg, &request->corr);
    zmsg_addmem(msg, &code, 1);
    zmsg_addmem(msg, body, size);
    brk_request_destroy(request_p);
    return zmsg_send(&msg, self->dealer);
}
