/*
 * The broker with real ZeroMQ sockets over ipc:// in a temporary run directory: routing,
 * round-robin over a pool, prompt errors for missing services and malformed frames, identity
 * handover to a restarted actor, and expiry of an actor that stops heartbeating.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdlib.h>
#include <string.h>
#include <errno.h>
#include <unistd.h>

#include "broker/broker.h"
#include "broker/client.h"
#include "broker/worker.h"
#include "schemas/msg.h"
#include "tests/support.h"

typedef struct {
    char dir[64];
    char front[128];
    char back[128];
    zactor_t *broker;
    zsock_t *client;
} fixture_t;

static int s_setup(void **state)
{
    fixture_t *f = calloc(1, sizeof(*f));
    snprintf(f->dir, sizeof(f->dir), "/tmp/impact-brk.XXXXXX");
    assert_non_null(mkdtemp(f->dir));
    snprintf(f->front, sizeof(f->front), "ipc://%s/front.ipc", f->dir);
    snprintf(f->back, sizeof(f->back), "ipc://%s/back.ipc", f->dir);
    brk_config_t config = {.front_endpoint = f->front, .back_endpoint = f->back, .expiry_ms = 300};
    f->broker = zactor_new(brk_actor, &config);
    assert_non_null(f->broker);
    f->client = zsock_new_dealer(f->front);
    assert_non_null(f->client);
    *state = f;
    return 0;
}

static int s_teardown(void **state)
{
    fixture_t *f = *state;
    zsock_destroy(&f->client);
    zactor_destroy(&f->broker);
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", f->dir);
    assert_int_equal(system(cmd), 0);
    free(f);
    return 0;
}

/* Waits for one reply (bounded by a generous deadline: a missing reply is the failure). */
static int s_reply(zsock_t *client, uint64_t *corr, brk_status_t *status, zframe_t **body)
{
    zpoller_t *poller = zpoller_new(client, NULL);
    void *which = zpoller_wait(poller, 5000);
    zpoller_destroy(&poller);
    if (which != client)
        return -1;
    return support_recv_one(client, corr, status, body);
}

/* Sends single requests until `worker` is registered for `service` (heartbeats are asynchronous
 * to the test), answering the probes it receives. 0 once a probe was served. */
static int s_wait_registered(fixture_t *f, const char *service, brk_worker_t *worker)
{
    zpoller_t *poller = zpoller_new(brk_worker_sock(worker), f->client, NULL);
    int rc = -1;
    for (int i = 0; i < 500 && rc != 0; i++) {
        assert_int_equal(brk_client_send(f->client, service, 1000 + (uint64_t)i, "probe", 5), 0);
        for (;;) {
            void *which = zpoller_wait(poller, 5000);
            assert_non_null(which);
            if (which == brk_worker_sock(worker)) {
                brk_request_t *r;
                while ((r = brk_worker_recv(worker)) != NULL)
                    brk_worker_reply(worker, &r, BRK_STATUS_OK, "p", 1);
                continue;
            }
            uint64_t corr;
            brk_status_t status = BRK_STATUS_OK;
            zframe_t *body = NULL;
            assert_int_equal(support_recv_one(f->client, &corr, &status, &body), 0);
            zframe_destroy(&body);
            if (status == BRK_STATUS_OK)
                rc = 0;
            else
                zclock_sleep(10);
            break;
        }
    }
    zpoller_destroy(&poller);
    return rc;
}

static void test_missing_service_answered_promptly(void **state)
{
    fixture_t *f = *state;
    assert_int_equal(brk_client_send(f->client, "dialer:404", 77, "x", 1), 0);
    uint64_t corr;
    brk_status_t status = BRK_STATUS_OK;
    zframe_t *body = NULL;
    assert_int_equal(s_reply(f->client, &corr, &status, &body), 0);
    assert_int_equal(corr, 77);
    assert_int_equal(status, BRK_STATUS_NO_SERVICE);
    zframe_destroy(&body);
}

/* Serves one request on `worker` by echoing the body with a prefix. */
static void s_serve_one(brk_worker_t *worker, const char *prefix)
{
    zpoller_t *poller = zpoller_new(brk_worker_sock(worker), NULL);
    assert_ptr_equal(zpoller_wait(poller, 5000), brk_worker_sock(worker));
    zpoller_destroy(&poller);
    brk_request_t *request = brk_worker_recv(worker);
    assert_non_null(request);
    char reply[256];
    int n = snprintf(reply, sizeof(reply), "%s:%.*s", prefix, (int)zframe_size(request->body), (char *)zframe_data(request->body));
    assert_int_equal(brk_worker_reply(worker, &request, BRK_STATUS_OK, reply, (size_t)n), 0);
    assert_null(request);
}

