package xmppsrv

import (
	"bufio"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/xml"
	"fmt"
	"io"
	"log/slog"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/parleyhq/parley/account"
	"github.com/parleyhq/parley/account/memdir"
	"github.com/parleyhq/parley/chat"
	"github.com/parleyhq/parley/files"
	"github.com/parleyhq/parley/roster"
	"github.com/parleyhq/parley/storage"
	"github.com/parleyhq/parley/storage/memstore"
)

const domain = "example.test"

var (
	certOnce sync.Once
	testCert tls.Certificate
)

func selfSigned(t testing.TB) *tls.Config {
	certOnce.Do(func() {
		key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		tmpl := &x509.Certificate{
			SerialNumber: big.NewInt(1),
			Subject:      pkix.Name{CommonName: domain},
			DNSNames:     []string{domain},
			NotBefore:    time.Now().Add(-time.Hour),
			NotAfter:     time.Now().Add(time.Hour),
		}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
		if err != nil {
			t.Fatal(err)
		}
		testCert = tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
	})
	return &tls.Config{Certificates: []tls.Certificate{testCert}}
}

type harness struct {
	files *httptest.Server
	t     testing.TB
	srv   *Server
	addr  string
	dir   *memdir.Dir
	store storage.Store
}

type opt func(*Config, *roster.Config)

// archiveOn, passed to newHarness, turns message history on.
type archiveOn struct{}

// filesOn, passed to newHarness, turns HTTP File Upload on; the harness's
// files field then holds the HTTP server the slots point at.
type filesOn struct{}

// withStore wraps the harness's store (for fault injection).
func withStore(wrap func(storage.Store) storage.Store) opt {
	return func(c *Config, r *roster.Config) {
		c.Store = wrap(c.Store)
		r.Store = c.Store
	}
}

func noDomainRoster(c *Config, r *roster.Config) { r.DomainRoster = false }

// newHarness starts a server on 127.0.0.1 with users alice, bob, carol
// (password "pw-<name>"), dave (not chat-enabled) and the alias sales
// (alice, bob, carol).
func newHarness(t testing.TB, opts ...any) *harness {
	t.Helper()
	dir := memdir.New()
	for _, u := range []string{"alice", "bob", "carol"} {
		if err := dir.AddUser(u+"@"+domain, strings.ToUpper(u[:1])+u[1:], "pw-"+u, true); err != nil {
			t.Fatal(err)
		}
	}
	dir.AddUser("dave@"+domain, "Dave", "pw-dave", false)
	dir.AddAlias("sales@"+domain, "Sales", "alice@"+domain, "bob@"+domain, "carol@"+domain)
	store := memstore.New()
	cache := account.NewCache(dir, time.Minute)
	rc := roster.Config{Store: store, Directory: cache, DomainRoster: true}
	cfg := Config{
		Domains:   []string{domain},
		TLS:       selfSigned(t),
		Directory: cache,
		Auth:      dir,
		Store:     store,
	}
	if testing.Verbose() {
		cfg.Logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	archive := false
	var filesSrv *httptest.Server
	for _, o := range opts {
		switch o := o.(type) {
		case opt:
			o(&cfg, &rc)
		case func(*Config, *roster.Config):
			o(&cfg, &rc)
		case archiveOn:
			archive = true
		case filesOn:
			fsrv := httptest.NewUnstartedServer(nil)
			fsrv.StartTLS()
			t.Cleanup(fsrv.Close)
			svc, err := files.New(files.Config{Dir: t.TempDir(), BaseURL: fsrv.URL + "/files", MaxFileSize: 1 << 20})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { svc.Close() })
			fsrv.Config.Handler = http.StripPrefix("/files", svc.Handler())
			cfg.Files = svc
			filesSrv = fsrv
		default:
			t.Fatalf("newHarness: unknown option %T", o)
		}
	}
	cfg.Roster = roster.New(rc)
	cc := chat.Config{Directory: cache, Store: cfg.Store, Local: func(d string) bool { return slices.Contains(cfg.Domains, d) }, OfflineLimit: 50}
	if archive {
		cc.Archive = cfg.Store.(storage.Archive)
	}
	cfg.Chat = chat.New(cc)
	srv, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(ln)
	h := &harness{t: t, srv: srv, addr: ln.Addr().String(), dir: dir, store: store, files: filesSrv}
	t.Cleanup(func() { srv.Shutdown(t.Context()) })
	return h
}

