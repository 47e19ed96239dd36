#!/usr/bin/python3
"""Parley end-to-end history scenarios (issue 3), driven by slixmpp.

Usage: history.py --addr 127.0.0.1:PORT --users users.json --domain D SCENARIO [ARGS]

Message archive (XEP-0313 with XEP-0059 paging, XEP-0359 stanza-ids,
XEP-0431 full-text search), carbons (XEP-0280) and stream management
(XEP-0198) with resumption, as an ordinary slixmpp client uses them. Same
conventions as scenarios.py: "PASS <scenario>" and exit 0, or "FAIL
<scenario>: ..." with the client's recent traffic and a non-zero exit.
e2e/history_test.go runs them.
"""

import asyncio
import datetime
import os
import socket
import struct
import sys
import time

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from slixmpp.xmlstream.handler import Callback  # noqa: E402
from slixmpp.xmlstream.matcher import MatchXPath  # noqa: E402

from parleye2e import (  # noqa: E402
    Client, Fail, body_from, delay_stamp, expect, run, summarize,
)

NS_MAM = "urn:xmpp:mam:2"
NS_FORWARD = "urn:xmpp:forward:0"
NS_SID = "urn:xmpp:sid:0"
NS_CARBONS = "urn:xmpp:carbons:2"
NS_CLIENT = "jabber:client"
FULLTEXT = "{urn:xmpp:fulltext:0}fulltext"


# ---- helpers ----

def new_client(env, clients, user, resource=None, plugins=()):
    c = Client(env, user, resource=resource)
    for p in plugins:
        c.register_plugin(p)
    # slixmpp raises its "message" event (Client.inbox) only for messages
    # with a <body/>; MAM results and carbons have theirs one level down.
    c.everything = []

    def record(st):
        c.everything.append(st)
        c._arrived.set()
    c.register_handler(Callback("history: every message", MatchXPath("{%s}message" % c.default_ns), record))
    clients.append(c)
    return c


async def wait_any(c, pred, what, timeout=10):
    """Like Client.wait_message, over every message (with a body or not)."""
    return await c._wait(c.everything, pred, timeout, what)


def unmatched_any(c, pred):
    return [m for m in c.everything if id(m) not in c._taken and pred(m)]


def stanza_ids(msg):
    """The XEP-0359 stanza-ids on a message as [(by, id)]."""
    return [(el.get("by"), el.get("id")) for el in msg.xml.findall("{%s}stanza-id" % NS_SID)]


def stanza_id_by(msg, by):
    ids = [i for b, i in stanza_ids(msg) if b == by]
    return ids[0] if len(ids) == 1 else None


def numbered(prefix, i, n):
    return "%s %03d of %d token%03d" % (prefix, i, n, i)


def number_of(prefix, body):
    """The number in a numbered() body, or None."""
    if not body or not body.startswith(prefix + " "):
        return None
    try:
        return int(body[len(prefix) + 1:].split(" ", 1)[0])
    except ValueError:
        return None


class Page:
    def __init__(self, results, complete, first, last, fin):
        self.results = results    # [(archive id, forwarded <message/> element, delay stamp)]
        self.complete = complete
        self.first = first
        self.last = last
        self.fin = fin

    def bodies(self):
        return [m.findtext("{%s}body" % NS_CLIENT) for _, m, _ in self.results]


_query_seq = 0


