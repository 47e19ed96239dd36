package xmppsrv

import (
	"crypto/pbkdf2"
	"crypto/tls"
	"encoding/base64"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/parleyhq/parley/account"
	"github.com/parleyhq/parley/roster"
)

func TestFeaturesRequireTLSFirst(t *testing.T) {
	h := newHarness(t)
	c := h.dial()
	f := c.open()
	st := f.Child(nsTLS, "starttls")
	if st == nil || st.Child(nsTLS, "required") == nil {
		t.Fatalf("pre-TLS features must require STARTTLS: %s", f.Bytes(""))
	}
	if f.Child(nsSASL, "mechanisms") != nil {
		t.Fatalf("no SASL before TLS: %s", f.Bytes(""))
	}
	// Trying to authenticate in the clear ends the stream.
	c.send(`<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>AGFsaWNlAHB3LWFsaWNl</auth>`)
	el := c.next()
	if el.Local != "error" || el.Child(nsStreams, "policy-violation") == nil {
		t.Fatalf("expected policy-violation, got %s", el.Bytes(""))
	}
	f = h.dial().open()
	_ = f
	c2 := h.dial()
	c2.open()
	f2 := c2.starttls()
	mechs := f2.Child(nsSASL, "mechanisms")
	if mechs == nil {
		t.Fatalf("no mechanisms after TLS: %s", f2.Bytes(""))
	}
	var got []string
	for _, m := range mechs.Elements() {
		got = append(got, m.Text())
	}
	if strings.Join(got, ",") != "SCRAM-SHA-256,SCRAM-SHA-1,PLAIN" {
		t.Fatalf("mechanisms = %v", got)
	}
}

func TestPlainLoginAndBind(t *testing.T) {
	h := newHarness(t)
	c := h.dial()
	c.open()
	c.starttls()
	// The full address works as the username as well as the local part.
	if el := c.authPlain("alice@"+domain, "pw-alice"); el.Local != "success" {
		t.Fatalf("login: %s", el.Bytes(""))
	}
	f := c.open()
	for _, want := range []struct{ ns, local string }{{nsBind, "bind"}, {nsRosterV, "ver"}, {nsPreAppr, "sub"}} {
		if f.Child(want.ns, want.local) == nil {
			t.Errorf("post-auth features lack %s: %s", want.local, f.Bytes(""))
		}
	}
	full := c.bind("")
	if !strings.HasPrefix(full, "alice@"+domain+"/") || len(full) < len("alice@"+domain+"/")+8 {
		t.Fatalf("server-generated resource: %q", full)
	}
	// Legacy session establishment is accepted.
	c.send(`<iq type='set' id='s1'><session xmlns='urn:ietf:params:xml:ns:xmpp-session'/></iq>`)
	if el := c.expect("session", isIQResult("s1")); el.Get("type") != "result" {
		t.Fatalf("session: %s", el.Bytes(nsClient))
	}
}

func TestWrongPasswordAndThrottle(t *testing.T) {
	h := newHarness(t, func(c *Config, _ *roster.Config) { c.LoginFailures = 3 })
	for i := 0; i < 6; i++ {
		c := h.dial()
		c.open()
		c.starttls()
		el := c.authPlain("bob", "wrong")
		want := "not-authorized"
		if i >= 3 {
			want = "temporary-auth-failure"
		}
		if el.Local != "failure" || el.Child(nsSASL, want) == nil {
			t.Fatalf("attempt %d: expected %s, got %s", i+1, want, el.Bytes(""))
		}
		if i >= 3 && !strings.Contains(el.ChildText(nsSASL, "text"), "try again in") {
			t.Fatalf("throttle text should say when to retry: %s", el.Bytes(""))
		}
	}
	// Even the right password is refused while the account is throttled.
	c := h.dial()
	c.open()
	c.starttls()
	if el := c.authPlain("bob", "pw-bob"); el.Child(nsSASL, "temporary-auth-failure") == nil {
		t.Fatalf("throttled account logged in: %s", el.Bytes(""))
	}
	// Another account from the same address is not throttled yet.
	c = h.dial()
	c.open()
	c.starttls()
	if el := c.authPlain("carol", "pw-carol"); el.Local != "success" {
		t.Fatalf("carol: %s", el.Bytes(""))
	}
	if h.srv.m.AuthFailures.Load() != 3 || h.srv.m.Throttled.Load() < 3 {
		t.Fatalf("metrics: failures=%d throttled=%d", h.srv.m.AuthFailures.Load(), h.srv.m.Throttled.Load())
	}
}

