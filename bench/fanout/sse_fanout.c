/*
 * sse_fanout: the load of the event fan-out benchmark, the same for impactd and for nginx+nchan.
 *
 * One process opens N Server-Sent Events subscriptions (HTTP/1.1, chunked or not) and reads them
 * all on one epoll thread; a second thread publishes events at a given rate, one "cell" per rate,
 * either into PostgreSQL with event_publish() (impactd: the producer's commit is the publish) or
 * as HTTP POSTs to an nchan publisher location. Every published event carries the wall-clock
 * microsecond it was published at ("pub_us") and its cell; a subscriber's receive time minus
 * pub_us is the publish-to-receive latency, recorded in a log-linear histogram per cell.
 *
 * A cell is kept up when every subscription received every event published in it, none was told
 * to resume (an overflow) and none closed, and the p99 latency stayed under a second (later than
 * that, a server is falling behind the rate even if it catches up once publishing stops). The sweep stops at the first cell that
 * was not: its subscriptions are gone, so higher rates would measure nothing.
 *
 *   sse_fanout --port P --path PATH [--header "Name: value"]... --connections N
 *              --rates R1[:S1],R2[:S2],... --seconds S [--pad BYTES] [--watch-pid PID]...
 *              (--pg CONNINFO --account ID | --publish-path PATH)
 *
 * A rate runs for its own S seconds when given ("10:30"), else for --seconds. Prints JSON lines:
 * one {"connected"...} when all subscriptions are open, then one per cell.
 * --watch-pid adds the CPU (cores) and resident memory of those processes over each cell. Events
 * with a "created_at" (impactd's, numbered by its sequencer) also split the latency there.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <libpq-fe.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <semaphore.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define CONNECTIONS_MAX 60000
#define CELLS_MAX       32
#define HEADERS_MAX     8
#define WATCH_MAX       64
#define HEAD_MAX        16384
#define LINE_MAX_BYTES  8192
#define PAD_MAX         65536
#define OPENING_AT_ONCE 256
#define DRAIN_SECONDS   10.0
#define CONNECT_SECONDS 120.0
#define SETTLE_SECONDS  2.0 /* after the last subscription opens: impactd's streams first catch up from the database */
#define HIST_BUCKETS    2048
#define TICK_SECONDS    0.01
#define BEHIND_MS       1000.0 /* a p99 later than this is falling behind, not keeping up */

typedef enum { CONN_CONNECTING, CONN_HEAD, CONN_BODY, CONN_DEAD } conn_state_t;
typedef enum { CHUNK_SIZE, CHUNK_EXT, CHUNK_DATA, CHUNK_DATA_END } chunk_state_t;

typedef struct {
    int fd;
    conn_state_t state;
    int chunked;
    chunk_state_t chunk_state;
    size_t chunk_left;
    char *head;
    size_t head_len;
    char *line;
    size_t line_len;
    int line_truncated;
    int event_is_overflow;
    int64_t event_pub_us, event_cell, event_created_us;
    int overflowed;
    uint32_t received[CELLS_MAX];
} conn_t;

typedef struct {
    uint64_t buckets[HIST_BUCKETS];
    uint64_t count, max;
} hist_t;

static struct {
    const char *host;
    int port;
    const char *path;
    const char *headers[HEADERS_MAX];
    int num_headers;
    int connections;
    double rates[CELLS_MAX];
    double cell_seconds[CELLS_MAX]; /* a rate's own length ("R:S"), else --seconds */
    int num_rates;
    double seconds;
    int pad;
    const char *pg;
    int64_t account;
    const char *publish_path;
    int watch[WATCH_MAX];
    int num_watch;
} opt = {.host = "127.0.0.1", .pad = 200};

static conn_t *s_conns;
static hist_t s_hist[CELLS_MAX];
static hist_t s_hist_to_created[CELLS_MAX], s_hist_from_created[CELLS_MAX]; /* impactd's events: split at numbering */
static int s_open_conns, s_dead_conns, s_heads_ok;
static atomic_int s_cell = -1;                 /* the cell being published or drained */
static atomic_llong s_published[CELLS_MAX];    /* events published per cell, final once s_cell_done_publishing */
static atomic_int s_cell_done_publishing = -1; /* the last cell whose publishing finished */
static atomic_int s_stop;
static double s_cell_seconds[CELLS_MAX];
static sem_t s_cell_measured;

