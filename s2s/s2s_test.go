package s2s

import (
	"bufio"
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/xml"
	"fmt"
	"io"
	"log/slog"
	"math/big"
	"net"
	"runtime/pprof"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/parleyhq/parley/xmppsrv"
)

// fakeLocal is the local XMPP server: it serves some domains and records
// what federation hands it.
type fakeLocal struct {
	domains map[string]bool
	got     chan *xmppsrv.Element
}

func newLocal(domains ...string) *fakeLocal {
	l := &fakeLocal{domains: map[string]bool{}, got: make(chan *xmppsrv.Element, 100)}
	for _, d := range domains {
		l.domains[d] = true
	}
	return l
}

func (l *fakeLocal) Local(d string) bool         { return l.domains[d] }
func (l *fakeLocal) Deliver(el *xmppsrv.Element) { l.got <- el }

func (l *fakeLocal) expect(t *testing.T, what string) *xmppsrv.Element {
	t.Helper()
	select {
	case el := <-l.got:
		return el
	case <-time.After(10 * time.Second):
		t.Fatalf("timed out waiting for %s", what)
	}
	return nil
}

func (l *fakeLocal) none(t *testing.T, d time.Duration) {
	t.Helper()
	select {
	case el := <-l.got:
		t.Fatalf("unexpected delivery: %s", el.Bytes(""))
	case <-time.After(d):
	}
}

// testCA issues certificates for test domains.
type testCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	pool *x509.CertPool
}

func newCA(t *testing.T) *testCA {
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	c, _ := x509.ParseCertificate(der)
	pool := x509.NewCertPool()
	pool.AddCert(c)
	return &testCA{c, key, pool}
}

// issue returns a certificate for domain, signed by the CA, or self-signed
// when ca is nil.
func issue(t testing.TB, ca *testCA, domain string) tls.Certificate {
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: domain},
		DNSNames: []string{domain}, NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth}}
	parent, signer := tmpl, any(key)
	if ca != nil {
		parent, signer = ca.cert, ca.key
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, &key.PublicKey, signer)
	if err != nil {
		t.Fatal(err)
	}
	leaf, _ := x509.ParseCertificate(der)
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}
}

// logRecorder keeps log messages so a test can see how a peer authenticated.
type logRecorder struct {
	mu   sync.Mutex
	msgs []string
}

func (r *logRecorder) Enabled(context.Context, slog.Level) bool { return true }
func (r *logRecorder) Handle(_ context.Context, rec slog.Record) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	s := rec.Message
	rec.Attrs(func(a slog.Attr) bool { s += " " + a.String(); return true })
	r.msgs = append(r.msgs, s)
	return nil
}
func (r *logRecorder) WithAttrs([]slog.Attr) slog.Handler { return r }
func (r *logRecorder) WithGroup(string) slog.Handler      { return r }
func (r *logRecorder) has(sub string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, m := range r.msgs {
		if strings.Contains(m, sub) {
			return true
		}
	}
	return false
}

type peer struct {
	srv   *Server
	local *fakeLocal
	addr  string // STARTTLS listener
	tls   string // direct TLS listener
	log   *logRecorder
}

// newPeer starts a federation for domain with a STARTTLS and a direct-TLS
// listener on loopback.
func newPeer(t testing.TB, domain string, ca *testCA, mutate func(*Config)) *peer {
	t.Helper()
	p := &peer{local: newLocal(domain), log: &logRecorder{}}
	cfg := Config{
		Local:          p.local,
		TLS:            &tls.Config{Certificates: []tls.Certificate{issue(t, ca, domain)}},
		RootCAs:        x509.NewCertPool(),
		ConnectTimeout: 5 * time.Second,
		Override:       map[string]string{},
		Logger:         slog.New(p.log),
	}
	if ca != nil {
		cfg.RootCAs = ca.pool
	}
	if mutate != nil {
		mutate(&cfg)
	}
	srv, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	p.srv = srv
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ln2, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p.addr, p.tls = ln.Addr().String(), ln2.Addr().String()
	go srv.Serve(ln)
	go srv.ServeTLS(ln2)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := srv.Shutdown(ctx); err != nil {
			var buf bytes.Buffer
			pprof.Lookup("goroutine").WriteTo(&buf, 1)
			t.Errorf("Shutdown: %v; goroutines:\n%s", err, buf.String())
		}
	})
	return p
}

