/*
 * RFC 9457 problem details, the one error format of the whole API. Both the HTTP front end
 * (errors it decides itself: 404 outside /v1, 413, 503, 504) and the actors (everything else)
 * render them here so every error looks the same.
 *
 *   {"type": "/problems/<slug>", "title": "...", "status": 422, "detail": "...",
 *    "instance": "/v1/...", "request_id": "...", "errors": [{"field": "...", "message": "..."}]}
 *
 * `type` is a relative reference to the problem's documentation served by impactd itself
 * (docs/problems.md lists every slug).
 */
#ifndef IMPACT_COMMON_PROBLEM_H
#define IMPACT_COMMON_PROBLEM_H

#include <jansson.h>
#include <stddef.h>

#define PROBLEM_CONTENT_TYPE "application/problem+json"

/** A new problem object (never NULL unless out of memory). `detail` and `instance` may be NULL. */
json_t *problem_new(int status, const char *slug, const char *title, const char *detail, const char *instance);

/** Adds one {"field", "message"} entry to the problem's "errors" array. */
void problem_add_error(json_t *problem, const char *field, const char *message);

/** Serialises compactly into a malloc'd buffer; NULL on failure. */
char *problem_render(const json_t *problem, size_t *len);

#endif
