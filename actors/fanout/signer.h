/*
 * signer_t: the Standard Webhooks signatures of common/webhook_signature.h, byte for byte, with
 * each secret's HMAC prepared once. webhook_sign looks the algorithm up and sets its key up again
 * for every signature, 2.7 us of its 3; the deliverer (webhooks.c) signs every event of a claimed
 * call with the same secrets, so it prepares them once per claim, and a signature is then only the
 * hashing (0.6 us). tests/test_webhook_signature.c holds the two to the same output.
 */
#ifndef IMPACT_FANOUT_SIGNER_H
#define IMPACT_FANOUT_SIGNER_H

#include <stddef.h>
#include <stdint.h>

#include "common/webhook_signature.h"

typedef struct signer_t signer_t;

/** Prepares `secrets` (as webhook_sign takes them). NULL when one is malformed, there is none or
 *  too many, or out of memory: webhook_sign would refuse them too. */
signer_t *signer_new(const char *secrets);

void signer_destroy(signer_t **self_p);

/** As webhook_sign, with the secrets given to signer_new: 0, or -1 (`out` too small). */
int signer_sign(signer_t *self, const char *id, int64_t timestamp, const char *body, size_t body_len, char *out, size_t size);

#endif
