/*
 * Table-driven resources: one static description per resource (its table, fields, parent,
 * actions, related collections) and one generic engine that turns it into the brief's REST
 * conventions: list with pagination and Link header, create, read, update, delete or archive,
 * 422 naming every invalid field, 409 on conflicts, 404 for another account's rows.
 *
 * Why descriptions instead of hand-written handlers: there are a dozen resources and every one
 * must behave identically (validation, errors, scoping, paging, rendering). With one engine a
 * convention is implemented, tested and fixed once, and the route table, the `actions` each
 * resource advertises and the OpenAPI agreement test all read the same descriptions.
 *
 * What the database enforces stays in the database: tenant isolation through composite foreign
 * keys, cross-field rules through CHECK constraints named <table>_<field>_<kind>. The engine maps
 * a violated constraint back to the field (and a message from the resource's constraint table).
 */
#ifndef IMPACT_STORE_RESOURCE_H
#define IMPACT_STORE_RESOURCE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "actors/store/routes.h"

#define RESOURCE_DEPTH_MAX    3 /* scripts/{id}/questions/{id}/possible_responses/{id} */
#define RESOURCE_PAGE_DEFAULT 25
#define RESOURCE_PAGE_MAX     100
#define RESOURCE_FIELDS_MAX   32
#define BLOCKED_BULK_MAX      10000  /* numbers in one POST /v1/blocked_numbers/bulk */
#define LIST_UPLOAD_PARTS_MAX 100000 /* parts of one list upload (schemas/sql/0003: the CHECK on part) */

typedef enum {
    FIELD_TEXT,      /* string of min..max bytes, no control characters except in long text */
    FIELD_LONG_TEXT, /* like TEXT but newlines and tabs allowed (Markdown) */
    FIELD_INT,       /* integer in min..max */
    FIELD_DECIMAL,   /* number in dmin..dmax */
    FIELD_BOOL,
    FIELD_ENUM,      /* one of choices; matched case-insensitively, stored as spelled in choices */
    FIELD_PHONE,     /* any common notation, stored as validated E.164 */
    FIELD_REF,       /* id of a row of `ref_table` of the same account */
    FIELD_TIME,      /* "HH:MM", 24-hour clock */
    FIELD_TIME_ZONE, /* IANA name known to the system's tz database */
    FIELD_NAMES,     /* array of up to max field names (letters, digits, '_'), stored as jsonb */
    FIELD_DIGITS,    /* string of min..max decimal digits (a PIN) */
    FIELD_PASSWORD,  /* min..max bytes, stored as an Argon2id hash in `column`, never rendered */
    FIELD_URL,       /* absolute http or https URL of at most max bytes */
    FIELD_JSON,      /* a JSON object of at most max members with string values (jsonb) */
    FIELD_TIMESTAMP, /* rendered as RFC 3339 UTC; read-only */
} field_type_t;

enum {
    F_REQUIRED = 1 << 0,  /* must be given on create */
    F_READONLY = 1 << 1,  /* rendered, never accepted */
    F_NULLABLE = 1 << 2,  /* null clears it */
    F_FILTER = 1 << 3,    /* usable as ?name=value on the collection */
    F_IMMUTABLE = 1 << 4, /* accepted on create only */
    F_DOTTED = 1 << 5,    /* FIELD_NAMES: names may also contain '.' (event types: call.ended) */
};

typedef struct resource_def resource_def_t;

typedef struct {
    const char *name;   /* API name */
    const char *column; /* column, or NULL when it is the API name */
    field_type_t type;
    unsigned flags;
    int64_t min, max;
    double dmin, dmax;
    const char *const *choices; /* FIELD_ENUM, NULL-terminated */
    const char *ref_table;      /* FIELD_REF */
    const char *ref_path;       /* FIELD_REF: collection path of the target, for links ("campaigns") */
    const char *doc;            /* one line for humans: parameters in `actions` and the docs */
    const char *select_sql;     /* rendering expression when not the column itself (must yield JSON for raw types) */
} field_def_t;

