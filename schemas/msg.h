/*
 * Typed codecs for the messages of schemas/messages.def.
 *
 * For every MESSAGE(name, ...) this header declares
 *
 *   typedef struct { ... } msg_<name>_t;
 *   int msg_<name>_encode(const msg_<name>_t *m, msgpack_sbuffer *out);
 *   int msg_<name>_decode(const void *data, size_t len, msg_<name>_t *m, char *err, size_t errlen);
 *
 * Decoding is zero-copy: STR, BIN and PAIRS fields are views (msg_str_t) into `data`, so the frame
 * must outlive the decoded struct. Before msgpack-c sees a frame, msg_frame_check() walks it once
 * and rejects truncation, trailing bytes, reserved type bytes, nesting deeper than
 * MSG_MAX_DEPTH and any array or map whose count exceeds what the remaining bytes could hold.
 * That last rule matters because msgpack-c allocates count * sizeof(msgpack_object) on seeing a
 * container header; after the check, its allocations are bounded by a small multiple of the
 * frame size.
 */
#ifndef IMPACT_SCHEMAS_MSG_H
#define IMPACT_SCHEMAS_MSG_H

#include <msgpack.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "schemas/messages.def"

#define MSG_MAX_DEPTH   8
#define MSG_MAX_OBJECTS 65536

typedef struct {
    const char *ptr;
    uint32_t len;
} msg_str_t;

#define MSG_PAIRS_MAX     32
#define MSG_PAIR_ITEM_MAX 8192 /* bytes in one name or value of a PAIRS field */
typedef struct {
    uint32_t count;
    msg_str_t name[MSG_PAIRS_MAX];
    msg_str_t value[MSG_PAIRS_MAX];
} msg_pairs_t;

#define MSG_CTYPE_U64   uint64_t
#define MSG_CTYPE_I64   int64_t
#define MSG_CTYPE_BOOL  bool
#define MSG_CTYPE_STR   msg_str_t
#define MSG_CTYPE_BIN   msg_str_t
#define MSG_CTYPE_PAIRS msg_pairs_t

#define MSG_DECLARE_FIELD(num, name, type, limit, presence)                                                                        \
    MSG_CTYPE_##type name;                                                                                                         \
    bool has_##name;
#define MSG_DECLARE(name, id, FIELDS)                                                                                              \
    enum { MSG_ID_##name = id };                                                                                                   \
    typedef struct {                                                                                                               \
        FIELDS(MSG_DECLARE_FIELD)                                                                                                  \
    } msg_##name##_t;                                                                                                              \
    int msg_##name##_encode(const msg_##name##_t *m, msgpack_sbuffer *out);                                                        \
    int msg_##name##_decode(const void *data, size_t len, msg_##name##_t *m, char *err, size_t errlen);
IMPACT_MESSAGES(MSG_DECLARE)
#undef MSG_DECLARE

/** Validates that data[0..len) is exactly one well-formed, bounded msgpack object. 0 or -1 (with err). */
int msg_frame_check(const void *data, size_t len, char *err, size_t errlen);

/** A view over a NUL-terminated C string (NULL gives an empty view). */
msg_str_t msg_str(const char *s);

/** Copies a view into buf as a C string; -1 if it does not fit. */
int msg_str_copy(msg_str_t s, char *buf, size_t size);

/** True if the view equals the C string. */
bool msg_str_eq(msg_str_t s, const char *c);

/** Looks up a pair by case-insensitive name; returns an empty view with ptr NULL when absent. */
msg_str_t msg_pairs_get(const msg_pairs_t *p, const char *name);

/** Appends a pair (views, not copies); -1 when full. */
int msg_pairs_add(msg_pairs_t *p, msg_str_t name, msg_str_t value);

#endif
