/*
 * The SDK against the real impactd (tests/browser/harness.mjs starts it on a fresh database of the
 * test cluster: IMPACTD_BIN and IMPACT_TEST_DATABASE_URL, as ctest gives them): pages followed to
 * the end, problems as errors, an answer lost in transit retried without creating twice, an event
 * stream whose connection breaks resuming with nothing missed or repeated, a webhook the server
 * signed verified, and a caller's session from login to logout.
 */
import assert from 'node:assert/strict';
import http from 'node:http';
import { after, before, test } from 'node:test';
import { START_MS, STEP_MS, STOP_MS, cleanup, startServer, stopServer, until } from '../../../tests/browser/harness.mjs';
import { ImpactAdmin, ImpactCaller, ProblemError, verifyWebhook } from '../src/index.js';

let server = null;
let admin = null;

before(async () => {
  server = await startServer('sdk', ['--allow-private-urls']);
  admin = new ImpactAdmin({ baseUrl: server.base, apiKey: server.key, apiAuth: server.auth, retryBaseMs: 50 });
}, { timeout: START_MS });

after(async () => {
  if (!server) return;
  await stopServer(server);
  cleanup(server);
}, { timeout: STOP_MS + STEP_MS });

test('list() follows every page; problems are ProblemErrors', { timeout: STEP_MS }, async () => {
  for (let i = 0; i < 57; i++) await admin.customFields.create({ name: `field_${String(i).padStart(2, '0')}` });
  const names = [];
  for await (const field of admin.customFields.list({ per_page: 10 })) names.push(field.name);
  assert.equal(names.length, 57);
  assert.equal(new Set(names).size, 57);
  assert.equal((await admin.customFields.page({ per_page: 10 })).items.length, 10);

  const invalid = await admin.campaigns.create({ dialer_type: 'Sometimes' }).catch((e) => e);
  assert.ok(invalid instanceof ProblemError);
  assert.equal(invalid.status, 422);
  assert.ok(invalid.errors.some((e) => e.field === 'dialer_type'));
  const missing = await admin.campaigns.get(999999).catch((e) => e);
  assert.equal(missing.status, 404);
  const stranger = new ImpactAdmin({ baseUrl: server.base, apiKey: server.key, apiAuth: 'ia_wrong' });
  const unauthorized = await stranger.root().catch((e) => e);
  assert.equal(unauthorized.status, 401);
});

test('a create whose answer is lost is retried with its key and happens once', { timeout: STEP_MS }, async () => {
  let lost = 0;
  const losingFetch = async (url, init) => {
    const response = await fetch(url, init);
    if (init.method === 'POST' && lost === 0) {
      lost++;
      await response.arrayBuffer();
      throw new TypeError('connection reset after the request was carried out');
    }
    return response;
  };
  const flaky = new ImpactAdmin({ baseUrl: server.base, apiKey: server.key, apiAuth: server.auth, fetch: losingFetch, retryBaseMs: 10 });
  const made = await flaky.campaigns.create({ name: 'Exactly once', dialer_type: 'Power', from: '(212) 555-0142' });
  assert.equal(lost, 1);
  const same = (await admin.campaigns.all({ q: 'Exactly once' })).filter((c) => c.name === 'Exactly once');
  assert.equal(same.length, 1);
  assert.equal(same[0].id, made.id);
});

test('an event stream that breaks resumes from its last event: nothing missed, nothing twice', { timeout: 2 * STEP_MS }, async () => {
  /* the first connection is cut after two events; later ones run normally */
  let connections = 0;
  const cuttingFetch = async (url, init) => {
    const response = await fetch(url, init);
    if (!String(url).includes('/stream') || ++connections > 1) return response;
    let seen = 0;
    const decoder = new TextDecoder();
    const cut = new TransformStream({
      transform(chunk, controller) {
        controller.enqueue(chunk);
        seen += (decoder.decode(chunk, { stream: true }).match(/(^|\n)id: /g) || []).length;
        if (seen >= 2) controller.error(new Error('cut'));
      },
    });
    return new Response(response.body.pipeThrough(cut), { status: response.status, headers: response.headers });
  };
  const streaming = new ImpactAdmin({ baseUrl: server.base, apiKey: server.key, apiAuth: server.auth, fetch: cuttingFetch });
  const campaign = await admin.campaigns.create({ name: 'Streamed', dialer_type: 'Power', from: '(212) 555-0142', simulated_callers: 0 });
  const firstId = (await admin.events.page({ limit: 1 })).items[0]?.id ?? 0;
  const stream = streaming.eventStream({ after: firstId, campaignId: campaign.id, minDelayMs: 50 });
  const states = [];
  stream.addEventListener('state', (e) => states.push(e.detail));
  const received = [];
  stream.addEventListener('event', (e) => received.push(e.detail.id));
  let expected;
  /* A stream left open keeps this process alive: a failure would become a hang of the whole run. */
  try {
    for (const action of ['start', 'pause', 'start', 'pause', 'start', 'stop']) await admin.campaigns.action(campaign.id, action);
    expected = await until('six status events', async () => {
      const page = await admin.events.page({ campaign_id: campaign.id, after: firstId, limit: 100 });
      const ids = page.items.filter((e) => e.type.startsWith('campaign.')).map((e) => e.id);
      return ids.length === 6 ? ids : null;
    });
    await until('the stream to deliver them', () => expected.every((id) => received.includes(id)));
  } finally {
    stream.close();
  }
  const mine = received.filter((id) => expected.includes(id));
  assert.deepEqual(mine, expected, 'every event once, in order');
  assert.ok(stream.reconnects >= 1, 'the cut connection was replaced');
  assert.ok(states.includes('reconnecting'));
  assert.equal(stream.state, 'closed');
});

