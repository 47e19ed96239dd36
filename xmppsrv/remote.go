package xmppsrv

import (
	"errors"
	"runtime"
	"time"

	"github.com/parleyhq/parley/account"
	"github.com/parleyhq/parley/chat"
	"github.com/parleyhq/parley/jid"
	"github.com/parleyhq/parley/roster"
	"github.com/parleyhq/parley/storage"
)

// Remote carries stanzas to entities on other servers (federation; package
// s2s implements it). The Server calls it for every stanza whose 'to' is
// not a local domain, whichever part of the server produced it.
// Implementations are safe for concurrent use.
type Remote interface {
	// Send hands over el, from a local entity to a remote one. It must not
	// block on the network. A stanza that cannot be delivered comes back
	// to the sender as an error stanza through Server.Deliver.
	Send(el *Element)
}

// SetRemote turns federation on: stanzas to other domains go to r. Call it
// before serving; without it they are answered with
// remote-server-not-found.
func (srv *Server) SetRemote(r Remote) { srv.remote.Store(&remoteBox{r}) }

type remoteBox struct{ r Remote }

// sendRemote routes a stanza from a local entity to another server, or
// answers it with remote-server-not-found when federation is off.
func (srv *Server) sendRemote(el *Element) {
	if to, err := jid.Parse(el.Get("to")); err == nil && (srv.component(to) != nil || srv.isUpload(to)) {
		// A service of this server (Route from server code): never
		// another server.
		if el.Get("type") != "error" && !(el.Local == "iq" && el.Get("type") == "result") {
			srv.Deliver(errorElement(el, "service-unavailable", to.Domain()+" takes stanzas from its users' sessions only"))
		}
		return
	}
	remote := srv.remote.Load()
	if remote == nil || remote.r == nil {
		if el.Get("type") != "error" && !(el.Local == "iq" && el.Get("type") == "result") {
			to, _ := jid.Parse(el.Get("to"))
			srv.Deliver(errorElement(el, "remote-server-not-found", "this server does not federate with other servers ("+to.Domain()+")"))
		}
		return
	}
	el = el.ShallowCopy()
	stripLocalStanzaIDs(el, srv)
	remote.r.Send(el)
}

// stripLocalStanzaIDs drops the stanza-ids this server stamped for its
// own archives: they mean nothing to the other server.
func stripLocalStanzaIDs(el *Element, srv *Server) {
	kids := el.Children[:0:0]
	for _, n := range el.Children {
		if n.El != nil && n.El.Space == nsSID && n.El.Local == "stanza-id" {
			if by, err := jid.Parse(n.El.Get("by")); err == nil && srv.Local(by.Domain()) {
				continue
			}
		}
		kids = append(kids, n)
	}
	el.Children = kids
}

// remoteSession stands for the other servers in the archiver, which
// orders the messages of each session: inbound messages are archived,
// then delivered, in the order they arrived.
func (srv *Server) remoteSession() *Session {
	srv.remoteOnce.Do(func() {
		srv.remoteSess = &Session{srv: srv, archived: make(chan struct{}, 1)}
	})
	return srv.remoteSess
}

// Deliver routes a stanza that came from another server (its addresses
// already checked by the caller: 'from' on the authenticated peer domain,
// 'to' on a local domain), or an error bounced back to a local sender, to
// local entities (RFC 6120 10.4, RFC 6121). It does not block on the
// network. Safe for concurrent use.
func (srv *Server) Deliver(el *Element) {
	from, err1 := jid.Parse(el.Get("from"))
	to, err2 := jid.Parse(el.Get("to"))
	if err1 != nil || err2 != nil || !srv.Local(to.Domain()) {
		srv.log.Warn("dropping a remote stanza with bad addresses", "from", el.Get("from"), "to", el.Get("to"))
		return
	}
	el.Set("from", from.String())
	el.Set("to", to.String())
	srv.m.StanzasIn.Add(1)
	switch el.Local {
	case "message":
		srv.remoteMessage(el, from, to)
	case "presence":
		srv.remotePresence(el, from, to)
	case "iq":
		srv.remoteIQ(el, from, to)
	}
}

