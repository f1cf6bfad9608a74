/*
 * A live event stream (Server-Sent Events) that does not lose events: the account's
 * (GET /v1/events/stream) or a caller's own (GET /v1/caller_session/events/stream).
 *
 * Why not EventSource: it cannot send the Api-Key or Authorization header, and it hides why a
 * connection failed. This reads the stream over fetch, parses SSE itself, and on any break
 * (network, server restart, the server's `event: overflow` for a reader that fell behind) opens
 * a new connection with Last-Event-ID set to the last event it delivered, after a back-off that
 * doubles up to a limit, with jitter so a thousand clients do not come back at once. The server
 * replays everything after that id before going live, so nothing is missed; an id at or below the
 * last delivered one (a replay overlapping what was seen) is dropped, so nothing is seen twice.
 *
 * A refusal that retrying cannot fix (401, 403, 404, 422: bad credentials, an ended caller
 * session, a bad filter) ends the stream with state "closed" and the error.
 */

/** One parsed SSE event: { id, type, data } with data parsed as JSON when it is JSON. */
export function parseSseBlock(block) {
  let id = null;
  let type = 'message';
  let retry = null;
  const data = [];
  for (const line of block.split(/\r\n|\r|\n/)) {
    if (line === '' || line.startsWith(':')) continue;
    const colon = line.indexOf(':');
    const field = colon === -1 ? line : line.slice(0, colon);
    let value = colon === -1 ? '' : line.slice(colon + 1);
    if (value.startsWith(' ')) value = value.slice(1);
    if (field === 'id') id = value;
    else if (field === 'event') type = value;
    else if (field === 'data') data.push(value);
    else if (field === 'retry' && /^\d+$/.test(value)) retry = Number(value);
  }
  const text = data.join('\n');
  let parsed = text;
  try {
    parsed = text ? JSON.parse(text) : null;
  } catch {
    /* not JSON: the text as it is */
  }
  return { id, type, data: parsed, hasData: data.length > 0, retry };
}

const FATAL = new Set([400, 401, 403, 404, 405, 422]);

/* An event with a payload (CustomEvent is not a global before Node 19). */
class StreamEvent extends Event {
  constructor(type, detail) {
    super(type);
    this.detail = detail;
  }
}

/**
 * @fires state   detail: "connecting" | "open" | "reconnecting" | "closed"
 * @fires event   detail: the event document ({id, type, occurred_at, data, ...})
 * @fires error   detail: the Error that broke a connection (a reconnect follows unless closed)
 */
export class EventStream extends EventTarget {
  /**
   * @param {import('./http.js').Transport} transport
   * @param {string} path
   * @param {object} [options]
   * @param {number|string} [options.after] resume after this event id (default: from now on)
   * @param {Record<string,string>} [options.query]
   * @param {number} [options.minDelayMs] first reconnect delay (default 500)
   * @param {number} [options.maxDelayMs] reconnect delay limit (default 30000)
   * @param {boolean} [options.start] connect at once (default true)
   */
  constructor(transport, path, { after, query = {}, minDelayMs = 500, maxDelayMs = 30_000, start = true } = {}) {
    super();
    this.transport = transport;
    this.path = path;
    this.query = query;
    this.lastEventId = after === undefined || after === null ? null : String(after);
    this.minDelayMs = minDelayMs;
    this.maxDelayMs = maxDelayMs;
    this.state = 'closed';
    this.error = null;
    this.reconnects = 0;
    if (start) this.start();
  }

  #abort = null;
  #closed = false;
  #iterators = 0; /* events are queued only while someone iterates */
  #queue = [];
  #waiters = [];

  /** Connects (again); the loop runs until close() or a refusal retrying cannot fix. */
  start() {
    if (this.#abort) return;
    this.#closed = false;
    this.#run();
  }

  close() {
    this.#closed = true;
    this.#abort?.abort();
    this.#setState('closed');
    for (const wake of this.#waiters.splice(0)) wake();
  }

  #setState(state) {
    if (this.state === state) return;
    this.state = state;
    this.dispatchEvent(new StreamEvent('state', state));
  }

  #deliver(doc) {
    this.dispatchEvent(new StreamEvent('event', doc));
    if (this.#iterators > 0) this.#queue.push(doc);
    for (const wake of this.#waiters.splice(0)) wake();
  }

  async #run() {
    let delay = this.minDelayMs;
    let first = true;
    while (!this.#closed) {
      this.#setState(first ? 'connecting' : 'reconnecting');
      first = false;
      const abort = new AbortController();
      this.#abort = abort;
      let opened = false;
      try {
        opened = await this.#connect(abort.signal, () => {
          delay = this.minDelayMs;
          this.#setState('open');
        });
      } catch (error) {
        if (this.#closed) break;
        this.error = error;
        this.dispatchEvent(new StreamEvent('error', error));
        if (FATAL.has(error.status)) {
          this.close();
          break;
        }
      }
      this.#abort = null;
      if (this.#closed) break;
      this.reconnects++;
      const wait = opened ? this.minDelayMs : delay;
      delay = Math.min(delay * 2, this.maxDelayMs);
      await new Promise((resolve) => setTimeout(resolve, wait / 2 + Math.random() * (wait / 2)));
    }
    this.#abort = null;
  }

  /* One connection: resolves when it ends (true if it had opened), throws what broke it. */
  async #connect(signal, onOpen) {
    const query = { ...this.query };
    const headers = { Accept: 'text/event-stream', ...this.transport.headers() };
    if (this.lastEventId !== null) headers['Last-Event-ID'] = this.lastEventId;
    const response = await this.transport.fetch(this.transport.url(this.path, query), { headers, signal });
    if (!response.ok) {
      let problem = null;
      try {
        problem = await response.json();
      } catch {
        /* no problem document */
      }
      const error = new Error(problem?.detail || `HTTP ${response.status}`);
      error.status = response.status;
      error.problem = problem;
      throw error;
    }
    onOpen();
    const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
    let buffer = '';
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return true;
      buffer += value;
      let end;
      while ((end = buffer.search(/\r\n\r\n|\n\n|\r\r/)) !== -1) {
        const block = buffer.slice(0, end);
        buffer = buffer.slice(end + (buffer[end] === '\r' && buffer[end + 1] === '\n' ? 4 : 2));
        const event = parseSseBlock(block);
        if (event.type === 'overflow') {
          /* the server dropped us for falling behind: resume from what we have */
          await reader.cancel().catch(() => {});
          return true;
        }
        if (!event.hasData || event.id === null) continue;
        if (this.lastEventId !== null && Number(event.id) <= Number(this.lastEventId)) continue;
        this.lastEventId = event.id;
        this.#deliver(event.data);
      }
    }
  }

  /** `for await (const event of stream)`: every event in order until close(). */
  async *[Symbol.asyncIterator]() {
    this.#iterators++;
    try {
      for (;;) {
        if (this.#queue.length) {
          yield this.#queue.shift();
          continue;
        }
        if (this.#closed) return;
        await new Promise((resolve) => this.#waiters.push(resolve));
      }
    } finally {
      if (--this.#iterators === 0) this.#queue.length = 0;
    }
  }
}
