// Helpers shared by the panel's browser scenarios (panel.mjs,
// panel-invite.mjs): the environment browser_test.go sets, steps with
// timing and failure screenshots, polling, the slixmpp peer, and webmail
// logins in Chromium.
import { chromium } from 'playwright-core';
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import readline from 'node:readline';

export const env = process.env;
export const base = env.PARLEY_URL;
export const domain = env.PARLEY_DOMAIN || 'example.test';
export const shots = env.PARLEY_SCREENSHOTS || 'screenshots';
export const users = Object.fromEntries(JSON.parse(fs.readFileSync(env.PARLEY_USERS, 'utf8')).users.map((u) => [u.address, u]));
export const ALICE = 'alice@' + domain;
export const BOB = 'bob@' + domain;
export const CAROL = 'carol@' + domain;
export const INVALID = "Invalid value for the name and XMPP address. Please use the format 'Name <username@example.org>'";
fs.mkdirSync(shots, { recursive: true });

export const started = Date.now();
export const results = { passed: 0 };
export const pages = {};
export const dialogs = [];
export const pageErrors = [];

export function log(...a) { console.log(`[${((Date.now() - started) / 1000).toFixed(1)}s]`, ...a); }

export async function until(fn, what, timeout = 15000) {
  const deadline = Date.now() + timeout;
  let last;
  for (;;) {
    try {
      last = await fn();
      if (last) return last;
    } catch (e) {
      last = e;
    }
    if (Date.now() > deadline) throw new Error(`timed out after ${timeout}ms waiting for ${what} (last: ${last instanceof Error ? last.message : JSON.stringify(last)})`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

export function check(cond, message) {
  if (!cond) throw new Error(message);
}

export async function step(name, fn) {
  const t = Date.now();
  try {
    await fn();
    results.passed++;
    log(`ok   ${name} (${Date.now() - t}ms)`);
  } catch (e) {
    log(`FAIL ${name}: ${e.stack || e}`);
    for (const [who, p] of Object.entries(pages)) {
      await p.screenshot({ path: path.join(shots, `panel-failure-${who}.png`) }).catch(() => {});
    }
    throw e;
  }
}

// ---- the slixmpp peer ----

export class Peer {
  constructor(user) {
    this.events = [];
    this.proc = spawn(env.PARLEY_PYTHON || '/usr/bin/python3', [
      path.join(path.dirname(new URL(import.meta.url).pathname), 'slixpeer.py'),
      '--addr', env.PARLEY_XMPP, '--users', env.PARLEY_USERS, '--user', user,
    ], { stdio: ['pipe', 'pipe', 'inherit'] });
    readline.createInterface({ input: this.proc.stdout }).on('line', (line) => {
      try { this.events.push(JSON.parse(line)); } catch { log('slixpeer:', line); }
    });
  }

  send(cmd) { this.proc.stdin.write(JSON.stringify(cmd) + '\n'); }

  async wait(pred, what, timeout = 15000) {
    return until(() => {
      const i = this.events.findIndex(pred);
      if (i < 0) return null;
      return this.events.splice(i, 1)[0];
    }, `slixmpp: ${what}`, timeout);
  }

  quit() { try { this.send({ cmd: 'quit' }); } catch { /* gone */ } setTimeout(() => this.proc.kill(), 2000).unref(); }
}

// ---- browser users ----

export const browser = await chromium.launch({
  executablePath: env.CHROMIUM || '/usr/bin/chromium',
  args: ['--headless', '--no-sandbox', '--disable-gpu', '--no-first-run', '--disable-background-networking',
    '--disable-component-update', '--disable-sync', '--use-fake-ui-for-media-stream', '--use-fake-device-for-media-stream',
    // Calls: gather on the loopback interface too, where the example host's
    // SFU listens (panel_calls.mjs checks the selected candidate pairs).
    '--allow-loopback-in-peer-connection'],
});

// webmailLogin logs address into the toy webmail in a new browser context
// (init: a script run in every page of it before the page's own).
export async function webmailLogin(who, address, viewport, { init } = {}) {
  const ctx = await browser.newContext({ ignoreHTTPSErrors: true, viewport });
  if (init) await ctx.addInitScript(init);
  const page = await ctx.newPage();
  pages[who] = page;
  page.on('dialog', (d) => { dialogs.push(`${who}: ${d.type()} ${d.message()}`); d.dismiss().catch(() => {}); });
  page.on('pageerror', (e) => pageErrors.push(`${who}: ${e.message}`));
  page.on('console', (m) => { if (m.type() === 'error' && !/favicon/.test(m.location()?.url || '')) log(`${who} console error:`, m.text()); });
  if (env.PARLEY_TRACE) {
    // PARLEY_TRACE=1: every XMPP frame, for debugging.
    page.on('websocket', (ws) => {
      ws.on('framesent', (f) => log(`${who} >>`, String(f.payload).slice(0, 400)));
      ws.on('framereceived', (f) => log(`${who} <<`, String(f.payload).slice(0, 400)));
    });
  }
  await page.goto(base + '/');
  await page.fill('input[name=address]', address);
  await page.fill('input[name=password]', users[address].password);
  await Promise.all([page.waitForURL(base + '/'), page.click('button[type=submit]')]);
  await page.locator('parley-chat .launcher').waitFor();
  // Record the element's events for the checks below.
  await page.evaluate(() => {
    const el = document.querySelector('parley-chat');
    window.__parley = { unread: [], status: [] };
    el.addEventListener('parley-unread', (e) => window.__parley.unread.push(e.detail.count));
    el.addEventListener('parley-status', (e) => window.__parley.status.push(e.detail));
  });
  return page;
}

export const q = (page, sel) => page.locator('parley-chat ' + sel);
export const row = (page, jid) => q(page, `.list button.contact[data-jid="${jid}"]`);
export const logText = (page) => q(page, '.log').innerText();
export const rowStatus = (page, jid) => row(page, jid).locator('.cstatus').innerText();

export async function online(page) {
  await until(() => page.evaluate(() => document.querySelector('parley-chat').client?.state === 'online'), 'the panel to be online');
}

export async function openConversation(page, jid) {
  const narrow = await q(page, '.panel').evaluate((el) => el.classList.contains('narrow'));
  if (narrow && await q(page, '.side').isHidden()) await q(page, '.burger').click();
  await row(page, jid).click();
  await until(async () => (await q(page, '.peer-status').innerText()).includes(jid), `the conversation with ${jid}`);
}

export async function send(page, text) {
  await q(page, '.compose textarea').fill(text);
  await q(page, '.compose textarea').press('Enter');
}

export async function setStatus(page, label) {
  await q(page, '.me').click();
  await q(page, `.status-menu [role=menuitemradio]:text-is("${label}")`).click();
}

