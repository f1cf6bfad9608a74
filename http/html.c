/*
 * The browser view: content negotiation and the JSON -> HTML page.
 *
 * The page is built in one pass over the parsed document into a growing buffer that refuses to
 * grow past HTML_MAX_OUTPUT; the first failure (too deep, too large, out of memory) abandons
 * the page and the caller serves the JSON instead. Every byte that comes from the document or
 * the request goes through s_text (HTML-escaped) or s_encoded (percent-encoded); only strings
 * that are absolute URIs on the request's own origin become links, so no javascript: or
 * foreign URL can be planted, and credentials from the address bar are never handed to
 * another site.
 */
#include "http/html.h"

#include <jansson.h>
#include <openssl/evp.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "common/urlform.h"

#define HTML_MAX_COLUMNS     12 /* an array of objects with more distinct keys is a list, not a table */
#define HTML_SUMMARY_COLUMNS 8  /* columns of a collection too wide for a table: its items' pages have the rest */

/* ---- content negotiation -------------------------------------------------------------------- */

static bool s_is_tchar(unsigned char c)
{
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
           (c != '\0' && strchr("!#$%&'*+-.^_`|~", c) != NULL);
}

static size_t s_token_len(const char *p, const char *end)
{
    size_t n = 0;
    while (p + n < end && s_is_tchar((unsigned char)p[n]))
        n++;
    return n;
}

static const char *s_skip_ows(const char *p, const char *end)
{
    while (p < end && (*p == ' ' || *p == '\t'))
        p++;
    return p;
}

/* The next top-level comma (or end): where a malformed element ends. Commas inside quoted
 * parameter values do not count. */
static const char *s_element_end(const char *p, const char *end)
{
    bool quoted = false;
    for (; p < end; p++) {
        if (quoted && *p == '\\' && p + 1 < end)
            p++;
        else if (*p == '"')
            quoted = !quoted;
        else if (!quoted && *p == ',')
            break;
    }
    return p;
}

/* RFC 9110 qvalue as thousandths, -1 when malformed. */
static int s_qvalue(const char *v, size_t n)
{
    if (n == 0 || n > 5 || (v[0] != '0' && v[0] != '1'))
        return -1;
    int q = (v[0] - '0') * 1000;
    if (n == 1)
        return q;
    if (v[1] != '.')
        return -1;
    for (size_t i = 2, scale = 100; i < n; i++, scale /= 10) {
        if (v[i] < '0' || v[i] > '9')
            return -1;
        q += (v[i] - '0') * (int)scale;
    }
    return q > 1000 ? -1 : q;
}

typedef struct {
    const char *type, *sub;
    size_t type_len, sub_len;
    int q;
} html_range_t;

/* Parses one media range starting at *pp and leaves *pp at the comma (or end) after it.
 * 0, or -1 for a malformed element (skipped whole). */
static int s_parse_range(const char **pp, const char *end, html_range_t *r)
{
    const char *start = *pp, *p = s_skip_ows(*pp, end);
    r->type = p;
    r->type_len = s_token_len(p, end);
    p += r->type_len;
    if (r->type_len == 0 || p >= end || *p != '/')
        goto Error;
    r->sub = ++p;
    r->sub_len = s_token_len(p, end);
    p += r->sub_len;
    if (r->sub_len == 0 || (r->type_len == 1 && r->type[0] == '*' && !(r->sub_len == 1 && r->sub[0] == '*')))
        goto Error;
    r->q = 1000;
    for (;;) {
        p = s_skip_ows(p, end);
        if (p == end || *p == ',')
            break;
        if (*p != ';')
            goto Error;
        p = s_skip_ows(p + 1, end);
        const char *name = p;
        size_t name_len = s_token_len(p, end);
        p += name_len;
        if (name_len == 0 || p >= end || *p != '=')
            goto Error;
        const char *value = ++p;
        bool is_q = name_len == 1 && (name[0] == 'q' || name[0] == 'Q');
        if (p < end && *p == '"') {
            for (p++; p < end && *p != '"'; p++)
                if (*p == '\\' && p + 1 < end)
                    p++;
            if (p >= end || is_q) /* unterminated, or a quoted weight (RFC 9110 gives q no quotes) */
                goto Error;
            p++;
            continue;
        }
        size_t value_len = s_token_len(p, end);
        p += value_len;
        if (value_len == 0 || (is_q && (r->q = s_qvalue(value, value_len)) < 0))
            goto Error;
    }
    *pp = p;
    return 0;
Error:
    *pp = s_element_end(start, end);
    return -1;
}

