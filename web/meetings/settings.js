// The settings page: cards of settings, saved with one PATCH; the change
// reaches everyone in the meeting at once. Device preferences are saved
// separately (they are the user's, not the meeting's).
'use strict';

const id = new URLSearchParams(location.search).get('id') || '';
let meeting = null;
let passwordChange; // undefined: unchanged; '': remove; text: set

function fill(m) {
  meeting = m;
  document.title = m.title + ' · settings';
  $('#heading').textContent = m.title;
  $('#title').value = m.title;
  for (const k of ['allowGuests', 'attendeesCanStart', 'lobby', 'recording']) $('#' + k).checked = !!m[k];
  $('#uploads').value = m.uploads;
  $('#endBehaviour').value = m.endBehaviour;
  $('#password').value = '';
  passwordChange = undefined;
  $('#password-state').textContent = m.hasPassword ? 'The meeting has a password. Type a new one to change it.' : 'No password: anyone with the link (and allowed in) can join.';
  $('#remove-password').hidden = !m.hasPassword;
  $('#link').value = absLink(m.link);
  $('#open-meeting').href = m.link;
  $('#schedule-slot').replaceChildren(scheduleFields());
  wireSchedule(m.schedule);
  if (m.usage) {
    $('#usage-files').textContent = m.usage.files;
    $('#usage-bytes').textContent = fmtBytes(m.usage.bytes);
  }
  const ro = m.archived;
  $('#archived-note').hidden = !ro;
  $$('#settings-form input, #settings-form select, #save, #remove-password, #clear-chat').forEach(el => {
    if (!el.id.startsWith('pref-') && el.id !== 'link' && el.id !== 'copy-link') el.disabled = ro;
  });
}

async function devices() {
  let prefs = { microphone: '', camera: '', speakers: '', webcamQuality: 'low' };
  try { prefs = await api('GET', 'prefs'); } catch (e) { /* defaults */ }
  let list = [];
  try { list = await navigator.mediaDevices.enumerateDevices(); } catch (e) { /* no devices API */ }
  const add = (sel, kind, value) => {
    for (const d of list.filter(d => d.kind === kind && d.deviceId)) {
      sel.append(h('option', { value: d.deviceId }, d.label || kind + ' ' + d.deviceId.slice(0, 6)));
    }
    if (value && ![...sel.options].some(o => o.value === value)) sel.append(h('option', { value }, 'Saved device'));
    sel.value = value || '';
  };
  add($('#pref-mic'), 'audioinput', prefs.microphone);
  add($('#pref-cam'), 'videoinput', prefs.camera);
  add($('#pref-spk'), 'audiooutput', prefs.speakers);
  $('#pref-quality').value = prefs.webcamQuality || 'low';
  const save = async () => {
    try {
      await api('PUT', 'prefs', { microphone: $('#pref-mic').value, camera: $('#pref-cam').value, speakers: $('#pref-spk').value, webcamQuality: $('#pref-quality').value });
      toast('Video settings saved');
    } catch (err) { toast(explain(err), 'error'); }
  };
  for (const s of ['#pref-mic', '#pref-cam', '#pref-spk', '#pref-quality']) $(s).addEventListener('change', save);
}

async function save(e) {
  e.preventDefault();
  const form = $('#settings-form');
  clearErrors(form);
  const title = $('#title').value.trim();
  if (!title) { showFieldError('title', messages.title_required); $('#title').focus(); return; }
  const body = {
    title,
    allowGuests: $('#allowGuests').checked,
    attendeesCanStart: $('#attendeesCanStart').checked,
    lobby: $('#lobby').checked,
    recording: $('#recording').checked,
    uploads: $('#uploads').value,
    endBehaviour: $('#endBehaviour').value,
  };
  if ($('#password').value) body.password = $('#password').value;
  else if (passwordChange === '') body.password = '';
  try {
    body.schedule = readSchedule();
  } catch (bad) { showFieldError(bad.field, bad.text); return; }
  $('#save').disabled = true;
  try {
    const m = await api('PATCH', 'meetings/' + encodeURIComponent(id), body);
    const usage = meeting && meeting.usage;
    m.usage = usage;
    fill(m);
    $('#saved-note').textContent = 'Saved. Everyone in the meeting has the new settings.';
    toast('Settings saved');
  } catch (err) {
    routeError(form, err);
  } finally {
    $('#save').disabled = meeting && meeting.archived;
  }
}

document.addEventListener('DOMContentLoaded', async () => {
  $('#settings-form').addEventListener('submit', save);
  $('#copy-link').addEventListener('click', () => copyText($('#link').value));
  $('#remove-password').addEventListener('click', () => {
    passwordChange = '';
    $('#password').value = '';
    $('#password-state').textContent = 'The password will be removed when you save.';
  });
  $('#clear-chat').addEventListener('click', async () => {
    if (!confirm('Delete all chats of this meeting? This cannot be undone.')) return;
    try {
      await api('DELETE', 'meetings/' + encodeURIComponent(id) + '/chat');
      toast('All chats deleted');
    } catch (err) { toast(explain(err), 'error'); }
  });
  try {
    fill(await api('GET', 'meetings/' + encodeURIComponent(id)));
  } catch (err) {
    const a = $('.alert.error');
    a.textContent = explain(err);
    a.hidden = false;
  }
  devices();
});
