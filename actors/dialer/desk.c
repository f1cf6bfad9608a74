#include "actors/dialer/desk.h"

#include <inttypes.h>
#include <jansson.h>
#include <openssl/crypto.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "actors/api/caller_token.h"
#include "actors/dialer/idmap.h"
#include "actors/store/input.h"
#include "common/log.h"
#include "common/problem.h"

#define DESK_SWEEP_MS       5000 /* how often sessions not seen are looked for */
#define DESK_TOUCH_MS       5000 /* last_seen_at is written at most this often per session */
#define DESK_ANSWERS_MAX    200
#define DESK_NOTES_MAX      100
#define DESK_NOTE_BYTES_MAX 10000
#define DESK_RESULT_PARAMS  13
#define STRING_OF(x)        #x
#define STRINGIFY(x)        STRING_OF(x)

typedef struct {
    int64_t id, question_id;
    bool retry;
} response_t;

typedef struct {
    int64_t id;
    char phone[40];
    bool warm;
} transfer_t;

/* What the campaign's script lets a caller answer and do, read once at start. */
typedef struct {
    response_t *responses;
    size_t n_responses;
    int64_t *notes;
    size_t n_notes;
    transfer_t *transfers;
    size_t n_transfers;
    char *selected_fields; /* JSON array text: which lead fields a caller sees */
} script_t;

typedef struct {
    int64_t id;
    uint64_t caller_id;
    unsigned char digest[CALLER_TOKEN_DIGEST];
    bool ended;         /* over: forgotten once the engine has let its caller go */
    int64_t touched_ms; /* when last_seen_at was last written */
    int64_t idle_since; /* campaign clock: when the caller last left dialing (or logged in) */
    uint64_t due_call;  /* the call whose survey is due, in wrap-up (0: none) */
    uint64_t due_number;
    uint64_t contact_number; /* the number whose leads are below (0: none) */
    char contact_phone[20];
    json_t *leads; /* that number's leads as the caller sees them; NULL while loading */
} session_t;

typedef struct pending_result_t {
    struct pending_result_t *next;
    char *params[DESK_RESULT_PARAMS];
} pending_result_t;

struct desk_t {
    desk_config_t config;
    char voicemail_uri[48];
    script_t script;
    idmap_t *sessions; /* by session id */
    idmap_t *callers;  /* by caller id: the session working as that caller */
    pending_result_t *results_head, *results_tail;
    int64_t next_sweep_ms;
    bool paused;
};

