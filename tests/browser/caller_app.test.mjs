/*
 * ImpactDialer end to end, in a real browser: Debian's chromium driven by playwright-core, the
 * real impactd (tests/browser/harness.mjs) with its simulated carrier, and a webhook receiver on
 * this machine. A caller logs in through the app's form, sees the script, starts dialing a
 * Predictive campaign worked by people only, is connected to a contact, answers the survey with
 * the keyboard, saves and continues twice, then saves and stops. The three surveys are then in
 * the API and at the customer's webhook, signed. The caller logs in before the campaign starts,
 * as callers do, and the screen finds the dialer once it runs. A screenshot of each state is
 * saved in IMPACT_TEST_OUTPUT (ctest sets it under the build directory).
 *
 * The app is also checked for what protects the session cookie it runs on: its Content-Security-
 * Policy (and that the app needs no exception to it), no framing, script texts shown as text
 * whatever they hold, and /app/ not leaving its directory.
 */
import assert from 'node:assert/strict';
import { createHmac, timingSafeEqual } from 'node:crypto';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { START_MS, STEP_MS, STOP_MS, cleanup, launchBrowser, newPage, psql, startServer, stopServer, until } from './harness.mjs';

/* People answer at once and would talk for a minute (the caller hangs up first); at 4x. */
const SCENARIO = 'agents = 1\np_human = 0.9\np_machine = 0.05\np_noans = 0.05\nring_h_mean = 2\nring_h_cv = 0.2\n' +
  'ring_timeout = 20\ntalk_mean = 60\ntalk_cv = 0.2\n';
const OUTPUT = process.env.IMPACT_TEST_OUTPUT || mkdtempSync('/tmp/impact-caller-app.');

let server = null;
let browser = null;
let receiver = null;
let scenarioDir = null;
const deliveries = [];

/* ---- the customer's side --------------------------------------------------------------------- */

function startReceiver() {
  return new Promise((resolve) => {
    const srv = http.createServer((req, res) => {
      let body = '';
      req.setEncoding('utf8');
      req.on('data', (chunk) => (body += chunk));
      req.on('end', () => {
        deliveries.push({ headers: req.headers, body });
        res.writeHead(204).end();
      });
    });
    srv.listen(0, '127.0.0.1', () => resolve(srv));
  });
}

/* Standard Webhooks: HMAC-SHA256 of "id.timestamp.body" under the base64 key after "whsec_". */
function signedBy(secret, delivery) {
  const { 'webhook-id': id, 'webhook-timestamp': timestamp, 'webhook-signature': signatures } = delivery.headers;
  const key = Buffer.from(secret.slice('whsec_'.length), 'base64');
  const expected = createHmac('sha256', key).update(`${id}.${timestamp}.${delivery.body}`).digest();
  return String(signatures).split(' ').some((entry) => {
    const [version, value] = entry.split(',');
    const given = Buffer.from(value || '', 'base64');
    return version === 'v1' && given.length === expected.length && timingSafeEqual(given, expected);
  });
}

async function api(method, uri, body, contentType = 'application/json') {
  const response = await fetch(`${server.base}${uri}`, {
    method,
    headers: { 'Api-Key': server.key, 'Api-Auth': server.auth, ...(body !== undefined ? { 'Content-Type': contentType } : {}) },
    body: body === undefined ? undefined : typeof body === 'string' || body instanceof Uint8Array ? body : JSON.stringify(body),
  });
  const text = await response.text();
  assert.ok(response.ok, `${method} ${uri} -> ${response.status}: ${text}`);
  return text ? JSON.parse(text) : null;
}

function silenceWav(seconds = 1, rate = 8000) {
  const samples = seconds * rate;
  const wav = Buffer.alloc(44 + samples * 2);
  wav.write('RIFF', 0);
  wav.writeUInt32LE(36 + samples * 2, 4);
  wav.write('WAVEfmt ', 8);
  wav.writeUInt32LE(16, 16);
  wav.writeUInt16LE(1, 20);
  wav.writeUInt16LE(1, 22);
  wav.writeUInt32LE(rate, 24);
  wav.writeUInt32LE(rate * 2, 28);
  wav.writeUInt16LE(2, 32);
  wav.writeUInt16LE(16, 34);
  wav.write('data', 36);
  wav.writeUInt32LE(samples * 2, 40);
  return new Uint8Array(wav);
}

