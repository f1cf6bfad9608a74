/*
 * The API explored from a browser's address bar, for real: Debian's chromium, driven by
 * playwright-core, against the real impactd binary (supervisor, broker, store pool, fan-out,
 * http) on the PostgreSQL cluster of scripts/test.sh. It opens the root resource with the
 * credentials in the query, follows a link by clicking it, reads a 401 problem page and asks
 * for the raw JSON.
 *
 * ctest runs it (tests/http.cmake) with IMPACTD_BIN; IMPACT_TEST_DATABASE_URL names the cluster.
 * By hand: IMPACTD_BIN=build-asan/bin/impactd IMPACT_TEST_DATABASE_URL="host=... user=postgres"
 * node tests/browser/explore.test.mjs   (tests/browser/harness.mjs: IMPACT_CHROMIUM,
 * IMPACT_TEST_KEEP).
 */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { Validator } from '@seriousme/openapi-schema-validator';
import { START_MS, STEP_MS, STOP_MS, cleanup, launchBrowser, newPage as newPageOf, startServer, stopServer } from './harness.mjs';

let server = null;
let browser = null;

function newPage(context = null) {
    return newPageOf(context ?? browser);
}

function creds(s, auth = s.auth) {
    return `api_key=${encodeURIComponent(s.key)}&api_auth=${encodeURIComponent(auth)}`;
}

/* The rows of the page's first key/value table whose header is `key`. */
async function field(page, key) {
    return page.locator('table.kv > tbody > tr, table.kv > tr').filter({ has: page.locator(`th:text-is("${key}")`) })
        .first().locator('td').first().innerText();
}

before(async () => {
    const started = Date.now();
    server = await startServer('explore');
    browser = await launchBrowser();
    console.log(`# impactd and chromium up in ${Date.now() - started} ms (impactd on ${server.base})`);
}, { timeout: START_MS + STEP_MS });

after(async () => {
    const errors = [];
    const stopping = Date.now();
    if (browser) await browser.close().catch((e) => errors.push(e));
    if (server) {
        await stopServer(server).catch((e) => errors.push(e));
        console.log(`# chromium and impactd stopped in ${Date.now() - stopping} ms`);
        try {
            cleanup(server);
        } catch (e) {
            errors.push(e);
        }
    }
    if (errors.length) throw errors[0];
}, { timeout: STOP_MS + STEP_MS });

