#include "tests/support.h"

#include "broker/client.h"

#include <arpa/inet.h>
#include <libpq-fe.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

static void s_ignore_notice(void *arg, const char *message) {}

static PGconn *s_admin(void)
{
    const char *url = getenv("IMPACT_TEST_DATABASE_URL");
    if (url == NULL || *url == '\0') {
        fprintf(stderr, "IMPACT_TEST_DATABASE_URL is not set: run the tests with scripts/test.sh\n");
        exit(1);
    }
    PGconn *conn = PQconnectdb(url);
    if (PQstatus(conn) != CONNECTION_OK) {
        fprintf(stderr, "cannot reach the test cluster: %s", PQerrorMessage(conn));
        exit(1);
    }
    PQsetNoticeProcessor(conn, s_ignore_notice, NULL);
    return conn;
}

static void s_exec(PGconn *conn, const char *sql)
{
    PGresult *res = PQexec(conn, sql);
    if (PQresultStatus(res) != PGRES_COMMAND_OK) {
        fprintf(stderr, "%s: %s", sql, PQerrorMessage(conn));
        exit(1);
    }
    PQclear(res);
}

char *support_db_create(const char *prefix)
{
    static int counter;
    char name[64], sql[160];
    snprintf(name, sizeof(name), "%s_%d_%d", prefix, (int)getpid(), counter++);
    PGconn *conn = s_admin();
    snprintf(sql, sizeof(sql), "DROP DATABASE IF EXISTS %s", name);
    s_exec(conn, sql);
    snprintf(sql, sizeof(sql), "CREATE DATABASE %s", name);
    s_exec(conn, sql);
    PQfinish(conn);
    char *conninfo = NULL;
    if (asprintf(&conninfo, "%s dbname=%s", getenv("IMPACT_TEST_DATABASE_URL"), name) < 0)
        exit(1);
    return conninfo;
}

void support_db_drop(char **conninfo_p)
{
    char *conninfo = *conninfo_p;
    if (conninfo == NULL)
        return;
    const char *name = strrchr(conninfo, '=');
    PGconn *conn = s_admin();
    char sql[160];
    snprintf(sql, sizeof(sql), "DROP DATABASE IF EXISTS %s WITH (FORCE)", name + 1);
    s_exec(conn, sql);
    PQfinish(conn);
    free(conninfo);
    *conninfo_p = NULL;
}

char *support_tmpdir(const char *prefix)
{
    char *path = NULL;
    if (asprintf(&path, "/tmp/%s.XXXXXX", prefix) < 0 || mkdtemp(path) == NULL)
        exit(1);
    chmod(path, 0755);
    return path;
}

void support_rmtree(char **path_p)
{
    char *path = *path_p;
    if (path == NULL)
        return;
    char *cmd = NULL;
    if (strncmp(path, "/tmp/", 5) == 0 && strstr(path, "..") == NULL && asprintf(&cmd, "rm -rf '%s'", path) > 0) {
        int ignored = system(cmd);
        (void)ignored;
    }
    free(cmd);
    free(path);
    *path_p = NULL;
}

int support_free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK), .sin_port = 0};
    socklen_t len = sizeof(addr);
    if (fd < 0 || bind(fd, (struct sockaddr *)&addr, sizeof(addr)) != 0 || getsockname(fd, (struct sockaddr *)&addr, &len) != 0)
        exit(1);
    close(fd);
    return ntohs(addr.sin_port);
}

typedef struct {
    int count;
    uint64_t corr;
    brk_status_t status;
    zframe_t *body;
} one_reply_t;

static void s_capture(void *arg, uint64_t corr, brk_status_t status, const void *body, size_t size)
{
    one_reply_t *r = arg;
    if (r->count++ == 0) {
        r->corr = corr;
        r->status = status;
        r->body = zframe_new(body, size);
    }
}

int support_recv_one(zsock_t *client, uint64_t *corr, brk_status_t *status, zframe_t **body)
{
    one_reply_t r = {.count = 0};
    if (brk_client_recv(client, s_capture, &r) != 1) {
        zframe_destroy(&r.body);
        return -1;
    }
    *corr = r.corr;
    *status = r.status;
    *body = r.body;
    return 0;
}
