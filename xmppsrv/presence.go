package xmppsrv

import (
	"strconv"
	"strings"

	"github.com/parleyhq/parley/jid"
	"github.com/parleyhq/parley/presence"
	"github.com/parleyhq/parley/roster"
)

// handlePresence applies RFC 6121 sections 3 and 4 to a presence from s.
func (srv *Server) handlePresence(s *Session, el *Element, to jid.JID) {
	typ := el.Get("type")
	switch typ {
	case "", "unavailable":
		if to.IsZero() {
			srv.broadcast(s, el, typ)
			return
		}
		srv.directed(s, el, to, typ)
	case "subscribe", "subscribed", "unsubscribe", "unsubscribed":
		if to.IsZero() {
			s.send(errorReply(el, "bad-request", "a subscription request needs a 'to'"))
			return
		}
		st, _ := roster.ParseSubType(typ)
		contact := to.Bare()
		if contact == s.bare || srv.blockedPair(s.full, contact) {
			return // XEP-0191: presence to or from a blocked contact goes nowhere, silently
		}
		srv.subscriptionOut(s.bare, contact, st, firstStatus(el))
	case "probe":
		srv.probe(s, to)
	case "error":
		if !to.IsZero() && !srv.Local(to.Domain()) {
			srv.sendRemote(el)
			return
		}
		if !to.IsZero() && !to.IsBare() {
			for _, r := range srv.router.Resources(to.Bare().String()) {
				if r.full == to {
					r.send(el.Bytes(nsClient))
				}
			}
		}
	default:
		s.send(errorReply(el, "bad-request", "unknown presence type "+strconv.Quote(typ)))
	}
}

func firstStatus(el *Element) string {
	return el.ChildText(nsClient, "status")
}

// parseStatus reads show, status and priority (RFC 6121 4.7.2).
func parseStatus(el *Element) (presence.Status, error) {
	var st presence.Status
	var err error
	if st.Show, err = presence.ParseShow(strings.TrimSpace(el.ChildText(nsClient, "show"))); err != nil {
		return st, err
	}
	st.Text = firstStatus(el)
	if err = presence.CheckStatus(st.Text); err != nil {
		return st, err
	}
	if p := el.Child(nsClient, "priority"); p != nil {
		n, err := strconv.Atoi(strings.TrimSpace(p.Text()))
		if err != nil {
			return st, presence.CheckPriority(1000)
		}
		if err := presence.CheckPriority(n); err != nil {
			return st, err
		}
		st.Priority = n
	}
	return st, nil
}

// broadcast handles presence without 'to': the user's availability,
// sent to the user's own resources and to everyone subscribed to it.
func (srv *Server) broadcast(s *Session, el *Element, typ string) {
	st := presence.Status{Show: presence.Offline}
	if typ == "" {
		var err error
		if st, err = parseStatus(el); err != nil {
			s.send(errorReply(el, "bad-request", err.Error()))
			return
		}
	}
	c := el.ShallowCopy()
	c.Set("to", "")
	b := c.Bytes(nsClient)
	mu := srv.userLock(s.bare.String())
	mu.Lock()
	s.pmu.Lock()
	was := s.available
	s.available = typ == ""
	s.status = st
	var directed map[jid.JID]bool
	if s.available {
		s.presBytes = b
	} else {
		s.presBytes = nil
		directed, s.directed = s.directed, nil
	}
	now := s.available
	s.pmu.Unlock()
	if !was && now {
		// Under the account's lock, so that a message arriving now is
		// either in the store already or sees this resource available.
		srv.deliverOffline(s)
	}
	mu.Unlock()
	if !now {
		srv.componentGone(s)
	}
	if !was && !now {
		srv.fanOut(s, b, directed, false)
		return
	}
	srv.fanOut(s, b, directed, true)
	if !was {
		srv.initialPresence(s)
	}
}