// client is a raw XMPP client for wire-level tests.
type client struct {
	t    testing.TB
	conn net.Conn
	dec  *xml.Decoder
	jid  string
	ch   chan readResult // fed by a reader goroutine once bound
}

type readResult struct {
	el  *Element
	err error
}

var errReadTimeout = fmt.Errorf("read timeout")

// startReader moves reading to a goroutine, so that a test can wait for
// silence without breaking the decoder.
func (c *client) startReader() {
	c.ch = make(chan readResult, 1024)
	c.conn.SetReadDeadline(time.Time{})
	go func() {
		for {
			el, err := c.readDirect()
			c.ch <- readResult{el, err}
			if err != nil {
				close(c.ch)
				return
			}
		}
	}()
}

func (h *harness) dial() *client {
	h.t.Helper()
	c, err := net.Dial("tcp", h.addr)
	if err != nil {
		h.t.Fatal(err)
	}
	cl := &client{t: h.t, conn: c}
	h.t.Cleanup(func() { c.Close() })
	return cl
}

func (c *client) send(format string, args ...any) {
	c.t.Helper()
	s := format
	if len(args) > 0 {
		s = fmt.Sprintf(format, args...)
	}
	c.conn.SetWriteDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.WriteString(c.conn, s); err != nil {
		c.t.Fatalf("send: %v", err)
	}
}

func (c *client) sendRaw(s string) { c.t.Helper(); c.send("%s", s) }

// open sends a stream header and reads the server's header and features.
func (c *client) open() *Element {
	c.t.Helper()
	c.send(`<?xml version='1.0'?><stream:stream to='%s' xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' version='1.0'>`, domain)
	c.dec = xml.NewDecoder(bufio.NewReader(c.conn))
	c.conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	for {
		tok, err := c.dec.Token()
		if err != nil {
			c.t.Fatalf("reading stream header: %v", err)
		}
		if se, ok := tok.(xml.StartElement); ok && se.Name.Local == "stream" {
			break
		}
	}
	f := c.next()
	if f.Local != "features" {
		c.t.Fatalf("expected features, got %s", f.Bytes(""))
	}
	return f
}

// next reads the next top-level element; it fails the test after 5s.
func (c *client) next() *Element {
	c.t.Helper()
	el, err := c.read(5 * time.Second)
	if err != nil {
		c.t.Fatalf("%s: reading: %v", c.jid, err)
	}
	return el
}

func (c *client) read(timeout time.Duration) (*Element, error) {
	if c.ch != nil {
		select {
		case r, ok := <-c.ch:
			if !ok {
				return nil, io.EOF
			}
			return r.el, r.err
		case <-time.After(timeout):
			return nil, errReadTimeout
		}
	}
	c.conn.SetReadDeadline(time.Now().Add(timeout))
	return c.readDirect()
}

func (c *client) readDirect() (*Element, error) {
	for {
		tok, err := c.dec.Token()
		if err != nil {
			return nil, err
		}
		switch t := tok.(type) {
		case xml.StartElement:
			return readElement(c.dec, t)
		case xml.EndElement:
			return nil, io.EOF
		}
	}
}

// expect reads until an element for which match is true, failing after 5s.
// Elements skipped on the way are returned too, for tests that count.
func (c *client) expect(what string, match func(*Element) bool) *Element {
	c.t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		el, err := c.read(time.Until(deadline))
		if err != nil {
			c.t.Fatalf("%s: waiting for %s: %v", c.jid, what, err)
		}
		if c.autoAnswer(el) {
			continue
		}
		if match(el) {
			return el
		}
	}
}

// autoAnswer replies to server pings and roster pushes as a client would.
func (c *client) autoAnswer(el *Element) bool {
	if el.Local == "iq" && el.Get("type") == "get" && el.Child(nsPing, "ping") != nil {
		c.send(`<iq type='result' id='%s'/>`, el.Get("id"))
		return true
	}
	return false
}

