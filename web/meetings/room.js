// The join page, lobby and meeting room. It joins over the JSON API,
// then lives on the participant WebSocket: every change in the room
// (people, lobby, settings, chat, files, moderation) arrives there.
//
// The media layer finds what it needs on window.parleyMeeting (the
// credential for its own signalling, the participant, the meeting) and
// the element #parley-media; it hears changes as DOM events on document:
// "parley:welcome", "parley:participants", "parley:settings",
// "parley:muted", "parley:removed" and "parley:ended".
'use strict';

const token = decodeURIComponent(location.pathname.slice(location.pathname.lastIndexOf('/') + 1));
const credKey = 'parley-meeting-credential:' + token;

const state = {
  info: null,        // what GET join/{token} said
  credential: '',
  me: null,          // my participant
  meeting: null,     // settings as last received
  people: new Map(), // id -> participant in the meeting
  lobby: [],
  messages: new Map(),
  files: new Map(),
  ws: null,
  closing: false,
  retry: 0,
  unread: 0,
  tab: 'people',
};

window.parleyMeeting = {
  get credential() { return state.credential; },
  get participant() { return state.me; },
  get meeting() { return state.meeting; },
  get participants() { return [...state.people.values()]; },
  mediaElement: null,
  // For the media layer: meeting commands (mute, remove, unmute), and the
  // items it adds to a person's menu (mediaActions(p) -> [label, fn]).
  command: cmd => command(cmd),
  mediaActions: null,
};

function screen(name) {
  for (const s of ['join', 'wait', 'end', 'room']) $('#screen-' + s).hidden = s !== name;
}

function emit(name, detail) { document.dispatchEvent(new CustomEvent('parley:' + name, { detail })); }

function ended(title, text, canRejoin) {
  state.closing = true;
  sessionStorage.removeItem(credKey);
  if (state.ws) try { state.ws.close(); } catch (e) { /* closed */ }
  $('#end-title').textContent = title;
  $('#end-text').textContent = text || '';
  $('#end-rejoin').hidden = !canRejoin;
  screen('end');
}

// --- joining ---

async function start() {
  try {
    state.info = await api('GET', 'join/' + encodeURIComponent(token));
  } catch (err) {
    return ended(err.code === 'not_found' ? 'Meeting not found' : 'Cannot open the meeting', explain(err));
  }
  const info = state.info;
  document.title = info.title;
  if (info.archived) return ended('This meeting has ended', 'It is archived: its chat and files can be seen from your participated meetings.');
  const saved = sessionStorage.getItem(credKey);
  if (saved) { state.credential = saved; return connect(); }
  showJoin();
}

function showJoin() {
  const info = state.info;
  $('#join-title').textContent = info.title;
  if (info.authenticated) {
    $('#join-sub').textContent = 'You are logged in as ' + info.user + '.';
    $('#name').placeholder = info.user.split('@')[0];
    $('#name').value = localStorage.getItem('parley-meeting-name') || '';
    $('#name-box').querySelector('label').textContent = 'Your name (optional)';
  } else if (info.allowGuests) {
    $('#join-sub').textContent = 'Join as a guest: no account needed.';
    $('#name').value = localStorage.getItem('parley-meeting-name') || '';
  } else {
    return ended('Log in to join', 'This meeting is for logged-in users only. Log in to your webmail and open the link again.');
  }
  $('#password-box').hidden = !info.hasPassword || info.isOrganizer;
  screen('join');
  (info.authenticated ? $('#join-button') : $('#name')).focus();
}

async function join(e) {
  e.preventDefault();
  const form = $('#join-form');
  clearErrors(form);
  const name = $('#name').value.trim();
  if (!name && !state.info.authenticated) { showFieldError('name', messages.name_required); $('#name').focus(); return; }
  $('#join-button').disabled = true;
  try {
    const res = await api('POST', 'join/' + encodeURIComponent(token), { name, password: $('#password').value });
    if (name) localStorage.setItem('parley-meeting-name', name);
    state.credential = res.credential;
    state.me = res.participant;
    sessionStorage.setItem(credKey, res.credential);
    connect();
  } catch (err) {
    routeError(form, err);
  } finally {
    $('#join-button').disabled = false;
  }
}

// --- the WebSocket ---

