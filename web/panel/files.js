// Sharing files and links in the chat panel: Parley's download links
// (recognised, never trusted as markup), HTTP File Upload (XEP-0363: the
// upload service found by service discovery, a slot, then a PUT with
// progress), file sizes, and link cards from the server's Open Graph
// reader. Everything here returns data; parley-chat.js builds the DOM,
// with textContent only.

import { x, child, children, childText, StanzaError } from './xmpp.js';

export const NS_UPLOAD = 'urn:xmpp:http:upload:0';
export const NS_OOB = 'jabber:x:oob';
const NS_ITEMS = 'http://jabber.org/protocol/disco#items';
const NS_INFO = 'http://jabber.org/protocol/disco#info';
const NS_DATA = 'jabber:x:data';

// A file ID of Parley's file service: 32 characters of base32.
const FILE_ID = /^[a-z2-7]{32}$/;
// Images the server makes thumbnails of.
const THUMBNAILED = /\.(png|jpe?g|gif|webp)$/i;

// ---- sizes ----

// formatSize: 1234567 -> "1.2 MB" (units of 1024, as file managers show).
export function formatSize(n) {
  if (!Number.isFinite(n) || n < 0) return '';
  if (n < 1024) return `${n} byte${n === 1 ? '' : 's'}`;
  const units = ['KB', 'MB', 'GB', 'TB'];
  let v = n / 1024;
  let i = 0;
  while (v >= 1024 && i < units.length - 1) { v /= 1024; i++; }
  return `${v >= 100 || Number.isInteger(v) ? Math.round(v) : v.toFixed(1)} ${units[i]}`;
}

// formatMB: a limit in bytes as megabytes: 104857600 -> "100 MB".
export function formatMB(n) {
  const mb = n / (1024 * 1024);
  return `${mb >= 10 || Number.isInteger(mb) ? Math.round(mb) : Number(mb.toFixed(1))} MB`;
}

// ---- download links ----

// FileLinks recognises the download links of Parley's file service
// (<base>file/<id>/<name>) and derives the others from the ID:
// <base>thumb/<id>, <base>preview/<id>, the download with ?download=1.
export class FileLinks {
  constructor(...bases) {
    this.bases = new Map(); // href -> URL
    for (const b of bases) this.add(b);
  }

  // add accepts another base (the one an upload slot revealed).
  add(base) {
    try {
      const u = new URL(base);
      if (!u.pathname.endsWith('/')) u.pathname += '/';
      u.search = '';
      u.hash = '';
      if (u.protocol === 'http:' || u.protocol === 'https:') this.bases.set(u.href, u);
    } catch { /* not a URL */ }
  }

  // learn takes the base from a download link the server handed out.
  learn(getURL) {
    try {
      const u = new URL(getURL);
      const m = /^(.*\/)file\/[a-z2-7]{32}\/[^/]*$/.exec(u.pathname);
      if (m) this.add(u.origin + m[1]);
    } catch { /* not a URL */ }
  }

  // parse returns the file a link names, or null for any other link.
  parse(link) {
    let u;
    try { u = new URL(String(link).trim()); } catch { return null; }
    if (u.protocol !== 'http:' && u.protocol !== 'https:' || u.username || u.password) return null;
    for (const b of this.bases.values()) {
      if (u.protocol !== b.protocol || u.host.toLowerCase() !== b.host.toLowerCase()) continue;
      const prefix = b.pathname + 'file/';
      if (!u.pathname.startsWith(prefix)) continue;
      const [id, ...rest] = u.pathname.slice(prefix.length).split('/');
      if (!FILE_ID.test(id) || rest.length !== 1) continue;
      let name = rest[0];
      try { name = decodeURIComponent(name); } catch { /* keep it escaped */ }
      name = name.replace(/[\u0000-\u001f\u007f\u202a-\u202e\u2066-\u2069]/g, '') || 'file';
      const root = b.href;
      const file = `${root}file/${id}/${rest[0]}`;
      return {
        id, name, get: file, download: file + '?download=1', preview: `${root}preview/${id}`,
        thumb: `${root}thumb/${id}`, image: THUMBNAILED.test(name), ext: (/\.([a-z0-9]{1,5})$/i.exec(name)?.[1] || '').toUpperCase(),
      };
    }
    return null;
  }
}

