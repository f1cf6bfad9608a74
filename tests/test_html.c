/*
 * The browser view (http/html.h) on its own: pages for a resource, a collection and a problem,
 * escaping of hostile values, credentials carried only along same-origin links, Accept
 * negotiation, the refusals (too large, too deep, not JSON) and a fuzz run of mutated documents.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/urlform.h"
#include "http/html.h"

#define ORIGIN "http://127.0.0.1:8080"

static const html_page_t s_page = {
    .origin = ORIGIN,
    .api_key = "ik_abc",
    .api_auth = "ia_x+y&z/=",
    .query = "api_key=ik_abc&api_auth=ia_x%2By%26z%2F%3D",
    .query_len = sizeof("api_key=ik_abc&api_auth=ia_x%2By%26z%2F%3D") - 1,
    .status = 200,
};

/* The credentials as every same-origin href must carry them. */
#define CREDS "api_key=ik_abc&amp;api_auth=ia_x%2By%26z%2F%3D"

static char *s_render(const char *json, const html_page_t *page)
{
    size_t len = 0;
    const char *reason = NULL;
    char *html = html_render(json, strlen(json), page, &len, &reason);
    if (html == NULL)
        fail_msg("not rendered: %s", reason ? reason : "(no reason)");
    assert_int_equal(strlen(html), len);
    assert_memory_equal(html, "<!DOCTYPE html>", 15);
    assert_non_null(strstr(html, "</html>"));
    return html;
}

static void s_contains(const char *html, const char *needle)
{
    if (strstr(html, needle) == NULL)
        fail_msg("missing %s in:\n%s", needle, html);
}

static void s_lacks(const char *html, const char *needle)
{
    if (strstr(html, needle) != NULL)
        fail_msg("unexpected %s in:\n%s", needle, html);
}

static size_t s_count(const char *html, const char *needle)
{
    size_t n = 0;
    for (const char *p = html; (p = strstr(p, needle)) != NULL; p += strlen(needle))
        n++;
    return n;
}

/* Refused: NULL and a reason containing `why`. */
static void s_refused(const char *json, size_t len, const char *why)
{
    size_t out_len = 0;
    const char *reason = NULL;
    char *html = html_render(json, len, &s_page, &out_len, &reason);
    if (html != NULL) {
        free(html);
        fail_msg("rendered, but should have been refused (%s)", why);
    }
    assert_non_null(reason);
    if (strstr(reason, why) == NULL)
        fail_msg("refused because \"%s\", expected \"%s\"", reason, why);
}

/* ---- pages ---------------------------------------------------------------------------------- */

static void test_resource(void **state)
{
    char *html = s_render("{\"uri\":\"" ORIGIN "/v1\",\"name\":\"Impact Dialing API\",\"version\":\"0.1.0\","
                          "\"account\":{\"id\":1,\"name\":\"Development\"},\"actions\":[],"
                          "\"resources\":[{\"name\":\"health\",\"uri\":\"" ORIGIN "/v1/health\"}],"
                          "\"ratio\":1.5,\"active\":true,\"deleted\":false,\"note\":null,\"tags\":[\"a\",\"b\"],\"meta\":{}}",
                          &s_page);
    s_contains(html, "<title>Impact Dialing API</title>");
    s_contains(html, "<h1>Impact Dialing API</h1>");
    s_contains(html, "<span class=\"status\">HTTP 200</span>");
    s_contains(html, "<a href=\"" ORIGIN "/v1?" CREDS "\" rel=\"self\">" ORIGIN "/v1</a>");
    /* Scalars in the fields table, nested objects as tables of their own. */
    s_contains(html, "<tr><th>version</th><td>0.1.0</td></tr>");
    s_contains(html, "<tr><th>account</th><td><table class=\"kv\"><tr><th>id</th><td><span class=\"num\">1</span></td></tr>"
                     "<tr><th>name</th><td>Development</td></tr></table></td></tr>");
    s_contains(html, "<span class=\"num\">1.5</span>");
    s_contains(html, "<span class=\"lit\">true</span>");
    s_contains(html, "<span class=\"lit\">false</span>");
    s_contains(html, "<span class=\"lit\">null</span>");
    s_contains(html, "<ol><li>a</li><li>b</li></ol>");
    s_contains(html, "<td><span class=\"empty\">{}</span></td>");
    /* name and uri are the heading, not fields. */
    s_lacks(html, "<th>name</th><td>Impact");
    s_lacks(html, "<th>uri</th>");
    s_contains(html, "<h2>Resources</h2><ul class=\"links\"><li><a href=\"" ORIGIN "/v1/health?" CREDS "\">health</a>");
    s_lacks(html, "<h2>Actions</h2>"); /* empty */
    /* The same page as JSON, relative, with the request's own query. */
    s_contains(html, "<a href=\"?api_key=ik_abc&amp;api_auth=ia_x%2By%26z%2F%3D&amp;format=json\">as JSON</a>");
    free(html);
}

