package xmppsrv

import (
	"errors"
	"time"

	"github.com/parleyhq/parley/chat"
	"github.com/parleyhq/parley/jid"
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
	if srv.isServer(to) {
		return // nothing here takes messages addressed to the server
	}
	target, err := srv.cfg.Chat.Resolve(s.ctx(), to.Bare())
	if err != nil {
		if typ == "error" {
			return
		}
		switch {
		case errors.Is(err, chat.ErrRemote):
			s.send(errorReply(el, "remote-server-not-found", "messages to other servers are not enabled here ("+to.Domain()+")"))
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
	if target.Kind == chat.ToAlias {
		srv.aliasFanout(s, el, to, target)
		return
	}
	srv.deliverMessage(el, to, typ, func(cond, text string) {
		if typ != "error" {
			s.send(errorReply(el, cond, text))
		}
	})
}

// deliverMessage delivers a message to a local user's sessions, or stores
// it offline, following RFC 6121 8.5.2 (bare JID) and 8.5.3 (full JID).
// bounce is called with an error condition when the message cannot be
// delivered and must not be stored.
func (srv *Server) deliverMessage(el *Element, to jid.JID, typ string, bounce func(cond, text string)) {
	sessions := srv.router.Resources(to.Bare().String())
	if !to.IsBare() {
		for _, r := range sessions {
			if r.full == to {
				if r.send(el.Bytes(nsClient)) {
					return
				}
				break
			}
		}
		switch typ {
		case "chat":
			// 8.5.3.2.1: treat as addressed to the bare JID
		case "error":
			return
		default:
			bounce("service-unavailable", to.String()+" is not online")
			return
		}
	}
	switch typ {
	case "groupchat":
		bounce("service-unavailable", "this address is not a group chat")
		return
	case "headline":
		b := el.Bytes(nsClient)
		for _, r := range sessions {
			if p, ok := r.priority(); ok && p >= 0 {
				r.send(b)
			}
		}
		return
	}
	mu := srv.userLock(to.Bare().String())
	mu.Lock()
	defer mu.Unlock()
	best := mostAvailable(srv.router.Resources(to.Bare().String()))
	delivered := false
	if len(best) > 0 {
		b := el.Bytes(nsClient)
		for _, r := range best {
			delivered = r.send(b) || delivered
		}
	}
	if delivered || typ == "error" {
		return
	}
	srv.storeOffline(el, to, bounce)
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
	if el.ChildText(nsClient, "body") == "" && el.Child(nsClient, "subject") == nil {
		return // chat states and receipts for an offline user are not kept
	}
	now := time.Now().UTC()
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
	reached := 0
	for _, m := range target.Members {
		if m == s.bare {
			continue
		}
		best := mostAvailable(srv.router.Resources(m.String()))
		if len(best) == 0 {
			continue
		}
		c := el.ShallowCopy()
		c.Set("to", m.String())
		kids := make([]Node, 0, len(el.Children)+1)
		for _, n := range el.Children {
			if n.El != nil && n.El.Space == nsAddress {
				continue // a client may not forge the alias marking
			}
			kids = append(kids, n)
		}
		c.Children = append(kids, Node{El: addresses})
		b := c.Bytes(nsClient)
		ok := false
		for _, r := range best {
			ok = r.send(b) || ok
		}
		if ok {
			reached++
		}
	}
	if reached == 0 {
		s.send(errorReply(el, "recipient-unavailable", "no member of "+alias.Bare().String()+" is online"))
	}
}
