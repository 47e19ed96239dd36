package s2s

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/parleyhq/parley/internal/accept"
	"github.com/parleyhq/parley/jid"
	"github.com/parleyhq/parley/xmppsrv"
)

// Local is the XMPP server whose domains this federation serves:
// *xmppsrv.Server implements it.
type Local interface {
	// Local reports whether domain is served here.
	Local(domain string) bool
	// Deliver routes a stanza that came from another server (checked:
	// its 'from' is on the authenticated peer domain, its 'to' on a local
	// domain), or an error bounced back to a local sender, to local
	// entities. It must not block on the network.
	Deliver(el *xmppsrv.Element)
}

// Policy says how peers authenticate.
type Policy int

const (
	// CertOrDialback (the default): SASL EXTERNAL (XEP-0178) when the
	// peer's certificate verifies against Config.RootCAs for its domain,
	// Server Dialback (XEP-0220) otherwise.
	CertOrDialback Policy = iota
	// CertOnly: only peers whose certificate verifies; no dialback.
	CertOnly
)

// Config configures federation. Zero values mean the defaults named on
// each field.
type Config struct {
	// Local receives inbound stanzas and bounces. Required.
	Local Local
	// TLS holds the certificates of the local domains, used as server
	// certificate on inbound streams and as client certificate on
	// outbound ones (GetCertificate is asked with the local domain as
	// server name). Required: server-to-server streams are always
	// encrypted.
	TLS *tls.Config
	// RootCAs verifies peers' certificates; nil means the system roots.
	RootCAs *x509.CertPool
	// Policy says how peers authenticate (default CertOrDialback).
	Policy Policy
	// DialbackSecret keys the dialback keys (XEP-0185). Nil means a random
	// secret made at New.
	DialbackSecret []byte
	// Allow, when not empty, lists the only remote domains federation is
	// allowed with; Deny lists domains it is refused with. Both apply to
	// outbound and inbound streams.
	Allow, Deny []string
	// Override maps a remote domain to the address of its server
	// ("host:port" for STARTTLS, "tls://host:port" for direct TLS),
	// instead of DNS: for private deployments and tests.
	Override map[string]string
	// Resolver looks up SRV and host records; nil means net.DefaultResolver.
	Resolver *net.Resolver
	// Dial opens outbound TCP connections; nil means a net.Dialer using
	// Resolver.
	Dial func(ctx context.Context, network, addr string) (net.Conn, error)

	// MaxStanzaSize is the largest stanza accepted, in bytes (default
	// 262144, as for clients). A larger one closes the stream with
	// policy-violation.
	MaxStanzaSize int
	// ReadRate is how many bytes a second one stream from another server
	// may carry on average (default 8 MiB, eight times a client's: a
	// stream carries many users' traffic), ReadBurst how many at once
	// (default 1 MiB). A peer over its rate is read more slowly; nothing
	// is lost. A negative ReadRate means no limit.
	ReadRate  int
	ReadBurst int
	// ConnectTimeout bounds establishing an outbound stream: resolution,
	// connection, TLS and authentication (default 30s). Stanzas queued
	// meanwhile are bounced with remote-server-timeout when it passes.
	ConnectTimeout time.Duration
	// AuthTimeout is how long an inbound connection may take to
	// authenticate (default 60s, as for clients).
	AuthTimeout time.Duration
	// IdleTimeout closes a stream that carried no stanza for that long
	// (default 10 minutes).
	IdleTimeout time.Duration
	// WriteTimeout bounds one write to a peer (default 30s).
	WriteTimeout time.Duration
	// QueueLength bounds the stanzas waiting for one remote domain
	// (default 2048, as for clients); more are bounced with
	// resource-constraint.
	QueueLength int
	// Logger receives connection-level events; nil discards them.
	Logger *slog.Logger
}

// Server carries stanzas between the local domains and other XMPP
// servers. Its methods are safe for concurrent use.
type Server struct {
	cfg    Config
	log    *slog.Logger
	secret []byte
	allow  map[string]bool
	deny   map[string]bool
	ctx    context.Context
	cancel context.CancelFunc

	mu        sync.Mutex
	out       map[string]*outRoute // by "from to"
	listeners map[net.Listener]struct{}
	conns     map[net.Conn]struct{}
	closed    atomic.Bool
	wg        sync.WaitGroup
}

// ErrServerClosed is returned by Serve and ServeTLS after Shutdown.
var ErrServerClosed = errors.New("s2s: server closed")

