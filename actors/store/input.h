/*
 * Request bodies for the admin API: a JSON object or an application/x-www-form-urlencoded form
 * become one jansson object, and each field's value is checked against its field_def_t and turned
 * into the text parameter PostgreSQL receives.
 *
 * JSON is typed, so a JSON body must use JSON types (42, true, null). A form only has strings, so
 * form values are converted ("42", "true"/"false", an empty value is null for nullable fields, a
 * repeated name is an array).
 */
#ifndef IMPACT_STORE_INPUT_H
#define IMPACT_STORE_INPUT_H

#include <jansson.h>
#include <stdbool.h>

#include "actors/api/api.h"
#include "actors/store/resource.h"

#define INPUT_FIELDS_MAX   64   /* names in one body */
#define INPUT_NAME_MAX     64   /* bytes in one name */
#define INPUT_ARRAY_MAX    1000 /* items in one array value */
#define INPUT_MESSAGE_SIZE 256

typedef struct {
    json_t *object; /* owned; empty when there was no body */
    bool from_form;
} input_t;

typedef enum {
    INPUT_OK = 0,
    INPUT_BAD_SYNTAX = -1, /* 400: not JSON, not an object, bad escapes, too many names */
    INPUT_BAD_TYPE = -2,   /* 415: a content type we do not read */
} input_status_t;

/** Reads the request body. On failure `message` says why, in words for the client. */
input_status_t input_parse(const api_request_t *req, input_t *in, char *message, size_t size);

void input_free(input_t *in);

/**
 * input_parse, answering a body that cannot be read (400, or 415 for a content type we do not
 * read) with its problem. 0 with `in` to free, or -1 with the reply set and nothing to free.
 */
int input_read(const api_request_t *req, api_reply_t *reply, input_t *in);

/**
 * Checks `value` for field `f` and produces its SQL text parameter: a malloc'd string, or NULL
 * for SQL NULL. 0, or -1 with `message` saying what is wrong with the value.
 */
int input_field_value(const field_def_t *f, json_t *value, bool from_form, char **sql_value, char *message, size_t size);

/** True if s is valid UTF-8 of `len` bytes. */
bool input_utf8_valid(const char *s, size_t len);

#endif
