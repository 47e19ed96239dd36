// Past chat sessions and meetings in the chat panel, in Chromium, against
// the example host started by panel_history_browser_test.go with
// -session-gap 2s. Alice is at desktop width, Bob at phone width.
//
//   - three chat sessions between alice and bob, real messages through
//     the server, with more than the session gap of quiet between them;
//   - alice opens History (the clock in the conversation's header): the
//     three sessions, newest first, with time span, message count and
//     preview; she opens the middle one: its messages and no others, read
//     only; Back returns to the list, Escape closes it; the same session
//     in a new window (the pop-out page); a failing list says so and
//     Try again loads it;
//   - keyboard: History from Actions (…) → Past chat sessions, arrow keys
//     between the sessions' Open buttons;
//   - bob (phone) lists and opens his sessions;
//   - alice starts a meeting from Actions (…) → Start a meeting with a
//     room name: the link is posted as a message; bob sees it with a card
//     and opens the meeting's join page; without a room name the meeting
//     is "Meeting with Bob Builder"; a failure shows in the dialog and
//     posts nothing; the calls beside it are enabled (panel_calls.mjs
//     makes them).
//
// Environment: as panel.mjs (PARLEY_URL, PARLEY_USERS, PARLEY_DOMAIN,
// PARLEY_SCREENSHOTS, CHROMIUM).

import path from 'node:path';
import {
  ALICE, BOB, browser, check, dialogs, log, online, openConversation, pageErrors, pages, q, results, send, shots, step, until, webmailLogin,
} from './panel-lib.mjs';

const shot = (page, name) => page.screenshot({ path: path.join(shots, name) });
const focused = (loc) => loc.evaluate((el) => el === el.getRootNode().activeElement);
const GAP = 2500; // more than the host's -session-gap 2s

// The three sessions, oldest first: [who, text].
const SESSIONS = [
  [['alice', 'Morning Bob, did the invoices go out?'], ['bob', 'Yes, all of them, on Friday.']],
  [['bob', 'Lunch at noon? The new place on 5th street.'], ['alice', 'Sure, see you there'], ['bob', 'Booked a table for two'], ['alice', 'Great, thanks!']],
  [['alice', 'Can you send me the Q3 figures? https://example.com/q3 has last year'], ['bob', 'Sending them after the meeting']],
];

