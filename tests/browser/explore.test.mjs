/*
 * The API explored from a browser's address bar, for real: Debian's chromium, driven by
 * playwright-core, against the real impactd binary (supervisor, broker, store pool, fan-out,
 * http) on the PostgreSQL cluster of scripts/test.sh. It opens the root resource with the
 * credentials in the query, follows a link by clicking it, reads a 401 problem page and asks
 * for the raw JSON.
 *
 * ctest runs it (tests/http.cmake) with IMPACTD_BIN; IMPACT_TEST_DATABASE_URL names the cluster.
 * By hand: IMPACTD_BIN=build-asan/bin/impactd IMPACT_TEST_DATABASE_URL="host=... user=postgres"
 * node tests/browser/explore.test.mjs   (IMPACT_CHROMIUM overrides /usr/bin/chromium,
 * IMPACT_TEST_KEEP=1 keeps the data dir and its impactd.log).
 */
import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import { closeSync, existsSync, mkdtempSync, openSync, readFileSync, rmSync, writeSync } from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { Validator } from '@seriousme/openapi-schema-validator';

const here = path.dirname(fileURLToPath(import.meta.url));
const CHROMIUM = process.env.IMPACT_CHROMIUM || '/usr/bin/chromium';
const START_MS = 180_000; /* sanitizer builds start slowly; this only bounds a failure */
const STOP_MS = 30_000;
const STEP_MS = 60_000;

let server = null;
let browser = null;

/* ---- impactd ----------------------------------------------------------------------------------- */

function freePort() {
    return new Promise((resolve, reject) => {
        const probe = net.createServer();
        probe.on('error', reject);
        probe.listen(0, '127.0.0.1', () => {
            const { port } = probe.address();
            probe.close(() => resolve(port));
        });
    });
}

function psql(adminUrl, sql) {
    try {
        execFileSync('psql', ['-X', '-q', '-v', 'ON_ERROR_STOP=1', '-d', adminUrl, '-c', sql], {
            stdio: ['ignore', 'ignore', 'pipe'],
        });
    } catch (e) {
        throw new Error(`psql "${sql}" failed: ${e.stderr || e.message}`);
    }
}

function logTail(s, lines = 40) {
    try {
        return readFileSync(s.logPath, 'utf8').split('\n').slice(-lines).join('\n');
    } catch {
        return '(no log)';
    }
}

function readCredentials(dataDir) {
    const text = readFileSync(path.join(dataDir, 'dev-credentials.env'), 'utf8');
    const key = /^IMPACT_API_KEY=(.+)$/m.exec(text)?.[1];
    const auth = /^IMPACT_API_AUTH=(.+)$/m.exec(text)?.[1];
    if (!key || !auth) throw new Error(`no IMPACT_API_KEY/IMPACT_API_AUTH in ${dataDir}/dev-credentials.env`);
    return { key, auth };
}

/* Starts impactd on a fresh database and resolves once it prints its ready line. */
async function startServer() {
    const bin = process.env.IMPACTD_BIN;
    const adminUrl = process.env.IMPACT_TEST_DATABASE_URL;
    if (!bin || !existsSync(bin)) throw new Error(`IMPACTD_BIN (${bin}) is not an impactd binary: run through ctest`);
    if (!adminUrl) throw new Error('IMPACT_TEST_DATABASE_URL is not set: run the tests with scripts/test.sh');

    const s = { dbName: `browser_explore_${process.pid}`, adminUrl };
    psql(adminUrl, `DROP DATABASE IF EXISTS ${s.dbName}`);
    psql(adminUrl, `CREATE DATABASE ${s.dbName}`);
    s.dataDir = mkdtempSync('/tmp/impact-browser-data.');
    /* impactd makes the run dir itself; the name must be short (it holds ipc:// socket files). */
    s.runDir = mkdtempSync('/tmp/impact-br.');
    rmSync(s.runDir, { recursive: true, force: true });
    s.port = await freePort();
    s.base = `http://127.0.0.1:${s.port}`;
    s.logPath = path.join(s.dataDir, 'impactd.log');
    const log = openSync(s.logPath, 'a');
    server = s;

    s.child = spawn(bin, ['--data-dir', s.dataDir, '--listen', `127.0.0.1:${s.port}`, '--tls-listen', 'off',
        '--database-url', `${adminUrl} dbname=${s.dbName}`], {
        env: { ...process.env, IMPACT_RUN_DIR: s.runDir, IMPACT_STORE_WORKERS: '2', IMPACT_HTTP_THREADS: '2' },
        stdio: ['ignore', 'pipe', log],
    });
    s.exited = new Promise((resolve) => {
        s.child.on('exit', (code, signal) => resolve({ code, signal }));
        s.child.on('error', (e) => resolve({ code: e.message, signal: null }));
    });
    /* 'close' comes after the last stdout data, so nothing is written to a closed log. */
    s.child.on('close', () => closeSync(log));

    let out = '';
    let ready = null;
    s.child.stdout.on('data', (chunk) => {
        writeSync(log, chunk);
        if (ready === null) return;
        out += chunk;
        if (out.includes(`impactd ready: ${s.base}`)) ready();
    });
    await new Promise((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`impactd printed no ready line within ${START_MS} ms:\n${logTail(s)}`)),
            START_MS);
        ready = () => {
            ready = null;
            clearTimeout(timer);
            resolve();
        };
        s.exited.then(({ code, signal }) => {
            clearTimeout(timer);
            reject(new Error(`impactd exited (code ${code}, signal ${signal}) before it was ready:\n${logTail(s)}`));
        });
    });
    Object.assign(s, readCredentials(s.dataDir));
    return s;
}