static void test_collection(void **state)
{
    char *html =
        s_render("{\"uri\":\"" ORIGIN "/v1/campaigns?page=2\",\"name\":\"Campaigns\",\"total\":3,"
                 "\"items\":[{\"id\":1,\"name\":\"Spring\",\"uri\":\"" ORIGIN "/v1/campaigns/1\"},"
                 "{\"id\":2,\"name\":\"Fall\",\"uri\":\"" ORIGIN "/v1/campaigns/2#top\",\"extra\":[1,2]}],"
                 "\"first_page\":\"" ORIGIN "/v1/campaigns?page=1&api_key=stale&limit=2\",\"prev_page\":null,"
                 "\"next_page\":\"" ORIGIN "/v1/campaigns?page=3\",\"last_page\":\"https://elsewhere.example/v1/campaigns?page=9\","
                 "\"actions\":[{\"name\":\"create\",\"method\":\"POST\",\"uri\":\"" ORIGIN "/v1/campaigns\","
                 "\"parameters\":[{\"name\":\"name\",\"type\":\"string\",\"required\":true}]}],\"resources\":[]}",
                 &s_page);
    s_contains(html, "<h1>Campaigns</h1>");
    /* Items as a table whose columns are the union of the objects' keys. */
    s_contains(html, "<h2>Items</h2><table class=\"grid\"><thead><tr><th>id</th><th>name</th><th>uri</th><th>extra</th></tr>");
    s_contains(html, "<td><a href=\"" ORIGIN "/v1/campaigns/1?" CREDS "\">" ORIGIN "/v1/campaigns/1</a></td><td></td></tr>");
    /* The fragment stays last; stale credentials in a link are replaced, other parameters kept. */
    s_contains(html, "href=\"" ORIGIN "/v1/campaigns/2?" CREDS "#top\"");
    s_contains(html, "<a href=\"" ORIGIN "/v1/campaigns?page=1&amp;limit=2&amp;" CREDS "\" rel=\"first\">First</a>");
    s_lacks(html, "stale");
    s_contains(html, "<span class=\"off\">Previous</span>");
    s_contains(html, "<a href=\"" ORIGIN "/v1/campaigns?page=3&amp;" CREDS "\" rel=\"next\">Next</a>");
    s_contains(html, "<span>Last: https://elsewhere.example/v1/campaigns?page=9</span>");
    /* Actions: the fixed columns, parameters as a nested table. */
    s_contains(html, "<h2>Actions</h2><table class=\"grid\"><thead><tr><th>name</th><th>method</th><th>uri</th>"
                     "<th>parameters</th></tr></thead><tbody><tr><td>create</td><td>POST</td>");
    s_contains(html, "<table class=\"grid\"><thead><tr><th>name</th><th>type</th><th>required</th></tr>");
    s_contains(html, "<tr><th>total</th><td><span class=\"num\">3</span></td></tr>");
    s_lacks(html, "<h2>Resources</h2>"); /* empty */
    free(html);
}

