/*
 * The broker loop. Two ROUTER sockets: the front one faces requesters, the back one faces actors.
 * Keeping them apart means a requester can never pose as an actor (it would need to reach the
 * back socket) and that the back socket's MANDATORY/HANDOVER options apply only to actors.
 *
 * Registry: services by name, each with a ring of live members; members by routing id. A member
 * is refreshed by every heartbeat and every reply; expired members are pruned once a heartbeat
 * interval. Frames are moved, never copied, and bodies are never decoded.
 */
#include "broker/broker.h"

#include <errno.h>
#include <string.h>

#include "broker/wire.h"
#include "common/log.h"
#include "schemas/msg.h"

typedef struct service_t service_t;

typedef struct {
    char id[BRK_SERVICE_MAX + 1]; /* routing id the actor connected with */
    service_t *service;
    int64_t expires_at;
    uint64_t pid;
} member_t;

struct service_t {
    char name[BRK_SERVICE_MAX + 1];
    zlistx_t *members; /* member_t*, not owned (the members hash owns them) */
};

typedef struct {
    zsock_t *pipe;
    zsock_t *front;
    zsock_t *back;
    zhashx_t *services; /* name -> service_t* (owned) */
    zhashx_t *members;  /* id -> member_t* (owned) */
    int expiry_ms;
    uint64_t routed, no_service, bad_frames, replies, lost_replies;
} broker_t;

static void s_service_destroy(void **item)
{
    service_t *self = *item;
    if (self) {
        zlistx_destroy(&self->members);
        free(self);
        *item = NULL;
    }
}

static void s_member_destroy(void **item)
{
    free(*item);
    *item = NULL;
}

static broker_t *s_broker_new(zsock_t *pipe, const brk_config_t *config)
{
    broker_t *self = calloc(1, sizeof(*self));
    if (self == NULL)
        return NULL;
    self->pipe = pipe;
    self->expiry_ms = config->expiry_ms > 0 ? config->expiry_ms : BRK_EXPIRY_MS;
    self->services = zhashx_new();
    self->members = zhashx_new();
    self->front = zsock_new(ZMQ_ROUTER);
    self->back = zsock_new(ZMQ_ROUTER);
    if (!self->services || !self->members || !self->front || !self->back)
        goto Error;
    zhashx_set_destructor(self->services, s_service_destroy);
    zhashx_set_destructor(self->members, s_member_destroy);
    /* The front answers requesters that may have disconnected; a reply to a vanished requester
     * must fail visibly (counted as lost) rather than be queued forever. */
    zsock_set_router_mandatory(self->front, 1);
    zsock_set_router_mandatory(self->back, 1);
    zsock_set_router_handover(self->back, 1);
    zsock_set_sndhwm(self->front, 100000);
    zsock_set_rcvhwm(self->front, 100000);
    zsock_set_sndhwm(self->back, 100000);
    zsock_set_rcvhwm(self->back, 100000);
    if (zsock_bind(self->front, "%s", config->front_endpoint) != 0) {
        log_error("cannot bind %s: %s", config->front_endpoint, strerror(errno));
        goto Error;
    }
    if (zsock_bind(self->back, "%s", config->back_endpoint) != 0) {
        log_error("cannot bind %s: %s", config->back_endpoint, strerror(errno));
        goto Error;
    }
    return self;
Error:
    zsock_destroy(&self->front);
    zsock_destroy(&self->back);
    zhashx_destroy(&self->members);
    zhashx_destroy(&self->services);
    free(self);
    return NULL;
}

static void s_broker_destroy(broker_t **self_p)
{
    broker_t *self = *self_p;
    if (self == NULL)
        return;
    zsock_destroy(&self->front);
    zsock_destroy(&self->back);
    zhashx_destroy(&self->members);
    zhashx_destroy(&self->services);
    free(self);
    *self_p = NULL;
}

static void s_member_remove(broker_t *self, member_t *member, const char *why)
{
    service_t *service = member->service;
    void *handle = zlistx_find(service->members, member);
    if (handle)
        zlistx_delete(service->members, handle);
    log_info("actor %s (service %s, pid %llu) %s", member->id, service->name, (unsigned long long)member->pid, why);
    zhashx_delete(self->members, member->id);
    if (zlistx_size(service->members) == 0)
        zhashx_delete(self->services, service->name);
}

