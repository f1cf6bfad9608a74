#include "actors/store/input.h"

#include <argon2.h>
#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <openssl/rand.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#include "common/urlform.h"
#include "phone/phone.h"

/* Argon2id with OWASP's smallest recommended cost (19 MiB, 2 passes): about 30 ms on one core,
 * which a caller login can afford and an offline attacker cannot multiply cheaply. */
#define PASSWORD_T_COST  2
#define PASSWORD_M_COST  19456
#define PASSWORD_SALT    16
#define PASSWORD_HASHLEN 32
#define TZ_DIR           "/usr/share/zoneinfo/"
/* Numbers written without a country code are read as North American: the product dials the US. */
#define PHONE_REGION "US"
#define E164_SIZE    24

bool input_utf8_valid(const char *s, size_t len)
{
    const unsigned char *p = (const unsigned char *)s, *end = p + len;
    while (p < end) {
        unsigned c = *p;
        size_t n = c < 0x80 ? 1 : (c & 0xe0) == 0xc0 ? 2 : (c & 0xf0) == 0xe0 ? 3 : (c & 0xf8) == 0xf0 ? 4 : 0;
        if (n == 0 || (size_t)(end - p) < n)
            return false;
        uint32_t cp = n == 1 ? c : n == 2 ? c & 0x1f : n == 3 ? c & 0x0f : c & 0x07;
        for (size_t i = 1; i < n; i++) {
            if ((p[i] & 0xc0) != 0x80)
                return false;
            cp = (cp << 6) | (p[i] & 0x3f);
        }
        /* Overlong forms, surrogates and values past U+10FFFF are not UTF-8. */
        static const uint32_t min_for_len[] = {0, 0, 0x80, 0x800, 0x10000};
        if (cp < min_for_len[n] || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
            return false;
        p += n;
    }
    return true;
}

static size_t s_utf8_chars(const char *s)
{
    size_t n = 0;
    for (; *s; s++)
        n += ((unsigned char)*s & 0xc0) != 0x80;
    return n;
}

static bool s_content_type_is(const api_request_t *req, const char *type)
{
    msg_str_t v = msg_pairs_get(&req->msg.headers, "content-type");
    size_t n = strlen(type);
    if (v.ptr == NULL || v.len < n || strncasecmp(v.ptr, type, n) != 0)
        return false;
    return v.len == n || v.ptr[n] == ';' || v.ptr[n] == ' ';
}

/* Adds a form value; a name seen again (or written name[]) collects its values in an array. */
static int s_form_add(json_t *object, char *name, const char *value)
{
    size_t len = strlen(name);
    bool array_syntax = len > 2 && strcmp(name + len - 2, "[]") == 0;
    if (array_syntax)
        name[len - 2] = '\0';
    json_t *existing = json_object_get(object, name);
    json_t *v = json_string(value);
    if (v == NULL)
        return -1;
    if (existing == NULL && !array_syntax)
        return json_object_set_new(object, name, v);
    if (existing == NULL) {
        existing = json_array();
        if (json_object_set_new(object, name, existing) != 0) {
            json_decref(v);
            return -1;
        }
    } else if (!json_is_array(existing)) {
        json_t *array = json_array();
        json_array_append(array, existing);
        json_object_set_new(object, name, array);
        existing = array;
    }
    if (json_array_size(existing) >= INPUT_ARRAY_MAX) {
        json_decref(v);
        return -1;
    }
    return json_array_append_new(existing, v);
}

static input_status_t s_parse_form(const char *body, size_t len, input_t *in, char *message, size_t size)
{
    const char *p = body, *end = body + len;
    char name[INPUT_NAME_MAX + 1];
    char *value = malloc(len + 1);
    if (value == NULL) {
        snprintf(message, size, "out of memory");
        return INPUT_BAD_SYNTAX;
    }
    input_status_t status = INPUT_OK;
    while (p < end && status == INPUT_OK) {
        const char *amp = memchr(p, '&', (size_t)(end - p));
        const char *item_end = amp ? amp : end;
        const char *eq = memchr(p, '=', (size_t)(item_end - p));
        const char *name_end = eq ? eq : item_end;
        if (item_end == p) {
            p = item_end + 1;
            continue;
        }
        if (urlform_decode(p, (size_t)(name_end - p), name, sizeof(name)) != 0 || name[0] == '\0') {
            snprintf(message, size, "A form field name is empty, longer than %d bytes or badly percent-encoded.", INPUT_NAME_MAX);
            status = INPUT_BAD_SYNTAX;
        } else if (urlform_decode(eq ? eq + 1 : "", eq ? (size_t)(item_end - eq - 1) : 0, value, len + 1) != 0 ||
                   !input_utf8_valid(value, strlen(value))) {
            snprintf(message, size, "The value of form field '%s' is badly percent-encoded or not UTF-8.", name);
            status = INPUT_BAD_SYNTAX;
        } else if (strcmp(name, "api_key") == 0 || strcmp(name, "api_auth") == 0) {
            /* Credentials, read by authentication; not a field of the resource. */
        } else if (json_object_size(in->object) >= INPUT_FIELDS_MAX || s_form_add(in->object, name, value) != 0) {
            snprintf(message, size, "The form has more than %d fields or a field repeated more than %d times.", INPUT_FIELDS_MAX,
                     INPUT_ARRAY_MAX);
            status = INPUT_BAD_SYNTAX;
        }
        p = item_end + 1;
    }
    free(value);
    return status;
}

input_status_t input_parse(const api_request_t *req, input_t *in, char *message, size_t size)
{
    in->from_form = false;
    in->object = json_object();
    if (in->object == NULL) {
        snprintf(message, size, "out of memory");
        return INPUT_BAD_SYNTAX;
    }
    if (!req->msg.has_body || req->msg.body.len == 0)
        return INPUT_OK;
    if (s_content_type_is(req, "application/x-www-form-urlencoded")) {
        in->from_form = true;
        return s_parse_form(req->msg.body.ptr, req->msg.body.len, in, message, size);
    }
    if (!s_content_type_is(req, "application/json")) {
        snprintf(message, size, "Send the body as application/json or application/x-www-form-urlencoded.");
        return INPUT_BAD_TYPE;
    }
    json_error_t error;
    json_t *parsed = json_loadb(req->msg.body.ptr, req->msg.body.len, JSON_REJECT_DUPLICATES, &error);
    if (parsed == NULL || !json_is_object(parsed)) {
        snprintf(message, size,
                 parsed ? "The JSON body must be an object." : "The body is not valid JSON: %s (line %d, column %d).", error.text,
                 error.line, error.column);
        json_decref(parsed);
        return INPUT_BAD_SYNTAX;
    }
    if (json_object_size(parsed) > INPUT_FIELDS_MAX) {
        snprintf(message, size, "The body has more than %d fields.", INPUT_FIELDS_MAX);
        json_decref(parsed);
        return INPUT_BAD_SYNTAX;
    }
    json_decref(in->object);
    in->object = parsed;
    return INPUT_OK;
}

void input_free(input_t *in)
{
    json_decref(in->object);
    in->object = NULL;
}

static char *s_strdup_printf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static char *s_strdup_printf(const char *fmt, ...)
{
    va_list ap;
    char *out = NULL;
    va_start(ap, fmt);
    if (vasprintf(&out, fmt, ap) < 0)
        out = NULL;
    va_end(ap);
    return out;
}

/* A whole-string integer in [min, max]: from a JSON integer, or from a form's decimal string. */
static int s_integer(json_t *value, bool from_form, int64_t min, int64_t max, int64_t *out, char *message, size_t size)
{
    if (json_is_integer(value)) {
        *out = json_integer_value(value);
    } else if (from_form && json_is_string(value)) {
        const char *s = json_string_value(value);
        char *end;
        errno = 0;
        long long v = strtoll(s, &end, 10);
        if (*s == '\0' || *end != '\0' || errno != 0 || isspace((unsigned char)*s)) {
            snprintf(message, size, "must be a whole number");
            return -1;
        }
        *out = v;
    } else {
        snprintf(message, size, "must be a whole number");
        return -1;
    }
    if (*out < min || *out > max) {
        snprintf(message, size, "must be between %" PRId64 " and %" PRId64, min, max);
        return -1;
    }
    return 0;
}

static int s_text(const field_def_t *f, const char *s, char *message, size_t size)
{
    bool long_text = f->type == FIELD_LONG_TEXT;
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if ((*p < 0x20 && !(long_text && (*p == '\n' || *p == '\r' || *p == '\t'))) || *p == 0x7f) {
            snprintf(message, size,
                     long_text ? "must not contain control characters other than newlines and tabs"
                               : "must not contain control characters");
            return -1;
        }
    }
    size_t chars = s_utf8_chars(s);
    if ((int64_t)chars < f->min || (int64_t)chars > f->max) {
        if (f->min > 0 && chars == 0)
            snprintf(message, size, "must not be empty");
        else
            snprintf(message, size, "must be %" PRId64 " to %" PRId64 " characters long", f->min, f->max);
        return -1;
    }
    return 0;
}

