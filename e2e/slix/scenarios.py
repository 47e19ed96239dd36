#!/usr/bin/python3
"""Parley end-to-end scenarios, driven by slixmpp (Debian's python3-slixmpp).

Usage: scenarios.py --addr 127.0.0.1:PORT --users users.json --domain D SCENARIO [ARGS]

Each scenario logs real clients into a running example host, asserts what
a user would see, prints "PASS <scenario>" and exits 0; on failure it prints
"FAIL <scenario>: <what was expected, what came instead>" plus the client's
recent XML traffic and exits non-zero. e2e/e2e_test.go runs them.

Fixture (written by the Go test): alice, bob, carol chat-enabled; dave not
chat-enabled; alias sales@ -> bob, carol.
"""

import asyncio
import datetime
import os
import sys

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from parleye2e import (  # noqa: E402
    Client, Fail, address_elements, body_from, delay_stamp, expect,
    presence_from, run,
)


async def online(env, clients, *users):
    """Log users in concurrently; returns their clients in order."""
    cs = [Client(env, u) for u in users]
    clients.extend(cs)
    await asyncio.gather(*(c.login() for c in cs))
    return cs


async def scram_login(env, clients):
    """SCRAM over STARTTLS, with a bound resource and a roster."""
    alice, = await online(env, clients, "alice")
    expect(alice.boundjid.bare == env.jid("alice"),
           "bound JID %s is not %s" % (alice.boundjid, env.jid("alice")))
    expect(alice.boundjid.resource, "no resource bound: %s" % alice.boundjid)
    offered = sorted(alice["feature_mechanisms"].mech_list)
    for m in ("SCRAM-SHA-256", "SCRAM-SHA-1", "PLAIN"):
        expect(m in offered, "server did not offer %s after STARTTLS (offered %s)" % (m, offered))
    print("negotiated %s over STARTTLS as %s (offered %s)" % (alice.mechanism, alice.boundjid, offered))
    await alice.ping_server()


async def direct_tls(env, clients):
    """Direct TLS (XEP-0368) on its own port, SCRAM, and a message across to a STARTTLS user."""
    alice = Client(env, "alice", resource="direct")
    clients.append(alice)
    await alice.login(direct_tls=True)
    expect("starttls" not in alice.features, "STARTTLS was negotiated on the direct TLS port")
    bob, = await online(env, clients, "bob")
    text = "over direct TLS \U0001F512"
    alice.send_message(mto=bob.boundjid.bare, mbody=text, mtype="chat")
    await bob.wait_message(body_from(alice.boundjid, text), "alice's message sent over direct TLS")
    print("direct TLS login with %s as %s; message delivered" % (alice.mechanism, alice.boundjid))


async def domain_roster(env, clients):
    """Default domain roster: chat-enabled colleagues, subscription both."""
    alice, = await online(env, clients, "alice")
    got = await alice.fetch_roster()
    for u in ("bob", "carol"):
        item = got.get(env.jid(u))
        expect(item is not None, "domain roster of alice lacks %s: %s" % (env.jid(u), got))
        expect(item.get("subscription") == "both",
               "%s has subscription %r in alice's domain roster, want 'both'" % (env.jid(u), item.get("subscription")))
    expect(env.jid("dave") not in got, "dave is not chat-enabled but is in alice's roster: %s" % got)
    # Online colleagues' presence comes through the domain roster.
    bob, = await online(env, clients, "bob")
    await alice.wait_presence(presence_from(bob.boundjid, ptype="available"), "bob's available presence")
    print("alice's domain roster: %s" % ", ".join("%s (%s)" % (j, v.get("subscription")) for j, v in sorted(got.items())))