static void test_wide_collection(void **state)
{
    char *html = s_render("{\"name\":\"Campaigns\",\"items\":[{\"uri\":\"" ORIGIN "/v1/campaigns/1\",\"id\":1,\"k1\":1,\"k2\":0.03,"
                          "\"nested\":{\"a\":1},\"k3\":3,\"k4\":4,\"k5\":5,\"k6\":6,\"k7\":7,\"k8\":8,\"k9\":9,\"k10\":10,"
                          "\"name\":\"<b>Spring</b>\",\"actions\":[]},{\"id\":2,\"name\":\"No uri\",\"k2\":0.30000000000000004}]}",
                          &s_page);
    /* Too wide for a table of everything: name first (linked), then the first scalar fields. */
    s_contains(html, "<h2>Items</h2><table class=\"grid\"><thead><tr><th>name</th><th>id</th><th>k1</th><th>k2</th><th>k3</th>"
                     "<th>k4</th><th>k5</th><th>k6</th></tr></thead>");
    s_contains(html, "<tr><td><a href=\"" ORIGIN "/v1/campaigns/1?" CREDS "\">&lt;b&gt;Spring&lt;/b&gt;</a></td>");
    s_contains(html, "<td><span class=\"num\">0.03</span></td>");
    s_contains(html, "<tr><td>No uri</td><td><span class=\"num\">2</span></td><td></td>"
                     "<td><span class=\"num\">0.30000000000000004</span></td>");
    s_lacks(html, "<th>nested</th>");
    free(html);

    html = s_render("{\"items\":[{\"uri\":\"" ORIGIN "/v1/x/1\",\"k1\":1,\"k2\":2,\"k3\":3,\"k4\":4,\"k5\":5,\"k6\":6,"
                    "\"k7\":7,\"k8\":8,\"k9\":9,\"k10\":10,\"k11\":11,\"k12\":12}]}",
                    &s_page);
    s_contains(html, "<thead><tr><th>uri</th><th>k1</th>");
    s_contains(html, "<td><a href=\"" ORIGIN "/v1/x/1?" CREDS "\">" ORIGIN "/v1/x/1</a></td>");
    free(html);
}

static void test_problem(void **state)
{
    html_page_t page = s_page;
    page.status = 401;
    char *html = s_render("{\"type\":\"/problems/unauthorized\",\"title\":\"Authentication required\",\"status\":401,"
                          "\"detail\":\"The api_key and api_auth pair is not valid.\",\"instance\":\"/v1\","
                          "\"request_id\":\"0123456789abcdef01234567\"}",
                          &page);
    s_contains(html, "<title>Authentication required</title>");
    s_contains(html, "<span class=\"status error\">HTTP 401</span>");
    s_contains(html, "<tr><th>detail</th><td>The api_key and api_auth pair is not valid.</td></tr>");
    /* Relative references are not links (only absolute URIs on the origin are). */
    s_contains(html, "<tr><th>instance</th><td>/v1</td></tr>");
    s_contains(html, "<tr><th>type</th><td>/problems/unauthorized</td></tr>");
    s_lacks(html, "<th>title</th>");
    free(html);
}

static void test_top_level_array_and_untitled(void **state)
{
    char *html = s_render("[{\"a\":1},{\"b\":\"" ORIGIN "/v1\"}]", &s_page);
    s_contains(html, "<title>API response</title>");
    s_contains(html, "<th>a</th><th>b</th>");
    s_contains(html, "<a href=\"" ORIGIN "/v1?" CREDS "\">");
    free(html);
    /* Mixed arrays and objects with many keys are lists, not tables. */
    html = s_render("{\"mixed\":[1,{\"a\":1}],\"wide\":[{\"k1\":1,\"k2\":2,\"k3\":3,\"k4\":4,\"k5\":5,\"k6\":6,\"k7\":7,"
                    "\"k8\":8,\"k9\":9,\"k10\":10,\"k11\":11,\"k12\":12,\"k13\":13}]}",
                    &s_page);
    s_contains(html, "<ol><li><span class=\"num\">1</span></li><li><table class=\"kv\">");
    s_contains(html, "<ol><li><table class=\"kv\"><tr><th>k1</th>");
    free(html);
    /* Without name or title, the path names the page. */
    html_page_t page = s_page;
    page.path = "/v1/<health>";
    page.path_len = 12;
    html = s_render("{\"status\":\"ok\",\"processes\":[{\"name\":\"http\",\"state\":\"running\"}]}", &page);
    s_contains(html, "<title>/v1/&lt;health&gt;</title>");
    s_contains(html, "<h1>/v1/&lt;health&gt;</h1>");
    s_contains(html, "<th>processes</th><td><table class=\"grid\"><thead><tr><th>name</th><th>state</th></tr>");
    free(html);
}

/* ---- escaping and links --------------------------------------------------------------------- */