static double s_mono(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int64_t s_wall_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

/* ---- histogram: exact below 128 us, then 64 sub-buckets per power of two (under 1.6% error) ---- */

static int s_bucket(uint64_t v)
{
    if (v < 128)
        return (int)v;
    int e = 63 - __builtin_clzll(v) - 6;
    int b = 128 + (e - 1) * 64 + (int)((v >> e) - 64);
    return b < HIST_BUCKETS ? b : HIST_BUCKETS - 1;
}

static uint64_t s_bucket_value(int b)
{
    if (b < 128)
        return (uint64_t)b;
    int e = (b - 128) / 64 + 1;
    return ((uint64_t)((b - 128) % 64 + 64) << e) + ((1ULL << e) >> 1);
}

static void s_hist_add(hist_t *h, uint64_t v)
{
    h->buckets[s_bucket(v)]++;
    h->count++;
    if (v > h->max)
        h->max = v;
}

static double s_hist_ms(const hist_t *h, double q)
{
    if (h->count == 0)
        return -1;
    uint64_t rank = (uint64_t)(q * (double)(h->count - 1)) + 1, seen = 0;
    for (int b = 0; b < HIST_BUCKETS; b++) {
        seen += h->buckets[b];
        if (seen >= rank)
            return (double)s_bucket_value(b) / 1000.0;
    }
    return (double)h->max / 1000.0;
}

/* ---- the watched processes' CPU and memory ---------------------------------------------------- */

static double s_watched_cpu_seconds(void)
{
    double total = 0;
    long ticks = sysconf(_SC_CLK_TCK);
    for (int i = 0; i < opt.num_watch; i++) {
        char path[64], buf[1024];
        snprintf(path, sizeof(path), "/proc/%d/stat", opt.watch[i]);
        FILE *f = fopen(path, "r");
        if (f == NULL)
            continue;
        size_t n = fread(buf, 1, sizeof(buf) - 1, f);
        fclose(f);
        buf[n] = '\0';
        /* the command may hold spaces and parentheses: fields count from the last ')' */
        char *p = strrchr(buf, ')');
        unsigned long utime = 0, stime = 0;
        if (p && sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu", &utime, &stime) == 2)
            total += (double)(utime + stime) / (double)ticks;
    }
    return total;
}

static double s_watched_rss_mib(void)
{
    double kib = 0;
    for (int i = 0; i < opt.num_watch; i++) {
        char path[64], line[256];
        snprintf(path, sizeof(path), "/proc/%d/status", opt.watch[i]);
        FILE *f = fopen(path, "r");
        if (f == NULL)
            continue;
        while (fgets(line, sizeof(line), f))
            if (strncmp(line, "VmRSS:", 6) == 0)
                kib += strtod(line + 6, NULL);
        fclose(f);
    }
    return kib / 1024.0;
}

static double s_own_cpu_seconds(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 + (double)ru.ru_stime.tv_sec +
           (double)ru.ru_stime.tv_usec / 1e6;
}

/* ---- subscriptions ---------------------------------------------------------------------------- */

static int s_tcp_connect(int nonblocking)
{
    int fd = socket(AF_INET, SOCK_STREAM | (nonblocking ? SOCK_NONBLOCK : 0), 0);
    if (fd < 0)
        return -1;
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons((uint16_t)opt.port)};
    inet_pton(AF_INET, opt.host, &addr.sin_addr);
    if (connect(fd, (struct sockaddr *)&addr, sizeof(addr)) != 0 && errno != EINPROGRESS) {
        close(fd);
        return -1;
    }
    return fd;
}

static void s_conn_kill(int ep, conn_t *c)
{
    if (c->state == CONN_DEAD)
        return;
    if (c->state == CONN_BODY)
        s_open_conns--;
    epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL);
    close(c->fd);
    c->state = CONN_DEAD;
    s_dead_conns++;
}