static void test_round_trip_and_round_robin(void **state)
{
    fixture_t *f = *state;
    brk_worker_t *a = brk_worker_new(f->back, "store", "store.0");
    brk_worker_t *b = brk_worker_new(f->back, "store", "store.1");
    assert_non_null(a);
    assert_non_null(b);

    /* Wait until both are registered: the broker alternates, so two consecutive successes
     * served by different members prove both are in the ring. */
    zpoller_t *poller = zpoller_new(brk_worker_sock(a), brk_worker_sock(b), f->client, NULL);
    int served_a = 0, served_b = 0;
    for (int i = 0; i < 400 && (served_a == 0 || served_b == 0); i++) {
        assert_int_equal(brk_client_send(f->client, "store", (uint64_t)i, "ping", 4), 0);
        /* Serve whatever reaches a worker until this request's reply (or NO_SERVICE) is back. */
        for (;;) {
            void *which = zpoller_wait(poller, 5000);
            assert_non_null(which);
            if (which == brk_worker_sock(a)) {
                brk_request_t *r = brk_worker_recv(a);
                brk_worker_reply(a, &r, BRK_STATUS_OK, "a", 1);
                served_a++;
                continue;
            }
            if (which == brk_worker_sock(b)) {
                brk_request_t *r = brk_worker_recv(b);
                brk_worker_reply(b, &r, BRK_STATUS_OK, "b", 1);
                served_b++;
                continue;
            }
            uint64_t corr;
            brk_status_t status = BRK_STATUS_OK;
            zframe_t *body = NULL;
            assert_int_equal(support_recv_one(f->client, &corr, &status, &body), 0);
            assert_int_equal(corr, (uint64_t)i);
            zframe_destroy(&body);
            if (status == BRK_STATUS_NO_SERVICE)
                zclock_sleep(10);
            break;
        }
    }
    zpoller_destroy(&poller);
    assert_true(served_a > 0 && served_b > 0);

    /* Now strictly alternating, with bodies and correlation ids intact. */
    char seen[3] = {0};
    for (int i = 0; i < 2; i++) {
        assert_int_equal(brk_client_send(f->client, "store", 1000 + (uint64_t)i, "hello", 5), 0);
        zpoller_t *p = zpoller_new(brk_worker_sock(a), brk_worker_sock(b), NULL);
        void *which = zpoller_wait(p, 5000);
        zpoller_destroy(&p);
        s_serve_one(which == brk_worker_sock(a) ? a : b, which == brk_worker_sock(a) ? "a" : "b");
        uint64_t corr;
        brk_status_t status = BRK_STATUS_OK;
        zframe_t *body = NULL;
        assert_int_equal(s_reply(f->client, &corr, &status, &body), 0);
        assert_int_equal(corr, 1000 + (uint64_t)i);
        assert_int_equal(status, BRK_STATUS_OK);
        assert_int_equal(zframe_size(body), 7);
        assert_memory_equal(zframe_data(body) + 1, ":hello", 6);
        seen[i] = (char)zframe_data(body)[0];
        zframe_destroy(&body);
    }
    assert_true(seen[0] != seen[1]);
    brk_worker_destroy(&a);
    brk_worker_destroy(&b);
}

