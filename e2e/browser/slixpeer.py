"""A slixmpp client the browser tests drive: the third party in the chat.

It logs in as one user over STARTTLS (the example host's certificate is
self-signed) and then takes JSON commands, one a line, on standard input:

  {"cmd": "seed", "with": "alice@example.test", "n": 100}
      log in a second client as "with" and exchange n numbered messages
      ("history 001" ...), taking turns, so that both archives hold them
  {"cmd": "presence", "show": "away"}          ("" for available)
  {"cmd": "send", "to": "alice@example.test", "body": "..."}
  {"cmd": "subscribe", "to": "alice@example.test"}   (ask to see their presence)
  {"cmd": "quit"}

It prints JSON events, one a line, on standard output:

  {"ev": "ready", "jid": ...}
  {"ev": "seeded", "n": 100}
  {"ev": "message", "from": bare JID, "body": ...}
  {"ev": "presence", "from": full JID, "type": "available"|..., "show": ...}
  {"ev": "error", "error": ...}
"""

import argparse
import asyncio
import json
import logging
import ssl
import sys

import slixmpp


def emit(**ev):
    sys.stdout.write(json.dumps(ev) + "\n")
    sys.stdout.flush()


class Peer(slixmpp.ClientXMPP):
    def __init__(self, jid, password, quiet=False):
        super().__init__(jid, password)
        self.ssl_context.check_hostname = False
        self.ssl_context.verify_mode = ssl.CERT_NONE
        self.register_plugin("xep_0199")
        self.inbox = asyncio.Queue()
        self.started = asyncio.Event()
        self.add_event_handler("session_start", self._start)
        self.add_event_handler("message", self._message)
        if not quiet:
            self.add_event_handler("presence", self._presence)
        self.quiet = quiet

    async def _start(self, _):
        await self.get_roster()
        self.send_presence()
        await self["xep_0199"].ping(jid=self.boundjid.domain, timeout=10)
        self.started.set()

    def _message(self, m):
        if m["type"] in ("chat", "normal") and m["body"]:
            self.inbox.put_nowait(m)
            if not self.quiet:
                emit(ev="message", **{"from": m["from"].bare, "body": m["body"], "xml": str(m)})

    def _presence(self, p):
        emit(ev="presence", **{"from": str(p["from"]), "type": p["type"], "show": p["show"]})


async def login(jid, password, addr, quiet=False):
    host, port = addr.rsplit(":", 1)
    c = Peer(jid, password, quiet=quiet)
    c.connect((host, int(port)))
    await asyncio.wait_for(c.started.wait(), 20)
    return c


async def seed(peer, other, n):
    """Exchange n messages between peer and other, each waited for."""
    for i in range(1, n + 1):
        sender, receiver = (peer, other) if i % 2 else (other, peer)
        body = "history %03d" % i
        sender.send_message(mto=receiver.boundjid.bare, mbody=body, mtype="chat")
        while True:
            m = await asyncio.wait_for(receiver.inbox.get(), 10)
            if m["body"] == body:
                break


async def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--addr", required=True)
    ap.add_argument("--users", required=True)
    ap.add_argument("--user", required=True)
    ap.add_argument("-v", "--verbose", action="store_true")
    a = ap.parse_args()
    logging.basicConfig(level=logging.DEBUG if a.verbose else logging.ERROR, stream=sys.stderr)
    with open(a.users, encoding="utf-8") as f:
        passwords = {u["address"]: u["password"] for u in json.load(f)["users"]}

    peer = await login(a.user + "/slixpeer", passwords[a.user], a.addr)
    emit(ev="ready", jid=str(peer.boundjid))

    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    while True:
        line = await reader.readline()
        if not line:
            break
        try:
            cmd = json.loads(line)
            kind = cmd.get("cmd")
            if kind == "quit":
                break
            if kind == "seed":
                other = await login(cmd["with"] + "/seed", passwords[cmd["with"]], a.addr, quiet=True)
                # Messages before now are not the seed's: drain them.
                while not peer.inbox.empty():
                    peer.inbox.get_nowait()
                peer.quiet = True
                try:
                    await seed(peer, other, int(cmd["n"]))
                finally:
                    peer.quiet = False
                    other.disconnect()
                    await asyncio.sleep(0.3)
                emit(ev="seeded", n=int(cmd["n"]))
            elif kind == "presence":
                peer.send_presence(pshow=cmd.get("show") or None)
                emit(ev="done", cmd=kind)
            elif kind == "subscribe":
                peer.send_presence(pto=cmd["to"], ptype="subscribe")
                emit(ev="done", cmd=kind)
            elif kind == "send":
                peer.send_message(mto=cmd["to"], mbody=cmd["body"], mtype="chat")
                emit(ev="done", cmd=kind)
            else:
                emit(ev="error", error="unknown command %r" % kind)
        except Exception as e:  # report and go on: the driver decides
            emit(ev="error", error="%s: %s" % (type(e).__name__, e))
    peer.disconnect()
    await asyncio.sleep(0.3)


if __name__ == "__main__":
    asyncio.run(main())
