package xmppsrv

import (
	"errors"
	"slices"
	"time"

	"github.com/parleyhq/parley/chat"
	"github.com/parleyhq/parley/jid"
	"github.com/parleyhq/parley/storage"
)

// route handles a stanza from a bound client (RFC 6120 section 8, RFC 6121
// section 8): it stamps 'from', checks 'to' and hands the stanza to the
// handler of its kind. A returned error ends the stream.
func (srv *Server) route(s *Session, el *Element) error {
	if f := el.Get("from"); f != "" {
		fj, err := jid.Parse(f)
		if err != nil || (fj != s.full && fj != s.bare) {
			return serr("invalid-from", "'from' must be your own address (%s)", s.full)
		}
	}
	el.Set("from", s.full.String())
	var to jid.JID
	if t := el.Get("to"); t != "" {
		var err error
		if to, err = jid.Parse(t); err != nil {
			if el.Get("type") != "error" {
				s.send(errorReply(el, "jid-malformed", err.Error()))
			}
			return nil
		}
		el.Set("to", to.String())
	}
	if el.Local == "presence" {
		srv.watchPresence(s, el, to)
	}
	if c := srv.component(to); c != nil {
		c.Handle(s, el, to)
		return nil
	}
	switch el.Local {
	case "iq":
		srv.handleIQ(s, el, to)
	case "message":
		srv.handleMessage(s, el, to)
	case "presence":
		srv.handlePresence(s, el, to)
	}
	return nil
}

func (srv *Server) isServer(j jid.JID) bool {
	return j.Local() == "" && j.Resource() == "" && srv.Local(j.Domain())
}

// handleMessage applies RFC 6121 section 8.5 to a message from s.
func (srv *Server) handleMessage(s *Session, el *Element, to jid.JID) {
	typ := el.Get("type")
	switch typ {
	case "", "normal", "chat", "groupchat", "headline", "error":
	default:
		typ = "normal" // RFC 6121 5.2.2: an unknown type is treated as normal
	}
	if to.IsZero() {
		to = s.bare
		el.Set("to", to.String())
	}
	if srv.isServer(to) || srv.isUpload(to) {
		return // nothing here takes messages addressed to the server
	}
	if srv.refuseBlocked(s, el, to) {
		return
	}
	if !srv.Local(to.Domain()) {
		stripStanzaIDs(el)
		srv.remoteOutMessage(s, el, to, typ)
		return
	}
	target, err := srv.cfg.Chat.Resolve(s.ctx(), to.Bare())
	if err != nil {
		if typ == "error" {
			return
		}
		switch {
		case errors.Is(err, chat.ErrNotChatEnabled):
			s.send(errorReply(el, "service-unavailable", to.Bare().String()+" has not enabled chat yet"))
		case errors.Is(err, chat.ErrNoSuchUser):
			s.send(errorReply(el, "service-unavailable", "there is no user "+to.Bare().String()))
		default:
			srv.log.Error("resolving message recipient", "to", to.String(), "err", err)
			s.send(errorReply(el, "internal-server-error", "the directory is unavailable; try again"))
		}
		return
	}
	stripStanzaIDs(el)
	if target.Kind == chat.ToAlias {
		srv.aliasFanout(s, el, to, target)
		return
	}
	bounce := func(cond, text string) {
		if typ != "error" {
			s.send(errorReply(el, cond, text))
		}
	}
	if typ != "error" {
		srv.recordStates(s.bare, to.Bare(), el)
		srv.shareFiles(el, s.bare, to.Bare())
	}
	var (
		msgs []storage.ArchivedMessage
		id   string
		wire []byte // delivered's serialisation, when at hand
	)
	if archivable(el, typ) && srv.cfg.Chat.Archiving() {
		// Stored in both archives before anyone sees it.
		id = srv.cfg.Chat.NewID()
		now := time.Now()
		data := el.Bytes(nsClient)
		m := storage.ArchivedMessage{ID: id, Stamp: now, ClientID: clientID(el), Body: el.ChildText(nsClient, "body"), Data: data}
		from, rcpt := s.bare.String(), to.Bare().String()
		out, in := m, m
		out.Owner, out.With, out.Outgoing = from, rcpt, true
		in.Owner, in.With = rcpt, from
		msgs = make([]storage.ArchivedMessage, 1, 2)
		msgs[0] = out
		if in.Owner != out.Owner {
			msgs = append(msgs, in)
		}
		wire = withStanzaIDWire(data, id, rcpt)
	}
	// The message with its stanza-id as an element is needed only for
	// offline storage, carbons, or when wire could not be spliced: made
	// when first needed.
	delivered := lazy(func() *Element {
		if id == "" {
			return el
		}
		return withStanzaID(el, id, to.Bare())
	})
	sent := lazy(func() *Element {
		if id == "" {
			return el
		}
		return withStanzaID(el, id, s.bare)
	})
	srv.afterArchive(s, msgs, func(err error) {
		if err != nil {
			srv.log.Error("archiving a message", "from", s.bare.String(), "to", to.String(), "err", err)
			bounce("internal-server-error", "the message could not be stored; send it again")
			return
		}
		got := srv.deliverWire(el, wire, delivered, to, typ, bounce)
		srv.carbonCopies(s, el, sent, delivered, to, typ, got)
	})
}

