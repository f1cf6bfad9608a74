/*
 * common/csv: the syntax rules, per-row errors and resynchronisation, limits, the BOM, and the
 * promises the importer builds on: the same bytes give the same rows, numbers and offsets however
 * they are split into chunks, and a reader resumed at a checkpoint delivers exactly the rows that
 * followed it. Random inputs (raw bytes, and tables encoded then parsed back) check the same
 * promises plus the invariants of every row; their volume is sized for a valgrind run.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <errno.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/csv.h"

/* One delivered row, copied out of the callback. */
typedef struct {
    uint64_t line, record, offset;
    csv_position_t next; /* csv_reader_position() inside the callback */
    csv_error_t error;
    char *error_text;
    size_t count;
    char **fields;
    size_t *lens;
} got_row_t;

typedef struct {
    csv_reader_t *reader;
    csv_options_t options;
    got_row_t *rows;
    size_t n, cap;
    int stop_with; /* the callback's return value */
} got_t;

static size_t s_max_or(size_t v, size_t dflt)
{
    return v ? v : dflt;
}

/* Copies the row and checks what must hold for every row. */
static int s_on_row(void *arg, const csv_row_t *row)
{
    got_t *g = arg;
    csv_position_t next = csv_reader_position(g->reader);
    assert_int_equal(csv_reader_offset(g->reader), next.offset);
    uint64_t prev_end = g->n ? g->rows[g->n - 1].next.offset : 0;
    uint64_t prev_line = g->n ? g->rows[g->n - 1].next.line : 1;
    assert_true(row->offset >= prev_end);
    assert_true(next.offset > row->offset);
    assert_true(row->line >= prev_line);
    assert_true(next.line >= row->line);
    assert_int_equal(next.records, row->record);
    if (g->n)
        assert_int_equal(row->record, g->rows[g->n - 1].record + 1);
    if (row->error == CSV_OK) {
        assert_null(row->error_text);
        assert_true(row->count >= 1);
        assert_true(row->count <= s_max_or(g->options.max_fields, CSV_DEFAULT_MAX_FIELDS));
    } else {
        assert_non_null(row->error_text);
        assert_true(strlen(row->error_text) > 0);
        assert_int_equal(row->count, 0);
    }
    if (g->n == g->cap) {
        g->cap = g->cap ? 2 * g->cap : 16;
        g->rows = realloc(g->rows, g->cap * sizeof(*g->rows));
        assert_non_null(g->rows);
    }
    got_row_t *r = &g->rows[g->n++];
    *r = (got_row_t){.line = row->line,
                     .record = row->record,
                     .offset = row->offset,
                     .next = next,
                     .error = row->error,
                     .error_text = row->error_text ? strdup(row->error_text) : NULL,
                     .count = row->count,
                     .fields = calloc(row->count + 1, sizeof(char *)),
                     .lens = calloc(row->count + 1, sizeof(size_t))};
    for (size_t i = 0; i < row->count; i++) {
        const csv_field_t *f = &row->fields[i];
        assert_true(f->len <= s_max_or(g->options.max_field_bytes, CSV_DEFAULT_MAX_FIELD_BYTES));
        assert_int_equal(f->data[f->len], '\0');
        assert_int_equal(strlen(f->data), f->len);
        r->fields[i] = malloc(f->len + 1);
        memcpy(r->fields[i], f->data, f->len + 1);
        r->lens[i] = f->len;
    }
    return g->stop_with;
}

static void s_got_free(got_t *g)
{
    for (size_t i = 0; i < g->n; i++) {
        for (size_t k = 0; k < g->rows[i].count; k++)
            free(g->rows[i].fields[k]);
        free(g->rows[i].fields);
        free(g->rows[i].lens);
        free(g->rows[i].error_text);
    }
    free(g->rows);
    csv_reader_destroy(&g->reader);
    memset(g, 0, sizeof(*g));
}

static void s_got_init(got_t *g, const csv_options_t *options)
{
    memset(g, 0, sizeof(*g));
    if (options)
        g->options = *options;
    g->reader = csv_reader_new(options);
    assert_non_null(g->reader);
}

/* Feeds input[0..len) cut at cuts[0..ncuts) (ascending), then finishes. */
static void s_parse_cuts(got_t *g, const csv_options_t *options, const char *input, size_t len, const size_t *cuts, size_t ncuts)
{
    s_got_init(g, options);
    size_t at = 0;
    for (size_t i = 0; i <= ncuts; i++) {
        size_t end = i < ncuts ? cuts[i] : len;
        assert_int_equal(csv_reader_feed(g->reader, input + at, end - at, s_on_row, g), 0);
        at = end;
    }
    assert_int_equal(csv_reader_finish(g->reader, s_on_row, g), 0);
}

static void s_parse(got_t *g, const csv_options_t *options, const char *input, size_t len)
{
    s_parse_cuts(g, options, input, len, NULL, 0);
}

/* Feeds in chunks of `chunk` bytes. */
static void s_parse_chunked(got_t *g, const csv_options_t *options, const char *input, size_t len, size_t chunk)
{
    s_got_init(g, options);
    for (size_t at = 0; at < len; at += chunk) {
        size_t n = len - at < chunk ? len - at : chunk;
        assert_int_equal(csv_reader_feed(g->reader, input + at, n, s_on_row, g), 0);
    }
    assert_int_equal(csv_reader_finish(g->reader, s_on_row, g), 0);
}

