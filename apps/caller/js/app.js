/*
 * ImpactDialer: the caller's screen. The campaign's dialer owns the caller's state; this page
 * only shows the desk it answers (state, call, contact, the actions possible now) and sends
 * actions. It re-reads the desk after each action and on each event of the caller's stream, so
 * what it shows is never a guess: a button is enabled only when the desk lists its action.
 *
 * The event stream is the browser's EventSource on events_uri (cookie-authenticated, resuming with
 * Last-Event-ID by itself); it also keeps the session alive, and a heartbeat every third of the
 * session's timeout covers the moments it is reconnecting.
 */
import * as api from './api.js';
import { renderMarkdown } from './markdown.js';

const $ = (id) => document.getElementById(id);
const STATE_LABELS = {
  idle: 'Not dialing',
  on_hold: 'On hold',
  preview: 'Preview',
  dialing: 'Ringing',
  connected: 'Connected',
  wrap_up: 'Wrap-up',
};
const CALL_LABELS = { ringing: 'Ringing', connected: 'Talking to', three_way: 'Three-way call with', ending: 'Ending the call with' };
const EVENT_TYPES = ['caller.ready', 'caller.preview', 'caller.on_call', 'caller.wrap_up', 'caller.left',
  'call.bridged', 'call.ended', 'survey.submitted'];
const SHORTCUTS = { s: 'start', d: 'dial', k: 'skip', h: 'hang_up', v: 'drop_voicemail', x: 'stop' };
const RECONNECT_MAX_MS = 30000;

let session = null;   /* GET /v1/caller_session */
let desk = null;      /* the last desk read */
let stream = null;
let lastEventId = null;
let reconnectDelay = 1000;
let timers = [];
let loading = null;   /* the desk read in flight; another is queued behind it at most */
let reloadAgain = false;
let shownContact = null;
let shownSurvey = null;
let deskFailed = false; /* the last desk read was refused: its message is on screen */
let deskRetry = null;   /* the next read while the campaign's dialer is not running */
const DESK_RETRY_MS = 5000;

/* ---- messages ---- */

function showError(message) {
  const el = $('error');
  el.textContent = message;
  el.hidden = !message;
}

function announce(message) {
  $('announce').textContent = message;
}

function setConnection(state) {
  const el = $('connection');
  el.dataset.state = state;
  el.textContent = { connected: 'connected', reconnecting: 'reconnecting…', offline: 'offline' }[state];
}

/* ---- login ---- */

function showLogin(message) {
  closeStream();
  timers.forEach(clearInterval);
  timers = [];
  clearTimeout(deskRetry);
  session = desk = shownContact = shownSurvey = null;
  $('desk').hidden = true;
  $('logout').hidden = true;
  $('login').hidden = false;
  $('campaign').textContent = '';
  setConnection('offline');
  showError(message || '');
  $('account').focus();
}

function onViaChange() {
  const pin = document.querySelector('input[name="via"]:checked').value === 'pin';
  $('by-pin').hidden = !pin;
  $('by-password').hidden = pin;
}

async function onLogin(event) {
  event.preventDefault();
  const account = Number($('account').value);
  const pin = document.querySelector('input[name="via"]:checked').value === 'pin';
  const fields = pin ? { account_id: account, pin: $('pin').value }
    : { account_id: account, username: $('username').value, password: $('password').value };
  try {
    await api.logIn(fields);
    $('password').value = '';
    $('pin').value = '';
    localStorage.setItem('impact.account', String(account));
    enterDesk(await api.session());
  } catch (problem) {
    const detail = problem.errors?.length ? problem.errors.map((e) => `${e.field} ${e.message}`).join('; ') : problem.message;
    showError(detail);
  }
}

/* ---- the script and the survey (they change only with the session) ---- */

function leadFields() {
  const leads = desk?.contact?.leads;
  if (!leads || leads.length === 0) return {};
  const chosen = leads.find((l) => String(l.id) === $('lead').value) || leads[0];
  return chosen.fields || {};
}

function renderScript() {
  const script = session.script;
  $('script-name').textContent = script ? script.name : 'Script';
  const box = $('script-texts');
  box.replaceChildren();
  if (!script || script.texts.length === 0) {
    box.append(Object.assign(document.createElement('p'), { className: 'muted', textContent: 'This campaign has no script.' }));
    return;
  }
  const fields = leadFields();
  for (const text of script.texts) {
    const div = document.createElement('div');
    div.className = 'script-text';
    div.append(renderMarkdown(text.content, fields));
    box.append(div);
  }
}