/* A campaign with a script, an identification message, 40 numbers with leads and a caller; not
 * started yet. */
async function setUpCampaign() {
  const script = await api('POST', '/v1/scripts', { name: 'Library canvass', selected_fields: ['first_name', 'last_name', 'city'] });
  await api('POST', `/v1/scripts/${script.id}/script_texts`, { content: 'Hello **{first_name}**, this is the *library* campaign.\n\n- one\n- two' });
  /* what a careless (or hostile) editor may write: it must show as text */
  await api('POST', `/v1/scripts/${script.id}/script_texts`,
    { content: '## Closing\n<img src=x onerror="window.injected=1"> see [our site](https://example.org/)' });
  const question = await api('POST', `/v1/scripts/${script.id}/questions`, { text: 'Will you support Sunday opening?' });
  const yes = await api('POST', `/v1/scripts/${script.id}/questions/${question.id}/possible_responses`, { value: 'Yes', keypad: 1 });
  await api('POST', `/v1/scripts/${script.id}/questions/${question.id}/possible_responses`, { value: 'No', keypad: 2 });
  await api('POST', `/v1/scripts/${script.id}/notes`, { label: 'Comments' });
  await api('POST', `/v1/scripts/${script.id}/transfers`, { label: 'Manager', phone_number: '+12125550100', transfer_type: 'warm' });
  const message = await api('POST', '/v1/messages?name=Identification', silenceWav(), 'audio/x-wav');
  const campaign = await api('POST', '/v1/campaigns', {
    name: 'Sunday opening', dialer_type: 'Predictive', from: '(212) 555-0142', script_id: script.id,
    abandonment_message_id: message.id, simulated_callers: 0,
  });
  const list = await api('POST', '/v1/lists', { name: 'Voters', campaign_id: campaign.id,
    column_map: { phone: 'phone', first_name: 'first_name', last_name: 'last_name', city: 'city' } });
  const rows = ['phone,first_name,last_name,city'];
  for (let i = 0; i < 40; i++) rows.push(`+1212555${String(3000 + i)},Ann${i},Lee${i},Riverside`);
  await api('POST', `/v1/lists/${list.id}/upload?part=1`, `${rows.join('\n')}\n`, 'text/csv');
  await api('POST', `/v1/lists/${list.id}/import`);
  await until('the import', async () => (await api('GET', `/v1/lists/${list.id}`)).status === 'completed');
  /* Calling hours hold in each number's zone on the real clock: put the numbers where it is
   * mid-afternoon now (the one step the API does not offer). */
  const offset = 14 - new Date().getUTCHours();
  const zone = offset === 0 ? 'Etc/GMT' : `Etc/GMT${offset > 0 ? '-' : '+'}${Math.abs(offset)}`;
  psql(`${server.adminUrl} dbname=${server.dbName}`, `UPDATE numbers SET time_zones = ARRAY['${zone}'] WHERE campaign_id = ${campaign.id}`);
  const caller = await api('POST', '/v1/callers', { name: 'Ada Lovelace', username: 'ada', password: 'correct horse battery', campaign_id: campaign.id });
  return { campaign, question, yes, caller };
}

/* ---- the browser's side ---------------------------------------------------------------------- */

async function shot(page, name) {
  await page.screenshot({ path: path.join(OUTPUT, `${name}.png`), fullPage: true });
}

async function waitState(page, label) {
  await page.locator('#state').filter({ hasText: label }).waitFor({ timeout: STEP_MS });
}

before(async () => {
  mkdirSync(OUTPUT, { recursive: true });
  scenarioDir = mkdtempSync('/tmp/impact-caller-app-scn.');
  writeFileSync(path.join(scenarioDir, 'scenario'), SCENARIO);
  receiver = await startReceiver();
  server = await startServer('caller_app', ['--sim-speed', '4', '--scenario', path.join(scenarioDir, 'scenario'),
    '--allow-private-urls']);
  browser = await launchBrowser();
}, { timeout: START_MS + STEP_MS });

after(async () => {
  const errors = [];
  if (browser) await browser.close().catch((e) => errors.push(e));
  if (server) {
    await stopServer(server).catch((e) => errors.push(e));
    try {
      cleanup(server);
    } catch (e) {
      errors.push(e);
    }
  }
  receiver?.close();
  if (scenarioDir) rmSync(scenarioDir, { recursive: true, force: true });
  if (errors.length) throw errors[0];
}, { timeout: STOP_MS + STEP_MS });

