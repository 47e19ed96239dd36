package xmppsrv

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"
)

const (
	nsHTTPBind = "http://jabber.org/protocol/httpbind"
	nsXBOSH    = "urn:xmpp:xbosh"
)

// BOSHConfig bounds XMPP over BOSH (XEP-0124, XEP-0206). Zero values mean
// the defaults named on each field.
type BOSHConfig struct {
	// MaxWait is the longest a request is held waiting for data (the
	// client asks for 'wait', capped here; default 60s).
	MaxWait time.Duration
	// MaxHold is the most requests held at once (default 1); Requests is
	// then MaxHold+1.
	MaxHold int
	// Inactivity is how long a session may go without any request before
	// it is ended as if its connection had dropped (default 60s): a session
	// with XEP-0198 resumption waits detached, as on TCP.
	Inactivity time.Duration
	// Polling is the shortest allowed interval between empty requests
	// when no request is held (hold=0 sessions; default 2s).
	Polling time.Duration
	// MaxBody is the largest request body in bytes (default: the server's
	// MaxStanzaSize plus 8 KiB).
	MaxBody int
	// MaxPending is how many bytes may wait for the client to fetch them
	// before the session counts as too slow and is closed (default 4 MiB).
	MaxPending int
	// MaxSessions bounds the BOSH sessions open at once (default 10000):
	// one HTTP request opens a session, so without a bound a client could
	// hold many for the login timeout at the cost of a request each. Past
	// it, new sessions are refused with policy-violation.
	MaxSessions int
}

// BOSHHandler serves XMPP over BOSH at the path it is mounted on: POST
// requests carrying <body/> elements of XEP-0124, each session an XMPP
// stream of XEP-0206 on the same sessions, routing, archive and SASL
// mechanisms as TCP and WebSocket clients. Any origin may use it (CORS),
// as third-party web clients do; only SASL authenticates. Like the
// WebSocket endpoint it needs HTTPS (or Config.AllowUnencrypted, or a
// trusted X-Forwarded-Proto). Each call returns a handler with its own
// sessions.
func (s *Server) BOSHHandler(cfg BOSHConfig) http.Handler {
	if cfg.MaxWait <= 0 {
		cfg.MaxWait = 60 * time.Second
	}
	if cfg.MaxHold <= 0 {
		cfg.MaxHold = 1
	}
	if cfg.Inactivity <= 0 {
		cfg.Inactivity = 60 * time.Second
	}
	if cfg.Polling <= 0 {
		cfg.Polling = 2 * time.Second
	}
	if cfg.MaxBody <= 0 {
		cfg.MaxBody = s.cfg.MaxStanzaSize + 8<<10
	}
	if cfg.MaxPending <= 0 {
		cfg.MaxPending = 4 << 20
	}
	if cfg.MaxSessions <= 0 {
		cfg.MaxSessions = 10000
	}
	return &boshHandler{srv: s, cfg: cfg, sessions: make(map[string]*boshSess)}
}

type boshHandler struct {
	srv *Server
	cfg BOSHConfig

	mu       sync.Mutex
	sessions map[string]*boshSess
}

// boshSess is one BOSH session: the HTTP side (rids, held requests,
// output waiting for a request) and, as a net.Conn, the byte stream the
// XMPP Session reads and writes.
type boshSess struct {
	h        *boshHandler
	sid      string
	domain   string
	lang     string
	wait     time.Duration
	hold     int
	requests int
	remote   wsAddr
	local    wsAddr

	mu        sync.Mutex
	cond      *sync.Cond // rid order, held requests, output
	nextRID   uint64     // the rid the next request in order must carry
	open      int        // requests being handled or held now
	held      []*boshHeld
	out       [][]byte // elements written by the Session, not yet sent
	outBytes  int
	closed    bool   // the Session closed the stream
	condition string // terminal condition once closed ("" for a clean end)
	cache     map[uint64][]byte
	lastReq   time.Time
	idle      *time.Timer

	// The Session's side.
	input frameIn
	wmu   sync.Mutex
	split splitter
}

// boshHeld is a request held for data; the handler waits on done.
type boshHeld struct {
	rid        uint64
	done       chan []byte // the response body
	superseded bool        // a retransmission of the request took its place
}

var errBOSHInactive = errors.New("BOSH session inactive")

