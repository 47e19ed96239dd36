package xmppsrv

import (
	"bufio"
	"context"
	"crypto/tls"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/parleyhq/parley/internal/ratelimit"
	"github.com/parleyhq/parley/jid"
	"github.com/parleyhq/parley/presence"
)

const (
	nsStream   = "http://etherx.jabber.org/streams"
	nsClient   = "jabber:client"
	nsTLS      = "urn:ietf:params:xml:ns:xmpp-tls"
	nsSASL     = "urn:ietf:params:xml:ns:xmpp-sasl"
	nsBind     = "urn:ietf:params:xml:ns:xmpp-bind"
	nsSession  = "urn:ietf:params:xml:ns:xmpp-session"
	nsStreams  = "urn:ietf:params:xml:ns:xmpp-streams"
	nsStanzas  = "urn:ietf:params:xml:ns:xmpp-stanzas"
	nsRosterV  = "urn:xmpp:features:rosterver"
	nsPreAppr  = "urn:xmpp:features:pre-approval"
	nsRoster   = "jabber:iq:roster"
	nsDelay    = "urn:xmpp:delay"
	nsPing     = "urn:xmpp:ping"
	nsAddress  = "http://jabber.org/protocol/address"
	nsDiscoI   = "http://jabber.org/protocol/disco#info"
	nsDiscoIt  = "http://jabber.org/protocol/disco#items"
	nsVersion  = "jabber:iq:version"
	nsTime     = "urn:xmpp:time"
	nsVCard    = "vcard-temp"
	nsRegister = "jabber:iq:register"
)

// Session is one client connection: its stream, its authenticated
// account and, once bound, its resource and presence.
type Session struct {
	srv    *Server
	conn   net.Conn
	remote string // remote IP, for the login throttle
	direct bool   // direct TLS (XEP-0368)
	secure bool   // TLS is on
	ws     bool   // XMPP over WebSocket (RFC 7395)
	// external is the user the host's webmail session vouches for on a
	// WebSocket from a trusted origin: SASL EXTERNAL logs them in.
	external string
	id       string // stream id
	domain   string // stream's 'to'
	lang     string

	reader *stanzaReader
	bw     *bufio.Writer // synchronous writes before the writer goroutine starts

	authed bool
	bare   jid.JID // authenticated account
	full   jid.JID // bound full JID
	bound  bool
	// domainMember: a chat-enabled user of its domain, who sees and is seen
	// by the domain roster.
	domainMember bool
	pinged       bool
	authFails    int
	scram        *scramState

	// Outgoing queue, drained by writeLoop once the session is bound.
	qmu     sync.Mutex
	qroom   *sync.Cond // signalled when the writer makes room
	closing bool
	queue   []outItem
	wfailed bool          // the writer hit a dead connection
	notify  chan struct{} // a wake-up for the writer, capacity 1
	quit    chan struct{}
	final   []byte // written after the queue when quitting
	wdone   chan struct{}
	writing bool

	stopRead atomic.Bool

	sm       smState     // XEP-0198 stream management
	carbons  atomic.Bool // XEP-0280 carbons enabled
	inactive atomic.Bool // XEP-0352 client state: inactive
	heldMu   sync.Mutex
	held     map[string][]byte // presence held back while inactive, by sender
	resumed  atomic.Bool       // another connection took this session over
	// archiving counts the session's messages in the archiver; archived
	// is signalled when it drops to zero.
	archiving atomic.Int32
	archived  chan struct{}
	// detachedLeft: the reading loop ended with the session detached,
	// waiting for resumption; cleanup is finalizeDetached's job then.
	detachedLeft bool

	// Presence state, guarded by pmu.
	pmu        sync.Mutex
	available  bool
	interested bool // requested the roster (RFC 6121 2.1.6)
	status     presence.Status
	presBytes  []byte // last broadcast presence, from set, to absent
	directed   map[jid.JID]bool
}

