/*
 * Internal to http/: an event stream (stream.c) and the two transports that write it to a client,
 * Server-Sent Events (sse.c) and WebSocket (websocket.c).
 *
 * The stream is the subscriber and knows nothing of framing: it is registered with its thread's
 * hub, filters the live events, catches up from the database through the events API (from
 * ?after= or Last-Event-ID, and after any gap) holding live events meanwhile, keeps a caller's
 * session alive, and enforces the bounds: past a number of events or bytes waiting (held, plus
 * what the writer has not yet handed to the connection) the writer is told to overflow. A writer
 * frames events, queues them for its connection and says how much waits.
 *
 * Ownership: until the stream starts, the request owns it (a hook in the request's pool frees it
 * when the client goes). The writer's start takes it over: an SSE writer lives in the request's
 * pool and frees the stream with it; a WebSocket writer outlives its request and frees the stream
 * once the connection has closed. http_stream_destroy calls the writer's dispose.
 */
#ifndef IMPACT_HTTP_STREAM_H
#define IMPACT_HTTP_STREAM_H

#include <h2o.h>
#include <stddef.h>
#include <stdint.h>

typedef struct st_http_stream_t http_stream_t;

/* Why a stream ends, when it is not an overflow. */
typedef enum {
    HTTP_STREAM_END_FAILED,   /* the events could not be read: the client resumes from its last id */
    HTTP_STREAM_END_SESSION,  /* a caller's session is over: a new stream would be refused */
    HTTP_STREAM_END_SHUTDOWN, /* the server is stopping: the client resumes from its last id */
} http_stream_end_t;

typedef struct {
    /**
     * Takes the stream over from `req` and starts the response; `after` is where the client stands
     * (its resume point if it overflows before any event). The writer is set in *w. 0, or -1 when
     * nothing could be started (the stream then answers a problem).
     */
    int (*start)(http_stream_t *st, h2o_req_t *req, int64_t after, void **w);
    /** The event as this transport writes it (malloc'd, its length in *len); `doc` is the event's
     *  JSON document. NULL when out of memory. */
    char *(*frame)(int64_t id, const char *type, const char *doc, size_t *len);
    /** Queues a framed event after those before it. 0, or -1 when it cannot (the stream overflows). */
    int (*queue)(void *w, int64_t id, const char *text, size_t len);
    /** The events and bytes queued but not yet handed to the connection. */
    void (*backlog)(void *w, size_t *events, size_t *bytes);
    /** Hands what is queued to the connection as soon as it can take it. */
    void (*flush)(void *w);
    /** Called every keep-alive interval, whatever the stream's state. */
    void (*keepalive)(void *w);
    /** The client fell behind: what can be dropped is, the client is told to resume after the last
     *  event it was handed (returned), and the stream ends. */
    int64_t (*overflow)(void *w);
    /** Ends the stream for `why`, after what is queued. */
    void (*end)(void *w, http_stream_end_t why);
    /** The stream is being freed: the writer forgets it, and frees itself unless its request's pool does. */
    void (*dispose)(void *w);
} http_stream_writer_t;

extern const http_stream_writer_t http_sse_writer;       /* sse.c */
extern const http_stream_writer_t http_websocket_writer; /* websocket.c */

/** The account whose events the stream carries (for log lines). */
int64_t http_stream_account(const http_stream_t *st);

/** The client is gone or leaving: no more events are queued and no more reads are made. The stream
 *  stays until its owner destroys it. */
void http_stream_stop(http_stream_t *st);

/** Frees the stream: out of its hub, its read cancelled, its writer disposed. */
void http_stream_destroy(http_stream_t *st);

#endif
