package xmppsrv

import (
	"strconv"
	"sync"
	"time"
)

const (
	nsSM  = "urn:xmpp:sm:3"
	nsCSI = "urn:xmpp:csi:0"
)

// smState is a session's XEP-0198 bookkeeping. The writer records what it
// sends, the reader what the client acknowledges; mu guards both.
type smState struct {
	mu        sync.Mutex
	on        bool
	resumable bool
	id        string
	in        uint32    // stanzas handled from the client (h we report)
	out       uint32    // stanzas written to the client
	acked     uint32    // h the client last reported
	unacked   []outItem // written, not yet acknowledged, oldest first
	asked     bool      // an <r/> is outstanding
	detached  chan struct{}
	timer     *time.Timer
	finalized bool
}

// sent records a stanza the writer is about to write.
func (m *smState) sent(it outItem) {
	m.mu.Lock()
	if m.on {
		m.out++
		m.unacked = append(m.unacked, it)
	}
	m.mu.Unlock()
}

// wantAck reports whether the writer should ask for an ack after a flush:
// stanzas are unacknowledged and no request is outstanding.
func (m *smState) wantAck() bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	if !m.on || m.asked || len(m.unacked) == 0 {
		return false
	}
	m.asked = true
	return true
}

// ack applies the client's h; false if h acknowledges more than was sent.
func (m *smState) ack(h uint32) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.asked = false
	n := h - m.acked
	if n > uint32(len(m.unacked)) {
		return false
	}
	m.unacked = m.unacked[n:]
	m.acked = h
	return true
}

func (m *smState) unackedCopy() []outItem {
	m.mu.Lock()
	defer m.mu.Unlock()
	return append([]outItem(nil), m.unacked...)
}

func (m *smState) handled() {
	m.mu.Lock()
	if m.on {
		m.in++
	}
	m.mu.Unlock()
}

// handleNonza handles stream-level elements of a bound session: stream
// management (XEP-0198) and client state indication (XEP-0352).
func (s *Session) handleNonza(el *Element) error {
	switch {
	case el.Space == nsSM && el.Local == "enable":
		return s.smEnable(el)
	case el.Space == nsSM && el.Local == "r":
		// Acknowledge only what is stored: wait for the archiver.
		s.awaitArchived()
		s.sm.mu.Lock()
		on, h := s.sm.on, s.sm.in
		s.sm.mu.Unlock()
		if !on {
			return serr("unsupported-stanza-type", "stream management is not enabled")
		}
		s.sendNonza([]byte(`<a xmlns="` + nsSM + `" h="` + strconv.FormatUint(uint64(h), 10) + `"/>`))
	case el.Space == nsSM && el.Local == "a":
		h, err := strconv.ParseUint(el.Get("h"), 10, 32)
		if err != nil {
			return serr("undefined-condition", "bad h in <a/>")
		}
		if !s.sm.ack(uint32(h)) {
			return serr("undefined-condition", "acknowledged more stanzas than were sent")
		}
	case el.Space == nsSM && el.Local == "resume":
		s.sendNonza(smFailed("unexpected-request", "this stream is already bound"))
	case el.Space == nsCSI && el.Local == "active":
		s.inactive.Store(false)
		s.flushHeld()
	case el.Space == nsCSI && el.Local == "inactive":
		s.inactive.Store(true)
	default:
		return serr("unsupported-stanza-type", "<%s xmlns='%s'> is not a stanza", el.Local, el.Space)
	}
	return nil
}

func smFailed(cond, text string) []byte {
	b := `<failed xmlns="` + nsSM + `"><` + cond + ` xmlns="` + nsStanzas + `"/>`
	if text != "" {
		b += `<text xmlns="` + nsStanzas + `">` + xmlEscape(text) + `</text>`
	}
	return []byte(b + `</failed>`)
}

func (s *Session) smEnable(el *Element) error {
	s.sm.mu.Lock()
	if s.sm.on {
		s.sm.mu.Unlock()
		s.sendNonza(smFailed("unexpected-request", "stream management is already enabled"))
		return nil
	}
	s.sm.on = true
	s.sm.resumable = boolAttr(el.Get("resume"))
	if s.sm.resumable {
		s.sm.id = randomID(18)
	}
	id := s.sm.id
	s.sm.mu.Unlock()
	reply := `<enabled xmlns="` + nsSM + `"`
	if id != "" {
		s.srv.smMu.Lock()
		s.srv.smByID[id] = s
		s.srv.smMu.Unlock()
		reply += ` id="` + id + `" resume="true" max="` + strconv.Itoa(int(s.srv.cfg.ResumeTimeout/time.Second)) + `"`
	}
	s.sendNonza([]byte(reply + `/>`))
	return nil
}