func newSession(srv *Server, c net.Conn, direct bool) *Session {
	host, _, _ := net.SplitHostPort(c.RemoteAddr().String())
	s := &Session{
		srv:      srv,
		conn:     c,
		remote:   host,
		direct:   direct,
		secure:   direct,
		id:       randomID(12),
		lang:     "en",
		archived: make(chan struct{}, 1),
	}
	s.reader = newStanzaReader(s, c, srv.cfg.MaxStanzaSize)
	s.bw = bufio.NewWriterSize(c, 2048)
	return s
}

// JID returns the session's full JID (zero before binding).
func (s *Session) JID() jid.JID { return s.full }

// streamError is a stream-level error condition (RFC 6120 4.9.3).
type streamError struct {
	cond string
	text string
}

func (e *streamError) Error() string {
	if e.text != "" {
		return e.cond + ": " + e.text
	}
	return e.cond
}

func serr(cond, format string, args ...any) *streamError {
	return &streamError{cond: cond, text: fmt.Sprintf(format, args...)}
}

var errRestart = errors.New("stream restart")

func (s *Session) run() {
	defer s.srv.untrack(s)
	defer s.cleanup()
	if tc, ok := s.conn.(*tls.Conn); ok {
		tc.SetDeadline(time.Now().Add(s.srv.cfg.AuthTimeout))
		if err := tc.Handshake(); err != nil {
			s.srv.log.Debug("direct TLS handshake failed", "remote", s.remote, "err", err)
			s.conn.Close()
			return
		}
		tc.SetDeadline(time.Time{})
	}
	for {
		err := s.stream()
		if err == errRestart {
			continue
		}
		if s.bound && !s.resumed.Load() && s.resumable() && lostConnection(err) && !s.srv.shutdown.Load() {
			s.detach()
			s.detachedLeft = true
			return
		}
		s.finish(err)
		return
	}
}

// lostConnection tells a dropped connection (worth waiting for a
// resumption) from a stream that ended on purpose.
func lostConnection(err error) bool {
	var se *streamError
	switch {
	case errors.As(err, &se):
		return se.cond == "connection-timeout"
	case errors.Is(err, errClientClosed):
		return false
	case errors.Is(err, errIdle):
		return true
	}
	return err != nil
}

// finish ends the connection after the stream loop stopped with err.
func (s *Session) finish(err error) {
	var se *streamError
	switch {
	case errors.As(err, &se):
		s.srv.m.StreamErrors.Add(1)
		s.srv.log.Info("closing stream with error", "remote", s.remote, "jid", s.full.String(), "condition", se.cond, "text", se.text)
		s.closeWith(streamErrorBytes(se))
	case err == io.EOF || errors.Is(err, errClientClosed):
		s.closeWith([]byte("</stream:stream>"))
	case s.stopRead.Load():
		s.closeWith(streamErrorBytes(&streamError{cond: "system-shutdown", text: "the server is shutting down; reconnect in a moment"}))
	default:
		s.srv.log.Debug("connection lost", "remote", s.remote, "jid", s.full.String(), "err", err)
		s.closeWith(nil)
		s.conn.Close()
	}
	s.waitWriter()
}

var errClientClosed = errors.New("client closed the stream")

func streamErrorBytes(e *streamError) []byte {
	var b strings.Builder
	b.WriteString("<stream:error><")
	b.WriteString(e.cond)
	b.WriteString(` xmlns="` + nsStreams + `"/>`)
	if e.text != "" {
		b.WriteString(`<text xmlns="` + nsStreams + `" xml:lang="en">`)
		b.WriteString(xmlEscape(e.text))
		b.WriteString("</text>")
	}
	b.WriteString("</stream:error></stream:stream>")
	return []byte(b.String())
}

func xmlEscape(s string) string {
	var b strings.Builder
	xml.EscapeText(&b, []byte(s))
	return b.String()
}