// goOffline tells contacts a session ended without unavailable presence.
func (srv *Server) goOffline(s *Session) {
	srv.componentGone(s)
	s.pmu.Lock()
	was := s.available
	s.available = false
	s.presBytes = nil
	directed := s.directed
	s.directed = nil
	s.pmu.Unlock()
	if !was && len(directed) == 0 {
		return
	}
	for _, r := range srv.router.Resources(s.bare.String()) {
		if r.full == s.full && r != s {
			return // a new session took the resource over: it is not gone
		}
	}
	b := []byte(`<presence type="unavailable" from="` + AttrEscape(s.full.String()) + `"/>`)
	srv.fanOut(s, b, directed, was)
}

// fanOut delivers presence b from s to the user's own available resources
// and, when subscribers is set, to every subscriber, plus the directed
// presence targets. Each recipient gets it once; sends never block.
func (srv *Server) fanOut(s *Session, b []byte, directed map[jid.JID]bool, subscribers bool) {
	seen := make(map[*Session]bool)
	deliver := func(r *Session) {
		if seen[r] {
			return
		}
		seen[r] = true
		if srv.blockedPair(s.full, r.full) {
			return
		}
		if r.isAvailable() {
			r.deliverPresence(s.full.String(), withTo(b, r.full.String()))
		}
	}
	for _, r := range srv.router.Resources(s.bare.String()) {
		deliver(r)
	}
	if subscribers {
		explicit, domain, err := srv.cfg.Roster.PresenceTargets(srv.ctx, s.bare)
		if err != nil {
			srv.log.Error("presence targets", "user", s.bare.String(), "err", err)
		}
		for _, c := range explicit {
			if !srv.Local(c.Domain()) {
				if !srv.blockedPair(s.full, c) {
					srv.presenceToRemote(b, c)
				}
				continue
			}
			for _, r := range srv.router.Resources(c.String()) {
				deliver(r)
			}
		}
		if domain && s.domainMember {
			srv.router.Domain(s.bare.Domain(), func(r *Session) bool {
				if r.domainMember && r.bare != s.bare {
					deliver(r)
				}
				return true
			})
		}
	}
	for t := range directed {
		if !srv.Local(t.Domain()) {
			srv.presenceToRemote(b, t)
			continue
		}
		for _, r := range srv.router.Resources(t.Bare().String()) {
			if t.IsBare() || r.full == t {
				deliver(r)
			}
		}
	}
}

func (s *Session) isAvailable() bool {
	s.pmu.Lock()
	defer s.pmu.Unlock()
	return s.available
}

// currentPresence returns the session's last broadcast presence, nil when
// it is not available.
func (s *Session) currentPresence() []byte {
	s.pmu.Lock()
	defer s.pmu.Unlock()
	return s.presBytes
}

// initialPresence completes a resource's first available presence: the
// presence of its contacts and other resources (RFC 6121 4.2.2, 4.2.3),
// then pending subscription requests. (Offline messages were delivered
// by broadcast already.)
// These go to the session's own queue and may be many (a domain of
// thousands), so they wait for room rather than count as a slow client.
func (srv *Server) initialPresence(s *Session) {
	ctx := s.ctx()
	to := s.full.String()
	sendFrom := func(r *Session) {
		if r == s || srv.blockedPair(s.full, r.full) {
			return
		}
		if p := r.currentPresence(); p != nil {
			s.sendWait(withTo(p, to))
		}
	}
	for _, r := range srv.router.Resources(s.bare.String()) {
		sendFrom(r)
	}
	explicit, domain, err := srv.cfg.Roster.ProbeTargets(ctx, s.bare)
	if err != nil {
		srv.log.Error("probe targets", "user", s.bare.String(), "err", err)
	}
	seen := make(map[jid.JID]bool, len(explicit))
	for _, c := range explicit {
		seen[c] = true
		if !srv.Local(c.Domain()) {
			// RFC 6121 4.3.1: the contact's server answers for it.
			if !srv.blockedPair(s.full, c) {
				srv.sendRemote(NewElement(nsClient, "presence", "type", "probe", "from", s.bare.String(), "to", c.String()))
			}
			continue
		}
		for _, r := range srv.router.Resources(c.String()) {
			sendFrom(r)
		}
	}
	if domain && s.domainMember {
		srv.router.Domain(s.bare.Domain(), func(r *Session) bool {
			if r.domainMember && r.bare != s.bare && !seen[r.bare] {
				sendFrom(r)
			}
			return true
		})
	}
	pending, err := srv.cfg.Roster.Pending(ctx, s.bare)
	if err != nil {
		srv.log.Error("pending subscription requests", "user", s.bare.String(), "err", err)
	}
	for _, p := range pending {
		if srv.blockedPair(s.full, p.From) {
			continue
		}
		e := NewElement(nsClient, "presence", "type", "subscribe", "from", p.From.String(), "to", s.bare.String())
		if p.Status != "" {
			e.Add(NewElement(nsClient, "status").AddText(p.Status))
		}
		s.sendWait(e.Bytes(nsClient))
	}
}

