/*
 * The dialer actor: one loop that owns a running campaign. Everything it does happens in that
 * loop, in this order each turn: fire the timers that are due on the campaign clock, keep the
 * number queue stocked, write the call log (at once while dials wait for it, else every
 * DIALER_FLUSH_MS), publish stats every second, then sleep until the next of those or until the
 * broker, the database (notifications) or $TERM wakes it.
 *
 * The campaign clock is CLOCK_MONOTONIC since the start, in microseconds, times --sim-speed: the
 * engine, the simulated carrier and the simulated callers all run on it, so a demo or a test can
 * run a shift many times faster than real time. Database times (claims, attempts) stay real.
 */
#include "actors/dialer/dialer.h"

#include <czmq.h>
#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "actors/api/api.h"
#include "actors/dialer/call_log.h"
#include "actors/dialer/dbq.h"
#include "actors/dialer/desk.h"
#include "actors/dialer/engine.h"
#include "actors/dialer/feed.h"
#include "actors/dialer/numbers.h"
#include "actors/dialer/scenario.h"
#include "actors/dialer/sim_callers.h"
#include "actors/dialer/sim_carrier.h"
#include "actors/store/db.h"
#include "broker/worker.h"
#include "common/log.h"
#include "common/signals.h"
#include "shm/stats.h"

#define DIALER_BATCH         500
#define DIALER_FLUSH_MS      100
#define DIALER_STATS_MS      1000
#define DIALER_MAX_WAIT_MS   1000
#define DIALER_DB_GIVE_UP_MS 30000 /* the log cannot be written this long: exit, restart, recover */
#define DIALER_FEED_ASK_MS   1000  /* while numbers run low, the feed is asked at most this often */
#define DIALER_FEED_PAGE     100

typedef struct {
    const impact_config_t *config;
    int64_t campaign_id;
    int exit_code; /* set by the actor before it returns */
} dialer_args_t;

typedef struct {
    int64_t account_id;
    dial_mode_t mode;
    char status[16];
    char from[32];
    bool detect_machine;
    char voicemail_uri[40]; /* "message:<id>", empty for none */
    char abandon_uri[40];
    char caller_voicemail_uri[40]; /* what a caller's drop_voicemail plays, empty for none */
    int simulated_callers;         /* -1: as many as the scenario has agents */
    int recycle_hours;
    int max_attempts;
    double abandon_cap;
    int abandon_window_days;
    int max_lines_per_caller;
    bool call_back_after_voicemail;
} campaign_t;

/* How late bridges are ordered, in real microseconds (see s_on_event). */
typedef struct {
    uint64_t count, max_us;
    uint32_t buckets[SHM_LATENCY_BUCKETS];
} latency_t;

/* Live answers and abandons of the campaign before this process started: for the windowed rates,
 * and in the campaign's own window for the pacing budget. Shares of a person behind answers ended
 * as machines count in both (engine_event_t.person_share), so they are fractional. */
typedef struct {
    double live_24h, abandoned_24h, live_30d, abandoned_30d, live_window, abandoned_window;
} history_t;

typedef struct {
    dialer_args_t *args;
    zsock_t *pipe;
    PGconn *conn;
    dbq_t *db; /* the loop's statements to conn, sent without waiting */
    brk_worker_t *worker;
    campaign_t campaign;
    history_t history;
    latency_t bridge_latency;
    scenario_t scenario;
    timerq_t *timers;
    sim_carrier_t *sim;
    engine_t *engine;
    sim_callers_t *callers;
    desk_t *desk; /* the people working the campaign */
    numbers_t *numbers;
    feed_t *feed; /* the call's phone_numbers_url, when the campaign runs a call that has one */
    int64_t next_feed_ask_ms;
    bool feed_asked;     /* a page was asked for and has not come: one page in flight at most */
    feed_page_t unsaved; /* a page whose numbers the database has not taken yet (count 0: none) */
    call_log_t *log;
    shm_region_t *shm;
    uint32_t slot;
    bool have_slot;
    int64_t mono_start; /* CLOCK_MONOTONIC us at the campaign clock's zero */
    int64_t wall_start; /* CLOCK_REALTIME us at the same instant */
    double speed;
    int64_t next_flush_ms, next_stats_ms, failing_since_ms;
    bool paused, stopping;
    bool told_dry; /* campaign.numbers_needed was published for this dry spell */
} dialer_t;