// stream runs one XML stream: header, features, then elements until the
// stream ends, needs a restart (after STARTTLS or SASL) or fails.
func (s *Session) stream() error {
	d := xml.NewDecoder(s.reader)
	d.Strict = true
	header, err := s.readHeader(d)
	if err != nil {
		// Answer with our own header first so the stream error is well-formed.
		if se, ok := err.(*streamError); ok {
			s.writeHeader()
			return se
		}
		return err
	}
	_ = header
	s.writeHeader()
	s.writeNow(s.features())
	for {
		s.reader.reset()
		tok, err := d.Token()
		if err != nil {
			return s.readError(err)
		}
		switch t := tok.(type) {
		case xml.StartElement:
			el, err := readElement(d, t)
			if err != nil {
				return s.readError(err)
			}
			if err := s.handle(el); err != nil {
				return err
			}
		case xml.EndElement:
			return errClientClosed
		case xml.CharData:
			if len(strings.TrimSpace(string(t))) != 0 {
				return serr("bad-format", "text is not allowed between stanzas")
			}
		case xml.Comment:
			return serr("restricted-xml", "XMPP forbids comments")
		case xml.ProcInst:
			return serr("restricted-xml", "XMPP forbids processing instructions")
		case xml.Directive:
			return serr("restricted-xml", "XMPP forbids DTDs and directives")
		}
	}
}

// readError turns a decoder error into the stream error it deserves.
func (s *Session) readError(err error) error {
	var syn *xml.SyntaxError
	var rx restrictedError
	switch {
	case errors.Is(err, errTooBig):
		return serr("policy-violation", "stanza larger than %d bytes", s.srv.cfg.MaxStanzaSize)
	case errors.As(err, &rx):
		return serr("restricted-xml", "%s", rx.Error())
	case errors.Is(err, errIdle):
		return serr("connection-timeout", "no answer to ping in %s", s.srv.cfg.PingTimeout)
	case errors.Is(err, errAuthTimeout):
		return serr("connection-timeout", "did not log in within %s", s.srv.cfg.AuthTimeout)
	case errors.As(err, &syn):
		if errors.Is(err, io.ErrUnexpectedEOF) || strings.Contains(syn.Msg, "unexpected EOF") {
			return io.EOF
		}
		return serr("not-well-formed", "%s", syn.Msg)
	}
	return err
}

func (s *Session) readHeader(d *xml.Decoder) (xml.StartElement, error) {
	for {
		tok, err := d.Token()
		if err != nil {
			return xml.StartElement{}, s.readError(err)
		}
		switch t := tok.(type) {
		case xml.ProcInst:
			if t.Target != "xml" {
				return xml.StartElement{}, serr("restricted-xml", "XMPP forbids processing instructions")
			}
		case xml.CharData:
			if len(strings.TrimSpace(string(t))) != 0 {
				return xml.StartElement{}, serr("not-well-formed", "text before the stream header")
			}
		case xml.StartElement:
			if t.Name.Local != "stream" || t.Name.Space != nsStream {
				return t, serr("invalid-namespace", "expected <stream:stream> in %s", nsStream)
			}
			var to, ns, ver string
			for _, a := range t.Attr {
				switch {
				case a.Name.Space == "" && a.Name.Local == "to":
					to = a.Value
				case a.Name.Space == "" && a.Name.Local == "xmlns":
					ns = a.Value
				case a.Name.Space == "" && a.Name.Local == "version":
					ver = a.Value
				case a.Name.Local == "lang" && (a.Name.Space == nsXML || a.Name.Space == "xml"):
					if a.Value != "" && len(a.Value) < 36 {
						s.lang = a.Value
					}
				}
			}
			if s.domain == "" {
				if to == "" {
					s.domain = s.srv.cfg.Domains[0]
				} else {
					dj, err := jid.Parse(to)
					if err != nil || !s.srv.Local(dj.Domain()) || dj.Local() != "" || dj.Resource() != "" {
						s.domain = s.srv.cfg.Domains[0]
						return t, serr("host-unknown", "this server does not serve %q", to)
					}
					s.domain = dj.Domain()
				}
			}
			if ns != "" && ns != nsClient {
				return t, serr("invalid-namespace", "the default namespace must be %s", nsClient)
			}
			if ver != "" && !strings.HasPrefix(ver, "1.") {
				return t, serr("unsupported-version", "this server speaks XMPP 1.0")
			}
			return t, nil
		default:
			return xml.StartElement{}, serr("restricted-xml", "XMPP forbids DTDs, comments and processing instructions")
		}
	}
}