// New validates cfg and returns a Server.
func New(cfg Config) (*Server, error) {
	if cfg.Local == nil {
		return nil, errors.New("s2s: Config.Local is nil")
	}
	if cfg.TLS == nil || (len(cfg.TLS.Certificates) == 0 && cfg.TLS.GetCertificate == nil) {
		return nil, errors.New("s2s: Config.TLS has no certificate; server-to-server streams are always encrypted")
	}
	if cfg.Policy != CertOrDialback && cfg.Policy != CertOnly {
		return nil, fmt.Errorf("s2s: unknown Policy %d", cfg.Policy)
	}
	for d, a := range cfg.Override {
		if _, _, err := net.SplitHostPort(strings.TrimPrefix(a, "tls://")); err != nil {
			return nil, fmt.Errorf("s2s: Override[%q] = %q: want host:port or tls://host:port", d, a)
		}
	}
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	def(&cfg.ConnectTimeout, 30*time.Second)
	def(&cfg.AuthTimeout, 60*time.Second)
	def(&cfg.IdleTimeout, 10*time.Minute)
	def(&cfg.WriteTimeout, 30*time.Second)
	if cfg.MaxStanzaSize <= 0 {
		cfg.MaxStanzaSize = 256 << 10
	}
	if cfg.ReadRate == 0 {
		cfg.ReadRate = 8 << 20
	}
	if cfg.ReadBurst <= 0 {
		cfg.ReadBurst = max(1<<20, cfg.MaxStanzaSize)
	}
	if cfg.QueueLength <= 0 {
		cfg.QueueLength = 2048
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Resolver == nil {
		cfg.Resolver = net.DefaultResolver
	}
	if cfg.Dial == nil {
		d := &net.Dialer{Resolver: cfg.Resolver}
		cfg.Dial = d.DialContext
	}
	s := &Server{
		cfg:       cfg,
		log:       cfg.Logger,
		secret:    cfg.DialbackSecret,
		allow:     domainSet(cfg.Allow),
		deny:      domainSet(cfg.Deny),
		out:       make(map[string]*outRoute),
		listeners: make(map[net.Listener]struct{}),
		conns:     make(map[net.Conn]struct{}),
	}
	if len(s.secret) == 0 {
		s.secret = make([]byte, 32)
		rand.Read(s.secret)
	}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	return s, nil
}

func domainSet(list []string) map[string]bool {
	m := make(map[string]bool, len(list))
	for _, d := range list {
		m[strings.ToLower(strings.TrimSuffix(strings.TrimSpace(d), "."))] = true
	}
	return m
}

// Allowed reports whether federation with domain is allowed by the allow
// and deny lists.
func (s *Server) Allowed(domain string) bool {
	if s.deny[domain] {
		return false
	}
	return len(s.allow) == 0 || s.allow[domain]
}

// Send queues el, a stanza from a local entity to an entity on another
// server, for delivery over a stream to that server, opening the stream if
// needed. It never blocks on the network. A stanza that cannot be
// delivered (unknown or unreachable server, refused authentication, policy,
// timeout) comes back to its sender as an error stanza through
// Local.Deliver, unless it was an error itself.
func (s *Server) Send(el *xmppsrv.Element) {
	from, err1 := jid.Parse(el.Get("from"))
	to, err2 := jid.Parse(el.Get("to"))
	if err1 != nil || err2 != nil || !s.cfg.Local.Local(from.Domain()) {
		s.log.Warn("s2s: dropping a stanza without a local sender and a remote recipient", "from", el.Get("from"), "to", el.Get("to"))
		return
	}
	if s.cfg.Local.Local(to.Domain()) {
		// Local domains never go over server-to-server streams.
		s.cfg.Local.Deliver(el)
		return
	}
	if !s.Allowed(to.Domain()) {
		s.bounce(el, "remote-server-not-found", "federation with "+to.Domain()+" is not allowed on this server")
		return
	}
	if s.closed.Load() {
		s.bounce(el, "remote-server-timeout", "the server is shutting down")
		return
	}
	s.route(from.Domain(), to.Domain()).enqueue(el)
}

// bounce answers el to its local sender with an error, unless el is an
// error already (RFC 6120 8.3.1: never answer an error with an error).
func (s *Server) bounce(el *xmppsrv.Element, cond, text string) {
	if el.Get("type") == "error" {
		return
	}
	if el.Local == "iq" && el.Get("type") == "result" {
		return
	}
	s.cfg.Local.Deliver(errorReply(el, cond, text))
}

// Shutdown closes the listeners and every stream, bouncing what is still
// queued with remote-server-timeout. It returns when the streams' goroutines
// are done or ctx ends.
func (s *Server) Shutdown(ctx context.Context) error {
	s.closed.Store(true)
	s.mu.Lock()
	for ln := range s.listeners {
		ln.Close()
	}
	routes := make([]*outRoute, 0, len(s.out))
	for _, r := range s.out {
		routes = append(routes, r)
	}
	s.mu.Unlock()
	for _, r := range routes {
		r.shutdown()
	}
	s.cancel()
	// Inbound streams stop reading, acknowledge what they handled and
	// close with system-shutdown; those that cannot by ctx's end are cut.
	s.mu.Lock()
	for c := range s.conns {
		c.SetReadDeadline(time.Now())
	}
	s.mu.Unlock()
	done := make(chan struct{})
	go func() { s.wg.Wait(); close(done) }()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		s.mu.Lock()
		for c := range s.conns {
			c.Close()
		}
		s.mu.Unlock()
		return ctx.Err()
	}
}

