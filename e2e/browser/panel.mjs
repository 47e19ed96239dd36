// The chat panel in a real browser: Debian's Chromium driven by
// playwright-core, against the example host that browser_test.go starts.
// Two browser users (alice at desktop width, bob at phone width) and one
// slixmpp client (carol, slixpeer.py) chat the way the seed products'
// users do. Run by `go test -tags browser ./e2e/browser/`, which sets:
//
//   PARLEY_URL          https://127.0.0.1:<port> of the host's webmail
//   PARLEY_XMPP         host:port of its XMPP listener (STARTTLS)
//   PARLEY_USERS        its users file (addresses and passwords)
//   PARLEY_DOMAIN       the mail domain
//   PARLEY_SCREENSHOTS  where to save screenshots
//   PARLEY_PYTHON       the python with slixmpp
//   CHROMIUM            the browser binary (default /usr/bin/chromium)

import path from 'node:path';
import {
  ALICE, BOB, CAROL, INVALID, Peer, browser, check, dialogs, domain, log, logText, online, openConversation, pageErrors, pages,
  q, results, row, rowStatus, send, setStatus, shots, step, until, webmailLogin,
} from './panel-lib.mjs';

const carol = new Peer(CAROL);
let alice;
let bob;
try {
  await step('slixmpp peer (carol) logs in', () => carol.wait((e) => e.ev === 'ready', 'ready', 30000));

  await step('seed 100 messages of history between alice and carol', async () => {
    carol.send({ cmd: 'seed', with: ALICE, n: 100 });
    await carol.wait((e) => e.ev === 'seeded' || e.ev === 'error', 'seeded', 60000).then((e) => check(e.ev === 'seeded', 'seeding failed: ' + e.error));
  });

  await step('alice (desktop) and bob (phone) log into the webmail; the panel logs in with the session', async () => {
    [alice, bob] = await Promise.all([
      webmailLogin('alice', ALICE, { width: 1280, height: 800 }),
      webmailLogin('bob', BOB, { width: 390, height: 844 }),
    ]);
    await Promise.all([online(alice), online(bob)]);
    await alice.screenshot({ path: path.join(shots, 'panel-desktop-webmail.png') });
  });

  await step('the contact list: aliases first with no status, then users with their status', async () => {
    await q(alice, '.launcher').click();
    await until(async () => await rowStatus(alice, BOB) === 'Available', 'bob Available in alice\'s list');
    await until(async () => await rowStatus(alice, CAROL) === 'Available', 'carol Available in alice\'s list');
    const order = await q(alice, '.list li').evaluateAll((lis) => lis.map((li) => li.classList.contains('group') ? '#' + li.textContent : li.querySelector('button')?.dataset.jid));
    check(order[0] === '#Aliases' && order[1] === 'sales@' + domain && order[2] === '#People', 'list order: ' + JSON.stringify(order));
    check(!(await row(alice, 'sales@' + domain).locator('.dot').count()), 'an alias shows a status dot');
    check(!order.includes('dave@' + domain), 'dave is not chat-enabled but is listed');
    await alice.screenshot({ path: path.join(shots, 'panel-desktop-contacts.png') });
  });

  await step('presence: carol (slixmpp) goes away, alice sees it', async () => {
    carol.send({ cmd: 'presence', show: 'away' });
    await until(async () => await rowStatus(alice, CAROL) === 'Away', 'carol Away in alice\'s list');
  });

  await step('presence: bob picks Do Not Disturb in the panel; alice and carol see it', async () => {
    await q(bob, '.launcher').click();
    await setStatus(bob, 'Do Not Disturb');
    await until(async () => await rowStatus(alice, BOB) === 'Do not disturb', 'bob dnd in alice\'s list');
    await carol.wait((e) => e.ev === 'presence' && e.from.startsWith(BOB + '/') && e.show === 'dnd', 'bob dnd presence');
    await setStatus(bob, 'Available');
    await until(async () => await rowStatus(alice, BOB) === 'Available', 'bob Available again');
    await carol.wait((e) => e.ev === 'presence' && e.from.startsWith(BOB + '/') && e.type === 'available' && !e.show, 'bob available presence');
    await bob.screenshot({ path: path.join(shots, 'panel-phone-contacts.png') });
    await q(bob, '.close').click();
  });

  await step('alice writes to bob: his chat icon shows the unread flag; he reads it and alice sees "Seen"', async () => {
    await openConversation(alice, BOB);
    await send(alice, 'Hello Bob, the report is at https://example.org/report?q=1.');
    await until(async () => (await q(bob, '.badge').innerText()) === '1', 'bob\'s unread flag');
    check((await bob.evaluate(() => window.__parley.unread)).includes(1), 'no parley-unread event with count 1');
    await bob.screenshot({ path: path.join(shots, 'panel-phone-unread-flag.png') });
    await q(bob, '.launcher').click();
    check((await row(bob, ALICE).locator('.count').innerText()) === '1', 'no unread count on alice\'s row');
    await openConversation(bob, ALICE);
    await until(async () => (await logText(bob)).includes('Hello Bob, the report is at'), 'alice\'s message in bob\'s panel');
    const link = q(bob, '.log a');
    check(await link.getAttribute('href') === 'https://example.org/report?q=1', 'link href ' + await link.getAttribute('href'));
    check(await link.getAttribute('target') === '_blank' && await link.getAttribute('rel') === 'noopener noreferrer', 'link target/rel');
    await until(async () => (await q(bob, '.badge').isHidden()), 'bob\'s unread flag cleared');
    await until(async () => (await q(alice, '.log .state.seen').count()) === 1, '"Seen" in alice\'s view');
  });

  await step('bob types: alice sees "is typing"; bob answers', async () => {
    await q(bob, '.compose textarea').pressSequentially('Thanks', { delay: 20 });
    await until(async () => (await q(alice, '.typing').innerText()).includes('is typing'), 'typing shown to alice');
    await q(bob, '.compose textarea').fill('Thanks Alice, got it.');
    await q(bob, '.compose textarea').press('Enter');
    await until(async () => (await logText(alice)).includes('Thanks Alice, got it.'), 'bob\'s answer in alice\'s panel');
    await until(async () => (await q(alice, '.typing').innerText()) === '', 'typing cleared');
    await bob.screenshot({ path: path.join(shots, 'panel-phone-conversation.png') });
  });

  await step('alice and carol (slixmpp) exchange messages both ways', async () => {
    await openConversation(alice, CAROL);
    await send(alice, 'Hi Carol, from the web panel');
    await carol.wait((e) => e.ev === 'message' && e.from === ALICE && e.body === 'Hi Carol, from the web panel', 'alice\'s message');
    carol.send({ cmd: 'send', to: ALICE, body: 'Hi Alice, from slixmpp' });
    await until(async () => (await logText(alice)).includes('Hi Alice, from slixmpp'), 'carol\'s message in alice\'s panel');
  });

  await step('history: the window shows the most recent lines; scrolling up loads older ones', async () => {
    const text = await logText(alice);
    check(text.includes('history 100'), 'the newest history line is missing');
    check(!text.includes('history 001'), 'the window holds more than 75 lines: history 001 is there already');
    const n = await q(alice, '.log .msg').count();
    check(n >= 75 && n <= 77, `${n} messages in the window, want the 75 of the window plus the live ones`);
    await alice.screenshot({ path: path.join(shots, 'panel-desktop-conversation.png') });
    await until(async () => {
      await q(alice, '.log').evaluate((el) => { el.scrollTop = 0; el.dispatchEvent(new Event('scroll')); });
      return (await logText(alice)).includes('history 001');
    }, 'history 001 after scrolling up', 20000);
    check((await q(alice, '.log .older').innerText()).includes('Beginning of the conversation'), 'no "Beginning of the conversation" after the first message');
    const all = await q(alice, '.log .msg .bubble').allInnerTexts();
    const hist = all.filter((t) => t.startsWith('history '));
    check(hist.length === 100 && new Set(hist).size === 100, `${hist.length} history lines (${new Set(hist).size} distinct), want 100`);
    check(hist[0] === 'history 001' && hist[99] === 'history 100', 'history out of order');
    await q(alice, '.log').evaluate((el) => { el.scrollTop = 0; });
    await alice.screenshot({ path: path.join(shots, 'panel-desktop-history-top.png') });
  });

  await step('history search (MAM full text)', async () => {
    await q(alice, '.search-toggle').click();
    await q(alice, '.search input').fill('history 042');
    await q(alice, '.search input').press('Enter');
    await until(async () => (await q(alice, '.results').innerText()).includes('history 042'), 'a search result');
    await q(alice, '.search-close').click();
  });

  await step('add a contact: the exact error for a bad value, red people who cannot chat', async () => {
    await q(alice, '.add').click();
    await q(alice, '#add-who').fill('John Doe john@other.example');
    await q(alice, '.add-form button.primary').click();
    await until(async () => (await q(alice, '.add-form .error').innerText()) === INVALID, 'the invalid-value error');
    await alice.screenshot({ path: path.join(shots, 'panel-desktop-add-contact-error.png') });
    await q(alice, '#add-who').fill('dave');
    await until(async () => (await q(alice, '.add-results li.not-chat').count()) === 1, 'dave in red');
    check(await q(alice, '.add-results li.not-chat').getAttribute('aria-disabled') === 'true', 'dave can be picked');
    await alice.screenshot({ path: path.join(shots, 'panel-desktop-add-contact-search.png') });
    // Someone from another domain, in the right form, with groups: added,
    // and the invitation goes out (this host does not federate, so it
    // comes back refused, and the list says so).
    await q(alice, '#add-who').fill('John Doe <john@other.example>');
    await q(alice, '#add-groups').fill('Clients, Friends');
    await q(alice, '.add-form button.primary').click();
    await until(async () => !(await q(alice, '.add-dialog').evaluate((d) => d.open)), 'the dialog to close');
    await until(async () => (await row(alice, 'john@other.example').count()) === 1, 'John Doe in the list');
    await until(async () => /Invitation (sent|failed)/.test(await rowStatus(alice, 'john@other.example')), 'the invitation state');
    check((await row(alice, 'john@other.example').locator('.cname').innerText()) === 'John Doe', 'John Doe\'s name');
  });

  await step('XSS: markup from senders is shown as text and never runs', async () => {
    const payloads = ['<img src=x onerror=alert(1)>', '<script>alert(2)</script>'];
    for (const p of payloads) carol.send({ cmd: 'send', to: ALICE, body: p });
    await send(bob, '<b>bold?</b><img src=x onerror=alert(3)><a href="javascript:alert(4)">click</a>');
    for (const p of payloads) await until(async () => (await logText(alice)).includes(p), `payload ${p} shown as text`);
    await openConversation(alice, BOB);
    await until(async () => (await logText(alice)).includes('<b>bold?</b><img src=x onerror=alert(3)>'), 'bob\'s payload shown as text');
    const bad = await q(alice, '.log').evaluate((el) => el.querySelectorAll('img, script, b, a[href^="javascript"]').length);
    check(bad === 0, `${bad} elements made from message text`);
    await alice.waitForTimeout(300);
    check(dialogs.length === 0, 'dialogs fired: ' + dialogs.join('; '));
  });

  await step('title badge "(N)" while the tab is in the background', async () => {
    await openConversation(alice, CAROL);
    await alice.evaluate(() => {
      Object.defineProperty(document, 'visibilityState', { configurable: true, get: () => 'hidden' });
      Object.defineProperty(document, 'hidden', { configurable: true, get: () => true });
      document.dispatchEvent(new Event('visibilitychange'));
    });
    carol.send({ cmd: 'send', to: ALICE, body: 'are you there?' });
    await until(async () => (await alice.title()).startsWith('(1) '), 'title badge (1)');
    await alice.evaluate(() => {
      delete document.visibilityState;
      delete document.hidden;
      document.dispatchEvent(new Event('visibilitychange'));
    });
    await until(async () => !(await alice.title()).startsWith('('), 'title badge cleared');
  });

  await step('a dropped connection: the panel reconnects, resumes the stream, and loses no message', async () => {
    await alice.evaluate(() => { window.__parley.status.length = 0; document.querySelector('parley-chat').client.ws.close(); });
    carol.send({ cmd: 'send', to: ALICE, body: 'sent while your connection was down' });
    await until(() => alice.evaluate(() => window.__parley.status.some((s) => s.connection === 'disconnected')), 'the panel to notice the drop');
    await online(alice);
    await until(async () => (await logText(alice)).includes('sent while your connection was down'), 'the message sent during the drop', 20000);
    const bodies = await q(alice, '.log .msg .bubble').allInnerTexts();
    check(bodies.filter((b) => b === 'sent while your connection was down').length === 1, 'the message shows twice');
    check(await alice.evaluate(() => document.querySelector('parley-chat').client.sm.id !== ''), 'no stream management after the reconnection');
  });

  await step('bob goes Offline in the panel: alice sees him offline (greyed)', async () => {
    await setStatus(bob, 'Offline');
    await until(async () => await rowStatus(alice, BOB) === 'Offline', 'bob offline in alice\'s list');
    check(await row(alice, BOB).evaluate((b) => b.classList.contains('offline')), 'bob is not greyed');
    await alice.screenshot({ path: path.join(shots, 'panel-desktop-bob-offline.png') });
    await q(alice, '.me').click();
    await alice.screenshot({ path: path.join(shots, 'panel-desktop-status-menu.png') });
    await q(alice, '.status-menu [data-action="show-offline"]').click();
    await until(async () => (await row(alice, BOB).count()) === 0, 'offline bob hidden by the toggle');
    await q(alice, '.status-menu [data-action="show-offline"]').click();
    await q(alice, '.me').press('Escape');
    await setStatus(bob, 'Available');
    await until(async () => await rowStatus(alice, BOB) === 'Available', 'bob back');
  });

  await step('Chat with... stays fast with 5,000 people on the domain (capped list)', async () => {
    const r = await alice.evaluate(async () => {
      const el = document.querySelector('parley-chat');
      for (let i = 0; i < 5000; i++) {
        el._setContact({ jid: `user${String(i).padStart(4, '0')}@big.example`, name: `Test User ${i}`, groups: ['People'], subscription: 'both' });
      }
      const input = el.shadowRoot.querySelector('.filter');
      const t0 = performance.now();
      el._renderList();
      const all = performance.now() - t0;
      const rowsAll = el.shadowRoot.querySelectorAll('.list button[data-jid]').length;
      input.value = 'user4321';
      const t1 = performance.now();
      input.dispatchEvent(new Event('input'));
      const one = performance.now() - t1;
      const rowsOne = [...el.shadowRoot.querySelectorAll('.list button[data-jid]')].map((b) => b.dataset.jid);
      input.value = '';
      input.dispatchEvent(new Event('input'));
      for (const jid of [...el.contacts.keys()]) if (jid.endsWith('@big.example')) el.contacts.delete(jid);
      el._renderList();
      return { all, rowsAll, one, rowsOne };
    });
    log(`     5,000 contacts: full list ${r.all.toFixed(1)}ms (${r.rowsAll} rows drawn), filtered ${r.one.toFixed(1)}ms`);
    check(r.rowsAll <= 200, `${r.rowsAll} rows drawn, want at most 200`);
    check(r.rowsOne.length === 1 && r.rowsOne[0] === 'user4321@big.example', 'filter result ' + JSON.stringify(r.rowsOne));
    check(r.all < 500 && r.one < 200, `too slow: ${r.all}ms, ${r.one}ms`);
  });

  await step('keyboard: Chat with... finds a contact and Enter opens the conversation', async () => {
    await q(alice, '.filter').fill('bui');
    await q(alice, '.filter').press('Enter');
    await until(async () => (await q(alice, '.peer-name').innerText()) === 'Bob Builder', 'conversation with Bob via the keyboard');
    await q(alice, '.filter').fill('');
  });

  await step('phone layout: the burger shows the list, a contact shows the conversation', async () => {
    await q(bob, '.back').click();
    await until(() => q(bob, '.side').isVisible(), 'list visible on the phone');
    check(await q(bob, '.thread').isHidden(), 'conversation still visible beside the list on a phone');
    await bob.screenshot({ path: path.join(shots, 'panel-phone-list.png') });
    await openConversation(bob, ALICE);
    check(await q(bob, '.side').isHidden(), 'list still visible over the conversation');
  });

  await step('an alias: alice writes to sales@, its members get it marked "via Sales" and bob\'s reply reaches her', async () => {
    const SALES = 'sales@' + domain;
    await openConversation(alice, SALES);
    check((await q(alice, '.peer-status').innerText()).includes('every member online'), 'the alias header');
    await send(alice, 'Question for the sales team');
    await carol.wait((e) => e.ev === 'message' && e.from === ALICE && e.body === 'Question for the sales team', 'the alias message at carol');
    await until(async () => (await q(bob, '.log').innerText()).includes('Question for the sales team'), 'the alias message in bob\'s conversation with alice');
    check((await q(bob, '.log .via').last().innerText()).trim() === 'via Sales', 'the message is not marked via Sales');
    await send(bob, 'I can help with that');
    await openConversation(alice, BOB);
    await until(async () => (await logText(alice)).includes('I can help with that'), 'bob\'s reply at alice');
    await bob.screenshot({ path: path.join(shots, 'panel-phone-alias.png') });
  });

  await step('pop-out page hosts the panel full size', async () => {
    const [popup] = await Promise.all([alice.waitForEvent('popup'), q(alice, '.popout').click()]);
    pages.popup = popup;
    popup.on('dialog', (d) => { dialogs.push('popup: ' + d.message()); d.dismiss().catch(() => {}); });
    await popup.setViewportSize({ width: 960, height: 700 });
    await online(popup);
    await until(async () => (await popup.locator('parley-chat .peer-name').innerText()) === 'Bob Builder', 'the pop-out on the open conversation');
    await until(async () => (await popup.locator('parley-chat .log').innerText()).includes('Thanks Alice, got it.'), 'history in the pop-out');
    await popup.screenshot({ path: path.join(shots, 'panel-desktop-popout.png') });
    await popup.close();
  });

  await step('no page errors and no dialogs', async () => {
    check(pageErrors.length === 0, 'page errors: ' + pageErrors.join('; '));
    check(dialogs.length === 0, 'dialogs: ' + dialogs.join('; '));
  });
} catch {
  process.exitCode = 1;
} finally {
  carol.quit();
  await browser.close().catch(() => {});
  log(`${results.passed} passed, ${process.exitCode ? 1 : 0} failed`);
}