func (s *Session) writeHeader() {
	dom := s.domain
	if dom == "" {
		dom = s.srv.cfg.Domains[0]
	}
	s.writeNow([]byte(`<?xml version='1.0'?><stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' id='` +
		s.id + `' from='` + AttrEscape(dom) + `' version='1.0' xml:lang='en'>`))
}

func (s *Session) features() []byte {
	var b strings.Builder
	b.WriteString("<stream:features>")
	switch {
	case !s.secure && !s.srv.cfg.AllowUnencrypted:
		b.WriteString(`<starttls xmlns="` + nsTLS + `"><required/></starttls>`)
	case !s.authed:
		if !s.secure && s.srv.cfg.TLS != nil {
			b.WriteString(`<starttls xmlns="` + nsTLS + `"/>`)
		}
		b.WriteString(`<mechanisms xmlns="` + nsSASL + `">`)
		for _, m := range s.mechanisms() {
			b.WriteString("<mechanism>" + m + "</mechanism>")
		}
		b.WriteString("</mechanisms>")
	default:
		b.WriteString(`<bind xmlns="` + nsBind + `"/>`)
		b.WriteString(`<session xmlns="` + nsSession + `"><optional/></session>`)
		b.WriteString(`<ver xmlns="` + nsRosterV + `"/>`)
		b.WriteString(`<sub xmlns="` + nsPreAppr + `"/>`)
		b.WriteString(`<sm xmlns="` + nsSM + `"/>`)
		b.WriteString(`<csi xmlns="` + nsCSI + `"/>`)
		b.WriteString(s.srv.capsFeature())
	}
	b.WriteString("</stream:features>")
	return []byte(b.String())
}

// handle dispatches one top-level element by the stream's state.
func (s *Session) handle(el *Element) error {
	switch {
	case !s.secure && !s.srv.cfg.AllowUnencrypted:
		if el.Space == nsTLS && el.Local == "starttls" {
			return s.startTLS()
		}
		return serr("policy-violation", "STARTTLS is required before anything else")
	case el.Space == nsTLS && el.Local == "starttls":
		if s.secure || s.srv.cfg.TLS == nil {
			return serr("policy-violation", "TLS is already on or not offered")
		}
		return s.startTLS()
	case !s.authed:
		if el.Space == nsSASL {
			return s.handleSASL(el)
		}
		return serr("not-authorized", "authenticate first")
	case !s.bound && el.Space == nsSM && el.Local == "resume":
		return s.handleResume(el)
	case s.bound && el.Space != nsClient:
		return s.handleNonza(el)
	}
	if el.Space != nsClient {
		return serr("unsupported-stanza-type", "<%s xmlns='%s'> is not a stanza", el.Local, el.Space)
	}
	switch el.Local {
	case "iq", "message", "presence":
	default:
		return serr("unsupported-stanza-type", "<%s/> is not a stanza", el.Local)
	}
	if !s.bound {
		if el.Local == "iq" && el.Child(nsBind, "bind") != nil {
			return s.handleBind(el)
		}
		if el.Local == "iq" {
			s.writeNow(errorReply(el, "not-authorized", "bind a resource first"))
			return nil
		}
		return serr("not-authorized", "bind a resource first")
	}
	s.srv.m.StanzasIn.Add(1)
	err := s.srv.route(s, el)
	s.sm.handled()
	return err
}

