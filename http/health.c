/*
 * GET /v1/health: the supervisor's process table, read from shared memory without a round trip
 * through the broker, so it still answers when the broker or the actors are down (which is when
 * it matters).
 *
 * The region is mapped per request and unmapped before answering: health checks are rare, and
 * a fresh mapping follows a supervisor that recreated the region. Everything read from it is
 * untrusted (a writer may have died mid-write): strings are bounded by their slot size and
 * reduced to printable ASCII, unknown states count as not running.
 */
#include <inttypes.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "http/problem.h"
#include "http/server.h"
#include "shm/stats.h"

static const char *s_state_name(uint32_t state)
{
    switch (state) {
    case SHM_PROC_EMPTY:
        return "empty";
    case SHM_PROC_STARTING:
        return "starting";
    case SHM_PROC_RUNNING:
        return "running";
    case SHM_PROC_BACKOFF:
        return "backoff";
    case SHM_PROC_STOPPING:
        return "stopping";
    case SHM_PROC_STOPPED:
        return "stopped";
    }
    return "unknown";
}

/* A bounded, printable copy of a fixed-size slot field that may lack its terminator. */
static json_t *s_slot_string(const char *field, size_t size)
{
    char buf[64];
    size_t len = strnlen(field, size < sizeof(buf) ? size : sizeof(buf) - 1);
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)field[i];
        buf[i] = c >= 0x20 && c < 0x7f ? (char)c : '?';
    }
    buf[len] = '\0';
    return json_string(buf);
}

static json_t *s_iso_time(int64_t unix_ms)
{
    if (unix_ms <= 0)
        return json_null();
    time_t secs = (time_t)(unix_ms / 1000);
    struct tm tm;
    if (gmtime_r(&secs, &tm) == NULL)
        return json_null();
    char buf[96]; /* room for any int fields, which keeps -Wformat-truncation quiet */
    snprintf(buf, sizeof(buf), "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour,
             tm.tm_min, tm.tm_sec, (int)(unix_ms % 1000));
    return json_string(buf);
}

/* The health document, or NULL when the region cannot be mapped. `*all_running` tells the status. */
static json_t *s_health(const char *shm_name, int *all_running)
{
    shm_region_t *region = shm_region_open(shm_name, false);
    if (region == NULL)
        return NULL;
    json_t *processes = json_array();
    *all_running = 1;
    for (uint32_t i = 0; i < SHM_PROC_SLOTS; i++) {
        shm_proc_t proc;
        if (shm_proc_read(region, i, &proc) != 0) {
            /* Torn by a writer that died mid-update: visible, and not healthy. */
            *all_running = 0;
            json_array_append_new(processes, json_pack("{s:i, s:s}", "slot", (int)i, "state", "unreadable"));
            continue;
        }
        if (proc.state == SHM_PROC_EMPTY)
            continue;
        if (proc.state != SHM_PROC_RUNNING)
            *all_running = 0;
        json_t *entry = json_object();
        json_object_set_new(entry, "role", s_slot_string(proc.role, sizeof(proc.role)));
        json_object_set_new(entry, "name", s_slot_string(proc.name, sizeof(proc.name)));
        json_object_set_new(entry, "pid", json_integer(proc.pid));
        json_object_set_new(entry, "state", json_string(s_state_name(proc.state)));
        json_object_set_new(entry, "restarts", json_integer(proc.restarts));
        json_object_set_new(entry, "started_at", s_iso_time(proc.started_unix_ms));
        json_array_append_new(processes, entry);
    }
    shm_region_destroy(&region);

    json_t *doc = json_object();
    json_object_set_new(doc, "status", json_string(*all_running ? "ok" : "degraded"));
    json_object_set_new(doc, "version", json_string(IMPACT_VERSION));
    json_object_set_new(doc, "processes", processes);
    return doc;
}

static int on_req(h2o_handler_t *self, h2o_req_t *req)
{
    /* The path matches "/v1/health" and everything below it; only the exact path exists. */
    if (!h2o_memis(req->path_normalized.base, req->path_normalized.len, H2O_STRLIT("/v1/health"))) {
        http_problem_send(req, 404, "not-found", "Not Found", "no such resource");
        return 0;
    }
    if (!h2o_memis(req->method.base, req->method.len, H2O_STRLIT("GET")) &&
        !h2o_memis(req->method.base, req->method.len, H2O_STRLIT("HEAD"))) {
        h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_ALLOW, NULL, H2O_STRLIT("GET, HEAD"));
        http_problem_send(req, 405, "method-not-allowed", "Method Not Allowed", "health is read-only");
        return 0;
    }

    int all_running = 0;
    json_t *doc = s_health(http_thread_of(req)->settings->shm_name, &all_running);
    if (doc == NULL) {
        http_problem_send(req, 503, "health-unavailable", "Service Unavailable", "the process table is not available");
        return 0;
    }
    char *text = json_dumps(doc, JSON_COMPACT | JSON_PRESERVE_ORDER);
    json_decref(doc);
    if (text == NULL) {
        http_problem_send(req, 500, "internal-error", "Internal Server Error", "cannot render the health document");
        return 0;
    }
    h2o_iovec_t body = h2o_iovec_init(text, strlen(text));

    http_response_init(req, all_running ? 200 : 503);
    h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_CONTENT_TYPE, NULL, H2O_STRLIT("application/json"));
    h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_CACHE_CONTROL, NULL, H2O_STRLIT("no-store"));
    char *page = http_negotiate(req, &body); /* linked from the root resource: browsers follow it */
    req->res.content_length = body.len;
    h2o_send_inline(req, body.base, body.len);
    free(page);
    free(text);
    return 0;
}

void http_health_register(h2o_pathconf_t *pathconf)
{
    h2o_handler_t *handler = h2o_create_handler(pathconf, sizeof(*handler));
    handler->on_req = on_req;
}
