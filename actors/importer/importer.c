/*
 * The importer process: runs queued list imports one at a time, outside the request path (an
 * import of a million rows takes longer than any request may).
 *
 * Work is found in PostgreSQL, not handed over in messages: a list is claimed by setting its
 * status to 'importing' with this process's pid and a heartbeat, under FOR UPDATE SKIP LOCKED.
 * That makes the queue durable (nothing is lost with a crashed process) and lets any number of
 * importers share it. A store member sends NOTIFY list_import when it queues a list, which wakes
 * this loop at once; a poll every IMPORTER_POLL_MS catches anything missed. A list whose
 * heartbeat is older than IMPORTER_STALE_S, or whose importer's pid is gone on this host, is
 * taken over and resumes at its last committed batch.
 */
#include "actors/importer/importer.h"

#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "actors/importer/import.h"
#include "actors/importer/notify.h"
#include "actors/store/db.h"
#include "common/log.h"
#include "common/signals.h"

#define IMPORTER_POLL_MS 2000
#define IMPORTER_STALE_S 15

typedef struct {
    const char *database_url;
    bool allow_private_urls;
} importer_config_t;

typedef struct {
    zsock_t *pipe;
    PGconn *conn;
    const importer_config_t *config;
    bool stopping;
} importer_t;

/* Between batches: a $TERM on the pipe ends the import at a batch boundary. */
static bool s_should_stop(void *arg)
{
    importer_t *self = arg;
    if (!self->stopping && zsock_events(self->pipe) & ZMQ_POLLIN)
        self->stopping = true;
    return self->stopping || signals_stop_requested();
}

/* Lists left 'importing' by an importer of this host that no longer runs go back to the queue
 * at once, instead of waiting for their heartbeat to go stale. */
static void s_requeue_orphans(importer_t *self)
{
    PGresult *res = PQexec(self->conn, "SELECT id, worker_pid FROM lists WHERE status = 'importing'");
    for (int i = 0; PQresultStatus(res) == PGRES_TUPLES_OK && i < PQntuples(res); i++) {
        pid_t pid = (pid_t)strtol(PQgetvalue(res, i, 1), NULL, 10);
        if (pid > 0 && pid != getpid() && kill(pid, 0) == -1 && errno == ESRCH) {
            const char *p[] = {PQgetvalue(res, i, 0), PQgetvalue(res, i, 1)};
            PQclear(PQexecParams(self->conn,
                                 "UPDATE lists SET status = 'queued' WHERE id = $1 AND status = 'importing' AND worker_pid = $2", 2,
                                 NULL, p, NULL, NULL, 0));
            log_info("list=%s requeued: importer %s is gone", p[0], p[1]);
        }
    }
    PQclear(res);
}

/* Claims the oldest queued (or abandoned) list. 1 with the job filled, 0 if none, -1 on error. */
static int s_claim(importer_t *self, import_job_t *job, char **webhook)
{
    char pid[16], stale[16];
    snprintf(pid, sizeof(pid), "%d", (int)getpid());
    snprintf(stale, sizeof(stale), "%d", IMPORTER_STALE_S);
    const char *p[] = {pid, stale};
    PGresult *res = PQexecParams(self->conn,
                                 "UPDATE lists SET status = 'importing', worker_pid = $1, heartbeat_at = now(), "
                                 "started_at = coalesce(started_at, now()) "
                                 "WHERE id = (SELECT id FROM lists WHERE status = 'queued' OR (status = 'importing' AND "
                                 "heartbeat_at < now() - make_interval(secs => $2::int)) ORDER BY queued_at "
                                 "FOR UPDATE SKIP LOCKED LIMIT 1) "
                                 "RETURNING id, account_id, campaign_id, purpose, column_map::text, separator, resume_offset, "
                                 "resume_record, resume_line, webhook_url",
                                 2, NULL, p, NULL, NULL, 0);
    if (PQresultStatus(res) != PGRES_TUPLES_OK) {
        log_warn("claiming an import: %s", PQresultErrorMessage(res));
        PQclear(res);
        return -1;
    }
    if (PQntuples(res) == 0) {
        PQclear(res);
        return 0;
    }
    memset(job, 0, sizeof(*job));
    job->list_id = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
    job->account_id = strtoll(PQgetvalue(res, 0, 1), NULL, 10);
    job->campaign_id = strtoll(PQgetvalue(res, 0, 2), NULL, 10);
    snprintf(job->purpose, sizeof(job->purpose), "%s", PQgetvalue(res, 0, 3));
    job->column_map = strdup(PQgetvalue(res, 0, 4));
    const char *separator = PQgetvalue(res, 0, 5);
    job->separator = strcmp(separator, "tab") == 0 ? '\t' : separator[0];
    job->resume_offset = strtoll(PQgetvalue(res, 0, 6), NULL, 10);
    job->resume_record = strtoll(PQgetvalue(res, 0, 7), NULL, 10);
    job->resume_line = strtoll(PQgetvalue(res, 0, 8), NULL, 10);
    *webhook = PQgetisnull(res, 0, 9) ? NULL : strdup(PQgetvalue(res, 0, 9));
    PQclear(res);
    return job->column_map ? 1 : -1;
}