function connect() {
  const url = new URL(root + 'api/ws', location.href);
  url.protocol = url.protocol === 'https:' ? 'wss:' : 'ws:';
  const ws = new WebSocket(url.href);
  state.ws = ws;
  ws.onopen = () => ws.send(JSON.stringify({ type: 'hello', credential: state.credential }));
  ws.onmessage = e => {
    let ev;
    try { ev = JSON.parse(e.data); } catch (x) { return; }
    handle(ev);
  };
  ws.onclose = e => {
    if (state.ws !== ws || state.closing) return;
    if ((e.reason || '').startsWith('replaced')) {
      // The same participant opened elsewhere (a duplicated tab): do not
      // fight over the connection.
      return ended('Open in another window', 'This meeting is open in another tab or window.', true);
    }
    // Lost: come back with the same credential (the server keeps it for
    // a while), slower each time.
    const delay = Math.min(10000, 500 * 2 ** state.retry++);
    setTimeout(() => { if (!state.closing) connect(); }, delay);
  };
}

function send(cmd) {
  if (state.ws && state.ws.readyState === WebSocket.OPEN) state.ws.send(JSON.stringify(cmd));
}

let refs = 0;
const pending = new Map();
function command(cmd) {
  return new Promise((resolve, reject) => {
    cmd.ref = String(++refs);
    pending.set(cmd.ref, { resolve, reject });
    send(cmd);
    setTimeout(() => { if (pending.delete(cmd.ref)) reject(new APIError(0, 'timeout', 'no answer from the server')); }, 10000);
  });
}

function handle(ev) {
  switch (ev.type) {
    case 'ok':
    case 'error': {
      const p = pending.get(ev.ref);
      if (p) {
        pending.delete(ev.ref);
        if (ev.type === 'ok') p.resolve(); else p.reject(new APIError(0, ev.error.code, ev.error.message));
      } else if (ev.type === 'error') {
        if (ev.error.code === 'bad_credential') {
          // Expired while away: join again.
          sessionStorage.removeItem(credKey);
          state.credential = '';
          state.closing = true;
          if (state.ws) state.ws.close();
          state.closing = false;
          state.ws = null;
          showJoin();
        } else toast(explain(new APIError(0, ev.error.code, ev.error.message)), 'error');
      }
      return;
    }
    case 'welcome':
      state.retry = 0;
      state.me = ev.participant;
      setMeeting(ev.meeting);
      if (ev.participant.state === 'in') enterRoom(ev);
      else waiting(ev.participant.state);
      emit('welcome', ev);
      return;
    case 'state':
      state.me = ev.participant;
      if (ev.participant.state === 'denied') ended('You were not let in', ev.reason || 'A moderator denied your request to join.');
      else if (ev.participant.state === 'removed') ended(ev.reason === 'left' ? 'You left the meeting' : 'You were removed from the meeting', ev.reason === 'left' ? '' : ev.reason, true);
      else waiting(ev.participant.state);
      return;
    case 'participant.joined':
      state.people.set(ev.participant.id, ev.participant);
      renderPeople();
      return;
    case 'participant.left':
      state.people.delete(ev.participant.id);
      renderPeople();
      return;
    case 'participant.updated':
    case 'participant.muted':
      if (state.people.has(ev.participant.id)) state.people.set(ev.participant.id, ev.participant);
      if (state.me && ev.participant.id === state.me.id) {
        state.me = ev.participant;
        if (ev.type === 'participant.muted' && ev.participant.muted) toast('A moderator muted you. Unmute yourself when you want to speak.');
        if (ev.type === 'participant.updated' && ev.participant.role === 'moderator') toast('You are now a moderator.');
      }
      renderPeople();
      if (ev.type === 'participant.muted') emit('muted', ev);
      return;
    case 'participant.removed':
      emit('removed', ev);
      return;
    case 'lobby':
      state.lobby = ev.lobby || [];
      renderPeople();
      return;
    case 'settings': {
      const before = state.meeting;
      setMeeting(ev.meeting);
      const what = before && state.me && state.me.state === 'in' && settingsChange(before, ev.meeting);
      if (what) toast(what);
      emit('settings', ev.meeting);
      return;
    }
    case 'chat':
      addMessage(ev.message);
      return;
    case 'chat.cleared':
      state.messages.clear();
      renderMessages();
      toast('A moderator deleted the chat');
      return;
    case 'file.added':
      state.files.set(ev.file.id, ev.file);
      renderFiles();
      return;
    case 'file.deleted':
      state.files.delete(ev.file.id);
      renderFiles();
      return;
    case 'ended':
      emit('ended', ev);
      ended('The meeting has ended', ev.reason);
      return;
  }
}