async function stopServer(s) {
    if (s.child && s.child.exitCode === null && s.child.signalCode === null) {
        s.child.kill('SIGTERM');
        let timer = null;
        const timeout = new Promise((resolve) => (timer = setTimeout(resolve, STOP_MS, 'timeout')));
        const outcome = await Promise.race([s.exited, timeout]);
        clearTimeout(timer);
        if (outcome === 'timeout') {
            s.child.kill('SIGKILL');
            await s.exited;
            throw new Error(`impactd did not stop within ${STOP_MS} ms of SIGTERM:\n${logTail(s)}`);
        }
    }
    const { code, signal } = await s.exited;
    if (code !== 0) throw new Error(`impactd exited with code ${code} (signal ${signal}) after SIGTERM:\n${logTail(s)}`);
}

function cleanup(s) {
    s.cleaned = true;
    try {
        psql(s.adminUrl, `DROP DATABASE IF EXISTS ${s.dbName} WITH (FORCE)`);
    } finally {
        /* impactd removes its run dir when it stops, not when it is killed. */
        rmSync(s.runDir, { recursive: true, force: true });
        if (!process.env.IMPACT_TEST_KEEP) rmSync(s.dataDir, { recursive: true, force: true });
    }
}

/* Whatever happens (a failed assertion, an exception in a hook, ctest or a person interrupting
 * us), impactd and its database do not outlive us; chromium exits by itself when its pipe to us
 * closes. */
process.on('exit', () => {
    if (!server || server.cleaned) return;
    if (server.child && server.child.exitCode === null && server.child.signalCode === null) server.child.kill('SIGKILL');
    try {
        cleanup(server);
    } catch (e) {
        console.error(`# cleanup: ${e.message}`);
    }
});
for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP']) process.on(signal, () => process.exit(1));

/* ---- the browser ------------------------------------------------------------------------------- */

async function launchBrowser() {
    let chromium;
    try {
        ({ chromium } = await import('playwright-core'));
    } catch (e) {
        throw new Error(`playwright-core is not installed in ${here}/node_modules: run scripts/setup.sh (${e.message})`);
    }
    if (!existsSync(CHROMIUM)) throw new Error(`no browser at ${CHROMIUM}: install Debian's chromium (scripts/setup.sh)`);
    return chromium.launch({
        executablePath: CHROMIUM,
        headless: true,
        /* Adds --no-sandbox: chromium's sandbox refuses to run as root, which is how tests run in CI. */
        chromiumSandbox: false,
        /* Containers give /dev/shm a few MB; chromium would crash its renderers on it. */
        args: ['--disable-dev-shm-usage'],
        timeout: STEP_MS,
    });
}

/* A fresh page that records every Content-Security-Policy complaint: the page must not need any
 * exception to the policy it is served with. */
async function newPage(context = null) {
    const page = await (context ?? browser).newPage();
    page.setDefaultTimeout(STEP_MS);
    page.cspErrors = [];
    page.on('console', (msg) => {
        if (/Content Security Policy|Refused to/i.test(msg.text())) page.cspErrors.push(msg.text());
    });
    page.on('pageerror', (e) => page.cspErrors.push(`page error: ${e.message}`));
    return page;
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
    await startServer();
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
