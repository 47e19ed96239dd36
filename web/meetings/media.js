// Audio and video of the meeting room, through Parley's SFU (package
// media; the protocol is its SIGNALLING.md). room.js runs the meeting;
// this module joins the SFU with the participant's meeting credential once
// the participant is in, publishes camera and microphone (and a screen
// share), and fills #parley-media with everyone's video.
//
// Moderation goes through the meeting: a moderator's "Mute" or "Remove"
// is a meeting command, which the server enforces in the SFU; "Stop
// video" and recording are the SFU's own moderator messages.
//
// It runs only where the server announces an SFU (media-config.js,
// which Parley's Server serves). window.parleyMedia exposes the live state (the two RTCPeerConnections,
// tracks, people) for tests and debugging. window.parleyMediaOptions, if a
// page or test sets it before this script runs, may replace how the screen
// is captured: {displayMedia: () => Promise<MediaStream>}.
'use strict';

(() => {
  // Webcam quality (the device preferences): capture size and the
  // simulcast layers sent, so the SFU can give each receiver what fits.
  // "low", the default, keeps a laptop's uplink and CPU light.
  const qualities = {
    low: { width: 640, height: 360, frameRate: 24, layers: [
      { rid: 'h', scaleResolutionDownBy: 2, maxBitrate: 150000 },
      { rid: 'f', maxBitrate: 500000 }] },
    medium: { width: 960, height: 540, frameRate: 30, layers: [
      { rid: 'q', scaleResolutionDownBy: 4, maxBitrate: 100000 },
      { rid: 'h', scaleResolutionDownBy: 2, maxBitrate: 300000 },
      { rid: 'f', maxBitrate: 1000000 }] },
    high: { width: 1280, height: 720, frameRate: 30, layers: [
      { rid: 'q', scaleResolutionDownBy: 4, maxBitrate: 150000 },
      { rid: 'h', scaleResolutionDownBy: 2, maxBitrate: 500000 },
      { rid: 'f', maxBitrate: 2000000 }] },
  };
  const options = window.parleyMediaOptions || {};
  // An audio call's link (?media=audio, from the chat panel) joins with
  // the microphone only.
  const audioOnly = options.audioOnly ?? new URLSearchParams(location.search).get('media') === 'audio';

  // Icons (Material Design shapes), drawn as SVG: no emoji font needed.
  const iconPaths = {
    mic: 'M12 14c1.66 0 2.99-1.34 2.99-3L15 5c0-1.66-1.34-3-3-3S9 3.34 9 5v6c0 1.66 1.34 3 3 3zm5.3-3c0 3-2.54 5.1-5.3 5.1S6.7 14 6.7 11H5c0 3.41 2.72 6.23 6 6.72V21h2v-3.28c3.28-.48 6-3.3 6-6.72h-1.7z',
    micOff: 'M19 11h-1.7c0 .74-.16 1.43-.43 2.05l1.23 1.23c.56-.98.9-2.09.9-3.28zm-4.02.17c0-.06.02-.11.02-.17V5c0-1.66-1.34-3-3-3S9 3.34 9 5v.18l5.98 5.99zM4.27 3L3 4.27l6.01 6.01V11c0 1.66 1.33 3 2.99 3 .22 0 .44-.03.65-.08l1.66 1.66c-.71.33-1.5.52-2.31.52-2.76 0-5.3-2.1-5.3-5.1H5c0 3.41 2.72 6.23 6 6.72V21h2v-3.28c.91-.13 1.77-.45 2.54-.9L19.73 21 21 19.73 4.27 3z',
    cam: 'M17 10.5V7c0-.55-.45-1-1-1H4c-.55 0-1 .45-1 1v10c0 .55.45 1 1 1h12c.55 0 1-.45 1-1v-3.5l4 4v-11l-4 4z',
    camOff: 'M21 6.5l-4 4V7c0-.55-.45-1-1-1H9.82L21 17.18V6.5zM3.27 2L2 3.27 4.73 6H4c-.55 0-1 .45-1 1v10c0 .55.45 1 1 1h12c.21 0 .39-.08.54-.18L19.73 21 21 19.73 3.27 2z',
    screen: 'M21 3H3c-1.11 0-2 .89-2 2v14c0 1.11.89 2 2 2h18c1.11 0 2-.89 2-2V5c0-1.11-.89-2-2-2zm0 16.02H3V4.98h18v14.04zM10 12H8l4-4 4 4h-2v4h-4v-4z',
    record: 'M12 7a5 5 0 1 0 0 10a5 5 0 1 0 0-10z',
    stop: 'M7 7h10v10H7z',
    sound: 'M3 9v6h4l5 5V4L7 9H3zm13.5 3c0-1.77-1.02-3.29-2.5-4.03v8.05c1.48-.73 2.5-2.25 2.5-4.02zM14 3.23v2.06c2.89.86 5 3.54 5 6.71s-2.11 5.85-5 6.71v2.06c4.01-.91 7-4.49 7-8.77s-2.99-7.86-7-8.77z',
  };
  function icon(name) {
    const ns = 'http://www.w3.org/2000/svg';
    const svg = document.createElementNS(ns, 'svg');
    svg.setAttribute('viewBox', '0 0 24 24');
    svg.setAttribute('aria-hidden', 'true');
    svg.setAttribute('class', 'icon-svg');
    const path = document.createElementNS(ns, 'path');
    path.setAttribute('d', iconPaths[name]);
    svg.append(path);
    return svg;
  }
  function label(button, iconName, text) {
    button.replaceChildren(icon(iconName), h('span', {}, text));
  }

  const S = {
    credential: '',   // the meeting credential this session joined with
    recordRetried: false,
    started: false,   // joined once; stays true until stopped for good
    stopped: false,
    ws: null,
    session: 0,       // counts connections; stale callbacks check it
    retry: 0,
    pub: null,
    sub: null,
    inbox: Promise.resolve(),
    pubChain: Promise.resolve(),
    pubAnswer: null,
    id: '',           // my participant id
    role: '',         // my role in the SFU
    people: new Map(), // id -> {id, name, role, tracks: Set, muted: Set}
    order: [],
    tracks: new Map(), // sub mid -> track info
    remote: new Map(), // participant -> {mic, camera, screen: MediaStreamTrack, names: {source: track name}}
    local: { stream: null, mic: null, camera: null, screen: null },
    senders: { mic: null, camera: null, screen: null },
    muted: { mic: false, camera: false },
    blocked: { mic: false, video: false },
    recording: false,
    speaker: '',
    prefs: null,
    tiles: new Map(),  // key -> tile element
    audios: new Map(), // participant -> <audio>
    layerSent: new Map(),
    recordRetry: false,
  };

  window.parleyMedia = {
    get pub() { return S.pub; },
    get sub() { return S.sub; },
    get tracks() { return [...S.tracks.values()]; },
    get people() { return [...S.people.values()].map(p => ({ ...p, tracks: [...p.tracks], muted: [...p.muted] })); },
    get participant() { return S.id; },
    get recording() { return S.recording; },
    get speaker() { return S.speaker; },
    get connected() { return !!(S.ws && S.ws.readyState === WebSocket.OPEN && S.id); },
    // How many of our own tracks (mic, camera, screen) are live.
    get sending() { return [S.local.mic, S.local.camera, S.local.screen].filter(t => t && t.readyState === 'live').length; },
    // What a network change does (tests and debugging).
    restartIce() { restartICE('both'); },
  };

  const meetingRole = () => (window.parleyMeeting.participant || {}).role || '';
  const isModerator = () => ['moderator', 'organizer'].includes(meetingRole());
  const meetingAllowsRecording = () => !!(window.parleyMeeting.meeting && window.parleyMeeting.meeting.recording);

  function send(m) {
    if (S.ws && S.ws.readyState === WebSocket.OPEN) S.ws.send(JSON.stringify(m));
  }

  // --- the session ---

  // The server says whether there is an SFU (media-config.js).
  const config = window.parleyMediaConfig;

  function start() {
    if (!config) return;
    const cred = window.parleyMeeting.credential;
    if (S.stopped && cred && cred !== S.credential) {
      // Joined the meeting again (a new credential): a fresh start.
      S.stopped = false;
      S.started = false;
    }
    if (S.started || S.stopped) return;
    S.started = true;
    S.credential = cred;
    S.tiles.clear();
    const grid = $('#parley-media');
    window.parleyMeeting.mediaElement = grid;
    grid.classList.add('media-on');
    grid.replaceChildren();
    if (window.ResizeObserver) new ResizeObserver(() => layout()).observe(grid);
    buildBar();
    connect();
  }

  function wsURL() {
    // The signalling WebSocket, relative to where the meetings area is.
    const u = new URL(config.signalling || '../media/ws', new URL(root, location.href));
    u.protocol = u.protocol === 'https:' ? 'wss:' : 'ws:';
    return u.href;
  }

  function connect() {
    const session = ++S.session;
    const ws = new WebSocket(wsURL());
    S.ws = ws;
    S.id = '';
    ws.onopen = () => ws.send(JSON.stringify({ type: 'join', credential: window.parleyMeeting.credential }));
    ws.onmessage = e => {
      let m;
      try { m = JSON.parse(e.data); } catch (x) { return; }
      // One message at a time: an offer is answered before the
      // candidates that follow it are added.
      S.inbox = S.inbox.then(() => session === S.session && handle(m)).catch(err => console.warn('media:', m.type, err));
    };
    ws.onclose = () => {
      if (session !== S.session || S.stopped) return;
      closePeers();
      setStatus('Reconnecting audio and video…');
      const delay = Math.min(10000, 500 * 2 ** S.retry++);
      setTimeout(() => { if (session === S.session && !S.stopped) connect(); }, delay);
    };
  }

  // rejoin starts a new session at once, keeping the camera and mic: the
  // SFU replaces the old one (a role or the meeting's recording setting
  // changed, which the SFU learns at a join).
  function rejoin() {
    if (!S.started || S.stopped) return;
    const old = S.ws;
    S.session++;
    closePeers();
    if (old) { old.onclose = null; try { old.close(); } catch (e) { /* closed */ } }
    connect();
  }

  function stop(why) {
    if (S.stopped) return;
    S.stopped = true;
    S.session++;
    if (S.ws) {
      try { S.ws.send(JSON.stringify({ type: 'leave' })); } catch (e) { /* closed */ }
      try { S.ws.close(); } catch (e) { /* closed */ }
    }
    closePeers();
    for (const t of [S.local.mic, S.local.camera, S.local.screen]) if (t) t.stop();
    S.local = { stream: null, mic: null, camera: null, screen: null };
    for (const a of S.audios.values()) { a.srcObject = null; a.remove(); }
    S.audios.clear();
    setStatus(why || '');
  }

  function closePeers() {
    for (const pc of [S.pub, S.sub]) if (pc) try { pc.close(); } catch (e) { /* closed */ }
    S.pub = S.sub = null;
    S.senders = { mic: null, camera: null, screen: null };
    S.tracks = new Map();
    S.remote = new Map();
    S.layerSent = new Map();
    S.pubChain = Promise.resolve();
    if (S.pubAnswer) { S.pubAnswer(); S.pubAnswer = null; }
  }

  async function handle(m) {
    switch (m.type) {
      case 'joined': return joined(m);
      case 'offer': return subOffer(m);
      case 'answer':
        if (S.pub) await S.pub.setRemoteDescription({ type: 'answer', sdp: m.sdp });
        if (S.pubAnswer) { S.pubAnswer(); S.pubAnswer = null; }
        return;
      case 'candidate': {
        const pc = m.pc === 'pub' ? S.pub : S.sub;
        if (pc && m.candidate && m.candidate.candidate) await pc.addIceCandidate(m.candidate);
        return;
      }
      case 'event': return onEvent(m);
      case 'removed':
        if (m.reason === 'replaced') stop('Audio and video continue in another window.');
        else stop(m.reason === 'shutdown' ? 'The media service stopped.' : '');
        return;
      case 'error': return onError(m);
    }
  }

  async function joined(m) {
    S.retry = 0;
    S.id = m.participant;
    S.role = m.role;
    S.recording = !!m.recording;
    S.speaker = m.speaker || '';
    S.people = new Map();
    S.order = [];
    for (const p of m.participants || []) addPerson(p);
    const me = S.people.get(S.id);
    S.blocked.mic = false;
    S.blocked.video = false;
    if (me) {
      // What the SFU says of me after a reconnect: a moderator's blocks.
      S.blocked.mic = me.muted.has('mic') && !S.muted.mic;
      S.blocked.video = me.muted.has('camera') && !S.muted.camera;
    }
    const cfg = { iceServers: m.iceServers || [] };
    const session = S.session;
    S.pub = new RTCPeerConnection(cfg);
    S.sub = new RTCPeerConnection(cfg);
    S.pub.onicecandidate = e => { if (e.candidate && session === S.session) send({ type: 'candidate', pc: 'pub', candidate: e.candidate.toJSON() }); };
    S.sub.onicecandidate = e => { if (e.candidate && session === S.session) send({ type: 'candidate', pc: 'sub', candidate: e.candidate.toJSON() }); };
    S.sub.ontrack = () => bindRemote();
    watchICE(S.pub, 'pub', session);
    watchICE(S.sub, 'sub', session);
    setStatus('');
    render();
    renderBar();
    if (S.recordRetry) {
      S.recordRetry = false;
      send({ type: 'record', on: true });
    }
    // Not awaited: the answer to our offer comes through this same inbox.
    publishLocal(session).catch(err => console.warn('media: publishing', err));
  }

  // --- network changes ---

  // watchICE restarts ICE on a connection whose path failed or stayed
  // disconnected (the network changed: Wi-Fi to mobile, a new address),
  // keeping the session, its tracks and the WebSocket.
  function watchICE(pc, which, session) {
    let timer = null;
    pc.addEventListener('iceconnectionstatechange', () => {
      clearTimeout(timer);
      if (session !== S.session) return;
      const st = pc.iceConnectionState;
      if (st === 'failed') restartICE(which);
      else if (st === 'disconnected') {
        timer = setTimeout(() => {
          if (session === S.session && pc.iceConnectionState === 'disconnected') restartICE(which);
        }, 1500);
      }
    });
  }

  // restartICE: "pub" offers new ICE credentials; for "sub", which the SFU
  // offers, we ask it to (SIGNALLING.md, iceRestart).
  function restartICE(which) {
    if (!S.id) return;
    if (which !== 'sub' && S.pub && S.pub.remoteDescription) {
      S.pub.restartIce();
      negotiatePub();
    }
    if (which !== 'pub' && S.sub) send({ type: 'iceRestart' });
  }

  // Back online: restart at once rather than wait for ICE to notice.
  // (navigator.connection's change event is not used: Chromium fires it
  // whenever its estimate of the network's speed moves.)
  window.addEventListener('online', () => restartICE('both'));

  // --- publishing ---

  async function loadPrefs() {
    if (S.prefs) return S.prefs;
    let p = null;
    try { p = await api('GET', 'prefs'); } catch (e) { /* a guest: no stored preferences */ }
    p = p || {};
    p.webcamQuality = p.webcamQuality || localStorage.getItem('parley-webcam-quality') || 'low';
    if (!qualities[p.webcamQuality]) p.webcamQuality = 'low';
    S.prefs = p;
    return p;
  }

  async function capture() {
    const p = await loadPrefs();
    const q = qualities[p.webcamQuality];
    const audio = p.microphone ? { deviceId: { ideal: p.microphone } } : true;
    const video = { width: { ideal: q.width }, height: { ideal: q.height }, frameRate: { ideal: q.frameRate } };
    if (p.camera) video.deviceId = { ideal: p.camera };
    // Both, else whichever there is: a missing camera leaves the voice.
    for (const c of audioOnly ? [{ audio }] : [{ audio, video }, { audio }, { video }]) {
      try { return await navigator.mediaDevices.getUserMedia(c); } catch (e) { /* try less */ }
    }
    toast('No camera or microphone could be opened: you can see and hear the others.', 'error');
    return null;
  }

  async function publishLocal(session) {
    if (!S.local.stream) {
      S.local.stream = await capture();
      if (!S.local.stream) return;
      S.local.mic = S.local.stream.getAudioTracks()[0] || null;
      S.local.camera = S.local.stream.getVideoTracks()[0] || null;
      if (S.local.mic) S.local.mic.enabled = !S.muted.mic;
      if (S.local.camera) S.local.camera.enabled = !S.muted.camera;
    }
    if (session !== S.session || !S.pub) return;
    const q = qualities[S.prefs.webcamQuality];
    if (S.local.mic) S.senders.mic = S.pub.addTransceiver(S.local.mic, { direction: 'sendonly', streams: [S.local.stream] });
    if (S.local.camera) {
      S.senders.camera = S.pub.addTransceiver(S.local.camera, {
        direction: 'sendonly', streams: [S.local.stream], sendEncodings: q.layers.map(l => ({ ...l })),
      });
    }
    if (S.local.screen) {
      S.senders.screen = S.pub.addTransceiver(S.local.screen, { direction: 'sendonly', streams: [S.local.screenStream] });
    }
    for (const src of ['mic', 'camera']) if (S.muted[src]) send({ type: 'mute', source: src, muted: true });
    render();
    renderBar();
    return negotiatePub();
  }

  // negotiatePub offers what we send; offers go one at a time.
  function negotiatePub() {
    const session = S.session;
    S.pubChain = S.pubChain.then(async () => {
      if (session !== S.session || !S.pub) return;
      const offer = await S.pub.createOffer();
      await S.pub.setLocalDescription(offer);
      const sources = {};
      for (const src of ['mic', 'camera', 'screen']) {
        const t = S.senders[src] && S.senders[src].sender.track;
        if (t) sources[t.id] = src;
      }
      const answered = new Promise(resolve => {
        S.pubAnswer = resolve;
        setTimeout(resolve, 10000);
      });
      send({ type: 'offer', pc: 'pub', sdp: S.pub.localDescription.sdp, sources });
      await answered;
    }).catch(err => console.warn('media: publishing', err));
    return S.pubChain;
  }

  // --- receiving ---

  async function subOffer(m) {
    if (m.pc !== 'sub' || !S.sub) return;
    S.tracks = new Map((m.tracks || []).map(t => [t.mid, t]));
    await S.sub.setRemoteDescription({ type: 'offer', sdp: m.sdp });
    await S.sub.setLocalDescription(await S.sub.createAnswer());
    send({ type: 'answer', pc: 'sub', sdp: S.sub.localDescription.sdp });
    bindRemote();
  }

  // bindRemote maps the tracks of the sub connection to participants by
  // m-line, as the SFU's last offer described them.
  function bindRemote() {
    if (!S.sub) return;
    const next = new Map();
    for (const tr of S.sub.getTransceivers()) {
      const info = tr.mid !== null && S.tracks.get(tr.mid);
      if (!info || !tr.receiver.track) continue;
      const r = next.get(info.participant) || { names: {} };
      r[info.source] = tr.receiver.track;
      r.names[info.source] = info.track;
      next.set(info.participant, r);
    }
    S.remote = next;
    render();
  }

  // --- room events ---

  function addPerson(p) {
    if (!S.people.has(p.id)) S.order.push(p.id);
    S.people.set(p.id, { id: p.id, name: p.name, role: p.role, tracks: new Set(p.tracks || []), muted: new Set(p.muted || []) });
  }

  function onEvent(e) {
    const p = S.people.get(e.participant);
    switch (e.event) {
      case 'participantJoined':
        addPerson({ id: e.participant, name: e.name, role: e.role });
        break;
      case 'participantLeft':
        S.people.delete(e.participant);
        S.order = S.order.filter(id => id !== e.participant);
        break;
      case 'trackPublished':
        if (p) {
          p.tracks.add(e.source);
          if (e.muted) p.muted.add(e.source); else p.muted.delete(e.source);
        }
        break;
      case 'trackUnpublished':
        if (p) p.tracks.delete(e.source);
        break;
      case 'role':
        // A role granted mid-meeting (SFU.SetRole): no new join needed.
        if (p) p.role = e.role;
        if (e.participant === S.id) S.role = e.role;
        break;
      case 'mute':
        if (p) {
          if (e.muted) p.muted.add(e.source); else p.muted.delete(e.source);
          if (e.source === 'mic') p.micBlocked = !!e.blocked; else p.videoBlocked = !!e.blocked;
        }
        if (e.participant === S.id) ownMute(e);
        break;
      case 'activeSpeaker':
        S.speaker = e.participant || '';
        break;
      case 'recording':
        if (S.recording !== !!e.recording) {
          // The files arrive with the meeting's file.added events.
          toast(e.recording ? 'This meeting is being recorded.' : 'Recording stopped. The recording will be in the Files tab.');
        }
        S.recording = !!e.recording;
        renderBar();
        break;
    }
    render();
  }

  // ownMute follows a moderator's block of my mic or video.
  function ownMute(e) {
    const video = e.source !== 'mic';
    const was = video ? S.blocked.video : S.blocked.mic;
    if (video) S.blocked.video = !!e.blocked; else S.blocked.mic = !!e.blocked;
    if (e.blocked && !was) {
      if (video) {
        toast('A moderator stopped your video.');
        setMuted('camera', true);
      } else {
        setMuted('mic', true);
      }
    } else if (!e.blocked && was && video) {
      toast('A moderator allowed your video again.');
    }
    renderBar();
  }

  function onError(m) {
    if (m.request === 'join') {
      // Not (or no longer) in the meeting, or it is full: room.js handles
      // the meeting side; audio and video end here.
      if (m.code !== 'shutdown' && m.code !== 'internal') {
        stop(m.code === 'room-full' ? 'The meeting is full: audio and video are not available.' : 'Audio and video are not available.');
      }
      return;
    }
    if (m.request === 'record' && m.code === 'recording-unavailable' && meetingAllowsRecording() && !S.recordRetried) {
      // The meeting allowed recording after we joined: the SFU learns it
      // at a join.
      S.recordRetried = true;
      S.recordRetry = true;
      rejoin();
      return;
    }
    const text = {
      forbidden: 'You are not allowed to do that.',
      'publisher-limit': 'Too many people are sending video in this meeting: yours is not sent.',
      'recording-unavailable': 'Recording is not allowed in this meeting.',
      'not-found': 'That participant is no longer in the meeting.',
    }[m.code] || m.message || 'Audio and video: something went wrong.';
    toast(text, 'error');
  }

  // --- own controls ---

  function setMuted(src, muted) {
    S.muted[src] = muted;
    const t = S.local[src];
    if (t) t.enabled = !muted;
    send({ type: 'mute', source: src, muted });
    render();
    renderBar();
  }

  async function toggleMic() {
    if (!S.local.mic) return toast('No microphone.', 'error');
    if (S.muted.mic) {
      const me = window.parleyMeeting.participant;
      if (S.blocked.mic || (me && me.muted)) {
        // A moderator muted me: unmuting myself goes through the meeting,
        // which lifts the block in the SFU.
        try { await window.parleyMeeting.command({ type: 'unmute' }); } catch (err) { return toast(explain(err), 'error'); }
      }
      setMuted('mic', false);
    } else setMuted('mic', true);
  }

  function toggleCamera() {
    if (!S.local.camera) return toast('No camera.', 'error');
    if (S.muted.camera && S.blocked.video) return toast('A moderator stopped your video.', 'error');
    setMuted('camera', !S.muted.camera);
  }

  async function toggleScreen() {
    if (S.local.screen) return stopScreen();
    if (S.blocked.video) return toast('A moderator stopped your video.', 'error');
    let stream;
    try {
      stream = options.displayMedia ? await options.displayMedia() : await navigator.mediaDevices.getDisplayMedia({ video: { frameRate: { ideal: 15 } }, audio: false });
    } catch (e) {
      return; // the user cancelled the picker
    }
    const track = stream.getVideoTracks()[0];
    if (!track) return;
    if ('contentHint' in track) track.contentHint = 'detail';
    S.local.screen = track;
    S.local.screenStream = stream;
    track.addEventListener('ended', () => { if (S.local.screen === track) stopScreen(); });
    if (S.pub) {
      S.senders.screen = S.pub.addTransceiver(track, { direction: 'sendonly', streams: [stream] });
      negotiatePub();
    }
    render();
    renderBar();
  }

  function stopScreen() {
    const t = S.local.screen;
    S.local.screen = null;
    S.local.screenStream = null;
    if (t) t.stop();
    if (S.pub && S.senders.screen) {
      try { S.pub.removeTrack(S.senders.screen.sender); } catch (e) { /* closed */ }
      S.senders.screen = null;
      negotiatePub();
    }
    render();
    renderBar();
  }

  function toggleRecording() {
    S.recordRetried = false;
    send({ type: 'record', on: !S.recording });
  }

  // --- moderation of others ---

  function moderationItems(id, name) {
    if (!isModerator() || !S.people.has(id) || id === S.id) return [];
    const p = S.people.get(id);
    const items = [];
    const person = (window.parleyMeeting.participants || []).find(x => x.id === id);
    // Only the organizer mutes the organizer (the meeting's rule).
    const mayMute = !(person && person.role === 'organizer' && meetingRole() !== 'organizer');
    if (mayMute && !(person && person.muted) && !p.micBlocked) items.push(['Mute', () => meetingCommand({ type: 'mute', participant: id })]);
    items.push(p.videoBlocked
      ? ['Allow video', () => moderate('allowVideo', id)]
      : ['Stop video', () => moderate('stopVideo', id)]);
    if (!person || person.role !== 'organizer') {
      items.push(['Remove from meeting', () => { if (confirm('Remove ' + name + ' from the meeting?')) meetingCommand({ type: 'remove', participant: id }); }, 'danger']);
    }
    return items;
  }

  function moderate(action, id) {
    if (S.role !== 'moderator') { toast('Your moderator rights are not active yet; try again in a moment.', 'error'); return; }
    send({ type: 'moderate', action, participant: id });
  }

  async function meetingCommand(cmd) {
    try { await window.parleyMeeting.command(cmd); } catch (err) { toast(explain(err), 'error'); }
  }

  // The People list's menu gets "Stop video" too (room.js asks).
  window.parleyMeeting.mediaActions = p => moderationItems(p.id, p.name).filter(([label]) => /video/.test(label));

  // --- the stage ---

  function tileKey(id, source) { return id + '/' + source; }

  function render() {
    if (!S.started) return;
    const grid = $('#parley-media');
    const want = [];
    // Screen shares first, then everyone in order of joining, me first.
    const ids = [S.id, ...S.order.filter(id => id !== S.id)].filter(id => id && S.people.has(id));
    for (const id of ids) {
      const screen = id === S.id ? S.local.screen : (S.remote.get(id) || {}).screen;
      if (screen) want.push({ key: tileKey(id, 'screen'), id, source: 'screen', track: screen });
    }
    for (const id of ids) {
      const track = id === S.id ? S.local.camera : (S.remote.get(id) || {}).camera;
      want.push({ key: tileKey(id, 'camera'), id, source: 'camera', track });
    }
    const keep = new Set(want.map(w => w.key));
    for (const [key, tile] of S.tiles) {
      if (!keep.has(key)) { tile.remove(); S.tiles.delete(key); }
    }
    let prev = null;
    for (const w of want) {
      let tile = S.tiles.get(w.key);
      if (!tile) { tile = makeTile(w); S.tiles.set(w.key, tile); }
      updateTile(tile, w);
      const at = prev ? prev.nextSibling : grid.firstChild;
      if (at !== tile) grid.insertBefore(tile, at);
      prev = tile;
    }
    grid.dataset.count = String(want.length);
    grid.classList.toggle('has-screen', want.some(w => w.source === 'screen'));
    layout();
    renderAudio();
  }

  // layout sizes the tiles to fill the stage without scrolling: a shared
  // screen takes most of it with the cameras in a strip below; otherwise
  // the cameras take the number of columns that makes them largest.
  function layout() {
    const grid = $('#parley-media');
    const cs = getComputedStyle(grid);
    const gap = parseFloat(cs.columnGap) || 10;
    const W = grid.clientWidth - parseFloat(cs.paddingLeft) - parseFloat(cs.paddingRight) - 1;
    const H = grid.clientHeight - parseFloat(cs.paddingTop) - parseFloat(cs.paddingBottom) - 1;
    if (W <= 0 || H <= 0) return;
    const tiles = [...S.tiles.values()];
    const screens = tiles.filter(t => t.classList.contains('screen'));
    const cams = tiles.filter(t => !t.classList.contains('screen'));
    const fit = (n, w, h) => {
      let best = 0;
      for (let c = 1; c <= n; c++) {
        const r = Math.ceil(n / c);
        best = Math.max(best, Math.min((w - gap * (c - 1)) / c, ((h - gap * (r - 1)) / r) * 16 / 9));
      }
      return Math.floor(best);
    };
    if (screens.length) {
      const strip = cams.length ? Math.max(90, Math.min(H * 0.28, 200)) : 0;
      const sh = Math.floor((H - strip - (cams.length ? gap : 0) - gap * (screens.length - 1)) / screens.length);
      for (const t of screens) { t.style.width = W + 'px'; t.style.height = Math.max(120, sh) + 'px'; }
      // The cameras: one row under the screen, as large as it allows.
      const cw = Math.floor(Math.min((W - gap * (cams.length - 1)) / Math.max(1, cams.length), strip * 16 / 9));
      for (const t of cams) { t.style.width = cw + 'px'; t.style.height = ''; }
    } else {
      const w = fit(cams.length, W, H);
      for (const t of cams) { t.style.width = w + 'px'; t.style.height = ''; }
    }
  }

  function makeTile(w) {
    const video = h('video', { autoplay: true, playsinline: true, muted: true });
    video.muted = true;
    const tile = h('div', { class: 'tile media-tile ' + w.source, dataset: { participant: w.id, source: w.source } },
      h('div', { class: 'avatar' }), video,
      h('div', { class: 'name' }, h('span', { class: 'mic', 'aria-hidden': 'true' }), h('span', { class: 'label' })));
    if (w.id === S.id) tile.classList.add('me');
    if (window.ResizeObserver) {
      new ResizeObserver(() => sendLayer(tile)).observe(tile);
    }
    return tile;
  }

  function updateTile(tile, w) {
    const p = S.people.get(w.id);
    const video = $('video', tile);
    // A remote track is muted while no media arrives for it (before its
    // first frame, or while the SFU replaces it): the avatar shows then.
    const live = w.track && w.track.readyState === 'live' && !(w.id !== S.id && w.track.muted);
    const muted = w.source === 'camera' && (p.muted.has('camera') || (w.id === S.id && S.muted.camera));
    // What to ask of the SFU depends on the mute alone: a paused track
    // would never bring the frame that ends "no media yet".
    tile._wanted = !!w.track && !muted;
    const off = !live || muted;
    if ((tile._track || null) !== (w.track || null)) {
      if (w.track) {
        for (const ev of ['mute', 'unmute', 'ended']) w.track.addEventListener(ev, () => render());
        tile._track = w.track;
        tile._stream = new MediaStream([w.track]);
        video.srcObject = tile._stream;
        video.play().catch(() => {});
      } else {
        tile._track = null;
        tile._stream = null;
        video.srcObject = null;
      }
    }
    tile.classList.toggle('video-off', off);
    tile.classList.toggle('speaking', w.source === 'camera' && S.speaker === w.id && S.people.size > 1);
    const micOff = w.id === S.id ? S.muted.mic || S.blocked.mic : p.muted.has('mic') || !p.tracks.has('mic');
    tile.classList.toggle('mic-off', w.source === 'camera' && micOff);
    $('.avatar', tile).textContent = initials(p.name);
    $('.label', tile).textContent = w.source === 'screen'
      ? (w.id === S.id ? 'Your screen' : p.name + '’s screen')
      : p.name + (w.id === S.id ? ' (you)' : '');
    $('.mic', tile).replaceChildren(...(w.source === 'camera' && micOff ? [icon('micOff')] : []));
    tile.dataset.track = w.id === S.id ? '' : ((S.remote.get(w.id) || { names: {} }).names[w.source] || '');
    let btn = $('.tile-menu', tile);
    const items = w.source === 'camera' ? moderationItems(w.id, p.name) : [];
    if (items.length && !btn) {
      btn = h('button', { class: 'icon tile-menu', 'aria-label': 'Actions for ' + p.name, title: 'Actions',
        onclick: e => { e.stopPropagation(); tileMenu(btn, moderationItems(w.id, p.name)); } }, '⋮');
      tile.append(btn);
    } else if (!items.length && btn) btn.remove();
    sendLayer(tile);
  }

  function tileMenu(anchor, items) {
    $$('.menu').forEach(m => m.remove());
    const m = h('div', { class: 'menu', role: 'menu' }, items.map(([label, fn, cls]) =>
      h('button', { role: 'menuitem', class: cls || '', onclick: e => { e.stopPropagation(); m.remove(); fn(); } }, label)));
    anchor.parentElement.append(m);
  }

  // sendLayer tells the SFU how large a remote video is shown, so it sends
  // the smallest simulcast layer that looks sharp; hidden tiles pause.
  function sendLayer(tile) {
    const track = tile.dataset.track;
    if (!track || !S.id) return;
    const r = tile.getBoundingClientRect();
    const dpr = window.devicePixelRatio || 1;
    const msg = r.width && r.height && tile._wanted
      ? { type: 'layer', track, width: Math.round(r.width * dpr), height: Math.round(r.height * dpr) }
      : { type: 'layer', track, paused: true };
    const key = JSON.stringify(msg);
    if (S.layerSent.get(track) === key) return;
    S.layerSent.set(track, key);
    send(msg);
  }

  // renderAudio plays each remote microphone in its own element.
  function renderAudio() {
    let box = $('#media-audio');
    if (!box) { box = h('div', { id: 'media-audio', hidden: true }); document.body.append(box); }
    const want = new Map();
    for (const [id, r] of S.remote) if (r.mic) want.set(id, r.mic);
    for (const [id, a] of S.audios) {
      if (!want.has(id)) { a.srcObject = null; a.remove(); S.audios.delete(id); }
    }
    for (const [id, track] of want) {
      let a = S.audios.get(id);
      if (!a) {
        a = h('audio', { autoplay: true, dataset: { participant: id } });
        box.append(a);
        S.audios.set(id, a);
        if (S.prefs && S.prefs.speakers && a.setSinkId) a.setSinkId(S.prefs.speakers).catch(() => {});
      }
      if (!a.srcObject || a.srcObject.getTracks()[0] !== track) {
        a.srcObject = new MediaStream([track]);
        a.play().catch(() => soundBlocked());
      }
    }
  }

  // Browsers may refuse sound until the user interacts (a reload with a
  // saved credential): one click brings it.
  function soundBlocked() {
    if ($('#media-sound')) return;
    const b = h('button', { id: 'media-sound', class: 'primary', onclick: () => {
      for (const a of S.audios.values()) a.play().catch(() => {});
      b.remove();
    } }, icon('sound'), 'Turn on sound');
    $('#media-bar').prepend(b);
  }

  // --- the control bar and the recording indicator ---

  function buildBar() {
    if ($('#media-bar')) return;
    const note = $('#media-note');
    if (note) note.hidden = true;
    const bar = h('div', { class: 'media-bar', id: 'media-bar', role: 'toolbar', 'aria-label': 'Audio and video' },
      h('span', { class: 'media-status', id: 'media-status' }),
      h('button', { id: 'media-mic', onclick: toggleMic }),
      h('button', { id: 'media-camera', onclick: toggleCamera }),
      h('button', { id: 'media-screen', onclick: toggleScreen }),
      h('button', { id: 'media-record', onclick: toggleRecording, hidden: true }));
    $('.stage').append(bar);
    const badge = h('span', { class: 'badge rec', id: 'media-rec', hidden: true, title: 'This meeting is being recorded' }, 'Recording');
    $('#room-count').after(badge);
    renderBar();
  }

  function renderBar() {
    if (!$('#media-bar')) return;
    const mic = $('#media-mic'), cam = $('#media-camera'), scr = $('#media-screen'), rec = $('#media-record');
    const micOff = S.muted.mic || !S.local.mic;
    label(mic, micOff ? 'micOff' : 'mic', micOff ? 'Unmute' : 'Mute');
    mic.classList.toggle('off', micOff);
    mic.title = S.blocked.mic ? 'A moderator muted you' : (micOff ? 'Turn your microphone on' : 'Turn your microphone off');
    const camOff = S.muted.camera || !S.local.camera;
    label(cam, camOff ? 'camOff' : 'cam', camOff ? 'Start video' : 'Stop video');
    cam.classList.toggle('off', camOff);
    cam.hidden = audioOnly; // an audio call has no camera to start
    label(scr, 'screen', S.local.screen ? 'Stop sharing' : 'Share screen');
    scr.classList.toggle('active', !!S.local.screen);
    rec.hidden = !(isModerator() && (meetingAllowsRecording() || S.recording));
    label(rec, S.recording ? 'stop' : 'record', S.recording ? 'Stop recording' : 'Record');
    rec.classList.toggle('danger', S.recording);
    $('#media-rec').hidden = !S.recording;
  }

  function setStatus(text) {
    const el = $('#media-status');
    if (el) el.textContent = text;
  }

  // --- the meeting's events (room.js) ---

  document.addEventListener('parley:welcome', e => {
    if (e.detail.participant && e.detail.participant.state === 'in') start();
  });
  document.addEventListener('parley:participants', () => {
    if (!S.started) return;
    // My meeting role decides my SFU role; the server passes a change on
    // to the SFU, which tells the room with a 'role' event.
    render();
    renderBar();
  });
  document.addEventListener('parley:settings', () => {
    renderBar();
  });
  document.addEventListener('parley:muted', e => {
    const p = e.detail.participant;
    if (p && window.parleyMeeting.participant && p.id === window.parleyMeeting.participant.id && p.muted && S.local.mic && !S.muted.mic) {
      setMuted('mic', true);
    }
    render();
  });
  document.addEventListener('parley:ended', () => stop(''));
  document.addEventListener('DOMContentLoaded', () => {
    for (const id of ['#leave', '#wait-leave']) {
      const b = $(id);
      if (b) b.addEventListener('click', () => stop(''));
    }
    const q = $('#dev-quality');
    if (q) q.addEventListener('change', () => {
      if (!S.prefs) return;
      S.prefs.webcamQuality = qualities[q.value] ? q.value : 'low';
      const c = qualities[S.prefs.webcamQuality];
      if (S.local.camera) S.local.camera.applyConstraints({ width: { ideal: c.width }, height: { ideal: c.height }, frameRate: { ideal: c.frameRate } }).catch(() => {});
    });
  });
  window.addEventListener('pagehide', () => send({ type: 'leave' }));
})();
