// The schedule fields shared by the create dialog and the settings page.
'use strict';

function scheduleFields() {
  return h('div', { class: 'schedule-fields' },
    h('div', { class: 'toggle' },
      h('div', { class: 'text' }, h('b', {}, 'Scheduled meeting'), h('span', {}, 'Use this meeting on a regular basis, like a recurring appointment.')),
      h('label', { class: 'switch' }, h('input', { type: 'checkbox', id: 'schedule-on', 'aria-label': 'Scheduled meeting' }), h('span', { class: 'slider' }))),
    h('div', { id: 'schedule-box', hidden: true },
      h('div', { class: 'row field' },
        h('div', {}, h('label', { for: 'schedule-start' }, 'Starts'), h('input', { type: 'datetime-local', id: 'schedule-start' })),
        h('div', {}, h('label', { for: 'schedule-end' }, 'Ends'), h('input', { type: 'datetime-local', id: 'schedule-end' }))),
      h('div', { class: 'error-text', id: 'schedule-start-error', hidden: true }),
      h('div', { class: 'field' }, h('label', { for: 'schedule-tz' }, 'Time zone'), h('select', { id: 'schedule-tz' })),
      h('div', { class: 'row field' },
        h('div', {}, h('label', { for: 'repeat' }, 'Repeat'),
          h('select', { id: 'repeat' },
            h('option', { value: 'none' }, 'Does not repeat'),
            h('option', { value: 'DAILY' }, 'Daily'),
            h('option', { value: 'WEEKLY' }, 'Weekly'),
            h('option', { value: 'MONTHLY' }, 'Monthly'),
            h('option', { value: 'YEARLY' }, 'Yearly'),
            h('option', { value: 'custom' }, 'Custom rule (RRULE)…'))),
        h('div', { id: 'count-box' }, h('label', { for: 'repeat-count' }, 'Times'), h('input', { type: 'text', id: 'repeat-count', inputmode: 'numeric', placeholder: 'for ever' }))),
      h('div', { class: 'field', id: 'rrule-box', hidden: true },
        h('label', { for: 'rrule' }, 'Recurrence rule'),
        h('input', { type: 'text', id: 'rrule', placeholder: 'FREQ=WEEKLY;BYDAY=MO,WE;COUNT=10', autocomplete: 'off', spellcheck: 'false' }),
        h('div', { class: 'hint' }, 'An iCalendar RRULE without DTSTART.')),
      h('div', { class: 'error-text', id: 'rrule-error', hidden: true })));
}

function wireSchedule(sched) {
  fillZones($('#schedule-tz'), sched && sched.timeZone);
  const on = $('#schedule-on');
  const sync = () => {
    $('#schedule-box').hidden = !on.checked;
    const r = $('#repeat').value;
    $('#rrule-box').hidden = r !== 'custom';
    $('#count-box').style.visibility = r === 'none' || r === 'custom' ? 'hidden' : 'visible';
  };
  on.addEventListener('change', () => {
    if (on.checked && !$('#schedule-start').value) {
      // Default: the next full hour, for an hour.
      const d = new Date(Date.now() + 3600e3);
      d.setMinutes(0, 0, 0);
      const fmt = x => new Date(x.getTime() - x.getTimezoneOffset() * 60e3).toISOString().slice(0, 16);
      $('#schedule-start').value = fmt(d);
      $('#schedule-end').value = fmt(new Date(d.getTime() + 3600e3));
    }
    sync();
  });
  $('#repeat').addEventListener('change', sync);
  if (sched) {
    on.checked = true;
    $('#schedule-start').value = sched.startLocal;
    $('#schedule-end').value = sched.endLocal;
    const f = formFromRule(sched.rrule);
    $('#repeat').value = f.freq;
    $('#repeat-count').value = f.count;
    $('#rrule').value = f.custom;
  }
  sync();
}

// readSchedule returns the schedule for the API: an object, or null when
// the toggle is off. It checks what the browser can check.
function readSchedule() {
  if (!$('#schedule-on').checked) return null;
  const start = $('#schedule-start').value, end = $('#schedule-end').value;
  if (!start || !end) throw { field: 'schedule-start', text: 'Give a start and an end.' };
  if (end <= start) throw { field: 'schedule-start', text: 'The end must be after the start.' };
  const count = $('#repeat-count').value.trim();
  if (count && !/^\d+$/.test(count)) throw { field: 'repeat-count', text: 'Times must be a number.' };
  return { start, end, timeZone: $('#schedule-tz').value, rrule: ruleFromForm($('#repeat').value, count, $('#rrule').value) };
}