static bool s_eq(const char *a, size_t a_len, const char *b, size_t b_len)
{
    return a_len == b_len && strncasecmp(a, b, a_len) == 0;
}

static int s_quality(const char *accept, size_t len, const char *type, size_t type_len)
{
    if (accept == NULL)
        return 1000;
    const char *slash = memchr(type, '/', type_len);
    if (slash == NULL)
        return 0;
    size_t main_len = (size_t)(slash - type), sub_len = type_len - main_len - 1;
    const char *p = accept, *end = accept + len;
    int best_specificity = -1, best_q = 0;
    while (p < end) {
        html_range_t r;
        if (s_parse_range(&p, end, &r) == 0) {
            int specificity = -1;
            if (s_eq(r.type, r.type_len, "*", 1))
                specificity = 0;
            else if (s_eq(r.type, r.type_len, type, main_len))
                specificity = s_eq(r.sub, r.sub_len, "*", 1) ? 1 : s_eq(r.sub, r.sub_len, slash + 1, sub_len) ? 2 : -1;
            /* Equally specific ranges (text/html twice) are not meant to happen; the best q wins. */
            if (specificity > best_specificity || (specificity == best_specificity && specificity >= 0 && r.q > best_q)) {
                best_specificity = specificity;
                best_q = r.q;
            }
        }
        if (p < end)
            p++; /* the comma */
    }
    return best_specificity < 0 ? 0 : best_q;
}

int html_accept_quality(const char *accept, size_t len, const char *type)
{
    return s_quality(accept, len, type, strlen(type));
}

/* The media type of a Content-Type value, without parameters or surrounding whitespace. */
static size_t s_media_type(const char *content_type, size_t len, const char **start)
{
    const char *p = s_skip_ows(content_type, content_type + len);
    const char *semi = memchr(p, ';', (size_t)(content_type + len - p));
    const char *end = semi ? semi : content_type + len;
    while (end > p && (end[-1] == ' ' || end[-1] == '\t'))
        end--;
    *start = p;
    return (size_t)(end - p);
}

bool html_is_renderable_type(const char *content_type, size_t len)
{
    if (content_type == NULL)
        return false;
    const char *type;
    size_t type_len = s_media_type(content_type, len, &type);
    return s_eq(type, type_len, "application/json", 16) || s_eq(type, type_len, "application/problem+json", 24);
}

bool html_wanted(const char *accept, size_t accept_len, const char *query, size_t query_len, const char *content_type,
                 size_t content_type_len)
{
    if (accept == NULL || !html_is_renderable_type(content_type, content_type_len))
        return false;
    char format[8];
    if (urlform_param(query, query_len, "format", format, sizeof(format)) == 0 && strcasecmp(format, "json") == 0)
        return false;
    const char *type;
    size_t type_len = s_media_type(content_type, content_type_len, &type);
    int json = s_quality(accept, accept_len, "application/json", 16);
    int own = s_quality(accept, accept_len, type, type_len);
    int html = s_quality(accept, accept_len, "text/html", 9);
    return html > json && html > own;
}

/* ---- the page ------------------------------------------------------------------------------- */

/* The page's only style, allowed by its hash in the CSP (computed by html_csp, so edits here
 * need nothing else). */