func (h *boshHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Access-Control-Allow-Origin", "*")
	w.Header().Set("Access-Control-Allow-Headers", "Content-Type")
	w.Header().Set("Access-Control-Allow-Methods", "POST, OPTIONS")
	switch r.Method {
	case http.MethodOptions:
		w.Header().Set("Access-Control-Max-Age", "86400")
		w.WriteHeader(http.StatusNoContent)
		return
	case http.MethodPost:
	default:
		w.Header().Set("Allow", "POST, OPTIONS")
		http.Error(w, "BOSH (XEP-0124) takes POST requests", http.StatusMethodNotAllowed)
		return
	}
	s := h.srv
	if s.shutdown.Load() {
		writeBody(w, terminate("system-shutdown"))
		return
	}
	secure := r.TLS != nil || s.cfg.AllowUnencrypted || s.cfg.TrustForwardedTLS && r.Header.Get("X-Forwarded-Proto") == "https"
	if !secure {
		http.Error(w, "XMPP over BOSH needs https", http.StatusForbidden)
		return
	}
	data, err := io.ReadAll(http.MaxBytesReader(w, r.Body, int64(h.cfg.MaxBody)))
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			// Too large to read: the session (if any) cannot continue in
			// order, so it ends.
			if sess := h.session(sidOf(data)); sess != nil {
				sess.fail("policy-violation")
			}
			writeBody(w, terminate("policy-violation"))
			return
		}
		return
	}
	body, err := parseElement(data)
	if err != nil || body.Space != nsHTTPBind || body.Local != "body" {
		writeBody(w, terminate("bad-request"))
		return
	}
	rid, err := strconv.ParseUint(body.Get("rid"), 10, 53)
	if err != nil {
		writeBody(w, terminate("bad-request"))
		return
	}
	sid := body.Get("sid")
	if sid == "" {
		h.create(w, r, body, rid)
		return
	}
	sess := h.session(sid)
	if sess == nil {
		writeBody(w, terminate("item-not-found"))
		return
	}
	writeBody(w, sess.request(r, body, rid))
}

// sidOf finds the sid in the start of a body that was cut short.
func sidOf(b []byte) string {
	i := bytes.Index(b, []byte("sid="))
	if i < 0 || i+5 >= len(b) {
		return ""
	}
	q := b[i+4]
	rest := b[i+5:]
	j := bytes.IndexByte(rest, q)
	if j < 0 {
		return ""
	}
	return string(rest[:j])
}

func (h *boshHandler) session(sid string) *boshSess {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.sessions[sid]
}