static int s_time_zone(const char *s, char *message, size_t size)
{
    size_t len = strlen(s);
    bool ok = len > 0 && len <= 64 && s[0] != '/' && strstr(s, "..") == NULL;
    for (size_t i = 0; ok && i < len; i++)
        ok = isalnum((unsigned char)s[i]) || strchr("/_+-", s[i]) != NULL;
    if (ok) {
        /* The system's tz database is also PostgreSQL's on Debian, so a name found here is one
         * the database and the dialer agree on. */
        char path[sizeof(TZ_DIR) + 64];
        struct stat st;
        snprintf(path, sizeof(path), "%s%s", TZ_DIR, s);
        ok = stat(path, &st) == 0 && S_ISREG(st.st_mode);
    }
    if (!ok)
        snprintf(message, size, "must be an IANA time zone name such as America/New_York");
    return ok ? 0 : -1;
}

static char *s_time_of_day(const char *s, char *message, size_t size)
{
    unsigned h, m;
    int used = 0;
    if (sscanf(s, "%2u:%2u%n", &h, &m, &used) != 2 || s[used] != '\0' || h > 23 || m > 59 || !isdigit((unsigned char)s[0])) {
        snprintf(message, size, "must be a time of day as HH:MM (24-hour clock)");
        return NULL;
    }
    return s_strdup_printf("%02u:%02u", h, m);
}