func (s *Session) startTLS() error {
	s.writeNow([]byte(`<proceed xmlns="` + nsTLS + `"/>`))
	tc := tls.Server(s.conn, s.srv.cfg.TLS)
	tc.SetDeadline(time.Now().Add(s.srv.cfg.AuthTimeout))
	if err := tc.Handshake(); err != nil {
		s.srv.log.Debug("STARTTLS handshake failed", "remote", s.remote, "err", err)
		return err
	}
	tc.SetDeadline(time.Time{})
	s.conn = tc
	s.secure = true
	s.reader = newStanzaReader(s, tc, s.srv.cfg.MaxStanzaSize)
	s.bw = bufio.NewWriterSize(tc, 2048)
	return errRestart
}

// writeNow writes synchronously; used only from the reading goroutine
// before the session is bound, when nothing else can write to it.
func (s *Session) writeNow(b []byte) {
	if s.writing {
		s.enqueue(outItem{b: b}, false)
		return
	}
	s.conn.SetWriteDeadline(time.Now().Add(s.srv.cfg.WriteTimeout))
	s.bw.Write(b)
	s.bw.Flush()
}

// outItem is one write: a stanza (counted by stream management) or a
// nonza (an SM ack, a stream-level element).
type outItem struct {
	b      []byte
	stanza bool
	at     time.Time // when it was queued: the delay stamp if it ends up offline
}

// startWriter hands writing over to a goroutine fed by the bounded queue.
func (s *Session) startWriter() {
	s.qmu.Lock()
	s.qroom = sync.NewCond(&s.qmu)
	s.notify = make(chan struct{}, 1)
	s.quit = make(chan struct{})
	s.wdone = make(chan struct{})
	s.writing = true
	s.qmu.Unlock()
	s.bw.Flush()
	s.bw = nil
	go s.writeLoop()
}

// take removes and returns everything queued, and wakes senders waiting
// for room. The queue costs nothing while empty: an idle connection holds
// no buffer for it.
func (s *Session) take() []outItem {
	s.qmu.Lock()
	batch := s.queue
	s.queue = nil
	s.qroom.Broadcast()
	s.qmu.Unlock()
	return batch
}

// writers pools the write buffers of bound sessions: a buffer is held only
// while there is something to write, not by every idle connection.
var writers = sync.Pool{New: func() any { return bufio.NewWriterSize(nil, 4096) }}

func (s *Session) writeLoop() {
	defer close(s.wdone)
	var w *bufio.Writer
	timeout := s.srv.cfg.WriteTimeout
	write := func(it outItem) bool {
		if it.stanza {
			s.sm.sent(it)
		}
		_, err := w.Write(it.b)
		return err == nil
	}
	get := func() {
		w = writers.Get().(*bufio.Writer)
		w.Reset(s.conn)
	}
	put := func() {
		w.Reset(nil)
		writers.Put(w)
		w = nil
	}
	for {
		select {
		case <-s.notify:
			get()
			s.conn.SetWriteDeadline(time.Now().Add(timeout))
			ok := true
			for batch := s.take(); ok && len(batch) > 0; batch = s.take() {
				for i, it := range batch {
					if ok = write(it); !ok {
						s.requeue(batch[i+1:])
						break
					}
				}
			}
			if ok && s.sm.wantAck() {
				_, err := w.WriteString(`<r xmlns="` + nsSM + `"/>`)
				ok = err == nil
			}
			if ok && w.Flush() != nil {
				ok = false
			}
			put()
			if !ok {
				// The connection is gone. Stop taking stanzas: what is
				// queued stays queued for a resumed stream (XEP-0198) or
				// for the offline store.
				s.conn.Close()
				s.qmu.Lock()
				s.wfailed = true
				s.qroom.Broadcast()
				s.qmu.Unlock()
				<-s.quit
				return
			}
		case <-s.quit:
			get()
			defer put()
			s.conn.SetWriteDeadline(time.Now().Add(timeout))
			ok := true
			for _, it := range s.take() {
				if ok = write(it); !ok {
					break
				}
			}
			if ok && s.final != nil {
				w.Write(s.final)
			}
			w.Flush()
			if tc, isTLS := s.conn.(*tls.Conn); isTLS && ok {
				tc.CloseWrite()
			}
			s.conn.Close()
			return
		}
	}
}