async def mam_query(c, max_=None, before=None, after=None, with_=None, fulltext=None, timeout=15):
    """One XEP-0313 query of c's own archive; returns a Page.

    before=True asks for the last page (an empty RSM <before/>).
    """
    global _query_seq
    _query_seq += 1
    qid = "hq%d" % _query_seq
    iq = c.make_iq_set()
    iq["mam"]["queryid"] = qid
    if with_ is not None:
        iq["mam"]["with"] = with_
    if fulltext is not None:
        iq["mam"].set_custom_field(FULLTEXT, fulltext)
    if max_ is not None:
        iq["mam"]["rsm"]["max"] = str(max_)
    if before is not None:
        iq["mam"]["rsm"]["before"] = before
    if after is not None:
        iq["mam"]["rsm"]["after"] = after
    start = len(c.everything)
    res = await iq.send(timeout=timeout)
    fin = res.xml.find("{%s}fin" % NS_MAM)
    expect(fin is not None, "MAM query %s: the result has no <fin xmlns='%s'/>: %s" % (qid, NS_MAM, summarize(res)))
    results = []
    # Result messages come before the <iq type='result'/> (XEP-0313 4.2).
    for m in c.everything[start:]:
        r = m.xml.find("{%s}result" % NS_MAM)
        if r is None or r.get("queryid") != qid:
            continue
        c._taken.add(id(m))
        expect(m["from"].bare in ("", c.boundjid.bare),
               "MAM result from %s, not from my own archive %s: %s" % (m["from"], c.boundjid.bare, summarize(m)))
        fwd = r.find("{%s}forwarded" % NS_FORWARD)
        expect(fwd is not None, "MAM result without <forwarded/>: %s" % summarize(m))
        inner = fwd.find("{%s}message" % NS_CLIENT)
        expect(inner is not None, "MAM result without the archived <message/>: %s (tags %s)" % (summarize(m), [e.tag for e in fwd.iter()]))
        d = fwd.find("{urn:xmpp:delay}delay")
        results.append((r.get("id"), inner, None if d is None else d.get("stamp")))
    rsm = fin.find("{http://jabber.org/protocol/rsm}set")
    first = last = None
    if rsm is not None:
        first = rsm.findtext("{http://jabber.org/protocol/rsm}first")
        last = rsm.findtext("{http://jabber.org/protocol/rsm}last")
    return Page(results, fin.get("complete") in ("true", "1"), first, last, fin)


async def send_numbered(sender, to, prefix, nums, n, gap=0.0):
    """Send the numbered messages; returns {number: UTC time sent}."""
    sent = {}
    for i in nums:
        sender.send_message(mto=to, mbody=numbered(prefix, i, n), mtype="chat")
        sent[i] = datetime.datetime.now(datetime.timezone.utc)
        if gap:
            await asyncio.sleep(gap)
    return sent


def tally(c, sender, prefix):
    """The numbers of the numbered messages c got from sender, in arrival order."""
    got = []
    for m in c.inbox:
        if m["type"] == "error" or m["from"].bare != sender:
            continue
        k = number_of(prefix, m["body"])
        if k is not None:
            got.append(k)
    return got


def check_exactly_once(got, n, who):
    """Fail unless got holds 1..n once each; returns the duplicates seen (for the report)."""
    missing = sorted(set(range(1, n + 1)) - set(got))
    dups = sorted({k for k in got if got.count(k) > 1})
    expect(not missing, "%s: %d of %d messages never arrived: %s (received, in order: %s)" % (who, len(missing), n, missing, got))
    expect(not dups, "%s: messages arrived more than once: %s (received, in order: %s)" % (who, dups, got))
    return dups


async def wait_count(c, sender, prefix, n, timeout, what):
    deadline = time.monotonic() + timeout
    while True:
        got = tally(c, sender, prefix)
        if len(set(got)) >= n:
            return got
        if time.monotonic() > deadline:
            raise Fail("%s: timed out after %ss waiting for %s; got %d distinct of %d: %s"
                       % (c.boundjid, timeout, what, len(set(got)), n, got))
        await asyncio.sleep(0.05)


def set_rst_on_close(c):
    """Make closing c's socket send a TCP RST, discarding anything unsent."""
    sock = c.transport.get_extra_info("socket") if c.transport else None
    if sock is not None:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))


async def cut(c, what):
    """Cut c's TCP connection abruptly: no </stream:stream>, an RST."""
    expect(c.transport is not None, "%s: no connection to cut (%s)" % (c.boundjid, what))
    c.closed.clear()
    set_rst_on_close(c)
    c.abort()
    await asyncio.wait_for(c.closed.wait(), 5)


async def event(c, names, timeout, what):
    """Wait for the first of the named slixmpp events; returns (name, data)."""
    loop = asyncio.get_running_loop()
    fut = loop.create_future()
    handlers = []
    for n in names:
        def h(data, n=n):
            if not fut.done():
                fut.set_result((n, data))
        handlers.append((n, h))
        c.add_event_handler(n, h)
    try:
        return await asyncio.wait_for(fut, timeout)
    except asyncio.TimeoutError:
        raise Fail("%s: none of %s within %ss (%s)" % (c.boundjid, names, timeout, what))
    finally:
        for n, h in handlers:
            c.del_event_handler(n, h)