static char *s_names(const field_def_t *f, json_t *value, bool from_form, char *message, size_t size)
{
    json_t *array = value;
    json_t *wrapped = NULL;
    if (from_form && json_is_string(value)) {
        /* One name in a form is an array of one (a repeated name would already be an array). */
        wrapped = json_pack("[O]", value);
        array = wrapped;
    }
    if (!json_is_array(array)) {
        snprintf(message, size, "must be an array of field names");
        return NULL;
    }
    char *out = NULL;
    if ((int64_t)json_array_size(array) > f->max) {
        snprintf(message, size, "must have at most %" PRId64 " names", f->max);
        goto Exit;
    }
    size_t i;
    json_t *item;
    json_array_foreach(array, i, item)
    {
        const char *s = json_string_value(item);
        size_t len = s ? strlen(s) : 0;
        bool ok = len > 0 && len <= INPUT_NAME_MAX;
        for (size_t k = 0; ok && k < len; k++)
            ok = isalnum((unsigned char)s[k]) || s[k] == '_' || (s[k] == '.' && (f->flags & F_DOTTED));
        if (!ok) {
            snprintf(message, size, "item %zu must be a %s", i,
                     (f->flags & F_DOTTED) ? "name of letters, digits, '.' and '_'" : "field name of letters, digits and '_'");
            goto Exit;
        }
        for (size_t j = 0; j < i; j++) {
            if (strcmp(json_string_value(json_array_get(array, j)), s) == 0) {
                snprintf(message, size, "names '%s' twice", s);
                goto Exit;
            }
        }
    }
    out = json_dumps(array, JSON_COMPACT);
Exit:
    json_decref(wrapped);
    return out;
}

/* An absolute http(s) URL: scheme, a host, printable ASCII only. Whether the host may be
 * reached is decided when it is called, not here. */
static char *s_url(const char *s, int64_t max, char *message, size_t size)
{
    size_t len = strlen(s);
    const char *rest = strncasecmp(s, "https://", 8) == 0 ? s + 8 : strncasecmp(s, "http://", 7) == 0 ? s + 7 : NULL;
    bool ok = rest != NULL && (int64_t)len <= max && rest[0] != '\0' && rest[0] != '/' && rest[0] != ':';
    for (size_t i = 0; ok && i < len; i++)
        ok = s[i] > 0x20 && s[i] < 0x7f;
    if (!ok) {
        snprintf(message, size, "must be an absolute http or https URL of at most %" PRId64 " characters", max);
        return NULL;
    }
    return strdup(s);
}