/*
 * The fields every delivery log shares (a webhook endpoint's deliveries, a call's callbacks): when
 * a pending delivery is tried next, when it settled, its last error, and every attempt, oldest
 * first, read `FROM attempts_from`: SQL naming the attempts `a`, with attempted_at, http_status,
 * error and duration_ms, and selecting those of the row.
 */
#define RESOURCE_DELIVERY_FIELDS(attempts_from)                                                                                    \
    {.name = "next_attempt_at", .type = FIELD_TIMESTAMP, .flags = F_READONLY, .doc = "When a pending delivery is tried next"},     \
        {.name = "settled_at", .type = FIELD_TIMESTAMP, .flags = F_READONLY, .doc = "When it was delivered or given up"},          \
        {.name = "last_error", .type = FIELD_TEXT, .flags = F_READONLY, .doc = "Why the last attempt failed"},                     \
    {                                                                                                                              \
        .name = "attempts", .type = FIELD_JSON, .flags = F_READONLY,                                                               \
        .doc = "Every attempt, oldest first: attempted_at, http_status (null without a response), error, duration_ms",             \
        .select_sql = "(SELECT coalesce(json_agg(json_build_object('attempted_at', to_char(a.attempted_at AT TIME ZONE 'UTC', "    \
                      "'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"'), 'http_status', a.http_status, 'error', a.error, "                     \
                      "'duration_ms', a.duration_ms) ORDER BY a.attempted_at), '[]'::json) FROM " attempts_from ")"                \
    }

/* A violated CHECK, UNIQUE or FOREIGN KEY constraint explained in the API's words. A NULL
 * message means the database's own message is the explanation (raised by our triggers). */
typedef struct {
    const char *constraint;
    const char *field;
    const char *message;
} constraint_def_t;

/* Context handed to custom action handlers and hooks. */
typedef struct {
    const route_ctx_t *route;
    const auth_account_t *account;
    const api_request_t *req;
    api_reply_t *reply;
    const resource_def_t *def;
    int64_t ids[RESOURCE_DEPTH_MAX + 1]; /* ancestors' ids, then the item's (when addressed) */
    int id_count;
} resource_call_t;

/* <method> <item uri>/<name>: a state change that is not a field update (campaign start, ...),
 * or a representation other than JSON (a message's audio, with method GET). */
typedef struct {
    const char *name;
    const char *doc;
    void (*handler)(resource_call_t *call);
    const char *method;
} action_def_t;

/* A related collection advertised in `resources`: `path` is appended to the item uri, or when
 * `filter_column` is set, the uri is /v1/<path>?<filter_column>=<this id>. */
typedef struct {
    const char *name;
    const char *path;
    const char *filter_column;
} link_def_t;

struct resource_def {
    const char *collection; /* path segment and collection name: "campaigns" */
    const char *singular;   /* "campaign" */
    const char *table;
    const resource_def_t *parent; /* nested under <parent item>/<collection> */
    const char *parent_column;    /* column holding the parent's id */
    const char *name_column;      /* rendered as `name` (and searched by ?q=) */
    const char *order_by;         /* list order, must end in a unique column; default "id" */
    const field_def_t *fields;
    size_t field_count;
    const constraint_def_t *constraints;
    size_t constraint_count;
    const action_def_t *actions; /* POST <item>/<name> */
    size_t action_count;
    const action_def_t *collection_actions; /* POST <collection>/<name> (bulk operations) */
    size_t collection_action_count;
    const link_def_t *links;
    size_t link_count;
    bool archivable;  /* DELETE archives (archived_at); lists hide archived rows unless ?archived= */
    bool no_update;   /* rows are replaced, never edited (custom fields) */
    bool read_only;   /* rows are made elsewhere (an import); GET only */
    bool append_only; /* created, read and acted on, never edited or deleted (a call's record) */
    /* Another path that also creates: POST /v1/<create_alias> (the brief's POST /v1/call). */
    const char *create_alias;
    /* Replaces the generic create, for bodies that are not fields (an audio upload). */
    void (*create)(resource_call_t *call);
    /* Replace the generic list and read, for rows that are not fields (the event log, paged by a
     * cursor rather than by page numbers). */
    void (*list)(resource_call_t *call);
    void (*read)(resource_call_t *call);
    /* Optional: called inside the write transaction after an insert or update succeeded, with
     * the new row's id in call->ids[call->id_count - 1]. 0, or -1 after filling call->reply. */
    int (*after_write)(resource_call_t *call);
};

/** Every resource, for the route table and the docs. NULL-terminated. */
extern const resource_def_t *const resource_defs[];

/** Resource definitions (one file each). */
extern const resource_def_t res_lists, res_list_import_errors, res_numbers, res_leads;
extern const resource_def_t res_calls, res_call_deliveries;
extern const resource_def_t res_events;
extern const resource_def_t res_webhook_secrets, res_webhook_endpoints, res_webhook_deliveries;
extern const resource_def_t res_caller_sessions;
extern const resource_def_t res_campaigns, res_messages, res_scripts, res_script_texts, res_questions, res_possible_responses,
    res_notes, res_transfers, res_custom_fields, res_caller_groups, res_callers, res_blocked_numbers;

/* Generic handlers, selected by the router. */
void resource_list(resource_call_t *call);
void resource_create(resource_call_t *call);
void resource_read(resource_call_t *call);
void resource_update(resource_call_t *call);
void resource_delete(resource_call_t *call);
void resource_restore(resource_call_t *call); /* POST <item>/restore of an archivable resource */

/**
 * Reads one row of the resource addressed by call->ids and renders it as the reply with
 * `status`. Used by action handlers after they changed a row. 404 if it does not exist.
 */
void resource_reply_row(resource_call_t *call, int status);

/**
 * Checks that every ancestor in call->ids exists in this account (scripts/7/questions/9 needs
 * question 9 to belong to script 7). 0, or -1 with a 404 (or 503) reply filled.
 */
int resource_check_parents(resource_call_t *call);

/**
 * A status change (start, pause, stop...): runs `update`, an UPDATE whose $1 is the account, $2
 * the addressed id and $3 the new status, with its single %s replaced by `from_statuses` (the
 * quoted statuses it may change from), then answers with the row (200). Idempotent by design: a
 * row already in the status is answered unchanged.
 */
void resource_set_status(resource_call_t *call, const char *update, const char *status, const char *from_statuses);

/**
 * A write transaction for custom handlers, as the generic writes use: BEGIN/COMMIT, or a
 * savepoint inside a request that already runs in a transaction (Idempotency-Key). Begin and
 * commit return 0, or -1 with a 503 reply filled.
 */
int resource_begin(resource_call_t *call);
int resource_commit(resource_call_t *call);
void resource_rollback(resource_call_t *call);

/** Fills a 503 reply for a database failure and logs it. */
void resource_reply_db_error(resource_call_t *call, PGresult *res);

/**
 * Runs `sql` with text parameters; the result is the caller's to PQclear. On failure (anything
 * but COMMAND_OK or TUPLES_OK) it maps constraint violations to 409/422 using the resource's
 * constraint table, anything else to 503, fills the reply and returns NULL.
 */
PGresult *resource_exec(resource_call_t *call, const char *sql, int nparams, const char *const *params);

/** The item path of the addressed resource ("/v1/scripts/7/questions/9"), into out. */
int resource_item_path(const resource_def_t *def, const int64_t *ids, int id_count, char *out, size_t size);

/** The collection path ("/v1/scripts/7/questions"), from the ancestors' ids. */
int resource_collection_path(const resource_def_t *def, const int64_t *ids, char *out, size_t size);

/** Nesting depth: 0 for top-level collections. */
int resource_depth(const resource_def_t *def);

#endif
