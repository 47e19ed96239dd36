#!/usr/bin/python3
"""Parley end-to-end PEP scenarios (issue 8), driven by slixmpp's own plugins.

Usage: pep.py --addr 127.0.0.1:PORT --users users.json --domain D SCENARIO

  omemo      XEP-0163/XEP-0060 publish-options with OMEMO-shaped nodes
             (XEP-0384): an open device list a stranger can read, and a
             publish with other options refused with precondition-not-met.
  bookmarks  XEP-0048 over XEP-0049 private storage on one client,
             XEP-0402 (urn:xmpp:bookmarks:1) over PEP on another: each sees
             what the other stored, with notifications.
  avatar     XEP-0084 publish -> vCard PHOTO and vcard-temp:x:update hash in
             presence (XEP-0153, XEP-0398); a vCard PHOTO -> XEP-0084 avatar.
  blocking   XEP-0191 block and unblock, with what each side sees.

Same conventions as scenarios.py: "PASS <scenario>" and exit 0, or
"FAIL <scenario>: ..." with the client's recent traffic and a non-zero exit.
"""

import asyncio
import base64
import hashlib
import os
import sys
import xml.etree.ElementTree as ET

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from slixmpp.exceptions import IqError  # noqa: E402

from parleye2e import Client, Fail, body_from, expect, presence_from, run, summarize  # noqa: E402

NS_PUBSUB_EVENT = "http://jabber.org/protocol/pubsub#event"
NS_PUBSUB_ERRORS = "http://jabber.org/protocol/pubsub#errors"
NS_BLOCKING_ERRORS = "urn:xmpp:blocking:errors"
NS_BOOKMARKS2 = "urn:xmpp:bookmarks:1"
NS_VCARD_UPDATE = "vcard-temp:x:update"
NS_AVATAR_META = "urn:xmpp:avatar:metadata"


# ---- helpers ----

def new_client(env, clients, user, plugins=(), resource=None):
    c = Client(env, user, resource=resource)
    for p in ("xep_0004", "xep_0060", "xep_0115", "xep_0163") + tuple(plugins):
        c.register_plugin(p)
    # slixmpp's xep_0060 takes event notifications off the "message"
    # event and raises these instead; they go to the inbox all the same.
    for ev in ("pubsub_publish", "pubsub_retract"):
        c.add_event_handler(ev, c._on_stanza(c.inbox))
    clients.append(c)
    return c


async def online(c, interests=()):
    """Log in; announce +notify interests in XEP-0115 caps with the initial presence."""
    await c.login(presence=False)
    for ns in interests:
        c["xep_0163"].add_interest(ns)
    await c["xep_0115"].update_caps(broadcast=False)
    c.send_presence()
    await c.ping_server()
    # The server asks the client for the features behind its caps hash;
    # give that round trip a moment before anyone publishes.
    await asyncio.sleep(0.5)
    return c


def options(c, **fields):
    """A publish-options data form (XEP-0060 section 7.1.5)."""
    form = c["xep_0004"].make_form(ftype="submit")
    form.add_field(var="FORM_TYPE", ftype="hidden", value="http://jabber.org/protocol/pubsub#publish-options")
    for k, v in fields.items():
        form.add_field(var="pubsub#" + k, value=v)
    return form


def app_condition(iq, ns):
    err = iq.xml.find("{jabber:client}error")
    if err is None:
        return None
    for child in err:
        if child.tag.startswith("{%s}" % ns):
            return child.tag.split("}", 1)[1]
    return None


def pep_event(owner, node, kind="item"):
    """Predicate: a PEP notification of node from owner (an item or a retract)."""
    def pred(m):
        if m["from"].bare != owner:
            return False
        items = m.xml.find("{%s}event/{%s}items" % (NS_PUBSUB_EVENT, NS_PUBSUB_EVENT))
        return items is not None and items.get("node") == node and items.find("{%s}%s" % (NS_PUBSUB_EVENT, kind)) is not None
    return pred