static int64_t s_mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static json_t *s_time(const desk_t *self, int64_t at_us)
{
    int64_t wall = self->config.wall(self->config.wall_ctx, at_us);
    time_t secs = (time_t)(wall / 1000000);
    struct tm tm;
    gmtime_r(&secs, &tm);
    char text[40];
    size_t n = strftime(text, sizeof(text), "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(text + n, sizeof(text) - n, ".%03dZ", (int)((wall / 1000) % 1000));
    return json_string(text);
}

/* ---- the script ---- */

static int s_load_script(desk_t *self)
{
    char campaign[24];
    snprintf(campaign, sizeof(campaign), "%" PRId64, self->config.campaign_id);
    if (dbq_drain(self->config.db, 0) != 0)
        return -1;
    PGresult *res =
        PQexecParams(self->config.conn,
                     "SELECT coalesce(s.selected_fields, '[]')::text, "
                     "(SELECT coalesce(json_agg(json_build_array(r.id, r.question_id, r.retry)), '[]') FROM possible_responses r "
                     " JOIN questions q ON q.id = r.question_id WHERE q.script_id = s.id)::text, "
                     "(SELECT coalesce(json_agg(n.id), '[]') FROM notes n WHERE n.script_id = s.id)::text, "
                     "(SELECT coalesce(json_agg(json_build_array(t.id, t.phone_number, t.transfer_type = 'warm')), '[]') "
                     " FROM transfers t WHERE t.script_id = s.id)::text "
                     "FROM campaigns k LEFT JOIN scripts s ON s.id = k.script_id WHERE k.id = $1",
                     1, NULL, (const char *[]){campaign}, NULL, NULL, 0);
    int rc = -1;
    json_t *responses = NULL, *notes = NULL, *transfers = NULL;
    if (PQresultStatus(res) != PGRES_TUPLES_OK || PQntuples(res) != 1) {
        log_error("reading the campaign's script: %s", PQresultErrorMessage(res));
        goto Exit;
    }
    script_t *s = &self->script;
    responses = json_loads(PQgetvalue(res, 0, 1), 0, NULL);
    notes = json_loads(PQgetvalue(res, 0, 2), 0, NULL);
    transfers = json_loads(PQgetvalue(res, 0, 3), 0, NULL);
    s->selected_fields = strdup(PQgetvalue(res, 0, 0));
    if (!responses || !notes || !transfers || !s->selected_fields)
        goto Exit;
    s->responses = calloc(json_array_size(responses) + 1, sizeof(*s->responses));
    s->notes = calloc(json_array_size(notes) + 1, sizeof(*s->notes));
    s->transfers = calloc(json_array_size(transfers) + 1, sizeof(*s->transfers));
    if (!s->responses || !s->notes || !s->transfers)
        goto Exit;
    size_t i;
    json_t *v;
    json_array_foreach(responses, i, v) s->responses[s->n_responses++] =
        (response_t){.id = json_integer_value(json_array_get(v, 0)),
                     .question_id = json_integer_value(json_array_get(v, 1)),
                     .retry = json_is_true(json_array_get(v, 2))};
    json_array_foreach(notes, i, v) s->notes[s->n_notes++] = json_integer_value(v);
    json_array_foreach(transfers, i, v)
    {
        transfer_t *t = &s->transfers[s->n_transfers++];
        t->id = json_integer_value(json_array_get(v, 0));
        snprintf(t->phone, sizeof(t->phone), "%s",
                 json_string_value(json_array_get(v, 1)) ? json_string_value(json_array_get(v, 1)) : "");
        t->warm = json_is_true(json_array_get(v, 2));
    }
    rc = 0;
Exit:
    json_decref(responses);
    json_decref(notes);
    json_decref(transfers);
    PQclear(res);
    return rc;
}

static const response_t *s_response(const desk_t *self, int64_t id)
{
    for (size_t i = 0; i < self->script.n_responses; i++)
        if (self->script.responses[i].id == id)
            return &self->script.responses[i];
    return NULL;
}

static bool s_has_note(const desk_t *self, int64_t id)
{
    for (size_t i = 0; i < self->script.n_notes; i++)
        if (self->script.notes[i] == id)
            return true;
    return false;
}

static const transfer_t *s_find_transfer(const desk_t *self, int64_t id)
{
    for (size_t i = 0; i < self->script.n_transfers; i++)
        if (self->script.transfers[i].id == id)
            return &self->script.transfers[i];
    return NULL;
}

/* ---- sessions ---- */

static void s_session_free(session_t *session)
{
    json_decref(session->leads);
    free(session);
}

static void s_forget(desk_t *self, session_t *session)
{
    idmap_remove(self->sessions, (uint64_t)session->id);
    if (idmap_get(self->callers, session->caller_id) == session)
        idmap_remove(self->callers, session->caller_id);
    s_session_free(session);
}

static bool s_in_engine(const desk_t *self, const session_t *session)
{
    engine_caller_view_t view;
    return engine_caller_view(self->config.engine, session->caller_id, &view) == 0;
}

static void s_on_written(void *ctx, const PGresult *res, int64_t now_us)
{
    const char *what = ctx;
    if (res == NULL || (PQresultStatus(res) != PGRES_COMMAND_OK && PQresultStatus(res) != PGRES_TUPLES_OK))
        log_warn("%s: %s", what, res ? PQresultErrorMessage(res) : "connection lost");
}

/* A session's token names it; the row says whose it is and whether it is live. The one
 * synchronous read of a session's life: its first request here. */
typedef enum { LOOKUP_OK, LOOKUP_NO_SESSION, LOOKUP_NOT_HERE, LOOKUP_FAILED } lookup_t;

static lookup_t s_lookup(desk_t *self, const unsigned char digest[CALLER_TOKEN_DIGEST], int64_t session_id, int64_t now_us,
                         session_t **out)
{
    const char *values[] = {(const char *)digest};
    const int lengths[] = {CALLER_TOKEN_DIGEST}, formats[] = {1};
    /* The connection is the statement queue's too: what it has in flight is finished first. Its
     * callbacks may run here, before this session exists. */
    if (dbq_drain(self->config.db, now_us) != 0)
        return LOOKUP_FAILED;
    PGresult *res = PQexecParams(self->config.conn,
                                 "SELECT id, caller_id, campaign_id, ended_at IS NULL AND expires_at > now() "
                                 "FROM caller_sessions WHERE token_sha256 = $1",
                                 1, NULL, values, lengths, formats, 0);
    lookup_t result = LOOKUP_FAILED;
    if (PQresultStatus(res) != PGRES_TUPLES_OK) {
        log_warn("reading a caller session: %s", PQresultErrorMessage(res));
        goto Exit;
    }
    if (PQntuples(res) != 1 || PQgetvalue(res, 0, 3)[0] != 't') {
        result = LOOKUP_NO_SESSION;
        goto Exit;
    }
    if (strtoll(PQgetvalue(res, 0, 0), NULL, 10) != session_id ||
        strtoll(PQgetvalue(res, 0, 2), NULL, 10) != self->config.campaign_id) {
        result = LOOKUP_NOT_HERE;
        goto Exit;
    }
    session_t *session = calloc(1, sizeof(*session));
    if (session == NULL)
        goto Exit;
    session->id = session_id;
    session->caller_id = strtoull(PQgetvalue(res, 0, 1), NULL, 10);
    session->idle_since = now_us;
    session->touched_ms = s_mono_ms();
    memcpy(session->digest, digest, CALLER_TOKEN_DIGEST);
    /* A newer login of the same caller takes over their place in the engine: the older session
     * is over (the store ended it; its notification may not have arrived yet). */
    session_t *older = idmap_get(self->callers, session->caller_id);
    if (older) {
        session->idle_since = older->idle_since;
        session->due_call = older->due_call;
        session->due_number = older->due_number;
        session->contact_number = older->contact_number;
        memcpy(session->contact_phone, older->contact_phone, sizeof(session->contact_phone));
        session->leads = json_incref(older->leads);
        s_forget(self, older);
    }
    if (idmap_put(self->sessions, (uint64_t)session_id, session) != 0 ||
        idmap_put(self->callers, session->caller_id, session) != 0) {
        idmap_remove(self->sessions, (uint64_t)session_id);
        s_session_free(session);
        goto Exit;
    }
    *out = session;
    result = LOOKUP_OK;
Exit:
    PQclear(res);
    return result;
}

/* Any request of a session counts as seeing it; the row is told every few seconds at most. */
static void s_touch(desk_t *self, session_t *session)
{
    int64_t now_ms = s_mono_ms();
    if (now_ms - session->touched_ms < DESK_TOUCH_MS)
        return;
    session->touched_ms = now_ms;
    char id[24];
    snprintf(id, sizeof(id), "%" PRId64, session->id);
    dbq_send(self->config.db, "UPDATE caller_sessions SET last_seen_at = now() WHERE id = $1 AND ended_at IS NULL", 1,
             (const char *[]){id}, s_on_written, "touching a caller session");
}

/* ---- contacts ---- */

typedef struct {
    desk_t *desk;
    int64_t session_id;
    uint64_t number_id;
} contact_load_t;

static void s_on_contact(void *ctx, const PGresult *res, int64_t now_us)
{
    contact_load_t *load = ctx;
    session_t *session = idmap_get(load->desk->sessions, (uint64_t)load->session_id);
    if (res == NULL || PQresultStatus(res) != PGRES_TUPLES_OK || PQntuples(res) != 1)
        log_warn("reading a contact's leads: %s", res ? PQresultErrorMessage(res) : "connection lost");
    else if (session && session->contact_number == load->number_id) {
        json_decref(session->leads);
        session->leads = json_loads(PQgetvalue(res, 0, 0), 0, NULL);
    }
    free(load);
}

/* The leads of the number a caller is about to see, with the fields the script selects. */
static void s_load_contact(desk_t *self, session_t *session, uint64_t number_id)
{
    engine_caller_view_t view;
    if (number_id == 0 || session->contact_number == number_id ||
        engine_caller_view(self->config.engine, session->caller_id, &view) != 0)
        return;
    session->contact_number = number_id;
    memcpy(session->contact_phone, view.number.phone, sizeof(session->contact_phone));
    json_decref(session->leads);
    session->leads = NULL;
    contact_load_t *load = malloc(sizeof(*load));
    if (load == NULL)
        return;
    *load = (contact_load_t){.desk = self, .session_id = session->id, .number_id = number_id};
    char number[24];
    snprintf(number, sizeof(number), "%" PRIu64, number_id);
    const char *params[] = {number, self->script.selected_fields};
    if (dbq_send(self->config.db,
                 "SELECT coalesce(json_agg(json_build_object('id', l.id, 'custom_id', l.custom_id, 'fields', "
                 "(SELECT coalesce(jsonb_object_agg(f.key, f.value), '{}') FROM jsonb_each(to_jsonb(l) - 'custom' || l.custom) f "
                 "WHERE f.key IN (SELECT jsonb_array_elements_text($2::jsonb)))) ORDER BY l.id), '[]')::text "
                 "FROM leads l WHERE l.number_id = $1",
                 2, params, s_on_contact, load) != 0)
        free(load);
}

static bool s_has_lead(const session_t *session, int64_t lead_id)
{
    size_t i;
    json_t *lead;
    json_array_foreach(session->leads, i, lead) if (json_integer_value(json_object_get(lead, "id")) == lead_id) return true;
    return false;
}

/* ---- events ---- */

static void s_publish(desk_t *self, const session_t *session, const engine_event_t *event)
{
    char account[24], campaign[24], caller[24], id[24], at[32], call[24], number[24];
    snprintf(account, sizeof(account), "%" PRId64, self->config.account_id);
    snprintf(campaign, sizeof(campaign), "%" PRId64, self->config.campaign_id);
    snprintf(caller, sizeof(caller), "%" PRIu64, session->caller_id);
    snprintf(id, sizeof(id), "%" PRId64, session->id);
    snprintf(at, sizeof(at), "%" PRId64, self->config.wall(self->config.wall_ctx, event->at_us));
    snprintf(call, sizeof(call), "%" PRIu64, event->call_id);
    snprintf(number, sizeof(number), "%" PRIu64, event->number_id);
    const char *params[] = {account,
                            campaign,
                            caller,
                            id,
                            engine_event_name(event->type),
                            at,
                            event->call_id ? call : NULL,
                            event->number_id ? number : NULL};
    dbq_send(self->config.db, "SELECT caller_publish($1, $2, $3, $4, $5, to_timestamp($6::float8 / 1e6), $7, $8)", 8, params,
             s_on_written, "publishing a caller event");
}

void desk_event(desk_t *self, const engine_event_t *event)
{
    if (event->type < ENGINE_CALLER_READY)
        return;
    session_t *session = idmap_get(self->callers, event->caller_id);
    if (session == NULL)
        return;
    s_publish(self, session, event);
    switch (event->type) {
    case ENGINE_CALLER_PREVIEW:
    case ENGINE_CALLER_ON_CALL:
        s_load_contact(self, session, event->number_id);
        break;
    case ENGINE_CALLER_WRAP_UP:
        session->due_call = event->call_id;
        session->due_number = event->number_id;
        break;
    case ENGINE_CALLER_LEFT:
        session->idle_since = event->at_us;
        session->due_call = 0;
        if (session->ended)
            s_forget(self, session);
        break;
    default:
        break;
    }
}

/* ---- the desk document ---- */

typedef enum {
    STATE_IDLE,
    STATE_ON_HOLD,
    STATE_PREVIEW,
    STATE_DIALING,
    STATE_CONNECTED,
    STATE_WRAP_UP,
} desk_state_t;

static const char *const s_state_names[] = {"idle", "on_hold", "preview", "dialing", "connected", "wrap_up"};

typedef struct {
    desk_state_t state;
    bool in_engine;
    engine_caller_view_t view;
} where_t;

static where_t s_where(const desk_t *self, const session_t *session)
{
    where_t w = {.state = STATE_IDLE};
    if (engine_caller_view(self->config.engine, session->caller_id, &w.view) != 0)
        return w;
    w.in_engine = true;
    static const desk_state_t states[] = {
        [ENGINE_CALLER_STATE_READY] = STATE_ON_HOLD,   [ENGINE_CALLER_STATE_PREVIEW] = STATE_PREVIEW,
        [ENGINE_CALLER_STATE_DIALING] = STATE_DIALING, [ENGINE_CALLER_STATE_ON_CALL] = STATE_CONNECTED,
        [ENGINE_CALLER_STATE_WRAP_UP] = STATE_WRAP_UP,
    };
    w.state = states[w.view.state];
    return w;
}

/* The actions the caller may take now, in the order the app shows them. */
static json_t *s_actions(const desk_t *self, const session_t *session, const where_t *w)
{
    json_t *a = json_array();
    switch (w->state) {
    case STATE_IDLE:
        json_array_append_new(a, json_string("start"));
        break;
    case STATE_ON_HOLD:
    case STATE_DIALING:
        if (!w->view.leaving)
            json_array_append_new(a, json_string("stop"));
        break;
    case STATE_PREVIEW:
        if (w->view.number.number_id) {
            json_array_append_new(a, json_string("dial"));
            json_array_append_new(a, json_string("skip"));
        }
        json_array_append_new(a, json_string("stop"));
        break;
    case STATE_CONNECTED:
        if (w->view.ending)
            break;
        json_array_append_new(a, json_string("hang_up"));
        if (w->view.three_way)
            json_array_append_new(a, json_string("leave_transfer"));
        else {
            if (self->voicemail_uri[0])
                json_array_append_new(a, json_string("drop_voicemail"));
            if (self->script.n_transfers)
                json_array_append_new(a, json_string("transfer"));
        }
        if (!w->view.leaving)
            json_array_append_new(a, json_string("stop"));
        break;
    case STATE_WRAP_UP:
        if (session->due_call)
            json_array_append_new(a, json_string("results"));
        break;
    }
    return a;
}

static bool s_allowed(const json_t *actions, const char *action)
{
    size_t i;
    json_t *v;
    json_array_foreach(actions, i, v) if (strcmp(json_string_value(v), action) == 0) return true;
    return false;
}

static json_t *s_desk(const desk_t *self, const api_request_t *req, const session_t *session, const where_t *w)
{
    static const char *const modes[] = {"Preview", "Power", "Predictive"};
    json_t *doc = json_object();
    json_object_set_new(
        doc, "uri",
        json_sprintf("%s/v1/campaigns/%" PRId64 "/caller_sessions/%" PRId64, req->base_url, self->config.campaign_id, session->id));
    json_object_set_new(doc, "session_id", json_integer(session->id));
    json_object_set_new(doc, "caller_id", json_integer((json_int_t)session->caller_id));
    json_object_set_new(doc, "campaign_id", json_integer(self->config.campaign_id));
    json_object_set_new(doc, "dialer_type", json_string(modes[self->config.mode]));
    json_object_set_new(doc, "campaign_paused", json_boolean(self->paused));
    json_object_set_new(doc, "state", json_string(s_state_names[w->state]));
    json_object_set_new(doc, "state_since", s_time(self, w->in_engine ? w->view.since_us : session->idle_since));
    json_object_set_new(doc, "leaving", json_boolean(w->in_engine && w->view.leaving));
    json_t *call = json_null();
    if (w->in_engine && w->view.call_id) {
        call = json_object();
        json_object_set_new(call, "id", json_integer((json_int_t)w->view.call_id));
        json_object_set_new(call, "phone", json_string(w->view.number.phone));
        json_object_set_new(call, "state",
                            json_string(w->state == STATE_DIALING ? "ringing"
                                        : w->view.ending          ? "ending"
                                        : w->view.three_way       ? "three_way"
                                                                  : "connected"));
        json_object_set_new(call, "answered_at", w->view.answered_at_us ? s_time(self, w->view.answered_at_us) : json_null());
        json_object_set_new(call, "bridged_at", w->view.bridged_at_us ? s_time(self, w->view.bridged_at_us) : json_null());
    }
    json_object_set_new(doc, "call", call);
    /* The contact stays on the desk through wrap-up, for the survey's choice of lead. */
    uint64_t number = w->in_engine && w->view.number.number_id ? w->view.number.number_id
                      : w->state == STATE_WRAP_UP              ? session->contact_number
                                                               : 0;
    json_t *contact = json_null();
    if (number && number == session->contact_number) {
        contact = json_object();
        json_object_set_new(contact, "number_id", json_integer((json_int_t)number));
        json_object_set_new(contact, "phone", json_string(session->contact_phone));
        json_object_set_new(contact, "leads", session->leads ? json_incref(session->leads) : json_null());
    }
    json_object_set_new(doc, "contact", contact);
    json_object_set_new(doc, "survey_due_call_id", session->due_call ? json_integer((json_int_t)session->due_call) : json_null());
    json_object_set_new(doc, "actions", s_actions(self, session, w));
    json_object_set_new(doc, "heartbeat_timeout_seconds", json_integer(CALLER_HEARTBEAT_TIMEOUT_S));
    return doc;
}

static void s_reply_desk(const desk_t *self, const api_request_t *req, api_reply_t *reply, const session_t *session)
{
    where_t w = s_where(self, session);
    api_reply_json(reply, 200, s_desk(self, req, session, &w));
    api_reply_header(reply, "Cache-Control", "no-store");
}

static void s_wrong_state(const desk_t *self, const api_request_t *req, api_reply_t *reply, const session_t *session,
                          const char *action)
{
    where_t w = s_where(self, session);
    char detail[160];
    snprintf(detail, sizeof(detail), "'%s' is not possible while the caller is %s.", action, s_state_names[w.state]);
    json_t *problem = problem_new(409, "wrong-state", "Not possible now", detail, req->path);
    json_object_set_new(problem, "state", json_string(s_state_names[w.state]));
    json_object_set_new(problem, "actions", s_actions(self, session, &w));
    api_reply_problem_object(reply, req, problem);
}

/* ---- results ---- */

static void s_result_free(pending_result_t *r)
{
    for (int i = 0; i < DESK_RESULT_PARAMS; i++)
        free(r->params[i]);
    free(r);
}

static char *s_int_text(int64_t v)
{
    char text[24];
    snprintf(text, sizeof(text), "%" PRId64, v);
    return strdup(text);
}

/* Checks a survey against the script and the contact. 0 with the answers and notes to store
 * (and whether any response asks for a retry), or -1 with the problem's errors filled in. */
static int s_check_results(const desk_t *self, const session_t *session, json_t *body, json_t *problem, json_t **answers,
                           json_t **notes, bool *retry)
{
    const char *key;
    json_t *value;
    json_object_foreach(body, key, value)
    {
        if (strcmp(key, "answers") && strcmp(key, "notes") && strcmp(key, "lead_id") && strcmp(key, "machine") &&
            strcmp(key, "then"))
            problem_add_error(problem, key, "is not a results field (answers, notes, lead_id, machine, then)");
    }
    const char *then = json_string_value(json_object_get(body, "then"));
    if (!then || (strcmp(then, "continue") && strcmp(then, "stop")))
        problem_add_error(problem, "then", "is required: continue (take the next call) or stop");
    json_t *machine = json_object_get(body, "machine");
    if (machine && !json_is_boolean(machine))
        problem_add_error(problem, "machine", "must be true or false");
    json_t *lead = json_object_get(body, "lead_id");
    if (lead && !json_is_null(lead) &&
        (!json_is_integer(lead) || (session->leads && !s_has_lead(session, json_integer_value(lead)))))
        problem_add_error(problem, "lead_id", "must be the id of one of the contact's leads");
    *answers = json_array();
    *notes = json_array();
    json_t *given = json_object_get(body, "answers");
    if (given && !(json_is_array(given) && json_array_size(given) <= DESK_ANSWERS_MAX))
        problem_add_error(problem, "answers", "must be an array of at most " STRINGIFY(DESK_ANSWERS_MAX) " answers");
    else if (given) {
        size_t i;
        json_t *a;
        json_array_foreach(given, i, a)
        {
            json_t *q = json_object_get(a, "question_id"), *r = json_object_get(a, "possible_response_id");
            const response_t *response = json_is_integer(r) ? s_response(self, json_integer_value(r)) : NULL;
            char field[48];
            snprintf(field, sizeof(field), "answers[%zu]", i);
            if (!json_is_object(a) || json_object_size(a) != 2 || !json_is_integer(q) || response == NULL ||
                response->question_id != json_integer_value(q)) {
                problem_add_error(problem, field,
                                  "must be {question_id, possible_response_id}: a question of the campaign's script and one of "
                                  "its possible responses");
                continue;
            }
            size_t j;
            json_t *earlier;
            bool twice = false;
            json_array_foreach(*answers, j, earlier) twice |=
                json_integer_value(json_object_get(earlier, "question_id")) == response->question_id;
            if (twice) {
                problem_add_error(problem, field, "answers a question already answered");
                continue;
            }
            *retry |= response->retry;
            json_array_append_new(*answers, json_pack("{s:I, s:I}", "question_id", (json_int_t)response->question_id,
                                                      "possible_response_id", (json_int_t)response->id));
        }
    }
    given = json_object_get(body, "notes");
    if (given && !(json_is_array(given) && json_array_size(given) <= DESK_NOTES_MAX))
        problem_add_error(problem, "notes", "must be an array of at most " STRINGIFY(DESK_NOTES_MAX) " notes");
    else if (given) {
        size_t i;
        json_t *n;
        json_array_foreach(given, i, n)
        {
            json_t *id = json_object_get(n, "note_id"), *text = json_object_get(n, "text");
            char field[48];
            snprintf(field, sizeof(field), "notes[%zu]", i);
            if (!json_is_object(n) || json_object_size(n) != 2 || !json_is_integer(id) ||
                !s_has_note(self, json_integer_value(id)) || !json_is_string(text) ||
                json_string_length(text) > DESK_NOTE_BYTES_MAX) {
                problem_add_error(problem, field,
                                  "must be {note_id, text}: a note of the campaign's script and at most " STRINGIFY(
                                      DESK_NOTE_BYTES_MAX) " bytes of text");
                continue;
            }
            json_array_append_new(*notes, json_pack("{s:I, s:O}", "note_id", json_integer_value(id), "text", text));
        }
    }
    return json_array_size(json_object_get(problem, "errors")) > 0 ? -1 : 0;
}

static void s_results(desk_t *self, const api_request_t *req, api_reply_t *reply, session_t *session, int64_t now_us)
{
    input_t in;
    if (input_read(req, reply, &in) != 0)
        return;
    json_t *problem = problem_new(422, "invalid-fields", "Invalid fields", "Nothing was submitted.", req->path);
    json_t *answers = NULL, *notes = NULL;
    bool retry = false;
    if (in.from_form)
        problem_add_error(problem, "body", "results are JSON (Content-Type: application/json)");
    else if (s_check_results(self, session, in.object, problem, &answers, &notes, &retry) == 0) {
        pending_result_t *r = calloc(1, sizeof(*r));
        json_t *lead = json_object_get(in.object, "lead_id");
        bool machine = json_is_true(json_object_get(in.object, "machine"));
        char *answers_text = json_dumps(answers, JSON_COMPACT), *notes_text = json_dumps(notes, JSON_COMPACT);
        if (r && answers_text && notes_text) {
            r->params[0] = s_int_text((int64_t)session->due_call);
            r->params[1] = s_int_text(self->config.account_id);
            r->params[2] = s_int_text(self->config.campaign_id);
            r->params[3] = s_int_text((int64_t)session->caller_id);
            r->params[4] = s_int_text(session->id);
            r->params[5] = s_int_text((int64_t)session->due_number);
            r->params[6] = json_is_integer(lead) ? s_int_text(json_integer_value(lead)) : NULL;
            r->params[7] = strdup(machine ? "true" : "false");
            r->params[8] = strdup(retry ? "true" : "false");
            r->params[9] = answers_text;
            r->params[10] = notes_text;
            r->params[11] = s_int_text(self->config.recycle_hours);
            r->params[12] = s_int_text(self->config.max_attempts);
            answers_text = notes_text = NULL;
            if (self->results_tail)
                self->results_tail->next = r;
            else
                self->results_head = r;
            self->results_tail = r;
            r = NULL;
            session->due_call = 0;
            engine_caller_disposition(self->config.engine, session->caller_id, !machine, now_us);
            if (strcmp(json_string_value(json_object_get(in.object, "then")), "continue") == 0)
                engine_caller_ready(self->config.engine, session->caller_id, now_us);
            else
                engine_caller_leave(self->config.engine, session->caller_id, now_us);
            s_reply_desk(self, req, reply, session);
        } else
            api_reply_problem(reply, req, 500, "internal", "Internal error", "The results could not be kept.");
        free(r);
        free(answers_text);
        free(notes_text);
        json_decref(problem);
        problem = NULL;
    }
    if (problem)
        api_reply_problem_object(reply, req, problem);
    json_decref(answers);
    json_decref(notes);
    input_free(&in);
}

/* ---- actions ---- */

static void s_transfer(desk_t *self, const api_request_t *req, api_reply_t *reply, session_t *session, int64_t now_us)
{
    input_t in;
    if (input_read(req, reply, &in) != 0)
        return;
    json_t *id = json_object_get(in.object, "transfer_id");
    int64_t transfer_id = 0;
    if (json_is_integer(id))
        transfer_id = json_integer_value(id);
    else if (in.from_form && json_is_string(id))
        transfer_id = strtoll(json_string_value(id), NULL, 10);
    const transfer_t *t = transfer_id > 0 && json_object_size(in.object) == 1 ? s_find_transfer(self, transfer_id) : NULL;
    if (t == NULL) {
        json_t *problem = problem_new(422, "invalid-fields", "Invalid fields", "Nothing was transferred.", req->path);
        problem_add_error(problem, "transfer_id", "is required: the id of one of the campaign's script's transfers");
        api_reply_problem_object(reply, req, problem);
    } else if (engine_caller_transfer(self->config.engine, session->caller_id, t->phone, t->warm, now_us) != 0)
        api_reply_problem(reply, req, 502, "carrier-refused", "The carrier refused",
                          "The transfer could not be placed; the call goes on.");
    else
        s_reply_desk(self, req, reply, session);
    input_free(&in);
}

static void s_act(desk_t *self, const api_request_t *req, api_reply_t *reply, session_t *session, const char *action,
                  int64_t now_us)
{
    if (strcmp(action, "heartbeat") == 0) {
        api_reply_take(reply, 204, NULL, strdup(""), 0);
        return;
    }
    static const char *const known[] = {"start",    "dial",           "skip",    "hang_up", "drop_voicemail",
                                        "transfer", "leave_transfer", "results", "stop"};
    bool is_known = false;
    for (size_t i = 0; i < sizeof(known) / sizeof(known[0]); i++)
        is_known |= strcmp(action, known[i]) == 0;
    if (!is_known) {
        api_reply_problem(reply, req, 404, "not-found", "Not found", "No such desk action (docs/caller-api.md).");
        return;
    }
    where_t w = s_where(self, session);
    json_t *actions = s_actions(self, session, &w);
    bool allowed = s_allowed(actions, action);
    json_decref(actions);
    if (!allowed) {
        s_wrong_state(self, req, reply, session, action);
        return;
    }
    engine_t *engine = self->config.engine;
    int rc = 0;
    if (strcmp(action, "transfer") == 0) {
        s_transfer(self, req, reply, session, now_us);
        return;
    } else if (strcmp(action, "results") == 0) {
        s_results(self, req, reply, session, now_us);
        return;
    } else if (strcmp(action, "start") == 0) {
        session->due_call = 0;
        rc = engine_caller_join(engine, session->caller_id, now_us);
    } else if (strcmp(action, "dial") == 0)
        rc = engine_preview_dial(engine, session->caller_id, now_us);
    else if (strcmp(action, "skip") == 0)
        rc = engine_preview_skip(engine, session->caller_id, now_us);
    else if (strcmp(action, "hang_up") == 0)
        rc = engine_caller_hang_up(engine, session->caller_id, now_us);
    else if (strcmp(action, "drop_voicemail") == 0)
        rc = engine_caller_drop_message(engine, session->caller_id, self->voicemail_uri, now_us);
    else if (strcmp(action, "leave_transfer") == 0)
        rc = engine_caller_leave_transfer(engine, session->caller_id, now_us);
    else if (strcmp(action, "stop") == 0)
        rc = engine_caller_finish(engine, session->caller_id, now_us);
    if (rc != 0)
        api_reply_problem(reply, req, 502, "carrier-refused", "Not done",
                          "The action could not be carried out (the carrier refused or the call is gone); see the desk.");
    else
        s_reply_desk(self, req, reply, session);
}

void desk_serve(desk_t *self, const api_request_t *req, api_reply_t *reply, const char *rest, int64_t now_us)
{
    char *end = NULL;
    long long session_id = strtoll(rest, &end, 10);
    if (end == rest || session_id <= 0 || (*end != '\0' && *end != '/') || rest[0] == '0' || rest[0] == '-' || rest[0] == '+') {
        api_reply_problem(reply, req, 404, "not-found", "Not found", "No such caller session of this campaign.");
        return;
    }
    const char *action = *end == '/' ? end + 1 : "";
    bool reading = strcmp(req->method, "GET") == 0 || strcmp(req->method, "HEAD") == 0;
    if (action[0] ? strcmp(req->method, "POST") != 0 : !reading) {
        api_reply_problem(reply, req, 405, "method-not-allowed", "Method not allowed", "See the Allow header.");
        api_reply_header(reply, "Allow", action[0] ? "POST" : "GET, HEAD");
        return;
    }
    unsigned char digest[CALLER_TOKEN_DIGEST];
    session_t *session = idmap_get(self->sessions, (uint64_t)session_id);
    lookup_t found = LOOKUP_NO_SESSION;
    if (caller_token_digest(req, digest) == 0) {
        if (session && CRYPTO_memcmp(session->digest, digest, CALLER_TOKEN_DIGEST) == 0)
            found = session->ended ? LOOKUP_NO_SESSION : LOOKUP_OK;
        else
            found = s_lookup(self, digest, session_id, now_us, &session);
    }
    switch (found) {
    case LOOKUP_OK:
        break;
    case LOOKUP_NOT_HERE:
        api_reply_problem(reply, req, 404, "not-found", "Not found", "This session is not yours, or not this campaign's.");
        return;
    case LOOKUP_FAILED:
        api_reply_problem(reply, req, 503, "unavailable", "Service unavailable", "The database could not be reached.");
        api_reply_header(reply, "Retry-After", "1");
        return;
    case LOOKUP_NO_SESSION:
        api_reply_problem(reply, req, 401, "no-session", "Not logged in",
                          "Send the token of a live caller session (Authorization: Bearer, or the impact_caller_session "
                          "cookie); log in with POST /v1/caller_sessions.");
        api_reply_header(reply, "WWW-Authenticate", "Bearer realm=\"impact\"");
        return;
    }
    s_touch(self, session);
    if (action[0] == '\0')
        s_reply_desk(self, req, reply, session);
    else
        s_act(self, req, reply, session, action, now_us);
}

/* ---- bookkeeping ---- */

void desk_session_ended(desk_t *self, int64_t session_id, int64_t now_us)
{
    session_t *session = idmap_get(self->sessions, (uint64_t)session_id);
    if (session == NULL || session->ended)
        return;
    session->ended = true;
    log_info("caller session %" PRId64 " ended; caller %" PRIu64 " leaves", session_id, session->caller_id);
    if (!s_in_engine(self, session)) {
        s_forget(self, session);
        return;
    }
    /* forgotten when the engine lets the caller go (caller.left); already leaving: at its call's end */
    engine_caller_finish(self->config.engine, session->caller_id, now_us);
}

void desk_set_paused(desk_t *self, bool paused)
{
    self->paused = paused;
}

static void s_on_result(void *ctx, const PGresult *res, int64_t now_us)
{
    if (res == NULL || PQresultStatus(res) != PGRES_TUPLES_OK)
        log_error("storing a survey: %s", res ? PQresultErrorMessage(res) : "connection lost");
}

void desk_service(desk_t *self, int64_t now_us)
{
    /* A survey follows its call's end into the database: while the log holds unwritten rows, the
     * end may be among them, and the survey's retry must not be overwritten by the call's outcome. */
    while (self->results_head && call_log_dirty(self->config.log) == 0) {
        pending_result_t *r = self->results_head;
        if (dbq_send(self->config.db,
                     "SELECT call_results_submit($1, $2, $3, $4, $5, $6, $7, $8, $9, $10::jsonb, $11::jsonb, $12, $13)",
                     DESK_RESULT_PARAMS, (const char *const *)r->params, s_on_result, NULL) != 0)
            break;
        self->results_head = r->next;
        if (self->results_head == NULL)
            self->results_tail = NULL;
        s_result_free(r);
    }
    int64_t now_ms = s_mono_ms();
    if (now_ms < self->next_sweep_ms)
        return;
    self->next_sweep_ms = now_ms + DESK_SWEEP_MS;
    char campaign[24];
    snprintf(campaign, sizeof(campaign), "%" PRId64, self->config.campaign_id);
    dbq_send(self->config.db,
             "UPDATE caller_sessions SET ended_at = now(), end_reason = CASE WHEN expires_at <= now() THEN 'expired' "
             "ELSE 'timed_out' END WHERE campaign_id = $1 AND ended_at IS NULL AND (expires_at <= now() OR "
             "last_seen_at < now() - make_interval(secs => " STRINGIFY(CALLER_HEARTBEAT_TIMEOUT_S) "))",
             1, (const char *[]){campaign}, s_on_written, "ending caller sessions not seen");
}

typedef struct {
    uint64_t *ids;
    size_t n;
} caller_ids_t;

static void s_collect(void *ctx, uint64_t id, void *value)
{
    caller_ids_t *ids = ctx;
    ids->ids[ids->n++] = id;
}

void desk_leave_all(desk_t *self, int64_t now_us)
{
    /* collected first: a caller leaving may forget its session, which changes the map */
    caller_ids_t ids = {.ids = calloc(idmap_size(self->callers) + 1, sizeof(uint64_t))};
    if (ids.ids == NULL)
        return;
    idmap_each(self->callers, s_collect, &ids);
    for (size_t i = 0; i < ids.n; i++)
        engine_caller_leave(self->config.engine, ids.ids[i], now_us);
    free(ids.ids);
}

/* ---- lifecycle ---- */

desk_t *desk_new(const desk_config_t *config)
{
    desk_t *self = calloc(1, sizeof(*self));
    if (self == NULL)
        return NULL;
    self->config = *config;
    if (config->voicemail_uri)
        snprintf(self->voicemail_uri, sizeof(self->voicemail_uri), "%s", config->voicemail_uri);
    self->config.voicemail_uri = NULL;
    self->sessions = idmap_new();
    self->callers = idmap_new();
    if (self->sessions == NULL || self->callers == NULL || s_load_script(self) != 0)
        desk_destroy(&self);
    return self;
}

static void s_free_session(void *ctx, uint64_t id, void *value)
{
    s_session_free(value);
}

void desk_destroy(desk_t **self_p)
{
    desk_t *self = *self_p;
    if (self == NULL)
        return;
    if (self->sessions)
        idmap_each(self->sessions, s_free_session, NULL);
    idmap_destroy(&self->sessions);
    idmap_destroy(&self->callers);
    while (self->results_head) {
        pending_result_t *r = self->results_head;
        self->results_head = r->next;
        log_error("a survey of call %s was never stored (the dialer stopped first)", r->params[0]);
        s_result_free(r);
    }
    free(self->script.responses);
    free(self->script.notes);
    free(self->script.transfers);
    free(self->script.selected_fields);
    free(self);
    *self_p = NULL;
}