static int s_conn_open(int ep, conn_t *c, uint32_t index)
{
    c->fd = s_tcp_connect(1);
    if (c->fd < 0)
        return -1;
    c->state = CONN_CONNECTING;
    struct epoll_event ev = {.events = EPOLLOUT | EPOLLIN | EPOLLRDHUP, .data.u32 = index};
    return epoll_ctl(ep, EPOLL_CTL_ADD, c->fd, &ev);
}

static int s_conn_send_request(conn_t *c)
{
    char req[4096];
    int n =
        snprintf(req, sizeof(req), "GET %s HTTP/1.1\r\nHost: %s:%d\r\nAccept: text/event-stream\r\n", opt.path, opt.host, opt.port);
    for (int i = 0; i < opt.num_headers; i++)
        n += snprintf(req + n, sizeof(req) - (size_t)n, "%s\r\n", opt.headers[i]);
    n += snprintf(req + n, sizeof(req) - (size_t)n, "\r\n");
    if (n >= (int)sizeof(req))
        return -1;
    /* a fresh socket's send buffer takes a small request whole */
    return send(c->fd, req, (size_t)n, MSG_NOSIGNAL) == n ? 0 : -1;
}

static int64_t s_json_int(const char *line, size_t len, const char *key)
{
    const char *p = memmem(line, len, key, strlen(key));
    if (p == NULL)
        return -1;
    p += strlen(key);
    while (p < line + len && (*p == ' ' || *p == ':'))
        p++;
    return p < line + len ? strtoll(p, NULL, 10) : -1;
}

/* The microsecond of an event document's "created_at" (its numbering), or -1 without one. */
static int64_t s_created_us(const char *line, size_t len)
{
    const char *key = "\"created_at\"";
    const char *p = memmem(line, len, key, strlen(key));
    if (p == NULL)
        return -1;
    p = memchr(p + strlen(key), '"', (size_t)(line + len - p - strlen(key)));
    if (p == NULL || line + len - p < 21)
        return -1;
    struct tm tm = {0};
    const char *rest = strptime(p + 1, "%Y-%m-%dT%H:%M:%S", &tm);
    if (rest == NULL)
        return -1;
    int64_t us = (int64_t)timegm(&tm) * 1000000;
    if (*rest == '.') {
        int64_t scale = 100000;
        for (rest++; *rest >= '0' && *rest <= '9'; rest++, scale /= 10)
            us += (*rest - '0') * scale;
    }
    return us;
}

static void s_event_dispatch(conn_t *c)
{
    if (c->event_is_overflow) {
        c->overflowed = 1;
    } else if (c->event_pub_us > 0 && c->event_cell >= 0 && c->event_cell < CELLS_MAX) {
        int64_t now = s_wall_us(), latency = now - c->event_pub_us;
        s_hist_add(&s_hist[c->event_cell], latency > 0 ? (uint64_t)latency : 0);
        if (c->event_created_us > 0) {
            int64_t to = c->event_created_us - c->event_pub_us, from = now - c->event_created_us;
            s_hist_add(&s_hist_to_created[c->event_cell], to > 0 ? (uint64_t)to : 0);
            s_hist_add(&s_hist_from_created[c->event_cell], from > 0 ? (uint64_t)from : 0);
        }
        c->received[c->event_cell]++;
    }
    c->event_is_overflow = 0;
    c->event_pub_us = c->event_cell = c->event_created_us = -1;
}

static void s_line(conn_t *c)
{
    const char *l = c->line;
    size_t n = c->line_len;
    if (n > 0 && l[n - 1] == '\r')
        n--;
    if (n == 0) {
        s_event_dispatch(c);
    } else if (n >= 6 && memcmp(l, "event:", 6) == 0) {
        c->event_is_overflow = memmem(l, n, "overflow", 8) != NULL;
    } else if (n >= 5 && memcmp(l, "data:", 5) == 0) {
        c->event_pub_us = s_json_int(l, n, "\"pub_us\"");
        c->event_cell = s_json_int(l, n, "\"cell\"");
        c->event_created_us = s_created_us(l, n);
    }
}

