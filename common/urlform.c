#include "common/urlform.h"

#include <stdio.h>
#include <string.h>

static int s_hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

int urlform_decode(const char *in, size_t len, char *out, size_t size)
{
    size_t o = 0;
    if (size == 0)
        return -1;
    for (size_t i = 0; i < len; i++) {
        int c = (unsigned char)in[i];
        if (c == '+') {
            c = ' ';
        } else if (c == '%') {
            if (i + 2 >= len)
                return -1;
            int hi = s_hexval(in[i + 1]), lo = s_hexval(in[i + 2]);
            if (hi < 0 || lo < 0)
                return -1;
            c = hi * 16 + lo;
            i += 2;
        }
        if (c == 0 || o + 1 >= size)
            return -1;
        out[o++] = (char)c;
    }
    out[o] = '\0';
    return 0;
}

int urlform_param(const char *list, size_t len, const char *name, char *out, size_t size)
{
    if (list == NULL)
        return -1;
    const char *p = list, *end = list + len;
    while (p < end) {
        const char *amp = memchr(p, '&', (size_t)(end - p));
        const char *item_end = amp ? amp : end;
        const char *eq = memchr(p, '=', (size_t)(item_end - p));
        const char *key_end = eq ? eq : item_end;
        char key[URLFORM_NAME_MAX + 1];
        if (urlform_decode(p, (size_t)(key_end - p), key, sizeof(key)) == 0 && strcmp(key, name) == 0)
            return eq ? urlform_decode(eq + 1, (size_t)(item_end - eq - 1), out, size) : urlform_decode("", 0, out, size);
        p = item_end + 1;
    }
    return -1;
}

void urlform_append(char *out, size_t size, const char *name, const char *value, const char *plain)
{
    size_t n = strlen(out);
    int w = snprintf(out + n, size - n, "&%s=", name);
    if (w < 0 || (size_t)w >= size - n)
        return;
    n += (size_t)w;
    static const char hex[] = "0123456789ABCDEF";
    for (const unsigned char *p = (const unsigned char *)value; *p && n + 4 < size; p++) {
        if ((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') || strchr("-._~", *p) ||
            strchr(plain, *p)) {
            out[n++] = (char)*p;
        } else {
            out[n++] = '%';
            out[n++] = hex[*p >> 4];
            out[n++] = hex[*p & 15];
        }
    }
    out[n] = '\0';
}
