/*
 * A streaming CSV reader for list uploads (lead lists of up to millions of rows). The upload
 * arrives as byte chunks of any size; each is pushed through csv_reader_feed, which hands every
 * complete row to a callback. A chunk boundary may fall anywhere (inside a quoted field, between
 * CR and LF, inside a UTF-8 sequence or the BOM): the rows, numbers and offsets delivered depend
 * only on the bytes, never on how they were split.
 *
 *   csv_reader_t *reader = csv_reader_new(NULL);   // ',' and the default limits
 *   while ((n = read(fd, buf, sizeof(buf))) > 0)
 *       if (csv_reader_feed(reader, buf, (size_t)n, on_row, ctx) != 0)
 *           ...                                    // on_row asked to stop
 *   csv_reader_finish(reader, on_row, ctx);        // the last row may lack a line ending
 *   csv_reader_destroy(&reader);
 *
 * Syntax (RFC 4180, plus what real uploads need):
 *   - A record ends at LF, CRLF or a lone CR. A lone CR is a line ending because classic Mac
 *     exports (and spreadsheets still offering that format) end every line with one; treating it
 *     as data would turn such a file into one giant row. CRLF is one line ending, not two.
 *   - A field that starts with '"' is quoted: it runs to the next '"' that is not doubled, "" in
 *     it stands for one '"', and separators, CR and LF in it are data, kept byte for byte. Only a
 *     separator, a line ending or the end of input may follow the closing quote; anything else
 *     makes the row an error (CSV_E_QUOTE), because the writer most likely forgot to double a
 *     quote and any guess at the intended value could be wrong.
 *   - A '"' in a field that does not start with one is an ordinary character (12" monitor,
 *     Robert "Bob" Smith): lenient, because where such a field ends is not in doubt.
 *   - Spaces are data: leading and trailing spaces are kept, and in a, "b" the second field is
 *     the unquoted ` "b"` (quotes included).
 *   - Empty lines (a line ending with nothing before it) are skipped: they count as lines but
 *     not as records. A line of spaces or separators only is a record.
 *   - A UTF-8 BOM (EF BB BF) is skipped at the very start of the stream only; elsewhere it is
 *     data.
 *   - Every field must be UTF-8 (no overlong forms, surrogates or code points past U+10FFFF)
 *     without NUL bytes, which PostgreSQL text cannot hold.
 *
 * Errors belong to one row and never stop the stream: such a row is delivered with `error` set,
 * an explanation in `error_text` and no fields, and the next row follows as usual. Limits (the
 * defaults below, or csv_options_t):
 *   - max_field_bytes: a field's length after unquoting (""), quotes excluded.
 *   - max_fields: fields per row.
 *   - max_row_bytes: a record's bytes as they appear in the input (quotes and line endings
 *     inside quoted fields included, its own line ending excluded). Nothing the reader holds
 *     grows with the input: it allocates max_row_bytes + max_fields bytes and max_fields field
 *     slots once, in csv_reader_new, and never allocates again.
 * The first error met in a row is the one reported, except CSV_E_UNTERMINATED_QUOTE, which
 * replaces any other because it explains the rows that went missing.
 *
 * Recovery: after an error the rest of the row is parsed as usual (after CSV_E_QUOTE, the rest
 * of that field as unquoted) but not stored, so the reader resynchronises at the row's true end.
 * A row that grows past max_row_bytes outside quotes is CSV_E_ROW_TOO_LONG and is skipped the
 * same way, to its true end (a quoted field met while skipping is bounded by max_row_bytes
 * again). A row that grows past max_row_bytes inside a quoted field is taken to hold a quote
 * that is never closed (an unbalanced quote would otherwise swallow the rest of the file): it is
 * CSV_E_UNTERMINATED_QUOTE, and everything up to and including the next line ending, quotes or
 * not, is discarded. The lines between the opening quote and that point are lost, reported as
 * that one error row: at most max_row_bytes plus the rest of one line. At the end of input a
 * quoted field still open is CSV_E_UNTERMINATED_QUOTE too, and the error row holds everything
 * from the start of its record.
 *
 * Checkpoints: csv_reader_position() is where parsing may resume. Its offset is the stream
 * offset just past the line ending of the last row delivered (CRLF counting as one; past the
 * row's last byte at the end of input), and 0, or the resumed offset, before the first row. Every
 * byte before it belongs to rows already delivered (or to the BOM and blank lines before them),
 * and no byte after it does: blank lines after the last row are left to the next row's parse. A
 * new reader given that position with csv_reader_resume() and fed the stream from that offset
 * delivers exactly the rows not yet delivered, with the same line and record numbers and
 * offsets. Inside the callback it already names the point past the row being delivered, so the
 * position stored in the same transaction as a row's effects is where to resume after a crash.
 *
 * Not thread-safe; a callback must not call back into the reader that called it except for
 * csv_reader_offset and csv_reader_position.
 */
#ifndef IMPACT_COMMON_CSV_H
#define IMPACT_COMMON_CSV_H

