// <parley-chat>: Parley's chat panel for a webmail page. One script tag and
// one element:
//
//   <script type="module" src="/parley/panel/parley-chat.js"></script>
//   <parley-chat></parley-chat>
//
// It speaks XMPP over WebSocket to Parley (see xmpp.js), logs in with the
// webmail session (SASL EXTERNAL) or, when the server does not offer that,
// with a login form. README.md documents the attributes, CSS custom
// properties, JavaScript API and events.

import { Client, NS, x, child, children, childText, bare, randomID, StanzaError } from './xmpp.js';
import { linkify, findLinks, safeHref } from './linkify.js';
import { FileLinks, Uploader, UploadError, NS_OOB, fileInfo, knowFile, linkCard, formatSize, formatMB } from './files.js';

const here = new URL('.', import.meta.url);

// The chat view opens on the most recent HISTORY_LINES messages of the
// last HISTORY_DAYS days, as in the webmail products users know; older
// pages come as they scroll up.
const HISTORY_LINES = 75;
const HISTORY_DAYS = 30;
// At most LIST_CAP contacts are drawn at once: with thousands of users on
// a domain, typing in "Chat with..." narrows the list instead.
const LIST_CAP = 200;
// Parley's domain roster puts the domain's aliases in this group.
const ALIAS_GROUP = 'Aliases';

export const INVALID_CONTACT = "Invalid value for the name and XMPP address. Please use the format 'Name <username@example.org>'";

const STATUS_LABEL = { available: 'Available', chat: 'Available', away: 'Away', xa: 'Away', dnd: 'Do not disturb', offline: 'Offline' };
const SHOW_RANK = { chat: 0, available: 1, away: 2, xa: 3, dnd: 4 };
const OWN_STATUSES = [['available', 'Available'], ['away', 'Away'], ['dnd', 'Do Not Disturb'], ['offline', 'Offline']];

// Actions (...) of a conversation, all built in: sending a file (the
// upload service, XEP-0363), starting a meeting, and audio and video
// calls (both Parley's meeting service, whose rooms run on its SFU). A
// host may replace any of them, or add its own, with
// ParleyChat.defineAction.
const actions = new Map([
  ['file', { label: 'Send a file', run: (ctx) => ctx.element._fileAction(ctx) }],
  ['meeting', { label: 'Start a meeting', run: (ctx) => ctx.element._meetingAction(ctx) }],
  ['audio', { label: 'Audio call', run: (ctx) => ctx.element._callAction(ctx, 'audio') }],
  ['video', { label: 'Video call', run: (ctx) => ctx.element._callAction(ctx, 'video') }],
]);

// XEP-0482 call invites: a call link posted in a chat carries one, so
// that clients that know them offer to join (the body has the link for
// the others).
const NS_CALL = 'urn:xmpp:call-invites:0';

const icon = {
  chat: '<svg viewBox="0 0 24 24" aria-hidden="true"><path d="M4 4h16a2 2 0 0 1 2 2v10a2 2 0 0 1-2 2H9l-5 4v-4H4a2 2 0 0 1-2-2V6a2 2 0 0 1 2-2z"/></svg>',
  burger: '<svg viewBox="0 0 24 24" aria-hidden="true"><path d="M3 6h18M3 12h18M3 18h18"/></svg>',
  popout: '<svg viewBox="0 0 24 24" aria-hidden="true"><path d="M14 4h6v6M20 4l-9 9M18 14v5a1 1 0 0 1-1 1H5a1 1 0 0 1-1-1V7a1 1 0 0 1 1-1h5"/></svg>',
  close: '<svg viewBox="0 0 24 24" aria-hidden="true"><path d="M6 6l12 12M18 6L6 18"/></svg>',
  add: '<svg viewBox="0 0 24 24" aria-hidden="true"><path d="M12 5v14M5 12h14"/></svg>',
  more: '<svg viewBox="0 0 24 24" aria-hidden="true"><circle cx="5" cy="12" r="1.6"/><circle cx="12" cy="12" r="1.6"/><circle cx="19" cy="12" r="1.6"/></svg>',
  search: '<svg viewBox="0 0 24 24" aria-hidden="true"><circle cx="11" cy="11" r="6"/><path d="M20 20l-4.5-4.5"/></svg>',
  back: '<svg viewBox="0 0 24 24" aria-hidden="true"><path d="M15 5l-7 7 7 7"/></svg>',
  send: '<svg viewBox="0 0 24 24" aria-hidden="true"><path d="M4 12l16-8-6 16-2.5-6.5z"/></svg>',
  folder: '<svg viewBox="0 0 24 24" aria-hidden="true"><path d="M3 7a2 2 0 0 1 2-2h4l2 2h8a2 2 0 0 1 2 2v8a2 2 0 0 1-2 2H5a2 2 0 0 1-2-2z"/></svg>',
  history: '<svg viewBox="0 0 24 24" aria-hidden="true"><path d="M3.5 12a8.5 8.5 0 1 0 2.5-6"/><path d="M3 3.5V8h4.5"/><path d="M12 7.5V12l3 2"/></svg>',
};

// Icons built with the DOM (no markup strings at render time).
const SVG = 'http://www.w3.org/2000/svg';
function svgIcon(paths) {
  const svg = document.createElementNS(SVG, 'svg');
  svg.setAttribute('viewBox', '0 0 24 24');
  svg.setAttribute('aria-hidden', 'true');
  for (const d of paths) {
    const p = document.createElementNS(SVG, 'path');
    p.setAttribute('d', d);
    svg.append(p);
  }
  return svg;
}
// Card pictures come from the linked sites. When the page's
// Content-Security-Policy refuses them (img-src 'self'), the first refusal
// stops the others from being tried.
const cardImages = new Set();
let cardImagesRefused = false;
document.addEventListener('securitypolicyviolation', (e) => {
  if (cardImages.has(e.blockedURI)) cardImagesRefused = true;
});

const ICON_FILE = ['M14 3H7a2 2 0 0 0-2 2v14a2 2 0 0 0 2 2h10a2 2 0 0 0 2-2V8z', 'M14 3v5h5'];
const ICON_DOWNLOAD = ['M12 4v11', 'M7 10l5 5 5-5', 'M5 20h14'];
const ICON_VIDEO = ['M4 7a2 2 0 0 1 2-2h8a2 2 0 0 1 2 2v10a2 2 0 0 1-2 2H6a2 2 0 0 1-2-2z', 'M16 10l5-3v10l-5-3'];
const ICON_PHONE = ['M5 4h4l2 5-2.5 1.5a11 11 0 0 0 5 5L15 13l5 2v4a2 2 0 0 1-2 2A16 16 0 0 1 3 6a2 2 0 0 1 2-2z'];

const template = `
<button class="launcher" type="button" aria-haspopup="dialog" aria-expanded="false" aria-label="Chat">
  ${icon.chat}<span class="badge" hidden></span>
</button>
<section class="panel" role="dialog" aria-label="Chat" hidden>
  <header class="bar">
    <button class="icon burger" type="button" aria-label="Show or hide the contact list" aria-expanded="true">${icon.burger}</button>
    <h2 class="title">Chat</h2>
    <span class="conn" role="status" aria-live="polite"></span>
    <span class="spacer"></span>
    <div class="menu-wrap">
      <button class="me" type="button" aria-haspopup="menu" aria-expanded="false" aria-label="Your status">
        <span class="avatar"></span><span class="dot"></span>
      </button>
      <div class="menu status-menu" role="menu" aria-label="Your status" hidden>
        <div class="menu-head"><strong class="me-name"></strong><span class="me-jid"></span></div>
        ${OWN_STATUSES.map(([s, l]) => `<button type="button" role="menuitemradio" aria-checked="false" data-status="${s}"><span class="dot ${s}"></span>${l}</button>`).join('')}
        <hr>
        <button type="button" role="menuitemcheckbox" aria-checked="true" data-action="show-offline">Show offline contacts</button>
        <button type="button" role="menuitem" data-action="notifications">Desktop notifications…</button>
      </div>
    </div>
    <button class="icon popout" type="button" aria-label="Open chat in its own window" title="Open in its own window">${icon.popout}</button>
    <button class="icon close" type="button" aria-label="Close chat" title="Close">${icon.close}</button>
  </header>
  <div class="notice" role="alert" hidden></div>
  <div class="body">
    <nav class="side" aria-label="Contacts">
      <div class="chatwith">
        <input type="search" class="filter" placeholder="Chat with..." aria-label="Chat with: type a name or address" autocomplete="off" spellcheck="false">
      </div>
      <div class="invites" hidden>
        <h3>Invitations</h3>
        <ul class="invite-list"></ul>
      </div>
      <div class="list-head">
        <h3>Contacts</h3>
        <button class="icon add" type="button" aria-label="Add a contact" title="Add a contact">${icon.add}</button>
      </div>
      <ul class="list" aria-label="Contacts"></ul>
      <p class="list-more" hidden></p>
    </nav>
    <main class="conv" aria-label="Conversation">
      <div class="placeholder">
        <p>Choose a contact, or type a name in <em>Chat with...</em>, to start chatting.</p>
      </div>
      <form class="login" hidden>
        <h3>Log in to chat</h3>
        <label>Address <input name="address" type="email" autocomplete="username" required></label>
        <label>Password <input name="password" type="password" autocomplete="current-password" required></label>
        <p class="error" role="alert"></p>
        <button type="submit" class="primary">Log in</button>
      </form>
      <div class="thread" hidden>
        <header class="conv-head">
          <button class="icon back" type="button" aria-label="Back to contacts">${icon.back}</button>
          <span class="avatar peer-avatar"></span>
          <div class="who"><strong class="peer-name"></strong><span class="peer-status"></span></div>
          <button class="icon files-toggle" type="button" aria-label="Files shared in this conversation" aria-expanded="false" aria-controls="parley-files" title="Files shared in this conversation">${icon.folder}</button>
          <button class="icon history-toggle" type="button" aria-label="Past chat sessions" aria-expanded="false" aria-controls="parley-history" title="History: past chat sessions">${icon.history}</button>
          <button class="icon search-toggle" type="button" aria-label="Search this conversation" title="Search history">${icon.search}</button>
          <div class="menu-wrap">
            <button class="icon actions" type="button" aria-haspopup="menu" aria-expanded="false" aria-label="Actions" title="Actions">${icon.more}</button>
            <div class="menu actions-menu" role="menu" aria-label="Actions" hidden></div>
          </div>
        </header>
        <form class="search" role="search" hidden>
          <input type="search" name="q" placeholder="Search this conversation" aria-label="Search this conversation">
          <button type="submit">Search</button>
          <button type="button" class="search-close">Close</button>
        </form>
        <div class="results" role="region" aria-label="Search results" hidden></div>
        <section class="files-panel" id="parley-files" aria-labelledby="parley-files-title" hidden>
          <div class="files-head"><h3 id="parley-files-title">Files</h3><button type="button" class="small files-close">Close</button></div>
          <div class="files-body"></div>
        </section>
        <section class="history-panel" id="parley-history" aria-labelledby="parley-history-title" hidden>
          <div class="files-head history-head">
            <button type="button" class="icon history-back" aria-label="Back to the list of chat sessions" title="Back to the list" hidden>${icon.back}</button>
            <h3 id="parley-history-title">History</h3>
            <button type="button" class="small history-window" title="Open this chat session in a new window" hidden>New window</button>
            <button type="button" class="small history-close">Close</button>
          </div>
          <div class="history-body"></div>
        </section>
        <div class="log" role="log" aria-label="Messages" tabindex="0"></div>
        <div class="drop-hint" aria-hidden="true" hidden><p>Drop files here to send them</p></div>
        <div class="typing" aria-live="polite"></div>
        <ul class="uploads" aria-label="Files being sent" hidden></ul>
        <input type="file" class="file-input" multiple hidden tabindex="-1" aria-hidden="true">
        <form class="compose">
          <textarea rows="1" maxlength="10000" placeholder="Type a message" aria-label="Message"></textarea>
          <button type="submit" class="send" aria-label="Send">${icon.send}</button>
        </form>
      </div>
    </main>
  </div>
  <dialog class="add-dialog" aria-labelledby="add-title">
    <form class="add-form">
      <h3 id="add-title">Add a contact</h3>
      <label for="add-who">Search name or email address</label>
      <input id="add-who" name="who" autocomplete="off" spellcheck="false" role="combobox" aria-autocomplete="list"
        aria-expanded="false" aria-controls="add-results" placeholder="Name, address, or Name &lt;user@other.example&gt;">
      <ul id="add-results" class="add-results" role="listbox" aria-label="People found"></ul>
      <label for="add-groups">Groups <span class="hint">(optional, separated by commas)</span></label>
      <input id="add-groups" name="groups" autocomplete="off">
      <p class="error" role="alert"></p>
      <div class="buttons">
        <button type="button" class="cancel">Cancel</button>
        <button type="submit" class="primary">Add</button>
      </div>
    </form>
  </dialog>
  <dialog class="meet-dialog" aria-labelledby="meet-title" aria-describedby="meet-about">
    <form class="meet-form">
      <h3 id="meet-title">Start a meeting</h3>
      <p id="meet-about" class="hint meet-about"></p>
      <label for="meet-room">Room name <span class="hint">(optional)</span></label>
      <input id="meet-room" name="room" maxlength="200" autocomplete="off">
      <p class="error" role="alert"></p>
      <div class="buttons">
        <button type="button" class="cancel">Cancel</button>
        <button type="submit" class="primary">Start meeting</button>
      </div>
    </form>
  </dialog>
</section>`;

function initials(name) {
  const words = String(name || '?').replace(/@.*/, '').split(/[\s._-]+/).filter(Boolean);
  return ((words[0]?.[0] || '?') + (words.length > 1 ? words.at(-1)[0] : '')).toUpperCase();
}

function localPart(jid) {
  return String(jid).split('@')[0];
}

const collator = new Intl.Collator(undefined, { sensitivity: 'base' });
const timeFmt = new Intl.DateTimeFormat(undefined, { hour: '2-digit', minute: '2-digit' });
const dayFmt = new Intl.DateTimeFormat(undefined, { weekday: 'long', day: 'numeric', month: 'long', year: 'numeric' });

const shortDayFmt = new Intl.DateTimeFormat(undefined, { weekday: 'short', day: 'numeric', month: 'short', year: 'numeric' });

// spanLabel: a chat session's time span, "Today, 10:02 – 10:15".
function spanLabel(a, b) {
  const day = (d) => { const l = dayLabel(d); return l === 'Today' || l === 'Yesterday' ? l : shortDayFmt.format(d); };
  const [d1, d2, t1, t2] = [day(a), day(b), timeFmt.format(a), timeFmt.format(b)];
  if (d1 !== d2) return `${d1}, ${t1} – ${d2}, ${t2}`;
  return t1 === t2 ? `${d1}, ${t1}` : `${d1}, ${t1} – ${t2}`;
}

