/*
 * The caller client: a person working a campaign (docs/caller-api.md). A caller logs in with
 * their account's id and a username and password, or a PIN, and gets a session token, sent as a
 * bearer token from then on; their desk is served by the campaign's dialer at the session's
 * desk_uri. Every desk action answers the desk as it is afterwards.
 *
 * Desk actions are not retried: the dialer keeps no idempotency keys, and an action that did
 * happen would be refused the second time (409), so a lost answer is resolved by reading the
 * desk again, which is what the desk() method is for.
 *
 * The session ends after heartbeat_timeout_seconds without a request or an open event stream;
 * keepAlive() sends heartbeats every third of that until stopped (or logout).
 */
import { EventStream } from './events.js';
import { Transport } from './http.js';

export class CallerSession {
  /** @param {Transport} transport @param {object} login the login's answer (token, desk_uri, ...) */
  constructor(transport, login) {
    this.transport = transport;
    this.id = login.id;
    this.callerId = login.caller_id;
    this.campaignId = login.campaign_id;
    this.token = login.token;
    this.deskUri = login.desk_uri;
    this.eventsUri = login.events_uri;
    this.heartbeatTimeoutSeconds = login.heartbeat_timeout_seconds;
    this.expiresAt = login.expires_at;
    this.#keepAlive = null;
  }

  #keepAlive;

  /** Who the caller is, their campaign and its script (texts, questions, notes, transfers). */
  session() {
    return this.transport.request('GET', '/v1/caller_session');
  }

  heartbeat() {
    return this.transport.request('POST', '/v1/caller_session/heartbeat', { idempotencyKey: false });
  }

  /**
   * Heartbeats every third of the session's timeout until stopKeepAlive() or logout(). A failed
   * heartbeat is reported to `onError` (a 401 means the session is over: the timer stops).
   */
  keepAlive({ onError = () => {} } = {}) {
    this.stopKeepAlive();
    const every = Math.max(1, Math.floor((this.heartbeatTimeoutSeconds || 30) / 3)) * 1000;
    this.#keepAlive = setInterval(() => {
      this.heartbeat().catch((error) => {
        if (error.status === 401) this.stopKeepAlive();
        onError(error);
      });
    }, every);
    this.#keepAlive.unref?.();
    return this;
  }

  stopKeepAlive() {
    if (this.#keepAlive) clearInterval(this.#keepAlive);
    this.#keepAlive = null;
  }

  async logout() {
    this.stopKeepAlive();
    await this.transport.request('POST', '/v1/caller_session/logout', { idempotencyKey: false });
  }

  /** The desk: state, call, contact, survey_due_call_id and the actions possible now. */
  desk() {
    return this.transport.request('GET', this.deskUri);
  }

  #act(action, body) {
    return this.transport.request('POST', `${this.deskUri}/${action}`, { body, idempotencyKey: false });
  }

  start() { return this.#act('start'); }
  dial() { return this.#act('dial'); }
  skip() { return this.#act('skip'); }
  hangUp() { return this.#act('hang_up'); }
  dropVoicemail() { return this.#act('drop_voicemail'); }
  stop() { return this.#act('stop'); }
  leaveTransfer() { return this.#act('leave_transfer'); }

  /** Transfers the call to one of the script's transfers (warm: a three-way call; cold: handed over). */
  transfer(transferId) {
    return this.#act('transfer', { transfer_id: transferId });
  }

  /**
   * Submits the survey of the call just finished, then `continue` (the next call) or `stop`.
   * @param {object} results
   * @param {{questionId: number, possibleResponseId: number}[]} [results.answers]
   * @param {{noteId: number, text: string}[]} [results.notes]
   * @param {number} [results.leadId]
   * @param {boolean} [results.machine] an answering machine took the call
   * @param {'continue'|'stop'} results.then
   */
  submitResults({ answers = [], notes = [], leadId, machine = false, then }) {
    const body = {
      answers: answers.map((a) => ({ question_id: a.questionId, possible_response_id: a.possibleResponseId })),
      notes: notes.map((n) => ({ note_id: n.noteId, text: n.text })),
      machine,
      then,
    };
    if (leadId !== undefined && leadId !== null) body.lead_id = leadId;
    return this.#act('results', body);
  }

  /** The caller's own events, live, resuming after `after`; an open stream keeps the session alive. */
  events({ after, types, ...options } = {}) {
    return new EventStream(this.transport, this.eventsUri, { after, query: { type: types?.join(',') }, ...options });
  }
}

export class ImpactCaller {
  /**
   * Logs a caller in: `{baseUrl, accountId, username, password}` or `{baseUrl, accountId, pin}`.
   * @returns {Promise<CallerSession>}
   */
  static async login({ baseUrl, accountId, username, password, pin, fetch, retries, retryBaseMs }) {
    let token = null;
    const transport = new Transport({
      baseUrl, fetch, retries, retryBaseMs,
      headers: () => (token ? { Authorization: `Bearer ${token}` } : {}),
    });
    const body = pin !== undefined ? { account_id: accountId, pin } : { account_id: accountId, username, password };
    /* a login is not retried: each one makes a session (and replaces the last) */
    const login = await transport.request('POST', '/v1/caller_sessions', { body, idempotencyKey: false });
    token = login.token;
    return new CallerSession(transport, login);
  }

  /** A session from a token kept earlier (and its desk_uri and events_uri). */
  static resume({ baseUrl, token, deskUri, eventsUri, heartbeatTimeoutSeconds = 30, fetch, retries, retryBaseMs }) {
    const transport = new Transport({ baseUrl, fetch, retries, retryBaseMs, headers: () => ({ Authorization: `Bearer ${token}` }) });
    return new CallerSession(transport, {
      token, desk_uri: deskUri, events_uri: eventsUri, heartbeat_timeout_seconds: heartbeatTimeoutSeconds,
    });
  }
}
