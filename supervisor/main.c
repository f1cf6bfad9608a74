/*
 * impactd: one binary for every process of the server.
 *
 *   impactd [flags]                                       the supervisor (supervisor.h)
 *   impactd [flags] accounts create NAME [--label L]      an account and its first API key
 *   impactd [flags] keys create --account ID [--label L]  another API key for an account
 *   impactd --role broker|fanout|importer|http            a child process, started by the supervisor
 *   impactd --role store --index N
 *   impactd --role dialer --campaign ID                   one campaign's dialer, started by the supervisor
 *   impactd --version
 *
 * Flags and IMPACT_* variables are common/config.h's. A child gets its whole configuration from
 * the environment its supervisor exported, so its command line only names the role.
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>

#include "actors/dialer/dialer.h"
#include "actors/fanout/fanout.h"
#include "actors/importer/importer.h"
#include "actors/store/db.h"
#include "actors/store/store.h"
#include "broker/broker.h"
#include "common/config.h"
#include "common/log.h"
#include "http/http.h"
#include "supervisor/credentials.h"
#include "supervisor/supervisor.h"

#define EXIT_USAGE 2

/* The flags that belong to main rather than to config_parse. */
typedef struct {
    bool version;
    bool help;
    const char *role;
    const char *index;
    const char *campaign;
    const char *account;
    const char *label;
    int64_t account_id; /* --account, parsed */
} cli_t;

static void s_usage(FILE *out)
{
    fprintf(out, "usage: impactd [flags]                                   run the server\n"
                 "       impactd [flags] accounts create NAME [--label L]  create an account and an API key\n"
                 "       impactd [flags] keys create --account ID [--label L]\n"
                 "       impactd --version\n"
                 "flags: --data-dir DIR --listen HOST:PORT --tls-listen HOST:PORT|off --tls-cert FILE --tls-key FILE\n"
                 "       --database-url URL --http-threads N --store-workers N --max-body BYTES --allow-private-urls\n"
                 "       --rate-limit N --rate-burst N --sim-speed X --carrier sim --scenario FILE --app-dir DIR\n"
                 "       (each also read from IMPACT_<NAME>, e.g. IMPACT_DATA_DIR)\n");
}

static int s_usage_error(const char *fmt, const char *arg)
{
    fprintf(stderr, "impactd: ");
    fprintf(stderr, fmt, arg);
    fprintf(stderr, "\n");
    s_usage(stderr);
    return EXIT_USAGE;
}

/* Takes main's own flags out of argv (both "--flag value" and "--flag=value"), leaving the rest,
 * in order, for config_parse. Returns the new argc, or -1 when a flag lacks its value. */
static int s_extract_flags(int argc, char **argv, cli_t *cli, const char **bad)
{
    static const struct {
        const char *name;
        size_t offset;
    } valued[] = {
        {"--role", offsetof(cli_t, role)},       {"--index", offsetof(cli_t, index)}, {"--campaign", offsetof(cli_t, campaign)},
        {"--account", offsetof(cli_t, account)}, {"--label", offsetof(cli_t, label)},
    };
    int out = 1;
    for (int i = 1; i < argc; i++) {
        const char *arg = argv[i];
        if (strcmp(arg, "--version") == 0) {
            cli->version = true;
            continue;
        }
        if (strcmp(arg, "--help") == 0 || strcmp(arg, "-h") == 0) {
            cli->help = true;
            continue;
        }
        bool taken = false;
        for (size_t k = 0; k < sizeof(valued) / sizeof(valued[0]) && !taken; k++) {
            size_t n = strlen(valued[k].name);
            const char **slot = (const char **)((char *)cli + valued[k].offset);
            if (strncmp(arg, valued[k].name, n) != 0 || (arg[n] != '\0' && arg[n] != '='))
                continue;
            if (arg[n] == '=') {
                *slot = arg + n + 1;
            } else if (i + 1 < argc) {
                *slot = argv[++i];
            } else {
                *bad = valued[k].name;
                return -1;
            }
            taken = true;
        }
        if (!taken)
            argv[out++] = argv[i];
    }
    argv[out] = NULL;
    return out;
}