static bool s_row_equal(const got_row_t *a, const got_row_t *b)
{
    if (a->line != b->line || a->record != b->record || a->offset != b->offset || a->next.offset != b->next.offset ||
        a->next.line != b->next.line || a->next.records != b->next.records || a->error != b->error || a->count != b->count)
        return false;
    if ((a->error_text == NULL) != (b->error_text == NULL) || (a->error_text && strcmp(a->error_text, b->error_text) != 0))
        return false;
    for (size_t i = 0; i < a->count; i++)
        if (a->lens[i] != b->lens[i] || memcmp(a->fields[i], b->fields[i], a->lens[i]) != 0)
            return false;
    return true;
}

static void s_describe(const got_row_t *r, char *out, size_t size)
{
    int n = snprintf(out, size, "record %" PRIu64 " line %" PRIu64 " offset %" PRIu64 " next %" PRIu64 "/%" PRIu64 " ", r->record,
                     r->line, r->offset, r->next.offset, r->next.line);
    if (r->error != CSV_OK) {
        snprintf(out + n, size - (size_t)n, "error %d: %s", r->error, r->error_text);
        return;
    }
    for (size_t i = 0; i < r->count && (size_t)n < size; i++)
        n += snprintf(out + n, size - (size_t)n, "[%s]", r->fields[i]);
}

/* want[from..] against got[0..]: the same rows, numbers and offsets. */
static void s_assert_same_rows(const got_t *want, size_t from, const got_t *got, const char *what)
{
    if (got->n != want->n - from)
        fail_msg("%s: %zu rows, expected %zu", what, got->n, want->n - from);
    for (size_t i = 0; i < got->n; i++) {
        if (!s_row_equal(&want->rows[from + i], &got->rows[i])) {
            char a[512], b[512];
            s_describe(&want->rows[from + i], a, sizeof(a));
            s_describe(&got->rows[i], b, sizeof(b));
            fail_msg("%s: row %zu differs:\n  expected %s\n  got      %s", what, i, a, b);
        }
    }
}

/* Row i of g is a good row on `line` with the `n` fields given. */
static void s_assert_row(const got_t *g, size_t i, uint64_t line, size_t n, const char *const *fields)
{
    if (i >= g->n)
        fail_msg("row %zu missing (%zu rows)", i, g->n);
    const got_row_t *r = &g->rows[i];
    if (r->error != CSV_OK)
        fail_msg("row %zu: error %d: %s", i, r->error, r->error_text);
    assert_int_equal(r->line, line);
    assert_int_equal(r->count, n);
    for (size_t k = 0; k < n; k++) {
        assert_int_equal(r->lens[k], strlen(fields[k]));
        assert_string_equal(r->fields[k], fields[k]);
    }
}

#define ROW(g, i, line, ...)                                                                                                       \
    s_assert_row(g, i, line, sizeof((const char *[]){__VA_ARGS__}) / sizeof(const char *), (const char *const[]){__VA_ARGS__})

/* Row i of g is an error row of the given kind whose text contains `needle`. */
static void s_assert_error(const got_t *g, size_t i, uint64_t line, csv_error_t error, const char *needle)
{
    if (i >= g->n)
        fail_msg("row %zu missing (%zu rows)", i, g->n);
    const got_row_t *r = &g->rows[i];
    if (r->error != error)
        fail_msg("row %zu: error %d (%s), expected %d", i, r->error, r->error_text ? r->error_text : "-", error);
    assert_int_equal(r->line, line);
    if (strstr(r->error_text, needle) == NULL)
        fail_msg("row %zu: \"%s\" does not mention \"%s\"", i, r->error_text, needle);
}

#define S(lit) lit, sizeof(lit) - 1

static void test_rows_fields_and_numbers(void **state)
{
    got_t g;
    s_parse(&g, NULL, S("phone,first_name\n+15550100,Alice\n+15550101,Bob\n"));
    assert_int_equal(g.n, 3);
    ROW(&g, 0, 1, "phone", "first_name");
    ROW(&g, 1, 2, "+15550100", "Alice");
    ROW(&g, 2, 3, "+15550101", "Bob");
    assert_int_equal(g.rows[1].record, 2);
    assert_int_equal(g.rows[1].offset, 17);
    assert_int_equal(g.rows[1].next.offset, 33);
    assert_int_equal(g.rows[2].next.offset, 47);
    assert_int_equal(g.rows[2].next.line, 4);
    assert_int_equal(g.rows[2].next.records, 3);
    s_got_free(&g);

    /* Empty fields, a trailing separator, and a last row without a line ending. */
    s_parse(&g, NULL, S(",a,,\nb"));
    assert_int_equal(g.n, 2);
    ROW(&g, 0, 1, "", "a", "", "");
    ROW(&g, 1, 2, "b");
    assert_int_equal(g.rows[1].next.offset, 6);
    s_got_free(&g);

    s_parse(&g, NULL, S(""));
    assert_int_equal(g.n, 0);
    assert_int_equal(csv_reader_offset(g.reader), 0);
    s_got_free(&g);
}

