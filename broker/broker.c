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

/* The largest well-formed message: a batch of replies, [id]["REP"][requester] + 3 per reply. */
#define NO_SKIP       ((size_t)-1)
#define BRK_MAX_PARTS (3 + 3 * BRK_BATCH_MAX)

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
    zmq_msg_t *parts; /* the message being routed, BRK_MAX_PARTS of them */
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
    self->parts = calloc(BRK_MAX_PARTS + 1, sizeof(zmq_msg_t));
    self->front = zsock_new(ZMQ_ROUTER);
    self->back = zsock_new(ZMQ_ROUTER);
    if (!self->services || !self->members || !self->front || !self->back || !self->parts)
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
    free(self->parts);
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
    free(self->parts);
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
static int s_part_text(zmq_msg_t *part, char *out, size_t size)
{
    size_t n = zmq_msg_size(part);
    const byte *p = zmq_msg_data(part);
    if (n == 0 || n >= size)
        return -1;
    for (size_t i = 0; i < n; i++)
        if (p[i] < 0x21 || p[i] > 0x7e)
            return -1;
    memcpy(out, p, n);
    out[n] = '\0';
    return 0;
}

/*
 * Receives one whole message into self->parts without copying its frames. Returns the number of
 * parts, BRK_MAX_PARTS + 1 for a message too long to be well formed (its tail is discarded), or
 * 0 when nothing was waiting. The caller closes the parts with s_close.
 */
static size_t s_recv(broker_t *self, zsock_t *sock)
{
    void *handle = zsock_resolve(sock);
    size_t count = 0;
    int more = 1;
    while (more) {
        zmq_msg_t *part = &self->parts[count < BRK_MAX_PARTS ? count : BRK_MAX_PARTS];
        zmq_msg_init(part);
        if (zmq_msg_recv(part, handle, count == 0 ? ZMQ_DONTWAIT : 0) < 0) {
            zmq_msg_close(part);
            break;
        }
        more = zmq_msg_more(part);
        if (count >= BRK_MAX_PARTS)
            zmq_msg_close(part);
        count++;
    }
    return count <= BRK_MAX_PARTS ? count : BRK_MAX_PARTS + 1;
}

static void s_close(broker_t *self, size_t count)
{
    for (size_t i = 0; i < count && i < BRK_MAX_PARTS; i++)
        zmq_msg_close(&self->parts[i]);
}

/*
 * Sends [id][prefix] and then moves parts first..count-1 (leaving out `skip`) onto a ROUTER:
 * zmq_msg_send hands each frame's buffer over instead of copying it. Only the routing frame can
 * fail (EHOSTUNREACH for an unknown peer under ROUTER_MANDATORY, EAGAIN at the high-water mark
 * thanks to DONTWAIT); once it is accepted the rest of the message is committed, so on failure
 * nothing was sent and every part is intact for a retry. `prefix` may be NULL.
 */
static int s_send_routed(broker_t *self, zsock_t *sock, const void *id, size_t id_len, const char *prefix, size_t first,
                         size_t count, size_t skip)
{
    void *handle = zsock_resolve(sock);
    if (zmq_send(handle, id, id_len, ZMQ_SNDMORE | ZMQ_DONTWAIT) < 0)
        return -1;
    if (prefix)
        zmq_send(handle, prefix, strlen(prefix), ZMQ_SNDMORE);
    size_t last = count - 1 == skip ? count - 2 : count - 1;
    for (size_t i = first; i < count; i++)
        if (i != skip)
            zmq_msg_send(&self->parts[i], handle, i < last ? ZMQ_SNDMORE : 0);
    return 0;
}

/*
 * Answers every request of a batch from the front ([requester][service]([corr][body])*, in
 * self->parts) with `status` and an empty body. Entries whose correlation id is malformed cannot
 * be answered individually, so a batch with none usable gets one reply with corr 0.
 */
static void s_reply_status(broker_t *self, size_t count, brk_status_t status)
{
    static const byte zero_corr[BRK_CORR_SIZE];
    byte code = (byte)status;
    void *handle = zsock_resolve(self->front);
    size_t usable = 0, last = 0;
    for (size_t i = 2; i < count && i < BRK_MAX_PARTS; i += 2)
        if (zmq_msg_size(&self->parts[i]) == BRK_CORR_SIZE) {
            usable++;
            last = i;
        }
    if (zmq_send(handle, zmq_msg_data(&self->parts[0]), zmq_msg_size(&self->parts[0]), ZMQ_SNDMORE | ZMQ_DONTWAIT) < 0) {
        self->lost_replies++;
        return;
    }
    if (usable == 0) {
        zmq_send(handle, zero_corr, BRK_CORR_SIZE, ZMQ_SNDMORE);
        zmq_send(handle, &code, 1, ZMQ_SNDMORE);
        zmq_send(handle, NULL, 0, 0);
        return;
    }
    for (size_t i = 2; i <= last; i += 2)
        if (zmq_msg_size(&self->parts[i]) == BRK_CORR_SIZE) {
            zmq_send(handle, zmq_msg_data(&self->parts[i]), BRK_CORR_SIZE, ZMQ_SNDMORE);
            zmq_send(handle, &code, 1, ZMQ_SNDMORE);
            zmq_send(handle, NULL, 0, i < last ? ZMQ_SNDMORE : 0);
        }
}