async def subscribe_group(env, clients):
    """RFC 6121 subscription with -domain-roster=false.

    alice adds bob to group Work and subscribes; bob approves by hand;
    alice's roster then shows bob with subscription to (or both) in Work.
    """
    alice, bob = await online(env, clients, "alice", "bob")
    bob.roster.auto_authorize = None   # decide by hand, below
    bob.roster.auto_subscribe = False
    alice.roster.auto_authorize = None
    alice.roster.auto_subscribe = False
    a, b = env.jid("alice"), env.jid("bob")

    before = await alice.fetch_roster()
    expect(b not in before, "with -domain-roster=false alice's roster already holds bob: %s" % before)

    await alice.update_roster(b, name="Bob", groups=["Work"], timeout=10)
    alice.send_presence(pto=b, ptype="subscribe")
    req = await bob.wait_presence(presence_from(a, ptype="subscribe"), "alice's subscription request")
    expect(req["from"].resource == "", "subscribe request from a full JID: %s" % req["from"])
    bob.send_presence(pto=a, ptype="subscribed")
    await alice.wait_presence(presence_from(b, ptype="subscribed"), "bob's approval (type=subscribed)")
    # RFC 6121 3.1.5/3.1.6: once approved, bob's current presence reaches alice.
    await alice.wait_presence(presence_from(b, ptype="available"), "bob's available presence after approval")

    got = await alice.fetch_roster()
    item = got.get(b)
    expect(item is not None, "alice's roster lacks bob after approval: %s" % got)
    expect(item["subscription"] in ("to", "both"), "bob's subscription in alice's roster is %r, want to/both" % item["subscription"])
    expect(list(item["groups"]) == ["Work"], "bob's groups in alice's roster are %r, want ['Work']" % item["groups"])
    expect(item["name"] == "Bob", "bob's name in alice's roster is %r, want 'Bob'" % item["name"])

    got = await bob.fetch_roster()
    item = got.get(a)
    expect(item is not None and item["subscription"] in ("from", "both"),
           "bob's roster should hold alice with subscription from/both, has %s" % got)
    print("bob approved; alice's roster: bob subscription=to/both in group Work; bob's: alice %s" % item["subscription"])


async def presence_status(env, clients):
    """Show and status text travel to the contact."""
    alice, bob = await online(env, clients, "alice", "bob")
    await alice.wait_presence(presence_from(bob.boundjid, ptype="available"), "bob's initial presence")
    away = "Out for lunch \U0001F35C \u2014 back at 14:00 <soon> & \"then\""
    bob.send_presence(pshow="away", pstatus=away)
    p = await alice.wait_presence(presence_from(bob.boundjid, show="away"), "bob's presence with show=away")
    expect(p["status"] == away, "away status text arrived as %r, want %r" % (p["status"], away))
    expect(p["from"] == bob.boundjid, "presence from %s, want bob's full JID %s" % (p["from"], bob.boundjid))
    dnd = "Focus time \u2014 \u5fd9\u3057\u3044"
    bob.send_presence(pshow="dnd", pstatus=dnd)
    p = await alice.wait_presence(presence_from(bob.boundjid, show="dnd"), "bob's presence with show=dnd")
    expect(p["status"] == dnd, "dnd status text arrived as %r, want %r" % (p["status"], dnd))
    # And back the other way: bob sees alice.
    alice.send_presence(pshow="xa", pstatus="on holiday")
    await bob.wait_presence(presence_from(alice.boundjid, show="xa", status="on holiday"), "alice's xa presence")
    print("alice saw bob away and dnd with their status texts; bob saw alice xa")


UNICODE_BODIES = [
    "Emoji \U0001F600\U0001F389 \U0001F469\u200d\U0001F4BB flag \U0001F1EB\U0001F1F7",
    "CJK \u65e5\u672c\u8a9e\u306e\u30c6\u30ad\u30b9\u30c8 \u4e2d\u6587 \ud55c\uad6d\uc5b4",
    "RTL \u05e9\u05dc\u05d5\u05dd \u05e2\u05d5\u05dc\u05dd \u0645\u0631\u062d\u0628\u0627 \u0628\u0627\u0644\u0639\u0627\u0644\u0645",
    "XML specials <b>not bold</b> & &amp; \"double\" 'single' ]]> <!-- no comment --> <![CDATA[x]]>",
    "multi\nline\ttabbed \u00e9\u00e8\u00ea combining e\u0301 \U0001D11E",
]


