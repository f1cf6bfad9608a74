/*
 * What every actor needs to answer an API request relayed by the HTTP front end: the decoded
 * request with parameter lookup across query string and form body, and a reply builder that
 * encodes msg_api_response. Actors own API semantics; this is only the shared vocabulary.
 */
#ifndef IMPACT_ACTORS_API_H
#define IMPACT_ACTORS_API_H

#include <jansson.h>
#include <msgpack.h>
#include <stdbool.h>
#include <stddef.h>

#include "broker/worker.h"
#include "schemas/msg.h"

#define API_PATH_MAX      2048
#define API_REPLY_HEADERS 16

typedef struct {
    msg_api_request_t msg; /* views into the request frame, which must outlive this struct */
    char method[16];
    char path[API_PATH_MAX];
    char base_url[256]; /* "https://host:port", for absolute uris in resources */
    char request_id[65];
} api_request_t;

typedef struct {
    int status;
    const char *content_type; /* static string */
    char *body;               /* owned */
    size_t body_len;
    int header_count;
    char header_name[API_REPLY_HEADERS][48];
    char header_value[API_REPLY_HEADERS][2048]; /* a Link header with four page uris fits */
} api_reply_t;

/** Decodes a request frame. 0 or -1 with err. */
int api_request_decode(api_request_t *req, const void *data, size_t size, char *err, size_t errlen);

/** The value of a request header (case-insensitive), copied into out. 0 if present and it fits. */
int api_header(const api_request_t *req, const char *name, char *out, size_t size);

/**
 * A parameter from the query string, or else from an application/x-www-form-urlencoded body,
 * percent-decoded into out. 0 if present and it fits, -1 otherwise.
 */
int api_param(const api_request_t *req, const char *name, char *out, size_t size);

void api_reply_init(api_reply_t *reply);
void api_reply_reset(api_reply_t *reply);

/** Sets a JSON body (the reference is stolen) with the given status. 0 or -1. */
int api_reply_json(api_reply_t *reply, int status, json_t *body);

/** Sets a body rendered elsewhere (json_writer_finish, say), taking ownership; NULL body fails. 0 or -1. */
int api_reply_take(api_reply_t *reply, int status, const char *content_type, char *body, size_t len);

/** Sets an RFC 9457 problem body; `instance` is the request path. 0 or -1. */
int api_reply_problem(api_reply_t *reply, const api_request_t *req, int status, const char *slug, const char *title,
                      const char *detail);

/**
 * Sets a problem built with problem_new (the reference is stolen), adding the request id; for
 * problems that carry more than a detail, such as the per-field "errors" of a 422. 0 or -1.
 */
int api_reply_problem_object(api_reply_t *reply, const api_request_t *req, json_t *problem);

/** Adds a response header. 0, or -1 when the table is full or a value is too long. */
int api_reply_header(api_reply_t *reply, const char *name, const char *value);

/** Encodes the reply as msg_api_response into out. 0 or -1. */
int api_reply_encode(const api_reply_t *reply, msgpack_sbuffer *out);

/** Fills `reply` for `req`; every outcome, failures included, must become a reply. */
typedef void(api_handler_fn)(void *ctx, const api_request_t *req, api_reply_t *reply);

/**
 * Answers one broker request with `handler`: decodes it, runs the handler, logs the outcome
 * (with the request id) and sends the encoded reply. A request that cannot be decoded, or a
 * reply that cannot be encoded, is answered with BRK_STATUS_ACTOR_ERROR. Consumes the request.
 */
void api_serve(brk_worker_t *worker, brk_request_t **request_p, api_handler_fn *handler, void *ctx);

#endif