// sessionOf checks one chat session from api/conversations (or a caller):
// {start, end} are kept as the server wrote them, for the archive query.
function sessionOf(c) {
  if (!c || typeof c.start !== 'string' || typeof c.end !== 'string') return null;
  const startDate = new Date(c.start);
  const endDate = new Date(c.end);
  if (Number.isNaN(startDate.getTime()) || Number.isNaN(endDate.getTime())) return null;
  return {
    start: c.start, end: c.end, startDate, endDate,
    messages: Number.isFinite(c.messages) ? c.messages : 0,
    preview: typeof c.preview === 'string' ? c.preview : '',
  };
}

// callInvite reads a message's XEP-0482 call invite: {video, uri} of its
// first external way to join over http(s), or null.
function callInvite(el) {
  const inv = child(el, NS_CALL, 'invite');
  if (!inv) return null;
  const ext = children(inv, NS_CALL, 'external').map((e) => safeHref(e.getAttribute('uri') || '')).find(Boolean);
  return ext ? { video: inv.getAttribute('video') === 'true' || inv.getAttribute('video') === '1', uri: ext } : null;
}

// Meeting details for the cards of meeting links, asked for once per link.
const meetingInfos = new Map();
function meetingInfo(api) {
  if (!meetingInfos.has(api)) {
    meetingInfos.set(api, fetch(api, { credentials: 'same-origin', headers: { Accept: 'application/json' } })
      .then((r) => (r.ok ? r.json() : null)).catch(() => null));
  }
  return meetingInfos.get(api);
}

function dayLabel(d) {
  const today = new Date();
  const start = (t) => new Date(t.getFullYear(), t.getMonth(), t.getDate()).getTime();
  const diff = Math.round((start(today) - start(d)) / 86400000);
  if (diff === 0) return 'Today';
  if (diff === 1) return 'Yesterday';
  return dayFmt.format(d);
}

function h(tag, props = {}, ...kids) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(props)) {
    if (v === undefined || v === null || v === false) continue;
    if (k === 'class') el.className = v;
    else if (k === 'text') el.textContent = v;
    else if (k in el && !k.includes('-')) el[k] = v;
    else el.setAttribute(k, v === true ? '' : v);
  }
  el.append(...kids.flat().filter((k) => k !== null && k !== undefined && k !== false));
  return el;
}

function store(key, value) {
  try {
    if (value === undefined) localStorage.removeItem(key);
    else localStorage.setItem(key, value);
  } catch { /* storage may be off */ }
}

function load(key) {
  try { return localStorage.getItem(key); } catch { return null; }
}

export class ParleyChat extends HTMLElement {
  static get observedAttributes() { return ['open', 'mode', 'endpoint', 'domain']; }

  // defineAction makes an Actions (...) entry work: id is 'file', 'audio',
  // 'video' or a new one; run(ctx) gets {element, with, files} (files when
  // files were dropped on the conversation).
  static defineAction(id, { label, run }) {
    const cur = actions.get(id) || {};
    actions.set(id, { ...cur, label: label || cur.label || id, run });
  }

  constructor() {
    super();
    this.contacts = new Map(); // bare JID -> contact
    this.convs = new Map(); // bare JID -> conversation
    this.invites = new Map(); // bare JID -> {jid, name}
    this.active = ''; // bare JID of the open conversation
    // How many past chat sessions History lists at a time (1 to 100);
    // "Older chat sessions" lists the next ones.
    this.sessionsPage = 20;
    this.me = { jid: '', name: '' };
    this.myStatus = ['available', 'away', 'dnd', 'offline'].includes(load('parley.status')) ? load('parley.status') : 'available';
    this.showOffline = load('parley.showOffline') !== '0';
    this.rosterVer = null;
    this.sideClosed = false;
    this.narrow = false;
    this.unread = 0;
    this.titleBase = '';
    this.filterText = '';
    this._renderQueued = false;
    this._onVisibility = () => this._visibilityChanged();
    this._extras = new WeakMap(); // message -> its attachments and link card, built once
    this._lazy = new WeakMap(); // element -> what to fetch once it scrolls into view
    this._atEnd = true; // the log is scrolled to its end
  }

  // ---- element lifecycle ----

  connectedCallback() {
    if (!this.shadowRoot) this._build();
    document.addEventListener('visibilitychange', this._onVisibility);
    if (!this.client) this._startClient();
    this._reflectOpen();
  }

  disconnectedCallback() {
    document.removeEventListener('visibilitychange', this._onVisibility);
    this.client?.stop();
    this.client = null;
  }

  attributeChangedCallback(name) {
    if (!this.shadowRoot) return;
    if (name === 'open' || name === 'mode') this._reflectOpen();
    if ((name === 'endpoint' || name === 'domain') && this.client) {
      this.client.stop();
      this.client = null;
      this._startClient();
    }
  }

  get endpoint() {
    const attr = this.getAttribute('endpoint');
    const u = attr ? new URL(attr, location.href) : new URL('../ws', here);
    if (u.protocol === 'https:') u.protocol = 'wss:';
    else if (u.protocol === 'http:') u.protocol = 'ws:';
    return u.href;
  }

  get searchURL() {
    const attr = this.getAttribute('search-url');
    if (attr) return new URL(attr, location.href).href;
    const u = new URL('api/search', this.endpoint.replace(/^ws/, 'http'));
    return u.href;
  }

  // apiBase is Parley's JSON API (files, linkcard), beside the endpoint.
  get apiBase() { return new URL('api/', this.endpoint.replace(/^ws/, 'http')).href; }

  // filesBase is where Parley serves shared files, beside the endpoint.
  get filesBase() { return new URL('files/', this.endpoint.replace(/^ws/, 'http')).href; }

  get full() { return this.getAttribute('mode') === 'full'; }

  get open() { return this.full || this.hasAttribute('open'); }
  set open(v) { this.toggleAttribute('open', !!v); }

  // unreadCount is the number of messages not yet seen.
  get unreadCount() { return this.unread; }

  // status is the panel's own status: available, away, dnd or offline.
  get status() { return this.myStatus; }

  // openChat opens the panel on the conversation with address.
  openChat(address) {
    const jid = bare(String(address || '').trim().replace(/^xmpp:/, ''));
    if (!/^[^@\s]+@[^@\s]+$/.test(jid)) throw new TypeError('openChat: not an address: ' + address);
    this.open = true;
    this._openConv(jid);
  }

  // setStatus sets the panel's own status: available, away, dnd, or
  // offline (the panel's session goes unavailable and disconnects; other
  // clients of the user keep theirs).
  setStatus(status) {
    if (!['available', 'away', 'dnd', 'offline'].includes(status)) throw new TypeError('setStatus: unknown status ' + status);
    this.myStatus = status;
    store('parley.status', status);
    if (status === 'offline') {
      this.client?.stop();
      for (const c of this.contacts.values()) c.resources.clear();
    } else if (this.client?.state === 'online') {
      this._sendPresence();
    } else {
      this.client?.start();
    }
    this._emitStatus();
    this._render();
  }

  // ---- building ----

  _build() {
    const root = this.attachShadow({ mode: 'open' });
    const css = h('link', { rel: 'stylesheet', href: new URL('panel.css', here).href });
    root.append(css);
    const wrap = document.createElement('div');
    wrap.className = 'root';
    wrap.innerHTML = template; // static markup only: user data goes in with textContent
    root.append(wrap);
    const $ = (s) => root.querySelector(s);
    this.$ = {
      root: wrap, launcher: $('.launcher'), badge: $('.badge'), panel: $('.panel'), burger: $('.burger'), conn: $('.conn'),
      me: $('.me'), meAvatar: $('.me .avatar'), meDot: $('.me .dot'), statusMenu: $('.status-menu'), meName: $('.me-name'), meJID: $('.me-jid'),
      popout: $('.popout'), close: $('.close'), notice: $('.notice'), side: $('.side'), filter: $('.filter'), invites: $('.invites'),
      inviteList: $('.invite-list'), add: $('.add'), list: $('.list'), listMore: $('.list-more'), conv: $('.conv'), placeholder: $('.placeholder'),
      login: $('.login'), thread: $('.thread'), back: $('.back'), peerAvatar: $('.peer-avatar'), peerName: $('.peer-name'), peerStatus: $('.peer-status'),
      searchToggle: $('.search-toggle'), actions: $('.actions'), actionsMenu: $('.actions-menu'), search: $('.search'), results: $('.results'),
      log: $('.log'), typing: $('.typing'), compose: $('.compose'), text: $('.compose textarea'),
      filesToggle: $('.files-toggle'), filesPanel: $('.files-panel'), filesTitle: $('#parley-files-title'), filesBody: $('.files-body'),
      dropHint: $('.drop-hint'), uploads: $('.uploads'), fileInput: $('.file-input'),
      addDialog: $('.add-dialog'), addForm: $('.add-form'), addWho: $('#add-who'), addResults: $('#add-results'), addGroups: $('#add-groups'),
      addError: $('.add-form .error'),
      historyToggle: $('.history-toggle'), historyPanel: $('.history-panel'), historyTitle: $('#parley-history-title'),
      historyBody: $('.history-body'), historyBack: $('.history-back'), historyWindow: $('.history-window'),
      meetDialog: $('.meet-dialog'), meetForm: $('.meet-form'), meetRoom: $('#meet-room'), meetAbout: $('#meet-about'),
      meetError: $('.meet-form .error'), meetSubmit: $('.meet-form button[type=submit]'),
    };
    const s = this.$;
    s.panel.hidden = true;
    s.launcher.addEventListener('click', () => { this.open = !this.open; if (this.open) this._askNotifications(false); });
    s.close.addEventListener('click', () => { this.open = false; s.launcher.focus(); });
    s.popout.addEventListener('click', () => this._popOut());
    s.burger.addEventListener('click', () => this._toggleSide());
    s.back.addEventListener('click', () => this._toggleSide(true));
    s.me.addEventListener('click', () => this._toggleMenu(s.statusMenu, s.me));
    s.statusMenu.addEventListener('click', (e) => this._statusMenuClick(e));
    s.actions.addEventListener('click', () => { this._fillActions(); this._toggleMenu(s.actionsMenu, s.actions); });
    s.actionsMenu.addEventListener('click', (e) => this._actionClick(e));
    for (const m of [s.statusMenu, s.actionsMenu]) m.addEventListener('keydown', (e) => this._menuKey(e, m));
    s.filter.addEventListener('input', () => { this.filterText = s.filter.value; this._renderList(); });
    s.filter.addEventListener('keydown', (e) => this._filterKey(e));
    s.list.addEventListener('click', (e) => {
      const b = e.target.closest('button[data-jid]');
      if (b) this._openConv(b.dataset.jid);
    });
    s.list.addEventListener('keydown', (e) => this._listKey(e));
    s.inviteList.addEventListener('click', (e) => this._inviteClick(e));
    s.add.addEventListener('click', () => this._openAdd());
    s.compose.addEventListener('submit', (e) => { e.preventDefault(); this._sendFromBox(); });
    s.text.addEventListener('keydown', (e) => {
      if (e.key === 'Enter' && !e.shiftKey && !e.isComposing) { e.preventDefault(); this._sendFromBox(); }
    });
    s.text.addEventListener('input', () => { this._autosize(); this._typing(); });
    s.log.addEventListener('scroll', () => this._logScrolled());
    s.log.addEventListener('click', (e) => { if (e.target.closest('.older button')) this._loadOlder(); });
    s.searchToggle.addEventListener('click', () => this._toggleSearch());
    s.search.addEventListener('submit', (e) => { e.preventDefault(); this._runSearch(); });
    root.querySelector('.search-close').addEventListener('click', () => this._toggleSearch(false));
    s.login.addEventListener('submit', (e) => {
      e.preventDefault();
      const f = new FormData(s.login);
      s.login.querySelector('.error').textContent = '';
      this.client.login(String(f.get('address')).trim(), String(f.get('password')));
    });
    this._wireAddDialog();
    // Drag files onto the conversation: the file action (built in, or the
    // host's own from defineAction).
    let dragDepth = 0;
    const dragging = (on) => { s.dropHint.hidden = !on; s.thread.classList.toggle('dragging', on); };
    const carriesFiles = (e) => !!actions.get('file')?.run && !!e.dataTransfer?.types.includes('Files');
    s.thread.addEventListener('dragenter', (e) => {
      if (!carriesFiles(e)) return;
      e.preventDefault();
      if (dragDepth++ === 0) {
        s.dropHint.querySelector('p').textContent = `Drop files here to send them to ${this._name(this.active)}`;
        dragging(true);
      }
    });
    s.thread.addEventListener('dragover', (e) => {
      if (!carriesFiles(e)) return;
      e.preventDefault();
      e.dataTransfer.dropEffect = 'copy';
    });
    s.thread.addEventListener('dragleave', () => { if (dragDepth > 0 && --dragDepth === 0) dragging(false); });
    s.thread.addEventListener('drop', (e) => {
      dragDepth = 0;
      dragging(false);
      const a = actions.get('file');
      if (!a?.run || !e.dataTransfer?.files.length) return;
      e.preventDefault();
      a.run({ element: this, with: this.active, files: [...e.dataTransfer.files] });
    });
    // Files pasted into the message box go the same way.
    s.text.addEventListener('paste', (e) => {
      const files = [...(e.clipboardData?.files || [])];
      const a = actions.get('file');
      if (!files.length || !a?.run) return;
      e.preventDefault();
      a.run({ element: this, with: this.active, files });
    });
    s.fileInput.addEventListener('change', () => {
      const files = [...s.fileInput.files];
      const jid = this._pickFor || this.active;
      s.fileInput.value = '';
      if (files.length && jid) this.sendFiles(jid, files);
    });
    s.uploads.addEventListener('click', (e) => {
      const b = e.target.closest('button[data-upload]');
      if (b) this._dismissUpload(b.dataset.upload);
    });
    s.filesToggle.addEventListener('click', () => this._toggleFiles());
    root.querySelector('.files-close').addEventListener('click', () => this._toggleFiles(false));
    s.filesBody.addEventListener('click', (e) => { if (e.target.closest('button.retry')) this._loadFiles(); });
    s.historyToggle.addEventListener('click', () => this._toggleHistory());
    root.querySelector('.history-close').addEventListener('click', () => this._toggleHistory(false));
    s.historyBack.addEventListener('click', () => this._historyList());
    s.historyWindow.addEventListener('click', () => this._historyWindow());
    s.historyBody.addEventListener('click', (e) => {
      if (e.target.closest('button.retry')) { this._loadHistory(); return; }
      if (e.target.closest('button.older-sessions')) { this._loadHistory(true); return; }
      if (e.target.closest('button.retry-session')) { this._openSession(this._histSession); return; }
      const b = e.target.closest('button[data-session]');
      if (b) this._openSession(this._sessions?.[Number(b.dataset.session)]);
    });
    s.historyBody.addEventListener('keydown', (e) => {
      // Arrow keys move between the sessions' Open buttons.
      if (e.key !== 'ArrowDown' && e.key !== 'ArrowUp') return;
      const buttons = [...s.historyBody.querySelectorAll('button[data-session]')];
      const i = buttons.indexOf(this.shadowRoot.activeElement);
      if (i < 0) return;
      e.preventDefault();
      buttons[Math.max(0, Math.min(buttons.length - 1, i + (e.key === 'ArrowDown' ? 1 : -1)))].focus();
    });
    this._wireMeetDialog();
    // Previews open in a window of their own.
    root.addEventListener('click', (e) => {
      const a = e.target.closest('a[data-window]');
      if (!a || e.defaultPrevented || e.button !== 0 || e.ctrlKey || e.metaKey || e.shiftKey || e.altKey) return;
      e.preventDefault();
      window.open(a.href, '_blank', 'noopener,noreferrer,popup,width=960,height=720');
    });
    root.addEventListener('keydown', (e) => {
      if (e.key !== 'Escape') return;
      const openMenu = [s.statusMenu, s.actionsMenu].find((m) => !m.hidden);
      if (openMenu) { this._closeMenus(); e.stopPropagation(); return; }
      const dialog = s.addDialog.open || s.meetDialog.open;
      if (!s.filesPanel.hidden && !dialog) { this._toggleFiles(false); e.stopPropagation(); return; }
      if (!s.historyPanel.hidden && !dialog) {
        if (!s.historyBack.hidden) this._historyList();
        else this._toggleHistory(false);
        e.stopPropagation();
        return;
      }
      if (!this.full && this.open && !dialog) { this.open = false; s.launcher.focus(); }
    });
    root.addEventListener('click', (e) => {
      if (!e.target.closest('.menu-wrap')) this._closeMenus();
    });
    new ResizeObserver(([entry]) => {
      const narrow = entry.contentRect.width < 600;
      if (narrow !== this.narrow) {
        this.narrow = narrow;
        this.sideClosed = narrow && !!this.active;
        this._layout();
      }
    }).observe(s.panel);
    // The log shrinks when uploads, errors or a longer message take room
    // below it: a reader at the end stays at the end.
    new ResizeObserver(() => this._grew()).observe(s.log);
    this._renderStatus();
  }

