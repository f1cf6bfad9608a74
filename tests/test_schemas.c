/*
 * The message codecs: round trips, and every way a hostile or broken frame can be wrong. The
 * decoders must reject each without crashing and without allocating in proportion to what a
 * frame merely claims.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdlib.h>
#include <string.h>

#include "schemas/msg.h"

static msgpack_sbuffer s_encode_request(const char *path)
{
    msg_api_request_t m = {0};
    m.method = msg_str("POST");
    m.path = msg_str(path);
    m.query = msg_str("api_key=a&api_auth=b");
    m.has_query = true;
    msg_pairs_add(&m.headers, msg_str("content-type"), msg_str("application/json"));
    msg_pairs_add(&m.headers, msg_str("Accept"), msg_str("text/html"));
    m.has_headers = true;
    m.body = msg_str("{\"a\":1}");
    m.has_body = true;
    m.request_id = msg_str("req-1");
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    assert_int_equal(msg_api_request_encode(&m, &sb), 0);
    return sb;
}

static void test_request_round_trip(void **state)
{
    msgpack_sbuffer sb = s_encode_request("/v1/campaigns");
    msg_api_request_t d;
    char err[128];
    assert_int_equal(msg_api_request_decode(sb.data, sb.size, &d, err, sizeof(err)), 0);
    assert_true(msg_str_eq(d.method, "POST"));
    assert_true(msg_str_eq(d.path, "/v1/campaigns"));
    assert_true(d.has_query && msg_str_eq(d.query, "api_key=a&api_auth=b"));
    assert_int_equal(d.headers.count, 2);
    assert_true(msg_str_eq(msg_pairs_get(&d.headers, "ACCEPT"), "text/html"));
    assert_null(msg_pairs_get(&d.headers, "missing").ptr);
    assert_true(msg_str_eq(d.body, "{\"a\":1}"));
    assert_false(d.has_base_url);
    msgpack_sbuffer_destroy(&sb);
}

static void test_response_round_trip(void **state)
{
    msg_api_response_t m = {.status = 201, .content_type = msg_str("application/json"), .has_content_type = true};
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    assert_int_equal(msg_api_response_encode(&m, &sb), 0);
    msg_api_response_t d;
    assert_int_equal(msg_api_response_decode(sb.data, sb.size, &d, NULL, 0), 0);
    assert_int_equal(d.status, 201);
    assert_false(d.has_body);
    /* A response is not a request: the message id in field 0 tells them apart. */
    msg_api_request_t wrong;
    char err[128];
    assert_int_equal(msg_api_request_decode(sb.data, sb.size, &wrong, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "wrong message id"));
    msgpack_sbuffer_destroy(&sb);
}

static void test_every_truncation_rejected(void **state)
{
    msgpack_sbuffer sb = s_encode_request("/v1");
    msg_api_request_t d;
    for (size_t len = 0; len < sb.size; len++)
        assert_int_equal(msg_api_request_decode(sb.data, len, &d, NULL, 0), -1);
    msgpack_sbuffer_destroy(&sb);
}

static void test_trailing_bytes_rejected(void **state)
{
    msgpack_sbuffer sb = s_encode_request("/v1");
    msgpack_sbuffer_write(&sb, "\xc0", 1);
    msg_api_request_t d;
    char err[128];
    assert_int_equal(msg_api_request_decode(sb.data, sb.size, &d, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "trailing"));
    msgpack_sbuffer_destroy(&sb);
}

static void test_oversized_counts_rejected(void **state)
{
    /* map32 claiming 2^32-1 entries in a 5-byte frame: msgpack-c would try to allocate 64 GiB. */
    const char map32[] = "\xdf\xff\xff\xff\xff";
    const char array32[] = "\xdd\x7f\xff\xff\xff";
    const char str32[] = "\xdb\xff\xff\xff\xff"
                         "abc";
    char err[128];
    assert_int_equal(msg_frame_check(map32, 5, err, sizeof(err)), -1);
    assert_int_equal(msg_frame_check(array32, 5, err, sizeof(err)), -1);
    assert_int_equal(msg_frame_check(str32, 8, err, sizeof(err)), -1);
    msg_api_request_t d;
    assert_int_equal(msg_api_request_decode(map32, 5, &d, NULL, 0), -1);
}

static void test_deep_nesting_rejected(void **state)
{
    char frame[64];
    memset(frame, 0x91, sizeof(frame)); /* fixarray of one, nested 63 deep */
    frame[sizeof(frame) - 1] = 0x01;
    char err[128];
    assert_int_equal(msg_frame_check(frame, sizeof(frame), err, sizeof(err)), -1);
    assert_non_null(strstr(err, "nesting"));
}

static void test_reserved_byte_rejected(void **state)
{
    assert_int_equal(msg_frame_check("\xc1", 1, NULL, 0), -1);
}

