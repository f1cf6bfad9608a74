/*
 * What the SDK decides on its own, without a server: the committed types match the schemas,
 * SSE blocks parse as the spec says, a webhook verifies only with the right secret, body and a
 * recent timestamp, and requests are retried only when that is safe.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { createHmac } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { generate } from '../scripts/gen-types.mjs';
import { ProblemError, Transport, WebhookVerificationError, parseSseBlock, verifyWebhook } from '../src/index.js';

const here = path.dirname(fileURLToPath(import.meta.url));

test('the committed types are what the schemas generate', () => {
  const committed = readFileSync(path.join(here, '../types/schemas.d.ts'), 'utf8');
  assert.equal(committed, generate(), 'run node sdk/js/scripts/gen-types.mjs and commit types/schemas.d.ts');
});

/* TypeScript comes with the browser tests' tools (tests/browser, installed by scripts/setup.sh):
 * a development tool, not a dependency of the package. */
const TSC = path.join(here, '../../../tests/browser/node_modules/typescript/bin/tsc');

test('the published types compile, strictly, and describe the SDK as it is used', { skip: !existsSync(TSC) && 'run scripts/setup.sh' }, () => {
  try {
    execFileSync(process.execPath, [TSC, '-p', path.join(here, 'typecheck/tsconfig.json')], { encoding: 'utf8' });
  } catch (e) {
    assert.fail(`tsc: ${e.stdout || e.message}`);
  }
});

test('SSE blocks: fields, multi-line data, comments, CRLF, retry', () => {
  const e = parseSseBlock('id: 42\r\nevent: call.ended\r\ndata: {"a":\r\ndata: 1}\r\n: a comment');
  assert.deepEqual({ id: e.id, type: e.type, data: e.data }, { id: '42', type: 'call.ended', data: { a: 1 } });
  assert.equal(parseSseBlock(': keep-alive').hasData, false);
  assert.equal(parseSseBlock('retry: 2000').retry, 2000);
  assert.equal(parseSseBlock('data:no space').data, 'no space');
  assert.equal(parseSseBlock('data').data, null);
});

function sign(secret, id, timestamp, body) {
  const key = Buffer.from(secret.slice(6), 'base64');
  return `v1,${createHmac('sha256', key).update(`${id}.${timestamp}.${body}`).digest('base64')}`;
}

test('webhooks verify with the right secret, body and time only', async () => {
  const secret = `whsec_${Buffer.from('0123456789abcdef0123456789abcdef').toString('base64')}`;
  const other = `whsec_${Buffer.from('another secret, 32 bytes long!!').toString('base64')}`;
  const body = '{"id":7,"type":"survey.submitted","data":{}}';
  const now = 1_800_000_000;
  const headers = { 'webhook-id': '7', 'webhook-timestamp': String(now), 'webhook-signature': `v1,AAAA ${sign(secret, '7', now, body)}` };
  assert.equal((await verifyWebhook({ secret, headers, body, now })).id, 7);
  assert.equal((await verifyWebhook({ secret: [other, secret], headers: new Headers(headers), body, now })).id, 7);
  await assert.rejects(verifyWebhook({ secret: other, headers, body, now }), WebhookVerificationError);
  await assert.rejects(verifyWebhook({ secret, headers, body: body.replace('7', '8'), now }), WebhookVerificationError);
  await assert.rejects(verifyWebhook({ secret, headers, body, now: now + 301 }), /too old/);
  await assert.rejects(verifyWebhook({ secret, headers: { ...headers, 'webhook-signature': undefined }, body, now }), /missing/);
});

/* A fetch that answers from a list, recording what was sent. */
function scripted(answers) {
  const sent = [];
  const fetchImpl = async (url, init) => {
    sent.push({ url, ...init });
    const next = answers.shift();
    if (next instanceof Error) throw next;
    return new Response(next.body ?? null, { status: next.status, headers: next.headers });
  };
  return { sent, fetchImpl };
}

test('retries: POST with one key through 503 and lost answers; never a 4xx; no key, no retry', async () => {
  const { sent, fetchImpl } = scripted([
    { status: 503, headers: { 'Retry-After': '0' } },
    new TypeError('socket hang up'),
    { status: 201, body: '{"id": 1}' },
  ]);
  const t = new Transport({ baseUrl: 'http://x', fetch: fetchImpl, retryBaseMs: 1 });
  assert.deepEqual(await t.request('POST', '/v1/campaigns', { body: { name: 'a' } }), { id: 1 });
  assert.equal(sent.length, 3);
  const keys = new Set(sent.map((s) => s.headers['Idempotency-Key']));
  assert.equal(keys.size, 1);
  assert.match([...keys][0], /^[0-9a-f]{32}$/);

  const refused = scripted([{ status: 422, body: '{"type":"/problems/invalid-fields","detail":"no","errors":[{"field":"name","message":"is required"}]}' }]);
  const t2 = new Transport({ baseUrl: 'http://x', fetch: refused.fetchImpl, retryBaseMs: 1 });
  const error = await t2.request('POST', '/v1/campaigns', { body: {} }).catch((e) => e);
  assert.ok(error instanceof ProblemError);
  assert.equal(error.status, 422);
  assert.equal(error.errors[0].field, 'name');
  assert.equal(refused.sent.length, 1);

  const unkeyed = scripted([{ status: 503 }, { status: 200, body: '{}' }]);
  const t3 = new Transport({ baseUrl: 'http://x', fetch: unkeyed.fetchImpl, retryBaseMs: 1 });
  await assert.rejects(t3.request('POST', '/desk/hang_up', { idempotencyKey: false }), (e) => e.status === 503);
  assert.equal(unkeyed.sent.length, 1);

  const deleted = scripted([new TypeError('reset'), { status: 404, body: '{}' }]);
  const t4 = new Transport({ baseUrl: 'http://x', fetch: deleted.fetchImpl, retryBaseMs: 1 });
  assert.equal(await t4.request('DELETE', '/v1/callers/3'), null, 'a DELETE retried into a 404 was done');
});