/* Registers or refreshes the member `id` for `service`. A member that changes service (a routing
 * id reused for a different role) is moved. */
static void s_member_refresh(broker_t *self, const char *id, const char *service_name, uint64_t pid)
{
    member_t *member = zhashx_lookup(self->members, id);
    if (member && strcmp(member->service->name, service_name) != 0) {
        s_member_remove(self, member, "changed service");
        member = NULL;
    }
    if (member == NULL) {
        service_t *service = zhashx_lookup(self->services, service_name);
        if (service == NULL) {
            service = calloc(1, sizeof(*service));
            if (service == NULL)
                return;
            snprintf(service->name, sizeof(service->name), "%s", service_name);
            service->members = zlistx_new();
            if (service->members == NULL) {
                free(service);
                return;
            }
            zhashx_insert(self->services, service->name, service);
        }
        member = calloc(1, sizeof(*member));
        if (member == NULL)
            return;
        snprintf(member->id, sizeof(member->id), "%s", id);
        member->service = service;
        zhashx_insert(self->members, member->id, member);
        zlistx_add_end(service->members, member);
        log_info("actor %s registered for service %s (pid %llu)", id, service_name, (unsigned long long)pid);
    }
    if (pid)
        member->pid = pid;
    member->expires_at = zclock_mono() + self->expiry_ms;
}

static void s_prune(broker_t *self)
{
    int64_t now = zclock_mono();
    zlistx_t *expired = zlistx_new();
    if (expired == NULL)
        return;
    for (member_t *m = zhashx_first(self->members); m; m = zhashx_next(self->members))
        if (m->expires_at < now)
            zlistx_add_end(expired, m);
    for (member_t *m = zlistx_first(expired); m; m = zlistx_next(expired))
        s_member_remove(self, m, "expired (no heartbeat)");
    zlistx_destroy(&expired);
}

/* Frame contents used as an id or service name must be short printable text. */
static int s_frame_text(zframe_t *frame, char *out, size_t size)
{
    size_t n = zframe_size(frame);
    const byte *p = zframe_data(frame);
    if (n == 0 || n >= size)
        return -1;
    for (size_t i = 0; i < n; i++)
        if (p[i] < 0x21 || p[i] > 0x7e)
            return -1;
    memcpy(out, p, n);
    out[n] = '\0';
    return 0;
}

#define NO_SKIP ((size_t)-1)

/*
 * Sends [id][prefix] followed by the frames of `msg` from index `first` on, leaving out index
 * `skip`, on a ROUTER. Only the routing frame can fail (EHOSTUNREACH for an unknown peer under
 * ROUTER_MANDATORY, EAGAIN at the high-water mark thanks to DONTWAIT); once it is accepted the
 * rest of the message is committed, so on failure nothing was sent and `msg` is intact for a
 * retry. `prefix` may be NULL. The frames sent must not end with `skip`.
 */
static int s_send_routed(zsock_t *sock, const void *id, size_t id_len, const char *prefix, zmsg_t *msg, size_t first, size_t skip)
{
    void *handle = zsock_resolve(sock);
    if (zmq_send(handle, id, id_len, ZMQ_SNDMORE | ZMQ_DONTWAIT) < 0)
        return -1;
    size_t count = zmsg_size(msg), index = 0;
    if (prefix)
        zmq_send(handle, prefix, strlen(prefix), ZMQ_SNDMORE);
    for (zframe_t *frame = zmsg_first(msg); frame; frame = zmsg_next(msg), index++)
        if (index >= first && index != skip)
            zmq_send(handle, zframe_data(frame), zframe_size(frame), index + 1 < count ? ZMQ_SNDMORE : 0);
    return 0;
}

/*
 * Answers every request of a batch with `status` and an empty body. `msg` is the request as
 * received: [requester][service]([corr][body])*; entries whose correlation id is malformed
 * cannot be answered individually, so a batch with none usable gets one reply with corr 0.
 */
