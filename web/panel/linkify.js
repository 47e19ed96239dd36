// Messages are text only: never HTML from the sender. linkify turns a
// message body into DOM nodes built with textContent, where web addresses
// become links that open in a new window.

const urlPattern = /\b(?:https?:\/\/|www\.)[^\s<>"'`]+/gi;

// Trailing punctuation is part of the sentence, not of the address, unless
// it closes a bracket the address opened (as in Wikipedia links).
function trimURL(u) {
  for (;;) {
    const last = u.at(-1);
    if (/[.,;:!?*'"]/.test(last)) {
      u = u.slice(0, -1);
      continue;
    }
    const pairs = { ')': '(', ']': '[', '}': '{' };
    if (pairs[last]) {
      const opened = u.split(pairs[last]).length - 1;
      const closed = u.split(last).length - 1;
      if (closed > opened) {
        u = u.slice(0, -1);
        continue;
      }
    }
    return u;
  }
}

// safeHref returns an http(s) URL for a matched address, or '' when the
// browser would not parse it as one.
export function safeHref(text) {
  const candidate = /^www\./i.test(text) ? 'https://' + text : text;
  try {
    const u = new URL(candidate);
    return u.protocol === 'http:' || u.protocol === 'https:' ? u.href : '';
  } catch {
    return '';
  }
}

// findLinks returns the links in text as [{start, end, href}].
export function findLinks(text) {
  const out = [];
  for (const m of text.matchAll(urlPattern)) {
    const raw = trimURL(m[0]);
    const href = safeHref(raw);
    if (raw.length > 4 && href) out.push({ start: m.index, end: m.index + raw.length, href });
  }
  return out;
}

// linkify appends text to parent as text nodes and <a> elements.
export function linkify(parent, text) {
  const doc = parent.ownerDocument;
  let at = 0;
  for (const l of findLinks(text)) {
    if (l.start > at) parent.append(doc.createTextNode(text.slice(at, l.start)));
    const a = doc.createElement('a');
    a.href = l.href;
    a.target = '_blank';
    a.rel = 'noopener noreferrer';
    a.textContent = text.slice(l.start, l.end);
    parent.append(a);
    at = l.end;
  }
  if (at < text.length) parent.append(doc.createTextNode(text.slice(at)));
}
