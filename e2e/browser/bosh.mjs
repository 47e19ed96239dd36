// XMPP over BOSH (XEP-0124/XEP-0206) from a real web client: Strophe.js
// in Debian's Chromium, on a page of another origin (so every request is a
// CORS request), finds the BOSH endpoint through XEP-0156 host-meta.json,
// logs alice and bob in with SCRAM, and they chat; then one terminates and
// the other sees her leave. Run by TestBOSHStropheInChromium.
import { chromium } from 'playwright-core';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const env = process.env;
const domain = env.PARLEY_DOMAIN || 'example.test';
const users = Object.fromEntries(JSON.parse(fs.readFileSync(env.PARLEY_USERS, 'utf8')).users.map((u) => [u.address, u.password]));
const strophe = path.join(path.dirname(fileURLToPath(import.meta.url)), 'node_modules', 'strophe.js', 'dist', 'strophe.umd.min.js');

const browser = await chromium.launch({
  executablePath: env.CHROMIUM || '/usr/bin/chromium',
  headless: true,
  args: ['--headless', '--no-sandbox', '--disable-gpu', '--no-first-run', '--disable-background-networking',
    '--disable-component-update', '--disable-sync'],
});
let failed = false;
try {
  const ctx = await browser.newContext({ ignoreHTTPSErrors: true });
  const page = await ctx.newPage();
  page.on('console', (m) => { if (m.type() === 'error' || m.type() === 'warning') console.log('page:', m.text()); });
  page.on('pageerror', (e) => { console.log('page error:', e.message); failed = true; });
  // A page of another origin (localhost, not 127.0.0.1), secure as
  // SCRAM's WebCrypto requires: every BOSH request is cross-origin.
  const other = new URL(env.PARLEY_URL);
  other.hostname = 'localhost';
  other.pathname = '/bosh-client-page';
  await page.goto(other.href);
  await page.setContent('<!doctype html><title>BOSH client</title>');
  await page.addScriptTag({ path: strophe });
  const result = await page.evaluate(async ({ base, domain, alicePw, bobPw }) => {
    const log = [];
    // XEP-0156: the BOSH endpoint from host-meta.json, cross-origin.
    const meta = await (await fetch(new URL('/.well-known/host-meta.json', base))).json();
    const link = meta.links.find((l) => l.rel === 'urn:xmpp:alt-connections:xbosh');
    if (!link) throw new Error('host-meta.json lists no xbosh link: ' + JSON.stringify(meta));
    log.push('BOSH endpoint ' + link.href);
    const { Strophe, $msg, $pres } = window.strophe;
    const connect = (jid, pw) => new Promise((resolve, reject) => {
      const c = new Strophe.Connection(link.href);
      c.inbox = [];
      c.presences = [];
      c.addHandler((m) => { c.inbox.push(m); return true; }, null, 'message');
      c.addHandler((p) => { c.presences.push(p); return true; }, null, 'presence');
      setTimeout(() => reject(new Error(jid + ": not connected within 20s")), 20000);
      c.connect(jid, pw, (status, cond) => {
        if (status === Strophe.Status.CONNECTED) resolve(c);
        if (status === Strophe.Status.CONNFAIL || status === Strophe.Status.AUTHFAIL) reject(new Error(jid + ': ' + Strophe.Status[status] + ' ' + (cond || '')));
      });
      c.ended = new Promise((res) => {
        const prev = c.connect_callback;
        c.connect_callback = (status, cond) => { prev && prev(status, cond); if (status === Strophe.Status.DISCONNECTED) res(); };
      });
    });
    const until = async (what, pred, ms = 10000) => {
      const end = Date.now() + ms;
      while (Date.now() < end) {
        const v = pred();
        if (v) return v;
        await new Promise((r) => setTimeout(r, 50));
      }
      throw new Error('timed out waiting for ' + what);
    };
    const alice = await connect('alice@' + domain + '/strophe', alicePw);
    const bob = await connect('bob@' + domain + '/strophe', bobPw);
    log.push('logged in: ' + alice.jid + ', ' + bob.jid + ' (SASL ' + alice._sasl_mechanism?.mechname + ')');
    alice.send($pres());
    bob.send($pres());
    await until('alice sees bob online', () => alice.presences.find((p) => p.getAttribute('from') === bob.jid && !p.getAttribute('type')));
    alice.send($msg({ to: 'bob@' + domain, type: 'chat' }).c('body').t('hello over BOSH'));
    const m = await until("bob gets alice's message", () => bob.inbox.find((x) => x.querySelector('body')?.textContent === 'hello over BOSH'));
    if (!m.querySelector('stanza-id')) throw new Error('the message has no stanza-id: it was not archived');
    bob.send($msg({ to: alice.jid, type: 'chat' }).c('body').t('and back'));
    await until("alice gets bob's answer", () => alice.inbox.find((x) => x.querySelector('body')?.textContent === 'and back'));
    log.push('messages both ways');
    alice.disconnect('done');
    await until('bob sees alice leave', () => bob.presences.find((p) => p.getAttribute('from') === alice.jid && p.getAttribute('type') === 'unavailable'));
    log.push('terminate: bob saw alice leave');
    bob.disconnect('done');
    return log;
  }, { base: env.PARLEY_URL, domain, alicePw: users['alice@' + domain], bobPw: users['bob@' + domain] });
  for (const l of result) console.log(l);
} catch (e) {
  console.log('FAIL:', e.message);
  failed = true;
} finally {
  await browser.close();
}
if (failed) process.exit(1);
console.log('PASS bosh');
