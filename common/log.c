#include "common/log.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

static char s_role[64] = "impactd";
static log_level_t s_min_level = LOG_LEVEL_INFO;

void log_init(const char *role)
{
    snprintf(s_role, sizeof(s_role), "%s", role);
    const char *level = getenv("IMPACT_LOG_LEVEL");
    if (level == NULL)
        return;
    if (strcasecmp(level, "debug") == 0)
        s_min_level = LOG_LEVEL_DEBUG;
    else if (strcasecmp(level, "warn") == 0)
        s_min_level = LOG_LEVEL_WARN;
    else if (strcasecmp(level, "error") == 0)
        s_min_level = LOG_LEVEL_ERROR;
}

bool log_enabled(log_level_t level)
{
    return level >= s_min_level;
}

void log_vline(log_level_t level, const char *ctx, const char *fmt, va_list ap)
{
    static const char *names[] = {"DEBUG", "INFO ", "WARN ", "ERROR"};
    if (level < s_min_level)
        return;

    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    struct tm tm;
    gmtime_r(&now.tv_sec, &tm);

    char line[2048];
    int n = snprintf(line, sizeof(line), "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ %s %s[%d] %s%s", tm.tm_year + 1900, tm.tm_mon + 1,
                     tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, now.tv_nsec / 1000000, names[level], s_role, (int)getpid(),
                     ctx ? ctx : "", ctx ? " " : "");
    if (n < 0 || (size_t)n >= sizeof(line))
        n = (int)sizeof(line) - 2;
    int m = vsnprintf(line + n, sizeof(line) - (size_t)n - 1, fmt, ap);
    if (m < 0)
        m = 0;
    n += m;
    if ((size_t)n > sizeof(line) - 2)
        n = (int)sizeof(line) - 2;
    /* Control characters from the outside world (paths, user agents) must not forge log lines. */
    for (int i = 0; i < n; i++)
        if ((unsigned char)line[i] < 0x20)
            line[i] = ' ';
    line[n++] = '\n';
    ssize_t ignored = write(STDERR_FILENO, line, (size_t)n);
    (void)ignored;
}

void log_line(log_level_t level, const char *ctx, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    log_vline(level, ctx, fmt, ap);
    va_end(ap);
}
