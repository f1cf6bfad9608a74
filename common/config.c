#include "common/config.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static int s_set_str(char *dst, size_t size, const char *value, const char *what, char *err, size_t errlen)
{
    if (strlen(value) >= size) {
        snprintf(err, errlen, "%s is too long (at most %zu bytes)", what, size - 1);
        return -1;
    }
    snprintf(dst, size, "%s", value);
    return 0;
}

static int s_set_int(long *dst, const char *value, long min, long max, const char *what, char *err, size_t errlen)
{
    char *end;
    errno = 0;
    long v = strtol(value, &end, 10);
    if (errno || end == value || *end != '\0' || v < min || v > max) {
        snprintf(err, errlen, "%s must be an integer from %ld to %ld", what, min, max);
        return -1;
    }
    *dst = v;
    return 0;
}

/* Doubles are rates and factors: the lower bound is exclusive (a speed of 0 is no clock). */
static int s_set_double(double *dst, const char *value, double above, double max, const char *what, char *err, size_t errlen)
{
    char *end;
    errno = 0;
    double v = strtod(value, &end);
    if (errno || end == value || *end != '\0' || !(v > above && v <= max)) {
        snprintf(err, errlen, "%s must be a number above %g and at most %g", what, above, max);
        return -1;
    }
    *dst = v;
    return 0;
}

/* One table drives flags and environment alike so the two can never disagree. */
typedef enum { OPT_STR, OPT_INT, OPT_BOOL, OPT_DOUBLE } opt_kind_t;
typedef struct {
    const char *flag;
    const char *env;
    opt_kind_t kind;
    size_t offset;
    size_t size;
    long min, max;
} option_t;

#define STR_OPT(f, e, field)                                                                                                       \
    {                                                                                                                              \
        f, e, OPT_STR, offsetof(impact_config_t, field), sizeof(((impact_config_t *)0)->field), 0, 0                               \
    }
static const option_t s_options[] = {
    STR_OPT("--data-dir", "IMPACT_DATA_DIR", data_dir),
    STR_OPT("--listen", "IMPACT_LISTEN", listen),
    STR_OPT("--tls-listen", "IMPACT_TLS_LISTEN", tls_listen),
    STR_OPT("--tls-cert", "IMPACT_TLS_CERT", tls_cert),
    STR_OPT("--tls-key", "IMPACT_TLS_KEY", tls_key),
    STR_OPT("--database-url", "IMPACT_DATABASE_URL", database_url),
    STR_OPT(NULL, "IMPACT_RUN_DIR", run_dir),
    STR_OPT(NULL, "IMPACT_SHM_NAME", shm_name),
    {"--http-threads", "IMPACT_HTTP_THREADS", OPT_INT, offsetof(impact_config_t, http_threads), sizeof(int), 1, 64},
    {"--store-workers", "IMPACT_STORE_WORKERS", OPT_INT, offsetof(impact_config_t, store_workers), sizeof(int), 1, 32},
    {"--max-body", "IMPACT_MAX_BODY", OPT_INT, offsetof(impact_config_t, max_body), sizeof(size_t), 1024, 268435456},
    {"--allow-private-urls", "IMPACT_ALLOW_PRIVATE_URLS", OPT_BOOL, offsetof(impact_config_t, allow_private_urls), sizeof(bool), 0,
     1},
    {"--rate-limit", "IMPACT_RATE_LIMIT", OPT_INT, offsetof(impact_config_t, rate_limit), sizeof(int), 0, 1000000},
    {"--rate-burst", "IMPACT_RATE_BURST", OPT_INT, offsetof(impact_config_t, rate_burst), sizeof(int), 1, 1000000},
    {"--sim-speed", "IMPACT_SIM_SPEED", OPT_DOUBLE, offsetof(impact_config_t, sim_speed), sizeof(double), 0, CONFIG_SIM_SPEED_MAX},
    STR_OPT("--carrier", "IMPACT_CARRIER", carrier),
    STR_OPT("--scenario", "IMPACT_SCENARIO", scenario),
    STR_OPT("--app-dir", "IMPACT_APP_DIR", app_dir),
};
#define OPTION_COUNT (sizeof(s_options) / sizeof(s_options[0]))

static int s_apply(impact_config_t *config, const option_t *o, const char *value, const char *what, char *err, size_t errlen)
{
    char *field = (char *)config + o->offset;
    long v;
    switch (o->kind) {
    case OPT_STR:
        return s_set_str(field, o->size, value, what, err, errlen);
    case OPT_INT:
        if (s_set_int(&v, value, o->min, o->max, what, err, errlen) != 0)
            return -1;
        if (o->size == sizeof(int))
            *(int *)field = (int)v;
        else
            *(size_t *)field = (size_t)v;
        return 0;
    case OPT_BOOL:
        *(bool *)field = strcmp(value, "1") == 0 || strcmp(value, "true") == 0 || strcmp(value, "yes") == 0;
        return 0;
    case OPT_DOUBLE:
        if (s_set_double((double *)field, value, (double)o->min, (double)o->max, what, err, errlen) != 0)
            return -1;
        return 0;
    }
    return -1;
}

