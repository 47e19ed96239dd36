package xmppsrv

import (
	"strings"

	"github.com/parleyhq/parley/jid"
)

// A Component serves a subdomain of every served domain (MUC on
// conference.<domain>, say): every stanza a client addresses to it or to
// an address under it reaches Handle, after the edge stamped 'from' and
// checked 'to'. Handle runs on the sender's reading goroutine: it must not
// block on anything slow but the store, and it sends with Session.Deliver
// or Server.DeliverTo.
type Component interface {
	// Subdomain is the label before the served domain ("conference").
	Subdomain() string
	// Handle handles a stanza from session s addressed to to.
	Handle(s *Session, el *Element, to jid.JID)
	// Identity and Features describe the component in disco#info, and
	// it is listed in the server's disco#items.
	Identity() (category, typ, name string)
	Features() []string
	// Gone tells the component a session ended or went unavailable, so
	// it can drop the session from what it holds (rooms it joined).
	Gone(s *Session)
}

// An AccountHandler answers iq payloads of one namespace addressed to the
// user's own account or another local account (PEP, private storage,
// blocking). It returns false when it does not handle the request, so the
// edge answers service-unavailable.
type AccountHandler interface {
	// Namespace is the payload namespace handled.
	Namespace() string
	// HandleIQ handles an iq get or set from s to account owner (s's own
	// bare JID, or another local user's).
	HandleIQ(s *Session, el, payload *Element, owner jid.JID) bool
	// Features are added to the account's disco#info (and, with Server,
	// to the server's).
	Features() (account, server []string)
}

// Extend adds components and account handlers. Call it before serving;
// it is not safe to call concurrently with traffic.
func (srv *Server) Extend(components []Component, handlers []AccountHandler) {
	if srv.components == nil {
		srv.components = make(map[string]Component)
	}
	if srv.handlers == nil {
		srv.handlers = make(map[string]AccountHandler)
	}
	for _, c := range components {
		srv.components[c.Subdomain()] = c
	}
	for _, h := range handlers {
		srv.handlers[h.Namespace()] = h
	}
}

// component returns the component serving j's domain, if any.
func (srv *Server) component(j jid.JID) Component {
	if len(srv.components) == 0 || j.IsZero() {
		return nil
	}
	label, rest, ok := strings.Cut(j.Domain(), ".")
	if !ok || !srv.Local(rest) {
		return nil
	}
	return srv.components[label]
}

// Deliver queues a stanza for this session's client without blocking; it
// reports false when the client is gone or too slow.
func (s *Session) Deliver(el *Element) bool { return s.send(el.Bytes(nsClient)) }

// Full returns the session's full JID; Bare its account.
func (s *Session) Full() jid.JID { return s.full }
func (s *Session) Bare() jid.JID { return s.bare }

// Send queues an error or result answering el to the session.
func (s *Session) Reply(el *Element, result *Element) bool {
	return s.send(iqResult(el, result).Bytes(nsClient))
}

// ReplyError answers el with a stanza error.
func (s *Session) ReplyError(el *Element, cond, text string) bool {
	return s.send(errorReply(el, cond, text))
}

// DeliverTo delivers a stanza to a local user, as the edge does for
// messages and presence between users: to a full JID's session, or to the
// available resources of a bare JID. It reports whether any session took
// it.
func (srv *Server) DeliverTo(to jid.JID, el *Element) bool {
	b := el.Bytes(nsClient)
	ok := false
	for _, r := range srv.router.Resources(to.Bare().String()) {
		if to.IsBare() && !r.isAvailable() {
			continue
		}
		if to.IsBare() || r.full == to {
			ok = r.send(b) || ok
		}
	}
	return ok
}

// extendedFeatures lists what the extensions add to the server's disco.
func (srv *Server) extendedFeatures() []string {
	var out []string
	for _, h := range srv.handlers {
		_, server := h.Features()
		out = append(out, server...)
	}
	return out
}

// accountFeatures lists what the extensions add to an account's disco.
func (srv *Server) accountFeatures() []string {
	var out []string
	for _, h := range srv.handlers {
		account, _ := h.Features()
		out = append(out, account...)
	}
	return out
}

// componentGone tells every component a session left.
func (srv *Server) componentGone(s *Session) {
	for _, c := range srv.components {
		c.Gone(s)
	}
}