def event_items(m):
    return m.xml.find("{%s}event/{%s}items" % (NS_PUBSUB_EVENT, NS_PUBSUB_EVENT))


# ---- scenarios ----

async def omemo(env, clients):
    """OMEMO device lists with publish-options access_model=open (run on a host without the domain roster)."""
    alice = await online(new_client(env, clients, "alice"))
    carol = await online(new_client(env, clients, "carol"))
    info = await alice["xep_0030"].get_info(jid=alice.boundjid.bare, timeout=10)
    feats = info["disco_info"]["features"]
    expect("http://jabber.org/protocol/pubsub#publish-options" in feats,
           "the account does not announce publish-options: %s" % sorted(feats))
    ids = [(i[0], i[1]) for i in info["disco_info"]["identities"]]
    expect(("pubsub", "pep") in ids, "no pubsub/pep identity on the account: %s" % ids)

    for node, payload in (
        ("urn:xmpp:omemo:2:devices",
         "<devices xmlns='urn:xmpp:omemo:2'><device id='31415' label='e2e'/></devices>"),
        ("eu.siacs.conversations.axolotl.devicelist",
         "<list xmlns='eu.siacs.conversations.axolotl'><device id='31415'/></list>"),
    ):
        await alice["xep_0060"].publish(alice.boundjid.bare, node, id="current", payload=ET.fromstring(payload),
                                        options=options(alice, access_model="open"), timeout=10)
        # carol shares no presence with alice, yet reads the open list.
        res = await carol["xep_0060"].get_items(alice.boundjid.bare, node, timeout=10)
        items = list(res["pubsub"]["items"])
        expect(len(items) == 1 and items[0]["id"] == "current", "carol reads %s: %s" % (node, summarize(res)))
        dev = items[0].xml.find(".//{*}device")
        expect(dev is not None and dev.get("id") == "31415", "device list read by carol: %s" % summarize(res))
        # Publishing again with other options: precondition-not-met.
        try:
            await alice["xep_0060"].publish(alice.boundjid.bare, node, id="current", payload=ET.fromstring(payload),
                                            options=options(alice, access_model="presence"), timeout=10)
            raise Fail("a publish with mismatched publish-options to %s succeeded" % node)
        except IqError as e:
            cond = e.iq["error"]["condition"]
            app = app_condition(e.iq, NS_PUBSUB_ERRORS)
            expect(cond == "conflict" and app == "precondition-not-met",
                   "mismatched options: %s / %s: %s" % (cond, app, summarize(e.iq)))
        print("%s: open for carol, precondition-not-met on mismatch" % node)
    # A node with the default (presence) access model stays closed to carol.
    await alice["xep_0060"].publish(alice.boundjid.bare, "urn:xmpp:omemo:2:bundles", id="31415",
                                    payload=ET.fromstring("<bundle xmlns='urn:xmpp:omemo:2'/>"), timeout=10)
    try:
        await carol["xep_0060"].get_items(alice.boundjid.bare, "urn:xmpp:omemo:2:bundles", timeout=10)
        raise Fail("carol read a presence-access node")
    except IqError as e:
        expect(e.iq["error"]["condition"] == "not-authorized", "closed node: %s" % summarize(e.iq))