/* The list's final state, in the transaction that also drops its uploaded file. */
static void s_finish(importer_t *self, const import_job_t *job, import_result_t result, const char *failure)
{
    char list[24], pid[16];
    snprintf(list, sizeof(list), "%" PRId64, job->list_id);
    snprintf(pid, sizeof(pid), "%d", (int)getpid());
    const char *p[] = {list, pid, result == IMPORT_DONE ? "completed" : "failed", result == IMPORT_DONE ? NULL : failure};
    PGresult *res = PQexecParams(self->conn,
                                 "WITH l AS (UPDATE lists SET status = $3, failure = $4, finished_at = now(), "
                                 "bytes_done = CASE WHEN $3 = 'completed' THEN upload_bytes ELSE bytes_done END "
                                 "WHERE id = $1 AND status = 'importing' AND worker_pid = $2 RETURNING id) "
                                 "DELETE FROM list_upload_parts WHERE list_id IN (SELECT id FROM l) AND $3 = 'completed'",
                                 4, NULL, p, NULL, NULL, 0);
    if (PQresultStatus(res) != PGRES_COMMAND_OK)
        log_warn("list=%s finishing: %s", list, PQresultErrorMessage(res));
    PQclear(res);
}

static void s_run_one(importer_t *self)
{
    import_job_t job;
    char *webhook = NULL, failure[512] = "";
    if (s_claim(self, &job, &webhook) != 1)
        return;
    char ctx[48], list[24];
    snprintf(list, sizeof(list), "%" PRId64, job.list_id);
    snprintf(ctx, sizeof(ctx), "list=%s", list);
    log_line(LOG_LEVEL_INFO, ctx, "import %s (from byte %" PRId64 ")", job.resume_offset ? "resumed" : "started",
             job.resume_offset);
    import_result_t result =
        import_run(self->conn, self->config->database_url, &job, (int)getpid(), s_should_stop, self, failure, sizeof(failure));
    switch (result) {
    case IMPORT_DONE:
    case IMPORT_FAILED:
        s_finish(self, &job, result, failure);
        if (result == IMPORT_DONE)
            log_line(LOG_LEVEL_INFO, ctx, "import completed");
        else
            log_line(LOG_LEVEL_WARN, ctx, "import failed: %s", failure);
        if (webhook)
            notify_list_finished(self->conn, job.list_id, webhook, self->config->allow_private_urls);
        break;
    case IMPORT_STOPPED:
        /* Back to the queue so the next start picks it up at once. */
        PQclear(PQexecParams(self->conn, "UPDATE lists SET status = 'queued' WHERE id = $1 AND status = 'importing'", 1, NULL,
                             (const char *[]){list}, NULL, NULL, 0));
        log_line(LOG_LEVEL_INFO, ctx, "import paused for shutdown");
        break;
    case IMPORT_LOST:
        log_line(LOG_LEVEL_WARN, ctx, "import interrupted; it resumes from its last batch");
        break;
    }
    free(job.column_map);
    free(webhook);
}

static void s_importer_actor(zsock_t *pipe, void *args)
{
    const importer_config_t *config = args;
    char err[512];
    importer_t self = {.pipe = pipe, .config = config};
    self.conn = db_connect(config->database_url, err, sizeof(err));
    PGresult *listen = self.conn ? PQexec(self.conn, "LISTEN list_import") : NULL;
    bool ok = listen && PQresultStatus(listen) == PGRES_COMMAND_OK;
    PQclear(listen);
    if (!ok)
        log_error("%s", self.conn ? PQerrorMessage(self.conn) : err);
    zsock_signal(pipe, ok ? 0 : 1);
    if (!ok) {
        PQfinish(self.conn);
        return;
    }
    s_requeue_orphans(&self);
    while (!self.stopping) {
        /* Drain every queued list before sleeping: one notification may stand for several. */
        for (int budget = 64; budget > 0 && !s_should_stop(&self); budget--) {
            PGresult *pending = PQexec(self.conn, "SELECT 1 FROM lists WHERE status = 'queued' OR (status = 'importing' AND "
                                                  "heartbeat_at < now() - interval '15 seconds') LIMIT 1");
            bool more = PQresultStatus(pending) == PGRES_TUPLES_OK && PQntuples(pending) == 1;
            PQclear(pending);
            if (!more)
                break;
            s_run_one(&self);
        }
        if (PQstatus(self.conn) != CONNECTION_OK) {
            PQreset(self.conn);
            PQclear(PQexec(self.conn, "LISTEN list_import"));
        }
        zmq_pollitem_t items[] = {{zsock_resolve(pipe), 0, ZMQ_POLLIN, 0}, {NULL, PQsocket(self.conn), ZMQ_POLLIN, 0}};
        if (zmq_poll(items, 2, IMPORTER_POLL_MS) < 0 && errno != EINTR)
            break;
        if (items[0].revents & ZMQ_POLLIN)
            break; /* $TERM */
        PQconsumeInput(self.conn);
        PGnotify *n;
        while ((n = PQnotifies(self.conn)) != NULL)
            PQfreemem(n);
    }
    PQfinish(self.conn);
}

int importer_main(const impact_config_t *config)
{
    log_init("importer");
    signals_install();
    importer_config_t importer = {.database_url = config->database_url, .allow_private_urls = config->allow_private_urls};
    return signals_run_actor(s_importer_actor, &importer);
}
