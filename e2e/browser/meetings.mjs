// The meeting scenario in Chromium. BASE_URL is where the test server
// mounted the meeting handler; SCREENSHOTS where pictures go.
import { chromium } from 'playwright-core';
import path from 'node:path';

const base = process.env.BASE_URL;
const shots = process.env.SCREENSHOTS;
const timeout = 15000;

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  headless: true,
  args: ['--headless', '--no-sandbox', '--disable-gpu', '--no-first-run', '--disable-background-networking',
    '--disable-component-update', '--disable-sync', '--use-fake-ui-for-media-stream', '--use-fake-device-for-media-stream'],
});

let n = 0;
function step(what) { console.log(`step ${++n}: ${what}`); }
async function shot(page, name) {
  const file = path.join(shots, `meeting-${String(n).padStart(2, '0')}-${name}.png`);
  await page.screenshot({ path: file });
  console.log('  screenshot', file);
}
// waitText waits until the element's text contains text.
async function waitText(page, selector, text) {
  try {
    await page.waitForFunction(([s, t]) => {
      const el = document.querySelector(s);
      return el && el.getClientRects().length > 0 && el.textContent.includes(t);
    }, [selector, text], { timeout });
  } catch (e) {
    const got = await page.$eval(selector, el => el.textContent).catch(() => '(missing)');
    throw new Error(`${selector} never showed ${JSON.stringify(text)}; it shows ${JSON.stringify(got)}`);
  }
}
async function visible(page, selector) { await page.locator(selector).first().waitFor({ state: 'visible', timeout }); }
// toggle flips a switch as a user does, by clicking it.
async function toggle(page, id, on) {
  if ((await page.locator('#' + id).isChecked()) !== on) await page.click(`label.switch:has(#${id}) .slider`);
  if ((await page.locator('#' + id).isChecked()) !== on) throw new Error(`#${id} did not switch`);
}

const logs = [];
function watch(page, who) {
  // Failed requests the scenario expects (400, 403) show as console
  // errors too; only script errors and missing files count.
  page.on('console', m => { if (m.type() === 'error' && !m.text().startsWith('Failed to load resource')) logs.push(`${who} console: ${m.text()}`); });
  page.on('pageerror', e => logs.push(`${who} page error: ${e.message}`));
  page.on('response', r => { if (r.status() === 404) logs.push(`${who} 404: ${r.url()}`); });
}