static void test_escaping(void **state)
{
    char *html = s_render("{\"name\":\"<script>alert(1)</script>\",\"uri\":\"javascript:alert(2)\","
                          "\"\\\"><img src=x onerror=alert(3)>\":\"it's <b>&amp;\","
                          "\"quoted\":\"" ORIGIN "/v1/x\\\"><script>alert(4)</script>\","
                          "\"ctl\":\"a\\u0001b\\u007fc\",\"unicode\":\"caf\\u00e9 \\u2028\","
                          "\"resources\":[{\"name\":\"<i>x</i>\",\"uri\":\"javascript:alert(5)\"}],"
                          "\"items\":[{\"<th>\":\"</td>\"}]}",
                          &s_page);
    assert_int_equal(s_count(html, "<script"), 0);
    assert_int_equal(s_count(html, "<img"), 0);
    assert_int_equal(s_count(html, "<i>"), 0);
    assert_int_equal(s_count(html, "javascript:alert(2)\""), 0);
    s_contains(html, "<title>&lt;script&gt;alert(1)&lt;/script&gt;</title>");
    s_contains(html, "<h1>&lt;script&gt;alert(1)&lt;/script&gt;</h1>");
    s_contains(html, "<th>&quot;&gt;&lt;img src=x onerror=alert(3)&gt;</th><td>it&#39;s &lt;b&gt;&amp;amp;</td>");
    /* A string that merely starts with the origin but holds characters no URI has is text. */
    s_contains(html, "<td>" ORIGIN "/v1/x&quot;&gt;&lt;script&gt;alert(4)&lt;/script&gt;</td>");
    s_contains(html, "<td>a&#xFFFD;b&#xFFFD;c</td>");
    s_contains(html, "<td>caf\xc3\xa9 \xe2\x80\xa8</td>");
    s_contains(html, "<li>&lt;i&gt;x&lt;/i&gt;<span class=\"uri\">javascript:alert(5)</span></li>");
    s_contains(html, "<th>&lt;th&gt;</th>");
    s_contains(html, "<td>&lt;/td&gt;</td>");
    /* javascript: as the uri is shown as text, never as a link. */
    s_lacks(html, "href=\"javascript");
    free(html);
}

static void test_links_by_origin(void **state)
{
    html_page_t page = s_page;
    page.query = NULL; /* so the only credentials on the page are those of links */
    char *html = s_render("{\"same\":\"" ORIGIN "/v1/a\",\"bare\":\"" ORIGIN "\",\"query\":\"" ORIGIN "?x=1\","
                          "\"upper\":\"HTTP://127.0.0.1:8080/v1/b\","
                          "\"other\":\"http://evil.example/v1?steal=1\",\"tls\":\"https://127.0.0.1:8080/v1\","
                          "\"port\":\"http://127.0.0.1:80800/v1\",\"userinfo\":\"http://127.0.0.1:8080@evil.example/\","
                          "\"suffix\":\"http://127.0.0.1:8080.evil.example/\",\"relative\":\"/v1/c\","
                          "\"space\":\"" ORIGIN "/v1/a b\"}",
                          &page);
    s_contains(html, "<a href=\"" ORIGIN "/v1/a?" CREDS "\">");
    s_contains(html, "<a href=\"" ORIGIN "?" CREDS "\">");
    s_contains(html, "<a href=\"" ORIGIN "?x=1&amp;" CREDS "\">");
    s_contains(html, "<a href=\"HTTP://127.0.0.1:8080/v1/b?" CREDS "\">");
    s_contains(html, "<td>http://evil.example/v1?steal=1</td>");
    s_contains(html, "<td>https://127.0.0.1:8080/v1</td>");
    s_contains(html, "<td>http://127.0.0.1:80800/v1</td>");
    s_contains(html, "<td>http://127.0.0.1:8080@evil.example/</td>");
    s_contains(html, "<td>http://127.0.0.1:8080.evil.example/</td>");
    s_contains(html, "<td>/v1/c</td>");
    s_contains(html, "<td>" ORIGIN "/v1/a b</td>");
    /* The secret appears exactly once per same-origin link, and nowhere else. */
    assert_int_equal(s_count(html, "<a href="), 5); /* four links and "as JSON" */
    assert_int_equal(s_count(html, "ia_x%2By%26z%2F%3D"), 4);
    assert_int_equal(s_count(html, "ia_x+y"), 0);
    free(html);

    /* Without both credentials links are plain. */
    page.api_auth = NULL;
    html = s_render("{\"same\":\"" ORIGIN "/v1/a?api_key=kept\"}", &page);
    s_contains(html, "<a href=\"" ORIGIN "/v1/a?api_key=kept\">");
    s_lacks(html, "ik_abc");
    free(html);

    /* Without an origin nothing is a link. */
    page = (html_page_t){0};
    html = s_render("{\"same\":\"" ORIGIN "/v1/a\"}", &page);
    s_contains(html, "<td>" ORIGIN "/v1/a</td>");
    s_contains(html, "<a href=\"?format=json\">as JSON</a>");
    assert_int_equal(s_count(html, "<a href="), 1);
    free(html);
}