// pair returns two federated peers, a.test and b.test, that find each
// other through Override.
func pair(t testing.TB, ca *testCA, direct bool, mutate func(*Config)) (a, b *peer) {
	a = newPeer(t, "a.test", ca, mutate)
	b = newPeer(t, "b.test", ca, mutate)
	if direct {
		a.srv.cfg.Override["b.test"] = "tls://" + b.tls
		b.srv.cfg.Override["a.test"] = "tls://" + a.tls
	} else {
		a.srv.cfg.Override["b.test"] = b.addr
		b.srv.cfg.Override["a.test"] = a.addr
	}
	return a, b
}

func message(from, to, body string) *xmppsrv.Element {
	return xmppsrv.NewElement(nsClient, "message", "from", from, "to", to, "type", "chat", "id", "m-"+body).
		Add(xmppsrv.NewElement(nsClient, "body").AddText(body))
}

func errorCondition(el *xmppsrv.Element) string {
	e := el.Child(nsClient, "error")
	if e == nil {
		return ""
	}
	for _, c := range e.Elements() {
		if c.Space == nsStanzas && c.Local != "text" {
			return c.Local
		}
	}
	return ""
}

func TestDialbackKey(t *testing.T) {
	k := DialbackKey([]byte("s3cr3tf0rd14lb4ck"), "example.net", "example.com", "D60000229F")
	if len(k) != 64 || strings.Trim(k, "0123456789abcdef") != "" {
		t.Fatalf("key %q is not 64 hex digits", k)
	}
	if k != DialbackKey([]byte("s3cr3tf0rd14lb4ck"), "example.net", "example.com", "D60000229F") {
		t.Fatal("key is not deterministic")
	}
	for _, other := range []string{
		DialbackKey([]byte("another secret"), "example.net", "example.com", "D60000229F"),
		DialbackKey([]byte("s3cr3tf0rd14lb4ck"), "example.org", "example.com", "D60000229F"),
		DialbackKey([]byte("s3cr3tf0rd14lb4ck"), "example.net", "example.org", "D60000229F"),
		DialbackKey([]byte("s3cr3tf0rd14lb4ck"), "example.net", "example.com", "D60000229G"),
	} {
		if other == k {
			t.Fatal("a different secret, domain or stream id gives the same key")
		}
	}
}

func TestDialbackBothWays(t *testing.T) {
	for _, direct := range []bool{false, true} {
		t.Run(fmt.Sprintf("direct=%v", direct), func(t *testing.T) {
			a, b := pair(t, nil, direct, nil) // self-signed: certificates do not verify
			a.srv.Send(message("alice@a.test/phone", "bob@b.test", "hi bob"))
			got := b.local.expect(t, "the message at b.test")
			if got.Space != nsClient || got.Get("from") != "alice@a.test/phone" || got.Get("to") != "bob@b.test" ||
				got.ChildText(nsClient, "body") != "hi bob" {
				t.Fatalf("b.test got %s", got.Bytes(nsClient))
			}
			b.srv.Send(message("bob@b.test/laptop", "alice@a.test/phone", "hi alice"))
			got = a.local.expect(t, "the reply at a.test")
			if got.ChildText(nsClient, "body") != "hi alice" || got.Get("from") != "bob@b.test/laptop" {
				t.Fatalf("a.test got %s", got.Bytes(nsClient))
			}
			if !b.log.has("authenticated by dialback") || !a.log.has("authenticated by dialback") {
				t.Error("expected both streams to authenticate with dialback")
			}
			// More stanzas reuse the stream.
			for i := range 20 {
				a.srv.Send(message("alice@a.test/phone", "bob@b.test", fmt.Sprint(i)))
			}
			for i := range 20 {
				if body := b.local.expect(t, "message").ChildText(nsClient, "body"); body != fmt.Sprint(i) {
					t.Fatalf("message %d arrived as %q: out of order", i, body)
				}
			}
		})
	}
}