static void test_wrong_types_and_limits(void **state)
{
    msgpack_sbuffer sb;
    msgpack_packer pk;
    msg_api_request_t d;
    char err[128];

    /* path sent as an integer */
    msgpack_sbuffer_init(&sb);
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    msgpack_pack_map(&pk, 4);
    msgpack_pack_uint32(&pk, 0), msgpack_pack_uint32(&pk, MSG_ID_api_request);
    msgpack_pack_uint32(&pk, 1), msgpack_pack_str(&pk, 3), msgpack_pack_str_body(&pk, "GET", 3);
    msgpack_pack_uint32(&pk, 2), msgpack_pack_uint32(&pk, 7);
    msgpack_pack_uint32(&pk, 6), msgpack_pack_str(&pk, 1), msgpack_pack_str_body(&pk, "r", 1);
    assert_int_equal(msg_api_request_decode(sb.data, sb.size, &d, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "path"));
    msgpack_sbuffer_destroy(&sb);

    /* method longer than its limit of 16 */
    msgpack_sbuffer_init(&sb);
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    msgpack_pack_map(&pk, 4);
    msgpack_pack_uint32(&pk, 0), msgpack_pack_uint32(&pk, MSG_ID_api_request);
    msgpack_pack_uint32(&pk, 1), msgpack_pack_str(&pk, 20), msgpack_pack_str_body(&pk, "GETGETGETGETGETGETGE", 20);
    msgpack_pack_uint32(&pk, 2), msgpack_pack_str(&pk, 3), msgpack_pack_str_body(&pk, "/v1", 3);
    msgpack_pack_uint32(&pk, 6), msgpack_pack_str(&pk, 1), msgpack_pack_str_body(&pk, "r", 1);
    assert_int_equal(msg_api_request_decode(sb.data, sb.size, &d, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "method"));
    msgpack_sbuffer_destroy(&sb);

    /* a required field missing, and a repeated field */
    msgpack_sbuffer_init(&sb);
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    msgpack_pack_map(&pk, 3);
    msgpack_pack_uint32(&pk, 0), msgpack_pack_uint32(&pk, MSG_ID_api_request);
    msgpack_pack_uint32(&pk, 1), msgpack_pack_str(&pk, 3), msgpack_pack_str_body(&pk, "GET", 3);
    msgpack_pack_uint32(&pk, 1), msgpack_pack_str(&pk, 3), msgpack_pack_str_body(&pk, "PUT", 3);
    assert_int_equal(msg_api_request_decode(sb.data, sb.size, &d, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "repeated"));
    msgpack_sbuffer_destroy(&sb);

    /* not a map at all */
    assert_int_equal(msg_api_request_decode("\x93\x01\x02\x03", 4, &d, err, sizeof(err)), -1);
    /* the encoder refuses what the decoder would refuse */
    msg_api_request_t m = {.method = msg_str("A-METHOD-TOO-LONG-FOR-ITS-LIMIT"), .path = msg_str("/"), .request_id = msg_str("r")};
    msgpack_sbuffer_init(&sb);
    assert_int_equal(msg_api_request_encode(&m, &sb), -1);
    msgpack_sbuffer_destroy(&sb);
}

static void test_unknown_fields_skipped(void **state)
{
    msgpack_sbuffer sb;
    msgpack_packer pk;
    msgpack_sbuffer_init(&sb);
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    msgpack_pack_map(&pk, 3);
    msgpack_pack_uint32(&pk, 0), msgpack_pack_uint32(&pk, MSG_ID_api_response);
    msgpack_pack_uint32(&pk, 1), msgpack_pack_uint32(&pk, 204);
    msgpack_pack_uint32(&pk, 99), msgpack_pack_array(&pk, 1), msgpack_pack_nil(&pk);
    msg_api_response_t d;
    assert_int_equal(msg_api_response_decode(sb.data, sb.size, &d, NULL, 0), 0);
    assert_int_equal(d.status, 204);
    msgpack_sbuffer_destroy(&sb);
}

/* Random single-byte mutations of a valid frame: every outcome must be a clean 0 or -1. */
static void test_mutations_never_crash(void **state)
{
    msgpack_sbuffer sb = s_encode_request("/v1/campaigns/1/stats");
    char *copy = malloc(sb.size);
    srand(12345);
    for (int i = 0; i < 20000; i++) {
        memcpy(copy, sb.data, sb.size);
        int flips = 1 + rand() % 3;
        for (int f = 0; f < flips; f++)
            copy[rand() % sb.size] = (char)(rand() & 0xff);
        msg_api_request_t d;
        int rc = msg_api_request_decode(copy, sb.size, &d, NULL, 0);
        assert_true(rc == 0 || rc == -1);
        if (rc == 0)
            assert_true(d.path.len <= 2048);
    }
    free(copy);
    msgpack_sbuffer_destroy(&sb);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_request_round_trip),        cmocka_unit_test(test_response_round_trip),
        cmocka_unit_test(test_every_truncation_rejected), cmocka_unit_test(test_trailing_bytes_rejected),
        cmocka_unit_test(test_oversized_counts_rejected), cmocka_unit_test(test_deep_nesting_rejected),
        cmocka_unit_test(test_reserved_byte_rejected),    cmocka_unit_test(test_wrong_types_and_limits),
        cmocka_unit_test(test_unknown_fields_skipped),    cmocka_unit_test(test_mutations_never_crash),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
