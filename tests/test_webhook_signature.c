/*
 * Standard Webhooks signing (common/webhook_signature.h): the specification's published test
 * vector, the secrets it refuses, and one signature per secret while two are active. The
 * deliverer's signer (actors/fanout/signer.h), which prepares the secrets once, signs the same
 * bytes and refuses the same secrets.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <string.h>

#include "actors/fanout/signer.h"
#include "common/webhook_signature.h"

/* From the specification's reference libraries (libraries/go/webhook_test.go, TestWebhookSign). */
#define SPEC_SECRET    "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
#define SPEC_ID        "msg_p5jXN8AQM9LWM0D4loKWxJek"
#define SPEC_TIMESTAMP 1614265330
#define SPEC_BODY      "{\"test\": 2432232314}"
#define SPEC_SIGNATURE "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="

/* Another valid secret: 24 other bytes. */
#define OTHER_SECRET "whsec_AAECAwQFBgcICQoLDA0ODxAREhMUFRYX"

static void test_the_published_vector(void **state)
{
    char out[WEBHOOK_SIGNATURES_SIZE];
    assert_int_equal(webhook_sign(SPEC_SECRET, SPEC_ID, SPEC_TIMESTAMP, SPEC_BODY, strlen(SPEC_BODY), out, sizeof(out)), 0);
    assert_string_equal(out, SPEC_SIGNATURE);
    assert_int_equal(strlen(out), WEBHOOK_SIGNATURE_LEN);
    /* every signed input counts: the id, the timestamp and the body */
    assert_int_equal(webhook_sign(SPEC_SECRET, "msg_other", SPEC_TIMESTAMP, SPEC_BODY, strlen(SPEC_BODY), out, sizeof(out)), 0);
    assert_string_not_equal(out, SPEC_SIGNATURE);
    assert_int_equal(webhook_sign(SPEC_SECRET, SPEC_ID, SPEC_TIMESTAMP + 1, SPEC_BODY, strlen(SPEC_BODY), out, sizeof(out)), 0);
    assert_string_not_equal(out, SPEC_SIGNATURE);
    assert_int_equal(webhook_sign(SPEC_SECRET, SPEC_ID, SPEC_TIMESTAMP, SPEC_BODY, strlen(SPEC_BODY) - 1, out, sizeof(out)), 0);
    assert_string_not_equal(out, SPEC_SIGNATURE);
}

static void test_the_key_of_a_secret(void **state)
{
    unsigned char key[WEBHOOK_KEY_MAX];
    size_t len = 0;
    assert_int_equal(webhook_secret_key(OTHER_SECRET, key, &len), 0);
    assert_int_equal(len, 24);
    for (size_t i = 0; i < len; i++)
        assert_int_equal(key[i], i);
    /* padding is decoded as padding, not as key bytes: 25 bytes take "==" */
    assert_int_equal(webhook_secret_key("whsec_AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGA==", key, &len), 0);
    assert_int_equal(len, 25);
    assert_int_equal(key[24], 24);
}

static void test_malformed_secrets_are_refused(void **state)
{
    const char *bad[] = {
        "",
        "whsec_",
        "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",        /* no prefix */
        "WHSEC_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",  /* another prefix */
        "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaS",   /* not a multiple of 4 */
        "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLa-w",  /* the URL alphabet */
        "whsec_MfKQ9r8GKYqr TwjUPD8ILPZIo2LaLaSw", /* whitespace */
        "whsec_MfKQ9r8G=YqrTwjUPD8ILPZIo2LaLaSw",  /* padding inside */
        "whsec_AAECAwQFBgcICQoLDA0ODxAREhMUFQ==",  /* 23 bytes: too short */
        "whsec_AAECAwQFBgcICQoLDA0ODxAREhMUFRYXAAECAwQFBgcICQoLDA0ODxAREhMUFRYXAAECAwQFBgcICQoLDA0ODxAREhMUFRYX", /* 72 */
    };
    unsigned char key[WEBHOOK_KEY_MAX];
    size_t len;
    char out[WEBHOOK_SIGNATURES_SIZE];
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        assert_int_equal(webhook_secret_key(bad[i], key, &len), -1);
        assert_int_equal(webhook_sign(bad[i], SPEC_ID, SPEC_TIMESTAMP, SPEC_BODY, strlen(SPEC_BODY), out, sizeof(out)), -1);
        assert_string_equal(out, "");
    }
    /* one bad secret among good ones spoils the header: nothing half-signed goes out */
    assert_int_equal(webhook_sign(SPEC_SECRET " whsec_x", SPEC_ID, SPEC_TIMESTAMP, SPEC_BODY, strlen(SPEC_BODY), out, sizeof(out)),
                     -1);
    assert_int_equal(
        webhook_sign(SPEC_SECRET "  " OTHER_SECRET, SPEC_ID, SPEC_TIMESTAMP, SPEC_BODY, strlen(SPEC_BODY), out, sizeof(out)), -1);
    /* and an output too small is an error, not a cut signature */
    assert_int_equal(webhook_sign(SPEC_SECRET, SPEC_ID, SPEC_TIMESTAMP, SPEC_BODY, strlen(SPEC_BODY), out, WEBHOOK_SIGNATURE_LEN),
                     -1);
}