static void test_json_link_replaces_format(void **state)
{
    html_page_t page = {.origin = ORIGIN, .query = "format=html&&a=%20&format=x", .query_len = 27};
    char *html = s_render("{\"name\":\"x\"}", &page);
    s_contains(html, "<a href=\"?a=%20&amp;format=json\">as JSON</a>");
    free(html);
}

static void test_csp_matches_the_style(void **state)
{
    const char *csp = html_csp();
    assert_non_null(strstr(csp, "default-src 'none'"));
    assert_non_null(strstr(csp, "frame-ancestors 'none'"));
    assert_null(strstr(csp, "unsafe"));
    assert_null(strstr(csp, "script-src"));
    char *html = s_render("{\"name\":\"x\"}", &s_page);
    const char *start = strstr(html, "<style>") + 7, *end = strstr(html, "</style>");
    assert_true(start != NULL && end != NULL && end > start);
    unsigned char digest[32];
    unsigned int digest_len = 0;
    char b64[64], want[128];
    assert_int_equal(EVP_Digest(start, (size_t)(end - start), digest, &digest_len, EVP_sha256(), NULL), 1);
    EVP_EncodeBlock((unsigned char *)b64, digest, (int)digest_len);
    snprintf(want, sizeof(want), "style-src 'sha256-%s'", b64);
    assert_non_null(strstr(csp, want));
    assert_true(html_csp() == csp);
    free(html);
}

/* ---- negotiation ---------------------------------------------------------------------------- */

#define CHROME  "text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,image/webp,image/apng,*/*;q=0.8"
#define FIREFOX "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"

typedef struct {
    const char *accept;
    const char *query;
    const char *type;
    bool html;
} negotiation_t;

static void test_negotiation(void **state)
{
    static const negotiation_t cases[] = {
        {CHROME, NULL, "application/json", true},
        {FIREFOX, "api_key=a&api_auth=b", "application/json", true},
        {CHROME, NULL, "application/problem+json", true},
        {CHROME, NULL, "application/json; charset=utf-8", true},
        {CHROME, NULL, " Application/JSON ", true},
        {CHROME, NULL, "text/plain", false},
        {CHROME, NULL, "application/jsonx", false},
        {CHROME, NULL, "", false},
        {"*/*", NULL, "application/json", false}, /* curl */
        {NULL, NULL, "application/json", false},  /* no Accept at all */
        {"", NULL, "application/json", false},
        {"application/json", NULL, "application/json", false},
        {"application/json", NULL, "application/problem+json", false},
        {"text/html", NULL, "application/json", true},
        {"text/*", NULL, "application/json", true},
        {"TEXT/HTML", NULL, "application/json", true},
        {"text/html", "format=json", "application/json", false},
        {CHROME, "api_key=a&format=JSON&api_auth=b", "application/json", false},
        {CHROME, "format=json2", "application/json", true},
        {CHROME, "xformat=json", "application/json", true},
        {CHROME, "format", "application/json", true},
        {"text/html;q=0.5, application/json;q=0.6", NULL, "application/json", false},
        {"application/json;q=0.5, text/html", NULL, "application/json", true},
        {"*/*;q=0.9, text/html;q=0.9", NULL, "application/json", false},
        {"text/html;q=0", NULL, "application/json", false},
        {"text/html;q=abc", NULL, "application/json", false},
        {"text/html;q=\"1\"", NULL, "application/json", false},
        {"text/html;level=\"a,b\";q=1, application/json;q=0.1", NULL, "application/json", true},
        {"application/json;x=\"q=1, text/html\"", NULL, "application/json", false},
        {"application/problem+json, text/html;q=0.9", NULL, "application/problem+json", false},
        {"text/html, application/json;q=0.9", NULL, "application/problem+json", true},
        {"application/json, text/html;q=0.9", NULL, "application/problem+json", false},
        {"text/html ; q=0.7 , application/json ; q=0.6", NULL, "application/json", true},
        {",,, ,text/html,", NULL, "application/json", true},
        {"text/html;q=0.5, text/html;q=0.9, application/json;q=0.8", NULL, "application/json", true},
        {"text/html;q=1, */*;q=1", NULL, "application/json", false},
        {"garbage, text/html", NULL, "application/json", true},
        {"*/html", NULL, "application/json", false},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        const negotiation_t *c = &cases[i];
        bool got = html_wanted(c->accept, c->accept ? strlen(c->accept) : 0, c->query, c->query ? strlen(c->query) : 0, c->type,
                               strlen(c->type));
        if (got != c->html)
            fail_msg("Accept \"%s\", query \"%s\", type \"%s\": %s, expected %s", c->accept ? c->accept : "(none)",
                     c->query ? c->query : "(none)", c->type, got ? "HTML" : "JSON", c->html ? "HTML" : "JSON");
    }
    assert_false(html_wanted(CHROME, strlen(CHROME), NULL, 0, NULL, 0));
}

