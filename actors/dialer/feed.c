#include "actors/dialer/feed.h"

#include <curl/curl.h>
#include <inttypes.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/netguard.h"

#define URL_MAX           2000
#define BACKOFF_FIRST_MS  1000
#define BACKOFF_MAX_MS    (5 * 60 * 1000)
#define EXHAUSTED_WAIT_MS (60 * 1000)
#define NUMBER_TEXT_MAX   64

/* What the fetching thread owns; it is handed over at start and freed by the thread. */
typedef struct {
    char url[URL_MAX + 1];
    feed_options_t options;
    char region[3];
    int page;
    int64_t backoff_ms, cooldown_until;
    bool pending;
} fetcher_t;

struct feed_t {
    zactor_t *actor;
};

typedef struct {
    char *data;
    size_t len;
    bool too_big;
} body_t;

static size_t s_collect(char *data, size_t size, size_t n, void *arg)
{
    body_t *body = arg;
    size_t more = size * n;
    if (body->len + more > FEED_BODY_MAX) {
        body->too_big = true;
        return 0;
    }
    char *grown = realloc(body->data, body->len + more + 1);
    if (grown == NULL)
        return 0;
    body->data = grown;
    memcpy(body->data + body->len, data, more);
    body->len += more;
    body->data[body->len] = '\0';
    return more;
}

/* One item of a page: a string in any notation, or digits as a JSON integer. */
static bool s_number(const fetcher_t *f, json_t *item, char *e164)
{
    char text[NUMBER_TEXT_MAX];
    if (json_is_integer(item) && json_integer_value(item) > 0)
        snprintf(text, sizeof(text), "%" JSON_INTEGER_FORMAT, json_integer_value(item));
    else if (json_is_string(item) && json_string_length(item) < sizeof(text))
        snprintf(text, sizeof(text), "%s", json_string_value(item));
    else
        return false;
    phone_error_t error;
    return phone_normalize(text, f->region, e164, PHONE_E164_SIZE, &error) == 0;
}

/* Parses a body into page; 0, or -1 with page->error set. */
static int s_parse(const fetcher_t *f, const body_t *body, feed_page_t *page)
{
    json_error_t error;
    json_t *doc = json_loadb(body->data ? body->data : "", body->len, JSON_REJECT_DUPLICATES, &error);
    json_t *list = json_is_object(doc) ? json_object_get(doc, "phone_numbers") : doc;
    int rc = -1;
    if (doc == NULL)
        snprintf(page->error, sizeof(page->error), "the body is not JSON: %s", error.text);
    else if (!json_is_array(list))
        snprintf(page->error, sizeof(page->error), "the body is neither an array of numbers nor an object with phone_numbers");
    else if (json_array_size(list) > (size_t)f->options.page_size)
        snprintf(page->error, sizeof(page->error), "the page holds %zu numbers; limit was %d", json_array_size(list),
                 f->options.page_size);
    else if ((page->numbers = calloc(json_array_size(list) + 1, sizeof(*page->numbers))) == NULL)
        snprintf(page->error, sizeof(page->error), "out of memory");
    else {
        size_t i;
        json_t *item;
        json_array_foreach(list, i, item)
        {
            if (s_number(f, item, page->numbers[page->count]))
                page->count++;
            else
                page->invalid++;
        }
        page->result = json_array_size(list) == 0 ? FEED_EXHAUSTED : FEED_NUMBERS;
        rc = 0;
    }
    json_decref(doc);
    return rc;
}

static void s_get(fetcher_t *f, feed_page_t *page)
{
    char url[URL_MAX + 64];
    snprintf(url, sizeof(url), "%s%spage=%d&limit=%d", f->url, strchr(f->url, '?') ? "&" : "?", f->page, f->options.page_size);
    body_t body = {0};
    CURL *curl = curl_easy_init();
    if (curl == NULL) {
        snprintf(page->error, sizeof(page->error), "out of memory");
        return;
    }
    netguard_curl(curl, url, (long)f->options.timeout_ms, &f->options.allow_private);
    curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, s_collect);
    curl_easy_setopt(curl, CURLOPT_WRITEDATA, &body);
    CURLcode rc = curl_easy_perform(curl);
    long status = 0;
    curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &status);
    page->result = FEED_FAILED;
    if (body.too_big)
        snprintf(page->error, sizeof(page->error), "the body is larger than %d bytes", FEED_BODY_MAX);
    else if (rc != CURLE_OK)
        snprintf(page->error, sizeof(page->error), "%s", netguard_curl_error(rc, f->options.allow_private));
    else if (status < 200 || status > 299)
        snprintf(page->error, sizeof(page->error), "HTTP status %ld", status);
    else if (s_parse(f, &body, page) != 0)
        page->result = FEED_FAILED;
    curl_easy_cleanup(curl);
    free(body.data);
}

/* Fetches the pending page and sends the outcome up the pipe: result, page, retry, error,
 * invalid, then the numbers as one frame of fixed-size records. */