static const char s_style[] =
    "body{font:15px/1.45 system-ui,sans-serif;margin:1.5rem auto;max-width:72rem;padding:0 1rem;color:#1d2430;"
    "background:#fff}h1{font-size:1.6rem;margin:0 0 .3rem}h2{font-size:1.1rem;margin:1.6rem 0 .5rem;color:#3a4556}"
    ".meta{color:#5b6678;margin:0 0 1rem}.status{font-weight:600;padding:0 .4rem;border-radius:.3rem;background:#e6f4ea}"
    ".status.error{background:#fde7e7}table{border-collapse:collapse;margin:.2rem 0}th,td{border:1px solid #d5dae2;"
    "padding:.25rem .5rem;text-align:left;vertical-align:top}th{background:#f3f5f8;font-weight:600}"
    "td,li{overflow-wrap:anywhere}a{color:#0b57d0}.lit,.empty,.off{color:#7a8494;font-style:italic}"
    ".num{font-variant-numeric:tabular-nums}nav.pages{margin:1rem 0}nav.pages>*{margin-right:1rem}"
    "ul.links{padding-left:1.2rem}.uri{color:#7a8494;font-size:.85em;margin-left:.5rem}";

static pthread_once_t s_csp_once = PTHREAD_ONCE_INIT;
static char s_csp[256];

static void s_csp_init(void)
{
    unsigned char digest[EVP_MAX_MD_SIZE];
    unsigned int digest_len = 0;
    char b64[4 * ((EVP_MAX_MD_SIZE + 2) / 3) + 1];
    if (EVP_Digest(s_style, sizeof(s_style) - 1, digest, &digest_len, EVP_sha256(), NULL) == 1 &&
        EVP_EncodeBlock((unsigned char *)b64, digest, (int)digest_len) > 0)
        snprintf(s_csp, sizeof(s_csp),
                 "default-src 'none'; style-src 'sha256-%s'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'", b64);
    else /* the page still reads, unstyled */
        snprintf(s_csp, sizeof(s_csp), "default-src 'none'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'");
}

const char *html_csp(void)
{
    pthread_once(&s_csp_once, s_csp_init);
    return s_csp;
}

typedef struct {
    char *data;
    size_t len, cap;
    const html_page_t *page;
    const char *error; /* the first failure; once set nothing more is written */
} html_out_t;

static void s_fail(html_out_t *o, const char *error)
{
    if (o->error == NULL)
        o->error = error;
}

static void s_put(html_out_t *o, const char *s, size_t n)
{
    if (o->error != NULL || n == 0)
        return;
    if (n > HTML_MAX_OUTPUT - o->len) {
        s_fail(o, "the page would be too large");
        return;
    }
    if (o->len + n + 1 > o->cap) {
        size_t cap = o->cap ? o->cap : 8192;
        while (cap < o->len + n + 1)
            cap *= 2;
        char *grown = realloc(o->data, cap);
        if (grown == NULL) {
            s_fail(o, "out of memory");
            return;
        }
        o->data = grown;
        o->cap = cap;
    }
    memcpy(o->data + o->len, s, n);
    o->len += n;
    o->data[o->len] = '\0';
}

static void s_puts(html_out_t *o, const char *s)
{
    s_put(o, s, strlen(s));
}

/* HTML-escaped text, also safe inside a quoted attribute. Control characters (legal in JSON
 * strings, not in HTML) become U+FFFD. */
static void s_text(html_out_t *o, const char *s, size_t n)
{
    size_t run = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        const char *entity = NULL;
        switch (c) {
        case '&':
            entity = "&amp;";
            break;
        case '<':
            entity = "&lt;";
            break;
        case '>':
            entity = "&gt;";
            break;
        case '"':
            entity = "&quot;";
            break;
        case '\'':
            entity = "&#39;";
            break;
        default:
            if ((c < 0x20 && c != '\t' && c != '\n' && c != '\r') || c == 0x7f)
                entity = "&#xFFFD;";
        }
        if (entity != NULL) {
            s_put(o, s + run, i - run);
            s_puts(o, entity);
            run = i + 1;
        }
    }
    s_put(o, s + run, n - run);
}

