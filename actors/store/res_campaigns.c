/*
 * Campaigns: what to dial, how (Preview, Power, Predictive), when (calling hours in the called
 * party's local time), and the compliance settings (abandon-rate cap and window, identification
 * message). Start, pause and stop change `status`; the dialer actor for the campaign follows it.
 */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "actors/store/resource.h"
#include "common/problem.h"

#define COUNT(a) (sizeof(a) / sizeof((a)[0]))

static const char *const s_dialer_types[] = {"Preview", "Power", "Predictive", NULL};

static const char *const s_statuses[] = {"stopped", "running", "paused", NULL};

static const field_def_t s_campaign_fields[] = {
    {.name = "name", .type = FIELD_TEXT, .flags = F_REQUIRED, .min = 1, .max = 200},
    {.name = "dialer_type",
     .type = FIELD_ENUM,
     .flags = F_FILTER,
     .choices = s_dialer_types,
     .doc = "Preview: the caller sees the lead, then dials; Power: one line per available caller; Predictive: paced "
            "by the predicted availability of callers"},
    {.name = "status",
     .type = FIELD_ENUM,
     .flags = F_READONLY | F_FILTER,
     .choices = s_statuses,
     .doc = "Changed by the start, pause and stop actions"},
    {.name = "from",
     .column = "caller_id",
     .type = FIELD_PHONE,
     .flags = F_NULLABLE,
     .doc = "Caller ID shown to called parties; required to start"},
    {.name = "script_id", .type = FIELD_REF, .flags = F_NULLABLE | F_FILTER, .ref_path = "scripts"},
    {.name = "time_zone", .type = FIELD_TIME_ZONE, .doc = "Used for calling hours when a number's own time zone is unknown"},
    {.name = "calling_hours_start", .type = FIELD_TIME, .doc = "HH:MM in the called party's local time, 08:00 at the earliest"},
    {.name = "calling_hours_end", .type = FIELD_TIME, .doc = "HH:MM in the called party's local time, 21:00 at the latest"},
    {.name = "recycle_rate_hours",
     .type = FIELD_INT,
     .min = 1,
     .max = 720,
     .doc = "Hours before an unanswered number is dialed again"},
    {.name = "max_attempts", .type = FIELD_INT, .min = 1, .max = 50, .doc = "Dials of one number before it is given up"},
    {.name = "acceptable_abandon_rate",
     .type = FIELD_DECIMAL,
     .dmin = 0.001,
     .dmax = 0.03,
     .doc = "Cap on abandoned / answered calls over the window; 0.03 is the legal maximum"},
    {.name = "abandon_rate_window_days", .type = FIELD_INT, .min = 1, .max = 30},
    {.name = "answering_machine_detection", .type = FIELD_BOOL},
    {.name = "voicemail_message_id",
     .type = FIELD_REF,
     .flags = F_NULLABLE,
     .ref_path = "messages",
     .doc = "Message left on answering machines"},
    {.name = "drop_voicemail_automatically",
     .type = FIELD_BOOL,
     .doc = "Leave the voicemail message when a machine answers (at most once per number)"},
    {.name = "callers_can_drop_voicemail", .type = FIELD_BOOL},
    {.name = "call_back_after_voicemail", .type = FIELD_BOOL, .doc = "false: a number where a message was left is done"},
    {.name = "abandonment_message_id",
     .type = FIELD_REF,
     .flags = F_NULLABLE,
     .ref_path = "messages",
     .doc = "Identification message played within 2 seconds when no caller is free; required to start Predictive"},
    {.name = "max_lines_per_caller",
     .type = FIELD_INT,
     .min = 1,
     .max = 10,
     .doc = "Upper bound on lines dialed per available caller (Predictive)"},
    {.name = "simulated_callers",
     .type = FIELD_INT,
     .flags = F_NULLABLE,
     .min = 0,
     .max = 1000,
     .doc = "Simulated callers dialing beside the people logged in (the simulated carrier); null: the simulation "
            "scenario's agents, 0: people only"},
};

static const constraint_def_t s_campaign_constraints[] = {
    {"campaigns_calling_hours_check", "calling_hours_start",
     "calling hours must start before they end, within 08:00-21:00 local time (TCPA)"},
    {"campaigns_drop_voicemail_automatically_check", "drop_voicemail_automatically",
     "needs answering_machine_detection and a voicemail_message_id"},
    {"campaigns_callers_can_drop_voicemail_check", "callers_can_drop_voicemail", "needs a voicemail_message_id"},
    {"campaigns_call_back_after_voicemail_check", "call_back_after_voicemail",
     "needs drop_voicemail_automatically or callers_can_drop_voicemail"},
    {"campaigns_archived_check", "status", "a running or paused campaign must be stopped before it is archived"},
    {"campaigns_dialer_type_running", "dialer_type", "cannot change while the campaign is running or paused; stop it first"},
    {"campaigns_script_id_fkey", "script_id", "is not a script of this account"},
    {"campaigns_voicemail_message_id_fkey", "voicemail_message_id", "is not a message of this account"},
    {"campaigns_abandonment_message_id_fkey", "abandonment_message_id", "is not a message of this account"},
};

