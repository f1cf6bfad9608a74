#include "actors/importer/notify.h"

#include <arpa/inet.h>
#include <curl/curl.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "common/log.h"
#include "common/netguard.h"

static size_t s_discard(char *data, size_t size, size_t n, void *arg)
{
    return size * n;
}

/* One POST; the outcome as text for notify_status. true on a 2xx. */
static bool s_post(const char *url, const char *body, bool allow_private, char *outcome, size_t size)
{
    CURL *curl = curl_easy_init();
    if (curl == NULL) {
        snprintf(outcome, size, "failed: out of memory");
        return false;
    }
    struct curl_slist *headers = curl_slist_append(NULL, "Content-Type: application/json");
    netguard_curl(curl, url, (long)NOTIFY_TIMEOUT_MS, &allow_private);
    curl_easy_setopt(curl, CURLOPT_POSTFIELDS, body);
    curl_easy_setopt(curl, CURLOPT_HTTPHEADER, headers);
    curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, s_discard);
    CURLcode rc = curl_easy_perform(curl);
    long status = 0;
    if (rc == CURLE_OK)
        curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &status);
    if (rc != CURLE_OK)
        snprintf(outcome, size, "failed: %s", netguard_curl_error(rc, allow_private));
    else
        snprintf(outcome, size, "%s: HTTP %ld", status >= 200 && status < 300 ? "delivered" : "failed", status);
    curl_slist_free_all(headers);
    curl_easy_cleanup(curl);
    return rc == CURLE_OK && status >= 200 && status < 300;
}

void notify_list_finished(PGconn *conn, int64_t list_id, const char *url, bool allow_private)
{
    char list[24], outcome[256] = "failed: no body";
    snprintf(list, sizeof(list), "%" PRId64, list_id);
    const char *p[] = {list, outcome};
    PGresult *res = PQexecParams(
        conn,
        "SELECT json_build_object('type', 'list.import.' || status, 'occurred_at', "
        "to_char(finished_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"'), 'data', "
        "json_build_object('id', id, 'path', '/v1/lists/' || id, 'name', name, 'external_id', external_id, "
        "'campaign_id', campaign_id, 'status', status, 'rows_total', rows_total, 'rows_imported', "
        "rows_imported, 'rows_invalid', rows_invalid, 'rows_duplicate', rows_duplicate, 'rows_blocked', "
        "rows_blocked, 'rows_removed', rows_removed, 'failure', failure, 'errors_path', '/v1/lists/' || id || '/import_errors', "
        "'errors', (SELECT coalesce(json_agg(json_build_object('record', e.record, 'line', e.line, 'message', "
        "e.message) ORDER BY e.record), '[]') FROM (SELECT * FROM list_import_errors WHERE list_id = $1 "
        "ORDER BY record LIMIT " NOTIFY_ERRORS_INLINE ") e)))::text FROM lists WHERE id = $1",
        1, NULL, p, NULL, NULL, 0);
    if (PQresultStatus(res) == PGRES_TUPLES_OK && PQntuples(res) == 1) {
        const char *body = PQgetvalue(res, 0, 0);
        /* Quick retries only: a receiver down for longer sees the list's state through the API. */
        static const int backoff_ms[NOTIFY_ATTEMPTS] = {0, 500, 2000};
        for (int attempt = 0; attempt < NOTIFY_ATTEMPTS; attempt++) {
            usleep((useconds_t)backoff_ms[attempt] * 1000);
            if (s_post(url, body, allow_private, outcome, sizeof(outcome)))
                break;
        }
    }
    PQclear(res);
    log_line(strncmp(outcome, "delivered", 9) == 0 ? LOG_LEVEL_INFO : LOG_LEVEL_WARN, NULL, "list=%s notification %s", list,
             outcome);
    PQclear(
        PQexecParams(conn, "UPDATE lists SET notified_at = now(), notify_status = $2 WHERE id = $1", 2, NULL, p, NULL, NULL, 0));
}
