/*
 * One list's import: its uploaded parts read as one CSV stream, each row checked and normalised
 * (phone to E.164 with its time zones, lead fields, custom fields), and the rows written in
 * batches. Each batch commits together with the list's progress and resume point, so a crash
 * costs at most the batch in flight and the next run continues after the last committed one.
 */
#ifndef IMPACT_IMPORTER_IMPORT_H
#define IMPACT_IMPORTER_IMPORT_H

#include <libpq-fe.h>
#include <stdbool.h>
#include <stdint.h>

#define IMPORT_BATCH_ROWS  20000
#define IMPORT_FIELD_MAX   1000 /* characters in one lead field */
#define IMPORT_MESSAGE_MAX 300
/* The most numbers (and the most leads with a custom_id) one campaign may have: an import keeps
 * the campaign's phones with their ids (16 bytes each) and fingerprints of its custom_ids (4
 * bytes) in memory (keyset.h: about 1.3 times that), so this bounds an importer at about 300 MiB. */
#define IMPORT_CAMPAIGN_NUMBERS_MAX 10000000

typedef enum {
    IMPORT_DONE = 0,     /* every row was read: the list is completed */
    IMPORT_FAILED = -1,  /* the file cannot be imported (header, map): the list is failed, with why */
    IMPORT_LOST = -2,    /* another importer took the list over, or the database went away: try later */
    IMPORT_STOPPED = -3, /* asked to stop between batches; the list resumes on the next start */
} import_result_t;

typedef struct {
    int64_t list_id, account_id, campaign_id;
    char purpose[16];
    char *column_map; /* JSON text */
    char separator;
    int64_t resume_offset, resume_record, resume_line;
} import_job_t;

/** True when the importer should stop at the next batch boundary (checked between batches). */
typedef bool(import_stop_fn)(void *arg);

/**
 * Runs `job` to its end: reads the file on `conn` (not in a transaction) and writes the rows on
 * a second connection to `database_url`, from a thread of its own, so normalising one batch
 * overlaps writing the previous one. On IMPORT_FAILED, `failure` says why in words for the
 * list's owner.
 */
import_result_t import_run(PGconn *conn, const char *database_url, const import_job_t *job, int worker_pid, import_stop_fn *stop,
                           void *stop_arg, char *failure, size_t failure_size);

#endif