// lazy returns build's element, made when first asked for (most messages
// need no carbon copy, and so no copy with the stanza-id as an element).
func lazy(build func() *Element) func() *Element {
	var el *Element
	return func() *Element {
		if el == nil {
			el = build()
		}
		return el
	}
}

// just returns el as a lazy element.
func just(el *Element) func() *Element { return func() *Element { return el } }

// carbonCopies sends XEP-0280 copies: the message the user sent to the
// user's other resources, and the message the contact received to the
// contact's resources that did not get it directly. el is the message as
// the user sent it, which decides whether copies are made; sent and
// received give the copies' content, made only when a copy goes out.
func (srv *Server) carbonCopies(s *Session, el *Element, sent, received func() *Element, to jid.JID, typ string, got []*Session) {
	if !carbonCopied(el, typ) {
		return
	}
	wrap := func(kind string, owner jid.JID, m *Element, r *Session) []byte {
		return NewElement(nsClient, "message", "from", owner.String(), "to", r.full.String(), "type", typ).Add(
			NewElement(nsCarbons, kind).Add(NewElement(nsForward, "forwarded").Add(m))).Bytes(nsClient)
	}
	for _, r := range srv.router.Resources(s.bare.String()) {
		if r != s && r.carbons.Load() && r.isAvailable() && !slices.Contains(got, r) {
			r.send(wrap("sent", s.bare, sent(), r))
		}
	}
	if to.Bare() == s.bare || !srv.Local(to.Domain()) {
		return
	}
	srv.receivedCopies(el, received, to, typ, got)
}

// carbonCopied reports whether XEP-0280 copies el: a chat message, or a
// normal one with a body, without the private or no-copy hint.
func carbonCopied(el *Element, typ string) bool {
	if !(typ == "chat" || ((typ == "" || typ == "normal") && el.Child(nsClient, "body") != nil)) {
		return false
	}
	return el.Child(nsCarbons, "private") == nil && el.Child(nsHints, "no-copy") == nil
}

// receivedCopies sends XEP-0280 "received" copies of el, as received
// gives it, to the recipient's resources that did not get it directly.
func (srv *Server) receivedCopies(el *Element, received func() *Element, to jid.JID, typ string, got []*Session) {
	if !carbonCopied(el, typ) {
		return
	}
	for _, r := range srv.router.Resources(to.Bare().String()) {
		if r.carbons.Load() && r.isAvailable() && !slices.Contains(got, r) {
			r.send(NewElement(nsClient, "message", "from", to.Bare().String(), "to", r.full.String(), "type", typ).Add(
				NewElement(nsCarbons, "received").Add(NewElement(nsForward, "forwarded").Add(received()))).Bytes(nsClient))
		}
	}
}

