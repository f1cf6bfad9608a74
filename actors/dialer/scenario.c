#include "actors/dialer/scenario.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

void scenario_defaults(scenario_t *s)
{
    *s = (scenario_t){
        .agents = 25,
        .hours = 8.0,
        .seed = 0,
        .p_human = 0.20,
        .p_machine = 0.35,
        .p_noans = 0.30,
        .ring_h_mean = 10.0,
        .ring_h_cv = 0.5,
        .ring_m_mean = 22.0,
        .ring_m_cv = 0.25,
        .ring_timeout = 25.0,
        .fail_mean = 4.0,
        .fail_cv = 0.5,
        .greet_mean = 1.0,
        .greet_cv = 0.5,
        .grace = 2.0,
        .talk_mean = 120.0,
        .talk_cv = 1.0,
        .wrap_mean = 15.0,
        .wrap_cv = 0.5,
        .machine_handle = 8.0,
        .machine_wrap = 5.0,
        .preview_mean = 15.0,
        .preview_cv = 0.5,
        .amd = false,
        .amd_post = 0.8,
        .amd_fp = 0.03,
        .amd_fn = 0.15,
        .drift_at_hours = 0.0,
        .drift_p_human = 0.0,
        .logout_at_hours = 0.0,
        .logout_fraction = 0.0,
        .cps = 0.0,
        .lost_status = 0.0,
        .message_seconds = 6.0,
        .max_lines_per_agent = 6.0,
    };
}

typedef enum { NUMBER, COUNT, FLAG } kind_t;

typedef struct {
    const char *key;
    kind_t kind;
    size_t offset;
    double min, max;
} field_t;

#define F(name, kind, lo, hi)                                                                                                      \
    {                                                                                                                              \
#name, kind, offsetof(scenario_t, name), lo, hi                                                                            \
    }
static const field_t fields[] = {
    F(agents, COUNT, 1, 100000),
    F(hours, NUMBER, 0.001, 24 * 31),
    F(seed, COUNT, 0, 1e15),
    F(p_human, NUMBER, 0, 1),
    F(p_machine, NUMBER, 0, 1),
    F(p_noans, NUMBER, 0, 1),
    F(ring_h_mean, NUMBER, 0.1, 600),
    F(ring_h_cv, NUMBER, 0, 10),
    F(ring_m_mean, NUMBER, 0.1, 600),
    F(ring_m_cv, NUMBER, 0, 10),
    F(ring_timeout, NUMBER, 1, 600),
    F(fail_mean, NUMBER, 0.1, 600),
    F(fail_cv, NUMBER, 0, 10),
    F(greet_mean, NUMBER, 0.01, 60),
    F(greet_cv, NUMBER, 0, 10),
    F(grace, NUMBER, 0, 60),
    F(talk_mean, NUMBER, 0.1, 36000),
    F(talk_cv, NUMBER, 0, 10),
    F(wrap_mean, NUMBER, 0, 3600),
    F(wrap_cv, NUMBER, 0, 10),
    F(machine_handle, NUMBER, 0, 3600),
    F(machine_wrap, NUMBER, 0, 3600),
    F(preview_mean, NUMBER, 0.1, 3600),
    F(preview_cv, NUMBER, 0, 10),
    F(amd, FLAG, 0, 1),
    F(amd_post, NUMBER, 0, 60),
    F(amd_fp, NUMBER, 0, 1),
    F(amd_fn, NUMBER, 0, 1),
    F(drift_at_hours, NUMBER, 0, 24 * 31),
    F(drift_p_human, NUMBER, 0, 1),
    F(logout_at_hours, NUMBER, 0, 24 * 31),
    F(logout_fraction, NUMBER, 0, 1),
    F(cps, NUMBER, 0, 100000),
    F(lost_status, NUMBER, 0, 1),
    F(message_seconds, NUMBER, 0, 600),
    F(max_lines_per_agent, NUMBER, 1, 100),
};
#undef F

