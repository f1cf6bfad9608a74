#!/usr/bin/env node
/*
 * The load driver of bench/callers, one process playing many screens at once. Node because a
 * caller's screen is a JavaScript client reading Server-Sent Events: the time measured includes
 * what a real screen spends receiving and parsing, no more (no rendering). Zero dependencies.
 *
 * Reads a JSON configuration on stdin, prints one JSON line of results.
 *
 * mode "impact": logs `callers` in (POST /v1/caller_sessions), opens each one's event stream
 * (events_uri, Bearer token), starts each desk, and plays the people: on caller.wrap_up, after a
 * think time drawn from 1-3 s, it submits the survey with `then: continue`. For every event
 * received in the measuring window it records receive time minus the event's occurred_at (the
 * instant the dialer changed the caller's state): event-to-screen latency, per group (caller,
 * call, survey: `groups`). `split` cuts each at the event's created_at, when the fan-out's
 * sequencer numbered it: "<group> to created" (the dialer's statement queue, the commit, NOTIFY
 * and the numbering; server clocks only, millisecond resolution) and "<group> created to screen"
 * (the ZeroMQ publication, the HTTP thread, the SSE write and this parser). `silent` counts the
 * screens that received nothing while measuring (a stuck desk shows here; over a short window a
 * long call can too).
 *
 * mode "nchan": the baseline. `channels` subscribers read nchan's EventSource endpoints while a
 * publisher in this same process posts messages carrying their send time at `rate` per second
 * to random channels; latency is receive time minus send time, through the same parser and clock.
 *
 * A stream that cannot be opened is an error in the results, not the end of the run.
 */
import { performance } from 'node:perf_hooks';

const config = JSON.parse(await new Promise((resolve) => {
  let text = '';
  process.stdin.setEncoding('utf8');
  process.stdin.on('data', (chunk) => (text += chunk));
  process.stdin.on('end', () => resolve(text));
}));

const now = () => performance.timeOrigin + performance.now(); /* wall clock, in ms, sub-millisecond */
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const errors = [];
let measuring = false;
const latencies = new Map(); /* group -> ms[] */
const split = new Map(); /* "<group> to created" and "<group> created to screen" -> ms[] */

function record(group, ms, into = latencies) {
  if (!measuring) return;
  if (!into.has(group)) into.set(group, []);
  into.get(group).push(ms);
}

function summary(values) {
  if (!values || values.length === 0) return { count: 0 };
  const sorted = [...values].sort((a, b) => a - b);
  const q = (p) => sorted[Math.min(sorted.length - 1, Math.ceil(p * sorted.length) - 1)];
  const round = (v) => Math.round(v * 100) / 100;
  return { count: sorted.length, p50: round(q(0.5)), p90: round(q(0.9)), p99: round(q(0.99)), max: round(sorted.at(-1)) };
}

const summaries = (map) => Object.fromEntries([...map].map(([g, v]) => [g, summary(v)]));

/* Reads one SSE response, calling onEvent(type, data) per event until the signal aborts. */
async function readSse(response, onEvent) {
  const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = '';
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buffer += value;
    let end;
    while ((end = buffer.indexOf('\n\n')) !== -1) {
      const block = buffer.slice(0, end);
      buffer = buffer.slice(end + 2);
      let type = 'message';
      const data = [];
      for (const line of block.split('\n')) {
        if (line.startsWith('event:')) type = line.slice(6).trim();
        else if (line.startsWith('data:')) data.push(line.slice(5).replace(/^ /, ''));
      }
      if (data.length) onEvent(type, data.join('\n'));
    }
  }
}

async function pool(items, width, work) {
  let next = 0;
  await Promise.all(Array.from({ length: width }, async () => {
    while (next < items.length) await work(items[next++]);
  }));
}

async function json(method, url, { token, body } = {}) {
  const response = await fetch(url, {
    method,
    headers: { Accept: 'application/json', ...(token ? { Authorization: `Bearer ${token}` } : {}),
      ...(body ? { 'Content-Type': 'application/json' } : {}) },
    body: body ? JSON.stringify(body) : undefined,
  });
  const text = await response.text();
  if (!response.ok) throw new Error(`${method} ${url} -> ${response.status} ${text.slice(0, 200)}`);
  return text ? JSON.parse(text) : null;
}

