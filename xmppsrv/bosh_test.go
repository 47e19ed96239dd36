package xmppsrv

import (
	"encoding/base64"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// boshClient drives raw XEP-0124 bodies over HTTP, as a web client does.
type boshClient struct {
	t   *testing.T
	url string
	hc  *http.Client
	sid string
	rid uint64
	got []*Element // elements received and not yet taken
}

func newBOSH(t *testing.T, h *harness, cfg BOSHConfig) (*httptest.Server, func() *boshClient) {
	ts := httptest.NewTLSServer(h.srv.BOSHHandler(cfg))
	t.Cleanup(ts.Close)
	return ts, func() *boshClient { return &boshClient{t: t, url: ts.URL, hc: ts.Client(), rid: 4000} }
}

// post sends a raw body and returns the parsed answer and its text.
func (c *boshClient) post(body string) (*Element, string) {
	c.t.Helper()
	resp, err := c.hc.Post(c.url, "text/xml; charset=utf-8", strings.NewReader(body))
	if err != nil {
		c.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		c.t.Fatalf("HTTP %d: %s", resp.StatusCode, b)
	}
	el, err := parseElement(b)
	if err != nil || el.Space != nsHTTPBind || el.Local != "body" {
		c.t.Fatalf("answer is not a BOSH body (%v): %s", err, b)
	}
	return el, string(b)
}

// send posts the next request of the session with payload (XML).
func (c *boshClient) send(attrs, payload string) *Element {
	c.t.Helper()
	c.rid++
	el, _ := c.post(fmt.Sprintf(`<body rid='%d' sid='%s' xmlns='http://jabber.org/protocol/httpbind' xmlns:xmpp='urn:xmpp:xbosh'%s>%s</body>`, c.rid, c.sid, attrs, payload))
	if el.Get("type") == "terminate" {
		c.t.Fatalf("session terminated: %s", el.Bytes(""))
	}
	c.got = append(c.got, el.Elements()...)
	return el
}

// expect polls until an element matching match arrives.
func (c *boshClient) expect(what string, match func(*Element) bool) *Element {
	c.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		for i, e := range c.got {
			if match(e) {
				c.got = append(c.got[:i:i], c.got[i+1:]...)
				return e
			}
		}
		if time.Now().After(deadline) {
			c.t.Fatalf("BOSH: no %s", what)
		}
		c.send("", "")
	}
}

func (c *boshClient) create(extra string) *Element {
	c.t.Helper()
	el, _ := c.post(fmt.Sprintf(`<body rid='%d' to='example.test' wait='2' hold='1' ver='1.6' xmpp:version='1.0' xml:lang='en' content='text/xml; charset=utf-8' xmlns='http://jabber.org/protocol/httpbind' xmlns:xmpp='urn:xmpp:xbosh'%s/>`, c.rid, extra))
	c.sid = el.Get("sid")
	if c.sid == "" {
		c.t.Fatalf("no sid: %s", el.Bytes(""))
	}
	c.got = append(c.got, el.Elements()...)
	return el
}

func isFeatures(e *Element) bool { return e.Space == nsStream && e.Local == "features" }

// login creates a session and logs user in with PLAIN, restarts, binds.
func (c *boshClient) login(user, resource string) string {
	c.t.Helper()
	c.create("")
	f := c.expect("features", isFeatures)
	if !strings.Contains(string(f.Bytes("")), "PLAIN") {
		c.t.Fatalf("features: %s", f.Bytes(""))
	}
	auth := base64.StdEncoding.EncodeToString([]byte("\x00" + user + "\x00pw-" + user))
	c.send("", `<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>`+auth+`</auth>`)
	c.expect("success", func(e *Element) bool { return e.Local == "success" })
	c.send(` xmpp:restart='true' to='example.test' xml:lang='en'`, "")
	f = c.expect("features after restart", isFeatures)
	if f.Child(nsBind, "bind") == nil {
		c.t.Fatalf("no bind after restart: %s", f.Bytes(""))
	}
	c.send("", `<iq type='set' id='bind1' xmlns='jabber:client'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'><resource>`+resource+`</resource></bind></iq>`)
	r := c.expect("bind result", isIQResult("bind1"))
	return r.Child(nsBind, "bind").ChildText(nsBind, "jid")
}