  _startClient() {
    const client = new Client({ url: this.endpoint, domain: this.getAttribute('domain') || '' });
    this.client = client;
    this.uploader = new Uploader(client);
    if (!this.fileLinks) this.fileLinks = new FileLinks(this.filesBase);
    else this.fileLinks.add(this.filesBase);
    client.setActive(document.visibilityState === 'visible');
    client.addEventListener('state', (e) => this._clientState(e.detail));
    client.addEventListener('session', (e) => this._session(e.detail));
    client.addEventListener('message', (e) => this._message(e.detail.el));
    client.addEventListener('presence', (e) => this._presence(e.detail.el));
    client.addEventListener('rosterpush', (e) => this._rosterItems(e.detail.el, true));
    if (this.myStatus !== 'offline') client.start();
    else this._clientState({ state: 'offline' });
  }

  // ---- connection and session ----

  _clientState({ state, error, retryIn }) {
    const s = this.$;
    const text = {
      connecting: 'Connecting…',
      disconnected: `Connection lost; trying again in ${Math.ceil((retryIn || 0) / 1000)}s…`,
      offline: 'Offline',
      'auth-failed': 'Chat could not log in',
      login: '',
      online: '',
    }[state] ?? '';
    s.conn.textContent = text;
    s.conn.dataset.state = state;
    s.login.hidden = state !== 'login';
    if (state === 'login') {
      s.login.querySelector('.error').textContent = error || '';
      s.placeholder.hidden = true;
      s.thread.hidden = true;
    }
    if (state === 'auth-failed') this._notice(error ? `Chat could not log in: ${error}` : 'Chat could not log in.');
    else if (state === 'online' || state === 'connecting') this._notice('');
    if (state === 'online' && !s.login.hidden) s.login.hidden = true;
    if (state !== 'online') {
      for (const c of this.contacts.values()) if (state === 'offline') c.resources.clear();
    }
    if (state === 'online' && this.active) this._showThread();
    else if (state === 'online' && !this.active) s.placeholder.hidden = false;
    this._emitStatus();
    this._render();
  }

  async _session({ jid, resumed }) {
    this.me.jid = bare(jid);
    this._renderStatus();
    if (resumed) {
      for (const s of this.pendingMarks || []) this.client.send(s);
      this._sessionReady();
      return;
    }
    // A new session: what the server knew of the old one is gone.
    for (const c of this.contacts.values()) c.resources.clear();
    this.client.send(x('iq', { xmlns: NS.client, type: 'set', id: randomID() }, x('enable', { xmlns: NS.carbons })));
    try {
      await this._fetchRoster();
    } catch (e) {
      this._notice('The contact list could not be loaded: ' + e.message);
    }
    this._sessionReady();
    // Presence after the roster, so that contacts' presence finds them.
    this._sendPresence();
    if (!this.me.name) this._fetchOwnName();
    for (const conv of this.convs.values()) {
      if (conv.loaded) this._catchUp(conv);
    }
    if (this.active && !this.convs.get(this.active)?.loaded) this._loadRecent(this.convs.get(this.active));
    this._render();
  }

  _sendPresence() {
    const show = this.myStatus === 'away' || this.myStatus === 'dnd' ? x('show', {}, this.myStatus) : null;
    this.client.send(x('presence', { xmlns: NS.client }, show));
  }

  async _fetchOwnName() {
    try {
      const res = await this.client.iq('get', x('vCard', { xmlns: NS.vcard }));
      const fn = childText(child(res, NS.vcard, 'vCard'), NS.vcard, 'FN');
      if (fn) { this.me.name = fn; this._renderStatus(); }
    } catch { /* the address will do */ }
  }

  _cacheKey() { return 'parley.roster.' + this.me.jid; }

  async _fetchRoster() {
    if (this.rosterVer === null) {
      // The roster of an earlier page in this tab, with its version
      // (XEP-0237): an unchanged roster is then not sent again.
      try {
        const cached = JSON.parse(sessionStorage.getItem(this._cacheKey()) || 'null');
        if (cached?.ver && Array.isArray(cached.items)) {
          for (const it of cached.items) this._setContact(it);
          this.rosterVer = cached.ver;
        }
      } catch { /* no cache */ }
    }
    const res = await this.client.iq('get', x('query', { xmlns: NS.roster, ver: this.rosterVer ?? '' }));
    const q = child(res, NS.roster, 'query');
    if (!q) return; // unchanged since rosterVer
    const seen = new Set();
    for (const it of children(q, NS.roster, 'item')) seen.add(bare(it.getAttribute('jid')));
    for (const [jid, c] of this.contacts) if (!seen.has(jid) && !c.transient) this.contacts.delete(jid);
    this._rosterItems(q, false);
  }

  _rosterItems(q, push) {
    for (const it of children(q, NS.roster, 'item')) {
      const jid = bare(it.getAttribute('jid'));
      if (it.getAttribute('subscription') === 'remove') {
        this.contacts.delete(jid);
        continue;
      }
      this._setContact({
        jid,
        name: it.getAttribute('name') || '',
        groups: children(it, NS.roster, 'group').map((g) => g.textContent),
        subscription: it.getAttribute('subscription') || 'none',
        ask: it.getAttribute('ask') === 'subscribe',
      });
      if (push) {
        const sub = it.getAttribute('subscription');
        if (sub === 'from' || sub === 'both') this.invites.delete(jid);
      }
    }
    if (q.hasAttribute('ver')) this.rosterVer = q.getAttribute('ver');
    try {
      const items = [...this.contacts.values()].filter((c) => !c.transient)
        .map(({ jid, name, groups, subscription, ask }) => ({ jid, name, groups, subscription, ask }));
      sessionStorage.setItem(this._cacheKey(), JSON.stringify({ ver: this.rosterVer, items }));
    } catch { /* storage full or off */ }
    this._render();
  }

  _setContact({ jid, name, groups = [], subscription = 'none', ask = false, transient = false }) {
    const old = this.contacts.get(jid);
    const c = old || { jid, resources: new Map() };
    Object.assign(c, { name, groups, subscription, ask, transient });
    c.alias = groups.includes(ALIAS_GROUP) || !!c.knownAlias;
    c.key = (name + ' ' + jid).toLowerCase();
    this.contacts.set(jid, c);
    return c;
  }

  _contact(jid) {
    return this.contacts.get(jid) || this._setContact({ jid, name: '', transient: true });
  }

  _name(jid) {
    if (jid === this.me.jid) return this.me.name || 'You';
    return this.contacts.get(jid)?.name || localPart(jid);
  }

  // show returns a contact's best show: chat, available, away, xa, dnd,
  // or offline.
  _show(c) {
    let best = 'offline';
    for (const r of c.resources.values()) if (best === 'offline' || SHOW_RANK[r.show] < SHOW_RANK[best]) best = r.show;
    return best;
  }

  // ---- presence ----

  _presence(el) {
    const from = el.getAttribute('from') || '';
    const jid = bare(from);
    const type = el.getAttribute('type') || '';
    if (!jid || jid === this.me.jid) return;
    switch (type) {
      case '':
      case 'unavailable': {
        const c = this.contacts.get(jid);
        if (!c) return;
        if (type === 'unavailable') c.resources.delete(from);
        else {
          const show = childText(el, NS.client, 'show').trim();
          c.resources.set(from, { show: SHOW_RANK[show] !== undefined ? show : 'available', status: childText(el, NS.client, 'status') });
        }
        this._render();
        break;
      }
      case 'subscribe': {
        // The answer to our own invitation: accept it, both ways.
        const c = this.contacts.get(jid);
        if (c && !c.transient && (c.ask || c.subscription === 'to')) {
          this.client.send(x('presence', { xmlns: NS.client, to: jid, type: 'subscribed' }));
          break;
        }
        const inv = { jid, name: childText(el, 'http://jabber.org/protocol/nick', 'nick') };
        this.invites.set(jid, inv);
        if (!inv.name && jid.endsWith('@' + this.me.jid.split('@')[1])) {
          // Someone of the user's domain: the directory knows the name.
          this._search(jid).then((found) => {
            const e = found.find((f) => f.address.toLowerCase() === jid);
            if (e?.name) { inv.name = e.name; this._render(); }
          });
        }
        this._render();
        this._notify(jid, `${this._name(jid)} wants to add you as a contact`);
        break;
      }
      case 'error': {
        const err = new StanzaError(el);
        const c = this.contacts.get(jid);
        if (c) { c.error = err.text || err.condition; this._render(); }
        break;
      }
      default:
        break; // subscribed, unsubscribe, unsubscribed: the roster push says it
    }
  }

  _inviteClick(e) {
    const b = e.target.closest('button[data-invite]');
    if (!b) return;
    const jid = b.dataset.invite;
    if (b.dataset.accept === '1') {
      const c = this.contacts.get(jid);
      const name = this.invites.get(jid)?.name;
      if (name && !c?.name) {
        // Keep the name the invitation came with in the roster.
        this.client.iq('set', x('query', { xmlns: NS.roster }, x('item', { jid, name }))).catch(() => {});
      }
      this.client.send(x('presence', { xmlns: NS.client, to: jid, type: 'subscribed' }));
      if (!c || (c.subscription !== 'to' && c.subscription !== 'both' && !c.ask)) {
        this.client.send(x('presence', { xmlns: NS.client, to: jid, type: 'subscribe' }, this._nick()));
      }
    } else {
      this.client.send(x('presence', { xmlns: NS.client, to: jid, type: 'unsubscribed' }));
    }
    this.invites.delete(jid);
    this._render();
  }

  // ---- messages ----

  _message(el) {
    const from = el.getAttribute('from') || '';
    const carbon = child(el, NS.carbons, 'received') || child(el, NS.carbons, 'sent');
    if (carbon) {
      if (bare(from) !== this.me.jid) return; // only our own server forwards our messages
      const inner = child(child(carbon, NS.forward, 'forwarded'), NS.client, 'message');
      if (inner) this._chatMessage(inner, { live: true, sentCarbon: carbon.localName === 'sent' });
      return;
    }
    this._chatMessage(el, { live: true });
  }

  // _chatMessage files one message (live, carbon or from the archive) in
  // its conversation; it returns the message it added, or null.
  _chatMessage(el, { live = false, sentCarbon = false, archiveID = '', stamp = null, peer: inConv = '' } = {}) {
    const type = el.getAttribute('type') || 'normal';
    if (type === 'groupchat' || type === 'headline') return null;
    const from = el.getAttribute('from') || '';
    const to = el.getAttribute('to') || '';
    const out = sentCarbon || bare(from) === this.me.jid;
    let peer = out ? bare(to) : bare(from);
    let sender = bare(from);
    // A message through an alias shows in the sender's conversation,
    // marked with the alias, so that a reply goes to the one who asked
    // (Parley keeps the sender as 'from'; it marks the alias with XEP-0033
    // and forbids senders to forge the mark).
    let via = '';
    const addrs = child(el, NS.address, 'addresses');
    if (addrs && !out) {
      const to = children(addrs, NS.address, 'address').find((a) => a.getAttribute('type') === 'to');
      if (to) {
        via = bare(to.getAttribute('jid'));
        const c = this.contacts.get(via);
        if (c) c.knownAlias = c.alias = true;
      }
    }
    // An archive page belongs to the conversation it was asked for (a
    // message through an alias is archived as sent to the alias).
    if (inConv) peer = inConv;
    if (!peer || !peer.includes('@')) return null;
    const id = child(el, NS.sid, 'origin-id')?.getAttribute('id') || el.getAttribute('id') || '';
    if (type === 'error') {
      const conv = this.convs.get(peer);
      const m = conv?.byClient.get('out:' + id);
      if (m) {
        const err = new StanzaError(el);
        m.state = 'error';
        m.error = err.text || err.condition;
        this._renderThread();
      }
      return null;
    }
    const conv = this._conv(peer);
    for (const c of el.children) {
      if (c.namespaceURI === NS.markers && (c.localName === 'displayed' || c.localName === 'received' || c.localName === 'acknowledged')) {
        if (out) {
          // Another of our clients showed the peer's messages: they are read.
          if (live && c.localName === 'displayed' && conv.unread) { conv.unread = 0; this._updateUnread(); }
        } else {
          this._marked(conv, c.getAttribute('id'), c.localName === 'received' ? 'delivered' : 'displayed');
        }
      } else if (c.namespaceURI === NS.receipts && c.localName === 'received' && !out) {
        this._marked(conv, c.getAttribute('id'), 'delivered');
      } else if (c.namespaceURI === NS.chatstates && live && !out && !this._isAlias(peer)) {
        this._peerTyping(conv, c.localName === 'composing');
      }
    }
    const body = child(el, NS.client, 'body');
    if (!body) return null;
    if (!archiveID) {
      const sid = children(el, NS.sid, 'stanza-id').find((s) => bare(s.getAttribute('by')) === this.me.jid);
      archiveID = sid?.getAttribute('id') || '';
    }
    const delay = child(el, NS.delay, 'delay')?.getAttribute('stamp');
    const m = {
      archiveID, clientID: id, out, sender: out ? this.me.jid : sender,
      body: body.textContent, stamp: stamp || (delay ? new Date(delay) : new Date()),
      state: out ? 'sent' : '', markable: !!child(el, NS.markers, 'markable'), via,
      oob: childText(child(el, NS_OOB, 'x'), NS_OOB, 'url').trim(),
      call: callInvite(el),
    };
    if (!this._add(conv, m)) return null;
    if (live && !out) {
      this._peerTyping(conv, false);
      if (!this._seeing(peer)) {
        conv.unread++;
        this._updateUnread();
        this._notify(peer, this._summary(m), m.sender);
      }
    }
    if (live && peer === this.active && !this.$.filesPanel.hidden && this._extrasFor(m).files.length) this._loadFiles();
    if (live) this._render();
    if (live && this._seeing(peer)) this._markSeen(conv);
    return m;
  }