static void test_quoted_fields(void **state)
{
    got_t g;
    s_parse(&g, NULL, S("\"a,b\",\"say \"\"hi\"\"\",\"multi\nline\",\"\",\"\"\"\"\nx,\"\",y\n\"\"\n"));
    assert_int_equal(g.n, 3);
    ROW(&g, 0, 1, "a,b", "say \"hi\"", "multi\nline", "", "\"");
    ROW(&g, 1, 3, "x", "", "y");
    ROW(&g, 2, 4, ""); /* a lone "" is a record of one empty field, not a blank line */
    s_got_free(&g);

    /* Line endings inside quotes are data, kept as they are, and count as lines. */
    s_parse(&g, NULL, S("\"1\r\n2\r3\n4\",x\r\nnext\n"));
    ROW(&g, 0, 1, "1\r\n2\r3\n4", "x");
    ROW(&g, 1, 5, "next");
    s_got_free(&g);
}

static void test_line_endings(void **state)
{
    got_t g;
    s_parse(&g, NULL, S("a\r\nb\rc\nd\r"));
    assert_int_equal(g.n, 4);
    ROW(&g, 0, 1, "a");
    ROW(&g, 1, 2, "b");
    ROW(&g, 2, 3, "c");
    ROW(&g, 3, 4, "d");
    assert_int_equal(g.rows[0].next.offset, 3);
    assert_int_equal(g.rows[1].next.offset, 5);
    assert_int_equal(g.rows[3].next.offset, 9);
    assert_int_equal(g.rows[3].next.line, 5);
    s_got_free(&g);

    /* A lone CR then a CRLF: a row, then an empty line. */
    s_parse(&g, NULL, S("a\r\r\nb\n"));
    assert_int_equal(g.n, 2);
    ROW(&g, 0, 1, "a");
    ROW(&g, 1, 3, "b");
    s_got_free(&g);

    /* A row ended by a CR that closes a chunk is held until the next byte shows if an LF follows. */
    s_got_init(&g, NULL);
    assert_int_equal(csv_reader_feed(g.reader, S("a,b\r"), s_on_row, &g), 0);
    assert_int_equal(g.n, 0);
    assert_int_equal(csv_reader_feed(g.reader, S("\nc"), s_on_row, &g), 0);
    assert_int_equal(g.n, 1);
    assert_int_equal(g.rows[0].next.offset, 5);
    assert_int_equal(csv_reader_finish(g.reader, s_on_row, &g), 0);
    ROW(&g, 1, 2, "c");
    s_got_free(&g);
}

static void test_blank_lines_are_skipped(void **state)
{
    got_t g;
    s_parse(&g, NULL, S("\n\na\n\r\n\rb\n\n"));
    assert_int_equal(g.n, 2);
    ROW(&g, 0, 3, "a");
    assert_int_equal(g.rows[0].record, 1);
    assert_int_equal(g.rows[0].offset, 2);
    ROW(&g, 1, 6, "b");
    assert_int_equal(g.rows[1].record, 2);
    assert_int_equal(g.rows[1].offset, 7);
    assert_int_equal(g.rows[1].next.offset, 9); /* the trailing empty line is not part of it */
    s_got_free(&g);

    /* Spaces or separators alone make a record. */
    s_parse(&g, NULL, S(" \n,\n"));
    ROW(&g, 0, 1, " ");
    ROW(&g, 1, 2, "", "");
    s_got_free(&g);
}

static void test_spaces_are_kept(void **state)
{
    got_t g;
    s_parse(&g, NULL, S(" a , b \n\" q \",x\na, \"b\"\n"));
    ROW(&g, 0, 1, " a ", " b ");
    ROW(&g, 1, 2, " q ", "x");
    ROW(&g, 2, 3, "a", " \"b\""); /* a quote after a space does not open a quoted field */
    s_got_free(&g);
}

static void test_bom(void **state)
{
    got_t g;
    s_parse(&g, NULL, S("\xEF\xBB\xBFphone,name\n1,x\n"));
    ROW(&g, 0, 1, "phone", "name");
    assert_int_equal(g.rows[0].offset, 3);
    ROW(&g, 1, 2, "1", "x");
    s_got_free(&g);

    s_parse_chunked(&g, NULL, S("\xEF\xBB\xBF\"a\"\n"), 1);
    ROW(&g, 0, 1, "a");
    s_got_free(&g);

    s_parse(&g, NULL, S("\xEF\xBB\xBF"));
    assert_int_equal(g.n, 0);
    s_got_free(&g);

    /* A BOM's first bytes without the rest are data (here invalid UTF-8). */
    s_parse_chunked(&g, NULL, S("\xEF\xBBx\n"), 1);
    s_assert_error(&g, 0, 1, CSV_E_ENCODING, "field 1");
    s_got_free(&g);
    s_parse(&g, NULL, S("\xEF"));
    s_assert_error(&g, 0, 1, CSV_E_ENCODING, "UTF-8");
    s_got_free(&g);

    /* Anywhere else a BOM is data: U+FEFF is valid UTF-8. */
    s_parse(&g, NULL,
            S("a\n\xEF\xBB\xBF"
              "b\n"));
    ROW(&g, 1, 2,
        "\xEF\xBB\xBF"
        "b");
    s_got_free(&g);
}