/* A batch from the front: [requester][service]([corr][body])+. */
static void s_on_front(broker_t *self)
{
    size_t count = s_recv(self, self->front);
    if (count == 0)
        return;
    char service_name[BRK_SERVICE_MAX + 1];
    size_t entries = count >= 2 ? (count - 2) / 2 : 0;
    bool well_formed = count >= 4 && count % 2 == 0 && entries <= BRK_BATCH_MAX &&
                       s_part_text(&self->parts[1], service_name, sizeof(service_name)) == 0;
    for (size_t i = 2; well_formed && i < count; i += 2)
        well_formed = zmq_msg_size(&self->parts[i]) == BRK_CORR_SIZE;
    if (!well_formed) {
        self->bad_frames++;
        s_reply_status(self, count, BRK_STATUS_BAD_FRAME);
        goto Exit;
    }

    service_t *service = zhashx_lookup(self->services, service_name);
    /* Try members in round-robin order; a member whose connection is gone fails the send with
     * EHOSTUNREACH and is dropped from the registry, so the next one is tried at once. */
    while (service != NULL && zlistx_size(service->members) > 0) {
        member_t *member = zlistx_first(service->members);
        zlistx_move_end(service->members, zlistx_cursor(service->members));
        /* ["REQ"][requester]([corr][body])+: the requester (0) stays, the service (1) goes. */
        if (s_send_routed(self, self->back, member->id, strlen(member->id), "REQ", 0, count, 1) == 0) {
            self->routed += entries;
            goto Exit;
        }
        if (errno == EAGAIN) {
            s_reply_status(self, count, BRK_STATUS_OVERLOADED);
            goto Exit;
        }
        s_member_remove(self, member, "unreachable");
        service = zhashx_lookup(self->services, service_name);
    }
    self->no_service += entries;
    s_reply_status(self, count, BRK_STATUS_NO_SERVICE);
Exit:
    s_close(self, count);
}

/* A message from an actor: [id]["HB"][heartbeat] or [id]["REP"][requester]([corr][status][body])+. */
static void s_on_back(broker_t *self)
{
    size_t count = s_recv(self, self->back);
    if (count == 0)
        return;
    char id[BRK_SERVICE_MAX + 1];
    zmq_msg_t *command = &self->parts[1];
    if (count < 2 || count > BRK_MAX_PARTS || s_part_text(&self->parts[0], id, sizeof(id)) != 0) {
        self->bad_frames++;
        goto Exit;
    }
    if (zmq_msg_size(command) == 2 && memcmp(zmq_msg_data(command), "HB", 2) == 0 && count == 3) {
        msg_actor_heartbeat_t hb;
        char service[BRK_SERVICE_MAX + 1];
        if (msg_actor_heartbeat_decode(zmq_msg_data(&self->parts[2]), zmq_msg_size(&self->parts[2]), &hb, NULL, 0) != 0 ||
            msg_str_copy(hb.service, service, sizeof(service)) != 0) {
            self->bad_frames++;
            goto Exit;
        }
        s_member_refresh(self, id, service, hb.pid);
    } else if (zmq_msg_size(command) == 3 && memcmp(zmq_msg_data(command), "REP", 3) == 0 && count >= 6 && (count - 3) % 3 == 0) {
        for (size_t i = 3; i < count; i += 3)
            if (zmq_msg_size(&self->parts[i]) != BRK_CORR_SIZE || zmq_msg_size(&self->parts[i + 1]) != 1) {
                self->bad_frames++;
                goto Exit;
            }
        member_t *member = zhashx_lookup(self->members, id);
        if (member)
            member->expires_at = zclock_mono() + self->expiry_ms;
        size_t replies = (count - 3) / 3;
        self->replies += replies;
        /* A requester that disconnected has already answered its clients on deadline. */
        zmq_msg_t *requester = &self->parts[2];
        if (s_send_routed(self, self->front, zmq_msg_data(requester), zmq_msg_size(requester), NULL, 3, count, NO_SKIP) != 0)
            self->lost_replies += replies;
    } else {
        self->bad_frames++;
    }
Exit:
    s_close(self, count);
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