// requeue puts back what the writer took but could not write.
func (s *Session) requeue(items []outItem) {
	s.qmu.Lock()
	s.queue = append(append([]outItem(nil), items...), s.queue...)
	s.qmu.Unlock()
}

// send queues a stanza for the client without blocking. A client whose
// queue is full is too slow: it is disconnected, and send reports false so
// the caller can keep the stanza elsewhere (offline storage).
func (s *Session) send(b []byte) bool { return s.enqueue(outItem{b: b, stanza: true}, false) }

// sendWait queues a stanza, waiting for room; only the session's own
// reading goroutine calls it, for stanzas it asked for (a roster, a page of
// history), which may be many.
func (s *Session) sendWait(b []byte) bool { return s.enqueue(outItem{b: b, stanza: true}, true) }

// sendNonza queues a stream-level element (not counted by XEP-0198).
func (s *Session) sendNonza(b []byte) bool { return s.enqueue(outItem{b: b}, false) }

func (s *Session) enqueue(it outItem, wait bool) bool {
	max := s.srv.cfg.QueueLength
	s.qmu.Lock()
	if s.closing || !s.writing {
		s.qmu.Unlock()
		return false
	}
	if len(s.queue) >= max {
		if !wait {
			n := len(s.queue)
			s.qmu.Unlock()
			s.srv.m.QueueDrops.Add(1)
			s.srv.m.SlowClients.Add(1)
			s.srv.log.Warn("client too slow; disconnecting", "jid", s.full.String(), "queued", n)
			go s.kill("policy-violation", "too many stanzas waiting; the client is not reading")
			return false
		}
		for len(s.queue) >= max && !s.closing && !s.wfailed {
			s.qroom.Wait()
		}
		if s.closing || s.wfailed {
			s.qmu.Unlock()
			return false
		}
	}
	it.at = time.Now()
	s.queue = append(s.queue, it)
	s.qmu.Unlock()
	select {
	case s.notify <- struct{}{}:
	default:
	}
	s.srv.m.StanzasOut.Add(1)
	return true
}

// closeWith stops the writer after it flushed the queue, writing final
// last. Safe to call more than once and from any goroutine.
func (s *Session) closeWith(final []byte) {
	s.qmu.Lock()
	if s.closing {
		s.qmu.Unlock()
		return
	}
	s.closing = true
	s.final = final
	writing := s.writing
	if writing {
		s.qroom.Broadcast()
	}
	s.qmu.Unlock()
	if writing {
		close(s.quit)
		return
	}
	if final != nil {
		s.conn.SetWriteDeadline(time.Now().Add(s.srv.cfg.WriteTimeout))
		s.bw.Write(final)
		s.bw.Flush()
	}
	s.conn.Close()
}

func (s *Session) waitWriter() {
	if s.writing {
		<-s.wdone
	}
}

// leftovers returns, once the writer has stopped, every stanza the client
// may not have received: unacknowledged ones (with stream management) and
// those still queued.
func (s *Session) leftovers() []outItem {
	out := s.sm.unackedCopy()
	if !s.writing {
		return out
	}
	for _, it := range s.take() {
		if it.stanza {
			out = append(out, it)
		}
	}
	return out
}

// kill closes the session from another goroutine with a stream error (a
// replaced resource, a slow client).
func (s *Session) kill(cond, text string) {
	s.stopRead.Store(true)
	s.closeWith(streamErrorBytes(&streamError{cond: cond, text: text}))
	s.conn.SetReadDeadline(time.Now())
}

// stopReading makes the reading goroutine stop after the stanza it is
// handling; the session then flushes and closes with system-shutdown.
func (s *Session) stopReading() {
	s.stopRead.Store(true)
	s.conn.SetReadDeadline(time.Now())
}

