// Package xmppsrv is Parley's XMPP edge: client-to-server streams over TCP
// with STARTTLS or direct TLS (RFC 6120, XEP-0368), SASL, resource binding,
// and the translation of stanzas into calls on the chat, presence and
// roster services and of their results back into stanzas (RFC 6121).
//
// A Server is created by the root package from its Config; hosts use
// parley.Server and do not need this package directly.
package xmppsrv

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/parleyhq/parley/account"
	"github.com/parleyhq/parley/chat"
	"github.com/parleyhq/parley/files"
	"github.com/parleyhq/parley/internal/accept"
	"github.com/parleyhq/parley/roster"
	"github.com/parleyhq/parley/storage"
)

// Config configures the XMPP edge. Zero durations and sizes mean the
// defaults named on each field.
type Config struct {
	// Domains served (lower case). The first is the default for clients
	// that open a stream without 'to'.
	Domains []string
	// TLS is the server's certificate configuration (required for
	// STARTTLS and direct TLS).
	TLS *tls.Config
	// AllowUnencrypted lets clients authenticate without TLS. For tests
	// only: passwords then cross the network in the clear.
	AllowUnencrypted bool

	Directory *account.Cache
	Auth      account.Authenticator
	Roster    *roster.Service
	Chat      *chat.Service
	Store     storage.Store
	// Files, when set, offers HTTP File Upload (XEP-0363) on
	// upload.<domain> and records the files messages share.
	Files   *files.Service
	Logger  *slog.Logger
	Metrics *Metrics

	// MaxStanzaSize is the largest stanza accepted, in bytes (default
	// 262144). A larger one closes the stream with policy-violation.
	MaxStanzaSize int
	// ReadRate is how many bytes a second one client connection may send
	// on average (default 1 MiB), and ReadBurst how many at once (default
	// MaxStanzaSize, so a stanza of the largest size always passes at
	// once). A client over its rate is read more slowly: TCP holds the
	// rest back and nothing is lost. A negative ReadRate means no limit.
	// The limit applies to TCP, WebSocket and BOSH connections alike.
	// The default is far above any person (about 4,000 short messages a
	// second) and holds one flooding connection to roughly a tenth of a
	// core; it does not slow load tests that send at the server's full
	// speed from 50 connections (BENCHMARKS.md).
	ReadRate  int
	ReadBurst int
	// AuthTimeout is how long a connection may take to authenticate and
	// bind (default 60s).
	AuthTimeout time.Duration
	// IdleTimeout is how long a bound session may stay silent before the
	// server pings it (XEP-0199; default 120s). PingTimeout is how long
	// the server then waits for any data before it declares the
	// connection dead (default 30s).
	IdleTimeout time.Duration
	PingTimeout time.Duration
	// WriteTimeout bounds one write to a client (default 30s); a client
	// that does not read is disconnected.
	WriteTimeout time.Duration
	// MaxSessionsPerUser limits concurrent resources per account
	// (default 10).
	MaxSessionsPerUser int
	// QueueLength is the number of stanzas buffered for one client before
	// it counts as too slow and is disconnected (default 2048).
	QueueLength int
	// LoginFailures is how many failed logins are allowed per account and
	// LoginFailuresPerIP per remote address within LoginWindow before
	// further attempts are refused for the rest of the window (defaults
	// 5, 20 and 5 minutes).
	LoginFailures      int
	LoginFailuresPerIP int
	LoginWindow        time.Duration
	// ResumeTimeout is how long a session whose connection was lost waits
	// for its client to resume it (XEP-0198; default 5 minutes). After
	// that, whatever the client did not acknowledge goes to offline
	// storage.
	ResumeTimeout time.Duration
	// WebOrigins are origins (https://mail.example.com) besides the
	// request's own host whose pages may use the webmail session to log in
	// over WebSocket.
	WebOrigins []string
	// TrustForwardedTLS accepts X-Forwarded-Proto: https from a reverse
	// proxy that terminates TLS in front of the WebSocket endpoint.
	TrustForwardedTLS bool
	// Router maps bare JIDs to sessions; nil means an in-process router.
	Router Router
	// Version is reported by XEP-0092.
	Version string
}

