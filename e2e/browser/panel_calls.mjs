// Calls from the chat panel, and notifications, in Chromium against the
// example host (panel_calls_browser_test.go starts it with the SFU on a
// free UDP port on 127.0.0.1). Alice (desktop) starts a video call from Actions (…): the link
// is posted in the chat and her room opens over the page (the seed
// products lay the video window over the chat); Bob (phone width) sees
// the call card in his panel, opens it over his page, and both rooms
// decode each other's video and audio through Parley's SFU. The room
// minimises to a bar and back; leaving closes it. Then an audio call:
// no camera is captured or sent, and audio flows both ways. Carol
// (slixmpp) gets a call link as a plain body with a XEP-0482 invite.
// Last, desktop notifications and the title badge while the tab is
// hidden, and none while it is visible. Chromium's fake devices are the
// cameras and microphones; window.Notification is a recording stub.
//
// Environment: as panel.mjs.

import path from 'node:path';
import {
  ALICE, BOB, CAROL, Peer, base, browser, check, dialogs, log, logText, online, openConversation, pageErrors,
  q, results, send, shots, step, until, webmailLogin,
} from './panel-lib.mjs';

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// A stub of the browser's Notification that records what would show.
function notificationStub() {
  window.__notes = [];
  window.Notification = class {
    static get permission() { return 'granted'; }
    static requestPermission() { return Promise.resolve('granted'); }
    constructor(title, options = {}) { window.__notes.push({ title, body: options.body, tag: options.tag }); }
    close() {}
  };
}

function hide(page, hidden) {
  return page.evaluate((hidden) => {
    if (hidden) {
      Object.defineProperty(document, 'visibilityState', { configurable: true, get: () => 'hidden' });
      Object.defineProperty(document, 'hidden', { configurable: true, get: () => true });
    } else {
      delete document.visibilityState;
      delete document.hidden;
    }
    document.dispatchEvent(new Event('visibilitychange'));
  }, hidden);
}

// What a room page receives and sends, from getStats: per remote track
// ("<participant>/<source>") the inbound counters, and the kinds of the
// tracks it sends.
async function roomStats(page) {
  return page.evaluate(async () => {
    const pm = window.parleyMedia;
    const inbound = {};
    if (pm.sub) {
      const tracks = new Map(pm.tracks.map((t) => [t.mid, t]));
      for (const tr of pm.sub.getTransceivers()) {
        const info = tracks.get(tr.mid);
        if (!info) continue;
        (await tr.receiver.getStats()).forEach((s) => {
          if (s.type !== 'inbound-rtp') return;
          inbound[info.participant + '/' + info.source] = {
            kind: s.kind, framesDecoded: s.framesDecoded || 0, bytesReceived: s.bytesReceived || 0,
            frameWidth: s.frameWidth || 0, frameHeight: s.frameHeight || 0, totalAudioEnergy: s.totalAudioEnergy || 0,
          };
        });
      }
    }
    const sending = pm.pub ? pm.pub.getSenders().filter((s) => s.track).map((s) => s.track.kind) : [];
    return { inbound, sending, me: pm.participant };
  });
}

// growth: the inbound counters' increase over ms.
async function growth(page, ms) {
  const a = await roomStats(page);
  await sleep(ms);
  const b = await roomStats(page);
  const out = {};
  for (const [k, v] of Object.entries(b.inbound)) {
    const p = a.inbound[k] || {};
    out[k] = { ...v, frames: v.framesDecoded - (p.framesDecoded || 0), bytes: v.bytesReceived - (p.bytesReceived || 0) };
  }
  return { tracks: out, sending: b.sending, me: b.me };
}