// cleanup runs when the reading loop ends: the session leaves the router
// and its contacts see it go offline.
func (s *Session) cleanup() {
	if !s.bound || s.detachedLeft || s.resumed.Load() {
		return
	}
	s.srv.forgetSM(s)
	s.srv.router.Unbind(s)
	s.srv.m.Bound.Add(-1)
	s.sm.mu.Lock()
	smOn := s.sm.on
	s.sm.mu.Unlock()
	if smOn {
		// The client may not have received what it did not acknowledge.
		s.waitWriter()
		s.srv.salvage(s, s.leftovers())
	}
	s.srv.goOffline(s)
}

var (
	errTooBig      = errors.New("stanza too big")
	errIdle        = errors.New("idle connection did not answer ping")
	errAuthTimeout = errors.New("authentication timeout")
)

// stanzaReader feeds the XML decoder. It bounds the bytes of one stanza,
// and turns read deadlines into the auth timeout and the idle ping: a
// timeout never reaches the decoder, whose errors are final.
type stanzaReader struct {
	s     *Session
	c     net.Conn
	br    *bufio.Reader
	n     int
	max   int
	limit *ratelimit.Bucket // Config.ReadRate; nil for none
}

func newStanzaReader(s *Session, c net.Conn, max int) *stanzaReader {
	r := &stanzaReader{s: s, c: c, max: max}
	if s.reader != nil {
		r.limit = s.reader.limit // the same budget after STARTTLS
	} else {
		r.limit = ratelimit.New(s.srv.cfg.ReadRate, s.srv.cfg.ReadBurst)
	}
	// Small: TLS buffers records below this, and an idle connection keeps
	// this buffer for as long as it is open.
	r.br = bufio.NewReaderSize(deadlineReader{r}, 1024)
	return r
}

// reset starts counting a new stanza.
func (r *stanzaReader) reset() { r.n = 0 }

func (r *stanzaReader) ReadByte() (byte, error) {
	if r.n >= r.max {
		return 0, errTooBig
	}
	r.n++
	return r.br.ReadByte()
}

func (r *stanzaReader) Read(p []byte) (int, error) {
	if r.n >= r.max {
		return 0, errTooBig
	}
	if len(p) > r.max-r.n {
		p = p[:r.max-r.n]
	}
	n, err := r.br.Read(p)
	r.n += n
	return n, err
}

type deadlineReader struct{ r *stanzaReader }

func (d deadlineReader) Read(p []byte) (int, error) {
	s := d.r.s
	cfg := &s.srv.cfg
	for {
		if s.stopRead.Load() {
			return 0, io.ErrClosedPipe
		}
		var deadline time.Time
		switch {
		case !s.bound:
			deadline = time.Now().Add(cfg.AuthTimeout)
		case s.pinged:
			deadline = time.Now().Add(cfg.PingTimeout)
		default:
			deadline = time.Now().Add(cfg.IdleTimeout)
		}
		d.r.c.SetReadDeadline(deadline)
		n, err := d.r.c.Read(p)
		if n > 0 {
			s.pinged = false
			if wait := d.r.limit.Take(n); wait > 0 {
				// Over its rate: the connection is read again once the
				// deficit is earned back.
				cfg.Metrics.ReadWaits.Add(1)
				ratelimit.Pause(wait, s.srv.ctx.Done())
			}
			return n, nil
		}
		var ne net.Error
		if err != nil && errors.As(err, &ne) && ne.Timeout() {
			if s.stopRead.Load() {
				return 0, io.ErrClosedPipe
			}
			switch {
			case !s.bound:
				return 0, errAuthTimeout
			case !s.pinged:
				s.pinged = true
				s.send([]byte(`<iq type="get" id="ping-` + randomID(6) + `" to="` + AttrEscape(s.full.String()) +
					`" from="` + AttrEscape(s.domain) + `"><ping xmlns="` + nsPing + `"/></iq>`))
				continue
			default:
				return 0, errIdle
			}
		}
		return n, err
	}
}

// ctx returns a context for store and directory calls made while handling
// a stanza; it ends when the server is shut down hard.
func (s *Session) ctx() context.Context { return s.srv.ctx }