static void test_accept_quality(void **state)
{
    static const struct {
        const char *accept;
        const char *type;
        int q;
    } cases[] = {
        {"text/html;q=0.123", "text/html", 123},
        {"TEXT/HTML;Q=1.000", "text/html", 1000},
        {"text/html;q=1.001", "text/html", 0},
        {"text/html;q=0.1234", "text/html", 0},
        {"text/html;q=1.", "text/html", 1000},
        {"text/*;q=0.3, */*;q=0.1", "text/html", 300},
        {"text/*;q=0.3, */*;q=0.1", "application/json", 100},
        {"text/html;q=0.2, text/*;q=0.9", "text/html", 200},
        {CHROME, "application/json", 800},
        {CHROME, "text/html", 1000},
        {"image/png", "text/html", 0},
        {"text/html;charset=\"utf-8\";q=0.4", "text/html", 400},
        {"text/html;charset=\"unterminated;q=0.4, application/json", "application/json", 0},
        {"text/html;=x, application/json;q=0.2", "application/json", 200},
        {"text/html;q=, application/json;q=0.2", "text/html", 0},
        {"/html", "text/html", 0},
        {"text/", "text/html", 0},
        {"text/html;q=0.5", "nonsense", 0},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        int q = html_accept_quality(cases[i].accept, strlen(cases[i].accept), cases[i].type);
        if (q != cases[i].q)
            fail_msg("Accept \"%s\" gives %s q=%d, expected %d", cases[i].accept, cases[i].type, q, cases[i].q);
    }
    assert_int_equal(html_accept_quality(NULL, 0, "text/html"), 1000);
}

static void test_query_param(void **state)
{
    char out[16];
    const char *q = "a=1&api_key=ik%5Fx+y&api_key=second&empty=&bare&bad=%zz&nul=%00&long=0123456789abcdefXYZ&trunc=%4";
    size_t n = strlen(q);
    assert_int_equal(urlform_param(q, n, "api_key", out, sizeof(out)), 0);
    assert_string_equal(out, "ik_x y");
    assert_int_equal(urlform_param(q, n, "empty", out, sizeof(out)), 0);
    assert_string_equal(out, "");
    assert_int_equal(urlform_param(q, n, "bare", out, sizeof(out)), 0);
    assert_string_equal(out, "");
    assert_int_equal(urlform_param(q, n, "bad", out, sizeof(out)), -1);
    assert_int_equal(urlform_param(q, n, "nul", out, sizeof(out)), -1);
    assert_int_equal(urlform_param(q, n, "long", out, sizeof(out)), -1);
    assert_int_equal(urlform_param(q, n, "trunc", out, sizeof(out)), -1);
    assert_int_equal(urlform_param(q, n, "missing", out, sizeof(out)), -1);
    assert_int_equal(urlform_param(NULL, 0, "a", out, sizeof(out)), -1);
    assert_int_equal(urlform_param(q, n, "a", out, 0), -1);
    assert_int_equal(urlform_param("%61=2", 5, "a", out, sizeof(out)), 0);
    assert_string_equal(out, "2");
}

/* Links carry filters back as query pairs: what urlform_append writes, urlform_param reads back
 * unchanged, and a pair that does not fit is cut, never written past the buffer. */
static void test_query_append(void **state)
{
    char query[128] = "";
    urlform_append(query, sizeof(query), "q", "Ada & Grace/100%", "");
    urlform_append(query, sizeof(query), "type", "call.answered,call.ended", ",");
    urlform_append(query, sizeof(query), "plain", "a-b_c.d~e", "");
    assert_string_equal(query, "&q=Ada%20%26%20Grace%2F100%25&type=call.answered,call.ended&plain=a-b_c.d~e");
    char out[64];
    assert_int_equal(urlform_param(query + 1, strlen(query) - 1, "q", out, sizeof(out)), 0);
    assert_string_equal(out, "Ada & Grace/100%");
    assert_int_equal(urlform_param(query + 1, strlen(query) - 1, "type", out, sizeof(out)), 0);
    assert_string_equal(out, "call.answered,call.ended");

    char small[16] = "";
    urlform_append(small, sizeof(small), "name", "a value far too long", "");
    assert_true(strlen(small) < sizeof(small));
    assert_memory_equal(small, "&name=a", 7);
    urlform_append(small, sizeof(small), "another_long_name", "x", "");
    assert_true(strlen(small) < sizeof(small));
}

