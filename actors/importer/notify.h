/*
 * The upload notification of a list: one POST of the list's final state to its webhook_url when
 * its import ends, with its first row errors (all of them are under errors_path). A small, direct delivery with a few quick retries
 * and the outcome recorded on the list (notified_at, notify_status); durable, signed event delivery with long retry schedules is
 * the fan-out actor's job.
 *
 * Requests go only to public addresses unless --allow-private-urls is set: the URL is chosen by
 * an API client, and without the check it could make this server reach its own network (SSRF).
 * The check is made on the address actually connected to, so DNS answers cannot slip past it.
 */
#ifndef IMPACT_IMPORTER_NOTIFY_H
#define IMPACT_IMPORTER_NOTIFY_H

#include <libpq-fe.h>
#include <stdbool.h>
#include <stdint.h>

#define NOTIFY_ATTEMPTS      3
#define NOTIFY_TIMEOUT_MS    5000
#define NOTIFY_ERRORS_INLINE "100" /* row errors carried in the body; the rest are at errors_path */

/** Posts the list's state to `url` and records the outcome on the list. */
void notify_list_finished(PGconn *conn, int64_t list_id, const char *url, bool allow_private);

#endif