test('the root resource renders from the address bar and its links lead on', { timeout: 2 * STEP_MS }, async () => {
    const page = await newPage();
    const response = await page.goto(`${server.base}/v1?${creds(server)}`);
    assert.equal(response.status(), 200);
    const headers = response.headers();
    assert.equal(headers['content-type'], 'text/html; charset=utf-8');
    assert.match(headers['content-security-policy'], /default-src 'none'; style-src 'sha256-/);
    assert.equal(headers['x-content-type-options'], 'nosniff');
    assert.match(headers['x-request-id'], /^[0-9a-f]{24}$/);
    assert.match(headers.vary, /accept/i);

    assert.equal(await page.title(), 'Impact Dialing API');
    assert.equal(await page.locator('h1').innerText(), 'Impact Dialing API');
    assert.equal(await page.locator('.status').innerText(), 'HTTP 200');
    const account = await field(page, 'account');
    assert.match(account, /Development/, `the account table shows the account: ${account}`);
    /* The style is allowed by its hash: the browser applied it. */
    const thBackground = await page.locator('th').first().evaluate((th) => getComputedStyle(th).backgroundColor);
    assert.equal(thBackground, 'rgb(243, 245, 248)', 'the inline style was applied under the CSP');

    const health = page.getByRole('link', { name: 'health', exact: true });
    const href = await health.getAttribute('href');
    assert.equal(href, `${server.base}/v1/health?${creds(server)}`, 'same-origin links carry the credentials');
    await Promise.all([page.waitForURL(/\/v1\/health\?/), health.click()]);
    assert.equal(await page.title(), '/v1/health');
    assert.equal(await field(page, 'status'), 'ok');
    const processes = await page.locator('table.grid').first().innerText();
    for (const name of ['broker', 'store.0', 'store.1', 'fanout', 'http']) assert.match(processes, new RegExp(`\\b${name}\\b`));
    assert.match(processes, /running/);

    /* Back on the root page, "as JSON" gives the raw document from the same address. */
    await page.goBack();
    await page.waitForURL(/\/v1\?/);
    const [json] = await Promise.all([page.waitForResponse(/format=json/), page.getByRole('link', { name: 'as JSON' }).click()]);
    assert.equal(json.headers()['content-type'], 'application/json');
    assert.equal((await json.json()).account.name, 'Development');
    assert.deepEqual(page.cspErrors, []);
    await page.close();
});

test('an admin resource is reached by clicking from the root, and its fields read as a page', { timeout: 2 * STEP_MS }, async () => {
    /* A campaign made through the API, with a name a page must show as text. */
    const made = await fetch(`${server.base}/v1/campaigns`, {
        method: 'POST',
        headers: { 'Api-Key': server.key, 'Api-Auth': server.auth, 'Content-Type': 'application/json' },
        body: JSON.stringify({ name: 'Spring <b>canvass</b>', dialer_type: 'Predictive', from: '(212) 555-0142' }),
    });
    assert.equal(made.status, 201);
    const campaign = await made.json();

    const page = await newPage();
    await page.goto(`${server.base}/v1?${creds(server)}`);
    await Promise.all([page.waitForURL(/\/v1\/campaigns\?/), page.getByRole('link', { name: 'campaigns', exact: true }).click()]);
    assert.equal(await page.title(), 'campaigns');
    const item = page.getByRole('link', { name: 'Spring <b>canvass</b>', exact: true });
    assert.equal(await item.getAttribute('href'), `${server.base}/v1/campaigns/${campaign.id}?${creds(server)}`);
    await Promise.all([page.waitForURL(new RegExp(`/v1/campaigns/${campaign.id}\\?`)), item.click()]);
    assert.equal(await page.locator('h1').innerText(), 'Spring <b>canvass</b>', 'markup in a name stays text');
    assert.equal(await page.locator('h1 b').count(), 0);
    assert.equal(await field(page, 'dialer_type'), 'Predictive');
    assert.equal(await field(page, 'from'), '+12125550142');
    /* The actions say what can be done next, with their methods. */
    const actions = await page.locator('body').innerText();
    assert.match(actions, /start/);
    assert.match(actions, /PATCH/);
    assert.deepEqual(page.cspErrors, []);
    await page.close();
});

test('a wrong api_auth renders the 401 problem readably', { timeout: STEP_MS }, async () => {
    /* On a 401 with WWW-Authenticate: Basic a browser first asks for a user name and password;
     * cancelling shows the page. Headless chromium has no dialog and fails the navigation unless
     * the driver answers the challenge: given credentials, playwright-core sends them once and
     * cancels the next challenge, which is that cancel. The query's api_auth still decides. */
    const context = await browser.newContext({ httpCredentials: { username: server.key, password: 'ia_not_this_either' } });
    const page = await newPage(context);
    const response = await page.goto(`${server.base}/v1?${creds(server, 'ia_wrong<script>')}`);
    assert.equal(response.status(), 401);
    assert.equal(response.headers()['content-type'], 'text/html; charset=utf-8');
    assert.equal(await page.title(), 'Authentication required');
    assert.equal(await page.locator('.status').innerText(), 'HTTP 401');
    assert.match(await field(page, 'detail'), /not valid/);
    assert.equal(await field(page, 'status'), '401');
    assert.deepEqual(page.cspErrors, []);
    await context.close();
});

test('?format=json shows the raw JSON even to a browser', { timeout: STEP_MS }, async () => {
    const page = await newPage();
    const response = await page.goto(`${server.base}/v1?${creds(server)}&format=json`);
    assert.equal(response.status(), 200);
    assert.equal(response.headers()['content-type'], 'application/json');
    assert.equal(await page.evaluate(() => document.contentType), 'application/json');
    const doc = JSON.parse(await response.text());
    assert.equal(doc.name, 'Impact Dialing API');
    assert.equal(doc.uri, `${server.base}/v1`);
    assert.equal(await page.locator('h1').count(), 0, 'no HTML rendering');
    await page.close();
});

test('programs keep getting JSON, and /v1/openapi.json revalidates by ETag', { timeout: STEP_MS }, async () => {
    const api = await fetch(`${server.base}/v1`, {
        headers: { Accept: '*/*', 'Api-Key': server.key, 'Api-Auth': server.auth },
    });
    assert.equal(api.status, 200);
    assert.equal(api.headers.get('content-type'), 'application/json');
    assert.match(api.headers.get('vary'), /accept/i);
    assert.equal((await api.json()).name, 'Impact Dialing API');

    const first = await fetch(`${server.base}/v1/openapi.json`);
    assert.equal(first.status, 200);
    assert.equal(first.headers.get('content-type'), 'application/json');
    assert.match(first.headers.get('cache-control'), /max-age=\d+/);
    const etag = first.headers.get('etag');
    assert.match(etag, /^"[0-9a-f]+"$/);
    const doc = await first.json();
    assert.match(doc.openapi, /^3\.1\./);
    assert.deepEqual(doc.paths['/v1/openapi.json'].get.security, []);

    const again = await fetch(`${server.base}/v1/openapi.json`, { headers: { 'If-None-Match': `W/"other", ${etag}` } });
    assert.equal(again.status, 304);
    assert.equal(again.headers.get('etag'), etag);
    assert.equal((await again.arrayBuffer()).byteLength, 0);
    const changed = await fetch(`${server.base}/v1/openapi.json`, { headers: { 'If-None-Match': '"other"' } });
    assert.equal(changed.status, 200);
    await changed.arrayBuffer();
});

test('the served OpenAPI document is valid OpenAPI 3.1', { timeout: STEP_MS }, async () => {
    const response = await fetch(`${server.base}/v1/openapi.json`);
    assert.equal(response.status, 200);
    const validator = new Validator();
    const result = await validator.validate(await response.json());
    assert.equal(validator.version, '3.1');
    assert.ok(result.valid, `schema errors: ${String(JSON.stringify(result.errors)).slice(0, 2000)}`);
});
