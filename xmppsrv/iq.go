package xmppsrv

import (
	"errors"
	"runtime"
	"strings"
	"time"

	"github.com/parleyhq/parley/account"
	"github.com/parleyhq/parley/jid"
	"github.com/parleyhq/parley/roster"
	"github.com/parleyhq/parley/storage"
)

// serverFeatures is what disco#info on the server lists: exactly what this
// package implements.
var serverFeatures = []string{
	nsDiscoI,
	nsDiscoIt,
	nsPing,
	nsVersion,
	nsTime,
	nsVCard,
	"msgoffline",
	"urn:xmpp:delay",
	"jabber:iq:roster",
	nsCarbons,
}

// handleIQ answers or routes an iq (RFC 6120 8.2.3, RFC 6121 8.5).
func (srv *Server) handleIQ(s *Session, el *Element, to jid.JID) {
	typ := el.Get("type")
	switch typ {
	case "get", "set":
		if el.Get("id") == "" {
			s.send(errorReply(el, "bad-request", "an iq needs an 'id'"))
			return
		}
		if len(el.Elements()) != 1 {
			s.send(errorReply(el, "bad-request", "an iq get or set carries exactly one payload"))
			return
		}
	case "result", "error":
	default:
		s.send(errorReply(el, "bad-request", "iq type must be get, set, result or error"))
		return
	}
	if srv.refuseBlocked(s, el, to) {
		return
	}
	switch {
	case to.IsZero() || srv.isServer(to) || to == s.bare:
		if typ == "result" || typ == "error" {
			srv.answered(s.full, el.Get("id"), el) // answers to our pings and queries
			return
		}
		srv.serverIQ(s, el, to)
	case srv.isUpload(to):
		srv.uploadIQ(s, el, to)
	case !srv.Local(to.Domain()):
		srv.sendRemote(el)
	case to.IsBare():
		if typ == "get" || typ == "set" {
			srv.accountIQ(s, el, to)
		} else {
			srv.answered(s.full, el.Get("id"), el) // answers to what the server sent for the account (XEP-0357)
		}
	default:
		for _, r := range srv.router.Resources(to.Bare().String()) {
			if r.full == to {
				if !r.send(el.Bytes(nsClient)) && (typ == "get" || typ == "set") {
					s.send(errorReply(el, "recipient-unavailable", to.String()+" is not reading"))
				}
				return
			}
		}
		if typ == "get" || typ == "set" {
			s.send(errorReply(el, "service-unavailable", to.String()+" is not online"))
		}
	}
}