// replyRemote answers a remote stanza with an error, unless it is an
// error itself.
func (srv *Server) replyRemote(el *Element, cond, text string) {
	if el.Get("type") == "error" || (el.Local == "iq" && el.Get("type") == "result") {
		return
	}
	srv.sendRemote(errorElement(el, cond, text))
}

// toLocalFull hands a stanza to the session bound to a full JID, reporting
// whether there was one.
func (srv *Server) toLocalFull(el *Element, to jid.JID) bool {
	for _, r := range srv.router.Resources(to.Bare().String()) {
		if r.full == to {
			return r.send(el.Bytes(nsClient))
		}
	}
	return false
}

// remoteMessage delivers a message from another server (RFC 6121 8.5):
// archived in the recipient's history first, then to the recipient's
// sessions or offline storage, with carbons.
func (srv *Server) remoteMessage(el *Element, from, to jid.JID) {
	typ := el.Get("type")
	switch typ {
	case "", "normal", "chat", "groupchat", "headline", "error":
	default:
		typ = "normal"
	}
	if typ == "error" && !to.IsBare() {
		// Most often a bounce of a message a local client sent.
		srv.toLocalFull(el, to)
		return
	}
	if to.Local() == "" || srv.component(to) != nil || srv.isUpload(to) {
		srv.replyRemote(el, "service-unavailable", "this address takes messages from local users only")
		return
	}
	if srv.blockedPair(to, from) {
		srv.replyRemote(el, "service-unavailable", "")
		return
	}
	target, err := srv.cfg.Chat.Resolve(srv.ctx, to.Bare())
	if err != nil || target.Kind != chat.ToUser {
		switch {
		case err == nil:
			srv.replyRemote(el, "service-unavailable", to.Bare().String()+" takes messages from its own domain only")
		case isNotChat(err):
			srv.replyRemote(el, "service-unavailable", "there is no chat user "+to.Bare().String())
		default:
			srv.log.Error("resolving remote message recipient", "to", to.String(), "err", err)
			srv.replyRemote(el, "internal-server-error", "try again later")
		}
		return
	}
	el = el.ShallowCopy()
	kids := el.Children[:0:0]
	for _, n := range el.Children {
		if n.El != nil && n.El.Space == nsSID && n.El.Local == "stanza-id" && n.El.Get("by") == to.Bare().String() {
			continue // only this server stamps ids for its users
		}
		kids = append(kids, n)
	}
	el.Children = kids
	bounce := func(cond, text string) {
		if typ != "error" {
			srv.replyRemote(el, cond, text)
		}
	}
	if typ != "error" {
		srv.recordStates(from.Bare(), to.Bare(), el)
	}
	delivered := el
	var msgs []storage.ArchivedMessage
	if archivable(el, typ) && srv.cfg.Chat.Archiving() {
		id := srv.cfg.Chat.NewID()
		msgs = []storage.ArchivedMessage{{ID: id, Stamp: time.Now(), ClientID: clientID(el),
			Owner: to.Bare().String(), With: from.Bare().String(),
			Body: el.ChildText(nsClient, "body"), Data: el.Bytes(nsClient)}}
		delivered = withStanzaID(el, id, to.Bare())
	}
	srv.afterArchive(srv.remoteSession(), msgs, func(err error) {
		if err != nil {
			srv.log.Error("archiving a remote message", "from", from.String(), "to", to.String(), "err", err)
			bounce("internal-server-error", "the message could not be stored; send it again")
			return
		}
		got := srv.deliverMessage(delivered, to, typ, bounce)
		srv.receivedCopies(el, just(delivered), to, typ, got)
	})
}