// expectAll reads until every matcher has matched once, in any order.
func (c *client) expectAll(what string, match ...func(*Element) bool) {
	c.t.Helper()
	done := make([]bool, len(match))
	left := len(match)
	deadline := time.Now().Add(5 * time.Second)
	for left > 0 {
		el, err := c.read(time.Until(deadline))
		if err != nil {
			c.t.Fatalf("%s: waiting for %s (%d left): %v", c.jid, what, left, err)
		}
		if c.autoAnswer(el) {
			continue
		}
		for i, m := range match {
			if !done[i] && m(el) {
				done[i] = true
				left--
				break
			}
		}
	}
}

// none asserts that no element matching match arrives within d.
func (c *client) none(d time.Duration, what string, match func(*Element) bool) {
	c.t.Helper()
	deadline := time.Now().Add(d)
	for {
		el, err := c.read(time.Until(deadline))
		if err == errReadTimeout {
			return
		}
		if err != nil {
			c.t.Fatalf("%s: unexpected error: %v", c.jid, err)
		}
		if match(el) {
			c.t.Fatalf("%s: got %s: %s", c.jid, what, el.Bytes(nsClient))
		}
	}
}

// quiet asserts that nothing but pings arrives for d.
func (c *client) quiet(d time.Duration) {
	c.t.Helper()
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		el, err := c.read(time.Until(deadline))
		if err != nil {
			if err == errReadTimeout {
				return
			}
			c.t.Fatalf("%s: unexpected error while quiet: %v", c.jid, err)
		}
		if c.autoAnswer(el) {
			continue
		}
		c.t.Fatalf("%s: expected nothing, got %s", c.jid, el.Bytes(nsClient))
	}
}

func isStanza(local, typ string) func(*Element) bool {
	return func(e *Element) bool { return e.Local == local && e.Get("type") == typ }
}

func isIQResult(id string) func(*Element) bool {
	return func(e *Element) bool { return e.Local == "iq" && e.Get("id") == id }
}

// starttls negotiates TLS and reopens the stream.
func (c *client) starttls() *Element {
	c.t.Helper()
	c.send(`<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>`)
	if el := c.next(); el.Local != "proceed" {
		c.t.Fatalf("expected proceed, got %s", el.Bytes(""))
	}
	tc := tls.Client(c.conn, &tls.Config{InsecureSkipVerify: true})
	if err := tc.Handshake(); err != nil {
		c.t.Fatalf("TLS handshake: %v", err)
	}
	c.conn = tc
	return c.open()
}

// authPlain authenticates with PLAIN and returns the server's answer.
func (c *client) authPlain(user, pass string) *Element {
	c.t.Helper()
	c.send(`<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>%s</auth>`,
		base64.StdEncoding.EncodeToString([]byte("\x00"+user+"\x00"+pass)))
	return c.next()
}

// bind binds resource (or a server-chosen one) and returns the full JID.
func (c *client) bind(resource string) string {
	c.t.Helper()
	r := ""
	if resource != "" {
		r = "<resource>" + resource + "</resource>"
	}
	c.send(`<iq type='set' id='bind1'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'>%s</bind></iq>`, r)
	el := c.expect("bind result", isIQResult("bind1"))
	if el.Get("type") != "result" {
		c.t.Fatalf("bind failed: %s", el.Bytes(nsClient))
	}
	c.jid = el.Child(nsBind, "bind").ChildText(nsBind, "jid")
	c.startReader()
	return c.jid
}

// login connects, negotiates TLS, authenticates user (local part) with
// PLAIN and binds resource. It sends no presence and no roster get.
func (h *harness) login(user, resource string) *client {
	h.t.Helper()
	c := h.dial()
	c.open()
	c.starttls()
	if el := c.authPlain(user, "pw-"+user); el.Local != "success" {
		h.t.Fatalf("login %s: %s", user, el.Bytes(""))
	}
	c.open()
	c.bind(resource)
	return c
}

// online logs in, fetches the roster and sends initial presence, then
// waits for its own presence echo.
func (h *harness) online(user, resource string) *client {
	h.t.Helper()
	c := h.login(user, resource)
	c.send(`<iq type='get' id='r1'><query xmlns='jabber:iq:roster'/></iq>`)
	c.expect("roster", isIQResult("r1"))
	c.send(`<presence/>`)
	c.expect("own presence", func(e *Element) bool {
		return e.Local == "presence" && e.Get("from") == c.jid && e.Get("type") == ""
	})
	return c
}
