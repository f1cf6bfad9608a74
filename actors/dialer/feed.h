/*
 * A customer's number feed: the phone_numbers_url of POST /v1/call, which the dialer GETs page by
 * page (page=N&limit=L added to the URL's query) when its queue of numbers runs low.
 *
 * Fetches run in a thread of their own so the dialer's loop never waits on a customer's server:
 * feed_request() asks for the next page, the feed's socket turns readable when the page (or a
 * failure) is in, and feed_receive() takes it. A failure (connection, timeout, HTTP error,
 * malformed body) backs off exponentially from 1 s to 5 minutes and the same page is asked
 * again; an empty page means the feed has nothing more for now and is asked again after a
 * minute, since customers add numbers. A request made during a back-off is kept and made when
 * it ends. Everything from the customer is bounded: the body (1 MiB), the numbers in a page (the
 * page size), each number's length; and the connection is refused when the host resolves to a
 * private address, unless allowed (common/netguard.h).
 *
 * Bodies: a JSON array of numbers (strings in any common notation, or digits), or an object
 * whose "phone_numbers" member is such an array.
 */
#ifndef IMPACT_DIALER_FEED_H
#define IMPACT_DIALER_FEED_H

#include <czmq.h>
#include <stdbool.h>
#include <stdint.h>

#include "phone/phone.h"

#define FEED_PAGE_MAX 1000
#define FEED_BODY_MAX (1024 * 1024)

typedef struct feed_t feed_t;

typedef struct {
    int page_size;              /* limit=; default 100, at most FEED_PAGE_MAX */
    int timeout_ms;             /* per request; default 10000 */
    bool allow_private;         /* connect to private addresses (tests, local demos) */
    const char *default_region; /* for numbers without a country code; default "US" */
} feed_options_t;

typedef enum { FEED_NUMBERS, FEED_EXHAUSTED, FEED_FAILED } feed_result_t;

typedef struct {
    feed_result_t result;
    int page;
    size_t count;                     /* valid numbers, in E.164 */
    char (*numbers)[PHONE_E164_SIZE]; /* count entries, owned by the page */
    size_t invalid;                   /* entries that were not valid numbers, skipped */
    char error[256];                  /* FEED_FAILED: why, for logs and the call's events */
    int64_t retry_in_ms;              /* FEED_FAILED, FEED_EXHAUSTED: the wait before the next fetch */
} feed_page_t;

/* Returns NULL when the URL is longer than 2000 bytes or the thread cannot start. */
feed_t *feed_new(const char *url, const feed_options_t *options);
void feed_destroy(feed_t **self_p);

/* Readable when a page is in; poll it in the dialer's loop. */
zsock_t *feed_socket(feed_t *self);

/* Asks for the next page. Asking again before the answer is harmless. 0, or -1 if the thread is gone. */
int feed_request(feed_t *self);

/* Takes the page the socket signalled. 0, or -1 when there was none (or it was malformed). */
int feed_receive(feed_t *self, feed_page_t *page);

void feed_page_free(feed_page_t *page);

#endif
