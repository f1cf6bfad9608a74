/*
 * Standard Webhooks signing (https://www.standardwebhooks.com): what a receiver checks to know
 * a delivery came from us and was not altered or replayed later.
 *
 * A signature is HMAC-SHA256 over "{webhook-id}.{webhook-timestamp}.{body}", keyed with the
 * bytes of the secret (the base64 after "whsec_"), sent as "v1,<base64>". During a rotation an
 * account has several active secrets and the webhook-signature header carries one signature per
 * secret, space-separated, so a receiver holding either the old or the new secret accepts it.
 */
#ifndef IMPACT_COMMON_WEBHOOK_SIGNATURE_H
#define IMPACT_COMMON_WEBHOOK_SIGNATURE_H

#include <stddef.h>
#include <stdint.h>

#define WEBHOOK_SECRETS_MAX     10 /* signatures on one delivery: the newest active secrets */
#define WEBHOOK_KEY_MIN         24 /* bytes of a secret's key, as the specification bounds them */
#define WEBHOOK_KEY_MAX         64
#define WEBHOOK_SIGNATURE_LEN   47 /* "v1," and the base64 of 32 bytes */
#define WEBHOOK_SIGNATURES_SIZE (WEBHOOK_SECRETS_MAX * (WEBHOOK_SIGNATURE_LEN + 1))

/**
 * The key of a secret "whsec_<base64>" into key (WEBHOOK_KEY_MAX bytes). 0 with its length in
 * *key_len, or -1 when the prefix is missing, the base64 is not canonical or the key is not
 * WEBHOOK_KEY_MIN..WEBHOOK_KEY_MAX bytes.
 */
int webhook_secret_key(const char *secret, unsigned char *key, size_t *key_len);

/**
 * The webhook-signature value for one delivery: "v1,<base64>" for each secret of `secrets` (one
 * or more separated by single spaces, at most WEBHOOK_SECRETS_MAX), in that order. 0, or -1 when
 * a secret is malformed, there is none or too many, or `out` (WEBHOOK_SIGNATURES_SIZE is
 * always enough) is too small.
 */
int webhook_sign(const char *secrets, const char *id, int64_t timestamp, const char *body, size_t body_len, char *out, size_t size);

#endif
