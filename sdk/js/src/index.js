/* @impactdialing/sdk: the admin client, the caller client, event streams and webhook verification. */
export { Collection, ImpactAdmin } from './admin.js';
export { CallerSession, ImpactCaller } from './caller.js';
export { EventStream, parseSseBlock } from './events.js';
export { NetworkError, ProblemError, Transport, idempotencyKey } from './http.js';
export { WebhookVerificationError, verifyWebhook } from './webhooks.js';