static void test_separators(void **state)
{
    const char seps[] = {';', '\t', '|'};
    for (size_t i = 0; i < sizeof(seps); i++) {
        char input[64];
        int n = snprintf(input, sizeof(input), "a%cb,c%c\"x%cy\"\n", seps[i], seps[i], seps[i]);
        char quoted[8] = {'x', seps[i], 'y', 0};
        got_t g;
        s_parse(&g, &(csv_options_t){.separator = seps[i]}, input, (size_t)n);
        ROW(&g, 0, 1, "a", "b,c", quoted);
        s_got_free(&g);
    }
    const char bad[] = {'"', '\r', '\n', (char)0xE9};
    for (size_t i = 0; i < sizeof(bad); i++) {
        errno = 0;
        assert_null(csv_reader_new(&(csv_options_t){.separator = bad[i]}));
        assert_int_equal(errno, EINVAL);
    }
    assert_null(csv_reader_new(&(csv_options_t){.max_fields = CSV_LIMIT_MAX_FIELDS + 1}));
    assert_null(csv_reader_new(&(csv_options_t){.max_row_bytes = CSV_LIMIT_MAX_ROW_BYTES + 1}));
}

static void test_quotes_inside_fields(void **state)
{
    got_t g;
    /* Lenient: a quote in a field that did not start with one is a character. */
    s_parse(&g, NULL, S("12\" monitor,Robert \"Bob\" Smith,a\"\"b\n"));
    ROW(&g, 0, 1, "12\" monitor", "Robert \"Bob\" Smith", "a\"\"b");
    s_got_free(&g);

    /* Strict: after a closing quote only a separator or a line ending. */
    s_parse(&g, NULL, S("1,\"Robert \"Bob\" Smith\",x\n2,\"a\" ,b\n3,\"ok\"\n\"a\"\x01\n"));
    assert_int_equal(g.n, 4);
    s_assert_error(&g, 0, 1, CSV_E_QUOTE, "field 2 has 'B'");
    s_assert_error(&g, 1, 2, CSV_E_QUOTE, "field 2 has ' '");
    ROW(&g, 2, 3, "3", "ok");
    assert_int_equal(g.rows[2].record, 3);
    s_assert_error(&g, 3, 4, CSV_E_QUOTE, "0x01");
    s_got_free(&g);

    /* The row's end is still found after the error, even across a quoted line ending. */
    s_parse(&g, NULL, S("\"a\"b,\"c\nd\"\nnext\n"));
    assert_int_equal(g.n, 2);
    s_assert_error(&g, 0, 1, CSV_E_QUOTE, "field 1");
    ROW(&g, 1, 3, "next");
    s_got_free(&g);
}

static void test_unterminated_quote(void **state)
{
    got_t g;
    /* At the end of input: everything from the quote on is the error row. */
    s_parse(&g, NULL, S("a,b\n\"open,x\ny,z\n"));
    assert_int_equal(g.n, 2);
    ROW(&g, 0, 1, "a", "b");
    s_assert_error(&g, 1, 2, CSV_E_UNTERMINATED_QUOTE, "opened on line 2 is not closed by the end");
    assert_int_equal(g.rows[1].next.offset, 16);
    s_got_free(&g);

    /* Bounded by max_row_bytes: the record may hold bytes 0..31; byte 32 ('7') is one too many,
     * so the rest of its line is skipped and r8 is the next row. */
    const char input[] = "\"open\nr2,x\nr3,x\nr4,x\nr5,x\nr6,x\nr7,x\nr8,x\n";
    csv_options_t o = {.max_row_bytes = 32};
    s_parse(&g, &o, input, sizeof(input) - 1);
    assert_int_equal(g.n, 2);
    s_assert_error(&g, 0, 1, CSV_E_UNTERMINATED_QUOTE, "opened on line 1 is not closed within 32 bytes");
    assert_int_equal(g.rows[0].next.offset, 36);
    assert_int_equal(g.rows[0].next.line, 8);
    ROW(&g, 1, 8, "r8", "x");
    assert_int_equal(g.rows[1].record, 2);
    s_got_free(&g);
}

static void test_limits(void **state)
{
    got_t g;
    csv_options_t o = {.max_field_bytes = 4, .max_fields = 3};
    s_parse(&g, &o,
            S("abcd,\"ab\"\"c\",x\n" /* at the field limit, unquoted and unquoted from "" */
              "abcde,x\n"            /* one byte over */
              "a,\"bcdef\"\n"        /* over, quoted */
              "a,b,c\n"              /* at the field count limit */
              "a,b,c,\n"             /* over, by an empty field */
              "ok\n"));
    assert_int_equal(g.n, 6);
    ROW(&g, 0, 1, "abcd", "ab\"c", "x");
    s_assert_error(&g, 1, 2, CSV_E_FIELD_TOO_LONG, "field 1 is longer than 4 bytes");
    s_assert_error(&g, 2, 3, CSV_E_FIELD_TOO_LONG, "field 2");
    ROW(&g, 3, 4, "a", "b", "c");
    s_assert_error(&g, 4, 5, CSV_E_TOO_MANY_FIELDS, "more than 3 fields");
    ROW(&g, 5, 6, "ok");
    s_got_free(&g);

    o = (csv_options_t){.max_row_bytes = 16};
    s_parse(&g, &o,
            S("aaaa,aaaa,\"aa\"\"\"\n" /* 16 bytes: at the row limit */
              "aaaa,aaaa,aaaaaaa\n"    /* 17: one over */
              "ok\n"));
    assert_int_equal(g.n, 3);
    ROW(&g, 0, 1, "aaaa", "aaaa", "aa\"");
    s_assert_error(&g, 1, 2, CSV_E_ROW_TOO_LONG, "longer than 16 bytes");
    ROW(&g, 2, 3, "ok");
    s_got_free(&g);

    /* An overlong row is skipped to its true end, which a quoted line ending does not make. */
    s_parse(&g, &o, S("aaaaaaaaaaaaaaaaaaaa,\"q\nq\"\nb\n"));
    assert_int_equal(g.n, 2);
    s_assert_error(&g, 0, 1, CSV_E_ROW_TOO_LONG, "16");
    ROW(&g, 1, 3, "b");
    s_got_free(&g);

    /* A huge field in many chunks: memory stays bounded and the stream goes on. */
    s_got_init(&g, NULL);
    char chunk[1000];
    memset(chunk, 'x', sizeof(chunk));
    assert_int_equal(csv_reader_feed(g.reader, S("\"big"), s_on_row, &g), 0);
    for (int i = 0; i < 200; i++)
        assert_int_equal(csv_reader_feed(g.reader, chunk, sizeof(chunk), s_on_row, &g), 0);
    assert_int_equal(csv_reader_feed(g.reader, S("\"\nafter\n"), s_on_row, &g), 0);
    assert_int_equal(csv_reader_finish(g.reader, s_on_row, &g), 0);
    /* Inside quotes the row limit is taken for an unclosed quote, which is the error reported
     * (rather than the field limit met first) because it explains the rows skipped. */
    assert_int_equal(g.n, 2);
    s_assert_error(&g, 0, 1, CSV_E_UNTERMINATED_QUOTE, "65536");
    ROW(&g, 1, 2, "after");
    s_got_free(&g);
}

