/*
 * Responses the front end writes itself: status line basics and RFC 9457 problem documents
 * (rendered by common/problem.h so they look exactly like the actors' errors).
 */
#ifndef IMPACT_HTTP_PROBLEM_H
#define IMPACT_HTTP_PROBLEM_H

#include <h2o.h>

/** The reason phrase of `status` ("Unknown" for codes the table lacks; HTTP/2 ignores it anyway). */
const char *http_reason(int status);

/**
 * Starts a response: sets status and reason and adds X-Request-Id. The handler then adds its
 * headers and sends.
 */
void http_response_init(h2o_req_t *req, int status);

/**
 * Answers `req` with a problem document and ends it.
 * @param slug names the problem type ("/problems/<slug>")
 * @param detail may be NULL
 * For 503 a Retry-After of one second is added: every 503 the front end decides is transient.
 */
void http_problem_send(h2o_req_t *req, int status, const char *slug, const char *title, const char *detail);

/**
 * Registers, on the host's fallback path, the filter that rewrites the plain-text errors h2o
 * sends on its own before any handler runs (413 for an oversized HTTP/1 body, 400 for broken
 * chunked encoding) into problem documents. h2o binds such requests to the fallback path, so
 * the filter never sees a response a handler made.
 */
void http_problem_register_fallback(h2o_pathconf_t *fallback);

#endif
