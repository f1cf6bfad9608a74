/*
 * One request to impactd, the way every client of the SDK sends it: JSON in and out, refusals as
 * ProblemError (RFC 9457 problem documents), and retries that are safe.
 *
 * Safe retries: GET and DELETE are retried as they are (a DELETE retried after its first attempt
 * was carried out finds nothing: 404 then means done); a POST or PATCH only with an
 * Idempotency-Key, the same key on every attempt, so the server answers a retry of a request it
 * already carried out with the first answer instead of doing it twice (docs/api.md, "Retries").
 * Requests the server keeps no key for (a caller's desk actions) are never retried. Retried: network
 * failures, 429 and 502/503/504, with exponential back-off and jitter, or after the Retry-After
 * the server asked for. Never retried: every other 4xx (the request itself is wrong) and 500.
 */

/** A refusal by the server: the problem document's fields, and the HTTP status. */
export class ProblemError extends Error {
  /**
   * @param {number} status
   * @param {object|null} problem the problem document (type, title, detail, errors, ...)
   */
  constructor(status, problem) {
    super(problem?.detail || problem?.title || `HTTP ${status}`);
    this.name = 'ProblemError';
    this.status = status;
    this.type = problem?.type ?? null;
    this.title = problem?.title ?? null;
    this.detail = problem?.detail ?? null;
    this.errors = Array.isArray(problem?.errors) ? problem.errors : [];
    this.problem = problem ?? null;
  }
}

/** The server could not be reached (or did not answer) within the attempts allowed. */
export class NetworkError extends Error {
  constructor(message, cause) {
    super(message, { cause });
    this.name = 'NetworkError';
  }
}

const RETRYABLE = new Set([429, 502, 503, 504]);

/** A random key for one logical request, reused by its retries. */
export function idempotencyKey() {
  const bytes = new Uint8Array(16);
  globalThis.crypto.getRandomValues(bytes);
  return Array.from(bytes, (b) => b.toString(16).padStart(2, '0')).join('');
}

function sleep(ms, signal) {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(resolve, ms);
    signal?.addEventListener('abort', () => {
      clearTimeout(timer);
      reject(signal.reason);
    }, { once: true });
  });
}

function retryAfterMs(response) {
  const value = response.headers.get('retry-after');
  if (!value) return null;
  const seconds = Number(value);
  if (Number.isFinite(seconds)) return Math.max(0, seconds * 1000);
  const date = Date.parse(value);
  return Number.isFinite(date) ? Math.max(0, date - Date.now()) : null;
}

/**
 * The transport every client shares.
 * @param {object} options
 * @param {string} options.baseUrl e.g. "http://127.0.0.1:8080"
 * @param {() => Record<string,string>} options.headers the credentials' headers for each request
 * @param {typeof fetch} [options.fetch]
 * @param {number} [options.retries] attempts after the first (default 4)
 * @param {number} [options.retryBaseMs] first back-off (default 250 ms, doubling, capped at 10 s)
 */
export class Transport {
  constructor({ baseUrl, headers = () => ({}), fetch: fetchImpl = globalThis.fetch, retries = 4, retryBaseMs = 250 }) {
    if (!baseUrl) throw new TypeError('baseUrl is required');
    this.baseUrl = String(baseUrl).replace(/\/+$/, '');
    this.headers = headers;
    this.fetch = fetchImpl;
    this.retries = retries;
    this.retryBaseMs = retryBaseMs;
  }

  /** An absolute URL for a path, or the URL itself when the server gave an absolute one. */
  url(pathOrUrl, query) {
    const url = new URL(/^https?:\/\//.test(pathOrUrl) ? pathOrUrl : `${this.baseUrl}${pathOrUrl}`);
    for (const [name, value] of Object.entries(query || {})) {
      if (value !== undefined && value !== null) url.searchParams.set(name, String(value));
    }
    return url.toString();
  }

  /**
   * Sends a request and answers its parsed JSON (null for an empty body).
   * @param {string} method
   * @param {string} path a path or an absolute URL the server gave
   * @param {object} [options] body (JSON, or a string/Uint8Array with contentType), query,
   *   idempotencyKey (POST/PATCH: a key of your own, or false for none and no retries), signal,
   *   raw (answer the Response)
   */
  async request(method, path, { body, contentType, query, idempotencyKey: key, signal, raw = false } = {}) {
    const headers = { Accept: 'application/json', ...this.headers() };
    let payload;
    if (body !== undefined) {
      const isBytes = typeof body === 'string' || body instanceof Uint8Array;
      payload = isBytes ? body : JSON.stringify(body);
      headers['Content-Type'] = contentType || (isBytes ? 'application/octet-stream' : 'application/json');
    }
    const idempotent = method === 'GET' || method === 'HEAD' || method === 'DELETE';
    if ((method === 'POST' || method === 'PATCH') && key !== false) headers['Idempotency-Key'] = key || idempotencyKey();
    const retries = idempotent || headers['Idempotency-Key'] ? this.retries : 0;
    const url = this.url(path, query);
    for (let attempt = 0; ; attempt++) {
      let response;
      try {
        response = await this.fetch(url, { method, headers, body: payload, signal });
      } catch (error) {
        if (signal?.aborted) throw error;
        if (attempt >= retries) throw new NetworkError(`${method} ${url}: ${error.message}`, error);
        await sleep(this.#backoff(attempt, null), signal);
        continue;
      }
      if (RETRYABLE.has(response.status) && attempt < retries) {
        const wait = this.#backoff(attempt, retryAfterMs(response));
        await response.arrayBuffer().catch(() => {});
        await sleep(wait, signal);
        continue;
      }
      if (method === 'DELETE' && attempt > 0 && response.status === 404) {
        await response.arrayBuffer().catch(() => {});
        return null; /* an earlier attempt deleted it */
      }
      if (raw && response.ok) return response;
      const text = await response.text();
      let doc = null;
      if (text) {
        try {
          doc = JSON.parse(text);
        } catch {
          doc = response.ok ? text : { detail: text.slice(0, 500) };
        }
      }
      if (!response.ok) throw new ProblemError(response.status, doc);
      return doc;
    }
  }

  #backoff(attempt, asked) {
    const exponential = Math.min(this.retryBaseMs * 2 ** attempt, 10_000);
    const jittered = exponential / 2 + Math.random() * (exponential / 2);
    return asked === null ? jittered : Math.max(asked, jittered);
  }
}
