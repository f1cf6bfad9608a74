#include "supervisor/credentials.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdbool.h>
#include <limits.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/log.h"

int credentials_create_account(PGconn *conn, const char *name, const char *label, credentials_t *out, char *err, size_t errlen)
{
    memset(out, 0, sizeof(*out));
    if (db_account_create(conn, name, &out->account_id, err, errlen) != 0)
        return -1;
    return db_api_key_create(conn, out->account_id, label, out->api_key, out->api_auth, err, errlen);
}

int credentials_write_file(const char *path, const credentials_t *creds, char *err, size_t errlen)
{
    /* Written next to its final name and renamed: a crash leaves either the old file or the new
     * one, and the secret is never readable by others, not even for a moment (0600 from open). */
    char tmp[PATH_MAX];
    if (snprintf(tmp, sizeof(tmp), "%s.tmp", path) >= (int)sizeof(tmp)) {
        snprintf(err, errlen, "path too long: %s", path);
        return -1;
    }
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (fd < 0) {
        snprintf(err, errlen, "cannot create %s: %s", tmp, strerror(errno));
        return -1;
    }
    char text[256];
    int n = snprintf(text, sizeof(text), "IMPACT_API_KEY=%s\nIMPACT_API_AUTH=%s\n", creds->api_key, creds->api_auth);
    bool ok = fchmod(fd, 0600) == 0 && write(fd, text, (size_t)n) == n && fsync(fd) == 0;
    int saved = errno;
    ok = close(fd) == 0 && ok;
    if (!ok || rename(tmp, path) != 0) {
        snprintf(err, errlen, "cannot write %s: %s", path, strerror(ok ? errno : saved));
        unlink(tmp);
        return -1;
    }
    return 0;
}

int credentials_read_key(const char *path, char *api_key, size_t size)
{
    FILE *f = fopen(path, "re");
    if (f == NULL)
        return -1;
    char line[256];
    int rc = -1;
    while (rc != 0 && fgets(line, sizeof(line), f)) {
        line[strcspn(line, "\r\n")] = '\0';
        if (strncmp(line, "IMPACT_API_KEY=", 15) == 0 && strlen(line + 15) < size) {
            snprintf(api_key, size, "%s", line + 15);
            rc = 0;
        }
    }
    fclose(f);
    return rc;
}

void credentials_print(FILE *out, const credentials_t *creds)
{
    fprintf(out, "IMPACT_ACCOUNT_ID=%" PRId64 "\nIMPACT_API_KEY=%s\nIMPACT_API_AUTH=%s\n", creds->account_id, creds->api_key,
            creds->api_auth);
    fflush(out);
}

int credentials_bootstrap(PGconn *conn, const char *data_dir, FILE *out, char *err, size_t errlen)
{
    char path[PATH_MAX];
    if (snprintf(path, sizeof(path), "%s/%s", data_dir, CREDENTIALS_DEV_FILE) >= (int)sizeof(path)) {
        snprintf(err, errlen, "data directory path too long");
        return -1;
    }
    int64_t accounts = db_account_count(conn);
    if (accounts < 0) {
        snprintf(err, errlen, "cannot count accounts: %s", PQerrorMessage(conn));
        return -1;
    }
    if (accounts > 0) {
        char key[DB_API_KEY_LEN + 1];
        if (credentials_read_key(path, key, sizeof(key)) == 0) {
            fprintf(out, "impactd: development API key %s; key and secret in %s\n", key, path);
            fflush(out);
        }
        return 0;
    }
    credentials_t creds;
    if (credentials_create_account(conn, CREDENTIALS_DEV_ACCOUNT, "development", &creds, err, errlen) != 0)
        return -1;
    if (credentials_write_file(path, &creds, err, errlen) != 0)
        return -1;
    log_info("created the %s account %" PRId64 "; credentials in %s", CREDENTIALS_DEV_ACCOUNT, creds.account_id, path);
    fprintf(out, "impactd: created the development account; its credentials (also in %s):\n", path);
    credentials_print(out, &creds);
    return 0;
}
