#!/usr/bin/python3
"""Parley end-to-end multi-user chat scenarios (issue 8), driven by slixmpp.

Usage: muc.py --addr 127.0.0.1:PORT --users users.json --domain D SCENARIO

Chat rooms on conference.<domain> (XEP-0045) as slixmpp's xep_0045 plugin
uses them: creating and configuring rooms, history on entering,
moderation (voice, kick, ban), invitations (mediated, and XEP-0249
direct), the room archive over MAM (XEP-0313) and self-ping (XEP-0410).
Same conventions as scenarios.py: "PASS <scenario>" and exit 0, or
"FAIL <scenario>: ..." with the client's recent traffic and a non-zero
exit. e2e/muc_test.go runs them.
"""

import asyncio
import os
import sys

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from slixmpp.exceptions import IqError, PresenceError  # noqa: E402
from slixmpp.xmlstream.handler import Callback  # noqa: E402
from slixmpp.xmlstream.matcher import MatchXPath  # noqa: E402

from parleye2e import Client, Fail, expect, run, summarize  # noqa: E402

NS_MUC = "http://jabber.org/protocol/muc"
NS_ROOMCONFIG = NS_MUC + "#roomconfig"
NS_USER = NS_MUC + "#user"
NS_MAM = "urn:xmpp:mam:2"
NS_SID = "urn:xmpp:sid:0"
NS_DELAY = "urn:xmpp:delay"
NS_CLIENT = "jabber:client"


def service(env):
    return "conference." + env.domain


def room_jid(env, name):
    return "%s@%s" % (name, service(env))


async def new_client(env, clients, user, resource=None):
    c = Client(env, user, resource=resource)
    for p in ("xep_0004", "xep_0045", "xep_0059", "xep_0082", "xep_0249", "xep_0297", "xep_0313", "xep_0359"):
        c.register_plugin(p)
    # Room presence never reaches Client.presences (the xep_0045 plugin
    # keeps it from slixmpp's roster and its 'presence' event), nor do
    # messages without a body reach Client.inbox: keep both here.
    c.mucp = []
    c.everything = []

    def record(into):
        def handler(st):
            into.append(st)
            c._arrived.set()
        return handler
    c.add_event_handler("groupchat_presence", record(c.mucp))
    c.register_handler(Callback("muc: every message", MatchXPath("{%s}message" % c.default_ns), record(c.everything)))
    clients.append(c)
    await c.login()
    return c


async def join(c, room, nick, **kw):
    """Enter room; returns (self-presence, subject, occupants, history)."""
    try:
        return await c["xep_0045"].join_muc_wait(room, nick, timeout=10, **kw)
    except PresenceError as e:
        raise Fail("%s: entering %s as %s refused: %s" % (c.boundjid, room, nick, summarize(e.presence)))
    except asyncio.TimeoutError:
        raise Fail("%s: entering %s as %s: no self-presence and subject within 10s" % (c.boundjid, room, nick))


async def join_refused(c, room, nick, condition, **kw):
    """Enter room expecting a presence error with condition."""
    try:
        await c["xep_0045"].join_muc_wait(room, nick, timeout=10, **kw)
    except PresenceError as e:
        got = e.presence["error"]["condition"]
        expect(got == condition, "%s: entering %s: error %r, want %r: %s" % (c.boundjid, room, got, condition, summarize(e.presence)))
        return
    raise Fail("%s: entered %s as %s, want a %s error" % (c.boundjid, room, nick, condition))


def submit_form(c, fields):
    form = c["xep_0004"].make_form(ftype="submit")
    form.add_field(var="FORM_TYPE", ftype="hidden", value=NS_ROOMCONFIG)
    for var, value in fields.items():
        form.add_field(var=var, value=value)
    return form


async def create(c, room, nick, fields=None):
    """Create room with c as owner: instant, or configured with fields."""
    pres, subject, _, _ = await join(c, room, nick)
    codes = pres["muc"]["status_codes"]
    expect({110, 201} <= codes, "creating %s: self-presence status codes %s, want 110 and 201" % (room, sorted(codes)))
    expect(pres["muc"]["affiliation"] == "owner" and pres["muc"]["role"] == "moderator",
           "the creator of %s is %s/%s, want owner/moderator" % (room, pres["muc"]["affiliation"], pres["muc"]["role"]))
    if fields is None:
        form = c["xep_0004"].make_form(ftype="submit")  # an instant room
    else:
        form = submit_form(c, fields)
    await c["xep_0045"].set_room_config(room, form, timeout=10)