// onLoopback checks, with getStats, that the candidate pair ICE selected
// for each of the room's two connections (publishing and subscribing) is
// 127.0.0.1 at both ends: media stays on loopback.
async function onLoopback(room, who) {
  const pairs = await room.evaluate(async () => {
    const out = {};
    for (const [name, pc] of [['pub', window.parleyMedia.pub], ['sub', window.parleyMedia.sub]]) {
      if (!pc) continue;
      const byId = new Map();
      (await pc.getStats()).forEach((s) => byId.set(s.id, s));
      const t = [...byId.values()].find((s) => s.type === 'transport' && s.selectedCandidatePairId);
      const p = t && byId.get(t.selectedCandidatePairId);
      const l = p && byId.get(p.localCandidateId);
      const r = p && byId.get(p.remoteCandidateId);
      out[name] = { local: l && (l.address || l.ip), remote: r && (r.address || r.ip), bytes: p ? p.bytesSent + p.bytesReceived : 0 };
    }
    return out;
  });
  for (const name of ['pub', 'sub']) {
    const c = pairs[name];
    check(c && c.local === '127.0.0.1' && c.remote === '127.0.0.1' && c.bytes > 0, `${who}'s ${name} connection is not on 127.0.0.1 at both ends: ${JSON.stringify(pairs)}`);
  }
  log(`  ${who}: selected pairs pub ${pairs.pub.local} <-> ${pairs.pub.remote}, sub ${pairs.sub.local} <-> ${pairs.sub.remote}`);
}

// roomFrame waits for the call laid over page and returns the room's
// frame once it shows the join link.
async function roomFrame(page, who) {
  const el = q(page, '.call-overlay iframe.call-frame');
  let frame = null;
  await until(async () => {
    if (await el.count() !== 1) return false;
    frame = await (await el.elementHandle()).contentFrame();
    return frame && frame.url().includes('/meetings/j/');
  }, `${who}'s call over the page`, 20000);
  return frame;
}

// overlayGone waits until page shows no call any more.
const overlayGone = (page, who) => until(async () => (await q(page, '.call-overlay').count()) === 0, `${who}'s call to close`);

// joinRoom clicks Join on a room page and waits until it is in the SFU.
async function joinRoom(page, who) {
  await page.locator('#join-button').waitFor({ state: 'visible', timeout: 20000 });
  await page.click('#join-button');
  await page.locator('#screen-room').waitFor({ state: 'visible', timeout: 20000 });
  await until(() => page.evaluate(() => window.parleyMedia && window.parleyMedia.connected), `${who} in the SFU`, 20000);
  return page.evaluate(() => window.parleyMedia.participant);
}

// decodes checks, once over two seconds, that page decodes the other's
// video (frames growing) and receives their audio (bytes growing). No
// retry: a freeze must fail the test.
async function decodes(page, who, other, { video }) {
  const g = await growth(page, 2000);
  const cam = g.tracks[other + '/camera'];
  const mic = g.tracks[other + '/mic'];
  if (video) {
    check(cam && cam.frames >= 10, `${who} decodes no video from the other side: ${JSON.stringify(cam)} (all: ${JSON.stringify(g.tracks)})`);
  } else {
    check(!cam, `${who} receives video in an audio call: ${JSON.stringify(cam)}`);
  }
  check(mic && mic.bytes > 500, `${who} receives no audio from the other side: ${JSON.stringify(mic)}`);
  log(`  ${who}: ` + (video ? `${cam.frames} frames/2 s at ${cam.frameWidth}x${cam.frameHeight}, ` : '') + `audio +${mic.bytes} bytes/2 s; sends ${g.sending.join('+')}`);
  return g;
}