static void s_text0(html_out_t *o, const char *s)
{
    s_text(o, s, strlen(s));
}

/* Percent-encodes everything but RFC 3986's unreserved characters: the result needs no HTML
 * escaping and means the same in any query. */
static void s_encoded(html_out_t *o, const char *s)
{
    static const char hex[] = "0123456789ABCDEF";
    for (; *s != '\0'; s++) {
        unsigned char c = (unsigned char)*s;
        if ((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '-' || c == '.' || c == '_' ||
            c == '~') {
            s_put(o, (const char *)&c, 1);
        } else {
            char esc[3] = {'%', hex[c >> 4], hex[c & 15]};
            s_put(o, esc, 3);
        }
    }
}

/* An absolute URI on the page's origin, made only of characters a URI may hold. */
static bool s_same_origin(const html_page_t *page, const char *s, size_t n)
{
    if (page->origin == NULL || page->origin[0] == '\0')
        return false;
    size_t origin_len = strlen(page->origin);
    if (n < origin_len || strncasecmp(s, page->origin, origin_len) != 0)
        return false;
    if (n > origin_len && s[origin_len] != '/' && s[origin_len] != '?' && s[origin_len] != '#')
        return false;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c <= 0x20 || c >= 0x7f || strchr("\"<>\\^`{|}", c) != NULL)
            return false;
    }
    return true;
}

static bool s_credentials(const html_page_t *page)
{
    return page->api_key != NULL && page->api_auth != NULL && page->api_key[0] != '\0' && page->api_auth[0] != '\0';
}

/* Copies the &-separated items of a query, less the empty ones and those named in `drop`
 * (raw names); `*sep` is written before each item and becomes "&". */
static void s_query_items(html_out_t *o, const char *q, size_t n, const char *const *drop, const char **sep)
{
    const char *p = q, *end = q + n;
    while (p < end) {
        const char *amp = memchr(p, '&', (size_t)(end - p));
        const char *item_end = amp ? amp : end;
        const char *eq = memchr(p, '=', (size_t)(item_end - p));
        size_t name_len = (size_t)((eq ? eq : item_end) - p);
        bool keep = item_end > p;
        for (size_t i = 0; keep && drop[i] != NULL; i++)
            if (name_len == strlen(drop[i]) && memcmp(p, drop[i], name_len) == 0)
                keep = false;
        if (keep) {
            s_puts(o, *sep);
            s_text(o, p, (size_t)(item_end - p));
            *sep = "&amp;";
        }
        p = item_end + 1;
    }
}

/* The href of a same-origin URI: with the page's credentials, replacing any the URI has. */
static void s_href(html_out_t *o, const char *uri, size_t n)
{
    if (!s_credentials(o->page)) {
        s_text(o, uri, n);
        return;
    }
    static const char *const drop[] = {"api_key", "api_auth", NULL};
    const char *hash = memchr(uri, '#', n);
    size_t end = hash ? (size_t)(hash - uri) : n;
    const char *question = memchr(uri, '?', end);
    size_t path_end = question ? (size_t)(question - uri) : end;
    const char *sep = "?";
    s_text(o, uri, path_end);
    if (question != NULL)
        s_query_items(o, question + 1, end - path_end - 1, drop, &sep);
    s_puts(o, sep);
    s_puts(o, "api_key=");
    s_encoded(o, o->page->api_key);
    s_puts(o, "&amp;api_auth=");
    s_encoded(o, o->page->api_auth);
    if (hash != NULL)
        s_text(o, hash, n - end);
}

