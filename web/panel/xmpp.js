// A compact XMPP client over WebSocket (RFC 7395) for the chat panel:
// SASL EXTERNAL (the webmail session) or PLAIN, resource binding, stream
// management with resumption (XEP-0198), client state indication
// (XEP-0352), iq bookkeeping and archive queries (XEP-0313). It reconnects
// by itself with backoff and resumes the stream, so that a network drop
// loses no message. What the panel shows is not its business: it emits
// events and the element decides.

export const NS = {
  client: 'jabber:client',
  framing: 'urn:ietf:params:xml:ns:xmpp-framing',
  streams: 'http://etherx.jabber.org/streams',
  sasl: 'urn:ietf:params:xml:ns:xmpp-sasl',
  bind: 'urn:ietf:params:xml:ns:xmpp-bind',
  stanzas: 'urn:ietf:params:xml:ns:xmpp-stanzas',
  sm: 'urn:xmpp:sm:3',
  csi: 'urn:xmpp:csi:0',
  roster: 'jabber:iq:roster',
  ping: 'urn:xmpp:ping',
  carbons: 'urn:xmpp:carbons:2',
  forward: 'urn:xmpp:forward:0',
  mam: 'urn:xmpp:mam:2',
  rsm: 'http://jabber.org/protocol/rsm',
  xdata: 'jabber:x:data',
  delay: 'urn:xmpp:delay',
  sid: 'urn:xmpp:sid:0',
  chatstates: 'http://jabber.org/protocol/chatstates',
  markers: 'urn:xmpp:chat-markers:0',
  receipts: 'urn:xmpp:receipts',
  address: 'http://jabber.org/protocol/address',
  hints: 'urn:xmpp:hints',
  vcard: 'vcard-temp',
  discoInfo: 'http://jabber.org/protocol/disco#info',
};

// ---- building XML ----

// XML is markup the builder made; anything else is text and is escaped.
export class XML {
  constructor(s) { this.s = s; }
  toString() { return this.s; }
}

// Characters XML 1.0 does not allow: one of them in a message would end
// the stream with not-well-formed, so they are dropped.
const invalidXML = /[\u0000-\u0008\u000B\u000C\u000E-\u001F\uFFFE\uFFFF]|[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/g;

export function escapeXML(v) {
  return String(v).replace(invalidXML, '').replace(/[&<>"']/g, (c) => ({
    '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&apos;',
  })[c]);
}

// x('message', {to, type}, x('body', {}, text)) builds an element; null,
// undefined and false attributes and children are left out.
export function x(name, attrs = {}, ...children) {
  let s = '<' + name;
  for (const [k, v] of Object.entries(attrs)) {
    if (v !== undefined && v !== null && v !== false) s += ` ${k}="${escapeXML(v)}"`;
  }
  const kids = children.flat(Infinity).filter((c) => c !== null && c !== undefined && c !== false);
  if (kids.length === 0) return new XML(s + '/>');
  return new XML(s + '>' + kids.map((c) => (c instanceof XML ? c.s : escapeXML(c))).join('') + '</' + name + '>');
}

// ---- reading XML ----

export function child(el, ns, name) {
  if (!el) return null;
  for (const c of el.children) {
    if ((name === undefined || c.localName === name) && (ns === undefined || c.namespaceURI === ns)) return c;
  }
  return null;
}

export function children(el, ns, name) {
  return el ? [...el.children].filter((c) => (name === undefined || c.localName === name) && (ns === undefined || c.namespaceURI === ns)) : [];
}

export function childText(el, ns, name) {
  const c = child(el, ns, name);
  return c ? c.textContent : '';
}

export function bare(jid) {
  const s = String(jid || '');
  const i = s.indexOf('/');
  return (i < 0 ? s : s.slice(0, i)).toLowerCase();
}

export function resourceOf(jid) {
  const s = String(jid || '');
  const i = s.indexOf('/');
  return i < 0 ? '' : s.slice(i + 1);
}

export function randomID() {
  return crypto.randomUUID ? crypto.randomUUID() : [...crypto.getRandomValues(new Uint8Array(16))].map((b) => b.toString(16).padStart(2, '0')).join('');
}

