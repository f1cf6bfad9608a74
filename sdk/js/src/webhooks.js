/*
 * Verifies that a webhook came from impactd: Standard Webhooks (standardwebhooks.com), as the
 * server signs every delivery (common/webhook_signature.c). The signed content is
 * "{webhook-id}.{webhook-timestamp}.{body}", HMAC-SHA256 under the secret's base64 key (after its
 * "whsec_" prefix); webhook-signature lists "v1,<base64>" entries separated by spaces (one per
 * active secret while a rotation is under way). A delivery is genuine when one entry matches one
 * of your secrets and its timestamp is recent, which stops a captured delivery being replayed
 * later. The body must be the exact bytes received, before any JSON parsing.
 */

const encoder = new TextEncoder();

function base64ToBytes(text) {
  const binary = atob(text);
  const bytes = new Uint8Array(binary.length);
  for (let i = 0; i < binary.length; i++) bytes[i] = binary.charCodeAt(i);
  return bytes;
}

/* Compares without stopping at the first difference: the time taken tells nothing. */
function constantTimeEqual(a, b) {
  if (a.length !== b.length) return false;
  let diff = 0;
  for (let i = 0; i < a.length; i++) diff |= a[i] ^ b[i];
  return diff === 0;
}

function header(headers, name) {
  if (typeof headers?.get === 'function') return headers.get(name);
  const key = Object.keys(headers || {}).find((k) => k.toLowerCase() === name);
  const value = key === undefined ? undefined : headers[key];
  return Array.isArray(value) ? value[0] : value ?? null;
}

export class WebhookVerificationError extends Error {
  constructor(message) {
    super(message);
    this.name = 'WebhookVerificationError';
  }
}

/**
 * Checks a delivery and answers its parsed JSON body, or throws WebhookVerificationError.
 * @param {object} options
 * @param {string|string[]} options.secret "whsec_..." (several during a rotation)
 * @param {Headers|Record<string,string|string[]>} options.headers the request's headers
 * @param {string|Uint8Array} options.body the raw body
 * @param {number} [options.toleranceSeconds] how old (or early) a timestamp may be (default 300)
 * @param {number} [options.now] seconds since the epoch (tests)
 */
export async function verifyWebhook({ secret, headers, body, toleranceSeconds = 300, now = Date.now() / 1000 }) {
  const id = header(headers, 'webhook-id');
  const timestamp = header(headers, 'webhook-timestamp');
  const signatures = header(headers, 'webhook-signature');
  if (!id || !timestamp || !signatures) throw new WebhookVerificationError('missing webhook-id, webhook-timestamp or webhook-signature');
  if (!/^\d+$/.test(timestamp) || Math.abs(now - Number(timestamp)) > toleranceSeconds) {
    throw new WebhookVerificationError('the timestamp is too old or too new');
  }
  const bodyBytes = typeof body === 'string' ? encoder.encode(body) : body;
  const signed = new Uint8Array([...encoder.encode(`${id}.${timestamp}.`), ...bodyBytes]);
  const given = String(signatures).split(' ').filter((e) => e.startsWith('v1,')).map((e) => {
    try {
      return base64ToBytes(e.slice(3));
    } catch {
      return new Uint8Array();
    }
  });
  for (const s of Array.isArray(secret) ? secret : [secret]) {
    if (!String(s).startsWith('whsec_')) throw new TypeError('a secret starts with whsec_');
    const key = await globalThis.crypto.subtle.importKey('raw', base64ToBytes(String(s).slice(6)), { name: 'HMAC', hash: 'SHA-256' },
      false, ['sign']);
    const expected = new Uint8Array(await globalThis.crypto.subtle.sign('HMAC', key, signed));
    if (given.some((g) => constantTimeEqual(g, expected))) return JSON.parse(new TextDecoder().decode(bodyBytes));
  }
  throw new WebhookVerificationError('no signature matches');
}