/* `label` as a link to `uri` when that is on the page's origin, else as text. */
static void s_link(html_out_t *o, const char *uri, size_t uri_len, const char *label, size_t label_len, const char *rel)
{
    if (!s_same_origin(o->page, uri, uri_len)) {
        s_text(o, label, label_len);
        return;
    }
    s_puts(o, "<a href=\"");
    s_href(o, uri, uri_len);
    if (rel != NULL) {
        s_puts(o, "\" rel=\"");
        s_puts(o, rel);
    }
    s_puts(o, "\">");
    s_text(o, label, label_len);
    s_puts(o, "</a>");
}

static void s_value(html_out_t *o, json_t *v, int depth);
static void s_link(html_out_t *o, const char *uri, size_t uri_len, const char *label, size_t label_len, const char *rel);

static void s_object(html_out_t *o, json_t *obj, int depth)
{
    const char *key;
    json_t *v;
    if (json_object_size(obj) == 0) {
        s_puts(o, "<span class=\"empty\">{}</span>");
        return;
    }
    s_puts(o, "<table class=\"kv\">");
    json_object_foreach(obj, key, v)
    {
        s_puts(o, "<tr><th>");
        s_text0(o, key);
        s_puts(o, "</th><td>");
        s_value(o, v, depth + 1);
        s_puts(o, "</td></tr>");
        if (o->error != NULL)
            return;
    }
    s_puts(o, "</table>");
}

/* The columns of an array shown as a table: `preset` first, then every other key in order of
 * first appearance. 0 when the array is not made of objects only, or has too many keys. */
static size_t s_columns(json_t *arr, const char *const *preset, size_t npreset, const char **cols)
{
    size_t n = 0, i;
    json_t *elem;
    for (; n < npreset; n++)
        cols[n] = preset[n];
    json_array_foreach(arr, i, elem)
    {
        const char *key;
        json_t *v;
        if (!json_is_object(elem))
            return 0;
        json_object_foreach(elem, key, v)
        {
            size_t c = 0;
            while (c < n && strcmp(cols[c], key) != 0)
                c++;
            if (c == n) {
                if (n == HTML_MAX_COLUMNS)
                    return 0;
                cols[n++] = key;
            }
        }
    }
    return n;
}

static bool s_all_objects(json_t *arr)
{
    size_t i;
    json_t *elem;
    json_array_foreach(arr, i, elem)
    {
        if (!json_is_object(elem))
            return false;
    }
    return true;
}

/* The opening of a grid: its header row of column names, then the body's start tag. */
static void s_grid_head(html_out_t *o, const char **cols, size_t ncols)
{
    s_puts(o, "<table class=\"grid\"><thead><tr>");
    for (size_t c = 0; c < ncols; c++) {
        s_puts(o, "<th>");
        s_text0(o, cols[c]);
        s_puts(o, "</th>");
    }
    s_puts(o, "</tr></thead><tbody>");
}

static void s_table(html_out_t *o, json_t *arr, const char **cols, size_t ncols, int depth)
{
    size_t i;
    json_t *elem;
    s_grid_head(o, cols, ncols);
    json_array_foreach(arr, i, elem)
    {
        s_puts(o, "<tr>");
        for (size_t c = 0; c < ncols; c++) {
            json_t *v = json_object_get(elem, cols[c]);
            s_puts(o, "<td>");
            if (v != NULL)
                s_value(o, v, depth + 2);
            s_puts(o, "</td>");
        }
        s_puts(o, "</tr>");
        if (o->error != NULL)
            return;
    }
    s_puts(o, "</tbody></table>");
}

/*
 * A collection whose items have too many keys for a table: one row per item with its name
 * linking to the item's own page, which has the rest, and its first scalar fields. Items must
 * all be objects.
 */