// StanzaError is an iq answered with type="error".
export class StanzaError extends Error {
  constructor(el) {
    const e = child(el, NS.client, 'error') || child(el, undefined, 'error');
    const cond = e ? [...e.children].find((c) => c.namespaceURI === NS.stanzas && c.localName !== 'text') : null;
    const text = e ? childText(e, NS.stanzas, 'text') : '';
    super(text || (cond ? cond.localName : 'error'));
    this.condition = cond ? cond.localName : 'undefined-condition';
    this.text = text;
    this.stanza = el;
  }
}

// AuthError: the server refused the credentials or the webmail session.
export class AuthError extends Error {}

const parser = new DOMParser();

function parseFrame(data) {
  const doc = parser.parseFromString(data, 'text/xml');
  const el = doc.documentElement;
  if (!el || el.localName === 'parsererror' || doc.getElementsByTagName('parsererror').length) return null;
  return el;
}

function b64utf8(s) {
  const bytes = new TextEncoder().encode(s);
  let bin = '';
  for (const b of bytes) bin += String.fromCharCode(b);
  return btoa(bin);
}

class Closed extends Error {}

// Client is one account's connection. Events (CustomEvent, details in
// brackets):
//   state     {state: 'connecting'|'online'|'disconnected'|'offline'|'login'|'auth-failed', error, retryIn}
//   session   {jid, resumed}      a session is bound (resumed: XEP-0198 kept it)
//   message   {el}                a message stanza (archive results excluded)
//   presence  {el}
//   rosterpush {el}               the <query/> of a roster push
export class Client extends EventTarget {
  constructor({ url, domain }) {
    super();
    this.url = url;
    this.domain = domain || '';
    this.resource = 'parley-web-' + randomID().slice(0, 8);
    this.jid = '';
    this.state = 'offline';
    this.credentials = null; // {address, password} for PLAIN, when EXTERNAL is not offered
    this.mechanism = '';
    this.features = { csi: false, sm: false };
    this.ws = null;
    this.wanted = false; // the user wants to be connected
    this.attempt = 0;
    this.retryTimer = 0;
    this.iqs = new Map(); // id -> {resolve, reject, timer}
    this.mamQueries = new Map(); // queryid -> array of results
    this.pending = []; // stanzas sent while not online
    this.active = true;
    this.sm = { id: '', on: false, inbound: 0, out: 0, acked: 0, unacked: [], max: 0, askTimer: 0, lastHeard: 0 };
    this.keepalive = 0;
    this._online = () => { if (this.wanted && this.state !== 'online') this._retryNow(); };
    addEventListener('online', this._online);
  }

  _emit(type, detail) { this.dispatchEvent(new CustomEvent(type, { detail })); }

  _setState(state, extra = {}) {
    this.state = state;
    this._emit('state', { state, ...extra });
  }

  // start connects and keeps the connection up until stop.
  start() {
    this.wanted = true;
    if (!this.ws && !this.retryTimer) this._connect();
  }

  // stop ends the session for good: unavailable presence, then the
  // stream's close, and no reconnection.
  stop() {
    this.wanted = false;
    clearTimeout(this.retryTimer);
    this.retryTimer = 0;
    const ws = this.ws;
    if (ws && this.state === 'online') {
      try {
        ws.send(x('presence', { xmlns: NS.client, type: 'unavailable' }).s);
        ws.send(x('close', { xmlns: NS.framing }).s);
      } catch { /* already gone */ }
    }
    this.sm = { id: '', on: false, inbound: 0, out: 0, acked: 0, unacked: [], max: 0, askTimer: 0, lastHeard: 0 };
    this._drop(ws, 1000);
    this._failAll(new Error('offline'));
    this._setState('offline');
  }

  // login gives credentials for PLAIN after a 'login' state.
  login(address, password) {
    this.credentials = { address, password };
    this.wanted = true;
    this._retryNow();
  }

  // send sends a stanza now, or when the connection is back.
  send(stanza) {
    const s = String(stanza);
    if (this.state !== 'online' || !this.ws) {
      this.pending.push(s);
      return;
    }
    this._write(s, true);
  }