static void test_malformed_frames_get_errors(void **state)
{
    fixture_t *f = *state;
    zsock_t *raw = zsock_new_dealer(f->front);
    uint64_t corr;
    brk_status_t status = BRK_STATUS_OK;
    zframe_t *body = NULL;

    zstr_send(raw, "store"); /* one frame only */
    assert_int_equal(s_reply(raw, &corr, &status, &body), 0);
    assert_int_equal(status, BRK_STATUS_BAD_FRAME);
    zframe_destroy(&body);

    zstr_sendx(raw, "store", "abc", "body", NULL); /* short correlation id */
    assert_int_equal(s_reply(raw, &corr, &status, &body), 0);
    assert_int_equal(status, BRK_STATUS_BAD_FRAME);
    zframe_destroy(&body);

    zmsg_t *msg = zmsg_new(); /* service name with control characters */
    zmsg_addmem(msg, "st\nre", 5);
    zmsg_addmem(msg, "12345678", 8);
    zmsg_addmem(msg, "x", 1);
    zmsg_send(&msg, raw);
    assert_int_equal(s_reply(raw, &corr, &status, &body), 0);
    assert_int_equal(status, BRK_STATUS_BAD_FRAME);
    zframe_destroy(&body);
    zsock_destroy(&raw);

    /* Garbage on the actor side: bad heartbeats and unknown commands are dropped. */
    zsock_t *fake = zsock_new(ZMQ_DEALER);
    zsock_set_identity(fake, "store.9");
    assert_int_equal(zsock_connect(fake, "%s", f->back), 0);
    zstr_sendx(fake, "HB", "not msgpack", NULL);
    zstr_sendx(fake, "HELLO", NULL);
    zstr_sendx(fake, "REP", "x", NULL);
    msg = zmsg_new();
    zmsg_addstr(msg, "HB");
    zmsg_addmem(msg, "\xdf\xff\xff\xff\xff", 5);
    zmsg_send(&msg, fake);
    srand(7);
    for (int i = 0; i < 500; i++) {
        msg = zmsg_new();
        int frames = 1 + rand() % 5;
        for (int k = 0; k < frames; k++) {
            char junk[16];
            for (size_t j = 0; j < sizeof(junk); j++)
                junk[j] = (char)rand();
            zmsg_addmem(msg, junk, (size_t)(rand() % 16));
        }
        zmsg_send(&msg, fake);
    }
    zsock_destroy(&fake);

    /* Still routing: the garbage registered nobody. */
    assert_int_equal(brk_client_send(f->client, "store", 5, "x", 1), 0);
    assert_int_equal(s_reply(f->client, &corr, &status, &body), 0);
    assert_int_equal(status, BRK_STATUS_NO_SERVICE);
    zframe_destroy(&body);
    zstr_send(f->broker, "STATS");
    char *stats = zstr_recv(f->broker);
    assert_non_null(strstr(stats, "bad_frames="));
    assert_null(strstr(stats, "bad_frames=0 "));
    zstr_free(&stats);
}

static void test_restarted_actor(void **state)
{
    fixture_t *f = *state;
    /* The first incarnation registers and serves. */
    brk_worker_t *first = brk_worker_new(f->back, "dialer:7", "dialer:7");
    assert_int_equal(brk_client_send(f->client, "dialer:7", 1, "one", 3), 0);
    uint64_t corr;
    brk_status_t status = BRK_STATUS_OK;
    zframe_t *body = NULL;
    for (;;) {
        zpoller_t *p = zpoller_new(brk_worker_sock(first), f->client, NULL);
        void *which = zpoller_wait(p, 5000);
        zpoller_destroy(&p);
        assert_non_null(which);
        if (which == brk_worker_sock(first)) {
            s_serve_one(first, "first");
            continue;
        }
        assert_int_equal(support_recv_one(f->client, &corr, &status, &body), 0);
        zframe_destroy(&body);
        if (status == BRK_STATUS_OK)
            break;
        zclock_sleep(10);
        assert_int_equal(brk_client_send(f->client, "dialer:7", 1, "one", 3), 0);
    }

    /* A second incarnation connects with the same identity while the first is still connected
     * (a crashed process whose socket the kernel has not torn down yet): it takes over. */
    brk_worker_t *second = brk_worker_new(f->back, "dialer:7", "dialer:7");
    zclock_sleep(200);
    assert_int_equal(brk_client_send(f->client, "dialer:7", 2, "two", 3), 0);
    s_serve_one(second, "second");
    assert_int_equal(s_reply(f->client, &corr, &status, &body), 0);
    assert_int_equal(status, BRK_STATUS_OK);
    assert_int_equal(zframe_size(body), 10);
    assert_memory_equal(zframe_data(body), "second:two", 10);
    zframe_destroy(&body);
    brk_worker_destroy(&first);
    brk_worker_destroy(&second);
}

static void test_silent_actor_expires(void **state)
{
    fixture_t *f = *state;
    /* A raw socket that heartbeats once and then stays connected but silent, like a hung process. */
    zsock_t *hung = zsock_new(ZMQ_DEALER);
    zsock_set_identity(hung, "fanout");
    assert_int_equal(zsock_connect(hung, "%s", f->back), 0);
    msg_actor_heartbeat_t hb = {.service = msg_str("fanout"), .pid = 1};
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    assert_int_equal(msg_actor_heartbeat_encode(&hb, &sb), 0);
    zmsg_t *msg = zmsg_new();
    zmsg_addstr(msg, "HB");
    zmsg_addmem(msg, sb.data, sb.size);
    zmsg_send(&msg, hung);
    msgpack_sbuffer_destroy(&sb);

    /* Registered: requests reach the hung actor (and get no reply, which is its problem). */
    int registered = 0;
    for (int i = 0; i < 300 && !registered; i++) {
        assert_int_equal(brk_client_send(f->client, "fanout", 1, "x", 1), 0);
        zpoller_t *p = zpoller_new(hung, f->client, NULL);
        void *which = zpoller_wait(p, 20);
        zpoller_destroy(&p);
        if (which == hung) {
            zmsg_t *req = zmsg_recv(hung);
            zmsg_destroy(&req);
            registered = 1;
        } else if (which == f->client) {
            uint64_t corr;
            brk_status_t status = BRK_STATUS_OK;
            zframe_t *body = NULL;
            support_recv_one(f->client, &corr, &status, &body);
            zframe_destroy(&body);
        }
    }
    assert_true(registered);

    /* After the expiry time without heartbeats it is dropped and requests fail fast again. */
    brk_status_t status = BRK_STATUS_OK;
    for (int i = 0; i < 100 && status != BRK_STATUS_NO_SERVICE; i++) {
        zclock_sleep(50);
        assert_int_equal(brk_client_send(f->client, "fanout", 2, "x", 1), 0);
        zpoller_t *p = zpoller_new(hung, f->client, NULL);
        void *which = zpoller_wait(p, 1000);
        zpoller_destroy(&p);
        if (which == hung) {
            zmsg_t *req = zmsg_recv(hung);
            zmsg_destroy(&req);
            continue;
        }
        uint64_t corr;
        zframe_t *body = NULL;
        assert_int_equal(support_recv_one(f->client, &corr, &status, &body), 0);
        zframe_destroy(&body);
    }
    assert_int_equal(status, BRK_STATUS_NO_SERVICE);
    zsock_destroy(&hung);
}