static void s_sse_bytes(conn_t *c, const char *p, size_t n)
{
    while (n > 0) {
        const char *nl = memchr(p, '\n', n);
        size_t take = nl ? (size_t)(nl - p) : n;
        size_t room = LINE_MAX_BYTES - c->line_len;
        size_t copy = take < room ? take : room;
        memcpy(c->line + c->line_len, p, copy);
        c->line_len += copy;
        if (nl == NULL)
            return;
        s_line(c);
        c->line_len = 0;
        p += take + 1;
        n -= take + 1;
    }
}

/* Body bytes: through the chunked decoder when the response is chunked. Answers -1 at its end. */
static int s_body_bytes(conn_t *c, const char *p, size_t n)
{
    if (!c->chunked) {
        s_sse_bytes(c, p, n);
        return 0;
    }
    while (n > 0) {
        switch (c->chunk_state) {
        case CHUNK_SIZE:
        case CHUNK_EXT:
            if (*p == '\n') {
                if (c->chunk_left == 0)
                    return -1;
                c->chunk_state = CHUNK_DATA;
            } else if (*p == ';' || *p == '\r' || c->chunk_state == CHUNK_EXT) {
                c->chunk_state = CHUNK_EXT;
            } else {
                int digit = *p >= '0' && *p <= '9'                     ? *p - '0'
                            : (*p | 0x20) >= 'a' && (*p | 0x20) <= 'f' ? (*p | 0x20) - 'a' + 10
                                                                       : -1;
                if (digit < 0 || c->chunk_left > (SIZE_MAX >> 4))
                    return -1;
                c->chunk_left = c->chunk_left * 16 + (size_t)digit;
            }
            p++;
            n--;
            break;
        case CHUNK_DATA: {
            size_t take = n < c->chunk_left ? n : c->chunk_left;
            s_sse_bytes(c, p, take);
            c->chunk_left -= take;
            p += take;
            n -= take;
            if (c->chunk_left == 0)
                c->chunk_state = CHUNK_DATA_END;
            break;
        }
        case CHUNK_DATA_END:
            if (*p == '\n') {
                c->chunk_state = CHUNK_SIZE;
                c->chunk_left = 0;
            }
            p++;
            n--;
            break;
        }
    }
    return 0;
}

static int s_head_bytes(int ep, conn_t *c, const char *p, size_t n, size_t *used)
{
    size_t room = HEAD_MAX - c->head_len;
    size_t copy = n < room ? n : room;
    memcpy(c->head + c->head_len, p, copy);
    size_t before = c->head_len;
    c->head_len += copy;
    char *end = memmem(c->head, c->head_len, "\r\n\r\n", 4);
    if (end == NULL) {
        *used = copy;
        return c->head_len == HEAD_MAX ? -1 : 0;
    }
    *end = '\0';
    *used = (size_t)(end + 4 - c->head) - before;
    if (strncmp(c->head, "HTTP/1.1 200", 12) != 0 && strncmp(c->head, "HTTP/1.0 200", 12) != 0) {
        fprintf(stderr, "sse_fanout: %.200s\n", c->head);
        return -1;
    }
    c->chunked = strcasestr(c->head, "transfer-encoding: chunked") != NULL;
    free(c->head);
    c->head = NULL;
    c->state = CONN_BODY;
    c->line = malloc(LINE_MAX_BYTES);
    if (c->line == NULL)
        return -1;
    c->event_pub_us = c->event_cell = c->event_created_us = -1;
    s_open_conns++;
    s_heads_ok++;
    struct epoll_event ev = {.events = EPOLLIN | EPOLLRDHUP, .data.u32 = (uint32_t)(c - s_conns)};
    epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &ev);
    return 0;
}

