/*
 * The streaming JSON writer: every document it finishes must parse (checked with jansson) to
 * exactly what was written, and every misuse must end in NULL rather than broken JSON.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "common/json_writer.h"

/* Finishes the writer and parses what it produced. */
static json_t *s_finish_and_parse(json_writer_t *w)
{
    size_t len = 0;
    char *doc = json_writer_finish(w, &len);
    assert_non_null(doc);
    assert_int_equal(strlen(doc), len);
    json_error_t error;
    json_t *v = json_loadb(doc, len, 0, &error);
    if (v == NULL)
        fail_msg("invalid JSON %s: %s", doc, error.text);
    free(doc);
    return v;
}

static void test_nested_document(void **state)
{
    json_writer_t w;
    json_writer_init(&w);
    json_writer_object_begin(&w);
    json_writer_kv_string(&w, "name", "Acme");
    json_writer_kv_int(&w, "min", INT64_MIN);
    json_writer_kv_int(&w, "max", INT64_MAX);
    json_writer_key(&w, "list");
    json_writer_array_begin(&w);
    json_writer_int(&w, 1);
    json_writer_bool(&w, true);
    json_writer_null(&w);
    json_writer_array_begin(&w);
    json_writer_array_end(&w);
    json_writer_object_begin(&w);
    json_writer_object_end(&w);
    json_writer_array_end(&w);
    json_writer_key(&w, "empty");
    json_writer_string(&w, "");
    json_writer_object_end(&w);
    json_t *v = s_finish_and_parse(&w);
    assert_string_equal(json_string_value(json_object_get(v, "name")), "Acme");
    assert_true(json_integer_value(json_object_get(v, "min")) == INT64_MIN);
    assert_true(json_integer_value(json_object_get(v, "max")) == INT64_MAX);
    json_t *list = json_object_get(v, "list");
    assert_int_equal(json_array_size(list), 5);
    assert_true(json_is_true(json_array_get(list, 1)));
    assert_true(json_is_null(json_array_get(list, 2)));
    assert_string_equal(json_string_value(json_object_get(v, "empty")), "");
    json_decref(v);
}

static void test_escaping(void **state)
{
    char every_control[33];
    for (int i = 1; i < 32; i++)
        every_control[i - 1] = (char)i;
    every_control[31] = '\0';
    const char *samples[] = {"quote \" backslash \\ slash /", "line\nreturn\rtab\t", every_control,
                             "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x93\x9e", "</script>"};
    for (size_t i = 0; i < sizeof(samples) / sizeof(samples[0]); i++) {
        json_writer_t w;
        json_writer_init(&w);
        json_writer_object_begin(&w);
        json_writer_kv_string(&w, samples[i], samples[i]);
        json_writer_object_end(&w);
        json_t *v = s_finish_and_parse(&w);
        assert_string_equal(json_string_value(json_object_get(v, samples[i])), samples[i]);
        json_decref(v);
    }
    /* Embedded NUL bytes are written as \u0000 when a length is given. */
    json_writer_t w;
    size_t len;
    json_writer_init(&w);
    json_writer_string_len(&w, "a\0b", 3);
    char *doc = json_writer_finish(&w, &len);
    assert_string_equal(doc, "\"a\\u0000b\"");
    free(doc);
}

static void test_misuse_gives_null(void **state)
{
    json_writer_t w;
    size_t len;

    json_writer_init(&w); /* a value where a key is due */
    json_writer_object_begin(&w);
    json_writer_string(&w, "no key");
    json_writer_object_end(&w);
    assert_null(json_writer_finish(&w, &len));

    json_writer_init(&w); /* unbalanced */
    json_writer_array_begin(&w);
    assert_null(json_writer_finish(&w, &len));

    json_writer_init(&w); /* mismatched end */
    json_writer_array_begin(&w);
    json_writer_object_end(&w);
    assert_null(json_writer_finish(&w, &len));

    json_writer_init(&w); /* a key without a value */
    json_writer_object_begin(&w);
    json_writer_key(&w, "k");
    json_writer_object_end(&w);
    assert_null(json_writer_finish(&w, &len));

    json_writer_init(&w); /* two documents */
    json_writer_int(&w, 1);
    json_writer_int(&w, 2);
    assert_null(json_writer_finish(&w, &len));

    json_writer_init(&w); /* too deep */
    for (int i = 0; i <= JSON_WRITER_MAX_DEPTH; i++)
        json_writer_array_begin(&w);
    assert_null(json_writer_finish(&w, &len));

    json_writer_init(&w); /* nothing written */
    assert_null(json_writer_finish(&w, &len));
}

static void test_large_document(void **state)
{
    json_writer_t w;
    json_writer_init(&w);
    json_writer_array_begin(&w);
    for (int i = 0; i < 100000; i++)
        json_writer_int(&w, i);
    json_writer_array_end(&w);
    json_t *v = s_finish_and_parse(&w);
    assert_int_equal(json_array_size(v), 100000);
    assert_int_equal(json_integer_value(json_array_get(v, 99999)), 99999);
    json_decref(v);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_nested_document),
        cmocka_unit_test(test_escaping),
        cmocka_unit_test(test_misuse_gives_null),
        cmocka_unit_test(test_large_document),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
