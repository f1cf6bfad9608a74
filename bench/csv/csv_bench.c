/*
 * csv_bench: what the streaming CSV reader (common/csv) costs on a lead list, fed as an upload
 * arrives: in 64 KiB chunks.
 *
 *   csv_bench [--quick] [--dump FILE]
 *
 * The input is generated in memory: a header and 1,000,000 rows (100,000 with --quick) of phone,
 * first_name, last_name, email, address, city, state, zip and two custom columns, CRLF-ended as
 * spreadsheets write them, with quoted addresses holding commas and notes holding doubled
 * quotes, about 130 bytes a row. The callback touches every field (sums their lengths), as the
 * importer's would.
 *
 * The baseline, alternating with the reader in every run so drift on a shared machine hits both
 * alike, is memchr counting the LFs of the same chunks: the least any line-oriented reader
 * does. One JSON object per line on stdout, the median over the runs. --dump writes the input
 * to FILE too, so other tools (COPY ... FROM with FORMAT csv, HEADER) can be timed on the same
 * bytes.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/csv.h"

#define CHUNK    (64 * 1024)
#define MAX_RUNS 15

static const char *s_first[] = {"James",     "Mary",    "Robert",  "Patricia", "John",  "Jennifer", "Michael", "Linda", "David",
                                "Elizabeth", "William", "Barbara", "Richard",  "Susan", "José",     "Zoë",     "Chloé", "Seán"};
static const char *s_last[] = {"Smith",    "Johnson",   "Williams", "Brown",   "Jones",  "Garcia", "Miller", "Davis",   "Rodriguez",
                               "Martinez", "Hernandez", "Lopez",    "O'Brien", "Nguyen", "Müller", "Wilson", "Anderson"};
static const char *s_streets[] = {"Main St",  "Oak Ave", "Pine Rd",         "Maple Dr",
                                  "Cedar Ln", "Elm St",  "Washington Blvd", "Lake View Ct"};
static const char *s_cities[] = {"Springfield", "Riverside", "Franklin", "Greenville", "Bristol", "Clinton", "Fairview", "Salem"};
static const char *s_states[] = {"CA", "TX", "NY", "FL", "IL", "PA", "OH", "GA", "NC", "MI"};
static const char *s_sources[] = {"web form", "trade show", "referral", "purchased list", "inbound call"};
static const char *s_notes[] = {"",
                                "",
                                "",
                                "call after 5pm",
                                "\"\"\"VIP\"\" customer, handle with care\"",
                                "\"asked about the 55\"\" TV\"",
                                "\"prefers email, not phone\"",
                                "Spanish speaker"};

static uint64_t s_rand_state = 12345;

static uint32_t s_rand(void)
{
    s_rand_state = s_rand_state * 6364136223846793005u + 1442695040888963407u;
    return (uint32_t)(s_rand_state >> 33);
}

#define PICK(list) list[s_rand() % (sizeof(list) / sizeof(list[0]))]

/* The whole upload in one buffer; *len its size. NULL when out of memory. */
static char *s_generate(int rows, size_t *len)
{
    size_t cap = (size_t)rows * 256 + 256, n = 0;
    char *buf = malloc(cap);
    if (buf == NULL)
        return NULL;
    n += (size_t)snprintf(buf, cap, "phone,first_name,last_name,email,address,city,state,zip,source,notes\r\n");
    for (int i = 0; i < rows; i++) {
        const char *first = PICK(s_first), *last = PICK(s_last);
        unsigned area = 201 + s_rand() % 780, exchange = 200 + s_rand() % 800, line = s_rand() % 10000;
        char phone[32], address[96];
        if (s_rand() % 2)
            snprintf(phone, sizeof(phone), "+1%03u%03u%04u", area, exchange, line);
        else
            snprintf(phone, sizeof(phone), "(%03u) %03u-%04u", area, exchange, line);
        if (s_rand() % 5 == 0)
            snprintf(address, sizeof(address), "\"%u %s, Apt %u\"", 1 + s_rand() % 9999, PICK(s_streets), 1 + s_rand() % 40);
        else
            snprintf(address, sizeof(address), "%u %s", 1 + s_rand() % 9999, PICK(s_streets));
        n += (size_t)snprintf(buf + n, cap - n, "%s,%s,%s,%s.%s%u@example.com,%s,%s,%s,%05u,%s,%s\r\n", phone, first, last, first,
                              last, s_rand() % 1000, address, PICK(s_cities), PICK(s_states), s_rand() % 100000, PICK(s_sources),
                              PICK(s_notes));
    }
    *len = n;
    return buf;
}