func TestUnknownUserLooksLikeWrongPassword(t *testing.T) {
	h := newHarness(t)
	c := h.dial()
	c.open()
	c.starttls()
	el := c.authPlain("nobody", "x")
	if el.Child(nsSASL, "not-authorized") == nil {
		t.Fatalf("unknown user: %s", el.Bytes(""))
	}
	// SCRAM for an unknown user proceeds to a challenge and fails at the end.
	c.send(`<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='SCRAM-SHA-256'>%s</auth>`,
		base64.StdEncoding.EncodeToString([]byte("n,,n=nobody,r=abcdefgh")))
	if el := c.next(); el.Local != "challenge" {
		t.Fatalf("unknown user should still get a challenge: %s", el.Bytes(""))
	}
}

// scramLogin runs a SCRAM exchange the way RFC 5802 describes a client.
func scramLogin(t *testing.T, c *client, hashName, user, pass string) *Element {
	t.Helper()
	h := account.MustHash(hashName)
	cnonce := "fyko+d2lbbFgONRv9qkxdawL"
	first := "n=" + user + ",r=" + cnonce
	c.send(`<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='SCRAM-%s'>%s</auth>`, hashName,
		base64.StdEncoding.EncodeToString([]byte("n,,"+first)))
	ch := c.next()
	if ch.Local != "challenge" {
		return ch
	}
	sf, _ := base64.StdEncoding.DecodeString(ch.Text())
	attrs := scramAttrs(string(sf))
	salt, _ := base64.StdEncoding.DecodeString(attrs['s'])
	var iters int
	fmt.Sscan(attrs['i'], &iters)
	if !strings.HasPrefix(attrs['r'], cnonce) {
		t.Fatalf("server nonce must extend ours: %q", attrs['r'])
	}
	creds, err := account.DeriveSCRAM(hashName, pass, salt, iters)
	if err != nil {
		t.Fatal(err)
	}
	withoutProof := "c=biws,r=" + attrs['r']
	authMsg := first + "," + string(sf) + "," + withoutProof
	// ClientKey is not in creds; recompute it from the password.
	saltedKey := pbkdf(hashName, pass, salt, iters)
	clientKey := account.HMAC(h, saltedKey, "Client Key")
	sig := account.HMAC(h, creds.StoredKey, authMsg)
	proof := make([]byte, len(clientKey))
	for i := range proof {
		proof[i] = clientKey[i] ^ sig[i]
	}
	c.send(`<response xmlns='urn:ietf:params:xml:ns:xmpp-sasl'>%s</response>`,
		base64.StdEncoding.EncodeToString([]byte(withoutProof+",p="+base64.StdEncoding.EncodeToString(proof))))
	res := c.next()
	if res.Local == "success" {
		add, _ := base64.StdEncoding.DecodeString(res.Text())
		want := "v=" + base64.StdEncoding.EncodeToString(account.HMAC(h, creds.ServerKey, authMsg))
		if string(add) != want {
			t.Fatalf("server signature %q, want %q", add, want)
		}
	}
	return res
}

