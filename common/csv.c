#include "common/csv.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Byte classes: which bytes end a run of plain data in each lexical state. */
enum {
    C_UNQUOTED = 1, /* separator, CR, LF, NUL */
    C_QUOTED = 2,   /* '"', CR, LF, NUL */
    C_EOL = 4,      /* CR, LF */
};

typedef enum {
    S_FIELD_START, /* before a field's first byte */
    S_UNQUOTED,    /* inside an unquoted field */
    S_QUOTED,      /* inside a quoted field */
    S_QUOTE,       /* just after a '"' inside a quoted field: the closing one, or the first of "" */
    S_CR,          /* a record ended with the last byte fed, a CR: an LF may follow */
    S_SKIP_LINE,   /* after an unterminated quote: discarding up to the next line ending */
} state_t;

static const unsigned char s_bom[3] = {0xEF, 0xBB, 0xBF};

struct csv_reader_t {
    char sep;
    size_t max_field_bytes, max_fields, max_row_bytes;
    unsigned char cls[256];
    state_t state;
    bool started; /* fed or resumed */
    bool finished;
    bool at_start; /* a BOM may still come: bom_seen of its bytes are held back, base stays 0 */
    size_t bom_seen;
    bool discard;       /* the row is an error: the rest of it is parsed (to find its end) but not stored */
    bool prev_cr;       /* the last byte fed was a CR, for a CRLF split by a chunk boundary in quotes */
    uint64_t base;      /* stream offset of the first byte of the chunk being parsed */
    uint64_t row_start; /* stream offset of the current record's first byte */
    uint64_t limit;     /* stream offset of the first byte the current record may not contain */
    uint64_t line;      /* physical line of the byte being parsed */
    uint64_t row_line, quote_line;
    csv_position_t next; /* past the last row delivered */
    char *buf;           /* the row's fields, unquoted and each NUL-terminated, back to back */
    size_t buf_len, field_start;
    csv_field_t *fields;
    size_t count;
    csv_error_t error;
    char error_text[160];
};

csv_reader_t *csv_reader_new(const csv_options_t *options)
{
    csv_options_t o = options ? *options : (csv_options_t){0};
    char sep = o.separator ? o.separator : CSV_DEFAULT_SEPARATOR;
    size_t max_field_bytes = o.max_field_bytes ? o.max_field_bytes : CSV_DEFAULT_MAX_FIELD_BYTES;
    size_t max_fields = o.max_fields ? o.max_fields : CSV_DEFAULT_MAX_FIELDS;
    size_t max_row_bytes = o.max_row_bytes ? o.max_row_bytes : CSV_DEFAULT_MAX_ROW_BYTES;
    unsigned char usep = (unsigned char)sep;
    if (usep >= 0x80 || sep == '"' || sep == '\r' || sep == '\n' || max_fields > CSV_LIMIT_MAX_FIELDS ||
        max_row_bytes > CSV_LIMIT_MAX_ROW_BYTES) {
        errno = EINVAL;
        return NULL;
    }
    csv_reader_t *self = calloc(1, sizeof(*self));
    if (self == NULL)
        return NULL;
    /* Stored bytes never exceed the record's input bytes (unquoting only shrinks), which are
     * bounded by max_row_bytes, plus one NUL per field. */
    self->buf = malloc(max_row_bytes + max_fields);
    self->fields = calloc(max_fields, sizeof(*self->fields));
    if (self->buf == NULL || self->fields == NULL) {
        csv_reader_destroy(&self);
        errno = ENOMEM;
        return NULL;
    }
    self->sep = sep;
    self->max_field_bytes = max_field_bytes;
    self->max_fields = max_fields;
    self->max_row_bytes = max_row_bytes;
    self->cls[usep] |= C_UNQUOTED;
    self->cls['"'] |= C_QUOTED;
    self->cls['\r'] |= C_UNQUOTED | C_QUOTED | C_EOL;
    self->cls['\n'] |= C_UNQUOTED | C_QUOTED | C_EOL;
    self->cls[0] |= C_UNQUOTED | C_QUOTED;
    self->state = S_FIELD_START;
    self->at_start = true;
    self->line = self->row_line = 1;
    self->limit = max_row_bytes;
    self->next = (csv_position_t){.offset = 0, .line = 1, .records = 0};
    return self;
}

void csv_reader_destroy(csv_reader_t **self_p)
{
    if (self_p == NULL || *self_p == NULL)
        return;
    csv_reader_t *self = *self_p;
    free(self->buf);
    free(self->fields);
    free(self);
    *self_p = NULL;
}

int csv_reader_resume(csv_reader_t *self, const csv_position_t *at)
{
    if (self->started || at->line == 0) {
        errno = EINVAL;
        return -1;
    }
    self->started = true;
    self->at_start = at->offset == 0;
    self->base = self->row_start = at->offset;
    self->limit = at->offset + self->max_row_bytes;
    self->line = self->row_line = at->line;
    self->next = *at;
    return 0;
}

