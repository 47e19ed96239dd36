// Sharing files and links in the chat panel, in Chromium, against the
// example host started by panel_files_browser_test.go (with
// -allow-private-links, so that the host may read the link-card page this
// script serves on 127.0.0.1). Alice is at desktop width, Bob at phone
// width:
//
//   - alice drops a PNG (bytes made here, in a DataTransfer) on the
//     conversation: progress, then bob sees its thumbnail, and a click
//     opens the preview page in a new window;
//   - alice sends a text file from Actions (…) → Send a file, by keyboard:
//     bob sees a file link with name and size and a download link;
//   - a file name with markup stays text;
//   - a link gets a card (og:title, og:description) under it at both
//     ends, asked for once per page; a link without a card stays a link;
//   - the Files list of the conversation;
//   - the errors: too large (the limit in MB, both from the advertised
//     limit and from the server's answer), blocked type, storage full.
//
// Environment: as panel.mjs (PARLEY_URL, PARLEY_USERS, PARLEY_DOMAIN,
// PARLEY_SCREENSHOTS, CHROMIUM).

import http from 'node:http';
import path from 'node:path';
import zlib from 'node:zlib';
import {
  ALICE, BOB, browser, check, dialogs, log, online, openConversation, pageErrors, pages, q, results, send, shots, step, until, webmailLogin,
} from './panel-lib.mjs';

// ---- a PNG, made by hand: 480x320, RGB gradient with a diagonal band ----

function crc32(buf) {
  let c = ~0;
  for (const b of buf) {
    c ^= b;
    for (let k = 0; k < 8; k++) c = (c >>> 1) ^ (0xedb88320 & -(c & 1));
  }
  return ~c >>> 0;
}

function chunk(type, data) {
  const out = Buffer.alloc(12 + data.length);
  out.writeUInt32BE(data.length, 0);
  out.write(type, 4, 'latin1');
  data.copy(out, 8);
  out.writeUInt32BE(crc32(out.subarray(4, 8 + data.length)), 8 + data.length);
  return out;
}

function makePNG(w, h, noise = false) {
  const raw = Buffer.alloc((w * 3 + 1) * h);
  for (let y = 0; y < h; y++) {
    const row = y * (w * 3 + 1);
    raw[row] = 0;
    for (let x = 0; x < w; x++) {
      const band = Math.abs(x - y * 1.5) < 30;
      if (noise) {
        for (let k = 1; k <= 3; k++) raw[row + k + x * 3] = Math.random() * 256;
        continue;
      }
      raw[row + 1 + x * 3] = band ? 255 : Math.round((x / w) * 200) + 30;
      raw[row + 2 + x * 3] = band ? 200 : Math.round((y / h) * 160) + 60;
      raw[row + 3 + x * 3] = band ? 40 : 220;
    }
  }
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(w, 0);
  ihdr.writeUInt32BE(h, 4);
  ihdr[8] = 8; // bit depth
  ihdr[9] = 2; // RGB
  return Buffer.concat([Buffer.from([137, 80, 78, 71, 13, 10, 26, 10]), chunk('IHDR', ihdr), chunk('IDAT', zlib.deflateSync(raw)), chunk('IEND', Buffer.alloc(0))]);
}

const png = makePNG(480, 320);

// ---- the linked site: a page with Open Graph tags ----

const site = { hits: {} };
const server = http.createServer((req, res) => {
  site.hits[req.url] = (site.hits[req.url] || 0) + 1;
  if (req.url === '/article') {
    res.writeHead(200, { 'Content-Type': 'text/html; charset=utf-8' });
    res.end(`<!doctype html><html><head><title>fallback title</title>
<meta property="og:title" content="Quarterly report &amp; outlook">
<meta property="og:description" content="Revenue grew 12% while costs stayed flat. <script>alert(1)</script> The full figures are inside.">
<meta property="og:image" content="http://${req.headers.host}/og.png">
<meta property="og:site_name" content="Example News">
</head><body>article</body></html>`);
  } else if (req.url === '/og.png') {
    res.writeHead(200, { 'Content-Type': 'image/png' });
    res.end(png);
  } else {
    res.writeHead(404, { 'Content-Type': 'text/plain' });
    res.end('not found');
  }
});
await new Promise((r) => server.listen(0, '127.0.0.1', r));
const siteURL = `http://127.0.0.1:${server.address().port}`;

