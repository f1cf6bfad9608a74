#include "common/problem.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

json_t *problem_new(int status, const char *slug, const char *title, const char *detail, const char *instance)
{
    char type[96];
    snprintf(type, sizeof(type), "/problems/%s", slug);
    json_t *p = json_pack("{s:s, s:s, s:i}", "type", type, "title", title, "status", status);
    if (p && detail)
        json_object_set_new(p, "detail", json_string(detail));
    if (p && instance)
        json_object_set_new(p, "instance", json_string(instance));
    return p;
}

void problem_add_error(json_t *problem, const char *field, const char *message)
{
    json_t *errors = json_object_get(problem, "errors");
    if (errors == NULL) {
        errors = json_array();
        json_object_set_new(problem, "errors", errors);
    }
    json_array_append_new(errors, json_pack("{s:s, s:s}", "field", field, "message", message));
}

char *problem_render(const json_t *problem, size_t *len)
{
    char *out = json_dumps(problem, JSON_COMPACT | JSON_PRESERVE_ORDER);
    if (out && len)
        *len = strlen(out);
    return out;
}