test('a webhook signed by the server verifies; a tampered one does not', { timeout: STEP_MS }, async () => {
  const deliveries = [];
  const receiver = http.createServer((req, res) => {
    let body = '';
    req.on('data', (c) => (body += c));
    req.on('end', () => {
      deliveries.push({ headers: req.headers, body });
      res.writeHead(204).end();
    });
  });
  await new Promise((r) => receiver.listen(0, '127.0.0.1', r));
  try {
    const [{ secret }] = (await admin.webhookSecrets.page()).items;
    await admin.webhookEndpoints.create({ url: `http://127.0.0.1:${receiver.address().port}/hook`, event_types: ['campaign.started'] });
    const campaign = await admin.campaigns.create({ name: 'Hooked', dialer_type: 'Power', from: '(212) 555-0142', simulated_callers: 0 });
    await admin.campaigns.action(campaign.id, 'start');
    const delivery = await until('a delivery', () => deliveries.find((d) => JSON.parse(d.body).data?.campaign_id === campaign.id));
    const event = await verifyWebhook({ secret, headers: delivery.headers, body: delivery.body });
    assert.equal(event.type, 'campaign.started');
    await assert.rejects(verifyWebhook({ secret, headers: delivery.headers, body: delivery.body.replace('started', 'stopped') }));
    await admin.campaigns.action(campaign.id, 'stop');
  } finally {
    receiver.close();
  }
});

test('a caller logs in, works at the desk, follows their events and logs out', { timeout: 2 * STEP_MS }, async () => {
  const campaign = await admin.campaigns.create({ name: 'Desk', dialer_type: 'Power', from: '(212) 555-0142', simulated_callers: 0 });
  await admin.callers.create({ name: 'Bea', username: 'bea', password: 'sdk password 1', campaign_id: campaign.id });
  await admin.campaigns.action(campaign.id, 'start');
  const accountId = (await admin.root()).account.id;

  const wrong = await ImpactCaller.login({ baseUrl: server.base, accountId, username: 'bea', password: 'nope' }).catch((e) => e);
  assert.equal(wrong.status, 401);
  const caller = await ImpactCaller.login({ baseUrl: server.base, accountId, username: 'bea', password: 'sdk password 1' });
  assert.match(caller.token, /^cs_/);
  assert.equal((await caller.session()).campaign.id, campaign.id);
  caller.keepAlive();

  const desk = await until('the campaign\'s dialer', () => caller.desk().catch((e) => (e.status === 503 ? null : Promise.reject(e))));
  assert.equal(desk.state, 'idle');
  const events = caller.events({ after: 0, minDelayMs: 50 });
  const seen = [];
  events.addEventListener('event', (e) => seen.push(e.detail.type));
  /* Closed whatever happens, as in the stream test above: open, it would keep the run alive. */
  try {
    await until('the stream to open', () => events.state === 'open');
    assert.equal((await caller.start()).state, 'on_hold');
    const refused = await caller.start().catch((e) => e);
    assert.equal(refused.status, 409);
    assert.equal(refused.problem.state, 'on_hold');
    assert.equal((await caller.stop()).state, 'idle');
    await until('caller.ready and caller.left', () => seen.includes('caller.ready') && seen.includes('caller.left'));

    await caller.logout();
    const ended = await caller.desk().catch((e) => e);
    assert.equal(ended.status, 401);
    await until('the stream to end with the session', () => events.state === 'closed', STEP_MS);
    assert.equal(events.error?.status, 401);
  } finally {
    events.close();
  }
  await admin.campaigns.action(campaign.id, 'stop');
});