func TestSASLExternalWhenCertificatesVerify(t *testing.T) {
	ca := newCA(t)
	a, b := pair(t, ca, false, nil)
	a.srv.Send(message("alice@a.test/x", "bob@b.test", "signed"))
	if got := b.local.expect(t, "message"); got.ChildText(nsClient, "body") != "signed" {
		t.Fatalf("got %s", got.Bytes(""))
	}
	if !b.log.has("method=EXTERNAL") {
		t.Errorf("b.test did not authenticate a.test with SASL EXTERNAL: %v", b.log.msgs)
	}
	if b.log.has("authenticated by dialback") {
		t.Error("dialback was used although the certificate verifies")
	}
}

func TestCertOnlyRefusesUnverifiedPeer(t *testing.T) {
	a, _ := pair(t, nil, false, func(c *Config) { c.Policy = CertOnly })
	a.srv.Send(message("alice@a.test/x", "bob@b.test", "no"))
	got := a.local.expect(t, "the bounce")
	if errorCondition(got) != "remote-server-not-found" || got.Get("to") != "alice@a.test/x" || got.Get("from") != "bob@b.test" {
		t.Fatalf("bounce %s", got.Bytes(nsClient))
	}
}

func TestBounceWhenServerDown(t *testing.T) {
	a := newPeer(t, "a.test", nil, nil)
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	dead := ln.Addr().String()
	ln.Close()
	a.srv.cfg.Override["down.test"] = dead
	for i := range 3 {
		a.srv.Send(message("alice@a.test/x", "bob@down.test", fmt.Sprint(i)))
	}
	for i := range 3 {
		got := a.local.expect(t, "bounce")
		if errorCondition(got) != "remote-server-not-found" || got.Get("type") != "error" || got.Get("to") != "alice@a.test/x" {
			t.Fatalf("bounce %d: %s", i, got.Bytes(nsClient))
		}
		if got.ChildText(nsClient, "body") == "" {
			t.Error("the bounce should carry the original body")
		}
	}
	// Errors are never answered with errors.
	e := message("alice@a.test/x", "bob@down.test", "err")
	e.Set("type", "error")
	a.srv.Send(e)
	a.local.none(t, 300*time.Millisecond)
}

func TestBounceOnTimeout(t *testing.T) {
	a := newPeer(t, "a.test", nil, func(c *Config) { c.ConnectTimeout = 300 * time.Millisecond })
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			defer c.Close() // accepts, never answers
		}
	}()
	a.srv.cfg.Override["slow.test"] = ln.Addr().String()
	a.srv.Send(message("alice@a.test/x", "bob@slow.test", "wait"))
	got := a.local.expect(t, "bounce")
	if errorCondition(got) != "remote-server-timeout" {
		t.Fatalf("bounce %s", got.Bytes(nsClient))
	}
}

func TestLocalDomainsNeverLeave(t *testing.T) {
	a := newPeer(t, "a.test", nil, nil)
	a.local.domains["other.test"] = true
	a.srv.Send(message("alice@a.test/x", "bob@other.test", "local"))
	got := a.local.expect(t, "local delivery")
	if got.Get("type") == "error" || got.ChildText(nsClient, "body") != "local" {
		t.Fatalf("got %s", got.Bytes(nsClient))
	}
	a.srv.mu.Lock()
	n := len(a.srv.out)
	a.srv.mu.Unlock()
	if n != 0 {
		t.Fatalf("%d outbound routes opened for a local domain", n)
	}
}

func TestAllowAndDeny(t *testing.T) {
	a, b := pair(t, nil, false, nil)
	a.srv.deny = domainSet([]string{"b.test"})
	a.srv.Send(message("alice@a.test/x", "bob@b.test", "denied"))
	got := a.local.expect(t, "bounce")
	if errorCondition(got) != "remote-server-not-found" || !strings.Contains(got.Child(nsClient, "error").ChildText(nsStanzas, "text"), "not allowed") {
		t.Fatalf("bounce %s", got.Bytes(nsClient))
	}
	// b.test may send, but a.test refuses the inbound stream.
	b.srv.Send(message("bob@b.test/x", "alice@a.test", "refused"))
	got = b.local.expect(t, "bounce at b.test")
	if errorCondition(got) != "remote-server-not-found" {
		t.Fatalf("bounce %s", got.Bytes(nsClient))
	}
	a.local.none(t, 200*time.Millisecond)
	// An allow list without b.test refuses it too.
	a.srv.deny = nil
	a.srv.allow = domainSet([]string{"c.test"})
	if a.srv.Allowed("b.test") || !a.srv.Allowed("c.test") {
		t.Fatal("allow list not applied")
	}
}