func isNotChat(err error) bool {
	return err != nil && (errors.Is(err, chat.ErrNoSuchUser) || errors.Is(err, chat.ErrNotChatEnabled))
}

// remoteOutMessage sends a local user's message to another server: stored
// in the sender's history first, then handed to federation, with carbons
// to the sender's other resources.
func (srv *Server) remoteOutMessage(s *Session, el *Element, to jid.JID, typ string) {
	if typ != "error" {
		srv.recordStates(s.bare, to.Bare(), el)
		srv.shareFiles(el, s.bare, to.Bare())
	}
	sent := el
	var msgs []storage.ArchivedMessage
	if archivable(el, typ) && srv.cfg.Chat.Archiving() {
		id := srv.cfg.Chat.NewID()
		msgs = []storage.ArchivedMessage{{ID: id, Stamp: time.Now(), ClientID: clientID(el),
			Owner: s.bare.String(), With: to.Bare().String(), Outgoing: true,
			Body: el.ChildText(nsClient, "body"), Data: el.Bytes(nsClient)}}
		sent = withStanzaID(el, id, s.bare)
	}
	srv.afterArchive(s, msgs, func(err error) {
		if err != nil {
			srv.log.Error("archiving a message", "from", s.bare.String(), "to", to.String(), "err", err)
			if typ != "error" {
				s.send(errorReply(el, "internal-server-error", "the message could not be stored; send it again"))
			}
			return
		}
		srv.sendRemote(el)
		srv.carbonCopies(s, el, just(sent), just(el), to, typ, nil)
	})
}

// remotePresence handles presence from another server (RFC 6121 3 and 4).
func (srv *Server) remotePresence(el *Element, from, to jid.JID) {
	typ := el.Get("type")
	switch typ {
	case "subscribe", "subscribed", "unsubscribe", "unsubscribed":
		st, _ := roster.ParseSubType(typ)
		if to.Local() == "" || srv.blockedPair(to, from) {
			return
		}
		srv.subscriptionIn(to.Bare(), from.Bare(), st, firstStatus(el))
	case "probe":
		srv.remoteProbe(from, to)
	case "", "unavailable", "error":
		if to.Local() == "" || srv.blockedPair(to, from) {
			return
		}
		b := el.Bytes(nsClient)
		for _, r := range srv.router.Resources(to.Bare().String()) {
			if r.full == to || (to.IsBare() && r.isAvailable()) {
				r.deliverPresence(from.String(), b)
			}
		}
	}
}

// remoteProbe answers a probe from another server on a local user's
// behalf (RFC 6121 4.3.2): the presence of each available resource if the
// prober is subscribed, unavailable presence if none is available.
func (srv *Server) remoteProbe(from, to jid.JID) {
	owner := to.Bare()
	if owner.Local() == "" || srv.blockedPair(owner, from) {
		return
	}
	ok, err := srv.cfg.Roster.CanSee(srv.ctx, from.Bare(), owner)
	if err != nil || !ok {
		return
	}
	sent := false
	for _, r := range srv.router.Resources(owner.String()) {
		if p := r.currentPresence(); p != nil {
			if e, err := parseElement(withTo(p, from.String())); err == nil {
				srv.sendRemote(e)
				sent = true
			}
		}
	}
	if !sent {
		srv.sendRemote(NewElement(nsClient, "presence", "type", "unavailable", "from", owner.String(), "to", from.String()))
	}
}

// presenceToRemote sends presence b (from a local resource, without 'to')
// to a remote contact.
func (srv *Server) presenceToRemote(b []byte, to jid.JID) {
	if e, err := parseElement(withTo(b, to.String())); err == nil {
		srv.sendRemote(e)
	}
}