#include <stddef.h>
#include <stdint.h>

#define CSV_DEFAULT_SEPARATOR       ','
#define CSV_DEFAULT_MAX_FIELD_BYTES 4096
#define CSV_DEFAULT_MAX_FIELDS      256
#define CSV_DEFAULT_MAX_ROW_BYTES   65536
#define CSV_LIMIT_MAX_ROW_BYTES     (1u << 30)
#define CSV_LIMIT_MAX_FIELDS        (1u << 20)

typedef struct csv_reader_t csv_reader_t;

/* Zero in any member means its default. */
typedef struct {
    char separator;         /* any ASCII byte but '"', CR, LF; ',' ';' '\t' '|' in practice */
    size_t max_field_bytes; /* per field, after unquoting */
    size_t max_fields;      /* per row, at most CSV_LIMIT_MAX_FIELDS */
    size_t max_row_bytes;   /* per record as in the input, at most CSV_LIMIT_MAX_ROW_BYTES */
} csv_options_t;

typedef enum {
    CSV_OK = 0,
    CSV_E_FIELD_TOO_LONG,     /* a field exceeds max_field_bytes */
    CSV_E_TOO_MANY_FIELDS,    /* more than max_fields fields */
    CSV_E_ROW_TOO_LONG,       /* the record exceeds max_row_bytes */
    CSV_E_UNTERMINATED_QUOTE, /* a quoted field still open at max_row_bytes or at the end of input */
    CSV_E_QUOTE,              /* something other than a separator or line ending after a closing quote */
    CSV_E_ENCODING,           /* a field is not UTF-8 or holds a NUL byte */
} csv_error_t;

typedef struct {
    const char *data; /* NUL-terminated (a field never contains NUL: that is an error row) */
    size_t len;
} csv_field_t;

/* One record. Everything it points to is valid only during the callback. */
typedef struct {
    uint64_t line;             /* 1-based physical line of its first byte: every line ending counts,
                                  those inside quoted fields and blank lines included */
    uint64_t record;           /* 1-based: rows delivered so far, error rows included, blank lines not */
    uint64_t offset;           /* stream offset of its first byte */
    size_t count;              /* number of fields; 0 for an error row */
    const csv_field_t *fields; /* count fields, in order */
    csv_error_t error;         /* CSV_OK, or why the row has no fields */
    const char *error_text;    /* NULL for CSV_OK; else one English sentence naming the field or
                                  limit (without the row number, which the caller adds) */
} csv_row_t;

/* Where parsing may resume; see Checkpoints above. */
typedef struct {
    uint64_t offset;  /* stream offset just past the last row delivered */
    uint64_t line;    /* physical line number at that offset (1-based) */
    uint64_t records; /* rows delivered before that offset */
} csv_position_t;

/** Called for every row; returns 0 to go on, anything else to stop (feed/finish then return it). */
typedef int csv_row_fn(void *arg, const csv_row_t *row);

/** A reader at the start of a stream. `options` may be NULL for every default. NULL with errno
 *  EINVAL for a separator or limit out of range, ENOMEM when out of memory. */
csv_reader_t *csv_reader_new(const csv_options_t *options);

/** Frees the reader and sets *self_p to NULL; NULL or *self_p NULL is fine. */
void csv_reader_destroy(csv_reader_t **self_p);

/**
 * Declares that the bytes about to be fed start at `at` (from an earlier reader's
 * csv_reader_position) rather than at the start of the stream, so numbering and offsets carry
 * on from there; a BOM is looked for only if at->offset is 0. Only before the first feed.
 * 0, or -1 with errno EINVAL when already fed or at->line is 0.
 */
int csv_reader_resume(csv_reader_t *self, const csv_position_t *at);

/**
 * Parses the next `len` bytes of the stream, calling on_row(arg, row) for every row completed
 * by them (a row ended by a CR that is the chunk's last byte waits for the next byte, which may
 * be its LF). Returns 0 when every byte was consumed, or on_row's non-zero return value as soon
 * as it gives one: the reader then stands just past that row, at csv_reader_offset(), and the
 * bytes of the chunk from that offset on were not consumed. Feeding the stream again from that
 * offset carries on exactly as if the callback had returned 0. -1 with errno EINVAL after
 * csv_reader_finish.
 */
int csv_reader_feed(csv_reader_t *self, const char *data, size_t len, csv_row_fn *on_row, void *arg);

/**
 * Ends the stream: delivers the last row if the input did not end with a line ending (an error
 * row if it ends inside a quoted field). Returns 0, on_row's non-zero value, or -1 with errno
 * EINVAL if already finished. The reader accepts nothing afterwards.
 */
int csv_reader_finish(csv_reader_t *self, csv_row_fn *on_row, void *arg);

/** The offset of csv_reader_position(): where the row after the last one delivered begins. */
uint64_t csv_reader_offset(const csv_reader_t *self);

/** Where parsing may resume: store it with the effects of the rows delivered so far. */
csv_position_t csv_reader_position(const csv_reader_t *self);

#endif