static void test_utf8(void **state)
{
    got_t g;
    s_parse(&g, NULL, S("caf\xC3\xA9,\xE2\x82\xAC,\xF0\x9F\x93\x9E,\xEF\xBF\xBF,\xF4\x8F\xBF\xBF\n"));
    ROW(&g, 0, 1, "caf\xC3\xA9", "\xE2\x82\xAC", "\xF0\x9F\x93\x9E", "\xEF\xBF\xBF", "\xF4\x8F\xBF\xBF");
    s_got_free(&g);

    const char *bad[] = {
        "\xC3",             /* truncated */
        "\xC3(",            /* bad continuation */
        "\xC0\xAF",         /* overlong */
        "\xC1\xBF",         /* overlong */
        "\xE0\x80\xAF",     /* overlong */
        "\xED\xA0\x80",     /* surrogate */
        "\xF0\x80\x80\xAF", /* overlong */
        "\xF4\x90\x80\x80", /* past U+10FFFF */
        "\xF5\x80\x80\x80", /* past U+10FFFF */
        "\x80",             /* stray continuation */
        "\xFF",
        "\xE2\x82",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        char input[32];
        int n = snprintf(input, sizeof(input), "ok,x%s\nnext\n", bad[i]);
        s_parse(&g, NULL, input, (size_t)n);
        assert_int_equal(g.n, 2);
        s_assert_error(&g, 0, 1, CSV_E_ENCODING, "field 2 is not valid UTF-8 at byte 2");
        ROW(&g, 1, 2, "next");
        s_got_free(&g);
    }

    /* Past the eight-bytes-at-a-time path, and a NUL. */
    s_parse(&g, NULL, S("abcdefghijklmnop\xE9q\nab\0c\n"));
    s_assert_error(&g, 0, 1, CSV_E_ENCODING, "at byte 17");
    s_assert_error(&g, 1, 2, CSV_E_ENCODING, "NUL byte at byte 3");
    s_got_free(&g);
}

/* Mixes every rule, with default limits. */
static const char s_tricky[] = "\xEF\xBB\xBFphone,name,\"note\"\r\n"
                               "+1 555 0100,\"Smith, J\xC3\xA9r\xC3\xB4me\",\"line1\r\nline2\"\r\n"
                               "\r\n"
                               "+1 555 0101,\"say \"\"hi\"\"\",\xF0\x9F\x93\x9E\r"
                               "+1 555 0102,12\" tv,\"x\"y\n"
                               "\n"
                               "bad,\xC3(,z\r\n"
                               "\"multi\r\r\n\nline\",,\r"
                               " spaced , \"q\" ,\"\"\n"
                               "\"unterminated,at,end\r\nlast";

/* The same, with limits small enough to hit on the way. */
static const char s_tricky_small[] = "a,b,c\r"
                                     "toolongfield,x\n"
                                     "\"open\nr,1\nr,2\r\nr,3\nr,4\n"
                                     "1,2,3,4,5\n"
                                     "aaaaaaa,aaaaaaa,aaaaaaa,\"x\ny\"\n"
                                     "ok,\"q\"\"\"\r\n"
                                     "\"last";
static const csv_options_t s_small = {.max_field_bytes = 8, .max_fields = 4, .max_row_bytes = 20};

static void test_every_split_gives_the_same_rows(void **state)
{
    struct {
        const char *input;
        size_t len;
        const csv_options_t *options;
        size_t rows;
    } samples[] = {
        {s_tricky, sizeof(s_tricky) - 1, NULL, 8},
        {s_tricky_small, sizeof(s_tricky_small) - 1, &s_small, 7},
    };
    for (size_t s = 0; s < sizeof(samples) / sizeof(samples[0]); s++) {
        const char *input = samples[s].input;
        size_t len = samples[s].len;
        got_t want;
        s_parse(&want, samples[s].options, input, len);
        assert_int_equal(want.n, samples[s].rows);
        got_t got;
        s_parse_chunked(&got, samples[s].options, input, len, 1);
        s_assert_same_rows(&want, 0, &got, "byte by byte");
        s_got_free(&got);
        for (size_t cut = 0; cut <= len; cut++) {
            s_parse_cuts(&got, samples[s].options, input, len, &cut, 1);
            char what[64];
            snprintf(what, sizeof(what), "sample %zu cut at %zu", s, cut);
            s_assert_same_rows(&want, 0, &got, what);
            s_got_free(&got);
        }
        s_got_free(&want);
    }
}