func writeBody(w http.ResponseWriter, b []byte) {
	w.Header().Set("Content-Type", "text/xml; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.Write(b)
}

// terminate is a terminal binding condition (XEP-0124 section 17.2).
func terminate(cond string) []byte {
	return []byte(`<body xmlns="` + nsHTTPBind + `" type="terminate" condition="` + cond + `"/>`)
}

// create starts a session (XEP-0124 section 7, XEP-0206 section 3).
func (h *boshHandler) create(w http.ResponseWriter, r *http.Request, body *Element, rid uint64) {
	s := h.srv
	to := strings.ToLower(body.Get("to"))
	if to == "" || !s.Local(to) {
		writeBody(w, terminate("host-unknown"))
		return
	}
	wait := h.cfg.MaxWait
	if v, err := strconv.Atoi(body.Get("wait")); err == nil && v >= 0 && time.Duration(v)*time.Second < wait {
		wait = time.Duration(v) * time.Second
	}
	hold := h.cfg.MaxHold
	if v, err := strconv.Atoi(body.Get("hold")); err == nil && v >= 0 && v < hold {
		hold = v
	}
	lang := "en"
	for _, a := range body.Attr {
		if a.Name.Local == "lang" && a.Value != "" {
			lang = a.Value
		}
	}
	sess := &boshSess{
		h: h, sid: randomID(18), domain: to, lang: lang, wait: wait, hold: hold, requests: hold + 1,
		remote: wsAddr(r.RemoteAddr), local: wsAddr(r.Host),
		nextRID: rid, cache: make(map[uint64][]byte),
		input: newFrameIn(64),
	}
	sess.cond = sync.NewCond(&sess.mu)
	h.mu.Lock()
	if len(h.sessions) >= h.cfg.MaxSessions {
		h.mu.Unlock()
		s.log.Warn("BOSH session refused: BOSHConfig.MaxSessions reached", "remote", r.RemoteAddr, "max", h.cfg.MaxSessions)
		writeBody(w, terminate("policy-violation"))
		return
	}
	h.sessions[sess.sid] = sess
	h.mu.Unlock()
	xs := newSession(s, sess, true)
	if !s.track(xs) {
		sess.forget()
		writeBody(w, terminate("system-shutdown"))
		return
	}
	go xs.run()
	attrs := fmt.Sprintf(` sid="%s" wait="%d" hold="%d" requests="%d" inactivity="%d" polling="%d" ver="1.11" from="%s" secure="true" xmpp:version="1.0" xmpp:restartlogic="true" xmlns:xmpp="%s" xmlns:stream="%s"`,
		sess.sid, int(wait/time.Second), hold, sess.requests, int(h.cfg.Inactivity/time.Second), int(h.cfg.Polling/time.Second),
		AttrEscape(to), nsXBOSH, nsStream)
	writeBody(w, sess.serve(rid, [][]byte{sess.header()}, false, attrs))
}

// header is the stream header the Session reads when a stream starts.
func (b *boshSess) header() []byte {
	return []byte(`<stream:stream xmlns="jabber:client" xmlns:stream="` + nsStream + `" to="` + AttrEscape(b.domain) +
		`" version="1.0" xml:lang="` + AttrEscape(b.lang) + `">`)
}

// request handles a request of an existing session and returns the body
// to answer it with.
func (b *boshSess) request(r *http.Request, body *Element, rid uint64) []byte {
	b.mu.Lock()
	if rid < b.nextRID {
		// A retransmission: the same answer again (section 14.3).
		resp, ok := b.cache[rid]
		if !ok {
			for i, h := range b.held {
				if h.rid != rid {
					continue
				}
				// Still held: the client lost that HTTP request and sent
				// it again; this one is held in its place.
				b.held = append(b.held[:i:i], b.held[i+1:]...)
				h.superseded = true
				h.done <- nil
				b.cond.Broadcast()
				b.open++
				b.stopIdle()
				resp = b.holdLocked(rid, "", time.Now())
				b.open--
				if b.open == 0 && !b.closed {
					b.startIdle()
				}
				b.mu.Unlock()
				return resp
			}
		}
		b.mu.Unlock()
		if !ok {
			b.fail("item-not-found")
			return terminate("item-not-found")
		}
		return resp
	}
	b.mu.Unlock()

	var payload [][]byte
	for _, c := range body.Elements() {
		toClientNS(c)
		payload = append(payload, c.Bytes(nsClient))
	}
	restart := false
	for _, a := range body.Attr {
		if a.Name.Space == nsXBOSH && a.Name.Local == "restart" && boolAttr(a.Value) {
			restart = true
		}
	}
	if restart {
		payload = append([][]byte{b.header()}, payload...)
	}
	end := body.Get("type") == "terminate"
	if end {
		payload = append(payload, []byte("</stream:stream>"))
	}
	return b.serve(rid, payload, len(payload) == 0, "")
}

// toClientNS puts elements the body's default namespace qualified into
// jabber:client, where XEP-0206 says stanzas belong.
func toClientNS(e *Element) {
	if e.Space == nsHTTPBind {
		e.Space = nsClient
	}
	for _, c := range e.Children {
		if c.El != nil {
			toClientNS(c.El)
		}
	}
}

// serve processes request rid in order: it passes payload to the Session,
// then holds the request until there is output, wait passes, or a newer
// request needs its place. attrs go on the answer (session creation).
func (b *boshSess) serve(rid uint64, payload [][]byte, empty bool, attrs string) []byte {
	b.mu.Lock()
	if attrs == "" {
		switch {
		case rid >= b.nextRID+uint64(b.requests):
			b.failLocked("item-not-found") // outside the window (section 14.2)
			b.mu.Unlock()
			return terminate("item-not-found")
		case b.open >= b.requests:
			b.failLocked("policy-violation") // overactivity (section 11)
			b.mu.Unlock()
			return terminate("policy-violation")
		}
	}
	b.open++
	b.stopIdle()
	defer func() {
		b.open--
		if b.open == 0 && !b.closed {
			b.startIdle()
		}
		b.mu.Unlock()
	}()
	// Requests are handled in rid order (section 14.2).
	timeout := time.AfterFunc(b.wait+5*time.Second, func() {
		b.mu.Lock()
		b.cond.Broadcast()
		b.mu.Unlock()
	})
	started := time.Now()
	for b.nextRID != rid && !b.closed {
		if time.Since(started) > b.wait {
			timeout.Stop()
			b.failLocked("item-not-found")
			return terminate("item-not-found")
		}
		b.cond.Wait()
	}
	timeout.Stop()
	if b.closed {
		return b.finalLocked(rid)
	}
	b.nextRID++
	b.cond.Broadcast()
	// Section 11: an empty request that completes a sequence of
	// 'requests' unanswered ones, sooner than 'polling' after the previous
	// request, is overactivity (for hold='0', polling too often).
	if attrs == "" && empty && b.open-1 >= b.hold && !b.lastReq.IsZero() && time.Since(b.lastReq) < b.h.cfg.Polling {
		b.failLocked("policy-violation")
		return terminate("policy-violation")
	}
	if attrs == "" {
		b.lastReq = time.Now()
	}
	// Hand the payload over without holding the lock: the Session may be
	// writing to us while we wait for room.
	if len(payload) > 0 {
		b.mu.Unlock()
		ok := b.feed(payload)
		b.mu.Lock()
		if !ok && !b.closed {
			b.failLocked("remote-connection-failed")
		}
		if b.closed {
			return b.finalLocked(rid)
		}
		if len(b.out) == 0 {
			// Let the Session answer within the same response when it can.
			b.mu.Unlock()
			time.Sleep(2 * time.Millisecond)
			b.mu.Lock()
		}
	}
	return b.holdLocked(rid, attrs, started)
}

// holdLocked keeps request rid until there is output for it, wait passes,
// a newer request needs its place (section 10), or a retransmission of it
// takes its place.
func (b *boshSess) holdLocked(rid uint64, attrs string, started time.Time) []byte {
	held := &boshHeld{rid: rid, done: make(chan []byte, 1)}
	b.held = append(b.held, held)
	// Section 10: more requests than 'hold' waiting: answer the oldest.
	for len(b.held) > b.hold && len(b.held) > 1 || len(b.out) > 0 {
		b.answerOldestLocked()
		if len(b.held) == 0 {
			break
		}
	}
	for {
		select {
		case resp := <-held.done:
			if held.superseded {
				return []byte(`<body xmlns="` + nsHTTPBind + `"/>`)
			}
			return b.finish(rid, attrs, resp)
		default:
		}
		if b.closed {
			b.removeHeldLocked(held)
			return b.finalLocked(rid)
		}
		if time.Since(started) >= b.wait || b.hold == 0 {
			b.removeHeldLocked(held)
			return b.finish(rid, attrs, nil)
		}
		t := time.AfterFunc(b.wait-time.Since(started), func() {
			b.mu.Lock()
			b.cond.Broadcast()
			b.mu.Unlock()
		})
		b.cond.Wait()
		t.Stop()
	}
}

// finish wraps elements into the answer of rid and remembers it for a
// retransmission.
func (b *boshSess) finish(rid uint64, attrs string, elems []byte) []byte {
	var out bytes.Buffer
	out.WriteString(`<body xmlns="` + nsHTTPBind + `"`)
	if attrs != "" {
		out.WriteString(attrs)
	} else if len(elems) > 0 {
		out.WriteString(` xmlns:stream="` + nsStream + `"`)
	}
	if len(elems) == 0 {
		out.WriteString("/>")
	} else {
		out.WriteString(">")
		out.Write(elems)
		out.WriteString("</body>")
	}
	resp := out.Bytes()
	b.cache[rid] = resp
	delete(b.cache, rid-uint64(b.requests))
	return resp
}

// answerOldestLocked answers the oldest held request with what output
// there is.
func (b *boshSess) answerOldestLocked() {
	if len(b.held) == 0 {
		return
	}
	h := b.held[0]
	b.held = b.held[1:]
	h.done <- bytes.Join(b.out, nil)
	b.out, b.outBytes = nil, 0
	b.cond.Broadcast()
}

func (b *boshSess) removeHeldLocked(h *boshHeld) {
	for i, o := range b.held {
		if o == h {
			b.held = append(b.held[:i:i], b.held[i+1:]...)
			return
		}
	}
}

// finalLocked answers a request of a session that ended: what the Session
// still wrote, and the terminate.
func (b *boshSess) finalLocked(rid uint64) []byte {
	var out bytes.Buffer
	out.WriteString(`<body xmlns="` + nsHTTPBind + `" xmlns:stream="` + nsStream + `" type="terminate"`)
	if b.condition != "" {
		out.WriteString(` condition="` + b.condition + `"`)
	}
	out.WriteString(">")
	for _, e := range b.out {
		out.Write(e)
	}
	b.out, b.outBytes = nil, 0
	out.WriteString("</body>")
	resp := out.Bytes()
	b.cache[rid] = resp
	return resp
}

// fail ends the session with a terminal condition: the Session sees its
// connection drop.
func (b *boshSess) fail(cond string) {
	b.mu.Lock()
	b.failLocked(cond)
	b.mu.Unlock()
}

func (b *boshSess) failLocked(cond string) {
	if !b.closed {
		b.closed = true
		b.condition = cond
		b.input.end(io.ErrUnexpectedEOF)
	}
	b.forget()
	b.cond.Broadcast()
}

func (b *boshSess) forget() {
	b.h.mu.Lock()
	if b.h.sessions[b.sid] == b {
		delete(b.h.sessions, b.sid)
	}
	b.h.mu.Unlock()
}

func (b *boshSess) startIdle() {
	b.idle = time.AfterFunc(b.h.cfg.Inactivity, func() {
		b.mu.Lock()
		defer b.mu.Unlock()
		if b.open == 0 && !b.closed {
			// Like a dropped TCP connection: resumable sessions wait.
			b.closed = true
			b.input.end(errBOSHInactive)
			b.forget()
			b.cond.Broadcast()
		}
	})
}

func (b *boshSess) stopIdle() {
	if b.idle != nil {
		b.idle.Stop()
		b.idle = nil
	}
}

// feed passes stream bytes to the Session.
func (b *boshSess) feed(payload [][]byte) bool {
	for _, p := range payload {
		if !b.input.put(p) {
			return false
		}
	}
	return true
}

// The Session's side: a net.Conn.

func (b *boshSess) Read(p []byte) (int, error) { return b.input.read(p) }

// Write queues what the Session writes for the next response: one element
// at a time, framed as XEP-0206 wants (stanzas qualified by jabber:client);
// the stream's end becomes the session's terminate.
func (b *boshSess) Write(p []byte) (int, error) {
	b.wmu.Lock()
	frames := b.split.feed(p)
	b.wmu.Unlock()
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return 0, net.ErrClosed
	}
	for _, f := range frames {
		switch {
		case bytes.HasPrefix(f, []byte("<open ")):
			continue // the BOSH session is the stream
		case bytes.HasPrefix(f, []byte("<close ")):
			b.closed = true
			b.input.end(io.EOF)
			b.forget()
			continue
		case bytes.HasPrefix(f, []byte("<stream:error")):
			b.condition = "remote-stream-error"
		}
		b.out = append(b.out, f)
		b.outBytes += len(f)
	}
	if b.outBytes > b.h.cfg.MaxPending {
		b.failLocked("policy-violation")
		return 0, errors.New("BOSH client is not fetching its data")
	}
	if len(b.out) > 0 && len(b.held) > 0 {
		b.answerOldestLocked()
	}
	b.cond.Broadcast()
	return len(p), nil
}

// Close ends the session from the Session's side; held requests get the
// terminate with what was still queued.
func (b *boshSess) Close() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if !b.closed {
		b.closed = true
		b.input.end(net.ErrClosed)
	}
	b.stopIdle()
	b.forget()
	b.cond.Broadcast()
	return nil
}

func (b *boshSess) LocalAddr() net.Addr  { return b.local }
func (b *boshSess) RemoteAddr() net.Addr { return b.remote }
func (b *boshSess) SetDeadline(t time.Time) error {
	return b.SetReadDeadline(t)
}
func (b *boshSess) SetReadDeadline(t time.Time) error {
	b.input.setDeadline(t)
	return nil
}

// SetWriteDeadline: writes never wait (output is buffered up to
// MaxPending), so there is nothing to bound.
func (b *boshSess) SetWriteDeadline(time.Time) error { return nil }