function settingsChange(a, b) {
  const uploads = { organizer: 'only the organizer', authenticated: 'logged-in users', anyone: 'anyone' };
  if (a.uploads !== b.uploads) return 'File sharing is now open to ' + uploads[b.uploads] + '.';
  if (a.lobby !== b.lobby) return b.lobby ? 'The lobby is on.' : 'The lobby is off.';
  if (a.allowGuests !== b.allowGuests) return b.allowGuests ? 'Guests may now join.' : 'Guests may no longer join.';
  if (a.recording !== b.recording) return b.recording ? 'Recording is allowed.' : 'Recording is not allowed.';
  if (a.title !== b.title) return 'The meeting is now called “' + b.title + '”.';
  // Nothing a participant sees (or the change came back to the organizer
  // who made it): no toast.
  if (a.version === b.version || a.attendeesCanStart === b.attendeesCanStart) return '';
  return 'The meeting settings changed.';
}

function waiting(st) {
  screen('wait');
  $('#wait-title').textContent = st === 'lobby' ? 'Waiting in the lobby' : 'Waiting for the organizer';
  $('#wait-text').textContent = st === 'lobby'
    ? 'A moderator will let you in shortly. Please keep this page open.'
    : 'The meeting starts when its organizer arrives. Please keep this page open.';
  document.title = (st === 'lobby' ? 'Lobby · ' : 'Waiting · ') + (state.meeting ? state.meeting.title : '');
}

function setMeeting(m) {
  state.meeting = m;
  $('#room-title').textContent = m.title;
  document.title = m.title;
  $('#room-link').value = absLink(m.link);
  $('#full-settings').href = root + 'settings?id=' + encodeURIComponent(m.id);
  for (const el of $$('[data-setting]')) {
    const k = el.dataset.setting;
    if (el.type === 'checkbox') el.checked = !!m[k]; else el.value = m[k];
  }
  const may = mayUpload();
  $('#upload-hint').textContent = may ? '' : {
    organizer: 'Only the organizer may share files.',
    authenticated: 'Only logged-in users may share files.',
  }[m.uploads] || '';
  $('#upload-label').classList.toggle('disabled', !may);
}

function mayUpload() {
  const m = state.meeting, me = state.me;
  if (!m || !me) return false;
  if (m.uploads === 'anyone') return true;
  if (m.uploads === 'authenticated') return !me.guest;
  return me.role === 'organizer';
}

async function enterRoom(welcome) {
  state.people = new Map((welcome.participants || []).map(p => [p.id, p]));
  state.lobby = welcome.lobby || [];
  $('#gear').hidden = false;
  $('#org-settings').hidden = state.me.role !== 'organizer';
  screen('room');
  renderPeople();
  // History and files: everything before the welcome; events bring the
  // rest (both are keyed, so an overlap is harmless).
  const id = encodeURIComponent(state.meeting.id);
  const hdr = { 'X-Parley-Participant': state.credential };
  try {
    const [chat, files] = await Promise.all([api('GET', 'meetings/' + id + '/chat?max=500', undefined, hdr), api('GET', 'meetings/' + id + '/files', undefined, hdr)]);
    for (const m of chat.messages) state.messages.set(m.seq, m);
    for (const f of files.files) state.files.set(f.id, f);
    renderMessages();
    renderFiles();
  } catch (err) { toast(explain(err), 'error'); }
}

// --- people ---

const isMod = () => state.me && (state.me.role === 'moderator' || state.me.role === 'organizer');

function personActions(p) {
  if (!isMod() || p.id === state.me.id || p.role === 'organizer') return null;
  const items = [];
  if (!p.muted) items.push(['Mute', () => act({ type: 'mute', participant: p.id })]);
  if (window.parleyMeeting.mediaActions) items.push(...window.parleyMeeting.mediaActions(p));
  items.push(p.role === 'moderator'
    ? ['Remove moderator rights', () => act({ type: 'moderator', participant: p.id, on: false })]
    : ['Make moderator', () => act({ type: 'moderator', participant: p.id, on: true })]);
  items.push(['Remove from meeting', () => { if (confirm('Remove ' + p.name + ' from the meeting?')) act({ type: 'remove', participant: p.id }); }, 'danger']);
  return h('button', { class: 'icon', 'aria-label': 'Actions for ' + p.name, onclick: e => { e.stopPropagation(); popup(e.currentTarget, items); } }, '⋮');
}

function popup(anchor, items) {
  $$('.menu').forEach(m => m.remove());
  const m = h('div', { class: 'menu', role: 'menu' }, items.map(([label, fn, cls]) =>
    h('button', { role: 'menuitem', class: cls || '', onclick: e => { e.stopPropagation(); m.remove(); fn(); } }, label)));
  anchor.parentElement.append(m);
}

async function act(cmd) {
  try { await command(cmd); } catch (err) { toast(explain(err), 'error'); }
}