function renderSurveyForm() {
  const script = session.script;
  const questions = $('questions');
  const notes = $('notes');
  questions.replaceChildren();
  notes.replaceChildren();
  for (const q of script?.questions || []) {
    const set = document.createElement('fieldset');
    set.className = 'question';
    set.dataset.questionId = q.id;
    const legend = document.createElement('legend');
    legend.textContent = q.text;
    set.append(legend);
    for (const r of q.possible_responses) {
      const label = document.createElement('label');
      const input = Object.assign(document.createElement('input'), { type: 'radio', name: `q${q.id}`, value: r.id });
      input.dataset.keypad = r.keypad ?? '';
      label.append(input);
      if (r.keypad !== null && r.keypad !== undefined) {
        label.append(Object.assign(document.createElement('span'), { className: 'key', textContent: String(r.keypad) }));
      }
      label.append(r.value + (r.retry ? ' (call back)' : ''));
      set.append(label);
    }
    questions.append(set);
  }
  for (const n of script?.notes || []) {
    const label = document.createElement('label');
    label.textContent = n.label;
    const area = Object.assign(document.createElement('textarea'), { maxLength: 10000 });
    area.dataset.noteId = n.id;
    label.append(area);
    notes.append(label);
  }
  const transfers = $('transfers');
  transfers.replaceChildren();
  for (const t of script?.transfers || []) {
    const button = Object.assign(document.createElement('button'), {
      type: 'button', disabled: true, textContent: `Transfer: ${t.label} (${t.transfer_type})`,
    });
    button.dataset.action = 'transfer';
    button.addEventListener('click', () => act('transfer', { transfer_id: t.id }));
    transfers.append(button);
  }
  setSurveyOpen(false);
}

function resetSurvey() {
  $('survey').reset();
}

/* The survey takes answers only in wrap-up, when the desk lists `results`. */
function setSurveyOpen(open) {
  const survey = $('survey');
  survey.setAttribute('aria-disabled', String(!open));
  for (const el of survey.querySelectorAll('input, textarea, select, button')) el.disabled = !open;
}

/* ---- the desk ---- */

function formatSince(iso) {
  const seconds = Math.max(0, Math.floor((Date.now() - Date.parse(iso)) / 1000));
  const m = Math.floor(seconds / 60);
  const s = String(seconds % 60).padStart(2, '0');
  return m >= 60 ? `${Math.floor(m / 60)}:${String(m % 60).padStart(2, '0')}:${s}` : `${m}:${s}`;
}

/* Which of the number's leads the caller talks to (one, most often: then there is no choice). */
function renderLeadChoices() {
  const leads = desk.contact?.leads || [];
  $('lead').replaceChildren(...leads.map((l, i) => Object.assign(document.createElement('option'), {
    value: l.id, textContent: [l.fields?.first_name, l.fields?.last_name].filter(Boolean).join(' ') || `Lead ${i + 1}`,
  })));
  $('lead-choice').hidden = leads.length < 2;
}

function renderContact() {
  const box = $('contact');
  box.replaceChildren();
  const contact = desk.contact;
  if (!contact) {
    box.append(Object.assign(document.createElement('p'), { className: 'muted', textContent: 'No contact yet.' }));
    return;
  }
  box.append(Object.assign(document.createElement('p'), { className: 'phone', textContent: contact.phone }));
  const leads = contact.leads || [];
  const fields = leadFields();
  const dl = document.createElement('dl');
  /* in the order the script selects them, which is the order the campaign chose */
  const order = session.script?.selected_fields || [];
  const names = Object.keys(fields).sort((a, b) => (order.indexOf(a) + 1 || 1e9) - (order.indexOf(b) + 1 || 1e9));
  for (const [name, value] of names.map((n) => [n, fields[n]])) {
    dl.append(Object.assign(document.createElement('dt'), { textContent: name.replaceAll('_', ' ') }),
      Object.assign(document.createElement('dd'), { textContent: value === null ? '' : String(value) }));
  }
  if (contact.leads === null) box.append(Object.assign(document.createElement('p'), { className: 'muted', textContent: 'Loading…' }));
  else if (leads.length === 0) box.append(Object.assign(document.createElement('p'), { className: 'muted', textContent: 'No lead for this number.' }));
  else box.append(dl);
}