int config_parse(impact_config_t *config, int argc, char **argv, int *first_operand, char *err, size_t errlen)
{
    memset(config, 0, sizeof(*config));
    snprintf(config->data_dir, sizeof(config->data_dir), "%s/data", IMPACT_SOURCE_DIR);
    snprintf(config->app_dir, sizeof(config->app_dir), "%s/apps/caller", IMPACT_SOURCE_DIR);
    snprintf(config->listen, sizeof(config->listen), "127.0.0.1:8080");
    snprintf(config->tls_listen, sizeof(config->tls_listen), "127.0.0.1:8443");
    long cores = sysconf(_SC_NPROCESSORS_ONLN);
    config->http_threads = cores > 0 && cores < 64 ? (int)cores : 2;
    config->store_workers = 2;
    config->max_body = 1048576;
    config->rate_limit = 100;
    config->rate_burst = 200;
    config->sim_speed = 1.0;
    snprintf(config->carrier, sizeof(config->carrier), "sim");

    for (size_t i = 0; i < OPTION_COUNT; i++) {
        const char *value = getenv(s_options[i].env);
        if (value && *value && s_apply(config, &s_options[i], value, s_options[i].env, err, errlen) != 0)
            return -1;
    }

    int i = 1;
    for (; i < argc; i++) {
        const char *arg = argv[i];
        if (strncmp(arg, "--", 2) != 0)
            break;
        const char *eq = strchr(arg, '=');
        size_t name_len = eq ? (size_t)(eq - arg) : strlen(arg);
        const option_t *o = NULL;
        for (size_t k = 0; k < OPTION_COUNT; k++)
            if (s_options[k].flag && strlen(s_options[k].flag) == name_len && strncmp(s_options[k].flag, arg, name_len) == 0)
                o = &s_options[k];
        if (o == NULL)
            break; /* --role, --version and the like belong to the caller */
        const char *value;
        if (o->kind == OPT_BOOL && eq == NULL) {
            value = "1";
        } else if (eq) {
            value = eq + 1;
        } else if (i + 1 < argc) {
            value = argv[++i];
        } else {
            snprintf(err, errlen, "%s needs a value", o->flag);
            return -1;
        }
        if (s_apply(config, o, value, o->flag, err, errlen) != 0)
            return -1;
    }
    *first_operand = i;

    if (strcmp(config->carrier, "sim") != 0) {
        snprintf(err, errlen, "--carrier must be sim (the only carrier so far), not %s", config->carrier);
        return -1;
    }

    if (config->tls_cert[0] == '\0')
        snprintf(config->tls_cert, sizeof(config->tls_cert), "%.*s/tls/cert.pem", PATH_MAX - 16, config->data_dir);
    if (config->tls_key[0] == '\0')
        snprintf(config->tls_key, sizeof(config->tls_key), "%.*s/tls/key.pem", PATH_MAX - 16, config->data_dir);
    return 0;
}

int config_export(const impact_config_t *config)
{
    char buf[64];
    for (size_t i = 0; i < OPTION_COUNT; i++) {
        const option_t *o = &s_options[i];
        const char *field = (const char *)config + o->offset;
        const char *value = buf;
        if (o->kind == OPT_STR)
            value = field;
        else if (o->kind == OPT_INT)
            snprintf(buf, sizeof(buf), "%lld",
                     o->size == sizeof(int) ? (long long)*(const int *)field : (long long)*(const size_t *)field);
        else if (o->kind == OPT_DOUBLE)
            snprintf(buf, sizeof(buf), "%.17g", *(const double *)field);
        else
            value = *(const bool *)field ? "1" : "0";
        if (setenv(o->env, value, 1) != 0)
            return -1;
    }
    return 0;
}

int config_endpoint(const impact_config_t *config, const char *name, char *buf, size_t size)
{
    int n = snprintf(buf, size, "ipc://%s/%s", config->run_dir, name);
    return n < 0 || (size_t)n >= size ? -1 : 0;
}

int config_split_hostport(const char *hostport, char *host, size_t host_size, int *port)
{
    const char *colon = strrchr(hostport, ':');
    if (colon == NULL || colon == hostport)
        return -1;
    const char *h = hostport;
    size_t hlen = (size_t)(colon - hostport);
    if (h[0] == '[' && hlen >= 2 && h[hlen - 1] == ']') {
        h++;
        hlen -= 2;
    }
    if (hlen == 0 || hlen >= host_size)
        return -1;
    char *end;
    long p = strtol(colon + 1, &end, 10);
    if (*end != '\0' || end == colon + 1 || p < 0 || p > 65535)
        return -1;
    memcpy(host, h, hlen);
    host[hlen] = '\0';
    *port = (int)p;
    return 0;
}