static void s_summary(html_out_t *o, json_t *items, int depth)
{
    const char *cols[HTML_SUMMARY_COLUMNS];
    size_t ncols = 0, i;
    json_t *elem;
    bool named = false;
    json_array_foreach(items, i, elem)
    {
        named = named || json_object_get(elem, "name") != NULL;
    }
    /* The name (or else the uri) first, whatever its place in the items. */
    cols[ncols++] = named ? "name" : "uri";
    json_array_foreach(items, i, elem)
    {
        const char *key;
        json_t *v;
        json_object_foreach(elem, key, v)
        {
            size_t c = 0;
            while (c < ncols && strcmp(cols[c], key) != 0)
                c++;
            if (c == ncols && ncols < HTML_SUMMARY_COLUMNS && strcmp(key, "uri") != 0 && !json_is_object(v) && !json_is_array(v))
                cols[ncols++] = key;
        }
    }
    s_grid_head(o, cols, ncols);
    json_array_foreach(items, i, elem)
    {
        json_t *uri = json_object_get(elem, "uri");
        s_puts(o, "<tr>");
        for (size_t c = 0; c < ncols; c++) {
            json_t *v = json_object_get(elem, cols[c]);
            s_puts(o, "<td>");
            if (c == 0 && named && json_is_string(v) && json_is_string(uri))
                s_link(o, json_string_value(uri), json_string_length(uri), json_string_value(v), json_string_length(v), NULL);
            else if (v != NULL)
                s_value(o, v, depth + 2);
            s_puts(o, "</td>");
        }
        s_puts(o, "</tr>");
        if (o->error != NULL)
            return;
    }
    s_puts(o, "</tbody></table>");
}

static void s_array_with(html_out_t *o, json_t *arr, int depth, const char *const *preset, size_t npreset)
{
    const char *cols[HTML_MAX_COLUMNS];
    size_t i, ncols;
    json_t *elem;
    if (json_array_size(arr) == 0) {
        s_puts(o, "<span class=\"empty\">[]</span>");
    } else if ((ncols = s_columns(arr, preset, npreset, cols)) != 0) {
        s_table(o, arr, cols, ncols, depth);
    } else {
        s_puts(o, "<ol>");
        json_array_foreach(arr, i, elem)
        {
            s_puts(o, "<li>");
            s_value(o, elem, depth + 1);
            s_puts(o, "</li>");
            if (o->error != NULL)
                return;
        }
        s_puts(o, "</ol>");
    }
}

/* The shortest of %.15g to %.17g that reads back as the same double: 0.03, not 0.0299...9. */
static void s_real(html_out_t *o, double d)
{
    char num[64];
    for (int precision = 15; precision <= 17; precision++) {
        snprintf(num, sizeof(num), "<span class=\"num\">%.*g</span>", precision, d);
        if (precision == 17 || strtod(num + sizeof("<span class=\"num\">") - 1, NULL) == d)
            break;
    }
    s_puts(o, num);
}

static void s_value(html_out_t *o, json_t *v, int depth)
{
    char num[64];
    if ((json_is_object(v) || json_is_array(v)) && depth > HTML_MAX_DEPTH) {
        s_fail(o, "the document is nested too deeply");
        return;
    }
    switch (json_typeof(v)) {
    case JSON_OBJECT:
        s_object(o, v, depth);
        break;
    case JSON_ARRAY:
        s_array_with(o, v, depth, NULL, 0);
        break;
    case JSON_STRING:
        s_link(o, json_string_value(v), json_string_length(v), json_string_value(v), json_string_length(v), NULL);
        break;
    case JSON_INTEGER:
        snprintf(num, sizeof(num), "<span class=\"num\">%" JSON_INTEGER_FORMAT "</span>", json_integer_value(v));
        s_puts(o, num);
        break;
    case JSON_REAL:
        s_real(o, json_real_value(v));
        break;
    case JSON_TRUE:
        s_puts(o, "<span class=\"lit\">true</span>");
        break;
    case JSON_FALSE:
        s_puts(o, "<span class=\"lit\">false</span>");
        break;
    case JSON_NULL:
        s_puts(o, "<span class=\"lit\">null</span>");
        break;
    }
}

/* Top-level members with a place of their own on the page, when they have the expected type. */
static const char *const s_page_keys[] = {"first_page", "prev_page", "next_page", "last_page"};
static const char *const s_page_labels[] = {"First", "Previous", "Next", "Last"};
static const char *const s_page_rels[] = {"first", "prev", "next", "last"};