// ---- what a file is (size and type, from a HEAD request) ----

const infoCache = new Map(); // download link -> Promise<{size, type}|null>

// fileInfo returns the size and type the server serves a file with, asked
// once per page.
export function fileInfo(get) {
  let p = infoCache.get(get);
  if (!p) {
    p = fetch(get, { method: 'HEAD', credentials: 'omit', referrerPolicy: 'no-referrer' }).then((r) => {
      if (!r.ok) return null;
      const size = Number(r.headers.get('Content-Length'));
      return { size: Number.isFinite(size) ? size : NaN, type: (r.headers.get('Content-Type') || '').split(';')[0].trim() };
    }).catch(() => null);
    infoCache.set(get, p);
  }
  return p;
}

// knowFile records what the uploader already knows about its own file.
export function knowFile(get, size, type) {
  infoCache.set(get, Promise.resolve({ size, type }));
}

// ---- link cards ----

const cardCache = new Map(); // link -> Promise<card|null>
const CARD_CACHE_MAX = 500;

// linkCard asks the server (GET <api>linkcard?url=) for a link's card:
// {url, title, description, image, site}, or null when there is none.
// Answers, failures included, are kept for the page's life.
export function linkCard(api, link) {
  let p = cardCache.get(link);
  if (p) return p;
  p = (async () => {
    try {
      const u = new URL('linkcard', api);
      u.searchParams.set('url', link);
      const r = await fetch(u, { credentials: 'same-origin', headers: { Accept: 'application/json' } });
      if (!r.ok || r.status === 204) return null; // 204: the server has no card for it
      const c = await r.json();
      const str = (v, max) => (typeof v === 'string' ? v.trim().slice(0, max) : '');
      const card = { url: link, title: str(c.Title, 300), description: str(c.Description, 600), site: str(c.SiteName, 100), image: '' };
      try {
        const img = new URL(str(c.Image, 2048));
        if (img.protocol === 'https:' || img.protocol === 'http:') card.image = img.href;
      } catch { /* no image */ }
      return card.title || card.description ? card : null;
    } catch {
      return null;
    }
  })();
  if (cardCache.size >= CARD_CACHE_MAX) cardCache.delete(cardCache.keys().next().value);
  cardCache.set(link, p);
  return p;
}

// ---- uploads (XEP-0363) ----

// UploadError says why a file could not be shared. kind: 'too-large'
// (max: the limit in bytes), 'blocked', 'quota' (used, quota: bytes, when
// the server said), 'empty', 'unavailable', 'offline', 'cancelled',
// 'failed'.
export class UploadError extends Error {
  constructor(kind, message = '', extra = {}) {
    super(message || kind);
    this.kind = kind;
    Object.assign(this, extra);
  }
}

// uploadErrorFrom reads a slot request's error.
function uploadErrorFrom(e) {
  if (!(e instanceof StanzaError)) return new UploadError('failed', e?.message || 'no answer from the server');
  const err = child(e.stanza, undefined, 'error');
  const big = err && child(err, NS_UPLOAD, 'file-too-large');
  if (big) return new UploadError('too-large', e.text, { max: Number(childText(big, NS_UPLOAD, 'max-file-size')) || 0 });
  if (e.condition === 'resource-constraint') {
    const m = /(\d+) of (\d+) bytes used/.exec(e.text);
    return new UploadError('quota', e.text, m ? { used: Number(m[1]), quota: Number(m[2]) } : {});
  }
  if (e.condition === 'not-acceptable') return new UploadError('blocked', e.text);
  if (e.condition === 'service-unavailable' || e.condition === 'item-not-found' || e.condition === 'feature-not-implemented') {
    return new UploadError('unavailable', e.text);
  }
  return new UploadError('failed', e.text || e.condition);
}

// Uploader shares files through the server's upload service.
export class Uploader {
  constructor(client) {
    this.client = client;
    this._service = null;
  }

  // service finds the upload service: disco#items of the domain, then
  // disco#info of each item until one has the feature. {jid, max}.
  service() {
    if (!this._service) {
      this._service = this._discover().catch((e) => { this._service = null; throw e; });
    }
    return this._service;
  }