async def unicode_messages(env, clients):
    alice, bob = await online(env, clients, "alice", "bob")
    for i, text in enumerate(UNICODE_BODIES):
        alice.send_message(mto=bob.boundjid.bare, mbody=text, mtype="chat")
        m = await bob.wait_message(body_from(alice.boundjid), "alice's message #%d" % i)
        expect(m["body"] == text, "bob got %r, alice sent %r" % (m["body"], text))
        reply = "\u21a9 " + text[::-1] if i != 4 else "\u21a9 " + text
        bob.send_message(mto=m["from"], mbody=reply, mtype="chat")
        r = await alice.wait_message(body_from(bob.boundjid), "bob's reply #%d" % i)
        expect(r["body"] == reply, "alice got %r, bob sent %r" % (r["body"], reply))
    print("%d unicode messages each way arrived intact" % len(UNICODE_BODIES))


async def offline_delivery(env, clients):
    """Messages to an offline user wait for the next login, in order, with XEP-0203 delay."""
    alice, = await online(env, clients, "alice")
    b = env.jid("bob")
    sent_at = datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0)
    bodies = ["offline 1/3: first", "offline 2/3: second \u2764", "offline 3/3: third <&>"]
    for text in bodies:
        alice.send_message(mto=b, mbody=text, mtype="chat")
    await alice.ping_server()  # the server has taken all three
    await asyncio.sleep(0.3)

    bob = Client(env, "bob")
    clients.append(bob)
    await bob.login()
    got = []
    for i in range(len(bodies)):
        got.append(await bob.wait_message(body_from(env.jid("alice")), "offline message %d of %d" % (i + 1, len(bodies))))
    expect([m["body"] for m in got] == bodies,
           "offline messages arrived as %r, want %r in that order" % ([m["body"] for m in got], bodies))
    for m in got:
        stamp = delay_stamp(m)
        expect(stamp, "offline message %r has no <delay xmlns='urn:xmpp:delay'/>: %s" % (m["body"], m))
        try:
            when = datetime.datetime.fromisoformat(stamp.replace("Z", "+00:00"))
        except ValueError:
            raise Fail("delay stamp %r is not an XEP-0082 date-time" % stamp)
        expect(when.tzinfo is not None, "delay stamp %r has no zone" % stamp)
        skew = abs((when - sent_at).total_seconds())
        expect(skew < 60, "delay stamp %s is %ss away from the send time %s" % (stamp, skew, sent_at.isoformat()))
        expect(m["from"].bare == env.jid("alice"), "offline message from %s, want alice" % m["from"])
    await asyncio.sleep(1)
    extra = bob.unmatched_messages(body_from(env.jid("alice")))
    expect(not extra, "bob got extra copies of offline messages: %s" % [str(m) for m in extra])

    # Delivered means gone: the next login brings nothing again.
    await bob.close()
    bob2 = Client(env, "bob", resource="e2e-bob-again")
    clients.append(bob2)
    await bob2.login()
    await bob2.ping_server()
    await asyncio.sleep(1)
    again = bob2.unmatched_messages(lambda m: m["body"] in bodies)
    expect(not again, "offline messages delivered a second time at the next login: %s" % [str(m) for m in again])
    print("3 offline messages delivered in order with delay stamps %s" % [delay_stamp(m) for m in got])