/* ---- refusals ------------------------------------------------------------------------------- */

static char *s_nested(int levels)
{
    char *s = malloc((size_t)levels * 2 + 2);
    int n = 0;
    for (int i = 0; i < levels; i++)
        s[n++] = '[';
    s[n++] = '1';
    for (int i = 0; i < levels; i++)
        s[n++] = ']';
    s[n] = '\0';
    return s;
}

static void test_refusals(void **state)
{
    s_refused("not json", 8, "not a JSON");
    s_refused("42", 2, "not a JSON");
    s_refused("\"text\"", 6, "not a JSON");
    s_refused("", 0, "not a JSON");
    s_refused("{\"name\":\"x\"", 11, "not a JSON");
    s_refused("{\"a\":\"\\u0000\"}", 14, "not a JSON");
    s_refused("{\"a\":1}{}", 9, "not a JSON");
    s_refused(NULL, 0, "no body");

    char *deep = s_nested(HTML_MAX_DEPTH);
    char *html = s_render(deep, &s_page);
    free(html);
    free(deep);
    deep = s_nested(HTML_MAX_DEPTH + 1);
    s_refused(deep, strlen(deep), "nested too deeply");
    free(deep);
    deep = s_nested(100000); /* beyond jansson's own limit */
    s_refused(deep, strlen(deep), "not a JSON");
    free(deep);

    /* One byte over the input cap, valid JSON otherwise. */
    size_t big = HTML_MAX_INPUT + 1;
    char *doc = malloc(big + 1);
    memset(doc, ' ', big);
    memcpy(doc, "{\"a\":1}", 7);
    doc[big] = '\0';
    s_refused(doc, big, "too large");
    free(doc);
}

/* Under the input cap, but every same-origin link grows by the credentials: the output cap. */
static void test_output_cap(void **state)
{
    char key[HTML_CREDENTIAL_MAX + 1], auth[HTML_CREDENTIAL_MAX + 1];
    memset(key, '/', HTML_CREDENTIAL_MAX); /* three bytes each once encoded */
    memset(auth, '/', HTML_CREDENTIAL_MAX);
    key[HTML_CREDENTIAL_MAX] = auth[HTML_CREDENTIAL_MAX] = '\0';
    html_page_t page = s_page;
    page.api_key = key;
    page.api_auth = auth;
    static const char link[] = "\"" ORIGIN "/v1\",";
    size_t n = (HTML_MAX_INPUT - 2) / (sizeof(link) - 1);
    char *doc = malloc(n * (sizeof(link) - 1) + 8);
    size_t len = 0;
    doc[len++] = '[';
    for (size_t i = 0; i < n; i++, len += sizeof(link) - 1)
        memcpy(doc + len, link, sizeof(link) - 1);
    doc[len - 1] = ']';
    assert_true(len <= HTML_MAX_INPUT);
    size_t out_len = 0;
    const char *reason = NULL;
    char *html = html_render(doc, len, &page, &out_len, &reason);
    assert_null(html);
    assert_non_null(strstr(reason, "too large"));
    free(doc);
}

/* ---- fuzz ----------------------------------------------------------------------------------- */

static const char *const s_seeds[] = {
    "{\"uri\":\"" ORIGIN "/v1\",\"name\":\"Impact Dialing API\",\"version\":\"0.1.0\",\"account\":{\"id\":1,\"name\":"
    "\"Development\"},\"actions\":[],\"resources\":[{\"name\":\"health\",\"uri\":\"" ORIGIN "/v1/health\"}]}",
    "{\"uri\":\"" ORIGIN "/v1/c?page=2\",\"name\":\"C\",\"items\":[{\"id\":1,\"uri\":\"" ORIGIN "/v1/c/1#x\"},{\"id\":2}],"
    "\"first_page\":\"" ORIGIN "/v1/c?page=1\",\"prev_page\":null,\"next_page\":\"" ORIGIN "/v1/c?page=3&api_auth=z\","
    "\"last_page\":null,\"actions\":[{\"name\":\"create\",\"method\":\"POST\",\"uri\":\"" ORIGIN "/v1/c\",\"parameters\":"
    "[{\"name\":\"n\",\"type\":\"string\"}]}],\"resources\":[{\"name\":\"<x>\",\"uri\":\"javascript:1\"}]}",
    "{\"type\":\"/problems/unauthorized\",\"title\":\"<script>\",\"status\":401,\"detail\":\"a\\u0001\\\"'&\","
    "\"errors\":[{\"field\":\"name\",\"message\":\"required\"}]}",
    "[[[[{\"a\":[1,2.5e10,-3,true,false,null,\"" ORIGIN "?q=\\\"\"]}]]]]",
    "{\"items\":[{\"name\":\"n\",\"uri\":\"" ORIGIN "/v1/x\",\"a\":1,\"b\":2,\"c\":3,\"d\":4,\"e\":5,\"f\":6,\"g\":7,\"h\":8,"
    "\"i\":9,\"j\":10,\"k\":[11],\"l\":0.1},{\"uri\":null,\"name\":[1]}]}",
};