let alice;
let bob;
try {
  await step('alice (desktop) and bob (phone) log into the webmail and open their chat', async () => {
    [alice, bob] = await Promise.all([
      webmailLogin('alice', ALICE, { width: 1280, height: 800 }),
      webmailLogin('bob', BOB, { width: 390, height: 844 }),
    ]);
    await Promise.all([online(alice), online(bob)]);
    await q(alice, '.launcher').click();
    await openConversation(alice, BOB);
    await q(bob, '.launcher').click();
    await openConversation(bob, ALICE);
  });

  await step(`three chat sessions, ${GAP / 1000}s of quiet between them`, async () => {
    let total = 0;
    for (const [i, session] of SESSIONS.entries()) {
      if (i > 0) await alice.waitForTimeout(GAP);
      for (const [who, text] of session) {
        const [from, to] = who === 'alice' ? [alice, bob] : [bob, alice];
        await send(from, text);
        total++;
        // Each message arrives before the next is sent, so the order is
        // the archive's.
        await until(async () => (await q(to, '.log').innerText()).includes(text), `"${text}" at the other side`);
      }
    }
    check(total === 8, 'eight messages');
  });

  let sessions;
  await step('History lists the three sessions, newest first, with span, count and preview', async () => {
    await q(alice, '.history-toggle').click();
    check(await q(alice, '.history-toggle').getAttribute('aria-expanded') === 'true', 'aria-expanded');
    check(await focused(q(alice, '.history-close')), 'focus is not on Close');
    await until(async () => (await q(alice, '.history-panel .session').count()) === 3, 'three sessions');
    check(await q(alice, '.log').isHidden(), 'the live messages show under the history');
    check(await q(alice, '.compose').isHidden(), 'the message box shows in the read-only history');
    check((await q(alice, '#parley-history-title').innerText()) === 'Chat history with Bob Builder', 'title: ' + await q(alice, '#parley-history-title').innerText());
    check((await q(alice, '.history-panel .files-count').innerText()) === '3 chat sessions, newest first', 'count line');
    sessions = await q(alice, '.history-panel .session').evaluateAll((lis) => lis.map((li) => ({
      when: li.querySelector('.session-when time').textContent,
      count: li.querySelector('.session-count').textContent,
      preview: li.querySelector('.session-preview')?.textContent || '',
      label: li.querySelector('button').getAttribute('aria-label'),
    })));
    log('     ' + JSON.stringify(sessions));
    const want = [...SESSIONS].reverse();
    for (const [i, s] of sessions.entries()) {
      check(s.count === ` · ${want[i].length} messages`, `session ${i}: count ${s.count}`);
      check(s.preview === want[i][0][1], `session ${i}: preview ${s.preview}`);
      check(/^Today, \d\d:\d\d( [AP]M)?( – \d\d:\d\d( [AP]M)?)?$/.test(s.when), `session ${i}: span ${s.when}`);
      check(s.label === `Open the chat of ${s.when}, ${want[i].length} messages`, `session ${i}: label ${s.label}`);
    }
    await shot(alice, 'history-desktop-list.png');
  });

  await step('alice opens the middle session: its four messages, no others, read only; Back returns to the list', async () => {
    await q(alice, '.history-panel .session button').nth(1).click();
    await until(async () => (await q(alice, '.history-panel .transcript .tmsg').count()) === 4, 'four messages');
    const msgs = await q(alice, '.history-panel .transcript .tmsg').evaluateAll((lis) => lis.map((li) => [li.querySelector('strong').textContent, li.querySelector('.rbody').textContent, li.className]));
    const want = SESSIONS[1].map(([who, text]) => [who === 'alice' ? 'You' : 'Bob Builder', text, `tmsg ${who === 'alice' ? 'out' : 'in'}`]);
    check(JSON.stringify(msgs) === JSON.stringify(want), 'messages: ' + JSON.stringify(msgs));
    check((await q(alice, '#parley-history-title').innerText()) === sessions[1].when, 'title ' + await q(alice, '#parley-history-title').innerText());
    check((await q(alice, '.history-panel .files-count').innerText()) === '4 messages, read only', 'count line');
    check(await q(alice, '.compose').isHidden(), 'a message box under a past session');
    check(await focused(q(alice, '.history-back')), 'focus is not on Back');
    check((await q(alice, '.history-panel .tday').allInnerTexts()).join() === 'TODAY', 'day heading: ' + (await q(alice, '.history-panel .tday').allInnerTexts()).join());
    await shot(alice, 'history-desktop-session.png');
    await q(alice, '.history-back').click();
    await until(async () => (await q(alice, '.history-panel .session').count()) === 3, 'the list again');
    check(await focused(q(alice, '.history-panel .session button').nth(1)), 'focus did not return to the session\'s Open button');
    await alice.keyboard.press('ArrowDown');
    check(await focused(q(alice, '.history-panel .session button').nth(2)), 'ArrowDown did not move to the next session');
    await alice.keyboard.press('Enter');
    await until(async () => (await q(alice, '.history-panel .transcript .tmsg').count()) === 2, 'the oldest session by keyboard');
    check((await q(alice, '.history-panel .transcript .rbody').first().innerText()) === SESSIONS[0][0][1], 'the oldest session\'s first message');
    await alice.keyboard.press('Escape');
    await until(async () => (await q(alice, '.history-panel .session').count()) === 3, 'Escape back to the list');
    await alice.keyboard.press('Escape');
    check(await q(alice, '.history-panel').isHidden(), 'Escape did not close History');
    check(await q(alice, '.log').isVisible() && await q(alice, '.compose').isVisible(), 'the conversation is not back');
    check(await focused(q(alice, '.history-toggle')), 'focus did not return to the History button');
    check(await q(alice, '.panel').isVisible(), 'Escape closed the panel too');
  });

  await step('the newest session in a new window (the pop-out page)', async () => {
    await q(alice, '.actions').click();
    await q(alice, '.actions-menu [data-action="history"]').click();
    await until(async () => (await q(alice, '.history-panel .session').count()) === 3, 'History from Actions (…)');
    await q(alice, '.history-panel .session button').first().click();
    await until(async () => (await q(alice, '.history-panel .transcript .tmsg').count()) === 2, 'the newest session');
    const link = q(alice, '.history-panel .transcript .rbody a');
    check((await link.getAttribute('href')) === 'https://example.com/q3' && (await link.getAttribute('target')) === '_blank', 'a link in a past message');
    check(!(await q(alice, '.history-panel .card').count()) && !(await q(alice, '.history-panel img').count()), 'the past session is not text only');
    const [win] = await Promise.all([alice.context().waitForEvent('page'), q(alice, '.history-window').click()]);
    pages.window = win;
    win.on('pageerror', (e) => pageErrors.push(`window: ${e.message}`));
    win.on('console', (m) => { if (m.type() === 'error') log('window console error:', m.text()); });
    await win.waitForLoadState('load');
    check(/\/parley\/panel\/popout\.html\?/.test(win.url()) && win.url().includes('history='), 'window URL ' + win.url());
    await until(async () => (await win.locator('parley-chat .history-panel .transcript .tmsg').count()) === 2, 'the session in the new window');
    check((await win.locator('parley-chat .history-panel .transcript .rbody').allInnerTexts()).join('|') === SESSIONS[2].map((m) => m[1]).join('|'), 'the new window\'s messages');
    const who = await win.locator('parley-chat .history-panel .transcript .tmsg strong').allInnerTexts();
    check(who.join('|') === 'You|Bob Builder', 'senders in the new window: ' + who.join('|'));
    check(await win.title() === 'Chat history', 'window title ' + await win.title());
    check(await win.locator('parley-chat .history-window').isHidden(), '"New window" inside the new window');
    await win.setViewportSize({ width: 760, height: 720 });
    await shot(win, 'history-window.png');
    await win.close();
    delete pages.window;
    await q(alice, '.history-close').click();
  });

  await step('a failing history service: the error says so, Try again loads the list', async () => {
    await alice.route('**/parley/api/conversations?*', (r) => r.fulfill({ status: 502, contentType: 'application/json', body: '{"error":"the history is unavailable; try again"}' }));
    await q(alice, '.history-toggle').click();
    await until(async () => (await q(alice, '.history-panel .error').count()) === 1, 'the error');
    const text = await q(alice, '.history-panel .error').innerText();
    check(text === 'The chat history could not be loaded: the history is unavailable; try again. Try again', 'error: ' + text);
    check(await q(alice, '.history-panel .error').getAttribute('role') === 'alert', 'the error is not an alert');
    await alice.unroute('**/parley/api/conversations?*');
    await q(alice, '.history-panel .error button').click();
    await until(async () => (await q(alice, '.history-panel .session').count()) === 3, 'the list after Try again');
    await q(alice, '.history-close').click();
  });

  await step('bob (phone) lists his sessions and opens one', async () => {
    await q(bob, '.history-toggle').click();
    await until(async () => (await q(bob, '.history-panel .session').count()) === 3, 'bob\'s three sessions');
    check((await q(bob, '#parley-history-title').innerText()) === 'Chat history with Alice Liddell', 'bob\'s title');
    const box = await q(bob, '.history-panel').boundingBox();
    check(box && box.width <= 390, 'the list is wider than the phone: ' + JSON.stringify(box));
    await shot(bob, 'history-phone-list.png');
    await q(bob, '.history-panel .session button').nth(1).click();
    await until(async () => (await q(bob, '.history-panel .transcript .tmsg').count()) === 4, 'bob\'s four messages');
    check((await q(bob, '.history-panel .transcript .tmsg.out strong').allInnerTexts()).every((t) => t === 'You'), 'bob\'s own messages');
    await shot(bob, 'history-phone-session.png');
    await q(bob, '.history-close').click();
  });

  await step('History pages (api/conversations with limit and the next cursor): two sessions, then "Older chat sessions" adds the third', async () => {
    const asked = [];
    const watch = (r) => { if (r.url().includes('/api/conversations')) asked.push(new URL(r.url()).searchParams); };
    bob.on('request', watch);
    await bob.evaluate(() => { document.querySelector('parley-chat').sessionsPage = 2; });
    await q(bob, '.history-toggle').click();
    await until(async () => (await q(bob, '.history-panel .session').count()) === 2, 'bob\'s first page of two');
    check((await q(bob, '.history-panel .files-count').innerText()) === '2 most recent chat sessions, newest first', 'count line ' + await q(bob, '.history-panel .files-count').innerText());
    const first = await q(bob, '.history-panel .session-preview').allInnerTexts();
    await shot(bob, 'history-phone-older-button.png');
    await q(bob, '.history-panel button.older-sessions').click();
    await until(async () => (await q(bob, '.history-panel .session').count()) === 3, 'bob\'s three sessions after Older');
    const all = await q(bob, '.history-panel .session-preview').allInnerTexts();
    const want = [...SESSIONS].reverse().map((x) => x[0][1]);
    check(JSON.stringify(all) === JSON.stringify(want) && JSON.stringify(all.slice(0, 2)) === JSON.stringify(first), 'sessions ' + JSON.stringify(all));
    check(!(await q(bob, '.history-panel button.older-sessions').count()), 'an Older button after the last page');
    check(await focused(q(bob, '.history-panel .session button[data-session="2"]')), 'focus is not on the first session of the new page');
    check(asked.length === 2 && asked[0].get('limit') === '2' && !asked[0].get('before') && asked[1].get('before'), 'requests ' + asked.map(String).join(' | '));
    bob.off('request', watch);
    await bob.evaluate(() => { document.querySelector('parley-chat').sessionsPage = 20; });
    await q(bob, '.history-close').click();
  });

  await step('Actions (…): "Start a meeting", "Audio call" and "Video call", all enabled', async () => {
    await q(alice, '.actions').click();
    const item = q(alice, '.actions-menu [data-action="meeting"]');
    check(await item.innerText() === 'Start a meeting' && !(await item.isDisabled()), '"Start a meeting" missing or disabled');
    for (const id of ['audio', 'video']) {
      check(await q(alice, `.actions-menu [data-action="${id}"]`).isEnabled(), `${id} call is disabled`);
    }
    await shot(alice, 'meeting-desktop-actions-menu.png');
    await q(alice, '.actions').press('Escape');
  });

  await step('a failing meeting service: the dialog says so and nothing is posted', async () => {
    const before = await q(alice, '.log .msg').count();
    await alice.route('**/parley/meetings/api/start', (r) => r.fulfill({ status: 503, contentType: 'application/json', body: '{"error":{"code":"unavailable","message":"the meeting service is down for maintenance"}}' }));
    await q(alice, '.actions').click();
    await q(alice, '.actions-menu [data-action="meeting"]').click();
    check(await q(alice, '.meet-dialog').isVisible(), 'no dialog');
    check(await focused(q(alice, '#meet-room')), 'focus is not on the room name');
    await q(alice, '#meet-room').press('Enter');
    await until(async () => (await q(alice, '.meet-form .error').innerText()) !== '', 'the error');
    const text = await q(alice, '.meet-form .error').innerText();
    check(text === 'The meeting could not be started: the meeting service is down for maintenance.', 'error: ' + text);
    await shot(alice, 'meeting-desktop-error.png');
    await alice.unroute('**/parley/meetings/api/start');
    await q(alice, '#meet-room').press('Escape');
    check(await q(alice, '.meet-dialog').isHidden(), 'Escape did not close the dialog');
    check(await q(alice, '.panel').isVisible(), 'Escape closed the panel');
    check(await q(alice, '.log .msg').count() === before, 'a message was posted');
  });

  let link = '';
  await step('alice starts a meeting named "Budget review": the link is posted; bob sees it with a card and opens the join page', async () => {
    await q(alice, '.actions').click();
    await q(alice, '.actions-menu [data-action="meeting"]').click();
    check((await q(alice, '#meet-room').getAttribute('placeholder')) === 'Meeting with Bob Builder', 'placeholder');
    check((await q(alice, '.meet-about').innerText()).includes('Bob Builder'), 'the dialog does not name bob');
    await q(alice, '#meet-room').fill('Budget review');
    await shot(alice, 'meeting-desktop-dialog.png');
    await q(alice, '.meet-form button[type=submit]').click();
    await until(async () => await q(alice, '.meet-dialog').isHidden(), 'the dialog to close');
    await until(async () => (await q(alice, '.log').innerText()).includes('Alice Liddell started a video meeting: Budget review'), 'the message at alice');
    check(await focused(q(alice, '.compose textarea')), 'focus is not back in the message box');
    const a = q(alice, '.log .msg.out .bubble a').last();
    link = await a.getAttribute('href');
    check(/\/parley\/meetings\/j\/[A-Za-z0-9_-]+$/.test(link) && link.startsWith(new URL(process.env.PARLEY_URL).origin), 'link ' + link);
    check((await a.getAttribute('target')) === '_blank', 'the link does not open a new window');
    await until(async () => (await q(alice, '.log .meeting-card .card-title').last().innerText()) === 'Budget review', 'the card\'s title at alice');
    await shot(alice, 'meeting-desktop-posted.png');

    await until(async () => (await q(bob, '.log .msg.in .bubble a').allInnerTexts()).includes(link), 'the link at bob');
    const card = q(bob, '.log .meeting-card').last();
    await until(async () => (await card.locator('.card-title').innerText()) === 'Budget review', 'the card\'s title at bob');
    check((await card.getAttribute('href')) === link && (await card.getAttribute('target')) === '_blank', 'bob\'s card link');
    check(!(await q(bob, '.log .card:not(.meeting-card)').count()), 'a link card for the meeting link');
    await shot(bob, 'meeting-phone-posted.png');
    const [join] = await Promise.all([bob.context().waitForEvent('page'), q(bob, '.log .msg.in .bubble a').last().click()]);
    pages.join = join;
    await join.waitForLoadState('load');
    check(join.url() === link, 'join page URL ' + join.url());
    await join.locator('#join-button').waitFor({ state: 'visible', timeout: 15000 });
    await until(async () => (await join.locator('#join-title').innerText()) === 'Budget review', 'the join page\'s title');
    await shot(join, 'meeting-phone-join-page.png');
    await join.close();
    delete pages.join;
  });

  await step('without a room name the meeting is "Meeting with Bob Builder" (the directory name)', async () => {
    await q(alice, '.actions').click();
    await q(alice, '.actions-menu [data-action="meeting"]').click();
    await q(alice, '#meet-room').press('Enter');
    await until(async () => (await q(bob, '.log').innerText()).includes('Alice Liddell started a video meeting: Meeting with Bob Builder'), 'the default name at bob');
    await until(async () => (await q(bob, '.log .meeting-card .card-title').last().innerText()) === 'Meeting with Bob Builder', 'the default card title');
  });

  await step('the meeting dialog at phone width (bob), by keyboard; Cancel posts nothing', async () => {
    const before = await q(bob, '.log .msg').count();
    await q(bob, '.actions').focus();
    await bob.keyboard.press('Enter');
    await until(() => focused(q(bob, '.actions-menu [data-action="file"]')), 'focus in the menu');
    await bob.keyboard.press('ArrowDown');
    check(await focused(q(bob, '.actions-menu [data-action="meeting"]')), 'ArrowDown did not reach "Start a meeting"');
    await bob.keyboard.press('Enter');
    await until(() => focused(q(bob, '#meet-room')), 'focus on the room name');
    const box = await q(bob, '.meet-dialog').boundingBox();
    check(box && box.x >= 0 && box.x + box.width <= 390, 'the dialog does not fit the phone: ' + JSON.stringify(box));
    await shot(bob, 'meeting-phone-dialog.png');
    await q(bob, '.meet-form .cancel').click();
    check(await q(bob, '.meet-dialog').isHidden(), 'Cancel did not close the dialog');
    check(await q(bob, '.log .msg').count() === before, 'Cancel posted a message');
  });

  await step('no page errors and no dialogs', async () => {
    check(pageErrors.length === 0, 'page errors: ' + pageErrors.join('; '));
    check(dialogs.length === 0, 'dialogs: ' + dialogs.join('; '));
  });
} catch {
  process.exitCode = 1;
} finally {
  await browser.close().catch(() => {});
  log(`${results.passed} passed, ${process.exitCode ? 1 : 0} failed`);
}
