"""Shared helpers for Parley's slixmpp end-to-end scenarios.

Everything here is deliberately plain slixmpp: the point of these scripts is
to talk to Parley the way an XMPP client nobody here wrote does. The helpers
only add waiting with deadlines and failure messages that say what was
expected and what arrived instead.
"""

import asyncio
import collections
import json
import logging
import os
import signal
import ssl
import sys
import time
import traceback

import slixmpp

NS_ADDRESS = "http://jabber.org/protocol/address"
NS_DELAY = "urn:xmpp:delay"
NS_STREAMS = "urn:ietf:params:xml:ns:xmpp-streams"


class Fail(Exception):
    """A scenario expectation did not hold."""


# Recent protocol traffic and log lines, dumped when a scenario fails so the
# failure shows what the client actually saw on the wire.
_trace = collections.deque(maxlen=400)


class _TraceHandler(logging.Handler):
    def emit(self, record):
        try:
            msg = self.format(record)
        except Exception:  # a broken log record must not hide the failure
            msg = repr(record.msg)
        if len(msg) > 1500:
            msg = msg[:1500] + "...[%d bytes cut]" % (len(msg) - 1500)
        _trace.append(msg)


def _setup_logging(verbose):
    root = logging.getLogger()
    root.setLevel(logging.DEBUG)
    h = _TraceHandler()
    h.setFormatter(logging.Formatter("%(asctime)s.%(msecs)03d %(name)s %(levelname)s %(message)s", "%H:%M:%S"))
    root.addHandler(h)
    if verbose:
        s = logging.StreamHandler(sys.stderr)
        s.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
        root.addHandler(s)


def dump_trace():
    print("---- last client log lines (slixmpp DEBUG, newest last) ----", file=sys.stderr)
    for line in _trace:
        print(line, file=sys.stderr)
    print("---- end of client log ----", file=sys.stderr)


class Env:
    """Where the host listens and who may log in (read from the host's users file)."""

    def __init__(self, addr, users_file, domain, tls_addr=None):
        host, port = addr.rsplit(":", 1)
        self.host = host
        self.port = int(port)
        self.tls_port = int(tls_addr.rsplit(":", 1)[1]) if tls_addr else None
        self.domain = domain
        with open(users_file, encoding="utf-8") as f:
            data = json.load(f)
        self.passwords = {u["address"]: u["password"] for u in data.get("users", [])}
        self.aliases = data.get("aliases", {})

    def jid(self, user):
        return user if "@" in user else "%s@%s" % (user, self.domain)

    def password(self, user):
        return self.passwords[self.jid(user)]


def summarize(stanza):
    """One line describing a stanza, for failure messages."""
    s = str(stanza)
    return s if len(s) < 600 else s[:600] + "..."


