/*
 * One line per event on stderr: UTC time, level, role[pid], optional context, message.
 *
 *   2026-11-28T08:50:01.123Z INFO  store[4242] req=7f3a... account 12 authenticated
 *
 * The role is set once per process; the campaign (dialer processes) is part of the role
 * ("dialer:42") so every line a dialer writes names its campaign without the caller repeating it.
 * Lines are written with a single write(2) so lines from several processes sharing stderr never
 * interleave mid-line.
 */
#ifndef IMPACT_COMMON_LOG_H
#define IMPACT_COMMON_LOG_H

#include <stdarg.h>
#include <stdbool.h>

typedef enum { LOG_LEVEL_DEBUG, LOG_LEVEL_INFO, LOG_LEVEL_WARN, LOG_LEVEL_ERROR } log_level_t;

/** Sets the role shown on every line (copied). Level from IMPACT_LOG_LEVEL (debug|info|warn|error). */
void log_init(const char *role);

/** True if lines of `level` are written; lets a hot path skip building a context it would drop. */
bool log_enabled(log_level_t level);

/** Writes one line. `ctx` is a short "key=value" context such as "req=abc"; NULL for none. */
void log_line(log_level_t level, const char *ctx, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
void log_vline(log_level_t level, const char *ctx, const char *fmt, va_list ap);

#define log_debug(...) log_line(LOG_LEVEL_DEBUG, NULL, __VA_ARGS__)
#define log_info(...)  log_line(LOG_LEVEL_INFO, NULL, __VA_ARGS__)
#define log_warn(...)  log_line(LOG_LEVEL_WARN, NULL, __VA_ARGS__)
#define log_error(...) log_line(LOG_LEVEL_ERROR, NULL, __VA_ARGS__)

#endif