async def wait_muc_presence(c, pred, what, timeout=10):
    return await c._wait(c.mucp, pred, timeout, what)


async def wait_any(c, pred, what, timeout=10):
    """Wait for a message, with a body or not."""
    return await c._wait(c.everything, pred, timeout, what)


async def set_subject(c, room, subject):
    c["xep_0045"].set_subject(room, subject)
    await wait_any(c, lambda m: m["from"].bare == room and m["subject"] == subject and not m["body"], "subject change")


async def wait_groupchat(c, room, body, timeout=10):
    return await wait_any(c, 
        lambda m: m["type"] == "groupchat" and m["from"].bare == room and m["body"] == body,
        "groupchat %r in %s" % (body, room), timeout)


def stanza_id(msg, by):
    for el in msg.xml.findall("{%s}stanza-id" % NS_SID):
        if el.get("by") == by:
            return el.get("id")
    return None


# ---- scenarios ----

async def create_configure(env, clients):
    alice = await new_client(env, clients, "alice")
    bob = await new_client(env, clients, "bob")
    room = room_jid(env, "planning")
    pres, _, _, _ = await join(alice, room, "Alice")
    expect({110, 201} <= pres["muc"]["status_codes"], "new room: status codes %s" % sorted(pres["muc"]["status_codes"]))
    # Locked until configured.
    await join_refused(bob, room, "Bob", "item-not-found")
    form = await alice["xep_0045"].get_room_config(room, timeout=10)
    fields = form.get_fields()
    for var in ("muc#roomconfig_roomname", "muc#roomconfig_persistentroom", "muc#roomconfig_membersonly",
                "muc#roomconfig_moderatedroom", "muc#roomconfig_passwordprotectedroom", "muc#roomconfig_roomsecret",
                "muc#roomconfig_whois", "muc#roomconfig_roomowners"):
        expect(var in fields, "the configuration form lacks %s (has %s)" % (var, sorted(fields)))
    await alice["xep_0045"].set_room_config(room, submit_form(alice, {
        "muc#roomconfig_roomname": "Planning \u2615 Caf\u00e9",
        "muc#roomconfig_roomdesc": "Where plans are made",
        "muc#roomconfig_persistentroom": "1",
        "muc#roomconfig_publicroom": "1",
        "muc#roomconfig_whois": "anyone",
    }), timeout=10)
    info = await alice["xep_0030"].get_info(jid=room, timeout=10)
    features = set(info["disco_info"]["features"])
    for f in (NS_MUC, "muc_persistent", "muc_public", "muc_nonanonymous", "muc_open", "muc_unsecured", NS_MAM):
        expect(f in features, "room features lack %s: %s" % (f, sorted(features)))
    names = [i[3] for i in info["disco_info"]["identities"]]
    expect("Planning \u2615 Caf\u00e9" in names, "room identity names %s" % names)
    items = await bob["xep_0030"].get_items(jid=service(env), timeout=10)
    listed = {i[0] for i in items["disco_items"]["items"]}
    expect(room in listed, "%s not listed by %s: %s" % (room, service(env), listed))
    # Non-anonymous: bob is warned (100), alice sees bob's real JID.
    pres, _, occupants, _ = await join(bob, room, "Bob")
    expect(100 in pres["muc"]["status_codes"], "non-anonymous room without 100: %s" % sorted(pres["muc"]["status_codes"]))
    others = [str(p["from"]) for p in occupants if str(p["from"]) != room + "/Bob"]
    expect(others == [room + "/Alice"], "bob's occupant list: %s" % others)
    p = await wait_muc_presence(alice, lambda p: str(p["from"]) == room + "/Bob", "bob's presence")
    expect(p["muc"]["jid"] == bob.boundjid, "alice sees bob as %r, want %s" % (str(p["muc"]["jid"]), bob.boundjid))
    # Only owners configure.
    try:
        await bob["xep_0045"].get_room_config(room, timeout=10)
        raise Fail("a participant got the configuration form")
    except IqError as e:
        expect(e.iq["error"]["condition"] == "forbidden", "non-owner configuring: %s" % summarize(e.iq))
    # A later change is announced to the occupants.
    await alice["xep_0045"].set_room_config(room, submit_form(alice, {"muc#roomconfig_roomdesc": "Plans, made here"}), timeout=10)
    await wait_any(bob, lambda m: m["from"] == room and 104 in m["muc"]["status_codes"], "configuration change notice (104)")


