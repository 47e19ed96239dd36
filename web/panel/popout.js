// The pop-out window hosts <parley-chat mode="full"> on its own page. The
// opener passes the endpoint, the domain and the open conversation in the
// query string; only a WebSocket URL on this page's own host is taken, so
// that a crafted link cannot point the panel at another server.
const params = new URLSearchParams(location.search);
const el = document.querySelector('parley-chat');
const endpoint = params.get('endpoint');
if (endpoint) {
  try {
    const u = new URL(endpoint, location.href);
    if ((u.protocol === 'wss:' || u.protocol === 'ws:') && u.host === location.host) el.setAttribute('endpoint', u.href);
  } catch { /* keep the default */ }
}
if (params.get('domain')) el.setAttribute('domain', params.get('domain'));

// The attributes are set before the element is defined, so that it
// connects once, to the right place.
await import('./parley-chat.js');
const withJID = params.get('with');
// history=<start>/<end>: one past chat session, opened from the panel's
// History (the seed products open it "in a new window").
const session = /^([^/]+)\/([^/]+)$/.exec(params.get('history') || '');
if (withJID && /^[^@\s/]+@[^@\s/]+$/.test(withJID)) {
  if (session && !Number.isNaN(Date.parse(session[1])) && !Number.isNaN(Date.parse(session[2]))) {
    document.title = 'Chat history';
    el.openHistory(withJID, { start: session[1], end: session[2] });
  } else {
    el.openChat(withJID);
  }
}