// resumable reports whether a lost connection should leave the session
// waiting for the client to resume it.
func (s *Session) resumable() bool {
	s.sm.mu.Lock()
	defer s.sm.mu.Unlock()
	return s.sm.on && s.sm.resumable && s.sm.id != ""
}

// detach keeps a session whose connection was lost in the router, still
// receiving stanzas into its queue, until the client resumes it or
// Config.ResumeTimeout passes.
func (s *Session) detach() {
	s.conn.Close()
	s.sm.mu.Lock()
	s.sm.detached = make(chan struct{})
	close(s.sm.detached)
	s.sm.timer = time.AfterFunc(s.srv.cfg.ResumeTimeout, func() { s.srv.finalizeDetached(s) })
	s.sm.mu.Unlock()
	s.srv.log.Debug("connection lost; waiting for resumption", "jid", s.full.String(), "for", s.srv.cfg.ResumeTimeout)
}

// finalizeDetached ends a session that was not resumed in time: what the
// client did not acknowledge goes to offline storage, and its contacts see
// it go offline.
func (srv *Server) finalizeDetached(s *Session) {
	mu := srv.userLock(s.bare.String())
	mu.Lock()
	s.sm.mu.Lock()
	if s.sm.finalized || s.resumed.Load() {
		s.sm.mu.Unlock()
		mu.Unlock()
		return
	}
	s.sm.finalized = true
	if s.sm.timer != nil {
		s.sm.timer.Stop()
	}
	s.sm.mu.Unlock()
	srv.forgetSM(s)
	srv.router.Unbind(s)
	s.closeWith(nil)
	s.waitWriter()
	left := s.leftovers()
	mu.Unlock()
	srv.m.Bound.Add(-1)
	srv.salvage(s, left)
	srv.goOffline(s)
}

func (srv *Server) forgetSM(s *Session) {
	s.sm.mu.Lock()
	id := s.sm.id
	s.sm.mu.Unlock()
	if id == "" {
		return
	}
	srv.smMu.Lock()
	if srv.smByID[id] == s {
		delete(srv.smByID, id)
	}
	srv.smMu.Unlock()
}

// salvage stores the messages among stanzas the client may never have
// received, stamped with when they reached this session, so nothing
// acknowledged to a sender is lost.
func (srv *Server) salvage(s *Session, stanzas []outItem) {
	n := 0
	for _, it := range stanzas {
		el, err := parseElement(it.b)
		if err != nil || el.Local != "message" {
			continue
		}
		typ := el.Get("type")
		if typ == "error" || typ == "groupchat" || typ == "headline" || el.Child(nsClient, "body") == nil {
			continue
		}
		if el.Child(nsDelay, "delay") != nil {
			// Already stamped (an offline message being redelivered).
			if err := srv.cfg.Chat.StoreOffline(srv.ctx, s.bare, it.at, it.b); err == nil {
				n++
			}
			continue
		}
		srv.storeOfflineAt(el, s.bare, it.at, func(cond, text string) {
			srv.log.Warn("could not keep an undelivered message", "to", s.bare.String(), "why", text)
		})
		n++
	}
	if n > 0 {
		srv.log.Info("kept unacknowledged messages for the next login", "jid", s.full.String(), "messages", n)
	}
}

// handOver ends a detached session because its resource logged in anew
// (not resuming it): what it did not deliver waits in offline storage for
// the new session's initial presence, and contacts are not told the
// resource left, since it is back.
func (srv *Server) handOver(old *Session) {
	old.sm.mu.Lock()
	if old.sm.detached == nil || old.sm.finalized || old.resumed.Load() {
		old.sm.mu.Unlock()
		return
	}
	old.sm.finalized = true
	old.sm.timer.Stop()
	old.sm.mu.Unlock()
	srv.forgetSM(old)
	old.closeWith(nil)
	old.waitWriter()
	srv.m.Bound.Add(-1)
	srv.salvage(old, old.leftovers())
}