function renderPeople() {
  const people = [...state.people.values()];
  $('#people').replaceChildren(...people.map(p => h('li', { dataset: { id: p.id } },
    h('span', { class: 'mini' }, initials(p.name)),
    h('span', { class: 'who' }, h('b', {}, p.name + (state.me && p.id === state.me.id ? ' (you)' : '')),
      h('span', { class: 'badge ' + p.role }, p.role), p.muted ? h('span', { class: 'hint' }, ' · muted') : null),
    state.me && p.id === state.me.id && p.muted ? h('button', { onclick: () => act({ type: 'unmute' }) }, 'Unmute') : null,
    personActions(p))));
  $('#people-count').textContent = people.length;
  $('#room-count').textContent = people.length + (people.length === 1 ? ' person' : ' people');
  const showLobby = isMod() && state.lobby.length > 0;
  $('#lobby-box').hidden = !showLobby;
  if (showLobby) {
    $('#lobby').replaceChildren(...state.lobby.map(p => h('li', { dataset: { id: p.id } },
      h('span', { class: 'mini' }, initials(p.name)),
      h('span', { class: 'who' }, h('b', {}, p.name), h('span', { class: 'badge ' + p.role }, p.role)),
      h('button', { class: 'primary', onclick: () => act({ type: 'admit', participant: p.id }) }, 'Admit'),
      h('button', { onclick: () => act({ type: 'deny', participant: p.id }) }, 'Deny'))));
    if (state.tab !== 'people') toast(state.lobby[state.lobby.length - 1].name + ' is waiting in the lobby');
  }
  // Placeholder tiles until the media layer takes #parley-media over.
  const stage = $('#parley-media');
  if (!window.parleyMeeting.mediaElement) {
    stage.replaceChildren(...people.map(p => h('div', { class: 'tile', dataset: { participant: p.id } },
      h('div', { class: 'avatar' }, initials(p.name)), h('div', { class: 'name' }, p.name + (p.muted ? ' (muted)' : '')))));
  }
  emit('participants', people);
}

// --- chat ---

function addMessage(m) {
  state.messages.set(m.seq, m);
  renderMessages();
  if (state.tab !== 'chat') {
    state.unread++;
    $('#chat-count').textContent = state.unread;
    $('#chat-count').hidden = false;
  }
}

function renderMessages() {
  const list = [...state.messages.values()].sort((a, b) => a.seq - b.seq);
  const box = $('#messages');
  const atEnd = box.scrollHeight - box.scrollTop - box.clientHeight < 40;
  box.replaceChildren(...(list.length ? list.map(m => h('div', { class: 'msg' + (state.me && m.from === state.me.identity ? ' mine' : ''), dataset: { seq: m.seq } },
    h('div', { class: 'head' }, h('b', {}, m.name), ' · ', new Date(m.stamp).toLocaleTimeString(undefined, { hour: '2-digit', minute: '2-digit' })),
    h('div', { class: 'text' }, m.body))) : [h('div', { class: 'hint' }, 'No messages yet. Say hello!')]));
  if (atEnd) box.scrollTop = box.scrollHeight;
}

async function sendChat(e) {
  e.preventDefault();
  const input = $('#chat-input');
  const body = input.value.trim();
  if (!body) return;
  $('#chat-send').disabled = true;
  try {
    await command({ type: 'chat', body });
    input.value = '';
  } catch (err) {
    toast(explain(err), 'error');
  } finally {
    $('#chat-send').disabled = false;
    input.focus();
  }
}

// --- files ---

function renderFiles() {
  const list = [...state.files.values()].sort((a, b) => a.stamp < b.stamp ? -1 : 1);
  const id = encodeURIComponent(state.meeting.id);
  $('#files').replaceChildren(...(list.length ? list.map(f => h('li', { dataset: { id: f.id } },
    h('span', { class: 'fname' },
      h('a', { href: root + 'api/meetings/' + id + '/files/' + encodeURIComponent(f.id) + '?p=' + encodeURIComponent(state.credential), download: f.name }, f.name),
      h('div', { class: 'fmeta' }, fmtBytes(f.size) + ' · ' + f.uploaderName)),
    isMod() || (state.me && f.uploader === state.me.identity)
      ? h('button', { class: 'icon', 'aria-label': 'Delete ' + f.name, title: 'Delete', onclick: () => deleteFile(f) }, '✕') : null))
    : [h('li', { class: 'hint' }, 'No files shared yet.')]));
  const bytes = list.reduce((n, f) => n + f.size, 0);
  $('#files-count').textContent = list.length;
  $('#files-usage').textContent = list.length ? list.length + (list.length === 1 ? ' file · ' : ' files · ') + fmtBytes(bytes) : '';
}

