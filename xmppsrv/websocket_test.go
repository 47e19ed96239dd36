package xmppsrv

import (
	"context"
	"crypto/tls"
	"encoding/base64"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/parleyhq/parley/account"
	"github.com/parleyhq/parley/roster"
)

// webmailAuth vouches for the user named in a "session" cookie.
type webmailAuth struct{ account.Authenticator }

func (webmailAuth) AuthenticateRequest(r *http.Request) (string, error) {
	c, err := r.Cookie("session")
	if err != nil {
		return "", err
	}
	return c.Value + "@" + domain, nil
}

type wsClient struct {
	t *testing.T
	c *websocket.Conn
}

func dialWS(t *testing.T, h *harness, origin, cookie string) *wsClient {
	t.Helper()
	ts := httptest.NewTLSServer(h.srv.WebSocketHandler())
	t.Cleanup(ts.Close)
	hdr := http.Header{}
	if origin != "" {
		hdr.Set("Origin", origin)
	}
	if cookie != "" {
		hdr.Set("Cookie", "session="+cookie)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, resp, err := websocket.Dial(ctx, "wss"+strings.TrimPrefix(ts.URL, "https"), &websocket.DialOptions{
		Subprotocols: []string{"xmpp"},
		HTTPClient:   &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}},
		HTTPHeader:   hdr,
	})
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	if resp.Header.Get("Sec-WebSocket-Protocol") != "xmpp" {
		t.Fatalf("subprotocol %q", resp.Header.Get("Sec-WebSocket-Protocol"))
	}
	t.Cleanup(func() { c.CloseNow() })
	return &wsClient{t: t, c: c}
}

func (w *wsClient) send(s string) {
	w.t.Helper()
	if err := w.c.Write(context.Background(), websocket.MessageText, []byte(s)); err != nil {
		w.t.Fatalf("ws write: %v", err)
	}
}

// next reads one message; each must be a complete XML document.
func (w *wsClient) next() *Element {
	w.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, b, err := w.c.Read(ctx)
	if err != nil {
		w.t.Fatalf("ws read: %v", err)
	}
	el, err := parseElement(b)
	if err != nil {
		w.t.Fatalf("message is not one XML document (%v): %s", err, b)
	}
	return el
}

func (w *wsClient) expect(what string, match func(*Element) bool) *Element {
	w.t.Helper()
	for i := 0; i < 50; i++ {
		if el := w.next(); match(el) {
			return el
		}
	}
	w.t.Fatalf("no %s", what)
	return nil
}

func (w *wsClient) open() *Element {
	w.t.Helper()
	w.send(`<open xmlns="urn:ietf:params:xml:ns:xmpp-framing" to="example.test" version="1.0"/>`)
	o := w.next()
	if o.Local != "open" || o.Space != nsFraming || o.Get("from") != domain || o.Get("id") == "" {
		w.t.Fatalf("open: %s", o.Bytes(""))
	}
	f := w.next()
	if f.Local != "features" || f.Space != nsStream {
		w.t.Fatalf("features: %s", f.Bytes(""))
	}
	return f
}

func TestWebSocketLoginAndChat(t *testing.T) {
	h := newHarness(t)
	bob := h.online("bob", "desk")
	w := dialWS(t, h, "https://elsewhere.example", "")
	f := w.open()
	if f.Child(nsTLS, "starttls") != nil {
		t.Fatalf("no STARTTLS over wss: %s", f.Bytes(""))
	}
	if mechs := f.Child(nsSASL, "mechanisms"); mechs == nil || strings.Contains(string(mechs.Bytes("")), "EXTERNAL") {
		t.Fatalf("mechanisms (no EXTERNAL without a trusted webmail session): %s", f.Bytes(""))
	}
	w.send(`<auth xmlns="urn:ietf:params:xml:ns:xmpp-sasl" mechanism="PLAIN">` + base64.StdEncoding.EncodeToString([]byte("\x00alice\x00pw-alice")) + `</auth>`)
	if el := w.next(); el.Local != "success" {
		t.Fatalf("auth: %s", el.Bytes(""))
	}
	w.open()
	w.send(`<iq xmlns="jabber:client" type="set" id="b"><bind xmlns="urn:ietf:params:xml:ns:xmpp-bind"><resource>web</resource></bind></iq>`)
	if el := w.expect("bind", isIQResult("b")); el.Child(nsBind, "bind").ChildText(nsBind, "jid") != "alice@example.test/web" {
		t.Fatalf("bind: %s", el.Bytes(nsClient))
	}
	w.send(`<presence xmlns="jabber:client"/>`)
	bob.expect("alice via websocket", presenceFrom("alice@example.test/web", ""))
	w.send(`<message xmlns="jabber:client" type="chat" to="bob@example.test"><body>from the browser &lt;3</body></message>`)
	bob.expect("message", isChat("from the browser <3"))
	bob.send(`<message type='chat' to='alice@example.test/web'><body>from Thunderbird</body></message>`)
	w.expect("reply", isChat("from Thunderbird"))
	w.send(`<close xmlns="urn:ietf:params:xml:ns:xmpp-framing"/>`)
	w.expect("close", func(e *Element) bool { return e.Local == "close" && e.Space == nsFraming })
	bob.expect("alice gone", presenceFrom("alice@example.test/web", "unavailable"))
}