static void test_tricky_rows(void **state)
{
    got_t g;
    s_parse(&g, NULL, s_tricky, sizeof(s_tricky) - 1);
    ROW(&g, 0, 1, "phone", "name", "note");
    assert_int_equal(g.rows[0].offset, 3);
    ROW(&g, 1, 2, "+1 555 0100", "Smith, J\xC3\xA9r\xC3\xB4me", "line1\r\nline2");
    ROW(&g, 2, 5, "+1 555 0101", "say \"hi\"", "\xF0\x9F\x93\x9E");
    s_assert_error(&g, 3, 6, CSV_E_QUOTE, "field 3 has 'y'");
    s_assert_error(&g, 4, 8, CSV_E_ENCODING, "field 2");
    ROW(&g, 5, 9, "multi\r\r\n\nline", "", "");
    ROW(&g, 6, 13, " spaced ", " \"q\" ", "");
    s_assert_error(&g, 7, 14, CSV_E_UNTERMINATED_QUOTE, "line 14");
    assert_int_equal(g.n, 8);
    s_got_free(&g);

    s_parse(&g, &s_small, s_tricky_small, sizeof(s_tricky_small) - 1);
    ROW(&g, 0, 1, "a", "b", "c");
    s_assert_error(&g, 1, 2, CSV_E_FIELD_TOO_LONG, "field 1");
    /* The record holds bytes 0..19 (up to the 'r' of r,4), the rest of that line is skipped. */
    s_assert_error(&g, 2, 3, CSV_E_UNTERMINATED_QUOTE, "line 3");
    s_assert_error(&g, 3, 8, CSV_E_TOO_MANY_FIELDS, "4");
    s_assert_error(&g, 4, 9, CSV_E_ROW_TOO_LONG, "20"); /* skipped past its quoted line ending */
    ROW(&g, 5, 11, "ok", "q\"");
    s_assert_error(&g, 6, 12, CSV_E_UNTERMINATED_QUOTE, "by the end");
    assert_int_equal(g.n, 7);
    s_got_free(&g);
}

/* Every checkpoint of `input` resumes to exactly the rows that followed it. */
static void s_check_resume(const csv_options_t *options, const char *input, size_t len)
{
    got_t want;
    s_parse(&want, options, input, len);
    for (size_t k = 0; k <= want.n; k++) {
        csv_position_t at = k == 0 ? (csv_position_t){.offset = 0, .line = 1, .records = 0} : want.rows[k - 1].next;
        got_t got;
        s_got_init(&got, options);
        assert_int_equal(csv_reader_resume(got.reader, &at), 0);
        assert_int_equal(csv_reader_offset(got.reader), at.offset);
        assert_int_equal(csv_reader_feed(got.reader, input + at.offset, len - at.offset, s_on_row, &got), 0);
        assert_int_equal(csv_reader_finish(got.reader, s_on_row, &got), 0);
        char what[64];
        snprintf(what, sizeof(what), "resumed after row %zu", k);
        s_assert_same_rows(&want, k, &got, what);
        s_got_free(&got);
    }
    s_got_free(&want);
}

static void test_resume_from_checkpoint(void **state)
{
    s_check_resume(NULL, s_tricky, sizeof(s_tricky) - 1);
    s_check_resume(&s_small, s_tricky_small, sizeof(s_tricky_small) - 1);

    got_t g;
    s_got_init(&g, NULL);
    assert_int_equal(csv_reader_resume(g.reader, &(csv_position_t){.offset = 5, .line = 0}), -1);
    assert_int_equal(csv_reader_feed(g.reader, S("a\n"), s_on_row, &g), 0);
    assert_int_equal(csv_reader_resume(g.reader, &(csv_position_t){.offset = 5, .line = 2}), -1);
    s_got_free(&g);
}

/* Feeds `chunk` bytes at a time, stopping at every row and going on from the reader's offset. */
static void s_parse_stopping(got_t *g, const csv_options_t *options, const char *input, size_t len, size_t chunk)
{
    s_got_init(g, options);
    g->stop_with = 7;
    size_t at = 0;
    while (at < len) {
        size_t n = len - at < chunk ? len - at : chunk;
        size_t before = g->n;
        int rc = csv_reader_feed(g->reader, input + at, n, s_on_row, g);
        if (rc == 0) {
            at += n;
            continue;
        }
        assert_int_equal(rc, 7);
        assert_int_equal(g->n, before + 1);
        at = csv_reader_offset(g->reader);
    }
    int rc = csv_reader_finish(g->reader, s_on_row, g);
    assert_true(rc == 0 || rc == 7);
    assert_int_equal(csv_reader_finish(g->reader, s_on_row, g), -1);
    assert_int_equal(csv_reader_feed(g->reader, S("x"), s_on_row, g), -1);
}

