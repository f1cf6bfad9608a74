#include "actors/dialer/dbq.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"

typedef struct job_t {
    struct job_t *next;
    char *sql;
    int nparams;
    char *params[DBQ_PARAMS_MAX];
    dbq_done_fn *done;
    void *ctx;
} job_t;

struct dbq_t {
    PGconn *conn;
    job_t *head, *tail; /* head is the statement in flight when `sent` */
    size_t count;
    bool sent;
    PGresult *last; /* the in-flight statement's latest result */
};

dbq_t *dbq_new(PGconn *conn)
{
    dbq_t *self = calloc(1, sizeof(*self));
    if (self)
        self->conn = conn;
    return self;
}

static void s_job_free(job_t *job)
{
    free(job->sql);
    for (int i = 0; i < job->nparams; i++)
        free(job->params[i]);
    free(job);
}

/* Takes the head off the queue and reports `res` to it. */
static void s_complete(dbq_t *self, const PGresult *res, int64_t now_us)
{
    job_t *job = self->head;
    self->head = job->next;
    if (self->head == NULL)
        self->tail = NULL;
    self->count--;
    self->sent = false;
    job->done(job->ctx, res, now_us);
    s_job_free(job);
}

/* The connection broke: whatever it still returns is read off, and every statement fails. A
 * callback may queue more; those wait for the owner's reset and the next dbq_service. */
static void s_fail_all(dbq_t *self, int64_t now_us)
{
    if (self->sent) {
        PGresult *res;
        while ((res = PQgetResult(self->conn)) != NULL)
            PQclear(res);
    }
    PQclear(self->last);
    self->last = NULL;
    size_t failing = self->count;
    while (failing-- > 0 && self->head)
        s_complete(self, NULL, now_us);
}

void dbq_destroy(dbq_t **self_p)
{
    dbq_t *self = *self_p;
    if (self == NULL)
        return;
    s_fail_all(self, 0);
    free(self);
    *self_p = NULL;
}

static int s_send(dbq_t *self)
{
    job_t *job = self->head;
    if (PQsendQueryParams(self->conn, job->sql, job->nparams, NULL, (const char *const *)job->params, NULL, NULL, 0) != 1) {
        log_warn("sending a statement: %s", PQerrorMessage(self->conn));
        return -1;
    }
    self->sent = true;
    return 0;
}

int dbq_send(dbq_t *self, const char *sql, int nparams, const char *const *params, dbq_done_fn *done, void *ctx)
{
    if (nparams < 0 || nparams > DBQ_PARAMS_MAX)
        return -1;
    job_t *job = calloc(1, sizeof(*job));
    if (job == NULL || (job->sql = strdup(sql)) == NULL)
        goto Error;
    for (; job->nparams < nparams; job->nparams++)
        if (params[job->nparams] && (job->params[job->nparams] = strdup(params[job->nparams])) == NULL)
            goto Error;
    job->done = done;
    job->ctx = ctx;
    if (self->tail)
        self->tail->next = job;
    else
        self->head = job;
    self->tail = job;
    self->count++;
    /* a refused send is retried, and then failed, by the next dbq_service */
    if (!self->sent && self->head == job)
        s_send(self);
    return 0;
Error:
    if (job)
        s_job_free(job);
    return -1;
}

void dbq_service(dbq_t *self, int64_t now_us)
{
    while (self->head) {
        if (!self->sent && s_send(self) != 0) {
            s_fail_all(self, now_us);
            return;
        }
        if (!PQconsumeInput(self->conn)) {
            log_warn("reading results: %s", PQerrorMessage(self->conn));
            s_fail_all(self, now_us);
            return;
        }
        /* PQgetResult hands out each result of the statement, then NULL once it is complete */
        bool complete = false;
        while (!complete && !PQisBusy(self->conn)) {
            PGresult *res = PQgetResult(self->conn);
            if (res == NULL) {
                complete = true;
            } else {
                PQclear(self->last);
                self->last = res;
            }
        }
        if (!complete)
            return;
        PGresult *res = self->last;
        self->last = NULL;
        s_complete(self, res, now_us);
        PQclear(res);
    }
}

void dbq_abort(dbq_t *self, int64_t now_us)
{
    s_fail_all(self, now_us);
}

int dbq_drain(dbq_t *self, int64_t now_us)
{
    while (self->head) {
        if (!self->sent && s_send(self) != 0) {
            s_fail_all(self, now_us);
            return -1;
        }
        PGresult *res;
        while ((res = PQgetResult(self->conn)) != NULL) {
            PQclear(self->last);
            self->last = res;
        }
        res = self->last;
        self->last = NULL;
        bool broken = res == NULL || PQstatus(self->conn) != CONNECTION_OK;
        s_complete(self, broken ? NULL : res, now_us);
        PQclear(res);
        if (broken) {
            s_fail_all(self, now_us);
            return -1;
        }
    }
    return 0;
}

size_t dbq_pending(const dbq_t *self)
{
    return self->count;
}
