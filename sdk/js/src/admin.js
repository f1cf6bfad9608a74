/*
 * The admin client: every hosted resource of an account (docs/api.md), with its API key.
 *
 * All resources share one shape, so one Collection class serves them all: list (an async
 * iterator that follows next_page across every page), get, create, update, delete and the
 * resource's actions (start, pause, enable, replay, ...). Named getters give the collections
 * of the API's root, and nested collections (a script's questions, a question's possible
 * responses, a list's numbers, an endpoint's deliveries) are reached from their parent's id.
 */
import { EventStream } from './events.js';
import { Transport } from './http.js';

/** One collection of the API, at `path` (e.g. "/v1/campaigns" or "/v1/scripts/3/questions"). */
export class Collection {
  /** @param {Transport} transport @param {string} path */
  constructor(transport, path) {
    this.transport = transport;
    this.path = path;
  }

  /**
   * Every item, page after page, following each page's next_page: `for await (const c of
   * admin.campaigns.list({ dialer_type: 'Power' }))`. `filters` are the list's query parameters
   * (per_page up to 100, q, archived, field filters).
   */
  async *list(filters = {}, { signal } = {}) {
    let page = await this.page(filters, { signal });
    for (;;) {
      for (const item of page.items || []) yield item;
      if (!page.next_page) return;
      page = await this.transport.request('GET', page.next_page, { signal });
    }
  }

  /** One page of the list, as the server answers it (items, total, next_page, ...). */
  page(filters = {}, { signal } = {}) {
    return this.transport.request('GET', this.path, { query: filters, signal });
  }

  /** All items in an array (mind large collections: list() streams them). */
  async all(filters = {}, options = {}) {
    const items = [];
    for await (const item of this.list(filters, options)) items.push(item);
    return items;
  }

  get(id, { signal } = {}) {
    return this.transport.request('GET', `${this.path}/${encodeURIComponent(id)}`, { signal });
  }

  /** Creates an item; retried safely with one Idempotency-Key (pass your own to span processes). */
  create(fields, { idempotencyKey, signal } = {}) {
    return this.transport.request('POST', this.path, { body: fields, idempotencyKey, signal });
  }

  update(id, fields, { idempotencyKey, signal } = {}) {
    return this.transport.request('PATCH', `${this.path}/${encodeURIComponent(id)}`, { body: fields, idempotencyKey, signal });
  }

  delete(id, { signal } = {}) {
    return this.transport.request('DELETE', `${this.path}/${encodeURIComponent(id)}`, { signal });
  }

  /** POST {item}/{action} (start, pause, stop, restore, enable, disable, end, replay, ...). */
  action(id, name, body, { idempotencyKey, signal } = {}) {
    return this.transport.request('POST', `${this.path}/${encodeURIComponent(id)}/${name}`, { body, idempotencyKey, signal });
  }

  /** A collection nested under one item (e.g. scripts.nested(3, 'questions')). */
  nested(id, name) {
    return new Collection(this.transport, `${this.path}/${encodeURIComponent(id)}/${name}`);
  }
}

/** Credentials as Api-Key and Api-Auth headers (never in URLs, where logs would keep them). */
function keyHeaders(apiKey, apiAuth) {
  return () => ({ 'Api-Key': apiKey, 'Api-Auth': apiAuth });
}

export class ImpactAdmin {
  /**
   * @param {object} options
   * @param {string} options.baseUrl
   * @param {string} options.apiKey
   * @param {string} options.apiAuth
   * @param {typeof fetch} [options.fetch]
   * @param {number} [options.retries]
   */
  constructor({ baseUrl, apiKey, apiAuth, fetch, retries, retryBaseMs }) {
    if (!apiKey || !apiAuth) throw new TypeError('apiKey and apiAuth are required');
    this.transport = new Transport({ baseUrl, headers: keyHeaders(apiKey, apiAuth), fetch, retries, retryBaseMs });
  }

  /** Any collection by path, for what has no getter. */
  resource(path) {
    return new Collection(this.transport, path);
  }

  /** GET /v1: the account, the limits and every collection. */
  root() {
    return this.transport.request('GET', '/v1');
  }

  get campaigns() { return this.resource('/v1/campaigns'); }
  get lists() { return this.resource('/v1/lists'); }
  get numbers() { return this.resource('/v1/numbers'); }
  get leads() { return this.resource('/v1/leads'); }
  get messages() { return this.resource('/v1/messages'); }
  get scripts() { return this.resource('/v1/scripts'); }
  get customFields() { return this.resource('/v1/custom_fields'); }
  get callers() { return this.resource('/v1/callers'); }
  get callerGroups() { return this.resource('/v1/caller_groups'); }
  get callerSessions() { return this.resource('/v1/caller_sessions'); }
  get blockedNumbers() { return this.resource('/v1/blocked_numbers'); }
  get calls() { return this.resource('/v1/calls'); }
  get events() { return this.resource('/v1/events'); }
  get webhookEndpoints() { return this.resource('/v1/webhook_endpoints'); }
  get webhookSecrets() { return this.resource('/v1/webhook_secrets'); }

  /** A script's parts: scriptTexts, questions, notes, transfers. */
  script(id) {
    const scripts = this.scripts;
    return {
      texts: scripts.nested(id, 'script_texts'),
      questions: scripts.nested(id, 'questions'),
      possibleResponses: (questionId) => scripts.nested(id, 'questions').nested(questionId, 'possible_responses'),
      notes: scripts.nested(id, 'notes'),
      transfers: scripts.nested(id, 'transfers'),
    };
  }

  /** Uploads a recorded message (WAV or MP3 bytes). */
  uploadMessage(name, audio, contentType = 'audio/wav', options = {}) {
    return this.transport.request('POST', '/v1/messages', {
      query: { name }, body: audio, contentType, idempotencyKey: options.idempotencyKey, signal: options.signal,
    });
  }

  /** Uploads one part of a list's CSV file (parts join byte for byte; a part sent again replaces it). */
  uploadList(listId, csv, { part = 1, idempotencyKey, signal } = {}) {
    return this.transport.request('POST', `/v1/lists/${encodeURIComponent(listId)}/upload`, {
      query: { part }, body: csv, contentType: 'text/csv', idempotencyKey, signal,
    });
  }

  /** Live stats of a running campaign. */
  campaignStats(id, { signal } = {}) {
    return this.transport.request('GET', `/v1/campaigns/${encodeURIComponent(id)}/stats`, { signal });
  }

  /**
   * The account's events live (GET /v1/events/stream), resuming after `after` (an event id) and
   * filtered by campaignId, callerId and types.
   */
  eventStream({ after, campaignId, callerId, types, ...options } = {}) {
    const query = { campaign_id: campaignId, caller_id: callerId, type: types?.join(',') };
    return new EventStream(this.transport, '/v1/events/stream', { after, query, ...options });
  }
}