static void test_stop_and_go_on(void **state)
{
    got_t want, got;
    s_parse(&want, NULL, s_tricky, sizeof(s_tricky) - 1);
    for (size_t chunk = 1; chunk <= sizeof(s_tricky); chunk += 7) {
        s_parse_stopping(&got, NULL, s_tricky, sizeof(s_tricky) - 1, chunk);
        s_assert_same_rows(&want, 0, &got, "stopping at every row");
        s_got_free(&got);
    }
    s_got_free(&want);
}

/* A small deterministic generator, so a failure replays. */
static uint64_t s_rand_state;

static uint32_t s_rand(void)
{
    s_rand_state = s_rand_state * 6364136223846793005u + 1442695040888963407u;
    return (uint32_t)(s_rand_state >> 33);
}

static size_t s_rand_below(size_t n)
{
    return s_rand() % n;
}

/* Parses `input` whole, in random chunks, byte by byte, stopping at every row, and resumed at
 * a random checkpoint: all must agree. */
static void s_check_consistent(const csv_options_t *options, const char *input, size_t len, got_t *want)
{
    s_parse(want, options, input, len);
    if (want->n)
        assert_true(want->rows[want->n - 1].next.offset <= len);
    got_t got;
    size_t cuts[8], ncuts = s_rand_below(8);
    for (size_t i = 0; i < ncuts; i++)
        cuts[i] = s_rand_below(len + 1);
    for (size_t i = 1; i < ncuts; i++)
        for (size_t k = i; k > 0 && cuts[k - 1] > cuts[k]; k--) {
            size_t t = cuts[k];
            cuts[k] = cuts[k - 1];
            cuts[k - 1] = t;
        }
    s_parse_cuts(&got, options, input, len, cuts, ncuts);
    s_assert_same_rows(want, 0, &got, "random cuts");
    s_got_free(&got);
    if (s_rand_below(4) == 0) {
        s_parse_chunked(&got, options, input, len, 1);
        s_assert_same_rows(want, 0, &got, "byte by byte");
        s_got_free(&got);
    }
    if (s_rand_below(4) == 0) {
        s_parse_stopping(&got, options, input, len, 1 + s_rand_below(16));
        s_assert_same_rows(want, 0, &got, "stopping");
        s_got_free(&got);
    }
    if (want->n > 0) {
        size_t k = s_rand_below(want->n);
        csv_position_t at = want->rows[k].next;
        s_got_init(&got, options);
        assert_int_equal(csv_reader_resume(got.reader, &at), 0);
        assert_int_equal(csv_reader_feed(got.reader, input + at.offset, len - at.offset, s_on_row, &got), 0);
        assert_int_equal(csv_reader_finish(got.reader, s_on_row, &got), 0);
        s_assert_same_rows(want, k + 1, &got, "resumed");
        s_got_free(&got);
    }
}

static void test_fuzz_random_bytes(void **state)
{
    static const char alphabet[] = {'a',        'b',        ' ',        ',',        ',',        '"',        '"',
                                    '\r',       '\n',       '\n',       ';',        '\t',       (char)0xC3, (char)0xA9,
                                    (char)0xEF, (char)0xBB, (char)0xBF, (char)0xF0, (char)0x9F, 0,          (char)0xFF};
    s_rand_state = 42;
    char input[160];
    size_t rows = 0, errors = 0;
    for (int iter = 0; iter < 1600; iter++) {
        size_t len = s_rand_below(sizeof(input));
        if (iter % 2 == 0) {
            for (size_t i = 0; i < len; i++)
                input[i] = alphabet[s_rand_below(sizeof(alphabet))];
        } else {
            /* Mutations of the tricky sample keep most of its structure. */
            len = sizeof(s_tricky) - 1 < sizeof(input) ? sizeof(s_tricky) - 1 : sizeof(input);
            memcpy(input, s_tricky, len);
            for (size_t m = 1 + s_rand_below(4); m > 0; m--)
                input[s_rand_below(len)] = alphabet[s_rand_below(sizeof(alphabet))];
        }
        csv_options_t o = {0};
        if (s_rand_below(2))
            o = (csv_options_t){
                .max_field_bytes = 1 + s_rand_below(12), .max_fields = 1 + s_rand_below(6), .max_row_bytes = 1 + s_rand_below(40)};
        if (s_rand_below(4) == 0)
            o.separator = ';';
        got_t want;
        s_check_consistent(&o, input, len, &want);
        rows += want.n;
        for (size_t i = 0; i < want.n; i++)
            errors += want.rows[i].error != CSV_OK;
        s_got_free(&want);
    }
    print_message("fuzz: %zu rows, %zu of them errors\n", rows, errors);
}

/* Writes one field as a CSV writer would, quoting when needed (and sometimes when not). */
static size_t s_encode_field(char *out, const char *field, size_t len, char sep, bool first_alone)
{
    bool quote = len == 0 ? first_alone : field[0] == '"' || s_rand_below(5) == 0;
    for (size_t i = 0; i < len; i++)
        quote = quote || field[i] == sep || field[i] == '\r' || field[i] == '\n';
    size_t n = 0;
    if (quote)
        out[n++] = '"';
    for (size_t i = 0; i < len; i++) {
        if (quote && field[i] == '"')
            out[n++] = '"';
        out[n++] = field[i];
    }
    if (quote)
        out[n++] = '"';
    return n;
}