// rawPeer opens a server stream to addr by hand, as an attacker would.
type rawPeer struct {
	t   *testing.T
	c   net.Conn
	d   *xml.Decoder
	hdr map[string]string
}

func dialRaw(t *testing.T, addr, from, to string) *rawPeer {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(15 * time.Second))
	r := &rawPeer{t: t, c: c}
	r.open(from, to)
	if f := r.next(); f.Child(nsTLS, "starttls") == nil {
		t.Fatalf("no STARTTLS offered: %s", f.Bytes(""))
	}
	fmt.Fprintf(c, `<starttls xmlns="%s"/>`, nsTLS)
	if p := r.next(); p.Local != "proceed" {
		t.Fatalf("got %s", p.Bytes(""))
	}
	tc := tls.Client(c, &tls.Config{InsecureSkipVerify: true})
	if err := tc.Handshake(); err != nil {
		t.Fatal(err)
	}
	r.c = tc
	r.open(from, to)
	r.next() // features
	return r
}

func (r *rawPeer) open(from, to string) {
	r.t.Helper()
	fmt.Fprint(r.c, string(openHeader(from, to, "")))
	r.d = xml.NewDecoder(bufio.NewReader(r.c))
	for {
		tok, err := r.d.Token()
		if err != nil {
			r.t.Fatal(err)
		}
		if se, ok := tok.(xml.StartElement); ok {
			r.hdr = map[string]string{}
			for _, a := range se.Attr {
				r.hdr[a.Name.Local] = a.Value
			}
			return
		}
	}
}

func (r *rawPeer) next() *xmppsrv.Element {
	r.t.Helper()
	for {
		tok, err := r.d.Token()
		if err != nil {
			r.t.Fatal(err)
		}
		if se, ok := tok.(xml.StartElement); ok {
			el, err := xmppsrv.ReadElement(r.d, se)
			if err != nil {
				r.t.Fatal(err)
			}
			return el
		}
	}
}

func TestForgedDialbackRefused(t *testing.T) {
	a, b := pair(t, nil, false, nil)
	// An attacker connects to b.test claiming to be a.test; b.test asks
	// a.test's real server, which never issued the key.
	r := dialRaw(t, b.addr, "a.test", "b.test")
	fmt.Fprintf(r.c, `<db:result from="a.test" to="b.test">%s</db:result>`, DialbackKey([]byte("guessed"), "b.test", "a.test", r.hdr["id"]))
	res := r.next()
	if res.Space != nsDialback || res.Local != "result" || res.Get("type") != "invalid" || res.Get("from") != "b.test" || res.Get("to") != "a.test" {
		t.Fatalf("forged dialback answered with %s", res.Bytes(nsServer))
	}
	// A claim for a domain b.test does not serve.
	fmt.Fprintf(r.c, `<db:result from="a.test" to="nothere.test">00</db:result>`)
	res = r.next()
	if res.Get("type") != "error" || describe(res) != "item-not-found" {
		t.Fatalf("claim for a foreign target answered with %s", res.Bytes(nsServer))
	}
	// Stanzas on the unauthenticated stream end it.
	fmt.Fprint(r.c, `<message from="mallory@a.test" to="bob@b.test"><body>forged</body></message>`)
	se := r.next()
	if se.Space != nsStream || se.Local != "error" || describe(se) != "not-authorized" {
		t.Fatalf("stanza on an unauthenticated stream answered with %s", se.Bytes(""))
	}
	b.local.none(t, 200*time.Millisecond)
	if !b.log.has("forged dialback refused") {
		t.Error("the forgery was not logged")
	}
	_ = a
}