typedef struct {
    uint64_t rows, errors, bytes;
} tally_t;

static int s_on_row(void *arg, const csv_row_t *row)
{
    tally_t *t = arg;
    t->rows++;
    t->errors += row->error != CSV_OK;
    for (size_t i = 0; i < row->count; i++)
        t->bytes += row->fields[i].len;
    return 0;
}

static double s_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Seconds to read the whole input; the tally is filled in. -1 if the reader failed. */
static double s_time_reader(const char *input, size_t len, tally_t *t)
{
    memset(t, 0, sizeof(*t));
    double start = s_now();
    csv_reader_t *reader = csv_reader_new(NULL);
    if (reader == NULL)
        return -1;
    int rc = 0;
    for (size_t at = 0; at < len && rc == 0; at += CHUNK)
        rc = csv_reader_feed(reader, input + at, len - at < CHUNK ? len - at : CHUNK, s_on_row, t);
    if (rc == 0)
        rc = csv_reader_finish(reader, s_on_row, t);
    csv_reader_destroy(&reader);
    return rc == 0 ? s_now() - start : -1;
}

static double s_time_memchr(const char *input, size_t len, uint64_t *lines)
{
    double start = s_now();
    uint64_t count = 0;
    for (size_t at = 0; at < len; at += CHUNK) {
        const char *p = input + at, *end = p + (len - at < CHUNK ? len - at : CHUNK);
        while ((p = memchr(p, '\n', (size_t)(end - p))) != NULL) {
            count++;
            p++;
        }
    }
    *lines = count;
    return s_now() - start;
}

static int s_compare_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double s_median(double *values, int n)
{
    qsort(values, (size_t)n, sizeof(values[0]), s_compare_double);
    return n % 2 ? values[n / 2] : (values[n / 2 - 1] + values[n / 2]) / 2;
}

int main(int argc, char **argv)
{
    int runs = 9, rows = 1000000;
    const char *dump = NULL;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--quick") == 0) {
            runs = 3;
            rows = 100000;
        } else if (strcmp(argv[i], "--dump") == 0 && i + 1 < argc) {
            dump = argv[++i];
        } else {
            fprintf(stderr, "usage: %s [--quick] [--dump FILE]\n", argv[0]);
            return 2;
        }
    }
    size_t len = 0;
    char *input = s_generate(rows, &len);
    if (input == NULL) {
        fprintf(stderr, "csv_bench: out of memory\n");
        return 1;
    }
    if (dump != NULL) {
        FILE *f = fopen(dump, "wb");
        if (f == NULL || fwrite(input, 1, len, f) != len || fclose(f) != 0) {
            perror(dump);
            free(input);
            return 1;
        }
    }
    double ours[MAX_RUNS], theirs[MAX_RUNS];
    for (int r = 0; r < runs; r++) {
        tally_t t;
        uint64_t lines = 0;
        ours[r] = s_time_reader(input, len, &t);
        theirs[r] = s_time_memchr(input, len, &lines);
        /* A figure from a reader that misread the input would be meaningless. */
        if (ours[r] < 0 || t.rows != (uint64_t)rows + 1 || t.errors != 0 || lines != t.rows) {
            fprintf(stderr, "csv_bench: read %llu rows (%llu errors), expected %d\n", (unsigned long long)t.rows,
                    (unsigned long long)t.errors, rows + 1);
            free(input);
            return 1;
        }
    }
    double s = s_median(ours, runs), base = s_median(theirs, runs), mb = (double)len / 1e6;
    printf("{\"name\": \"read_64k_chunks\", \"unit\": \"MB/s\", \"mb_per_sec\": %.1f, \"rows_per_sec\": %.0f, "
           "\"baseline\": \"memchr LF count\", \"baseline_mb_per_sec\": %.1f, \"ratio\": %.3f, "
           "\"rows\": %d, \"bytes\": %zu, \"runs\": %d, \"statistic\": \"median\"}\n",
           mb / s, (rows + 1) / s, mb / base, base / s, rows + 1, len, runs);
    free(input);
    return 0;
}
