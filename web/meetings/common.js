// Shared helpers of the meeting pages. No framework, no build step.
'use strict';

// root is the URL of the meetings area ("…/meetings/"), wherever the host
// mounted it: every API call and page link is relative to it.
const root = (() => {
  const p = location.pathname;
  const i = p.lastIndexOf('/meetings/');
  return i >= 0 ? p.slice(0, i + '/meetings/'.length) : '/meetings/';
})();

// The error messages users see, by API error code.
const messages = {
  title_required: 'Please give the meeting a title.',
  bad_rrule: 'The recurrence rule is not valid.',
  bad_schedule: 'The schedule is not valid.',
  wrong_password: 'Wrong password.',
  throttled: 'Too many wrong passwords. Please wait a few minutes.',
  login_required: 'This meeting is for logged-in users only.',
  name_required: 'Please enter your name.',
  not_allowed: 'You are not allowed to do that.',
  not_admitted: 'You are not in the meeting yet.',
  bad_credential: 'Your session in this meeting has ended.',
  archived: 'This meeting has ended and is read-only.',
  file_blocked: 'This type of file may not be shared.',
  file_too_large: 'The file is too large.',
  files_disabled: 'File sharing is not available.',
  not_found: 'This meeting does not exist (any more).',
};

class APIError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

// api calls the JSON API: path is relative to the API root.
async function api(method, path, body, headers) {
  const opts = { method, headers: Object.assign({}, headers || {}), credentials: 'same-origin' };
  if (body !== undefined && !(body instanceof Blob)) {
    opts.headers['Content-Type'] = 'application/json';
    opts.body = JSON.stringify(body);
  } else if (body instanceof Blob) {
    opts.body = body;
  }
  const res = await fetch(root + 'api/' + path, opts);
  if (res.status === 204) return null;
  let data = null;
  try { data = await res.json(); } catch (e) { /* not JSON */ }
  if (!res.ok) {
    const err = (data && data.error) || { code: 'internal', message: res.statusText };
    throw new APIError(res.status, err.code, err.message);
  }
  return data;
}

// explain turns an error into a sentence for the user: the server's own
// message when it is specific, else the generic one for its code.
function explain(err) {
  if (err instanceof APIError) {
    const generic = messages[err.code];
    const m = err.message || '';
    if (m && err.code !== 'internal') return m.charAt(0).toUpperCase() + m.slice(1) + (m.endsWith('.') ? '' : '.');
    return generic || 'Something went wrong.';
  }
  return 'Network error: ' + (err && err.message ? err.message : err);
}

function $(sel, el) { return (el || document).querySelector(sel); }
function $$(sel, el) { return Array.from((el || document).querySelectorAll(sel)); }

// h builds an element: h('div', {class: 'x', onclick: f}, 'text', child…).
function h(tag, attrs, ...kids) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith('on')) el.addEventListener(k.slice(2), v);
    else if (k === 'class') el.className = v;
    else if (k === 'dataset') Object.assign(el.dataset, v);
    else if (v === true) el.setAttribute(k, '');
    else el.setAttribute(k, v);
  }
  for (const kid of kids.flat()) {
    if (kid === null || kid === undefined || kid === false) continue;
    el.append(kid instanceof Node ? kid : document.createTextNode(String(kid)));
  }
  return el;
}

function toast(text, kind) {
  let box = $('#toasts');
  if (!box) { box = h('div', { id: 'toasts', role: 'status', 'aria-live': 'polite' }); document.body.append(box); }
  const t = h('div', { class: 'toast ' + (kind || '') }, text);
  box.append(t);
  setTimeout(() => t.remove(), kind === 'error' ? 6000 : 3500);
}

// absLink makes a meeting link absolute, for copying.
function absLink(link) { return new URL(link, location.href).href; }

async function copyText(text) {
  try {
    await navigator.clipboard.writeText(text);
  } catch (e) {
    const ta = h('textarea', {}, text);
    document.body.append(ta);
    ta.select();
    document.execCommand('copy');
    ta.remove();
  }
  toast('Link copied');
}

function fmtDate(iso) {
  if (!iso) return '';
  const d = new Date(iso);
  return d.toLocaleString(undefined, { weekday: 'short', year: 'numeric', month: 'short', day: 'numeric', hour: '2-digit', minute: '2-digit' });
}

