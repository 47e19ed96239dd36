package xmppsrv

import (
	"bytes"
	"crypto/rand"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/parleyhq/parley/jid"
)

func TestHTTPFileUpload(t *testing.T) {
	h := newHarness(t, filesOn{}, withArchive)
	a := h.online("alice", "desk")
	b := h.online("bob", "desk")
	a.send(`<iq type='get' id='it' to='example.test'><query xmlns='http://jabber.org/protocol/disco#items'/></iq>`)
	el := a.expect("items", isIQResult("it"))
	if it := el.Child(nsDiscoIt, "query").FirstChild(); it == nil || it.Get("jid") != "upload.example.test" {
		t.Fatalf("disco#items: %s", el.Bytes(nsClient))
	}
	a.send(`<iq type='get' id='in' to='upload.example.test'><query xmlns='http://jabber.org/protocol/disco#info'/></iq>`)
	el = a.expect("info", isIQResult("in"))
	if !strings.Contains(string(el.Bytes(nsClient)), `var="urn:xmpp:http:upload:0"`) || !strings.Contains(string(el.Bytes(nsClient)), "<value>1048576</value>") {
		t.Fatalf("upload disco#info: %s", el.Bytes(nsClient))
	}
	data := make([]byte, 300_000)
	rand.Read(data)
	a.send(`<iq type='get' id='sl' to='upload.example.test'><request xmlns='urn:xmpp:http:upload:0' filename='report.pdf' size='300000' content-type='application/pdf'/></iq>`)
	el = a.expect("slot", isIQResult("sl"))
	slot := el.Child(nsUpload, "slot")
	if slot == nil {
		t.Fatalf("slot: %s", el.Bytes(nsClient))
	}
	put, get := slot.Child(nsUpload, "put").Get("url"), slot.Child(nsUpload, "get").Get("url")
	client := h.files.Client()
	req, _ := http.NewRequest("PUT", put, bytes.NewReader(data))
	req.Header.Set("Content-Type", "application/pdf")
	resp, err := client.Do(req)
	if err != nil || resp.StatusCode/100 != 2 {
		t.Fatalf("PUT: %v %v", err, resp)
	}
	resp, err = client.Get(get)
	if err != nil {
		t.Fatal(err)
	}
	got, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !bytes.Equal(got, data) {
		t.Fatalf("downloaded %d bytes, not what was uploaded", len(got))
	}
	// Sharing the link: the message gains out-of-band data, and both
	// sides' attachment lists have the file.
	a.send(`<message type='chat' to='bob@example.test'><body>%s</body></message>`, get)
	el = b.expect("file message", isChat(get))
	if el.Child(nsOOB, "x").ChildText(nsOOB, "url") != get {
		t.Fatalf("no XEP-0066 data: %s", el.Bytes(nsClient))
	}
	for _, pair := range [][2]string{{"alice", "bob"}, {"bob", "alice"}} {
		list, err := h.srv.cfg.Files.Exchanged(t.Context(), jidOf(pair[0]), jidOf(pair[1]))
		if err != nil || len(list) != 1 || list[0].Name != "report.pdf" {
			t.Fatalf("%s's files with %s: %v %v", pair[0], pair[1], list, err)
		}
	}
	// Errors: too large (with the limit), a blacklisted type, no size.
	a.send(`<iq type='get' id='big' to='upload.example.test'><request xmlns='urn:xmpp:http:upload:0' filename='movie.mp4' size='5000000'/></iq>`)
	el = a.expect("too large", isIQResult("big"))
	if e := el.Child(nsClient, "error"); e == nil || e.Child(nsUpload, "file-too-large").ChildText(nsUpload, "max-file-size") != "1048576" {
		t.Fatalf("too large: %s", el.Bytes(nsClient))
	}
	a.send(`<iq type='get' id='exe' to='upload.example.test'><request xmlns='urn:xmpp:http:upload:0' filename='setup.EXE' size='10'/></iq>`)
	if el := a.expect("blacklisted", isIQResult("exe")); stanzaErrorCond(el) != "not-acceptable" {
		t.Fatalf("blacklisted: %s", el.Bytes(nsClient))
	}
	a.send(`<iq type='get' id='nos' to='upload.example.test'><request xmlns='urn:xmpp:http:upload:0' filename='x.txt'/></iq>`)
	if el := a.expect("no size", isIQResult("nos")); stanzaErrorCond(el) != "bad-request" {
		t.Fatalf("no size: %s", el.Bytes(nsClient))
	}
}

func jidOf(user string) jid.JID { return jid.MustParse(user + "@" + domain) }