// Serve accepts server-to-server connections on ln (port 5269 by
// convention) that upgrade with STARTTLS. It returns ErrServerClosed after
// Shutdown.
func (s *Server) Serve(ln net.Listener) error { return s.serve(ln, false) }

// ServeTLS accepts direct-TLS server-to-server connections (XEP-0368, ALPN
// "xmpp-server", port 5270 by convention) on ln.
func (s *Server) ServeTLS(ln net.Listener) error { return s.serve(ln, true) }

func (s *Server) serve(ln net.Listener, direct bool) error {
	s.mu.Lock()
	if s.closed.Load() {
		s.mu.Unlock()
		return ErrServerClosed
	}
	s.listeners[ln] = struct{}{}
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		delete(s.listeners, ln)
		s.mu.Unlock()
	}()
	err := accept.Loop(ln, s.closed.Load, nil, func(c net.Conn) bool {
		if !s.track(c) {
			c.Close()
			return false
		}
		go func() {
			defer s.untrack(c)
			s.serveConn(c, direct)
		}()
		return true
	})
	if err != nil {
		return fmt.Errorf("s2s: accept: %w", err)
	}
	return ErrServerClosed
}

// ServeConn runs one inbound connection the caller accepted itself; it
// returns when the connection ends. direct says the peer starts with TLS.
func (s *Server) ServeConn(c net.Conn, direct bool) {
	if !s.track(c) {
		c.Close()
		return
	}
	defer s.untrack(c)
	s.serveConn(c, direct)
}

func (s *Server) track(c net.Conn) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed.Load() {
		return false
	}
	s.conns[c] = struct{}{}
	s.wg.Add(1)
	return true
}

func (s *Server) untrack(c net.Conn) {
	s.mu.Lock()
	delete(s.conns, c)
	s.mu.Unlock()
	s.wg.Done()
}

// verifyPeer reports whether the peer's certificate chain verifies for
// domain against the configured roots (RFC 6125 DNS-ID).
func (s *Server) verifyPeer(cs tls.ConnectionState, domain string) bool {
	if len(cs.PeerCertificates) == 0 {
		return false
	}
	inter := x509.NewCertPool()
	for _, c := range cs.PeerCertificates[1:] {
		inter.AddCert(c)
	}
	_, err := cs.PeerCertificates[0].Verify(x509.VerifyOptions{
		DNSName:       domain,
		Roots:         s.cfg.RootCAs,
		Intermediates: inter,
		KeyUsages:     []x509.ExtKeyUsage{x509.ExtKeyUsageAny},
	})
	return err == nil
}

// certificate returns the local domain's certificate, as server or client.
func (s *Server) certificate(domain string) (*tls.Certificate, error) {
	if s.cfg.TLS.GetCertificate != nil {
		return s.cfg.TLS.GetCertificate(&tls.ClientHelloInfo{ServerName: domain})
	}
	for i := range s.cfg.TLS.Certificates {
		c := &s.cfg.TLS.Certificates[i]
		if c.Leaf != nil && c.Leaf.VerifyHostname(domain) == nil {
			return c, nil
		}
	}
	return &s.cfg.TLS.Certificates[0], nil
}