// deliverOffline hands the account's offline messages (XEP-0160) to a
// resource that just became available, then drops them from the store.
func (srv *Server) deliverOffline(s *Session) {
	if prio, _ := s.priority(); prio < 0 {
		return // XEP-0160: not to a negative-priority resource
	}
	ctx := s.ctx()
	msgs, err := srv.cfg.Chat.Offline(ctx, s.bare)
	if err != nil {
		srv.log.Error("reading offline messages", "user", s.bare.String(), "err", err)
		return
	}
	var last uint64
	for _, m := range msgs {
		if !s.sendWait(m.Data) {
			break
		}
		last = m.Seq
	}
	if last > 0 {
		if err := srv.cfg.Chat.AckOffline(ctx, s.bare, last); err != nil {
			srv.log.Error("dropping delivered offline messages", "user", s.bare.String(), "err", err)
		}
	}
}

// directed handles presence to a specific entity (RFC 6121 4.6).
func (srv *Server) directed(s *Session, el *Element, to jid.JID, typ string) {
	if srv.isServer(to) || srv.blockedPair(s.full, to) {
		return
	}
	if !srv.Local(to.Domain()) {
		srv.sendRemote(el)
	} else {
		b := el.Bytes(nsClient)
		for _, r := range srv.router.Resources(to.Bare().String()) {
			if (to.IsBare() && r.isAvailable()) || r.full == to {
				r.send(b)
			}
		}
	}
	s.pmu.Lock()
	if typ == "" && s.available {
		if s.directed == nil {
			s.directed = make(map[jid.JID]bool)
		}
		s.directed[to] = true
	} else {
		delete(s.directed, to)
	}
	s.pmu.Unlock()
}

// probe answers a client's presence probe on the contact's behalf
// (RFC 6121 4.3.2), if the client may see that presence.
func (srv *Server) probe(s *Session, to jid.JID) {
	if to.IsZero() || to.Local() == "" {
		return
	}
	if !srv.Local(to.Domain()) {
		if !srv.blockedPair(s.full, to) {
			srv.sendRemote(NewElement(nsClient, "presence", "type", "probe", "from", s.bare.String(), "to", to.Bare().String()))
		}
		return
	}
	owner := to.Bare()
	if srv.blockedPair(s.full, owner) {
		return
	}
	if owner != s.bare {
		ok, err := srv.cfg.Roster.CanSee(s.ctx(), s.bare, owner)
		if err != nil || !ok {
			return
		}
	}
	sent := false
	for _, r := range srv.router.Resources(owner.String()) {
		if p := r.currentPresence(); p != nil {
			sent = s.send(withTo(p, s.full.String())) || sent
		}
	}
	if !sent {
		s.send([]byte(`<presence type="unavailable" from="` + AttrEscape(owner.String()) + `" to="` + AttrEscape(s.full.String()) + `"/>`))
	}
}

// subscriptionOut processes a subscription stanza owner sends to a local
// contact: the owner's server side (RFC 6121 3.x.2), then the contact's
// (3.x.3).
func (srv *Server) subscriptionOut(owner, contact jid.JID, st roster.SubType, status string) {
	out, err := srv.cfg.Roster.Outbound(srv.ctx, owner, contact, st)
	if err != nil {
		srv.log.Error("outbound subscription", "from", owner.String(), "to", contact.String(), "type", st.String(), "err", err)
		return
	}
	if out.Push != nil {
		srv.pushRoster(owner, out.Push, false)
	}
	if out.SendUnavailable {
		srv.sendUnavailableOf(owner, contact)
	}
	if out.Route {
		srv.subscriptionIn(contact, owner, st, status)
	}
	if out.SendPresence {
		srv.sendPresenceOf(owner, contact)
	}
}

