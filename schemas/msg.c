/*
 * Codecs for schemas/messages.def. The per-message functions are stamped out by macros from the
 * field lists, so adding a field is a one-line change in messages.def and nothing here.
 */
#include "schemas/msg.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>


static int s_fail(char *err, size_t errlen, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int s_fail(char *err, size_t errlen, const char *fmt, ...)
{
    if (err != NULL && errlen > 0) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err, errlen, fmt, ap);
        va_end(ap);
    }
    return -1;
}

/* ---- frame check --------------------------------------------------------------------------- */

static uint64_t s_be(const uint8_t *p, int n)
{
    uint64_t v = 0;
    for (int i = 0; i < n; i++)
        v = (v << 8) | p[i];
    return v;
}

/*
 * Walks one msgpack object iteratively. `pending[d]` counts the objects still expected at depth
 * d; a container pushes a level. Every container must fit its announced count in the bytes left
 * (each element takes at least one byte), which is what keeps msgpack-c's up-front allocation
 * honest.
 */
int msg_frame_check(const void *data, size_t len, char *err, size_t errlen)
{
    const uint8_t *p = data, *end = p + len;
    uint64_t pending[MSG_MAX_DEPTH + 1];
    int depth = 0;
    uint64_t objects = 0;

    if (data == NULL || len == 0)
        return s_fail(err, errlen, "empty frame");
    pending[0] = 1;
    while (depth >= 0) {
        if (pending[depth] == 0) {
            depth--;
            continue;
        }
        pending[depth]--;
        if (p >= end)
            return s_fail(err, errlen, "truncated frame");
        if (++objects > MSG_MAX_OBJECTS)
            return s_fail(err, errlen, "too many objects");
        uint8_t b = *p++;
        uint64_t skip = 0, children = 0;
        int lenbytes = 0;
        if (b <= 0x7f || b >= 0xe0 || b == 0xc0 || b == 0xc2 || b == 0xc3) {
            skip = 0;
        } else if (b >= 0x80 && b <= 0x8f) {
            children = 2u * (b & 0x0f);
        } else if (b >= 0x90 && b <= 0x9f) {
            children = b & 0x0f;
        } else if (b >= 0xa0 && b <= 0xbf) {
            skip = b & 0x1f;
        } else {
            switch (b) {
            case 0xc4:
            case 0xd9:
                lenbytes = 1;
                break; /* bin8, str8 */
            case 0xc5:
            case 0xda:
                lenbytes = 2;
                break; /* bin16, str16 */
            case 0xc6:
            case 0xdb:
                lenbytes = 4;
                break; /* bin32, str32 */
            case 0xc7:
                lenbytes = 1;
                skip = 1;
                break; /* ext8: len + type */
            case 0xc8:
                lenbytes = 2;
                skip = 1;
                break;
            case 0xc9:
                lenbytes = 4;
                skip = 1;
                break;
            case 0xca:
                skip = 4;
                break; /* float32 */
            case 0xcb:
                skip = 8;
                break; /* float64 */
            case 0xcc:
            case 0xd0:
                skip = 1;
                break;
            case 0xcd:
            case 0xd1:
                skip = 2;
                break;
            case 0xce:
            case 0xd2:
                skip = 4;
                break;
            case 0xcf:
            case 0xd3:
                skip = 8;
                break;
            case 0xd4:
                skip = 2;
                break; /* fixext1..16: type + data */
            case 0xd5:
                skip = 3;
                break;
            case 0xd6:
                skip = 5;
                break;
            case 0xd7:
                skip = 9;
                break;
            case 0xd8:
                skip = 17;
                break;
            case 0xdc:
            case 0xdd:
            case 0xde:
            case 0xdf: {
                int n = (b == 0xdc || b == 0xde) ? 2 : 4;
                if ((size_t)(end - p) < (size_t)n)
                    return s_fail(err, errlen, "truncated frame");
                children = s_be(p, n);
                p += n;
                if (b >= 0xde)
                    children *= 2;
                break;
            }
            default:
                return s_fail(err, errlen, "reserved type byte 0x%02x", b);
            }
        }
        if (lenbytes > 0) {
            if ((size_t)(end - p) < (size_t)lenbytes)
                return s_fail(err, errlen, "truncated frame");
            skip += s_be(p, lenbytes);
            p += lenbytes;
        }
        if (skip > (uint64_t)(end - p))
            return s_fail(err, errlen, "truncated frame");
        p += skip;
        if (children > 0) {
            if (children > (uint64_t)(end - p))
                return s_fail(err, errlen, "container count %llu exceeds frame", (unsigned long long)children);
            if (depth == MSG_MAX_DEPTH)
                return s_fail(err, errlen, "nesting deeper than %d", MSG_MAX_DEPTH);
            pending[++depth] = children;
        }
    }
    if (p != end)
        return s_fail(err, errlen, "%zu trailing bytes", (size_t)(end - p));
    return 0;
}