func (c *Config) setDefaults() {
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	defInt := func(i *int, v int) {
		if *i <= 0 {
			*i = v
		}
	}
	defInt(&c.MaxStanzaSize, 256<<10)
	if c.ReadRate == 0 {
		c.ReadRate = 1 << 20
	}
	defInt(&c.ReadBurst, c.MaxStanzaSize)
	def(&c.AuthTimeout, 60*time.Second)
	def(&c.IdleTimeout, 120*time.Second)
	def(&c.PingTimeout, 30*time.Second)
	def(&c.WriteTimeout, 30*time.Second)
	defInt(&c.MaxSessionsPerUser, 10)
	defInt(&c.QueueLength, 2048)
	defInt(&c.LoginFailures, 5)
	defInt(&c.LoginFailuresPerIP, 20)
	def(&c.LoginWindow, 5*time.Minute)
	def(&c.ResumeTimeout, 5*time.Minute)
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.Metrics == nil {
		c.Metrics = new(Metrics)
	}
	if c.Router == nil {
		c.Router = NewLocalRouter()
	}
	if c.Version == "" {
		c.Version = "dev"
	}
}

// Server runs XMPP client streams. Its methods are safe for concurrent use.
type Server struct {
	cfg        Config
	log        *slog.Logger
	m          *Metrics
	router     Router
	throttle   *throttle
	domains    map[string]bool
	fakeKey    []byte // salts made-up SCRAM parameters for unknown users
	archiver   *archiver
	components map[string]Component      // see Extend
	handlers   map[string]AccountHandler // see Extend
	ext        ext                       // optional abilities of handlers, see Extend
	push       *push                     // XEP-0357, when NewPush was called
	states     chan func()               // receipt and marker bookkeeping, off the hot path
	statesDone chan struct{}
	drainOnce  sync.Once
	// remote carries stanzas to other servers (SetRemote); nil: no
	// federation. remoteSess orders inbound messages in the archiver.
	remote     atomic.Pointer[remoteBox]
	remoteOnce sync.Once
	remoteSess *Session
	// userLocks order, per account, "no resource is available, so store
	// offline" against "a resource became available, so read offline": a
	// message is either delivered live or read back, never stranded.
	userLocks [256]sync.Mutex

	mu        sync.Mutex
	listeners map[net.Listener]struct{}
	sessions  map[*Session]struct{}
	shutdown  atomic.Bool
	readers   sync.WaitGroup // one per session reading loop
	smMu      sync.Mutex
	smByID    map[string]*Session // resumable sessions by XEP-0198 id
	ctx       context.Context
	cancel    context.CancelFunc
}

// New validates cfg and returns a Server.
func New(cfg Config) (*Server, error) {
	cfg.setDefaults()
	if len(cfg.Domains) == 0 {
		return nil, errors.New("xmppsrv: Config.Domains is empty")
	}
	if cfg.Directory == nil || cfg.Auth == nil || cfg.Roster == nil || cfg.Chat == nil || cfg.Store == nil {
		return nil, errors.New("xmppsrv: Config needs Directory, Auth, Roster, Chat and Store")
	}
	if cfg.TLS == nil && !cfg.AllowUnencrypted {
		return nil, errors.New("xmppsrv: Config.TLS is nil; give a certificate, or set AllowUnencrypted for tests")
	}
	s := &Server{
		cfg:       cfg,
		log:       cfg.Logger,
		m:         cfg.Metrics,
		router:    cfg.Router,
		throttle:  newThrottle(cfg.LoginFailures, cfg.LoginFailuresPerIP, cfg.LoginWindow),
		domains:   make(map[string]bool),
		listeners: make(map[net.Listener]struct{}),
		sessions:  make(map[*Session]struct{}),
		smByID:    make(map[string]*Session),
	}
	for _, d := range cfg.Domains {
		s.domains[d] = true
	}
	s.fakeKey = make([]byte, 32)
	rand.Read(s.fakeKey)
	s.ctx, s.cancel = context.WithCancel(context.Background())
	s.archiver = newArchiver(s)
	s.states = make(chan func(), 10000)
	s.statesDone = make(chan struct{})
	go func() {
		defer close(s.statesDone)
		for f := range s.states {
			f()
		}
	}()
	return s, nil
}

