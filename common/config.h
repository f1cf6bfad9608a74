/*
 * Process configuration shared by impactd and every child role.
 *
 * The supervisor resolves flags, environment and defaults once (config_parse), then exports the
 * resolved values to its children through IMPACT_* environment variables (config_export) so a
 * child sees exactly what its parent decided, including the generated run directory and
 * shared-memory name.
 *
 *   flag                 environment            default
 *   --data-dir DIR       IMPACT_DATA_DIR        <source tree>/data
 *   --listen H:P         IMPACT_LISTEN          127.0.0.1:8080   (HTTP/1.1 and h2c)
 *   --tls-listen H:P     IMPACT_TLS_LISTEN      127.0.0.1:8443   (h2 and HTTP/1.1 over TLS; "off" disables)
 *   --tls-cert FILE      IMPACT_TLS_CERT        DATA_DIR/tls/cert.pem (made on first start)
 *   --tls-key FILE       IMPACT_TLS_KEY         DATA_DIR/tls/key.pem
 *   --database-url URL   IMPACT_DATABASE_URL    embedded cluster in DATA_DIR/pg
 *   --http-threads N     IMPACT_HTTP_THREADS    number of cores
 *   --store-workers N    IMPACT_STORE_WORKERS   2
 *   --max-body BYTES     IMPACT_MAX_BODY        1048576
 *   --allow-private-urls IMPACT_ALLOW_PRIVATE_URLS=1
 *   --rate-limit N       IMPACT_RATE_LIMIT      100   (requests per second per API key or client address; 0: off)
 *   --rate-burst N       IMPACT_RATE_BURST      200   (requests a full bucket admits at once)
 *   --sim-speed X        IMPACT_SIM_SPEED       1     (dialers' clock: X simulated seconds per real second)
 *   --carrier NAME       IMPACT_CARRIER         sim   (the only carrier so far)
 *   --scenario FILE      IMPACT_SCENARIO        built-in defaults (the simulated carrier's and callers' scenario)
 *   --app-dir DIR        IMPACT_APP_DIR         <source tree>/apps/caller (the ImpactDialer app served at /app/)
 *   (internal)           IMPACT_RUN_DIR, IMPACT_SHM_NAME
 */
#ifndef IMPACT_COMMON_CONFIG_H
#define IMPACT_COMMON_CONFIG_H

#include <limits.h>
#include <stdbool.h>
#include <stddef.h>

#define CONFIG_RUN_DIR_MAX   80 /* leaves room for socket names inside sun_path's 108 bytes */
#define CONFIG_SIM_SPEED_MAX 10000

typedef struct {
    char data_dir[PATH_MAX];
    char listen[128];
    char tls_listen[128];
    char tls_cert[PATH_MAX];
    char tls_key[PATH_MAX];
    char database_url[1024]; /* empty: embedded cluster */
    int http_threads;
    int store_workers;
    size_t max_body;
    bool allow_private_urls;
    int rate_limit; /* per second per client (http/ratelimit.h); 0: no limit */
    int rate_burst;
    double sim_speed;
    char carrier[16];
    char scenario[PATH_MAX]; /* empty: scenario_defaults */
    char app_dir[PATH_MAX];
    char run_dir[CONFIG_RUN_DIR_MAX];
    char shm_name[64];
} impact_config_t;

/**
 * Fills `config` from defaults, then the environment, then argv (flags win). Unknown flags and
 * bad values are errors. Subcommands and --role are left for the caller: `*first_operand` gets
 * the index of the first argument that is not a recognised flag (argc if none).
 */
int config_parse(impact_config_t *config, int argc, char **argv, int *first_operand, char *err, size_t errlen);

/** Exports the resolved configuration as IMPACT_* environment variables for children. */
int config_export(const impact_config_t *config);

/** Builds "ipc://RUN_DIR/NAME" into buf. */
int config_endpoint(const impact_config_t *config, const char *name, char *buf, size_t size);

/** Splits "host:port" ("[v6]:port" too). 0 or -1. */
int config_split_hostport(const char *hostport, char *host, size_t host_size, int *port);

#endif