/* Random tables written out (every quoting and line-ending choice a writer may make) parse back
 * to themselves, with the right line numbers and offsets. */
static void test_fuzz_round_trip(void **state)
{
    static const char *pieces[] = {
        "a", "Z", " ", ",", ";", "\"", "\r", "\n", "\r\n", "\xC3\xA9", "\xE2\x82\xAC", "\xF0\x9F\x93\x9E", "0"};
    static const char *endings[] = {"\n", "\r\n", "\r"};
    s_rand_state = 7;
    enum { MAX_ROWS = 12, MAX_FIELDS = 5, MAX_LEN = 24 };
    for (int iter = 0; iter < 400; iter++) {
        char sep = s_rand_below(3) == 0 ? '\t' : ',';
        size_t nrows = 1 + s_rand_below(MAX_ROWS);
        char fields[MAX_ROWS][MAX_FIELDS][MAX_LEN + 1];
        size_t counts[MAX_ROWS], starts[MAX_ROWS], lines[MAX_ROWS];
        char text[MAX_ROWS * MAX_FIELDS * (2 * MAX_LEN + 3) + MAX_ROWS * 8];
        size_t len = 0, line = 1;
        for (size_t r = 0; r < nrows; r++) {
            counts[r] = 1 + s_rand_below(MAX_FIELDS);
            starts[r] = len;
            lines[r] = line;
            for (size_t f = 0; f < counts[r]; f++) {
                size_t flen = 0;
                for (size_t p = s_rand_below(6); p > 0; p--) {
                    const char *piece = pieces[s_rand_below(sizeof(pieces) / sizeof(pieces[0]))];
                    if (flen + strlen(piece) > MAX_LEN)
                        break;
                    memcpy(fields[r][f] + flen, piece, strlen(piece));
                    flen += strlen(piece);
                }
                fields[r][f][flen] = '\0';
                if (f > 0)
                    text[len++] = sep;
                size_t at = len;
                len += s_encode_field(text + len, fields[r][f], flen, sep, counts[r] == 1);
                for (size_t i = at; i < len; i++) /* line endings inside quotes count as lines */
                    line += text[i] == '\n' ? i == at || text[i - 1] != '\r' : text[i] == '\r';
            }
            /* A lone CR before a row starting with an LF would make a CRLF; such a row is quoted. */
            const char *ending = endings[s_rand_below(3)];
            memcpy(text + len, ending, strlen(ending));
            len += strlen(ending);
            line++;
            if (s_rand_below(6) == 0) { /* a blank line, ended like the row (CR then LF would be a CRLF) */
                memcpy(text + len, ending, strlen(ending));
                len += strlen(ending);
                line++;
            }
        }
        if (s_rand_below(2)) /* no line ending after the last row */
            while (len > 0 && (text[len - 1] == '\n' || text[len - 1] == '\r'))
                len--;
        got_t g;
        csv_options_t o = {.separator = sep};
        s_check_consistent(&o, text, len, &g);
        if (g.n != nrows)
            fail_msg("iteration %d: %zu rows, expected %zu:\n%.*s", iter, g.n, nrows, (int)len, text);
        for (size_t r = 0; r < nrows; r++) {
            assert_int_equal(g.rows[r].error, CSV_OK);
            assert_int_equal(g.rows[r].offset, starts[r]);
            assert_int_equal(g.rows[r].line, lines[r]);
            assert_int_equal(g.rows[r].count, counts[r]);
            for (size_t f = 0; f < counts[r]; f++) {
                assert_int_equal(g.rows[r].lens[f], strlen(fields[r][f]));
                assert_memory_equal(g.rows[r].fields[f], fields[r][f], g.rows[r].lens[f]);
            }
        }
        s_got_free(&g);
    }
}

static void test_misuse(void **state)
{
    csv_reader_destroy(NULL);
    csv_reader_t *r = NULL;
    csv_reader_destroy(&r);
    got_t g;
    s_got_init(&g, NULL);
    assert_int_equal(csv_reader_feed(g.reader, NULL, 0, s_on_row, &g), 0);
    assert_int_equal(csv_reader_finish(g.reader, s_on_row, &g), 0);
    errno = 0;
    assert_int_equal(csv_reader_feed(g.reader, S("a\n"), s_on_row, &g), -1);
    assert_int_equal(errno, EINVAL);
    assert_int_equal(csv_reader_finish(g.reader, s_on_row, &g), -1);
    assert_int_equal(g.n, 0);
    s_got_free(&g);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rows_fields_and_numbers),
        cmocka_unit_test(test_quoted_fields),
        cmocka_unit_test(test_line_endings),
        cmocka_unit_test(test_blank_lines_are_skipped),
        cmocka_unit_test(test_spaces_are_kept),
        cmocka_unit_test(test_bom),
        cmocka_unit_test(test_separators),
        cmocka_unit_test(test_quotes_inside_fields),
        cmocka_unit_test(test_unterminated_quote),
        cmocka_unit_test(test_limits),
        cmocka_unit_test(test_utf8),
        cmocka_unit_test(test_tricky_rows),
        cmocka_unit_test(test_every_split_gives_the_same_rows),
        cmocka_unit_test(test_resume_from_checkpoint),
        cmocka_unit_test(test_stop_and_go_on),
        cmocka_unit_test(test_fuzz_random_bytes),
        cmocka_unit_test(test_fuzz_round_trip),
        cmocka_unit_test(test_misuse),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