/* A hostile alphabet: JSON structure, quotes, escapes, markup and URI characters. */
static const char s_alphabet[] = "{}[]\":,\\/u0123456789abcdefnrtlsx <>&'#?%=+-.eE\x01\x7f\xc3\xa9\xff";

static void s_check_page(const char *html, size_t len)
{
    assert_int_equal(strlen(html), len);
    assert_true(len <= HTML_MAX_OUTPUT);
    assert_memory_equal(html, "<!DOCTYPE html>", 15);
    assert_null(strstr(html, "<script"));
    assert_null(strstr(html, "href=\"javascript"));
}

static void test_fuzz(void **state)
{
    srand(20240611);
    size_t rendered = 0, refused = 0;
    for (int i = 0; i < 4000; i++) {
        const char *seed = s_seeds[(size_t)rand() % (sizeof(s_seeds) / sizeof(s_seeds[0]))];
        size_t len = strlen(seed);
        char *doc = malloc(len * 2 + 64);
        memcpy(doc, seed, len);
        int mutations = 1 + rand() % 6;
        for (int m = 0; m < mutations && len > 0; m++) {
            size_t at = (size_t)rand() % len;
            switch (rand() % 5) {
            case 0: /* replace a byte */
                doc[at] = s_alphabet[(size_t)rand() % (sizeof(s_alphabet) - 1)];
                break;
            case 1: /* insert a byte */
                if (len < strlen(seed) * 2 + 32) {
                    memmove(doc + at + 1, doc + at, len - at);
                    doc[at] = s_alphabet[(size_t)rand() % (sizeof(s_alphabet) - 1)];
                    len++;
                }
                break;
            case 2: /* delete a byte */
                memmove(doc + at, doc + at + 1, len - at - 1);
                len--;
                break;
            case 3: /* truncate */
                len = at;
                break;
            default: /* a random byte anywhere, NUL included */
                doc[at] = (char)(rand() & 0xff);
                break;
            }
        }
        size_t out_len = 0;
        const char *reason = NULL;
        html_page_t page = s_page;
        page.status = 100 + rand() % 500;
        if (rand() % 4 == 0)
            page.api_auth = NULL;
        char *html = html_render(doc, len, &page, &out_len, &reason);
        if (html != NULL) {
            s_check_page(html, out_len);
            rendered++;
        } else {
            assert_non_null(reason);
            refused++;
        }
        free(html);

        /* The same bytes as an Accept header, a query and a content type. */
        html_wanted(doc, len, doc, len, doc, len);
        html_accept_quality(doc, len, "text/html");
        char out[32];
        urlform_param(doc, len, "name", out, sizeof(out));
        free(doc);
    }
    print_message("fuzz: %zu pages rendered, %zu refused\n", rendered, refused);
    assert_true(rendered > 100 && refused > 100);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_resource),
        cmocka_unit_test(test_collection),
        cmocka_unit_test(test_wide_collection),
        cmocka_unit_test(test_problem),
        cmocka_unit_test(test_top_level_array_and_untitled),
        cmocka_unit_test(test_escaping),
        cmocka_unit_test(test_links_by_origin),
        cmocka_unit_test(test_json_link_replaces_format),
        cmocka_unit_test(test_csp_matches_the_style),
        cmocka_unit_test(test_negotiation),
        cmocka_unit_test(test_accept_quality),
        cmocka_unit_test(test_query_param),
        cmocka_unit_test(test_query_append),
        cmocka_unit_test(test_refusals),
        cmocka_unit_test(test_output_cap),
        cmocka_unit_test(test_fuzz),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