func TestSCRAMLogin(t *testing.T) {
	h := newHarness(t)
	for _, hash := range []string{"SHA-256", "SHA-1"} {
		t.Run(hash, func(t *testing.T) {
			c := h.dial()
			c.open()
			c.starttls()
			if el := scramLogin(t, c, hash, "carol", "pw-carol"); el.Local != "success" {
				t.Fatalf("SCRAM login: %s", el.Bytes(""))
			}
			c.open()
			c.bind("scram")
			c2 := h.dial()
			c2.open()
			c2.starttls()
			if el := scramLogin(t, c2, hash, "carol", "wrong"); el.Child(nsSASL, "not-authorized") == nil {
				t.Fatalf("wrong SCRAM password: %s", el.Bytes(""))
			}
		})
	}
}

func TestBadXML(t *testing.T) {
	cases := []struct {
		name, send, cond string
	}{
		{"malformed", `<message><body>x</message>`, "not-well-formed"},
		{"doctype", `<!DOCTYPE foo [<!ENTITY x "y">]><message/>`, "restricted-xml"},
		{"comment", `<!-- hi --><message/>`, "restricted-xml"},
		{"pi", `<?php echo 1; ?><message/>`, "restricted-xml"},
		{"oversize", `<message to='bob@example.test'><body>` + strings.Repeat("x", 5000) + `</body></message>`, "policy-violation"},
		{"spoofed from", `<message from='bob@example.test/x' to='carol@example.test'><body>hi</body></message>`, "invalid-from"},
		{"not a stanza", `<foo xmlns='jabber:client'/>`, "unsupported-stanza-type"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t, func(c *Config, _ *roster.Config) { c.MaxStanzaSize = 4096 })
			bob := h.online("bob", "desk")
			a := h.online("alice", "desk")
			a.sendRaw(tc.send)
			el := a.expect("stream error", func(e *Element) bool { return e.Local == "error" && e.Space == nsStream })
			if el.Child(nsStreams, tc.cond) == nil {
				t.Fatalf("expected %s, got %s", tc.cond, el.Bytes(""))
			}
			// The other session is untouched, and sees alice go offline.
			bob.expect("alice unavailable", func(e *Element) bool {
				return e.Local == "presence" && e.Get("type") == "unavailable" && strings.HasPrefix(e.Get("from"), "alice@")
			})
			bob.send(`<iq type='get' id='p'><ping xmlns='urn:xmpp:ping'/></iq>`)
			bob.expect("ping result", isIQResult("p"))
		})
	}
}

func TestOversizeBeforeAuth(t *testing.T) {
	h := newHarness(t, func(c *Config, _ *roster.Config) { c.MaxStanzaSize = 1024 })
	c := h.dial()
	c.open()
	c.sendRaw(`<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls' junk='` + strings.Repeat("a", 4000) + `'/>`)
	el := c.next()
	if el.Child(nsStreams, "policy-violation") == nil {
		t.Fatalf("expected policy-violation, got %s", el.Bytes(""))
	}
}

func TestResourceConflictReplacesOldSession(t *testing.T) {
	h := newHarness(t)
	old := h.online("alice", "phone")
	nw := h.login("alice", "phone")
	el := old.expect("conflict", func(e *Element) bool { return e.Local == "error" && e.Space == nsStream })
	if el.Child(nsStreams, "conflict") == nil {
		t.Fatalf("old session: %s", el.Bytes(""))
	}
	if nw.jid != "alice@"+domain+"/phone" {
		t.Fatalf("new session jid %q", nw.jid)
	}
}

func TestSessionsPerUserLimit(t *testing.T) {
	h := newHarness(t, func(c *Config, _ *roster.Config) { c.MaxSessionsPerUser = 2 })
	h.login("alice", "a")
	h.login("alice", "b")
	c := h.dial()
	c.open()
	c.starttls()
	c.authPlain("alice", "pw-alice")
	c.open()
	c.send(`<iq type='set' id='b3'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'><resource>c</resource></bind></iq>`)
	el := c.expect("bind error", isIQResult("b3"))
	if el.Get("type") != "error" || el.Child(nsClient, "error").Child(nsStanzas, "resource-constraint") == nil {
		t.Fatalf("third session: %s", el.Bytes(nsClient))
	}
}