static bool s_is_page_link(json_t *v)
{
    return json_is_string(v) || json_is_null(v);
}

static bool s_is_special(const char *key, json_t *v, const char *title_key)
{
    if ((title_key != NULL && strcmp(key, title_key) == 0) || (strcmp(key, "uri") == 0 && json_is_string(v)))
        return true;
    if ((strcmp(key, "items") == 0 || strcmp(key, "resources") == 0 || strcmp(key, "actions") == 0) && json_is_array(v))
        return true;
    for (size_t i = 0; i < sizeof(s_page_keys) / sizeof(s_page_keys[0]); i++)
        if (strcmp(key, s_page_keys[i]) == 0 && s_is_page_link(v))
            return true;
    return false;
}

static void s_resources(html_out_t *o, json_t *resources)
{
    size_t i;
    json_t *elem;
    s_puts(o, "<section><h2>Resources</h2><ul class=\"links\">");
    json_array_foreach(resources, i, elem)
    {
        json_t *name = json_object_get(elem, "name"), *uri = json_object_get(elem, "uri");
        s_puts(o, "<li>");
        if (json_is_string(name) && json_is_string(uri)) {
            s_link(o, json_string_value(uri), json_string_length(uri), json_string_value(name), json_string_length(name), NULL);
            s_puts(o, "<span class=\"uri\">");
            s_text(o, json_string_value(uri), json_string_length(uri));
            s_puts(o, "</span>");
        } else {
            s_value(o, elem, 2);
        }
        s_puts(o, "</li>");
    }
    s_puts(o, "</ul></section>");
}

static void s_pages(html_out_t *o, json_t *doc)
{
    bool any = false;
    for (size_t i = 0; i < sizeof(s_page_keys) / sizeof(s_page_keys[0]); i++)
        any = any || s_is_page_link(json_object_get(doc, s_page_keys[i]));
    if (!any)
        return;
    s_puts(o, "<nav class=\"pages\">");
    for (size_t i = 0; i < sizeof(s_page_keys) / sizeof(s_page_keys[0]); i++) {
        json_t *v = json_object_get(doc, s_page_keys[i]);
        const char *label = s_page_labels[i];
        if (json_is_string(v) && s_same_origin(o->page, json_string_value(v), json_string_length(v))) {
            s_link(o, json_string_value(v), json_string_length(v), label, strlen(label), s_page_rels[i]);
        } else if (json_is_string(v)) {
            s_puts(o, "<span>");
            s_puts(o, label);
            s_puts(o, ": ");
            s_text(o, json_string_value(v), json_string_length(v));
            s_puts(o, "</span>");
        } else {
            s_puts(o, "<span class=\"off\">");
            s_puts(o, label);
            s_puts(o, "</span>");
        }
    }
    s_puts(o, "</nav>");
}

/* The link to this very page as JSON: the request's own query (credentials included) with
 * format=json, relative so that it cannot leave the page's origin and path. */
static void s_json_link(html_out_t *o)
{
    static const char *const drop[] = {"format", NULL};
    const char *sep = "?";
    s_puts(o, "<a href=\"");
    if (o->page->query != NULL)
        s_query_items(o, o->page->query, o->page->query_len, drop, &sep);
    s_puts(o, sep);
    s_puts(o, "format=json\">as JSON</a>");
}