function render(next) {
  const previous = desk;
  desk = next;
  const state = desk.state;
  const label = STATE_LABELS[state] || state;
  const badge = $('state');
  badge.dataset.state = state;
  badge.textContent = desk.leaving ? `${label} (stopping after this call)` : label;
  $('since').textContent = formatSince(desk.state_since);
  const call = desk.call;
  $('call-line').textContent = call ? `${CALL_LABELS[call.state] || call.state} ${call.phone}` : desk.campaign_paused ? 'The campaign is paused.' : '';
  for (const button of document.querySelectorAll('#actions button, #transfers button')) {
    button.disabled = !desk.actions.includes(button.dataset.action);
  }
  setSurveyOpen(desk.actions.includes('results'));
  if (desk.survey_due_call_id !== shownSurvey) {
    /* a new call's survey starts blank; a submitted one clears */
    shownSurvey = desk.survey_due_call_id;
    resetSurvey();
  }
  const contactKey = desk.contact ? `${desk.contact.number_id}:${desk.contact.leads === null}` : null;
  if (contactKey !== shownContact) {
    shownContact = contactKey;
    renderLeadChoices();
    renderContact();
    renderScript();
  }
  if (!previous || previous.state !== state) {
    announce(`${label}${call ? ` ${call.phone}` : ''}`);
    if (state === 'wrap_up') $('survey').querySelector('input, textarea')?.focus();
  }
}

async function loadDesk() {
  if (loading) {
    reloadAgain = true;
    return loading;
  }
  loading = (async () => {
    try {
      do {
        reloadAgain = false;
        render(await api.desk(session.desk_uri));
      } while (reloadAgain);
      if (deskFailed) showError('');
      deskFailed = false;
    } catch (problem) {
      deskFailed = true;
      onProblem(problem);
    } finally {
      loading = null;
    }
  })();
  return loading;
}

function onProblem(problem) {
  if (problem.status === 401) {
    showLogin('Your session has ended (logged out, timed out, or logged in elsewhere). Log in again.');
  } else if (problem.status === 409 && problem.state) {
    showError(problem.message);
    loadDesk();
  } else if (problem.status === 503 && session) {
    /* The campaign is not running (yet): no event will tell this caller when it starts, so
     * the screen asks again until its dialer answers. */
    showError(`${problem.message} (trying again every ${DESK_RETRY_MS / 1000} s)`);
    clearTimeout(deskRetry);
    deskRetry = setTimeout(() => {
      deskRetry = null;
      if (session) loadDesk();
    }, DESK_RETRY_MS);
  } else {
    showError(problem.message);
  }
}

async function act(action, body) {
  showError('');
  try {
    render(await api.act(session.desk_uri, action, body));
  } catch (problem) {
    onProblem(problem);
  }
}

async function onSurvey(event) {
  event.preventDefault();
  const then = event.submitter?.dataset.then || 'continue';
  await submitSurvey(then);
}

async function submitSurvey(then) {
  if (!desk?.actions.includes('results')) return;
  const answers = [];
  for (const set of document.querySelectorAll('#questions fieldset')) {
    const chosen = set.querySelector('input:checked');
    if (chosen) answers.push({ question_id: Number(set.dataset.questionId), possible_response_id: Number(chosen.value) });
  }
  const notes = [];
  for (const area of document.querySelectorAll('#notes textarea')) {
    if (area.value.trim()) notes.push({ note_id: Number(area.dataset.noteId), text: area.value });
  }
  const leads = desk.contact?.leads || [];
  const body = { answers, notes, machine: $('machine').checked, then };
  if (leads.length) body.lead_id = Number($('lead').value || leads[0].id);
  await act('results', body);
}

/* ---- the event stream ---- */

function closeStream() {
  if (stream) stream.close();
  stream = null;
}

function openStream() {
  closeStream();
  const url = new URL(session.events_uri, location.href);
  if (lastEventId) url.searchParams.set('after', lastEventId);
  setConnection('reconnecting');
  const source = new EventSource(url.pathname + url.search);
  stream = source;
  source.onopen = () => {
    reconnectDelay = 1000;
    setConnection('connected');
    loadDesk();
  };
  const onEvent = (event) => {
    if (event.lastEventId) lastEventId = event.lastEventId;
    let caller = null;
    try {
      caller = JSON.parse(event.data).caller_id;
    } catch {
      /* not an event document: nothing of ours */
    }
    if (caller === session?.caller.id) loadDesk();
  };
  for (const type of EVENT_TYPES) source.addEventListener(type, onEvent);
  source.addEventListener('overflow', () => openStream());
  source.onerror = () => {
    if (source !== stream) return;
    if (source.readyState === EventSource.CONNECTING) {
      setConnection('reconnecting');
      return;
    }
    /* Closed for good (the server refused: a session that ended, or the server is down): find
     * out which, and try again with a growing delay. */
    setConnection('offline');
    closeStream();
    const delay = reconnectDelay;
    reconnectDelay = Math.min(reconnectDelay * 2, RECONNECT_MAX_MS);
    setTimeout(async () => {
      if (!session) return;
      try {
        await api.session();
        openStream();
      } catch (problem) {
        if (problem.status === 401) onProblem(problem);
        else openStream();
      }
    }, delay + Math.random() * 500);
  };
}