async def bookmarks(env, clients):
    """XEP-0048 (private XML) and XEP-0402 (PEP) clients of one account share bookmarks."""
    legacy = new_client(env, clients, "alice", plugins=("xep_0045", "xep_0049", "xep_0048", "xep_0223"), resource="legacy")
    await online(legacy)
    modern = await online(new_client(env, clients, "alice", resource="modern"), interests=[NS_BOOKMARKS2])
    bm = legacy["xep_0048"].stanza.Bookmarks()
    bm.add_conference("council@conference.%s" % env.domain, "Puck", name="Council of Oberon", autojoin=True)
    await legacy["xep_0048"].set_bookmarks(bm, method="xep_0049", timeout=10)

    m = await modern.wait_message(pep_event(env.jid("alice"), NS_BOOKMARKS2), "XEP-0402 event for a XEP-0048 bookmark")
    item = event_items(m).find("{%s}item" % NS_PUBSUB_EVENT)
    conf = item.find("{%s}conference" % NS_BOOKMARKS2)
    expect(item.get("id") == "council@conference.%s" % env.domain and conf is not None
           and conf.get("name") == "Council of Oberon" and conf.get("autojoin") in ("true", "1")
           and conf.findtext("{%s}nick" % NS_BOOKMARKS2) == "Puck",
           "converted bookmark: %s" % summarize(m))
    res = await modern["xep_0060"].get_items(env.jid("alice"), NS_BOOKMARKS2, timeout=10)
    expect([i["id"] for i in res["pubsub"]["items"]] == ["council@conference.%s" % env.domain],
           "XEP-0402 items: %s" % summarize(res))

    # The modern client adds one the XEP-0402 way.
    orchard = "orchard@conference.%s" % env.domain
    await modern["xep_0060"].publish(
        env.jid("alice"), NS_BOOKMARKS2, id=orchard,
        payload=ET.fromstring("<conference xmlns='%s' name='The Orchard' autojoin='false'><nick>JC</nick></conference>" % NS_BOOKMARKS2),
        options=options(modern, persist_items="true", max_items="max", send_last_published_item="never", access_model="whitelist"),
        timeout=10)
    res = await legacy["xep_0048"].get_bookmarks(method="xep_0049", timeout=10)
    confs = {str(c["jid"]): c for c in res["private"]["bookmarks"]["conferences"]}
    expect(set(confs) == {"council@conference.%s" % env.domain, orchard}, "XEP-0048 view: %s" % summarize(res))
    expect(confs[orchard]["name"] == "The Orchard" and confs[orchard]["nick"] == "JC", "orchard: %s" % summarize(res))

    # Retracted with notify: gone from the legacy view too.
    await modern["xep_0060"].retract(env.jid("alice"), NS_BOOKMARKS2, orchard, notify=True, timeout=10)
    await modern.wait_message(pep_event(env.jid("alice"), NS_BOOKMARKS2, "retract"), "retraction event")
    res = await legacy["xep_0048"].get_bookmarks(method="xep_0049", timeout=10)
    left = [str(c["jid"]) for c in res["private"]["bookmarks"]["conferences"]]
    expect(left == ["council@conference.%s" % env.domain], "after retraction: %s" % left)
    print("bookmarks shared between XEP-0048/0049 and XEP-0402 clients")


