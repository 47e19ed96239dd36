// Invitations, on a host without the domain roster (browser_test.go starts
// it with -domain-roster=false): contacts are added one by one and the
// other side must accept. alice adds bob from the directory search; bob
// accepts in his panel; carol (slixmpp) invites alice, who declines.

import path from 'node:path';
import {
  ALICE, BOB, CAROL, Peer, base, browser, check, dialogs, log, online, pageErrors, users,
  q, results, row, rowStatus, shots, step, until, webmailLogin,
} from './panel-lib.mjs';

const carol = new Peer(CAROL);
try {
  await step('carol (slixmpp) logs in; alice and bob log into the webmail', async () => {
    await carol.wait((e) => e.ev === 'ready', 'ready', 30000);
    const [alice, bob] = await Promise.all([
      webmailLogin('alice', ALICE, { width: 1280, height: 800 }),
      webmailLogin('bob', BOB, { width: 1280, height: 800 }),
    ]);
    globalThis.alice = alice;
    globalThis.bob = bob;
    await Promise.all([online(alice), online(bob)]);
    await q(alice, '.launcher').click();
    await q(bob, '.launcher').click();
    await until(async () => (await q(alice, '.list').innerText()).includes('No contacts yet'), 'an empty contact list');
  });
  const { alice, bob } = globalThis;

  await step('alice finds bob in the directory and adds him with groups; he is pending', async () => {
    await q(alice, '.add').click();
    await q(alice, '#add-who').fill('bob');
    await until(async () => (await q(alice, '.add-results li.found:not(.not-chat)').count()) === 1, 'bob in the search results');
    await q(alice, '.add-results li.found').first().click();
    check(await q(alice, '#add-who').inputValue() === `Bob Builder <${BOB}>`, 'the picked value');
    await q(alice, '#add-groups').fill('Team');
    await q(alice, '.add-form button.primary').click();
    await until(async () => await rowStatus(alice, BOB) === 'Invitation sent', 'bob pending in alice\'s list');
  });

  await step('bob sees the invitation and accepts; both see each other online', async () => {
    await until(async () => (await q(bob, '.invites').isVisible()) && (await q(bob, '.invite-list').innerText()).includes('Alice Liddell'), 'the invitation, with alice\'s name, in bob\'s panel');
    await bob.screenshot({ path: path.join(shots, 'panel-desktop-invitation.png') });
    await q(bob, `.invite-list button[data-invite="${ALICE}"][data-accept="1"]`).click();
    await until(async () => await rowStatus(alice, BOB) === 'Available', 'bob Available in alice\'s list');
    await until(async () => (await row(bob, ALICE).count()) === 1 && await rowStatus(bob, ALICE) === 'Available', 'alice Available in bob\'s list');
    check(await q(alice, '.invites').isHidden(), 'alice got an invitation back instead of an automatic acceptance');
  });

  await step('carol invites alice; alice declines and carol is told', async () => {
    carol.send({ cmd: 'subscribe', to: ALICE });
    await until(async () => (await q(alice, '.invite-list').innerText()).includes(CAROL), 'carol\'s invitation');
    await q(alice, `.invite-list button[data-invite="${CAROL}"][data-accept="0"]`).click();
    await carol.wait((e) => e.ev === 'presence' && e.from.startsWith(ALICE) && e.type === 'unsubscribed', 'alice\'s refusal');
    await until(() => q(alice, '.invites').isHidden(), 'the invitation gone after declining');
  });

  await step('without a webmail session the panel asks for a password (SASL PLAIN)', async () => {
    const ctx = await browser.newContext({ ignoreHTTPSErrors: true, viewport: { width: 900, height: 650 } });
    const page = await ctx.newPage();
    page.on('pageerror', (e) => pageErrors.push(`login: ${e.message}`));
    await page.goto(base + '/parley/panel/popout.html');
    const form = page.locator('parley-chat form.login');
    await form.waitFor();
    await form.locator('input[name=address]').fill(BOB);
    await form.locator('input[name=password]').fill('wrong password');
    await form.locator('button[type=submit]').click();
    await until(async () => (await form.locator('.error').innerText()).length > 0, 'the wrong-password error');
    await form.locator('input[name=password]').fill(users[BOB].password);
    await form.locator('button[type=submit]').click();
    await online(page);
    check(await form.isHidden(), 'the login form stays after logging in');
    check(await page.evaluate(() => document.querySelector('parley-chat').client.mechanism) === 'PLAIN', 'not logged in with PLAIN');
    await until(async () => (await page.locator(`parley-chat .list button[data-jid="${ALICE}"] .cname`).innerText()) === 'Alice Liddell', 'bob\'s contacts, with the name from the invitation');
    await page.screenshot({ path: path.join(shots, 'panel-desktop-password-login.png') });
    await ctx.close();
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