// handleResume resumes a detached session on this new connection
// (XEP-0198 §5): this Session takes over the old one's identity, queue and
// presence, and replays what the client did not acknowledge.
func (s *Session) handleResume(el *Element) error {
	srv := s.srv
	h, err := strconv.ParseUint(el.Get("h"), 10, 32)
	if err != nil {
		s.writeNow(smFailed("bad-request", "h must be a number"))
		return nil
	}
	srv.smMu.Lock()
	old := srv.smByID[el.Get("previd")]
	srv.smMu.Unlock()
	if old == nil || old.bare != s.bare {
		s.writeNow(smFailed("item-not-found", "that session is gone; bind a new resource"))
		return nil
	}
	// The server may not have noticed yet that the old connection died.
	old.sm.mu.Lock()
	detached := old.sm.detached
	old.sm.mu.Unlock()
	if detached == nil {
		old.conn.Close()
		deadline := time.Now().Add(5 * time.Second)
		for detached == nil && time.Now().Before(deadline) {
			time.Sleep(5 * time.Millisecond)
			old.sm.mu.Lock()
			detached = old.sm.detached
			old.sm.mu.Unlock()
		}
		if detached == nil {
			s.writeNow(smFailed("unexpected-request", "the old session is still closing; try again"))
			return nil
		}
	}
	mu := srv.userLock(s.bare.String())
	mu.Lock()
	old.sm.mu.Lock()
	if old.sm.finalized || old.resumed.Load() {
		old.sm.mu.Unlock()
		mu.Unlock()
		s.writeNow(smFailed("item-not-found", "that session has ended; bind a new resource"))
		return nil
	}
	old.sm.timer.Stop()
	old.resumed.Store(true)
	if !old.sm.ackLocked(uint32(h)) {
		old.sm.mu.Unlock()
		mu.Unlock()
		return serr("undefined-condition", "h acknowledges more stanzas than were sent")
	}
	in := old.sm.in
	id := old.sm.id
	old.sm.mu.Unlock()
	// Stop the old writer and take what it did not deliver.
	old.closeWith(nil)
	old.waitWriter()
	pending := old.leftovers()

	s.full, s.domainMember = old.full, old.domainMember
	old.pmu.Lock()
	s.available, s.interested, s.status, s.presBytes, s.directed = old.available, old.interested, old.status, old.presBytes, old.directed
	old.pmu.Unlock()
	s.carbons.Store(old.carbons.Load())
	s.inactive.Store(old.inactive.Load())
	s.sm = smState{on: true, resumable: true, id: id, in: in, out: uint32(h), acked: uint32(h)}
	s.startWriter()
	s.bound = true
	srv.smMu.Lock()
	srv.smByID[id] = s
	srv.smMu.Unlock()
	s.sendNonza([]byte(`<resumed xmlns="` + nsSM + `" h="` + strconv.FormatUint(uint64(in), 10) + `" previd="` + id + `"/>`))
	for _, it := range pending {
		s.sendWait(it.b)
	}
	srv.router.Bind(s) // replaces old under the same full JID
	mu.Unlock()
	srv.log.Debug("stream resumed", "jid", s.full.String(), "replayed", len(pending))
	return nil
}

func (m *smState) ackLocked(h uint32) bool {
	n := h - m.acked
	if n > uint32(len(m.unacked)) {
		return false
	}
	m.unacked = m.unacked[n:]
	m.acked = h
	return true
}

// deliverPresence sends presence b from 'from' to this session, or holds
// the latest one per sender while the client says it is inactive (XEP-0352).
func (s *Session) deliverPresence(from string, b []byte) {
	if s.inactive.Load() {
		s.heldMu.Lock()
		if s.held == nil {
			s.held = make(map[string][]byte)
		}
		s.held[from] = b
		s.heldMu.Unlock()
		return
	}
	s.send(b)
}

// flushHeld sends the presence held back while the client was inactive.
func (s *Session) flushHeld() {
	s.heldMu.Lock()
	held := s.held
	s.held = nil
	s.heldMu.Unlock()
	for _, b := range held {
		s.sendWait(b)
	}
}

// chatStateOnly reports whether a message carries nothing but a chat
// state (XEP-0085), which an inactive client need not get.
func chatStateOnly(el *Element) bool {
	found := false
	for _, c := range el.Elements() {
		switch {
		case c.Space == nsChatStat:
			found = true
		case c.Space == nsClient && c.Local == "thread":
		case c.Space == nsHints, c.Space == nsSID:
		default:
			return false
		}
	}
	return found
}