  _conv(jid) {
    let c = this.convs.get(jid);
    if (!c) {
      c = { jid, msgs: [], byArchive: new Map(), byClient: new Map(), unread: 0, loaded: false, loading: false,
        older: true, typing: false, typingTimer: 0, lastMarked: '', composing: false, pauseTimer: 0, uploads: [] };
      this.convs.set(jid, c);
      if (!this.contacts.has(jid)) this._contact(jid);
    }
    return c;
  }

  // _add puts m in conv in time order unless it is there already (the
  // same message can come live, as a carbon and from the archive).
  _add(conv, m) {
    const ck = m.clientID ? (m.out ? 'out:' : 'in:' + m.sender + ':') + m.clientID : '';
    if (m.archiveID && conv.byArchive.has(m.archiveID)) return false;
    if (ck && conv.byClient.has(ck)) {
      const old = conv.byClient.get(ck);
      if (m.archiveID && !old.archiveID) { old.archiveID = m.archiveID; conv.byArchive.set(m.archiveID, old); }
      return false;
    }
    if (m.archiveID) conv.byArchive.set(m.archiveID, m);
    if (ck) conv.byClient.set(ck, m);
    let i = conv.msgs.length;
    while (i > 0 && conv.msgs[i - 1].stamp > m.stamp) i--;
    conv.msgs.splice(i, 0, m);
    return true;
  }

  _marked(conv, id, state) {
    if (!id) return;
    const m = conv.byClient.get('out:' + id);
    if (!m) return;
    // A displayed marker covers every earlier message too (XEP-0333).
    for (const o of conv.msgs) {
      if (o.out && o.stamp <= m.stamp && (state === 'displayed' || o.state === 'sent')) {
        if (o.state !== 'error') o.state = state === 'displayed' ? 'displayed' : (o.state === 'displayed' ? 'displayed' : 'delivered');
      }
    }
    if (conv.jid === this.active) this._renderThread();
  }

  _peerTyping(conv, on) {
    clearTimeout(conv.typingTimer);
    conv.typing = on;
    // A client that vanishes mid-sentence sends no "paused".
    if (on) conv.typingTimer = setTimeout(() => { conv.typing = false; this._renderTyping(); }, 30000);
    this._renderTyping();
  }

  _isAlias(jid) { return !!this.contacts.get(jid)?.alias; }

  // _seeing: the user is looking at this conversation now.
  _seeing(jid) {
    return this.active === jid && this.open && document.visibilityState === 'visible' && !(this.narrow && !this.sideClosed) &&
      this.client?.state === 'online';
  }

  _markSeen(conv) {
    if (conv.unread) { conv.unread = 0; this._updateUnread(); }
    if (this._isAlias(conv.jid)) return;
    const last = conv.msgs.findLast((m) => !m.out && m.clientID);
    if (!last || !last.markable || conv.lastMarked === last.clientID) return;
    conv.lastMarked = last.clientID;
    this.client.send(x('message', { xmlns: NS.client, to: conv.jid, type: 'chat', id: randomID() },
      x('displayed', { xmlns: NS.markers, id: last.clientID })));
  }

  _sendFromBox() {
    const text = this.$.text.value;
    if (!text.trim() || !this.active) return;
    if (this.myStatus === 'offline') {
      this._notice('You are offline in chat. Choose Available from your status menu to send messages.');
      return;
    }
    this.sendMessage(this.active, text);
    this.$.text.value = '';
    this._autosize();
  }

  // sendMessage sends text to address and shows it in the conversation.
  // With oob (a URL), the message also carries it as out-of-band data
  // (XEP-0066), as file shares do; with call ({video, uri}), a XEP-0482
  // call invite to join at uri.
  sendMessage(address, text, { oob = '', call = null } = {}) {
    const jid = bare(address);
    const conv = this._conv(jid);
    const id = randomID();
    const alias = this._isAlias(jid);
    clearTimeout(conv.pauseTimer);
    conv.composing = false;
    this.client.send(x('message', { xmlns: NS.client, to: jid, type: 'chat', id },
      x('body', {}, text),
      oob ? x('x', { xmlns: NS_OOB }, x('url', {}, oob)) : null,
      call ? x('invite', { xmlns: NS_CALL, audio: 'true', video: call.video ? 'true' : 'false' }, x('external', { uri: call.uri })) : null,
      x('origin-id', { xmlns: NS.sid, id }),
      alias ? null : x('markable', { xmlns: NS.markers }),
      alias ? null : x('active', { xmlns: NS.chatstates })));
    this._add(conv, { archiveID: '', clientID: id, out: true, sender: this.me.jid, body: text, stamp: new Date(),
      state: this.client.state === 'online' ? 'sent' : 'queued', markable: true, oob, call });
    this._render();
    this._scrollToEnd();
  }

  _typing() {
    const conv = this.convs.get(this.active);
    if (!conv || this._isAlias(conv.jid) || this.client?.state !== 'online') return;
    const state = (name) => x('message', { xmlns: NS.client, to: conv.jid, type: 'chat' },
      x(name, { xmlns: NS.chatstates }), x('no-store', { xmlns: NS.hints }));
    if (!conv.composing && this.$.text.value) {
      conv.composing = true;
      this.client.send(state('composing'));
    }
    clearTimeout(conv.pauseTimer);
    conv.pauseTimer = setTimeout(() => {
      if (conv.composing) { conv.composing = false; this.client.send(state('paused')); }
    }, 5000);
  }

  // ---- files and links ----

  // _extrasFor returns what a message shows besides its text: {files,
  // node, only}. files are Parley's download links in it (the XEP-0066
  // URL, links in the body); node holds their thumbnails or file links and
  // the card of its first other web link; only: the message is nothing
  // but a file link, so the text bubble is left out. Built once per
  // message and moved from render to render, so that loaded images stay.
  _extrasFor(m) {
    let ex = this._extras.get(m);
    if (ex) return ex;
    const text = m.body.trim();
    const links = findLinks(text);
    const files = [];
    const add = (f) => { if (f && !files.some((o) => o.id === f.id)) files.push(f); };
    if (m.oob) add(this.fileLinks.parse(m.oob));
    let cardLink = '';
    let meeting = null;
    for (const l of links) {
      const f = this.fileLinks.parse(l.href);
      const ml = f ? null : this._meetingLink(l.href);
      if (f) add(f);
      else if (ml) meeting ||= ml;
      else if (!cardLink) cardLink = l.href;
    }
    const bare = links.length === 1 && links[0].start === 0 && links[0].end === text.length;
    const only = files.length > 0 && (text === '' || (m.oob && text === m.oob) || (bare && !cardLink));
    let node = null;
    if (files.length || cardLink || meeting) {
      node = h('div', { class: 'extras' }, files.map((f) => (f.image ? this._imageNode(f) : this._fileNode(f))));
      if (meeting) node.append(this._meetingNode(meeting, m.call));
      if (cardLink) {
        const slot = h('div', { class: 'card-slot' });
        node.append(slot);
        this._whenVisible(slot, () => linkCard(this.apiBase, cardLink).then((card) => {
          if (card) { slot.replaceChildren(this._cardNode(card, cardLink)); this._grew(); }
        }));
      }
    }
    ex = { files, node, only };
    this._extras.set(m, ex);
    return ex;
  }

  // _whenVisible runs fn once el scrolls into the log's view: a long
  // history does not ask for every card and size at once.
  _whenVisible(el, fn) {
    if (!this._io) {
      this._io = new IntersectionObserver((entries) => {
        for (const e of entries) {
          if (!e.isIntersecting) continue;
          this._io.unobserve(e.target);
          const f = this._lazy.get(e.target);
          this._lazy.delete(e.target);
          f?.();
        }
      }, { root: this.$.log, rootMargin: '400px 0px' });
    }
    this._lazy.set(el, fn);
    this._io.observe(el);
  }

  // _sizeLater fills el with the file's size once node is in view.
  _sizeLater(node, el, f, prefix = '') {
    this._whenVisible(node, () => fileInfo(f.get).then((info) => {
      if (!info) return;
      const parts = [];
      if (Number.isFinite(info.size)) parts.push(formatSize(info.size));
      if (prefix) parts.unshift(prefix);
      el.textContent = parts.join(' · ');
      const open = node.querySelector('a[data-window]');
      if (open && Number.isFinite(info.size)) open.setAttribute('aria-label', `Open ${f.name} (${formatSize(info.size)}) in a new window`);
    }));
  }

  _downloadLink(f) {
    return h('a', { class: 'file-dl', href: f.download, download: f.name, 'aria-label': `Download ${f.name}`, title: 'Download' }, svgIcon(ICON_DOWNLOAD));
  }

  // _fileNode: a file as a link to its preview (a new window), with its
  // name, size and a download link.
  _fileNode(f) {
    const size = h('span', { class: 'file-size', text: f.ext ? `${f.ext} file` : 'File' });
    const node = h('div', { class: 'file' },
      h('a', { class: 'file-open', href: f.preview, target: '_blank', rel: 'noopener noreferrer', 'data-window': '', title: 'Open a preview in a new window', 'aria-label': `Open ${f.name} in a new window` },
        h('span', { class: 'file-icon' }, svgIcon(ICON_FILE), f.ext ? h('span', { class: 'file-ext', text: f.ext.slice(0, 4) }) : null),
        h('span', { class: 'file-main' }, h('span', { class: 'file-name', text: f.name }), size)),
      this._downloadLink(f));
    this._sizeLater(node, size, f, f.ext ? `${f.ext} file` : '');
    return node;
  }

  // _imageNode: an image as its thumbnail; a click opens the preview in a
  // new window. Should the thumbnail fail, the file link takes its place.
  _imageNode(f) {
    const img = h('img', { src: f.thumb, alt: f.name, loading: 'lazy', decoding: 'async', referrerPolicy: 'no-referrer' });
    const size = h('span', { class: 'file-size' });
    const node = h('div', { class: 'file image' },
      h('a', { class: 'thumb', href: f.preview, target: '_blank', rel: 'noopener noreferrer', 'data-window': '', title: 'Open a preview in a new window', 'aria-label': `Open ${f.name} in a new window` }, img),
      h('div', { class: 'file-cap' }, h('span', { class: 'file-name', text: f.name }), size, this._downloadLink(f)));
    img.addEventListener('load', () => this._grew(), { once: true });
    img.addEventListener('error', () => node.replaceWith(this._fileNode({ ...f, image: false })), { once: true });
    this._sizeLater(node, size, f);
    return node;
  }

  // _cardNode: a link's card, from the server's reading of its Open Graph
  // tags; plain text only. The picture comes from the linked site: when
  // the page's policy or the site refuses it, the card goes without.
  _cardNode(card, link) {
    const img = card.image && !cardImagesRefused ? h('img', { class: 'card-img', src: card.image, alt: '', loading: 'lazy', referrerPolicy: 'no-referrer' }) : null;
    if (img) cardImages.add(img.src);
    img?.addEventListener('error', () => img.remove(), { once: true });
    img?.addEventListener('load', () => this._grew(), { once: true });
    let site = card.site;
    if (!site) {
      try { site = new URL(link).hostname; } catch { site = ''; }
    }
    return h('a', { class: 'card', href: link, target: '_blank', rel: 'noopener noreferrer' },
      img,
      h('span', { class: 'card-text' },
        site ? h('span', { class: 'card-site', text: site }) : null,
        card.title ? h('strong', { class: 'card-title', text: card.title }) : null,
        card.description ? h('span', { class: 'card-desc', text: card.description }) : null));
  }

  // _summary: a message in a line (notifications): a shared file by name.
  _summary(m) {
    const ex = this._extrasFor(m);
    if (ex.only) return ex.files.map((f) => `📎 ${f.name}`).join(', ');
    return m.body;
  }

  // The built-in "Send a file" action: the files dropped or pasted, or
  // the browser's file picker.
  _fileAction({ with: jid, files }) {
    if (files?.length) { this.sendFiles(jid, files); return; }
    this._pickFor = jid;
    this.$.fileInput.value = '';
    this.$.fileInput.click();
  }

  // sendFiles shares files with address, each as sendFile does; failures
  // show in the conversation. It resolves with the download links (''
  // for a file that was not sent).
  sendFiles(address, files) {
    return Promise.all([...files].map((f) => this.sendFile(address, f).catch(() => '')));
  }

  // sendFile uploads file (XEP-0363), showing its progress, then sends its
  // download link in a message with XEP-0066 out-of-band data. It
  // resolves with the link, or rejects with an UploadError that also
  // shows in the conversation.
  async sendFile(address, file) {
    const jid = bare(address);
    const conv = this._conv(jid);
    const up = { key: randomID(), name: file.name || 'file', size: file.size, loaded: 0, state: 'uploading', error: '', request: null, node: null };
    conv.uploads.push(up);
    this._renderUploads();
    try {
      if (this.myStatus === 'offline' || this.client?.state !== 'online') {
        throw new UploadError('offline');
      }
      if (!file.size) throw new UploadError('empty');
      const slot = await this.uploader.slot(file);
      if (up.state === 'cancelled') throw new UploadError('cancelled');
      this.fileLinks.learn(slot.get);
      up.request = this.uploader.put(slot, file, (loaded, total) => {
        up.loaded = loaded;
        up.size = total || up.size;
        this._updateUpload(up);
      });
      await up.request;
      knowFile(slot.get, file.size, file.type);
      this._removeUpload(conv, up);
      this.sendMessage(jid, slot.get, { oob: slot.get });
      return slot.get;
    } catch (e) {
      const err = e instanceof UploadError ? e : new UploadError('failed', e.message);
      if (err.kind === 'cancelled' || up.state === 'cancelled') {
        this._removeUpload(conv, up);
      } else {
        up.state = 'error';
        up.error = this._uploadErrorText(up, err);
        up.node = null;
        this._renderUploads();
      }
      throw err;
    }
  }

  _uploadErrorText(up, e) {
    const name = `“${up.name}”`;
    switch (e.kind) {
      case 'too-large':
        return `${name} is too large to send (${formatSize(up.size)}): the limit is ${e.max ? formatMB(e.max) : 'smaller'}.`;
      case 'blocked':
        return `${name} cannot be sent: files of this type are not allowed.`;
      case 'quota': {
        const used = e.quota ? ` (${formatSize(e.used)} of ${formatSize(e.quota)} used)` : '';
        return `${name} cannot be sent: your file storage is full${used}. Delete files you shared, or ask your administrator for more space.`;
      }
      case 'empty':
        return `${name} is empty: there is nothing to send.`;
      case 'offline':
        return `${name} cannot be sent while you are offline in chat.`;
      case 'unavailable':
        return `${name} cannot be sent: this server does not accept files.`;
      default:
        return `${name} could not be sent: ${e.message}.`.replace(/\.\.$/, '.');
    }
  }