class Client(slixmpp.ClientXMPP):
    """A slixmpp client that records what it receives and can wait for it."""

    def __init__(self, env, user, password=None, resource=None):
        self.env = env
        self.user = user
        bare = env.jid(user)
        resource = resource or "e2e-" + user.split("@")[0]
        super().__init__("%s/%s" % (bare, resource), env.password(user) if password is None else password)
        # The example host uses a self-signed certificate.
        self.ssl_context.check_hostname = False
        self.ssl_context.verify_mode = ssl.CERT_NONE
        for plugin in ("xep_0030", "xep_0199", "xep_0203", "xep_0033"):
            self.register_plugin(plugin)
        self.inbox = []         # every message stanza received, in order
        self.presences = []     # every presence stanza received, in order
        self._taken = set()     # ids of stanzas already matched by a wait
        self._arrived = asyncio.Event()
        self.stream_errors = []  # conditions of <stream:error/> received
        self.auth_failures = []  # SASL failure conditions received
        self.mechanism = None    # SASL mechanism that succeeded
        self.closed = asyncio.Event()
        self.add_event_handler("message", self._on_stanza(self.inbox))
        self.add_event_handler("presence", self._on_stanza(self.presences))
        self.add_event_handler("stream_error", self._on_stream_error)
        self.add_event_handler("failed_auth", self._on_failed_auth)
        self.add_event_handler("auth_success", self._on_auth_success)
        self.add_event_handler("disconnected", lambda _: self.closed.set())

    def __repr__(self):
        return "<%s>" % self.boundjid

    def _on_stanza(self, into):
        def handler(stanza):
            into.append(stanza)
            self._arrived.set()
        return handler

    def _on_stream_error(self, err):
        cond = err["condition"]
        if not cond:  # fall back to the raw element
            for child in err.xml:
                if child.tag.startswith("{%s}" % NS_STREAMS) and not child.tag.endswith("}text"):
                    cond = child.tag.split("}", 1)[1]
        self.stream_errors.append((cond, err["text"]))

    def _on_failed_auth(self, failure):
        self.auth_failures.append(failure["condition"])

    def _on_auth_success(self, _):
        self.mechanism = self["feature_mechanisms"].mech.name

    # ---- session ----

    async def try_login(self, timeout=15, direct_tls=False):
        """Connect and authenticate; return None on success or a reason string.

        direct_tls connects to the direct TLS port (XEP-0368) instead of
        STARTTLS on the plain one.
        """
        loop = asyncio.get_running_loop()
        done = loop.create_future()

        def settle(value):
            if not done.done():
                done.set_result(value)

        handlers = [
            ("session_start", lambda _: settle(None)),
            ("failed_all_auth", lambda _: settle("all SASL mechanisms failed: %s" % self.auth_failures)),
            ("stream_error", lambda e: settle("stream error %s" % (self.stream_errors[-1:] or e,))),
            ("disconnected", lambda r: settle("disconnected before the session started (%s)" % (r,))),
            ("connection_failed", lambda e: settle("connection failed: %s" % (e,))),
            ("ssl_invalid_chain", lambda e: settle("TLS failed: %s" % (e,))),
        ]
        for name, h in handlers:
            self.add_event_handler(name, h)
        self.closed.clear()
        if direct_tls:
            if self.env.tls_port is None:
                raise Fail("direct TLS asked for but no --tls-addr given")
            self.connect((self.env.host, self.env.tls_port), use_ssl=True)
        else:
            self.connect((self.env.host, self.env.port))
        try:
            return await asyncio.wait_for(done, timeout)
        except asyncio.TimeoutError:
            return "no session after %ss" % timeout
        finally:
            for name, h in handlers:
                self.del_event_handler(name, h)

    async def login(self, timeout=15, roster=True, presence=True, require_scram=True, direct_tls=False):
        """Log in over STARTTLS and fail unless the session started.

        SCRAM is checked, not merely allowed: slixmpp silently falls back to
        PLAIN when SCRAM fails, and that must show up as a failure here.
        """
        reason = await self.try_login(timeout, direct_tls=direct_tls)
        if reason is not None:
            raise Fail("%s: login failed: %s" % (self.env.jid(self.user), reason))
        if not direct_tls and "starttls" not in self.features:
            raise Fail("%s: session started without STARTTLS (features: %s)" % (self.boundjid, sorted(self.features)))
        if require_scram and not (self.mechanism or "").startswith("SCRAM-SHA-"):
            raise Fail("%s: authenticated with %r, want SCRAM-SHA-* (offered: %s; failures before: %s)"
                       % (self.boundjid, self.mechanism, sorted(self["feature_mechanisms"].mech_list), self.auth_failures))
        if roster:
            await self.get_roster(timeout=timeout)
        if presence:
            self.send_presence()
            # Scenarios go on as soon as login returns; the round trip makes
            # sure the server has taken the initial presence by then, so a
            # message another client sends next finds this one available.
            await self.ping_server(timeout=timeout)
        return self

    async def close(self, timeout=5):
        if self.closed.is_set() or not self.is_connected():
            return
        try:
            await asyncio.wait_for(self.disconnect(wait=1), timeout)
        except (asyncio.TimeoutError, Exception):
            self.abort()

    async def wait_closed(self, timeout, what):
        try:
            await asyncio.wait_for(self.closed.wait(), timeout)
        except asyncio.TimeoutError:
            raise Fail("%s: the server did not close the connection within %ss after %s" % (self.boundjid, timeout, what))

    # ---- waiting for stanzas ----

    async def _wait(self, pool, pred, timeout, what):
        deadline = time.monotonic() + timeout
        while True:
            for st in pool:
                if id(st) not in self._taken and pred(st):
                    self._taken.add(id(st))
                    return st
            left = deadline - time.monotonic()
            if left <= 0:
                seen = [summarize(s) for s in pool if id(s) not in self._taken]
                raise Fail("%s: timed out after %ss waiting for %s; unmatched stanzas received: %s"
                           % (self.boundjid, timeout, what, seen or "none"))
            self._arrived.clear()
            try:
                await asyncio.wait_for(self._arrived.wait(), left)
            except asyncio.TimeoutError:
                pass

    async def wait_message(self, pred, what, timeout=10):
        return await self._wait(self.inbox, pred, timeout, what)

    async def wait_presence(self, pred, what, timeout=10):
        return await self._wait(self.presences, pred, timeout, what)

    def unmatched_messages(self, pred=lambda m: True):
        return [m for m in self.inbox if id(m) not in self._taken and pred(m)]

    async def fetch_roster(self, timeout=10):
        """The whole roster as {bare JID: item dict}, asked without a version.

        slixmpp's get_roster() sends the last version it saw, so a server
        that (rightly) answers "unchanged" with an empty result would look
        like an empty roster.
        """
        iq = self.Iq()
        iq["type"] = "get"
        iq.enable("roster")
        iq["roster"].xml.attrib.pop("ver", None)
        res = await iq.send(timeout=timeout)
        return {str(j): dict(v) for j, v in res["roster"]["items"].items()}

    async def ping_server(self, timeout=10):
        """Round-trip to the server: everything sent before is processed."""
        await self["xep_0199"].ping(jid=self.env.domain, timeout=timeout)