// A BOSH session logs in with SASL and the restart handshake, binds,
// exchanges messages with a TCP client both ways (long polling), gets a
// retransmitted answer again, and ends with terminate, after which its
// contacts see it go.
func TestBOSHSession(t *testing.T) {
	h := newHarness(t, withArchive)
	_, client := newBOSH(t, h, BOSHConfig{MaxWait: 2 * time.Second})
	bob := h.online("bob", "desk")
	c := client()
	full := c.login("alice", "web")
	if full != "alice@example.test/web" {
		t.Fatalf("bound %q", full)
	}
	// Stanzas in the body's namespace are taken as jabber:client.
	c.send("", `<iq type='get' id='r1'><query xmlns='jabber:iq:roster'/></iq><presence/>`)
	c.expect("roster", isIQResult("r1"))
	bob.expect("alice online", presenceFrom(full, ""))
	// Long poll: a held request is answered when the message arrives.
	done := make(chan *Element, 1)
	go func() {
		c.rid++
		el, _ := c.post(fmt.Sprintf(`<body rid='%d' sid='%s' xmlns='http://jabber.org/protocol/httpbind'/>`, c.rid, c.sid))
		done <- el
	}()
	time.Sleep(200 * time.Millisecond)
	bob.send(`<message type='chat' to='alice@example.test' id='m1'><body>to bosh</body></message>`)
	var held *Element
	select {
	case held = <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("the held request was not answered")
	}
	c.got = append(c.got, held.Elements()...)
	m := c.expect("bob's message", isChat("to bosh"))
	if m.Child(nsSID, "stanza-id") == nil {
		t.Fatalf("archived message without stanza-id: %s", m.Bytes(nsClient))
	}
	c.send("", `<message type='chat' to='bob@example.test' xmlns='jabber:client'><body>from bosh</body></message>`)
	bob.expect("alice's message", isChat("from bosh"))

	// A held request sent again (its HTTP connection lost) is held in
	// its place, and gets what arrives.
	c.rid++
	lost := make(chan *Element, 1)
	go func() {
		el, _ := c.post(fmt.Sprintf(`<body rid='%d' sid='%s' xmlns='http://jabber.org/protocol/httpbind'/>`, c.rid, c.sid))
		lost <- el
	}()
	time.Sleep(200 * time.Millisecond)
	go func() {
		el, _ := c.post(fmt.Sprintf(`<body rid='%d' sid='%s' xmlns='http://jabber.org/protocol/httpbind'/>`, c.rid, c.sid))
		done <- el
	}()
	if el := <-lost; len(el.Elements()) != 0 || el.Get("type") == "terminate" {
		t.Fatalf("the superseded request: %s", el.Bytes(""))
	}
	bob.send(`<message type='chat' to='alice@example.test' id='m2'><body>again</body></message>`)
	select {
	case held = <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("the retransmitted held request was not answered")
	}
	c.got = append(c.got, held.Elements()...)
	c.expect("bob's second message", isChat("again"))

	// A retransmitted request gets the same answer.
	c.send("", `<iq type='get' id='p1' xmlns='jabber:client'><ping xmlns='urn:xmpp:ping'/></iq>`)
	first := c.rid
	_, again := c.post(fmt.Sprintf(`<body rid='%d' sid='%s' xmlns='http://jabber.org/protocol/httpbind'><iq type='get' id='p1' xmlns='jabber:client'><ping xmlns='urn:xmpp:ping'/></iq></body>`, first, c.sid))
	if !strings.Contains(again, `id="p1"`) {
		c.expect("ping result", isIQResult("p1"))
		t.Fatalf("retransmission answer lacks the ping result: %s", again)
	}

	// Terminate with a last presence.
	c.rid++
	el, _ := c.post(fmt.Sprintf(`<body rid='%d' sid='%s' type='terminate' xmlns='http://jabber.org/protocol/httpbind'><presence type='unavailable' xmlns='jabber:client'/></body>`, c.rid, c.sid))
	if el.Get("type") != "terminate" {
		t.Fatalf("terminate answer: %s", el.Bytes(""))
	}
	bob.expect("alice gone", presenceFrom(full, "unavailable"))
	c.rid++
	el, _ = c.post(fmt.Sprintf(`<body rid='%d' sid='%s' xmlns='http://jabber.org/protocol/httpbind'/>`, c.rid, c.sid))
	if el.Get("type") != "terminate" || el.Get("condition") != "item-not-found" {
		t.Fatalf("request after terminate: %s", el.Bytes(""))
	}
}

