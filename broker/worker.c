#include "broker/worker.h"

#include <unistd.h>

#include "schemas/msg.h"

struct brk_worker_t {
    zsock_t *dealer;
    char service[BRK_SERVICE_MAX + 1];
    int64_t next_heartbeat;
    zlist_t *queue;       /* brk_request_t* received but not yet handed out */
    zmsg_t *replies;      /* ["REP"][requester]([corr][status][body])* held back */
    zframe_t *replies_to; /* the requester `replies` is for (owned copy) */
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
    self->queue = zlist_new();
    if (self->dealer == NULL || self->queue == NULL)
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
    zlist_destroy(&self->queue);
    zsock_destroy(&self->dealer);
    free(self);
    return NULL;
}

void brk_worker_destroy(brk_worker_t **self_p)
{
    brk_worker_t *self = *self_p;
    if (self == NULL)
        return;
    brk_worker_flush(self);
    brk_request_t *request;
    while ((request = zlist_pop(self->queue)) != NULL)
        brk_request_destroy(&request);
    zlist_destroy(&self->queue);
    zsock_destroy(&self->dealer);
    free(self);
    *self_p = NULL;
}

bool brk_worker_busy(const brk_worker_t *self)
{
    return zlist_size(self->queue) > 0;
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

/* Splits ["REQ"][requester]([corr][body])+ into queued requests. A malformed batch is dropped
 * whole: nothing in it can be trusted to be answerable. */
static void s_receive_batch(brk_worker_t *self)
{
    zmsg_t *msg = zmsg_recv(self->dealer);
    if (msg == NULL)
        return;
    zframe_t *command = zmsg_pop(msg);
    zframe_t *requester = zmsg_pop(msg);
    size_t entries = zmsg_size(msg) / 2;
    bool well_formed =
        command && requester && zframe_streq(command, "REQ") && zmsg_size(msg) % 2 == 0 && entries >= 1 && entries <= BRK_BATCH_MAX;
    while (well_formed && zmsg_size(msg) > 0) {
        brk_request_t *request = calloc(1, sizeof(*request));
        if (request == NULL)
            break;
        request->requester = zframe_dup(requester);
        request->corr = zmsg_pop(msg);
        request->body = zmsg_pop(msg);
        zlist_append(self->queue, request);
    }
    zframe_destroy(&command);
    zframe_destroy(&requester);
    zmsg_destroy(&msg);
}

brk_request_t *brk_worker_recv(brk_worker_t *self)
{
    if (zlist_size(self->queue) == 0 && (zsock_events(self->dealer) & ZMQ_POLLIN))
        s_receive_batch(self);
    brk_request_t *request = zlist_pop(self->queue);
    if (request == NULL)
        brk_worker_flush(self);
    return request;
}

int brk_worker_flush(brk_worker_t *self)
{
    if (self->replies == NULL)
        return 0;
    zframe_destroy(&self->replies_to);
    return zmsg_send(&self->replies, self->dealer);
}

/* True if a queued request comes from the same requester, so its reply can join this batch. */
static bool s_more_from(brk_worker_t *self, zframe_t *requester)
{
    brk_request_t *next = zlist_first(self->queue);
    return next != NULL && zframe_eq(next->requester, requester);
}

int brk_worker_reply(brk_worker_t *self, brk_request_t **request_p, brk_status_t status, const void *body, size_t size)
{
    brk_request_t *request = *request_p;
    byte code = (byte)status;
    if (self->replies && (!zframe_eq(self->replies_to, request->requester) || zmsg_size(self->replies) >= 2 + 3 * BRK_BATCH_MAX))
        brk_worker_flush(self);
    if (self->replies == NULL) {
        self->replies = zmsg_new();
        zmsg_addstr(self->replies, "REP");
        zmsg_addmem(self->replies, zframe_data(request->requester), zframe_size(request->requester));
        self->replies_to = zframe_dup(request->requester);
    }
    zmsg_append(self->replies, &request->corr);
    zmsg_addmem(self->replies, &code, 1);
    zmsg_addmem(self->replies, body, size);
    int rc = 0;
    if (!s_more_from(self, request->requester))
        rc = brk_worker_flush(self);
    brk_request_destroy(request_p);
    return rc;
}
