// XMPP from a real third-party web client: Strophe.js (the library under
// Converse.js) in Debian's Chromium, on a page of another origin (so every
// request is cross-origin), over each of Parley's web transports in turn:
// BOSH (XEP-0124/XEP-0206) and WebSocket (RFC 7395). For each it finds the
// endpoint through XEP-0156 host-meta.json, logs alice and bob in with
// SCRAM (alice with SCRAM-SHA-1 only, as Converse.js and xmpp.js use it),
// refuses a wrong password, and they chat; then one leaves and the other
// sees her go. Run by TestStropheInChromium.
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
  for (const transport of ['bosh', 'websocket']) {
  const result = await page.evaluate(async ({ base, domain, alicePw, bobPw, transport }) => {
    const log = [];
    // XEP-0156: the endpoint from host-meta.json, cross-origin.
    const meta = await (await fetch(new URL('/.well-known/host-meta.json', base))).json();
    const rel = transport === 'bosh' ? 'urn:xmpp:alt-connections:xbosh' : 'urn:xmpp:alt-connections:websocket';
    const link = meta.links.find((l) => l.rel === rel);
    if (!link) throw new Error('host-meta.json lists no ' + rel + ' link: ' + JSON.stringify(meta));
    log.push(transport + ' endpoint ' + link.href);
    const { Strophe, $msg, $pres } = window.strophe;
    const connect = (jid, pw, mechanisms) => new Promise((resolve, reject) => {
      const c = new Strophe.Connection(link.href, mechanisms ? { mechanisms } : {});
      const want = transport === 'bosh' ? Strophe.Bosh : Strophe.Websocket;
      if (!(c._proto instanceof want)) reject(new Error(jid + ': Strophe did not pick ' + transport + ' for ' + link.href));
      c.inbox = [];
      c.presences = [];
      c.addHandler((m) => { c.inbox.push(m); return true; }, null, 'message');
      c.addHandler((p) => { c.presences.push(p); return true; }, null, 'presence');
      setTimeout(() => reject(new Error(jid + ": not connected within 20s")), 20000);
      c.connect(jid, pw, (status, cond) => {
        if (status === Strophe.Status.CONNECTED) resolve(c);
        if (status === Strophe.Status.CONNFAIL || status === Strophe.Status.AUTHFAIL) reject(new Error(jid + ': ' + Object.keys(Strophe.Status).find((k) => Strophe.Status[k] === status) + ' ' + (cond || '')));
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
    // A wrong password is refused, and the user can try again.
    const refused = await connect('alice@' + domain + '/strophe', 'not-' + alicePw).then(() => 'logged in', (e) => e.message);
    if (!/AUTHFAIL/.test(refused)) throw new Error('a wrong password: ' + refused);
    log.push('wrong password: ' + refused.replace(/^.*?: /, ''));
    const alice = await connect('alice@' + domain + '/strophe', alicePw, [Strophe.SASLSHA1]);
    const bob = await connect('bob@' + domain + '/strophe', bobPw);
    const mech = (c) => c._sasl_mechanism?.mechname;
    if (mech(alice) !== 'SCRAM-SHA-1') throw new Error('alice logged in with ' + mech(alice) + ', not SCRAM-SHA-1');
    log.push('logged in: ' + alice.jid + ' (SASL ' + mech(alice) + '), ' + bob.jid + ' (SASL ' + mech(bob) + ')');
    alice.send($pres());
    bob.send($pres());
    await until('alice sees bob online', () => alice.presences.find((p) => p.getAttribute('from') === bob.jid && !p.getAttribute('type')));
    const hello = 'hello over ' + transport;
    alice.send($msg({ to: 'bob@' + domain, type: 'chat' }).c('body').t(hello));
    const m = await until("bob gets alice's message", () => bob.inbox.find((x) => x.querySelector('body')?.textContent === hello));
    if (!m.querySelector('stanza-id')) throw new Error('the message has no stanza-id: it was not archived');
    bob.send($msg({ to: alice.jid, type: 'chat' }).c('body').t('and back'));
    await until("alice gets bob's answer", () => alice.inbox.find((x) => x.querySelector('body')?.textContent === 'and back'));
    log.push('messages both ways');
    alice.disconnect('done');
    await until('bob sees alice leave', () => bob.presences.find((p) => p.getAttribute('from') === alice.jid && p.getAttribute('type') === 'unavailable'));
    log.push('alice left: bob saw her go');
    bob.disconnect('done');
    return log;
  }, { base: env.PARLEY_URL, domain, alicePw: users['alice@' + domain], bobPw: users['bob@' + domain], transport });
  for (const l of result) console.log(l);
  console.log('PASS ' + transport);
  }
} catch (e) {
  console.log('FAIL:', e.message);
  failed = true;
} finally {
  await browser.close();
}
if (failed) process.exit(1);