// remoteIQ handles an iq from another server: queries to the server and
// to local accounts are answered here (ping, disco, version, time, vCard);
// others go to the addressed resource; results and errors to the local
// resource that asked.
func (srv *Server) remoteIQ(el *Element, from, to jid.JID) {
	typ := el.Get("type")
	if typ == "result" || typ == "error" {
		// An answer to the server's own query (push), else to a client's.
		if !srv.answered(from, el.Get("id"), el) && !to.IsBare() {
			srv.toLocalFull(el, to)
		}
		return
	}
	if (typ != "get" && typ != "set") || el.Get("id") == "" || len(el.Elements()) != 1 {
		srv.replyRemote(el, "bad-request", "an iq get or set has an id and exactly one payload")
		return
	}
	if to.Local() != "" && srv.blockedPair(to, from) {
		srv.replyRemote(el, "service-unavailable", "")
		return
	}
	p := el.FirstChild()
	get := typ == "get"
	answer := func(payload *Element) {
		r := iqResult(el, payload)
		srv.sendRemote(r)
	}
	switch {
	case !to.IsBare():
		if !srv.toLocalFull(el, to) {
			srv.replyRemote(el, "service-unavailable", to.String()+" is not online")
		}
	case to.Local() == "" && srv.component(to) == nil && !srv.isUpload(to):
		switch {
		case p.Space == nsPing && p.Local == "ping":
			answer(nil)
		case p.Space == nsDiscoI && p.Local == "query" && get && p.Get("node") == "":
			answer(srv.serverInfo())
		case p.Space == nsDiscoIt && p.Local == "query" && get && p.Get("node") == "":
			answer(NewElement(nsDiscoIt, "query"))
		case p.Space == nsVersion && p.Local == "query" && get:
			answer(NewElement(nsVersion, "query").Add(
				NewElement(nsVersion, "name").AddText("Parley"),
				NewElement(nsVersion, "version").AddText(srv.cfg.Version),
				NewElement(nsVersion, "os").AddText(runtime.GOOS)))
		case p.Space == nsTime && p.Local == "time" && get:
			now := time.Now()
			answer(NewElement(nsTime, "time").Add(
				NewElement(nsTime, "tzo").AddText(now.Format("-07:00")),
				NewElement(nsTime, "utc").AddText(now.UTC().Format("2006-01-02T15:04:05.000Z"))))
		default:
			srv.replyRemote(el, "service-unavailable", "<"+p.Local+" xmlns='"+p.Space+"'/> is not offered to other servers")
		}
	case to.Local() == "":
		srv.replyRemote(el, "service-unavailable", "this service takes requests from local users only")
	default:
		e, err := srv.cfg.Directory.Lookup(srv.ctx, to.Address())
		if err != nil || e.Kind != account.User || !e.ChatEnabled {
			srv.replyRemote(el, "service-unavailable", "there is no chat user "+to.String())
			return
		}
		switch {
		case p.Space == nsVCard && p.Local == "vCard" && get:
			v := srv.vcardOf(to)
			r := iqResult(el, v)
			srv.sendRemote(r)
		case p.Space == nsPing && p.Local == "ping":
			answer(nil)
		case p.Space == nsDiscoI && p.Local == "query" && get && p.Get("node") == "":
			answer(NewElement(nsDiscoI, "query").Add(
				NewElement(nsDiscoI, "identity", "category", "account", "type", "registered"),
				NewElement(nsDiscoI, "feature", "var", nsDiscoI),
				NewElement(nsDiscoI, "feature", "var", nsVCard)))
		default:
			srv.replyRemote(el, "service-unavailable", "<"+p.Local+" xmlns='"+p.Space+"'/> is not offered to other servers")
		}
	}
}

// Route sends a stanza the server itself produced (from a local address)
// to its recipient: a local user's sessions (a full JID's session, or the
// available resources of a bare JID), or another server through
// federation. It never blocks on the network.
func (srv *Server) Route(el *Element) {
	to, err := jid.Parse(el.Get("to"))
	if err != nil {
		return
	}
	if !srv.Local(to.Domain()) {
		srv.sendRemote(el)
		return
	}
	srv.DeliverTo(to, el)
}
