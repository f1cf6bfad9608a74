#include "actors/dialer/pgarray.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void pgarray_init(pgarray_t *self)
{
    *self = (pgarray_t){0};
}

void pgarray_free(pgarray_t *self)
{
    free(self->data);
    *self = (pgarray_t){0};
}

static void s_append(pgarray_t *self, const char *text, size_t n)
{
    if (self->failed)
        return;
    /* room for the separator or opening brace, the text, and the closing brace with its NUL */
    if (self->len + n + 3 > self->capacity) {
        size_t capacity = self->capacity ? self->capacity : 256;
        while (self->len + n + 3 > capacity)
            capacity *= 2;
        char *grown = realloc(self->data, capacity);
        if (grown == NULL) {
            self->failed = true;
            return;
        }
        self->data = grown;
        self->capacity = capacity;
    }
    char separator = self->len == 0 ? '{' : ',';
    self->data[self->len++] = separator;
    memcpy(self->data + self->len, text, n);
    self->len += n;
}

void pgarray_int(pgarray_t *self, int64_t value)
{
    char text[24];
    int n = snprintf(text, sizeof(text), "%" PRId64, value);
    s_append(self, text, (size_t)n);
}

void pgarray_share(pgarray_t *self, double value)
{
    char text[16];
    int n = snprintf(text, sizeof(text), "%.6f", value > 0 ? (value < 1 ? value : 1.0) : 0.0);
    s_append(self, text, (size_t)n);
}

void pgarray_null(pgarray_t *self)
{
    s_append(self, "NULL", 4);
}

void pgarray_bool(pgarray_t *self, bool value)
{
    s_append(self, value ? "t" : "f", 1);
}

static void s_quoted(pgarray_t *self, const char *value, size_t n, size_t max, const char *allowed)
{
    char quoted[PGARRAY_TEXT_MAX + 3];
    if (n > max || strspn(value, allowed) != n) {
        self->failed = true;
        return;
    }
    snprintf(quoted, sizeof(quoted), "\"%s\"", value);
    s_append(self, quoted, n + 2);
}

void pgarray_text(pgarray_t *self, const char *value)
{
    size_t n = strlen(value);
    if (n == 0)
        self->failed = true;
    else
        s_quoted(self, value, n, 64, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789+_-");
}

void pgarray_zones(pgarray_t *self, const char *value)
{
    s_quoted(self, value, strlen(value), PGARRAY_TEXT_MAX, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789+_-/,");
}

const char *pgarray_finish(pgarray_t *self)
{
    if (self->failed)
        return NULL;
    if (self->len == 0)
        return "{}";
    self->data[self->len] = '}';
    self->data[self->len + 1] = '\0';
    return self->data;
}