func TestStanzaFromUnauthenticatedDomainRefused(t *testing.T) {
	a, b := pair(t, nil, false, nil)
	// Authenticate a.test properly: b.test asks a.test, which answers valid.
	r := dialRaw(t, b.addr, "a.test", "b.test")
	key := DialbackKey(a.srv.secret, "b.test", "a.test", r.hdr["id"])
	fmt.Fprintf(r.c, `<db:result from="a.test" to="b.test">%s</db:result>`, key)
	if res := r.next(); res.Get("type") != "valid" {
		t.Fatalf("genuine key answered with %s", res.Bytes(nsServer))
	}
	fmt.Fprint(r.c, `<message from="alice@a.test/x" to="bob@b.test" type="chat"><body>ok</body></message>`)
	if got := b.local.expect(t, "message"); got.ChildText(nsClient, "body") != "ok" {
		t.Fatalf("got %s", got.Bytes(""))
	}
	// Then a 'from' on a domain the stream never proved.
	fmt.Fprint(r.c, `<message from="eve@c.test" to="bob@b.test"><body>spoof</body></message>`)
	if se := r.next(); describe(se) != "invalid-from" {
		t.Fatalf("spoofed from answered with %s", se.Bytes(""))
	}
	b.local.none(t, 200*time.Millisecond)
}

func TestStanzaSizeLimit(t *testing.T) {
	a, b := pair(t, nil, false, func(c *Config) { c.MaxStanzaSize = 4096 })
	r := dialRaw(t, b.addr, "a.test", "b.test")
	key := DialbackKey(a.srv.secret, "b.test", "a.test", r.hdr["id"])
	fmt.Fprintf(r.c, `<db:result from="a.test" to="b.test">%s</db:result>`, key)
	r.next()
	fmt.Fprintf(r.c, `<message from="alice@a.test" to="bob@b.test"><body>%s</body></message>`, strings.Repeat("x", 8000))
	if se := r.next(); describe(se) != "policy-violation" {
		t.Fatalf("oversized stanza answered with %s", se.Bytes(""))
	}
}

func TestIdleStreamCloses(t *testing.T) {
	a, b := pair(t, nil, false, func(c *Config) { c.IdleTimeout = 300 * time.Millisecond })
	a.srv.Send(message("alice@a.test/x", "bob@b.test", "1"))
	b.local.expect(t, "message")
	route := a.srv.route("a.test", "b.test")
	deadline := time.Now().Add(5 * time.Second)
	for {
		route.mu.Lock()
		running := route.running
		route.mu.Unlock()
		if !running {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the idle outbound stream was not closed")
		}
		time.Sleep(20 * time.Millisecond)
	}
	// The next stanza opens a new stream.
	a.srv.Send(message("alice@a.test/x", "bob@b.test", "2"))
	if got := b.local.expect(t, "message after reopening"); got.ChildText(nsClient, "body") != "2" {
		t.Fatalf("got %s", got.Bytes(""))
	}
}