// serverIQ handles an iq addressed to the server or to the user's own
// account.
func (srv *Server) serverIQ(s *Session, el *Element, to jid.JID) {
	p := el.FirstChild()
	get := el.Get("type") == "get"
	toAccount := to == s.bare
	switch {
	case p.Space == nsRoster && p.Local == "query":
		srv.rosterIQ(s, el, p)
	case p.Space == nsPing && p.Local == "ping":
		s.send(iqResult(el, nil).Bytes(nsClient))
	case p.Space == nsSession && p.Local == "session":
		s.send(iqResult(el, nil).Bytes(nsClient))
	case p.Space == nsBind:
		s.send(errorReply(el, "not-allowed", "this session already has a resource"))
	case p.Space == nsDiscoI && p.Local == "query" && get:
		if toAccount {
			srv.accountDisco(s, el, p, s.bare)
			return
		}
		srv.serverDisco(s, el, p)
	case p.Space == nsDiscoIt && p.Local == "query" && get && toAccount && srv.extDiscoItems(s, el, s.bare, p.Get("node")):
	case p.Space == nsDiscoIt && p.Local == "query" && get:
		q := NewElement(nsDiscoIt, "query")
		if n := p.Get("node"); n != "" {
			q.Set("node", n)
		} else if !toAccount {
			if srv.cfg.Files != nil {
				q.Add(NewElement(nsDiscoIt, "item", "jid", uploadJID(s.domain).String(), "name", "HTTP File Upload"))
			}
			for sub, c := range srv.components {
				_, _, name := c.Identity()
				q.Add(NewElement(nsDiscoIt, "item", "jid", sub+"."+s.domain, "name", name))
			}
		}
		s.send(iqResult(el, q).Bytes(nsClient))
	case p.Space == nsVersion && p.Local == "query" && get && !toAccount:
		q := NewElement(nsVersion, "query").Add(
			NewElement(nsVersion, "name").AddText("Parley"),
			NewElement(nsVersion, "version").AddText(srv.cfg.Version),
			NewElement(nsVersion, "os").AddText(runtime.GOOS))
		s.send(iqResult(el, q).Bytes(nsClient))
	case p.Space == nsTime && p.Local == "time" && get && !toAccount:
		now := time.Now()
		q := NewElement(nsTime, "time").Add(
			NewElement(nsTime, "tzo").AddText(now.Format("-07:00")),
			NewElement(nsTime, "utc").AddText(now.UTC().Format("2006-01-02T15:04:05.000Z")))
		s.send(iqResult(el, q).Bytes(nsClient))
	case p.Space == nsVCard && p.Local == "vCard":
		if get {
			srv.vcardGet(s, el, s.bare)
		} else {
			srv.vcardSet(s, el, p)
		}
	case p.Space == nsCarbons && (p.Local == "enable" || p.Local == "disable") && !get:
		s.carbons.Store(p.Local == "enable")
		s.send(iqResult(el, nil).Bytes(nsClient))
	case p.Space == nsMAM:
		srv.mamIQ(s, el, p)
	case p.Space == nsRegister:
		s.send(errorReply(el, "service-unavailable", "accounts are managed by the mail server"))
	case srv.handlers[p.Space] != nil && srv.handlers[p.Space].HandleIQ(s, el, p, s.bare):
	default:
		s.send(errorReply(el, "service-unavailable", "<"+p.Local+" xmlns='"+p.Space+"'/> is not supported"))
	}
}

// accountIQ handles an iq to another local user's bare JID, which the
// server answers on that user's behalf (RFC 6121 8.5.2.1.3? no: 8.5.1).
func (srv *Server) accountIQ(s *Session, el *Element, to jid.JID) {
	e, err := srv.cfg.Directory.Lookup(s.ctx(), to.Address())
	p := el.FirstChild()
	get := el.Get("type") == "get"
	if err == nil && e.Kind == account.Alias && p.Space == nsDiscoI && p.Local == "query" && get && p.Get("node") == "" {
		// An alias is a distribution list: clients (the webmail panel)
		// show it without presence.
		q := NewElement(nsDiscoI, "query").Add(
			NewElement(nsDiscoI, "identity", "category", "directory", "type", "group", "name", e.Name),
			NewElement(nsDiscoI, "feature", "var", nsDiscoI),
			NewElement(nsDiscoI, "feature", "var", nsAddress))
		r := iqResult(el, q)
		r.Set("from", to.String())
		s.send(r.Bytes(nsClient))
		return
	}
	if err != nil || e.Kind != account.User {
		s.send(errorReply(el, "service-unavailable", "there is no user "+to.String()))
		return
	}
	switch {
	case p.Space == nsVCard && p.Local == "vCard" && get:
		srv.vcardGet(s, el, to)
	case p.Space == nsDiscoI && p.Local == "query" && get:
		srv.accountDisco(s, el, p, to.Bare())
	case p.Space == nsDiscoIt && p.Local == "query" && get && srv.extDiscoItems(s, el, to.Bare(), p.Get("node")):
	case p.Space == nsPing && p.Local == "ping":
		s.send(iqResult(el, nil).Bytes(nsClient))
	case srv.handlers[p.Space] != nil && srv.handlers[p.Space].HandleIQ(s, el, p, to.Bare()):
	default:
		s.send(errorReply(el, "service-unavailable", "<"+p.Local+" xmlns='"+p.Space+"'/> is not supported on accounts"))
	}
}