func (s *Server) userLock(bare string) *sync.Mutex {
	h := uint32(2166136261)
	for i := 0; i < len(bare); i++ {
		h ^= uint32(bare[i])
		h *= 16777619
	}
	return &s.userLocks[h%uint32(len(s.userLocks))]
}

// Local reports whether domain is served here.
func (s *Server) Local(domain string) bool { return s.domains[domain] }

// Router returns the server's session router.
func (s *Server) Router() Router { return s.router }

// ErrServerClosed is returned by Serve after Shutdown.
var ErrServerClosed = errors.New("xmppsrv: server closed")

// Serve accepts client connections on ln that start in the clear and
// upgrade with STARTTLS. It returns ErrServerClosed after Shutdown.
func (s *Server) Serve(ln net.Listener) error { return s.serve(ln, false) }

// ServeTLS accepts direct-TLS client connections (XEP-0368) on ln.
func (s *Server) ServeTLS(ln net.Listener) error {
	if s.cfg.TLS == nil {
		return errors.New("xmppsrv: ServeTLS needs Config.TLS")
	}
	return s.serve(ln, true)
}

func (s *Server) serve(ln net.Listener, direct bool) error {
	s.mu.Lock()
	if s.shutdown.Load() {
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
	err := accept.Loop(ln, s.shutdown.Load, func(err error, pause time.Duration) {
		s.log.Warn("xmpp accept failed; retrying", "err", err, "in", pause)
	}, func(c net.Conn) bool {
		if direct {
			tc := s.cfg.TLS.Clone()
			if len(tc.NextProtos) == 0 {
				tc.NextProtos = []string{"xmpp-client"}
			}
			c = tls.Server(c, tc)
		}
		sess := newSession(s, c, direct)
		if !s.track(sess) {
			c.Close()
			return false
		}
		go sess.run()
		return true
	})
	if err != nil {
		return fmt.Errorf("xmppsrv: accept: %w", err)
	}
	return ErrServerClosed // shut down, or shutting down as the connection came
}

// ServeConn runs one client connection that the caller accepted itself
// (an in-process pipe, a connection handed over by a proxy). It returns
// when the connection ends. direct says TLS is already on (or c is a
// trusted in-process pipe and Config.AllowUnencrypted is set).
func (s *Server) ServeConn(c net.Conn, direct bool) {
	sess := newSession(s, c, direct)
	if !s.track(sess) {
		c.Close()
		return
	}
	sess.run()
}

func (s *Server) track(sess *Session) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.shutdown.Load() {
		return false
	}
	s.sessions[sess] = struct{}{}
	s.readers.Add(1)
	s.m.Connections.Add(1)
	return true
}

func (s *Server) untrack(sess *Session) {
	s.mu.Lock()
	delete(s.sessions, sess)
	s.mu.Unlock()
	s.m.Connections.Add(-1)
	s.readers.Done()
}

// Shutdown stops accepting connections, stops reading from every client,
// lets each finish the stanza it is handling, flushes what is queued for it,
// and closes its stream with system-shutdown. It returns when every
// connection is closed or ctx ends (then the rest are closed abruptly).
func (s *Server) Shutdown(ctx context.Context) error {
	s.mu.Lock()
	s.shutdown.Store(true)
	for ln := range s.listeners {
		ln.Close()
	}
	sessions := make([]*Session, 0, len(s.sessions))
	for sess := range s.sessions {
		sessions = append(sessions, sess)
	}
	s.mu.Unlock()
	// Readers first: once none is handling a stanza, nothing more is
	// routed, and every queue can be flushed without racing new deliveries.
	for _, sess := range sessions {
		sess.stopReading()
	}
	done := make(chan struct{})
	go func() {
		s.readers.Wait()
		s.drainOnce.Do(func() {
			s.archiver.stop()
			close(s.states)
			<-s.statesDone
		})
		// Sessions waiting for resumption will not get it: keep what
		// their clients did not acknowledge.
		s.smMu.Lock()
		var detached []*Session
		for _, sess := range s.smByID {
			detached = append(detached, sess)
		}
		s.smMu.Unlock()
		for _, sess := range detached {
			sess.sm.mu.Lock()
			d := sess.sm.detached != nil
			sess.sm.mu.Unlock()
			if d {
				s.finalizeDetached(sess)
			}
		}
		close(done)
	}()
	select {
	case <-done:
	case <-ctx.Done():
		for _, sess := range sessions {
			sess.closeWith(nil) // also wakes readers waiting for queue room
			sess.conn.Close()
		}
		s.cancel()
		return ctx.Err()
	}
	s.cancel()
	return nil
}