static int64_t s_clock_us(clockid_t clock)
{
    struct timespec ts;
    clock_gettime(clock, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

/* The campaign clock now. */
static int64_t s_now(const dialer_t *self)
{
    return (int64_t)((double)(s_clock_us(CLOCK_MONOTONIC) - self->mono_start) * self->speed);
}

/* The wall-clock time of campaign time `at_us`. */
static int64_t s_wall(const dialer_t *self, int64_t at_us)
{
    return self->wall_start + (int64_t)((double)at_us / self->speed);
}

/* ---- the campaign ---- */

/* 1 with the campaign loaded, 0 when it is gone, archived or stopped, -1 on a database error. */
static int s_load_campaign(dialer_t *self)
{
    char id[24];
    snprintf(id, sizeof(id), "%" PRId64, self->args->campaign_id);
    const char *params[] = {id};
    PGresult *res = PQexecParams(
        self->conn,
        "SELECT account_id, dialer_type, status, coalesce(caller_id, ''), answering_machine_detection, "
        "CASE WHEN drop_voicemail_automatically THEN voicemail_message_id END, abandonment_message_id, recycle_rate_hours, "
        "max_attempts, acceptable_abandon_rate::float8, max_lines_per_caller, call_back_after_voicemail, "
        "abandon_rate_window_days, CASE WHEN callers_can_drop_voicemail THEN voicemail_message_id END, "
        "coalesce(simulated_callers, -1) "
        "FROM campaigns WHERE id = $1 AND archived_at IS NULL",
        1, NULL, params, NULL, NULL, 0);
    if (PQresultStatus(res) != PGRES_TUPLES_OK) {
        log_error("reading the campaign: %s", PQresultErrorMessage(res));
        PQclear(res);
        return -1;
    }
    int found = PQntuples(res) == 1 && strcmp(PQgetvalue(res, 0, 2), "stopped") != 0;
    if (found) {
        campaign_t *c = &self->campaign;
        c->account_id = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
        const char *type = PQgetvalue(res, 0, 1);
        c->mode = strcmp(type, "Preview") == 0 ? DIAL_PREVIEW : strcmp(type, "Power") == 0 ? DIAL_POWER : DIAL_PREDICTIVE;
        snprintf(c->status, sizeof(c->status), "%s", PQgetvalue(res, 0, 2));
        snprintf(c->from, sizeof(c->from), "%s", PQgetvalue(res, 0, 3));
        c->detect_machine = PQgetvalue(res, 0, 4)[0] == 't';
        c->voicemail_uri[0] = c->abandon_uri[0] = '\0';
        if (!PQgetisnull(res, 0, 5))
            snprintf(c->voicemail_uri, sizeof(c->voicemail_uri), "message:%s", PQgetvalue(res, 0, 5));
        if (!PQgetisnull(res, 0, 6))
            snprintf(c->abandon_uri, sizeof(c->abandon_uri), "message:%s", PQgetvalue(res, 0, 6));
        c->recycle_hours = atoi(PQgetvalue(res, 0, 7));
        c->max_attempts = atoi(PQgetvalue(res, 0, 8));
        c->abandon_cap = strtod(PQgetvalue(res, 0, 9), NULL);
        c->max_lines_per_caller = atoi(PQgetvalue(res, 0, 10));
        c->call_back_after_voicemail = PQgetvalue(res, 0, 11)[0] == 't';
        c->abandon_window_days = atoi(PQgetvalue(res, 0, 12));
        c->caller_voicemail_uri[0] = '\0';
        if (!PQgetisnull(res, 0, 13))
            snprintf(c->caller_voicemail_uri, sizeof(c->caller_voicemail_uri), "message:%s", PQgetvalue(res, 0, 13));
        c->simulated_callers = atoi(PQgetvalue(res, 0, 14));
    }
    PQclear(res);
    return found;
}

static int s_load_history(dialer_t *self)
{
    char id[24], days[16];
    snprintf(id, sizeof(id), "%" PRId64, self->args->campaign_id);
    snprintf(days, sizeof(days), "%d", self->campaign.abandon_window_days);
    const char *params[] = {id, days};
    /* A live answer counts 1, an answer ended as a machine its person_share; an abandon counts 1,
     * and that person_share again. */
    PGresult *res =
        PQexecParams(self->conn,
                     "WITH a AS (SELECT dialed_at, CASE WHEN outcome IN ('talked', 'abandoned') OR abandoned THEN 1 "
                     "ELSE person_share::float8 END AS live, CASE WHEN abandoned THEN 1 ELSE person_share::float8 END AS lost "
                     "FROM call_attempts WHERE campaign_id = $1 AND dialed_at > now() - interval '30 days' "
                     "AND (outcome IN ('talked', 'abandoned') OR abandoned OR person_share > 0)) "
                     "SELECT coalesce(sum(live) FILTER (WHERE dialed_at > now() - interval '24 hours'), 0), "
                     "coalesce(sum(lost) FILTER (WHERE dialed_at > now() - interval '24 hours'), 0), "
                     "coalesce(sum(live), 0), coalesce(sum(lost), 0), "
                     "coalesce(sum(live) FILTER (WHERE dialed_at > now() - make_interval(days => $2::int)), 0), "
                     "coalesce(sum(lost) FILTER (WHERE dialed_at > now() - make_interval(days => $2::int)), 0) "
                     "FROM a",
                     2, NULL, params, NULL, NULL, 0);
    int rc = -1;
    if (PQresultStatus(res) == PGRES_TUPLES_OK && PQntuples(res) == 1) {
        self->history = (history_t){.live_24h = strtod(PQgetvalue(res, 0, 0), NULL),
                                    .abandoned_24h = strtod(PQgetvalue(res, 0, 1), NULL),
                                    .live_30d = strtod(PQgetvalue(res, 0, 2), NULL),
                                    .abandoned_30d = strtod(PQgetvalue(res, 0, 3), NULL),
                                    .live_window = strtod(PQgetvalue(res, 0, 4), NULL),
                                    .abandoned_window = strtod(PQgetvalue(res, 0, 5), NULL)};
        rc = 0;
    } else {
        log_error("reading the campaign's history: %s", PQresultErrorMessage(res));
    }
    PQclear(res);
    return rc;
}

/* ---- engine wiring ---- */

static int s_next_number(void *ctx, int64_t now_us, engine_number_t *number)
{
    dialer_t *self = ctx;
    /* Past the reserved block a call id could collide with another dialer's: stop dialing. The
     * process restarts with a fresh block long before a campaign gets near it. */
    if (engine_counts(self->engine)->dials >= CALL_LOG_ID_BLOCK)
        return -1;
    return numbers_take(self->numbers, number);
}

static void s_return_number(void *ctx, const engine_number_t *number)
{
    dialer_t *self = ctx;
    numbers_give_back(self->numbers, number);
}

/*
 * The answer-to-bridge decision time: from the instant the event that made the bridge possible
 * happened (a live answer or a caller freeing up, i.e. the due time of the timer delivering it)
 * to now, when the bridge has been ordered. It includes what the engine computed and every delay
 * of this process's loop (asleep past the due time, busy with the database, preempted by other
 * processes): the latency a person who just said "hello" actually waits for.
 */
static void s_measure_bridge(dialer_t *self, const engine_event_t *event)
{
    int64_t cause = timerq_firing_due(self->timers);
    if (cause > event->at_us)
        cause = event->at_us;
    double late = (double)(s_now(self) - cause) / self->speed;
    uint64_t us = late > 0 ? (uint64_t)late : 0;
    latency_t *l = &self->bridge_latency;
    l->count++;
    l->buckets[shm_latency_bucket(us)]++;
    if (us > l->max_us)
        l->max_us = us;
}

static void s_on_event(void *ctx, const engine_event_t *event)
{
    dialer_t *self = ctx;
    if (event->type == ENGINE_CALL_BRIDGED)
        s_measure_bridge(self, event);
    call_log_event(self->log, event, s_wall(self, event->at_us));
    if (sim_callers_own(self->callers, event->caller_id))
        sim_callers_event(self->callers, event);
    else if (event->caller_id)
        desk_event(self->desk, event);
}

static int64_t s_wall_of(void *ctx, int64_t at_us)
{
    return s_wall(ctx, at_us);
}

/* The carrier exists before the engine it reports to. */
static void s_to_engine(void *ctx, const carrier_event_t *event)
{
    dialer_t *self = ctx;
    if (self->engine)
        engine_carrier_event(self->engine, event);
}

/* The campaign's simulated callers: its own setting, else the simulation scenario's agents. */
static uint32_t s_simulated_callers(const dialer_t *self)
{
    int n = self->campaign.simulated_callers;
    return n >= 0 ? (uint32_t)n : self->scenario.agents;
}

static int s_start_engine(dialer_t *self, uint64_t first_call_id)
{
    const campaign_t *c = &self->campaign;
    engine_config_t config;
    engine_config_defaults(&config);
    config.mode = c->mode;
    config.from = c->from;
    config.detect_machine = c->detect_machine;
    config.voicemail_uri = c->voicemail_uri[0] ? c->voicemail_uri : NULL;
    config.abandon_uri = c->abandon_uri[0] ? c->abandon_uri : NULL;
    config.abandon_cap = c->abandon_cap;
    config.max_lines_per_caller = c->max_lines_per_caller;
    config.calls_per_second = self->scenario.cps;
    config.machine_false_positive_rate = c->detect_machine ? self->scenario.amd_fp : 0;
    self->timers = timerq_new();
    int64_t now = s_now(self);
    self->sim = self->timers ? sim_carrier_new(&self->scenario, self->timers, now, s_to_engine, self) : NULL;
    if (self->sim == NULL)
        return -1;
    call_log_config_t log_config = {.account_id = c->account_id,
                                    .campaign_id = self->args->campaign_id,
                                    .from = c->from,
                                    .recycle_hours = c->recycle_hours,
                                    .max_attempts = c->max_attempts,
                                    .call_back_after_voicemail = c->call_back_after_voicemail};
    self->log = call_log_new(self->db, &log_config);
    self->numbers = numbers_new(self->conn, self->db, self->args->campaign_id, DIALER_BATCH);
    self->callers = sim_callers_new(&self->scenario, s_simulated_callers(self), self->timers, self->sim);
    if (self->log == NULL || self->numbers == NULL || self->callers == NULL)
        return -1;
    carrier_t carrier = call_log_carrier(self->log, sim_carrier_carrier(self->sim), s_to_engine, self);
    pacing_predictive_options_t pacing = {.history_live = self->history.live_window,
                                          .history_abandoned = self->history.abandoned_window};
    pacing_policy_t *policy = c->mode == DIAL_PREDICTIVE ? pacing_predictive_new(&pacing) : NULL;
    engine_hooks_t hooks = {.next_number = s_next_number, .return_number = s_return_number, .on_event = s_on_event, .ctx = self};
    self->engine = engine_new(&config, carrier, self->timers, policy, &hooks, first_call_id, now);
    if (self->engine == NULL)
        return -1;
    desk_config_t desk = {.account_id = c->account_id,
                          .campaign_id = self->args->campaign_id,
                          .mode = c->mode,
                          .voicemail_uri = c->caller_voicemail_uri[0] ? c->caller_voicemail_uri : NULL,
                          .recycle_hours = c->recycle_hours,
                          .max_attempts = c->max_attempts,
                          .conn = self->conn,
                          .db = self->db,
                          .log = self->log,
                          .engine = self->engine,
                          .wall = s_wall_of,
                          .wall_ctx = self};
    if ((self->desk = desk_new(&desk)) == NULL)
        return -1;
    self->paused = strcmp(c->status, "paused") == 0;
    engine_pause(self->engine, self->paused, now);
    desk_set_paused(self->desk, self->paused);
    /* Stock the queue before the callers join, so their first pacing decision finds numbers. */
    numbers_sync(self->numbers);
    dbq_drain(self->db, now);
    sim_callers_join(self->callers, self->engine, now);
    return 0;
}

/* ---- stats ---- */

static double s_rate(double part, double whole)
{
    return whole > 0 ? part / whole : 0.0;
}

static void s_publish(dialer_t *self)
{
    if (!self->have_slot)
        return;
    const engine_counts_t *counts = engine_counts(self->engine);
    /* live answers: claims put through or abandoned (machines put through excluded), and the
     * shares of a person behind answers ended as machines, each also an abandon */
    double live = (double)(counts->talked + counts->abandoned) + counts->person_shares;
    double abandoned = (double)counts->abandoned + counts->person_shares;
    shm_campaign_stats_t stats = {
        .updated_unix_ms = s_clock_us(CLOCK_REALTIME) / 1000,
        .callers_on_hold = counts->ready,
        .callers_on_call = counts->on_call,
        .callers_wrap_up = counts->wrap_up,
        .lines_ringing = counts->unresolved,
        .dials = counts->dials,
        .answered_human = counts->claims,
        .answered_machine = counts->machines,
        .abandoned = counts->abandoned,
        .answer_rate = s_rate((double)counts->claims, (double)counts->dials),
        .abandon_rate_24h = s_rate(self->history.abandoned_24h + abandoned, self->history.live_24h + live),
        .abandon_rate_30d = s_rate(self->history.abandoned_30d + abandoned, self->history.live_30d + live),
        .dial_ratio = counts->ready ? (double)counts->unresolved / counts->ready : (double)counts->unresolved,
        .account_id = self->campaign.account_id,
        .callers_preview = counts->preview,
        .paused = self->paused,
        .pacing_threshold = self->campaign.mode == DIAL_PREDICTIVE ? pacing_predictive_threshold(engine_policy(self->engine)) : 0.0,
        .talked = counts->talked,
        .bridge_decisions = self->bridge_latency.count,
        .bridge_decision_max_us = self->bridge_latency.max_us,
    };
    memcpy(stats.bridge_decision_buckets, self->bridge_latency.buckets, sizeof stats.bridge_decision_buckets);
    if (shm_campaign_write(self->shm, self->slot, &stats) != 0) {
        log_warn("campaign slot lost (%s); stats no longer published", strerror(errno));
        self->have_slot = false;
    }
}

static void s_claim_slot(dialer_t *self)
{
    self->shm = shm_region_open(self->args->config->shm_name, true);
    if (self->shm == NULL) {
        log_warn("no shared memory %s (%s): stats not published", self->args->config->shm_name, strerror(errno));
        return;
    }
    if (shm_campaign_claim(self->shm, self->args->campaign_id, getpid(), &self->slot) != 0) {
        log_warn("cannot claim a campaign slot (%s): stats not published", strerror(errno));
        return;
    }
    self->have_slot = true;
}

/* ---- broker requests ---- */

/* The front end sends this dialer its campaign's desks: /v1/campaigns/{id}/caller_sessions/... */
static void s_handle(void *ctx, const api_request_t *req, api_reply_t *reply)
{
    dialer_t *self = ctx;
    char prefix[64];
    int n = snprintf(prefix, sizeof(prefix), "/v1/campaigns/%" PRId64 "/caller_sessions/", self->args->campaign_id);
    if (n <= 0 || (size_t)n >= sizeof(prefix) || strncmp(req->path, prefix, (size_t)n) != 0) {
        api_reply_problem(reply, req, 404, "not-found", "Not found", "No such resource.");
        return;
    }
    desk_serve(self->desk, req, reply, req->path + n, s_now(self));
}

/* ---- notifications ---- */

static void s_on_status(dialer_t *self, const char *status)
{
    int64_t now = s_now(self);
    if (strcmp(status, "stopped") == 0) {
        log_info("campaign stopped");
        self->stopping = true;
    } else if (strcmp(status, "paused") == 0 || strcmp(status, "running") == 0) {
        self->paused = strcmp(status, "paused") == 0;
        log_info("campaign %s", status);
        engine_pause(self->engine, self->paused, now);
        desk_set_paused(self->desk, self->paused);
    }
}

static int s_withdraw(void *ctx, uint64_t number_id, int64_t now_us)
{
    dialer_t *self = ctx;
    return engine_withdraw_number(self->engine, number_id, now_us);
}

/* Blocked numbers are never dialed: the queue and what Preview callers are looking at are checked
 * again whenever numbers are blocked. */
static void s_recheck_blocked(dialer_t *self)
{
    size_t previewing = engine_counts(self->engine)->preview;
    uint64_t *held = previewing ? calloc(previewing, sizeof(*held)) : NULL;
    size_t n = held ? engine_preview_numbers(self->engine, held, previewing) : 0;
    if (previewing && held == NULL)
        log_warn("out of memory: the numbers Preview callers look at are not re-checked");
    numbers_recheck_blocked(self->numbers, held, n, s_withdraw, self);
    free(held);
}

static void s_notifications(dialer_t *self)
{
    PGnotify *n;
    while ((n = PQnotifies(self->conn)) != NULL) {
        char *end = NULL;
        long long id = strtoll(n->extra, &end, 10);
        if (strcmp(n->relname, "campaign_status") == 0 && id == self->args->campaign_id && end && *end == ':')
            s_on_status(self, end + 1);
        else if (strcmp(n->relname, "blocked_numbers") == 0 && id == self->campaign.account_id && end && *end == '\0')
            s_recheck_blocked(self);
        else if (strcmp(n->relname, "caller_sessions") == 0 && id == self->args->campaign_id && end && *end == ':')
            desk_session_ended(self->desk, strtoll(end + 1, NULL, 10), s_now(self));
        PQfreemem(n);
    }
}

static int s_listen(dialer_t *self)
{
    PGresult *res = PQexec(self->conn, "LISTEN campaign_status; LISTEN blocked_numbers; LISTEN caller_sessions");
    int rc = PQresultStatus(res) == PGRES_COMMAND_OK ? 0 : -1;
    if (rc != 0)
        log_error("LISTEN: %s", PQresultErrorMessage(res));
    PQclear(res);
    return rc;
}

/* ---- the loop ---- */

/* A lost connection is re-established (and its LISTENs renewed) where a query found it lost. */
static void s_reconnect(dialer_t *self)
{
    if (PQstatus(self->conn) == CONNECTION_OK)
        return;
    dbq_abort(self->db, s_now(self));
    PQreset(self->conn);
    if (PQstatus(self->conn) == CONNECTION_OK)
        s_listen(self);
}

static int s_flush(dialer_t *self)
{
    int64_t now_ms = zclock_mono();
    self->next_flush_ms = now_ms + DIALER_FLUSH_MS;
    if (call_log_flush(self->log) == 0) {
        self->failing_since_ms = 0;
        return 0;
    }
    if (self->failing_since_ms == 0)
        self->failing_since_ms = now_ms;
    s_reconnect(self);
    self->next_flush_ms = now_ms + 1000;
    return -1;
}

/* Milliseconds the loop may sleep. */
static int s_wait_ms(dialer_t *self, int heartbeat_ms)
{
    if (call_log_urgent(self->log) && self->failing_since_ms == 0)
        return 0;
    int64_t now_ms = zclock_mono(), wait = DIALER_MAX_WAIT_MS;
    int64_t next = timerq_next(self->timers);
    if (next != TIMERQ_NEVER) {
        double real_us = (double)(next - s_now(self)) / self->speed;
        int64_t ms = real_us <= 0 ? 0 : (int64_t)(real_us / 1000.0); /* the rest: s_sleep_until_due */
        if (ms < wait)
            wait = ms;
    }
    if (call_log_dirty(self->log) > 0 && self->next_flush_ms - now_ms < wait)
        wait = self->next_flush_ms - now_ms;
    if (self->next_stats_ms - now_ms < wait)
        wait = self->next_stats_ms - now_ms;
    if (heartbeat_ms < wait)
        wait = heartbeat_ms;
    return wait < 0 ? 0 : (int)wait;
}

/* A campaign that runs a call with a phone_numbers_url takes more numbers from it whenever its
 * own run low: each page is added to the campaign's numbers (de-duplicated, blocked ones
 * marked) and claimed like any other, so the feed needs no path of its own to the engine. */
static int s_open_feed(dialer_t *self)
{
    char campaign[24];
    snprintf(campaign, sizeof(campaign), "%" PRId64, self->args->campaign_id);
    const char *params[] = {campaign};
    PGresult *res =
        PQexecParams(self->conn, "SELECT phone_numbers_url FROM calls WHERE campaign_id = $1 AND phone_numbers_url IS NOT NULL", 1,
                     NULL, params, NULL, NULL, 0);
    int rc = PQresultStatus(res) == PGRES_TUPLES_OK ? 0 : -1;
    if (rc == 0 && PQntuples(res) == 1) {
        feed_options_t options = {.page_size = DIALER_FEED_PAGE, .allow_private = self->args->config->allow_private_urls};
        self->feed = feed_new(PQgetvalue(res, 0, 0), &options);
        if (self->feed == NULL)
            log_warn("the call's phone_numbers_url cannot be used; dialing the numbers given only");
    } else if (rc != 0)
        log_error("reading the call's feed: %s", PQresultErrorMessage(res));
    PQclear(res);
    return rc;
}

/* Adds the page kept in `unsaved`; a page the database refused stays there and is tried again
 * on the next turn, so no number a customer sent is lost to a database hiccup. */
static void s_save_page(dialer_t *self)
{
    int added = numbers_add(self->numbers, self->campaign.account_id, (const char(*)[PHONE_E164_SIZE])self->unsaved.numbers,
                            self->unsaved.count, s_now(self));
    if (added < 0) {
        s_reconnect(self);
        return;
    }
    log_info("phone_numbers_url page %d: %zu numbers (%d new, %zu invalid)", self->unsaved.page, self->unsaved.count, added,
             self->unsaved.invalid);
    feed_page_free(&self->unsaved);
}

static void s_feed_page(dialer_t *self)
{
    feed_page_t page;
    if (feed_receive(self->feed, &page) != 0)
        return;
    self->feed_asked = false;
    if (page.result == FEED_FAILED)
        log_warn("phone_numbers_url page %d: %s; asking again in %" PRId64 " ms", page.page, page.error, page.retry_in_ms);
    if (page.result != FEED_NUMBERS) {
        feed_page_free(&page);
        return;
    }
    self->unsaved = page;
    s_save_page(self);
}

/*
 * The poller sleeps in whole milliseconds, so s_wait_ms rounds down and the last fraction of a
 * millisecond before a timer is slept here: a live answer is then handled within microseconds of
 * its time instead of up to a millisecond late, at the cost of a short sleep no other event can
 * interrupt (under a millisecond, the same delay the rounding up it replaces would add).
 */
static void s_sleep_until_due(dialer_t *self)
{
    int64_t next = timerq_next(self->timers);
    if (next == TIMERQ_NEVER)
        return;
    double real_us = (double)(next - s_now(self)) / self->speed;
    if (real_us > 0 && real_us < 1000) {
        struct timespec pause = {.tv_sec = 0, .tv_nsec = (long)(real_us * 1000.0) + 1000};
        nanosleep(&pause, NULL);
    }
}

static void s_on_numbers_needed(void *ctx, const PGresult *res, int64_t now_us)
{
    if (res == NULL || PQresultStatus(res) != PGRES_TUPLES_OK)
        log_warn("publishing campaign.numbers_needed: %s", res ? PQresultErrorMessage(res) : "connection lost");
}

/* Callers are waiting and nothing may be dialed: the customer is told once per dry spell, so they
 * can upload more numbers (or know that the rest wait for calling hours or a recycle delay). */
static void s_tell_if_dry(dialer_t *self)
{
    bool dry = numbers_dry(self->numbers);
    if (!dry) {
        self->told_dry = false;
        return;
    }
    if (self->told_dry || self->paused || engine_counts(self->engine)->callers == 0)
        return;
    char campaign[24];
    snprintf(campaign, sizeof(campaign), "%" PRId64, self->args->campaign_id);
    const char *params[] = {campaign};
    if (dbq_send(self->db, "SELECT campaign_publish_numbers_needed($1)", 1, params, s_on_numbers_needed, self) == 0) {
        self->told_dry = true;
        log_info("no number to dial: campaign.numbers_needed published");
    }
}

static void s_turn(dialer_t *self)
{
    s_sleep_until_due(self);
    timerq_run_due(self->timers, s_now(self));
    if (numbers_sync(self->numbers) < 0)
        s_reconnect(self);
    s_tell_if_dry(self);
    int64_t now_ms = zclock_mono();
    if (self->unsaved.count > 0)
        s_save_page(self);
    else if (self->feed && !self->feed_asked && !self->paused && numbers_queued(self->numbers) * 2 < DIALER_BATCH &&
             now_ms >= self->next_feed_ask_ms) {
        self->next_feed_ask_ms = now_ms + DIALER_FEED_ASK_MS;
        self->feed_asked = feed_request(self->feed) == 0;
    }
    if ((call_log_urgent(self->log) && self->failing_since_ms == 0) ||
        (call_log_dirty(self->log) > 0 && now_ms >= self->next_flush_ms))
        s_flush(self);
    desk_service(self->desk, s_now(self));
    dbq_service(self->db, s_now(self));
    if (now_ms >= self->next_stats_ms) {
        self->next_stats_ms = now_ms + DIALER_STATS_MS;
        s_publish(self);
    }
}

static void s_run(dialer_t *self)
{
    zsock_t *sock = brk_worker_sock(self->worker);
    while (!self->stopping) {
        s_turn(self);
        if (self->failing_since_ms && zclock_mono() - self->failing_since_ms > DIALER_DB_GIVE_UP_MS) {
            log_error("the call log could not be written for %d s; restarting", DIALER_DB_GIVE_UP_MS / 1000);
            self->args->exit_code = 1;
            return;
        }
        int heartbeat = brk_worker_tick(self->worker);
        zmq_pollitem_t items[] = {{zsock_resolve(self->pipe), 0, ZMQ_POLLIN, 0},
                                  {zsock_resolve(sock), 0, ZMQ_POLLIN, 0},
                                  {self->feed ? zsock_resolve(feed_socket(self->feed)) : NULL, -1, ZMQ_POLLIN, 0},
                                  {NULL, PQsocket(self->conn), ZMQ_POLLIN, 0}};
        /* an absent feed is an item nobody signals: a socket pointer that is NULL and no fd */
        int nitems = PQsocket(self->conn) >= 0 ? 4 : 3;
        if (!self->feed)
            items[2] = (zmq_pollitem_t){NULL, -1, 0, 0};
        if (zmq_poll(items, nitems, brk_worker_busy(self->worker) ? 0 : s_wait_ms(self, heartbeat)) < 0 && errno != EINTR)
            return;
        if (items[0].revents & ZMQ_POLLIN)
            return; /* $TERM */
        brk_request_t *request;
        for (int budget = 64; budget > 0 && (request = brk_worker_recv(self->worker)) != NULL; budget--)
            api_serve(self->worker, &request, s_handle, self);
        if (self->feed && (items[2].revents & ZMQ_POLLIN))
            s_feed_page(self);
        if (nitems == 4 && (items[3].revents & ZMQ_POLLIN)) {
            PQconsumeInput(self->conn);
            dbq_service(self->db, s_now(self));
        }
        s_notifications(self);
    }
}

/* A clean stop: calls still in flight died with the simulated carrier, so they end as canceled
 * (and their numbers retry after the recycle delay); claimed numbers go back. */
static void s_wind_down(dialer_t *self)
{
    if (self->engine == NULL)
        return;
    int64_t now = s_now(self);
    engine_pause(self->engine, true, now);
    /* callers leaving give back the numbers they were previewing */
    sim_callers_leave(self->callers, now);
    desk_leave_all(self->desk, now);
    int ended = call_log_end_all(self->log, OUTCOME_CANCELED, s_wall(self, now));
    int flushed = call_log_flush_all(self->log, now);
    desk_service(self->desk, now); /* surveys, now that their calls are written */
    if (flushed != 0 || dbq_drain(self->db, now) != 0 || numbers_release(self->numbers, now) != 0)
        log_warn("stopping with unwritten state; the next start recovers it");
    else if (ended > 0)
        log_info("%d calls in flight ended as canceled", ended);
    s_publish(self);
}

static void s_destroy(dialer_t *self)
{
    feed_page_free(&self->unsaved);
    feed_destroy(&self->feed);
    desk_destroy(&self->desk);
    engine_destroy(&self->engine);
    sim_callers_destroy(&self->callers);
    sim_carrier_destroy(&self->sim);
    call_log_destroy(&self->log);
    numbers_destroy(&self->numbers);
    dbq_destroy(&self->db);
    timerq_destroy(&self->timers);
    if (self->have_slot)
        shm_campaign_release(self->shm, self->slot);
    shm_region_destroy(&self->shm);
    brk_worker_destroy(&self->worker);
    PQfinish(self->conn);
}

/* 1 ready to run, 0 nothing to run (campaign stopped), -1 failure. */
static int s_setup(dialer_t *self)
{
    const impact_config_t *config = self->args->config;
    char err[512], back[128], service[48];
    self->speed = config->sim_speed > 0 ? config->sim_speed : 1.0;
    scenario_defaults(&self->scenario);
    if (config->scenario[0] && (scenario_load(&self->scenario, config->scenario, err, sizeof(err)) != 0 ||
                                scenario_check(&self->scenario, err, sizeof(err)) != 0)) {
        log_error("scenario: %s", err);
        return -1;
    }
    if ((self->conn = db_connect(config->database_url, err, sizeof(err))) == NULL) {
        log_error("%s", err);
        return -1;
    }
    if ((self->db = dbq_new(self->conn)) == NULL)
        return -1;
    if (s_listen(self) != 0)
        return -1;
    int loaded = s_load_campaign(self);
    if (loaded <= 0)
        return loaded;
    int closed = call_log_recover(self->conn, self->args->campaign_id);
    if (closed < 0 || numbers_recover(self->conn, self->args->campaign_id) < 0)
        return -1;
    if (closed > 0)
        log_info("%d attempts left open by the previous dialer ended as timed out", closed);
    uint64_t first_call_id;
    if (s_load_history(self) != 0 || call_log_reserve_ids(self->conn, &first_call_id) != 0)
        return -1;
    snprintf(service, sizeof(service), DIALER_SERVICE_PREFIX "%" PRId64, self->args->campaign_id);
    if (config_endpoint(config, BRK_BACK_ENDPOINT, back, sizeof(back)) != 0 ||
        (self->worker = brk_worker_new(back, service, service)) == NULL) {
        log_error("cannot connect to the broker");
        return -1;
    }
    s_claim_slot(self);
    self->mono_start = s_clock_us(CLOCK_MONOTONIC);
    self->wall_start = s_clock_us(CLOCK_REALTIME);
    if (s_start_engine(self, first_call_id) != 0 || s_open_feed(self) != 0) {
        log_error("cannot start the campaign engine");
        return -1;
    }
    log_info("dialing: %s campaign, %u simulated callers, speed %g, call ids from %" PRIu64,
             self->campaign.mode == DIAL_PREVIEW ? "Preview"
             : self->campaign.mode == DIAL_POWER ? "Power"
                                                 : "Predictive",
             s_simulated_callers(self), self->speed, first_call_id);
    return 1;
}

static void s_dialer_actor(zsock_t *pipe, void *arg)
{
    dialer_t self = {.args = arg, .pipe = pipe};
    self.args->exit_code = 1;
    int ready = s_setup(&self);
    zsock_signal(pipe, 0);
    if (ready > 0) {
        self.args->exit_code = 0;
        s_run(&self);
        s_wind_down(&self);
    } else if (ready == 0) {
        log_info("campaign is not running; nothing to do");
        self.args->exit_code = 0;
    }
    s_destroy(&self);
}

int dialer_main(const impact_config_t *config, int64_t campaign_id)
{
    char role[40];
    snprintf(role, sizeof(role), DIALER_SERVICE_PREFIX "%" PRId64, campaign_id);
    log_init(role);
    signals_install();
    dialer_args_t args = {.config = config, .campaign_id = campaign_id, .exit_code = 1};
    zactor_t *actor = zactor_new(s_dialer_actor, &args);
    if (actor == NULL)
        return 1;
    /* The actor ends on its own when the campaign stops (0) or it fails (1); a stop signal ends
     * it through $TERM, which is a clean stop too. */
    zpoller_t *poller = zpoller_new(actor, NULL);
    bool signalled = false;
    while (!(signalled = signals_stop_requested()))
        if (zpoller_wait(poller, 100) == actor)
            break;
    zpoller_destroy(&poller);
    zactor_destroy(&actor);
    return signalled ? 0 : args.exit_code;
}