function fmtBytes(n) {
  if (n < 1024) return n + ' B';
  const units = ['KB', 'MB', 'GB', 'TB'];
  let i = -1;
  do { n /= 1024; i++; } while (n >= 1024 && i < units.length - 1);
  return n.toFixed(n < 10 ? 1 : 0) + ' ' + units[i];
}

function initials(name) {
  const parts = String(name || '?').trim().split(/[\s@._-]+/).filter(Boolean);
  return ((parts[0] || '?')[0] + (parts[1] ? parts[1][0] : '')).toUpperCase();
}

// describeRule says an RRULE in words, for cards.
function describeRule(rule) {
  if (!rule) return '';
  const f = /FREQ=(\w+)/.exec(rule);
  const count = /COUNT=(\d+)/.exec(rule);
  const until = /UNTIL=(\d{8})/.exec(rule);
  const interval = /INTERVAL=(\d+)/.exec(rule);
  const names = { DAILY: 'day', WEEKLY: 'week', MONTHLY: 'month', YEARLY: 'year' };
  let s = f ? 'Every ' + (interval && interval[1] !== '1' ? interval[1] + ' ' + names[f[1]] + 's' : names[f[1]] || f[1].toLowerCase()) : rule;
  if (count) s += ', ' + count[1] + ' times';
  if (until) s += ', until ' + until[1].replace(/(\d{4})(\d\d)(\d\d)/, '$1-$2-$3');
  return s;
}

function scheduleSummary(m) {
  if (m.archived) return 'Ended · archived';
  if (!m.schedule) return 'Not scheduled · open any time';
  const parts = [];
  if (m.next) parts.push('Next: ' + fmtDate(m.next.start));
  else parts.push('No more occurrences');
  if (m.schedule.rrule) parts.push(describeRule(m.schedule.rrule));
  return parts.join(' · ');
}

// Time zones for the schedule forms: the browser's list when it has one.
function timeZones() {
  const here = Intl.DateTimeFormat().resolvedOptions().timeZone || 'UTC';
  let zones = [];
  try { zones = Intl.supportedValuesOf('timeZone'); } catch (e) { zones = []; }
  if (!zones.includes(here)) zones.unshift(here);
  if (!zones.includes('UTC')) zones.unshift('UTC');
  return { here, zones };
}

function fillZones(select, value) {
  const { here, zones } = timeZones();
  select.replaceChildren(...zones.map(z => h('option', { value: z }, z)));
  select.value = value || here;
}

// The repeat control: a preset or a custom RRULE.
function ruleFromForm(freq, count, custom) {
  if (freq === 'none') return '';
  if (freq === 'custom') return custom.trim();
  let r = 'FREQ=' + freq;
  if (count && Number(count) > 0) r += ';COUNT=' + Number(count);
  return r;
}

function formFromRule(rule) {
  if (!rule) return { freq: 'none', count: '', custom: '' };
  const m = /^FREQ=(DAILY|WEEKLY|MONTHLY|YEARLY)(?:;COUNT=(\d+))?$/.exec(rule);
  if (m) return { freq: m[1], count: m[2] || '', custom: '' };
  return { freq: 'custom', count: '', custom: rule };
}

// showFieldError puts a message under the field with the given id.
function showFieldError(id, text) {
  const input = document.getElementById(id);
  const slot = document.getElementById(id + '-error');
  if (input) input.classList.toggle('invalid', !!text);
  if (slot) { slot.textContent = text || ''; slot.hidden = !text; }
}

function clearErrors(form) {
  $$('.invalid', form).forEach(el => el.classList.remove('invalid'));
  $$('.error-text', form).forEach(el => { el.textContent = ''; el.hidden = true; });
  $$('.alert.error', form).forEach(el => { el.hidden = true; });
}

// routeError puts an API error where it belongs in a form.
function routeError(form, err) {
  const text = explain(err);
  const where = {
    title_required: 'title', bad_rrule: 'rrule', bad_schedule: 'schedule-start',
    wrong_password: 'password', name_required: 'name', throttled: 'password',
  }[err.code];
  if (where && document.getElementById(where)) {
    showFieldError(where, text);
    const el = document.getElementById(where);
    if (el && el.offsetParent !== null) el.focus();
    return;
  }
  const alert = $('.alert.error', form);
  if (alert) { alert.textContent = text; alert.hidden = false; } else toast(text, 'error');
}