static void s_conn_ready(int ep, conn_t *c, uint32_t events)
{
    static char buf[256 * 1024];
    if (c->state == CONN_CONNECTING) {
        int err = 0;
        socklen_t len = sizeof(err);
        if ((events & (EPOLLERR | EPOLLHUP)) || getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0 || err != 0 ||
            (c->head = malloc(HEAD_MAX)) == NULL || s_conn_send_request(c) != 0) {
            s_conn_kill(ep, c);
            return;
        }
        c->head_len = 0;
        c->state = CONN_HEAD;
        struct epoll_event ev = {.events = EPOLLIN | EPOLLRDHUP, .data.u32 = (uint32_t)(c - s_conns)};
        epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &ev);
        return;
    }
    for (;;) {
        ssize_t n = recv(c->fd, buf, sizeof(buf), 0);
        if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR)) {
            s_conn_kill(ep, c);
            return;
        }
        if (n < 0)
            return;
        size_t off = 0;
        if (c->state == CONN_HEAD) {
            size_t used;
            if (s_head_bytes(ep, c, buf, (size_t)n, &used) != 0) {
                s_conn_kill(ep, c);
                return;
            }
            off = used;
        }
        if (c->state == CONN_BODY && s_body_bytes(c, buf + off, (size_t)n - off) != 0) {
            s_conn_kill(ep, c);
            return;
        }
        if ((size_t)n < sizeof(buf))
            return;
    }
}

/* ---- publishing ------------------------------------------------------------------------------- */

typedef struct {
    PGconn *pg;
    int fd;
    char *pad;
} publisher_t;

static int s_publish_pg(publisher_t *p, int cell, int count)
{
    char account[24], cellv[16], countv[16];
    snprintf(account, sizeof(account), "%" PRId64, opt.account);
    snprintf(cellv, sizeof(cellv), "%d", cell);
    snprintf(countv, sizeof(countv), "%d", count);
    const char *values[] = {account, cellv, p->pad, countv};
    PGresult *res = PQexecPrepared(p->pg, "publish", 4, values, NULL, NULL, 0);
    int ok = PQresultStatus(res) == PGRES_TUPLES_OK;
    if (!ok)
        fprintf(stderr, "sse_fanout: publish: %s", PQerrorMessage(p->pg));
    PQclear(res);
    return ok ? 0 : -1;
}

/* `count` POSTs written back to back on one connection, then their `count` answers read. */
static int s_publish_http(publisher_t *p, int cell, int count)
{
    static char out[1 << 22], in[1 << 16];
    size_t len = 0;
    for (int i = 0; i < count; i++) {
        char body[PAD_MAX + 128];
        int b = snprintf(body, sizeof(body), "{\"pub_us\": %" PRId64 ", \"cell\": %d, \"pad\": \"%s\"}", s_wall_us(), cell, p->pad);
        int h = snprintf(out + len, sizeof(out) - len,
                         "POST %s HTTP/1.1\r\nHost: %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s",
                         opt.publish_path, opt.host, b, body);
        if (h < 0 || (size_t)h >= sizeof(out) - len)
            return -1;
        len += (size_t)h;
    }
    for (size_t sent = 0; sent < len;) {
        ssize_t n = send(p->fd, out + sent, len - sent, MSG_NOSIGNAL);
        if (n <= 0)
            return -1;
        sent += (size_t)n;
    }
    /* answers: count heads, each with a Content-Length body */
    size_t have = 0;
    for (int answered = 0; answered < count;) {
        char *end = memmem(in, have, "\r\n\r\n", 4);
        if (end != NULL) {
            *end = '\0';
            if (strncmp(in, "HTTP/1.1 20", 11) != 0) {
                fprintf(stderr, "sse_fanout: publish: %.200s\n", in);
                return -1;
            }
            const char *cl = strcasestr(in, "content-length:");
            size_t body = cl ? strtoul(cl + 15, NULL, 10) : 0, whole = (size_t)(end + 4 - in) + body;
            if (have >= whole) {
                memmove(in, in + whole, have - whole);
                have -= whole;
                answered++;
                continue;
            }
            *end = '\r';
        }
        if (have == sizeof(in))
            return -1;
        ssize_t n = recv(p->fd, in + have, sizeof(in) - have, 0);
        if (n <= 0)
            return -1;
        have += (size_t)n;
    }
    return 0;
}

