// The meeting list: my meetings (cards with copy link and delete) and
// participated meetings (read-only cards: rejoin, chat and files).
'use strict';

let view = 'mine';
let all = [];

function show(which) {
  view = which;
  $('#nav-mine').classList.toggle('active', which === 'mine');
  $('#nav-participated').classList.toggle('active', which === 'participated');
  $('#heading').textContent = which === 'mine' ? 'My meetings' : 'Participated meetings';
  $('#new-meeting').hidden = which !== 'mine';
  load();
}

async function load() {
  $('#list-error').hidden = true;
  try {
    const data = await api('GET', view === 'mine' ? 'meetings' : 'participated');
    all = data.meetings || [];
    render();
  } catch (err) {
    all = [];
    render();
    $('#list-error').textContent = explain(err);
    $('#list-error').hidden = false;
  }
}

function closeMenus() { $$('.menu').forEach(m => m.remove()); }

function menu(anchor, items) {
  closeMenus();
  const m = h('div', { class: 'menu', role: 'menu' },
    items.map(([label, fn, cls]) => h('button', { role: 'menuitem', class: cls || '', onclick: e => { e.stopPropagation(); closeMenus(); fn(); } }, label)));
  anchor.parentElement.append(m);
  m.querySelector('button').focus();
}

function card(m) {
  const link = absLink(m.link);
  const open = () => { location.href = m.link; };
  const mine = view === 'mine';
  const items = mine
    ? [['Copy link', () => copyText(link)], ['Open meeting', open], ['Settings', () => { location.href = root + 'settings?id=' + encodeURIComponent(m.id); }], ['Delete', () => remove(m), 'danger']]
    : [['Copy link', () => copyText(link)], ['Rejoin', open], ['Chat and files', () => showHistory(m)]];
  const actions = h('button', { class: 'icon', 'aria-label': 'Actions', title: 'Actions', onclick: e => { e.stopPropagation(); menu(e.currentTarget, items); } }, '⋮');
  return h('article', { class: 'card', dataset: { id: m.id } },
    h('div', { class: 'title' }, m.title),
    h('div', { class: 'actions' }, actions),
    h('div', { class: 'meta' },
      h('div', {}, scheduleSummary(m)),
      mine ? null : h('div', {}, 'Organizer: ' + m.organizer),
      mine ? null : h('div', {}, m.last ? 'Last joined ' + fmtDate(m.last) : 'Invited'),
      h('div', {},
        m.archived ? h('span', { class: 'badge archived' }, 'Archived') : null, ' ',
        m.hasPassword ? h('span', { class: 'badge' }, 'Password') : null, ' ',
        m.allowGuests ? h('span', { class: 'badge guest' }, 'Guests') : null, ' ',
        m.lobby ? h('span', { class: 'badge' }, 'Lobby') : null)),
    h('div', { class: 'linkrow' },
      h('input', { type: 'text', readonly: true, value: link, 'aria-label': 'Meeting link', onfocus: e => e.target.select() }),
      h('button', { title: 'Copy link', 'aria-label': 'Copy link', onclick: () => copyText(link) }, 'Copy')),
    h('div', { class: 'foot' },
      m.archived
        ? h('button', { onclick: () => showHistory(m) }, 'Chat and files')
        : h('button', { class: 'primary', onclick: open }, mine ? 'Open' : 'Rejoin'),
      mine && !m.archived ? h('button', { onclick: () => { location.href = root + 'settings?id=' + encodeURIComponent(m.id); } }, '⚙ Settings') : null));
}

function render() {
  const q = $('#filter').value.trim().toLowerCase();
  const shown = all.filter(m => !q || m.title.toLowerCase().includes(q));
  $('#cards').replaceChildren(...shown.map(card));
  const empty = $('#empty');
  empty.hidden = shown.length > 0;
  empty.textContent = all.length
    ? 'No meeting matches the filter.'
    : view === 'mine' ? 'No meetings yet. Create one with “New meeting”.' : 'Meetings you join or are invited to appear here.';
}