static void s_count_reply(void *arg, uint64_t corr, brk_status_t status, const void *body, size_t size)
{
    int *seen = arg;
    assert_int_equal(status, BRK_STATUS_OK);
    assert_true(corr >= 1 && corr <= 3);
    assert_int_equal(size, 1);
    assert_int_equal(*(const char *)body, 'w');
    seen[corr]++;
}

static void s_count_refusal(void *arg, uint64_t corr, brk_status_t status, const void *body, size_t size)
{
    assert_int_equal(status, BRK_STATUS_BAD_FRAME);
    assert_true(corr == 0x4141414141414141ULL || corr == 0x4242424242424242ULL);
    (*(int *)arg)++;
}

static void test_batches_travel_whole(void **state)
{
    fixture_t *f = *state;
    brk_worker_t *worker = brk_worker_new(f->back, "store", "store.0");
    assert_int_equal(s_wait_registered(f, "store", worker), 0);

    brk_batch_t *batch = brk_batch_new();
    for (uint64_t corr = 1; corr <= 3; corr++)
        assert_int_equal(brk_batch_add(batch, "store", corr, "req", 3), 0);
    errno = 0;
    assert_int_equal(brk_batch_add(batch, "fanout", 4, "x", 1), -1);
    assert_int_equal(errno, EXDEV);
    assert_int_equal(brk_batch_send(batch, f->client), 0);
    assert_int_equal(brk_batch_count(batch), 0);

    /* The worker hands the batch out one request at a time and holds replies back until the
     * last one, so all three come back to the requester in a single message. */
    zpoller_t *p = zpoller_new(brk_worker_sock(worker), NULL);
    assert_ptr_equal(zpoller_wait(p, 5000), brk_worker_sock(worker));
    zpoller_destroy(&p);
    brk_request_t *request;
    int handed = 0;
    while ((request = brk_worker_recv(worker)) != NULL) {
        handed++;
        assert_int_equal(brk_worker_reply(worker, &request, BRK_STATUS_OK, "w", 1), 0);
    }
    assert_int_equal(handed, 3);
    p = zpoller_new(f->client, NULL);
    assert_ptr_equal(zpoller_wait(p, 5000), f->client);
    zpoller_destroy(&p);
    int seen[4] = {0};
    assert_int_equal(brk_client_recv(f->client, s_count_reply, seen), 3);
    assert_true(seen[1] == 1 && seen[2] == 1 && seen[3] == 1);

    /* A batch with a body missing is refused as a whole, each id answered. */
    zmsg_t *msg = zmsg_new();
    zmsg_addstr(msg, "store");
    zmsg_addmem(msg, "AAAAAAAA", 8);
    zmsg_addmem(msg, "body", 4);
    zmsg_addmem(msg, "BBBBBBBB", 8);
    zmsg_send(&msg, f->client);
    p = zpoller_new(f->client, NULL);
    assert_ptr_equal(zpoller_wait(p, 5000), f->client);
    zpoller_destroy(&p);
    int refused = 0;
    assert_int_equal(brk_client_recv(f->client, s_count_refusal, &refused), 2);
    assert_int_equal(refused, 2);
    brk_batch_destroy(&batch);
    brk_worker_destroy(&worker);
}

int main(void)
{
    zsys_init();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_missing_service_answered_promptly, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_round_trip_and_round_robin, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_malformed_frames_get_errors, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_restarted_actor, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_silent_actor_expires, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_batches_travel_whole, s_setup, s_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