  _removeUpload(conv, up) {
    conv.uploads = conv.uploads.filter((u) => u !== up);
    if (conv.jid === this.active) this._renderUploads();
  }

  _dismissUpload(key) {
    const conv = this.convs.get(this.active);
    const up = conv?.uploads.find((u) => u.key === key);
    if (!up) return;
    if (up.state === 'uploading') {
      up.state = 'cancelled';
      up.request?.abort();
    }
    this._removeUpload(conv, up);
    this.$.text.focus();
  }

  _uploadNode(up) {
    if (up.node) return up.node;
    if (up.state === 'error') {
      up.node = h('li', { class: 'upload failed', role: 'alert' },
        h('span', { class: 'upload-text', text: up.error }),
        h('button', { type: 'button', class: 'small', 'data-upload': up.key, text: 'Dismiss', 'aria-label': `Dismiss: ${up.error}` }));
      return up.node;
    }
    up.bar = h('progress', { max: 100, value: 0, 'aria-label': `Sending ${up.name}` });
    up.label = h('span', { class: 'upload-pct' });
    up.node = h('li', { class: 'upload' },
      h('span', { class: 'upload-text' }, h('span', { class: 'upload-name', text: up.name }), up.label),
      up.bar,
      h('button', { type: 'button', class: 'small', 'data-upload': up.key, text: 'Cancel', 'aria-label': `Cancel sending ${up.name}` }));
    this._updateUpload(up);
    return up.node;
  }

  _updateUpload(up) {
    if (!up.bar) return;
    const pct = up.size ? Math.min(100, Math.round((up.loaded / up.size) * 100)) : 0;
    up.bar.value = pct;
    up.label.textContent = up.loaded ? `${formatSize(up.loaded)} of ${formatSize(up.size)} (${pct}%)` : `${formatSize(up.size)}, waiting…`;
  }

  _renderUploads() {
    const s = this.$;
    const conv = this.convs.get(this.active);
    const list = conv?.uploads || [];
    s.uploads.hidden = list.length === 0;
    s.uploads.replaceChildren(...list.map((up) => this._uploadNode(up)));
  }

  // ---- the conversation's files (the attachments list) ----

  _toggleFiles(on, focus = true) {
    const s = this.$;
    const show = on ?? s.filesPanel.hidden;
    s.filesPanel.hidden = !show;
    s.filesToggle.setAttribute('aria-expanded', String(show));
    if (show) {
      if (!s.historyPanel.hidden) this._toggleHistory(false, false);
      s.search.hidden = true;
      s.results.hidden = true;
      s.log.hidden = true;
      s.filesTitle.textContent = `Files shared with ${this._name(this.active)}`;
      this._loadFiles();
      if (focus) s.filesPanel.querySelector('.files-close').focus();
    } else {
      s.log.hidden = false;
      s.filesBody.replaceChildren();
      if (focus) s.filesToggle.focus();
      this._scrollToEnd();
    }
  }

  async _loadFiles() {
    const s = this.$;
    const jid = this.active;
    const seq = (this._filesSeq = (this._filesSeq || 0) + 1);
    if (!s.filesBody.firstChild) s.filesBody.replaceChildren(h('p', { class: 'muted', text: 'Loading…' }));
    let entries;
    try {
      const u = new URL('files', this.apiBase);
      u.searchParams.set('with', jid);
      const r = await fetch(u, { credentials: 'same-origin', headers: { Accept: 'application/json' } });
      const data = await r.json().catch(() => ({}));
      if (!r.ok) throw new Error(typeof data.error === 'string' ? data.error : r.statusText || String(r.status));
      entries = Array.isArray(data.files) ? data.files : [];
    } catch (e) {
      if (seq !== this._filesSeq || s.filesPanel.hidden) return;
      s.filesBody.replaceChildren(h('p', { class: 'error', role: 'alert' }, `The file list could not be loaded: ${e.message}. `,
        h('button', { type: 'button', class: 'link retry', text: 'Try again' })));
      return;
    }
    if (seq !== this._filesSeq || s.filesPanel.hidden || jid !== this.active) return;
    if (!entries.length) {
      s.filesBody.replaceChildren(h('p', { class: 'muted', text: `No files shared with ${this._name(jid)} yet. Drop files on the conversation, or use Actions (…) → Send a file.` }));
      return;
    }
    const when = new Intl.DateTimeFormat(undefined, { day: 'numeric', month: 'short', year: 'numeric', hour: '2-digit', minute: '2-digit' });
    const url = (v) => { try { const u = new URL(v); return u.protocol === 'https:' || u.protocol === 'http:' ? u.href : ''; } catch { return ''; } };
    const items = entries.map((e) => {
      const name = typeof e.name === 'string' && e.name ? e.name : 'file';
      const preview = url(e.preview);
      const download = url(e.download);
      const thumb = url(e.thumbnail);
      const by = bare(e.shared_by || '');
      const at = new Date(e.shared_at);
      const who = by === this.me.jid ? 'you' : this._name(by);
      const meta = [Number.isFinite(e.size) ? formatSize(e.size) : '', by ? `shared by ${who}` : '', Number.isNaN(at.getTime()) ? '' : when.format(at)].filter(Boolean).join(' · ');
      const ext = (/\.([a-z0-9]{1,5})$/i.exec(name)?.[1] || '').toUpperCase();
      const pic = thumb ? h('img', { src: thumb, alt: '', loading: 'lazy', referrerPolicy: 'no-referrer' })
        : h('span', { class: 'file-icon' }, svgIcon(ICON_FILE), ext ? h('span', { class: 'file-ext', text: ext.slice(0, 4) }) : null);
      if (thumb) pic.addEventListener('error', () => pic.replaceWith(h('span', { class: 'file-icon' }, svgIcon(ICON_FILE))), { once: true });
      return h('li', { class: 'shared' },
        h('span', { class: 'shared-pic' }, pic),
        h('span', { class: 'shared-main' },
          preview ? h('a', { href: preview, target: '_blank', rel: 'noopener noreferrer', 'data-window': '', class: 'file-name', text: name, title: 'Open a preview in a new window' })
            : h('span', { class: 'file-name', text: name }),
          h('span', { class: 'file-size', text: meta })),
        download ? h('a', { class: 'file-dl', href: download, download: name, 'aria-label': `Download ${name}`, title: 'Download' }, svgIcon(ICON_DOWNLOAD)) : null);
    });
    s.filesBody.replaceChildren(
      h('p', { class: 'muted files-count', text: `${entries.length} file${entries.length === 1 ? '' : 's'}, newest first` }),
      h('ul', { class: 'shared-list' }, items));
  }

  // ---- past chat sessions (History) ----

  // openHistory opens the panel on the conversation with address and its
  // History: the list of past chat sessions, or with session ({start,
  // end}, as api/conversations gives them) that session's messages.
  openHistory(address, session) {
    this.openChat(address);
    this._toggleHistory(true);
    const c = sessionOf(session);
    if (c) this._openSession(c);
  }

  _toggleHistory(on, focus = true) {
    const s = this.$;
    const show = on ?? s.historyPanel.hidden;
    if (show && !s.filesPanel.hidden) this._toggleFiles(false, false);
    s.historyPanel.hidden = !show;
    s.historyToggle.setAttribute('aria-expanded', String(show));
    // A past session is read only: the message box goes while it shows.
    s.thread.classList.toggle('reading', show);
    this._sessions = null;
    this._sessionsNext = '';
    this._histSession = null;
    this._sessionSeq = (this._sessionSeq || 0) + 1;
    if (show) {
      s.search.hidden = true;
      s.results.hidden = true;
      s.log.hidden = true;
      this._historyList(false);
      this._loadHistory();
      if (focus) s.historyPanel.querySelector('.history-close').focus();
    } else {
      this._historySeq = (this._historySeq || 0) + 1;
      s.log.hidden = false;
      s.historyBody.replaceChildren();
      if (focus) s.historyToggle.focus();
      this._scrollToEnd();
    }
  }

  // _historyList shows the list of sessions again (after one was open).
  _historyList(focus = true) {
    const s = this.$;
    const was = this._histSession;
    this._histSession = null;
    this._sessionSeq = (this._sessionSeq || 0) + 1;
    s.historyBack.hidden = true;
    s.historyWindow.hidden = true;
    s.historyTitle.textContent = `Chat history with ${this._name(this.active)}`;
    if (this._sessions) this._renderSessions();
    else s.historyBody.replaceChildren(h('p', { class: 'muted', text: 'Loading…' }));
    if (focus) {
      const i = was && this._sessions ? this._sessions.indexOf(was) : -1;
      const b = i >= 0 ? s.historyBody.querySelector(`button[data-session="${i}"]`) : null;
      (b || s.historyPanel.querySelector('.history-close')).focus();
    }
  }

  // _loadHistory loads the first page of past sessions (api/conversations,
  // newest first), or with more the next, older page after those shown.
  async _loadHistory(more = false) {
    const s = this.$;
    const jid = this.active;
    const seq = (this._historySeq = (this._historySeq || 0) + 1);
    const cursor = more ? this._sessionsNext : '';
    if (more && !cursor) return;
    const olderButton = s.historyBody.querySelector('button.older-sessions');
    if (more && olderButton) { olderButton.disabled = true; olderButton.textContent = 'Loading…'; }
    let list;
    let next = '';
    try {
      const u = new URL('conversations', this.apiBase);
      u.searchParams.set('with', jid);
      if (cursor) u.searchParams.set('before', cursor);
      const size = Math.trunc(Number(this.sessionsPage));
      if (size >= 1 && size <= 100) u.searchParams.set('limit', String(size));
      const r = await fetch(u, { credentials: 'same-origin', headers: { Accept: 'application/json' } });
      const data = await r.json().catch(() => ({}));
      if (!r.ok) throw new Error(typeof data.error === 'string' ? data.error : r.statusText || String(r.status));
      list = Array.isArray(data.conversations) ? data.conversations : [];
      next = typeof data.next === 'string' ? data.next : '';
    } catch (e) {
      if (seq !== this._historySeq || s.historyPanel.hidden || this._histSession) return;
      if (more) {
        if (olderButton) { olderButton.disabled = false; olderButton.textContent = 'Older chat sessions'; }
        this._notice(`Older chat sessions could not be loaded: ${e.message.replace(/\.$/, '')}.`);
        return;
      }
      s.historyBody.replaceChildren(h('p', { class: 'error', role: 'alert' }, `The chat history could not be loaded: ${e.message.replace(/\.$/, '')}. `,
        h('button', { type: 'button', class: 'link retry', text: 'Try again' })));
      return;
    }
    if (seq !== this._historySeq || s.historyPanel.hidden || jid !== this.active) return;
    const page = list.map(sessionOf).filter(Boolean);
    const first = more ? (this._sessions || []).length : 0;
    this._sessions = more ? [...(this._sessions || []), ...page] : page;
    this._sessionsNext = next;
    if (!this._histSession) {
      this._renderSessions();
      // Keyboard users go on from the first session of the new page.
      if (more) s.historyBody.querySelector(`button[data-session="${first}"]`)?.focus();
    }
  }

  _renderSessions() {
    const s = this.$;
    const list = this._sessions || [];
    const name = this._name(this.active);
    if (!list.length) {
      s.historyBody.replaceChildren(h('p', { class: 'muted', text: `No past chats with ${name} yet.` }));
      return;
    }
    const items = list.map((c, i) => {
      const when = spanLabel(c.startDate, c.endDate);
      const count = `${c.messages} message${c.messages === 1 ? '' : 's'}`;
      return h('li', { class: 'session' },
        h('span', { class: 'session-main' },
          h('span', { class: 'session-when' }, h('time', { datetime: c.startDate.toISOString(), text: when }), h('span', { class: 'session-count', text: ' · ' + count })),
          c.preview ? h('span', { class: 'session-preview', text: c.preview }) : null),
        h('button', { type: 'button', class: 'small', 'data-session': String(i), text: 'Open', 'aria-label': `Open the chat of ${when}, ${count}` }));
    });
    const more = !!this._sessionsNext;
    s.historyBody.replaceChildren(
      h('p', { class: 'muted files-count', text: `${list.length}${more ? ' most recent' : ''} chat session${list.length === 1 ? '' : 's'}, newest first` }),
      h('ul', { class: 'session-list', 'aria-label': `Chat sessions with ${name}` }, items),
      more ? h('button', { type: 'button', class: 'small older-sessions', text: 'Older chat sessions' }) : null);
  }

  // _openSession shows one session's messages, read only, from the
  // archive (XEP-0313 between the session's first and last stamps).
  async _openSession(c) {
    if (!c) return;
    const s = this.$;
    const jid = this.active;
    this._histSession = c;
    const seq = (this._sessionSeq = (this._sessionSeq || 0) + 1);
    const when = spanLabel(c.startDate, c.endDate);
    s.historyTitle.textContent = when;
    s.historyBack.hidden = false;
    s.historyWindow.hidden = this.full;
    s.historyBody.replaceChildren(h('p', { class: 'muted', text: 'Loading the messages…' }));
    s.historyBack.focus();
    const found = [];
    try {
      await this._whenOnline();
      let after = '';
      for (let page = 0; page < 40; page++) {
        const r = await this.client.mam({ with: jid, start: c.start, end: c.end, after: after || undefined, max: 250 });
        if (seq !== this._sessionSeq) return;
        found.push(...r.messages);
        if (r.complete || !r.messages.length || !r.last) break;
        after = r.last;
      }
    } catch (e) {
      if (seq !== this._sessionSeq) return;
      s.historyBody.replaceChildren(h('p', { class: 'error', role: 'alert' }, `The messages could not be loaded: ${e.message.replace(/\.$/, '')}. `,
        h('button', { type: 'button', class: 'link retry-session', text: 'Try again' })));
      return;
    }
    if (seq !== this._sessionSeq) return;
    const items = [];
    let day = '';
    let n = 0;
    for (const res of found) {
      const text = childText(res.el, NS.client, 'body');
      if (!text) continue;
      const from = bare(res.el.getAttribute('from') || '');
      const out = from === this.me.jid;
      const d = dayLabel(res.stamp);
      if (d !== day) {
        items.push(h('li', { class: 'tday', text: d }));
        day = d;
      }
      const body = h('div', { class: 'rbody' });
      linkify(body, text);
      items.push(h('li', { class: 'tmsg ' + (out ? 'out' : 'in') },
        h('div', { class: 'rmeta' }, h('strong', { text: out ? 'You' : this._name(from) }), ' ',
          h('time', { datetime: res.stamp.toISOString(), text: timeFmt.format(res.stamp) })),
        body));
      n++;
    }
    s.historyBody.replaceChildren(
      h('p', { class: 'muted files-count', role: 'status', text: n ? `${n} message${n === 1 ? '' : 's'}, read only` : 'The messages of this session are no longer in the archive.' }),
      h('ul', { class: 'transcript', tabindex: '0', 'aria-label': `Messages of ${when}` }, items));
    s.historyBody.scrollTop = 0;
  }