async def avatar(env, clients):
    """XEP-0084 avatar <-> vCard (XEP-0153) conversion by the server (XEP-0398)."""
    alice = await online(new_client(env, clients, "alice", plugins=("xep_0084", "xep_0054")))
    bob = await online(new_client(env, clients, "bob", plugins=("xep_0084", "xep_0054")))
    png = b"\x89PNG\r\n\x1a\n" + os.urandom(64)
    sha = hashlib.sha1(png).hexdigest()
    await alice["xep_0084"].publish_avatar(png, timeout=10)
    await alice["xep_0084"].publish_avatar_metadata([{"id": sha, "type": "image/png", "bytes": len(png)}], timeout=10)
    await bob.wait_message(pep_event(env.jid("alice"), NS_AVATAR_META), "alice's avatar metadata event")

    def with_hash(h):
        def pred(p):
            x = p.xml.find("{%s}x/{%s}photo" % (NS_VCARD_UPDATE, NS_VCARD_UPDATE))
            return p["from"].bare == env.jid("alice") and x is not None and (x.text or "") == h
        return pred
    await bob.wait_presence(with_hash(sha), "alice's presence with the avatar hash")
    vc = await bob["xep_0054"].get_vcard(env.jid("alice"), cached=False, timeout=10)
    photo = vc["vcard_temp"]["PHOTO"]
    expect(photo["BINVAL"] == png and photo["TYPE"] == "image/png",
           "alice's vCard PHOTO after a XEP-0084 publish: %r %r" % (photo["TYPE"], photo["BINVAL"][:16]))
    print("XEP-0084 -> vCard PHOTO and presence hash %s" % sha)

    # The other way: a vCard with a new PHOTO.
    png2 = b"\x89PNG\r\n\x1a\n" + os.urandom(64)
    sha2 = hashlib.sha1(png2).hexdigest()
    vcard = alice["xep_0054"].make_vcard()
    vcard["FN"] = "Alice"
    vcard["PHOTO"]["TYPE"] = "image/png"
    vcard["PHOTO"]["BINVAL"] = png2
    await alice["xep_0054"].publish_vcard(vcard, timeout=10)

    def meta_for(h):
        def pred(m):
            if not pep_event(env.jid("alice"), NS_AVATAR_META)(m):
                return False
            return event_items(m).find("{%s}item" % NS_PUBSUB_EVENT).get("id") == h
        return pred
    await bob.wait_message(meta_for(sha2), "metadata event for the vCard photo")
    res = await bob["xep_0084"].retrieve_avatar(env.jid("alice"), sha2, timeout=10)
    data = res["pubsub"]["items"]["item"]["avatar_data"]["value"]
    expect(data == png2, "avatar data from the vCard: %r" % data[:16])
    await bob.wait_presence(with_hash(sha2), "alice's presence with the new hash")
    print("vCard PHOTO -> XEP-0084 avatar %s" % sha2)


async def blocking(env, clients):
    """XEP-0191: block, what each side sees, unblock."""
    alice = await online(new_client(env, clients, "alice", plugins=("xep_0191",)))
    bob = await online(new_client(env, clients, "bob"))
    res = await alice["xep_0191"].get_blocked(timeout=10)
    expect(len(res["blocklist"]["items"]) == 0, "initial blocklist: %s" % summarize(res))
    await alice["xep_0191"].block([bob.boundjid.bare], timeout=10)
    await bob.wait_presence(presence_from(alice.boundjid, "unavailable"), "alice going unavailable for bob")
    res = await alice["xep_0191"].get_blocked(timeout=10)
    expect({str(j) for j in res["blocklist"]["items"]} == {str(bob.boundjid.bare)}, "blocklist: %s" % summarize(res))

    bob.send_message(mto=alice.boundjid.bare, mbody="are you there?", mtype="chat")
    err = await bob.wait_message(lambda m: m["type"] == "error", "bounce of bob's message")
    expect(err["error"]["condition"] == "service-unavailable", "bob's bounce: %s" % summarize(err))
    alice.send_message(mto=bob.boundjid.bare, mbody="psst", mtype="chat")
    err = await alice.wait_message(lambda m: m["type"] == "error", "bounce of alice's message")
    expect(err["error"]["condition"] == "not-acceptable" and app_condition(err, NS_BLOCKING_ERRORS) == "blocked",
           "alice's bounce: %s" % summarize(err))
    await asyncio.sleep(0.3)
    expect(not alice.unmatched_messages(body_from(bob.boundjid)), "alice got bob's message while blocking him")

    await alice["xep_0191"].unblock([bob.boundjid.bare], timeout=10)
    await bob.wait_presence(presence_from(alice.boundjid, "available"), "alice available again for bob")
    bob.send_message(mto=alice.boundjid.bare, mbody="hello again", mtype="chat")
    await alice.wait_message(body_from(bob.boundjid, "hello again"), "bob's message after the unblock")
    print("blocked: bounces service-unavailable / not-acceptable+blocked; unblocked: presence and messages flow")


SCENARIOS = {
    "omemo": omemo,
    "bookmarks": bookmarks,
    "avatar": avatar,
    "blocking": blocking,
}

if __name__ == "__main__":
    run(SCENARIOS)