async def coming_online(env, clients, rounds="100"):
    """A message that crosses the recipient's initial presence still arrives.

    bob logs in without presence, then sends his initial presence at the
    same moment as alice sends him a message (to the bare JID). Whichever
    the server handles first, bob must get the message now: either live,
    or from offline storage right after his presence (XEP-0160). Repeated,
    because the window is narrow.
    """
    alice, = await online(env, clients, "alice")
    b = env.jid("bob")
    missed, late = [], []
    for i in range(int(rounds)):
        bob = Client(env, "bob", resource="r%d" % i)
        await bob.login(presence=False)
        body = "crossing %d" % i
        bob.send_presence()
        alice.send_message(mto=b, mbody=body, mtype="chat")
        try:
            await bob.wait_message(lambda m: m["body"] == body, repr(body), timeout=2)
        except Fail:
            missed.append(body)
        late += [(i, m["body"], delay_stamp(m)) for m in bob.inbox if (m["body"] or "").startswith("crossing ") and m["body"] != body]
        await bob.close()
        if len(missed) >= 3:
            break
    if missed:
        raise Fail("%d of %d messages sent to %s as bob sent his initial presence never reached that session %s; "
                   "they came only with a later login of bob, as offline messages (round, body, delay stamp): %s"
                   % (len(missed), i + 1, b, missed, late))
    print("%s rounds: every message crossing bob's initial presence arrived at once" % rounds)


async def alias_fanout(env, clients):
    """alice -> sales@ reaches bob and carol once each, marked with XEP-0033."""
    alias = "sales@" + env.domain
    members = env.aliases.get(alias, [])
    expect(sorted(members) == [env.jid("bob"), env.jid("carol")], "fixture: sales@ members are %s" % members)
    alice, bob, carol = await online(env, clients, "alice", "bob", "carol")
    text = "Quarterly numbers are in \U0001F4C8"
    alice.send_message(mto=alias, mbody=text, mtype="chat")
    for c in (bob, carol):
        m = await c.wait_message(lambda m: m["body"] == text, "the alias message to %s" % alias)
        expect(m["from"].bare == env.jid("alice"),
               "%s: alias copy has from=%s, want the sender alice" % (c.user, m["from"]))
        addrs = address_elements(m)
        to = [a for a in addrs if a.get("type") == "to" and a.get("jid", "").split("/")[0] == alias]
        expect(to, "%s: alias copy lacks <addresses><address type='to' jid='%s'/>: %s" % (c.user, alias, m))
        expect(to[0].get("delivered") == "true", "%s: alias address not marked delivered='true': %s" % (c.user, addrs))
    await asyncio.sleep(1.5)
    for c in (bob, carol):
        dup = c.unmatched_messages(lambda m: m["body"] == text)
        expect(not dup, "%s got %d extra copies of the alias message: %s" % (c.user, len(dup), [str(m) for m in dup]))
    stray = alice.unmatched_messages(lambda m: m["body"] == text)
    expect(not stray, "the sender (not a member) got her own alias message back: %s" % [str(m) for m in stray])

    for c in (bob, carol):
        orig = [m for m in c.inbox if m["body"] == text][0]
        c.send_message(mto=orig["from"], mbody="re: numbers from " + c.user, mtype="chat")
    for c in (bob, carol):
        await alice.wait_message(body_from(c.boundjid, "re: numbers from " + c.user), "%s's reply" % c.user)
    print("alias message reached bob and carol once each; both replies reached alice")


async def wrong_password(env, clients):
    """A wrong password fails with not-authorized; the right one then works."""
    bad = Client(env, "alice", password="definitely-not-the-password", resource="wrong")
    clients.append(bad)
    reason = await bad.try_login(timeout=15)
    expect(reason is not None, "login with a wrong password succeeded (mechanism %s)" % bad.mechanism)
    expect(bad.auth_failures, "login with a wrong password failed without a SASL <failure/>: %s" % reason)
    expect(all(c == "not-authorized" for c in bad.auth_failures),
           "SASL failures were %s, want not-authorized" % bad.auth_failures)
    await bad.close()
    print("wrong password: %s (SASL failures %s)" % (reason, bad.auth_failures))
    good, = await online(env, clients, "alice")
    await good.ping_server()
    print("then logged in with %s" % good.mechanism)