async function remove(m) {
  if (!confirm('Delete “' + m.title + '” with its chat and files?')) return;
  try {
    await api('DELETE', 'meetings/' + encodeURIComponent(m.id));
    toast('Meeting deleted');
    load();
  } catch (err) { toast(explain(err), 'error'); }
}

async function showHistory(m) {
  $('#history-title').textContent = m.title;
  $('#history-files').replaceChildren();
  $('#history-messages').replaceChildren(h('div', { class: 'hint' }, 'Loading…'));
  $('#history-dialog').hidden = false;
  try {
    const id = encodeURIComponent(m.id);
    const [chat, files] = await Promise.all([api('GET', 'meetings/' + id + '/chat?max=500'), api('GET', 'meetings/' + id + '/files')]);
    $('#history-files').replaceChildren(...(files.files.length ? files.files.map(f =>
      h('li', {}, h('a', { class: 'fname', href: root + 'api/meetings/' + id + '/files/' + encodeURIComponent(f.id) }, f.name),
        h('span', { class: 'fmeta' }, fmtBytes(f.size)))) : [h('li', { class: 'hint' }, 'No files were shared.')]));
    $('#history-messages').replaceChildren(...(chat.messages.length ? chat.messages.map(msg =>
      h('div', { class: 'msg' }, h('div', { class: 'head' }, h('b', {}, msg.name), ' · ', fmtDate(msg.stamp)), h('div', { class: 'text' }, msg.body)))
      : [h('div', { class: 'hint' }, 'No chat messages.')]));
  } catch (err) {
    $('#history-messages').replaceChildren(h('div', { class: 'alert error' }, explain(err)));
  }
}

function openCreate() {
  const form = $('#create-form');
  form.reset();
  clearErrors(form);
  $('#schedule-slot').replaceChildren(scheduleFields());
  wireSchedule(null);
  $('#create-dialog').hidden = false;
  $('#title').focus();
}

async function create(e) {
  e.preventDefault();
  const form = $('#create-form');
  clearErrors(form);
  const title = $('#title').value.trim();
  if (!title) { showFieldError('title', messages.title_required); $('#title').focus(); return; }
  const body = { title };
  if ($('#password').value) body.password = $('#password').value;
  try {
    const s = readSchedule();
    if (s) body.schedule = s;
  } catch (bad) { showFieldError(bad.field, bad.text); return; }
  $('#create-save').disabled = true;
  try {
    const m = await api('POST', 'meetings', body);
    $('#create-dialog').hidden = true;
    toast('Meeting “' + m.title + '” created');
    show('mine');
  } catch (err) {
    routeError(form, err);
  } finally {
    $('#create-save').disabled = false;
  }
}

document.addEventListener('DOMContentLoaded', () => {
  $('#nav-mine').addEventListener('click', e => { e.preventDefault(); window.history.replaceState(null, '', '#mine'); show('mine'); });
  $('#nav-participated').addEventListener('click', e => { e.preventDefault(); window.history.replaceState(null, '', '#participated'); show('participated'); });
  $('#new-meeting').addEventListener('click', openCreate);
  $('#create-form').addEventListener('submit', create);
  $('#create-cancel').addEventListener('click', () => { $('#create-dialog').hidden = true; });
  $('#create-close').addEventListener('click', () => { $('#create-dialog').hidden = true; });
  $('#history-close').addEventListener('click', () => { $('#history-dialog').hidden = true; });
  $('#filter').addEventListener('input', render);
  document.addEventListener('click', closeMenus);
  document.addEventListener('keydown', e => { if (e.key === 'Escape') { closeMenus(); $$('.overlay').forEach(o => { o.hidden = true; }); } });
  show(location.hash === '#participated' ? 'participated' : 'mine');
});