static int s_publisher_init(publisher_t *p)
{
    p->pad = malloc((size_t)opt.pad + 1);
    if (p->pad == NULL)
        return -1;
    memset(p->pad, 'x', (size_t)opt.pad);
    p->pad[opt.pad] = '\0';
    if (opt.pg) {
        p->pg = PQconnectdb(opt.pg);
        if (PQstatus(p->pg) != CONNECTION_OK) {
            fprintf(stderr, "sse_fanout: %s", PQerrorMessage(p->pg));
            return -1;
        }
        /* one statement, one transaction, `count` events: the way producers batch (the dialer's
         * group commit); pub_us is taken per row before the commit, so the commit is measured */
        PGresult *res =
            PQprepare(p->pg, "publish",
                      "SELECT count(*) FROM (SELECT event_publish($1::bigint, NULL, NULL, 'list.import_completed', now(), "
                      "jsonb_build_object('pub_us', (extract(epoch FROM clock_timestamp()) * 1000000)::bigint, "
                      "'cell', $2::int, 'pad', $3::text)) FROM generate_series(1, $4::int)) published",
                      4, NULL);
        int ok = PQresultStatus(res) == PGRES_COMMAND_OK;
        PQclear(res);
        return ok ? 0 : -1;
    }
    p->fd = s_tcp_connect(0);
    return p->fd < 0 ? -1 : 0;
}

static void *s_publisher(void *arg)
{
    (void)arg;
    publisher_t p = {.fd = -1};
    if (s_publisher_init(&p) != 0) {
        atomic_store(&s_stop, 1);
        goto Done;
    }
    for (int cell = 0; cell < opt.num_rates && !atomic_load(&s_stop); cell++) {
        double rate = opt.rates[cell];
        double interval = 1.0 / rate > TICK_SECONDS ? 1.0 / rate : TICK_SECONDS;
        long long due_total = (long long)(rate * opt.cell_seconds[cell] + 0.5), published = 0;
        atomic_store(&s_cell, cell);
        double start = s_mono();
        struct timespec next;
        clock_gettime(CLOCK_MONOTONIC, &next);
        while (published < due_total && !atomic_load(&s_stop)) {
            /* what is due by now, so a slow publish is caught up rather than lost */
            long long due = (long long)((s_mono() - start) * rate) + 1;
            if (due > due_total)
                due = due_total;
            int count = (int)(due - published);
            if (count > 0) {
                if ((opt.pg ? s_publish_pg(&p, cell, count) : s_publish_http(&p, cell, count)) != 0) {
                    atomic_store(&s_stop, 1);
                    break;
                }
                published += count;
                atomic_store(&s_published[cell], published);
            }
            long long ns = next.tv_nsec + (long long)(interval * 1e9);
            next.tv_sec += ns / 1000000000;
            next.tv_nsec = ns % 1000000000;
            clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &next, NULL);
        }
        s_cell_seconds[cell] = s_mono() - start;
        atomic_store(&s_cell_done_publishing, cell);
        sem_wait(&s_cell_measured);
    }
Done:
    atomic_store(&s_stop, 1);
    if (p.pg)
        PQfinish(p.pg);
    if (p.fd >= 0)
        close(p.fd);
    free(p.pad);
    return NULL;
}

/* ---- the cells -------------------------------------------------------------------------------- */

typedef struct {
    double started, cpu0, own_cpu0;
} cell_clock_t;

/* Answers 1 when every live subscription has every event of the cell. */
static int s_cell_complete(int cell, long long published, int *complete_conns)
{
    int complete = 0;
    for (int i = 0; i < opt.connections; i++)
        complete += s_conns[i].state == CONN_BODY && !s_conns[i].overflowed && s_conns[i].received[cell] >= published;
    *complete_conns = complete;
    return complete == opt.connections;
}

