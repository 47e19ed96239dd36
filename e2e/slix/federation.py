#!/usr/bin/python3
"""Parley end-to-end federation scenarios (issue 9), driven by slixmpp.

Usage: federation.py --a ADDR,USERS,DOMAIN --b ADDR,USERS,DOMAIN SCENARIO [ARGS]

Two XMPP servers for two domains (two Parley hosts, or Parley and
Prosody); one slixmpp client logs in on each. Same conventions as
scenarios.py: "PASS <scenario>" and exit 0, or "FAIL <scenario>: ..." with
the clients' recent traffic and a non-zero exit. e2e/federation_test.go
runs them.
"""

import argparse
import asyncio
import os
import sys
import time

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import slixmpp  # noqa: E402

from parleye2e import (  # noqa: E402
    Env, Fail, _setup_logging, body_from, expect, presence_from, run_scenario, summarize,
)
from history import mam_query, new_client  # noqa: E402

NS_STANZAS = "urn:ietf:params:xml:ns:xmpp-stanzas"


def fed_client(env, clients, user, mam):
    c = new_client(env, clients, user, plugins=("xep_0313", "xep_0054", "xep_0092") if mam else ("xep_0054", "xep_0092"))
    # Answer subscription requests by hand, as a user would.
    # (None: neither accept nor refuse by itself; False would refuse.)
    c.roster.auto_authorize = None
    c.roster.auto_subscribe = False
    return c


def available_from(sender):
    def pred(p):
        return p["from"].bare == slixmpp.JID(sender).bare and p["type"] in ("", "available", None) and \
            p.xml.get("type") is None
    return pred


def error_condition(st):
    err = st.xml.find("{jabber:client}error")
    if err is None:
        return None
    for child in err:
        if child.tag.startswith("{%s}" % NS_STANZAS) and not child.tag.endswith("}text"):
            return child.tag.split("}", 1)[1]
    return None


async def contacts(ea, eb, clients, user_a, user_b, mam_b="yes"):
    """A user on each server adds the other and they accept; each sees the
    other's presence; they chat both ways; both find the conversation in
    their archive (MAM with a remote 'with'); an away status and a logout
    reach the other side. user_b is offline when user_a asks, so the
    request waits for them as a pending request."""
    ja, jb = ea.jid(user_a), eb.jid(user_b)
    a = fed_client(ea, clients, user_a, True)
    await a.login(require_scram=False)
    a.send_presence(pto=jb, ptype="subscribe", pstatus="Hi, it's A")
    # The request crosses before B logs in: B's server stores it.
    await a.ping_server()
    await asyncio.sleep(1.0)
    roster = await a.fetch_roster()
    expect(roster.get(jb, {}).get("pending_out") or roster.get(jb, {}).get("subscription") == "none",
           "A's roster should hold B with a pending request: %s" % roster)

    b = fed_client(eb, clients, user_b, mam_b == "yes")
    await b.login(require_scram=False)
    req = await b.wait_presence(presence_from(ja, "subscribe"), "A's subscription request, kept while B was offline", timeout=20)
    b.send_presence(pto=ja, ptype="subscribed")
    b.send_presence(pto=ja, ptype="subscribe")
    await a.wait_presence(presence_from(jb, "subscribed"), "B's approval", timeout=20)
    await a.wait_presence(presence_from(jb, "subscribe"), "B's own request", timeout=20)
    a.send_presence(pto=jb, ptype="subscribed")
    await a.wait_presence(available_from(jb), "B's presence after the approval", timeout=20)
    await b.wait_presence(available_from(ja), "A's presence after the approval", timeout=20)
    for c, other in ((a, jb), (b, ja)):
        deadline = time.monotonic() + 10
        while True:
            r = await c.fetch_roster()
            if r.get(other, {}).get("subscription") == "both":
                break
            if time.monotonic() > deadline:
                raise Fail("%s: subscription with %s is not 'both': %s" % (c.boundjid, other, r.get(other)))
            await asyncio.sleep(0.3)

    a.send_message(mto=jb, mbody="hello from A", mtype="chat")
    await b.wait_message(body_from(ja, "hello from A"), "A's message at B", timeout=20)
    b.send_message(mto=ja, mbody="hello from B", mtype="chat")
    await a.wait_message(body_from(jb, "hello from B"), "B's message at A", timeout=20)

    # The conversation is in both archives, with the remote contact as 'with'.
    for c, other, mine, theirs in ((a, jb, "hello from A", "hello from B"), (b, ja, "hello from B", "hello from A")):
        if c is b and mam_b != "yes":
            continue
        p = await mam_query(c, with_=other)
        bodies = p.bodies()
        expect(mine in bodies and theirs in bodies,
               "%s: MAM with %s has %s, want both messages" % (c.boundjid, other, bodies))
        expect(bodies.index(mine) < bodies.index(theirs) if c is a else bodies.index(theirs) < bodies.index(mine),
               "%s: MAM order wrong: %s" % (c.boundjid, bodies))

    # vCard and software version of the remote side, through federation.
    v = await a["xep_0092"].get_version(slixmpp.JID(eb.domain), timeout=15)
    expect(v["software_version"]["name"], "no software version from %s: %s" % (eb.domain, summarize(v)))
    # A vCard, or item-not-found from a server that has none stored for
    # B (Prosody): either way the answer came back through federation.
    try:
        card = await a["xep_0054"].get_vcard(slixmpp.JID(jb), timeout=15)
        expect(card["type"] == "result", "vCard of %s: %s" % (jb, summarize(card)))
    except slixmpp.exceptions.IqError as e:
        expect(e.iq["error"]["condition"] == "item-not-found", "vCard of %s: %s" % (jb, summarize(e.iq)))

    # Presence changes and logout cross too.
    b.send_presence(pshow="away", pstatus="lunch")
    await a.wait_presence(presence_from(jb, show="away", status="lunch"), "B's away status", timeout=20)
    a.send_presence(pshow="dnd", pstatus="busy")
    await b.wait_presence(presence_from(ja, show="dnd", status="busy"), "A's dnd status", timeout=20)
    await b.close()
    await a.wait_presence(presence_from(jb, "unavailable"), "B's logout", timeout=20)

    # A message to B while B is offline waits on B's server.
    a.send_message(mto=jb, mbody="while you were away", mtype="chat")
    await asyncio.sleep(1.0)
    b2 = fed_client(eb, clients, user_b, mam_b == "yes")
    await b2.login(require_scram=False)
    await b2.wait_message(body_from(ja, "while you were away"), "the message kept while B was offline", timeout=20)
    await a.wait_presence(available_from(jb), "B back online", timeout=20)

    # A logs in again: A's server probes B's, which answers with B's presence.
    await a.close()
    await b2.wait_presence(presence_from(ja, "unavailable"), "A's logout", timeout=20)
    a2 = fed_client(ea, clients, user_a, True)
    await a2.login(require_scram=False)
    await a2.wait_presence(available_from(jb), "B's presence, answering the probe at A's login", timeout=20)
    await b2.wait_presence(available_from(ja), "A back online", timeout=20)

    # An error from the other server comes back to the sender.
    nobody = "nobody-here@" + eb.domain
    a2.send_message(mto=nobody, mbody="hello?", mtype="chat")
    err = await a2._wait(a2.everything, lambda m: m["type"] == "error" and m["from"].bare == nobody,
                         timeout=20, what="the other server's error for an unknown user")
    cond = error_condition(err)
    expect(cond in ("service-unavailable", "item-not-found"),
           "message to an unknown remote user bounced with %s: %s" % (cond, summarize(err)))