func (srv *Server) serverDisco(s *Session, el, p *Element) {
	node := p.Get("node")
	if node != "" && node != capsNode+"#"+srv.capsVer() {
		s.send(errorReply(el, "item-not-found", "no such node"))
		return
	}
	q := srv.serverInfo()
	q.Set("node", node)
	s.send(iqResult(el, q).Bytes(nsClient))
}

// serverInfo is the server's disco#info (XEP-0030), also hashed into its
// entity capabilities (XEP-0115).
func (srv *Server) serverInfo() *Element {
	q := NewElement(nsDiscoI, "query")
	q.Add(NewElement(nsDiscoI, "identity", "category", "server", "type", "im", "name", "Parley"))
	for _, f := range append(append([]string(nil), serverFeatures...), srv.extendedFeatures()...) {
		q.Add(NewElement(nsDiscoI, "feature", "var", f))
	}
	return q
}

func (srv *Server) accountDisco(s *Session, el, p *Element, owner jid.JID) {
	if node := p.Get("node"); node != "" {
		if !srv.extDiscoNode(s, el, owner, node) {
			s.send(errorReply(el, "item-not-found", "no such node"))
		}
		return
	}
	q := NewElement(nsDiscoI, "query")
	q.Add(NewElement(nsDiscoI, "identity", "category", "account", "type", "registered"))
	for _, id := range srv.accountIdentities() {
		q.Add(NewElement(nsDiscoI, "identity", "category", id[0], "type", id[1]))
	}
	for _, f := range append([]string{nsDiscoI, nsVCard, nsMAM, nsMAMExt, nsSID, nsFulltext}, srv.accountFeatures()...) {
		q.Add(NewElement(nsDiscoI, "feature", "var", f))
	}
	s.send(iqResult(el, q).Bytes(nsClient))
}

// rosterIQ handles roster get and set (RFC 6121 section 2, XEP-0237).
func (srv *Server) rosterIQ(s *Session, el, q *Element) {
	ctx := s.ctx()
	if el.Get("type") == "get" {
		if len(q.Elements()) != 0 {
			s.send(errorReply(el, "bad-request", "a roster get has an empty query"))
			return
		}
		s.pmu.Lock()
		s.interested = true
		s.pmu.Unlock()
		if ver := q.Get("ver"); q.Has("ver") && ver != "" {
			cur, err := srv.cfg.Roster.Version(ctx, s.bare)
			if err == nil && cur == ver {
				// XEP-0237: nothing changed, an empty result spares the
				// client the whole roster.
				s.send(iqResult(el, nil).Bytes(nsClient))
				return
			}
		}
		items, ver, err := srv.cfg.Roster.Get(ctx, s.bare)
		if err != nil {
			srv.log.Error("roster get", "user", s.bare.String(), "err", err)
			s.send(errorReply(el, "internal-server-error", "the roster could not be read; try again"))
			return
		}
		rq := NewElement(nsRoster, "query", "ver", ver)
		for i := range items {
			rq.Add(rosterItem(&items[i], false))
		}
		s.send(iqResult(el, rq).Bytes(nsClient))
		return
	}
	items := q.Elements()
	if len(items) != 1 || items[0].Local != "item" || items[0].Space != nsRoster {
		s.send(errorReply(el, "bad-request", "a roster set carries exactly one <item/>"))
		return
	}
	it := items[0]
	contact, err := jid.Parse(it.Get("jid"))
	if err != nil {
		s.send(errorReply(el, "jid-malformed", "item 'jid': "+err.Error()))
		return
	}
	contact = contact.Bare()
	if it.Get("subscription") == "remove" {
		res, err := srv.cfg.Roster.Remove(ctx, s.bare, contact)
		if err != nil {
			if errors.Is(err, storage.ErrNotFound) {
				s.send(errorReply(el, "item-not-found", contact.String()+" is not in your roster"))
				return
			}
			srv.rosterError(s, el, err)
			return
		}
		s.send(iqResult(el, nil).Bytes(nsClient))
		srv.pushRoster(s.bare, &res.Item, true)
		if res.SendUnsubscribe {
			srv.subscriptionOut(s.bare, contact, roster.Unsubscribe, "")
		}
		if res.SendUnsubscribed {
			srv.subscriptionOut(s.bare, contact, roster.Unsubscribed, "")
		}
		return
	}
	var groups []string
	seen := map[string]bool{}
	for _, g := range it.Elements() {
		if g.Local != "group" || g.Space != nsRoster {
			continue
		}
		name := g.Text()
		if strings.TrimSpace(name) == "" {
			s.send(errorReply(el, "not-acceptable", "a group name cannot be empty"))
			return
		}
		if len(name) > 1024 {
			s.send(errorReply(el, "not-acceptable", "a group name is at most 1024 bytes"))
			return
		}
		if seen[name] {
			s.send(errorReply(el, "bad-request", "the group "+name+" is listed twice"))
			return
		}
		seen[name] = true
		groups = append(groups, name)
	}
	name := it.Get("name")
	if len(name) > 1024 {
		s.send(errorReply(el, "not-acceptable", "a name is at most 1024 bytes"))
		return
	}
	item, err := srv.cfg.Roster.Set(ctx, s.bare, contact, name, groups)
	if err != nil {
		srv.rosterError(s, el, err)
		return
	}
	s.send(iqResult(el, nil).Bytes(nsClient))
	srv.pushRoster(s.bare, &item, false)
}