// The binding's limits: unknown host, unknown sid, a rid outside the
// window, more simultaneous requests than 'requests', polling too often,
// a body over MaxBody, and a session nobody polls.
func TestBOSHLimits(t *testing.T) {
	h := newHarness(t)
	_, client := newBOSH(t, h, BOSHConfig{MaxWait: 2 * time.Second, Inactivity: time.Second, Polling: time.Second, MaxBody: 4096, MaxSessions: 3})
	bob := h.online("bob", "desk")

	c := client()
	el, _ := c.post(`<body rid='1' to='elsewhere.test' wait='2' hold='1' xmlns='http://jabber.org/protocol/httpbind'/>`)
	if el.Get("condition") != "host-unknown" {
		t.Errorf("unknown host: %s", el.Bytes(""))
	}
	el, _ = c.post(`<body rid='1' sid='nope' xmlns='http://jabber.org/protocol/httpbind'/>`)
	if el.Get("condition") != "item-not-found" {
		t.Errorf("unknown sid: %s", el.Bytes(""))
	}
	el, _ = c.post(`<body rid='x' to='example.test' xmlns='http://jabber.org/protocol/httpbind'/>`)
	if el.Get("condition") != "bad-request" {
		t.Errorf("bad rid: %s", el.Bytes(""))
	}
	el, _ = c.post(`<notbody/>`)
	if el.Get("condition") != "bad-request" {
		t.Errorf("not a body: %s", el.Bytes(""))
	}

	// rid too far ahead.
	c.create("")
	if r := c.send("", ""); r.Get("requests") != "" {
		t.Fatalf("session attributes on a later answer: %s", r.Bytes(""))
	}
	el, _ = c.post(fmt.Sprintf(`<body rid='%d' sid='%s' xmlns='http://jabber.org/protocol/httpbind'/>`, c.rid+3, c.sid))
	if el.Get("condition") != "item-not-found" {
		t.Errorf("rid outside the window: %s", el.Bytes(""))
	}

	// Overactivity: requests='2', so a third open request ends the session.
	c = client()
	create := c.create("")
	if create.Get("requests") != "2" || create.Get("hold") != "1" || create.Get("inactivity") != "1" {
		t.Fatalf("session attributes: %s", create.Bytes(""))
	}
	c.send("", "") // features, or an empty answer
	go func() {
		c.post(fmt.Sprintf(`<body rid='%d' sid='%s' xmlns='http://jabber.org/protocol/httpbind'/>`, c.rid+1, c.sid))
	}()
	time.Sleep(100 * time.Millisecond)
	el, _ = c.post(fmt.Sprintf(`<body rid='%d' sid='%s' xmlns='http://jabber.org/protocol/httpbind'/>`, c.rid+2, c.sid))
	if el.Get("condition") != "policy-violation" {
		t.Errorf("a second empty request while one is held: %s", el.Bytes(""))
	}

	// Polling too often (hold='0').
	c = client()
	c.rid++
	el, _ = c.post(fmt.Sprintf(`<body rid='%d' to='example.test' wait='2' hold='0' xmlns='http://jabber.org/protocol/httpbind' xmlns:xmpp='urn:xmpp:xbosh' xmpp:version='1.0'/>`, c.rid))
	c.sid = el.Get("sid")
	c.send("", "") // features, or an empty answer
	for i := 0; i < 3; i++ {
		c.rid++
		el, _ = c.post(fmt.Sprintf(`<body rid='%d' sid='%s' xmlns='http://jabber.org/protocol/httpbind'/>`, c.rid, c.sid))
		if el.Get("type") == "terminate" {
			break
		}
	}
	if el.Get("condition") != "policy-violation" {
		t.Errorf("polling too often: %s", el.Bytes(""))
	}

	// A body over MaxBody.
	c = client()
	c.create("")
	c.rid++
	big := strings.Repeat("x", 5000)
	el, _ = c.post(fmt.Sprintf(`<body rid='%d' sid='%s' xmlns='http://jabber.org/protocol/httpbind'><message xmlns='jabber:client' to='bob@example.test'><body>%s</body></message></body>`, c.rid, c.sid, big))
	if el.Get("condition") != "policy-violation" {
		t.Errorf("large body: %s", el.Bytes(""))
	}
	el, _ = c.post(fmt.Sprintf(`<body rid='%d' sid='%s' xmlns='http://jabber.org/protocol/httpbind'/>`, c.rid+1, c.sid))
	if el.Get("condition") != "item-not-found" {
		t.Errorf("session survived a large body: %s", el.Bytes(""))
	}

	// Inactivity: a bound session that stops polling is ended, and its
	// contacts see it leave.
	time.Sleep(1500 * time.Millisecond) // the sessions above end
	c = client()
	full := c.login("alice", "idle")
	c.send("", `<presence/>`)
	bob.expect("alice online", presenceFrom(full, ""))
	bob.expect("alice gone after inactivity", presenceFrom(full, "unavailable"))
	c.rid++
	el, _ = c.post(fmt.Sprintf(`<body rid='%d' sid='%s' xmlns='http://jabber.org/protocol/httpbind'/>`, c.rid, c.sid))
	if el.Get("type") != "terminate" {
		t.Errorf("request after inactivity: %s", el.Bytes(""))
	}

	// MaxSessions: the fourth open session is refused.
	for i := 0; i < 3; i++ {
		client().create("")
	}
	el, _ = client().post(`<body rid='1' to='example.test' wait='1' hold='1' xmlns='http://jabber.org/protocol/httpbind'/>`)
	if el.Get("condition") != "policy-violation" {
		t.Errorf("a session past MaxSessions: %s", el.Bytes(""))
	}
}