static char *trim(char *s)
{
    while (isspace((unsigned char)*s))
        s++;
    char *end = s + strlen(s);
    while (end > s && isspace((unsigned char)end[-1]))
        *--end = '\0';
    return s;
}

int scenario_set(scenario_t *scenario, const char *assignment, char *err, size_t err_size)
{
    char line[256];
    if (strlen(assignment) >= sizeof line) {
        snprintf(err, err_size, "line longer than %zu characters", sizeof line - 1);
        return -1;
    }
    strcpy(line, assignment);
    char *eq = strchr(line, '=');
    if (!eq) {
        snprintf(err, err_size, "expected key=value, got \"%s\"", trim(line));
        return -1;
    }
    *eq = '\0';
    char *key = trim(line), *value = trim(eq + 1);
    const field_t *field = NULL;
    for (size_t i = 0; i < sizeof fields / sizeof fields[0]; i++)
        if (strcmp(fields[i].key, key) == 0)
            field = &fields[i];
    if (!field) {
        snprintf(err, err_size, "unknown scenario key \"%s\"", key);
        return -1;
    }
    char *at = (char *)scenario + field->offset;
    if (field->kind == FLAG) {
        if (strcasecmp(value, "true") == 0 || strcmp(value, "1") == 0)
            *(bool *)at = true;
        else if (strcasecmp(value, "false") == 0 || strcmp(value, "0") == 0)
            *(bool *)at = false;
        else {
            snprintf(err, err_size, "%s must be true or false, got \"%s\"", key, value);
            return -1;
        }
        return 0;
    }
    char *end;
    errno = 0;
    double number = strtod(value, &end);
    if (errno || end == value || *end || !isfinite(number) || number < field->min || number > field->max ||
        (field->kind == COUNT && number != floor(number))) {
        snprintf(err, err_size, "%s must be a%s number in [%g, %g], got \"%s\"", key, field->kind == COUNT ? " whole" : "",
                 field->min, field->max, value);
        return -1;
    }
    if (field->kind == NUMBER)
        *(double *)at = number;
    else if (field->offset == offsetof(scenario_t, agents))
        *(uint32_t *)at = (uint32_t)number;
    else
        *(uint64_t *)at = (uint64_t)number;
    return 0;
}

int scenario_load(scenario_t *scenario, const char *path, char *err, size_t err_size)
{
    FILE *file = fopen(path, "r");
    if (!file) {
        snprintf(err, err_size, "%s: %s", path, strerror(errno));
        return -1;
    }
    char line[512], why[256];
    int number = 0, rc = 0;
    long total = 0;
    while (fgets(line, sizeof line, file)) {
        number++;
        total += (long)strlen(line);
        if (total > 64 * 1024) {
            snprintf(err, err_size, "%s: larger than 64 KiB", path);
            rc = -1;
            break;
        }
        char *hash = strchr(line, '#');
        if (hash)
            *hash = '\0';
        char *content = trim(line);
        if (!*content)
            continue;
        if (scenario_set(scenario, content, why, sizeof why) < 0) {
            snprintf(err, err_size, "%s:%d: %s", path, number, why);
            rc = -1;
            break;
        }
    }
    fclose(file);
    return rc < 0 ? rc : scenario_check(scenario, err, err_size);
}

int scenario_check(const scenario_t *s, char *err, size_t err_size)
{
    if (s->p_human + s->p_machine + s->p_noans > 1.0 + 1e-9) {
        snprintf(err, err_size, "p_human + p_machine + p_noans is %g, more than 1", s->p_human + s->p_machine + s->p_noans);
        return -1;
    }
    if (s->drift_at_hours > 0 && s->drift_p_human + s->p_machine + s->p_noans > 1.0 + 1e-9) {
        snprintf(err, err_size, "drift_p_human + p_machine + p_noans is more than 1");
        return -1;
    }
    return 0;
}

double scenario_p_human_at(const scenario_t *s, double hours_into_shift)
{
    if (s->drift_at_hours > 0 && hours_into_shift >= s->drift_at_hours)
        return s->drift_p_human;
    return s->p_human;
}