class Blackhole:
    """A TCP relay to the host whose connections can be made to go silent:
    after cut() it swallows everything in both directions and keeps both
    sockets open, like a network path that died without telling anyone."""

    def __init__(self, env):
        self.target = (env.host, env.port)
        self.silent = False
        self.swallowed = 0
        self.server = None
        self.port = None
        self.conns = []

    async def start(self):
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self.server.sockets[0].getsockname()[1]
        return self

    async def _serve(self, creader, cwriter):
        sreader, swriter = await asyncio.open_connection(*self.target)
        self.conns.append((cwriter, swriter))

        async def pump(r, w):
            try:
                while True:
                    b = await r.read(65536)
                    if not b:
                        break
                    if self.silent:
                        self.swallowed += len(b)
                        continue
                    w.write(b)
                    await w.drain()
            except (ConnectionError, OSError):
                pass
            if not self.silent:
                w.close()

        await asyncio.gather(pump(creader, swriter), pump(sreader, cwriter))

    def cut(self):
        self.silent = True

    def close(self):
        for cw, sw in self.conns:
            for w in (cw, sw):
                try:
                    w.close()
                except Exception:
                    pass
        if self.server:
            self.server.close()


# ---- scenarios ----

async def mam_paging(env, clients, n="100", page="10"):
    """alice sends bob n numbered messages; bob pages his archive from the end
    with max=page until complete and gets every message once, in order, with
    the ids he saw live; alice pages hers forward; full-text finds one."""
    n, page = int(n), int(page)
    a, b = env.jid("alice"), env.jid("bob")
    mam = ("xep_0313",)
    alice = new_client(env, clients, "alice", plugins=mam)
    bob = new_client(env, clients, "bob", plugins=mam)
    await asyncio.gather(alice.login(), bob.login())
    prefix = "numbered"
    await send_numbered(alice, b, prefix, range(1, n + 1), n)
    got = await wait_count(bob, a, prefix, n, 30, "%d numbered messages from alice" % n)
    expect(got == list(range(1, n + 1)), "bob got the live messages in this order, want 1..%d: %s" % (n, got))
    live = []
    for m in bob.inbox:
        if number_of(prefix, m["body"]) is None:
            continue
        sid = stanza_id_by(m, b)
        expect(sid, "live message %r has no <stanza-id by='%s'/> (stanza-ids %s): %s"
               % (m["body"], b, stanza_ids(m), summarize(m)))
        live.append(sid)
    expect(len(set(live)) == n, "the %d live stanza-ids are not distinct: %s" % (n, live))

    # Bob pages back from the end: <before/>, then before=<first> of the last page.
    pages, before = [], True
    while True:
        p = await mam_query(bob, max_=page, before=before, with_=a)
        expect(len(p.results) <= page, "page %d has %d results, more than max=%d" % (len(pages) + 1, len(p.results), page))
        if p.results:
            expect(p.first == p.results[0][0] and p.last == p.results[-1][0],
                   "page %d: RSM first/last %s/%s are not the first/last result ids %s/%s"
                   % (len(pages) + 1, p.first, p.last, p.results[0][0], p.results[-1][0]))
        pages.append(p)
        if p.complete:
            break
        expect(p.results, "page %d is empty but not complete: %s" % (len(pages), p.fin))
        expect(len(pages) <= n // page + 2, "still not complete after %d pages of %d" % (len(pages), page))
        before = p.first
    ids, bodies = [], []
    for p in reversed(pages):
        ids += [r[0] for r in p.results]
        bodies += p.bodies()
    want = [numbered(prefix, i, n) for i in range(1, n + 1)]
    if bodies != want:
        nums = [number_of(prefix, x) for x in bodies]
        dups = sorted({k for k in nums if nums.count(k) > 1})
        gaps = sorted(set(range(1, n + 1)) - set(nums))
        raise Fail("paging bob's archive back from the end with max=%d gave %d messages (duplicates %s, gaps %s), "
                   "in this order: %s" % (page, len(bodies), dups, gaps, nums))
    expect(ids == live, "archive ids differ from the stanza-ids bob got live:\narchive %s\nlive    %s" % (ids, live))
    for _, m, stamp in (r for p in pages for r in p.results):
        expect(stamp, "archived message %r has no delay stamp in <forwarded/>" % m.findtext("{%s}body" % NS_CLIENT))
        expect(m.get("from", "").split("/")[0] == a, "archived message from %r, want alice" % m.get("from"))
    sizes = [len(p.results) for p in reversed(pages)]

    # Alice pages her own archive forward with after=<last>.
    fwd, after, rounds = [], None, 0
    while True:
        rounds += 1
        p = await mam_query(alice, max_=n // 2 + 7, after=after, with_=b)
        fwd += p.results
        if p.complete or not p.results or rounds > 10:
            break
        after = p.last
    expect([m.findtext("{%s}body" % NS_CLIENT) for _, m, _ in fwd] == want,
           "alice's archive paged forward holds %s" % [number_of(prefix, m.findtext("{%s}body" % NS_CLIENT)) for _, m, _ in fwd])
    expect([r[0] for r in fwd] == live, "alice's archive ids differ from bob's: %s vs %s" % ([r[0] for r in fwd], live))

    # Full-text search (XEP-0431) finds the one message with a given word.
    k = 42 if n >= 42 else n
    p = await mam_query(bob, fulltext="token%03d" % k)
    expect(p.bodies() == [numbered(prefix, k, n)],
           "full-text search for token%03d found %s, want only %r" % (k, p.bodies(), numbered(prefix, k, n)))
    expect(p.results[0][0] == live[k - 1], "full-text hit has id %s, live stanza-id was %s" % (p.results[0][0], live[k - 1]))
    p = await mam_query(bob, fulltext="no-such-word-anywhere")
    expect(not p.results and p.complete, "full-text search for a missing word found %s (complete=%s)" % (p.bodies(), p.complete))
    print("%d messages: bob paged back from the end in %d pages of %s, every message once in order with his live "
          "stanza-ids; alice paged forward in %d queries; full-text token%03d found 1"
          % (n, len(pages), sizes, rounds, k))


async def carbons(env, clients):
    """Two resources of alice with carbons: received and sent copies."""
    a, b = env.jid("alice"), env.jid("bob")
    cp = ("xep_0280",)
    desk = new_client(env, clients, "alice", resource="desk", plugins=cp)
    phone = new_client(env, clients, "alice", resource="phone", plugins=cp)
    bob = new_client(env, clients, "bob")
    await asyncio.gather(desk.login(presence=False), phone.login(presence=False), bob.login())
    for c in (desk, phone):
        await c["xep_0280"].enable(timeout=10)
    # desk is preferred: a message to alice's bare JID goes there directly.
    desk.send_presence(ppriority=5)
    phone.send_presence(ppriority=1)
    for c in (desk, phone):
        await c.ping_server()

    def direct(body):
        return lambda m: m["type"] != "error" and m["body"] == body

    def carbon(kind, body):
        def pred(m):
            el = m.xml.find("{%s}%s" % (NS_CARBONS, kind))
            if el is None:
                return False
            inner = el.find("{%s}forwarded/{%s}message" % (NS_FORWARD, NS_CLIENT))
            return inner is not None and inner.findtext("{%s}body" % NS_CLIENT) == body
        return pred

    def any_carbon(body):
        return lambda m: carbon("received", body)(m) or carbon("sent", body)(m)

    def inner(m, kind):
        return m.xml.find("{%s}%s/{%s}forwarded/{%s}message" % (NS_CARBONS, kind, NS_FORWARD, NS_CLIENT))

    def check_wrapper(m, owner, kind):
        expect(m["from"] == owner.boundjid.bare,
               "%s carbon from %s, want alice's bare JID %s (XEP-0280 11: else it is a forgery): %s"
               % (kind, m["from"], owner.boundjid.bare, summarize(m)))

    async def counts(expected):
        """After a moment, each (client, predicate, n, what) must have matched n messages."""
        await asyncio.sleep(0.7)
        for c, pred, n, what in expected:
            got = [m for m in c.everything if pred(m)]
            expect(len(got) == n, "%s got %d of %s, want %d: %s" % (c.boundjid, len(got), what, n, [summarize(m) for m in got]))

    # 1. bob -> alice (bare): desk directly, phone as a received carbon.
    t1 = "to alice's bare JID \u2709"
    bob.send_message(mto=a, mbody=t1, mtype="chat")
    await wait_any(desk, direct(t1), "bob's message directly at the priority-5 resource")
    m = await wait_any(phone, carbon("received", t1), "a <received/> carbon of bob's message at the priority-1 resource")
    check_wrapper(m, phone, "received")
    fwd = inner(m, "received")
    expect(fwd.get("from", "").split("/")[0] == b and fwd.get("to", "").split("/")[0] == a,
           "received carbon forwards from=%s to=%s, want bob -> alice" % (fwd.get("from"), fwd.get("to")))
    await counts([
        (desk, direct(t1), 1, "bob's message directly"),
        (desk, any_carbon(t1), 0, "carbons of the message it got directly"),
        (phone, direct(t1), 0, "bob's message directly (it got a carbon)"),
        (phone, any_carbon(t1), 1, "carbons of bob's message"),
    ])

    # 2. desk -> bob: a sent carbon at phone; none back at desk.
    t2 = "from alice's desk \U0001F5A5"
    desk.send_message(mto=b, mbody=t2, mtype="chat")
    await bob.wait_message(body_from(a, t2), "alice's message from desk")
    m = await wait_any(phone, carbon("sent", t2), "a <sent/> carbon of desk's message at phone")
    check_wrapper(m, phone, "sent")
    fwd = inner(m, "sent")
    expect(fwd.get("from") == str(desk.boundjid) and fwd.get("to", "").split("/")[0] == b,
           "sent carbon forwards from=%s to=%s, want %s -> bob" % (fwd.get("from"), fwd.get("to"), desk.boundjid))
    await counts([
        (desk, any_carbon(t2), 0, "carbons of its own message"),
        (desk, direct(t2), 0, "its own message back"),
        (phone, any_carbon(t2), 1, "carbons of desk's message"),
        (bob, direct(t2), 1, "alice's message"),
    ])

    # 3. phone -> bob: a sent carbon at desk.
    t3 = "from alice's phone \U0001F4F1"
    phone.send_message(mto=b, mbody=t3, mtype="chat")
    await bob.wait_message(body_from(a, t3), "alice's message from phone")
    m = await wait_any(desk, carbon("sent", t3), "a <sent/> carbon of phone's message at desk")
    check_wrapper(m, desk, "sent")
    await counts([(phone, any_carbon(t3), 0, "carbons of its own message"), (desk, any_carbon(t3), 1, "carbons of phone's message")])

    # 4. bob -> alice/phone (full JID, the lower priority): desk gets a received carbon.
    t4 = "to alice's phone only"
    bob.send_message(mto=phone.boundjid.full, mbody=t4, mtype="chat")
    await wait_any(phone, direct(t4), "bob's message to phone's full JID")
    m = await wait_any(desk, carbon("received", t4), "a <received/> carbon of a message to phone's full JID")
    check_wrapper(m, desk, "received")
    await counts([(desk, direct(t4), 0, "the message to phone's full JID directly"), (phone, any_carbon(t4), 0, "carbons of a message it got")])

    # 5. Equal priorities: both resources get it directly, and no carbons.
    phone.send_presence(ppriority=5)
    await phone.ping_server()
    await bob.wait_presence(lambda p: p["from"] == phone.boundjid and p["priority"] == 5, "phone's priority 5 presence")
    t5 = "to alice, both resources at priority 5"
    bob.send_message(mto=a, mbody=t5, mtype="chat")
    for c in (desk, phone):
        await wait_any(c, direct(t5), "bob's message at equal priority")
    await counts([(c, pred, n, what) for c in (desk, phone) for pred, n, what in (
        (direct(t5), 1, "bob's message directly at equal priority"), (any_carbon(t5), 0, "carbons at equal priority"))])
    print("carbons: bare-JID message directly at priority 5, received carbon at priority 1; sent carbons both ways; "
          "full-JID message carbon-copied to the other resource; equal priorities both direct, no carbons")


async def _sm_bob(env, clients, port=None):
    bob = new_client(env, clients, "bob", resource="sm", plugins=("xep_0198",))
    enabled = {}
    bob.add_event_handler("sm_enabled", lambda st: enabled.update(id=st["id"], resume=st["resume"], max=st.xml.get("max")))
    if port is not None:
        real = env.port
        env.port = port
        try:
            await bob.login()
        finally:
            env.port = real
    else:
        await bob.login()
    expect("stream_management" in bob.features, "bob: stream management was not enabled (features %s)" % sorted(bob.features))
    expect(enabled.get("id") and enabled.get("resume") in (True, "true", "1"),
           "bob: <enabled/> without a resumable id: %s" % enabled)
    return bob, enabled


async def _reconnect_and_resume(bob, env, what):
    """Reconnect and resume; returns (<resumed/>, number of bob's stanzas resent).

    slixmpp 1.8.3's xep_0198 empties its queue of unacknowledged stanzas
    when it sends <resume/> (_handle_outgoing clears it for Enable and
    Resume alike), so what bob sent into a dead connection would never be
    sent again. Do what XEP-0198 5 asks of the client here: keep that
    queue, and resend what the server's h in <resumed/> does not cover.
    """
    sm = bob["xep_0198"]
    pending, base = list(sm.unacked_queue), sm.last_ack
    bob.closed.clear()
    bob.connect((env.host, env.port))
    name, data = await event(bob, ["session_resumed", "sm_failed", "session_start"], 20, what)
    expect(name == "session_resumed", "%s: stream resumption failed (%s): %s" % (what, name, summarize(data) if data is not None else ""))
    h = int(data["h"])
    covered = (h - base) % (2 ** 32)
    expect(covered <= len(pending), "%s: <resumed h='%d'/> acknowledges %d stanzas, but only %d (after h=%d) were unacknowledged"
           % (what, h, covered, len(pending), base))
    for _, st in pending[covered:]:
        bob.send(st)
    return data, len(pending) - covered


async def resume_after_cut(env, clients, n="60", mode="rst"):
    """bob's TCP connection dies mid-conversation while alice keeps sending;
    bob reconnects, resumes (XEP-0198) and has every message exactly once.

    mode rst: bob's side closes with an RST (the server notices at once).
    mode silent: the path goes dead without a FIN or RST (a relay swallows
    everything), so the server keeps writing into it until bob resumes on a
    new connection.
    """
    n = int(n)
    a, b = env.jid("alice"), env.jid("bob")
    prefix = "resume-%s" % mode
    relay = None
    if mode == "silent":
        relay = await Blackhole(env).start()
    elif mode != "rst":
        raise Fail("unknown mode %r" % mode)
    alice = new_client(env, clients, "alice")
    await alice.login()
    bob, enabled = await _sm_bob(env, clients, port=relay.port if relay else None)
    third = n // 3

    try:
        await send_numbered(alice, b, prefix, range(1, third + 1), n, gap=0.01)
        await wait_count(bob, a, prefix, third // 2, 10, "the first messages")
        # Cut while messages are in flight.
        sender = asyncio.ensure_future(send_numbered(alice, b, prefix, range(third + 1, 2 * third + 1), n, gap=0.01))
        await asyncio.sleep(0.05)
        before = tally(bob, a, prefix)
        # bob says something just as the path dies: it may or may not reach
        # the server; the h values exchanged on resumption settle it.
        reply = "bob's reply as the connection dies"
        if mode == "rst":
            bob.send_message(mto=a, mbody=reply, mtype="chat")
            await asyncio.sleep(0.1)
            await cut(bob, "mid-conversation")
        else:
            relay.cut()
            bob.send_message(mto=a, mbody=reply, mtype="chat")  # into the dead path
            await asyncio.sleep(0.1)
            # The client side notices nothing either; drop it the hard way.
            await cut(bob, "mid-conversation (silent path)")
        await sender
        await alice.ping_server()  # the server has taken everything sent so far
        await asyncio.sleep(0.3)
        resumed, resent = await _reconnect_and_resume(bob, env, "reconnecting after the cut")
        await send_numbered(alice, b, prefix, range(2 * third + 1, n + 1), n, gap=0.005)
        await alice.ping_server()
        got = await wait_count(bob, a, prefix, n, 20, "all %d messages after resuming" % n)
        await bob.ping_server()
        await asyncio.sleep(0.7)
        got = tally(bob, a, prefix)
        check_exactly_once(got, n, "bob after resuming")
        expect(got == sorted(got), "bob got the messages out of order: %s" % got)
        await alice.wait_message(body_from(b, reply), "bob's message sent as the connection died", timeout=5)
        replies = [m for m in alice.inbox if m["body"] == reply]
        expect(len(replies) == 1, "alice got bob's message sent as the connection died %d times" % len(replies))
        swallowed = " (the dead path swallowed %d bytes)" % relay.swallowed if relay else ""
        print("%s cut after %d of %d messages had arrived; resumed (server's h=%s, so bob resent %d; window %ss)%s; "
              "all %d arrived exactly once, in order; bob's message sent as it died reached alice once"
              % (mode, len(before), n, resumed["h"], resent, enabled.get("max"), swallowed, n))
    finally:
        if relay:
            relay.close()


async def offline_after_failed_resume(env, clients, n="20"):
    """bob's connection is cut and he does not come back within the resumption
    window: alice's messages of the meantime wait as offline messages, with
    delay stamps, for his next login (his resume attempt is refused)."""
    n = int(n)
    a, b = env.jid("alice"), env.jid("bob")
    prefix = "offline-after-cut"
    alice = new_client(env, clients, "alice")
    await alice.login()
    bob, enabled = await _sm_bob(env, clients)
    window = int(enabled.get("max") or 0)
    expect(0 < window <= 20, "the server's resumption window is %ss (<enabled max=%r/>); "
           "this scenario needs the host started with a short one" % (window, enabled.get("max")))
    # A first message arrives live and is acknowledged before the cut.
    alice.send_message(mto=b, mbody="before the cut", mtype="chat")
    await bob.wait_message(body_from(a, "before the cut"), "the message before the cut")
    bob["xep_0198"].send_ack()
    await bob.ping_server()
    await asyncio.sleep(0.2)
    await cut(bob, "before the resumption window")
    half = n // 2
    # Half while the server keeps the session for a resumption ...
    sent = await send_numbered(alice, b, prefix, range(1, half + 1), n, gap=0.02)
    await alice.ping_server()
    await asyncio.sleep(window + 1.5)
    # ... and half after it gave up.
    sent.update(await send_numbered(alice, b, prefix, range(half + 1, n + 1), n, gap=0.02))
    await alice.ping_server()
    bounced = [summarize(m) for m in alice.inbox if m["type"] == "error"]
    expect(not bounced, "alice's messages to bob bounced: %s" % bounced)

    # bob's client tries to resume (refused: too late), binds afresh, comes online.
    bob.closed.clear()
    bob.connect((env.host, env.port))
    name, data = await event(bob, ["session_resumed", "sm_failed"], 20, "the resumption attempt after the window")
    expect(name == "sm_failed", "bob resumed a session %ss after the cut, past the %ss window" % (window + 1.5, window))
    cond = [c.tag.split("}")[1] for c in data.xml if c.tag.endswith("item-not-found") or c.tag.endswith("unexpected-request")]
    await event(bob, ["session_start"], 20, "a fresh session after the refused resumption")
    bob.send_presence()
    got = await wait_count(bob, a, prefix, n, 20, "the %d messages sent while bob was away" % n)
    await bob.ping_server()
    await asyncio.sleep(0.7)
    got = tally(bob, a, prefix)
    check_exactly_once(got, n, "bob's fresh session")
    expect(got == list(range(1, n + 1)), "offline messages arrived out of order: %s" % got)
    # XEP-0160 / XEP-0203: the stamp says when the server got the message,
    # not when it gave up waiting for bob to resume.
    off = []
    for m in bob.inbox:
        k = number_of(prefix, m["body"])
        if k is None:
            continue
        stamp = delay_stamp(m)
        expect(stamp, "message %d arrived without an XEP-0203 <delay/>: %s" % (k, summarize(m)))
        when = datetime.datetime.fromisoformat(stamp.replace("Z", "+00:00"))
        skew = (when - sent[k]).total_seconds()
        if not -1.5 <= skew <= 1.5:
            off.append("#%d sent %s stamped %s (%+.1fs)" % (k, sent[k].isoformat(timespec="milliseconds"), stamp, skew))
    expect(not off, "%d of %d offline messages carry a delay stamp that is not when alice sent them "
           "(window %ss; messages 1-%d were sent inside it): %s" % (len(off), n, window, half, off))
    again = [m for m in bob.inbox if m["body"] == "before the cut"]
    expect(len(again) == 1, "the acknowledged message before the cut arrived %d times" % len(again))
    print("resumption window %ss: resume refused (%s); %d messages (%d sent inside the window, %d after) "
          "arrived at the fresh login once each, in order, with delay stamps"
          % (window, cond or "failed", n, half, n - half))


async def fresh_login_within_window(env, clients, n="10"):
    """bob's connection is cut and his client, having lost its stream
    management state (restarted, say), logs in afresh with the same
    resource while the server still keeps the old session for a
    resumption. RFC 6120 7.7.2.2: the new session replaces the old one, so

    - the messages alice sent in between reach the new session at once
      (RFC 6121 8.5.2: bob is available), once each, not at some later
      login;
    - when the old session's resumption window ends (checked only when the
      window is short), bob does not appear offline to alice and still
      gets her messages.
    """
    n = int(n)
    a, b = env.jid("alice"), env.jid("bob")
    prefix = "in-the-gap"
    alice = new_client(env, clients, "alice")
    await alice.login()
    bob, enabled = await _sm_bob(env, clients)
    window = int(enabled.get("max") or 0)
    await alice.wait_presence(lambda p: p["from"] == bob.boundjid and p["type"] == "available", "bob/sm's presence")
    await cut(bob, "before logging in afresh")
    t0 = time.monotonic()
    await send_numbered(alice, b, prefix, range(1, n + 1), n, gap=0.02)
    await alice.ping_server()
    bob2 = new_client(env, clients, "bob", resource="sm")  # same resource, no stream management state
    await bob2.login()
    login_at = time.monotonic() - t0
    expect(bob2.boundjid == bob.boundjid, "the new login bound %s, not the old resource %s" % (bob2.boundjid, bob.boundjid))
    seen_at = len(alice.presences)
    problems = []
    budget = 8
    try:
        await wait_count(bob2, a, prefix, n, budget, "the %d messages alice sent between the cut and the new login" % n)
        got = tally(bob2, a, prefix)
        await asyncio.sleep(0.7)
        got = tally(bob2, a, prefix)
        dups = sorted({k for k in got if got.count(k) > 1})
        if dups:
            problems.append("the messages of the gap arrived more than once: %s" % got)
    except Fail:
        got = tally(bob2, a, prefix)
        problems.append("bob's new session (same resource, bound %.1fs after the cut, inside the %ss resumption window) got %s "
                        "of the %d messages alice sent to bob in between, %ss after logging in; the old session, which the new "
                        "one replaced, holds them" % (login_at, window, got or "none", n, budget))
    if 0 < window <= 20:
        left = window + 1.5 - (time.monotonic() - t0)
        if left > 0:
            await asyncio.sleep(left)
        gone = [summarize(p) for p in alice.presences[seen_at:] if p["from"] == bob.boundjid and p["type"] == "unavailable"]
        if gone:
            problems.append("when the replaced session's %ss window ended, alice saw bob's resource %s go offline while "
                            "bob's new session on it is online: %s" % (window, bob.boundjid.resource, gone))
        after = "after the old session's window"
        alice.send_message(mto=b, mbody=after, mtype="chat")
        try:
            await bob2.wait_message(body_from(a, after), "alice's message %s" % after, timeout=5)
        except Fail:
            problems.append("bob's new session no longer gets messages to %s once the replaced session's window ended" % b)
        late = tally(bob2, a, prefix)
        if late != got:
            problems.append("the messages of the gap arrived only when the old session's window ended: %s" % late)
        window_note = "checked past the %ss window" % window
    else:
        window_note = "window %ss too long to wait out here" % window
    if problems:
        raise Fail("; ".join(problems))
    print("fresh login with the same resource %.1fs after the cut: all %d messages of the gap arrived once at once; %s"
          % (login_at, n, window_note))


SCENARIOS = {
    "fresh-login-within-window": fresh_login_within_window,
    "mam-paging": mam_paging,
    "carbons": carbons,
    "resume-after-cut": resume_after_cut,
    "offline-after-failed-resume": offline_after_failed_resume,
}

if __name__ == "__main__":
    run(SCENARIOS)