  // _historyWindow opens the session on show in a window of its own (the
  // pop-out page).
  _historyWindow() {
    const c = this._histSession;
    if (!c) return;
    const u = this._popoutURL();
    u.searchParams.set('history', `${c.start}/${c.end}`);
    window.open(u.href, '_blank', 'popup,width=760,height=720');
  }

  // _sessionReady: the session is bound and the contact list loaded
  // (names known): what waits in _whenOnline may go on.
  _sessionReady() {
    this._ready = true;
    for (const f of this._readyWaiters || []) f();
    this._readyWaiters = [];
  }

  // _whenOnline resolves once the client is online with its contact list
  // loaded, or rejects.
  _whenOnline(timeout = 20000) {
    const c = this.client;
    if (c?.state === 'online' && this._ready) return Promise.resolve();
    if (!c || this.myStatus === 'offline') return Promise.reject(new Error('you are offline in chat'));
    return new Promise((resolve, reject) => {
      const done = (err) => {
        clearTimeout(timer);
        c.removeEventListener('state', on);
        this._readyWaiters = (this._readyWaiters || []).filter((f) => f !== ok);
        if (err) reject(err); else resolve();
      };
      const ok = () => done();
      const on = (e) => {
        if (e.detail.state === 'auth-failed' || e.detail.state === 'offline') done(new Error('chat is not connected'));
      };
      const timer = setTimeout(() => done(new Error('chat is not connected')), timeout);
      c.addEventListener('state', on);
      (this._readyWaiters ||= []).push(ok);
    });
  }

  // ---- meetings ----

  // meetingsBase is Parley's meeting service, beside the endpoint.
  get meetingsBase() { return new URL('meetings/', this.endpoint.replace(/^ws/, 'http')).href; }

  // _meetingLink returns {href, api, audio} when href is a meeting's join
  // link (<meetings>/j/<token> beside the endpoint, or where a meeting
  // this panel started said; an audio call's ends in ?media=audio), or
  // null.
  _meetingLink(href) {
    const prefixes = new Set([this.meetingsBase + 'j/', ...(this._meetPrefixes || [])]);
    for (const p of prefixes) {
      if (!href.startsWith(p)) continue;
      const t = /^([A-Za-z0-9_-]{8,128})(\?media=audio)?$/.exec(href.slice(p.length));
      if (t) return { href, api: p.slice(0, -2) + 'api/join/' + t[1], audio: !!t[2] };
    }
    return null;
  }

  // _meetingNode: a meeting link's card; a click opens the room's join
  // page in a new window. The title comes from the join page's own API.
  // A call (the message's call invite, or an audio call's link) says so.
  _meetingNode(m, invite) {
    const kind = invite && invite.uri === m.href ? (invite.video ? 'Video call' : 'Audio call') : (m.audio ? 'Audio call' : 'Online meeting');
    const what = kind === 'Online meeting' ? 'online meeting' : kind.toLowerCase();
    const title = h('strong', { class: 'card-title', text: kind });
    const call = kind !== 'Online meeting';
    const where = call && this._canFrame(m.href) ? 'over the page' : 'in a new window';
    const node = h('a', { class: 'card meeting-card' + (call ? ' call-card' : ''), href: m.href, target: '_blank', rel: 'noopener noreferrer',
      'data-call': kind === 'Audio call' ? 'audio' : kind === 'Video call' ? 'video' : null, 'aria-label': `Join the ${what} ${where}` },
      h('span', { class: 'meet-icon' }, svgIcon(kind === 'Audio call' ? ICON_PHONE : ICON_VIDEO)),
      h('span', { class: 'card-text' }, h('span', { class: 'card-site', text: kind }), title,
        h('span', { class: 'meet-join', text: 'Join' })));
    this._whenVisible(node, () => meetingInfo(m.api).then((info) => {
      if (!info || typeof info.title !== 'string' || !info.title) return;
      title.textContent = info.title;
      node.setAttribute('aria-label', `Join the ${what} “${info.title}” ${where}`);
    }));
    if (call && this._canFrame(m.href)) {
      node.addEventListener('click', (e) => {
        if (e.button !== 0 || e.ctrlKey || e.metaKey || e.shiftKey || e.altKey) return; // a new tab if asked
        e.preventDefault();
        this._openCall(m.href, kind);
      });
    }
    return node;
  }

  // The built-in "Start a meeting" action: a small dialog for the room
  // name, then startMeeting.
  _meetingAction({ with: jid }) {
    const s = this.$;
    if (!jid) return;
    this._meetWith = jid;
    s.meetForm.reset();
    s.meetError.textContent = '';
    s.meetSubmit.disabled = false;
    s.meetSubmit.textContent = 'Start meeting';
    s.meetRoom.placeholder = `Meeting with ${this._name(jid)}`;
    s.meetAbout.textContent = `A link to the meeting is posted in your chat with ${this._name(jid)}. Anyone with the link can join, now or later.`;
    s.meetDialog.showModal();
    s.meetRoom.focus();
  }

  _wireMeetDialog() {
    const s = this.$;
    s.meetForm.querySelector('.cancel').addEventListener('click', () => s.meetDialog.close());
    s.meetRoom.addEventListener('input', () => { s.meetError.textContent = ''; });
    s.meetForm.addEventListener('submit', async (e) => {
      e.preventDefault();
      if (s.meetSubmit.disabled) return;
      s.meetError.textContent = '';
      s.meetSubmit.disabled = true;
      s.meetSubmit.textContent = 'Starting…';
      try {
        await this.startMeeting(this._meetWith, s.meetRoom.value);
        s.meetDialog.close();
        if (this.active === this._meetWith) s.text.focus();
      } catch (err) {
        s.meetError.textContent = err.message;
        s.meetRoom.focus();
      } finally {
        s.meetSubmit.disabled = false;
        s.meetSubmit.textContent = 'Start meeting';
      }
    });
  }

  // startMeeting starts an online meeting with address (Parley's meeting
  // service, as the webmail user), named room or "Meeting with <name>",
  // and posts its link in the conversation as a plain text message. It
  // resolves with the link, or rejects with an Error that says why.
  async startMeeting(address, room = '') {
    const jid = bare(String(address || ''));
    if (!/^[^@\s]+@[^@\s]+$/.test(jid)) throw new TypeError('startMeeting: not an address: ' + address);
    const data = await this._startFromChat(jid, { room: String(room || '').trim() }, 'meeting');
    const text = typeof data.message === 'string' && data.message.includes(data.link) ? data.message : `Join my online meeting: ${data.link}`;
    this.sendMessage(jid, text);
    return data.link;
  }

  // The built-in "Audio call" and "Video call" actions: startCall, with
  // what goes wrong in the panel's notice bar.
  _callAction({ with: jid }, media) {
    if (!jid) return;
    this._notice('');
    this.startCall(jid, media).catch((e) => this._notice(e.message));
  }

  // startCall starts an audio or video call with address: a small room of
  // Parley's meeting service (the webmail user's, on the SFU; anyone with
  // the link may join), whose link is posted in the conversation (a plain
  // body, and a XEP-0482 call invite) and opened in a new window for the
  // caller; an audio call joins without camera. media is 'audio' or
  // 'video'. It resolves with the link, or rejects with an Error that
  // says why. Called from a click, it opens the window at once (so no
  // popup blocker refuses it) and closes it again on failure.
  async startCall(address, media = 'video') {
    const jid = bare(String(address || ''));
    if (!/^[^@\s]+@[^@\s]+$/.test(jid)) throw new TypeError('startCall: not an address: ' + address);
    if (media !== 'audio' && media !== 'video') throw new TypeError('startCall: media must be "audio" or "video", not ' + media);
    const what = media === 'audio' ? 'audio call' : 'video call';
    const online = this.myStatus !== 'offline' && this.client?.state === 'online';
    // The room lies over the page when it can be framed here; otherwise
    // (Parley on another origin) it opens in a window of its own.
    let overlay = null;
    let win = null;
    if (online && this._canFrame(this.meetingsBase)) {
      overlay = this._callOverlay(media === 'audio' ? 'Audio call' : 'Video call');
    } else if (online) {
      try {
        win = window.open('', '_blank');
        if (win) { win.opener = null; win.document.title = 'Starting the call…'; }
      } catch { win = null; }
    }
    let data;
    try {
      data = await this._startFromChat(jid, { call: media }, 'call');
    } catch (e) {
      overlay?.close();
      try { win?.close(); } catch { /* gone */ }
      throw e;
    }
    const text = typeof data.message === 'string' && data.message.includes(data.link) ? data.message : `Join my ${what}: ${data.link}`;
    this.sendMessage(jid, text, { call: { video: media === 'video', uri: data.link } });
    if (overlay && this._canFrame(data.link)) overlay.load(data.link);
    else {
      overlay?.close();
      if (win && !win.closed) win.location.href = data.link;
      else window.open(data.link, '_blank', 'noopener');
    }
    return data.link;
  }

  // _canFrame reports whether a room at href can be shown in a frame of
  // this page: the room pages allow framing by their own origin only.
  _canFrame(href) {
    try { return new URL(href, location.href).origin === location.origin; } catch { return false; }
  }

  // _openCall joins the call at href over the page, or in a new window
  // when it cannot be framed here.
  _openCall(href, title) {
    if (this._canFrame(href)) this._callOverlay(title).load(href);
    else window.open(href, '_blank', 'noopener');
  }

  // _callOverlay lays a call's room over the page, as the seed products
  // lay the video window over the chat: a frame of the room page, which
  // minimises itself to its top bar and back (it tells us by postMessage)
  // and says when its participant left, which closes the overlay. One call
  // at a time: a new one replaces the last (whose room sees it leave).
  // Returns {load(href), close()}.
  _callOverlay(title) {
    this._call?.close();
    const frame = h('iframe', { class: 'call-frame', title: title + ' room',
      allow: 'camera; microphone; display-capture; autoplay; fullscreen; clipboard-write' });
    const close = h('button', { class: 'call-close', type: 'button', title: 'Close the call', 'aria-label': 'Close the call', text: '✕' });
    const status = h('span', { class: 'call-status', text: 'Starting the call…' });
    const box = h('section', { class: 'call-overlay', role: 'dialog', 'aria-label': title },
      h('header', { class: 'call-head' }, h('strong', { class: 'call-title', text: title }), status, close), frame);
    const onMessage = (e) => {
      if (e.source !== frame.contentWindow || e.origin !== location.origin || e.data?.type !== 'parley-meeting') return;
      if (e.data.action === 'minimise') box.classList.add('minimised');
      else if (e.data.action === 'maximise') box.classList.remove('minimised');
      else if (e.data.action === 'left') call.close();
    };
    const call = {
      box, frame,
      load(href) { status.textContent = ''; frame.src = href; },
      close() {
        window.removeEventListener('message', onMessage);
        frame.src = 'about:blank'; // leaves the room: its socket closes
        box.remove();
        if (this === this.owner._call) this.owner._call = null;
      },
      owner: this,
    };
    close.addEventListener('click', () => call.close());
    window.addEventListener('message', onMessage);
    this.shadowRoot.append(box);
    this._call = call;
    return call;
  }

  // _startFromChat asks the meeting service for a meeting or call with
  // jid (POST <meetings>/api/start) and returns its answer ({link,
  // message, ...}), or throws an Error that says why, in the user's words.
  async _startFromChat(jid, body, what) {
    const failed = `The ${what} could not be started`;
    if (this.myStatus === 'offline' || this.client?.state !== 'online') {
      throw new Error(`You are offline in chat, so the ${what} link could not be posted. Choose Available in your status menu, then try again.`);
    }
    let r;
    let data;
    try {
      r = await fetch(new URL('api/start', this.meetingsBase), {
        method: 'POST', credentials: 'same-origin',
        headers: { 'Content-Type': 'application/json', Accept: 'application/json' },
        body: JSON.stringify({ contact: jid, ...body }),
      });
      data = await r.json().catch(() => null);
    } catch {
      throw new Error(`${failed}: the server did not answer. Check your connection and try again.`);
    }
    if (!r.ok) {
      let why = (typeof data?.error?.message === 'string' && data.error.message) || (typeof data?.error === 'string' && data.error) || '';
      if (r.status === 401) why = 'your webmail session has ended. Log in to webmail again, then try again';
      else if (r.status === 404 && !why) why = 'this server has no meeting service';
      throw new Error(`${failed}: ${(why || r.statusText || 'error ' + r.status).replace(/\.$/, '')}.`);
    }
    const link = typeof data?.link === 'string' ? safeHref(data.link) : '';
    if (!link) throw new Error(`${failed}: the server sent no link.`);
    const at = link.lastIndexOf('/j/');
    if (at > 0) (this._meetPrefixes ||= new Set()).add(link.slice(0, at + 3));
    return { ...data, link };
  }

  // ---- history ----

  async _loadRecent(conv) {
    if (!conv || conv.loading || this.client?.state !== 'online') return;
    conv.loading = true;
    this._renderThread();
    try {
      const start = new Date(Date.now() - HISTORY_DAYS * 86400000).toISOString();
      const r = await this.client.mam({ with: conv.jid, before: true, max: HISTORY_LINES, start });
      for (const res of r.messages) this._chatMessage(res.el, { archiveID: res.id, stamp: res.stamp, peer: conv.jid });
      conv.loaded = true;
      conv.oldest = r.first || conv.oldest;
      conv.older = true; // what the 30 days left out is asked for when scrolling up
      if (r.complete && r.messages.length < HISTORY_LINES) {
        // Is there anything before the window? One message tells.
        const probe = await this.client.mam({ with: conv.jid, before: r.first || true, max: 1 });
        conv.older = probe.messages.length > 0 && !(r.first === '' && probe.messages.every((p) => conv.byArchive.has(p.id)));
      }
      conv.loadError = '';
    } catch (e) {
      conv.loadError = 'History could not be loaded: ' + e.message;
    } finally {
      conv.loading = false;
    }
    this._renderThread();
    this._scrollToEnd();
    if (this._seeing(conv.jid)) this._markSeen(conv);
  }

  async _loadOlder() {
    const conv = this.convs.get(this.active);
    if (!conv || conv.loading || !conv.older || !conv.loaded || this.client?.state !== 'online') return;
    conv.loading = true;
    this._renderOlder(conv);
    const log = this.$.log;
    const fromBottom = log.scrollHeight - log.scrollTop;
    try {
      const oldest = conv.msgs.find((m) => m.archiveID)?.archiveID || conv.oldest;
      const r = await this.client.mam({ with: conv.jid, before: oldest || true, max: HISTORY_LINES });
      for (const res of r.messages) this._chatMessage(res.el, { archiveID: res.id, stamp: res.stamp, peer: conv.jid });
      if (r.first) conv.oldest = r.first;
      conv.older = !r.complete && r.messages.length > 0;
    } catch (e) {
      conv.loadError = 'Older messages could not be loaded: ' + e.message;
    } finally {
      conv.loading = false;
    }
    this._renderThread();
    // Keep the message the user was reading where it was.
    log.scrollTop = log.scrollHeight - fromBottom;
  }

