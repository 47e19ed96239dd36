#!/usr/bin/python3
"""Parley end-to-end file sharing scenarios (issue 4), driven by slixmpp.

Usage: files.py --addr 127.0.0.1:PORT --users users.json --domain D SCENARIO CA [FILES...]

HTTP File Upload (XEP-0363) through slixmpp's own xep_0363 plugin, and
files shared in chat with XEP-0066 out-of-band data. Same conventions as
scenarios.py: "PASS <scenario>" and exit 0, or "FAIL <scenario>: ..."
with the client's recent traffic and a non-zero exit. Scenarios that
upload print one line "RESULT <json>" with what they uploaded, for
e2e/files_test.go to check over HTTP.

TLS: the example host's certificate is self-signed. CA is its cert.pem.
The plugin's upload_file makes its own aiohttp ClientSession and cannot be
given an SSL context, so the certificate is not skipped but trusted:
e2e/files_test.go runs this script with SSL_CERT_FILE=CA, which the
default context of that session (ssl.create_default_context) loads, so
the PUT is verified against the host's certificate (its SANs include
127.0.0.1). Downloads here use aiohttp with an explicit context made from
CA, so they are verified too. Nothing in this script turns verification
off for HTTP; only the XMPP stream does (parleye2e.Client), as every
other scenario.
"""

import asyncio
import hashlib
import io
import json
import os
import ssl
import sys

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import aiohttp  # noqa: E402  (Debian python3-aiohttp, the plugin's own dependency)
import slixmpp  # noqa: E402
from slixmpp.exceptions import IqError  # noqa: E402
from slixmpp.plugins.xep_0363.http_upload import FileTooBig  # noqa: E402

from parleye2e import Client, Fail, body_from, expect, run, summarize  # noqa: E402

NS_UPLOAD = "urn:xmpp:http:upload:0"
NS_OOB = "jabber:x:oob"
NS_XDATA = "jabber:x:data"
NS_STANZAS = "urn:ietf:params:xml:ns:xmpp-stanzas"


# ---- helpers ----

def new_client(env, clients, user):
    c = Client(env, user)
    for p in ("xep_0128", "xep_0363", "xep_0066"):
        c.register_plugin(p)
    clients.append(c)
    return c


def sha256_file(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 16), b""):
            h.update(chunk)
    return h.hexdigest()


async def discover(c):
    """disco#items of the domain, then disco#info of the upload service.

    Returns (service JID, max-file-size) and checks what XEP-0363 §2 asks
    the service to announce.
    """
    domain = c.env.domain
    want = "upload." + domain
    items = await c["xep_0030"].get_items(jid=domain, timeout=10)
    jids = [str(i[0]) for i in items["disco_items"]["items"]]
    expect(want in jids, "disco#items of %s lists %s, want %s among them" % (domain, jids, want))

    info = await c["xep_0030"].get_info(jid=want, timeout=10)
    di = info["disco_info"]
    idents = [(i[0], i[1]) for i in di["identities"]]
    expect(("store", "file") in idents, "%s identities %s, want category store type file" % (want, idents))
    expect(NS_UPLOAD in di["features"], "%s features %s, want %s" % (want, sorted(di["features"]), NS_UPLOAD))

    # The size limit is an XEP-0128 form with FORM_TYPE urn:xmpp:http:upload:0,
    # read from the XML itself rather than through a plugin.
    max_size = None
    for form in di.xml.findall("{%s}x" % NS_XDATA):
        fields = {f.get("var"): [v.text for v in f.findall("{%s}value" % NS_XDATA)]
                  for f in form.findall("{%s}field" % NS_XDATA)}
        if fields.get("FORM_TYPE") == [NS_UPLOAD]:
            vals = fields.get("max-file-size") or []
            expect(len(vals) == 1 and (vals[0] or "").isdigit(),
                   "max-file-size field %r, want one integer value" % (vals,))
            max_size = int(vals[0])
    expect(max_size is not None and max_size > 0,
           "no max-file-size in a %s form in disco#info of %s: %s" % (NS_UPLOAD, want, summarize(info)))
    return want, max_size