try {
  const orgCtx = await browser.newContext({ viewport: { width: 1280, height: 800 } });
  await orgCtx.addCookies([{ name: 'e2e_user', value: 'alice@example.com', url: base }]);
  const op = await orgCtx.newPage();
  watch(op, 'organizer');

  step('the organizer opens the meeting list');
  await op.goto(base + '/meetings/');
  await waitText(op, '#empty', 'No meetings yet');

  step('creating without a title is refused with a message');
  await op.click('#new-meeting');
  await op.click('#create-save');
  await waitText(op, '#title-error', 'Please give the meeting a title.');

  step('a bad recurrence rule is refused by the server with a clear message');
  await op.fill('#title', 'Project kickoff');
  await op.fill('#password', 'kick-off-2026');
  await toggle(op, 'schedule-on', true);
  await op.selectOption('#repeat', 'custom');
  await op.fill('#rrule', 'FREQ=WEEKLY;BYDAY=FUNDAY');
  await op.click('#create-save');
  await waitText(op, '#rrule-error', 'FUNDAY');
  await shot(op, 'create-bad-rrule');

  step('the meeting is created: password, weekly schedule');
  await op.selectOption('#repeat', 'WEEKLY');
  await op.fill('#repeat-count', '4');
  await op.click('#create-save');
  await visible(op, 'article.card');
  await waitText(op, 'article.card', 'Project kickoff');
  await waitText(op, 'article.card', 'Every week, 4 times');
  await shot(op, 'list');

  step('the card menu offers copy and delete');
  await op.click('article.card .actions button');
  await visible(op, '.menu');
  await waitText(op, '.menu', 'Copy link');
  await waitText(op, '.menu', 'Delete');
  await shot(op, 'card-menu');
  await op.keyboard.press('Escape');

  step('settings: allow guests and turn the lobby on');
  await op.click('article.card button:has-text("Settings")');
  await visible(op, '#settings-form');
  await waitText(op, '#password-state', 'has a password');
  await toggle(op, 'allowGuests', true);
  await toggle(op, 'lobby', true);
  await op.click('#save');
  await waitText(op, '#saved-note', 'Saved');
  await shot(op, 'settings');
  const link = await op.inputValue('#link');
  console.log('  link', link);

  step('the organizer opens the meeting');
  await op.goto(link);
  await visible(op, '#join-button');
  if (await op.locator('#password-box').isVisible()) throw new Error('the organizer was asked for the password');
  await op.click('#join-button');
  await visible(op, '#screen-room');
  await waitText(op, '#people', 'alice (you)');
  await visible(op, '#parley-media .tile');

  const guestCtx = await browser.newContext({ viewport: { width: 1100, height: 760 } });
  const gp = await guestCtx.newPage();
  watch(gp, 'guest');

  step('a guest opens the link; a wrong password is refused');
  await gp.goto(link);
  await visible(gp, '#name');
  await waitText(gp, '#join-sub', 'guest');
  await gp.fill('#name', 'Grace Guest');
  await gp.fill('#password', 'guess');
  await gp.click('#join-button');
  await waitText(gp, '#password-error', 'Wrong password');
  await shot(gp, 'guest-wrong-password');

  step('with the right password the guest waits in the lobby');
  await gp.fill('#password', 'kick-off-2026');
  await gp.click('#join-button');
  await visible(gp, '#screen-wait');
  await waitText(gp, '#wait-title', 'Waiting in the lobby');
  await shot(gp, 'guest-lobby');

  step('the organizer sees the guest in the lobby and admits her');
  await waitText(op, '#lobby', 'Grace Guest');
  await shot(op, 'organizer-lobby');
  await op.click('#lobby button:has-text("Admit")');
  await visible(gp, '#screen-room');
  await waitText(gp, '#people', 'Grace Guest (you)');
  await waitText(gp, '#people', 'alice');
  await waitText(op, '#people', 'Grace Guest');

  step('both chat');
  await op.click('#tab-chat');
  await op.fill('#chat-input', 'Welcome, Grace! The agenda follows.');
  await op.press('#chat-input', 'Enter');
  await gp.click('#tab-chat');
  await waitText(gp, '#messages', 'Welcome, Grace! The agenda follows.');
  await gp.fill('#chat-input', 'Thanks Alice, happy to be here.');
  await gp.click('#chat-send');
  await waitText(op, '#messages', 'Thanks Alice, happy to be here.');
  await shot(gp, 'guest-chat');
  await shot(op, 'organizer-chat');

  step('the guest\'s upload is refused: only the organizer may share files');
  await gp.click('#tab-files');
  await waitText(gp, '#upload-hint', 'Only the organizer');
  await gp.setInputFiles('#file-input', { name: 'notes.txt', mimeType: 'text/plain', buffer: Buffer.from('Grace\'s notes\n') });
  await waitText(gp, '#upload-error', 'only the organizer may share files');
  await shot(gp, 'guest-upload-refused');

  step('the organizer opens uploads to anyone, mid-meeting, from the gear');
  await op.click('#gear');
  await visible(op, '#drawer');
  await op.selectOption('#drawer-uploads', 'anyone');
  await shot(op, 'organizer-settings-drawer');
  await waitText(gp, '#toasts', 'File sharing is now open to anyone.');
  await gp.waitForFunction(() => document.querySelector('#upload-hint').textContent === '', null, { timeout });

  step('a blacklisted file is still refused; the guest\'s notes are accepted');
  await gp.setInputFiles('#file-input', { name: 'tool.exe', mimeType: 'application/octet-stream', buffer: Buffer.from('MZ') });
  await waitText(gp, '#upload-error', 'may not be shared');
  await gp.setInputFiles('#file-input', { name: 'notes.txt', mimeType: 'text/plain', buffer: Buffer.from('Grace\'s notes\n') });
  await waitText(gp, '#files', 'notes.txt');
  await shot(gp, 'guest-upload-accepted');
  await op.click('#drawer-close');
  await op.click('#tab-files');
  await waitText(op, '#files', 'notes.txt');
  await waitText(op, '#files', 'Grace Guest');
  await shot(op, 'organizer-files');

  step('minimise inside the webmail and back');
  await op.click('#minimise');
  if (await op.locator('.room-body').isVisible()) throw new Error('minimise did not hide the room');
  await op.click('#minimise');
  await visible(op, '.room-body');

  if (logs.length) throw new Error('browser errors:\n' + logs.join('\n'));
  console.log('all steps passed');
} catch (err) {
  console.error('FAILED at step', n, ':', err.message);
  for (const l of logs) console.error(l);
  for (const ctx of browser.contexts()) {
    for (const [i, p] of ctx.pages().entries()) {
      await p.screenshot({ path: path.join(shots, `failure-${browser.contexts().indexOf(ctx)}-${i}.png`) }).catch(() => {});
    }
  }
  await browser.close();
  process.exit(1);
}
await browser.close();