async def history(env, clients):
    alice = await new_client(env, clients, "alice")
    bob = await new_client(env, clients, "bob")
    carol = await new_client(env, clients, "carol")
    room = room_jid(env, "history")
    await create(alice, room, "Alice")
    await set_subject(alice, room, "Plans for Q3")
    for i in range(10):
        alice.send_message(mto=room, mbody="line %d" % i, mtype="groupchat")
        await wait_groupchat(alice, room, "line %d" % i)
    _, subject, _, hist = await join(bob, room, "Bob", maxstanzas=3)
    bodies = [m["body"] for m in hist]
    expect(bodies == ["line 7", "line 8", "line 9"], "history with maxstanzas=3: %s" % bodies)
    for m in hist:
        expect(m["delay"]["from"] == room, "history without a delay from the room: %s" % summarize(m))
        expect(stanza_id(m, room), "history message without the room's stanza-id: %s" % summarize(m))
    expect(subject["subject"] == "Plans for Q3" and str(subject["from"]) == room + "/Alice",
           "subject on entering: %s" % summarize(subject))
    _, _, _, hist = await join(carol, room, "Carol", maxchars=0)
    expect(hist == [], "history with maxchars=0: %s" % [m["body"] for m in hist])
    # Live: everyone gets it once, with the sender's id kept.
    msg = bob.make_message(mto=room, mbody="live from bob", mtype="groupchat")
    msg["id"] = "bob-live-1"
    msg.send()
    for c in (alice, bob, carol):
        m = await wait_groupchat(c, room, "live from bob")
        expect(m["id"] == "bob-live-1" and str(m["from"]) == room + "/Bob", "live message to %s: %s" % (c.boundjid, summarize(m)))


async def moderation(env, clients):
    alice = await new_client(env, clients, "alice")
    bob = await new_client(env, clients, "bob")
    carol = await new_client(env, clients, "carol")
    room = room_jid(env, "moderated")
    await create(alice, room, "Alice", {"muc#roomconfig_moderatedroom": "1"})
    pres, _, _, _ = await join(bob, room, "Bob")
    expect(pres["muc"]["role"] == "visitor", "newcomer to a moderated room is %r, want visitor" % pres["muc"]["role"])
    await join(carol, room, "Carol")
    # A visitor may not speak.
    bob.send_message(mto=room, mbody="may I?", mtype="groupchat")
    err = await bob.wait_message(lambda m: m["type"] == "error", "error for a visitor speaking")
    expect(err["error"]["condition"] == "forbidden", "visitor speaking: %s" % summarize(err))
    # Bob asks for voice: the moderators get the approval form.
    bob["xep_0045"].request_voice(room, "participant")
    form = await wait_any(alice, lambda m: m["from"] == room and m.xml.find("{jabber:x:data}x") is not None, "the voice approval form")
    values = form["form"].get_values()
    expect(values.get("muc#roomnick") == "Bob" and values.get("FORM_TYPE") in (NS_MUC + "#request", [NS_MUC + "#request"]),
           "voice approval form: %s (values %s)" % (summarize(form), values))
    # Voice.
    await alice["xep_0045"].set_role(room, "Bob", "participant", reason="speak up", timeout=10)
    await wait_muc_presence(bob, lambda p: str(p["from"]) == room + "/Bob" and p["muc"]["role"] == "participant", "bob's voice")
    bob.send_message(mto=room, mbody="thank you", mtype="groupchat")
    await wait_groupchat(carol, room, "thank you")
    roles = await alice["xep_0045"].get_roles_list(room, "participant", timeout=10)
    expect(roles == ["Bob"], "voice list (carol is a visitor): %s" % roles)
    # Kick.
    await alice["xep_0045"].set_role(room, "Carol", "none", reason="enough", timeout=10)
    p = await wait_muc_presence(carol, lambda p: str(p["from"]) == room + "/Carol" and p["type"] == "unavailable", "carol kicked")
    expect({110, 307} <= p["muc"]["status_codes"], "kicked: status codes %s" % sorted(p["muc"]["status_codes"]))
    p = await wait_muc_presence(bob, lambda p: str(p["from"]) == room + "/Carol" and p["type"] == "unavailable", "carol kicked, as bob sees it")
    expect(307 in p["muc"]["status_codes"], "kick as others see it: %s" % sorted(p["muc"]["status_codes"]))
    # Ban, by bare JID; carol cannot come back.
    await join(carol, room, "Carol")
    await alice["xep_0045"].set_affiliation(room, "outcast", jid=carol.boundjid.bare, reason="out", timeout=10)
    p = await wait_muc_presence(carol, lambda p: str(p["from"]) == room + "/Carol" and p["type"] == "unavailable"
                                  and 301 in p["muc"]["status_codes"], "carol banned")
    await join_refused(carol, room, "Carol", "forbidden")
    outcasts = await alice["xep_0045"].get_affiliation_list(room, "outcast", timeout=10)
    expect([str(j) for j in outcasts] == [carol.boundjid.bare], "ban list: %s" % outcasts)
    # A participant may not kick.
    try:
        await bob["xep_0045"].set_role(room, "Alice", "none", timeout=10)
        raise Fail("a participant kicked the owner")
    except IqError as e:
        expect(e.iq["error"]["condition"] == "forbidden", "participant kicking: %s" % summarize(e.iq))
    # Membership, then a members-only room keeps others out.
    await alice["xep_0045"].set_affiliation(room, "member", jid=bob.boundjid.bare, timeout=10)
    await wait_muc_presence(bob, lambda p: str(p["from"]) == room + "/Bob" and p["muc"]["affiliation"] == "member", "bob a member")
    await alice["xep_0045"].set_room_config(room, submit_form(alice, {"muc#roomconfig_membersonly": "1"}), timeout=10)
    await alice["xep_0045"].set_affiliation(room, "none", jid=carol.boundjid.bare, timeout=10)
    await join_refused(carol, room, "Carol", "registration-required")