// deliverMessage delivers a message to a local user's sessions, or stores
// it offline, following RFC 6121 8.5.2 (bare JID) and 8.5.3 (full JID).
// bounce is called with an error condition when the message cannot be
// delivered and must not be stored.
// It returns the sessions the message was handed to.
func (srv *Server) deliverMessage(el *Element, to jid.JID, typ string, bounce func(cond, text string)) []*Session {
	return srv.deliverWire(el, nil, func() *Element { return el }, to, typ, bounce)
}

// deliverWire is deliverMessage for a message whose stanza-id is added
// only where it is sent or stored: full returns the message with it,
// wire is full's serialisation (from withStanzaIDWire) or nil to make it
// when needed, and el, the message without it, serves what a stanza-id
// does not change (chat state only or not, the push notification).
func (srv *Server) deliverWire(el *Element, wire []byte, full func() *Element, to jid.JID, typ string, bounce func(cond, text string)) []*Session {
	serialised := func() []byte {
		if wire == nil {
			wire = full().Bytes(nsClient)
		}
		return wire
	}
	defer srv.notifyPush(el, to, typ) // XEP-0357, for devices with no connected session
	sessions := srv.router.Resources(to.Bare().String())
	stateOnly := chatStateOnly(el)
	if !to.IsBare() {
		for _, r := range sessions {
			if r.full == to {
				if stateOnly && r.inactive.Load() {
					return nil // XEP-0352: an inactive client does without
				}
				if r.send(serialised()) {
					return []*Session{r}
				}
				break
			}
		}
		switch typ {
		case "chat":
			// 8.5.3.2.1: treat as addressed to the bare JID
		case "error":
			return nil
		default:
			bounce("service-unavailable", to.String()+" is not online")
			return nil
		}
	}
	switch typ {
	case "groupchat":
		bounce("service-unavailable", "this address is not a group chat")
		return nil
	case "headline":
		b := serialised()
		var got []*Session
		for _, r := range sessions {
			if p, ok := r.priority(); ok && p >= 0 && r.send(b) {
				got = append(got, r)
			}
		}
		return got
	}
	mu := srv.userLock(to.Bare().String())
	mu.Lock()
	defer mu.Unlock()
	best := mostAvailable(srv.router.Resources(to.Bare().String()))
	var got []*Session
	if len(best) > 0 {
		b := serialised()
		for _, r := range best {
			if stateOnly && r.inactive.Load() {
				got = append(got, r) // held back, not lost: nothing to store
				continue
			}
			if r.send(b) {
				got = append(got, r)
			}
		}
	}
	if len(got) > 0 || typ == "error" {
		return got
	}
	srv.storeOffline(full(), to, bounce)
	return nil
}

// mostAvailable returns the available sessions with the highest
// non-negative priority (RFC 6121 8.5.2.1.1).
func mostAvailable(sessions []*Session) []*Session {
	var best []*Session
	top := -1
	for _, r := range sessions {
		p, ok := r.priority()
		if !ok || p < 0 {
			continue
		}
		switch {
		case p > top:
			top = p
			best = append(best[:0], r)
		case p == top:
			best = append(best, r)
		}
	}
	return best
}

// priority returns the session's presence priority and whether it is
// available.
func (s *Session) priority() (int, bool) {
	s.pmu.Lock()
	defer s.pmu.Unlock()
	return s.status.Priority, s.available
}

func (srv *Server) storeOffline(el *Element, to jid.JID, bounce func(cond, text string)) {
	srv.storeOfflineAt(el, to, time.Now(), bounce)
}