func TestWebSocketWebmailSession(t *testing.T) {
	h := newHarness(t, func(c *Config, _ *roster.Config) { c.Auth = webmailAuth{c.Auth} })
	// A page of another origin never gets the webmail session.
	w := dialWS(t, h, "https://evil.example", "carol")
	if f := w.open(); strings.Contains(string(f.Bytes("")), "EXTERNAL") {
		t.Fatalf("EXTERNAL offered to a foreign origin: %s", f.Bytes(""))
	}
	// The webmail's own page does: no second login.
	ts := httptest.NewTLSServer(h.srv.WebSocketHandler())
	defer ts.Close()
	w2 := dialWSOrigin(t, ts, "carol")
	f := w2.open()
	if m := f.Child(nsSASL, "mechanisms").FirstChild(); m.Text() != "EXTERNAL" {
		t.Fatalf("EXTERNAL should come first: %s", f.Bytes(""))
	}
	w2.send(`<auth xmlns="urn:ietf:params:xml:ns:xmpp-sasl" mechanism="EXTERNAL">=</auth>`)
	if el := w2.next(); el.Local != "success" {
		t.Fatalf("EXTERNAL: %s", el.Bytes(""))
	}
	w2.open()
	w2.send(`<iq xmlns="jabber:client" type="set" id="b"><bind xmlns="urn:ietf:params:xml:ns:xmpp-bind"/></iq>`)
	if el := w2.expect("bind", isIQResult("b")); !strings.HasPrefix(el.Child(nsBind, "bind").ChildText(nsBind, "jid"), "carol@example.test/") {
		t.Fatalf("bind: %s", el.Bytes(nsClient))
	}
}

// dialWSOrigin dials ts with an Origin equal to its own host.
func dialWSOrigin(t *testing.T, ts *httptest.Server, cookie string) *wsClient {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	hdr := http.Header{"Origin": {ts.URL}, "Cookie": {"session=" + cookie}}
	c, _, err := websocket.Dial(ctx, "wss"+strings.TrimPrefix(ts.URL, "https"), &websocket.DialOptions{
		Subprotocols: []string{"xmpp"},
		HTTPClient:   &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}},
		HTTPHeader:   hdr,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.CloseNow() })
	return &wsClient{t: t, c: c}
}

func TestWebSocketNeedsTLSAndSubprotocol(t *testing.T) {
	h := newHarness(t)
	ts := httptest.NewServer(h.srv.WebSocketHandler()) // plain http
	defer ts.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, resp, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(ts.URL, "http"), &websocket.DialOptions{Subprotocols: []string{"xmpp"}})
	if err == nil || resp == nil || resp.StatusCode != http.StatusForbidden {
		t.Fatalf("plain ws: err=%v resp=%v", err, resp)
	}
	secure := httptest.NewTLSServer(h.srv.WebSocketHandler())
	defer secure.Close()
	c, _, err := websocket.Dial(ctx, "wss"+strings.TrimPrefix(secure.URL, "https"), &websocket.DialOptions{
		HTTPClient: secure.Client(),
	})
	if err != nil {
		t.Fatal(err)
	}
	_, _, err = c.Read(ctx)
	if websocket.CloseStatus(err) != websocket.StatusProtocolError && !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("no subprotocol: %v", err)
	}
}

func TestSplitter(t *testing.T) {
	var sp splitter
	var got []string
	in := `<?xml version='1.0'?><stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' id='x' from='example.test' version='1.0' xml:lang='en'><stream:features><bind xmlns="urn:ietf:params:xml:ns:xmpp-bind"/></stream:features><message to="a@b" id="q&gt;'x"><body>a > b</body></message><presence/><stream:error><conflict xmlns="urn:ietf:params:xml:ns:xmpp-streams"/></stream:error></stream:stream>`
	// Feed in awkward pieces.
	for i := 0; i < len(in); i += 7 {
		for _, m := range sp.feed([]byte(in[i:min(i+7, len(in))])) {
			got = append(got, string(m))
		}
	}
	want := []string{
		`<open xmlns="urn:ietf:params:xml:ns:xmpp-framing" id="x" from="example.test" version="1.0" xml:lang="en"/>`,
		`<stream:features xmlns:stream="http://etherx.jabber.org/streams"><bind xmlns="urn:ietf:params:xml:ns:xmpp-bind"/></stream:features>`,
		`<message xmlns="jabber:client" to="a@b" id="q&gt;'x"><body>a > b</body></message>`,
		`<presence xmlns="jabber:client"/>`,
		`<stream:error xmlns:stream="http://etherx.jabber.org/streams"><conflict xmlns="urn:ietf:params:xml:ns:xmpp-streams"/></stream:error>`,
		`<close xmlns="urn:ietf:params:xml:ns:xmpp-framing"/>`,
	}
	if len(got) != len(want) {
		t.Fatalf("got %d messages:\n%s", len(got), strings.Join(got, "\n"))
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("message %d:\n got %s\nwant %s", i, got[i], want[i])
		}
	}
}