def body_from(sender, body=None):
    """Predicate: a message with a body from sender (bare or full JID)."""
    def pred(m):
        if m["type"] == "error" or not m["body"]:
            return False
        frm = m["from"]
        if frm.bare != slixmpp.JID(sender).bare:
            return False
        return body is None or m["body"] == body
    return pred


def presence_from(sender, ptype=None, show=None, status=None):
    def pred(p):
        if p["from"].bare != slixmpp.JID(sender).bare:
            return False
        if ptype is not None and p["type"] != ptype:
            return False
        if show is not None and p["show"] != show:
            return False
        if status is not None and p["status"] != status:
            return False
        return True
    return pred


def delay_stamp(msg):
    el = msg.xml.find("{%s}delay" % NS_DELAY)
    return None if el is None else el.get("stamp")


def address_elements(msg):
    addrs = msg.xml.find("{%s}addresses" % NS_ADDRESS)
    if addrs is None:
        return []
    return [dict(a.attrib) for a in addrs.findall("{%s}address" % NS_ADDRESS)]


def expect(cond, message):
    if not cond:
        raise Fail(message)


def run(scenarios, argv=None):
    """Parse the command line, run one scenario with a hard deadline, exit."""
    import argparse

    ap = argparse.ArgumentParser(description="Parley end-to-end scenarios driven by slixmpp %s" % slixmpp.__version__)
    ap.add_argument("--addr", required=True, help="host:port of the XMPP (STARTTLS) listener")
    ap.add_argument("--users", required=True, help="the example host's users JSON file")
    ap.add_argument("--tls-addr", help="host:port of the direct TLS (XEP-0368) listener")
    ap.add_argument("--domain", required=True)
    ap.add_argument("--timeout", type=float, default=45, help="hard limit for the scenario, seconds")
    ap.add_argument("-v", "--verbose", action="store_true", help="log XML traffic to stderr")
    ap.add_argument("scenario", choices=sorted(scenarios))
    ap.add_argument("args", nargs="*")
    a = ap.parse_args(argv)
    _setup_logging(a.verbose)
    env = Env(a.addr, a.users, a.domain, a.tls_addr)
    run_scenario(a.scenario, a.timeout, lambda clients: scenarios[a.scenario](env, clients, *a.args))


def run_scenario(name, timeout, start):
    """Run start(clients), a scenario coroutine that appends the clients it
    opens to clients, under a deadline and a hard alarm behind it; close the
    clients; print PASS or FAIL and exit non-zero on failure."""

    def hard_timeout(signum, frame):
        print("FAIL %s: hard timeout of %ss exceeded (the scenario hung)" % (name, timeout), file=sys.stderr)
        dump_trace()
        sys.stderr.flush()
        os._exit(3)

    signal.signal(signal.SIGALRM, hard_timeout)
    signal.alarm(int(timeout) + 5)

    async def main():
        clients = []
        try:
            await asyncio.wait_for(start(clients), timeout)
        finally:
            for c in clients:
                await c.close()

    started = time.monotonic()
    try:
        asyncio.run(main())
    except Fail as e:
        print("FAIL %s: %s" % (name, e), file=sys.stderr)
        dump_trace()
        sys.exit(1)
    except asyncio.TimeoutError:
        print("FAIL %s: timed out after %ss" % (name, timeout), file=sys.stderr)
        traceback.print_exc()
        dump_trace()
        sys.exit(1)
    except Exception:
        print("FAIL %s: unexpected exception" % name, file=sys.stderr)
        traceback.print_exc()
        dump_trace()
        sys.exit(2)
    print("PASS %s (%.1fs)" % (name, time.monotonic() - started))
    sys.stdout.flush()