uint64_t csv_reader_offset(const csv_reader_t *self)
{
    return self->next.offset;
}

csv_position_t csv_reader_position(const csv_reader_t *self)
{
    return self->next;
}

/* Marks the row as an error; the first error of a row is the one reported. */
static void s_fail(csv_reader_t *r, csv_error_t error, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void s_fail(csv_reader_t *r, csv_error_t error, const char *fmt, ...)
{
    r->discard = true;
    if (r->error != CSV_OK)
        return;
    r->error = error;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(r->error_text, sizeof(r->error_text), fmt, ap);
    va_end(ap);
}

/*
 * Stores p[i..j) for the run of plain bytes from i, where j is `stop` or the first byte of a
 * class in `mask`, and returns j. The buffer always has room: a row stores no more bytes than it
 * has consumed, and stop keeps the record within max_row_bytes.
 */
static inline size_t s_run(csv_reader_t *r, const unsigned char *p, size_t i, size_t stop, unsigned mask)
{
    const unsigned char *cls = r->cls;
    size_t j = i;
    if (r->discard) {
        while (j < stop && !(cls[p[j]] & mask))
            j++;
        return j;
    }
    char *out = r->buf + r->buf_len - i;
    while (j < stop && !(cls[p[j]] & mask)) {
        out[j] = (char)p[j];
        j++;
    }
    r->buf_len += j - i;
    if (r->buf_len - r->field_start > r->max_field_bytes)
        s_fail(r, CSV_E_FIELD_TOO_LONG, "field %zu is longer than %zu bytes", r->count + 1, r->max_field_bytes);
    return j;
}

/* Stores one byte that is data although it may end a run ("" or a line ending in quotes). */
static void s_store_byte(csv_reader_t *r, unsigned char c)
{
    if (r->discard)
        return;
    r->buf[r->buf_len++] = (char)c;
    if (r->buf_len - r->field_start > r->max_field_bytes)
        s_fail(r, CSV_E_FIELD_TOO_LONG, "field %zu is longer than %zu bytes", r->count + 1, r->max_field_bytes);
}

static void s_nul(csv_reader_t *r)
{
    s_fail(r, CSV_E_ENCODING, "field %zu has a NUL byte at byte %zu (is the file UTF-16?)", r->count + 1,
           r->buf_len - r->field_start + 1);
}

static inline void s_end_field(csv_reader_t *r)
{
    if (r->discard)
        return;
    if (r->count == r->max_fields) {
        s_fail(r, CSV_E_TOO_MANY_FIELDS, "the row has more than %zu fields", r->max_fields);
        return;
    }
    r->fields[r->count].data = r->buf + r->field_start;
    r->fields[r->count].len = r->buf_len - r->field_start;
    r->buf[r->buf_len++] = '\0';
    r->count++;
    r->field_start = r->buf_len;
}

/* Index of the first byte of s[0..n) that starts an invalid UTF-8 sequence; n if none. */
static size_t s_utf8_bad(const unsigned char *s, size_t n)
{
    size_t i = 0;
    while (i < n) {
        /* Mostly ASCII: eight bytes at a time while none has its high bit set. */
        while (n - i >= 8) {
            uint64_t w;
            memcpy(&w, s + i, 8);
            if (w & 0x8080808080808080u)
                break;
            i += 8;
        }
        if (i == n)
            break;
        unsigned char c = s[i];
        if (c < 0x80) {
            i++;
            continue;
        }
        size_t need;
        unsigned char lo = 0x80, hi = 0xBF; /* range of the second byte */
        if (c >= 0xC2 && c <= 0xDF) {
            need = 1;
        } else if (c >= 0xE0 && c <= 0xEF) {
            need = 2;
            lo = c == 0xE0 ? 0xA0 : 0x80; /* overlong */
            hi = c == 0xED ? 0x9F : 0xBF; /* surrogates */
        } else if (c >= 0xF0 && c <= 0xF4) {
            need = 3;
            lo = c == 0xF0 ? 0x90 : 0x80; /* overlong */
            hi = c == 0xF4 ? 0x8F : 0xBF; /* past U+10FFFF */
        } else {
            return i; /* a stray continuation byte, an overlong lead or past U+10FFFF */
        }
        if (n - i - 1 < need || s[i + 1] < lo || s[i + 1] > hi)
            return i;
        for (size_t k = 2; k <= need; k++)
            if ((s[i + k] & 0xC0) != 0x80)
                return i;
        i += need + 1;
    }
    return n;
}

/*
 * Checks the whole row at once, terminating NULs included (NUL bytes in fields were refused while
 * parsing). That equals checking each field, because UTF-8 validity depends only on the runs of
 * bytes >= 0x80, and each run of the input lies whole in one field: every byte that delimits or
 * quotes a field is ASCII.
 */
static void s_validate(csv_reader_t *r)
{
    size_t bad = s_utf8_bad((const unsigned char *)r->buf, r->buf_len);
    if (bad == r->buf_len)
        return;
    size_t f = 0;
    while (r->fields[f].data + r->fields[f].len < r->buf + bad)
        f++;
    s_fail(r, CSV_E_ENCODING, "field %zu is not valid UTF-8 at byte %zu (is the file saved as UTF-8?)", f + 1,
           (size_t)(r->buf + bad - r->fields[f].data) + 1);
}

/*
 * The record that started at row_start ended at stream offset `end` (its line ending, or the end
 * of input), and the next one starts at `next`. The reader is left at that boundary before the
 * callback runs, so that a callback that stops it leaves a consistent resume point.
 */
static int s_end_record(csv_reader_t *r, uint64_t end, uint64_t next, csv_row_fn *on_row, void *arg)
{
    if (next > end)
        r->line++;
    uint64_t start = r->row_start, line = r->row_line;
    r->state = S_FIELD_START;
    r->row_start = next;
    r->row_line = r->line;
    r->limit = next + r->max_row_bytes;
    if (end == start)
        return 0; /* an empty line */
    if (!r->discard)
        s_end_field(r);
    if (r->error == CSV_OK)
        s_validate(r);
    csv_row_t row = {
        .line = line,
        .record = r->next.records + 1,
        .offset = start,
        .count = r->error == CSV_OK ? r->count : 0,
        .fields = r->fields,
        .error = r->error,
        .error_text = r->error == CSV_OK ? NULL : r->error_text,
    };
    r->next = (csv_position_t){.offset = next, .line = r->line, .records = row.record};
    r->count = r->buf_len = r->field_start = 0;
    r->error = CSV_OK;
    r->discard = false;
    return on_row(arg, &row);
}

/* p[*i] is a CR or LF that ends the current record. */
static int s_line_end(csv_reader_t *r, const unsigned char *p, size_t len, size_t *i, csv_row_fn *on_row, void *arg)
{
    size_t at = *i;
    if (p[at] == '\r' && at + 1 == len) {
        /* Whether this is a CRLF shows only with the next byte; until then the row is held, so
         * that the offset past it is exact. */
        *i = len;
        r->state = S_CR;
        return 0;
    }
    *i = at + (p[at] == '\r' && p[at + 1] == '\n' ? 2 : 1);
    return s_end_record(r, r->base + at, r->base + *i, on_row, arg);
}

/* The byte at p[i] would take the record past max_row_bytes. */
static void s_overflow(csv_reader_t *r, bool in_quotes, size_t i)
{
    if (in_quotes) {
        r->error = CSV_OK; /* this error explains the rows skipped, so it is the one reported */
        s_fail(r, CSV_E_UNTERMINATED_QUOTE, "the quote opened on line %" PRIu64 " is not closed within %zu bytes", r->quote_line,
               r->max_row_bytes);
        r->state = S_SKIP_LINE;
    } else {
        /* Skip to the record's true end, but bound any quoted field met on the way again. */
        s_fail(r, CSV_E_ROW_TOO_LONG, "the row is longer than %zu bytes", r->max_row_bytes);
        r->limit = r->base + i + r->max_row_bytes;
    }
}

/* One past the last index of p[i..len) the current record may still contain. */
static size_t s_stop(const csv_reader_t *r, size_t i, size_t len)
{
    uint64_t room = r->limit - (r->base + i);
    return room < len - i ? i + (size_t)room : len;
}

static int s_parse(csv_reader_t *r, const char *data, size_t len, csv_row_fn *on_row, void *arg)
{
    const unsigned char *p = (const unsigned char *)data;
    const unsigned char *cls = r->cls;
    size_t i = 0;
    int rc = 0;
    while (i < len && rc == 0) {
        switch (r->state) {
        case S_FIELD_START:
            if (p[i] != '"') {
                r->state = S_UNQUOTED;
            } else if (r->base + i >= r->limit) {
                s_overflow(r, false, i);
            } else {
                r->quote_line = r->line;
                r->state = S_QUOTED;
                i++;
            }
            break;
        case S_UNQUOTED: {
            size_t stop = s_stop(r, i, len);
            i = s_run(r, p, i, stop, C_UNQUOTED);
            if (i == len)
                break;
            if (cls[p[i]] & C_EOL) {
                rc = s_line_end(r, p, len, &i, on_row, arg);
            } else if (i == stop) {
                s_overflow(r, false, i);
            } else if (p[i] == 0) {
                s_nul(r);
                i++;
            } else {
                s_end_field(r);
                i++;
                /* Straight on into the next field unless it is quoted. */
                r->state = i < len && p[i] != '"' ? S_UNQUOTED : S_FIELD_START;
            }
            break;
        }
        case S_QUOTED: {
            size_t stop = s_stop(r, i, len);
            i = s_run(r, p, i, stop, C_QUOTED);
            if (i == len)
                break;
            if (i == stop) {
                s_overflow(r, true, i);
            } else if (p[i] == '"') {
                r->state = S_QUOTE;
                i++;
            } else if (p[i] == 0) {
                s_nul(r);
                i++;
            } else {
                /* A line ending inside quotes is data, and a line; a CRLF is one line. */
                bool crlf = p[i] == '\n' && (i > 0 ? p[i - 1] == '\r' : r->prev_cr);
                if (!crlf)
                    r->line++;
                s_store_byte(r, p[i]);
                i++;
            }
            break;
        }
        case S_QUOTE:
            if (p[i] == '"' || p[i] == (unsigned char)r->sep) {
                if (r->base + i >= r->limit) {
                    s_overflow(r, p[i] == '"', i);
                } else if (p[i] == '"') {
                    s_store_byte(r, '"');
                    r->state = S_QUOTED;
                    i++;
                } else {
                    s_end_field(r);
                    r->state = S_FIELD_START;
                    i++;
                }
            } else if (cls[p[i]] & C_EOL) {
                rc = s_line_end(r, p, len, &i, on_row, arg);
            } else {
                if (p[i] >= 0x20 && p[i] < 0x7F)
                    s_fail(r, CSV_E_QUOTE, "field %zu has '%c' after its closing quote (quotes inside quotes must be doubled)",
                           r->count + 1, p[i]);
                else
                    s_fail(r, CSV_E_QUOTE,
                           "field %zu has byte 0x%02X after its closing quote (quotes inside quotes must be doubled)", r->count + 1,
                           p[i]);
                r->state = S_UNQUOTED; /* parse on, unstored, to the row's end */
            }
            break;
        case S_CR:
            /* The CR was the previous chunk's last byte, at base - 1. */
            if (p[i] == '\n')
                i++;
            rc = s_end_record(r, r->base - 1, r->base + i, on_row, arg);
            break;
        case S_SKIP_LINE:
            while (i < len && !(cls[p[i]] & C_EOL))
                i++;
            if (i < len)
                rc = s_line_end(r, p, len, &i, on_row, arg);
            break;
        }
    }
    if (rc != 0) {
        /* Stopped at a record boundary: the caller feeds again from there. */
        r->base = r->next.offset;
        r->prev_cr = false;
        return rc;
    }
    r->base += len;
    if (len > 0)
        r->prev_cr = p[len - 1] == '\r';
    return 0;
}

int csv_reader_feed(csv_reader_t *self, const char *data, size_t len, csv_row_fn *on_row, void *arg)
{
    if (self->finished) {
        errno = EINVAL;
        return -1;
    }
    self->started = true;
    if (self->at_start) {
        size_t held = self->bom_seen, n = 0;
        while (n < len && held + n < sizeof(s_bom) && (unsigned char)data[n] == s_bom[held + n])
            n++;
        if (held + n == sizeof(s_bom)) {
            self->at_start = false;
            self->base = self->row_start = sizeof(s_bom);
            self->limit = self->row_start + self->max_row_bytes;
            data += n;
            len -= n;
        } else if (n == len) {
            self->bom_seen = held + n;
            return 0;
        } else {
            /* Not a BOM: what was held is data, and holds no line ending, so no row can end. */
            self->at_start = false;
            s_parse(self, (const char *)s_bom, held, on_row, arg);
        }
    }
    return s_parse(self, data, len, on_row, arg);
}

int csv_reader_finish(csv_reader_t *self, csv_row_fn *on_row, void *arg)
{
    if (self->finished) {
        errno = EINVAL;
        return -1;
    }
    self->started = self->finished = true;
    if (self->at_start) {
        self->at_start = false;
        s_parse(self, (const char *)s_bom, self->bom_seen, on_row, arg);
    }
    uint64_t end = self->base;
    int rc;
    switch (self->state) {
    case S_CR:
        rc = s_end_record(self, end - 1, end, on_row, arg);
        break;
    case S_QUOTED:
        self->error = CSV_OK; /* this error explains the rows swallowed, so it is the one reported */
        s_fail(self, CSV_E_UNTERMINATED_QUOTE, "the quote opened on line %" PRIu64 " is not closed by the end of the input",
               self->quote_line);
        rc = s_end_record(self, end, end, on_row, arg);
        break;
    default:
        rc = s_end_record(self, end, end, on_row, arg);
        break;
    }
    return rc;
}