/* ---- views --------------------------------------------------------------------------------- */

msg_str_t msg_str(const char *s)
{
    return (msg_str_t){s ? s : "", s ? (uint32_t)strlen(s) : 0};
}

int msg_str_copy(msg_str_t s, char *buf, size_t size)
{
    if (size == 0 || (size_t)s.len >= size)
        return -1;
    if (s.len > 0)
        memcpy(buf, s.ptr, s.len);
    buf[s.len] = '\0';
    return 0;
}

bool msg_str_eq(msg_str_t s, const char *c)
{
    size_t n = strlen(c);
    return s.len == n && (n == 0 || memcmp(s.ptr, c, n) == 0);
}

msg_str_t msg_pairs_get(const msg_pairs_t *p, const char *name)
{
    size_t n = strlen(name);
    for (uint32_t i = 0; i < p->count; i++)
        if (p->name[i].len == n && strncasecmp(p->name[i].ptr, name, n) == 0)
            return p->value[i];
    return (msg_str_t){NULL, 0};
}

int msg_pairs_add(msg_pairs_t *p, msg_str_t name, msg_str_t value)
{
    if (p->count >= MSG_PAIRS_MAX)
        return -1;
    p->name[p->count] = name;
    p->value[p->count] = value;
    p->count++;
    return 0;
}

/* ---- per-type encode and decode -------------------------------------------------------------- */

/* One pair per field type; a type no message uses yet is not an error. */
#define TYPE_CODEC static __attribute__((unused))

TYPE_CODEC int s_enc_U64(msgpack_packer *pk, uint64_t v, uint64_t limit)
{
    return msgpack_pack_uint64(pk, v);
}
TYPE_CODEC int s_enc_I64(msgpack_packer *pk, int64_t v, uint64_t limit)
{
    return msgpack_pack_int64(pk, v);
}
TYPE_CODEC int s_enc_BOOL(msgpack_packer *pk, bool v, uint64_t limit)
{
    return v ? msgpack_pack_true(pk) : msgpack_pack_false(pk);
}
TYPE_CODEC int s_enc_STR(msgpack_packer *pk, msg_str_t v, uint64_t limit)
{
    if (v.len > limit || (v.len > 0 && v.ptr == NULL))
        return -1;
    return msgpack_pack_str(pk, v.len) || msgpack_pack_str_body(pk, v.ptr, v.len) ? -1 : 0;
}
TYPE_CODEC int s_enc_BIN(msgpack_packer *pk, msg_str_t v, uint64_t limit)
{
    if (v.len > limit || (v.len > 0 && v.ptr == NULL))
        return -1;
    return msgpack_pack_bin(pk, v.len) || msgpack_pack_bin_body(pk, v.ptr, v.len) ? -1 : 0;
}
TYPE_CODEC int s_enc_PAIRS(msgpack_packer *pk, msg_pairs_t v, uint64_t limit)
{
    if (v.count > limit || v.count > MSG_PAIRS_MAX || msgpack_pack_array(pk, v.count))
        return -1;
    for (uint32_t i = 0; i < v.count; i++)
        if (msgpack_pack_array(pk, 2) || s_enc_STR(pk, v.name[i], MSG_PAIR_ITEM_MAX) ||
            s_enc_STR(pk, v.value[i], MSG_PAIR_ITEM_MAX))
            return -1;
    return 0;
}

