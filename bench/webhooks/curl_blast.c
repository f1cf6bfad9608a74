/*
 * curl_blast: the baseline of the webhook benchmark, a bare libcurl-multi loop posting N copies of
 * a body to one URL, at most CONCURRENCY at a time, on reused connections. It does what a
 * deliverer must at the least (build a request, send it, read the status) and nothing the
 * product adds (reading the outbox, ordering, signing, logging each attempt, settling the event).
 *
 *   curl_blast URL COUNT CONCURRENCY BODY_FILE
 *
 * Prints one JSON object: {"posts", "ok", "seconds", "per_second"}.
 */
#include <curl/curl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define BODY_MAX (1 << 20)

static double s_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static size_t s_discard(char *data, size_t size, size_t n, void *ctx)
{
    (void)data;
    (void)ctx;
    return size * n;
}

static CURL *s_easy(const char *url, const char *body, long length, struct curl_slist *headers)
{
    CURL *easy = curl_easy_init();
    if (easy == NULL)
        return NULL;
    curl_easy_setopt(easy, CURLOPT_URL, url);
    curl_easy_setopt(easy, CURLOPT_POSTFIELDS, body);
    curl_easy_setopt(easy, CURLOPT_POSTFIELDSIZE, length);
    curl_easy_setopt(easy, CURLOPT_HTTPHEADER, headers);
    curl_easy_setopt(easy, CURLOPT_WRITEFUNCTION, s_discard);
    curl_easy_setopt(easy, CURLOPT_TIMEOUT_MS, 5000L);
    return easy;
}

int main(int argc, char **argv)
{
    if (argc != 5) {
        fprintf(stderr, "usage: curl_blast URL COUNT CONCURRENCY BODY_FILE\n");
        return 2;
    }
    long count = strtol(argv[2], NULL, 10), concurrency = strtol(argv[3], NULL, 10);
    if (count < 1 || count > 10000000 || concurrency < 1 || concurrency > 1024) {
        fprintf(stderr, "curl_blast: COUNT 1..10000000, CONCURRENCY 1..1024\n");
        return 2;
    }
    static char body[BODY_MAX];
    FILE *f = fopen(argv[4], "rb");
    if (f == NULL) {
        perror(argv[4]);
        return 2;
    }
    long length = (long)fread(body, 1, sizeof(body), f);
    fclose(f);

    curl_global_init(CURL_GLOBAL_DEFAULT);
    CURLM *multi = curl_multi_init();
    struct curl_slist *headers = curl_slist_append(NULL, "Content-Type: application/json");
    long started = 0, done = 0, ok = 0;
    double t0 = s_now();
    for (; started < count && started < concurrency; started++)
        curl_multi_add_handle(multi, s_easy(argv[1], body, length, headers));
    while (done < count) {
        int running;
        curl_multi_perform(multi, &running);
        CURLMsg *msg;
        int left;
        while ((msg = curl_multi_info_read(multi, &left)) != NULL) {
            if (msg->msg != CURLMSG_DONE)
                continue;
            long status = 0;
            curl_easy_getinfo(msg->easy_handle, CURLINFO_RESPONSE_CODE, &status);
            ok += msg->data.result == CURLE_OK && status >= 200 && status < 300;
            done++;
            /* the handle is reused for the next post: its connection stays warm, as a deliverer's would */
            CURL *easy = msg->easy_handle;
            curl_multi_remove_handle(multi, easy);
            if (started < count) {
                curl_multi_add_handle(multi, easy);
                started++;
            } else {
                curl_easy_cleanup(easy);
            }
        }
        if (done < count)
            curl_multi_poll(multi, NULL, 0, 100, NULL);
    }
    double seconds = s_now() - t0;
    printf("{\"posts\": %ld, \"ok\": %ld, \"seconds\": %.4f, \"per_second\": %.1f}\n", count, ok, seconds, (double)count / seconds);
    curl_slist_free_all(headers);
    curl_multi_cleanup(multi);
    curl_global_cleanup();
    return ok == count ? 0 : 1;
}