// subscriptionIn processes a subscription stanza that reaches owner from
// a local user.
func (srv *Server) subscriptionIn(owner, from jid.JID, st roster.SubType, status string) {
	if !srv.Local(owner.Domain()) {
		// The owner's server does its side (RFC 6121 3.x.3).
		e := NewElement(nsClient, "presence", "type", st.String(), "from", from.String(), "to", owner.String())
		if status != "" && st == roster.Subscribe {
			e.Add(NewElement(nsClient, "status").AddText(status))
		}
		srv.sendRemote(e)
		return
	}
	if _, err := srv.cfg.Chat.Resolve(srv.ctx, owner); err != nil {
		if st == roster.Subscribe {
			// 3.1.3: no such contact; answer on its behalf.
			srv.subscriptionIn(from, owner, roster.Unsubscribed, "")
		}
		return
	}
	in, err := srv.cfg.Roster.Inbound(srv.ctx, owner, from, st, status)
	if err != nil {
		srv.log.Error("inbound subscription", "from", from.String(), "to", owner.String(), "type", st.String(), "err", err)
		return
	}
	if in.Push != nil {
		srv.pushRoster(owner, in.Push, false)
	}
	if in.Deliver && st == roster.Subscribe && !srv.blockedPair(owner, from) {
		srv.notifyPushSubscription(owner) // XEP-0357
	}
	if in.Deliver && !srv.blockedPair(owner, from) {
		e := NewElement(nsClient, "presence", "type", st.String(), "from", from.String(), "to", owner.String())
		if status != "" {
			e.Add(NewElement(nsClient, "status").AddText(status))
		}
		b := e.Bytes(nsClient)
		for _, r := range srv.router.Resources(owner.String()) {
			if r.isAvailable() {
				r.send(b)
			}
		}
	}
	if in.SendUnavailable {
		srv.sendUnavailableOf(owner, from)
	}
	if in.AutoReply != 0 {
		// The owner's roster already reflects the reply; it only travels.
		srv.subscriptionIn(from, owner, in.AutoReply, "")
	}
	if in.SendPresence {
		srv.sendPresenceOf(owner, from)
	}
}

// sendPresenceOf sends the presence of each available resource of owner to
// the available resources of to.
func (srv *Server) sendPresenceOf(owner, to jid.JID) {
	if !srv.Local(to.Domain()) {
		for _, r := range srv.router.Resources(owner.String()) {
			if p := r.currentPresence(); p != nil && !srv.blockedPair(r.full, to) {
				srv.presenceToRemote(p, to)
			}
		}
		return
	}
	targets := srv.router.Resources(to.String())
	if len(targets) == 0 {
		return
	}
	for _, r := range srv.router.Resources(owner.String()) {
		p := r.currentPresence()
		if p == nil {
			continue
		}
		for _, t := range targets {
			if t.isAvailable() && !srv.blockedPair(r.full, t.full) {
				t.deliverPresence(r.full.String(), withTo(p, t.full.String()))
			}
		}
	}
}

func (srv *Server) sendUnavailableOf(owner, to jid.JID) {
	if !srv.Local(to.Domain()) {
		for _, r := range srv.router.Resources(owner.String()) {
			if r.isAvailable() {
				srv.sendRemote(NewElement(nsClient, "presence", "type", "unavailable", "from", r.full.String(), "to", to.String()))
			}
		}
		return
	}
	targets := srv.router.Resources(to.String())
	for _, r := range srv.router.Resources(owner.String()) {
		if !r.isAvailable() {
			continue
		}
		for _, t := range targets {
			if t.isAvailable() && !srv.blockedPair(r.full, t.full) {
				t.deliverPresence(r.full.String(), []byte(`<presence type="unavailable" from="`+AttrEscape(r.full.String())+`" to="`+AttrEscape(t.full.String())+`"/>`))
			}
		}
	}
}