static void s_reply_status(broker_t *self, zmsg_t *msg, brk_status_t status)
{
    byte code = (byte)status;
    zframe_t *requester = zmsg_first(msg);
    zmsg_t *reply = zmsg_new();
    size_t index = 0;
    for (zframe_t *frame = zmsg_next(msg); frame; frame = zmsg_next(msg), index++) {
        if (index % 2 == 1 && zframe_size(frame) == BRK_CORR_SIZE) {
            zmsg_addmem(reply, zframe_data(frame), BRK_CORR_SIZE);
            zmsg_addmem(reply, &code, 1);
            zmsg_addmem(reply, NULL, 0);
        }
    }
    if (zmsg_size(reply) == 0) {
        zmsg_addmem(reply, "\0\0\0\0\0\0\0\0", BRK_CORR_SIZE);
        zmsg_addmem(reply, &code, 1);
        zmsg_addmem(reply, NULL, 0);
    }
    if (s_send_routed(self->front, zframe_data(requester), zframe_size(requester), NULL, reply, 0, NO_SKIP) != 0)
        self->lost_replies++;
    zmsg_destroy(&reply);
}

/* A batch from the front: [requester][service]([corr][body])+. */
static void s_on_front(broker_t *self)
{
    zmsg_t *msg = zmsg_recv(self->front);
    if (msg == NULL)
        return;
    zmsg_first(msg); /* the requester's routing id stays in place for the forward */
    zframe_t *service_frame = zmsg_next(msg);
    char service_name[BRK_SERVICE_MAX + 1];
    size_t entries = zmsg_size(msg) >= 2 ? (zmsg_size(msg) - 2) / 2 : 0;
    bool well_formed = service_frame && zmsg_size(msg) % 2 == 0 && entries >= 1 && entries <= BRK_BATCH_MAX &&
                       s_frame_text(service_frame, service_name, sizeof(service_name)) == 0;
    for (zframe_t *corr = zmsg_next(msg); well_formed && corr; corr = zmsg_next(msg)) {
        well_formed = zframe_size(corr) == BRK_CORR_SIZE;
        zmsg_next(msg);
    }
    if (!well_formed) {
        self->bad_frames++;
        s_reply_status(self, msg, BRK_STATUS_BAD_FRAME);
        goto Exit;
    }

    service_t *service = zhashx_lookup(self->services, service_name);
    /* Try members in round-robin order; a member whose connection is gone fails the send with
     * EHOSTUNREACH and is dropped from the registry, so the next one is tried at once. */
    while (service != NULL && zlistx_size(service->members) > 0) {
        member_t *member = zlistx_first(service->members);
        zlistx_move_end(service->members, zlistx_cursor(service->members));
        /* ["REQ"][requester]([corr][body])+: the requester frame stays, the service (1) goes. */
        if (s_send_routed(self->back, member->id, strlen(member->id), "REQ", msg, 0, 1) == 0) {
            self->routed += entries;
            goto Exit;
        }
        if (errno == EAGAIN) {
            s_reply_status(self, msg, BRK_STATUS_OVERLOADED);
            goto Exit;
        }
        s_member_remove(self, member, "unreachable");
        service = zhashx_lookup(self->services, service_name);
    }
    self->no_service += entries;
    s_reply_status(self, msg, BRK_STATUS_NO_SERVICE);
Exit:
    zmsg_destroy(&msg);
}