TYPE_CODEC int s_dec_U64(const msgpack_object *o, uint64_t *out, uint64_t limit)
{
    if (o->type != MSGPACK_OBJECT_POSITIVE_INTEGER)
        return -1;
    *out = o->via.u64;
    return 0;
}
TYPE_CODEC int s_dec_I64(const msgpack_object *o, int64_t *out, uint64_t limit)
{
    if (o->type == MSGPACK_OBJECT_NEGATIVE_INTEGER) {
        *out = o->via.i64;
        return 0;
    }
    if (o->type != MSGPACK_OBJECT_POSITIVE_INTEGER || o->via.u64 > INT64_MAX)
        return -1;
    *out = (int64_t)o->via.u64;
    return 0;
}
TYPE_CODEC int s_dec_BOOL(const msgpack_object *o, bool *out, uint64_t limit)
{
    if (o->type != MSGPACK_OBJECT_BOOLEAN)
        return -1;
    *out = o->via.boolean;
    return 0;
}
TYPE_CODEC int s_dec_STR(const msgpack_object *o, msg_str_t *out, uint64_t limit)
{
    if (o->type != MSGPACK_OBJECT_STR || o->via.str.size > limit)
        return -1;
    *out = (msg_str_t){o->via.str.ptr, o->via.str.size};
    return 0;
}
TYPE_CODEC int s_dec_BIN(const msgpack_object *o, msg_str_t *out, uint64_t limit)
{
    if (o->type != MSGPACK_OBJECT_BIN || o->via.bin.size > limit)
        return -1;
    *out = (msg_str_t){o->via.bin.ptr, o->via.bin.size};
    return 0;
}
TYPE_CODEC int s_dec_PAIRS(const msgpack_object *o, msg_pairs_t *out, uint64_t limit)
{
    if (o->type != MSGPACK_OBJECT_ARRAY || o->via.array.size > limit || o->via.array.size > MSG_PAIRS_MAX)
        return -1;
    out->count = 0;
    for (uint32_t i = 0; i < o->via.array.size; i++) {
        const msgpack_object *pair = &o->via.array.ptr[i];
        if (pair->type != MSGPACK_OBJECT_ARRAY || pair->via.array.size != 2 ||
            s_dec_STR(&pair->via.array.ptr[0], &out->name[i], MSG_PAIR_ITEM_MAX) ||
            s_dec_STR(&pair->via.array.ptr[1], &out->value[i], MSG_PAIR_ITEM_MAX))
            return -1;
        out->count++;
    }
    return 0;
}

/* ---- generated functions ------------------------------------------------------------------- */

/*
 * Unpacks one checked frame into a map and verifies field 0 carries the expected message id.
 * The msgpack_unpacked is destroyed by the caller after the field walk; STR and BIN objects
 * point into `data` (msgpack-c references the input for them), so the views survive it.
 */
static const msgpack_object_map *s_open(const void *data, size_t len, msgpack_unpacked *up, uint64_t id, const char *name,
                                        char *err, size_t errlen)
{
    size_t off = 0;
    if (msg_frame_check(data, len, err, errlen) != 0)
        return NULL;
    if (msgpack_unpack_next(up, data, len, &off) != MSGPACK_UNPACK_SUCCESS || off != len) {
        s_fail(err, errlen, "%s: not one msgpack object", name);
        return NULL;
    }
    if (up->data.type != MSGPACK_OBJECT_MAP) {
        s_fail(err, errlen, "%s: not a map", name);
        return NULL;
    }
    const msgpack_object_map *map = &up->data.via.map;
    for (uint32_t i = 0; i < map->size; i++)
        if (map->ptr[i].key.type == MSGPACK_OBJECT_POSITIVE_INTEGER && map->ptr[i].key.via.u64 == 0) {
            if (map->ptr[i].val.type != MSGPACK_OBJECT_POSITIVE_INTEGER || map->ptr[i].val.via.u64 != id) {
                s_fail(err, errlen, "%s: wrong message id", name);
                return NULL;
            }
            return map;
        }
    s_fail(err, errlen, "%s: missing message id", name);
    return NULL;
}

