/*
 * What every browser test needs: the real impactd on a fresh database of the test cluster
 * (IMPACTD_BIN, IMPACT_TEST_DATABASE_URL, as ctest gives them), its development credentials, and
 * Debian's chromium driven by playwright-core, with pages that record every Content-Security-
 * Policy complaint. Whatever happens, impactd and its database do not outlive the test process.
 *
 * IMPACT_CHROMIUM overrides /usr/bin/chromium; IMPACT_TEST_KEEP=1 keeps the data dir and its
 * impactd.log.
 */
import { execFileSync, spawn } from 'node:child_process';
import { closeSync, existsSync, mkdtempSync, openSync, readFileSync, rmSync, writeSync } from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
export const CHROMIUM = process.env.IMPACT_CHROMIUM || '/usr/bin/chromium';
export const START_MS = 180_000; /* sanitizer builds start slowly; this only bounds a failure */
export const STOP_MS = 30_000;
export const STEP_MS = 60_000;

let server = null; /* the one this process started: cleaned up at exit */

/* ---- impactd ----------------------------------------------------------------------------------- */

/** Polls `check` every 100 ms until it answers something truthy, which it answers; the bound only
 *  turns a hang into a failure naming `what`. */
export async function until(what, check, ms = STEP_MS) {
    const deadline = Date.now() + ms;
    for (;;) {
        const value = await check();
        if (value) return value;
        if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
        await new Promise((resolve) => setTimeout(resolve, 100));
    }
}

export function freePort() {
    return new Promise((resolve, reject) => {
        const probe = net.createServer();
        probe.on('error', reject);
        probe.listen(0, '127.0.0.1', () => {
            const { port } = probe.address();
            probe.close(() => resolve(port));
        });
    });
}

export function psql(adminUrl, sql) {
    try {
        execFileSync('psql', ['-X', '-q', '-v', 'ON_ERROR_STOP=1', '-d', adminUrl, '-c', sql], {
            stdio: ['ignore', 'ignore', 'pipe'],
        });
    } catch (e) {
        throw new Error(`psql "${sql}" failed: ${e.stderr || e.message}`);
    }
}

export function logTail(s, lines = 40) {
    try {
        return readFileSync(s.logPath, 'utf8').split('\n').slice(-lines).join('\n');
    } catch {
        return '(no log)';
    }
}

export function readCredentials(dataDir) {
    const text = readFileSync(path.join(dataDir, 'dev-credentials.env'), 'utf8');
    const key = /^IMPACT_API_KEY=(.+)$/m.exec(text)?.[1];
    const auth = /^IMPACT_API_AUTH=(.+)$/m.exec(text)?.[1];
    if (!key || !auth) throw new Error(`no IMPACT_API_KEY/IMPACT_API_AUTH in ${dataDir}/dev-credentials.env`);
    return { key, auth };
}

/* Starts impactd on a fresh database named after `name` and resolves once it prints its ready
 * line; `args` are more flags. */
export async function startServer(name, args = []) {
    const bin = process.env.IMPACTD_BIN;
    const adminUrl = process.env.IMPACT_TEST_DATABASE_URL;
    if (!bin || !existsSync(bin)) throw new Error(`IMPACTD_BIN (${bin}) is not an impactd binary: run through ctest`);
    if (!adminUrl) throw new Error('IMPACT_TEST_DATABASE_URL is not set: run the tests with scripts/test.sh');

    const s = { dbName: `browser_${name}_${process.pid}`, adminUrl };
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
        '--database-url', `${adminUrl} dbname=${s.dbName}`, ...args], {
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

export async function stopServer(s) {
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

export function cleanup(s) {
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

export async function launchBrowser() {
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
export async function newPage(browserOrContext) {
    const page = await browserOrContext.newPage();
    page.setDefaultTimeout(STEP_MS);
    page.cspErrors = [];
    page.on('console', (msg) => {
        if (/Content Security Policy|Refused to/i.test(msg.text())) page.cspErrors.push(msg.text());
    });
    page.on('pageerror', (e) => page.cspErrors.push(`page error: ${e.message}`));
    return page;
}