async def invitations(env, clients):
    alice = await new_client(env, clients, "alice")
    bob = await new_client(env, clients, "bob")
    carol = await new_client(env, clients, "carol")
    room = room_jid(env, "invites")
    await create(alice, room, "Alice", {"muc#roomconfig_membersonly": "1", "muc#roomconfig_roomsecret": "s3same"})
    # Mediated: through the room, with the password; bob becomes a member.
    alice["xep_0045"].invite(room, bob.boundjid.bare, reason="join us")
    inv = await wait_any(bob, lambda m: m.xml.find("{%s}x/{%s}invite" % (NS_USER, NS_USER)) is not None, "a mediated invitation")
    x = inv.xml.find("{%s}x" % NS_USER)
    expect(inv["from"] == room and x is not None and x.findtext("{%s}password" % NS_USER) == "s3same",
           "mediated invitation: %s" % summarize(inv))
    expect(x.find("{%s}invite" % NS_USER).get("from") == str(alice.boundjid), "invitation from: %s" % summarize(inv))
    await join(bob, room, "Bob", password="s3same")
    # Declined, the inviter hears of it.
    alice["xep_0045"].invite(room, carol.boundjid.bare)
    await wait_any(carol, lambda m: m.xml.find("{%s}x/{%s}invite" % (NS_USER, NS_USER)) is not None, "a mediated invitation")
    carol["xep_0045"].decline(room, alice.boundjid.bare, reason="busy")
    d = await wait_any(alice, lambda m: m.xml.find("{%s}x/{%s}decline" % (NS_USER, NS_USER)) is not None, "carol's decline")
    dx = d.xml.find("{%s}x/{%s}decline" % (NS_USER, NS_USER))
    expect(dx is not None and dx.get("from") == carol.boundjid.bare and dx.findtext("{%s}reason" % NS_USER) == "busy",
           "decline: %s" % summarize(d))
    # Direct (XEP-0249), user to user.
    room2 = room_jid(env, "direct")
    await create(alice, room2, "Alice", {"muc#roomconfig_roomsecret": "pw2"})
    alice["xep_0249"].send_invitation(carol.boundjid.bare, room2, password="pw2", reason="come in")
    di = await wait_any(carol, lambda m: m.xml.find("{jabber:x:conference}x") is not None, "a direct invitation")
    gi = di["groupchat_invite"]
    expect(gi["jid"] == room2 and gi["password"] == "pw2" and gi["reason"] == "come in", "direct invitation: %s" % summarize(di))
    await join(carol, gi["jid"], "Carol", password=gi["password"])