/* Opens every stream at once (headers(i): the i-th one's request headers); answers when each has
 * its response headers or failed, with the promises of their reading, which end when the signal
 * aborts. */
async function openStreams(urls, headers, signal, onEvent) {
  const opening = urls.map((url, i) => fetch(url, { headers: { Accept: 'text/event-stream', ...headers(i) }, signal }));
  const reading = opening.map((pending, i) => pending.then(async (response) => {
    if (!response.ok) throw new Error(`${response.status} ${(await response.text()).slice(0, 200)}`);
    await readSse(response, (type, text) => onEvent(i, type, text));
  }).catch((e) => {
    if (!signal.aborted) errors.push(`stream ${urls[i]}: ${e.message}`);
  }));
  await Promise.allSettled(opening);
  return reading;
}

async function impact() {
  const abort = new AbortController();
  const sessions = [];
  await pool(config.callers, 8, async (caller) => {
    const login = await json('POST', `${config.base}/v1/caller_sessions`,
      { body: { account_id: config.account_id, username: caller.username, password: caller.password } });
    sessions.push(login);
  });
  let surveys = 0;
  const heard = new Set(); /* sessions that received an event while measuring */
  const onEvent = (i, type, text) => {
    const s = sessions[i];
    const event = JSON.parse(text);
    const group = type.split('.')[0];
    const received = now(), occurred = Date.parse(event.occurred_at), created = Date.parse(event.created_at);
    record(group, received - occurred);
    record(`${group} to created`, created - occurred, split);
    record(`${group} created to screen`, received - created, split);
    if (measuring) heard.add(i);
    if (type === 'caller.wrap_up') {
      setTimeout(() => {
        json('POST', `${s.desk_uri}/results`, { token: s.token, body: { then: 'continue' } })
          .then(() => measuring && surveys++, (e) => errors.push(e.message));
      }, 1000 + Math.random() * 2000);
    }
  };
  const streams = await openStreams(sessions.map((s) => s.events_uri),
    (i) => ({ Authorization: `Bearer ${sessions[i].token}` }), abort.signal, onEvent);
  await pool(sessions, 16, (s) => json('POST', `${s.desk_uri}/start`, { token: s.token }).catch((e) => errors.push(e.message)));
  await sleep(config.warmup_s * 1000);
  measuring = true;
  const started = now();
  await sleep(config.measure_s * 1000);
  measuring = false;
  const seconds = (now() - started) / 1000;
  abort.abort();
  await Promise.allSettled(streams);
  return { sessions: sessions.length, seconds, surveys, silent: sessions.length - heard.size,
    groups: summaries(latencies), split: summaries(split) };
}

async function nchan() {
  const abort = new AbortController();
  const channels = Array.from({ length: config.channels }, (_, i) => `${config.sub}/ch${i}`);
  const streams = await openStreams(channels, () => ({}), abort.signal,
    (i, type, text) => record('message', now() - JSON.parse(text).sent));
  /* Publishes at config.rate for `seconds`; answers how many it sent. */
  const publish = async (seconds) => {
    const begin = now();
    let sent = 0;
    while (now() - begin < seconds * 1000) {
      const due = Math.floor(((now() - begin) / 1000) * config.rate);
      const sends = [];
      for (; sent < due; sent++) {
        const channel = Math.floor(Math.random() * config.channels);
        sends.push(fetch(`${config.pub}/ch${channel}`, { method: 'POST', body: JSON.stringify({ sent: now() }) })
          .then((r) => r.arrayBuffer()).catch((e) => errors.push(`publish: ${e.message}`)));
      }
      await Promise.all(sends);
      await sleep(5);
    }
    return sent;
  };
  await publish(config.warmup_s);
  measuring = true;
  const started = now();
  const published = await publish(config.measure_s);
  await sleep(200);
  measuring = false;
  const seconds = (now() - started) / 1000;
  abort.abort();
  await Promise.allSettled(streams);
  return { channels: config.channels, seconds, published, groups: summaries(latencies) };
}

const result = config.mode === 'nchan' ? await nchan() : await impact();
result.errors = errors.slice(0, 20);
result.error_count = errors.length;
process.stdout.write(`${JSON.stringify(result)}\n`);
process.exit(0);