/* A flat JSON object of string values (a column map); in a form, the object as JSON text. */
static char *s_json_object(const field_def_t *f, json_t *value, bool from_form, char *message, size_t size)
{
    json_t *object = value, *parsed = NULL;
    if (from_form && json_is_string(value))
        object = parsed = json_loads(json_string_value(value), JSON_REJECT_DUPLICATES, NULL);
    char *out = NULL;
    if (!json_is_object(object) || (int64_t)json_object_size(object) > f->max || json_object_size(object) == 0) {
        snprintf(message, size, "must be an object of 1 to %" PRId64 " names with string values", f->max);
        goto Exit;
    }
    const char *key;
    json_t *item;
    json_object_foreach(object, key, item)
    {
        size_t klen = strlen(key);
        if (klen == 0 || klen > 200 || !json_is_string(item) || json_string_length(item) == 0 || json_string_length(item) > 200) {
            snprintf(message, size, "'%.40s' must map a name of 1 to 200 characters to a non-empty string", key);
            goto Exit;
        }
    }
    out = json_dumps(object, JSON_COMPACT | JSON_SORT_KEYS);
Exit:
    json_decref(parsed);
    return out;
}

static char *s_password_hash(const char *password)
{
    unsigned char salt[PASSWORD_SALT];
    size_t encoded_len = argon2_encodedlen(PASSWORD_T_COST, PASSWORD_M_COST, 1, PASSWORD_SALT, PASSWORD_HASHLEN, Argon2_id);
    char *encoded = malloc(encoded_len);
    if (encoded == NULL || RAND_bytes(salt, sizeof(salt)) != 1 ||
        argon2id_hash_encoded(PASSWORD_T_COST, PASSWORD_M_COST, 1, password, strlen(password), salt, sizeof(salt), PASSWORD_HASHLEN,
                              encoded, encoded_len) != ARGON2_OK) {
        free(encoded);
        return NULL;
    }
    return encoded;
}