// FuzzBOSHBody posts arbitrary request bodies: every answer is a BOSH
// <body/> (a session's first answer, or a terminal condition), never a
// panic or a hang.
func FuzzBOSHBody(f *testing.F) {
	for _, s := range []string{
		`<body rid='1' to='example.test' wait='0' hold='0' xmlns='http://jabber.org/protocol/httpbind' xmlns:xmpp='urn:xmpp:xbosh' xmpp:version='1.0'/>`,
		`<body rid='1' sid='x' xmlns='http://jabber.org/protocol/httpbind'><message xmlns='jabber:client'><body>hi</body></message></body>`,
		`<body rid='99999999999999999999' xmlns='http://jabber.org/protocol/httpbind'/>`,
		`<body rid='1' sid='x' type='terminate' xmlns='http://jabber.org/protocol/httpbind'/>`,
		`<body xmlns='other'/>`,
		`<!DOCTYPE x [<!ENTITY a "b">]><body/>`,
		`<body rid='1' sid="`,
		``,
	} {
		f.Add([]byte(s))
	}
	h := newHarness(f)
	handler := h.srv.BOSHHandler(BOSHConfig{MaxWait: 50 * time.Millisecond, MaxBody: 4096})
	f.Fuzz(func(t *testing.T, data []byte) {
		req := httptest.NewRequest("POST", "https://example.test/http-bind", strings.NewReader(string(data)))
		rec := httptest.NewRecorder()
		handler.ServeHTTP(rec, req)
		if rec.Code != 200 {
			t.Fatalf("HTTP %d for %q", rec.Code, data)
		}
		el, err := parseElement(rec.Body.Bytes())
		if err != nil || el.Space != nsHTTPBind || el.Local != "body" {
			t.Fatalf("answer %q to %q is not a BOSH body", rec.Body.String(), data)
		}
	})
}