static void s_header(html_out_t *o, json_t *doc, const char *title, size_t title_len)
{
    char status[64];
    json_t *uri = json_object_get(doc, "uri");
    s_puts(o, "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
              "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
              "<meta name=\"referrer\" content=\"no-referrer\"><title>");
    s_text(o, title, title_len);
    s_puts(o, "</title><style>");
    s_put(o, s_style, sizeof(s_style) - 1);
    s_puts(o, "</style></head>\n<body><header><h1>");
    s_text(o, title, title_len);
    s_puts(o, "</h1><p class=\"meta\">");
    if (o->page->status > 0) {
        snprintf(status, sizeof(status), "<span class=\"status%s\">HTTP %d</span> ", o->page->status >= 400 ? " error" : "",
                 o->page->status);
        s_puts(o, status);
    }
    if (json_is_string(uri)) {
        s_link(o, json_string_value(uri), json_string_length(uri), json_string_value(uri), json_string_length(uri), "self");
        s_puts(o, " &middot; ");
    }
    s_json_link(o);
    s_puts(o, "</p></header>\n<main>");
}

static void s_page(html_out_t *o, json_t *doc)
{
    static const char *const action_cols[] = {"name", "method", "uri", "parameters"};
    /* Resources have a name, problems a title; anything else is named by its path. */
    const char *title_key = json_is_string(json_object_get(doc, "name"))    ? "name"
                            : json_is_string(json_object_get(doc, "title")) ? "title"
                                                                            : NULL;
    json_t *title = title_key != NULL ? json_object_get(doc, title_key) : NULL;
    if (title != NULL)
        s_header(o, doc, json_string_value(title), json_string_length(title));
    else if (o->page->path != NULL && o->page->path_len != 0)
        s_header(o, doc, o->page->path, o->page->path_len);
    else
        s_header(o, doc, "API response", 12);
    if (!json_is_object(doc)) {
        s_puts(o, "<section>");
        s_value(o, doc, 1);
        s_puts(o, "</section>");
    } else {
        const char *key;
        json_t *v, *special;
        bool fields = false;
        json_object_foreach(doc, key, v)
        {
            if (s_is_special(key, v, title_key))
                continue;
            if (!fields)
                s_puts(o, "<section><h2>Fields</h2><table class=\"kv\">");
            fields = true;
            s_puts(o, "<tr><th>");
            s_text0(o, key);
            s_puts(o, "</th><td>");
            s_value(o, v, 2);
            s_puts(o, "</td></tr>");
        }
        if (fields)
            s_puts(o, "</table></section>");
        if (json_is_array(special = json_object_get(doc, "items"))) {
            const char *cols[HTML_MAX_COLUMNS];
            s_puts(o, "<section><h2>Items</h2>");
            if (json_array_size(special) != 0 && s_columns(special, NULL, 0, cols) == 0 && s_all_objects(special))
                s_summary(o, special, 2);
            else
                s_array_with(o, special, 2, NULL, 0);
            s_puts(o, "</section>");
        }
        s_pages(o, doc);
        /* Empty link lists say nothing worth a heading. */
        if (json_array_size(special = json_object_get(doc, "resources")) != 0)
            s_resources(o, special);
        if (json_array_size(special = json_object_get(doc, "actions")) != 0) {
            s_puts(o, "<section><h2>Actions</h2>");
            s_array_with(o, special, 2, action_cols, sizeof(action_cols) / sizeof(action_cols[0]));
            s_puts(o, "</section>");
        }
    }
    s_puts(o, "</main></body></html>\n");
}

char *html_render(const char *json, size_t len, const html_page_t *page, size_t *out_len, const char **reason)
{
    static const html_page_t no_page = {0};
    html_out_t o = {.page = page != NULL ? page : &no_page};
    json_t *doc = NULL;
    if (json == NULL || len > HTML_MAX_INPUT) {
        s_fail(&o, json == NULL ? "there is no body" : "the body is too large");
        goto Error;
    }
    /* jansson bounds its own recursion (2048 levels); s_value bounds ours. */
    if ((doc = json_loadb(json, len, 0, NULL)) == NULL) {
        s_fail(&o, "the body is not a JSON object or array");
        goto Error;
    }
    s_page(&o, doc);
    if (o.error != NULL)
        goto Error;
    json_decref(doc);
    *out_len = o.len;
    return o.data;

Error:
    json_decref(doc);
    free(o.data);
    if (reason != NULL)
        *reason = o.error;
    return NULL;
}