static int s_cell_report(int cell, const cell_clock_t *clock, int drained)
{
    long long published = atomic_load(&s_published[cell]);
    int complete, overflows = 0;
    s_cell_complete(cell, published, &complete);
    for (int i = 0; i < opt.connections; i++)
        overflows += s_conns[i].overflowed;
    double wall = s_mono() - clock->started;
    const hist_t *h = &s_hist[cell];
    int kept_up = drained && complete == opt.connections && s_hist_ms(h, 0.99) < BEHIND_MS;
    printf("{\"cell\": %d, \"connections\": %d, \"rate\": %g, \"published\": %lld, \"publish_seconds\": %.3f, "
           "\"expected\": %lld, \"received\": %" PRIu64 ", \"complete_connections\": %d, \"overflows\": %d, \"closed\": %d, "
           "\"kept_up\": %s, \"deliveries_per_second\": %.1f, \"p50_ms\": %.3f, \"p99_ms\": %.3f, \"p999_ms\": %.3f, "
           "\"max_ms\": %.3f, \"server_cores\": %.3f, \"server_rss_mib\": %.1f, \"client_cores\": %.3f, "
           "\"to_numbered_p50_ms\": %.3f, \"to_numbered_p99_ms\": %.3f, \"numbered_to_receive_p50_ms\": %.3f, "
           "\"numbered_to_receive_p99_ms\": %.3f}\n",
           cell, opt.connections, opt.rates[cell], published, s_cell_seconds[cell], published * opt.connections, h->count, complete,
           overflows, s_dead_conns, kept_up ? "true" : "false",
           s_cell_seconds[cell] > 0 ? (double)h->count / s_cell_seconds[cell] : 0.0, s_hist_ms(h, 0.50), s_hist_ms(h, 0.99),
           s_hist_ms(h, 0.999), (double)h->max / 1000.0, (s_watched_cpu_seconds() - clock->cpu0) / wall, s_watched_rss_mib(),
           (s_own_cpu_seconds() - clock->own_cpu0) / wall, s_hist_ms(&s_hist_to_created[cell], 0.5),
           s_hist_ms(&s_hist_to_created[cell], 0.99), s_hist_ms(&s_hist_from_created[cell], 0.5),
           s_hist_ms(&s_hist_from_created[cell], 0.99));
    fflush(stdout);
    return kept_up;
}

static int s_run(int ep)
{
    struct epoll_event events[1024];
    int next_open = 0, opening = 0;
    double connect_start = s_mono();
    pthread_t publisher;
    int publishing = 0, cell = -1, last_reported = -1, drained_wait = 0;
    double drain_deadline = 0, settle_until = 0;
    cell_clock_t clock = {0};
    while (!(publishing && atomic_load(&s_stop) && cell < 0)) {
        /* open subscriptions a few hundred at a time: a burst of thousands overflows accept queues */
        opening = next_open - s_open_conns - s_dead_conns;
        while (next_open < opt.connections && opening < OPENING_AT_ONCE) {
            if (s_conn_open(ep, &s_conns[next_open], (uint32_t)next_open) != 0)
                s_conn_kill(ep, &s_conns[next_open]);
            next_open++;
            opening++;
        }
        if (!publishing && !settle_until && next_open == opt.connections && s_open_conns + s_dead_conns == opt.connections) {
            printf("{\"connected\": %d, \"failed\": %d, \"connect_seconds\": %.3f}\n", s_open_conns, s_dead_conns,
                   s_mono() - connect_start);
            fflush(stdout);
            if (s_dead_conns > 0)
                return -1;
            settle_until = s_mono() + SETTLE_SECONDS;
        }
        if (!publishing && settle_until && s_mono() >= settle_until) {
            if (pthread_create(&publisher, NULL, s_publisher, NULL) != 0)
                return -1;
            publishing = 1;
        }
        if (!publishing && !settle_until && s_mono() - connect_start > CONNECT_SECONDS) {
            fprintf(stderr, "sse_fanout: %d of %d subscriptions open after %.0f s\n", s_open_conns, opt.connections,
                    CONNECT_SECONDS);
            return -1;
        }
        int n = epoll_wait(ep, events, 1024, 5);
        for (int i = 0; i < n; i++)
            s_conn_ready(ep, &s_conns[events[i].data.u32], events[i].events);
        if (!publishing)
            continue;
        int now_cell = atomic_load(&s_cell);
        if (cell < 0 && now_cell > last_reported) {
            cell = now_cell;
            clock = (cell_clock_t){s_mono(), s_watched_cpu_seconds(), s_own_cpu_seconds()};
        }
        if (cell >= 0 && atomic_load(&s_cell_done_publishing) == cell) {
            if (!drained_wait) {
                drained_wait = 1;
                drain_deadline = s_mono() + DRAIN_SECONDS;
            }
            int complete;
            int done = s_cell_complete(cell, atomic_load(&s_published[cell]), &complete);
            if (done || s_mono() > drain_deadline || s_open_conns == 0) {
                if (!s_cell_report(cell, &clock, done))
                    atomic_store(&s_stop, 1);
                drained_wait = 0;
                last_reported = cell;
                cell = -1;
                sem_post(&s_cell_measured);
            }
        }
    }
    pthread_join(publisher, NULL);
    return 0;
}