static int s_run_role(const impact_config_t *config, const char *role, const char *index, const char *campaign)
{
    /* Children are exec'd through /proc/self/exe, so the kernel names them "exe"; give ps, top
     * and perf a name that says what each process is. */
    char name[16];
    snprintf(name, sizeof(name), "impactd-%s", role);
    prctl(PR_SET_NAME, name);
    if (strcmp(role, "store") == 0) {
        char *end;
        long n = index ? strtol(index, &end, 10) : -1;
        if (index == NULL || *end != '\0' || n < 0 || n >= config->store_workers)
            return s_usage_error("--role store needs --index N (0 <= N < store workers), not %s", index ? index : "nothing");
        return store_main(config, (int)n);
    }
    if (index)
        return s_usage_error("--index goes with --role store only, not --role %s", role);
    if (strcmp(role, "dialer") == 0) {
        char *end = NULL;
        long long id = campaign ? strtoll(campaign, &end, 10) : 0;
        if (id <= 0 || *end != '\0')
            return s_usage_error("--role dialer needs --campaign ID (a positive number), not %s", campaign ? campaign : "nothing");
        return dialer_main(config, id);
    }
    if (campaign)
        return s_usage_error("--campaign goes with --role dialer only, not --role %s", role);
    if (strcmp(role, "broker") == 0)
        return broker_main(config);
    if (strcmp(role, "fanout") == 0)
        return fanout_main(config);
    if (strcmp(role, "importer") == 0)
        return importer_main(config);
    if (strcmp(role, "http") == 0)
        return http_main(config);
    return s_usage_error("unknown role %s", role);
}

/* Runs `command` with a migrated database (the embedded cluster started around it if needed). */
typedef int(db_command_fn)(PGconn *conn, const cli_t *cli, const char *operand, char *err, size_t errlen);

static int s_with_database(impact_config_t *config, db_command_fn *command, const cli_t *cli, const char *operand)
{
    log_init("impactd");
    char err[1024] = "";
    int rc = 1;
    PGconn *conn = NULL;
    supervisor_database_t *db = supervisor_database_acquire(config, err, sizeof(err));
    if (db == NULL)
        goto Exit;
    if ((conn = db_connect(config->database_url, err, sizeof(err))) == NULL || db_migrate(conn, err, sizeof(err)) < 0)
        goto Exit;
    rc = command(conn, cli, operand, err, sizeof(err));
Exit:
    if (rc != 0)
        log_error("%s", err);
    PQfinish(conn);
    supervisor_database_release(&db);
    return rc;
}

static int s_accounts_create(PGconn *conn, const cli_t *cli, const char *name, char *err, size_t errlen)
{
    credentials_t creds;
    if (credentials_create_account(conn, name, cli->label, &creds, err, errlen) != 0)
        return 1;
    credentials_print(stdout, &creds);
    return 0;
}

static int s_keys_create(PGconn *conn, const cli_t *cli, const char *unused, char *err, size_t errlen)
{
    credentials_t creds = {.account_id = cli->account_id};
    if (db_api_key_create(conn, creds.account_id, cli->label, creds.api_key, creds.api_auth, err, errlen) != 0)
        return 1;
    credentials_print(stdout, &creds);
    return 0;
}

int main(int argc, char **argv)
{
    cli_t cli = {0};
    const char *bad = NULL;
    argc = s_extract_flags(argc, argv, &cli, &bad);
    if (argc < 0)
        return s_usage_error("%s needs a value", bad);
    if (cli.version) {
        printf("impactd %s\n", IMPACT_VERSION);
        return 0;
    }
    if (cli.help) {
        s_usage(stdout);
        return 0;
    }

    impact_config_t config;
    char err[512];
    int first;
    if (config_parse(&config, argc, argv, &first, err, sizeof(err)) != 0)
        return s_usage_error("%s", err);
    if (first < argc && argv[first][0] == '-')
        return s_usage_error("unknown flag %s", argv[first]);
    int operands = argc - first;
    char **operand = argv + first;

    if (cli.role) {
        if (operands > 0 || cli.account || cli.label)
            return s_usage_error("--role takes no other arguments (%s)", operands > 0 ? operand[0] : "--account/--label");
        return s_run_role(&config, cli.role, cli.index, cli.campaign);
    }
    if (cli.index || cli.campaign)
        return s_usage_error("%s", cli.index ? "--index goes with --role store only" : "--campaign goes with --role dialer only");
    if (operands == 0) {
        if (cli.account || cli.label)
            return s_usage_error("%s", "--account and --label go with accounts create / keys create");
        return supervisor_run(&config);
    }
    if (operands == 3 && strcmp(operand[0], "accounts") == 0 && strcmp(operand[1], "create") == 0) {
        if (cli.account)
            return s_usage_error("%s", "accounts create takes no --account");
        return s_with_database(&config, s_accounts_create, &cli, operand[2]);
    }
    if (operands == 2 && strcmp(operand[0], "keys") == 0 && strcmp(operand[1], "create") == 0) {
        char *end = NULL;
        cli.account_id = cli.account ? strtoll(cli.account, &end, 10) : 0;
        if (cli.account_id <= 0 || *end != '\0')
            return s_usage_error("keys create needs --account ID (a positive number), not %s",
                                 cli.account ? cli.account : "nothing");
        return s_with_database(&config, s_keys_create, &cli, NULL);
    }
    return s_usage_error("unknown command: %s", operand[0]);
}
