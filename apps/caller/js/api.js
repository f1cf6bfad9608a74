/*
 * The app's way to the caller API (docs/caller-api.md). The session cookie the login sets is
 * HttpOnly: the app never sees its token, the browser sends it with every same-origin request,
 * and SameSite=Strict keeps other sites from sending it. Every refusal is a problem document;
 * it is thrown as a Problem so the screen can show its detail.
 */

export class Problem extends Error {
  constructor(status, doc) {
    super(doc?.detail || doc?.title || `HTTP ${status}`);
    this.status = status;
    this.type = doc?.type ?? null;
    this.state = doc?.state ?? null;
    this.errors = doc?.errors ?? [];
  }
}

async function request(method, url, body) {
  const init = { method, credentials: 'same-origin', headers: { Accept: 'application/json' } };
  if (body !== undefined) {
    init.headers['Content-Type'] = 'application/json';
    init.body = JSON.stringify(body);
  }
  let response;
  try {
    response = await fetch(url, init);
  } catch (cause) {
    throw new Problem(0, { detail: 'The server cannot be reached; check the connection.' });
  }
  if (response.status === 204) return null;
  const text = await response.text();
  let doc = null;
  try {
    doc = text ? JSON.parse(text) : null;
  } catch {
    doc = { detail: text.slice(0, 200) };
  }
  if (!response.ok) throw new Problem(response.status, doc);
  return doc;
}

/** Logs in; the answer is the session (its token is also the cookie, which is what the app uses). */
export function logIn(fields) {
  return request('POST', '/v1/caller_sessions', fields);
}

/** The caller's session: who, which campaign, the script, desk_uri and events_uri. */
export function session() {
  return request('GET', '/v1/caller_session');
}

export function heartbeat() {
  return request('POST', '/v1/caller_session/heartbeat');
}

export function logOut() {
  return request('POST', '/v1/caller_session/logout');
}

/** The desk: state, call, contact, and the actions possible now. */
export function desk(deskUri) {
  return request('GET', deskUri);
}

/** A desk action (start, dial, skip, hang_up, drop_voicemail, transfer, leave_transfer, results, stop). */
export function act(deskUri, action, body) {
  return request('POST', `${deskUri}/${action}`, body);
}
