package xmppsrv

import (
	"strings"
	"sync"
	"time"

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
		srv.extendOptional(h)
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

// componentGone tells every component and presence watcher a session
// left.
func (srv *Server) componentGone(s *Session) {
	for _, c := range srv.components {
		c.Gone(s)
	}
	for _, p := range srv.ext.presence {
		p.Gone(s)
	}
}

// Optional abilities of an AccountHandler, found by type assertion when
// it is passed to Extend.

// A PresenceWatcher sees every presence a client sends, before the edge
// routes it (broadcast, directed, or to a component), and may change it:
// XEP-0398 puts the avatar hash in, XEP-0115 capabilities tell PEP which
// notifications a resource wants. Gone is told when a session goes
// unavailable or ends, as Component.Gone is.
type PresenceWatcher interface {
	Presence(s *Session, el *Element, to jid.JID)
	Gone(s *Session)
}

// A Blocker says whether owner blocks communication with other
// (XEP-0191); other may be a full JID. The edge then drops presence
// between them, answers a message or iq from other with
// service-unavailable and one to other with not-acceptable and
// <blocked/>. It is called for every routed stanza: it must be fast.
type Blocker interface {
	Blocked(owner, other jid.JID) bool
}

// An AccountDisco adds to service discovery on accounts: identities on the
// account's disco#info (pubsub/pep), and answers to disco#items and to
// disco#info with a node (the PEP nodes). DiscoItems and DiscoNode report
// false to leave the query to the edge.
type AccountDisco interface {
	Identities() [][2]string
	DiscoItems(s *Session, el *Element, owner jid.JID, node string) bool
	DiscoNode(s *Session, el *Element, owner jid.JID, node string) bool
}

// A VCardWatcher is told after a user stored a vCard (vcard-temp), with
// what was stored: XEP-0398 makes its PHOTO the PEP avatar.
type VCardWatcher interface {
	VCardSet(s *Session, vcard *Element)
}

// ext is what Extend collected of the optional abilities, and the
// bookkeeping of iqs the server sends to clients.
type ext struct {
	presence []PresenceWatcher
	blocker  Blocker
	disco    []AccountDisco
	vcard    []VCardWatcher

	mu      sync.Mutex
	pending map[string]func(*Element) // iq id -> answer handler
	caps    string                    // the server's XEP-0115 ver, "" until computed
}

func (srv *Server) extendOptional(h AccountHandler) {
	if p, ok := h.(PresenceWatcher); ok {
		srv.ext.presence = append(srv.ext.presence, p)
	}
	if b, ok := h.(Blocker); ok {
		srv.ext.blocker = b
	}
	if d, ok := h.(AccountDisco); ok {
		srv.ext.disco = append(srv.ext.disco, d)
	}
	if v, ok := h.(VCardWatcher); ok {
		srv.ext.vcard = append(srv.ext.vcard, v)
	}
	srv.ext.mu.Lock()
	srv.ext.caps = ""
	srv.ext.mu.Unlock()
}

// blocked reports whether owner blocks other.
func (srv *Server) blocked(owner, other jid.JID) bool {
	return srv.ext.blocker != nil && srv.ext.blocker.Blocked(owner, other)
}

// blockedPair reports whether either of a and b blocks the other: no
// presence flows between them.
func (srv *Server) blockedPair(a, b jid.JID) bool {
	return srv.ext.blocker != nil && (srv.ext.blocker.Blocked(a.Bare(), b) || srv.ext.blocker.Blocked(b.Bare(), a))
}

// refuseBlocked answers a message or iq from s to to when one blocks the
// other (XEP-0191 section 3.3): it reports true when the stanza must not
// be routed.
func (srv *Server) refuseBlocked(s *Session, el *Element, to jid.JID) bool {
	if srv.ext.blocker == nil || to.IsZero() || to.Local() == "" || to.Bare() == s.bare {
		return false
	}
	typ := el.Get("type")
	answer := typ != "error" && (el.Local == "message" || typ == "get" || typ == "set")
	if srv.blocked(s.bare, to) {
		if answer {
			e := errorElement(el, "not-acceptable", "")
			e.Child(nsClient, "error").Add(NewElement(nsBlockingErrors, "blocked"))
			s.send(e.Bytes(nsClient))
		}
		return true
	}
	if srv.blocked(to.Bare(), s.full) {
		if answer {
			s.send(errorReply(el, "service-unavailable", ""))
		}
		return true
	}
	return false
}

const nsBlockingErrors = "urn:xmpp:blocking:errors"

// watchPresence shows a presence from s to the watchers.
func (srv *Server) watchPresence(s *Session, el *Element, to jid.JID) {
	for _, p := range srv.ext.presence {
		p.Presence(s, el, to)
	}
}

// SendIQ sends an iq get or set from the server to session s and calls fn
// with the answer (a result or an error), or with nil when none came
// within timeout or s ended. fn runs on s's reading goroutine, or on a
// timer's.
func (srv *Server) SendIQ(s *Session, iq *Element, timeout time.Duration, fn func(*Element)) {
	id := "srv-" + randomID(9)
	iq.Set("id", id)
	if iq.Get("to") == "" {
		iq.Set("to", s.full.String())
	}
	if iq.Get("from") == "" {
		iq.Set("from", s.domain)
	}
	srv.ext.mu.Lock()
	if srv.ext.pending == nil {
		srv.ext.pending = make(map[string]func(*Element))
	}
	srv.ext.pending[s.full.String()+" "+id] = fn
	srv.ext.mu.Unlock()
	if !s.send(iq.Bytes(nsClient)) {
		srv.answered(s.full, id, nil)
		return
	}
	time.AfterFunc(timeout, func() { srv.answered(s.full, id, nil) })
}

// answered hands an iq answer to the SendIQ that waits for it; it reports
// whether one did.
func (srv *Server) answered(from jid.JID, id string, el *Element) bool {
	srv.ext.mu.Lock()
	fn := srv.ext.pending[from.String()+" "+id]
	delete(srv.ext.pending, from.String()+" "+id)
	srv.ext.mu.Unlock()
	if fn != nil {
		fn(el)
	}
	return fn != nil
}

// accountDiscoIdentities lists the identities extensions add to accounts.
func (srv *Server) accountIdentities() [][2]string {
	var out [][2]string
	for _, d := range srv.ext.disco {
		out = append(out, d.Identities()...)
	}
	return out
}

// extDiscoItems lets an extension answer disco#items on an account.
func (srv *Server) extDiscoItems(s *Session, el *Element, owner jid.JID, node string) bool {
	for _, d := range srv.ext.disco {
		if d.DiscoItems(s, el, owner, node) {
			return true
		}
	}
	return false
}

// extDiscoNode lets an extension answer disco#info with a node on an
// account.
func (srv *Server) extDiscoNode(s *Session, el *Element, owner jid.JID, node string) bool {
	for _, d := range srv.ext.disco {
		if d.DiscoNode(s, el, owner, node) {
			return true
		}
	}
	return false
}

// vcardStored tells the watchers a vCard was stored.
func (srv *Server) vcardStored(s *Session, v *Element) {
	for _, w := range srv.ext.vcard {
		w.VCardSet(s, v)
	}
}