func (srv *Server) rosterError(s *Session, el *Element, err error) {
	if errors.Is(err, roster.ErrNotAllowed) {
		s.send(errorReply(el, "not-allowed", err.Error()))
		return
	}
	srv.log.Error("roster set", "user", s.bare.String(), "err", err)
	s.send(errorReply(el, "internal-server-error", "the roster could not be saved; try again"))
}

// rosterItem renders an item; removed gives subscription='remove'.
func rosterItem(it *roster.Item, removed bool) *Element {
	e := NewElement(nsRoster, "item", "jid", it.JID.String())
	if removed {
		e.Set("subscription", "remove")
		return e
	}
	if it.Name != "" {
		e.Set("name", it.Name)
	}
	e.Set("subscription", it.Subscription.String())
	if it.Ask {
		e.Set("ask", "subscribe")
	}
	if it.Approved {
		e.Set("approved", "true")
	}
	for _, g := range it.Groups {
		e.Add(NewElement(nsRoster, "group").AddText(g))
	}
	return e
}

// pushRoster sends a roster push to every interested resource of owner
// (RFC 6121 2.1.6).
func (srv *Server) pushRoster(owner jid.JID, it *roster.Item, removed bool) {
	sessions := srv.router.Resources(owner.String())
	if len(sessions) == 0 {
		return
	}
	ver, err := srv.cfg.Roster.Version(srv.ctx, owner)
	if err != nil {
		srv.log.Error("roster version", "user", owner.String(), "err", err)
	}
	q := NewElement(nsRoster, "query", "ver", ver).Add(rosterItem(it, removed))
	for _, r := range sessions {
		r.pmu.Lock()
		interested := r.interested
		r.pmu.Unlock()
		if !interested {
			continue
		}
		push := NewElement(nsClient, "iq", "type", "set", "id", "push-"+randomID(6), "to", r.full.String()).Add(q)
		r.send(push.Bytes(nsClient))
	}
}

// vcardGet answers a vCard-temp request (XEP-0054) for a local user: what
// the user stored (their avatar among it), with the name and address from
// the mail directory.
func (srv *Server) vcardGet(s *Session, el *Element, who jid.JID) {
	r := iqResult(el, srv.vcardOf(who))
	if who != s.bare {
		r.Set("from", who.String())
	}
	s.send(r.Bytes(nsClient))
}