/* ---- the session ---- */

function enterDesk(loaded) {
  session = loaded;
  $('login').hidden = true;
  $('desk').hidden = false;
  $('logout').hidden = false;
  showError('');
  $('campaign').textContent = `${session.campaign.name} · ${session.campaign.dialer_type} · ${session.caller.name || session.caller.username}`;
  $('timeout-note').textContent = `Your session ends if this screen loses contact for ${session.heartbeat_timeout_seconds} s; a call in progress finishes first.`;
  /* Dial and Skip belong to Preview campaigns: elsewhere they would only ever be disabled */
  for (const action of ['dial', 'skip']) {
    document.querySelector(`#actions button[data-action="${action}"]`).hidden = session.campaign.dialer_type !== 'Preview';
  }
  renderSurveyForm();
  renderScript();
  openStream();
  loadDesk();
  const beat = Math.max(5, Math.floor(session.heartbeat_timeout_seconds / 3)) * 1000;
  timers.push(setInterval(() => api.heartbeat().catch(onProblem), beat));
  timers.push(setInterval(() => {
    if (desk) $('since').textContent = formatSince(desk.state_since);
  }, 1000));
}

async function onLogout() {
  try {
    await api.logOut();
  } catch (problem) {
    if (problem.status !== 401) {
      showError(problem.message);
      return;
    }
  }
  showLogin('Logged out.');
}

/* ---- keyboard ---- */

/* The question the caller is on (focus inside it), or else the first one still unanswered. */
function answerWithKeypad(digit) {
  const sets = [...document.querySelectorAll('#questions fieldset')];
  const set = sets.find((s) => s.contains(document.activeElement)) || sets.find((s) => !s.querySelector('input:checked'));
  const input = set?.querySelector(`input[data-keypad="${digit}"]`);
  if (input && !input.disabled) {
    input.checked = true;
    input.focus();
  }
}

function onKey(event) {
  if (!session) return;
  if (event.key === 'Enter' && event.ctrlKey) {
    event.preventDefault();
    submitSurvey(event.shiftKey ? 'stop' : 'continue');
    return;
  }
  /* a chosen response is the end of the survey more often than not: Enter on it saves */
  if (event.key === 'Enter' && !event.altKey && !event.metaKey && event.target.closest?.('#survey') &&
      event.target.tagName === 'INPUT' && ['radio', 'checkbox'].includes(event.target.type)) {
    event.preventDefault();
    submitSurvey('continue');
    return;
  }
  const typing = ['TEXTAREA', 'SELECT'].includes(event.target.tagName) ||
    (event.target.tagName === 'INPUT' && !['radio', 'checkbox'].includes(event.target.type));
  if (typing || event.ctrlKey || event.altKey || event.metaKey) return;
  if (event.key === '?' || (event.key === 'Escape' && !$('help').hidden)) {
    toggleHelp();
    return;
  }
  if (/^[1-9]$/.test(event.key)) {
    answerWithKeypad(event.key);
    event.preventDefault();
    return;
  }
  const action = SHORTCUTS[event.key.toLowerCase()];
  const button = action && document.querySelector(`#actions button[data-action="${action}"]`);
  if (button && !button.disabled && !button.hidden) {
    event.preventDefault();
    button.click();
  }
}

function toggleHelp() {
  const help = $('help');
  help.hidden = !help.hidden;
  $('help-button').setAttribute('aria-expanded', String(!help.hidden));
}

/* ---- start ---- */

function start() {
  $('login').addEventListener('submit', onLogin);
  for (const radio of document.querySelectorAll('input[name="via"]')) radio.addEventListener('change', onViaChange);
  $('survey').addEventListener('submit', onSurvey);
  $('logout').addEventListener('click', onLogout);
  $('help-button').addEventListener('click', toggleHelp);
  for (const button of document.querySelectorAll('#actions button')) {
    button.addEventListener('click', () => act(button.dataset.action));
  }
  document.addEventListener('keydown', onKey);
  $('lead').addEventListener('change', () => {
    renderContact();
    renderScript();
  });
  $('account').value = localStorage.getItem('impact.account') || '';
  api.session().then(enterDesk, () => showLogin(''));
}

start();