async def archive(env, clients):
    alice = await new_client(env, clients, "alice")
    bob = await new_client(env, clients, "bob")
    room = room_jid(env, "archive")
    await create(alice, room, "Alice")
    await join(bob, room, "Bob")
    live_ids = []
    for i in range(12):
        c = alice if i % 2 == 0 else bob
        c.send_message(mto=room, mbody="archived %02d" % i, mtype="groupchat")
        m = await wait_groupchat(alice, room, "archived %02d" % i)
        live_ids.append(stanza_id(m, room))
    expect(all(live_ids), "live messages without the room's stanza-id")
    # All of it, paged by 5, with slixmpp's MAM iterator on the room.
    got = []
    async for m in bob["xep_0313"].iterate(jid=room, rsm={"max": 5}):
        res = m["mam_result"]
        fwd = res["forwarded"]["stanza"]
        got.append((res["id"], fwd["body"], str(fwd["from"])))
    expect([g[1] for g in got] == ["archived %02d" % i for i in range(12)], "room archive: %s" % [g[1] for g in got])
    expect([g[0] for g in got] == live_ids, "archive ids differ from the live stanza-ids")
    expect(all(g[2] == room + ("/Alice" if i % 2 == 0 else "/Bob") for i, g in enumerate(got)),
           "archived senders: %s" % [g[2] for g in got])
    # The last page.
    # (slixmpp's retrieve() turns rsm values into strings, so an empty
    # <before/> is built by hand.)
    iq = bob.make_iq_set(ito=room)
    iq["mam"]["queryid"] = "lastpage"
    iq["mam"]["rsm"]["max"] = "3"
    iq["mam"]["rsm"]["before"] = True
    start = len(bob.everything)
    await iq.send(timeout=10)
    last = [m["mam_result"]["forwarded"]["stanza"]["body"] for m in bob.everything[start:]
            if m["mam_result"]["queryid"] == "lastpage"]
    expect(last == ["archived 09", "archived 10", "archived 11"], "last page: %s" % last)
    # Self-ping (XEP-0410): answered by the room while joined.
    await bob["xep_0199"].ping(jid=room + "/Bob", timeout=10)
    # The room handles bob's stanzas in order: the ping comes after he left.
    bob["xep_0045"].leave_muc(room, "Bob")
    try:
        await bob["xep_0199"].ping(jid=room + "/Bob", timeout=10)
        raise Fail("self-ping answered after leaving")
    except IqError as e:
        expect(e.iq["error"]["condition"] == "not-acceptable", "self-ping after leaving: %s" % summarize(e.iq))


async def disconnect(env, clients):
    alice = await new_client(env, clients, "alice")
    bob = await new_client(env, clients, "bob")
    room = room_jid(env, "drop")
    await create(alice, room, "Alice")
    await join(bob, room, "Bob")
    bob.abort()  # no unavailable presence, the TCP connection just goes
    p = await wait_muc_presence(alice, lambda p: str(p["from"]) == room + "/Bob" and p["type"] == "unavailable",
                                  "bob's departure after his connection dropped", 30)
    expect(p["muc"]["role"] == "none", "departure presence: %s" % summarize(p))


async def persist_create(env, clients):
    alice = await new_client(env, clients, "alice")
    room = room_jid(env, "kept")
    await create(alice, room, "Alice", {"muc#roomconfig_persistentroom": "1", "muc#roomconfig_roomname": "Kept"})
    await alice["xep_0045"].set_affiliation(room, "member", jid="bob@" + env.domain, nick="Bobby", timeout=10)
    await set_subject(alice, room, "Survives restarts")
    for i in range(3):
        alice.send_message(mto=room, mbody="before restart %d" % i, mtype="groupchat")
        await wait_groupchat(alice, room, "before restart %d" % i)


async def persist_check(env, clients):
    bob = await new_client(env, clients, "bob")
    room = room_jid(env, "kept")
    info = await bob["xep_0030"].get_info(jid=room, timeout=10)
    expect("muc_persistent" in info["disco_info"]["features"], "the room came back without muc_persistent")
    pres, subject, _, hist = await join(bob, room, "Bobby", maxstanzas=10)
    expect(pres["muc"]["affiliation"] == "member", "bob's affiliation after the restart: %r" % pres["muc"]["affiliation"])
    expect(201 not in pres["muc"]["status_codes"], "the room was created anew after the restart")
    expect(subject["subject"] == "Survives restarts", "subject after the restart: %s" % summarize(subject))
    bodies = [m["body"] for m in hist]
    expect(bodies == ["before restart %d" % i for i in range(3)], "history after the restart: %s" % bodies)
    got = []
    async for m in bob["xep_0313"].iterate(jid=room, rsm={"max": 10}):
        got.append(m["mam_result"]["forwarded"]["stanza"]["body"])
    expect(got == bodies, "archive after the restart: %s" % got)