static void s_fetch(fetcher_t *f, zsock_t *pipe)
{
    feed_page_t page = {.page = f->page};
    s_get(f, &page);
    int64_t now = zclock_mono();
    if (page.result == FEED_FAILED) {
        f->backoff_ms = f->backoff_ms ? f->backoff_ms * 2 : BACKOFF_FIRST_MS;
        if (f->backoff_ms > BACKOFF_MAX_MS)
            f->backoff_ms = BACKOFF_MAX_MS;
        page.retry_in_ms = f->backoff_ms;
    } else {
        f->backoff_ms = 0;
        page.retry_in_ms = page.result == FEED_EXHAUSTED ? EXHAUSTED_WAIT_MS : 0;
        if (page.result == FEED_NUMBERS)
            f->page++;
    }
    f->cooldown_until = now + page.retry_in_ms;
    zmsg_t *msg = zmsg_new();
    zmsg_addstrf(msg, "%d", (int)page.result);
    zmsg_addstrf(msg, "%d", page.page);
    zmsg_addstrf(msg, "%" PRId64, page.retry_in_ms);
    zmsg_addstr(msg, page.error);
    zmsg_addstrf(msg, "%zu", page.invalid);
    zmsg_addmem(msg, page.numbers, page.count * sizeof(*page.numbers));
    zmsg_send(&msg, pipe);
    free(page.numbers);
}

static void s_actor(zsock_t *pipe, void *args)
{
    fetcher_t *f = args;
    zpoller_t *poller = zpoller_new(pipe, NULL);
    zsock_signal(pipe, 0);
    while (poller) {
        int timeout = -1;
        if (f->pending) {
            int64_t wait = f->cooldown_until - zclock_mono();
            timeout = wait > 0 ? (int)wait : 0;
        }
        zsock_t *which = zpoller_wait(poller, timeout);
        if (which == pipe) {
            char *command = zstr_recv(pipe);
            bool stop = command == NULL || streq(command, "$TERM");
            if (command && streq(command, "FETCH"))
                f->pending = true;
            zstr_free(&command);
            if (stop)
                break;
        } else if (zpoller_terminated(poller))
            break;
        if (f->pending && zclock_mono() >= f->cooldown_until) {
            f->pending = false;
            s_fetch(f, pipe);
        }
    }
    zpoller_destroy(&poller);
    free(f);
}

feed_t *feed_new(const char *url, const feed_options_t *options)
{
    if (strlen(url) > URL_MAX || strchr(url, '#'))
        return NULL;
    fetcher_t *f = calloc(1, sizeof *f);
    feed_t *self = calloc(1, sizeof *self);
    if (f == NULL || self == NULL)
        goto Error;
    snprintf(f->url, sizeof(f->url), "%s", url);
    if (options)
        f->options = *options;
    if (f->options.page_size <= 0)
        f->options.page_size = 100;
    if (f->options.page_size > FEED_PAGE_MAX)
        f->options.page_size = FEED_PAGE_MAX;
    if (f->options.timeout_ms <= 0)
        f->options.timeout_ms = 10000;
    snprintf(f->region, sizeof(f->region), "%s", f->options.default_region ? f->options.default_region : "US");
    f->options.default_region = NULL; /* the caller's string need not outlive this call */
    f->page = 1;
    self->actor = zactor_new(s_actor, f);
    if (self->actor == NULL)
        goto Error;
    return self;
Error:
    free(f);
    free(self);
    return NULL;
}

void feed_destroy(feed_t **self_p)
{
    feed_t *self = *self_p;
    if (self == NULL)
        return;
    zactor_destroy(&self->actor);
    free(self);
    *self_p = NULL;
}

zsock_t *feed_socket(feed_t *self)
{
    return zactor_sock(self->actor);
}

int feed_request(feed_t *self)
{
    return zstr_send(self->actor, "FETCH");
}

int feed_receive(feed_t *self, feed_page_t *page)
{
    memset(page, 0, sizeof(*page));
    zmsg_t *msg = zmsg_recv(self->actor);
    if (msg == NULL)
        return -1;
    int rc = -1;
    if (zmsg_size(msg) == 6) {
        char *result = zmsg_popstr(msg), *number = zmsg_popstr(msg), *retry = zmsg_popstr(msg), *error = zmsg_popstr(msg),
             *invalid = zmsg_popstr(msg);
        zframe_t *numbers = zmsg_pop(msg);
        size_t size = zframe_size(numbers);
        if (size % sizeof(*page->numbers) == 0 && (page->numbers = malloc(size + 1)) != NULL) {
            page->result = (feed_result_t)atoi(result);
            page->page = atoi(number);
            page->retry_in_ms = strtoll(retry, NULL, 10);
            snprintf(page->error, sizeof(page->error), "%s", error);
            page->invalid = strtoull(invalid, NULL, 10);
            page->count = size / sizeof(*page->numbers);
            memcpy(page->numbers, zframe_data(numbers), size);
            rc = 0;
        }
        zstr_free(&result);
        zstr_free(&number);
        zstr_free(&retry);
        zstr_free(&error);
        zstr_free(&invalid);
        zframe_destroy(&numbers);
    }
    zmsg_destroy(&msg);
    return rc;
}

void feed_page_free(feed_page_t *page)
{
    free(page->numbers);
    page->numbers = NULL;
    page->count = 0;
}