async def malformed_xml(env, clients):
    """Broken XML ends that stream with not-well-formed; others carry on."""
    alice, bob, carol = await online(env, clients, "alice", "bob", "carol")
    alice.send_raw("<message to='%s' type='chat'><body>tags do not match</bdoy></message>" % env.jid("bob"))
    await alice.wait_closed(10, "malformed XML")
    conds = [c for c, _ in alice.stream_errors]
    expect(conds == ["not-well-formed"], "stream errors after malformed XML: %s, want [not-well-formed]" % alice.stream_errors)
    leaked = bob.unmatched_messages(lambda m: "do not match" in (m["body"] or ""))
    expect(not leaked, "part of the malformed stanza was delivered to bob: %s" % [str(m) for m in leaked])
    await others_unaffected(env, bob, carol)
    again = Client(env, "alice", resource="again")
    clients.append(again)
    await again.login()
    print("malformed XML closed with %s; bob and carol kept chatting" % alice.stream_errors)


async def oversize_stanza(env, clients, limit="262144"):
    """A stanza over the limit ends that stream with policy-violation."""
    alice, bob, carol = await online(env, clients, "alice", "bob", "carol")
    n = int(limit) + 4096
    alice.send_raw("<message to='%s' type='chat'><body>%s</body></message>" % (env.jid("bob"), "x" * n))
    await alice.wait_closed(15, "a %d-byte stanza" % n)
    conds = [c for c, _ in alice.stream_errors]
    expect(conds == ["policy-violation"], "stream errors after an oversize stanza: %s, want [policy-violation]" % alice.stream_errors)
    big = [m for m in bob.inbox if len(m["body"] or "") >= int(limit)]
    expect(not big, "the oversize message was delivered to bob")
    await others_unaffected(env, bob, carol)
    # A message just under the limit still goes through.
    again = Client(env, "alice", resource="again")
    clients.append(again)
    await again.login()
    ok = "y" * (int(limit) // 2)
    again.send_message(mto=bob.boundjid.bare, mbody=ok, mtype="chat")
    await bob.wait_message(body_from(again.boundjid, ok), "a %d-byte message under the limit" % len(ok))
    print("oversize stanza closed with %s; bob and carol kept chatting" % alice.stream_errors)


async def others_unaffected(env, bob, carol):
    for a, b in ((carol, bob), (bob, carol)):
        text = "still here? %s -> %s" % (a.user, b.user)
        a.send_message(mto=b.boundjid.bare, mbody=text, mtype="chat")
        await b.wait_message(body_from(a.boundjid, text), "%r" % text)
    for c in (bob, carol):
        expect(not c.closed.is_set(), "%s was disconnected too" % c.user)
        expect(not c.stream_errors, "%s got stream errors: %s" % (c.user, c.stream_errors))


async def echo(env, clients, user="bob", peer="alice", count="1"):
    """Log in as user, print READY, answer count messages from peer with 'echo: <body>'."""
    me, = await online(env, clients, user)
    print("READY %s" % me.boundjid)
    sys.stdout.flush()
    for i in range(int(count)):
        m = await me.wait_message(body_from(env.jid(peer)), "message %d from %s" % (i + 1, peer), timeout=30)
        print("got %r from %s" % (m["body"], m["from"]))
        me.send_message(mto=m["from"], mbody="echo: " + m["body"], mtype="chat")
    await me.ping_server()
    sys.stdout.flush()


async def receive(env, clients, user, peer, body):
    """Log in as user, print READY, wait for one message from peer with this body."""
    me, = await online(env, clients, user)
    print("READY %s" % me.boundjid)
    sys.stdout.flush()
    m = await me.wait_message(body_from(env.jid(peer)), "%r from %s" % (body, peer), timeout=30)
    expect(m["body"].strip() == body.strip(), "got %r from %s, want %r" % (m["body"], m["from"], body))
    print("got %r from %s" % (m["body"], m["from"]))


SCENARIOS = {
    "login": scram_login,
    "direct-tls": direct_tls,
    "domain-roster": domain_roster,
    "subscribe": subscribe_group,
    "presence": presence_status,
    "unicode": unicode_messages,
    "offline": offline_delivery,
    "alias": alias_fanout,
    "coming-online": coming_online,
    "wrong-password": wrong_password,
    "malformed": malformed_xml,
    "oversize": oversize_stanza,
    "echo": echo,
    "receive": receive,
}

if __name__ == "__main__":
    run(SCENARIOS)