  // iq sends an iq and resolves with the result element, or rejects with
  // a StanzaError or a timeout.
  iq(type, payload, { to, timeout = 30000 } = {}) {
    const id = randomID();
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.iqs.delete(id);
        reject(new Error('no answer from the server'));
      }, timeout);
      this.iqs.set(id, { resolve, reject, timer });
      this.send(x('iq', { xmlns: NS.client, type, id, to }, payload));
    });
  }

  // mam queries the archive (XEP-0313). Options: with, before (true for
  // the last page, or an archive id), after, max, start, end, fulltext. It
  // resolves with {messages: [{id, stamp, el}], complete, first, last}.
  async mam({ with: withJID, before, after, max = 75, start, end, fulltext } = {}) {
    const queryid = randomID();
    const fields = [x('field', { var: 'FORM_TYPE', type: 'hidden' }, x('value', {}, NS.mam))];
    if (withJID) fields.push(x('field', { var: 'with' }, x('value', {}, withJID)));
    if (start) fields.push(x('field', { var: 'start' }, x('value', {}, start)));
    if (end) fields.push(x('field', { var: 'end' }, x('value', {}, end)));
    if (fulltext) fields.push(x('field', { var: '{urn:xmpp:fulltext:0}fulltext' }, x('value', {}, fulltext)));
    const rsm = [x('max', {}, String(max))];
    if (before === true) rsm.push(x('before'));
    else if (before) rsm.push(x('before', {}, before));
    if (after) rsm.push(x('after', {}, after));
    const results = [];
    this.mamQueries.set(queryid, results);
    try {
      const res = await this.iq('set', x('query', { xmlns: NS.mam, queryid },
        x('x', { xmlns: NS.xdata, type: 'submit' }, fields), x('set', { xmlns: NS.rsm }, rsm)));
      const fin = child(res, NS.mam, 'fin');
      const set = child(fin, NS.rsm, 'set');
      return {
        messages: results,
        complete: fin?.getAttribute('complete') === 'true',
        first: childText(set, NS.rsm, 'first'),
        last: childText(set, NS.rsm, 'last'),
      };
    } finally {
      this.mamQueries.delete(queryid);
    }
  }

  // setActive tells the server whether the user is looking (XEP-0352).
  setActive(active) {
    if (this.active === active) return;
    this.active = active;
    if (this.state === 'online' && this.features.csi) this._write(x(active ? 'active' : 'inactive', { xmlns: NS.csi }).s, false);
  }

  // ---- connection ----

  _retryNow() {
    clearTimeout(this.retryTimer);
    this.retryTimer = 0;
    if (this.ws) this._drop(this.ws, 4000);
    this._connect();
  }

  _scheduleRetry(error) {
    if (!this.wanted) return;
    // 1s, 2s, 4s ... up to 30s, with jitter so that a restarted server is
    // not met by every browser at once.
    const base = Math.min(30000, 1000 * 2 ** Math.min(this.attempt, 5));
    const delay = Math.round(base * (0.75 + Math.random() * 0.5));
    this.attempt++;
    this._setState('disconnected', { error: error?.message || '', retryIn: delay });
    clearTimeout(this.retryTimer);
    this.retryTimer = setTimeout(() => { this.retryTimer = 0; this._connect(); }, delay);
  }

  _drop(ws, code) {
    if (!ws) return;
    if (ws === this.ws) this.ws = null;
    clearInterval(this.keepalive);
    clearTimeout(this.sm.askTimer);
    ws.onmessage = ws.onclose = ws.onerror = ws.onopen = null;
    try { ws.close(code); } catch { /* closing twice is fine */ }
    if (ws._reject) ws._reject(new Closed('closed'));
  }

  _failAll(err) {
    for (const [, q] of this.iqs) { clearTimeout(q.timer); q.reject(err); }
    this.iqs.clear();
  }

  async _connect() {
    if (!this.wanted) return;
    this._setState('connecting');
    let ws;
    try {
      ws = new WebSocket(this.url, 'xmpp');
    } catch (e) {
      this._scheduleRetry(e);
      return;
    }
    this.ws = ws;
    const queue = [];
    ws._waiters = [];
    ws.onmessage = (ev) => {
      const el = parseFrame(ev.data);
      if (!el) return;
      this.sm.lastHeard = Date.now();
      if (ws._live) this._handle(el);
      else if (ws._waiters.length) ws._waiters.shift().resolve(el);
      else queue.push(el);
    };
    const closed = new Promise((_, reject) => { ws._reject = reject; });
    closed.catch(() => {});
    ws.onclose = () => this._lost(ws, new Error('the connection closed'));
    ws.onerror = () => {}; // onclose follows
    const next = () => queue.length ? Promise.resolve(queue.shift())
      : Promise.race([new Promise((resolve) => ws._waiters.push({ resolve })), closed]);
    try {
      await Promise.race([new Promise((resolve) => { ws.onopen = resolve; }), closed]);
      const features = await this._openStream(ws, next);
      await this._authenticate(ws, next, features);
      const features2 = await this._openStream(ws, next);
      this.features.csi = !!child(features2, NS.csi, 'csi');
      this.features.sm = !!child(features2, NS.sm, 'sm');
      let resumed = false;
      if (this.sm.id && this.features.sm) resumed = await this._resume(ws, next);
      if (!resumed) await this._bind(ws, next);
      // From here every frame is handled as it comes.
      ws._live = true;
      for (const el of queue.splice(0)) this._handle(el);
      this.attempt = 0;
      this._startKeepalive(ws);
      this._setState('online', { resumed });
      if (!resumed && !this.active && this.features.csi) this._write(x('inactive', { xmlns: NS.csi }).s, false);
      this._emit('session', { jid: this.jid, resumed });
      const pending = this.pending.splice(0);
      for (const s of pending) this._write(s, true);
    } catch (e) {
      if (ws !== this.ws) return; // replaced or stopped meanwhile
      if (e instanceof AuthError) {
        this._drop(ws, 1000);
        this.wanted = false;
        this._setState(this.mechanism === 'PLAIN' ? 'login' : 'auth-failed', { error: e.message });
        return;
      }
      if (e.needLogin) {
        this._drop(ws, 1000);
        this.wanted = false;
        this._setState('login', { error: '' });
        return;
      }
      this._drop(ws, 4000);
      this._scheduleRetry(e);
    }
  }

  async _openStream(ws, next) {
    ws.send(x('open', { xmlns: NS.framing, to: this.domain || undefined, version: '1.0' }).s);
    for (;;) {
      const el = await next();
      if (el.localName === 'open') {
        if (!this.domain) this.domain = el.getAttribute('from') || '';
        continue;
      }
      if (el.localName === 'features') return el;
      if (el.localName === 'error') throw new Error(this._streamErrorText(el));
      if (el.localName === 'close') throw new Error('the server closed the stream');
    }
  }

  async _authenticate(ws, next, features) {
    const mechs = children(child(features, NS.sasl, 'mechanisms'), NS.sasl, 'mechanism').map((m) => m.textContent.trim());
    let payload;
    if (mechs.includes('EXTERNAL')) {
      // The webmail session vouches for the user: no password (RFC 6120
      // 6.4.2, "=" is the empty authorization identity).
      this.mechanism = 'EXTERNAL';
      ws.send(x('auth', { xmlns: NS.sasl, mechanism: 'EXTERNAL' }, '=').s);
    } else if (mechs.includes('PLAIN') && this.credentials) {
      this.mechanism = 'PLAIN';
      const { address, password } = this.credentials;
      payload = b64utf8('\0' + address + '\0' + password);
      ws.send(x('auth', { xmlns: NS.sasl, mechanism: 'PLAIN' }, payload).s);
    } else if (mechs.includes('PLAIN')) {
      this.mechanism = 'PLAIN';
      const e = new Error('log in');
      e.needLogin = true;
      throw e;
    } else {
      throw new AuthError('the server offers no login this panel can use (' + mechs.join(', ') + ')');
    }
    const res = await next();
    if (res.localName === 'success') return;
    if (res.localName === 'failure') {
      const text = childText(res, NS.sasl, 'text');
      if (this.mechanism === 'EXTERNAL') throw new AuthError(text || 'your webmail session has ended; log in again');
      throw new AuthError(text || 'wrong address or password');
    }
    throw new Error('unexpected answer to authentication: ' + res.localName);
  }

  async _resume(ws, next) {
    ws.send(x('resume', { xmlns: NS.sm, previd: this.sm.id, h: String(this.sm.inbound >>> 0) }).s);
    const res = await next();
    if (res.localName === 'resumed') {
      this.sm.on = true;
      this._ack(Number(res.getAttribute('h')));
      // What the server never got goes again; the server counts it anew.
      const again = this.sm.unacked.splice(0);
      this.sm.out = this.sm.acked;
      for (const s of again) this._write(s, true, ws);
      return true;
    }
    // The old session is gone: its unacknowledged messages go again on
    // the new one (a duplicate is better than a loss); iqs and presence
    // belong to the old session and are redone by the panel.
    const lost = this.sm.unacked.filter((s) => s.startsWith('<message'));
    this.sm = { id: '', on: false, inbound: 0, out: 0, acked: 0, unacked: [], max: 0, askTimer: 0, lastHeard: Date.now() };
    this.pending.unshift(...lost);
    this._failAll(new Error('the session was lost'));
    return false;
  }

  async _bind(ws, next) {
    const id = randomID();
    ws.send(x('iq', { xmlns: NS.client, type: 'set', id }, x('bind', { xmlns: NS.bind }, x('resource', {}, this.resource))).s);
    const res = await next();
    if (res.getAttribute('type') !== 'result') throw new Error('binding a resource failed: ' + new StanzaError(res).message);
    this.jid = childText(child(res, NS.bind, 'bind'), NS.bind, 'jid');
    this.resource = resourceOf(this.jid) || this.resource;
    this.sm = { id: '', on: false, inbound: 0, out: 0, acked: 0, unacked: [], max: 0, askTimer: 0, lastHeard: Date.now() };
    if (this.features.sm) {
      ws.send(x('enable', { xmlns: NS.sm, resume: 'true' }).s);
      const en = await next();
      if (en.localName === 'enabled') {
        this.sm.on = true;
        this.sm.id = en.getAttribute('resume') === 'true' || en.getAttribute('resume') === '1' ? en.getAttribute('id') || '' : '';
        this.sm.max = Number(en.getAttribute('max') || 0);
      }
    }
  }

  _lost(ws, err) {
    if (ws !== this.ws) return;
    this._drop(ws, 4000);
    if (!this.sm.id) this._failAll(err);
    this._scheduleRetry(err);
  }

  // _startKeepalive asks the server for an ack after a quiet minute and
  // drops the connection when none comes: a dead network often closes no
  // socket, and only a reconnection brings the messages back.
  _startKeepalive(ws) {
    clearInterval(this.keepalive);
    this.keepalive = setInterval(() => {
      if (ws !== this.ws) return;
      const quiet = Date.now() - this.sm.lastHeard;
      if (quiet > 75000) {
        this._lost(ws, new Error('the server stopped answering'));
      } else if (quiet > 45000) {
        if (this.sm.on) this._write(x('r', { xmlns: NS.sm }).s, false);
        else this.iq('get', x('ping', { xmlns: NS.ping }), { timeout: 20000 }).catch(() => {});
      }
    }, 15000);
  }

  _write(s, stanza, ws = this.ws) {
    if (!ws) { if (stanza) this.pending.push(s); return; }
    try {
      ws.send(s);
    } catch {
      if (stanza) this.pending.push(s);
      return;
    }
    if (stanza && this.sm.on) {
      this.sm.out++;
      this.sm.unacked.push(s);
      // Ask for an ack soon, once for a burst of stanzas.
      if (!this.sm.askTimer) {
        this.sm.askTimer = setTimeout(() => {
          this.sm.askTimer = 0;
          if (this.ws === ws && this.sm.unacked.length) {
            try { ws.send(x('r', { xmlns: NS.sm }).s); } catch { /* reconnect handles it */ }
          }
        }, 500);
      }
    }
  }

  _ack(h) {
    if (!Number.isFinite(h)) return;
    const n = (h - this.sm.acked) >>> 0;
    this.sm.unacked.splice(0, Math.min(n, this.sm.unacked.length));
    this.sm.acked = h >>> 0;
  }

  _streamErrorText(el) {
    const cond = [...el.children].find((c) => c.localName !== 'text');
    const text = childText(el, 'urn:ietf:params:xml:ns:xmpp-streams', 'text');
    return text || (cond ? cond.localName : 'stream error');
  }

  _handle(el) {
    const name = el.localName;
    if (el.namespaceURI === NS.sm) {
      if (name === 'r') this._write(x('a', { xmlns: NS.sm, h: String(this.sm.inbound >>> 0) }).s, false);
      else if (name === 'a') this._ack(Number(el.getAttribute('h')));
      return;
    }
    if (name === 'error' && el.namespaceURI === NS.streams) {
      const cond = [...el.children].find((c) => c.localName !== 'text')?.localName || '';
      const ws = this.ws;
      this._drop(ws, 1000);
      // The server ended this session: it cannot be resumed.
      this.sm.id = '';
      this._failAll(new Error(this._streamErrorText(el)));
      if (cond === 'not-authorized' || cond === 'conflict') {
        this.wanted = false;
        this._setState(cond === 'conflict' ? 'offline' : 'auth-failed', { error: this._streamErrorText(el) });
        return;
      }
      this._scheduleRetry(new Error(this._streamErrorText(el)));
      return;
    }
    if (name === 'close') {
      const ws = this.ws;
      this._drop(ws, 1000);
      this.sm.id = '';
      this._scheduleRetry(new Error('the server closed the stream'));
      return;
    }
    if (name !== 'message' && name !== 'presence' && name !== 'iq') return;
    if (this.sm.on) this.sm.inbound = (this.sm.inbound + 1) >>> 0;
    if (name === 'iq') {
      this._handleIQ(el);
    } else if (name === 'message') {
      const result = child(el, NS.mam, 'result');
      const from = el.getAttribute('from');
      if (result && (!from || bare(from) === bare(this.jid))) {
        const list = this.mamQueries.get(result.getAttribute('queryid'));
        if (list) {
          const fwd = child(result, NS.forward, 'forwarded');
          const msg = child(fwd, NS.client, 'message');
          const stamp = child(fwd, NS.delay, 'delay')?.getAttribute('stamp');
          if (msg) list.push({ id: result.getAttribute('id'), stamp: stamp ? new Date(stamp) : new Date(), el: msg });
        }
        return;
      }
      this._emit('message', { el });
    } else {
      this._emit('presence', { el });
    }
  }

  _handleIQ(el) {
    const type = el.getAttribute('type');
    const id = el.getAttribute('id');
    if (type === 'result' || type === 'error') {
      const q = this.iqs.get(id);
      if (!q) return;
      this.iqs.delete(id);
      clearTimeout(q.timer);
      if (type === 'result') q.resolve(el);
      else q.reject(new StanzaError(el));
      return;
    }
    const from = el.getAttribute('from');
    const payload = el.firstElementChild;
    const reply = (kids, errorCond) => {
      const attrs = { xmlns: NS.client, type: errorCond ? 'error' : 'result', id, to: from || undefined };
      const err = errorCond ? x('error', { type: 'cancel' }, x(errorCond, { xmlns: NS.stanzas })) : null;
      this._write(x('iq', attrs, kids, err).s, true);
    };
    const fromServer = !from || from === this.domain || bare(from) === bare(this.jid);
    if (payload?.namespaceURI === NS.ping) {
      reply();
    } else if (type === 'set' && payload?.namespaceURI === NS.roster && fromServer) {
      reply();
      this._emit('rosterpush', { el: payload });
    } else if (type === 'get' && payload?.namespaceURI === NS.discoInfo) {
      reply(x('query', { xmlns: NS.discoInfo },
        x('identity', { category: 'client', type: 'web', name: 'Parley' }),
        [NS.discoInfo, NS.chatstates, NS.markers, NS.receipts, NS.ping].map((v) => x('feature', { var: v }))));
    } else {
      reply(null, 'service-unavailable');
    }
  }
}