def use_service(c, service, max_size):
    """Hand the xep_0363 plugin the service that discover() found.

    Left to itself, upload_file discovers the service with
    xep_0030.get_info_from_domain, which in Debian's slixmpp 1.8.3 passes
    bare coroutines to asyncio.wait and so raises "TypeError: Passing
    coroutines is forbidden" on Python 3.11 (a slixmpp bug, fixed upstream:
    poezio/slixmpp PR #25), before sending anything. discover() does the
    same walk (disco#items of the domain, disco#info of the item) by hand;
    the plugin's documented upload_service and max_file_size settings then
    skip its own walk, and upload_file still does the rest: its client-side
    size check, the slot request and the PUT.
    """
    plugin = c["xep_0363"]
    plugin.upload_service = slixmpp.JID(service)
    plugin.max_file_size = max_size
    return plugin


async def upload(c, path, service, max_size):
    """Upload with slixmpp's own helper (slot request and PUT)."""
    url = await use_service(c, service, max_size).upload_file(path, timeout=30)
    name = os.path.basename(path)
    expect(url.startswith("https://") and "/file/" in url and url.endswith("/" + name),
           "GET URL %r for %s, want https://.../file/<id>/%s" % (url, name, name))
    return url


def oob_urls(msg):
    return [(x.findtext("{%s}url" % NS_OOB) or "") for x in msg.xml.findall("{%s}x" % NS_OOB)]


async def download(url, ctx):
    async with aiohttp.ClientSession() as s:
        async with s.get(url, ssl=ctx, timeout=aiohttp.ClientTimeout(total=30)) as r:
            body = await r.read()
            if r.status != 200:
                raise Fail("GET %s: HTTP %d: %r" % (url, r.status, body[:200]))
            return body


def stanza_error(exc):
    """(type, condition, the error element) of an IqError."""
    err = exc.iq.xml.find("{jabber:client}error")
    if err is None:
        raise Fail("error iq without <error/>: %s" % summarize(exc.iq))
    conds = [ch.tag.split("}", 1)[1] for ch in err
             if ch.tag.startswith("{%s}" % NS_STANZAS) and not ch.tag.endswith("}text")]
    return err.get("type"), conds, err


# ---- scenarios ----

async def share(env, clients, ca, *paths):
    """alice discovers the upload service, uploads each file and sends bob
    its GET URL; bob gets every message with XEP-0066 data and downloads
    byte-identical files."""
    ctx = ssl.create_default_context(cafile=ca)
    alice = new_client(env, clients, "alice")
    bob = new_client(env, clients, "bob")
    await asyncio.gather(alice.login(), bob.login())

    service, max_size = await discover(alice)
    print("upload service %s, max-file-size %d" % (service, max_size))
    result = {"service": service, "max_file_size": max_size, "files": []}
    for i, path in enumerate(paths):
        name = os.path.basename(path)
        size = os.path.getsize(path)
        want = sha256_file(path)
        url = await upload(alice, path, service, max_size)

        # The first file goes as a bare link, which the server must mark
        # with XEP-0066 itself; the others carry alice's own <x/> (as
        # Conversations sends them), which must arrive once, not twice.
        own_oob = i > 0
        m = alice.make_message(mto=env.jid("bob"), mbody=url, mtype="chat")
        if own_oob:
            m["oob"]["url"] = url
        m.send()

        got = await bob.wait_message(body_from(env.jid("alice"), url), "alice's link to %s" % name, timeout=15)
        oob = oob_urls(got)
        expect(oob == [url], "bob's message for %s (alice sent %s OOB) has jabber:x:oob urls %s, want exactly [%r]: %s"
               % (name, "her own" if own_oob else "no", oob, url, summarize(got)))

        data = await download(got["oob"]["url"], ctx)
        have = hashlib.sha256(data).hexdigest()
        expect(len(data) == size and have == want,
               "bob downloaded %s: %d bytes sha256 %s, alice uploaded %d bytes sha256 %s"
               % (name, len(data), have, size, want))
        print("%s: %d bytes, uploaded, shared (%s OOB) and downloaded by bob, sha256 %s"
              % (name, size, "client" if own_oob else "server-added", have))
        result["files"].append({"name": name, "url": url, "sha256": have, "size": size})
    print("RESULT " + json.dumps(result))