  // _catchUp fetches what the archive got while the session was lost.
  async _catchUp(conv) {
    const newest = conv.msgs.findLast((m) => m.archiveID)?.archiveID;
    try {
      if (!newest) { conv.loaded = false; if (conv.jid === this.active) await this._loadRecent(conv); return; }
      const r = await this.client.mam({ with: conv.jid, after: newest, max: 250 });
      for (const res of r.messages) this._chatMessage(res.el, { archiveID: res.id, stamp: res.stamp, peer: conv.jid });
      this._renderThread();
    } catch { /* the next scroll or message will do */ }
  }

  _logScrolled() {
    const log = this.$.log;
    this._atEnd = log.scrollHeight - log.scrollTop - log.clientHeight < 40;
    if (log.scrollTop < 40) this._loadOlder();
  }

  _toggleSearch(on) {
    const s = this.$;
    const show = on ?? s.search.hidden;
    if (show && !s.filesPanel.hidden) this._toggleFiles(false, false);
    if (show && !s.historyPanel.hidden) this._toggleHistory(false, false);
    s.search.hidden = !show;
    s.results.hidden = true;
    s.log.hidden = false;
    if (show) s.search.querySelector('input').focus();
    else { s.results.replaceChildren(); s.searchToggle.focus(); }
  }

  async _runSearch() {
    const s = this.$;
    const q = s.search.querySelector('input').value.trim();
    if (!q || !this.active) return;
    s.results.hidden = false;
    s.log.hidden = true;
    s.results.replaceChildren(h('p', { class: 'muted', text: 'Searching…' }));
    try {
      const r = await this.client.mam({ with: this.active, fulltext: q, before: true, max: 50 });
      const items = r.messages.map((res) => {
        const from = bare(res.el.getAttribute('from'));
        const body = h('div', { class: 'rbody' });
        linkify(body, childText(res.el, NS.client, 'body'));
        return h('li', {}, h('div', { class: 'rmeta' },
          h('strong', { text: this._name(from) }), ' ', h('time', { datetime: res.stamp.toISOString(), text: `${dayLabel(res.stamp)} ${timeFmt.format(res.stamp)}` })), body);
      });
      s.results.replaceChildren(
        h('p', { class: 'muted', text: items.length ? `${items.length}${r.complete ? '' : '+'} message${items.length === 1 ? '' : 's'} found for “${q}”` : `Nothing found for “${q}”` }),
        h('ul', {}, items.reverse()));
    } catch (e) {
      s.results.replaceChildren(h('p', { class: 'error', text: 'Search failed: ' + e.message }));
    }
  }

  // ---- conversation view ----

  _openConv(jid) {
    this.active = jid;
    const conv = this._conv(jid);
    if (!this.$.filesPanel.hidden) this._toggleFiles(false, false);
    if (!this.$.historyPanel.hidden) this._toggleHistory(false, false);
    if (this.$.meetDialog.open) this.$.meetDialog.close();
    this._renderUploads();
    if (this.narrow) this.sideClosed = true;
    this._layout();
    this.$.search.hidden = true;
    this.$.results.hidden = true;
    this.$.log.hidden = false;
    this._showThread();
    this._render();
    this._renderThread();
    this._scrollToEnd();
    if (!conv.loaded) this._loadRecent(conv);
    else if (this._seeing(jid)) this._markSeen(conv);
    requestAnimationFrame(() => this.$.text.focus());
  }

  _showThread() {
    const s = this.$;
    if (!s.login.hidden) return;
    s.placeholder.hidden = !!this.active;
    s.thread.hidden = !this.active;
  }

  _toggleSide(open) {
    this.sideClosed = open === undefined ? !this.sideClosed : !open;
    this._layout();
    if (!this.sideClosed) this.$.filter.focus();
    else if (this.active) {
      const conv = this.convs.get(this.active);
      if (conv && this._seeing(conv.jid)) this._markSeen(conv);
    }
  }

  _layout() {
    const s = this.$;
    s.panel.classList.toggle('side-closed', this.sideClosed);
    s.panel.classList.toggle('narrow', this.narrow);
    s.burger.setAttribute('aria-expanded', String(!this.sideClosed));
  }

  _reflectOpen() {
    const s = this.$;
    const open = this.open;
    s.root.classList.toggle('full', this.full);
    s.panel.hidden = !open;
    s.launcher.hidden = this.full;
    s.launcher.setAttribute('aria-expanded', String(open));
    s.popout.hidden = this.full;
    s.close.hidden = this.full;
    if (open) {
      this._layout();
      this._render();
      const conv = this.convs.get(this.active);
      if (conv) {
        this._scrollToEnd();
        if (this._seeing(conv.jid)) this._markSeen(conv);
      }
      if (!this.full) requestAnimationFrame(() => (this.active ? s.text : s.filter).focus());
    }
  }

  _popoutURL() {
    const u = new URL('popout.html', here);
    u.searchParams.set('endpoint', this.endpoint);
    if (this.getAttribute('domain')) u.searchParams.set('domain', this.getAttribute('domain'));
    if (this.active) u.searchParams.set('with', this.active);
    return u;
  }

  _popOut() {
    const w = window.open(this._popoutURL().href, 'parley-chat', 'popup,width=960,height=700');
    if (w) this.open = false;
  }

  _scrollToEnd() {
    const log = this.$.log;
    this._atEnd = true;
    requestAnimationFrame(() => { log.scrollTop = log.scrollHeight; });
  }

  // _grew: something in the log got taller (an image or a card loaded);
  // a reader at the end stays at the end.
  _grew() {
    if (this._atEnd) this.$.log.scrollTop = this.$.log.scrollHeight;
  }

  // ---- rendering ----

  _render() {
    if (this._renderQueued) return;
    this._renderQueued = true;
    // Presence comes in bursts at login: draw once per frame, and soon
    // enough in a background tab.
    const run = () => {
      if (!this._renderQueued) return;
      this._renderQueued = false;
      this._renderStatus();
      this._renderList();
      this._renderInvites();
      this._renderHead();
      this._renderThread();
    };
    requestAnimationFrame(run);
    setTimeout(run, 200);
  }

  _renderStatus() {
    const s = this.$;
    if (!s) return;
    const online = this.client?.state === 'online';
    const status = this.myStatus === 'offline' || !online ? (this.myStatus === 'offline' ? 'offline' : 'connecting') : this.myStatus;
    s.meAvatar.textContent = initials(this.me.name || this.me.jid || '?');
    s.meDot.className = 'dot ' + status;
    const label = this.myStatus === 'offline' ? 'Offline' : STATUS_LABEL[this.myStatus];
    s.me.setAttribute('aria-label', `Your status: ${label}${online || this.myStatus === 'offline' ? '' : ' (connecting)'}`);
    s.me.title = `${this.me.name || this.me.jid || 'You'}: ${label}`;
    s.meName.textContent = this.me.name || localPart(this.me.jid) || 'You';
    s.meJID.textContent = this.me.jid;
    for (const b of s.statusMenu.querySelectorAll('[data-status]')) b.setAttribute('aria-checked', String(b.dataset.status === this.myStatus));
    s.statusMenu.querySelector('[data-action="show-offline"]').setAttribute('aria-checked', String(this.showOffline));
    const notif = s.statusMenu.querySelector('[data-action="notifications"]');
    const perm = typeof Notification === 'undefined' ? 'unsupported' : Notification.permission;
    notif.textContent = { granted: 'Desktop notifications: on', denied: 'Desktop notifications: blocked in the browser', unsupported: 'Desktop notifications: not supported' }[perm] || 'Turn on desktop notifications';
    notif.disabled = perm !== 'default';
    s.panel.classList.toggle('self-offline', this.myStatus === 'offline');
  }

  _renderInvites() {
    const s = this.$;
    s.invites.hidden = this.invites.size === 0;
    s.inviteList.replaceChildren(...[...this.invites.values()].map((inv) => {
      const name = inv.name || this.contacts.get(inv.jid)?.name || '';
      return h('li', { class: 'invite' },
        h('div', { class: 'inv-who' }, h('strong', { text: name || inv.jid }), name ? h('span', { class: 'muted', text: inv.jid }) : null,
          h('span', { class: 'muted', text: 'wants to add you as a contact' })),
        h('div', { class: 'inv-buttons' },
          h('button', { type: 'button', class: 'primary small', 'data-invite': inv.jid, 'data-accept': '1', text: 'Accept', 'aria-label': `Accept ${name || inv.jid}` }),
          h('button', { type: 'button', class: 'small', 'data-invite': inv.jid, 'data-accept': '0', text: 'Decline', 'aria-label': `Decline ${name || inv.jid}` })));
    }));
  }

  _renderList() {
    const s = this.$;
    const focused = this.shadowRoot.activeElement?.dataset?.jid;
    const q = this.filterText.trim().toLowerCase();
    const terms = q.split(/\s+/).filter(Boolean);
    let all = [...this.contacts.values()].filter((c) => !c.transient || this.convs.get(c.jid)?.msgs.length || c.jid === this.active);
    if (terms.length) all = all.filter((c) => terms.every((t) => c.key.includes(t)));
    const byName = (a, b) => collator.compare(a.name || a.jid, b.name || b.jid);
    const aliases = all.filter((c) => c.alias).sort(byName);
    let users = all.filter((c) => !c.alias).sort(byName);
    const online = this.myStatus !== 'offline' && this.client?.state === 'online';
    if (!this.showOffline && !terms.length) {
      users = users.filter((c) => this._show(c) !== 'offline' || this.convs.get(c.jid)?.unread || c.jid === this.active || c.ask);
    }
    const rows = [];
    let shown = 0;
    const cap = (list) => list.slice(0, Math.max(0, LIST_CAP - shown));
    const row = (c) => {
      shown++;
      const show = online ? this._show(c) : 'offline';
      const conv = this.convs.get(c.jid);
      const unread = conv?.unread || 0;
      let statusText = c.alias ? '' : STATUS_LABEL[show];
      if (!c.alias && c.ask && c.subscription !== 'to' && c.subscription !== 'both') statusText = 'Invitation sent';
      if (c.error) statusText = 'Invitation failed: ' + c.error;
      const statusClass = c.error ? 'cstatus failed' : 'cstatus';
      const cls = ['contact', c.alias ? 'alias' : show, !c.alias && show === 'offline' ? 'offline' : '', c.jid === this.active ? 'active' : ''].join(' ');
      const label = [c.name || c.jid, c.alias ? 'alias' : statusText, unread ? `${unread} unread` : ''].filter(Boolean).join(', ');
      return h('li', {}, h('button', { type: 'button', class: cls, 'data-jid': c.jid, 'aria-label': label, 'aria-current': c.jid === this.active ? 'true' : null, title: c.jid },
        h('span', { class: 'avatar small' + (c.alias ? ' alias' : '') }, initials(c.name || c.jid), c.alias ? null : h('span', { class: 'dot ' + show })),
        h('span', { class: 'cmain' }, h('span', { class: 'cname', text: c.name || localPart(c.jid) }),
          statusText ? h('span', { class: statusClass, text: statusText }) : h('span', { class: 'cstatus', text: c.jid })),
        unread ? h('span', { class: 'count', text: String(unread) }) : null));
    };
    if (aliases.length) {
      rows.push(h('li', { class: 'group', role: 'presentation', text: 'Aliases' }));
      for (const c of cap(aliases)) rows.push(row(c));
    }
    if (users.length) {
      rows.push(h('li', { class: 'group', role: 'presentation', text: 'People' }));
      for (const c of cap(users)) rows.push(row(c));
    }
    const total = aliases.length + users.length;
    // Someone not in the list, typed as an address: chat anyway.
    if (/^[^@\s]+@[^@\s]+\.[^@\s]+$/.test(q) && !this.contacts.has(q)) {
      rows.push(h('li', {}, h('button', { type: 'button', class: 'contact chat-address', 'data-jid': q },
        h('span', { class: 'cmain' }, h('span', { class: 'cname', text: `Chat with ${q}` })))));
    }
    if (!rows.length) {
      rows.push(h('li', { class: 'empty-list', text: terms.length ? 'Nobody matches.' : (this.contacts.size ? 'Everyone is offline.' : 'No contacts yet. Use + to add one.') }));
    }
    s.list.replaceChildren(...rows);
    s.listMore.hidden = total <= shown;
    s.listMore.textContent = `${total - shown} more not shown: type in Chat with... to narrow the list.`;
    if (focused) s.list.querySelector(`button[data-jid="${CSS.escape(focused)}"]`)?.focus();
  }

  _renderHead() {
    const s = this.$;
    if (!this.active) return;
    const c = this._contact(this.active);
    s.peerName.textContent = c.name || localPart(c.jid);
    s.peerAvatar.textContent = initials(c.name || c.jid);
    s.peerAvatar.classList.toggle('alias', !!c.alias);
    const online = this.client?.state === 'online' && this.myStatus !== 'offline';
    const show = online ? this._show(c) : 'offline';
    const res = [...c.resources.values()].find((r) => r.status);
    s.peerStatus.textContent = c.alias ? `${c.jid} · messages reach every member online` : `${c.jid} · ${STATUS_LABEL[show]}${res?.status ? ' — ' + res.status : ''}`;
    s.peerStatus.className = 'peer-status ' + (c.alias ? 'alias' : show);
  }

  _renderOlder(conv) {
    const first = this.$.log.querySelector('.older');
    if (first) first.replaceWith(this._olderRow(conv));
  }

  _olderRow(conv) {
    if (conv.loading) return h('div', { class: 'older' }, h('span', { class: 'muted', text: 'Loading messages…' }));
    if (conv.loadError) return h('div', { class: 'older' }, h('span', { class: 'error', text: conv.loadError }), ' ', h('button', { type: 'button', class: 'link', text: 'Try again' }));
    if (conv.loaded && conv.older) {
      return h('div', { class: 'older' }, h('button', { type: 'button', class: 'link', text: conv.msgs.length ? 'Load older messages' : `No messages in the last ${HISTORY_DAYS} days. Load older messages` }));
    }
    if (conv.loaded) return h('div', { class: 'older' }, h('span', { class: 'muted', text: conv.msgs.length ? 'Beginning of the conversation' : 'No messages yet. Say hello!' }));
    return h('div', { class: 'older' });
  }