async def down(ea, eb, clients, user_a, target):
    """A message and an iq to a server that is down (or that federation is
    refused with) come back to the sender with remote-server-not-found."""
    a = fed_client(ea, clients, user_a, False)
    await a.login(require_scram=False)
    a.send_message(mto=target, mbody="anyone there?", mtype="chat")
    err = await a._wait(a.everything, lambda m: m["type"] == "error" and m["from"].bare == slixmpp.JID(target).bare,
                        timeout=30, what="the bounce of the message")
    cond = error_condition(err)
    expect(cond == "remote-server-not-found", "message bounced with %s, want remote-server-not-found: %s" % (cond, summarize(err)))
    expect(err["body"] == "anyone there?", "the bounce should carry the original body: %s" % summarize(err))
    try:
        await a["xep_0092"].get_version(slixmpp.JID(target).domain, timeout=30)
        raise Fail("version query to a down server succeeded")
    except slixmpp.exceptions.IqError as e:
        cond = e.iq["error"]["condition"]
        expect(cond == "remote-server-not-found", "iq bounced with %s" % cond)


SCENARIOS = {"contacts": contacts, "down": down}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--a", required=True, help="ADDR,USERS,DOMAIN of server A")
    ap.add_argument("--b", required=True, help="ADDR,USERS,DOMAIN of server B")
    ap.add_argument("--timeout", type=float, default=90)
    ap.add_argument("-v", "--verbose", action="store_true")
    ap.add_argument("scenario", choices=sorted(SCENARIOS))
    ap.add_argument("args", nargs="*")
    a = ap.parse_args()
    _setup_logging(a.verbose)
    envs = []
    for spec in (a.a, a.b):
        addr, users, domain = spec.split(",")
        envs.append(Env(addr, users, domain))
    run_scenario(a.scenario, a.timeout, lambda clients: SCENARIOS[a.scenario](envs[0], envs[1], clients, *a.args))


if __name__ == "__main__":
    main()
