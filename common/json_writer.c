#include "common/json_writer.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void json_writer_init(json_writer_t *w)
{
    memset(w, 0, sizeof(*w));
}

void json_writer_reset(json_writer_t *w)
{
    free(w->buf);
    json_writer_init(w);
}

static void s_append(json_writer_t *w, const char *s, size_t n)
{
    if (w->failed)
        return;
    if (w->len + n + 1 > w->cap) {
        size_t cap = w->cap ? w->cap : 256;
        while (cap < w->len + n + 1)
            cap *= 2;
        char *grown = cap <= JSON_WRITER_MAX_BYTES ? realloc(w->buf, cap) : NULL;
        if (grown == NULL) {
            w->failed = true;
            return;
        }
        w->buf = grown;
        w->cap = cap;
    }
    memcpy(w->buf + w->len, s, n);
    w->len += n;
    w->buf[w->len] = '\0';
}

/* Called before every value: a value inside an object must follow its key; inside an array it
 * needs a comma after the first. */
static void s_value_prefix(json_writer_t *w)
{
    if (w->depth == 0 && w->len > 0) {
        w->failed = true; /* a document is one value */
        return;
    }
    if (w->depth > 0 && w->in_object[w->depth - 1]) {
        if (!w->key_pending)
            w->failed = true;
        w->key_pending = false;
        return;
    }
    if (w->depth > 0 && w->has_items[w->depth - 1])
        s_append(w, ",", 1);
    if (w->depth > 0)
        w->has_items[w->depth - 1] = true;
}

static void s_escaped(json_writer_t *w, const char *s, size_t len)
{
    static const char hex[] = "0123456789abcdef";
    s_append(w, "\"", 1);
    size_t run = 0; /* bytes that need no escaping are copied in runs */
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c >= 0x20 && c != '"' && c != '\\')
            continue;
        s_append(w, s + run, i - run);
        run = i + 1;
        char esc[7] = {'\\', 0};
        size_t n = 2;
        switch (c) {
        case '"':
            esc[1] = '"';
            break;
        case '\\':
            esc[1] = '\\';
            break;
        case '\n':
            esc[1] = 'n';
            break;
        case '\r':
            esc[1] = 'r';
            break;
        case '\t':
            esc[1] = 't';
            break;
        case '\b':
            esc[1] = 'b';
            break;
        case '\f':
            esc[1] = 'f';
            break;
        default:
            memcpy(esc + 1, "u00", 3);
            esc[4] = hex[c >> 4];
            esc[5] = hex[c & 15];
            n = 6;
        }
        s_append(w, esc, n);
    }
    s_append(w, s + run, len - run);
    s_append(w, "\"", 1);
}

static void s_open(json_writer_t *w, bool object)
{
    s_value_prefix(w);
    if (w->depth == JSON_WRITER_MAX_DEPTH) {
        w->failed = true;
        return;
    }
    s_append(w, object ? "{" : "[", 1);
    w->in_object[w->depth] = object;
    w->has_items[w->depth] = false;
    w->depth++;
}

static void s_close(json_writer_t *w, bool object)
{
    if (w->depth == 0 || w->in_object[w->depth - 1] != object || w->key_pending) {
        w->failed = true;
        return;
    }
    w->depth--;
    s_append(w, object ? "}" : "]", 1);
}

void json_writer_object_begin(json_writer_t *w)
{
    s_open(w, true);
}

void json_writer_object_end(json_writer_t *w)
{
    s_close(w, true);
}

void json_writer_array_begin(json_writer_t *w)
{
    s_open(w, false);
}

void json_writer_array_end(json_writer_t *w)
{
    s_close(w, false);
}

void json_writer_key(json_writer_t *w, const char *key)
{
    if (w->depth == 0 || !w->in_object[w->depth - 1] || w->key_pending) {
        w->failed = true;
        return;
    }
    if (w->has_items[w->depth - 1])
        s_append(w, ",", 1);
    w->has_items[w->depth - 1] = true;
    s_escaped(w, key, strlen(key));
    s_append(w, ":", 1);
    w->key_pending = true;
}

void json_writer_string_len(json_writer_t *w, const char *s, size_t len)
{
    s_value_prefix(w);
    s_escaped(w, s, len);
}

void json_writer_string(json_writer_t *w, const char *s)
{
    json_writer_string_len(w, s, strlen(s));
}

void json_writer_int(json_writer_t *w, int64_t v)
{
    char digits[24];
    int n = snprintf(digits, sizeof(digits), "%" PRId64, v);
    s_value_prefix(w);
    s_append(w, digits, (size_t)n);
}

void json_writer_bool(json_writer_t *w, bool v)
{
    s_value_prefix(w);
    s_append(w, v ? "true" : "false", v ? 4 : 5);
}

void json_writer_null(json_writer_t *w)
{
    s_value_prefix(w);
    s_append(w, "null", 4);
}

void json_writer_raw(json_writer_t *w, const char *json, size_t len)
{
    if (len == 0) {
        w->failed = true;
        return;
    }
    s_value_prefix(w);
    s_append(w, json, len);
}

void json_writer_kv_bool(json_writer_t *w, const char *key, bool v)
{
    json_writer_key(w, key);
    json_writer_bool(w, v);
}

void json_writer_kv_null(json_writer_t *w, const char *key)
{
    json_writer_key(w, key);
    json_writer_null(w);
}

void json_writer_kv_string(json_writer_t *w, const char *key, const char *s)
{
    json_writer_key(w, key);
    json_writer_string(w, s);
}

void json_writer_kv_int(json_writer_t *w, const char *key, int64_t v)
{
    json_writer_key(w, key);
    json_writer_int(w, v);
}

char *json_writer_finish(json_writer_t *w, size_t *len)
{
    if (w->failed || w->depth != 0 || w->len == 0) {
        json_writer_reset(w);
        return NULL;
    }
    char *out = w->buf;
    if (len)
        *len = w->len;
    json_writer_init(w);
    return out;
}
