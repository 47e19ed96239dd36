#!/usr/bin/python3
"""Parley end-to-end push notification scenarios (issue 8), driven by slixmpp.

Usage: push.py --addr 127.0.0.1:PORT --users users.json --domain D SCENARIO

Push notifications (XEP-0357) as a phone client registers them: alice's
phone enables push with an app server and a node (and publish-options);
while the phone is offline, or its session waits detached for a XEP-0198
resumption, a message to alice makes the server publish a
urn:xmpp:push:summary notification to the app server. carol plays the app
server: a slixmpp client whose full JID is the registered app server JID,
answering the publish iqs. slixmpp 1.8.3 has no xep_0357 plugin, so the
enable/disable iqs are built by hand. Same conventions as scenarios.py:
"PASS <scenario>" and exit 0, or "FAIL <scenario>: ..." and a non-zero
exit. e2e/push_test.go runs them.
"""

import asyncio
import os
import sys
import xml.etree.ElementTree as ET

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from slixmpp.xmlstream.handler import Callback  # noqa: E402
from slixmpp.xmlstream.matcher import MatchXPath  # noqa: E402

from parleye2e import Client, Fail, expect, run, summarize  # noqa: E402

NS_PUSH = "urn:xmpp:push:0"
NS_PUBSUB = "http://jabber.org/protocol/pubsub"
NS_DATA = "jabber:x:data"
NS_PUBOPTS = NS_PUBSUB + "#publish-options"


async def app_server(env, clients):
    """carol/app, which records and acknowledges every notification."""
    c = Client(env, "carol", resource="app")
    c.notifications = []

    def on_publish(iq):
        c.notifications.append(iq)
        c._arrived.set()
        iq.reply(clear=True).send()
    c.register_handler(Callback("push: publish", MatchXPath("{%s}iq/{%s}pubsub" % (c.default_ns, NS_PUBSUB)), on_publish))
    clients.append(c)
    await c.login()
    return c


def form_values(x):
    out = {}
    for f in x.findall("{%s}field" % NS_DATA):
        out[f.get("var")] = [v.text or "" for v in f.findall("{%s}value" % NS_DATA)]
    return out


def summary(iq):
    """The urn:xmpp:push:summary fields of a notification, and its node."""
    ps = iq.xml.find("{%s}pubsub" % NS_PUBSUB)
    pub = ps.find("{%s}publish" % NS_PUBSUB)
    x = pub.find("{%s}item/{%s}notification/{%s}x" % (NS_PUBSUB, NS_PUSH, NS_DATA))
    expect(x is not None, "notification without a form: %s" % summarize(iq))
    v = form_values(x)
    expect(v.get("FORM_TYPE") == ["urn:xmpp:push:summary"], "FORM_TYPE: %s" % v)
    return pub.get("node"), {k: vals[0] if vals else "" for k, vals in v.items()}, ps


async def enable(c, app_jid, node, secret):
    iq = c.Iq()
    iq["type"] = "set"
    e = ET.Element("{%s}enable" % NS_PUSH, {"jid": app_jid, "node": node})
    x = ET.SubElement(e, "{%s}x" % NS_DATA, {"type": "submit"})
    for var, val in (("FORM_TYPE", NS_PUBOPTS), ("secret", secret)):
        f = ET.SubElement(x, "{%s}field" % NS_DATA, {"var": var})
        ET.SubElement(f, "{%s}value" % NS_DATA).text = val
    iq.append(e)
    await iq.send(timeout=10)


async def disable(c, app_jid, node=None):
    iq = c.Iq()
    iq["type"] = "set"
    attrs = {"jid": app_jid}
    if node:
        attrs["node"] = node
    iq.append(ET.Element("{%s}disable" % NS_PUSH, attrs))
    await iq.send(timeout=10)


async def wait_notification(app, what, timeout=10):
    return await app._wait(app.notifications, lambda iq: True, timeout, what)


async def offline(env, clients):
    app = await app_server(env, clients)
    app_jid = str(app.boundjid)
    bob = Client(env, "bob")
    clients.append(bob)
    await bob.login()
    phone = Client(env, "alice", resource="phone")
    clients.append(phone)
    await phone.login()
    info = await phone["xep_0030"].get_info(jid=env.jid("alice"), timeout=10)
    expect(NS_PUSH in info["disco_info"]["features"], "account disco lacks %s" % NS_PUSH)
    await enable(phone, app_jid, "node-offline", "s3cret")
    # Connected: no notification.
    bob.send_message(mto=env.jid("alice"), mbody="while online", mtype="chat")
    await phone.wait_message(lambda m: m["body"] == "while online", "bob's message while online")
    await asyncio.sleep(0.5)
    expect(not app.notifications, "a notification for a connected device: %s" % [summarize(n) for n in app.notifications])
    await phone.close()
    await asyncio.sleep(0.3)
    bob.send_message(mto=env.jid("alice"), mbody="wake up", mtype="chat")
    iq = await wait_notification(app, "a notification for alice's offline phone")
    expect(str(iq["from"]) == env.jid("alice"), "notification from %s, want alice's bare JID" % iq["from"])
    node, fields, ps = summary(iq)
    expect(node == "node-offline", "node %r" % node)
    expect(fields.get("message-count") == "1", "message-count: %s" % fields)
    expect(fields.get("last-message-sender") == env.jid("bob"), "last-message-sender: %s" % fields)
    expect("last-message-body" not in fields, "the message text went to the app server: %s" % fields)
    opts = ps.find("{%s}publish-options/{%s}x" % (NS_PUBSUB, NS_DATA))
    expect(opts is not None and form_values(opts).get("secret") == ["s3cret"], "publish-options not passed on: %s" % summarize(iq))
    bob.send_message(mto=env.jid("alice"), mbody="still there?", mtype="chat")
    iq = await wait_notification(app, "a second notification")
    expect(summary(iq)[1].get("message-count") == "2", "second message-count: %s" % summary(iq)[1])
    # Another device disables the registration: no more notifications.
    tablet = Client(env, "alice", resource="tablet")
    clients.append(tablet)
    await tablet.login(presence=False)
    await disable(tablet, app_jid)
    bob.send_message(mto=env.jid("alice"), mbody="after disable", mtype="chat")
    await asyncio.sleep(1)
    expect(len(app.notifications) == 2, "a notification after disable: %s" % summarize(app.notifications[-1]))
    print("push: enable with publish-options, none while connected, two counted notifications while offline "
          "(sender, no text), none after disable")


async def detached(env, clients):
    app = await app_server(env, clients)
    bob = Client(env, "bob")
    clients.append(bob)
    await bob.login()
    phone = Client(env, "alice", resource="phone")
    phone.register_plugin("xep_0198")
    clients.append(phone)
    await phone.login()
    expect("stream_management" in phone.features, "stream management was not enabled")
    await enable(phone, str(app.boundjid), "node-sm", "x")
    phone.abort()  # the connection just goes: the session waits for resumption
    await asyncio.sleep(0.5)
    bob.send_message(mto=env.jid("alice"), mbody="are you asleep?", mtype="chat")
    iq = await wait_notification(app, "a notification for alice's detached session")
    node, fields, _ = summary(iq)
    expect(node == "node-sm" and fields.get("message-count") == "1", "notification: %s %s" % (node, fields))
    print("push: a notification while the phone's session waits detached for resumption")


SCENARIOS = {
    "push-offline": offline,
    "push-detached": detached,
}

if __name__ == "__main__":
    run(SCENARIOS)