  _renderThread() {
    const s = this.$;
    const conv = this.convs.get(this.active);
    if (!conv || s.thread.hidden) return;
    const log = s.log;
    const atEnd = log.scrollHeight - log.scrollTop - log.clientHeight < 40;
    const nodes = [this._olderRow(conv)];
    let day = '';
    let prev = null;
    const lastSeen = conv.msgs.findLast((m) => m.out && m.state === 'displayed');
    const alias = this._isAlias(conv.jid);
    for (const m of conv.msgs) {
      const d = dayLabel(m.stamp);
      if (d !== day) {
        nodes.push(h('div', { class: 'day', role: 'separator', text: d }));
        day = d;
        prev = null;
      }
      const grouped = prev && prev.sender === m.sender && prev.via === m.via && m.stamp - prev.stamp < 5 * 60000;
      // A shared file alone shows as the file; text keeps its bubble, with
      // the files and a link's card under it.
      const ex = this._extrasFor(m);
      let bubble = null;
      if (!ex.only) {
        bubble = h('div', { class: 'bubble' });
        linkify(bubble, m.body);
      }
      let state = null;
      if (m.out && m.state === 'error') state = h('div', { class: 'state error', text: 'Not delivered: ' + (m.error || 'error') });
      else if (m.out && m.state === 'queued') state = h('div', { class: 'state', text: 'Sending…' });
      else if (m === lastSeen && !alias) state = h('div', { class: 'state seen', text: 'Seen' });
      const who = m.out ? 'You' : this._name(m.sender);
      nodes.push(h('div', { class: `msg ${m.out ? 'out' : 'in'}${grouped ? ' grouped' : ''}${ex.only ? ' attachment' : ''}`, 'data-id': m.archiveID || m.clientID },
        grouped ? null : h('div', { class: 'meta' }, h('span', { class: 'from', text: who }), ' ',
          m.via && m.via !== conv.jid ? h('span', { class: 'via', text: `via ${this._name(m.via)} ` }) : null,
          h('time', { datetime: m.stamp.toISOString(), text: timeFmt.format(m.stamp) })),
        h('span', { class: 'sr-only', text: `${who} at ${timeFmt.format(m.stamp)}: ` }),
        bubble, ex.node, state));
      prev = m;
    }
    log.replaceChildren(...nodes);
    if (atEnd) log.scrollTop = log.scrollHeight;
    this._renderTyping();
  }

  _renderTyping() {
    const conv = this.convs.get(this.active);
    this.$.typing.textContent = conv?.typing ? `${this._name(conv.jid)} is typing…` : '';
  }

  _autosize() {
    const t = this.$.text;
    t.style.height = 'auto';
    t.style.height = Math.min(t.scrollHeight, 160) + 'px';
  }

  _notice(text) {
    this.$.notice.textContent = text;
    this.$.notice.hidden = !text;
  }

  // ---- unread, title badge, notifications ----

  _updateUnread() {
    let n = 0;
    for (const c of this.convs.values()) n += c.unread;
    if (n === this.unread) return;
    this.unread = n;
    const b = this.$.badge;
    b.hidden = n === 0;
    b.textContent = n > 99 ? '99+' : String(n);
    this.$.launcher.setAttribute('aria-label', n ? `Chat, ${n} unread` : 'Chat');
    this._titleBadge();
    this.dispatchEvent(new CustomEvent('parley-unread', { detail: { count: n }, bubbles: true, composed: true }));
  }

  _titleBadge() {
    const hidden = document.visibilityState === 'hidden';
    const strip = (t) => t.replace(/^\(\d+\+?\) /, '');
    if (hidden && this.unread) {
      if (!this.titleBase) this.titleBase = strip(document.title);
      document.title = `(${this.unread > 99 ? '99+' : this.unread}) ${this.titleBase}`;
    } else if (this.titleBase) {
      document.title = this.titleBase;
      this.titleBase = '';
    }
  }

  _visibilityChanged() {
    const visible = document.visibilityState === 'visible';
    this.client?.setActive(visible);
    this._titleBadge();
    if (visible && this.active) {
      const conv = this.convs.get(this.active);
      if (conv && this._seeing(conv.jid)) this._markSeen(conv);
    }
  }

  _notify(peer, text, sender) {
    if (document.visibilityState !== 'hidden' || typeof Notification === 'undefined' || Notification.permission !== 'granted') return;
    try {
      const title = sender && sender !== peer ? `${this._name(sender)} (${this._name(peer)})` : this._name(peer);
      const n = new Notification(title, { body: text.length > 140 ? text.slice(0, 139) + '…' : text, tag: 'parley-' + peer });
      n.onclick = () => { window.focus(); this.openChat(peer); n.close(); };
    } catch { /* some browsers allow notifications only from a service worker */ }
  }

  async _askNotifications(explicit) {
    if (typeof Notification === 'undefined' || Notification.permission !== 'default') return;
    if (!explicit && load('parley.asked')) return;
    store('parley.asked', '1');
    try { await Notification.requestPermission(); } catch { /* ignored */ }
    this._renderStatus();
  }

  _emitStatus() {
    const connection = this.client?.state || 'offline';
    this.dispatchEvent(new CustomEvent('parley-status', {
      detail: { status: this.myStatus, connection, jid: this.me.jid }, bubbles: true, composed: true,
    }));
  }

  // ---- menus and keyboard ----

  _toggleMenu(menu, button) {
    const show = menu.hidden;
    this._closeMenus();
    if (!show) return;
    menu.hidden = false;
    button.setAttribute('aria-expanded', 'true');
    menu.querySelector('button:not(:disabled)')?.focus();
  }

  _closeMenus() {
    const s = this.$;
    for (const [m, b] of [[s.statusMenu, s.me], [s.actionsMenu, s.actions]]) {
      if (!m.hidden) {
        m.hidden = true;
        b.setAttribute('aria-expanded', 'false');
        if (m.contains(this.shadowRoot.activeElement)) b.focus();
      }
    }
  }

  _menuKey(e, menu) {
    const items = [...menu.querySelectorAll('button')].filter((b) => !b.disabled || b.getAttribute('aria-disabled') === 'true');
    const i = items.indexOf(this.shadowRoot.activeElement);
    if (e.key === 'ArrowDown' || e.key === 'ArrowUp') {
      e.preventDefault();
      const next = items[(i + (e.key === 'ArrowDown' ? 1 : items.length - 1)) % items.length];
      next?.focus();
    } else if (e.key === 'Tab') {
      this._closeMenus();
    }
  }

  _statusMenuClick(e) {
    const b = e.target.closest('button');
    if (!b) return;
    if (b.dataset.status) {
      this.setStatus(b.dataset.status);
      this._closeMenus();
    } else if (b.dataset.action === 'show-offline') {
      this.showOffline = !this.showOffline;
      store('parley.showOffline', this.showOffline ? '1' : '0');
      this._render();
      this._renderStatus();
    } else if (b.dataset.action === 'notifications') {
      this._askNotifications(true);
    }
  }

  _fillActions() {
    const items = [...actions].map(([id, a]) => h('button', {
      type: 'button', role: 'menuitem', 'data-action': id, text: a.label,
      disabled: !a.run, title: a.run ? null : a.later, 'aria-disabled': a.run ? null : 'true',
    }));
    items.push(h('hr', { role: 'separator' }));
    items.push(h('button', { type: 'button', role: 'menuitem', 'data-action': 'history', text: 'Past chat sessions' }));
    items.push(h('button', { type: 'button', role: 'menuitem', 'data-action': 'search', text: 'Search history' }));
    this.$.actionsMenu.replaceChildren(...items);
  }

  _actionClick(e) {
    const b = e.target.closest('button');
    if (!b || b.disabled) return;
    this._closeMenus();
    if (b.dataset.action === 'search') { this._toggleSearch(true); return; }
    if (b.dataset.action === 'history') { this._toggleHistory(true); return; }
    const a = actions.get(b.dataset.action);
    a?.run?.({ element: this, with: this.active });
  }

  _filterKey(e) {
    if (e.key === 'Enter') {
      e.preventDefault();
      this.$.list.querySelector('button[data-jid]')?.click();
    } else if (e.key === 'ArrowDown') {
      e.preventDefault();
      this.$.list.querySelector('button[data-jid]')?.focus();
    }
  }

  _listKey(e) {
    if (e.key !== 'ArrowDown' && e.key !== 'ArrowUp') return;
    const buttons = [...this.$.list.querySelectorAll('button[data-jid]')];
    const i = buttons.indexOf(this.shadowRoot.activeElement);
    if (i < 0) return;
    e.preventDefault();
    if (e.key === 'ArrowUp' && i === 0) this.$.filter.focus();
    else buttons[Math.min(buttons.length - 1, i + (e.key === 'ArrowDown' ? 1 : -1))]?.focus();
  }

  // ---- add a contact ----

  _openAdd() {
    const s = this.$;
    s.addForm.reset();
    s.addError.textContent = '';
    s.addResults.replaceChildren();
    this._picked = null;
    s.addDialog.showModal();
    s.addWho.focus();
  }

  _wireAddDialog() {
    const s = this.$;
    let timer = 0;
    let seq = 0;
    s.addForm.querySelector('.cancel').addEventListener('click', () => s.addDialog.close());
    s.addWho.addEventListener('input', () => {
      this._picked = null;
      s.addError.textContent = '';
      clearTimeout(timer);
      const q = s.addWho.value.trim();
      if (q.length < 2 || q.includes('<')) { s.addResults.replaceChildren(); s.addWho.setAttribute('aria-expanded', 'false'); return; }
      timer = setTimeout(async () => {
        const mine = ++seq;
        const found = await this._search(q);
        if (mine !== seq) return;
        this._addResults = found;
        s.addResults.replaceChildren(...found.map((e, i) => h('li', {
          role: 'option', id: 'add-opt-' + i, class: e.chat_enabled ? 'found' : 'found not-chat',
          'aria-disabled': e.chat_enabled ? null : 'true', 'data-i': String(i), tabindex: '-1',
          title: e.chat_enabled ? e.address : `${e.name || e.address} has not logged into webmail yet, so chat is not enabled for them`,
        }, h('strong', { text: e.name || e.address }), ' ', h('span', { text: e.address }),
        e.chat_enabled ? null : h('span', { class: 'why', text: ' — chat not enabled yet' }))));
        s.addWho.setAttribute('aria-expanded', String(found.length > 0));
      }, 200);
    });
    s.addWho.addEventListener('keydown', (e) => {
      if (e.key === 'ArrowDown') { e.preventDefault(); s.addResults.querySelector('li')?.focus(); }
    });
    s.addResults.addEventListener('keydown', (e) => {
      const li = e.target.closest('li');
      if (!li) return;
      if (e.key === 'ArrowDown') { e.preventDefault(); (li.nextElementSibling || li).focus(); }
      if (e.key === 'ArrowUp') { e.preventDefault(); (li.previousElementSibling || s.addWho).focus(); }
      if (e.key === 'Enter' || e.key === ' ') { e.preventDefault(); li.click(); }
    });
    s.addResults.addEventListener('click', (e) => {
      const li = e.target.closest('li[data-i]');
      if (!li) return;
      const entry = this._addResults?.[Number(li.dataset.i)];
      if (!entry) return;
      if (!entry.chat_enabled) {
        s.addError.textContent = `${entry.name || entry.address} has not logged into webmail yet, so chat is not enabled for them. They can be added once they have.`;
        return;
      }
      this._picked = entry;
      s.addWho.value = entry.name ? `${entry.name} <${entry.address}>` : entry.address;
      s.addResults.replaceChildren();
      s.addWho.setAttribute('aria-expanded', 'false');
      s.addGroups.focus();
    });
    s.addForm.addEventListener('submit', async (e) => {
      e.preventDefault();
      const target = await this._parseContact(s.addWho.value);
      if (typeof target === 'string') {
        s.addError.textContent = target;
        s.addWho.focus();
        return;
      }
      const groups = [...new Set(s.addGroups.value.split(',').map((g) => g.trim()).filter(Boolean))];
      try {
        await this.addContact(target.jid, target.name, groups);
        s.addDialog.close();
      } catch (err) {
        s.addError.textContent = 'The contact could not be added: ' + err.message;
      }
    });
  }

  // _parseContact returns {jid, name} for what was typed in the add
  // dialog, or the error to show.
  async _parseContact(value) {
    const v = value.trim();
    const own = (this.me.jid.split('@')[1] || this.getAttribute('domain') || '').toLowerCase();
    let jid = '';
    let name = '';
    const m = /^([^<>]*[^<>\s])\s*<\s*([^<>@\s]+@[^<>@\s]+\.[^<>@\s]+)\s*>$/.exec(v);
    if (this._picked && (v === `${this._picked.name} <${this._picked.address}>` || v === this._picked.address)) {
      jid = this._picked.address.toLowerCase();
      name = this._picked.name || '';
    } else if (m) {
      name = m[1].trim();
      jid = m[2].toLowerCase();
    } else if (/^[^<>@\s]+@[^<>@\s]+\.[^<>@\s]+$/.test(v) && v.toLowerCase().endsWith('@' + own)) {
      jid = v.toLowerCase(); // an address in the user's own domain
    } else {
      return INVALID_CONTACT;
    }
    if (jid === this.me.jid) return 'That is your own address.';
    if (jid.endsWith('@' + own)) {
      // Within the domain the directory says whether the person can chat.
      const found = await this._search(jid);
      const entry = found.find((e) => e.address.toLowerCase() === jid);
      if (entry && !entry.chat_enabled) {
        return `${entry.name || jid} has not logged into webmail yet, so chat is not enabled for them. They can be added once they have.`;
      }
      if (!name && entry) name = entry.name || '';
    }
    return { jid, name };
  }

  // _search asks the host's directory (GET search-url?q=) for people in
  // the user's domain; without it, the contact list is searched instead.
  async _search(q) {
    try {
      const u = new URL(this.searchURL);
      u.searchParams.set('q', q);
      const r = await fetch(u, { credentials: 'same-origin', headers: { Accept: 'application/json' } });
      if (!r.ok) throw new Error(r.statusText);
      const data = await r.json();
      const list = Array.isArray(data) ? data : data.results;
      if (!Array.isArray(list)) throw new Error('bad answer');
      for (const e of list) {
        if (e.kind === 'alias') { const c = this.contacts.get(bare(e.address)); if (c) c.knownAlias = c.alias = true; }
      }
      return list.filter((e) => e && typeof e.address === 'string').map((e) => ({
        address: e.address, name: typeof e.name === 'string' ? e.name : '', kind: e.kind === 'alias' ? 'alias' : 'user',
        chat_enabled: e.kind === 'alias' || e.chat_enabled === true,
      }));
    } catch {
      const t = q.toLowerCase();
      return [...this.contacts.values()].filter((c) => !c.transient && c.key.includes(t)).slice(0, 20)
        .map((c) => ({ address: c.jid, name: c.name, kind: c.alias ? 'alias' : 'user', chat_enabled: true }));
    }
  }

  // _nick is the user's name for the other side of an invitation (XEP-0172).
  _nick() {
    return this.me.name ? x('nick', { xmlns: 'http://jabber.org/protocol/nick' }, this.me.name) : null;
  }

  // addContact adds address to the roster with name and groups and asks
  // to see their presence; they must accept.
  async addContact(address, name = '', groups = []) {
    const jid = bare(address);
    await this.client.iq('set', x('query', { xmlns: NS.roster },
      x('item', { jid, name: name || undefined }, groups.map((g) => x('group', {}, g)))));
    const c = this.contacts.get(jid);
    if (c) c.error = '';
    if (!c || (c.subscription !== 'to' && c.subscription !== 'both')) {
      this.client.send(x('presence', { xmlns: NS.client, to: jid, type: 'subscribe' }, this._nick()));
    }
    this._render();
  }
}

if (!customElements.get('parley-chat')) customElements.define('parley-chat', ParleyChat);