NS_REGISTER = "jabber:iq:register"
NS_MUC_REGISTER = NS_MUC + "#register"


async def register_iq(c, room, nick=None, remove=False):
    """Registration with a room (XEP-0045 7.10): a get without nick, a
    submitted form with it; returns the answer's query element."""
    import xml.etree.ElementTree as ET
    iq = c.Iq()
    iq["to"] = room
    q = ET.Element("{%s}query" % NS_REGISTER)
    if remove:
        iq["type"] = "set"
        ET.SubElement(q, "{%s}remove" % NS_REGISTER)
    elif nick is None:
        iq["type"] = "get"
    else:
        iq["type"] = "set"
        form = c["xep_0004"].make_form(ftype="submit")
        form.add_field(var="FORM_TYPE", ftype="hidden", value=NS_MUC_REGISTER)
        form.add_field(var="muc#register_roomnick", value=nick)
        q.append(form.xml)
    iq.append(q)
    res = await iq.send(timeout=10)
    return res.xml.find("{%s}query" % NS_REGISTER)


async def registration(env, clients):
    alice = await new_client(env, clients, "alice")
    bob = await new_client(env, clients, "bob")
    carol = await new_client(env, clients, "carol")
    room = room_jid(env, "club")
    await create(alice, room, "Alice")
    info = await bob["xep_0030"].get_info(jid=room, timeout=10)
    expect(NS_REGISTER in info["disco_info"]["features"], "the room does not announce %s" % NS_REGISTER)
    q = await register_iq(bob, room)
    x = q.find("{jabber:x:data}x") if q is not None else None
    expect(x is not None and any(f.get("var") == "muc#register_roomnick" for f in x.findall("{jabber:x:data}field")),
           "registration form without muc#register_roomnick")
    await register_iq(bob, room, "Bobby")
    q = await register_iq(bob, room)
    expect(q.find("{%s}registered" % NS_REGISTER) is not None and q.findtext("{%s}username" % NS_REGISTER) == "Bobby",
           "after registering, the room does not say so")
    nick = await bob["xep_0030"].get_info(jid=room, node="x-roomuser-item", timeout=10)
    expect([i[3] for i in nick["disco_info"]["identities"]] == ["Bobby"], "reserved nickname by disco: %s" % nick["disco_info"]["identities"])
    # The reserved nickname is refused to carol, and bob enters as a member.
    await join_refused(carol, room, "Bobby", "conflict")
    try:
        await register_iq(carol, room, "bobby")
        raise Fail("carol registered bob's reserved nickname")
    except IqError as e:
        expect(e.iq["error"]["condition"] == "conflict", "registering a reserved nickname: %s" % summarize(e.iq))
    pres, _, _, _ = await join(bob, room, "Bobby")
    expect(pres["muc"]["affiliation"] == "member", "bob's affiliation after registering: %r" % pres["muc"]["affiliation"])
    # Members-only: registration is not a way in.
    closed = room_jid(env, "closed")
    await create(alice, closed, "Alice", {"muc#roomconfig_membersonly": "1"})
    try:
        await register_iq(carol, closed, "Carol")
        raise Fail("carol registered with a members-only room she is not a member of")
    except IqError as e:
        expect(e.iq["error"]["condition"] == "not-allowed", "registering with a members-only room: %s" % summarize(e.iq))
    await register_iq(bob, room, remove=True)
    q = await register_iq(bob, room)
    expect(q.find("{%s}registered" % NS_REGISTER) is None, "still registered after <remove/>")
    print("muc registration: form, reserved nickname refused to others, membership, members-only refused, remove")


SCENARIOS = {
    "muc-registration": registration,
    "muc-persist-create": persist_create,
    "muc-persist-check": persist_check,
    "muc-create-configure": create_configure,
    "muc-history": history,
    "muc-moderation": moderation,
    "muc-invitations": invitations,
    "muc-archive": archive,
    "muc-disconnect": disconnect,
}

if __name__ == "__main__":
    run(SCENARIOS)