// storeOfflineAt keeps a message for an offline user, stamped (XEP-0203)
// with when the server received it.
func (srv *Server) storeOfflineAt(el *Element, to jid.JID, at time.Time, bounce func(cond, text string)) {
	if el.ChildText(nsClient, "body") == "" && el.Child(nsClient, "subject") == nil {
		return // chat states and receipts for an offline user are not kept
	}
	now := at.UTC()
	c := el.ShallowCopy()
	c.Children = append(append([]Node(nil), el.Children...), Node{El: NewElement(nsDelay, "delay",
		"from", to.Domain(), "stamp", now.Format("2006-01-02T15:04:05.000Z"))})
	if err := srv.cfg.Chat.StoreOffline(srv.ctx, to.Bare(), now, c.Bytes(nsClient)); err != nil {
		if errors.Is(err, chat.ErrOfflineFull) {
			bounce("service-unavailable", to.Bare().String()+" is offline and has too many messages waiting")
			return
		}
		srv.log.Error("storing offline message", "to", to.String(), "err", err)
		bounce("internal-server-error", "the message could not be stored; send it again")
		return
	}
	srv.m.Offline.Add(1)
}

// aliasFanout sends a copy of a message to an alias to every online
// member, once each, marked with an XEP-0033 address so clients can show
// that it came through the alias; the copy keeps the sender as 'from', so
// replies go to the sender.
func (srv *Server) aliasFanout(s *Session, el *Element, alias jid.JID, target chat.Target) {
	typ := el.Get("type")
	if typ == "error" {
		return
	}
	addresses := NewElement(nsAddress, "addresses")
	addr := NewElement(nsAddress, "address", "type", "to", "jid", alias.Bare().String(), "delivered", "true")
	if target.Entry.Name != "" {
		addr.Set("desc", target.Entry.Name)
	}
	addresses.Add(addr)
	addresses.Add(NewElement(nsAddress, "address", "type", "ofrom", "jid", s.bare.String()))
	kids := make([]Node, 0, len(el.Children)+1)
	for _, n := range el.Children {
		if n.El != nil && n.El.Space == nsAddress {
			continue // a client may not forge the alias marking
		}
		kids = append(kids, n)
	}
	type copyTo struct {
		member jid.JID
		best   []*Session
	}
	var targets []copyTo
	for _, m := range target.Members {
		if m == s.bare || srv.blockedPair(s.full, m) {
			continue
		}
		if best := mostAvailable(srv.router.Resources(m.String())); len(best) > 0 {
			targets = append(targets, copyTo{m, best})
		}
	}
	id := ""
	var msgs []storage.ArchivedMessage
	if len(targets) > 0 && archivable(el, typ) && srv.cfg.Chat.Archiving() {
		// The sender's history and each reached member's show the
		// conversation under the alias.
		id = srv.cfg.Chat.NewID()
		now := time.Now()
		m := storage.ArchivedMessage{ID: id, Stamp: now, With: alias.Bare().String(), ClientID: clientID(el),
			Body: el.ChildText(nsClient, "body"), Data: el.Bytes(nsClient)}
		msgs = []storage.ArchivedMessage{m}
		msgs[0].Owner, msgs[0].Outgoing = s.bare.String(), true
		for _, t := range targets {
			c := m
			c.Owner = t.member.String()
			msgs = append(msgs, c)
		}
	}
	srv.afterArchive(s, msgs, func(err error) {
		if err != nil {
			srv.log.Error("archiving an alias message", "from", s.bare.String(), "alias", alias.String(), "err", err)
			s.send(errorReply(el, "internal-server-error", "the message could not be stored; send it again"))
			return
		}
		reached := 0
		for _, t := range targets {
			c := el.ShallowCopy()
			c.Set("to", t.member.String())
			c.Children = append(append([]Node(nil), kids...), Node{El: addresses})
			if id != "" {
				c.Add(stanzaID(id, t.member))
			}
			b := c.Bytes(nsClient)
			ok := false
			for _, r := range t.best {
				ok = r.send(b) || ok
			}
			if ok {
				reached++
			}
		}
		if reached == 0 {
			s.send(errorReply(el, "recipient-unavailable", "no member of "+alias.Bare().String()+" is online"))
		}
	})
}