// TestPiggybackedDomainVerifiedOnItsOwn: a server for two domains proves
// the first, then piggybacks the second on the same stream; each is
// verified with the authoritative server, and stanzas from a domain the
// stream did not prove are refused.
func TestPiggybackedDomainVerifiedOnItsOwn(t *testing.T) {
	a, b := pair(t, nil, false, nil)
	a.local.domains["a2.test"] = true
	b.srv.cfg.Override["a2.test"] = a.addr
	r := dialRaw(t, b.addr, "a.test", "b.test")
	id := r.hdr["id"]
	fmt.Fprintf(r.c, `<db:result from="a.test" to="b.test">%s</db:result>`, DialbackKey(a.srv.secret, "b.test", "a.test", id))
	if res := r.next(); res.Get("type") != "valid" || res.Get("to") != "a.test" {
		t.Fatalf("first domain: %s", res.Bytes(nsServer))
	}
	// A wrong key for the second domain is refused without harming the first.
	fmt.Fprintf(r.c, `<db:result from="a2.test" to="b.test">%s</db:result>`, DialbackKey([]byte("wrong"), "b.test", "a2.test", id))
	if res := r.next(); res.Get("type") != "invalid" || res.Get("to") != "a2.test" {
		t.Fatalf("forged piggyback: %s", res.Bytes(nsServer))
	}
	fmt.Fprint(r.c, `<message from="alice@a.test" to="bob@b.test"><body>first</body></message>`)
	if got := b.local.expect(t, "message from the proved domain"); got.ChildText(nsClient, "body") != "first" {
		t.Fatalf("got %s", got.Bytes(""))
	}
	fmt.Fprintf(r.c, `<db:result from="a2.test" to="b.test">%s</db:result>`, DialbackKey(a.srv.secret, "b.test", "a2.test", id))
	if res := r.next(); res.Get("type") != "valid" || res.Get("to") != "a2.test" {
		t.Fatalf("piggybacked domain: %s", res.Bytes(nsServer))
	}
	fmt.Fprint(r.c, `<message from="zoe@a2.test" to="bob@b.test"><body>second</body></message>`)
	if got := b.local.expect(t, "message from the piggybacked domain"); got.Get("from") != "zoe@a2.test" {
		t.Fatalf("got %s", got.Bytes(""))
	}
	// The stream proved a.test and a2.test for b.test only.
	fmt.Fprint(r.c, `<message from="alice@a.test" to="bob@b2.test"><body>x</body></message>`)
	if se := r.next(); describe(se) != "host-unknown" {
		t.Fatalf("stanza to a domain not served: %s", se.Bytes(""))
	}
}

func TestInboundIdleStreamCloses(t *testing.T) {
	a, b := pair(t, nil, false, func(c *Config) { c.IdleTimeout = 300 * time.Millisecond })
	r := dialRaw(t, b.addr, "a.test", "b.test")
	fmt.Fprintf(r.c, `<db:result from="a.test" to="b.test">%s</db:result>`, DialbackKey(a.srv.secret, "b.test", "a.test", r.hdr["id"]))
	if res := r.next(); res.Get("type") != "valid" {
		t.Fatalf("dialback: %s", res.Bytes(nsServer))
	}
	start := time.Now()
	if se := r.next(); describe(se) != "connection-timeout" {
		t.Fatalf("idle stream answered with %s", se.Bytes(""))
	}
	if d := time.Since(start); d < 250*time.Millisecond {
		t.Fatalf("closed after %s, before the idle timeout", d)
	}
}

func TestQueueBoundedWhileConnecting(t *testing.T) {
	a := newPeer(t, "a.test", nil, func(c *Config) { c.QueueLength = 2; c.ConnectTimeout = 500 * time.Millisecond })
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			defer c.Close()
		}
	}()
	a.srv.cfg.Override["slow.test"] = ln.Addr().String()
	for i := range 3 {
		a.srv.Send(message("alice@a.test/x", "bob@slow.test", fmt.Sprint(i)))
	}
	first := a.local.expect(t, "the overflow bounce")
	if errorCondition(first) != "resource-constraint" || first.ChildText(nsClient, "body") != "2" {
		t.Fatalf("overflow: %s", first.Bytes(nsClient))
	}
	for i := range 2 {
		got := a.local.expect(t, "timeout bounce")
		if errorCondition(got) != "remote-server-timeout" || got.ChildText(nsClient, "body") != fmt.Sprint(i) {
			t.Fatalf("bounce %d: %s", i, got.Bytes(nsClient))
		}
	}
}

func TestInboundAuthTimeout(t *testing.T) {
	_, b := pair(t, nil, false, func(c *Config) { c.AuthTimeout = 700 * time.Millisecond })
	r := dialRaw(t, b.addr, "a.test", "b.test")
	// Whitespace keepalives do not extend the time to authenticate.
	for range 4 {
		time.Sleep(100 * time.Millisecond)
		fmt.Fprint(r.c, " ")
	}
	if se := r.next(); describe(se) != "connection-timeout" {
		t.Fatalf("unauthenticated stream answered with %s", se.Bytes(""))
	}
}