async def slot_errors(env, clients, ca):
    """Slot requests the service must refuse, with XEP-0363 §4 errors."""
    alice = new_client(env, clients, "alice")
    await alice.login()
    service, max_size = await discover(alice)
    print("upload service %s, max-file-size %d" % (service, max_size))
    plugin = use_service(alice, service, max_size)

    # A normal request gets a slot: the refusals below are not blanket ones.
    iq = await plugin.request_slot(service, "notes.txt", 10, "text/plain", timeout=10)
    put, get = iq["http_upload_slot"]["put"]["url"], iq["http_upload_slot"]["get"]["url"]
    expect(put.startswith("https://") and get.startswith("https://") and put != get,
           "slot for notes.txt: put %r get %r" % (put, get))

    # One byte over the limit read from disco.
    try:
        iq = await plugin.request_slot(service, "too-big.bin", max_size + 1, "application/octet-stream", timeout=10)
        raise Fail("slot for %d bytes (max-file-size %d) was granted: %s" % (max_size + 1, max_size, summarize(iq)))
    except IqError as e:
        typ, conds, err = stanza_error(e)
        expect(conds == ["not-acceptable"] and typ == "modify",
               "too large: error type %r conditions %s, want modify/not-acceptable: %s" % (typ, conds, summarize(e.iq)))
        ftl = err.find("{%s}file-too-large" % NS_UPLOAD)
        expect(ftl is not None, "too large: no <file-too-large xmlns='%s'/> in the error: %s" % (NS_UPLOAD, summarize(e.iq)))
        n = ftl.findtext("{%s}max-file-size" % NS_UPLOAD)
        expect(n is not None and n.strip() == str(max_size),
               "too large: <max-file-size> %r, disco says %d" % (n, max_size))
        print("too large: %s <not-acceptable/> with <file-too-large><max-file-size>%s" % (typ, n.strip()))

    # slixmpp itself reads the limit and refuses before asking for a slot.
    try:
        await plugin.upload_file("big.bin", size=max_size + 1, input_file=io.BytesIO(b""), timeout=10)
        raise Fail("xep_0363 upload_file of %d bytes did not raise FileTooBig" % (max_size + 1))
    except FileTooBig as e:
        expect(e.args[1] == max_size, "FileTooBig %s, want max %d" % (e, max_size))

    for name in ("setup.exe", "invoice.pdf.exe"):
        try:
            iq = await plugin.request_slot(service, name, 1024, "application/octet-stream", timeout=10)
            raise Fail("slot for %s was granted: %s" % (name, summarize(iq)))
        except IqError as e:
            typ, conds, err = stanza_error(e)
            expect(conds == ["not-acceptable"], "%s: error type %r conditions %s, want not-acceptable: %s"
                   % (name, typ, conds, summarize(e.iq)))
            expect(err.find("{%s}file-too-large" % NS_UPLOAD) is None,
                   "%s: refused as too large, want refused for its type: %s" % (name, summarize(e.iq)))
            print("%s: %s <not-acceptable/> (%s)" % (name, typ, err.findtext("{%s}text" % NS_STANZAS)))


async def upload_only(env, clients, ca, *paths):
    """alice uploads each file with slixmpp; the test fetches them."""
    alice = new_client(env, clients, "alice")
    await alice.login()
    service, max_size = await discover(alice)
    result = {"service": service, "max_file_size": max_size, "files": []}
    for path in paths:
        url = await upload(alice, path, service, max_size)
        print("%s uploaded: %s" % (os.path.basename(path), url))
        result["files"].append({"name": os.path.basename(path), "url": url,
                                "sha256": sha256_file(path), "size": os.path.getsize(path)})
    print("RESULT " + json.dumps(result))


if __name__ == "__main__":
    run({
        "share": share,
        "slot-errors": slot_errors,
        "upload": upload_only,
    })
