/*
 * The HTTP front end (impactd --role http): h2o event loops that relay API requests to actors
 * through the broker and answer what needs no actor (health, static files) themselves.
 */
#ifndef IMPACT_HTTP_HTTP_H
#define IMPACT_HTTP_HTTP_H

#include <stddef.h>

#include "common/config.h"

/**
 * Runs the front end until SIGTERM (impactd --role http): listens on config->listen (HTTP/1.1,
 * h2c) and config->tls_listen (h2, HTTP/1.1; "off" disables), relays /v1 through the broker front
 * socket in config->run_dir, reads /v1/health from the region config->shm_name. Installs the
 * process's signal handling and dies with its parent. Returns the process exit code: 0 after a
 * clean stop, 1 when it could not start.
 */
int http_main(const impact_config_t *config);

/**
 * Makes a self-signed development certificate (P-256, CN=localhost, SAN localhost, 127.0.0.1,
 * ::1, valid one year) and its key (mode 0600) at the given paths, creating missing directories,
 * unless both files exist. 0, or -1 with a message in err.
 */
int http_tls_ensure_cert(const char *cert_path, const char *key_path, char *err, size_t errlen);

#endif