#define MSG_PRESENT_REQUIRED(name)                        1
#define MSG_PRESENT_OPTIONAL(name)                        m->has_##name
#define MSG_COUNT_FIELD(num, name, type, limit, presence) +(MSG_PRESENT_##presence(name) ? 1 : 0)
#define MSG_ENCODE_FIELD(num, name, type, limit, presence)                                                                         \
    if (MSG_PRESENT_##presence(name)) {                                                                                            \
        if (msgpack_pack_uint32(&pk, num) || s_enc_##type(&pk, m->name, limit))                                                    \
            return -1;                                                                                                             \
    }
#define MSG_DECODE_FIELD(num, name, type, limit, presence)                                                                         \
    case num:                                                                                                                      \
        if (m->has_##name) {                                                                                                       \
            s_fail(err, errlen, "%s: field " #name " repeated", msgname);                                                          \
            goto Error;                                                                                                            \
        }                                                                                                                          \
        if (s_dec_##type(val, &m->name, limit) != 0) {                                                                             \
            s_fail(err, errlen, "%s: field " #name " has the wrong type or exceeds %llu", msgname, (unsigned long long)(limit));   \
            goto Error;                                                                                                            \
        }                                                                                                                          \
        m->has_##name = true;                                                                                                      \
        break;
#define MSG_REQUIRE_REQUIRED(name)                                                                                                 \
    if (!m->has_##name) {                                                                                                          \
        s_fail(err, errlen, "%s: missing field " #name, msgname);                                                                  \
        goto Error;                                                                                                                \
    }
#define MSG_REQUIRE_OPTIONAL(name)
#define MSG_REQUIRE_FIELD(num, name, type, limit, presence) MSG_REQUIRE_##presence(name)

#define MSG_DEFINE(mname, id, FIELDS)                                                                                              \
    int msg_##mname##_encode(const msg_##mname##_t *m, msgpack_sbuffer *out)                                                       \
    {                                                                                                                              \
        msgpack_packer pk;                                                                                                         \
        msgpack_packer_init(&pk, out, msgpack_sbuffer_write);                                                                      \
        if (msgpack_pack_map(&pk, 1 FIELDS(MSG_COUNT_FIELD)) || msgpack_pack_uint32(&pk, 0) || msgpack_pack_uint32(&pk, id))       \
            return -1;                                                                                                             \
        FIELDS(MSG_ENCODE_FIELD)                                                                                                   \
        return 0;                                                                                                                  \
    }                                                                                                                              \
    int msg_##mname##_decode(const void *data, size_t len, msg_##mname##_t *m, char *err, size_t errlen)                           \
    {                                                                                                                              \
        static const char msgname[] = #mname;                                                                                      \
        msgpack_unpacked up;                                                                                                       \
        msgpack_unpacked_init(&up);                                                                                                \
        memset(m, 0, sizeof(*m));                                                                                                  \
        const msgpack_object_map *map = s_open(data, len, &up, id, msgname, err, errlen);                                          \
        if (map == NULL)                                                                                                           \
            goto Error;                                                                                                            \
        for (uint32_t i = 0; i < map->size; i++) {                                                                                 \
            const msgpack_object *key = &map->ptr[i].key, *val = &map->ptr[i].val;                                                 \
            if (key->type != MSGPACK_OBJECT_POSITIVE_INTEGER) {                                                                    \
                s_fail(err, errlen, "%s: field keys must be unsigned integers", msgname);                                          \
                goto Error;                                                                                                        \
            }                                                                                                                      \
            (void)val;                                                                                                             \
            switch (key->via.u64) {                                                                                                \
                FIELDS(MSG_DECODE_FIELD)                                                                                           \
            default: /* field 0 was checked by s_open; unknown numbers belong to newer senders */                                  \
                break;                                                                                                             \
            }                                                                                                                      \
        }                                                                                                                          \
        FIELDS(MSG_REQUIRE_FIELD)                                                                                                  \
        msgpack_unpacked_destroy(&up);                                                                                             \
        return 0;                                                                                                                  \
    Error:                                                                                                                         \
        msgpack_unpacked_destroy(&up);                                                                                             \
        return -1;                                                                                                                 \
    }
IMPACT_MESSAGES(MSG_DEFINE)