func TestAuthTimeout(t *testing.T) {
	h := newHarness(t, func(c *Config, _ *roster.Config) { c.AuthTimeout = 300 * time.Millisecond })
	c := h.dial()
	c.open()
	el := c.next()
	if el.Child(nsStreams, "connection-timeout") == nil {
		t.Fatalf("expected connection-timeout, got %s", el.Bytes(""))
	}
}

func TestServerInfoIQs(t *testing.T) {
	h := newHarness(t)
	a := h.online("alice", "desk")
	a.send(`<iq type='get' id='d1' to='example.test'><query xmlns='http://jabber.org/protocol/disco#info'/></iq>`)
	el := a.expect("disco", isIQResult("d1"))
	q := el.Child(nsDiscoI, "query")
	if q == nil || q.Child(nsDiscoI, "identity").Get("category") != "server" {
		t.Fatalf("disco#info: %s", el.Bytes(nsClient))
	}
	features := map[string]bool{}
	for _, f := range q.Elements() {
		if f.Local == "feature" {
			features[f.Get("var")] = true
		}
	}
	for _, f := range []string{nsPing, nsVersion, nsTime, nsVCard, "msgoffline", nsDiscoIt} {
		if !features[f] {
			t.Errorf("disco#info lacks %s", f)
		}
	}
	a.send(`<iq type='get' id='v1' to='example.test'><query xmlns='jabber:iq:version'/></iq>`)
	if el := a.expect("version", isIQResult("v1")); el.Child(nsVersion, "query").ChildText(nsVersion, "name") != "Parley" {
		t.Fatalf("version: %s", el.Bytes(nsClient))
	}
	a.send(`<iq type='get' id='t1' to='example.test'><time xmlns='urn:xmpp:time'/></iq>`)
	if el := a.expect("time", isIQResult("t1")); el.Child(nsTime, "time").ChildText(nsTime, "utc") == "" {
		t.Fatalf("time: %s", el.Bytes(nsClient))
	}
	a.send(`<iq type='get' id='p1' to='example.test'><ping xmlns='urn:xmpp:ping'/></iq>`)
	if el := a.expect("ping", isIQResult("p1")); el.Get("type") != "result" {
		t.Fatalf("ping: %s", el.Bytes(nsClient))
	}
	a.send(`<iq type='get' id='u1' to='example.test'><unknown xmlns='urn:example:nope'/></iq>`)
	el = a.expect("unknown", isIQResult("u1"))
	if el.Get("type") != "error" || el.Child(nsClient, "error").Child(nsStanzas, "service-unavailable") == nil {
		t.Fatalf("unknown payload: %s", el.Bytes(nsClient))
	}
	a.send(`<iq type='get' id='bad'/>`)
	el = a.expect("empty iq", isIQResult("bad"))
	if el.Child(nsClient, "error").Child(nsStanzas, "bad-request") == nil {
		t.Fatalf("iq without payload: %s", el.Bytes(nsClient))
	}
	a.send(`<iq type='get' id='jm' to='a@b@c'><ping xmlns='urn:xmpp:ping'/></iq>`)
	el = a.expect("malformed jid", isIQResult("jm"))
	if el.Child(nsClient, "error").Child(nsStanzas, "jid-malformed") == nil {
		t.Fatalf("malformed to: %s", el.Bytes(nsClient))
	}
}

