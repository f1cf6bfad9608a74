/*
 * A streaming JSON writer: values are appended to one growing buffer as they are written, with
 * commas and escaping handled here. It exists because rendering a resource through a jansson
 * tree (an allocation per value, then json_dumps) was half of the store's cost per request
 * (docs/performance.md); jansson stays the parser and validator of request bodies.
 *
 *   json_writer_t w;
 *   json_writer_init(&w);
 *   json_writer_object_begin(&w);
 *   json_writer_kv_string(&w, "uri", uri);
 *   json_writer_key(&w, "resources");
 *   json_writer_array_begin(&w);
 *   ...
 *   json_writer_object_end(&w);
 *   char *body = json_writer_finish(&w, &len);   // NULL if anything went wrong
 *
 * Errors (out of memory, over JSON_WRITER_MAX_BYTES, nesting deeper than JSON_WRITER_MAX_DEPTH,
 * a value where a key is due, unbalanced ends) are sticky: later calls do nothing and finish
 * returns NULL, so callers check once at the end. Strings must be UTF-8; they are escaped, not
 * validated.
 */
#ifndef IMPACT_COMMON_JSON_WRITER_H
#define IMPACT_COMMON_JSON_WRITER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define JSON_WRITER_MAX_DEPTH 32
#define JSON_WRITER_MAX_BYTES (16u << 20)

typedef struct {
    char *buf;
    size_t len, cap;
    int depth;
    bool failed;
    bool in_object[JSON_WRITER_MAX_DEPTH]; /* per level: object (keys due) or array */
    bool has_items[JSON_WRITER_MAX_DEPTH]; /* per level: a comma is due before the next item */
    bool key_pending;                      /* a key was written; its value is next */
} json_writer_t;

void json_writer_init(json_writer_t *w);

/** Frees the buffer (after a failure, or when finish was not called). */
void json_writer_reset(json_writer_t *w);

void json_writer_object_begin(json_writer_t *w);
void json_writer_object_end(json_writer_t *w);
void json_writer_array_begin(json_writer_t *w);
void json_writer_array_end(json_writer_t *w);
void json_writer_key(json_writer_t *w, const char *key);

void json_writer_string(json_writer_t *w, const char *s);
void json_writer_string_len(json_writer_t *w, const char *s, size_t len);
void json_writer_int(json_writer_t *w, int64_t v);
void json_writer_bool(json_writer_t *w, bool v);
void json_writer_null(json_writer_t *w);

/**
 * Appends `len` bytes that already are one complete JSON value (a number or a jsonb column as
 * PostgreSQL renders it). Nothing is checked: only for text the program itself vouches for.
 */
void json_writer_raw(json_writer_t *w, const char *json, size_t len);

/** Key and value in one call. */
void json_writer_kv_string(json_writer_t *w, const char *key, const char *s);
void json_writer_kv_int(json_writer_t *w, const char *key, int64_t v);
void json_writer_kv_bool(json_writer_t *w, const char *key, bool v);
void json_writer_kv_null(json_writer_t *w, const char *key);

/**
 * Hands over the finished document (malloc'd, NUL-terminated) and its length, leaving the
 * writer empty. NULL if an error occurred or the document is incomplete.
 */
char *json_writer_finish(json_writer_t *w, size_t *len);

#endif