/* ---- options ---------------------------------------------------------------------------------- */

static int s_usage(void)
{
    fprintf(stderr, "usage: sse_fanout --port P --path PATH [--header H]... --connections N --rates R1[:S1],... --seconds S\n"
                    "                  [--pad BYTES] [--watch-pid PID]... (--pg CONNINFO --account ID | --publish-path PATH)\n");
    return 2;
}

static int s_options(int argc, char **argv)
{
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (v == NULL)
            return -1;
        i++;
        if (strcmp(a, "--port") == 0)
            opt.port = atoi(v);
        else if (strcmp(a, "--path") == 0)
            opt.path = v;
        else if (strcmp(a, "--header") == 0 && opt.num_headers < HEADERS_MAX)
            opt.headers[opt.num_headers++] = v;
        else if (strcmp(a, "--connections") == 0)
            opt.connections = atoi(v);
        else if (strcmp(a, "--seconds") == 0)
            opt.seconds = atof(v);
        else if (strcmp(a, "--pad") == 0)
            opt.pad = atoi(v);
        else if (strcmp(a, "--pg") == 0)
            opt.pg = v;
        else if (strcmp(a, "--account") == 0)
            opt.account = atoll(v);
        else if (strcmp(a, "--publish-path") == 0)
            opt.publish_path = v;
        else if (strcmp(a, "--watch-pid") == 0 && opt.num_watch < WATCH_MAX)
            opt.watch[opt.num_watch++] = atoi(v);
        else if (strcmp(a, "--rates") == 0) {
            char *copy = strdup(v), *save = NULL;
            for (char *t = strtok_r(copy, ",", &save); t && opt.num_rates < CELLS_MAX; t = strtok_r(NULL, ",", &save)) {
                char *colon = strchr(t, ':');
                opt.cell_seconds[opt.num_rates] = colon ? atof(colon + 1) : 0;
                opt.rates[opt.num_rates++] = atof(t);
            }
            free(copy);
        } else
            return -1;
    }
    int ok = opt.port > 0 && opt.path && opt.connections > 0 && opt.connections <= CONNECTIONS_MAX && opt.num_rates > 0 &&
             opt.seconds > 0 && opt.pad >= 0 && opt.pad <= PAD_MAX && ((opt.pg && opt.account > 0) != (opt.publish_path != NULL));
    for (int i = 0; i < opt.num_rates; i++) {
        ok = ok && opt.rates[i] > 0 && opt.cell_seconds[i] >= 0;
        if (opt.cell_seconds[i] == 0)
            opt.cell_seconds[i] = opt.seconds;
    }
    return ok ? 0 : -1;
}

int main(int argc, char **argv)
{
    if (s_options(argc, argv) != 0)
        return s_usage();
    struct rlimit nofile;
    if (getrlimit(RLIMIT_NOFILE, &nofile) == 0) {
        nofile.rlim_cur = nofile.rlim_max;
        setrlimit(RLIMIT_NOFILE, &nofile);
        if (nofile.rlim_cur < (rlim_t)opt.connections + 64) {
            fprintf(stderr, "sse_fanout: %d subscriptions need more descriptors than the limit (%lu)\n", opt.connections,
                    (unsigned long)nofile.rlim_cur);
            return 1;
        }
    }
    s_conns = calloc((size_t)opt.connections, sizeof(*s_conns));
    int ep = epoll_create1(0);
    if (s_conns == NULL || ep < 0 || sem_init(&s_cell_measured, 0, 0) != 0)
        return 1;
    int rc = s_run(ep);
    for (int i = 0; i < opt.connections; i++) {
        if (s_conns[i].state != CONN_DEAD)
            close(s_conns[i].fd);
        free(s_conns[i].head);
        free(s_conns[i].line);
    }
    free(s_conns);
    close(ep);
    return rc == 0 ? 0 : 1;
}