/* A message from an actor: heartbeat or a batch of replies. */
static void s_on_back(broker_t *self)
{
    zmsg_t *msg = zmsg_recv(self->back);
    if (msg == NULL)
        return;
    char id[BRK_SERVICE_MAX + 1];
    zframe_t *id_frame = zmsg_first(msg);
    zframe_t *command = zmsg_next(msg);
    if (!command || s_frame_text(id_frame, id, sizeof(id)) != 0) {
        self->bad_frames++;
        goto Exit;
    }
    if (zframe_streq(command, "HB") && zmsg_size(msg) == 3) {
        zframe_t *body = zmsg_next(msg);
        msg_actor_heartbeat_t hb;
        char service[BRK_SERVICE_MAX + 1];
        if (msg_actor_heartbeat_decode(zframe_data(body), zframe_size(body), &hb, NULL, 0) != 0 ||
            msg_str_copy(hb.service, service, sizeof(service)) != 0) {
            self->bad_frames++;
            goto Exit;
        }
        s_member_refresh(self, id, service, hb.pid);
    } else if (zframe_streq(command, "REP") && zmsg_size(msg) >= 6 && (zmsg_size(msg) - 3) % 3 == 0 &&
               (zmsg_size(msg) - 3) / 3 <= BRK_BATCH_MAX) {
        zframe_t *requester = zmsg_next(msg);
        size_t index = 0;
        for (zframe_t *frame = zmsg_next(msg); frame; frame = zmsg_next(msg), index++)
            if ((index % 3 == 0 && zframe_size(frame) != BRK_CORR_SIZE) || (index % 3 == 1 && zframe_size(frame) != 1)) {
                self->bad_frames++;
                goto Exit;
            }
        member_t *member = zhashx_lookup(self->members, id);
        if (member)
            member->expires_at = zclock_mono() + self->expiry_ms;
        self->replies += index / 3;
        /* A requester that disconnected has already answered its clients on deadline. */
        if (s_send_routed(self->front, zframe_data(requester), zframe_size(requester), NULL, msg, 3, NO_SKIP) != 0)
            self->lost_replies += index / 3;
    } else {
        self->bad_frames++;
    }
Exit:
    zmsg_destroy(&msg);
}

static int s_on_pipe(broker_t *self)
{
    zmsg_t *msg = zmsg_recv(self->pipe);
    if (msg == NULL)
        return -1;
    char *command = zmsg_popstr(msg);
    int rc = 0;
    if (command == NULL || streq(command, "$TERM")) {
        rc = -1;
    } else if (streq(command, "STATS")) {
        zstr_sendf(self->pipe, "services=%zu actors=%zu routed=%llu no_service=%llu bad_frames=%llu replies=%llu lost=%llu",
                   zhashx_size(self->services), zhashx_size(self->members), (unsigned long long)self->routed,
                   (unsigned long long)self->no_service, (unsigned long long)self->bad_frames, (unsigned long long)self->replies,
                   (unsigned long long)self->lost_replies);
    }
    zstr_free(&command);
    zmsg_destroy(&msg);
    return rc;
}

/*
 * Moves every message waiting on either socket before polling again. Under load most messages
 * arrive while the previous ones are being routed; taking them in one go saves a poll system
 * call and often a sleep and wake-up per message, which is most of what routing costs. The
 * budget keeps a flood on one side from starving the pipe and the expiry checks.
 */
static void s_drain(broker_t *self)
{
    for (int budget = 1024; budget > 0;) {
        int moved = 0;
        if (zsock_events(self->front) & ZMQ_POLLIN) {
            s_on_front(self);
            moved++;
        }
        if (zsock_events(self->back) & ZMQ_POLLIN) {
            s_on_back(self);
            moved++;
        }
        if (moved == 0)
            break;
        budget -= moved;
    }
}

void brk_actor(zsock_t *pipe, void *args)
{
    broker_t *self = s_broker_new(pipe, args);
    zsock_signal(pipe, self ? 0 : 1);
    if (self == NULL)
        return;
    zpoller_t *poller = zpoller_new(pipe, self->front, self->back, NULL);
    int64_t next_prune = zclock_mono() + BRK_HEARTBEAT_MS;
    while (poller) {
        int timeout = (int)(next_prune - zclock_mono());
        void *which = zpoller_wait(poller, timeout > 0 ? timeout : 0);
        if (which == pipe) {
            if (s_on_pipe(self) != 0)
                break;
        } else if (which == self->front || which == self->back) {
            s_drain(self);
        } else if (zpoller_terminated(poller)) {
            break;
        }
        if (zclock_mono() >= next_prune) {
            s_prune(self);
            next_prune = zclock_mono() + BRK_HEARTBEAT_MS;
        }
    }
    zpoller_destroy(&poller);
    s_broker_destroy(&self);
}