const carol = new Peer(CAROL);
let alice;
let bob;
try {
  await step('carol (slixmpp) logs in; alice (desktop) and bob (phone) log into the webmail', async () => {
    await carol.wait((e) => e.ev === 'ready', 'ready', 30000);
    [alice, bob] = await Promise.all([
      webmailLogin('alice', ALICE, { width: 1280, height: 800 }, { init: notificationStub }),
      webmailLogin('bob', BOB, { width: 390, height: 844 }, { init: notificationStub }),
    ]);
    await Promise.all([online(alice), online(bob)]);
    await q(alice, '.launcher').click();
    await q(bob, '.launcher').click();
    await openConversation(alice, BOB);
    await openConversation(bob, ALICE);
  });

  await step('Actions (…) offers Audio call and Video call, enabled', async () => {
    await q(alice, '.actions').click();
    for (const a of ['audio', 'video']) {
      const b = q(alice, `.actions-menu [data-action="${a}"]`);
      check(await b.isEnabled(), `${a} call is disabled`);
    }
    await alice.screenshot({ path: path.join(shots, 'calls-desktop-actions-menu.png') });
    await alice.keyboard.press('Escape');
  });

  await step('a call cannot be started without a webmail session (401)', async () => {
    const ctx = await browser.newContext({ ignoreHTTPSErrors: true });
    const p = await ctx.newPage();
    await p.goto(base + '/parley/panel/popout.html').catch(() => {});
    const r = await p.evaluate(async (u) => {
      const res = await fetch(u, { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify({ contact: 'bob@example.test', call: 'video' }) });
      return res.status;
    }, base + '/parley/meetings/api/start');
    check(r === 401, 'status ' + r);
    await ctx.close();
  });

  let link = '';
  let aliceRoom;
  let bobRoom;
  await step('alice starts a video call: the link is posted, her room opens over the page', async () => {
    const popups = alice.context().pages().length;
    await q(alice, '.actions').click();
    await q(alice, '.actions-menu [data-action="video"]').click();
    aliceRoom = await roomFrame(alice, 'alice');
    await until(async () => (await logText(alice)).includes('Alice Liddell started a video call.'), 'the call message at alice');
    const a = q(alice, '.log .msg.out .bubble a').last();
    link = await a.getAttribute('href');
    check(/\/parley\/meetings\/j\/[A-Za-z0-9_-]{16,}$/.test(link), 'link ' + link);
    await until(() => aliceRoom.url() === link, `alice's call to show ${link} (at ${aliceRoom.url()})`);
    check(alice.context().pages().length === popups, 'a window opened besides the call over the page');
    check((await q(alice, '.call-overlay').getAttribute('aria-label')) === 'Video call', 'the call dialog has no label');
    const card = q(alice, '.log .call-card[data-call="video"]').last();
    await until(async () => (await card.locator('.card-title').innerText()) === 'Video call: Alice Liddell and Bob Builder', 'the call card at alice');
    await alice.screenshot({ path: path.join(shots, 'calls-desktop-video-posted.png') });
  });

  await step('bob\'s panel shows the call card; clicking it opens the room over his page', async () => {
    await until(async () => (await q(bob, '.log .msg.in .bubble a').allInnerTexts()).includes(link), 'the link at bob');
    const card = q(bob, '.log .call-card[data-call="video"]').last();
    await until(async () => (await card.locator('.card-title').innerText()) === 'Video call: Alice Liddell and Bob Builder', 'the call card\'s title at bob');
    check((await card.getAttribute('href')) === link && (await card.getAttribute('target')) === '_blank', 'bob\'s card link');
    check((await card.locator('.card-site').textContent()) === 'Video call', 'card kind: ' + await card.locator('.card-site').textContent());
    await bob.screenshot({ path: path.join(shots, 'calls-phone-video-card.png') });
    check((await card.getAttribute('aria-label')).endsWith('over the page'), 'card label ' + await card.getAttribute('aria-label'));
    await card.click();
    bobRoom = await roomFrame(bob, 'bob');
    check(bobRoom.url() === link, 'bob\'s room ' + bobRoom.url());
  });

  const ids = {};
  await step('both join; each decodes the other\'s video and receives their audio (getStats)', async () => {
    ids.alice = await joinRoom(aliceRoom, 'alice');
    ids.bob = await joinRoom(bobRoom, 'bob');
    await until(() => aliceRoom.evaluate((id) => window.parleyMedia.tracks.some((t) => t.participant === id && t.source === 'camera'), ids.bob), 'bob\'s camera track at alice', 20000);
    await until(() => bobRoom.evaluate((id) => window.parleyMedia.tracks.some((t) => t.participant === id && t.source === 'camera'), ids.alice), 'alice\'s camera track at bob', 20000);
    await sleep(1500);
    const a = await decodes(aliceRoom, 'alice', ids.bob, { video: true });
    const b = await decodes(bobRoom, 'bob', ids.alice, { video: true });
    check(a.sending.includes('video') && b.sending.includes('video'), 'a side sends no video in a video call');
    // Frames keep coming: a second window two seconds later.
    await decodes(aliceRoom, 'alice', ids.bob, { video: true });
    await decodes(bobRoom, 'bob', ids.alice, { video: true });
    await onLoopback(aliceRoom, 'alice');
    await onLoopback(bobRoom, 'bob');
    await alice.screenshot({ path: path.join(shots, 'calls-desktop-video-room.png') });
    await bob.screenshot({ path: path.join(shots, 'calls-phone-video-room.png') });
  });

  await step('alice minimises the call to a bar over her webmail: she still hears bob; back to full size, his video again', async () => {
    await aliceRoom.click('#minimise');
    await until(async () => (await q(alice, '.call-overlay').getAttribute('class')).includes('minimised'), 'the minimised call');
    const box = await q(alice, '.call-overlay').boundingBox();
    check(box.height <= 140 && box.width <= 540, 'minimised call box ' + JSON.stringify(box));
    await alice.screenshot({ path: path.join(shots, 'calls-desktop-minimised.png') });
    // No video tile is shown, so the SFU stops sending video (it sends by
    // displayed size); the audio goes on.
    await sleep(1500);
    const g = await growth(aliceRoom, 2000);
    const mic = g.tracks[ids.bob + '/mic'];
    check(mic && mic.bytes > 500, 'alice hears nothing while minimised: ' + JSON.stringify(g.tracks));
    log(`  alice (minimised): audio +${mic.bytes} bytes/2 s, video +${g.tracks[ids.bob + '/camera']?.frames ?? 0} frames`);
    await aliceRoom.click('#minimise');
    await until(async () => !(await q(alice, '.call-overlay').getAttribute('class')).includes('minimised'), 'the call back to full size');
    await sleep(1500);
    await decodes(aliceRoom, 'alice (full size again)', ids.bob, { video: true });
  });

  await step('alice leaves (her call closes itself); bob closes his with ✕', async () => {
    await aliceRoom.click('#leave');
    await overlayGone(alice, 'alice');
    await q(bob, '.call-close').click();
    await overlayGone(bob, 'bob');
  });

  await step('bob starts an audio call: the ?media=audio link; both join without camera and hear each other', async () => {
    await q(bob, '.actions').click();
    await q(bob, '.actions-menu [data-action="audio"]').click();
    bobRoom = await roomFrame(bob, 'bob');
    await until(async () => (await logText(bob)).includes('Bob Builder started an audio call.'), 'the audio call message at bob');
    const alink = await q(bob, '.log .msg.out .bubble a').last().getAttribute('href');
    check(/\/parley\/meetings\/j\/[A-Za-z0-9_-]{16,}\?media=audio$/.test(alink), 'audio link ' + alink);
    await until(() => bobRoom.url() === alink, 'bob\'s audio call');
    const card = q(alice, '.log .call-card[data-call="audio"]').last();
    await until(async () => (await card.locator('.card-title').innerText()) === 'Audio call: Bob Builder and Alice Liddell', 'the audio call card at alice');
    await alice.screenshot({ path: path.join(shots, 'calls-desktop-audio-card.png') });
    await card.click();
    aliceRoom = await roomFrame(alice, 'alice');
    const a = await joinRoom(aliceRoom, 'alice');
    const b = await joinRoom(bobRoom, 'bob');
    await until(() => aliceRoom.evaluate((id) => window.parleyMedia.tracks.some((t) => t.participant === id && t.source === 'mic'), b), 'bob\'s mic track at alice', 20000);
    await until(() => bobRoom.evaluate((id) => window.parleyMedia.tracks.some((t) => t.participant === id && t.source === 'mic'), a), 'alice\'s mic track at bob', 20000);
    await sleep(1500);
    const ga = await decodes(aliceRoom, 'alice', b, { video: false });
    const gb = await decodes(bobRoom, 'bob', a, { video: false });
    check(!ga.sending.includes('video') && !gb.sending.includes('video'), `a video sender in an audio call: alice ${ga.sending}, bob ${gb.sending}`);
    check(ga.sending.includes('audio') && gb.sending.includes('audio'), 'no audio sender');
    await onLoopback(aliceRoom, 'alice');
    await onLoopback(bobRoom, 'bob');
    const cams = await aliceRoom.evaluate(() => window.parleyMedia.tracks.filter((t) => t.source === 'camera').length);
    check(cams === 0, cams + ' camera tracks in an audio call');
    check(await aliceRoom.locator('#media-camera').isHidden() && await bobRoom.locator('#media-camera').isHidden(), 'a camera button in an audio call');
    check(await aliceRoom.locator('#media-mic').isVisible(), 'no microphone button in an audio call');
    await alice.screenshot({ path: path.join(shots, 'calls-desktop-audio-room.png') });
    await bob.screenshot({ path: path.join(shots, 'calls-phone-audio-room.png') });
    await aliceRoom.click('#leave');
    await bobRoom.click('#leave');
    await overlayGone(alice, 'alice');
    await overlayGone(bob, 'bob');
  });

  await step('a third-party client (carol, slixmpp) gets the call link as a body, with a XEP-0482 invite', async () => {
    await openConversation(alice, CAROL);
    await q(alice, '.actions').click();
    await q(alice, '.actions-menu [data-action="video"]').click();
    await roomFrame(alice, 'alice');
    const m = await carol.wait((e) => e.ev === 'message' && e.from === ALICE && e.body.includes('started a video call'), 'the call message');
    const u = /https:\/\/\S+\/meetings\/j\/[A-Za-z0-9_-]+/.exec(m.body)?.[0];
    check(u && m.body === `Alice Liddell started a video call.\nJoin: ${u}`, 'body ' + JSON.stringify(m.body));
    check(m.xml.includes('urn:xmpp:call-invites:0') && m.xml.includes(`uri="${u}"`) && m.xml.includes('video="true"'), 'no call invite: ' + m.xml);
    await q(alice, '.call-close').click();
    await overlayGone(alice, 'alice');
  });

  await step('tab hidden: a new message raises a desktop notification with the sender and text, and the title shows the unread count', async () => {
    await openConversation(alice, BOB);
    await alice.evaluate(() => { window.__notes.length = 0; });
    const title = await alice.title();
    await hide(alice, true);
    await send(bob, 'are you still there?');
    await until(() => alice.evaluate(() => window.__notes.length > 0), 'a notification at alice');
    const notes = await alice.evaluate(() => window.__notes);
    check(notes.length === 1 && notes[0].title === 'Bob Builder' && notes[0].body === 'are you still there?', 'notifications ' + JSON.stringify(notes));
    await until(async () => (await alice.title()) === `(1) ${title}`, 'title badge (1)');
    await send(bob, 'hello?');
    await until(async () => (await alice.title()) === `(2) ${title}`, 'title badge (2)');
    check((await alice.evaluate(() => window.__notes.length)) === 2, 'no notification for the second message');
    await hide(alice, false);
    await until(async () => (await alice.title()) === title, 'the title badge cleared when the tab shows again');
  });

  await step('tab visible: no notification, no title badge', async () => {
    await alice.evaluate(() => { window.__notes.length = 0; });
    const title = await alice.title();
    await send(bob, 'one more while you look');
    await until(async () => (await logText(alice)).includes('one more while you look'), 'the message at alice');
    await sleep(500);
    check((await alice.evaluate(() => window.__notes.length)) === 0, 'a notification while visible: ' + JSON.stringify(await alice.evaluate(() => window.__notes)));
    check((await alice.title()) === title, 'title changed while visible: ' + await alice.title());
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