// vcardOf returns a local user's vCard.
func (srv *Server) vcardOf(who jid.JID) *Element {
	ctx := srv.ctx
	v := NewElement(nsVCard, "vCard")
	if b, err := srv.cfg.Store.UserData(ctx, who.Address(), "vcard"); err == nil {
		if stored, err := parseElement(b); err == nil {
			v = stored
		}
	} else if !errors.Is(err, storage.ErrNotFound) {
		srv.log.Error("reading vCard", "user", who.String(), "err", err)
	}
	if e, err := srv.cfg.Directory.Lookup(ctx, who.Address()); err == nil {
		if e.Name != "" {
			v.RemoveChildren(nsVCard, "FN")
			v.Children = append([]Node{{El: NewElement(nsVCard, "FN").AddText(e.Name)}}, v.Children...)
		}
		if v.Child(nsVCard, "EMAIL") == nil {
			v.Add(NewElement(nsVCard, "EMAIL").Add(NewElement(nsVCard, "INTERNET"),
				NewElement(nsVCard, "USERID").AddText(who.Address())))
		}
		if v.Child(nsVCard, "JABBERID") == nil {
			v.Add(NewElement(nsVCard, "JABBERID").AddText(who.Address()))
		}
	}
	return v
}

func (srv *Server) vcardSet(s *Session, el, v *Element) {
	if to := el.Get("to"); to != "" && to != s.bare.String() {
		s.send(errorReply(el, "forbidden", "you can only change your own vCard"))
		return
	}
	if err := srv.cfg.Store.PutUserData(s.ctx(), s.bare.Address(), "vcard", v.Bytes("")); err != nil {
		srv.log.Error("storing vCard", "user", s.bare.String(), "err", err)
		s.send(errorReply(el, "internal-server-error", "the vCard could not be saved; try again"))
		return
	}
	s.send(iqResult(el, nil).Bytes(nsClient))
	srv.vcardStored(s, v)
}

// handleBind binds a resource (RFC 6120 7.6): the client's choice, or a
// generated one; a conflicting resource replaces the old session
// (7.7.2.2).
func (s *Session) handleBind(el *Element) error {
	if el.Get("type") != "set" || el.Get("id") == "" {
		s.writeNow(errorReply(el, "bad-request", "bind is an iq set with an id"))
		return nil
	}
	res := strings.TrimSpace(el.Child(nsBind, "bind").ChildText(nsBind, "resource"))
	if res == "" {
		res = "parley-" + randomID(9)
	}
	full, err := jid.New(s.bare.Local(), s.bare.Domain(), res)
	if err != nil {
		s.writeNow(errorReply(el, "bad-request", "resource not acceptable: "+err.Error()))
		return nil
	}
	e, err := s.srv.cfg.Directory.Lookup(s.ctx(), s.bare.Address())
	if err != nil || e.Kind != account.User {
		s.writeNow(errorReply(el, "not-allowed", "this address cannot chat"))
		return nil
	}
	existing := s.srv.router.Resources(s.bare.String())
	replacing := false
	for _, o := range existing {
		replacing = replacing || o.full == full
	}
	if !replacing && len(existing) >= s.srv.cfg.MaxSessionsPerUser {
		s.writeNow(errorReply(el, "resource-constraint",
			"already logged in from the most devices allowed; log out from one first"))
		return nil
	}
	s.full = full
	s.domainMember = e.ChatEnabled
	s.startWriter()
	s.bound = true
	// The result is queued before the session is routable, so that it
	// reaches the client before anything routed to the new resource.
	r := NewElement(nsClient, "iq", "type", "result", "id", el.Get("id")).
		Add(NewElement(nsBind, "bind").Add(NewElement(nsBind, "jid").AddText(full.String())))
	s.send(r.Bytes(nsClient))
	mu := s.srv.userLock(s.bare.String())
	mu.Lock()
	if old := s.srv.router.Bind(s); old != nil {
		// A session waiting for resumption has no connection to tell;
		// its undelivered messages move to the new session, ahead of
		// anything that arrives from now on.
		s.srv.handOver(old)
		old.kill("conflict", "replaced by a new connection with the same resource")
	}
	mu.Unlock()
	s.srv.m.Bound.Add(1)
	return nil
}