// TestReadRateSlowsAFloodAndLosesNothing: a stream that carries more than
// Config.ReadRate is read more slowly, and every stanza arrives in order.
func TestReadRateSlowsAFloodAndLosesNothing(t *testing.T) {
	const rate, burst = 64 << 10, 16 << 10
	a, b := pair(t, nil, false, func(c *Config) { c.ReadRate, c.ReadBurst = rate, burst })
	b.local.got = make(chan *xmppsrv.Element, 1024)
	a.srv.Send(message("alice@a.test/x", "bob@b.test", "warm-up"))
	b.local.expect(t, "the first message")

	const n = 300
	size := 0
	start := time.Now()
	for i := range n {
		m := message("alice@a.test/x", "bob@b.test", fmt.Sprintf("%d %s", i, strings.Repeat("x", 200)))
		size += len(m.Bytes(nsServer))
		a.srv.Send(m)
	}
	for i := range n {
		select {
		case el := <-b.local.got:
			if want := fmt.Sprintf("%d ", i); !strings.HasPrefix(el.ChildText(nsClient, "body"), want) {
				t.Fatalf("message %d: %s", i, el.Bytes(nsServer))
			}
		case <-time.After(30 * time.Second):
			t.Fatalf("%d of %d messages arrived", i, n)
		}
	}
	elapsed := time.Since(start)
	// A lower bound only: a loaded machine makes this slower, never faster.
	if min := time.Duration(float64(size-burst) / rate * float64(time.Second) * 3 / 4); elapsed < min {
		t.Fatalf("%d bytes at %d bytes/s with a burst of %d took %v: not throttled (at least %v)", size, rate, burst, elapsed, min)
	}
	t.Logf("%d bytes in %v", size, elapsed)
}

// cutProxy forwards TCP connections to target. blackhole makes the
// current connections swallow what the initiator sends from then on, as
// a network that fails silently; cut closes them.
type cutProxy struct {
	ln     net.Listener
	target string
	mu     sync.Mutex
	conns  []net.Conn
	holes  []*atomic.Bool
}

func newCutProxy(t *testing.T, target string) *cutProxy {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &cutProxy{ln: ln, target: target}
	t.Cleanup(func() { ln.Close(); p.cut() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			u, err := net.Dial("tcp", target)
			if err != nil {
				c.Close()
				continue
			}
			hole := new(atomic.Bool)
			p.mu.Lock()
			p.conns = append(p.conns, c, u)
			p.holes = append(p.holes, hole)
			p.mu.Unlock()
			go func() { // initiator to target, unless swallowed
				buf := make([]byte, 32<<10)
				for {
					n, err := c.Read(buf)
					if n > 0 && !hole.Load() {
						u.Write(buf[:n])
					}
					if err != nil {
						u.Close()
						return
					}
				}
			}()
			go func() { io.Copy(c, u); c.Close() }()
		}
	}()
	return p
}

func (p *cutProxy) blackhole() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, h := range p.holes {
		h.Store(true)
	}
}

func (p *cutProxy) cut() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, c := range p.conns {
		c.Close()
	}
	p.conns, p.holes = nil, nil
}

// TestStreamManagementResendsWhatWasLost: stanzas written on a stream
// whose network then fails silently are not acknowledged (XEP-0198), so
// they go again on the next stream and arrive, in order, instead of
// being lost without anyone knowing.
func TestStreamManagementResendsWhatWasLost(t *testing.T) {
	a, b := pair(t, nil, false, nil)
	proxy := newCutProxy(t, b.addr)
	a.srv.cfg.Override["b.test"] = proxy.ln.Addr().String()
	a.srv.Send(message("alice@a.test/x", "bob@b.test", "first"))
	if el := b.local.expect(t, "the first message"); el.ChildText(nsClient, "body") != "first" {
		t.Fatalf("got %s", el.Bytes(nsClient))
	}
	// Once "first" is acknowledged (an acknowledgement lost with the
	// network would have it sent again: at least once, as XEP-0198
	// without resumption is), the network starts to fail silently.
	r := a.srv.route("a.test", "b.test")
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(5 * time.Millisecond) {
		r.mu.Lock()
		acked := r.acked == 1 && len(r.unacked) == 0
		r.mu.Unlock()
		if acked {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the first message was never acknowledged: stream management is not on")
		}
	}
	proxy.blackhole()
	a.srv.Send(message("alice@a.test/x", "bob@b.test", "second"))
	a.srv.Send(message("alice@a.test/x", "bob@b.test", "third"))
	b.local.none(t, 300*time.Millisecond) // swallowed on the way
	proxy.cut()
	for _, want := range []string{"second", "third"} {
		el := b.local.expect(t, want)
		if got := el.ChildText(nsClient, "body"); got != want {
			t.Fatalf("got %q, want %q", got, want)
		}
	}
	a.local.none(t, 300*time.Millisecond) // no error came back to the sender
	b.local.none(t, 300*time.Millisecond) // and nothing twice
}