// Sessions returns the number of open client connections.
func (s *Server) Sessions() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.sessions)
}

func randomID(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

// Router maps bare JIDs to their live, bound sessions. The in-process
// implementation is NewLocalRouter; a multi-node deployment can put one on a
// message bus. Implementations are safe for concurrent use.
type Router interface {
	// Bind adds s under its full JID; a session already bound to that full
	// JID is returned so the caller can close it (RFC 6120 7.7.2.2).
	Bind(s *Session) (replaced *Session)
	// Unbind removes s if it is still the one bound to its full JID.
	Unbind(s *Session)
	// Resources returns the sessions bound to a bare JID's account.
	Resources(bare string) []*Session
	// Domain calls fn for every session bound in domain until fn returns false.
	Domain(domain string, fn func(*Session) bool)
}

// NewLocalRouter returns the in-process Router.
func NewLocalRouter() Router {
	r := &localRouter{}
	for i := range r.shards {
		r.shards[i].users = make(map[string][]*Session)
	}
	r.domains = make(map[string]map[*Session]struct{})
	return r
}

const routerShards = 64

type localRouter struct {
	shards [routerShards]struct {
		sync.RWMutex
		users map[string][]*Session
	}
	dmu     sync.RWMutex
	domains map[string]map[*Session]struct{}
}

func shardOf(bare string) int {
	// FNV-1a
	h := uint32(2166136261)
	for i := 0; i < len(bare); i++ {
		h ^= uint32(bare[i])
		h *= 16777619
	}
	return int(h % routerShards)
}

func (r *localRouter) Bind(s *Session) *Session {
	bare := s.bare.String()
	sh := &r.shards[shardOf(bare)]
	sh.Lock()
	var replaced *Session
	list := sh.users[bare]
	for i, o := range list {
		if o.full == s.full {
			replaced = o
			list = slices.Delete(slices.Clone(list), i, i+1)
			break
		}
	}
	sh.users[bare] = append(slices.Clone(list), s)
	sh.Unlock()
	r.dmu.Lock()
	d := r.domains[s.bare.Domain()]
	if d == nil {
		d = make(map[*Session]struct{})
		r.domains[s.bare.Domain()] = d
	}
	if replaced != nil {
		delete(d, replaced)
	}
	d[s] = struct{}{}
	r.dmu.Unlock()
	return replaced
}

func (r *localRouter) Unbind(s *Session) {
	bare := s.bare.String()
	sh := &r.shards[shardOf(bare)]
	sh.Lock()
	list := sh.users[bare]
	if i := slices.Index(list, s); i >= 0 {
		list = slices.Delete(slices.Clone(list), i, i+1)
		if len(list) == 0 {
			delete(sh.users, bare)
		} else {
			sh.users[bare] = list
		}
	}
	sh.Unlock()
	r.dmu.Lock()
	delete(r.domains[s.bare.Domain()], s)
	r.dmu.Unlock()
}

// Resources returns a slice the caller must not modify; the router never
// modifies it either (it copies on write).
func (r *localRouter) Resources(bare string) []*Session {
	sh := &r.shards[shardOf(bare)]
	sh.RLock()
	defer sh.RUnlock()
	return sh.users[bare]
}

func (r *localRouter) Domain(domain string, fn func(*Session) bool) {
	r.dmu.RLock()
	list := make([]*Session, 0, len(r.domains[domain]))
	for s := range r.domains[domain] {
		list = append(list, s)
	}
	r.dmu.RUnlock()
	for _, s := range list {
		if !fn(s) {
			return
		}
	}
}