static void test_two_secrets_during_a_rotation(void **state)
{
    char both[WEBHOOK_SIGNATURES_SIZE], other[WEBHOOK_SIGNATURES_SIZE];
    assert_int_equal(
        webhook_sign(OTHER_SECRET " " SPEC_SECRET, SPEC_ID, SPEC_TIMESTAMP, SPEC_BODY, strlen(SPEC_BODY), both, sizeof(both)), 0);
    assert_int_equal(webhook_sign(OTHER_SECRET, SPEC_ID, SPEC_TIMESTAMP, SPEC_BODY, strlen(SPEC_BODY), other, sizeof(other)), 0);
    /* one signature per secret, in the secrets' order, each as that secret alone makes it */
    char want[2 * WEBHOOK_SIGNATURES_SIZE];
    snprintf(want, sizeof(want), "%s %s", other, SPEC_SIGNATURE);
    assert_string_equal(both, want);

    /* the bound: WEBHOOK_SECRETS_MAX secrets are signed with, one more is refused */
    char many[(WEBHOOK_SECRETS_MAX + 1) * sizeof(SPEC_SECRET)] = "";
    for (int i = 0; i < WEBHOOK_SECRETS_MAX; i++)
        strcat(strcat(many, i ? " " : ""), SPEC_SECRET);
    assert_int_equal(webhook_sign(many, SPEC_ID, SPEC_TIMESTAMP, SPEC_BODY, strlen(SPEC_BODY), both, sizeof(both)), 0);
    assert_int_equal(strlen(both), WEBHOOK_SECRETS_MAX * (WEBHOOK_SIGNATURE_LEN + 1) - 1);
    strcat(many, " " SPEC_SECRET);
    assert_int_equal(webhook_sign(many, SPEC_ID, SPEC_TIMESTAMP, SPEC_BODY, strlen(SPEC_BODY), both, sizeof(both)), -1);
}

static void test_the_deliverers_signer_signs_the_same(void **state)
{
    const char *secrets[] = {SPEC_SECRET, OTHER_SECRET " " SPEC_SECRET, SPEC_SECRET " " OTHER_SECRET " " SPEC_SECRET};
    const char *ids[] = {SPEC_ID, "msg_other", "12345"};
    const char *bodies[] = {SPEC_BODY, "{}", "{\"id\" : 12345, \"data\" : {\"step\": 1}}"};
    for (size_t k = 0; k < sizeof(secrets) / sizeof(secrets[0]); k++) {
        signer_t *signer = signer_new(secrets[k]);
        assert_non_null(signer);
        /* one signer, many messages: each starts afresh with the same keys */
        for (size_t m = 0; m < sizeof(ids) / sizeof(ids[0]); m++) {
            char want[WEBHOOK_SIGNATURES_SIZE], got[WEBHOOK_SIGNATURES_SIZE];
            int64_t timestamp = SPEC_TIMESTAMP + (int64_t)m;
            assert_int_equal(webhook_sign(secrets[k], ids[m], timestamp, bodies[m], strlen(bodies[m]), want, sizeof(want)), 0);
            assert_int_equal(signer_sign(signer, ids[m], timestamp, bodies[m], strlen(bodies[m]), got, sizeof(got)), 0);
            assert_string_equal(got, want);
        }
        char out[WEBHOOK_SIGNATURES_SIZE];
        assert_int_equal(signer_sign(signer, SPEC_ID, SPEC_TIMESTAMP, SPEC_BODY, strlen(SPEC_BODY), out, WEBHOOK_SIGNATURE_LEN),
                         -1);
        signer_destroy(&signer);
        assert_null(signer);
    }
    signer_t *spec = signer_new(SPEC_SECRET);
    char out[WEBHOOK_SIGNATURES_SIZE];
    assert_int_equal(signer_sign(spec, SPEC_ID, SPEC_TIMESTAMP, SPEC_BODY, strlen(SPEC_BODY), out, sizeof(out)), 0);
    assert_string_equal(out, SPEC_SIGNATURE);
    signer_destroy(&spec);

    /* what webhook_sign refuses, it refuses */
    const char *bad[] = {"", "whsec_", "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaS", SPEC_SECRET " whsec_x",
                         SPEC_SECRET "  " OTHER_SECRET};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        assert_null(signer_new(bad[i]));
    char many[(WEBHOOK_SECRETS_MAX + 1) * sizeof(SPEC_SECRET)] = "";
    for (int i = 0; i <= WEBHOOK_SECRETS_MAX; i++)
        strcat(strcat(many, i ? " " : ""), SPEC_SECRET);
    assert_null(signer_new(many));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_the_published_vector),
        cmocka_unit_test(test_the_key_of_a_secret),
        cmocka_unit_test(test_malformed_secrets_are_refused),
        cmocka_unit_test(test_two_secrets_during_a_rotation),
        cmocka_unit_test(test_the_deliverers_signer_signs_the_same),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