async function upload() {
  const input = $('#file-input');
  const file = input.files[0];
  input.value = '';
  if (!file) return;
  $('#upload-error').hidden = true;
  const id = encodeURIComponent(state.meeting.id);
  try {
    await api('POST', 'meetings/' + id + '/files?name=' + encodeURIComponent(file.name), file,
      { 'X-Parley-Participant': state.credential, 'Content-Type': file.type || 'application/octet-stream' });
    toast('“' + file.name + '” shared');
  } catch (err) {
    $('#upload-error').textContent = explain(err);
    $('#upload-error').hidden = false;
  }
}

async function deleteFile(f) {
  if (!confirm('Delete “' + f.name + '” for everyone?')) return;
  try {
    await api('DELETE', 'meetings/' + encodeURIComponent(state.meeting.id) + '/files/' + encodeURIComponent(f.id), undefined, { 'X-Parley-Participant': state.credential });
  } catch (err) { toast(explain(err), 'error'); }
}

// --- organizer settings, live ---

async function changeSetting(el) {
  const k = el.dataset.setting;
  const body = { [k]: el.type === 'checkbox' ? el.checked : el.value };
  try {
    const m = await api('PATCH', 'meetings/' + encodeURIComponent(state.meeting.id), body);
    setMeeting(m);
  } catch (err) {
    toast(explain(err), 'error');
    setMeeting(state.meeting);
  }
}

// --- frame: tabs, minimise, new tab ---

function selectTab(name) {
  state.tab = name;
  for (const b of $$('.tabs button')) b.classList.toggle('active', b.dataset.tab === name);
  for (const p of $$('[data-pane]')) p.hidden = p.dataset.pane !== name;
  if (name === 'chat') {
    state.unread = 0;
    $('#chat-count').hidden = true;
    $('#messages').scrollTop = $('#messages').scrollHeight;
  }
}

function leave() {
  state.closing = true;
  send({ type: 'leave' });
  sessionStorage.removeItem(credKey);
  ended('You left the meeting', '', true);
  // Inside the webmail (a call over the chat): the frame goes away.
  if (window.parent !== window) window.parent.postMessage({ type: 'parley-meeting', action: 'left' }, location.origin);
}

document.addEventListener('DOMContentLoaded', () => {
  $('#join-form').addEventListener('submit', join);
  $('#composer').addEventListener('submit', sendChat);
  $('#chat-input').addEventListener('keydown', e => { if (e.key === 'Enter' && !e.shiftKey) { e.preventDefault(); $('#composer').requestSubmit(); } });
  $('#file-input').addEventListener('change', upload);
  for (const b of $$('.tabs button')) b.addEventListener('click', () => selectTab(b.dataset.tab));
  $('#copy-link').addEventListener('click', () => copyText(absLink(state.meeting.link)));
  $('#gear').addEventListener('click', () => { $('#drawer').hidden = !$('#drawer').hidden; });
  $('#drawer-close').addEventListener('click', () => { $('#drawer').hidden = true; });
  for (const el of $$('[data-setting]')) el.addEventListener('change', () => changeSetting(el));
  $('#dev-quality').value = localStorage.getItem('parley-webcam-quality') || 'low';
  $('#dev-quality').addEventListener('change', e => {
    localStorage.setItem('parley-webcam-quality', e.target.value);
    if (state.info && state.info.authenticated) api('PUT', 'prefs', { webcamQuality: e.target.value }).catch(() => {});
  });
  $('#leave').addEventListener('click', leave);
  $('#wait-leave').addEventListener('click', leave);
  $('#end-rejoin').addEventListener('click', () => { state.closing = false; showJoin(); });
  // Inside the webmail (a frame): minimise to a bar and back, and tell
  // the host page so it can resize the frame. On its own: open in a tab.
  const framed = window.parent !== window;
  $('#minimise').addEventListener('click', () => {
    const min = document.body.classList.toggle('minimised');
    $('#minimise').textContent = min ? '▢' : '▁';
    $('#minimise').title = min ? 'Maximise' : 'Minimise';
    if (framed) window.parent.postMessage({ type: 'parley-meeting', action: min ? 'minimise' : 'maximise' }, location.origin);
  });
  $('#newtab').hidden = !framed;
  $('#newtab').addEventListener('click', () => {
    window.open(location.href, '_blank', 'noopener');
    leave();
  });
  document.addEventListener('click', () => $$('.menu').forEach(m => m.remove()));
  start();
});