test('the app is served with its protections, and /app/ stays in its directory', { timeout: STEP_MS }, async () => {
  const page = await fetch(`${server.base}/app/`);
  assert.equal(page.status, 200);
  assert.equal(page.headers.get('content-type'), 'text/html; charset=utf-8');
  assert.match(page.headers.get('content-security-policy'), /default-src 'self'; script-src 'self'/);
  assert.match(page.headers.get('content-security-policy'), /frame-ancestors 'none'/);
  assert.equal(page.headers.get('x-frame-options'), 'DENY');
  assert.equal(page.headers.get('x-content-type-options'), 'nosniff');
  assert.equal(page.headers.get('referrer-policy'), 'no-referrer');
  assert.equal(page.headers.get('cache-control'), 'no-cache');
  assert.match(await page.text(), /<title>ImpactDialer<\/title>/);
  const index = await fetch(`${server.base}/app/index.html`);
  assert.equal(index.status, 200);
  assert.equal(index.headers.get('content-type'), 'text/html; charset=utf-8');
  await index.arrayBuffer();
  for (const [file, type] of [['js/app.js', 'text/javascript; charset=utf-8'], ['app.css', 'text/css; charset=utf-8']]) {
    const response = await fetch(`${server.base}/app/${file}`);
    assert.equal(response.status, 200, file);
    assert.equal(response.headers.get('content-type'), type, file);
    await response.arrayBuffer();
  }
  const bare = await fetch(`${server.base}/app`, { redirect: 'manual' });
  assert.equal(bare.status, 301);
  assert.equal(bare.headers.get('location'), '/app/');
  /* The paths as sent, not as fetch would clean them up. */
  for (const escape of ['/app/../README.md', '/app/js/../../README.md', '/app/%2e%2e/README.md', '/app/..%2fREADME.md']) {
    const status = await new Promise((resolve, reject) => {
      http.get({ host: '127.0.0.1', port: server.port, path: escape }, (res) => {
        res.resume();
        resolve(res.statusCode);
      }).on('error', reject);
    });
    assert.equal(status, 404, escape);
  }
});