// TestStreamManagementNeedsAuthentication: <enable/> before the peer has
// authenticated is refused (XEP-0198 section 3).
func TestStreamManagementNeedsAuthentication(t *testing.T) {
	_, b := pair(t, nil, false, nil)
	r := dialRaw(t, b.addr, "a.test", "b.test")
	fmt.Fprint(r.c, `<enable xmlns="urn:xmpp:sm:3"/>`)
	if el := r.next(); el.Local != "failed" || el.Space != nsSM {
		t.Fatalf("enable before authentication: %s", el.Bytes(nsServer))
	}
}

// TestShutdownAcknowledgesWhatWasHandled: a server that shuts down tells
// a peer with stream management how many stanzas it handled before it
// closes the stream with system-shutdown, so the peer neither resends
// nor bounces messages that were delivered.
func TestShutdownAcknowledgesWhatWasHandled(t *testing.T) {
	a, b := pair(t, nil, false, nil)
	r := dialRaw(t, b.addr, "a.test", "b.test")
	fmt.Fprintf(r.c, `<db:result from="a.test" to="b.test">%s</db:result>`, DialbackKey(a.srv.secret, "b.test", "a.test", r.hdr["id"]))
	if res := r.next(); res.Get("type") != "valid" {
		t.Fatalf("dialback: %s", res.Bytes(nsServer))
	}
	fmt.Fprint(r.c, `<enable xmlns="urn:xmpp:sm:3"/>`)
	if el := r.next(); el.Local != "enabled" {
		t.Fatalf("enable: %s", el.Bytes(nsServer))
	}
	for i := range 3 {
		fmt.Fprintf(r.c, `<message from="alice@a.test/x" to="bob@b.test" type="chat"><body>%d</body></message>`, i)
		b.local.expect(t, "message")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	go b.srv.Shutdown(ctx)
	if el := r.next(); el.Space != nsSM || el.Local != "a" || el.Get("h") != "3" {
		t.Fatalf("first on shutdown: %s, want <a h='3'/>", el.Bytes(nsServer))
	}
	if se := r.next(); se.Space != nsStream || describe(se) != "system-shutdown" {
		t.Fatalf("then: %s, want system-shutdown", se.Bytes(""))
	}
}

// TestCloseAcknowledgesWhatWasHandled: a peer that closes its stream
// gets the last acknowledgement before the closing tag.
func TestCloseAcknowledgesWhatWasHandled(t *testing.T) {
	a, b := pair(t, nil, false, nil)
	r := dialRaw(t, b.addr, "a.test", "b.test")
	fmt.Fprintf(r.c, `<db:result from="a.test" to="b.test">%s</db:result>`, DialbackKey(a.srv.secret, "b.test", "a.test", r.hdr["id"]))
	r.next()
	fmt.Fprint(r.c, `<enable xmlns="urn:xmpp:sm:3"/>`)
	r.next()
	fmt.Fprint(r.c, `<message from="alice@a.test/x" to="bob@b.test" type="chat"><body>1</body></message></stream:stream>`)
	b.local.expect(t, "message")
	if el := r.next(); el.Space != nsSM || el.Local != "a" || el.Get("h") != "1" {
		t.Fatalf("on close: %s, want <a h='1'/>", el.Bytes(nsServer))
	}
	if tok, err := r.d.Token(); err != nil || tok.(xml.EndElement).Name.Local != "stream" {
		t.Fatalf("then %v %v, want </stream:stream>", tok, err)
	}
}