func TestVCardFromDirectoryKeepsAvatar(t *testing.T) {
	h := newHarness(t)
	a := h.online("alice", "desk")
	a.send(`<iq type='get' id='v1' to='bob@example.test'><vCard xmlns='vcard-temp'/></iq>`)
	el := a.expect("bob's vcard", isIQResult("v1"))
	v := el.Child(nsVCard, "vCard")
	if v == nil || v.ChildText(nsVCard, "FN") != "Bob" || v.Child(nsVCard, "EMAIL").ChildText(nsVCard, "USERID") != "bob@"+domain {
		t.Fatalf("vcard: %s", el.Bytes(nsClient))
	}
	// Alice sets a vCard with an avatar and a different FN; the avatar is
	// kept, the name stays the directory's.
	a.send(`<iq type='set' id='v2'><vCard xmlns='vcard-temp'><FN>Mallory</FN><NICKNAME>ali</NICKNAME><PHOTO><TYPE>image/png</TYPE><BINVAL>iVBORw0KGgo=</BINVAL></PHOTO></vCard></iq>`)
	if el := a.expect("set", isIQResult("v2")); el.Get("type") != "result" {
		t.Fatalf("vcard set: %s", el.Bytes(nsClient))
	}
	b := h.online("bob", "desk")
	b.send(`<iq type='get' id='v3' to='alice@example.test'><vCard xmlns='vcard-temp'/></iq>`)
	el = b.expect("alice's vcard", isIQResult("v3"))
	v = el.Child(nsVCard, "vCard")
	if v.ChildText(nsVCard, "FN") != "Alice" || v.Child(nsVCard, "PHOTO").ChildText(nsVCard, "BINVAL") != "iVBORw0KGgo=" || v.ChildText(nsVCard, "NICKNAME") != "ali" {
		t.Fatalf("alice's vcard: %s", el.Bytes(nsClient))
	}
	// Nobody sets someone else's vCard.
	b.send(`<iq type='set' id='v4' to='alice@example.test'><vCard xmlns='vcard-temp'><FN>x</FN></vCard></iq>`)
	if el := b.expect("forbidden", isIQResult("v4")); el.Get("type") != "error" {
		t.Fatalf("setting another's vcard: %s", el.Bytes(nsClient))
	}
}

func pbkdf(hashName, pass string, salt []byte, iters int) []byte {
	h := account.MustHash(hashName)
	b, err := pbkdf2.Key(h, pass, salt, iters, h().Size())
	if err != nil {
		panic(err)
	}
	return b
}

func TestDirectTLS(t *testing.T) {
	h := newHarness(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go h.srv.ServeTLS(ln)
	conn, err := tls.Dial("tcp", ln.Addr().String(), &tls.Config{InsecureSkipVerify: true, NextProtos: []string{"xmpp-client"}})
	if err != nil {
		t.Fatal(err)
	}
	if p := conn.ConnectionState().NegotiatedProtocol; p != "xmpp-client" {
		t.Errorf("ALPN = %q, want xmpp-client (XEP-0368)", p)
	}
	c := &client{t: t, conn: conn}
	t.Cleanup(func() { conn.Close() })
	f := c.open()
	if f.Child(nsTLS, "starttls") != nil || f.Child(nsSASL, "mechanisms") == nil {
		t.Fatalf("direct TLS features: %s", f.Bytes(""))
	}
	if el := c.authPlain("alice", "pw-alice"); el.Local != "success" {
		t.Fatalf("login: %s", el.Bytes(""))
	}
	c.open()
	if j := c.bind("tls"); j != "alice@"+domain+"/tls" {
		t.Fatalf("bound %q", j)
	}
}

func TestAliasDiscoIdentity(t *testing.T) {
	h := newHarness(t)
	a := h.online("alice", "desk")
	a.send(`<iq type='get' id='al' to='sales@example.test'><query xmlns='http://jabber.org/protocol/disco#info'/></iq>`)
	el := a.expect("alias disco", isIQResult("al"))
	id := el.Child(nsDiscoI, "query").Child(nsDiscoI, "identity")
	if id == nil || id.Get("category") != "directory" || id.Get("type") != "group" || id.Get("name") != "Sales" {
		t.Fatalf("alias identity: %s", el.Bytes(nsClient))
	}
}