/* Start refuses what would make the first call non-compliant rather than discovering it while
 * dialing: a caller ID must be transmitted, and a Predictive campaign must have the message it
 * plays when it abandons a call. */
static void s_start(resource_call_t *call)
{
    char account[24], id[24];
    snprintf(account, sizeof(account), "%" PRId64, call->account->account_id);
    snprintf(id, sizeof(id), "%" PRId64, call->ids[0]);
    const char *params[] = {account, id};
    PGresult *res = resource_exec(call,
                                  "SELECT status, archived_at IS NOT NULL, caller_id IS NULL, dialer_type, "
                                  "abandonment_message_id IS NULL FROM campaigns WHERE account_id = $1 AND id = $2",
                                  2, params);
    if (res == NULL)
        return;
    if (PQntuples(res) != 1) {
        PQclear(res);
        api_reply_problem(call->reply, call->req, 404, "not-found", "Not found", "No campaign with this id in this account.");
        return;
    }
    json_t *p = problem_new(409, "cannot-start", "Campaign cannot start", NULL, call->req->path);
    if (PQgetvalue(res, 0, 1)[0] == 't')
        problem_add_error(p, "archived_at", "the campaign is archived; restore it first");
    if (PQgetvalue(res, 0, 2)[0] == 't')
        problem_add_error(p, "from", "a caller ID is required to dial");
    if (strcmp(PQgetvalue(res, 0, 3), "Predictive") == 0 && PQgetvalue(res, 0, 4)[0] == 't')
        problem_add_error(p, "abandonment_message_id",
                          "a Predictive campaign needs an identification message to play when it abandons a call");
    PQclear(res);
    if (json_array_size(json_object_get(p, "errors")) > 0) {
        json_object_set_new(p, "detail", json_string("The campaign is not ready to dial; nothing was changed."));
        api_reply_problem_object(call->reply, call->req, p);
        return;
    }
    json_decref(p);
    PQclear(resource_exec(call, "UPDATE campaigns SET status = 'running' WHERE account_id = $1 AND id = $2 AND status <> 'running'",
                          2, params));
    if (call->reply->status == 0)
        resource_reply_row(call, 200);
}

/* Pause and stop are idempotent: asking a stopped campaign to stop is not an error. */
static void s_set_status(resource_call_t *call, const char *status, const char *from_statuses)
{
    resource_set_status(call, "UPDATE campaigns SET status = $3 WHERE account_id = $1 AND id = $2 AND status IN (%s)", status,
                        from_statuses);
}

static void s_pause(resource_call_t *call)
{
    char account[24], id[24];
    snprintf(account, sizeof(account), "%" PRId64, call->account->account_id);
    snprintf(id, sizeof(id), "%" PRId64, call->ids[0]);
    const char *params[] = {account, id};
    PGresult *res = resource_exec(call, "SELECT status FROM campaigns WHERE account_id = $1 AND id = $2", 2, params);
    if (res == NULL)
        return;
    bool stopped = PQntuples(res) == 1 && strcmp(PQgetvalue(res, 0, 0), "stopped") == 0;
    PQclear(res);
    if (stopped) {
        api_reply_problem(call->reply, call->req, 409, "conflict", "Conflict",
                          "A stopped campaign cannot be paused; start it first.");
        return;
    }
    s_set_status(call, "paused", "'running'");
}

static void s_stop(resource_call_t *call)
{
    s_set_status(call, "stopped", "'running', 'paused'");
}

static const action_def_t s_campaign_actions[] = {
    {"start", "Begin (or resume) dialing", s_start, "POST"},
    {"pause", "Stop placing new calls; calls in progress finish", s_pause, "POST"},
    {"stop", "End dialing; callers are released", s_stop, "POST"},
};

static const link_def_t s_campaign_links[] = {
    {"caller_groups", "caller_groups", "campaign_id"},
    {"callers", "callers", "campaign_id"},
    {"blocked_numbers", "blocked_numbers", "campaign_id"},
    {"lists", "lists", "campaign_id"},
    {"numbers", "numbers", "campaign_id"},
    {"leads", "leads", "campaign_id"},
};

const resource_def_t res_campaigns = {
    .collection = "campaigns",
    .singular = "campaign",
    .table = "campaigns",
    .name_column = "name",
    .fields = s_campaign_fields,
    .field_count = COUNT(s_campaign_fields),
    .constraints = s_campaign_constraints,
    .constraint_count = COUNT(s_campaign_constraints),
    .actions = s_campaign_actions,
    .action_count = COUNT(s_campaign_actions),
    .links = s_campaign_links,
    .link_count = COUNT(s_campaign_links),
    .archivable = true,
};
