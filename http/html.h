/*
 * The browser view of the API: JSON (and problem+json) responses turned into a self-contained
 * HTML page by the front end, so the address bar can explore the API while actors stay unaware
 * of HTML. Independent of h2o so that it can be tested and fuzzed on its own; api.c applies it.
 *
 * Everything here treats its input as hostile: the JSON carries user data (names, scripts), the
 * Accept header and query come from the client. Every size is bounded and every failure means
 * "serve the JSON as it is".
 */
#ifndef IMPACT_HTTP_HTML_H
#define IMPACT_HTTP_HTML_H

#include <stdbool.h>
#include <stddef.h>

#define HTML_MAX_INPUT      (1024 * 1024)     /* larger JSON bodies are served as they are */
#define HTML_MAX_OUTPUT     (8 * 1024 * 1024) /* a page growing past this is abandoned */
#define HTML_MAX_DEPTH      32                /* nesting levels of the JSON document */
#define HTML_CREDENTIAL_MAX 256               /* longer api_key/api_auth values are not propagated */

#define HTML_CONTENT_TYPE "text/html; charset=utf-8"

/** What the page needs to know about the request it answers. Every pointer may be NULL. */
typedef struct {
    const char *origin; /* "scheme://host:port" of the request: strings on it become links */
    /* Decoded credentials the request carried in its query: appended to every same-origin link
     * so that following links keeps working from the address bar. Used only when both are set. */
    const char *api_key;
    const char *api_auth;
    /* The request's raw path, the title of a document without name or title. */
    const char *path;
    size_t path_len;
    /* The request's raw query (without '?'), for the page's "as JSON" link. */
    const char *query;
    size_t query_len;
    int status; /* the response's status code, shown on the page */
} html_page_t;

/**
 * The quality (0 to 1000) an Accept header value gives `type` ("text/html"): the q of the most
 * specific matching media range (RFC 9110 12.5.1), 0 when none matches. Malformed ranges are
 * skipped. A missing header (NULL) accepts everything: 1000.
 */
int html_accept_quality(const char *accept, size_t len, const char *type);

/** True for the response media types the page can render: application/json, application/problem+json. */
bool html_is_renderable_type(const char *content_type, size_t len);

/**
 * The decision: true when a response of `content_type` should become HTML for a request with
 * this Accept header (NULL when absent) and raw query. That is when the type is renderable, the
 * query does not say format=json, and the client gives text/html a higher quality than both
 * application/json and the response's own type (a browser does; curl's "* / *" ties: JSON).
 */
bool html_wanted(const char *accept, size_t accept_len, const char *query, size_t query_len, const char *content_type,
                 size_t content_type_len);

/**
 * The page for a JSON document: a malloc'd NUL-terminated string of *out_len bytes, or NULL
 * (with `*reason` set to a static explanation when reason is not NULL) when the body is larger
 * than HTML_MAX_INPUT, not a JSON object or array, nested deeper than HTML_MAX_DEPTH, or the
 * page would exceed HTML_MAX_OUTPUT.
 */
char *html_render(const char *json, size_t len, const html_page_t *page, size_t *out_len, const char **reason);

/**
 * The Content-Security-Policy the page needs: nothing but its own inline style, identified by
 * its hash. A static string.
 */
const char *html_csp(void);

#endif