  async _discover() {
    const domain = this.client.domain;
    let items = [];
    try {
      const res = await this.client.iq('get', x('query', { xmlns: NS_ITEMS }), { to: domain, timeout: 15000 });
      items = children(child(res, NS_ITEMS, 'query'), NS_ITEMS, 'item').map((i) => i.getAttribute('jid')).filter(Boolean);
    } catch (e) {
      throw new UploadError('failed', e.message);
    }
    // The usual name first: one disco#info in the common case.
    items.sort((a, b) => (b === 'upload.' + domain) - (a === 'upload.' + domain));
    for (const jid of items.slice(0, 10)) {
      let res;
      try {
        res = await this.client.iq('get', x('query', { xmlns: NS_INFO }), { to: jid, timeout: 15000 });
      } catch { continue; }
      const q = child(res, NS_INFO, 'query');
      if (!children(q, NS_INFO, 'feature').some((f) => f.getAttribute('var') === NS_UPLOAD)) continue;
      let max = 0;
      for (const form of children(q, NS_DATA, 'x')) {
        const fields = children(form, NS_DATA, 'field');
        const type = fields.find((f) => f.getAttribute('var') === 'FORM_TYPE');
        if (childText(type, NS_DATA, 'value') !== NS_UPLOAD) continue;
        const mf = fields.find((f) => f.getAttribute('var') === 'max-file-size');
        max = Number(childText(mf, NS_DATA, 'value')) || 0;
      }
      return { jid, max };
    }
    throw new UploadError('unavailable', 'this server has no upload service');
  }

  // slot asks for an upload slot: {put, headers, get}.
  async slot(file) {
    const svc = await this.service();
    if (svc.max && file.size > svc.max) throw new UploadError('too-large', '', { max: svc.max });
    let res;
    try {
      res = await this.client.iq('get', x('request', {
        xmlns: NS_UPLOAD, filename: file.name || 'file', size: String(file.size), 'content-type': file.type || undefined,
      }), { to: svc.jid, timeout: 30000 });
    } catch (e) {
      throw uploadErrorFrom(e);
    }
    const slot = child(res, NS_UPLOAD, 'slot');
    const put = child(slot, NS_UPLOAD, 'put');
    const get = child(slot, NS_UPLOAD, 'get');
    const ok = (u) => { try { return ['https:', 'http:'].includes(new URL(u).protocol); } catch { return false; } };
    if (!ok(put?.getAttribute('url')) || !ok(get?.getAttribute('url'))) throw new UploadError('failed', 'the server sent no usable upload slot');
    // Only the headers XEP-0363 allows; browsers refuse to set Cookie.
    const headers = children(put, NS_UPLOAD, 'header')
      .map((hd) => [hd.getAttribute('name') || '', hd.textContent.replace(/[\r\n]/g, '')])
      .filter(([n]) => /^(authorization|expires)$/i.test(n));
    return { put: put.getAttribute('url'), get: get.getAttribute('url'), headers };
  }

  // put sends the bytes; onProgress(loaded, total). It resolves when the
  // server has stored them; abort() on the returned promise cancels.
  put(slot, file, onProgress) {
    const xhr = new XMLHttpRequest();
    const p = new Promise((resolve, reject) => {
      xhr.open('PUT', slot.put);
      for (const [n, v] of slot.headers) xhr.setRequestHeader(n, v);
      if (file.type) xhr.setRequestHeader('Content-Type', file.type);
      xhr.upload.onprogress = (e) => onProgress?.(e.loaded, e.lengthComputable ? e.total : file.size);
      xhr.onload = () => {
        if (xhr.status >= 200 && xhr.status < 300) resolve();
        else reject(new UploadError('failed', `the server refused the file (${xhr.status}${xhr.responseText ? ': ' + xhr.responseText.trim().slice(0, 200) : ''})`));
      };
      xhr.onerror = () => reject(new UploadError('failed', 'the connection failed during the upload'));
      xhr.onabort = () => reject(new UploadError('cancelled'));
      xhr.send(file);
    });
    p.abort = () => xhr.abort();
    return p;
  }
}