// ---- helpers ----

// dropFiles drops files on the conversation as a drag from the desktop
// would: a DataTransfer with File objects, dragenter, dragover and drop
// dispatched in the shadow root. spec: {name, type, b64} (bytes) or
// {name, type, size} (zeros). hold: stop before the drop (the drop hint).
async function dropFiles(page, specs, { hold = false } = {}) {
  await page.evaluate(({ specs, hold }) => {
    const root = document.querySelector('parley-chat').shadowRoot;
    const target = root.querySelector('.log');
    const dt = new DataTransfer();
    for (const s of specs) {
      const bytes = s.b64 ? Uint8Array.from(atob(s.b64), (c) => c.charCodeAt(0)) : new Uint8Array(s.size);
      dt.items.add(new File([bytes], s.name, { type: s.type }));
    }
    const fire = (type) => target.dispatchEvent(new DragEvent(type, { dataTransfer: dt, bubbles: true, composed: true, cancelable: true }));
    fire('dragenter');
    fire('dragover');
    if (!hold) fire('drop');
  }, { specs, hold });
}

const imgLoaded = (loc) => loc.evaluate((img) => img.complete && img.naturalWidth > 0);
const shot = (page, name) => page.screenshot({ path: path.join(shots, name) });

let alice;
let bob;
let imageID = '';
try {
  await step('alice (desktop) and bob (phone) log into the webmail; alice opens the chat with bob', async () => {
    [alice, bob] = await Promise.all([
      webmailLogin('alice', ALICE, { width: 1280, height: 800 }),
      webmailLogin('bob', BOB, { width: 390, height: 844 }),
    ]);
    await Promise.all([online(alice), online(bob)]);
    await q(alice, '.launcher').click();
    await openConversation(alice, BOB);
  });

  await step('Actions (…) offers "Send a file", enabled', async () => {
    await q(alice, '.actions').click();
    const item = q(alice, '.actions-menu [data-action="file"]');
    check(await item.innerText() === 'Send a file', 'no "Send a file" entry');
    check(!(await item.isDisabled()) && (await item.getAttribute('aria-disabled')) === null, '"Send a file" is disabled');
    await shot(alice, 'files-desktop-actions-menu.png');
    await q(alice, '.actions').press('Escape');
  });

  await step('dragging files over the conversation shows the drop zone', async () => {
    await dropFiles(alice, [{ name: 'x.png', type: 'image/png', size: 10 }], { hold: true });
    check(await q(alice, '.drop-hint').isVisible(), 'no drop hint');
    check((await q(alice, '.drop-hint').innerText()).includes('Bob Builder'), 'the drop hint does not name bob');
    await shot(alice, 'files-desktop-drop-zone.png');
    await alice.evaluate(() => {
      const log = document.querySelector('parley-chat').shadowRoot.querySelector('.log');
      log.dispatchEvent(new DragEvent('dragleave', { bubbles: true, composed: true }));
    });
    check(await q(alice, '.drop-hint').isHidden(), 'the drop hint stays after the drag left');
  });

  await step('alice drops a PNG: progress shows while it uploads (throttled), then her message is the thumbnail', async () => {
    // A slow uplink, so that the progress bar can be seen.
    const cdp = await alice.context().newCDPSession(alice);
    await cdp.send('Network.enable');
    await cdp.send('Network.emulateNetworkConditions', { offline: false, latency: 20, downloadThroughput: -1, uploadThroughput: 48 * 1024 });
    const big = makePNG(220, 160, true); // noise: ~100 KB that does not compress, a few seconds at 48 KB/s
    // Cancel stops an upload: no message goes out.
    await dropFiles(alice, [{ name: 'cancel me.png', type: 'image/png', b64: big.toString('base64') }]);
    await until(async () => (await q(alice, '.uploads .upload progress').count()) === 1, 'the progress bar of the upload to cancel');
    await q(alice, '.uploads button[aria-label="Cancel sending cancel me.png"]').click();
    await until(async () => (await q(alice, '.uploads').isHidden()), 'the cancelled upload to go');
    await dropFiles(alice, [{ name: 'chart big.png', type: 'image/png', b64: big.toString('base64') }]);
    await until(async () => (await q(alice, '.uploads .upload progress').count()) === 1, 'the progress bar');
    const seen = await until(async () => {
      const v = await q(alice, '.uploads progress').evaluate((p) => p.value).catch(() => 0);
      return v > 0 && v < 100 ? v : 0;
    }, 'progress between 0 and 100%', 30000).catch(() => 0);
    log(`     progress seen at ${seen}% (${big.length} bytes at 48 KB/s)`);
    await shot(alice, 'files-desktop-upload-progress.png');
    check(/Sending chart big\.png/.test(await q(alice, '.uploads progress').getAttribute('aria-label')), 'the progress bar has no label');
    await cdp.send('Network.emulateNetworkConditions', { offline: false, latency: 0, downloadThroughput: -1, uploadThroughput: -1 });
    await until(async () => (await q(alice, '.uploads').isHidden()), 'the upload to finish', 60000);
    await dropFiles(alice, [{ name: 'photo.png', type: 'image/png', b64: png.toString('base64') }]);
    const thumb = q(alice, '.log .msg.out.attachment .thumb img').last();
    await until(async () => (await q(alice, '.log .msg.out.attachment .thumb img').count()) === 2 && imgLoaded(thumb), 'alice\'s own thumbnail');
    const src = await thumb.getAttribute('src');
    const m = /\/parley\/files\/thumb\/([a-z2-7]{32})$/.exec(src);
    check(m, 'thumbnail src ' + src);
    imageID = m[1];
    check(!(await q(alice, '.log .msg.out.attachment').last().locator('.bubble').count()), 'the bare file link shows a text bubble too');
    check(!(await q(alice, '.log .file-name').allInnerTexts()).includes('cancel me.png'), 'the cancelled file was sent');
  });

  await step('bob (phone) sees the thumbnail, loaded, with name and size; a click opens the preview in a new window', async () => {
    await q(bob, '.launcher').click();
    await openConversation(bob, ALICE);
    const thumb = q(bob, `.log .thumb img[src$="/thumb/${imageID}"]`);
    await until(async () => (await thumb.count()) === 1 && imgLoaded(thumb), 'bob\'s loaded thumbnail');
    const nat = await thumb.evaluate((img) => [img.naturalWidth, img.naturalHeight]);
    check(nat[0] > 0 && nat[0] <= 320, `thumbnail size ${nat}`);
    const file = thumb.locator('xpath=ancestor::div[contains(@class,"file")][1]');
    check((await file.locator('.file-name').innerText()) === 'photo.png', 'the file name');
    await until(async () => /^\d+(\.\d)? KB$/.test(await file.locator('.file-size').innerText()), 'the size in KB');
    const dl = file.locator('a.file-dl');
    check((await dl.getAttribute('href')).endsWith(`/file/${imageID}/photo.png?download=1`) && (await dl.getAttribute('download')) === 'photo.png', 'the download link');
    check((await thumb.getAttribute('alt')) === 'photo.png', 'the thumbnail alt text');
    await shot(bob, 'files-phone-thumbnail.png');
    const [preview] = await Promise.all([bob.context().waitForEvent('page'), thumb.click()]);
    pages.preview = preview;
    await preview.waitForLoadState('load');
    check(preview.url().endsWith(`/parley/files/preview/${imageID}`), 'preview URL ' + preview.url());
    check((await preview.title()) === 'photo.png', 'preview title ' + await preview.title());
    const big = preview.locator('main img');
    await until(() => imgLoaded(big), 'the image on the preview page');
    await preview.setViewportSize({ width: 960, height: 720 });
    await shot(preview, 'files-preview-window.png');
    await preview.close();
    delete pages.preview;
  });

  await step('alice sends a text file with the keyboard: Actions (…) → Send a file → the file picker', async () => {
    await q(alice, '.actions').focus();
    await alice.keyboard.press('Enter');
    await until(async () => await q(alice, '.actions-menu [data-action="file"]').evaluate((b) => b === b.getRootNode().activeElement), 'focus on "Send a file"');
    // Enter on the item itself: a re-render of the menu between the focus
    // check and a page-level key press would send Enter elsewhere.
    const [chooser] = await Promise.all([alice.waitForEvent('filechooser'), q(alice, '.actions-menu [data-action="file"]').press('Enter')]);
    check(chooser.isMultiple(), 'the picker takes one file only');
    await chooser.setFiles({ name: 'meeting notes.txt', mimeType: 'text/plain', buffer: Buffer.from('Agenda\n1. Budget\n2. Hiring\n'.repeat(40)) });
    await until(async () => (await q(bob, '.log .file:not(.image) .file-name').allInnerTexts()).includes('meeting notes.txt'), 'the file link at bob');
    const file = q(bob, '.log .file:not(.image)').last();
    await until(async () => (await file.locator('.file-size').innerText()) === 'TXT file · 1.1 KB', 'name and size at bob: ' + await file.locator('.file-size').innerText().catch(() => ''));
    const open = file.locator('a.file-open');
    check(/\/parley\/files\/preview\/[a-z2-7]{32}$/.test(await open.getAttribute('href')) && (await open.getAttribute('target')) === '_blank', 'the file link opens the preview');
    check((await file.locator('a.file-dl').getAttribute('href')).endsWith('/meeting%20notes.txt?download=1'), 'download link');
    const [preview] = await Promise.all([bob.context().waitForEvent('page'), open.click()]);
    await preview.waitForLoadState('load');
    check((await preview.locator('pre').innerText()).includes('2. Hiring'), 'the text preview');
    await preview.close();
    await shot(bob, 'files-phone-file-link.png');
  });

  await step('a file name with markup stays text', async () => {
    await dropFiles(alice, [{ name: '<img src=x onerror=alert(7)>.txt', type: 'text/plain', b64: Buffer.from('hi').toString('base64') }]);
    await until(async () => (await q(bob, '.log .file-name').allInnerTexts()).some((t) => t.includes('onerror')), 'the odd name at bob');
    const bad = await q(bob, '.log').evaluate((el) => [...el.querySelectorAll('img')].filter((i) => !/\/thumb\//.test(i.getAttribute('src') || '')).length);
    check(bad === 0, `${bad} <img> made from a file name`);
  });

  await step('a link gets a card (og:title, og:description) under it, at both ends; the link still opens a new window', async () => {
    const link = `${siteURL}/article`;
    await send(alice, `Have a look at ${link} before Friday`);
    for (const [who, page] of [['alice', alice], ['bob', bob]]) {
      await until(async () => (await q(page, '.log .card').count()) === 1, `the card at ${who}`);
      const card = q(page, '.log .card');
      check((await card.locator('.card-title').innerText()) === 'Quarterly report & outlook', `${who}: card title`);
      check((await card.locator('.card-desc').innerText()).startsWith('Revenue grew 12% while costs stayed flat.'), `${who}: card description`);
      check((await card.locator('.card-site').innerText()).toLowerCase() === 'example news', `${who}: card site`);
      check((await card.getAttribute('href')) === link && (await card.getAttribute('target')) === '_blank' && (await card.getAttribute('rel')) === 'noopener noreferrer', `${who}: card link`);
      const a = q(page, '.log .bubble a').last();
      check((await a.getAttribute('href')) === link && (await a.getAttribute('target')) === '_blank', `${who}: the link in the text`);
      check(!(await q(page, '.log script').count()), `${who}: a script element in the log`);
    }
    check(site.hits['/article'] >= 1, 'the host never fetched the page');
    // The picture is the linked site's: the webmail's policy (img-src
    // 'self') refuses it, and the card goes without.
    await alice.waitForTimeout(500);
    log(`     card image shown: alice ${await q(alice, '.log .card-img').count()}, bob ${await q(bob, '.log .card-img').count()} (site hits: ${JSON.stringify(site.hits)})`);
    await shot(alice, 'files-desktop-conversation.png');
    await shot(bob, 'files-phone-link-card.png');
  });

  await step('cards are asked for once per URL in the page; a link without a card stays a plain link', async () => {
    const asked = [];
    alice.on('request', (r) => { if (r.url().includes('/parley/api/linkcard')) asked.push(r.url()); });
    await send(alice, `Again: ${siteURL}/article`);
    await until(async () => (await q(alice, '.log .card').count()) === 2, 'a second card');
    await send(alice, `and ${siteURL}/missing`);
    await until(async () => (await q(alice, '.log .bubble a').allInnerTexts()).includes(`${siteURL}/missing`), 'the missing link');
    await until(() => asked.some((u) => u.includes(encodeURIComponent('/missing'))), 'the card request for /missing');
    await alice.waitForTimeout(500);
    check((await q(alice, '.log .card').count()) === 2, 'a card for a page that has none');
    check(!asked.some((u) => u.includes(encodeURIComponent('/article'))), 'the card of /article was asked for again: ' + asked.join(', '));
    // Going to another conversation and back re-renders everything: no
    // new requests either.
    await openConversation(alice, 'carol@' + (ALICE.split('@')[1]));
    await openConversation(alice, BOB);
    await alice.waitForTimeout(300);
    check(asked.length === 1, 'card requests after re-rendering: ' + asked.join(', '));
  });

  await step('the Files list: what alice and bob exchanged, with who shared it and a thumbnail for the image', async () => {
    await q(bob, '.files-toggle').click();
    check(await q(bob, '.files-toggle').getAttribute('aria-expanded') === 'true', 'aria-expanded');
    await until(async () => (await q(bob, '.files-panel .shared').count()) === 4, 'four files in bob\'s list');
    const names = await q(bob, '.files-panel .shared .file-name').allInnerTexts();
    check(names.includes('photo.png') && names.includes('meeting notes.txt') && names.includes('chart big.png'), 'names: ' + names.join(', '));
    const photo = q(bob, '.files-panel .shared').filter({ hasText: 'photo.png' });
    check((await photo.locator('.file-size').innerText()).includes('shared by Alice Liddell'), 'shared by: ' + await photo.locator('.file-size').innerText());
    await until(() => imgLoaded(photo.locator('img')), 'the photo\'s thumbnail in the list');
    await shot(bob, 'files-phone-files-list.png');
    await q(bob, '.files-panel .files-close').click();
    check(await q(bob, '.log').isVisible(), 'the log is back');
    await q(alice, '.files-toggle').click();
    await until(async () => (await q(alice, '.files-panel .shared').count()) === 4, 'four files in alice\'s list');
    check((await q(alice, '.files-panel .shared').filter({ hasText: 'photo.png' }).locator('.file-size').innerText()).includes('shared by you'), 'alice shared it');
    await shot(alice, 'files-desktop-files-list.png');
    await q(alice, '.files-panel').press('Escape');
    check(await q(alice, '.files-panel').isHidden(), 'Escape did not close the file list');
    check(await q(alice, '.files-toggle').evaluate((b) => b === b.getRootNode().activeElement), 'focus did not go back to the Files button');
  });

  await step('errors: too large (limit in MB, ours and the server\'s), blocked type, storage full', async () => {
    const big = 101 * 1024 * 1024;
    await dropFiles(alice, [{ name: 'huge video.mp4', type: 'video/mp4', size: big }]);
    await until(async () => (await q(alice, '.uploads .failed').count()) === 1, 'the too-large error');
    let text = await q(alice, '.uploads .failed .upload-text').innerText();
    check(text === '“huge video.mp4” is too large to send (101 MB): the limit is 100 MB.', 'too large: ' + text);
    await q(alice, '.uploads .failed button').click();
    // Without the advertised limit the server's answer says the same.
    await alice.evaluate(() => {
      const el = document.querySelector('parley-chat');
      el.uploader._service = el.uploader.service().then((s) => ({ ...s, max: 0 }));
    });
    await dropFiles(alice, [{ name: 'huge video.mp4', type: 'video/mp4', size: big }]);
    await until(async () => (await q(alice, '.uploads .failed').count()) === 1, 'the server\'s too-large error');
    text = await q(alice, '.uploads .failed .upload-text').innerText();
    check(text === '“huge video.mp4” is too large to send (101 MB): the limit is 100 MB.', 'too large (server): ' + text);
    await q(alice, '.uploads .failed button').click();
    await dropFiles(alice, [{ name: 'setup.exe', type: 'application/octet-stream', size: 1000 }]);
    await until(async () => (await q(alice, '.uploads .failed').count()) === 1, 'the blocked error');
    text = await q(alice, '.uploads .failed .upload-text').innerText();
    check(text === '“setup.exe” cannot be sent: files of this type are not allowed.', 'blocked: ' + text);
    check(await q(alice, '.uploads .failed').getAttribute('role') === 'alert', 'the error is not an alert');
    await shot(alice, 'files-desktop-error-blocked.png');
    await q(alice, '.uploads .failed button').click();
    // Fill the 1 GiB quota with reserved slots of 100 MiB, then one more.
    await alice.evaluate(async () => {
      const el = document.querySelector('parley-chat');
      for (let i = 0; i < 10; i++) await el.uploader.slot({ name: `reserve${i}.bin`, size: 100 * 1024 * 1024, type: '' });
    });
    await dropFiles(alice, [{ name: 'backup.zip', type: 'application/zip', size: 50 * 1024 * 1024 }]);
    await until(async () => (await q(alice, '.uploads .failed').count()) === 1, 'the quota error');
    text = await q(alice, '.uploads .failed .upload-text').innerText();
    check(/^“backup\.zip” cannot be sent: your file storage is full \(1000 MB of 1 GB used\)\. Delete files you shared, or ask your administrator for more space\.$/.test(text), 'quota: ' + text);
    // The error takes room under the log; the last message stays in view.
    await until(() => q(alice, '.log').evaluate((l) => l.scrollHeight - l.scrollTop - l.clientHeight < 4), 'the log scrolled to its end');
    await shot(alice, 'files-desktop-error-quota.png');
    await q(bob, '.uploads').isHidden().then((h) => check(h, 'alice\'s errors show at bob'));
    await dropFiles(bob, [{ name: 'setup.exe', type: 'application/octet-stream', size: 1000 }]);
    await until(async () => (await q(bob, '.uploads .failed').count()) === 1, 'the blocked error at bob');
    await shot(bob, 'files-phone-error.png');
    await q(bob, '.uploads .failed button').click();
  });

  await step('no page errors and no dialogs', async () => {
    check(pageErrors.length === 0, 'page errors: ' + pageErrors.join('; '));
    check(dialogs.length === 0, 'dialogs: ' + dialogs.join('; '));
  });
} catch {
  process.exitCode = 1;
} finally {
  server.close();
  await browser.close().catch(() => {});
  log(`${results.passed} passed, ${process.exitCode ? 1 : 0} failed`);
}