int input_field_value(const field_def_t *f, json_t *value, bool from_form, char **sql_value, char *message, size_t size)
{
    *sql_value = NULL;
    bool is_null = json_is_null(value) || (from_form && json_is_string(value) && json_string_length(value) == 0 &&
                                           f->type != FIELD_TEXT && f->type != FIELD_LONG_TEXT);
    if (is_null) {
        if (f->flags & F_NULLABLE)
            return 0;
        snprintf(message, size, "must not be null");
        return -1;
    }
    if (f->type != FIELD_NAMES && from_form && json_is_array(value)) {
        snprintf(message, size, "must be given once");
        return -1;
    }
    const char *s = json_string_value(value);
    int64_t i;
    switch (f->type) {
    case FIELD_TEXT:
    case FIELD_LONG_TEXT:
        if (s == NULL) {
            snprintf(message, size, "must be a string");
            return -1;
        }
        if (s_text(f, s, message, size) != 0)
            return -1;
        *sql_value = strdup(s);
        break;
    case FIELD_INT:
    case FIELD_REF:
        if (s_integer(value, from_form, f->type == FIELD_REF ? 1 : f->min, f->type == FIELD_REF ? INT64_MAX : f->max, &i, message,
                      size) != 0)
            return -1;
        *sql_value = s_strdup_printf("%" PRId64, i);
        break;
    case FIELD_DECIMAL: {
        double d;
        char *end = NULL;
        if (json_is_number(value)) {
            d = json_number_value(value);
        } else if (from_form && s != NULL && *s != '\0' && !isspace((unsigned char)*s)) {
            d = strtod(s, &end);
            if (*end != '\0')
                d = NAN;
        } else {
            d = NAN;
        }
        if (!isfinite(d)) {
            snprintf(message, size, "must be a number");
            return -1;
        }
        if (d < f->dmin || d > f->dmax) {
            snprintf(message, size, "must be between %g and %g", f->dmin, f->dmax);
            return -1;
        }
        *sql_value = s_strdup_printf("%.10g", d);
        break;
    }
    case FIELD_BOOL: {
        bool b;
        if (json_is_boolean(value)) {
            b = json_is_true(value);
        } else if (from_form && s && (strcmp(s, "true") == 0 || strcmp(s, "1") == 0 || strcmp(s, "on") == 0)) {
            b = true;
        } else if (from_form && s && (strcmp(s, "false") == 0 || strcmp(s, "0") == 0 || strcmp(s, "off") == 0)) {
            b = false;
        } else {
            snprintf(message, size, "must be true or false");
            return -1;
        }
        *sql_value = strdup(b ? "true" : "false");
        break;
    }
    case FIELD_ENUM:
        for (const char *const *c = f->choices; s && *c; c++) {
            if (strcasecmp(*c, s) == 0) {
                *sql_value = strdup(*c);
                return *sql_value ? 0 : -1;
            }
        }
        {
            int n = snprintf(message, size, "must be one of");
            for (const char *const *c = f->choices; *c && n > 0 && (size_t)n < size; c++)
                n += snprintf(message + n, size - (size_t)n, "%s %s", c == f->choices ? "" : ",", *c);
        }
        return -1;
    case FIELD_PHONE: {
        char e164[E164_SIZE];
        phone_error_t error;
        if (s == NULL) {
            snprintf(message, size, "must be a phone number as a string");
            return -1;
        }
        if (phone_normalize(s, PHONE_REGION, e164, sizeof(e164), &error) != 0) {
            snprintf(message, size, "%s", phone_error_text(error));
            return -1;
        }
        *sql_value = strdup(e164);
        break;
    }
    case FIELD_TIME:
        if (s == NULL) {
            snprintf(message, size, "must be a time of day as HH:MM (24-hour clock)");
            return -1;
        }
        *sql_value = s_time_of_day(s, message, size);
        return *sql_value ? 0 : -1;
    case FIELD_TIME_ZONE:
        if (s == NULL || s_time_zone(s, message, size) != 0) {
            if (s == NULL)
                snprintf(message, size, "must be an IANA time zone name such as America/New_York");
            return -1;
        }
        *sql_value = strdup(s);
        break;
    case FIELD_NAMES:
        *sql_value = s_names(f, value, from_form, message, size);
        return *sql_value ? 0 : -1;
    case FIELD_URL:
        *sql_value = s ? s_url(s, f->max, message, size) : NULL;
        if (s == NULL)
            snprintf(message, size, "must be an http or https URL");
        return *sql_value ? 0 : -1;
    case FIELD_JSON:
        *sql_value = s_json_object(f, value, from_form, message, size);
        return *sql_value ? 0 : -1;
    case FIELD_TIMESTAMP:
        snprintf(message, size, "is read-only");
        return -1;
    case FIELD_DIGITS: {
        size_t len = s ? strlen(s) : 0;
        bool ok = s != NULL && (int64_t)len >= f->min && (int64_t)len <= f->max;
        for (size_t k = 0; ok && k < len; k++)
            ok = isdigit((unsigned char)s[k]);
        if (!ok) {
            snprintf(message, size, "must be a string of %" PRId64 " to %" PRId64 " digits", f->min, f->max);
            return -1;
        }
        *sql_value = strdup(s);
        break;
    }
    case FIELD_PASSWORD:
        if (s == NULL || (int64_t)strlen(s) < f->min || (int64_t)strlen(s) > f->max) {
            snprintf(message, size, "must be a string of %" PRId64 " to %" PRId64 " bytes", f->min, f->max);
            return -1;
        }
        *sql_value = s_password_hash(s);
        if (*sql_value == NULL) {
            snprintf(message, size, "could not be hashed");
            return -1;
        }
        break;
    }
    if (*sql_value == NULL) {
        snprintf(message, size, "could not be stored (out of memory)");
        return -1;
    }
    return 0;
}

int input_read(const api_request_t *req, api_reply_t *reply, input_t *in)
{
    char message[INPUT_MESSAGE_SIZE];
    input_status_t status = input_parse(req, in, message, sizeof(message));
    if (status == INPUT_OK)
        return 0;
    api_reply_problem(reply, req, status == INPUT_BAD_TYPE ? 415 : 400,
                      status == INPUT_BAD_TYPE ? "unsupported-media-type" : "bad-request",
                      status == INPUT_BAD_TYPE ? "Unsupported media type" : "Malformed body", message);
    input_free(in);
    return -1;
}