test('a caller logs in, dials, surveys and continues twice, then saves and stops', { timeout: 10 * STEP_MS }, async () => {
  const { campaign, question, yes, caller } = await setUpCampaign();
  const [{ secret }] = (await api('GET', '/v1/webhook_secrets')).items;
  await api('POST', '/v1/webhook_endpoints', { url: `http://127.0.0.1:${receiver.address().port}/surveys`, event_types: ['survey.submitted'] });
  const account = (await api('GET', '/v1')).account.id;

  const context = await browser.newContext({ viewport: { width: 1366, height: 768 } });
  const page = await newPage(context);
  await page.goto(`${server.base}/app/`);
  await page.locator('#login').waitFor();
  await page.fill('#account', String(account));
  await page.fill('#username', 'ada');
  await page.fill('#password', 'wrong password');
  await page.click('#login button[type="submit"]');
  await page.locator('#error').filter({ hasText: /No active caller/ }).waitFor();
  await shot(page, '1-login-refused');
  await page.fill('#password', 'correct horse battery');
  await page.click('#login button[type="submit"]');
  await page.locator('#desk').waitFor();
  /* the script, rendered with its emphasis, and markup in it shown as text */
  assert.equal(await page.locator('#script-texts strong').first().innerText(), '{first_name}');
  assert.equal(await page.locator('#script-texts h4').innerText(), 'Closing');
  assert.equal(await page.locator('#script-texts img, #script-texts a').count(), 0);
  assert.match(await page.locator('#script-texts').innerText(), /<img src=x onerror="window.injected=1"> see our site/);
  assert.equal(await page.evaluate(() => window.injected), undefined);
  await page.locator('#connection[data-state="connected"]').waitFor();
  assert.equal(await page.locator('#connection').innerText(), 'connected');
  assert.match(await page.locator('#campaign').innerText(), /Sunday opening · Predictive · Ada Lovelace/);
  assert.match(await page.locator('#timeout-note').innerText(), /30 s/);
  /* nobody is dialing the campaign yet: the screen says so, and finds the dialer once it starts */
  await page.locator('#error').filter({ hasText: /not running/ }).waitFor();
  assert.ok(await page.locator('button[data-action="start"]').isDisabled());
  assert.ok(await page.locator('#survey button[data-then="continue"]').isDisabled());
  await shot(page, '2-campaign-not-started');
  await api('POST', `/v1/campaigns/${campaign.id}/start`);
  await page.locator('#error').waitFor({ state: 'hidden' });
  await waitState(page, 'Not dialing');
  assert.ok(await page.locator('button[data-action="start"]').isEnabled());
  for (const action of ['hang_up', 'stop']) assert.ok(await page.locator(`button[data-action="${action}"]`).isDisabled(), action);
  assert.ok(await page.locator('button[data-action="dial"]').isHidden(), 'Dial belongs to Preview campaigns');
  await page.keyboard.press('?');
  await page.locator('#help').filter({ hasText: 'Save and stop' }).waitFor();
  await shot(page, '2-logged-in-help');
  await page.keyboard.press('Escape');
  await page.locator('#help').waitFor({ state: 'hidden' });

  await page.keyboard.press('s'); /* Start dialing */
  for (let round = 1; round <= 3; round++) {
    await waitState(page, 'Connected');
    const phone = await page.locator('#contact .phone').innerText();
    assert.match(phone, /^\+1212555\d{4}$/);
    await page.locator('#contact dd').first().waitFor();
    assert.match(await page.locator('#contact').innerText(), /Ann\d+/);
    assert.match(await page.locator('#script-texts strong').first().innerText(), /^Ann\d+$/, 'the script greets the contact by name');
    assert.ok(await page.locator('#transfers button').filter({ hasText: 'Manager (warm)' }).isEnabled());
    await shot(page, `3-connected-${round}`);
    await page.click('button[data-action="hang_up"]');
    await waitState(page, 'Wrap-up');
    assert.ok(await page.locator('#transfers button').isDisabled());
    await page.fill('#notes textarea', `Round ${round}: supportive`);
    await page.locator('body').click({ position: { x: 5, y: 5 } });
    await page.keyboard.press('2'); /* "No", in the first unanswered question */
    await page.keyboard.press('1'); /* the focused question's "Yes" */
    assert.ok(await page.locator(`input[name="q${question.id}"][value="${yes.id}"]`).isChecked());
    await shot(page, `4-wrap-up-${round}`);
    if (round === 1) {
      await page.click('#survey button[data-then="continue"]');
      await page.locator('#state:not([data-state="wrap_up"])').waitFor();
    } else if (round === 2) {
      await page.keyboard.press('Enter'); /* on the chosen response: save and continue */
      await page.locator('#state:not([data-state="wrap_up"])').waitFor();
    } else {
      await page.click('#survey button[data-then="stop"]');
      await waitState(page, 'Not dialing');
    }
  }
  await shot(page, '5-stopped');
  assert.deepEqual(page.cspErrors, [], 'the app needs no exception to its Content-Security-Policy');

  /* the surveys, in the API and at the customer's webhook */
  const events = await until('three surveys', async () => {
    const page = await api('GET', `/v1/events?type=survey.submitted&campaign_id=${campaign.id}&limit=10`);
    return page.items.length === 3 ? page.items : null;
  });
  for (const event of events) {
    assert.equal(event.data.answers[0].response, 'Yes');
    assert.match(event.data.notes[0].text, /^Round \d: supportive$/);
  }
  const received = await until('three deliveries', () => {
    const surveys = deliveries.filter((d) => JSON.parse(d.body).type === 'survey.submitted');
    return surveys.length >= 3 ? surveys : null;
  });
  for (const delivery of received) assert.ok(signedBy(secret, delivery), 'each delivery carries a valid signature');
  assert.deepEqual(new Set(received.map((d) => JSON.parse(d.body).id)), new Set(events.map((e) => e.id)));

  await page.click('#logout');
  await page.locator('#login').waitFor();
  assert.match(await page.locator('#error').innerText(), /Logged out/);

  /* the PIN way in, and out again */
  await page.check('input[name="via"][value="pin"]');
  assert.ok(await page.locator('#username').isHidden());
  await page.fill('#pin', caller.pin);
  await page.click('#login button[type="submit"]');
  await waitState(page, 'Not dialing');
  await page.click('#logout');
  await page.locator('#login').waitFor();
  assert.deepEqual(page.cspErrors, []);
  await context.close();
});
